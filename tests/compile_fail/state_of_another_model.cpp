// Must not compile: an RWKV-6 state handed to an RWKV-7 model.
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

int main() {
  const auto model = rwkv::v7::Model<>::load("model.safetensors");
  rwkv::v6::State state;
  model.step(0, state);
}

// Must not compile: a time mixer with a state and make_state() but no forward.
#include <rwkv/v7.hpp>

struct NoForward {
  using state_type = rwkv::v7::ChannelMixState;
  state_type make_state() const { return {}; }
};

int main() {
  rwkv::Block<NoForward, rwkv::v7::ChannelMix<>> block;
  (void)block;
}

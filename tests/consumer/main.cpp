// Loads a checkpoint and prints the most likely next byte after "in".
#include <iostream>

#include <rwkv/rwkv.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL\n";
    return 2;
  }
  const auto model = rwkv::load_model<rwkv::v7::Model<rwkv::f32>>(argv[1]);
  auto state = model.make_state();
  const auto logits = model.prefill(rwkv::byte_tokenizer{}.encode("in"), state);
  std::cout << "consumer: next token after \"in\" is " << rwkv::argmax(logits) << " (compiled for "
            << rwkv::cpu<>::arch::name() << ")\n";
}

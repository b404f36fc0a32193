// Generate text with any byte-level RWKV-7 checkpoint:  generate MODEL [PROMPT] [TOKENS]
#include <iostream>
#include <random>
#include <string>

#include <rwkv/rwkv.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: generate MODEL [PROMPT] [TOKENS]\n";
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "The ";
  const int tokens = argc > 3 ? std::stoi(argv[3]) : 100;

  const auto model = rwkv::load_model<rwkv::v7::Model<rwkv::f32>>(argv[1]);
  const rwkv::byte_tokenizer tok;
  auto state = model.make_state();
  auto logits = model.prefill(tok.encode(prompt), state);  // whole prompt at once

  std::mt19937_64 rng(1);
  std::cout << prompt;
  for (int i = 0; i < tokens; ++i) {
    const auto next = rwkv::sample(logits, {.temperature = 0.6f, .top_p = 0.6f}, rng);
    std::cout << static_cast<char>(next) << std::flush;
    logits = model.step(next, state);  // then one token at a time
  }
  std::cout << "\n";
} catch (const std::exception& e) {
  std::cerr << "generate: " << e.what() << "\n";
  return 1;
}

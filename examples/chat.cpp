// A conversation that keeps its state between turns: each turn feeds only the new text.
//   chat MODEL [VOCAB]        (reads lines from stdin; an empty line or end of input ends the chat)
// Byte-level models (vocab 256) need no vocabulary; World models (vocab 65536) take the vocabulary file.
#include <iostream>
#include <string>

#include <rwkv/any_model.hpp>
#include <rwkv/generate.hpp>
#include <rwkv/tokenizer/bytes.hpp>
#include <rwkv/tokenizer/world.hpp>

template <class Tokenizer>
void converse(const rwkv::any_model& model, const Tokenizer& tok) {
  auto state = model.make_state();  // the whole conversation lives in this value
  rwkv::generation_params params;
  params.max_tokens = 120;
  params.sampling = {.temperature = 0.8f, .top_p = 0.7f};
  params.stop_strings = {"\n\n"};
  std::string line;
  while (std::cout << "User: " << std::flush, std::getline(std::cin, line) && !line.empty()) {
    std::cout << "Assistant:";
    rwkv::generate(model, state, tok, "User: " + line + "\n\nAssistant:", params,
                   [](std::string_view piece) { std::cout << piece << std::flush; });
    std::cout << "\n\n";
    ++params.seed;
  }
}

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: chat MODEL [VOCAB]\n";
    return 2;
  }
  const auto model = rwkv::any_model::load(argv[1]);
  if (model.info().vocab == 256)
    converse(model, rwkv::byte_tokenizer{});
  else if (argc > 2)
    converse(model, rwkv::world_tokenizer(argv[2]));
  else
    throw rwkv::error("this model needs the World vocabulary file as second argument", argv[1]);
} catch (const std::exception& e) {
  std::cerr << "chat: " << e.what() << "\n";
  return 1;
}

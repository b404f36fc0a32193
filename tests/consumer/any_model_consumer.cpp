// Links only rwkv::any_model (the prebuilt instantiations): loads a checkpoint whose version it learns from the
// file, tokenizes with the bundled World vocabulary, decodes a few tokens, and saves and reloads the state. Exits
// non-zero on any mismatch.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/tokenizer/world.hpp>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "any_model_consumer: FAILED: " << what << "\n";
    ++failures;
  }
}

std::int32_t argmax(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Greedy decoding of n tokens after `logits`; returns the logits after the last one.
std::vector<float> decode(const rwkv::any_model& model, rwkv::any_state& state, std::vector<float> logits, int n,
                          std::vector<std::int32_t>& out) {
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax(logits));
    logits = model.step(out.back(), state);
  }
  return logits;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: any_model_consumer MODEL STATE_FILE\n";
    return 2;
  }
  try {
    // The World vocabulary where the package put it (the path CMake's rwkvpp_WORLD_VOCAB names).
    const auto tok = rwkv::world_tokenizer::bundled();
    check(std::filesystem::equivalent(rwkv::world_tokenizer::bundled_path(), CONSUMER_WORLD_VOCAB),
          "world_tokenizer::bundled_path() is " + rwkv::world_tokenizer::bundled_path().string() +
              ", rwkvpp_WORLD_VOCAB is " CONSUMER_WORLD_VOCAB);
    const std::string text = "Hello, world! Ünïcode and 中文 too.";
    const auto ids = tok.encode(text);
    check(tok.decode(ids) == text, "World tokenizer round trip");
    check(tok.encode("Hello, world!") == std::vector<std::int32_t>{33155, 45, 40213, 34}, "World token ids");

    const auto model = rwkv::any_model::load(argv[1]);
    const auto& info = model.info();
    check(info.version == "7" && info.vocab == 256, "model info (version " + info.version + ")");

    auto state = model.make_state();
    const std::vector<std::int32_t> prompt = {'I', 'n', ' '};
    auto logits = model.prefill(prompt, state);
    std::vector<std::int32_t> generated;
    logits = decode(model, state, logits, 5, generated);

    // Save the state, go on from it, and go on from the state read back: the same tokens and logits.
    const std::filesystem::path state_file = argv[2];
    state.save(state_file);
    const auto saved = state;
    std::vector<std::int32_t> a, b;
    const auto logits_a = decode(model, state, logits, 4, a);
    auto reloaded = model.load_state(state_file);
    check(reloaded == saved, "state read back equals the state saved");
    const auto logits_b = decode(model, reloaded, logits, 4, b);
    check(a == b && logits_a == logits_b, "decoding from the reloaded state");

    std::cout << "any_model_consumer: RWKV-" << info.version << ", " << info.parameters << " parameters, "
              << tok.vocab_size() << " World tokens; generated";
    for (auto t : generated) std::cout << ' ' << t;
    std::cout << (failures ? "; FAILED\n" : "; OK\n");
  } catch (const std::exception& e) {
    std::cerr << "any_model_consumer: " << e.what() << "\n";
    return 1;
  }
  return failures ? 1 : 0;
}

// World tokenizer speed: encode and decode of ~1 MB of mixed English / Chinese / code text (MB/s of input
// bytes), and loading the vocabulary.
//   tokenizer_bench [--benchmark_filter=...]   env RWKV_VOCAB to use another vocabulary file
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <rwkv/tokenizer/world.hpp>

namespace {

const char* vocab_path() {
  const char* env = std::getenv("RWKV_VOCAB");
  return env ? env : RWKV_VOCAB_FILE;
}

const rwkv::world_tokenizer& tokenizer() {
  static const rwkv::world_tokenizer tok(vocab_path());
  return tok;
}

constexpr const char* english =
    "The quick brown fox jumps over the lazy dog, while 12,345 spectators watched in amazement. "
    "Recurrent networks process a sequence one token at a time and keep a fixed-size state, so memory does not "
    "grow with the length of the context. RWKV trains in parallel like a Transformer and runs like an RNN.\n\n"
    "User: What is the capital of France?\n\nAssistant: The capital of France is Paris.\n\n";

constexpr const char* chinese =
    "你好，世界！今天天气很好，我们一起去公园散步吧。循环神经网络在推理时只需要常数级的内存，"
    "而注意力机制的计算量随着上下文长度增长。人工智能正在改变我们的生活方式。\n"
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n";

constexpr const char* code =
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;\n"
    "\treturn static_cast<int>(v.size());\n}\n"
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n"
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}\n";

// ~1 MB: the three kinds of text in turn, each block numbered so that the text is not one period repeated.
const std::string& corpus() {
  static const std::string text = [] {
    std::string s;
    for (int i = 0; s.size() < (1u << 20); ++i) {
      s += english;
      s += chinese;
      s += code;
      s += "// block " + std::to_string(i) + "\n";
    }
    return s;
  }();
  return text;
}

void encode(benchmark::State& st) {
  const auto& tok = tokenizer();
  const auto& text = corpus();
  std::vector<std::int32_t> ids;
  for (auto _ : st) {
    ids.clear();
    tok.encode(text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(text.size()));
  st.counters["bytes"] = static_cast<double>(text.size());
  st.counters["tokens"] = static_cast<double>(ids.size());
}
BENCHMARK(encode)->Unit(benchmark::kMillisecond);

void decode(benchmark::State& st) {
  const auto& tok = tokenizer();
  const auto& text = corpus();
  const auto ids = tok.encode(text);
  for (auto _ : st) {
    auto out = tok.decode(ids);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(decode)->Unit(benchmark::kMillisecond);

void load_vocabulary(benchmark::State& st) {
  for (auto _ : st) {
    rwkv::world_tokenizer tok(vocab_path());
    benchmark::DoNotOptimize(tok.vocab_size());
  }
}
BENCHMARK(load_vocabulary)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

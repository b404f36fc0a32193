// RWKV-7 decode (one token per step, logits every token) and prefill (one sequence call, logits of the last
// token) on a random checkpoint of a real shape (default 0.1B: 12 x 768, vocab 65536). Prints the ISA.
//   v7_model_bench [--benchmark_filter=...]   env RWKV_BENCH_LAYERS / RWKV_BENCH_EMBD to change the shape
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include <rwkv/random_checkpoint.hpp>
#include <rwkv/rwkv.hpp>

namespace {

std::int64_t env_or(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

// The checkpoint is written once per storage type to the temp directory and memory-mapped by the models;
// quantized storage (q8, q4) loads the float32 checkpoint and quantizes it at load.
template <class T>
const std::filesystem::path& checkpoint() {
  static const std::filesystem::path path = [] {
    rwkv::random_spec s;
    s.n_layer = env_or("RWKV_BENCH_LAYERS", 12);
    s.n_embd = env_or("RWKV_BENCH_EMBD", 768);
    s.seed = 1;
    auto p = std::filesystem::temp_directory_path() /
             ("rwkvpp-bench-v7-" + std::to_string(s.n_layer) + "x" + std::to_string(s.n_embd) + "-" +
              std::string(rwkv::storage_name<T>()) + ".safetensors");
    if (!std::filesystem::exists(p)) rwkv::io::save_safetensors(p, rwkv::random_checkpoint<T>(s));
    return p;
  }();
  return path;
}

template <class P>
const rwkv::v7::Model<P>& model() {
  using W = typename P::weight_type;
  static const auto m = rwkv::v7::Model<P>::load(checkpoint<std::conditional_t<rwkv::QuantizedStorage<W>, float, W>>());
  return m;
}

template <class P>
void decode(benchmark::State& st) {
  const auto& m = model<P>();
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(0)));
  auto s = m.make_state();
  std::int32_t token = 1;
  for (auto _ : st) {
    auto logits = m.step(token, s, &pool);
    token = rwkv::argmax(logits);
    benchmark::DoNotOptimize(token);
  }
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
  st.SetLabel(xsimd::default_arch::name());
}

template <class P>
void prefill(benchmark::State& st) {
  const auto& m = model<P>();
  std::mt19937 rng(3);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(st.range(0)));
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(1)));
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % static_cast<unsigned>(m.cfg().vocab));
  for (auto _ : st) {
    auto s = m.make_state();
    benchmark::DoNotOptimize(m.prefill(tokens, s, &pool));
  }
  st.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(st.iterations() * st.range(0)), benchmark::Counter::kIsRate);
  st.SetLabel(xsimd::default_arch::name());
}

}  // namespace

// decode/<precision>/<threads>; prefill/<precision>/<tokens>/<threads>
BENCHMARK(decode<rwkv::f32>)
    ->Name("v7_decode/f32")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(decode<rwkv::bf16_weights>)
    ->Name("v7_decode/bf16")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(decode<rwkv::q8_weights>)
    ->Name("v7_decode/q8")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(decode<rwkv::q4_weights>)
    ->Name("v7_decode/q4")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(prefill<rwkv::f32>)
    ->Name("v7_prefill/f32")
    ->Args({512, 1})
    ->Args({512, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(prefill<rwkv::bf16_weights>)
    ->Name("v7_prefill/bf16")
    ->Args({512, 1})
    ->Args({512, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(prefill<rwkv::q8_weights>)
    ->Name("v7_prefill/q8")
    ->Args({512, 1})
    ->Args({512, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(prefill<rwkv::q4_weights>)
    ->Name("v7_prefill/q4")
    ->Args({512, 1})
    ->Args({512, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

BENCHMARK_MAIN();

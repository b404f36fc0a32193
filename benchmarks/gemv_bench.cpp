// Matrix-vector products per weight storage type (the decode kernels), on the matrix shapes of the RWKV-7 0.1B
// model: 768 x 768 (time-mix projections), 3072 x 768 (ffn key), 65536 x 768 (head). Reports bytes of weights
// read per second, the figure to compare with the machine's memory bandwidth.
//   gemv_bench [--benchmark_filter=...]      names: gemv/<storage>/<rows>/<threads>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include <rwkv/core/half.hpp>
#include <rwkv/core/quant.hpp>
#include <rwkv/core/thread_pool.hpp>
#include <rwkv/kernel/cpu/linear.hpp>

namespace {

using arch = xsimd::default_arch;
constexpr std::int64_t cols = 768;

std::vector<float> random_values(std::int64_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

template <class T>
rwkv::matrix<T> make_matrix(std::int64_t rows) {
  const auto values = random_values(rows * cols, 1);
  if constexpr (rwkv::QuantizedStorage<T>) {
    return rwkv::matrix<T>::quantize(values.data(), rows, cols);
  } else {
    std::vector<T> stored(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) stored[i] = rwkv::from_float<T>(values[i]);
    return rwkv::matrix<T>::owned(std::move(stored), rows, cols);
  }
}

template <class T>
void gemv(benchmark::State& state) {
  const std::int64_t rows = state.range(0);
  const auto threads = static_cast<std::size_t>(state.range(1));
  const auto w = make_matrix<T>(rows);
  const auto x = random_values(cols, 2);
  std::vector<float> y(static_cast<std::size_t>(rows));
  rwkv::thread_pool pool(static_cast<unsigned>(threads));
  for (auto _ : state) {
    rwkv::kernel::cpu::matvec<arch>(w, x.data(), y.data(), threads > 1 ? &pool : nullptr);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * double(rows * cols) *
                                                    rwkv::kernel::cpu::bytes_per_weight<T>()));
}

void shapes(benchmark::internal::Benchmark* b) {
  for (std::int64_t rows : {768, 3072, 65536})
    for (std::int64_t threads : {1, 2}) b->Args({rows, threads});
  b->UseRealTime();
}

}  // namespace

BENCHMARK(gemv<float>)->Name("gemv/f32")->Apply(shapes);
BENCHMARK(gemv<rwkv::bf16>)->Name("gemv/bf16")->Apply(shapes);
BENCHMARK(gemv<rwkv::f16>)->Name("gemv/f16")->Apply(shapes);
BENCHMARK(gemv<rwkv::q8>)->Name("gemv/q8")->Apply(shapes);
BENCHMARK(gemv<rwkv::q4>)->Name("gemv/q4")->Apply(shapes);

BENCHMARK_MAIN();

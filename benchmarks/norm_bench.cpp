// The per-token vector kernels of a layer, on the widths of the RWKV-7 0.1B / 0.4B / 1.5B shapes: LayerNorm over C
// channels, and GroupNorm over C / 64 heads of 64 (the time mixer's ln_x). Reports elements per second.
//   norm_bench [--benchmark_filter=...]      names: layer_norm/<C>, group_norm/<C>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include <rwkv/kernel/cpu/norm.hpp>

namespace {

struct vectors {
  std::vector<float> x, weight, bias, out;
  explicit vectors(std::int64_t n) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* v : {&x, &weight, &bias}) {
      v->resize(static_cast<std::size_t>(n));
      for (auto& e : *v) e = normal(rng);
    }
    out.resize(static_cast<std::size_t>(n));
  }
};

void layer_norm(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  vectors v(state.range(0));
  for (auto _ : state) {
    rwkv::kernel::cpu::layer_norm(v.x.data(), v.weight.data(), v.bias.data(), v.out.data(), n);
    benchmark::DoNotOptimize(v.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

void group_norm(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  vectors v(state.range(0));
  for (auto _ : state) {
    rwkv::kernel::cpu::group_norm(v.x.data(), v.weight.data(), v.bias.data(), v.out.data(), n / 64, 64, 64e-5f);
    benchmark::DoNotOptimize(v.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK(layer_norm)->Name("layer_norm")->Arg(768)->Arg(1024)->Arg(2048);
BENCHMARK(group_norm)->Name("group_norm")->Arg(768)->Arg(1024)->Arg(2048);

BENCHMARK_MAIN();

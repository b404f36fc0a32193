// The WKV recurrence alone, serial (wkv7_step / wkv5_step per token) against chunked (wkv7_chunked /
// wkv5_chunked), on the 0.1B shape: 12 heads of 64, the heads split over a pool of 1 or 2 threads as the time
// mixers do. Inputs are random with the models' structure: RWKV-7 a = −κ̂, b = κ̂·α, decays exp(−e^{−1/2}·σ(z))
// over their whole range; RWKV-6 decays exp(−exp(d)) with d the official initialisation of time_decay across the
// channels (−6 … −1, layer ratio 0.5) plus a per-token N(0, 1) data-dependent term, so the fastest heads have
// some channels whose decay over a chunk underflows (the kernel's pairwise path) and the slowest decay ≈ 0.998.
//   wkv_bench [--benchmark_filter=...]      names: <version>_wkv/<form>/<tokens>/<threads>
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include <rwkv/core/thread_pool.hpp>
#include <rwkv/kernel/cpu/wkv5.hpp>
#include <rwkv/kernel/cpu/wkv5_chunked.hpp>
#include <rwkv/kernel/cpu/wkv7.hpp>
#include <rwkv/kernel/cpu/wkv7_chunked.hpp>

namespace {

using arch = xsimd::default_arch;
constexpr int H = 12, N = 64, C = H * N;

struct inputs {
  std::vector<float> r, w, k, v, a, b, u, state;
};

std::vector<float> sized(std::int64_t T) { return std::vector<float>(static_cast<std::size_t>(T * C)); }

const inputs& v7_inputs(std::int64_t T) {
  static std::map<std::int64_t, inputs> cache;
  auto [it, fresh] = cache.try_emplace(T);
  if (!fresh) return it->second;
  auto& in = it->second;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  in.r = in.w = in.k = in.v = in.a = in.b = sized(T);
  in.state.assign(static_cast<std::size_t>(H * N * N), 0.f);
  std::vector<float> kappa(N);
  for (std::int64_t t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      float norm2 = 0;
      for (auto& x : kappa) {
        x = normal(rng);
        norm2 += x * x;
      }
      for (int j = 0; j < N; ++j) {
        const auto i = static_cast<std::size_t>(t * C + h * N + j);
        in.r[i] = normal(rng);
        in.k[i] = normal(rng);
        in.v[i] = normal(rng);
        in.a[i] = -kappa[static_cast<std::size_t>(j)] / std::sqrt(norm2);
        in.b[i] = -in.a[i] * unit(rng);
        in.w[i] = std::exp(-0.6065306597126334f / (1.f + std::exp(-4.f * normal(rng))));
      }
    }
  return in;
}

const inputs& v6_inputs(std::int64_t T) {
  static std::map<std::int64_t, inputs> cache;
  auto [it, fresh] = cache.try_emplace(T);
  if (!fresh) return it->second;
  auto& in = it->second;
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.f, 1.f);
  in.r = in.w = in.k = in.v = sized(T);
  in.u.resize(C);
  in.state.assign(static_cast<std::size_t>(H * N * N), 0.f);
  for (int c = 0; c < C; ++c) in.u[static_cast<std::size_t>(c)] = 0.5f * normal(rng);
  for (std::int64_t t = 0; t < T; ++t)
    for (int c = 0; c < C; ++c) {
      const auto i = static_cast<std::size_t>(t * C + c);
      in.r[i] = normal(rng);
      in.k[i] = normal(rng);
      in.v[i] = normal(rng);
      const float base = -6.f + 5.f * std::pow(static_cast<float>(c) / (C - 1), 0.7f + 1.3f * 0.5f);
      in.w[i] = std::exp(-std::exp(base + normal(rng)));
    }
  return in;
}

void finish(benchmark::State& st, std::int64_t T) {
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(st.iterations() * T), benchmark::Counter::kIsRate);
  st.SetLabel(arch::name());
}

// The state is not reset between iterations (same work per iteration; decays < 1 keep it bounded).
template <bool Chunked>
void v7_wkv(benchmark::State& st) {
  const std::int64_t T = st.range(0);
  const auto& in = v7_inputs(T);
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(1)));
  auto S = in.state;
  auto y = sized(T);
  auto heads = [&](std::int64_t h0, std::int64_t h1) {
    for (std::int64_t h = h0; h < h1; ++h) {
      const auto o = static_cast<std::size_t>(h * N);
      float* s = S.data() + h * N * N;
      if constexpr (Chunked) {
        rwkv::kernel::cpu::wkv7_chunked<arch, N>(s, T, &in.r[o], &in.w[o], &in.k[o], &in.v[o], &in.a[o], &in.b[o], C,
                                                 &y[o], C);
      } else {
        for (std::int64_t t = 0; t < T; ++t) {
          const auto i = o + static_cast<std::size_t>(t * C);
          rwkv::kernel::cpu::wkv7_step<arch, N>(s, &in.r[i], &in.w[i], &in.k[i], &in.v[i], &in.a[i], &in.b[i], &y[i]);
        }
      }
    }
  };
  for (auto _ : st) {
    rwkv::parallel_for(&pool, H, heads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  finish(st, T);
}

template <bool Chunked>
void v6_wkv(benchmark::State& st) {
  const std::int64_t T = st.range(0);
  const auto& in = v6_inputs(T);
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(1)));
  auto S = in.state;
  auto y = sized(T);
  auto heads = [&](std::int64_t h0, std::int64_t h1) {
    for (std::int64_t h = h0; h < h1; ++h) {
      const auto o = static_cast<std::size_t>(h * N);
      float* s = S.data() + h * N * N;
      if constexpr (Chunked) {
        rwkv::kernel::cpu::wkv5_chunked<arch, N>(s, T, &in.r[o], &in.k[o], &in.v[o], C, &in.w[o], C, &in.u[o], &y[o],
                                                 C);
      } else {
        for (std::int64_t t = 0; t < T; ++t) {
          const auto i = o + static_cast<std::size_t>(t * C);
          rwkv::kernel::cpu::wkv5_step<arch, N>(s, &in.r[i], &in.k[i], &in.v[i], &in.w[i], &in.u[o], &y[i]);
        }
      }
    }
  };
  for (auto _ : st) {
    rwkv::parallel_for(&pool, H, heads);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  finish(st, T);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"tokens", "threads"});
  for (std::int64_t threads : {1, 2})
    for (std::int64_t T : {2, 4, 8, 16, 64, 256, 1024, 2048}) b->Args({T, threads});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(v7_wkv<false>)->Name("v7_wkv/serial")->Apply(shapes);
BENCHMARK(v7_wkv<true>)->Name("v7_wkv/chunked")->Apply(shapes);
BENCHMARK(v6_wkv<false>)->Name("v6_wkv/serial")->Apply(shapes);
BENCHMARK(v6_wkv<true>)->Name("v6_wkv/chunked")->Apply(shapes);

BENCHMARK_MAIN();

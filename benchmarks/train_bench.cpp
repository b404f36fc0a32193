// Training throughput on the CPU (the training issue's shape): RWKV-7, 6 layers x 256, vocab 256, context 512,
// batch 1, fp32: one forward + backward + AdamW step per iteration, reported as tokens/s. Beside it, the product
// rate of the same machine: 6 x parameters FLOP per token is what forward + backward cost in matrix products, so
// tokens/s x 6 x parameters / (GEMM FLOP/s) is the fraction of the matrix-product limit reached.
#include <filesystem>
#include <random>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include <rwkv/init/builder.hpp>
#include <rwkv/train.hpp>
#include <rwkv/train/memory.hpp>
#include <rwkv/train/optimizer.hpp>
#include <rwkv/v7.hpp>

namespace {

constexpr std::int64_t ctx = 512;

rwkv::train::network<rwkv::train::v7::layer> make_network() {
  const auto path = std::filesystem::temp_directory_path() / ("rwkvpp-train-bench-" + std::to_string(::getpid()));
  rwkv::init::builder b({.n_layer = 6, .n_embd = 256, .vocab = 256, .head_size = 64}, 1);
  rwkv::init::model<rwkv::v7::Block<rwkv::f32, rwkv::cpu<>, 64>>(b);
  b.save(path);
  auto net = rwkv::train::network<rwkv::train::v7::layer>::load(path);
  std::filesystem::remove(path);
  return net;
}

// state.range(0): threads (products split by rows, WKV heads in parallel).
void train_step(benchmark::State& st) {
  rwkv::train::retain_freed_memory();  // as rwkv::train::trainer does
  auto net = make_network();
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(0)));
  net.use_threads(&pool);
  rwkv::train::adamw opt(net.parameters());
  std::mt19937 rng(1);
  std::vector<std::int32_t> in(ctx), tg(ctx);
  for (auto& t : in) t = static_cast<std::int32_t>(rng() % 256);
  for (auto& t : tg) t = static_cast<std::int32_t>(rng() % 256);
  std::int64_t params = 0;
  for (const auto& p : net.parameters().all()) params += p.value.size();
  for (auto _ : st) {
    net.parameters().zero_grad();
    benchmark::DoNotOptimize(net.loss_and_gradients(in, tg));
    rwkv::train::clip_gradients(net.parameters(), 1.0, 0);
    opt.step(1e-4f);
  }
  st.counters["tokens/s"] = benchmark::Counter(static_cast<double>(st.iterations() * ctx), benchmark::Counter::kIsRate);
  st.counters["params"] = static_cast<double>(params);
}
BENCHMARK(train_step)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->MinTime(5.0)->UseRealTime();

// The GEMM rate (Eigen, fp32) on the shapes training multiplies, 512 x 256 by 256 x 1024, with the training's
// threads (state.range(0); rows split as the training's products split them).
void gemm_rate(benchmark::State& st) {
  const rwkv::row_matrix a = rwkv::row_matrix::Random(ctx, 256), b = rwkv::row_matrix::Random(256, 1024);
  rwkv::row_matrix c(ctx, 1024);
  rwkv::thread_pool pool(static_cast<unsigned>(st.range(0)));
  for (auto _ : st) {
    rwkv::train::product(&pool, c, a, b);
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["FLOP/s"] =
      benchmark::Counter(static_cast<double>(st.iterations()) * 2.0 * ctx * 256 * 1024, benchmark::Counter::kIsRate);
}
BENCHMARK(gemm_rate)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// One model shared by many threads, each with its own state: every thread gets exactly what a lone run
// gets; and the pool's own guarantees. Built and run under ThreadSanitizer in CI (scripts/test.sh --tsan).
#define BOOST_TEST_MODULE thread_safety
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <random>
#include <thread>

#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using model_t = v7::Model<f32>;

std::vector<std::int32_t> tokens_for(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(24);
  for (auto& x : t) x = static_cast<std::int32_t>(rng() % 512);
  return t;
}

// Prefill half, then step the rest; returns every logit produced, so any interference shows.
std::vector<float> run(const model_t& m, unsigned seed, thread_pool* pool = nullptr) {
  const auto t = tokens_for(seed);
  auto s = m.make_state();
  const std::span<const std::int32_t> all(t);
  auto out = m.prefill(all.first(12), s, pool);
  for (std::size_t i = 12; i < t.size(); ++i) {
    const auto l = m.step(t[i], s, pool);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(threads_sharing_a_model_do_not_interfere) {
  const auto m = model_t::load(rwkv::test::data_path("v7-dev.model.safetensors"));
  constexpr unsigned n = 4;
  std::vector<std::vector<float>> alone(n), together(n);
  for (unsigned i = 0; i < n; ++i) alone[i] = run(m, i);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < n; ++i) threads.emplace_back([&, i] { together[i] = run(m, i); });
  for (auto& t : threads) t.join();
  for (unsigned i = 0; i < n; ++i) BOOST_CHECK(together[i] == alone[i]);  // same code path: bit-identical
}

BOOST_AUTO_TEST_CASE(threads_sharing_one_pool_are_serialised_safely) {
  const auto m = model_t::load(rwkv::test::data_path("v7-dev.model.safetensors"));
  thread_pool pool(2);
  constexpr unsigned n = 3;
  std::vector<std::vector<float>> alone(n), together(n);
  for (unsigned i = 0; i < n; ++i) alone[i] = run(m, i, &pool);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < n; ++i) threads.emplace_back([&, i] { together[i] = run(m, i, &pool); });
  for (auto& t : threads) t.join();
  for (unsigned i = 0; i < n; ++i) BOOST_CHECK(together[i] == alone[i]);
}

BOOST_AUTO_TEST_CASE(pool_propagates_exceptions_and_stays_usable) {
  thread_pool pool(2);
  BOOST_CHECK_THROW(pool.parallel_for(8,
                                      [](std::int64_t b, std::int64_t) {
                                        if (b > 0) throw std::runtime_error("boom");
                                      }),
                    std::runtime_error);
  std::atomic<int> sum{0};
  pool.parallel_for(100, [&](std::int64_t b, std::int64_t e) { sum += static_cast<int>(e - b); });
  BOOST_CHECK_EQUAL(sum.load(), 100);
}

// A fused region (parallel_work) runs every unit of every item exactly once, whatever the costs and the pool size:
// items of very different unit costs, an empty one, and more threads than units.
BOOST_AUTO_TEST_CASE(parallel_work_runs_every_unit_once) {
  for (unsigned threads : {1u, 2u, 3u, 4u}) {
    thread_pool pool(threads);
    std::vector<std::atomic<int>> a(1000), b(3), c(7);
    auto counter = [](std::vector<std::atomic<int>>& v) {
      return [&v](std::int64_t first, std::int64_t last) {
        for (std::int64_t i = first; i < last; ++i) ++v[static_cast<std::size_t>(i)];
      };
    };
    parallel_work(&pool, {work_item{1000, 1.0, counter(a)}, work_item{0, 5.0, counter(a)},
                          work_item{3, 40000.0, counter(b)}, work_item{7, 0.5, counter(c)}});
    for (auto* v : {&a, &b, &c})
      for (auto& n : *v) BOOST_TEST(n.load() == 1, threads << " threads");
  }
}

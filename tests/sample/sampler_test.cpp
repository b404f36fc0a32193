// Sampler against hand-computed distributions (spec/sampling.md §3: softmax → top-p → top-k → temperature).
#define BOOST_TEST_MODULE sampler
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <rwkv/sample/sampler.hpp>

namespace {

// Logits whose softmax is exactly proportional to the given probabilities.
std::vector<float> logits_for_probs(std::initializer_list<double> probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

void check_dist(const std::vector<float>& got, std::initializer_list<double> want) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  std::size_t i = 0;
  for (double w : want) {
    BOOST_CHECK_SMALL(got[i] - w, 1e-5);
    ++i;
  }
}

// spec/sampling.md §3 written out directly: the whole vocabulary stably sorted by probability, the float32
// cumulative sum walked to top_p, the sorted tail past top_k zeroed. sampling_distribution avoids the sort.
std::vector<float> sorted_reference(std::span<const float> logits, rwkv::sampling_params p) {
  if (p.temperature == 0.f) p = {1.f, 0.f, p.top_k};
  const std::size_t V = logits.size();
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<float> probs(V);
  double sum = 0;
  for (std::size_t i = 0; i < V; ++i) sum += probs[i] = std::exp(logits[i] - mx);
  for (auto& q : probs) q = static_cast<float>(q / sum);
  std::vector<std::uint32_t> order(V);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return probs[a] > probs[b]; });
  if (p.top_p < 1.f) {
    float cum = 0.f, cutoff = probs[order[0]];
    for (auto i : order) {
      cum += probs[i];
      if (cum >= p.top_p) {
        cutoff = probs[i];
        break;
      }
    }
    for (auto& q : probs)
      if (q < cutoff) q = 0.f;
  }
  if (p.top_k > 0 && static_cast<std::size_t>(p.top_k) < V)
    for (std::size_t r = static_cast<std::size_t>(p.top_k); r < V; ++r) probs[order[r]] = 0.f;
  if (p.temperature != 1.f)
    for (auto& q : probs) q = std::pow(q, 1.f / p.temperature);
  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  if (!(total > 0)) {
    std::fill(probs.begin(), probs.end(), 0.f);
    probs[order[0]] = 1.f;
    return probs;
  }
  for (auto& q : probs) q = static_cast<float>(q / total);
  return probs;
}

}  // namespace

BOOST_AUTO_TEST_CASE(no_filtering_is_the_softmax) {
  const auto l = logits_for_probs({0.5, 0.3, 0.15, 0.05});
  check_dist(rwkv::sampling_distribution(l, {1.0f, 1.0f, 0}), {0.5, 0.3, 0.15, 0.05});
}

BOOST_AUTO_TEST_CASE(top_p_keeps_the_smallest_prefix_reaching_p) {
  const auto l = logits_for_probs({0.15, 0.5, 0.05, 0.3});
  // sorted 0.5, 0.3 (cum 0.8 >= 0.7) → keep {0.5, 0.3}, renormalised to 0.625 / 0.375
  check_dist(rwkv::sampling_distribution(l, {1.0f, 0.7f, 0}), {0.0, 0.625, 0.0, 0.375});
  // p exactly reached by the first token keeps only it
  check_dist(rwkv::sampling_distribution(l, {1.0f, 0.5f, 0}), {0.0, 1.0, 0.0, 0.0});
}

BOOST_AUTO_TEST_CASE(top_p_zero_keeps_ties_at_the_maximum) {
  const auto l = logits_for_probs({0.4, 0.2, 0.4});
  check_dist(rwkv::sampling_distribution(l, {1.0f, 0.0f, 0}), {0.5, 0.0, 0.5});
}

BOOST_AUTO_TEST_CASE(top_k_after_top_p) {
  const auto l = logits_for_probs({0.5, 0.3, 0.15, 0.05});
  check_dist(rwkv::sampling_distribution(l, {1.0f, 1.0f, 2}), {0.625, 0.375, 0.0, 0.0});
  check_dist(rwkv::sampling_distribution(l, {1.0f, 1.0f, 1}), {1.0, 0.0, 0.0, 0.0});
}

BOOST_AUTO_TEST_CASE(temperature_raises_probabilities_to_one_over_t) {
  const auto l = logits_for_probs({0.5, 0.3, 0.15, 0.05});
  // sqrt(p) / Σ sqrt(p): 0.70711, 0.54772, 0.38730, 0.22361 over 1.86574
  check_dist(rwkv::sampling_distribution(l, {2.0f, 1.0f, 0}), {0.378995, 0.293567, 0.207585, 0.119850});
}

BOOST_AUTO_TEST_CASE(temperature_zero_is_greedy) {
  const auto l = logits_for_probs({0.2, 0.5, 0.3});
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) BOOST_CHECK_EQUAL(rwkv::sample(l, {0.0f, 0.9f, 0}, rng), 1);
  BOOST_CHECK_EQUAL(rwkv::argmax(l), 1);
}

BOOST_AUTO_TEST_CASE(draws_follow_the_distribution_and_are_reproducible) {
  const auto l = logits_for_probs({0.5, 0.3, 0.15, 0.05});
  std::mt19937_64 rng(1234), again(1234);
  std::vector<int> counts(4, 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    const auto t = rwkv::sample(l, {1.0f, 1.0f, 0}, rng);
    BOOST_REQUIRE_EQUAL(t, rwkv::sample(l, {1.0f, 1.0f, 0}, again));
    ++counts[static_cast<std::size_t>(t)];
  }
  const double want[] = {0.5, 0.3, 0.15, 0.05};
  for (int i = 0; i < 4; ++i) BOOST_CHECK_SMALL(counts[static_cast<std::size_t>(i)] / double(n) - want[i], 0.012);
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused) {
  const std::vector<float> nan{1.f, NAN};
  std::mt19937_64 rng(1);
  BOOST_CHECK_THROW(rwkv::sample(nan, {}, rng), rwkv::error);
  BOOST_CHECK_THROW(rwkv::sample(std::vector<float>{}, {}, rng), rwkv::error);
  BOOST_CHECK_THROW(rwkv::sample(std::vector<float>{1.f, 2.f}, {-1.f, 0.5f, 0}, rng), rwkv::error);
  BOOST_CHECK_THROW(rwkv::sampling_distribution(std::vector<float>{-INFINITY, -INFINITY}, {}), rwkv::error);
}

// Bit for bit the distribution of the sorted reference: flat logits (the nucleus runs past the 256 largest into the
// radix-sorted rest) and peaked ones, logits rounded so that many probabilities tie (top_k's boundary falls among
// equal ones), a World-sized vocabulary and small ones, every filter alone and together.
BOOST_AUTO_TEST_CASE(equals_the_whole_vocabulary_sort) {
  std::mt19937_64 rng(42);
  int cases = 0;
  for (std::size_t V : {3u, 300u, 65536u})
    for (float scale : {0.05f, 1.f, 8.f})
      for (bool ties : {false, true}) {
        std::normal_distribution<float> n(0.f, scale);
        std::vector<float> logits(V);
        for (auto& l : logits) l = ties ? std::round(n(rng) * 4.f) / 4.f : n(rng);
        if (V > 3) logits[V / 2] = -INFINITY;
        for (const rwkv::sampling_params p : std::vector<rwkv::sampling_params>{{1.f, 1.f, 0},
                                                                                {1.f, 0.9f, 0},
                                                                                {0.7f, 0.5f, 0},
                                                                                {1.f, 0.999f, 0},
                                                                                {1.f, 0.f, 0},
                                                                                {1.3f, 1.f, 2},
                                                                                {1.f, 0.95f, 40},
                                                                                {0.f, 0.9f, 0},
                                                                                {1e-30f, 1.f, 0}}) {
          BOOST_TEST_CONTEXT("V " << V << ", scale " << scale << ", ties " << ties << ", T " << p.temperature
                                  << ", top_p " << p.top_p << ", top_k " << p.top_k) {
            const auto got = rwkv::sampling_distribution(logits, p), want = sorted_reference(logits, p);
            BOOST_TEST(got == want, boost::test_tools::per_element());
            ++cases;
          }
        }
      }
  BOOST_TEST(cases == 3 * 3 * 2 * 9);
}

// Sampler against hand-computed distributions (spec/sampling.md §3: softmax → top-p → top-k → temperature).
#define BOOST_TEST_MODULE sampler
#include <boost/test/unit_test.hpp>

#include <cmath>
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

#pragma once
// Next-token sampling as the reference pipeline does it (spec/sampling.md §3): softmax → top-p → top-k →
// temperature (p^(1/T)) → renormalise → one draw, with an explicit seeded RNG so that runs are reproducible.
// Deliberate divergence: top_p >= 1 means "no nucleus filtering" (the reference often turns greedy there
// because its float32 cumulative sum ends below 1.0).

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "rwkv/core/error.hpp"

namespace rwkv {

struct sampling_params {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 0.85f;
  int top_k = 0;  // 0 = disabled
};

// Index of the largest logit (the first one on ties).
inline std::int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw error("argmax of empty logits");
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace detail {

// Scratch for the sort below, kept per thread: a fresh 256 KiB buffer per token costs page faults that take
// longer than the sort.
inline std::vector<std::uint32_t>& sampler_scratch(int which) {
  thread_local std::vector<std::uint32_t> buffers[2];
  return buffers[which];
}

// Sorts keys[first, last) in ascending order: an LSD radix sort, three passes of 11 bits, about ten times faster
// than a comparison sort of a 65536-token vocabulary.
inline void radix_sort(std::vector<std::uint32_t>& keys, std::size_t first) {
  auto& tmp = sampler_scratch(1);
  tmp.resize(keys.size());
  for (int shift = 0; shift < 32; shift += 11) {
    std::size_t count[2049] = {};
    for (std::size_t i = first; i < keys.size(); ++i) ++count[((keys[i] >> shift) & 2047u) + 1];
    count[0] = first;
    for (std::size_t b = 1; b < 2049; ++b) count[b] += count[b - 1];
    for (std::size_t i = first; i < keys.size(); ++i) tmp[count[(keys[i] >> shift) & 2047u]++] = keys[i];
    std::swap_ranges(keys.begin() + static_cast<std::ptrdiff_t>(first), keys.end(),
                     tmp.begin() + static_cast<std::ptrdiff_t>(first));
  }
}

// The probability at which the descending float32 cumulative sum first reaches top_p (the largest one when it never
// does). Equal probabilities add up to the same sums in any order, so only the values need sorting, and only as
// far as the sum goes: first the 256 largest (enough for a trained model's nucleus), then all of them. The keys
// are the complemented bit patterns, which for non-negative floats ascend as the values descend.
inline float top_p_cutoff(const std::vector<float>& probs, float top_p) {
  auto& keys = sampler_scratch(0);
  keys.resize(probs.size());
  for (std::size_t i = 0; i < probs.size(); ++i) keys[i] = ~std::bit_cast<std::uint32_t>(probs[i]);
  const auto value = [](std::uint32_t k) { return std::bit_cast<float>(~k); };
  float cum = 0.f;
  const auto head = static_cast<std::ptrdiff_t>(std::min<std::size_t>(probs.size(), 256));
  std::nth_element(keys.begin(), keys.begin() + head - 1, keys.end());
  std::sort(keys.begin(), keys.begin() + head);
  for (auto i = keys.begin(); i != keys.begin() + head; ++i)
    if ((cum += value(*i)) >= top_p) return value(*i);
  radix_sort(keys, static_cast<std::size_t>(head));
  for (auto i = keys.begin() + head; i != keys.end(); ++i)
    if ((cum += value(*i)) >= top_p) return value(*i);
  return value(keys[0]);
}

// Zeroes all but the k largest probabilities; among equal ones at the boundary the lower token ids stay (the order
// of a stable sort).
inline void keep_top_k(std::vector<float>& probs, const std::vector<float>& unfiltered, std::size_t k) {
  std::vector<float> v(unfiltered);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k) - 1, v.end(), std::greater<float>());
  const float kth = v[k - 1];
  std::size_t ties = k - static_cast<std::size_t>(
                             std::count_if(unfiltered.begin(), unfiltered.end(), [&](float q) { return q > kth; }));
  for (std::size_t i = 0; i < probs.size(); ++i)
    if (unfiltered[i] < kth || (unfiltered[i] == kth && (ties == 0 || (--ties, false)))) probs[i] = 0.f;
}

}  // namespace detail

// The filtered, renormalised distribution that sample() draws from. The same as sorting the whole vocabulary
// (tests/sample/sampler_test.cpp holds that version), without the sort.
inline std::vector<float> sampling_distribution(std::span<const float> logits, sampling_params p) {
  if (logits.empty()) throw error("cannot sample from empty logits");
  if (!(p.temperature >= 0.f) || !(p.top_p >= 0.f) || p.top_k < 0)
    throw error("invalid sampling parameters (temperature and top_p must be >= 0, top_k >= 0)");
  if (p.temperature == 0.f) {
    p.temperature = 1.f;
    p.top_p = 0.f;
  }
  const std::size_t V = logits.size();
  for (float l : logits)
    if (std::isnan(l) || l == INFINITY) throw error("logits contain NaN or +inf");
  const float mx = *std::max_element(logits.begin(), logits.end());
  if (!std::isfinite(mx)) throw error("every logit is -inf: nothing to sample");
  std::vector<float> probs(V);
  double sum = 0;
  for (std::size_t i = 0; i < V; ++i) sum += probs[i] = std::exp(logits[i] - mx);
  for (auto& q : probs) q = static_cast<float>(q / sum);
  // The first most likely token (a stable sort's first), the fallback below.
  const auto first = static_cast<std::size_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());

  const bool top_k = p.top_k > 0 && static_cast<std::size_t>(p.top_k) < V;
  std::vector<float> unfiltered;
  if (top_k) unfiltered = probs;
  if (p.top_p < 1.f) {
    const float cutoff = detail::top_p_cutoff(probs, p.top_p);
    for (auto& q : probs)
      if (q < cutoff) q = 0.f;
  }
  if (top_k) detail::keep_top_k(probs, unfiltered, static_cast<std::size_t>(p.top_k));
  if (p.temperature != 1.f)
    for (auto& q : probs)
      if (q > 0.f) q = std::pow(q, 1.f / p.temperature);
  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  if (!(total > 0)) {  // underflow after a very low temperature: fall back to the most likely token
    std::fill(probs.begin(), probs.end(), 0.f);
    probs[first] = 1.f;
    return probs;
  }
  for (auto& q : probs) q = static_cast<float>(q / total);
  return probs;
}

// Draws one token id by inverse CDF with the caller's RNG.
template <class Rng = std::mt19937_64>
std::int32_t sample(std::span<const float> logits, const sampling_params& p, Rng& rng) {
  const auto probs = sampling_distribution(logits, p);
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  double cum = 0;
  std::int32_t last = 0;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.f) continue;
    last = static_cast<std::int32_t>(i);
    cum += probs[i];
    if (u < cum) return last;
  }
  return last;  // rounding left u just above the total
}

}  // namespace rwkv

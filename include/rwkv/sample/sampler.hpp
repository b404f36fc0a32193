#pragma once
// Next-token sampling as the reference pipeline does it (spec/sampling.md §3): softmax → top-p → top-k →
// temperature (p^(1/T)) → renormalise → one draw, with an explicit seeded RNG so that runs are reproducible.
// Deliberate divergence: top_p >= 1 means "no nucleus filtering" (the reference often turns greedy there
// because its float32 cumulative sum ends below 1.0).

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// The filtered, renormalised distribution that sample() draws from.
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
  if (!(total > 0)) {  // underflow after a very low temperature: fall back to the most likely token
    std::fill(probs.begin(), probs.end(), 0.f);
    probs[order[0]] = 1.f;
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

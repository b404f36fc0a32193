#pragma once
// RWKV-7 weights from scratch, as the current official training code initialises them (spec/v7.md
// "Initialization"). LoRA ranks are the training code's max(32, round(k·√C / 32)·32) with k = 2.5 (w, a), 1.7 (v),
// 5 (g).

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "rwkv/init/builder.hpp"

namespace rwkv::v7 {

inline std::int64_t lora_rank(std::int64_t C, double k) {
  // Python's round(): halves to even (round(2.5) = 2), which std::nearbyint does in the default rounding mode.
  return std::max<std::int64_t>(
      32, static_cast<std::int64_t>(std::nearbyint(k * std::sqrt(static_cast<double>(C)) / 32.0)) * 32);
}

inline void init_time_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, N = d.head_size, H = C / N;
  const double r01 = b.r01(layer), r1 = b.r1(layer), Cd = static_cast<double>(C);
  const std::vector<std::int64_t> vec{1, 1, C};
  const auto p = block_prefix(layer) + "att.";
  auto ddd = [&](std::int64_t c) { return static_cast<double>(c) / Cd; };
  auto linear = [&](std::int64_t n) { return static_cast<double>(n) / (Cd - 1) - 0.5; };
  auto zeta = [&](std::int64_t n) {
    const double half = (static_cast<double>(N) - 1) / 2, z = (static_cast<double>(n % N) - half) / half;
    return z * std::abs(z);
  };
  auto mix = [&](const char* name, double e) {
    b.fill(p + name, vec, [&, e](std::int64_t c) { return 1.0 - std::pow(ddd(c), e * r1); });
  };
  mix("x_r", 0.2);
  mix("x_w", 0.9);
  mix("x_k", 0.7);
  mix("x_v", 0.7);
  mix("x_a", 0.9);
  mix("x_g", 0.2);
  b.fill(p + "w0", vec, [&](std::int64_t n) {
    const double www = -6 + 6 * std::pow(static_cast<double>(n) / (Cd - 1), 1 + std::pow(r01, 0.3));
    return www + 0.5 + 2.5 * zeta(n);
  });
  b.fill(p + "a0", vec, [&](std::int64_t n) { return -0.19 + 0.3 * zeta(n) + 0.4 * linear(n); });
  b.fill(p + "v0", vec, [&](std::int64_t n) { return 0.73 - 0.4 * linear(n); });
  // LoRA: first factor zero, second orthogonal with gain 0.1·(√(rows/cols) if rows > cols).
  auto lora = [&](const char* first, const char* second, std::int64_t rank) {
    b.zeros(p + first, {C, rank});
    const double g = rank > C ? std::sqrt(static_cast<double>(rank) / Cd) : 1.0;
    b.orthogonal(p + second, rank, C, 0.1 * g);
  };
  lora("w1", "w2", lora_rank(C, 2.5));
  lora("a1", "a2", lora_rank(C, 2.5));
  lora("v1", "v2", lora_rank(C, 1.7));  // layer 0 has them too, unused (spec/v7.md)
  lora("g1", "g2", lora_rank(C, 5.0));
  b.fill(p + "k_k", vec, [&](std::int64_t n) { return 0.71 - 0.1 * linear(n); });
  b.constant(p + "k_a", vec, 1.02);
  b.constant(p + "r_k", {H, N}, -0.04);
  b.orthogonal(p + "receptance.weight", C, C, 1.0);
  b.orthogonal(p + "key.weight", C, C, 0.1);
  b.orthogonal(p + "value.weight", C, C, 1.0);
  b.orthogonal(p + "output.weight", C, C, 0.0);
  b.constant(p + "ln_x.weight", {C}, std::pow(static_cast<double>(1 + layer) / static_cast<double>(d.n_layer), 0.7));
  b.constant(p + "ln_x.bias", {C}, 0.0);
}

inline void init_channel_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, F = d.dim_ffn > 0 ? d.dim_ffn : 4 * C;
  const double r1 = b.r1(layer);
  const auto p = block_prefix(layer) + "ffn.";
  b.fill(p + "x_k", {1, 1, C}, [&](std::int64_t c) {
    return 1.0 - std::pow(static_cast<double>(c) / static_cast<double>(C), std::pow(r1, 4));
  });
  b.orthogonal(p + "key.weight", F, C, 1.0);
  b.orthogonal(p + "value.weight", C, F, 0.0);
}

}  // namespace rwkv::v7

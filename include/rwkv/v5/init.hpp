#pragma once
// RWKV-5.2 weights from scratch, as the official training code initialises them (spec/v5.md "Initialization").
// The channel mixer is RWKV-4's (spec/v4.md), with 5.2's hidden width 3.5C rounded down to 32.

#include <cmath>
#include <cstdint>
#include <string>

#include "rwkv/init/builder.hpp"
#include "rwkv/v4/init.hpp"

namespace rwkv::v5 {

// time_faaaa_n = r01·(1 − n/(A−1)) + 0.1·(((n+1) mod 3) − 1), shape (H, N).
inline void init_bonus(init::builder& b, const std::string& name, std::int64_t H, std::int64_t N, double r01) {
  const auto A = H * N;
  b.fill(name, {H, N}, [&](std::int64_t n) {
    return r01 * (1.0 - static_cast<double>(n) / static_cast<double>(A - 1)) +
           0.1 * static_cast<double>((n + 1) % 3 - 1);
  });
}

// The projections and ln_x of a 5.2 / 6 time mixer (prefix p = "blocks.<layer>.att."): orthogonal matrices with
// scale 1 (receptance, value), 0.1 (key, gate), 0 (output); ln_x.weight = ((1+i)/L)^0.7.
inline void init_projections(init::builder& b, const std::string& p, std::int64_t layer, std::int64_t A) {
  const auto C = b.shape().n_embd;
  b.matrix(p + "receptance.weight", A, C, 1.0);
  b.matrix(p + "key.weight", A, C, 0.1);
  b.matrix(p + "value.weight", A, C, 1.0);
  b.matrix(p + "gate.weight", A, C, 0.1);
  b.matrix(p + "output.weight", C, A, 0.0);
  const double L = static_cast<double>(b.shape().n_layer);
  b.constant(p + "ln_x.weight", {A}, std::pow(static_cast<double>(1 + layer) / L, 0.7));
  b.constant(p + "ln_x.bias", {A}, 0.0);
}

inline void init_time_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, A = C, N = d.head_size, H = A / N;
  const double r01 = b.r01(layer), r1 = b.r1(layer);
  const std::vector<std::int64_t> vec{1, 1, C};
  const auto p = block_prefix(layer) + "att.";
  auto ddd = [&](std::int64_t c) { return static_cast<double>(c) / static_cast<double>(C); };
  b.fill(p + "time_mix_k", vec, [&](std::int64_t c) { return std::pow(ddd(c), r1); });
  b.fill(p + "time_mix_v", vec, [&](std::int64_t c) { return std::pow(ddd(c), r1) + 0.3 * r01; });
  b.fill(p + "time_mix_r", vec, [&](std::int64_t c) { return std::pow(ddd(c), 0.5 * r1); });
  b.fill(p + "time_mix_g", vec, [&](std::int64_t c) { return std::pow(ddd(c), 0.5 * r1); });
  b.fill(p + "time_decay", {H, N}, [&](std::int64_t n) {
    return -6 + 5 * std::pow(static_cast<double>(n) / static_cast<double>(A - 1), 0.7 + 1.3 * r01);
  });
  init_bonus(b, p + "time_faaaa", H, N, r01);
  init_projections(b, p, layer, A);
}

inline void init_channel_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  v4::init_channel_mix(b, layer, d.dim_ffn > 0 ? d.dim_ffn : (d.n_embd * 7 / 2) / 32 * 32);
}

}  // namespace rwkv::v5

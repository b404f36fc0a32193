#pragma once
// RWKV-6 weights from scratch, as the official training code initialises them (spec/v6.md "Initialization";
// matrices as RWKV-5.2). LoRA widths are the training code's 32 (token shift) and 64 (decay).

#include <cmath>
#include <cstdint>

#include "rwkv/init/builder.hpp"
#include "rwkv/v5/init.hpp"

namespace rwkv::v6 {

inline void init_time_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, A = C, N = d.head_size, H = A / N;
  constexpr std::int64_t d_mix = 32, d_decay = 64;
  const double r01 = b.r01(layer), r1 = b.r1(layer);
  const std::vector<std::int64_t> vec{1, 1, C};
  const auto p = block_prefix(layer) + "att.";
  auto ddd = [&](std::int64_t c) { return static_cast<double>(c) / static_cast<double>(C); };
  auto maa = [&](const char* name, double e, double shift) {
    b.fill(p + name, vec, [&, e, shift](std::int64_t c) { return 1.0 - (std::pow(ddd(c), e * r1) + shift); });
  };
  maa("time_maa_x", 1.0, 0.0);
  maa("time_maa_w", 1.0, 0.0);
  maa("time_maa_k", 1.0, 0.0);
  maa("time_maa_v", 1.0, 0.3 * r01);
  maa("time_maa_r", 0.5, 0.0);
  maa("time_maa_g", 0.5, 0.0);
  b.zeros(p + "time_maa_w1", {C, 5 * d_mix});
  b.uniform(p + "time_maa_w2", {5, d_mix, C}, -0.01, 0.01);
  b.fill(p + "time_decay", {1, 1, A}, [&](std::int64_t n) {
    return -6 + 5 * std::pow(static_cast<double>(n) / static_cast<double>(A - 1), 0.7 + 1.3 * r01);
  });
  b.zeros(p + "time_decay_w1", {C, d_decay});
  b.uniform(p + "time_decay_w2", {d_decay, A}, -0.01, 0.01);
  v5::init_bonus(b, p + "time_faaaa", H, N, r01);
  v5::init_projections(b, p, layer, A);
}

inline void init_channel_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, F = d.dim_ffn > 0 ? d.dim_ffn : (C * 7 / 2) / 32 * 32;
  const double r1 = b.r1(layer);
  const auto p = block_prefix(layer) + "ffn.";
  auto maa = [&](std::int64_t c) {
    return 1.0 - std::pow(static_cast<double>(c) / static_cast<double>(C), r1 * r1 * r1);
  };
  b.fill(p + "time_maa_k", {1, 1, C}, maa);
  b.fill(p + "time_maa_r", {1, 1, C}, maa);
  b.matrix(p + "key.weight", F, C, 1.0);
  b.matrix(p + "receptance.weight", C, C, 0.0);
  b.matrix(p + "value.weight", C, F, 0.0);
}

}  // namespace rwkv::v6

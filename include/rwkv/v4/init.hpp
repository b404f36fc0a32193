#pragma once
// RWKV-4 weights from scratch, as the official training code initialises them (spec/v4.md "Initialization").

#include <cmath>
#include <cstdint>

#include "rwkv/init/builder.hpp"

namespace rwkv::v4 {

inline void init_time_mix(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, A = C;
  const double r01 = b.r01(layer), r1 = b.r1(layer);
  const std::vector<std::int64_t> vec{1, 1, C};
  const auto p = block_prefix(layer) + "att.";
  auto ddd = [&](std::int64_t c) { return static_cast<double>(c) / static_cast<double>(C); };
  b.fill(p + "time_decay", {A}, [&](std::int64_t c) {
    return -5 + 8 * std::pow(static_cast<double>(c) / static_cast<double>(A - 1), 0.7 + 1.3 * r01);
  });
  b.fill(p + "time_first", {A},
         [](std::int64_t c) { return std::log(0.3) + 0.5 * static_cast<double>((c + 1) % 3 - 1); });
  b.fill(p + "time_mix_k", vec, [&](std::int64_t c) { return std::pow(ddd(c), r1); });
  b.fill(p + "time_mix_v", vec, [&](std::int64_t c) { return std::pow(ddd(c), r1) + 0.3 * r01; });
  b.fill(p + "time_mix_r", vec, [&](std::int64_t c) { return std::pow(ddd(c), 0.5 * r1); });
  b.matrix(p + "key.weight", A, C, 0.0);
  b.matrix(p + "value.weight", A, C, 1.0);
  b.matrix(p + "receptance.weight", A, C, 0.0);
  b.matrix(p + "output.weight", C, A, 0.0);
}

// The channel mixer of RWKV-4 (and 5.x): hidden width F (0: dims' dim_ffn, else 4C).
inline void init_channel_mix(init::builder& b, std::int64_t layer, std::int64_t F = 0) {
  const auto& d = b.shape();
  const auto C = d.n_embd;
  if (F <= 0) F = d.dim_ffn > 0 ? d.dim_ffn : 4 * C;
  const double r1 = b.r1(layer);
  const auto p = block_prefix(layer) + "ffn.";
  auto mix = [&](std::int64_t c) { return std::pow(static_cast<double>(c) / static_cast<double>(C), r1); };
  b.fill(p + "time_mix_k", {1, 1, C}, mix);
  b.fill(p + "time_mix_r", {1, 1, C}, mix);
  b.matrix(p + "key.weight", F, C, 1.0);
  b.matrix(p + "receptance.weight", C, C, 0.0);
  b.matrix(p + "value.weight", C, F, 0.0);
}

}  // namespace rwkv::v4

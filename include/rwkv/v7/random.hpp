#pragma once
// Deterministic random RWKV-7 checkpoints with official tensor names and shapes, for benchmarks and tests
// that need a model of a real size without a download. Magnitudes follow the official initialisation
// (spec/v7.md "Initialization") with noise so every path does work; these are not trained weights.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rwkv/core/half.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/v7/config.hpp"

namespace rwkv::v7 {

// Shape of a checkpoint to generate; LoRA ranks default to the 0.1B models' (64, 64, 32, 128).
struct random_spec {
  std::int64_t n_layer = 12, n_embd = 768, vocab = 65536, head_size = 64;
  std::int64_t d_decay = 64, d_iclr = 64, d_value = 32, d_gate = 128;
  std::uint64_t seed = 0;
};

template <class T = float>
std::vector<io::tensor_to_write> random_checkpoint(const random_spec& s) {
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const auto C = s.n_embd, L = s.n_layer, N = s.head_size, H = C / N, F = 4 * C;
  std::vector<io::tensor_to_write> out;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, auto&& value_at) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<T> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = from_float<T>(value_at(i));
    out.push_back(io::tensor_to_write::from<T>(name, std::move(shape), std::span<const T>(v)));
  };
  auto gaussian = [&](float scale) { return [&, scale](std::int64_t) { return scale * normal(rng); }; };
  auto constant = [](float c) { return [c](std::int64_t) { return c; }; };
  auto ramp = [&](float lo, float hi) {
    return [&, lo, hi](std::int64_t i) {
      const float t = static_cast<float>(i % C) / static_cast<float>(C - 1);
      return lo + (hi - lo) * t + 0.02f * normal(rng);
    };
  };
  const float inv_sqrt_c = 1.f / std::sqrt(static_cast<float>(C));
  const std::vector<std::int64_t> vec{1, 1, C};

  add("emb.weight", {s.vocab, C}, gaussian(0.5f));
  for (std::int64_t i = 0; i < L; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    add(p + "ln1.weight", {C}, constant(1.f));
    add(p + "ln1.bias", {C}, constant(0.f));
    add(p + "ln2.weight", {C}, constant(1.f));
    add(p + "ln2.bias", {C}, constant(0.f));
    if (i == 0) {
      add(p + "ln0.weight", {C}, constant(1.f));
      add(p + "ln0.bias", {C}, constant(0.f));
    }
    for (auto m : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) add(p + "att." + m, vec, ramp(0.1f, 0.9f));
    add(p + "att.w0", vec, ramp(-6.f, -0.5f));
    add(p + "att.w1", {C, s.d_decay}, gaussian(0.1f * inv_sqrt_c));
    add(p + "att.w2", {s.d_decay, C}, gaussian(0.1f));
    add(p + "att.a0", vec, ramp(-0.4f, 0.2f));
    add(p + "att.a1", {C, s.d_iclr}, gaussian(0.1f * inv_sqrt_c));
    add(p + "att.a2", {s.d_iclr, C}, gaussian(0.1f));
    if (i > 0) {
      add(p + "att.v0", vec, ramp(0.9f, 0.5f));
      add(p + "att.v1", {C, s.d_value}, gaussian(0.1f * inv_sqrt_c));
      add(p + "att.v2", {s.d_value, C}, gaussian(0.1f));
    }
    add(p + "att.g1", {C, s.d_gate}, gaussian(0.1f * inv_sqrt_c));
    add(p + "att.g2", {s.d_gate, C}, gaussian(0.1f));
    add(p + "att.k_k", vec, ramp(0.76f, 0.66f));
    add(p + "att.k_a", vec, constant(1.02f));
    add(p + "att.r_k", {H, N}, constant(-0.04f));
    for (auto m : {"receptance", "key", "value", "output"})
      add(p + "att." + m + ".weight", {C, C}, gaussian(inv_sqrt_c));
    add(p + "att.ln_x.weight", {C}, constant(std::pow(static_cast<float>(i + 1) / static_cast<float>(L), 0.7f)));
    add(p + "att.ln_x.bias", {C}, constant(0.f));
    add(p + "ffn.x_k", vec, ramp(0.2f, 0.9f));
    add(p + "ffn.key.weight", {F, C}, gaussian(inv_sqrt_c));
    add(p + "ffn.value.weight", {C, F}, gaussian(0.5f / std::sqrt(static_cast<float>(F))));
  }
  add("ln_out.weight", {C}, constant(1.f));
  add("ln_out.bias", {C}, constant(0.f));
  add("head.weight", {s.vocab, C}, gaussian(1.5f * inv_sqrt_c));
  return out;
}

}  // namespace rwkv::v7

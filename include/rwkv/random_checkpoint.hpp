#pragma once
// Deterministic random RWKV checkpoints (versions 4, 5.2, 6, 7) with official tensor names and shapes, for
// benchmarks and tests that need a model of a real size without a download (`rwkv-cli make-random`).
// Magnitudes follow the official initialisation ramps (spec/v*.md "Initialization") with noise so every path
// does work; decays span the ranges trained models use. These are not trained weights.

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv {

struct random_spec {
  std::string version = "7";  // "4", "5.2", "6" or "7"
  std::int64_t n_layer = 12, n_embd = 768, vocab = 65536, head_size = 64;
  std::uint64_t seed = 0;
};

// Tensors in the order the official training code saves them; T is the stored dtype (float, bf16, f16).
// `progress` (optional) is called after each layer with (layers done, layers).
template <class T = float>
std::vector<io::tensor_to_write> random_checkpoint(
    const random_spec& s, const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  const std::string& v = s.version;
  if (v != "4" && v != "5.2" && v != "6" && v != "7")
    throw error("make-random supports versions 4, 5.2, 6 and 7, not '" + v + "'");
  const auto C = s.n_embd, L = s.n_layer, N = s.head_size;
  if (C <= 0 || L <= 0 || s.vocab <= 0)
    throw error("invalid shape: n_embd, n_layer and vocab must be positive (got " + std::to_string(C) + ", " +
                std::to_string(L) + ", " + std::to_string(s.vocab) + ")");
  if (v != "4" && (N <= 0 || C % N != 0))
    throw error("invalid shape: n_embd " + std::to_string(C) + " is not a multiple of the head size " +
                std::to_string(N) + " (RWKV-" + v + " splits the channels into heads of head_size)");
  const auto H = v == "4" ? 0 : C / N;
  const auto F = (v == "4" || v == "7") ? 4 * C : (C * 7 / 2) / 32 * 32;
  auto rank = [&](double k) {
    return std::max<std::int64_t>(32, static_cast<std::int64_t>(std::llround(k * std::sqrt(double(C)) / 32)) * 32);
  };

  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<io::tensor_to_write> out;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, auto&& value_at) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<T> data(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) data[static_cast<std::size_t>(i)] = from_float<T>(value_at(i));
    out.push_back(io::tensor_to_write::from<T>(name, std::move(shape), std::span<const T>(data)));
  };
  auto gaussian = [&](float scale) { return [&, scale](std::int64_t) { return scale * normal(rng); }; };
  auto constant = [](float c) { return [c](std::int64_t) { return c; }; };
  auto ramp = [&](float lo, float hi) {  // along the channel, plus noise
    return [&, lo, hi](std::int64_t i) {
      const float t = static_cast<float>(i % C) / static_cast<float>(std::max<std::int64_t>(1, C - 1));
      return lo + (hi - lo) * t + 0.02f * normal(rng);
    };
  };
  auto mix = [&](float lo, float hi) {  // token-shift coefficients stay in [0, 1]
    return [&, lo, hi](std::int64_t i) { return std::clamp(ramp(lo, hi)(i), 0.f, 1.f); };
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
    const std::string a = p + "att.", f = p + "ffn.";
    auto linear = [&](const std::string& name, std::int64_t rows, std::int64_t cols, float gain = 1.f) {
      add(name, {rows, cols}, gaussian(gain / std::sqrt(static_cast<float>(cols))));
    };
    if (v == "7") {
      const auto dw = rank(2.5), da = rank(2.5), dv = rank(1.7), dg = rank(5.0);
      for (auto m : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) add(a + m, vec, mix(0.1f, 0.9f));
      add(a + "w0", vec, ramp(-6.f, -0.5f));
      add(a + "w1", {C, dw}, gaussian(0.1f * inv_sqrt_c));
      add(a + "w2", {dw, C}, gaussian(0.1f));
      add(a + "a0", vec, ramp(-0.4f, 0.2f));
      add(a + "a1", {C, da}, gaussian(0.1f * inv_sqrt_c));
      add(a + "a2", {da, C}, gaussian(0.1f));
      if (i > 0) {
        add(a + "v0", vec, ramp(0.9f, 0.5f));
        add(a + "v1", {C, dv}, gaussian(0.1f * inv_sqrt_c));
        add(a + "v2", {dv, C}, gaussian(0.1f));
      }
      add(a + "g1", {C, dg}, gaussian(0.1f * inv_sqrt_c));
      add(a + "g2", {dg, C}, gaussian(0.1f));
      add(a + "k_k", vec, ramp(0.76f, 0.66f));
      add(a + "k_a", vec, constant(1.02f));
      add(a + "r_k", {H, N}, constant(-0.04f));
      for (auto m : {"receptance", "key", "value", "output"}) linear(a + m + ".weight", C, C);
    } else if (v == "6") {
      const auto dmix = 32, ddecay = 64;
      for (auto m : {"time_maa_x", "time_maa_w", "time_maa_k", "time_maa_v", "time_maa_r", "time_maa_g"})
        add(a + m, vec, mix(0.1f, 0.9f));
      add(a + "time_maa_w1", {C, 5 * dmix}, gaussian(0.1f * inv_sqrt_c));
      add(a + "time_maa_w2", {5, dmix, C}, gaussian(0.1f));
      add(a + "time_decay", vec, ramp(-6.f, -0.5f));
      add(a + "time_decay_w1", {C, ddecay}, gaussian(0.1f * inv_sqrt_c));
      add(a + "time_decay_w2", {ddecay, C}, gaussian(0.1f));
      add(a + "time_faaaa", {H, N}, ramp(-0.5f, 0.5f));
      for (auto m : {"receptance", "key", "value", "output", "gate"}) linear(a + m + ".weight", C, C);
    } else if (v == "5.2") {
      for (auto m : {"time_mix_k", "time_mix_v", "time_mix_r", "time_mix_g"}) add(a + m, vec, mix(0.1f, 0.9f));
      add(a + "time_decay", {H, N}, ramp(-6.f, -0.5f));
      add(a + "time_faaaa", {H, N}, ramp(-0.5f, 0.5f));
      for (auto m : {"receptance", "key", "value", "output", "gate"}) linear(a + m + ".weight", C, C);
    } else {  // 4
      add(a + "time_decay", {C}, ramp(-6.9f, 0.2f));
      add(a + "time_first", {C}, ramp(-0.5f, 0.5f));
      for (auto m : {"time_mix_k", "time_mix_v", "time_mix_r"}) add(a + m, vec, mix(0.1f, 0.9f));
      for (auto m : {"key", "value", "receptance", "output"}) linear(a + m + ".weight", C, C);
    }
    if (v != "4") {
      add(a + "ln_x.weight", {C}, constant(std::pow(static_cast<float>(i + 1) / static_cast<float>(L), 0.7f)));
      add(a + "ln_x.bias", {C}, constant(0.f));
    }
    if (v == "7") {
      add(f + "x_k", vec, mix(0.2f, 0.9f));
    } else if (v == "6") {
      add(f + "time_maa_k", vec, mix(0.2f, 0.9f));
      add(f + "time_maa_r", vec, mix(0.2f, 0.9f));
    } else {
      add(f + "time_mix_k", vec, mix(0.2f, 0.9f));
      add(f + "time_mix_r", vec, mix(0.2f, 0.9f));
    }
    linear(f + "key.weight", F, C);
    if (v != "7") linear(f + "receptance.weight", C, C);
    linear(f + "value.weight", C, F, 0.5f);
    if (progress) progress(i + 1, L);
  }
  add("ln_out.weight", {C}, constant(1.f));
  add("ln_out.bias", {C}, constant(0.f));
  add("head.weight", {s.vocab, C}, gaussian(1.5f * inv_sqrt_c));
  return out;
}

}  // namespace rwkv

#pragma once
// Deterministic random RWKV checkpoints (versions 4, 5.2, 6, 7, 7a, 7b) with official tensor names and shapes, for
// benchmarks and tests that need a model of a real size without a download (`rwkv-cli make-random`).
// Magnitudes follow the official initialisation ramps (spec/v*.md "Initialization") with noise so every path
// does work; decays span the ranges trained models use. The RWKV-7a/7b tensors, which have no official
// initialisation, take the magnitudes of the golden test data (spec/v7-variants.md). These are not trained weights.
// A 0.1B RWKV-7b (12 x 768, vocab 65536) holds 1.8G values, mostly its token tables: save_random_checkpoint
// writes one tensor at a time.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv {

struct random_spec {
  std::string version = "7";  // "4", "5.2", "6", "7", "7a" or "7b"
  std::int64_t n_layer = 12, n_embd = 768, vocab = 65536, head_size = 64;
  std::uint64_t seed = 0;
};

// The tensors in the order the official training code saves them, each generated when its fill is called; T is
// the stored dtype (float, bf16, f16). The values come from one random stream: fill each once, in order (as
// io::save_safetensors does).
template <class T = float>
std::vector<io::tensor_source> random_checkpoint_sources(const random_spec& s) {
  const std::string v = s.version;
  if (v != "4" && v != "5.2" && v != "6" && v != "7" && v != "7a" && v != "7b")
    throw error("make-random supports versions 4, 5.2, 6, 7, 7a and 7b, not '" + v + "'");
  const bool v7 = v.starts_with("7"), deep_embed = v == "7a" || v == "7b", dea = v == "7b";
  const auto C = s.n_embd, L = s.n_layer, N = s.head_size;
  if (C <= 0 || L <= 0 || s.vocab <= 0)
    throw error("invalid shape: n_embd, n_layer and vocab must be positive (got " + std::to_string(C) + ", " +
                std::to_string(L) + ", " + std::to_string(s.vocab) + ")");
  if (v != "4" && (N <= 0 || C % N != 0))
    throw error("invalid shape: n_embd " + std::to_string(C) + " is not a multiple of the head size " +
                std::to_string(N) + " (RWKV-" + v + " splits the channels into heads of head_size)");
  const auto H = v == "4" ? 0 : C / N;
  const auto F = (v == "4" || v7) ? 4 * C : (C * 7 / 2) / 32 * 32;
  auto rank = [&](double k) {
    return std::max<std::int64_t>(32, static_cast<std::int64_t>(std::llround(k * std::sqrt(double(C)) / 32)) * 32);
  };

  struct stream {
    std::mt19937_64 rng;
    std::normal_distribution<float> normal{0.f, 1.f};
    float operator()() { return normal(rng); }
  };
  const auto random = std::make_shared<stream>(stream{std::mt19937_64(s.seed)});
  std::vector<io::tensor_source> out;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape,
                 std::function<float(std::int64_t)> value_at) {
    out.push_back({name, dtype_of<T>(), std::move(shape), [value_at](std::span<std::byte> bytes) {
                     const std::size_t n = bytes.size() / sizeof(T);
                     for (std::size_t i = 0; i < n; ++i) {
                       const T x = from_float<T>(value_at(static_cast<std::int64_t>(i)));
                       std::memcpy(bytes.data() + i * sizeof(T), &x, sizeof(T));
                     }
                   }});
  };
  auto gaussian = [&](float scale, float mean = 0.f) {
    return [random, scale, mean](std::int64_t) { return mean + scale * (*random)(); };
  };
  auto constant = [](float c) { return [c](std::int64_t) { return c; }; };
  auto ramp_over = [&](std::int64_t width, float lo, float hi) {  // along the channel, plus noise
    return [random, width, lo, hi](std::int64_t i) {
      const float t = static_cast<float>(i % width) / static_cast<float>(std::max<std::int64_t>(1, width - 1));
      return lo + (hi - lo) * t + 0.02f * (*random)();
    };
  };
  auto ramp = [&](float lo, float hi) { return ramp_over(C, lo, hi); };
  auto mix_over = [&](std::int64_t width, float lo, float hi) {  // token-shift coefficients stay in [0, 1]
    return [r = ramp_over(width, lo, hi)](std::int64_t i) { return std::clamp(r(i), 0.f, 1.f); };
  };
  auto mix = [&](float lo, float hi) { return mix_over(C, lo, hi); };
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
    if (v7) {
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
    if (v7) {
      add(f + "x_k", vec, mix(0.2f, 0.9f));
    } else if (v == "6") {
      add(f + "time_maa_k", vec, mix(0.2f, 0.9f));
      add(f + "time_maa_r", vec, mix(0.2f, 0.9f));
    } else {
      add(f + "time_mix_k", vec, mix(0.2f, 0.9f));
      add(f + "time_mix_r", vec, mix(0.2f, 0.9f));
    }
    linear(f + "key.weight", F, C);
    if (!v7) linear(f + "receptance.weight", C, C);
    linear(f + "value.weight", C, F, 0.5f);
    if (deep_embed) {  // DeepEmbed, rank 32 (tables of 32 x 32 per token)
      const std::int64_t r = 32;
      add(f + "s0", {1, 1, F}, gaussian(0.1f, 1.f));
      add(f + "s1", {C, r}, gaussian(inv_sqrt_c));
      add(f + "s2", {r, F}, gaussian(0.6f / std::sqrt(static_cast<float>(r))));
      add(f + "s_emb.weight", {s.vocab, r * r}, gaussian(0.06f));
      add(f + "s_emb_x.weight", {r * r, C}, gaussian(0.06f * inv_sqrt_c));
    }
    if (dea) {  // DeepEmbedAttention, query width 256, latent width 32
      const std::int64_t D = 256, R = 32;
      const std::string q = p + "qkv.";
      add(q + "x_q", {1, 1, D}, mix_over(D, 0.1f, 0.9f));
      add(q + "x_k", {1, 1, D}, mix_over(D, 0.1f, 0.9f));
      add(q + "x_v", vec, mix(0.1f, 0.9f));
      add(q + "qq.weight", {D, C}, gaussian(inv_sqrt_c));
      add(q + "k1", {C, R}, gaussian(inv_sqrt_c));
      add(q + "k2", {R, D}, gaussian(1.f / std::sqrt(static_cast<float>(R))));
      add(q + "k_emb.weight", {s.vocab, D}, gaussian(0.3f, 1.f));
      add(q + "k_emb_x.weight", {D, C}, gaussian(0.3f * inv_sqrt_c));
      add(q + "v1", {C, R}, gaussian(inv_sqrt_c));
      add(q + "v2", {R, C}, gaussian(1.f / std::sqrt(static_cast<float>(R))));
      add(q + "v_emb.weight", {s.vocab, C}, gaussian(0.3f, 1.f));
      add(q + "v_emb_x.weight", {C, C}, gaussian(0.3f * inv_sqrt_c));
      add(q + "lnq.weight", {D}, gaussian(0.15f, 1.5f));
      add(q + "lnq.bias", {D}, gaussian(0.3f));
      add(q + "lnk.weight", {D}, gaussian(0.15f, 1.5f));
      add(q + "lnk.bias", {D}, gaussian(0.3f));
      add(q + "lnv.weight", {C}, gaussian(0.1f, 0.4f));
      add(q + "lnv.bias", {C}, gaussian(0.05f));
    }
  }
  add("ln_out.weight", {C}, constant(1.f));
  add("ln_out.bias", {C}, constant(0.f));
  add("head.weight", {s.vocab, C}, gaussian(1.5f * inv_sqrt_c));
  return out;
}

// The same tensors in memory. `progress` (optional) is called after each tensor with (tensors done, tensors).
template <class T = float>
std::vector<io::tensor_to_write> random_checkpoint(
    const random_spec& s, const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  const auto sources = random_checkpoint_sources<T>(s);
  std::vector<io::tensor_to_write> out;
  for (const auto& t : sources) {
    io::tensor_to_write w{t.name, t.type, t.shape, std::vector<std::byte>(t.bytes())};
    t.fill(w.bytes);
    out.push_back(std::move(w));
    if (progress) progress(static_cast<std::int64_t>(out.size()), static_cast<std::int64_t>(sources.size()));
  }
  return out;
}

// Writes the checkpoint to `path` one tensor at a time (memory: the largest tensor). `progress` as for
// io::save_safetensors (bytes written, total).
template <class T = float>
void save_random_checkpoint(const std::filesystem::path& path, const random_spec& s,
                            std::map<std::string, std::string> metadata = {},
                            const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  metadata.emplace("format", "pt");
  metadata.emplace("rwkv_version", s.version);
  io::save_safetensors(path, random_checkpoint_sources<T>(s), metadata, progress);
}

}  // namespace rwkv

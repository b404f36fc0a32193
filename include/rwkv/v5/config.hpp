#pragma once
// RWKV-5 (5.0 / 5.1 / 5.2) model dimensions and sub-version, all derived from tensor names and shapes after
// scanning every key (spec/README.md §4, spec/v5.md (g)): nothing relies on metadata.
//   no att.gate.weight                        → 5.0
//   gate, att.time_decay one value per head   → 5.1
//   gate, att.time_decay (H, N) with N > 1    → 5.2
// The bonus is `time_first` (exp'd, log space) unless any key is named `time_faaaa` (then used raw, model-wide).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/tensor.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv::v5 {

struct Config {
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, n_head = 0, head_size = 0, vocab = 0, dim_ffn = 0;
  arch_version version = arch_version::v5_2;  // v5_0, v5_1 or v5_2
  bool gate = false;                          // att.gate.weight / att.time_mix_g present (5.1, 5.2)
  bool decay_per_channel = false;             // att.time_decay is (H, N) (5.2) rather than (H) (5.0, 5.1)
  bool bonus_raw = false;                     // some key is `time_faaaa`: the bonus is used raw, not exp'd

  friend bool operator==(const Config&, const Config&) = default;

  // "5.0", "5.1" or "5.2".
  const char* version_string() const noexcept { return version_name(version); }

  // A whole RWKV-5 model: refuses checkpoints of other generations; the sub-version and the bonus form are
  // model-wide (any key decides, spec/v5.md (g)); dimensions from block 0.
  static Config from(const io::weight_reader& r) {
    auto contains = [](std::string_view name, std::string_view part) {
      return name.find(part) != std::string_view::npos;
    };
    bool ln_x = false, gate = false, bonus_raw = false;
    std::string foreign;  // a key of another generation
    for (const auto& name : r.names()) {
      if (contains(name, "att.r_k") || contains(name, "att.k_k") || contains(name, "att.x_r") ||
          contains(name, "att.w0"))
        foreign = "RWKV-7 (" + name + ")";
      else if (contains(name, "time_maa") && foreign.empty())
        foreign = "RWKV-6 (" + name + ")";
      ln_x |= contains(name, "ln_x");
      gate |= contains(name, "gate.weight");
      bonus_raw |= contains(name, ".time_faaaa");
    }
    ModelConfig::from(r);
    if (!foreign.empty()) r.fail("this is an " + foreign + " checkpoint, not RWKV-5");
    if (!ln_x) r.fail("no 'att.ln_x' tensors: an RWKV-4 checkpoint, not RWKV-5", "blocks.0.att.ln_x.weight");
    return layer_dims(r, 0, gate, bonus_raw);
  }

  // Block `layer` alone (blocks of a composed model may differ): the gate and the bonus form from its own keys.
  static Config for_layer(const io::weight_reader& r, std::int64_t layer) {
    const auto p = block_prefix(layer);
    return layer_dims(r, layer, r.has(p + "att.gate.weight"), r.has(p + "att.time_faaaa"));
  }

 private:
  static Config layer_dims(const io::weight_reader& r, std::int64_t layer, bool gate, bool bonus_raw) {
    auto c = with_model_dims<Config>(r);
    c.gate = gate;
    c.bonus_raw = bonus_raw;
    const auto p = block_prefix(layer);
    c.dim_att = dim0(r, p + "att.key.weight");
    c.dim_ffn = r.has(p + "ffn.key.weight") ? dim0(r, p + "ffn.key.weight") : 0;  // 0: another channel mixer
    const std::string decay = p + "att.time_decay";
    const auto& d = r.peek(decay);
    if (d.shape.empty() || d.shape[0] <= 0)
      r.fail("expected time_decay of shape [n_head] or [n_head, head_size], got " + shape_string(d.shape), decay);
    c.n_head = d.shape[0];
    if (c.dim_att % c.n_head != 0)
      r.fail("time_decay shape " + shape_string(d.shape) + " does not divide dim_att " + std::to_string(c.dim_att) +
                 " into heads",
             decay);
    c.head_size = c.dim_att / c.n_head;
    // Per head: (H) or (H, 1); per channel: (H, N) with N > 1 (the reference's test, spec/README.md §4).
    c.decay_per_channel = d.shape.size() >= 2 && d.shape[1] > 1;
    if (c.decay_per_channel && (d.shape.size() != 2 || d.shape[1] != c.head_size))
      r.fail("expected time_decay of shape [" + std::to_string(c.n_head) + ", " + std::to_string(c.head_size) +
                 "], got " + shape_string(d.shape),
             decay);
    if (!c.gate)
      c.version = arch_version::v5_0;
    else
      c.version = c.decay_per_channel ? arch_version::v5_2 : arch_version::v5_1;
    return c;
  }

  static std::int64_t dim0(const io::weight_reader& r, const std::string& name) {
    const auto& t = r.peek(name);
    if (t.shape.size() != 2) r.fail("expected a 2-D tensor, got " + shape_string(t.shape), name);
    return t.shape[0];
  }
};

namespace detail {

// Reads a 3-D tensor (d0, d1, d2), row-major, as floats with the reader's checks (dtype, finite values).
inline std::vector<float> read_3d(io::weight_reader& r, const std::string& name, std::int64_t d0, std::int64_t d1,
                                  std::int64_t d2) {
  return r.dense(name, {d0, d1, d2});
}

// The optional state-tuned initial WKV state `att.time_state` (H, N, N) stored [h][value][key], returned in
// the [h][key][value] layout of the RWKV-5/6 state (spec/v5.md (a)); zeros when the tensor is absent.
inline std::vector<float> initial_wkv(io::weight_reader& r, const std::string& prefix, std::int64_t H, std::int64_t N) {
  std::vector<float> out(static_cast<std::size_t>(H * N * N), 0.f);
  const std::string name = prefix + "time_state";
  if (!r.has(name)) return out;
  const auto vk = read_3d(r, name, H, N, N);
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t i = 0; i < N; ++i)    // value
      for (std::int64_t j = 0; j < N; ++j)  // key
        out[static_cast<std::size_t>((h * N + j) * N + i)] = vk[static_cast<std::size_t>((h * N + i) * N + j)];
  return out;
}

}  // namespace detail

}  // namespace rwkv::v5

#pragma once
// RWKV-6 ("Finch") model dimensions, all derived from tensor shapes (spec/README.md §4, spec/v6.md (a), (g)):
// nothing relies on metadata.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "rwkv/core/tensor.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv::v6 {

struct Config {
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, n_head = 0, head_size = 0, vocab = 0, dim_ffn = 0;
  std::int64_t d_mix = 0, d_decay = 0;  // LoRA ranks: token-shift (time_maa_w1 is [C, 5·d_mix]) and decay

  friend bool operator==(const Config&, const Config&) = default;

  // A whole RWKV-6 model: refuses checkpoints of other generations, then the dimensions of block 0.
  static Config from(const io::weight_reader& r) {
    auto contains = [](std::string_view name, std::string_view part) {
      return name.find(part) != std::string_view::npos;
    };
    bool maa = false;
    for (const auto& name : r.names()) {
      if (contains(name, "att.r_k") || contains(name, "att.k_k") || contains(name, "att.x_r") ||
          contains(name, "att.w0"))
        r.fail("this is an RWKV-7 checkpoint, not RWKV-6", name);
      maa |= contains(name, "time_maa");
    }
    ModelConfig::from(r);
    if (!maa) r.fail("no 'time_maa' tensors: not an RWKV-6 checkpoint", "blocks.0.att.time_maa_x");
    return for_layer(r, 0);
  }

  // The dimensions of block `layer` alone (blocks of a composed model may differ).
  static Config for_layer(const io::weight_reader& r, std::int64_t layer) {
    auto c = with_model_dims<Config>(r);
    const auto p = block_prefix(layer);
    c.dim_att = dim(r, p + "att.key.weight", 0);
    c.dim_ffn = r.has(p + "ffn.key.weight") ? dim(r, p + "ffn.key.weight", 0) : 0;  // 0: another channel mixer
    const std::string faaaa = p + "att.time_faaaa";
    const auto& u = r.peek(faaaa);
    if (u.shape.size() != 2 || u.shape[0] <= 0)
      r.fail("expected time_faaaa of shape [n_head, head_size], got " + shape_string(u.shape), faaaa);
    c.n_head = u.shape[0];
    c.head_size = u.shape[1];
    if (c.n_head * c.head_size != c.dim_att)
      r.fail("time_faaaa shape " + shape_string(u.shape) + " does not match dim_att " + std::to_string(c.dim_att),
             faaaa);
    const auto w1 = p + "att.time_maa_w1";
    const auto mix = dim(r, w1, 1);
    if (mix % 5 != 0)
      r.fail(
          "expected time_maa_w1 of shape [n_embd, 5·D] (LoRA for w, k, v, r, g), got " + shape_string(r.peek(w1).shape),
          w1);
    c.d_mix = mix / 5;
    c.d_decay = dim(r, p + "att.time_decay_w1", 1);
    return c;
  }

 private:
  static std::int64_t dim(const io::weight_reader& r, const std::string& name, int which) {
    const auto& t = r.peek(name);
    if (t.shape.size() != 2) r.fail("expected a 2-D tensor, got " + shape_string(t.shape), name);
    return t.shape[static_cast<std::size_t>(which)];
  }
};

}  // namespace rwkv::v6

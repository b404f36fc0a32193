#pragma once
// RWKV-7 model dimensions, all derived from tensor shapes (spec/README.md §4): nothing relies on metadata.

#include <cstdint>
#include <string>

#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv::v7 {

struct Config {
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, n_head = 0, head_size = 0, vocab = 0, dim_ffn = 0;
  std::int64_t d_decay = 0, d_iclr = 0, d_value = 0, d_gate = 0;  // LoRA ranks (w, a, v, g)

  friend bool operator==(const Config&, const Config&) = default;

  // A whole RWKV-7 model: dimensions of block 0; the value LoRA rank from block 1 (block 0 has none in use).
  static Config from(const io::weight_reader& r) {
    Config c = for_layer(r, 0);
    c.d_value = c.n_layer > 1 ? dim1(r, "blocks.1.att.v1") : 0;
    return c;
  }

  // The dimensions of block `layer` alone (blocks of a composed model may differ). d_value is 0 when the block
  // has no value LoRA (v1).
  static Config for_layer(const io::weight_reader& r, std::int64_t layer) {
    auto c = with_model_dims<Config>(r);
    const auto p = block_prefix(layer);
    const auto rk_name = p + "att.r_k";
    const auto& rk = r.peek(rk_name);
    if (rk.shape.size() == 2) {
      c.n_head = rk.shape[0];
      c.head_size = rk.shape[1];
    } else {
      r.fail("expected r_k of shape [n_head, head_size], got " + shape_string(rk.shape), rk_name);
    }
    c.dim_att = dim0(r, p + "att.key.weight");
    c.dim_ffn = r.has(p + "ffn.key.weight") ? dim0(r, p + "ffn.key.weight") : 0;  // 0: another channel mixer
    if (c.n_head * c.head_size != c.dim_att)
      r.fail("r_k shape " + shape_string(rk.shape) + " does not match dim_att " + std::to_string(c.dim_att), rk_name);
    if (c.dim_att != c.n_embd)
      r.fail("dim_att " + std::to_string(c.dim_att) + " != n_embd " + std::to_string(c.n_embd) + " is not supported",
             p + "att.key.weight");
    c.d_decay = dim1(r, p + "att.w1");
    c.d_iclr = dim1(r, p + "att.a1");
    c.d_gate = dim1(r, p + "att.g1");
    c.d_value = r.has(p + "att.v1") ? dim1(r, p + "att.v1") : 0;
    return c;
  }

 private:
  static std::int64_t dim0(const io::weight_reader& r, const std::string& name) {
    const auto& t = r.peek(name);
    if (t.shape.size() != 2) r.fail("expected a 2-D tensor, got " + shape_string(t.shape), name);
    return t.shape[0];
  }
  static std::int64_t dim1(const io::weight_reader& r, const std::string& name) {
    const auto& t = r.peek(name);
    if (t.shape.size() != 2) r.fail("expected a 2-D LoRA factor [in, rank], got " + shape_string(t.shape), name);
    return t.shape[1];
  }
};

}  // namespace rwkv::v7

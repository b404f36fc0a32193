#pragma once
// RWKV-7 model dimensions, all derived from tensor shapes (spec/README.md §4): nothing relies on metadata.

#include <cstdint>
#include <string>

#include "rwkv/io/weight_reader.hpp"

namespace rwkv::v7 {

struct Config {
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, n_head = 0, head_size = 0, vocab = 0, dim_ffn = 0;
  std::int64_t d_decay = 0, d_iclr = 0, d_value = 0, d_gate = 0;  // LoRA ranks (w, a, v, g)

  friend bool operator==(const Config&, const Config&) = default;

  static Config from(const io::weight_reader& r) {
    Config c;
    const auto& emb = r.peek("emb.weight");
    if (emb.shape.size() != 2)
      r.fail("expected a 2-D embedding [vocab, n_embd], got " + shape_string(emb.shape), "emb.weight");
    c.vocab = emb.shape[0];
    c.n_embd = emb.shape[1];
    for (const auto& name : r.names()) {
      if (name.rfind("blocks.", 0) != 0) continue;
      const auto dot = name.find('.', 7);
      const auto idx = name.substr(7, dot == std::string::npos ? std::string::npos : dot - 7);
      if (idx.empty() || idx.size() > 6 || idx.find_first_not_of("0123456789") != std::string::npos)
        r.fail("malformed block index in tensor name", name);
      c.n_layer = std::max<std::int64_t>(c.n_layer, std::stoll(idx) + 1);
    }
    if (c.n_layer == 0) r.fail("no 'blocks.N.*' tensors: not an RWKV checkpoint");
    const auto& rk = r.peek("blocks.0.att.r_k");
    if (rk.shape.size() == 2) {
      c.n_head = rk.shape[0];
      c.head_size = rk.shape[1];
    } else {
      r.fail("expected r_k of shape [n_head, head_size], got " + shape_string(rk.shape), "blocks.0.att.r_k");
    }
    c.dim_att = dim0(r, "blocks.0.att.key.weight");
    c.dim_ffn = dim0(r, "blocks.0.ffn.key.weight");
    if (c.n_head * c.head_size != c.dim_att)
      r.fail("r_k shape " + shape_string(rk.shape) + " does not match dim_att " + std::to_string(c.dim_att),
             "blocks.0.att.r_k");
    if (c.dim_att != c.n_embd)
      r.fail("dim_att " + std::to_string(c.dim_att) + " != n_embd " + std::to_string(c.n_embd) + " is not supported",
             "blocks.0.att.key.weight");
    c.d_decay = dim1(r, "blocks.0.att.w1");
    c.d_iclr = dim1(r, "blocks.0.att.a1");
    c.d_gate = dim1(r, "blocks.0.att.g1");
    if (c.n_layer > 1) c.d_value = dim1(r, "blocks.1.att.v1");
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

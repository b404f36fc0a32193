#pragma once
// RWKV-4 model dimensions, all derived from tensor shapes (spec/README.md §4, spec/v4.md (a)): nothing relies
// on metadata.

#include <cstdint>
#include <string>

#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv::v4 {

struct Config {
  // dim_att (A) is the width of the WKV (rows of att.key.weight); it equals n_embd (C) in released models but is
  // kept separate, as the spec asks. dim_ffn (F) is the channel-mix hidden width (4C in released models).
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, vocab = 0, dim_ffn = 0;

  friend bool operator==(const Config&, const Config&) = default;

  // A whole RWKV-4 model (dimensions of block 0).
  static Config from(const io::weight_reader& r) { return for_layer(r, 0); }

  // The dimensions of block `layer` alone (blocks of a composed model may differ).
  static Config for_layer(const io::weight_reader& r, std::int64_t layer) {
    auto c = with_model_dims<Config>(r);
    const auto p = block_prefix(layer);
    c.dim_att = dim0(r, p + "att.key.weight");
    c.dim_ffn = r.has(p + "ffn.key.weight") ? dim0(r, p + "ffn.key.weight") : 0;  // 0: another channel mixer
    return c;
  }

 private:
  static std::int64_t dim0(const io::weight_reader& r, const std::string& name) {
    const auto& t = r.peek(name);
    if (t.shape.size() != 2) r.fail("expected a 2-D tensor, got " + shape_string(t.shape), name);
    return t.shape[0];
  }
};

}  // namespace rwkv::v4

#pragma once
// RWKV-4 model dimensions, all derived from tensor shapes (spec/README.md §4, spec/v4.md (a)): nothing relies
// on metadata.

#include <algorithm>
#include <cstdint>
#include <string>

#include "rwkv/io/weight_reader.hpp"

namespace rwkv::v4 {

struct Config {
  // dim_att (A) is the width of the WKV (rows of att.key.weight); it equals n_embd (C) in released models but is
  // kept separate, as the spec asks. dim_ffn (F) is the channel-mix hidden width (4C in released models).
  std::int64_t n_layer = 0, n_embd = 0, dim_att = 0, vocab = 0, dim_ffn = 0;

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
    c.dim_att = dim0(r, "blocks.0.att.key.weight");
    c.dim_ffn = dim0(r, "blocks.0.ffn.key.weight");
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

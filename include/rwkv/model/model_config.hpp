#pragma once
// The dimensions every RWKV model shares, whatever its blocks: vocabulary, width and depth, read from tensor
// shapes and names (spec/README.md §4). Version configs add what their own blocks need.

#include <algorithm>
#include <cstdint>
#include <string>

#include "rwkv/core/tensor.hpp"
#include "rwkv/io/weight_reader.hpp"

namespace rwkv {

struct ModelConfig {
  std::int64_t n_layer = 0, n_embd = 0, vocab = 0;

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;

  static ModelConfig from(const io::weight_reader& r) {
    ModelConfig c;
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
    return c;
  }
};

// A version config with the shared dimensions filled in (Config has n_layer, n_embd and vocab).
template <class Config>
Config with_model_dims(const io::weight_reader& r) {
  const auto m = ModelConfig::from(r);
  Config c;
  c.n_layer = m.n_layer;
  c.n_embd = m.n_embd;
  c.vocab = m.vocab;
  return c;
}

namespace detail {
// The channel mixer's hidden width: the config's dim_ffn where it has one, else rows of the key matrix.
template <class Config>
std::int64_t ffn_width(const io::weight_reader& r, const Config& c, const std::string& key) {
  if constexpr (requires { c.dim_ffn; }) {
    return c.dim_ffn;
  } else {
    const auto& t = r.peek(key);
    if (t.shape.size() != 2) r.fail("expected a 2-D tensor, got " + shape_string(t.shape), key);
    return t.shape[0];
  }
}
}  // namespace detail

// "blocks.<layer>." — the prefix of every tensor of one block.
inline std::string block_prefix(std::int64_t layer) { return "blocks." + std::to_string(layer) + "."; }

}  // namespace rwkv

#pragma once
// RWKV-7a's DeepEmbed channel mixing (spec/v7-variants.md, Part A): RWKV-7's channel mix whose hidden vector is
// scaled channel-wise by a factor that depends on the current input token τ and on the mixer's input x:
//   h   = relu(W_k · (x + (prev − x)·μ_k))²                                 (F)     as RWKV-7
//   u   = x · s1                                                             (r)     x itself, not the shifted x_k
//   M   = reshape(E_s[τ] + X_s · emb'[τ], r × r), row-major                 the merged table row of token τ
//   out = W_v · (h ⊙ ((u · M) · s2 + s0))
// with emb'[τ] = ln0(emb[τ]), the model's input embedding (read from the context). The reference merges the
// table E'_s = E_s + emb'·X_sᵀ at load; this mixer merges the one row each token needs at run time instead
// (r²·C multiply-adds per layer and token, one matrix product over the rows of a call), so the V x r² table is
// read one row per token from wherever the weights live: with a safetensors file in the weight precision it stays
// mapped from the file and is never resident as a whole. The rank r is read from s1 and must be 32 (the only rank
// the references run).

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/channel_mix.hpp"
#include "rwkv/model/model_config.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/v7/init.hpp"

namespace rwkv::v7a {

// The DeepEmbed rank the references hard-code (table rows are r x r = 1024 values).
inline constexpr std::int64_t deep_embed_rank = 32;

// DeepEmbed's tensors of block `layer` (no official initialisation exists: these are the magnitudes of the golden
// test data, spec/v7-variants.md "Initialization"), after RWKV-7's channel-mix tensors.
inline void init_deep_embed(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, F = d.dim_ffn > 0 ? d.dim_ffn : 4 * C, r = deep_embed_rank;
  const auto p = block_prefix(layer) + "ffn.";
  const double Cd = static_cast<double>(C);
  b.normal(p + "s0", {1, 1, F}, 1.0, 0.1);
  b.normal(p + "s1", {C, r}, 0.0, 1.0 / std::sqrt(Cd));
  b.normal(p + "s2", {r, F}, 0.0, 0.6 / std::sqrt(static_cast<double>(r)));
  b.normal(p + "s_emb.weight", {d.vocab, r * r}, 0.0, 0.06);
  b.normal(p + "s_emb_x.weight", {r * r, C}, 0.0, 0.06 / std::sqrt(Cd));
}

template <Precision P = f32, Backend B = cpu<>>
class ChannelMix : public row_mixer<ChannelMix<P, B>, ShiftState> {
  friend row_mixer<ChannelMix, ShiftState>;

 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = ShiftState;

  static void init(init::builder& b, std::int64_t layer) {
    v7::init_channel_mix(b, layer);
    init_deep_embed(b, layer);
  }

  // Whether block `layer` of a checkpoint has a DeepEmbed channel mixer.
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return r.has(block_prefix(layer) + "ffn.s_emb.weight");
  }

  ChannelMix() = default;

  // Any config with n_embd and vocab (and dim_ffn, else the width is read from ffn.key.weight).
  template <class AnyConfig>
  ChannelMix(io::weight_reader& r, const AnyConfig& c, std::int64_t layer) : n_embd_(c.n_embd), layer_(layer) {
    const std::string p = block_prefix(layer) + "ffn.";
    const std::int64_t C = c.n_embd, F = rwkv::detail::ffn_width(r, c, p + "key.weight");
    for (const char* n : {"s0", "s1", "s2", "s_emb.weight", "s_emb_x.weight"})
      if (!r.has(p + n))
        r.fail(
            "missing tensor: an RWKV-7a (DeepEmbed) channel mix has ffn.s0, s1, s2, s_emb.weight and s_emb_x.weight "
            "in every layer",
            p + n);
    const auto& s1 = r.peek(p + "s1");
    if (s1.shape.size() != 2 || s1.shape[0] != C)
      r.fail("expected a DeepEmbed factor of shape [" + std::to_string(C) + ", rank], got " + shape_string(s1.shape),
             p + "s1");
    rank_ = s1.shape[1];
    if (rank_ != deep_embed_rank)
      r.fail("DeepEmbed rank " + std::to_string(rank_) + " is not supported: the references run only rank 32 " +
                 "(tables of 32 x 32 per token)",
             p + "s1");
    const std::int64_t width = rank_ * rank_;
    mix_k_ = r.vector(p + "x_k", C);
    key_ = r.weight<weight_type>(p + "key.weight", F, C);
    value_ = r.weight<weight_type>(p + "value.weight", C, F);
    s0_ = r.vector(p + "s0", F);
    s1_ = r.dense(p + "s1", C, rank_);
    s2_ = r.dense(p + "s2", rank_, F);
    table_ = r.weight<weight_type>(p + "s_emb.weight", c.vocab, width);
    table_x_ = r.weight<weight_type>(p + "s_emb_x.weight", width, C);
  }

  state_type make_state() const { return {std::vector<float>(static_cast<std::size_t>(n_embd_), 0.f)}; }

  std::int64_t rank() const noexcept { return rank_; }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows(), F = key_.rows(), r = rank_, width = r * r;
    if (!ctx.has_inputs() || ctx.embedded().rows() != T || static_cast<Eigen::Index>(ctx.tokens().size()) != T)
      throw error("RWKV-7a channel mix, layer " + std::to_string(layer_) +
                  ": the context does not hold this call's tokens and embeddings (DeepEmbed reads the input token "
                  "of every row; run it inside a language model, or call context::set_inputs)");
    const row_matrix& embedded = ctx.embedded();
    row_matrix& xk = ctx.scratch(T, n_embd_);
    row_matrix& hidden = ctx.scratch(T, F);
    row_matrix& u = ctx.scratch(T, r);
    row_matrix& merged = ctx.scratch(T, width);
    O::shift(x, rows, &state_type::shift, lerp::previous, {{mix_k_, xk}});
    O::products(ctx, O::linear(key_, xk, hidden), O::lora(s1_, n_embd_, r, x, u),
                O::linear(table_x_, embedded, merged));

    // g = u · (E_s[τ] + X_s·emb'[τ]) reshaped r x r, per row.
    row_matrix& table_row = ctx.scratch(1, width);
    row_matrix& g = ctx.scratch(T, r);
    for (Eigen::Index t = 0; t < T; ++t) {
      kernel::cpu::detail::widen_rows(table_, ctx.tokens()[static_cast<std::size_t>(t)], 1, table_row.data());
      const float *m = merged.row(t).data(), *e = table_row.data(), *ut = u.row(t).data();
      float* gt = g.row(t).data();
      for (std::int64_t q = 0; q < r; ++q) gt[q] = 0.f;
      for (std::int64_t p = 0; p < r; ++p)
        for (std::int64_t q = 0; q < r; ++q) gt[q] += ut[p] * (e[p * r + q] + m[p * r + q]);
    }
    row_matrix& factor = ctx.scratch(T, F);
    O::products(ctx, O::lora(s2_, r, F, g, factor));
    O::zip_channels(factor, s0_, [](float f, float s0) { return f + s0; });
    O::map(hidden, [](float h) { return math::relu_square(h); });
    O::zip(hidden, factor, [](float h, float f) { return h * f; });
    O::products(ctx, O::linear(value_, hidden, out));
    rows.store_last(x, &state_type::shift);
  }

  std::int64_t n_embd_ = 0, layer_ = 0, rank_ = deep_embed_rank;
  std::vector<float> mix_k_, s0_, s1_, s2_;
  matrix<weight_type> key_, value_, table_, table_x_;
};

}  // namespace rwkv::v7a

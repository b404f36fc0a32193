#pragma once
// RWKV-7a trainable: RWKV-7's time mix with the DeepEmbed channel mix (spec/v7-variants.md Part A), forward and
// backward. With x' = ln2(residual), τ the input token of the row and emb' its ln0 embedding:
//   h = relu(W_k·lerp(x', prev, μ_k))²     u = x'·s1     M = E_s[τ] + X_s·emb' (r x r)     f = (u·M)·s2 + s0
//   residual += W_v·(h ⊙ f)
// The gradient reaches the table row E_s[τ], X_s, and through emb' the embedding and ln0 (segment_context's
// d_embedded, which the network adds before ln0's backward). There is no official training code for 7a: the
// backward is checked against finite differences of the loss (check_gradients) and its step and sequence forms
// against each other.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/train/block.hpp"
#include "rwkv/train/channel_mix.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"
#include "rwkv/train/v7.hpp"

namespace rwkv::train {

class deep_embed_channel_mix {
 public:
  // block: "blocks.<i>."; ln2 and ffn.* are read from it (spec: its mix form and key-mix name, RWKV-7's).
  deep_embed_channel_mix(parameter_set& ps, const std::string& block, std::int64_t C, std::int64_t F,
                         channel_mix_spec spec)
      : C_(C) {
    ln2_w_ = &ps.get(block + "ln2.weight", 1, C), ln2_b_ = &ps.get(block + "ln2.bias", 1, C);
    const auto p = block + "ffn.";
    mu_k_ = &ps.get(p + spec.mix_k, 1, C);
    W_k_ = &ps.get(p + "key.weight", F, C), W_v_ = &ps.get(p + "value.weight", C, F);
    const auto V = ps.get_any("emb.weight").value.rows();
    const std::int64_t r = ps.get_any(p + "s1").value.cols();
    if (r != 32)
      throw error("DeepEmbed rank " + std::to_string(r) + " is not supported (the references run rank 32)", {},
                  p + "s1");
    r_ = r;
    s0_ = &ps.get(p + "s0", 1, F), s1_ = &ps.get(p + "s1", C, r), s2_ = &ps.get(p + "s2", r, F);
    table_ = &ps.get(p + "s_emb.weight", V, r * r), table_x_ = &ps.get(p + "s_emb_x.weight", r * r, C);
  }

  struct tape {
    norm_record ln2;
    std::vector<std::int32_t> tokens;
    row_matrix x, prev, xk, pre, kk, u, m, g, f, h;
  };

  void forward(row_matrix& residual, std::vector<float>& shift, tape& tp, segment_context& seg) const {
    const auto T = residual.rows();
    if (static_cast<Eigen::Index>(seg.tokens.size()) != T || seg.embedded.rows() != T)
      throw error("RWKV-7a channel mix: the segment does not carry its tokens and embeddings");
    tp.tokens.assign(seg.tokens.begin(), seg.tokens.end());
    norm_forward(residual, *ln2_w_, *ln2_b_, C_, layer_norm_eps, tp.x, tp.ln2);
    tp.prev = shifted(tp.x, shift);
    mix_forward(tp.x, tp.prev, *mu_k_, tp.xk);
    linear_forward(tp.xk, *W_k_, tp.pre, seg.pool);
    tp.kk = tp.pre.array().max(0.f).square();
    product(seg.pool, tp.u, tp.x, s1_->value);
    linear_forward(seg.embedded, *table_x_, tp.m, seg.pool);
    tp.g.resize(T, r_);
    for (Eigen::Index t = 0; t < T; ++t) {
      tp.m.row(t) += table_->value.row(tp.tokens[static_cast<std::size_t>(t)]);
      tp.g.row(t).noalias() = tp.u.row(t) * table_row(tp.m, t);
    }
    product(seg.pool, tp.f, tp.g, s2_->value);
    tp.f.rowwise() += s0_->value.row(0);
    tp.h = tp.kk.cwiseProduct(tp.f);
    row_matrix out;
    linear_forward(tp.h, *W_v_, out, seg.pool);
    residual += out;
    Eigen::Map<row_vector>(shift.data(), C_) = tp.x.row(T - 1);
  }

  void backward(row_matrix& dout, std::vector<float>& dshift, const tape& tp, segment_context& seg) {
    const auto T = dout.rows(), F = W_k_->value.rows();
    row_matrix dh = row_matrix::Zero(T, F);
    linear_backward(dout, tp.h, *W_v_, dh, seg.pool);
    const row_matrix dkk = dh.cwiseProduct(tp.f), df = dh.cwiseProduct(tp.kk);
    s0_->grad.row(0) += df.colwise().sum();
    row_matrix dg = row_matrix::Zero(T, r_);
    lora_backward(df, tp.g, *s2_, dg, seg.pool);
    // g = u·M: du = dg·Mᵀ, dM = uᵀ·dg, the merged row's gradient, shared by the table row, X_s and emb'.
    row_matrix du(T, r_), dm(T, r_ * r_);
    for (Eigen::Index t = 0; t < T; ++t) {
      du.row(t).noalias() = dg.row(t) * table_row(tp.m, t).transpose();
      Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(dm.row(t).data(), r_, r_)
          .noalias() = tp.u.row(t).transpose() * dg.row(t);
      table_->grad.row(tp.tokens[static_cast<std::size_t>(t)]) += dm.row(t);
    }
    product(seg.pool, table_x_->grad, dm.transpose(), seg.embedded, true);
    if (seg.d_embedded.rows() != T) seg.d_embedded = row_matrix::Zero(T, C_);
    product(seg.pool, seg.d_embedded, dm, table_x_->value, true);
    row_matrix dx = row_matrix::Zero(T, C_), dprev = row_matrix::Zero(T, C_), dxk = row_matrix::Zero(T, C_), dln;
    lora_backward(du, tp.x, *s1_, dx, seg.pool);
    const row_matrix dpre = 2.f * dkk.array() * tp.pre.array().max(0.f);
    linear_backward(dpre, tp.xk, *W_k_, dxk, seg.pool);
    mix_backward(dxk, tp.x, tp.prev, *mu_k_, dx, dprev);
    state_shift_backward(dprev, dx, dshift);
    norm_backward(dx, tp.ln2, *ln2_w_, *ln2_b_, C_, dln);
    dout += dln;
  }

 private:
  // Row t of the merged table rows as the r x r matrix M (row-major: M[p][q] = m[r·p + q]).
  using square_map = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  square_map table_row(const row_matrix& m, Eigen::Index t) const { return square_map(m.row(t).data(), r_, r_); }

  std::int64_t C_, r_ = 32;
  parameter *ln2_w_, *ln2_b_, *mu_k_, *W_k_, *W_v_, *s0_, *s1_, *s2_, *table_, *table_x_;
};

namespace v7a {

// RWKV-7's time mix, as the time mixer of a 7a block (its state files are tagged "7a").
struct time_mix : v7::time_mix {
  using v7::time_mix::time_mix;
  static constexpr const char* version = "7a";
};

using layer = block<time_mix, deep_embed_channel_mix>;

}  // namespace v7a
}  // namespace rwkv::train

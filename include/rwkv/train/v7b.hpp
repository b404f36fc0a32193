#pragma once
// RWKV-7b trainable: RWKV-7's time mix, DeepEmbedAttention (DEA) beside it on the raw residual stream, and 7a's
// DeepEmbed channel mix (spec/v7-variants.md Part B). DEA over the N = P + n positions a segment sees (P cached
// before it, n new), with emb'_p = ln0(emb[τ_p]):
//   q = x·W_qᵀ   a = x·K1   b = x·V1                                    (the n new rows; a, b join the cache)
//   kc = (A·K2) ⊙ (E_k[τ] + emb'·X_kᵀ)    vc = tanh(B·V2) ⊙ (E_v[τ] + emb'·X_vᵀ)        (all N positions)
//   k = LN(shift(kc))   v = LN(shift(vc))   q̂ = LN(shift(q))   z = 64·tanh(q̂·kᵀ / 1024), causal
//   out = softmax(z)·v
// The state is the inference model's: the tokens and the two latents of every cached position (growing by a row
// per token) and the previous query projection. A segment recomputes the keys and values of every position it
// sees (the reference's form), so the gradient reaches the latents of earlier segments (and of the initial
// state), the tables and, through emb' of every position, the embedding and ln0, whose backward this branch
// does itself. Training in the step form costs O(T²) in time and tape memory for that reason; the sequence form
// is the one to train with. There is no official training code for 7b: the backward is checked against finite
// differences of the loss (check_gradients), the loss against the inference model's, and the two forms against
// each other.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/train/branched_block.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"
#include "rwkv/train/v7.hpp"
#include "rwkv/train/v7a.hpp"
#include "rwkv/v7/config.hpp"

namespace rwkv::train {

class dea_attention {
 public:
  using config_type = rwkv::v7::Config;
  static constexpr std::int64_t D = 256, R = 32;  // the only reference's widths (spec/v7-variants.md §1)
  static constexpr float score_scale = 1.f / 1024.f, soft_cap = 64.f;

  static std::vector<std::string> state_names() { return {"tokens", "key_latent", "value_latent", "q_prev"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type&) { return {{0}, {0, R}, {0, R}, {D}}; }

  dea_attention(parameter_set& ps, const config_type& c, std::int64_t index) : C_(c.n_embd), layer_(index) {
    const auto p = "blocks." + std::to_string(index) + ".qkv.";
    const auto& qq = ps.get_any(p + "qq.weight");
    if (qq.value.rows() != D)
      throw error("DEA query width " + std::to_string(qq.value.rows()) + " is not supported (the reference runs 256)",
                  {}, p + "qq.weight");
    if (ps.get_any(p + "k1").value.cols() != R)
      throw error("DEA latent width " + std::to_string(ps.get_any(p + "k1").value.cols()) +
                      " is not supported (the reference runs 32)",
                  {}, p + "k1");
    const auto V = ps.get_any("emb.weight").value.rows();
    W_q_ = &ps.get(p + "qq.weight", D, C_);
    K1_ = &ps.get(p + "k1", C_, R), K2_ = &ps.get(p + "k2", R, D);
    V1_ = &ps.get(p + "v1", C_, R), V2_ = &ps.get(p + "v2", R, C_);
    E_k_ = &ps.get(p + "k_emb.weight", V, D), X_k_ = &ps.get(p + "k_emb_x.weight", D, C_);
    E_v_ = &ps.get(p + "v_emb.weight", V, C_), X_v_ = &ps.get(p + "v_emb_x.weight", C_, C_);
    mu_q_ = &ps.get(p + "x_q", 1, D), mu_k_ = &ps.get(p + "x_k", 1, D), mu_v_ = &ps.get(p + "x_v", 1, C_);
    lnq_w_ = &ps.get(p + "lnq.weight", 1, D), lnq_b_ = &ps.get(p + "lnq.bias", 1, D);
    lnk_w_ = &ps.get(p + "lnk.weight", 1, D), lnk_b_ = &ps.get(p + "lnk.bias", 1, D);
    lnv_w_ = &ps.get(p + "lnv.weight", 1, C_), lnv_b_ = &ps.get(p + "lnv.bias", 1, C_);
    emb_ = &ps.get("emb.weight", V, C_);
    ln0_w_ = &ps.get("blocks.0.ln0.weight", 1, C_), ln0_b_ = &ps.get("blocks.0.ln0.bias", 1, C_);
  }

  struct tape {
    Eigen::Index P = 0;                // cached positions before the segment
    std::vector<std::int32_t> tokens;  // all N positions
    row_matrix x, A, B, q, q_prev, qx, qh, emb, ek, ev, u, vt, kc, vc, kc_prev, vc_prev, k, v, z, pi;
    norm_record ln0, lnq, lnk, lnv;
  };

  void forward(const row_matrix& x, std::span<std::vector<float>> state, segment_context& seg, tape& tp,
               row_matrix& out) const {
    const auto n = x.rows();
    if (static_cast<Eigen::Index>(seg.tokens.size()) != n)
      throw error("RWKV-7b attention: the segment does not carry its tokens");
    auto &tokens = state[0], &key_latent = state[1], &value_latent = state[2], &q_prev = state[3];
    const auto P = static_cast<Eigen::Index>(tokens.size()), N = P + n;
    if (key_latent.size() != static_cast<std::size_t>(P * R) || value_latent.size() != key_latent.size() ||
        q_prev.size() != static_cast<std::size_t>(D))
      throw error("RWKV-7b attention, layer " + std::to_string(layer_) + ": inconsistent state (" + std::to_string(P) +
                  " cached tokens with " + std::to_string(key_latent.size()) + " key and " +
                  std::to_string(value_latent.size()) + " value latent values; 32 per token expected)");
    tp.P = P;
    tp.x = x;
    tp.tokens.resize(static_cast<std::size_t>(N));
    for (Eigen::Index p = 0; p < P; ++p) {
      const float f = tokens[static_cast<std::size_t>(p)];
      if (!(f >= 0.f && f < static_cast<float>(emb_->value.rows())) || f != std::floor(f))
        throw error("RWKV-7b attention, layer " + std::to_string(layer_) + ": the state's cached token " +
                    std::to_string(p) + " is " + std::to_string(f) + ", not a token id");
      tp.tokens[static_cast<std::size_t>(p)] = static_cast<std::int32_t>(f);
    }
    std::copy(seg.tokens.begin(), seg.tokens.end(), tp.tokens.begin() + P);

    // The new rows' projections, appended to the cache.
    linear_forward(x, *W_q_, tp.q, seg.pool);
    row_matrix a, b;
    product(seg.pool, a, x, K1_->value);
    product(seg.pool, b, x, V1_->value);
    tp.A.resize(N, R), tp.B.resize(N, R);
    tp.A.topRows(P) = Eigen::Map<const row_matrix>(key_latent.data(), P, R);
    tp.B.topRows(P) = Eigen::Map<const row_matrix>(value_latent.data(), P, R);
    tp.A.bottomRows(n) = a;
    tp.B.bottomRows(n) = b;

    // Keys and values of every position.
    row_matrix e(N, C_);
    for (Eigen::Index p = 0; p < N; ++p) e.row(p) = emb_->value.row(tp.tokens[static_cast<std::size_t>(p)]);
    norm_forward(e, *ln0_w_, *ln0_b_, C_, layer_norm_eps, tp.emb, tp.ln0);
    linear_forward(tp.emb, *X_k_, tp.ek, seg.pool);
    linear_forward(tp.emb, *X_v_, tp.ev, seg.pool);
    for (Eigen::Index p = 0; p < N; ++p) {
      tp.ek.row(p) += E_k_->value.row(tp.tokens[static_cast<std::size_t>(p)]);
      tp.ev.row(p) += E_v_->value.row(tp.tokens[static_cast<std::size_t>(p)]);
    }
    product(seg.pool, tp.u, tp.A, K2_->value);
    product(seg.pool, tp.vt, tp.B, V2_->value);
    tp.vt = tp.vt.array().tanh();
    tp.kc = tp.u.cwiseProduct(tp.ek);
    tp.vc = tp.vt.cwiseProduct(tp.ev);
    const std::vector<float> zk(static_cast<std::size_t>(D), 0.f), zv(static_cast<std::size_t>(C_), 0.f);
    tp.kc_prev = shifted(tp.kc, zk);  // position 0 is shifted against zero
    tp.vc_prev = shifted(tp.vc, zv);
    row_matrix kx, vx;
    mix_forward(tp.kc, tp.kc_prev, *mu_k_, kx);
    mix_forward(tp.vc, tp.vc_prev, *mu_v_, vx);
    norm_forward(kx, *lnk_w_, *lnk_b_, D, layer_norm_eps, tp.k, tp.lnk);
    norm_forward(vx, *lnv_w_, *lnv_b_, C_, layer_norm_eps, tp.v, tp.lnv);

    // Queries, shifted against the previous token's projection.
    tp.q_prev = shifted(tp.q, q_prev);
    mix_forward(tp.q, tp.q_prev, *mu_q_, tp.qx);
    norm_forward(tp.qx, *lnq_w_, *lnq_b_, D, layer_norm_eps, tp.qh, tp.lnq);

    // Soft-capped scores, causal softmax, weighted values.
    product(seg.pool, tp.z, tp.qh, tp.k.transpose());
    tp.z = (tp.z * score_scale).array().tanh();  // tanh(q̂·k / 1024), kept for the backward
    tp.pi.resize(n, N);
    for (Eigen::Index j = 0; j < n; ++j) {
      const Eigen::Index seen = P + j + 1;
      auto s = (soft_cap * tp.z.row(j).head(seen).array()).eval();
      s = (s - s.maxCoeff()).exp();
      tp.pi.row(j).head(seen) = s / s.sum();
      tp.pi.row(j).tail(N - seen).setZero();
    }
    product(seg.pool, out, tp.pi, tp.v);

    tokens.resize(static_cast<std::size_t>(N));
    for (Eigen::Index j = 0; j < n; ++j)
      tokens[static_cast<std::size_t>(P + j)] = static_cast<float>(seg.tokens[static_cast<std::size_t>(j)]);
    key_latent.assign(tp.A.data(), tp.A.data() + N * R);
    value_latent.assign(tp.B.data(), tp.B.data() + N * R);
    Eigen::Map<row_vector>(q_prev.data(), D) = tp.q.row(n - 1);
  }

  // dstate: after the segment in (its latents may have fewer rows than N: the missing rows have no gradient),
  // before it out (P rows).
  void backward(const row_matrix& dout, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp,
                row_matrix& dx) {
    const auto n = dout.rows(), P = tp.P, N = P + n;
    // Through the softmax and the soft-cap.
    row_matrix dpi, dv;
    product(seg.pool, dpi, dout, tp.v.transpose());
    product(seg.pool, dv, tp.pi.transpose(), dout);
    row_matrix ds = tp.pi.cwiseProduct(dpi);
    for (Eigen::Index j = 0; j < n; ++j) ds.row(j) -= tp.pi.row(j) * ds.row(j).sum();
    ds.array() *= soft_cap * score_scale * (1.f - tp.z.array().square());
    row_matrix dqh, dk;
    product(seg.pool, dqh, ds, tp.k);
    product(seg.pool, dk, ds.transpose(), tp.qh);

    // Queries: LayerNorm, the shift against the previous projection (the state's for row 0), W_q.
    row_matrix dqx, dq = row_matrix::Zero(n, D), dq_prev = row_matrix::Zero(n, D);
    norm_backward(dqh, tp.lnq, *lnq_w_, *lnq_b_, D, dqx);
    mix_backward(dqx, tp.q, tp.q_prev, *mu_q_, dq, dq_prev);
    state_shift_backward(dq_prev, dq, dstate[3]);
    linear_backward(dq, tp.x, *W_q_, dx, seg.pool);

    // Keys and values: LayerNorms, the shifts along the positions, the products with the merged table rows.
    row_matrix dkx, dvx, dkc = row_matrix::Zero(N, D), dvc = row_matrix::Zero(N, C_);
    row_matrix dkc_prev = row_matrix::Zero(N, D), dvc_prev = row_matrix::Zero(N, C_);
    norm_backward(dk, tp.lnk, *lnk_w_, *lnk_b_, D, dkx);
    norm_backward(dv, tp.lnv, *lnv_w_, *lnv_b_, C_, dvx);
    mix_backward(dkx, tp.kc, tp.kc_prev, *mu_k_, dkc, dkc_prev);
    mix_backward(dvx, tp.vc, tp.vc_prev, *mu_v_, dvc, dvc_prev);
    if (N > 1) {
      dkc.topRows(N - 1) += dkc_prev.bottomRows(N - 1);
      dvc.topRows(N - 1) += dvc_prev.bottomRows(N - 1);
    }
    const row_matrix du = dkc.cwiseProduct(tp.ek), dek = dkc.cwiseProduct(tp.u);
    const row_matrix dvt = dvc.cwiseProduct(tp.ev), dev = dvc.cwiseProduct(tp.vt);
    const row_matrix dvpre = dvt.array() * (1.f - tp.vt.array().square());

    // The latents: every position's, plus what the later segments sent back for them.
    row_matrix dA = row_matrix::Zero(N, R), dB = row_matrix::Zero(N, R);
    add_rows(dA, dstate[1]);
    add_rows(dB, dstate[2]);
    lora_backward(du, tp.A, *K2_, dA, seg.pool);
    lora_backward(dvpre, tp.B, *V2_, dB, seg.pool);
    lora_backward(dA.bottomRows(n), tp.x, *K1_, dx, seg.pool);
    lora_backward(dB.bottomRows(n), tp.x, *V1_, dx, seg.pool);
    dstate[1].assign(dA.data(), dA.data() + P * R);
    dstate[2].assign(dB.data(), dB.data() + P * R);
    dstate[0].assign(static_cast<std::size_t>(P), 0.f);  // token ids have no gradient

    // The merged table rows: the tables, X_k and X_v, and through emb' the embedding and ln0.
    row_matrix demb = row_matrix::Zero(N, C_), de;
    for (Eigen::Index p = 0; p < N; ++p) {
      E_k_->grad.row(tp.tokens[static_cast<std::size_t>(p)]) += dek.row(p);
      E_v_->grad.row(tp.tokens[static_cast<std::size_t>(p)]) += dev.row(p);
    }
    linear_backward(dek, tp.emb, *X_k_, demb, seg.pool);
    linear_backward(dev, tp.emb, *X_v_, demb, seg.pool);
    norm_backward(demb, tp.ln0, *ln0_w_, *ln0_b_, C_, de);
    for (Eigen::Index p = 0; p < N; ++p) emb_->grad.row(tp.tokens[static_cast<std::size_t>(p)]) += de.row(p);
  }

 private:
  // dst's first rows += a state gradient's rows (it may hold fewer rows than dst: the rest are zero).
  static void add_rows(row_matrix& dst, const std::vector<float>& rows) {
    const auto r = std::min<Eigen::Index>(dst.rows(), static_cast<Eigen::Index>(rows.size()) / R);
    dst.topRows(r) += Eigen::Map<const row_matrix>(rows.data(), r, R);
  }

  std::int64_t C_, layer_;
  parameter *W_q_, *K1_, *K2_, *V1_, *V2_, *E_k_, *X_k_, *E_v_, *X_v_, *mu_q_, *mu_k_, *mu_v_;
  parameter *lnq_w_, *lnq_b_, *lnk_w_, *lnk_b_, *lnv_w_, *lnv_b_, *emb_, *ln0_w_, *ln0_b_;
};

namespace v7b {

// RWKV-7's time mix, as the time mixer of a 7b block (its state files are tagged "7b").
struct time_mix : v7::time_mix {
  using v7::time_mix::time_mix;
  static constexpr const char* version = "7b";
};

using layer = branched_block<time_mix, dea_attention, deep_embed_channel_mix>;

}  // namespace v7b
}  // namespace rwkv::train

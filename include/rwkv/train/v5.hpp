#pragma once
// A trainable RWKV-5 block, 5.0, 5.1 and 5.2 (spec/v5.md (b), (f)): v4-style token shift, the multi-head WKV
// with a fixed decay w = exp(−exp(time_decay)) per head (5.0/5.1) or per channel (5.2), GroupNorm, the silu gate
// (5.1/5.2) and the v4 channel mix.

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/train/block.hpp"
#include "rwkv/train/channel_mix.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"
#include "rwkv/train/wkv5.hpp"
#include "rwkv/v5/config.hpp"

namespace rwkv::train::v5 {

class time_mix {
 public:
  static constexpr channel_mix_spec channel_mix{mix_form::current, "time_mix_k", "time_mix_r"};
  using config_type = rwkv::v5::Config;

  // att token shift (C), WKV state (H, N, N) as [h][key][value] (the block adds the ffn token shift).
  // The inference model's version tag and names of these state tensors (rwkv::State, state files).
  static constexpr const char* version = "5";
  static std::vector<std::string> state_names() { return {"shift", "wkv"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    return {{c.n_embd}, {c.n_head, c.head_size, c.head_size}};
  }

  time_mix(parameter_set& ps, const config_type& c, std::int64_t index)
      : C_(c.n_embd), H_(c.n_head), N_(c.head_size), gate_(c.gate), wkv_(c.n_head, c.head_size) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    auto vec = [&](const std::string& n) { return &ps.get(p + n, 1, C_); };
    mu_k_ = vec("att.time_mix_k"), mu_v_ = vec("att.time_mix_v"), mu_r_ = vec("att.time_mix_r");
    const auto per = c.decay_per_channel ? N_ : 1;  // values per head of time_decay and the bonus
    decay_ = &ps.get(p + "att.time_decay", per == 1 ? 1 : H_, per == 1 ? H_ : N_);
    const bool faaaa = ps.has(p + "att.time_faaaa");
    bonus_ = &ps.get(p + (faaaa ? "att.time_faaaa" : "att.time_first"), per == 1 ? 1 : H_, per == 1 ? H_ : N_);
    bonus_exp_ = !c.bonus_raw;
    W_r_ = &ps.get(p + "att.receptance.weight", C_, C_), W_k_ = &ps.get(p + "att.key.weight", C_, C_);
    W_v_ = &ps.get(p + "att.value.weight", C_, C_), W_o_ = &ps.get(p + "att.output.weight", C_, C_);
    if (gate_) mu_g_ = vec("att.time_mix_g"), W_g_ = &ps.get(p + "att.gate.weight", C_, C_);
    lnx_w_ = vec("att.ln_x.weight"), lnx_b_ = vec("att.ln_x.bias");
  }

  struct tape {
    norm_record gn;
    row_matrix h, prev, xk, xv, xr, xg, r, k, v, w, gp, g, y, yn, yo;
    std::vector<float> u;
    wkv5_op::tape wkv;
  };

  void forward(const row_matrix& h, std::span<std::vector<float>> state, segment_context& seg, tape& tp,
               row_matrix& out) const {
    const auto T = h.rows();
    tp.h = h;
    tp.prev = shifted(tp.h, state[0]);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_k_, tp.xk);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_v_, tp.xv);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_r_, tp.xr);
    linear_forward(tp.xr, *W_r_, tp.r, seg.pool);
    linear_forward(tp.xk, *W_k_, tp.k, seg.pool);
    linear_forward(tp.xv, *W_v_, tp.v, seg.pool);
    tp.w.resize(T, C_);
    tp.u.resize(static_cast<std::size_t>(C_));
    for (Eigen::Index c = 0; c < C_; ++c) {
      tp.w.col(c).setConstant(std::exp(-std::exp(per_channel(*decay_, c))));
      const float b = per_channel(*bonus_, c);
      tp.u[static_cast<std::size_t>(c)] = bonus_exp_ ? std::exp(b) : b;
    }
    wkv_.forward({tp.r, tp.k, tp.v, tp.w, tp.u.data()}, state[1], tp.y, tp.wkv, seg.pool);
    norm_forward(tp.y, *lnx_w_, *lnx_b_, N_, group_norm_eps, tp.yn, tp.gn);
    if (gate_) {
      form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_g_, tp.xg);
      linear_forward(tp.xg, *W_g_, tp.gp, seg.pool);
      tp.g = tp.gp.unaryExpr([](float q) { return q * sigmoid(q); });
      tp.yo = tp.yn.cwiseProduct(tp.g);
    } else {
      tp.yo = tp.yn;
    }
    linear_forward(tp.yo, *W_o_, out, seg.pool);
    Eigen::Map<row_vector>(state[0].data(), C_) = tp.h.row(T - 1);
  }

  void backward(const row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp,
                row_matrix& dh) {
    const auto T = dx.rows();

    const row_matrix dyo = linear_backward(dx, tp.yo, *W_o_, seg.pool);
    row_matrix dyn, dxg;
    if (gate_) {
      dyn = dyo.cwiseProduct(tp.g);
      const row_matrix dgp =
          dyo.array() * tp.yn.array() * tp.gp.unaryExpr([](float q) { return silu_grad(q); }).array();
      dxg = row_matrix::Zero(T, C_);
      linear_backward(dgp, tp.xg, *W_g_, dxg, seg.pool);
    } else {
      dyn = dyo;
    }
    row_matrix dy;
    norm_backward(dyn, tp.gn, *lnx_w_, *lnx_b_, N_, dy);

    row_matrix dr = row_matrix::Zero(T, C_), dk = row_matrix::Zero(T, C_), dv = row_matrix::Zero(T, C_),
               dw = row_matrix::Zero(T, C_);
    std::vector<float> du(static_cast<std::size_t>(C_), 0.f);
    wkv_.backward(dy, {tp.r, tp.k, tp.v, tp.w, tp.u.data()}, tp.wkv, dstate[1], dr, dk, dv, dw, du.data(), seg.pool);
    for (Eigen::Index c = 0; c < C_; ++c) {  // w = exp(−exp(d)), u = exp(first) or raw
      const float d = per_channel(*decay_, c), w = tp.w(0, c);
      per_channel_grad(*decay_, c) += dw.col(c).sum() * w * -std::exp(d);
      const float uc = tp.u[static_cast<std::size_t>(c)];
      per_channel_grad(*bonus_, c) += du[static_cast<std::size_t>(c)] * (bonus_exp_ ? uc : 1.f);
    }

    row_matrix dxr = row_matrix::Zero(T, C_), dxk = row_matrix::Zero(T, C_), dxv = row_matrix::Zero(T, C_);
    linear_backward(dr, tp.xr, *W_r_, dxr, seg.pool);
    linear_backward(dk, tp.xk, *W_k_, dxk, seg.pool);
    linear_backward(dv, tp.xv, *W_v_, dxv, seg.pool);
    dh = row_matrix::Zero(T, C_);
    row_matrix dprev = row_matrix::Zero(T, C_);
    form_mix_backward(mix_form::current, dxk, tp.h, tp.prev, *mu_k_, dh, dprev);
    form_mix_backward(mix_form::current, dxv, tp.h, tp.prev, *mu_v_, dh, dprev);
    form_mix_backward(mix_form::current, dxr, tp.h, tp.prev, *mu_r_, dh, dprev);
    if (gate_) form_mix_backward(mix_form::current, dxg, tp.h, tp.prev, *mu_g_, dh, dprev);
    state_shift_backward(dprev, dh, dstate[0]);
  }

 private:
  // time_decay / the bonus hold one value per head (H) or per channel (H, N); channel c's.
  float per_channel(const parameter& p, Eigen::Index c) const {
    return p.value.size() == C_ ? p.value.data()[c] : p.value.data()[c / N_];
  }
  float& per_channel_grad(parameter& p, Eigen::Index c) const {
    return p.grad.size() == C_ ? p.grad.data()[c] : p.grad.data()[c / N_];
  }

  std::int64_t C_, H_, N_;
  bool gate_, bonus_exp_ = true;
  wkv5_op wkv_;
  parameter *mu_k_, *mu_v_, *mu_r_, *mu_g_ = nullptr;
  parameter *decay_, *bonus_, *W_r_, *W_k_, *W_v_, *W_o_, *W_g_ = nullptr, *lnx_w_, *lnx_b_;
};

// The whole trainable block: ln1, this time mix, the residuals and the channel mix.
using layer = block<time_mix>;

}  // namespace rwkv::train::v5

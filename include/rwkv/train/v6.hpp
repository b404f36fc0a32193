#pragma once
// A trainable RWKV-6 block (spec/v6.md (b), (f)): data-dependent token shift (the five-slot LoRA "ddlerp"),
// per-token decay w = exp(−exp(d0 + tanh(x_w·Wd1)·Wd2)), the RWKV-5 WKV with that decay, GroupNorm, the silu
// gate, and the channel mix in the v6 mix form.

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
#include "rwkv/v6/config.hpp"

namespace rwkv::train::v6 {

class time_mix {
 public:
  static constexpr channel_mix_spec channel_mix{mix_form::previous, "time_maa_k", "time_maa_r"};
  using config_type = rwkv::v6::Config;
  static constexpr int slots = 5;  // the ddlerp LoRA slots, in this order: w, k, v, r, g

  // The inference model's version tag and names of these state tensors (rwkv::State, state files).
  static constexpr const char* version = "6";
  static std::vector<std::string> state_names() { return {"shift", "wkv"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    return {{c.n_embd}, {c.n_head, c.head_size, c.head_size}};
  }

  time_mix(parameter_set& ps, const config_type& c, std::int64_t index)
      : C_(c.n_embd), H_(c.n_head), N_(c.head_size), D_(c.d_mix), wkv_(c.n_head, c.head_size) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    auto vec = [&](const std::string& n) { return &ps.get(p + n, 1, C_); };
    mu_x_ = vec("att.time_maa_x");
    const char* names[slots] = {"att.time_maa_w", "att.time_maa_k", "att.time_maa_v", "att.time_maa_r",
                                "att.time_maa_g"};
    for (int j = 0; j < slots; ++j) mu_[j] = vec(names[j]);
    M1_ = &ps.get(p + "att.time_maa_w1", C_, slots * D_), M2_ = &ps.get(p + "att.time_maa_w2", slots * D_, C_);
    d0_ = vec("att.time_decay");
    Wd1_ = &ps.get(p + "att.time_decay_w1", C_, c.d_decay), Wd2_ = &ps.get(p + "att.time_decay_w2", c.d_decay, C_);
    u_ = &ps.get(p + "att.time_faaaa", H_, N_);
    W_r_ = &ps.get(p + "att.receptance.weight", C_, C_), W_k_ = &ps.get(p + "att.key.weight", C_, C_);
    W_v_ = &ps.get(p + "att.value.weight", C_, C_), W_g_ = &ps.get(p + "att.gate.weight", C_, C_);
    W_o_ = &ps.get(p + "att.output.weight", C_, C_);
    lnx_w_ = vec("att.ln_x.weight"), lnx_b_ = vec("att.ln_x.bias");
  }

  struct tape {
    norm_record gn;
    row_matrix h, prev, delta, xbar, zz, m[slots], xs[slots];  // xs: x_w, x_k, x_v, x_r, x_g
    row_matrix r, k, v, gp, g, hd, dd, w, y, yn, yo;
    wkv5_op::tape wkv;
  };

  void forward(const row_matrix& h, std::span<std::vector<float>> state, segment_context& seg, tape& tp,
               row_matrix& out) const {
    const auto T = h.rows();
    tp.h = h;
    tp.prev = shifted(tp.h, state[0]);
    tp.delta = tp.prev - tp.h;
    tp.xbar = tp.h + (tp.delta.array().rowwise() * mu_x_->value.row(0).array()).matrix();
    tp.zz = (tp.xbar * M1_->value).array().tanh();
    for (int j = 0; j < slots; ++j) {
      tp.m[j].noalias() = tp.zz.middleCols(j * D_, D_) * M2_->value.middleRows(j * D_, D_);
      tp.xs[j] = tp.h + (tp.delta.array() * (tp.m[j].array().rowwise() + mu_[j]->value.row(0).array())).matrix();
    }
    linear_forward(tp.xs[3], *W_r_, tp.r, seg.pool);
    linear_forward(tp.xs[1], *W_k_, tp.k, seg.pool);
    linear_forward(tp.xs[2], *W_v_, tp.v, seg.pool);
    linear_forward(tp.xs[4], *W_g_, tp.gp, seg.pool);
    tp.g = tp.gp.unaryExpr([](float q) { return q * sigmoid(q); });
    tp.hd = (tp.xs[0] * Wd1_->value).array().tanh();
    tp.dd = (tp.hd * Wd2_->value).rowwise() + d0_->value.row(0);
    tp.w = tp.dd.unaryExpr([](float q) { return std::exp(-std::exp(q)); });
    wkv_.forward({tp.r, tp.k, tp.v, tp.w, u_->value.data()}, state[1], tp.y, tp.wkv, seg.pool);
    norm_forward(tp.y, *lnx_w_, *lnx_b_, N_, group_norm_eps, tp.yn, tp.gn);
    tp.yo = tp.yn.cwiseProduct(tp.g);
    linear_forward(tp.yo, *W_o_, out, seg.pool);
    Eigen::Map<row_vector>(state[0].data(), C_) = tp.h.row(T - 1);
  }

  void backward(const row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp,
                row_matrix& dh) {
    const auto T = dx.rows();

    const row_matrix dyo = linear_backward(dx, tp.yo, *W_o_, seg.pool);
    const row_matrix dyn = dyo.cwiseProduct(tp.g);
    const row_matrix dgp = dyo.array() * tp.yn.array() * tp.gp.unaryExpr([](float q) { return silu_grad(q); }).array();
    row_matrix dy;
    norm_backward(dyn, tp.gn, *lnx_w_, *lnx_b_, N_, dy);

    row_matrix dr = row_matrix::Zero(T, C_), dk = row_matrix::Zero(T, C_), dv = row_matrix::Zero(T, C_),
               dw = row_matrix::Zero(T, C_);
    wkv_.backward(dy, {tp.r, tp.k, tp.v, tp.w, u_->value.data()}, tp.wkv, dstate[1], dr, dk, dv, dw, u_->grad.data(),
                  seg.pool);

    // w = exp(−exp(dd)), dd = d0 + tanh(x_w·Wd1)·Wd2.
    const row_matrix ddd = dw.array() * tp.w.array() * -tp.dd.array().exp();
    d0_->grad.row(0) += ddd.colwise().sum();
    row_matrix dxs[slots];
    for (auto& d : dxs) d = row_matrix::Zero(T, C_);
    row_matrix dhd = row_matrix::Zero(T, Wd2_->value.rows());
    lora_backward(ddd, tp.hd, *Wd2_, dhd, seg.pool);
    const row_matrix dpd = dhd.array() * (1.f - tp.hd.array().square());
    lora_backward(dpd, tp.xs[0], *Wd1_, dxs[0], seg.pool);
    linear_backward(dk, tp.xs[1], *W_k_, dxs[1], seg.pool);
    linear_backward(dv, tp.xs[2], *W_v_, dxs[2], seg.pool);
    linear_backward(dr, tp.xs[3], *W_r_, dxs[3], seg.pool);
    linear_backward(dgp, tp.xs[4], *W_g_, dxs[4], seg.pool);

    // x_j = h + δ·(μ_j + m_j), m_j = tanh(x̄·M1)[slot j]·M2[j], x̄ = h + δ·μ_x, δ = prev − h.
    dh = row_matrix::Zero(T, C_);
    row_matrix ddelta = row_matrix::Zero(T, C_);
    row_matrix dzz(T, slots * D_);
    for (int j = 0; j < slots; ++j) {
      dh += dxs[j];
      ddelta.array() += dxs[j].array() * (tp.m[j].array().rowwise() + mu_[j]->value.row(0).array());
      mu_[j]->grad.row(0) += (dxs[j].array() * tp.delta.array()).colwise().sum().matrix();
      const row_matrix dm = dxs[j].cwiseProduct(tp.delta);
      M2_->grad.middleRows(j * D_, D_).noalias() += tp.zz.middleCols(j * D_, D_).transpose() * dm;
      dzz.middleCols(j * D_, D_).noalias() = dm * M2_->value.middleRows(j * D_, D_).transpose();
    }
    const row_matrix dpz = dzz.array() * (1.f - tp.zz.array().square());
    M1_->grad.noalias() += tp.xbar.transpose() * dpz;
    const row_matrix dxbar = dpz * M1_->value.transpose();
    dh += dxbar;
    ddelta.array() += dxbar.array().rowwise() * mu_x_->value.row(0).array();
    mu_x_->grad.row(0) += (dxbar.array() * tp.delta.array()).colwise().sum().matrix();
    dh -= ddelta;
    state_shift_backward(ddelta, dh, dstate[0]);
  }

 private:
  std::int64_t C_, H_, N_, D_;
  wkv5_op wkv_;
  parameter *mu_x_, *mu_[slots], *M1_, *M2_, *d0_, *Wd1_, *Wd2_, *u_;
  parameter *W_r_, *W_k_, *W_v_, *W_g_, *W_o_, *lnx_w_, *lnx_b_;
};

// The whole trainable block: ln1, this time mix, the residuals and the channel mix.
using layer = block<time_mix>;

}  // namespace rwkv::train::v6

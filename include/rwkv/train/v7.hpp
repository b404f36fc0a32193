#pragma once
// A trainable RWKV-7 block (spec/v7.md (b), (f)): the forward over a segment of T tokens from a state, recording
// what the backward needs, and the backward, which accumulates parameter gradients and carries the gradient of
// the state across segments (so a sequence can be trained in one segment or token by token, and the initial state
// itself can be trained).
//
// The WKV is train/wkv7.hpp's operator with k = k̃, a = −κ̂, b = κ̂·α: the serial backward of spec/v7.md (f), its
// states recomputed from a checkpoint every 16 tokens in place of the official kernel's step inversion (it holds
// H·N²·(T/16 + 17) floats per layer instead of H·N²·T).

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/kernel/math.hpp"
#include "rwkv/train/block.hpp"
#include "rwkv/train/channel_mix.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"
#include "rwkv/train/wkv7.hpp"
#include "rwkv/v7/config.hpp"

namespace rwkv::train {

namespace v7 {

inline constexpr float decay_scale = math::v7_decay_scale;

class time_mix {
 public:
  static constexpr channel_mix_spec channel_mix{mix_form::previous, "x_k", nullptr};
  using config_type = rwkv::v7::Config;

  // In the reference's state order: att token shift (C), WKV state (H, N, N) as [h][value][key] (the block adds
  // the ffn token shift).
  // The inference model's version tag and names of these state tensors (rwkv::State, state files).
  static constexpr const char* version = "7";
  static std::vector<std::string> state_names() { return {"shift", "wkv"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    return {{c.n_embd}, {c.n_head, c.head_size, c.head_size}};
  }

  time_mix(parameter_set& ps, const config_type& c, std::int64_t index)
      : C_(c.n_embd), H_(c.n_head), N_(c.head_size), wkv_(c.n_head, c.head_size) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    auto vec = [&](const std::string& n) { return &ps.get(p + n, 1, C_); };
    for (auto [dst, n] : {std::pair{&x_r_, "x_r"},
                          {&x_w_, "x_w"},
                          {&x_k_, "x_k"},
                          {&x_v_, "x_v"},
                          {&x_a_, "x_a"},
                          {&x_g_, "x_g"},
                          {&w0_, "w0"},
                          {&a0_, "a0"},
                          {&k_k_, "k_k"},
                          {&k_a_, "k_a"}})
      *dst = vec(std::string("att.") + n);
    lnx_w_ = vec("att.ln_x.weight"), lnx_b_ = vec("att.ln_x.bias");
    r_k_ = &ps.get(p + "att.r_k", H_, N_);
    w1_ = &ps.get(p + "att.w1", C_, c.d_decay), w2_ = &ps.get(p + "att.w2", c.d_decay, C_);
    a1_ = &ps.get(p + "att.a1", C_, c.d_iclr), a2_ = &ps.get(p + "att.a2", c.d_iclr, C_);
    g1_ = &ps.get(p + "att.g1", C_, c.d_gate), g2_ = &ps.get(p + "att.g2", c.d_gate, C_);
    if (index > 0) {  // layer 0 defines v_first; its v0/v1/v2 are never used (and get zero gradients)
      v0_ = vec("att.v0");
      v1_ = &ps.get(p + "att.v1", C_, c.d_value), v2_ = &ps.get(p + "att.v2", c.d_value, C_);
    }
    W_r_ = &ps.get(p + "att.receptance.weight", C_, C_), W_k_ = &ps.get(p + "att.key.weight", C_, C_);
    W_v_ = &ps.get(p + "att.value.weight", C_, C_), W_o_ = &ps.get(p + "att.output.weight", C_, C_);
  }

  // Everything the backward of one segment reads.
  struct tape {
    norm_record gn;
    row_matrix h, prev, xr, xw, xk, xv, xa, xg;  // ln1 output, its shift, the six mixes
    row_matrix r, k, v, hw, z, ha, alpha, hg, g, hv, nu;
    row_matrix kh, knorm, kt, vm, w, y, y2, bonus, yg;  // κ̂, ‖κ‖ per head, k̃, mixed v, decay, WKV out, ...
    row_matrix a, b;                                    // the WKV's removal key −κ̂ and replacement key κ̂·α
    wkv7_op::tape wkv;
  };

  // h: the ln1 output (T x C); out: what the block adds to its input. state: shift and WKV state, advanced.
  void forward(const row_matrix& h, std::span<std::vector<float>> state, segment_context& seg, tape& tp,
               row_matrix& out) const {
    // Time mix.
    tp.h = h;
    tp.prev = shifted(tp.h, state[0]);
    mix_forward(tp.h, tp.prev, *x_r_, tp.xr), mix_forward(tp.h, tp.prev, *x_w_, tp.xw);
    mix_forward(tp.h, tp.prev, *x_k_, tp.xk), mix_forward(tp.h, tp.prev, *x_v_, tp.xv);
    mix_forward(tp.h, tp.prev, *x_a_, tp.xa), mix_forward(tp.h, tp.prev, *x_g_, tp.xg);
    linear_forward(tp.xr, *W_r_, tp.r, seg.pool);
    linear_forward(tp.xk, *W_k_, tp.k, seg.pool);
    linear_forward(tp.xv, *W_v_, tp.v, seg.pool);
    tp.hw = (tp.xw * w1_->value).array().tanh();
    tp.z = (tp.hw * w2_->value).rowwise() + w0_->value.row(0);
    tp.ha.noalias() = tp.xa * a1_->value;
    tp.alpha = ((tp.ha * a2_->value).rowwise() + a0_->value.row(0)).unaryExpr([](float q) { return sigmoid(q); });
    tp.hg = (tp.xg * g1_->value).unaryExpr([](float q) { return sigmoid(q); });
    tp.g.noalias() = tp.hg * g2_->value;
    if (v0_ == nullptr) {
      seg.v_first = tp.v;
      tp.vm = tp.v;
    } else {
      check_v_first(seg, h.rows());
      tp.hv.noalias() = tp.xv * v1_->value;
      tp.nu = ((tp.hv * v2_->value).rowwise() + v0_->value.row(0)).unaryExpr([](float q) { return sigmoid(q); });
      tp.vm = tp.v.array() + (seg.v_first - tp.v).array() * tp.nu.array();
    }
    const auto T = h.rows();
    tp.kh.resize(T, C_), tp.knorm.resize(T, H_);
    tp.kt = tp.k.array() * (1.f + (tp.alpha.array() - 1.f).rowwise() * k_a_->value.row(0).array());
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H_; ++h) {
        const auto kappa = (tp.k.row(t).segment(h * N_, N_).array() * k_k_->value.row(0).segment(h * N_, N_).array());
        const float n = std::sqrt(kappa.square().sum());
        tp.knorm(t, h) = n;
        tp.kh.row(t).segment(h * N_, N_) = kappa / std::max(n, 1e-12f);
      }
    tp.w = tp.z.unaryExpr([](float q) { return std::exp(-decay_scale * sigmoid(q)); });
    tp.a = -tp.kh;
    tp.b = tp.kh.cwiseProduct(tp.alpha);
    wkv_.forward({tp.r, tp.w, tp.kt, tp.vm, tp.a, tp.b}, state[1], tp.y, tp.wkv, seg.pool);
    norm_forward(tp.y, *lnx_w_, *lnx_b_, N_, group_norm_eps, tp.y2, tp.gn);
    tp.bonus.resize(T, H_);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H_; ++h) {
        const auto s = Eigen::seqN(h * N_, N_);
        const float b = (tp.r.row(t)(s).array() * tp.kt.row(t)(s).array() * r_k_->value.row(h).array()).sum();
        tp.bonus(t, h) = b;
        tp.y2.row(t)(s) += b * tp.vm.row(t)(s);
      }
    tp.yg = tp.y2.cwiseProduct(tp.g);
    linear_forward(tp.yg, *W_o_, out, seg.pool);
    Eigen::Map<row_vector>(state[0].data(), C_) = tp.h.row(T - 1);
  }

  // dx: ∂L/∂out, dh: ∂L/∂h (written). dstate: ∂L/∂(state after the segment), replaced by ∂L/∂(state before it).
  // Parameter gradients are accumulated.
  void backward(const row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp,
                row_matrix& dh) {
    const auto T = dx.rows();

    // Time mix: output, gate, bonus, GroupNorm.
    const row_matrix dyg = linear_backward(dx, tp.yg, *W_o_, seg.pool);
    const row_matrix dy2 = dyg.cwiseProduct(tp.g);
    const row_matrix dg = dyg.cwiseProduct(tp.y2);
    row_matrix dr = row_matrix::Zero(T, C_), dkt = row_matrix::Zero(T, C_), dvm = row_matrix::Zero(T, C_);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H_; ++h) {
        const auto s = Eigen::seqN(h * N_, N_);
        dvm.row(t)(s) += tp.bonus(t, h) * dy2.row(t)(s);
        const float db = dy2.row(t)(s).dot(tp.vm.row(t)(s));
        const auto rk = r_k_->value.row(h).array();
        dr.row(t)(s).array() += db * tp.kt.row(t)(s).array() * rk;
        dkt.row(t)(s).array() += db * tp.r.row(t)(s).array() * rk;
        r_k_->grad.row(h).array() += db * tp.r.row(t)(s).array() * tp.kt.row(t)(s).array();
      }
    row_matrix dyn;
    norm_backward(dy2, tp.gn, *lnx_w_, *lnx_b_, N_, dyn);

    // WKV.
    row_matrix dw = row_matrix::Zero(T, C_), da = row_matrix::Zero(T, C_), dbb = row_matrix::Zero(T, C_);
    wkv_.backward(dyn, {tp.r, tp.w, tp.kt, tp.vm, tp.a, tp.b}, tp.wkv, dstate[1], dr, dw, dkt, dvm, da, dbb, seg.pool);

    // a = −κ̂, b = κ̂·α; k̃ = k·(1 + (α − 1)·k_a); κ̂ = κ/‖κ‖, κ = k·k_k.
    row_matrix dalpha = dbb.cwiseProduct(tp.kh);
    const row_matrix dkh = -da + dbb.cwiseProduct(tp.alpha);
    row_matrix dk = dkt.array() * (1.f + (tp.alpha.array() - 1.f).rowwise() * k_a_->value.row(0).array());
    dalpha.array() += (dkt.array() * tp.k.array()).rowwise() * k_a_->value.row(0).array();
    k_a_->grad.row(0) += (dkt.array() * tp.k.array() * (tp.alpha.array() - 1.f)).colwise().sum().matrix();
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H_; ++h) {
        const auto s = Eigen::seqN(h * N_, N_);
        const float n = tp.knorm(t, h);
        Eigen::ArrayXf dkappa;
        if (n > 1e-12f) {
          const float proj = tp.kh.row(t)(s).dot(dkh.row(t)(s));
          dkappa = ((dkh.row(t)(s) - proj * tp.kh.row(t)(s)) / n).transpose().array();
        } else {
          dkappa = (dkh.row(t)(s) / 1e-12f).transpose().array();
        }
        dk.row(t)(s).array() += dkappa.transpose() * k_k_->value.row(0)(s).array();
        k_k_->grad.row(0)(s).array() += dkappa.transpose() * tp.k.row(t)(s).array();
      }

    // Decay: w = exp(−c·σ(z)).
    const row_matrix dz = dw.array() * tp.w.array() * (-decay_scale) *
                          tp.z.unaryExpr([](float q) { return sigmoid(q) * (1.f - sigmoid(q)); }).array();

    // Value residual: vm = v + (v_first − v)·ν (layers ≥ 1); layer 0 receives every later layer's ∂v_first.
    row_matrix dv, dxv = row_matrix::Zero(T, C_);
    if (v0_ == nullptr) {
      dv = dvm;
      if (seg.d_v_first.size() != 0) dv += seg.d_v_first;
    } else {
      dv = dvm.cwiseProduct((1.f - tp.nu.array()).matrix());
      if (seg.d_v_first.size() == 0) seg.d_v_first = row_matrix::Zero(T, C_);
      seg.d_v_first += dvm.cwiseProduct(tp.nu);
      const row_matrix dpnu =
          (dvm.array() * (seg.v_first - tp.v).array() * tp.nu.array() * (1.f - tp.nu.array())).matrix();
      v0_->grad.row(0) += dpnu.colwise().sum();
      row_matrix dhv = row_matrix::Zero(T, v2_->value.rows());
      lora_backward(dpnu, tp.hv, *v2_, dhv, seg.pool);
      lora_backward(dhv, tp.xv, *v1_, dxv, seg.pool);
    }

    // Low-rank branches: α = σ(a0 + (x_a·a1)·a2), g = σ(x_g·g1)·g2, z = w0 + tanh(x_w·w1)·w2.
    const row_matrix dpa = dalpha.array() * tp.alpha.array() * (1.f - tp.alpha.array());
    a0_->grad.row(0) += dpa.colwise().sum();
    row_matrix dha = row_matrix::Zero(T, a2_->value.rows()), dxa = row_matrix::Zero(T, C_);
    lora_backward(dpa, tp.ha, *a2_, dha, seg.pool);
    lora_backward(dha, tp.xa, *a1_, dxa, seg.pool);

    row_matrix dhg = row_matrix::Zero(T, g2_->value.rows()), dxg = row_matrix::Zero(T, C_);
    lora_backward(dg, tp.hg, *g2_, dhg, seg.pool);
    const row_matrix dpg = dhg.array() * tp.hg.array() * (1.f - tp.hg.array());
    lora_backward(dpg, tp.xg, *g1_, dxg, seg.pool);

    w0_->grad.row(0) += dz.colwise().sum();
    row_matrix dhw = row_matrix::Zero(T, w2_->value.rows()), dxw = row_matrix::Zero(T, C_);
    lora_backward(dz, tp.hw, *w2_, dhw, seg.pool);
    const row_matrix dpw = dhw.array() * (1.f - tp.hw.array().square());
    lora_backward(dpw, tp.xw, *w1_, dxw, seg.pool);

    row_matrix dxr = row_matrix::Zero(T, C_), dxk = row_matrix::Zero(T, C_);
    linear_backward(dr, tp.xr, *W_r_, dxr, seg.pool);
    linear_backward(dk, tp.xk, *W_k_, dxk, seg.pool);
    linear_backward(dv, tp.xv, *W_v_, dxv, seg.pool);

    // Token shift.
    dh = row_matrix::Zero(T, C_);
    row_matrix dprev = row_matrix::Zero(T, C_);
    mix_backward(dxr, tp.h, tp.prev, *x_r_, dh, dprev), mix_backward(dxw, tp.h, tp.prev, *x_w_, dh, dprev);
    mix_backward(dxk, tp.h, tp.prev, *x_k_, dh, dprev), mix_backward(dxv, tp.h, tp.prev, *x_v_, dh, dprev);
    mix_backward(dxa, tp.h, tp.prev, *x_a_, dh, dprev), mix_backward(dxg, tp.h, tp.prev, *x_g_, dh, dprev);
    state_shift_backward(dprev, dh, dstate[0]);
  }

 private:
  void check_v_first(const segment_context& seg, Eigen::Index T) const {
    if (seg.v_first.rows() != T || seg.v_first.cols() != C_)
      throw error("RWKV-7 training: a layer above 0 ran before layer 0 defined v_first for this segment");
  }

  std::int64_t C_, H_, N_;
  wkv7_op wkv_;
  parameter *x_r_, *x_w_, *x_k_, *x_v_, *x_a_, *x_g_, *w0_, *a0_, *k_k_, *k_a_, *lnx_w_, *lnx_b_, *r_k_;
  parameter *w1_, *w2_, *a1_, *a2_, *g1_, *g2_;
  parameter *v0_ = nullptr, *v1_ = nullptr, *v2_ = nullptr;
  parameter *W_r_, *W_k_, *W_v_, *W_o_;
};

// The whole trainable block: ln1, this time mix, the residuals and the channel mix.
using layer = block<time_mix>;

}  // namespace v7
}  // namespace rwkv::train

#pragma once
// The trainable channel mix of RWKV-4, 5 and 6 (spec/v4.md (b), v6.md (b)):
//   out = σ(W_r·x_r) ⊙ (W_v · relu²(W_k·x_k)),
// its token-shift mixes x_k, x_r in the v4/v5 form (x·μ + prev·(1 − μ)) or the v6 form (x + (prev − x)·μ).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

enum class mix_form {
  current,   // x·μ + prev·(1 − μ)  (v4, v5: time_mix_*)
  previous,  // x + (prev − x)·μ    (v6, v7: time_maa_*, x_*)
};

// out = a + (b − a)·μ covers both forms: (a, b) = (prev, x) for mix_form::current, (x, prev) for previous.
inline void form_mix_forward(mix_form f, const row_matrix& x, const row_matrix& prev, const parameter& mu,
                             row_matrix& out) {
  if (f == mix_form::current)
    mix_forward(prev, x, mu, out);
  else
    mix_forward(x, prev, mu, out);
}

inline void form_mix_backward(mix_form f, const row_matrix& dout, const row_matrix& x, const row_matrix& prev,
                              parameter& mu, row_matrix& dx, row_matrix& dprev) {
  if (f == mix_form::current)
    mix_backward(dout, prev, x, mu, dprev, dx);
  else
    mix_backward(dout, x, prev, mu, dx, dprev);
}

class receptance_channel_mix {
 public:
  receptance_channel_mix(parameter_set& ps, const std::string& prefix, std::int64_t C, std::int64_t F, mix_form form,
                         const char* mix_k, const char* mix_r)
      : form_(form), C_(C) {
    mu_k_ = &ps.get(prefix + mix_k, 1, C), mu_r_ = &ps.get(prefix + mix_r, 1, C);
    W_k_ = &ps.get(prefix + "key.weight", F, C), W_r_ = &ps.get(prefix + "receptance.weight", C, C);
    W_v_ = &ps.get(prefix + "value.weight", C, F);
  }

  struct tape {
    row_matrix x, prev, xk, xr, pre, kk, rr, kv;
  };

  // x: the ln2 output (T x C); `shift` is advanced to its last row. Writes out.
  void forward(const row_matrix& x, std::vector<float>& shift, tape& tp, row_matrix& out) const {
    tp.x = x;
    tp.prev = shifted(x, shift);
    form_mix_forward(form_, x, tp.prev, *mu_k_, tp.xk);
    form_mix_forward(form_, x, tp.prev, *mu_r_, tp.xr);
    tp.pre.noalias() = tp.xk * W_k_->value.transpose();
    tp.kk = tp.pre.array().max(0.f).square();
    tp.kv.noalias() = tp.kk * W_v_->value.transpose();
    tp.rr = (tp.xr * W_r_->value.transpose()).unaryExpr([](float q) { return sigmoid(q); });
    out = tp.rr.cwiseProduct(tp.kv);
    Eigen::Map<row_vector>(shift.data(), C_) = x.row(x.rows() - 1);
  }

  // dout: ∂L/∂out. Writes dx = ∂L/∂x; dshift: ∂L/∂(shift after) in, ∂L/∂(shift before) out.
  void backward(const row_matrix& dout, std::vector<float>& dshift, const tape& tp, row_matrix& dx) {
    const auto T = dout.rows();
    const row_matrix dkv = dout.cwiseProduct(tp.rr);
    const row_matrix dpr = dout.array() * tp.kv.array() * tp.rr.array() * (1.f - tp.rr.array());
    row_matrix dxr = row_matrix::Zero(T, C_), dxk = row_matrix::Zero(T, C_);
    linear_backward(dpr, tp.xr, *W_r_, dxr);
    const row_matrix dkk = dkv * W_v_->value;
    W_v_->grad.noalias() += dkv.transpose() * tp.kk;
    const row_matrix dpre = 2.f * dkk.array() * tp.pre.array().max(0.f);
    linear_backward(dpre, tp.xk, *W_k_, dxk);
    dx = row_matrix::Zero(T, C_);
    row_matrix dprev = row_matrix::Zero(T, C_);
    form_mix_backward(form_, dxk, tp.x, tp.prev, *mu_k_, dx, dprev);
    form_mix_backward(form_, dxr, tp.x, tp.prev, *mu_r_, dx, dprev);
    state_shift_backward(dprev, dx, dshift);
  }

 private:
  mix_form form_;
  std::int64_t C_;
  parameter *mu_k_, *mu_r_, *W_k_, *W_r_, *W_v_;
};

}  // namespace rwkv::train

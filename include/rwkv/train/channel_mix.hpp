#pragma once
// The trainable channel-mix half of a block (spec/v4.md (b), v6.md (b), v7.md (b)): x += CM(ln2(x)) with
//   CM(x') = σ(W_r·x_r) ⊙ (W_v · relu²(W_k·x_k))   (RWKV-4, 5, 6),   CM(x') = W_v · relu²(W_k·x_k)   (RWKV-7),
// its token-shift mixes in the v4/v5 form (x·μ + prev·(1 − μ)) or the v6/v7 form (x + (prev − x)·μ).

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

// Which channel mix a version has: its mix form and the names of its mix vectors (mix_r null: no receptance).
struct channel_mix_spec {
  mix_form form;
  const char* mix_k;
  const char* mix_r;
};

class squared_relu_channel_mix {
 public:
  // block: "blocks.<i>."; ln2 and ffn.* are read from it.
  squared_relu_channel_mix(parameter_set& ps, const std::string& block, std::int64_t C, std::int64_t F,
                           channel_mix_spec spec)
      : form_(spec.form), C_(C) {
    ln2_w_ = &ps.get(block + "ln2.weight", 1, C), ln2_b_ = &ps.get(block + "ln2.bias", 1, C);
    const auto prefix = block + "ffn.";
    mu_k_ = &ps.get(prefix + spec.mix_k, 1, C);
    W_k_ = &ps.get(prefix + "key.weight", F, C), W_v_ = &ps.get(prefix + "value.weight", C, F);
    if (spec.mix_r) mu_r_ = &ps.get(prefix + spec.mix_r, 1, C), W_r_ = &ps.get(prefix + "receptance.weight", C, C);
  }

  struct tape {
    norm_record ln2;
    row_matrix x, prev, xk, xr, pre, kk, rr, kv;
  };

  // residual: the block's stream (T x C), to which CM(ln2(residual)) is added. `shift` is advanced.
  void forward(row_matrix& residual, std::vector<float>& shift, tape& tp, thread_pool* pool = nullptr) const {
    norm_forward(residual, *ln2_w_, *ln2_b_, C_, layer_norm_eps, tp.x, tp.ln2);
    const auto& x = tp.x;
    tp.prev = shifted(x, shift);
    form_mix_forward(form_, x, tp.prev, *mu_k_, tp.xk);
    linear_forward(tp.xk, *W_k_, tp.pre, pool);
    tp.kk = tp.pre.array().max(0.f).square();
    linear_forward(tp.kk, *W_v_, tp.kv, pool);
    if (W_r_) {
      form_mix_forward(form_, x, tp.prev, *mu_r_, tp.xr);
      linear_forward(tp.xr, *W_r_, tp.rr, pool);
      tp.rr = tp.rr.unaryExpr([](float q) { return sigmoid(q); });
      residual += tp.rr.cwiseProduct(tp.kv);
    } else {
      residual += tp.kv;
    }
    Eigen::Map<row_vector>(shift.data(), C_) = x.row(x.rows() - 1);
  }

  // dout: ∂L/∂(residual after), becomes ∂L/∂(residual before). dshift: ∂L/∂(shift after) in, ∂L/∂(shift before)
  // out.
  void backward(row_matrix& dout, std::vector<float>& dshift, const tape& tp, thread_pool* pool = nullptr) {
    const auto T = dout.rows();
    row_matrix dx = row_matrix::Zero(T, C_), dprev = row_matrix::Zero(T, C_), dln;
    row_matrix dkv = dout;
    if (W_r_) {
      dkv = dout.cwiseProduct(tp.rr);
      const row_matrix dpr = dout.array() * tp.kv.array() * tp.rr.array() * (1.f - tp.rr.array());
      row_matrix dxr = row_matrix::Zero(T, C_);
      linear_backward(dpr, tp.xr, *W_r_, dxr, pool);
      form_mix_backward(form_, dxr, tp.x, tp.prev, *mu_r_, dx, dprev);
    }
    row_matrix dkk = row_matrix::Zero(T, W_v_->value.cols()), dxk = row_matrix::Zero(T, C_);
    linear_backward(dkv, tp.kk, *W_v_, dkk, pool);
    const row_matrix dpre = 2.f * dkk.array() * tp.pre.array().max(0.f);
    linear_backward(dpre, tp.xk, *W_k_, dxk, pool);
    form_mix_backward(form_, dxk, tp.x, tp.prev, *mu_k_, dx, dprev);
    state_shift_backward(dprev, dx, dshift);
    norm_backward(dx, tp.ln2, *ln2_w_, *ln2_b_, C_, dln);
    dout += dln;
  }

 private:
  mix_form form_;
  std::int64_t C_;
  parameter *ln2_w_, *ln2_b_, *mu_k_, *W_k_, *W_v_, *mu_r_ = nullptr, *W_r_ = nullptr;
};

}  // namespace rwkv::train

#pragma once
// A trainable RWKV-4 block (spec/v4.md (b), (f)). The WKV is differentiated through the reference's own
// stabilised recurrence, state (a, b, p) per channel. Its stabilisers q = max(p, u + k) and q' = max(p + w, k)
// are held constant in the backward: the output and every later state depend on (a, b, p) only through a·e^p and
// b·e^p, which no choice of q or q' changes, so their total derivatives are exactly zero. This gives the gradient
// of any initial state (a, b, p), not only the zero state the official kernel assumes.

#include <algorithm>
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
#include "rwkv/v4/config.hpp"

namespace rwkv::train::v4 {

class time_mix {
 public:
  static constexpr channel_mix_spec channel_mix{mix_form::current, "time_mix_k", "time_mix_r"};
  using config_type = rwkv::v4::Config;

  // The reference's order: att token shift (C), a, b, p (A each) (the block adds the ffn token shift).
  // The inference model's version tag and names of these state tensors (rwkv::State, state files).
  static constexpr const char* version = "4";
  static std::vector<std::string> state_names() { return {"shift", "aa", "bb", "pp"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    return {{c.n_embd}, {c.dim_att}, {c.dim_att}, {c.dim_att}};
  }
  // The state inference starts from: zeros, and p = −1e30 (an empty running maximum).
  static void initial_state(std::span<std::vector<float>> s) { std::fill(s[3].begin(), s[3].end(), -1e30f); }

  time_mix(parameter_set& ps, const config_type& c, std::int64_t index) : C_(c.n_embd), A_(c.dim_att) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    auto vec = [&](const std::string& n, std::int64_t size) { return &ps.get(p + n, 1, size); };
    mu_k_ = vec("att.time_mix_k", C_), mu_v_ = vec("att.time_mix_v", C_), mu_r_ = vec("att.time_mix_r", C_);
    decay_ = vec("att.time_decay", A_), first_ = vec("att.time_first", A_);
    W_k_ = &ps.get(p + "att.key.weight", A_, C_), W_v_ = &ps.get(p + "att.value.weight", A_, C_);
    W_r_ = &ps.get(p + "att.receptance.weight", A_, C_), W_o_ = &ps.get(p + "att.output.weight", C_, A_);
  }

  struct tape {
    row_matrix h, prev, xk, xv, xr, k, v, r, y, ry;
    std::vector<std::vector<float>> checkpoints;  // (a, b, p) before every wkv_checkpoint-th token, 3·A each
  };

  void forward(const row_matrix& h, std::span<std::vector<float>> state, segment_context& seg, tape& tp,
               row_matrix& out) const {
    const auto T = h.rows();
    tp.h = h;
    tp.prev = shifted(tp.h, state[0]);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_k_, tp.xk);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_v_, tp.xv);
    form_mix_forward(mix_form::current, tp.h, tp.prev, *mu_r_, tp.xr);
    linear_forward(tp.xk, *W_k_, tp.k, seg.pool);
    linear_forward(tp.xv, *W_v_, tp.v, seg.pool);
    linear_forward(tp.xr, *W_r_, tp.r, seg.pool);
    tp.r = tp.r.unaryExpr([](float q) { return sigmoid(q); });
    tp.y.resize(T, A_);
    tp.checkpoints.clear();
    std::vector<float> abp(static_cast<std::size_t>(3 * A_));
    pack(state, abp);
    for (Eigen::Index t = 0; t < T; ++t) {
      if (t % wkv_checkpoint == 0) tp.checkpoints.push_back(abp);
      for (Eigen::Index c = 0; c < A_; ++c) tp.y(t, c) = step(tp, t, c, abp.data()).y;
    }
    unpack(abp, state);
    tp.ry = tp.r.cwiseProduct(tp.y);
    linear_forward(tp.ry, *W_o_, out, seg.pool);
    Eigen::Map<row_vector>(state[0].data(), C_) = tp.h.row(T - 1);
  }

  void backward(const row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp,
                row_matrix& dh) {
    const auto T = dx.rows();

    const row_matrix dry = linear_backward(dx, tp.ry, *W_o_, seg.pool);
    const row_matrix dy = dry.cwiseProduct(tp.r);
    const row_matrix dpr = dry.array() * tp.y.array() * tp.r.array() * (1.f - tp.r.array());

    // WKV, per channel, one checkpoint chunk at a time from the last, its states recomputed.
    row_matrix dk = row_matrix::Zero(T, A_), dv = row_matrix::Zero(T, A_);
    std::vector<float> dabp(static_cast<std::size_t>(3 * A_));
    pack(dstate, dabp);
    std::vector<float> states(static_cast<std::size_t>(3 * A_ * (wkv_checkpoint + 1)));
    const auto S = static_cast<std::size_t>(3 * A_);
    for (auto ch = static_cast<Eigen::Index>(tp.checkpoints.size()) - 1; ch >= 0; --ch) {
      const Eigen::Index t0 = ch * wkv_checkpoint, t1 = std::min(T, t0 + wkv_checkpoint);
      std::copy(tp.checkpoints[static_cast<std::size_t>(ch)].begin(),
                tp.checkpoints[static_cast<std::size_t>(ch)].end(), states.begin());
      for (Eigen::Index t = t0; t < t1; ++t) {
        const auto i = static_cast<std::size_t>(t - t0);
        std::copy_n(states.begin() + static_cast<std::ptrdiff_t>(i * S), S,
                    states.begin() + static_cast<std::ptrdiff_t>((i + 1) * S));
        for (Eigen::Index c = 0; c < A_; ++c) step(tp, t, c, states.data() + (i + 1) * S);
      }
      for (Eigen::Index t = t1 - 1; t >= t0; --t) {
        const float* before = states.data() + static_cast<std::size_t>(t - t0) * S;
        for (Eigen::Index c = 0; c < A_; ++c) step_backward(tp, t, c, before, dy(t, c), dk(t, c), dv(t, c), dabp);
      }
    }
    unpack(dabp, dstate);

    row_matrix dxk = row_matrix::Zero(T, C_), dxv = row_matrix::Zero(T, C_), dxr = row_matrix::Zero(T, C_);
    linear_backward(dk, tp.xk, *W_k_, dxk, seg.pool);
    linear_backward(dv, tp.xv, *W_v_, dxv, seg.pool);
    linear_backward(dpr, tp.xr, *W_r_, dxr, seg.pool);
    dh = row_matrix::Zero(T, C_);
    row_matrix dprev = row_matrix::Zero(T, C_);
    form_mix_backward(mix_form::current, dxk, tp.h, tp.prev, *mu_k_, dh, dprev);
    form_mix_backward(mix_form::current, dxv, tp.h, tp.prev, *mu_v_, dh, dprev);
    form_mix_backward(mix_form::current, dxr, tp.h, tp.prev, *mu_r_, dh, dprev);
    state_shift_backward(dprev, dh, dstate[0]);
  }

 private:
  struct step_values {
    float y, e1, e2, den, f1, f2;
  };

  // (a, b, p) of the state tensors 1..3, packed as [a..., b..., p...].
  void pack(std::span<std::vector<float>> s, std::vector<float>& abp) const {
    for (int i = 0; i < 3; ++i) std::copy(s[1 + i].begin(), s[1 + i].end(), abp.begin() + i * A_);
  }
  void unpack(const std::vector<float>& abp, std::span<std::vector<float>> s) const {
    for (int i = 0; i < 3; ++i) std::copy(abp.begin() + i * A_, abp.begin() + (i + 1) * A_, s[1 + i].begin());
  }

  // One token of channel c: the output and the state update (spec/v4.md (b)), in place on the packed (a, b, p).
  step_values step(const tape& tp, Eigen::Index t, Eigen::Index c, float* abp) const {
    return step_core(tp, t, c, abp[c], abp[A_ + c], abp[2 * A_ + c]);
  }

  step_values step_core(const tape& tp, Eigen::Index t, Eigen::Index c, float& a, float& b, float& p) const {
    const float k = tp.k(t, c), v = tp.v(t, c), u = first_->value(0, c), w = -std::exp(decay_->value(0, c));
    step_values s;
    const float q = std::max(p, u + k);
    s.e1 = std::exp(p - q), s.e2 = std::exp(u + k - q);
    s.den = s.e1 * b + s.e2;
    s.y = (s.e1 * a + s.e2 * v) / s.den;
    const float q2 = std::max(p + w, k);
    s.f1 = std::exp(p + w - q2), s.f2 = std::exp(k - q2);
    a = s.f1 * a + s.f2 * v;
    b = s.f1 * b + s.f2;
    p = q2;
    return s;
  }

  // The backward of step() with the stabilisers held constant (see the top of this file). `before` is the state
  // before token t; dabp holds ∂L/∂(state after) and becomes ∂L/∂(state before).
  void step_backward(const tape& tp, Eigen::Index t, Eigen::Index c, const float* before, float g, float& dk, float& dv,
                     std::vector<float>& dabp) {
    const float a = before[c], b = before[A_ + c];
    float a2 = a, b2 = b, p2 = before[2 * A_ + c];  // the step recomputed on a copy of the state
    const auto s = step_core(tp, t, c, a2, b2, p2);
    const float v = tp.v(t, c), w = -std::exp(decay_->value(0, c));
    float &da = dabp[static_cast<std::size_t>(c)], &db = dabp[static_cast<std::size_t>(A_ + c)],
          &dp = dabp[static_cast<std::size_t>(2 * A_ + c)];
    // State update: a' = f1·a + f2·v, b' = f1·b + f2, f1 = e^{p+w−q'}, f2 = e^{k−q'}; p' = q' (constant).
    const float df1 = da * a + db * b, df2 = da * v + db;
    float na = da * s.f1, nb = db * s.f1, np = df1 * s.f1;
    dv += da * s.f2;
    dk += df2 * s.f2;
    decay_->grad(0, c) += df1 * s.f1 * w;  // ∂/∂d = ∂/∂w · w
    // Output: y = (e1·a + e2·v) / (e1·b + e2), e1 = e^{p−q}, e2 = e^{u+k−q}.
    const float dnum = g / s.den, dden = -g * s.y / s.den;
    const float de1 = dnum * a + dden * b, de2 = dnum * v + dden;
    na += dnum * s.e1, nb += dden * s.e1, np += de1 * s.e1;
    dv += dnum * s.e2;
    dk += de2 * s.e2;
    first_->grad(0, c) += de2 * s.e2;
    da = na, db = nb, dp = np;
  }

  std::int64_t C_, A_;
  parameter *mu_k_, *mu_v_, *mu_r_, *decay_, *first_;
  parameter *W_k_, *W_v_, *W_r_, *W_o_;
};

// The whole trainable block: ln1, this time mix, the residuals and the channel mix.
using layer = block<time_mix>;

}  // namespace rwkv::train::v4

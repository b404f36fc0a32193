#pragma once
// The RWKV-5/6 WKV operator for training (spec/v5.md (b), (f); v6.md (f)): per head, state S[key][value],
//   y_t[j] = Σ_i r_t[i]·(u[i]·k_t[i]·v_t[j] + S[i][j]),   S[i][j] ← w_t[i]·S[i][j] + k_t[i]·v_t[j],
// with a per-token decay w_t (RWKV-6; RWKV-5 repeats its fixed decay on every row). The forward keeps the state
// every `checkpoint` tokens; the backward recomputes one chunk's states at a time from it.

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "rwkv/train/ops.hpp"

namespace rwkv::train {

class wkv5_op {
 public:
  static constexpr Eigen::Index checkpoint = wkv_checkpoint;

  wkv5_op(std::int64_t heads, std::int64_t head_size) : H_(heads), N_(head_size) {}

  // The operands of one segment (T x C each; u: C values).
  struct inputs {
    const row_matrix &r, &k, &v, &w;
    const float* u;
  };

  // The state before every checkpoint-th token.
  using tape = std::vector<std::vector<float>>;

  // y = WKV(r, k, v, w, u) from S (advanced).
  void forward(const inputs& in, std::vector<float>& S, row_matrix& y, tape& tp) const {
    tp.clear();
    y.resize(in.r.rows(), in.r.cols());
    for (Eigen::Index t = 0; t < in.r.rows(); ++t) {
      if (t % checkpoint == 0) tp.push_back(S);
      step(in, t, S.data(), &y(t, 0));
    }
  }

  // g = ∂L/∂y. Accumulates dr, dk, dv, dw (T x C) and du (C); dS: ∂L/∂(state after) in, ∂L/∂(state before) out.
  void backward(const row_matrix& g, const inputs& in, const tape& tp, std::vector<float>& dS, row_matrix& dr,
                row_matrix& dk, row_matrix& dv, row_matrix& dw, float* du) const {
    const auto T = g.rows();
    const auto SN = static_cast<std::size_t>(H_ * N_ * N_);
    std::vector<float> states(SN * (checkpoint + 1));
    for (auto c = static_cast<Eigen::Index>(tp.size()) - 1; c >= 0; --c) {
      const Eigen::Index t0 = c * checkpoint, t1 = std::min(T, t0 + checkpoint);
      const auto& saved = tp[static_cast<std::size_t>(c)];
      std::copy(saved.begin(), saved.end(), states.begin());
      for (Eigen::Index t = t0; t < t1; ++t) {  // states[i] = S before token t0 + i
        const auto i = static_cast<std::size_t>(t - t0);
        std::copy_n(states.begin() + static_cast<std::ptrdiff_t>(i * SN), SN,
                    states.begin() + static_cast<std::ptrdiff_t>((i + 1) * SN));
        step(in, t, states.data() + (i + 1) * SN, nullptr);
      }
      for (Eigen::Index t = t1 - 1; t >= t0; --t) {
        const float* Sp = states.data() + static_cast<std::size_t>(t - t0) * SN;
        for (Eigen::Index h = 0; h < H_; ++h) {
          const auto o = h * N_;
          const float *r = &in.r(t, o), *k = &in.k(t, o), *v = &in.v(t, o), *w = &in.w(t, o);
          const float *gt = &g(t, o), *uh = in.u + o;
          const float* S = Sp + h * N_ * N_;
          float* Z = dS.data() + h * N_ * N_;
          float c_t = 0.f, ruk = 0.f;
          for (Eigen::Index j = 0; j < N_; ++j) c_t += v[j] * gt[j];
          for (Eigen::Index i = 0; i < N_; ++i) ruk += r[i] * uh[i] * k[i];
          for (Eigen::Index i = 0; i < N_; ++i) {
            const float* Si = S + i * N_;
            float* Zi = Z + i * N_;
            float sg = 0.f, zv = 0.f, zs = 0.f;
            for (Eigen::Index j = 0; j < N_; ++j) {
              sg += Si[j] * gt[j];
              zv += Zi[j] * v[j];
              zs += Zi[j] * Si[j];
              dv(t, o + j) += k[i] * Zi[j];
            }
            dr(t, o + i) += uh[i] * k[i] * c_t + sg;
            dk(t, o + i) += zv + r[i] * uh[i] * c_t;
            dw(t, o + i) += zs;
            du[o + i] += r[i] * k[i] * c_t;
            for (Eigen::Index j = 0; j < N_; ++j) Zi[j] = w[i] * Zi[j] + r[i] * gt[j];
          }
          for (Eigen::Index j = 0; j < N_; ++j) dv(t, o + j) += gt[j] * ruk;
        }
      }
    }
  }

 private:
  void step(const inputs& in, Eigen::Index t, float* S, float* y) const {
    for (Eigen::Index h = 0; h < H_; ++h) {
      const auto o = h * N_;
      const float *r = &in.r(t, o), *k = &in.k(t, o), *v = &in.v(t, o), *w = &in.w(t, o), *u = in.u;
      float* Sh = S + h * N_ * N_;
      if (y) {
        for (Eigen::Index j = 0; j < N_; ++j) y[o + j] = 0.f;
        for (Eigen::Index i = 0; i < N_; ++i) {
          const float ruk = r[i] * u[o + i] * k[i];
          for (Eigen::Index j = 0; j < N_; ++j) y[o + j] += ruk * v[j] + r[i] * Sh[i * N_ + j];
        }
      }
      for (Eigen::Index i = 0; i < N_; ++i)
        for (Eigen::Index j = 0; j < N_; ++j) Sh[i * N_ + j] = w[i] * Sh[i * N_ + j] + k[i] * v[j];
    }
  }

  std::int64_t H_, N_;
};

}  // namespace rwkv::train

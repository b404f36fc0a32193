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
#include "rwkv/train/wkv_scan.hpp"

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
  using tape = wkv_tape;

  // y = WKV(r, k, v, w, u) from S (advanced). Heads run in parallel on the pool.
  void forward(const inputs& in, std::vector<float>& S, row_matrix& y, tape& tp, thread_pool* pool = nullptr) const {
    y.resize(in.r.rows(), in.r.cols());
    scan_heads(S, in.r.rows(), H_, N_ * N_, tp, pool,
               [&](Eigen::Index h, Eigen::Index t, float* Sh) { step(in, t, h, Sh, &y(t, h * N_)); });
  }

  // g = ∂L/∂y. Accumulates dr, dk, dv, dw (T x C) and du (C); dS: ∂L/∂(state after) in, ∂L/∂(state before) out.
  // Per head (heads in parallel on the pool), one chunk at a time from the last, its states recomputed.
  void backward(const row_matrix& g, const inputs& in, const tape& tp, std::vector<float>& dS, row_matrix& dr,
                row_matrix& dk, row_matrix& dv, row_matrix& dw, float* du, thread_pool* pool = nullptr) const {
    const auto T = g.rows();
    const auto NN = static_cast<std::size_t>(N_ * N_);
    parallel_for(pool, H_, [&](std::int64_t h0, std::int64_t h1) {
      std::vector<float> states(NN * (checkpoint + 1));
      for (Eigen::Index h = h0; h < h1; ++h) {
        const auto o = h * N_;
        float* Z = dS.data() + static_cast<std::size_t>(h) * NN;
        for (auto c = static_cast<Eigen::Index>(tp.size()) - 1; c >= 0; --c) {
          const Eigen::Index t0 = c * checkpoint, t1 = std::min(T, t0 + checkpoint);
          std::copy_n(tp[static_cast<std::size_t>(c)].data() + static_cast<std::size_t>(h) * NN, NN, states.data());
          for (Eigen::Index t = t0; t < t1; ++t) {  // states[i] = S before token t0 + i
            const auto i = static_cast<std::size_t>(t - t0);
            std::copy_n(states.data() + i * NN, NN, states.data() + (i + 1) * NN);
            step(in, t, h, states.data() + (i + 1) * NN, nullptr);
          }
          for (Eigen::Index t = t1 - 1; t >= t0; --t) {
            const float* S = states.data() + static_cast<std::size_t>(t - t0) * NN;
            const float* __restrict r = &in.r(t, o);
            const float* __restrict k = &in.k(t, o);
            const float* __restrict v = &in.v(t, o);
            const float* __restrict w = &in.w(t, o);
            const float* __restrict gt = &g(t, o);
            const float* __restrict uh = in.u + o;
            float* __restrict dv_ = &dv(t, o);
            float c_t = 0.f, ruk = 0.f;
            for (Eigen::Index j = 0; j < N_; ++j) c_t += v[j] * gt[j];
            for (Eigen::Index i = 0; i < N_; ++i) ruk += r[i] * uh[i] * k[i];
            for (Eigen::Index i = 0; i < N_; ++i) {
              const float* __restrict Si = S + i * N_;
              float* __restrict Zi = Z + i * N_;
              const float ki = k[i];
              float sg = 0.f, zv = 0.f, zs = 0.f;
              for (Eigen::Index j = 0; j < N_; ++j) {
                sg += Si[j] * gt[j];
                zv += Zi[j] * v[j];
                zs += Zi[j] * Si[j];
                dv_[j] += ki * Zi[j];
              }
              dr(t, o + i) += uh[i] * ki * c_t + sg;
              dk(t, o + i) += zv + r[i] * uh[i] * c_t;
              dw(t, o + i) += zs;
              du[o + i] += r[i] * ki * c_t;
              const float wi = w[i], ri = r[i];
              for (Eigen::Index j = 0; j < N_; ++j) Zi[j] = wi * Zi[j] + ri * gt[j];
            }
            for (Eigen::Index j = 0; j < N_; ++j) dv_[j] += gt[j] * ruk;
          }
        }
      }
    });
  }

 private:
  // One step of head h on its state Sh (N·N, [key][value]); writes y (N) when given.
  void step(const inputs& in, Eigen::Index t, Eigen::Index h, float* __restrict Sh, float* __restrict y) const {
    const auto o = h * N_;
    const float* __restrict r = &in.r(t, o);
    const float* __restrict k = &in.k(t, o);
    const float* __restrict v = &in.v(t, o);
    const float* __restrict w = &in.w(t, o);
    const float* __restrict u = in.u + o;
    if (y) {
      for (Eigen::Index j = 0; j < N_; ++j) y[j] = 0.f;
      for (Eigen::Index i = 0; i < N_; ++i) {
        const float ruk = r[i] * u[i] * k[i], ri = r[i];
        const float* __restrict Si = Sh + i * N_;
        for (Eigen::Index j = 0; j < N_; ++j) y[j] += ruk * v[j] + ri * Si[j];
      }
    }
    for (Eigen::Index i = 0; i < N_; ++i) {
      float* __restrict Si = Sh + i * N_;
      const float wi = w[i], ki = k[i];
      for (Eigen::Index j = 0; j < N_; ++j) Si[j] = wi * Si[j] + ki * v[j];
    }
  }

  std::int64_t H_, N_;
};

}  // namespace rwkv::train

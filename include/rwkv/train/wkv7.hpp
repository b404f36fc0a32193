#pragma once
// The RWKV-7 ("generalised delta rule") WKV operator for training (spec/v7.md (b), (f)): per head, state
// S[value][key],
//   S ← S·diag(w_t) + (S·a_t)·b_tᵀ + v_t·k_tᵀ,   y_t = S·r_t,
// with every operand per token. RWKV-7 passes k = k̃, a = −κ̂, b = κ̂·α; a research mixer passes its own (the
// softplus-decay example: k = b = κ̂, a = −κ̂). The forward keeps the state every `checkpoint` tokens; the backward
// recomputes one chunk's states at a time from it (the forward's own arithmetic, so exact) and walks it backwards.
// Heads run in parallel on the pool.

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/thread_pool.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/wkv_scan.hpp"

namespace rwkv::train {

class wkv7_op {
 public:
  static constexpr Eigen::Index checkpoint = wkv_checkpoint;

  wkv7_op(std::int64_t heads, std::int64_t head_size) : H_(heads), N_(head_size) {}

  // The operands of one segment, T x C each.
  struct inputs {
    const row_matrix &r, &w, &k, &v, &a, &b;
  };

  // The state before every checkpoint-th token.
  using tape = wkv_tape;

  // y = WKV(r, w, k, v, a, b) from S (H·N·N, advanced).
  void forward(const inputs& in, std::vector<float>& S, row_matrix& y, tape& tp, thread_pool* pool = nullptr) const {
    y.resize(in.r.rows(), in.r.cols());
    scan_heads(S, in.r.rows(), H_, N_ * N_, tp, pool,
               [&](Eigen::Index h, Eigen::Index t, float* Sh) { step(in, t, h, Sh, nullptr, &y(t, h * N_)); });
  }

  // g = ∂L/∂y. Accumulates dr, dw, dk, dv, da, db (T x C); dS: ∂L/∂(state after) in, ∂L/∂(state before) out.
  // spec/v7.md (f): with G = ∂L/∂S after token t and q = G·b,
  //   ∂r = Sᵀ_t g, G += g·rᵀ, ∂v = G·k, ∂k = Gᵀv, ∂w = diag(Gᵀ S_{t−1}), ∂b = Gᵀ(S_{t−1}·a), ∂a = S_{t−1}ᵀ q,
  //   G ← G·diag(w) + q·aᵀ.
  void backward(const row_matrix& g, const inputs& in, const tape& tp, std::vector<float>& dS, row_matrix& dr,
                row_matrix& dw, row_matrix& dk, row_matrix& dv, row_matrix& da, row_matrix& db,
                thread_pool* pool = nullptr) const {
    const auto T = in.r.rows();
    const auto NN = static_cast<std::size_t>(N_ * N_), N = static_cast<std::size_t>(N_);
    parallel_for(pool, H_, [&](std::int64_t h0, std::int64_t h1) {
      std::vector<float> states(NN * (checkpoint + 1)), sa(N * checkpoint), q(N);
      for (Eigen::Index h = h0; h < h1; ++h) {
        const auto o = h * N_;
        float* __restrict G = dS.data() + static_cast<std::size_t>(h) * NN;
        for (auto c = static_cast<Eigen::Index>(tp.size()) - 1; c >= 0; --c) {
          const Eigen::Index t0 = c * checkpoint, t1 = std::min(T, t0 + checkpoint);
          std::copy_n(tp[static_cast<std::size_t>(c)].data() + static_cast<std::size_t>(h) * NN, NN, states.data());
          for (Eigen::Index t = t0; t < t1; ++t) {  // states[i] = S before token t0 + i
            const auto i = static_cast<std::size_t>(t - t0);
            std::copy_n(states.data() + i * NN, NN, states.data() + (i + 1) * NN);
            step(in, t, h, states.data() + (i + 1) * NN, sa.data() + i * N, nullptr);
          }
          for (Eigen::Index t = t1 - 1; t >= t0; --t) {
            const auto i = static_cast<std::size_t>(t - t0);
            const float* St = states.data() + (i + 1) * NN;
            const float* Sp = states.data() + i * NN;
            const auto [r, w, k, v, a, b] = operands(in, t, h);
            const float* gt = &g(t, o);
            const float* s = sa.data() + i * N;
            float* __restrict dr_ = &dr(t, o);
            float* __restrict dw_ = &dw(t, o);
            float* __restrict dk_ = &dk(t, o);
            float* __restrict dv_ = &dv(t, o);
            float* __restrict da_ = &da(t, o);
            float* __restrict db_ = &db(t, o);
            for (Eigen::Index i2 = 0; i2 < N_; ++i2) {
              float* __restrict Gi = G + i2 * N_;
              const float* Sti = St + i2 * N_;
              const float* Spi = Sp + i2 * N_;
              const float gi = gt[i2], vi = v[i2], si = s[i2];
              float dvi = 0.f, qi = 0.f;
              for (Eigen::Index j = 0; j < N_; ++j) {
                dr_[j] += Sti[j] * gi;
                const float Gij = Gi[j] + gi * r[j];
                Gi[j] = Gij;
                dvi += Gij * k[j];
                dk_[j] += Gij * vi;
                dw_[j] += Gij * Spi[j];
                db_[j] += Gij * si;
                qi += Gij * b[j];
              }
              dv_[i2] += dvi;
              q[static_cast<std::size_t>(i2)] = qi;
            }
            for (Eigen::Index i2 = 0; i2 < N_; ++i2) {
              float* __restrict Gi = G + i2 * N_;
              const float* Spi = Sp + i2 * N_;
              const float qi = q[static_cast<std::size_t>(i2)];
              for (Eigen::Index j = 0; j < N_; ++j) {
                da_[j] += Spi[j] * qi;
                Gi[j] = Gi[j] * w[j] + qi * a[j];
              }
            }
          }
        }
      }
    });
  }

 private:
  // Head h's slices of token t's operands. (The loops write only through __restrict pointers, which is what lets
  // the compiler vectorise them.)
  struct head_operands {
    const float *r, *w, *k, *v, *a, *b;
  };
  head_operands operands(const inputs& in, Eigen::Index t, Eigen::Index h) const {
    const auto o = h * N_;
    return {&in.r(t, o), &in.w(t, o), &in.k(t, o), &in.v(t, o), &in.a(t, o), &in.b(t, o)};
  }

  // One step of head h on its state Sh (N·N, [value][key]); writes S·a (N) and y (N) when given.
  void step(const inputs& in, Eigen::Index t, Eigen::Index h, float* __restrict Sh, float* __restrict sa,
            float* __restrict y) const {
    const auto [r, w, k, v, a, b] = operands(in, t, h);
    for (Eigen::Index i = 0; i < N_; ++i) {
      float* __restrict row = Sh + i * N_;
      float s = 0.f;
      for (Eigen::Index j = 0; j < N_; ++j) s += row[j] * a[j];
      if (sa) sa[i] = s;
      float out = 0.f;
      for (Eigen::Index j = 0; j < N_; ++j) {
        row[j] = row[j] * w[j] + s * b[j] + v[i] * k[j];
        out += row[j] * r[j];
      }
      if (y) y[i] = out;
    }
  }

  std::int64_t H_, N_;
};

}  // namespace rwkv::train

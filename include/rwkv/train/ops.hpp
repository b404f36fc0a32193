#pragma once
// The differentiable operations trainable blocks are written with, each a forward that records what its backward
// needs and the backward itself. Activations are T x C row blocks (one row per token); gradients of parameters are
// accumulated (+=) so that segments, layers and micro-batches add up.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

using row_vector = Eigen::Matrix<float, 1, Eigen::Dynamic>;

// The references' constants, shared by every version: LayerNorm eps, the per-head GroupNorm (ln_x) eps, and how
// often the WKV forward keeps its state for the backward to recompute from.
inline constexpr float layer_norm_eps = 1e-5f;
inline constexpr float group_norm_eps = 64e-5f;
inline constexpr Eigen::Index wkv_checkpoint = 16;

// What travels between the layers of one segment besides the activations: RWKV-7's v_first and its gradient, and
// the threads the products and the WKV heads may use (none: the calling thread only).
struct segment_context {
  row_matrix v_first, d_v_first;
  thread_pool* pool = nullptr;
  // The segment's input tokens and their embeddings (ln0 output), for token-indexed blocks (RWKV-7a's DeepEmbed),
  // and the gradient those blocks send to the embeddings (added before ln0's backward).
  std::span<const std::int32_t> tokens;
  row_matrix embedded, d_embedded;
};

// dst = lhs·rhs, or dst += lhs·rhs. With a pool and a product worth a fork, dst's rows are split over the threads,
// each one Eigen product of its rows. (The blocking Eigen picks depends on the row count, so the rounding depends
// on the thread count: runs with the same threads are bit-identical.)
template <class Dst, class Lhs, class Rhs>
void product(thread_pool* pool, Dst&& dst, const Lhs& lhs, const Rhs& rhs, bool accumulate = false) {
  const Eigen::Index m = lhs.rows(), n = rhs.cols(), k = lhs.cols();
  if (!accumulate) dst.resize(m, n);
  const Eigen::Index threads = pool ? pool->size() : 1;
  if (threads < 2 || m < 8 * threads || m * n * k < (Eigen::Index{1} << 17)) {
    if (accumulate)
      dst.noalias() += lhs * rhs;
    else
      dst.noalias() = lhs * rhs;
    return;
  }
  pool->parallel_for(m, [&](std::int64_t r0, std::int64_t r1) {
    auto d = dst.middleRows(r0, r1 - r0);
    if (accumulate)
      d.noalias() += lhs.middleRows(r0, r1 - r0) * rhs;
    else
      d.noalias() = lhs.middleRows(r0, r1 - r0) * rhs;
  });
}

// ---- LayerNorm over groups of `group` channels (group = C: LayerNorm; group = N: RWKV's per-head GroupNorm) ----

struct norm_record {
  row_matrix xhat;  // (x − mean)·rstd, T x C
  row_matrix rstd;  // T x (C / group)
};

// out = xhat·weight + bias per group, biased variance, eps added to it (PyTorch's LayerNorm / GroupNorm).
inline void norm_forward(const row_matrix& x, const parameter& w, const parameter& b, std::int64_t group, float eps,
                         row_matrix& out, norm_record& rec) {
  const auto T = x.rows(), C = x.cols(), G = C / group;
  rec.xhat.resize(T, C);
  rec.rstd.resize(T, G);
  out.resize(T, C);
  for (Eigen::Index t = 0; t < T; ++t)
    for (Eigen::Index g = 0; g < G; ++g) {
      const auto seg = x.row(t).segment(g * group, group);
      const float mean = seg.sum() / static_cast<float>(group);
      const float var = (seg.array() - mean).square().sum() / static_cast<float>(group);
      const float rstd = 1.f / std::sqrt(var + eps);
      rec.rstd(t, g) = rstd;
      auto xh = rec.xhat.row(t).segment(g * group, group);
      xh = (seg.array() - mean) * rstd;
      out.row(t).segment(g * group, group) = xh.array() * w.value.row(0).segment(g * group, group).array() +
                                             b.value.row(0).segment(g * group, group).array();
    }
}

// dx (overwritten) from dout; weight and bias gradients accumulated.
inline void norm_backward(const row_matrix& dout, const norm_record& rec, parameter& w, parameter& b,
                          std::int64_t group, row_matrix& dx) {
  const auto T = dout.rows(), C = dout.cols(), G = C / group;
  dx.resize(T, C);
  w.grad.row(0) += (dout.array() * rec.xhat.array()).colwise().sum().matrix();
  b.grad.row(0) += dout.colwise().sum();
  for (Eigen::Index t = 0; t < T; ++t)
    for (Eigen::Index g = 0; g < G; ++g) {
      const auto xh = rec.xhat.row(t).segment(g * group, group).array();
      const Eigen::ArrayXf dxh =
          (dout.row(t).segment(g * group, group).array() * w.value.row(0).segment(g * group, group).array())
              .transpose();
      const float m1 = dxh.mean(), m2 = (dxh * xh.transpose()).mean();
      dx.row(t).segment(g * group, group) = (rec.rstd(t, g) * (dxh - m1 - xh.transpose() * m2)).transpose();
    }
}

// ---- Token shift: xs = x + (prev − x)·μ, prev = the previous row (row 0: the state's last row) ----

// Rows of x shifted down by one, `first` in row 0.
inline row_matrix shifted(const row_matrix& x, std::span<const float> first) {
  row_matrix prev(x.rows(), x.cols());
  prev.row(0) = Eigen::Map<const row_vector>(first.data(), x.cols());
  if (x.rows() > 1) prev.bottomRows(x.rows() - 1) = x.topRows(x.rows() - 1);
  return prev;
}

inline void mix_forward(const row_matrix& x, const row_matrix& prev, const parameter& mu, row_matrix& out) {
  out = x + ((prev - x).array().rowwise() * mu.value.row(0).array()).matrix();
}

// Accumulates into dx and dprev and into μ's gradient.
inline void mix_backward(const row_matrix& dout, const row_matrix& x, const row_matrix& prev, parameter& mu,
                         row_matrix& dx, row_matrix& dprev) {
  mu.grad.row(0) += (dout.array() * (prev - x).array()).colwise().sum().matrix();
  const auto m = mu.value.row(0).array();
  dx.array() += dout.array().rowwise() * (1.f - m);
  dprev.array() += dout.array().rowwise() * m;
}

// dprev of a shifted block back onto x (rows 1..) and onto the state's shift vector (row 0).
inline void unshift_backward(const row_matrix& dprev, row_matrix& dx, std::span<float> dfirst) {
  if (dprev.rows() > 1) dx.topRows(dprev.rows() - 1) += dprev.bottomRows(dprev.rows() - 1);
  Eigen::Map<row_vector>(dfirst.data(), dprev.cols()) += dprev.row(0);
}

// A state's shift vector was the previous segment's last ln output (row 0's prev) and becomes this segment's last
// row: ∂L/∂(state after) flows into the last row; row 0's ∂prev is ∂L/∂(state before), written to dshift.
inline void state_shift_backward(const row_matrix& dprev, row_matrix& dx, std::vector<float>& dshift) {
  dx.row(dx.rows() - 1) += Eigen::Map<const row_vector>(dshift.data(), dx.cols());
  std::fill(dshift.begin(), dshift.end(), 0.f);
  unshift_backward(dprev, dx, dshift);
}

// ---- Products. `W` is an nn.Linear weight (out x in): y = x·Wᵀ. A LoRA factor (in x rank): y = x·A ----

// y = x·Wᵀ, on the pool's threads.
inline void linear_forward(const row_matrix& x, const parameter& W, row_matrix& y, thread_pool* pool = nullptr) {
  product(pool, y, x, W.value.transpose());
}

inline void linear_backward(const row_matrix& dy, const row_matrix& x, parameter& W, row_matrix& dx,
                            thread_pool* pool = nullptr) {
  product(pool, W.grad, dy.transpose(), x, true);
  product(pool, dx, dy, W.value, true);
}

// The same, returning ∂L/∂x.
inline row_matrix linear_backward(const row_matrix& dy, const row_matrix& x, parameter& W,
                                  thread_pool* pool = nullptr) {
  row_matrix dx = row_matrix::Zero(dy.rows(), W.value.cols());
  linear_backward(dy, x, W, dx, pool);
  return dx;
}

inline void lora_backward(const row_matrix& dy, const row_matrix& x, parameter& A, row_matrix& dx,
                          thread_pool* pool = nullptr) {
  product(pool, A.grad, x.transpose(), dy, true);
  product(pool, dx, dy, A.value.transpose(), true);
}

// ---- Activations ----

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
// d silu(p)/dp = σ(p)·(1 + p·(1 − σ(p)))
inline float silu_grad(float p) {
  const float s = sigmoid(p);
  return s * (1.f + p * (1.f - s));
}

// ---- Loss ----

// Mean cross-entropy of logits[t] against targets[t] (natural log). Writes dlogits = ∂loss/∂logits.
inline double cross_entropy(const row_matrix& logits, std::span<const std::int32_t> targets, row_matrix& dlogits) {
  const auto T = logits.rows(), V = logits.cols();
  dlogits.resize(T, V);
  double loss = 0;
  for (Eigen::Index t = 0; t < T; ++t) {
    const auto target = targets[static_cast<std::size_t>(t)];
    if (target < 0 || target >= V)
      throw error("target token id " + std::to_string(target) + " is out of range for vocabulary " + std::to_string(V));
    const float mx = logits.row(t).maxCoeff();
    const Eigen::ArrayXf e = (logits.row(t).array() - mx).exp().transpose();
    const double sum = e.cast<double>().sum();
    loss += std::log(sum) + mx - logits(t, target);
    dlogits.row(t) = (e / static_cast<float>(sum)).transpose() / static_cast<float>(T);
    dlogits(t, target) -= 1.f / static_cast<float>(T);
  }
  return loss / static_cast<double>(T);
}

// L2Wrap (spec/README.md §6): adds max(logits[t])·1e-4/(rows·scale) at each row's arg-max to dlogits.
inline void l2wrap(const row_matrix& logits, row_matrix& dlogits, double positions) {
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    Eigen::Index j = 0;
    const float mx = logits.row(t).maxCoeff(&j);
    dlogits(t, j) += static_cast<float>(mx * 1e-4 / positions);
  }
}

}  // namespace rwkv::train

#pragma once
// AdamW with the official trainers' parameter groups (spec/README.md §6), the learning-rate schedule (linear
// warmup, then cosine to a final rate), global gradient-norm clipping, and the check that stops training on a
// non-finite loss or gradient naming the step and the tensor.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

struct adamw_options {
  float beta1 = 0.9f, beta2 = 0.99f, eps = 1e-18f;  // the official trainers' defaults
  float weight_decay = 0.f;                         // applied only to matrices named *.weight (see decays())
};

// The official groups: weight decay only on `.weight` tensors that are matrices once squeezed (emb and head
// included, norms and vectors not); learning-rate scales for the decay and bonus vectors.
inline bool decays(const parameter& p) {
  return p.shape.size() >= 2 && p.name.size() > 7 && p.name.ends_with(".weight") && p.value.rows() > 1;
}
inline float lr_scale(const parameter& p) {
  if (p.name.ends_with("att.w0")) return 2.f;          // RWKV-7
  if (p.name.ends_with("att.time_decay")) return 2.f;  // RWKV-4/5/6
  if (p.name.ends_with("att.time_first")) return 3.f;  // RWKV-4/5.1
  return 1.f;
}

class adamw {
 public:
  adamw(parameter_set& params, adamw_options o = {}) : params_(&params), o_(o) {
    for (const auto& p : params.all()) {
      m_.push_back(row_matrix::Zero(p.value.rows(), p.value.cols()));
      v_.push_back(row_matrix::Zero(p.value.rows(), p.value.cols()));
    }
  }

  // One update with learning rate lr (scaled per group) from the accumulated gradients.
  void step(float lr) {
    ++t_;
    const float c1 = 1.f - std::pow(o_.beta1, static_cast<float>(t_));
    const float c2 = 1.f - std::pow(o_.beta2, static_cast<float>(t_));
    std::size_t i = 0;
    for (auto& p : params_->all()) {
      auto &m = m_[i], &v = v_[i];
      ++i;
      const float rate = lr * lr_scale(p);
      if (o_.weight_decay > 0 && decays(p)) p.value *= 1.f - rate * o_.weight_decay;
      m = o_.beta1 * m + (1.f - o_.beta1) * p.grad;
      v = o_.beta2 * v + (1.f - o_.beta2) * p.grad.cwiseAbs2();
      p.value.array() -= rate * (m.array() / c1) / ((v.array() / c2).sqrt() + o_.eps);
    }
  }

  std::int64_t steps() const noexcept { return t_; }
  // The moments, in parameter order (for checkpoints of the optimizer state).
  std::vector<row_matrix>& first_moments() noexcept { return m_; }
  std::vector<row_matrix>& second_moments() noexcept { return v_; }
  const std::vector<row_matrix>& first_moments() const noexcept { return m_; }
  const std::vector<row_matrix>& second_moments() const noexcept { return v_; }
  void set_steps(std::int64_t t) noexcept { t_ = t; }

 private:
  parameter_set* params_;
  adamw_options o_;
  std::vector<row_matrix> m_, v_;
  std::int64_t t_ = 0;
};

// Linear warmup over `warmup` steps, then a cosine from lr to lr_final at step `total`.
inline float scheduled_lr(std::int64_t step, std::int64_t warmup, std::int64_t total, float lr, float lr_final) {
  if (step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (total <= warmup) return lr;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
  return static_cast<float>(lr_final + (lr - lr_final) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

// The global L2 norm of all gradients; scales them to max_norm when above it (max_norm ≤ 0: no clipping).
// Throws, naming the step and the first tensor, when a gradient is NaN or infinite.
inline double clip_gradients(parameter_set& params, double max_norm, std::int64_t step) {
  double sq = 0;
  for (const auto& p : params.all()) {
    const double s = p.grad.cast<double>().squaredNorm();
    if (!std::isfinite(s))
      throw error(
          "training step " + std::to_string(step) + ": non-finite gradient (the weights before this step are kept)", {},
          p.name);
    sq += s;
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm)
    for (auto& p : params.all()) p.grad *= static_cast<float>(max_norm / norm);
  return norm;
}

inline void check_loss(double loss, std::int64_t step) {
  if (!std::isfinite(loss))
    throw error("training step " + std::to_string(step) + ": the loss is " + std::to_string(loss));
}

}  // namespace rwkv::train

#pragma once
// LayerNorm and per-head GroupNorm exactly as PyTorch computes them: biased variance, eps added to it.

#include <cmath>
#include <cstddef>

namespace rwkv::kernel::cpu {

inline void layer_norm(const float* x, const float* weight, const float* bias, float* out, std::size_t n,
                       float eps = 1e-5f) {
  float mean = 0.f;
  for (std::size_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<float>(n);
  float var = 0.f;
  for (std::size_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<float>(n);
  const float inv = 1.f / std::sqrt(var + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

// GroupNorm over `groups` consecutive slices of `size` channels, then a per-channel affine.
inline void group_norm(const float* x, const float* weight, const float* bias, float* out, std::size_t groups,
                       std::size_t size, float eps) {
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t o = g * size;
    layer_norm(x + o, weight + o, bias + o, out + o, size, eps);
  }
}

}  // namespace rwkv::kernel::cpu

#pragma once
// LayerNorm and per-head GroupNorm exactly as PyTorch computes them: biased variance, eps added to it
// (the arithmetic is math::layer_norm, shared with the device code).

#include <cstddef>

#include "rwkv/kernel/math.hpp"

namespace rwkv::kernel::cpu {

inline void layer_norm(const float* x, const float* weight, const float* bias, float* out, std::size_t n,
                       float eps = 1e-5f) {
  math::layer_norm(x, weight, bias, out, n, eps);
}

// GroupNorm over `groups` consecutive slices of `size` channels, then a per-channel affine.
inline void group_norm(const float* x, const float* weight, const float* bias, float* out, std::size_t groups,
                       std::size_t size, float eps) {
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t o = g * size;
    math::layer_norm(x + o, weight + o, bias + o, out + o, size, eps);
  }
}

}  // namespace rwkv::kernel::cpu

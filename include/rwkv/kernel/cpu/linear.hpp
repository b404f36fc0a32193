#pragma once
// y = W·x (one token) and Y = X·Wᵀ (T tokens) for weights stored as f32, bf16 or f16, computed in f32.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/half.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/kernel/cpu/simd.hpp"

namespace rwkv::kernel::cpu {

using rwkv::row_matrix;

namespace detail {

// bf16 row · x with the pair trick: a 32-bit lane holds two bf16 (even element low, odd high), so
// `lane << 16` is the even element and `lane & 0xFFFF0000` the odd one, both exact f32. x is pre-split into
// its even and odd elements so both halves meet their partner with plain vector loads.
template <class Arch>
inline float dot_bf16_pairs(const bf16* row, const float* x_even, const float* x_odd, std::size_t pairs) noexcept {
  using FB = xsimd::batch<float, Arch>;
  using UB = xsimd::batch<std::uint32_t, Arch>;
  constexpr std::size_t W = FB::size;
  const auto* lanes = reinterpret_cast<const std::uint32_t*>(row);
  const UB hi_mask(0xFFFF0000u);
  FB acc0(0.f), acc1(0.f);
  std::size_t i = 0;
  for (; i + W <= pairs; i += W) {
    UB u = UB::load_unaligned(lanes + i);
    acc0 = xsimd::fma(xsimd::bitwise_cast<FB>(u << 16), FB::load_unaligned(x_even + i), acc0);
    acc1 = xsimd::fma(xsimd::bitwise_cast<FB>(u & hi_mask), FB::load_unaligned(x_odd + i), acc1);
  }
  float s = reduce_sum<Arch>(acc0 + acc1);
  for (; i < pairs; ++i) s += to_float(row[2 * i]) * x_even[i] + to_float(row[2 * i + 1]) * x_odd[i];
  return s;
}

template <class T>
inline void widen_rows(const matrix<T>& w, std::int64_t r0, std::int64_t nr, float* out) {
  const std::size_t n = static_cast<std::size_t>(nr * w.cols());
  const T* src = w.row(r0);
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(out, src, n * sizeof(float));
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = to_float(src[i]);
  }
}

}  // namespace detail

// y[r] = Σ_c W[r][c]·x[c] for rows [r0, r1)
template <class Arch, class T>
void matvec_rows(const matrix<T>& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) {
  const auto cols = static_cast<std::size_t>(w.cols());
  if constexpr (std::is_same_v<T, float>) {
    for (std::int64_t r = r0; r < r1; ++r) y[r] = dot<Arch>(w.row(r), x, cols);
  } else if constexpr (std::is_same_v<T, bf16>) {
    const std::size_t pairs = cols / 2;
    std::vector<float> xe(pairs), xo(pairs);
    for (std::size_t i = 0; i < pairs; ++i) {
      xe[i] = x[2 * i];
      xo[i] = x[2 * i + 1];
    }
    const bool odd = cols % 2 != 0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const bf16* row = w.row(r);
      float s;
      if (reinterpret_cast<std::uintptr_t>(row) % 4 == 0) {
        s = detail::dot_bf16_pairs<Arch>(row, xe.data(), xo.data(), pairs);
      } else {
        s = 0.f;
        for (std::size_t i = 0; i < 2 * pairs; ++i) s += to_float(row[i]) * x[i];
      }
      if (odd) s += to_float(row[cols - 1]) * x[cols - 1];
      y[r] = s;
    }
  } else {
    constexpr std::size_t block = 256;
    float buf[block];
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* row = w.row(r);
      float s = 0.f;
      for (std::size_t c0 = 0; c0 < cols; c0 += block) {
        const std::size_t n = std::min(block, cols - c0);
        for (std::size_t i = 0; i < n; ++i) buf[i] = to_float(row[c0 + i]);
        s += dot<Arch>(buf, x + c0, n);
      }
      y[r] = s;
    }
  }
}

// y = W·x, rows split across the pool.
template <class Arch, class T>
void matvec(const matrix<T>& w, const float* x, float* y, thread_pool* pool = nullptr) {
  // Below ~64K weights the fork-join costs more than it saves.
  if (!pool || w.rows() * w.cols() < (1 << 16)) return matvec_rows<Arch>(w, x, y, 0, w.rows());
  parallel_for(pool, w.rows(), [&](std::int64_t r0, std::int64_t r1) { matvec_rows<Arch>(w, x, y, r0, r1); });
}

// Columns [r0, r1) of Y (T x rows) = X (T x cols) · W[r0:r1]ᵀ
template <class T>
void matmul_rows(const matrix<T>& w, const row_matrix& x, row_matrix& y, std::int64_t r0, std::int64_t r1) {
  using map_t = Eigen::Map<const row_matrix>;
  if constexpr (std::is_same_v<T, float>) {
    y.middleCols(r0, r1 - r0).noalias() = x * map_t(w.row(r0), r1 - r0, w.cols()).transpose();
  } else {
    // Widen a panel of rows at a time so the f32 copy stays in cache, then one GEMM per panel.
    const std::int64_t panel = std::max<std::int64_t>(16, (1 << 16) / std::max<std::int64_t>(1, w.cols()));
    std::vector<float> buf(static_cast<std::size_t>(std::min(panel, r1 - r0) * w.cols()));
    for (std::int64_t p0 = r0; p0 < r1; p0 += panel) {
      const std::int64_t nr = std::min(panel, r1 - p0);
      detail::widen_rows(w, p0, nr, buf.data());
      y.middleCols(p0, nr).noalias() = x * map_t(buf.data(), nr, w.cols()).transpose();
    }
  }
}

// Y (T x rows) = X (T x cols) · Wᵀ, output columns split across the pool.
template <class T>
void matmul(const matrix<T>& w, const row_matrix& x, row_matrix& y, thread_pool* pool = nullptr) {
  y.resize(x.rows(), w.rows());
  if (!pool) return matmul_rows(w, x, y, 0, w.rows());
  // Keep each thread's block a multiple of 16 rows of W so GEMM panels stay full.
  const std::int64_t blocks = (w.rows() + 15) / 16;
  parallel_for(pool, blocks,
               [&](std::int64_t b0, std::int64_t b1) { matmul_rows(w, x, y, b0 * 16, std::min(w.rows(), b1 * 16)); });
}

// Y = X·Wᵀ choosing the kernel by shape: one row (decode) is a matrix-vector product.
template <class Arch, class T>
void linear(const matrix<T>& w, const row_matrix& x, row_matrix& y, thread_pool* pool = nullptr) {
  if (x.rows() == 1) {
    y.resize(1, w.rows());
    matvec<Arch>(w, x.data(), y.data(), pool);
  } else {
    matmul(w, x, y, pool);
  }
}

}  // namespace rwkv::kernel::cpu

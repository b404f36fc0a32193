#pragma once
// RWKV-7 WKV recurrence for one head and one token (spec/v7.md (b)). S is N x N, row i = value channel,
// column j = key channel:  sa = S·a;  S[i][j] = S[i][j]·w[j] + sa[i]·b[j] + v[i]·k[j];  y = S·r (new state).

#include <cstddef>

#include "rwkv/kernel/cpu/simd.hpp"

namespace rwkv::kernel::cpu {

template <class Arch, int N>
inline void wkv7_step(float* S, const float* r, const float* w, const float* k, const float* v, const float* a,
                      const float* b, float* y) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  constexpr std::size_t vec_end = (N / W) * W;
  for (int i = 0; i < N; ++i) {
    float* row = S + static_cast<std::size_t>(i) * N;
    const float sa = dot<Arch>(row, a, N);
    const B bsa(sa), bv(v[i]);
    B acc(0.f);
    std::size_t j = 0;
    for (; j < vec_end; j += W) {
      B s = B::load_unaligned(row + j);
      s = xsimd::fma(s, B::load_unaligned(w + j),
                     xsimd::fma(bsa, B::load_unaligned(b + j), bv * B::load_unaligned(k + j)));
      s.store_unaligned(row + j);
      acc = xsimd::fma(s, B::load_unaligned(r + j), acc);
    }
    float yi = reduce_sum<Arch>(acc);
    for (; j < static_cast<std::size_t>(N); ++j) {
      row[j] = row[j] * w[j] + (sa * b[j] + v[i] * k[j]);
      yi += row[j] * r[j];
    }
    y[i] = yi;
  }
}

}  // namespace rwkv::kernel::cpu

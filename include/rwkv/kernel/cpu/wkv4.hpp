#pragma once
// RWKV-4 WKV recurrence for one token over n channels (spec/v4.md (b)), in the numerically stable form of the
// official reference: the running sums are kept as (aa, bb) scaled by e^{-pp}, pp the running maximum exponent.
//   output:  q = max(pp, u + k);   wkv = (e^{pp-q}·aa + e^{u+k-q}·v) / (e^{pp-q}·bb + e^{u+k-q})
//   update:  q = max(pp + w, k);   aa = e^{pp+w-q}·aa + e^{k-q}·v;  bb = e^{pp+w-q}·bb + e^{k-q};  pp = q
// Every exponent is ≤ 0, so nothing overflows for any k; the division is safe because one of the two exponentials
// is exactly 1. Vectorised over channels; channels are independent, so the result does not depend on the width.

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "rwkv/kernel/cpu/simd.hpp"

namespace rwkv::kernel::cpu {

// w = −exp(time_decay) and u = time_first (raw), both per channel; k, v this token's key and value; aa, bb, pp the
// state (updated in place); y receives wkv. y may not alias the state.
template <class Arch>
inline void wkv4_step(std::size_t n, const float* w, const float* u, const float* k, const float* v, float* aa,
                      float* bb, float* pp, float* y) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B kk = B::load_unaligned(k + i), vv = B::load_unaligned(v + i);
    const B a = B::load_unaligned(aa + i), b = B::load_unaligned(bb + i), p = B::load_unaligned(pp + i);
    const B uk = B::load_unaligned(u + i) + kk;
    B q = xsimd::max(p, uk);
    B e1 = xsimd::exp(p - q), e2 = xsimd::exp(uk - q);
    ((e1 * a + e2 * vv) / (e1 * b + e2)).store_unaligned(y + i);
    const B pw = B::load_unaligned(w + i) + p;
    q = xsimd::max(pw, kk);
    e1 = xsimd::exp(pw - q);
    e2 = xsimd::exp(kk - q);
    (e1 * a + e2 * vv).store_unaligned(aa + i);
    (e1 * b + e2).store_unaligned(bb + i);
    q.store_unaligned(pp + i);
  }
  for (; i < n; ++i) {
    const float uk = u[i] + k[i];
    float q = std::max(pp[i], uk);
    float e1 = std::exp(pp[i] - q), e2 = std::exp(uk - q);
    y[i] = (e1 * aa[i] + e2 * v[i]) / (e1 * bb[i] + e2);
    const float pw = w[i] + pp[i];
    q = std::max(pw, k[i]);
    e1 = std::exp(pw - q);
    e2 = std::exp(k[i] - q);
    aa[i] = e1 * aa[i] + e2 * v[i];
    bb[i] = e1 * bb[i] + e2;
    pp[i] = q;
  }
}

}  // namespace rwkv::kernel::cpu

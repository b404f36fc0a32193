#pragma once
// Small xsimd helpers shared by the CPU kernels (version differences of xsimd live here only).

#include <cstddef>
#include <cstdint>

#include <xsimd/xsimd.hpp>

namespace rwkv::kernel::cpu {

template <class Arch>
using fbatch = xsimd::batch<float, Arch>;

template <class Arch>
inline float reduce_sum(const fbatch<Arch>& b) noexcept {
#if XSIMD_VERSION_MAJOR >= 10
  return xsimd::reduce_add(b);
#else
  return xsimd::hadd(b);
#endif
}

// sum_i a[i] * b[i]
template <class Arch>
inline float dot(const float* a, const float* b, std::size_t n) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  B acc0(0.f), acc1(0.f);
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + i + W), B::load_unaligned(b + i + W), acc1);
  }
  for (; i + W <= n; i += W) acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
  float s = reduce_sum<Arch>(acc0 + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace rwkv::kernel::cpu

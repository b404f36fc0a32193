#pragma once
// 16-bit storage types. They are storage only: arithmetic always widens to float first (spec/formats.md:
// bf16 = upper half of a binary32, round-to-nearest-even on narrowing, NaN kept NaN).

#include <bit>
#include <cstdint>
#include <type_traits>

namespace rwkv {

struct bf16 {
  std::uint16_t bits = 0;
};
struct f16 {
  std::uint16_t bits = 0;
};

inline float to_float(float x) noexcept { return x; }

inline float to_float(bf16 x) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(x.bits) << 16); }

inline float to_float(f16 h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  std::uint32_t exp = (h.bits >> 10) & 0x1Fu;
  std::uint32_t mant = h.bits & 0x3FFu;
  std::uint32_t out;
  if (exp == 0x1F) {  // inf / nan
    out = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    out = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {  // zero
    out = sign;
  } else {  // subnormal: renormalise
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    out = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(out);
}

inline bf16 to_bf16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  const std::uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

inline f16 to_f16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return f16{static_cast<std::uint16_t>(sign | 0x7E00u)};   // NaN
  if (abs >= 0x477FF000u) return f16{static_cast<std::uint16_t>(sign | 0x7C00u)};  // rounds to inf
  if (abs < 0x38800000u) {                                                         // subnormal or zero in f16
    if (abs < 0x33000000u) return f16{static_cast<std::uint16_t>(sign)};
    const std::uint32_t exp = abs >> 23;
    const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - exp;  // 14 + (113 - exp) - 1
    std::uint32_t half = mant >> (shift);
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return f16{static_cast<std::uint16_t>(sign | half)};
  }
  std::uint32_t h = ((abs - 0x38000000u) >> 13);
  const std::uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return f16{static_cast<std::uint16_t>(sign | h)};
}

template <class T>
T from_float(float f) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else if constexpr (std::is_same_v<T, bf16>) {
    return to_bf16(f);
  } else {
    static_assert(std::is_same_v<T, f16>, "rwkv::from_float: unsupported storage type");
    return to_f16(f);
  }
}

}  // namespace rwkv

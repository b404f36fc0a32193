// bf16 / f16 conversions (include/rwkv/core/half.hpp) against independently known bit patterns, exhaustive
// 16-bit round trips, and (where the compiler has _Float16) a sweep against the hardware/libgcc conversion.
#define BOOST_TEST_MODULE half
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include <rwkv/core/half.hpp>

namespace {

using rwkv::bf16;
using rwkv::f16;

float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }
std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }

std::uint16_t f16_bits(float f) { return rwkv::to_f16(f).bits; }
std::uint16_t bf16_bits(float f) { return rwkv::to_bf16(f).bits; }
float f16_value(std::uint16_t b) { return rwkv::to_float(f16{b}); }
float bf16_value(std::uint16_t b) { return rwkv::to_float(bf16{b}); }

bool f16_is_nan(std::uint16_t b) { return (b & 0x7C00u) == 0x7C00u && (b & 0x03FFu) != 0; }
bool bf16_is_nan(std::uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x007Fu) != 0; }

// Reference narrowing to bf16 by value (not by bit tricks): pick the nearer of the two neighbouring bf16
// values in double precision, ties to the even mantissa. Finite inputs only.
std::uint16_t bf16_reference(float f) {
  const std::uint32_t u = bits_of(f);
  const std::uint16_t lo = static_cast<std::uint16_t>(u >> 16);  // truncation (toward zero)
  if ((u & 0xFFFFu) == 0) return lo;
  const std::uint16_t hi = static_cast<std::uint16_t>(lo + 1);  // next away from zero (may be inf)
  const double x = std::fabs(static_cast<double>(f));
  const double a = std::fabs(static_cast<double>(bf16_value(lo)));
  // One bf16 ulp at `lo` (2^(e-127-7), with subnormals sharing the exponent of the smallest normal), so that
  // the upper neighbour is computed without going through `hi` (which may be inf).
  const int e = std::max(static_cast<int>((lo >> 7) & 0xFFu), 1);
  const double b = a + std::ldexp(1.0, e - 127 - 7);
  const double da = x - a, db = b - x;
  if (da < db) return lo;
  if (db < da) return hi;
  return (lo & 1u) ? hi : lo;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(known_bit_patterns)

BOOST_AUTO_TEST_CASE(bf16_simple_values) {
  BOOST_TEST(bf16_bits(1.0f) == 0x3F80u);
  BOOST_TEST(bf16_bits(-1.0f) == 0xBF80u);
  BOOST_TEST(bf16_bits(2.0f) == 0x4000u);
  BOOST_TEST(bf16_bits(0.5f) == 0x3F00u);
  BOOST_TEST(bf16_bits(0.0f) == 0x0000u);
  BOOST_TEST(bf16_bits(-0.0f) == 0x8000u);  // sign of zero kept
  BOOST_TEST(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7F80u);
  BOOST_TEST(bf16_bits(-std::numeric_limits<float>::infinity()) == 0xFF80u);
  BOOST_TEST(bf16_value(0x3F80u) == 1.0f);
  BOOST_TEST(bf16_value(0xC040u) == -3.0f);
  BOOST_TEST(bf16_value(0x7F7Fu) == from_bits(0x7F7F0000u));  // largest finite bf16
  BOOST_TEST(bf16_value(0x0001u) == from_bits(0x00010000u));  // smallest subnormal bf16
  BOOST_TEST(std::signbit(bf16_value(0x8000u)));
  BOOST_TEST(bf16_value(0x8000u) == 0.0f);
}

BOOST_AUTO_TEST_CASE(bf16_round_to_nearest_even) {
  // Exactly halfway: ties to the even mantissa.
  BOOST_TEST(bf16_bits(from_bits(0x3F808000u)) == 0x3F80u);  // 0x3F80 is even: stays
  BOOST_TEST(bf16_bits(from_bits(0x3F818000u)) == 0x3F82u);  // 0x3F81 is odd: rounds up
  BOOST_TEST(bf16_bits(from_bits(0xBF808000u)) == 0xBF80u);  // same for negatives
  BOOST_TEST(bf16_bits(from_bits(0xBF818000u)) == 0xBF82u);
  // Just off the halfway point.
  BOOST_TEST(bf16_bits(from_bits(0x3F808001u)) == 0x3F81u);
  BOOST_TEST(bf16_bits(from_bits(0x3F807FFFu)) == 0x3F80u);
  BOOST_TEST(bf16_bits(from_bits(0x3F81FFFFu)) == 0x3F82u);
  // Rounding carries into the exponent: 0x3FFF8000 (just under 2) ties up to 2.0.
  BOOST_TEST(bf16_bits(from_bits(0x3FFF8000u)) == 0x4000u);
  // Largest float rounds to infinity (halfway or more above the largest finite bf16, 0x7F7F).
  BOOST_TEST(bf16_bits(std::numeric_limits<float>::max()) == 0x7F80u);
  BOOST_TEST(bf16_bits(from_bits(0x7F7F7FFFu)) == 0x7F7Fu);
  BOOST_TEST(bf16_bits(-std::numeric_limits<float>::max()) == 0xFF80u);
  // Subnormals round the same way.
  BOOST_TEST(bf16_bits(from_bits(0x00008000u)) == 0x0000u);
  BOOST_TEST(bf16_bits(from_bits(0x00018000u)) == 0x0002u);
  BOOST_TEST(bf16_bits(from_bits(0x00008001u)) == 0x0001u);
}

BOOST_AUTO_TEST_CASE(bf16_nan_stays_nan) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  BOOST_TEST(bf16_is_nan(bf16_bits(qnan)));
  BOOST_TEST(bf16_is_nan(bf16_bits(-qnan)));
  BOOST_TEST((bf16_bits(-qnan) & 0x8000u) != 0);
  // NaNs whose payload lies only in the low 16 bits must not collapse to infinity.
  BOOST_TEST(bf16_is_nan(bf16_bits(from_bits(0x7F800001u))));
  BOOST_TEST(bf16_is_nan(bf16_bits(from_bits(0xFF800001u))));
  BOOST_TEST(bf16_is_nan(bf16_bits(from_bits(0x7FFFFFFFu))));  // must not carry into the sign
  BOOST_TEST(std::isnan(bf16_value(0x7FC0u)));
  BOOST_TEST(std::isnan(bf16_value(0xFF81u)));
  BOOST_TEST(std::isinf(bf16_value(0x7F80u)));
}

BOOST_AUTO_TEST_CASE(f16_simple_values) {
  BOOST_TEST(f16_bits(1.0f) == 0x3C00u);
  BOOST_TEST(f16_bits(-2.0f) == 0xC000u);
  BOOST_TEST(f16_bits(0.5f) == 0x3800u);
  BOOST_TEST(f16_bits(0.0f) == 0x0000u);
  BOOST_TEST(f16_bits(-0.0f) == 0x8000u);
  BOOST_TEST(f16_bits(65504.0f) == 0x7BFFu);  // largest finite f16
  BOOST_TEST(f16_bits(-65504.0f) == 0xFBFFu);
  BOOST_TEST(f16_bits(std::ldexp(1.0f, -14)) == 0x0400u);     // smallest normal
  BOOST_TEST(f16_bits(std::ldexp(1.0f, -24)) == 0x0001u);     // smallest subnormal
  BOOST_TEST(f16_bits(std::ldexp(1023.0f, -24)) == 0x03FFu);  // largest subnormal
  BOOST_TEST(f16_bits(0.333251953125f) == 0x3555u);           // 1/3 rounded to f16, exactly representable
  BOOST_TEST(f16_bits(std::numeric_limits<float>::infinity()) == 0x7C00u);
  BOOST_TEST(f16_bits(-std::numeric_limits<float>::infinity()) == 0xFC00u);

  BOOST_TEST(f16_value(0x3C00u) == 1.0f);
  BOOST_TEST(f16_value(0x7BFFu) == 65504.0f);
  BOOST_TEST(f16_value(0x0001u) == std::ldexp(1.0f, -24));
  BOOST_TEST(f16_value(0x8001u) == -std::ldexp(1.0f, -24));
  BOOST_TEST(f16_value(0x03FFu) == std::ldexp(1023.0f, -24));
  BOOST_TEST(f16_value(0x0400u) == std::ldexp(1.0f, -14));
  BOOST_TEST(f16_value(0x3555u) == 0.333251953125f);
  BOOST_TEST(std::isinf(f16_value(0x7C00u)));
  BOOST_TEST(f16_value(0xFC00u) == -std::numeric_limits<float>::infinity());
  BOOST_TEST(std::signbit(f16_value(0x8000u)));
  BOOST_TEST(f16_value(0x8000u) == 0.0f);
}

BOOST_AUTO_TEST_CASE(f16_overflow_and_rounding) {
  // 65520 is halfway between 65504 (odd mantissa 0x3FF) and 65536 (inf): ties to even = inf.
  BOOST_TEST(f16_bits(65520.0f) == 0x7C00u);
  BOOST_TEST(f16_bits(-65520.0f) == 0xFC00u);
  BOOST_TEST(f16_bits(std::nextafter(65520.0f, 0.0f)) == 0x7BFFu);
  BOOST_TEST(f16_bits(65519.0f) == 0x7BFFu);
  BOOST_TEST(f16_bits(1e6f) == 0x7C00u);
  BOOST_TEST(f16_bits(std::numeric_limits<float>::max()) == 0x7C00u);
  // Normal range ties: 1 + 2^-11 is halfway between 1 (0x3C00, even) and 1 + 2^-10 (0x3C01).
  BOOST_TEST(f16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3C00u);
  BOOST_TEST(f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02u);  // 0x3C01 odd: ties up
  BOOST_TEST(f16_bits(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) == 0x3C01u);
  // Carry from the mantissa into the exponent: 2 - 2^-12 ties to 2.0.
  BOOST_TEST(f16_bits(2.0f - std::ldexp(1.0f, -11)) == 0x4000u);
}

BOOST_AUTO_TEST_CASE(f16_subnormal_rounding) {
  // 2^-25 is halfway between 0 and the smallest subnormal 2^-24: ties to even = 0.
  BOOST_TEST(f16_bits(std::ldexp(1.0f, -25)) == 0x0000u);
  BOOST_TEST(f16_bits(-std::ldexp(1.0f, -25)) == 0x8000u);
  // Just above halfway rounds up to the smallest subnormal.
  BOOST_TEST(f16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001u);
  BOOST_TEST(f16_bits(std::nextafter(std::ldexp(1.0f, -25), 0.0f)) == 0x0000u);
  // 3·2^-25 is halfway between 0x0001 (odd) and 0x0002: ties to even = 0x0002.
  BOOST_TEST(f16_bits(3 * std::ldexp(1.0f, -25)) == 0x0002u);
  BOOST_TEST(f16_bits(5 * std::ldexp(1.0f, -25)) == 0x0002u);  // between 2 (even) and 3
  // Tiny values flush to signed zero.
  BOOST_TEST(f16_bits(std::ldexp(1.0f, -30)) == 0x0000u);
  BOOST_TEST(f16_bits(-std::ldexp(1.0f, -30)) == 0x8000u);
  BOOST_TEST(f16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000u);
  // Largest subnormal + half an ulp ties up (0x03FF odd) into the smallest normal.
  BOOST_TEST(f16_bits(std::ldexp(2047.0f, -25)) == 0x0400u);
  BOOST_TEST(f16_bits(std::ldexp(2045.0f, -25)) == 0x03FEu);  // between 0x3FE (even) and 0x3FF
}

BOOST_AUTO_TEST_CASE(f16_nan_stays_nan) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  BOOST_TEST(f16_is_nan(f16_bits(qnan)));
  BOOST_TEST(f16_is_nan(f16_bits(-qnan)));
  BOOST_TEST((f16_bits(-qnan) & 0x8000u) != 0);
  BOOST_TEST(f16_is_nan(f16_bits(from_bits(0x7F800001u))));  // payload only in bits f16 cannot hold
  BOOST_TEST(f16_is_nan(f16_bits(from_bits(0xFFFFFFFFu))));
  BOOST_TEST(std::isnan(f16_value(0x7E00u)));
  BOOST_TEST(std::isnan(f16_value(0x7C01u)));
  BOOST_TEST(std::isnan(f16_value(0xFFFFu)));
}

BOOST_AUTO_TEST_CASE(from_float_dispatch) {
  BOOST_TEST(rwkv::from_float<float>(1.5f) == 1.5f);
  BOOST_TEST(rwkv::from_float<bf16>(1.0f).bits == 0x3F80u);
  BOOST_TEST(rwkv::from_float<f16>(1.0f).bits == 0x3C00u);
  BOOST_TEST(rwkv::to_float(2.5f) == 2.5f);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(exhaustive)

BOOST_AUTO_TEST_CASE(f16_every_pattern_round_trips) {
  int failures = 0, nans = 0;
  for (std::uint32_t b = 0; b <= 0xFFFFu; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = f16_value(h);
    if (f16_is_nan(h)) {
      ++nans;
      if (!std::isnan(f) || !f16_is_nan(f16_bits(f))) {
        if (++failures <= 10) BOOST_ERROR("f16 NaN 0x" << std::hex << b << " did not stay NaN");
      }
      continue;
    }
    const std::uint16_t back = f16_bits(f);
    if (back != h && ++failures <= 10) BOOST_ERROR("f16 0x" << std::hex << b << " -> " << f << " -> 0x" << back);
  }
  BOOST_TEST(nans == 2 * 1023);
  BOOST_TEST(failures == 0);
}

BOOST_AUTO_TEST_CASE(f16_to_float_is_exact) {
  // Every finite f16 is (-1)^s · m · 2^e; compare with ldexp on the integer fields.
  int failures = 0;
  for (std::uint32_t b = 0; b <= 0xFFFFu; ++b) {
    const std::uint32_t e = (b >> 10) & 0x1Fu, m = b & 0x3FFu;
    if (e == 0x1F) continue;
    float want = e == 0 ? std::ldexp(static_cast<float>(m), -24)
                        : std::ldexp(static_cast<float>(m | 0x400u), static_cast<int>(e) - 25);
    if (b & 0x8000u) want = -want;
    const float got = f16_value(static_cast<std::uint16_t>(b));
    if (bits_of(got) != bits_of(want) && ++failures <= 10)
      BOOST_ERROR("f16 0x" << std::hex << b << " -> " << got << " want " << want);
  }
  BOOST_TEST(failures == 0);
}

BOOST_AUTO_TEST_CASE(bf16_every_pattern_round_trips) {
  int failures = 0, nans = 0;
  for (std::uint32_t b = 0; b <= 0xFFFFu; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    const float f = bf16_value(h);
    if (bits_of(f) != (b << 16) && ++failures <= 10)
      BOOST_ERROR("bf16 0x" << std::hex << b << " widened to bits 0x" << bits_of(f));
    if (bf16_is_nan(h)) {
      ++nans;
      if (!std::isnan(f) || !bf16_is_nan(bf16_bits(f))) {
        if (++failures <= 10) BOOST_ERROR("bf16 NaN 0x" << std::hex << b << " did not stay NaN");
      }
      continue;
    }
    const std::uint16_t back = bf16_bits(f);
    if (back != h && ++failures <= 10) BOOST_ERROR("bf16 0x" << std::hex << b << " -> " << f << " -> 0x" << back);
  }
  BOOST_TEST(nans == 2 * 127);
  BOOST_TEST(failures == 0);
}

BOOST_AUTO_TEST_CASE(bf16_narrowing_sweep_against_reference) {
  // A strided sweep over all float bit patterns (the odd stride visits varied low halves), plus every
  // tie and near-tie pattern of a few mantissas in each exponent.
  int failures = 0;
  auto check = [&](std::uint32_t u) {
    const float f = from_bits(u);
    if (!std::isfinite(f)) return;
    const std::uint16_t got = bf16_bits(f), want = bf16_reference(f);
    if (got != want && ++failures <= 10)
      BOOST_ERROR("bf16 of bits 0x" << std::hex << u << " gave 0x" << got << " want 0x" << want);
  };
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFull; u += 4099) check(static_cast<std::uint32_t>(u));
  for (std::uint32_t hi = 0; hi <= 0xFFFFu; ++hi)
    for (std::uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) check((hi << 16) | lo);
  BOOST_TEST(failures == 0);
}

#ifdef __FLT16_MAX__
BOOST_AUTO_TEST_CASE(f16_narrowing_sweep_against_compiler) {
  // The compiler's float -> _Float16 conversion (F16C or libgcc's soft-float) is correctly rounded.
  int failures = 0;
  auto check = [&](std::uint32_t u) {
    const float f = from_bits(u);
    const _Float16 h = static_cast<_Float16>(f);
    std::uint16_t want;
    std::memcpy(&want, &h, 2);
    const std::uint16_t got = f16_bits(f);
    const bool ok = std::isnan(f) ? f16_is_nan(got) && (got & 0x8000u) == (want & 0x8000u) : got == want;
    if (!ok && ++failures <= 10)
      BOOST_ERROR("f16 of bits 0x" << std::hex << u << " gave 0x" << got << " want 0x" << want);
  };
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFull; u += 4099) check(static_cast<std::uint32_t>(u));
  // Every float exponent near the f16 range, at each f16 step (ulp, counted in float mantissa units; larger
  // for f16 subnormals) with the exact / tie / near-tie low bits.
  for (std::uint32_t e = 100; e <= 145; ++e) {
    const std::uint32_t ulp = e >= 113 ? 1u << 13 : e >= 104 ? 1u << (126 - e) : 1u << 22;
    const std::uint32_t half = ulp / 2;
    for (std::uint32_t base = 0; base < (1u << 23); base += ulp)
      for (std::uint32_t low : {0u, 1u, half - 1, half, half + 1, ulp - 1})
        for (std::uint32_t s : {0u, 0x80000000u}) check(s | (e << 23) | ((base + low) & 0x7FFFFFu));
  }
  BOOST_TEST(failures == 0);
}
#endif

BOOST_AUTO_TEST_SUITE_END()

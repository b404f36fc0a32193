#pragma once
// Small dense building blocks of the chunked WKV kernels (wkv7_chunked.hpp, wkv5_chunked.hpp): a register-blocked
// matrix product for the chunk-sized shapes (rows of at most a few hundred floats, everything in L1), the vector
// type for a row length, and a block transpose. Compile-time column counts let the compiler keep a whole tile of
// the output in registers; where the SIMD width does not divide the row length (head size 8 under AVX-512) the
// same code runs on scalars.

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__SSE__)
#include <immintrin.h>
#endif

#include "rwkv/kernel/cpu/simd.hpp"

namespace rwkv::kernel::cpu::chunk {

// The vector type used for rows of Cols floats: the xsimd batch of Arch when its width divides Cols, else float.
template <class Arch, int Cols>
struct lanes {
  static constexpr int simd = static_cast<int>(fbatch<Arch>::size);
  static constexpr bool vector = Cols % simd == 0;
  using type = std::conditional_t<vector, fbatch<Arch>, float>;
  static constexpr int width = vector ? simd : 1;
};

template <class V>
struct ops {  // xsimd batch
  static V load(const float* p) noexcept { return V::load_unaligned(p); }
  static void store(float* p, const V& v) noexcept { v.store_unaligned(p); }
  static V splat(float x) noexcept { return V(x); }
  static V fma(const V& a, const V& b, const V& c) noexcept { return xsimd::fma(a, b, c); }
  static V max(const V& a, const V& b) noexcept { return xsimd::max(a, b); }
  static V min(const V& a, const V& b) noexcept { return xsimd::min(a, b); }
  static float sum(const V& v) noexcept {
#if XSIMD_VERSION_MAJOR >= 10
    return xsimd::reduce_add(v);
#else
    return xsimd::hadd(v);
#endif
  }
};

template <>
struct ops<float> {
  static float load(const float* p) noexcept { return *p; }
  static void store(float* p, float v) noexcept { *p = v; }
  static float splat(float x) noexcept { return x; }
  static float fma(float a, float b, float c) noexcept { return a * b + c; }
  static float max(float a, float b) noexcept { return a < b ? b : a; }
  static float min(float a, float b) noexcept { return b < a ? b : a; }
  static float sum(float v) noexcept { return v; }
};

// Tile shape of gemm for an output of NC columns: NB vectors per row, MR rows, MR·NB accumulators (16 of
// AVX-512's 32 registers, 12 of the 16 of narrower ISAs) plus the NB loaded vectors of B. Measured on Zen 5:
// 8 x 2 zmm runs at twice the speed of 4 x 4 (which GCC compiles into one load per FMA).
template <class Arch, int NC>
struct tile_shape {
  using L = lanes<Arch, NC>;
  static constexpr int per_row = NC / L::width;
  static constexpr int nb_max = L::vector ? 2 : 16;
  static constexpr int nb = per_row < nb_max ? per_row : nb_max;
  static constexpr int acc = !L::vector ? 64 : L::width >= 16 ? 16 : 12;
  static constexpr int mr = acc / nb < 8 ? acc / nb : 8;
  static_assert(per_row % nb == 0, "row length must be a multiple of the tile width");
};

// One MR x (NB vectors) tile of C = init + A·B (see gemm).
template <class V, int MR, int NB>
inline void gemm_tile(int K, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs, const float* B, std::ptrdiff_t ldb,
                      float* C, std::ptrdiff_t ldc, const float* I, std::ptrdiff_t ldi, const float* row_scale,
                      const float* col_scale) noexcept {
  using O = ops<V>;
  constexpr int W = sizeof(V) / sizeof(float);
  V c[MR][NB];
  if (I) {
    V cs[NB];
    for (int n = 0; n < NB; ++n) cs[n] = col_scale ? O::load(col_scale + n * W) : O::splat(1.f);
    for (int m = 0; m < MR; ++m) {
      const V rs = O::splat(row_scale ? row_scale[m] : 1.f);
      for (int n = 0; n < NB; ++n) c[m][n] = O::load(I + m * ldi + n * W) * rs * cs[n];
    }
  } else {
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NB; ++n) c[m][n] = O::splat(0.f);
  }
  for (int k = 0; k < K; ++k) {
    V b[NB];
    for (int n = 0; n < NB; ++n) b[n] = O::load(B + k * ldb + n * W);
    const float* a = A + k * acs;
    for (int m = 0; m < MR; ++m) {
      const V am = O::splat(a[m * ars]);
      for (int n = 0; n < NB; ++n) c[m][n] = O::fma(am, b[n], c[m][n]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) O::store(C + m * ldc + n * W, c[m][n]);
}

template <class V, int NB, int R>
inline void gemm_rows_tail(int rows, int K, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs, const float* B,
                           std::ptrdiff_t ldb, float* C, std::ptrdiff_t ldc, const float* I, std::ptrdiff_t ldi,
                           const float* row_scale, const float* col_scale) noexcept {
  if constexpr (R > 0) {
    if (rows == R)
      gemm_tile<V, R, NB>(K, A, ars, acs, B, ldb, C, ldc, I, ldi, row_scale, col_scale);
    else
      gemm_rows_tail<V, NB, R - 1>(rows, K, A, ars, acs, B, ldb, C, ldc, I, ldi, row_scale, col_scale);
  }
}

// C (M x NC) = init + A (M x K) · B (K x NC), where
//   A(m, k) = A[m·ars + k·acs] (any layout: row-major, or a transposed view with ars = 1),
//   row k of B at B + k·ldb, row m of C at C + m·ldc (NC contiguous floats each),
//   init = 0 without I, else I[m][n]·row_scale[m]·col_scale[n] (either scale may be null: 1).
// C may be I itself (same rows and stride): every tile reads its rows of I before it writes them.
template <class Arch, int NC>
inline void gemm(int M, int K, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs, const float* B,
                 std::ptrdiff_t ldb, float* C, std::ptrdiff_t ldc, const float* I = nullptr, std::ptrdiff_t ldi = 0,
                 const float* row_scale = nullptr, const float* col_scale = nullptr) noexcept {
  using S = tile_shape<Arch, NC>;
  using V = typename S::L::type;
  constexpr int MR = S::mr, NB = S::nb, W = S::L::width, step = NB * W;
  for (int n0 = 0; n0 < NC; n0 += step) {
    const float* cs = col_scale ? col_scale + n0 : nullptr;
    const float* in = I ? I + n0 : nullptr;
    int m = 0;
    for (; m + MR <= M; m += MR)
      gemm_tile<V, MR, NB>(K, A + m * ars, ars, acs, B + n0, ldb, C + m * ldc + n0, ldc, in ? in + m * ldi : nullptr,
                           ldi, row_scale ? row_scale + m : nullptr, cs);
    if (m < M)
      gemm_rows_tail<V, NB, MR - 1>(M - m, K, A + m * ars, ars, acs, B + n0, ldb, C + m * ldc + n0, ldc,
                                    in ? in + m * ldi : nullptr, ldi, row_scale ? row_scale + m : nullptr, cs);
  }
}

// Whether the chunked kernels pay off on Arch (benchmarks/wkv_bench.cpp, x86-64): with vectors of 8 or more floats
// (AVX2 with FMA, AVX-512) the register-blocked products beat the serial recurrence from a few tokens on; with
// 4-float SSE vectors and no FMA both forms ran at the same speed, so form::automatic stays serial there.
template <class Arch>
inline constexpr bool chunked_pays_off = fbatch<Arch>::size >= 8;

// Per-thread scratch of at least n floats, grown on demand and kept for later calls (the kernels never nest).
inline float* workspace(std::size_t n) {
  thread_local std::vector<float> ws;
  if (ws.size() < n) ws.resize(n);
  return ws.data();
}

namespace detail {

// In-register transposes of one square block: B x B floats at src (row stride lds) to dst (row stride ldd).
#if defined(__AVX512F__)
inline void transpose_block16(const float* src, std::ptrdiff_t lds, float* dst, std::ptrdiff_t ldd) noexcept {
  // Four rounds of the perfect shuffle (row i with row i+8: even output row takes the interleaved low halves,
  // odd the high halves); each round rotates the bits of (row, column) by one, four rounds swap them.
  alignas(64) static constexpr int lo_idx[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
  alignas(64) static constexpr int hi_idx[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i lo = _mm512_load_si512(lo_idx), hi = _mm512_load_si512(hi_idx);
  __m512 a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_loadu_ps(src + i * lds);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      b[2 * i] = _mm512_permutex2var_ps(a[i], lo, a[i + 8]);
      b[2 * i + 1] = _mm512_permutex2var_ps(a[i], hi, a[i + 8]);
    }
    for (int i = 0; i < 16; ++i) a[i] = b[i];
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, a[i]);
}
#endif

#if defined(__AVX__)
inline void transpose_block8(const float* src, std::ptrdiff_t lds, float* dst, std::ptrdiff_t ldd) noexcept {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}
#endif

#if defined(__SSE__)
inline void transpose_block4(const float* src, std::ptrdiff_t lds, float* dst, std::ptrdiff_t ldd) noexcept {
  __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds), r2 = _mm_loadu_ps(src + 2 * lds),
         r3 = _mm_loadu_ps(src + 3 * lds);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst, r0);
  _mm_storeu_ps(dst + ldd, r1);
  _mm_storeu_ps(dst + 2 * ldd, r2);
  _mm_storeu_ps(dst + 3 * ldd, r3);
}
#endif

template <int B, class Block>
inline bool transpose_blocks(int R, int Cn, const float* src, std::ptrdiff_t lds, float* dst, std::ptrdiff_t ldd,
                             Block block) noexcept {
  if (R % B != 0 || Cn % B != 0) return false;
  for (int r = 0; r < R; r += B)
    for (int c = 0; c < Cn; c += B) block(src + r * lds + c, lds, dst + c * ldd + r, ldd);
  return true;
}

}  // namespace detail

// dst[c][r] = src[r][c] for r < R, c < Cn (row strides lds, ldd): in square register blocks when the ISA has
// them and they tile the matrix, else element by element.
inline void transpose(int R, int Cn, const float* src, std::ptrdiff_t lds, float* dst, std::ptrdiff_t ldd) noexcept {
#if defined(__AVX512F__)
  if (detail::transpose_blocks<16>(R, Cn, src, lds, dst, ldd, detail::transpose_block16)) return;
#endif
#if defined(__AVX__)
  if (detail::transpose_blocks<8>(R, Cn, src, lds, dst, ldd, detail::transpose_block8)) return;
#endif
#if defined(__SSE__)
  if (detail::transpose_blocks<4>(R, Cn, src, lds, dst, ldd, detail::transpose_block4)) return;
#endif
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < Cn; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace rwkv::kernel::cpu::chunk

#pragma once
// y = W·x (one token) and Y = X·Wᵀ (T tokens) for weights stored as f32, bf16, f16, q8 or q4, computed in f32.
//
// The kernels below are written once. A storage type enters only through its weight_access<T>, a small
// accessor with two operations:
//   row_dot<Arch>(w, x)          prepared once per call and thread (the quantized formats zero-pad x to whole
//                                blocks and sum it per block);
//                                operator()(r) = row r of W · x
//   decode_rows(w, r0, nr, out)  rows [r0, r0 + nr) widened to float32 (GEMM panels, the embedding lookup)
// The quantized formats share one accessor: a row is a sequence of blocks, each dotted with x in float32
// (codes widened int8/4-bit → int32 → float, multiply-add) and scaled once per block.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/half.hpp"
#include "rwkv/core/quant.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/kernel/cpu/simd.hpp"

#if defined(__SSE4_1__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace rwkv::kernel::cpu {

using rwkv::row_matrix;

namespace detail {

// The x86 widening instructions this build may use for Arch (512, 256, 128 bits; 0: portable code).
template <class Arch>
constexpr int widen_bits() {
#if defined(__AVX512F__)
  if (std::is_base_of_v<xsimd::avx512f, Arch>) return 512;
#endif
#if defined(__AVX2__)
  if (std::is_base_of_v<xsimd::avx2, Arch>) return 256;
#endif
#if defined(__SSE4_1__)
  if (std::is_base_of_v<xsimd::sse4_1, Arch>) return 128;
#endif
  return 0;
}

// One batch of W = fbatch<Arch>::size int8 codes at p, as floats (sign-extended to int32, converted).
template <class Arch>
inline fbatch<Arch> widen_i8(const std::uint8_t* p) noexcept {
  using B = fbatch<Arch>;
  if constexpr (widen_bits<Arch>() == 512) {
#if defined(__AVX512F__)
    return B(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
#endif
  } else if constexpr (widen_bits<Arch>() == 256) {
#if defined(__AVX2__)
    return B(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
#endif
  } else if constexpr (widen_bits<Arch>() == 128) {
#if defined(__SSE4_1__)
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return B(_mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(v))));
#endif
  } else {
    alignas(64) float buf[B::size];
    for (std::size_t i = 0; i < B::size; ++i) buf[i] = static_cast<float>(static_cast<std::int8_t>(p[i]));
    return B::load_aligned(buf);
  }
}

// The low and the high nibbles of W consecutive bytes at p, as floats.
template <class Arch>
inline void widen_nibbles(const std::uint8_t* p, fbatch<Arch>& lo, fbatch<Arch>& hi) noexcept {
  using B = fbatch<Arch>;
  if constexpr (widen_bits<Arch>() == 512) {
#if defined(__AVX512F__)
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    lo = B(_mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(0x0F))));
    hi = B(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)));
#endif
  } else if constexpr (widen_bits<Arch>() == 256) {
#if defined(__AVX2__)
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    lo = B(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(0x0F))));
    hi = B(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)));
#endif
  } else if constexpr (widen_bits<Arch>() == 128) {
#if defined(__SSE4_1__)
    std::int32_t u;
    std::memcpy(&u, p, 4);
    const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(u));
    lo = B(_mm_cvtepi32_ps(_mm_and_si128(v, _mm_set1_epi32(0x0F))));
    hi = B(_mm_cvtepi32_ps(_mm_srli_epi32(v, 4)));
#endif
  } else {
    alignas(64) float l[B::size], h[B::size];
    for (std::size_t i = 0; i < B::size; ++i) {
      l[i] = static_cast<float>(p[i] & 0x0F);
      h[i] = static_cast<float>(p[i] >> 4);
    }
    lo = B::load_aligned(l);
    hi = B::load_aligned(h);
  }
}

// Whether widen_16<T, Arch> (T = bf16 or f16) has vector instructions in this build: bf16 widens by zero-extending
// to 32 bits and shifting (exact); f16 needs vcvtph2ps (F16C / AVX-512).
template <class T, class Arch>
constexpr bool has_widen_16() {
  if constexpr (std::is_same_v<T, bf16>) {
    return widen_bits<Arch>() != 0;
  } else {
#if defined(__F16C__)
    return widen_bits<Arch>() == 512 || widen_bits<Arch>() == 256;
#else
    return widen_bits<Arch>() == 512;
#endif
  }
}

// W = fbatch<Arch>::size consecutive bf16 or f16 values at p (any value, subnormals and specials included), as floats.
template <class T, class Arch>
inline fbatch<Arch> widen_16(const T* p) noexcept {
  static_assert(has_widen_16<T, Arch>(), "widen_16: no vector conversion for this storage type and architecture");
  (void)p;  // unused where every branch is compiled out
  if constexpr (std::is_same_v<T, bf16>) {
    if constexpr (widen_bits<Arch>() == 512) {
#if defined(__AVX512F__)
      const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      return fbatch<Arch>(_mm512_castsi512_ps(_mm512_slli_epi32(u, 16)));
#endif
    } else if constexpr (widen_bits<Arch>() == 256) {
#if defined(__AVX2__)
      const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return fbatch<Arch>(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)));
#endif
    } else {
#if defined(__SSE4_1__)
      const __m128i u = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
      return fbatch<Arch>(_mm_castsi128_ps(_mm_slli_epi32(u, 16)));
#endif
    }
  } else {
    if constexpr (widen_bits<Arch>() == 512) {
#if defined(__AVX512F__)
      return fbatch<Arch>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#endif
    } else {
#if defined(__F16C__)
      return fbatch<Arch>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
    }
  }
}

// row · x for a bf16 or f16 row: widened W at a time in registers where the build has the instructions, else
// through a float buffer of 256.
template <class T, class Arch>
inline float dot_16(const T* row, const float* x, std::size_t n) noexcept {
  if constexpr (has_widen_16<T, Arch>()) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    B acc0(0.f), acc1(0.f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      acc0 = xsimd::fma(widen_16<T, Arch>(row + i), B::load_unaligned(x + i), acc0);
      acc1 = xsimd::fma(widen_16<T, Arch>(row + i + W), B::load_unaligned(x + i + W), acc1);
    }
    for (; i + W <= n; i += W) acc0 = xsimd::fma(widen_16<T, Arch>(row + i), B::load_unaligned(x + i), acc0);
    float s = reduce_sum<Arch>(acc0 + acc1);
    // std::fma: the same rounding wherever the compiler would (or would not) contract or vectorise the tail, so
    // that the batched kernel below can repeat it bit for bit.
    for (; i < n; ++i) s = std::fma(to_float(row[i]), x[i], s);
    return s;
  } else {
    constexpr std::size_t block = 256;
    float buf[block];
    float s = 0.f;
    for (std::size_t c0 = 0; c0 < n; c0 += block) {
      const std::size_t m = std::min(block, n - c0);
      for (std::size_t i = 0; i < m; ++i) buf[i] = to_float(row[c0 + i]);
      s += dot<Arch>(buf, x + c0, m);
    }
    return s;
  }
}

// R float32 rows of W dotted with x at once, rows `stride` elements apart: out[q] = row q · x. R independent
// streams and accumulators keep more loads in flight than one row at a time (f32 matrix-vector products from
// memory: +15% with one thread on the 0.1B head). The same for bf16/f16 was slower than dot_16 (measured with
// gemv_bench), so those stay row by row.
template <class Arch, int R>
inline void dot_rows(const float* w, std::size_t stride, const float* x, std::size_t n, float* out) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  B acc[R];
  for (int q = 0; q < R; ++q) acc[q] = B(0.f);
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B xv = B::load_unaligned(x + i);
    for (int q = 0; q < R; ++q) acc[q] = xsimd::fma(B::load_unaligned(w + q * stride + i), xv, acc[q]);
  }
  for (int q = 0; q < R; ++q) {
    float s = reduce_sum<Arch>(acc[q]);
    for (std::size_t j = i; j < n; ++j) s += w[q * stride + j] * x[j];
    out[q] = s;
  }
}

// float16 scales (finite) to float32: vcvtph2ps on AVX-512, 16 at a time, else the exact bit trick (which
// compilers vectorise). The AVX-512 path converts whole vectors: it may read up to 15 entries past in[n) (the
// scale arrays of matrix<Q> carry that much padding) and write up to 15 past out[n) (size out to
// padded_scales(n)). A template on Arch, like the widening helpers, so that translation units built for
// different ISAs never define one inline function two ways.
inline std::size_t padded_scales(std::size_t n) noexcept { return (n + 15) / 16 * 16; }

template <class Arch>
inline void decode_scales(const f16* in, float* out, std::size_t n) noexcept {
  if constexpr (widen_bits<Arch>() == 512) {
#if defined(__AVX512F__)
    for (std::size_t i = 0; i < n; i += 16)
      _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
    return;
#endif
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = f16_finite_to_float(in[i]);
}

// Σ q_j·x_j over one block (codes of Q's layout, x: the block's 32 activations), lane-wise, unscaled.
template <QuantizedStorage Q, class Arch>
inline fbatch<Arch> block_dot(const std::uint8_t* codes, const float* x) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  static_assert(Q::block_size == 32, "the quantized kernels assume blocks of 32 weights");
  if constexpr (std::is_same_v<Q, q8>) {
    static_assert(32 % W == 0, "q8 kernel: the float batch must divide a block of 32");
    B s = widen_i8<Arch>(codes) * B::load_unaligned(x);
    for (std::size_t k = W; k < 32; k += W) s = xsimd::fma(widen_i8<Arch>(codes + k), B::load_unaligned(x + k), s);
    return s;
  } else {
    static_assert(16 % W == 0, "q4 kernel: the float batch must divide a half block of 16");
    B lo, hi;
    widen_nibbles<Arch>(codes, lo, hi);
    B s = xsimd::fma(hi, B::load_unaligned(x + 16), lo * B::load_unaligned(x));
    for (std::size_t k = W; k < 16; k += W) {
      widen_nibbles<Arch>(codes + k, lo, hi);
      s = xsimd::fma(lo, B::load_unaligned(x + k), s);
      s = xsimd::fma(hi, B::load_unaligned(x + 16 + k), s);
    }
    return s;
  }
}

}  // namespace detail

// How the kernels read weights of storage type T (see the top of this file).
template <class T>
struct weight_access;

template <>
struct weight_access<float> {
  template <class Arch>
  class row_dot {
   public:
    row_dot(const matrix<float>& w, const float* x) : w_(w), x_(x), cols_(static_cast<std::size_t>(w.cols())) {}
    float operator()(std::int64_t r) const noexcept { return dot<Arch>(w_.row(r), x_, cols_); }
    // Rows r .. r + 3 into y[0 .. 3].
    void rows4(std::int64_t r, float* y) const noexcept { detail::dot_rows<Arch, 4>(w_.row(r), cols_, x_, cols_, y); }

   private:
    const matrix<float>& w_;
    const float* x_;
    std::size_t cols_;
  };

  static void decode_rows(const matrix<float>& w, std::int64_t r0, std::int64_t nr, float* out) {
    std::memcpy(out, w.row(r0), static_cast<std::size_t>(nr * w.cols()) * sizeof(float));
  }
};

// bf16 and f16: widened to float32 in registers (detail::dot_16).
template <class T>
requires std::is_same_v<T, bf16> || std::is_same_v<T, f16>
struct weight_access<T> {
  template <class Arch>
  class row_dot {
   public:
    row_dot(const matrix<T>& w, const float* x) : w_(w), x_(x), cols_(static_cast<std::size_t>(w.cols())) {}
    float operator()(std::int64_t r) const noexcept { return detail::dot_16<T, Arch>(w_.row(r), x_, cols_); }

   private:
    const matrix<T>& w_;
    const float* x_;
    std::size_t cols_;
  };

  static void decode_rows(const matrix<T>& w, std::int64_t r0, std::int64_t nr, float* out) {
    const std::size_t n = static_cast<std::size_t>(nr * w.cols());
    const T* src = w.row(r0);
    for (std::size_t i = 0; i < n; ++i) out[i] = to_float(src[i]);
  }
};

// q8 and q4: row · x = Σ_b d_b·(Σ_j q_bj·x_bj) + Σ_b m_b·(Σ_j x_bj), the second sum only for formats with a
// minimum (q4), its per-block sums of x taken once per call.
template <QuantizedStorage Q>
struct weight_access<Q> {
  template <class Arch>
  class row_dot {
   public:
    row_dot(const matrix<Q>& w, const float* x) : w_(w), blocks_(static_cast<std::size_t>(w.blocks_per_row())) {
      // Per-thread buffers that only grow: a decode step allocates nothing after the first (one row_dot is alive
      // per thread at a time: matvec_rows runs them one after another).
      auto& buf = scratch();
      const std::size_t padded = detail::padded_scales(blocks_);
      for (auto* v : {&buf.scale, &buf.min})
        if (v->size() < padded) v->resize(padded, 0.f);
      scale_ = buf.scale.data();
      min_ = buf.min.data();
      if (w.padded_cols() != w.cols()) {  // padding codes meet zeros, so they add nothing
        if (buf.xpad.size() < static_cast<std::size_t>(w.padded_cols()))
          buf.xpad.resize(static_cast<std::size_t>(w.padded_cols()));
        std::fill(buf.xpad.begin(), buf.xpad.end(), 0.f);
        std::copy(x, x + w.cols(), buf.xpad.begin());
        x = buf.xpad.data();
      }
      x_ = x;
      if constexpr (Q::has_min) {
        if (buf.xsum.size() < blocks_) buf.xsum.resize(blocks_);
        xsum_ = buf.xsum.data();
        for (std::size_t b = 0; b < blocks_; ++b) {
          float s = 0.f;
          for (std::size_t j = 0; j < Q::block_size; ++j) s += x[b * Q::block_size + j];
          xsum_[b] = s;
        }
      }
    }

    float operator()(std::int64_t r) noexcept {
      using B = fbatch<Arch>;
      constexpr std::size_t bytes = Q::block_bytes, n = Q::block_size;
      detail::decode_scales<Arch>(w_.scales(r), scale_, blocks_);
      const std::uint8_t* c = w_.codes(r);
      B acc0(0.f), acc1(0.f);
      std::size_t b = 0;
      for (; b + 2 <= blocks_; b += 2) {
        acc0 = xsimd::fma(detail::block_dot<Q, Arch>(c + b * bytes, x_ + b * n), B(scale_[b]), acc0);
        acc1 = xsimd::fma(detail::block_dot<Q, Arch>(c + (b + 1) * bytes, x_ + (b + 1) * n), B(scale_[b + 1]), acc1);
      }
      if (b < blocks_) acc0 = xsimd::fma(detail::block_dot<Q, Arch>(c + b * bytes, x_ + b * n), B(scale_[b]), acc0);
      float s = reduce_sum<Arch>(acc0 + acc1);
      if constexpr (Q::has_min) {
        detail::decode_scales<Arch>(w_.mins(r), min_, blocks_);
        s += dot<Arch>(min_, xsum_, blocks_);
      }
      return s;
    }

   private:
    struct buffers {
      std::vector<float> xpad, xsum, scale, min;
    };
    static buffers& scratch() {
      thread_local buffers b;
      return b;
    }

    const matrix<Q>& w_;
    std::size_t blocks_;
    const float* x_ = nullptr;
    float *xsum_ = nullptr, *scale_ = nullptr, *min_ = nullptr;
  };

  static void decode_rows(const matrix<Q>& w, std::int64_t r0, std::int64_t nr, float* out) {
    w.decode_rows(r0, nr, out);
  }
};

namespace detail {

// Rows [r0, r0 + nr) of W as float32 (nr x cols, row-major).
template <class T>
inline void widen_rows(const matrix<T>& w, std::int64_t r0, std::int64_t nr, float* out) {
  weight_access<T>::decode_rows(w, r0, nr, out);
}

}  // namespace detail

// y[r] = Σ_c W[r][c]·x[c] for rows [r0, r1)
template <class Arch, class T>
void matvec_rows(const matrix<T>& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) {
  typename weight_access<T>::template row_dot<Arch> row_dot(w, x);
  std::int64_t r = r0;
  if constexpr (requires { row_dot.rows4(r, y); })
    for (; r + 4 <= r1; r += 4) row_dot.rows4(r, y + r);
  for (; r < r1; ++r) y[r] = row_dot(r);
}

// y = W·x, rows split across the pool.
template <class Arch, class T>
void matvec(const matrix<T>& w, const float* x, float* y, thread_pool* pool = nullptr) {
  // Below ~64K weights the fork-join costs more than it saves.
  if (!pool || w.rows() * w.cols() < (1 << 16)) return matvec_rows<Arch>(w, x, y, 0, w.rows());
  parallel_for(pool, w.rows(), [&](std::int64_t r0, std::int64_t r1) { matvec_rows<Arch>(w, x, y, r0, r1); });
}

// Bytes of W read per weight: the cost unit of the parallel_work items below.
template <class T>
constexpr double bytes_per_weight() {
  if constexpr (QuantizedStorage<T>)
    return (static_cast<double>(T::block_bytes) + (T::has_min ? 4 : 2)) / static_cast<double>(T::block_size);
  else
    return sizeof(T);
}

// y = W·x as one item of a fused parallel region (rows split). w, x and y must outlive the region.
template <class Arch, class T>
work_item matvec_work(const matrix<T>& w, const float* x, float* y) {
  return {w.rows(), static_cast<double>(w.cols()) * bytes_per_weight<T>(),
          [&w, x, y](std::int64_t r0, std::int64_t r1) { matvec_rows<Arch>(w, x, y, r0, r1); }};
}

// y[c0, c1) = Σ_r x[r]·A[r][c0, c1) for A (rows x cols, row-major): x·A over a range of columns, the shape of
// the low-rank (LoRA) factors, which are stored (in, out).
template <class Arch>
void vecmat_cols(const float* a, std::int64_t rows, std::int64_t cols, const float* x, float* y, std::int64_t c0,
                 std::int64_t c1) noexcept {
  using B = fbatch<Arch>;
  constexpr std::int64_t W = B::size;
  std::int64_t c = c0;
  for (; c + 2 * W <= c1; c += 2 * W) {
    B s0(0.f), s1(0.f);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* p = a + r * cols + c;
      const B xr(x[r]);
      s0 = xsimd::fma(xr, B::load_unaligned(p), s0);
      s1 = xsimd::fma(xr, B::load_unaligned(p + W), s1);
    }
    s0.store_unaligned(y + c);
    s1.store_unaligned(y + c + W);
  }
  for (; c + W <= c1; c += W) {
    B s(0.f);
    for (std::int64_t r = 0; r < rows; ++r) s = xsimd::fma(B(x[r]), B::load_unaligned(a + r * cols + c), s);
    s.store_unaligned(y + c);
  }
  for (; c < c1; ++c) {
    float s = 0.f;
    for (std::int64_t r = 0; r < rows; ++r) s += x[r] * a[r * cols + c];
    y[c] = s;
  }
}

// y = x·A (A rows x cols, float32, row-major) as one item of a fused parallel region (columns split in blocks of
// 32). a, x and y must outlive the region.
template <class Arch>
work_item vecmat_work(const float* a, std::int64_t rows, std::int64_t cols, const float* x, float* y) {
  constexpr std::int64_t block = 32;
  return {(cols + block - 1) / block, static_cast<double>(rows * block) * sizeof(float),
          [=](std::int64_t b0, std::int64_t b1) {
            vecmat_cols<Arch>(a, rows, cols, x, y, b0 * block, std::min(cols, b1 * block));
          }};
}

namespace detail {

// NR float32 rows of W against NB rows of X: out[q][b] = w[q] · x[b], each in the order of dot_16 (two
// accumulators over alternate vectors, a last whole vector into the first, their sum reduced, then the scalar
// tail), so that every product equals the matrix-vector product's bit for bit.
template <class Arch, int NR, int NB>
inline void dot_block(const float* const* w, const float* const* x, std::size_t n, float (&out)[NR][NB]) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  B acc0[NR][NB], acc1[NR][NB];
  // Unrolled by hand (the pragmas): left to itself GCC keeps the accumulators in memory in a large translation unit.
#pragma GCC unroll 2
  for (int q = 0; q < NR; ++q)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc0[q][b] = acc1[q][b] = B(0.f);
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const B x0 = B::load_unaligned(x[b] + i), x1 = B::load_unaligned(x[b] + i + W);
#pragma GCC unroll 2
      for (int q = 0; q < NR; ++q) {
        acc0[q][b] = xsimd::fma(B::load_unaligned(w[q] + i), x0, acc0[q][b]);
        acc1[q][b] = xsimd::fma(B::load_unaligned(w[q] + i + W), x1, acc1[q][b]);
      }
    }
  const bool one_more = i + W <= n;
  for (int q = 0; q < NR; ++q)
    for (int b = 0; b < NB; ++b) {
      if (one_more) acc0[q][b] = xsimd::fma(B::load_unaligned(w[q] + i), B::load_unaligned(x[b] + i), acc0[q][b]);
      float s = reduce_sum<Arch>(acc0[q][b] + acc1[q][b]);
      for (std::size_t j = one_more ? i + W : i; j < n; ++j) s = std::fma(w[q][j], x[b][j], s);
      out[q][b] = s;
    }
}

// Columns [r0, r1) of Y = X·Wᵀ for a decode batch (a few rows of X) and bf16/f16 weights: two rows of W at a time
// widened once into a buffer that stays in L1, then dotted with four rows of X at a time. A token's logits do not
// depend on the batch it is decoded in: each product is the matrix-vector product's (dot_16).
template <class Arch, class T>
void batch_matmul_rows(const matrix<T>& w, const row_matrix& x, row_matrix& y, std::int64_t r0, std::int64_t r1) {
  using B = fbatch<Arch>;
  constexpr std::size_t V = B::size;
  const auto n = static_cast<std::size_t>(w.cols());
  thread_local std::vector<float> buf;  // two widened rows; grows only
  if (buf.size() < 2 * n) buf.resize(2 * n);
  const std::size_t whole = n / V * V;
  auto widen = [&](std::int64_t r, float* out) {
    const T* row = w.row(r);
    for (std::size_t i = 0; i < whole; i += V) widen_16<T, Arch>(row + i).store_unaligned(out + i);
    for (std::size_t i = whole; i < n; ++i) out[i] = to_float(row[i]);
  };
  const std::int64_t rows_x = x.rows();
  auto block = [&]<int NR, int NB>(std::int64_t r, std::int64_t b0) {
    const float* wp[2] = {buf.data(), buf.data() + n};
    const float* xp[NB];
    for (int b = 0; b < NB; ++b) xp[b] = x.row(b0 + b).data();
    float out[NR][NB];
    dot_block<Arch, NR, NB>(wp, xp, n, out);
    for (int q = 0; q < NR; ++q)
      for (int b = 0; b < NB; ++b) y(b0 + b, r + q) = out[q][b];
  };
  auto rows = [&]<int NR>(std::int64_t r) {
    std::int64_t b0 = 0;
    for (; b0 + 4 <= rows_x; b0 += 4) block.template operator()<NR, 4>(r, b0);
    switch (rows_x - b0) {
      case 3:
        block.template operator()<NR, 3>(r, b0);
        break;
      case 2:
        block.template operator()<NR, 2>(r, b0);
        break;
      case 1:
        block.template operator()<NR, 1>(r, b0);
        break;
      default:
        break;
    }
  };
  std::int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    widen(r, buf.data());
    widen(r + 1, buf.data() + n);
    rows.template operator()<2>(r);
  }
  if (r < r1) {
    widen(r, buf.data());
    rows.template operator()<1>(r);
  }
}

// The largest batch batch_matmul_rows takes. Measured on the 0.1B RWKV-7 (bf16, 2 threads, Zen 5): at 8 rows it
// takes 0.8 of the time of widened panels and Eigen's GEMM, at 32 about the same, at 64 1.3 times as long.
inline constexpr std::int64_t batch_matmul_max_rows = 32;

}  // namespace detail

// Columns [r0, r1) of Y (T x rows) = X (T x cols) · W[r0:r1]ᵀ
template <class Arch, class T>
void matmul_rows(const matrix<T>& w, const row_matrix& x, row_matrix& y, std::int64_t r0, std::int64_t r1) {
  using map_t = Eigen::Map<const row_matrix>;
  if constexpr (std::is_same_v<T, float>) {
    y.middleCols(r0, r1 - r0).noalias() = x * map_t(w.row(r0), r1 - r0, w.cols()).transpose();
  } else {
    constexpr bool widens_16 = (std::is_same_v<T, bf16> || std::is_same_v<T, f16>)&&detail::has_widen_16<T, Arch>();
    if constexpr (widens_16)
      if (x.rows() <= detail::batch_matmul_max_rows) return detail::batch_matmul_rows<Arch>(w, x, y, r0, r1);
    // Widen a panel of rows at a time so the f32 copy stays in cache, then one GEMM per panel.
    const std::int64_t panel = std::max<std::int64_t>(16, (1 << 16) / std::max<std::int64_t>(1, w.cols()));
    thread_local std::vector<float> buf;  // grows only: repeated calls allocate nothing
    const auto need = static_cast<std::size_t>(std::min(panel, r1 - r0) * w.cols());
    if (buf.size() < need) buf.resize(need);
    for (std::int64_t p0 = r0; p0 < r1; p0 += panel) {
      const std::int64_t nr = std::min(panel, r1 - p0);
      if constexpr (widens_16) {
        // In vectors: the scalar loop of decode_rows cost as much as the GEMM.
        constexpr std::size_t V = fbatch<Arch>::size;
        const auto count = static_cast<std::size_t>(nr * w.cols());
        const T* src = w.row(p0);
        std::size_t i = 0;
        for (; i + V <= count; i += V) detail::widen_16<T, Arch>(src + i).store_unaligned(buf.data() + i);
        for (; i < count; ++i) buf[i] = to_float(src[i]);
      } else {
        weight_access<T>::decode_rows(w, p0, nr, buf.data());
      }
      y.middleCols(p0, nr).noalias() = x * map_t(buf.data(), nr, w.cols()).transpose();
    }
  }
}

// Y (T x rows) = X (T x cols) · Wᵀ, output columns split across the pool.
template <class Arch, class T>
void matmul(const matrix<T>& w, const row_matrix& x, row_matrix& y, thread_pool* pool = nullptr) {
  y.resize(x.rows(), w.rows());
  if (!pool) return matmul_rows<Arch>(w, x, y, 0, w.rows());
  // Keep each thread's block a multiple of 16 rows of W so GEMM panels stay full.
  const std::int64_t blocks = (w.rows() + 15) / 16;
  parallel_for(pool, blocks, [&](std::int64_t b0, std::int64_t b1) {
    matmul_rows<Arch>(w, x, y, b0 * 16, std::min(w.rows(), b1 * 16));
  });
}

// Y = X·Wᵀ choosing the kernel by shape: one row (decode) is a matrix-vector product.
template <class Arch, class T>
void linear(const matrix<T>& w, const row_matrix& x, row_matrix& y, thread_pool* pool = nullptr) {
  if (x.rows() == 1) {
    y.resize(1, w.rows());
    matvec<Arch>(w, x.data(), y.data(), pool);
  } else {
    matmul<Arch>(w, x, y, pool);
  }
}

}  // namespace rwkv::kernel::cpu

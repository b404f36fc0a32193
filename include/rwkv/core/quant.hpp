#pragma once
// Quantized weight storage: rwkv::q8 (int8) and rwkv::q4 (4-bit) blocks of 32 weights along a row, each block
// with its own float16 scale (and, for q4, its own float16 minimum). Weights are quantized once, at load, from
// the checkpoint's F32/F16/BF16 values, or read as they are from a file written by `rwkv-cli quantize`
// (io/quantized.hpp: the same blocks, so the same logits); arithmetic stays float32 (kernels widen codes to
// float and scale once per block; the recurrent state and every accumulation are float32, see precision.hpp).
//
// Formats (block b of row r covers columns [32b, 32b + 32); rows are padded to whole blocks):
//   q8  code q ∈ [-127, 127] (int8),   w = d·q         d = amax/127 rounded *up* to float16, q = round(w/d)
//   q4  code q ∈ [0, 15] (two a byte), w = d·q + m     m = min rounded *down* to float16,
//                                                     d = (max − m)/15 rounded *up* to float16, q = round((w−m)/d)
// Rounding the stored scale up (and q4's minimum down) before computing the codes means no weight is ever
// clipped: |w − ŵ| ≤ d/2 for every weight of the block (float16 scales of tiny blocks may be subnormal; the
// bound still holds because the codes are computed against the stored scale). q4 packs element j (0..15) of a
// block in the low nibble of byte j and element j+16 in the high nibble (rwkv.cpp/ggml's Q4_1 order), so one
// 16-byte load yields 32 codes as two runs of 16 consecutive weights.
//
// Why these forms. Measured by quantizing every model of tests/data (tiny-4v0, tiny-5v2, tiny-7v0: real trained
// byte-level models; v4/v5.1/v5.2/v6/v7-dev: random weights) and comparing with float32: the mean KL of the
// next-token distribution over tests/data/english.txt (quant_test prints the chosen formats' figures):
//   * q8, blocks of 32 vs one float32 scale per row: per-row KL is 1.25–2.4× higher on every model (tiny-4v0
//     7.2e-5 vs 3.1e-5, whose rows mix near-zero and large weights; tiny-5v2 3.9e-4 vs 3.2e-4; tiny-7v0 6.0e-6
//     vs 4.2e-6), blocks of 64 and 128 fall in between. Speed (AVX-512 matrix-vector, 1 thread): per-row is
//     1.3× faster on cache-resident matrices (768×768: 10.5 vs 14 µs) and ~10% faster on memory-bound ones
//     (65536×768 head: 1.43 vs 1.59 ms), the cost of one scale per 32 weights (34 vs 32 bytes, one extra
//     multiply-add). Blocks win: the accuracy gain holds on every model, an outlier then damages 32 weights
//     instead of a whole row (rwkv.cpp#12), and the layout is rwkv.cpp/ggml's Q8_0.
//   * q4, asymmetric min + scale vs symmetric Q4_0 (d = ±amax/8, q ∈ [−8, 7]): 8.7× lower KL on tiny-4v0
//     (2.2e-3 vs 1.9e-2), 1.14–1.26× lower on the other seven. Both extremes of a block are exact, so a one-sided
//     outlier does not coarsen the rest of its block. Not chosen: NF4 (QLoRA's normal-quantile codebook with an
//     absmax scale) was never better than Q4_0 (0.99–1.8× its KL: weights are not normal within a block);
//     blocks of 64 raised KL 1.2–1.4×; a symmetric grid of ±7 was worse than Q4_0 on seven models; a
//     least-squares search for the scale and minimum (llama.cpp k-quant style) lowered KL 1.1–1.4× on seven
//     models but raised it 3.3× on tiny-4v0 and costs ~50 trial quantizations per block at load. Cost: 5 bits
//     a weight (Q4_0: 4.5). Speed: with the weights streaming from memory (a whole model) q4 decodes fastest,
//     having 60% of q8's bytes; on a cache-resident matrix nibble unpacking makes it ~1.25× slower than q8.
// What is quantized: only what the models read with io::weight_reader::weight<weight_type>() — the large
// nn.Linear matrices (receptance, key, value, output, gate; FFN key/value/receptance), the embedding and the
// head. Everything else stays float32: layer-norm and group-norm parameters, token-shift mixes, decay
// parameters (w0, time_decay, time_first/faaaa), the LoRA factors (w1/w2, a1/a2, v1/v2, g1/g2), r_k, k_k, k_a.
// They are under 1% of the parameters, and they act multiplicatively or inside exponentials (a decay
// w = exp(−exp(·)) near 0.9999 turns a 1e-3 relative error into a different memory length; a LayerNorm gain
// scales every channel of a token), so quantizing them would cost accuracy for no memory (DESIGN.md: the
// state and w are float32). rwkv.cpp leaves the same tensors unquantized. Note from the same measurements:
// on the tiny byte-level models the embedding and head carry most of the quantization error (tiny-7v0: q4 KL
// 9.3e-4 with them quantized, 5.6e-6 without; q8 4.2e-6 vs 3.3e-8); rwkv.cpp keeps them in float16. A
// precision with a separate storage type for emb/head would be the next step if that matters.

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/core/tensor.hpp"

namespace rwkv {

// Exact float16 → float32 for finite values (normal and subnormal): the float16 exponent and mantissa moved
// into place are a float32 2^112 times too small. Branch-free, so loops over a row's scales vectorise. Scales
// and minimums are finite by construction; this is not a general to_float (infinities and NaN are not handled).
inline float f16_finite_to_float(f16 h) noexcept {
  const std::uint32_t bits =
      (static_cast<std::uint32_t>(h.bits & 0x8000u) << 16) | (static_cast<std::uint32_t>(h.bits & 0x7FFFu) << 13);
  return std::bit_cast<float>(bits) * 0x1p112f;
}

namespace detail {

// The next float16 above h (h finite).
inline f16 f16_next_up(f16 h) noexcept {
  if (h.bits == 0x8000u) return f16{1};                                      // −0 → smallest subnormal
  if (h.bits & 0x8000u) return f16{static_cast<std::uint16_t>(h.bits - 1)};  // negative: towards zero
  return f16{static_cast<std::uint16_t>(h.bits + 1)};
}

// The smallest float16 ≥ v, and the largest ≤ v (v finite; an infinite result means out of float16 range).
inline f16 f16_round_up(float v) noexcept {
  f16 h = to_f16(v);
  if (to_float(h) < v) h = f16_next_up(h);
  return h;
}
inline f16 f16_round_down(float v) noexcept {
  f16 h = f16_round_up(-v);
  h.bits ^= 0x8000u;
  return h;
}

}  // namespace detail

// int8 blocks of 32 weights, one float16 scale per block (w = d·q).
struct q8 {
  static constexpr std::int64_t block_size = 32;
  static constexpr std::int64_t block_bytes = 32;
  static constexpr bool has_min = false;
  static constexpr const char* name = "q8";

  // Quantizes x[0..n) (n ≤ 32; the rest of the block is padded with code 0). False when a value is not finite
  // or the scale overflows float16 (|w| > 8.3e6).
  static bool quantize_block(const float* x, std::int64_t n, std::uint8_t* codes, f16& scale, f16& /*min*/) noexcept {
    std::memset(codes, 0, block_bytes);
    scale = f16{0};
    float amax = 0.f;
    for (std::int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) return false;
      amax = std::max(amax, std::abs(x[i]));
    }
    scale = amax > 0.f ? detail::f16_round_up(amax / 127.f) : f16{0};
    const float d = to_float(scale);
    if (!std::isfinite(d)) return false;
    if (d == 0.f) return true;
    for (std::int64_t i = 0; i < n; ++i) {
      const float q = std::clamp(std::round(x[i] / d), -127.f, 127.f);
      codes[i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
    }
    return true;
  }

  // The integer code of element j (0..31) of a block.
  static int code(const std::uint8_t* codes, std::int64_t j) noexcept { return static_cast<std::int8_t>(codes[j]); }

  // The 32 weights of a block (scale d) as floats.
  static void decode_block(const std::uint8_t* codes, float d, float /*m*/, float* out) noexcept {
    for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(static_cast<std::int8_t>(codes[j]));
  }
};

// 4-bit blocks of 32 weights with a float16 scale and minimum per block (w = d·q + m, q ∈ [0, 15]).
struct q4 {
  static constexpr std::int64_t block_size = 32;
  static constexpr std::int64_t block_bytes = 16;
  static constexpr bool has_min = true;
  static constexpr const char* name = "q4";

  static bool quantize_block(const float* x, std::int64_t n, std::uint8_t* codes, f16& scale, f16& min) noexcept {
    std::memset(codes, 0, block_bytes);
    scale = min = f16{0};
    if (n <= 0) return true;
    float lo = x[0], hi = x[0];
    for (std::int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) return false;
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    min = detail::f16_round_down(lo);
    const float m = to_float(min);
    if (!std::isfinite(m) || !std::isfinite(to_float(to_f16(hi)))) return false;
    scale = hi > m ? detail::f16_round_up((hi - m) / 15.f) : f16{0};
    const float d = to_float(scale);
    if (!std::isfinite(d)) return false;
    if (d == 0.f) return true;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto q = static_cast<std::uint8_t>(std::clamp(std::round((x[i] - m) / d), 0.f, 15.f));
      codes[i % 16] |= static_cast<std::uint8_t>(i < 16 ? q : q << 4);
    }
    return true;
  }

  static int code(const std::uint8_t* codes, std::int64_t j) noexcept {
    return j < 16 ? codes[j] & 0x0F : codes[j - 16] >> 4;
  }

  static void decode_block(const std::uint8_t* codes, float d, float m, float* out) noexcept {
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>(codes[j] & 0x0F) + m;
      out[j + 16] = d * static_cast<float>(codes[j] >> 4) + m;
    }
  }
};

template <class T>
concept QuantizedStorage = std::is_same_v<T, q8> || std::is_same_v<T, q4>;

// A rows x cols weight matrix in a quantized format: for each row, its blocks' codes (blocks_per_row ·
// Q::block_bytes bytes, rows contiguous), and per block a float16 scale (and minimum for q4). Either quantized
// here (owned, codes 64-byte aligned) or over blocks already quantized (a pre-quantized file, io/quantized.hpp:
// the codes viewed in place, the scales too where they may be over-read, see from_blocks). Copies share the
// immutable storage.
template <QuantizedStorage Q>
class matrix<Q> {
 public:
  using format = Q;
  static constexpr std::int64_t block = Q::block_size;

  matrix() = default;

  // Quantizes a row-major rows x cols float matrix. Throws if a block's scale or minimum overflows float16.
  static matrix quantize(const float* values, std::int64_t rows, std::int64_t cols, const std::string& name = {}) {
    matrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.blocks_ = (cols + block - 1) / block;
    auto s = std::make_shared<storage>();
    const auto nblocks = static_cast<std::size_t>(rows * m.blocks_);
    s->codes.reset(static_cast<std::uint8_t*>(
        ::operator new[](std::max<std::size_t>(1, nblocks * Q::block_bytes), std::align_val_t{64})));
    // 16 spare entries: the kernels convert scales 16 at a time and may read past a row's last block.
    s->scales.resize(nblocks + scale_padding);
    if constexpr (Q::has_min) s->mins.resize(nblocks + scale_padding);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t b = 0; b < m.blocks_; ++b) {
        const auto i = static_cast<std::size_t>(r * m.blocks_ + b);
        f16 min{};
        const std::int64_t c0 = b * block;
        if (!Q::quantize_block(values + r * cols + c0, std::min(block, cols - c0), s->codes.get() + i * Q::block_bytes,
                               s->scales[i], min))
          throw error("cannot quantize to " + std::string(Q::name) + ": row " + std::to_string(r) + ", columns " +
                          std::to_string(c0) + ".. hold a non-finite value or exceed the float16 range of the scale",
                      {}, name);
        if constexpr (Q::has_min) s->mins[i] = min;
      }
    }
    m.codes_ = s->codes.get();
    m.scales_ = s->scales.data();
    if constexpr (Q::has_min) m.mins_ = s->mins.data();
    m.store_ = std::move(s);
    return m;
  }

  // Over blocks quantized before (a pre-quantized file): `codes` rows × blocks_per_row blocks of Q::block_bytes,
  // `scales` (and for q4 `mins`) rows × blocks_per_row little-endian float16, each finite (the caller checks).
  // Nothing is copied when the scales and minimums are 2-byte aligned and `padded` (at least 32 readable bytes
  // follow each array: the kernels convert 16 float16 at a time, up to 15 past a row's last block); otherwise
  // the scales and minimums are copied into padded arrays. The codes are always used in place (the kernels load
  // them unaligned). `owner` keeps the memory alive.
  static matrix from_blocks(const std::uint8_t* codes, const std::byte* scales, const std::byte* mins,
                            std::int64_t rows, std::int64_t cols, bool padded, std::shared_ptr<const void> owner) {
    matrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.blocks_ = (cols + block - 1) / block;
    auto s = std::make_shared<storage>();
    s->owner = std::move(owner);
    m.codes_ = codes;
    const auto nblocks = static_cast<std::size_t>(rows * m.blocks_);
    auto place = [&](const std::byte* src, std::vector<f16>& copy) -> const f16* {
      if (padded && reinterpret_cast<std::uintptr_t>(src) % alignof(f16) == 0) return reinterpret_cast<const f16*>(src);
      copy.resize(nblocks + scale_padding);
      if (nblocks) std::memcpy(copy.data(), src, nblocks * sizeof(f16));
      return copy.data();
    };
    m.scales_ = place(scales, s->scales);
    if constexpr (Q::has_min) m.mins_ = place(mins, s->mins);
    m.store_ = std::move(s);
    return m;
  }

  std::int64_t rows() const noexcept { return rows_; }
  std::int64_t cols() const noexcept { return cols_; }
  std::int64_t blocks_per_row() const noexcept { return blocks_; }
  std::int64_t padded_cols() const noexcept { return blocks_ * block; }

  // Row r's codes (blocks_per_row() blocks of Q::block_bytes), scales and (q4) minimums.
  const std::uint8_t* codes(std::int64_t r) const noexcept {
    return codes_ + static_cast<std::size_t>(r * blocks_ * Q::block_bytes);
  }
  const f16* scales(std::int64_t r) const noexcept { return scales_ + r * blocks_; }
  const f16* mins(std::int64_t r) const noexcept requires Q::has_min { return mins_ + r * blocks_; }

  // Weight (r, c) as the kernels see it.
  float at(std::int64_t r, std::int64_t c) const noexcept {
    const std::int64_t b = c / block;
    float w = f16_finite_to_float(scales(r)[b]) * static_cast<float>(Q::code(codes(r) + b * Q::block_bytes, c % block));
    if constexpr (Q::has_min) w += f16_finite_to_float(mins(r)[b]);
    return w;
  }

  // Rows [r0, r0 + nr) widened to float32, nr x cols row-major (padding dropped).
  void decode_rows(std::int64_t r0, std::int64_t nr, float* out) const noexcept {
    float buf[block];
    for (std::int64_t r = r0; r < r0 + nr; ++r, out += cols_) {
      const std::uint8_t* c = codes(r);
      const f16* d = scales(r);
      for (std::int64_t b = 0; b < blocks_; ++b, c += Q::block_bytes) {
        float m = 0.f;
        if constexpr (Q::has_min) m = f16_finite_to_float(mins(r)[b]);
        const std::int64_t c0 = b * block;
        if (c0 + block <= cols_) {
          Q::decode_block(c, f16_finite_to_float(d[b]), m, out + c0);
        } else {
          Q::decode_block(c, f16_finite_to_float(d[b]), m, buf);
          std::memcpy(out + c0, buf, static_cast<std::size_t>(cols_ - c0) * sizeof(float));
        }
      }
    }
  }

  // Bytes of codes, scales and minimums.
  std::size_t bytes() const noexcept {
    const auto n = static_cast<std::size_t>(rows_ * blocks_);
    return n * (static_cast<std::size_t>(Q::block_bytes) + sizeof(f16) * (Q::has_min ? 2 : 1));
  }

 private:
  struct aligned_delete {
    void operator()(std::uint8_t* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };
  // What this matrix owns: codes and scales quantized here or copied, and/or the memory viewed (owner).
  struct storage {
    std::unique_ptr<std::uint8_t[], aligned_delete> codes;
    std::vector<f16> scales, mins;
    std::shared_ptr<const void> owner;
  };

  static constexpr std::size_t scale_padding = 16;

  std::int64_t rows_ = 0, cols_ = 0, blocks_ = 0;
  const std::uint8_t* codes_ = nullptr;
  const f16* scales_ = nullptr;
  const f16* mins_ = nullptr;
  std::shared_ptr<const storage> store_;
};

}  // namespace rwkv

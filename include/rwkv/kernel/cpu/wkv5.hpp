#pragma once
// RWKV-5/6 WKV recurrence for one head and one token (spec/v5.md (b), spec/v6.md (b)). S is N x N, row i = key
// channel, column j = value channel (the reference's [key][value] layout). The output uses the state *before*
// this token plus the bonus u; then the state is decayed along the key dimension and the token is added:
//   y[j] = Σ_i r[i]·(u[i]·k[i]·v[j] + S[i][j]);   S[i][j] ← w[i]·S[i][j] + k[i]·v[j]
// RWKV-5 passes the same w for every token (per head broadcast to N channels, or per channel), RWKV-6 this
// token's data-dependent w.

#include <array>
#include <cstddef>

#include "rwkv/kernel/cpu/simd.hpp"

namespace rwkv::kernel::cpu {

template <class Arch, int N>
inline void wkv5_step(float* S, const float* r, const float* k, const float* v, const float* w, const float* u,
                      float* y) noexcept {
  using B = fbatch<Arch>;
  constexpr std::size_t W = B::size;
  constexpr std::size_t nb = static_cast<std::size_t>(N) / W;  // full batches per row (0 when N < W)
  constexpr std::size_t vec_end = nb * W;

  // Bonus term: (Σ_i r[i]·u[i]·k[i])·v[j]; it starts the accumulation of y.
  float bonus = 0.f;
  for (int i = 0; i < N; ++i) bonus += r[i] * u[i] * k[i];

  std::array<B, nb> acc;
  const B bb(bonus);
  for (std::size_t b = 0; b < nb; ++b) acc[b] = bb * B::load_unaligned(v + b * W);
  float tail[W > 1 ? W : 1];
  for (std::size_t j = vec_end; j < static_cast<std::size_t>(N); ++j) tail[j - vec_end] = bonus * v[j];

  for (int i = 0; i < N; ++i) {
    float* row = S + static_cast<std::size_t>(i) * N;
    const B br(r[i]), bk(k[i]), bw(w[i]);
    for (std::size_t b = 0; b < nb; ++b) {
      const std::size_t j = b * W;
      B s = B::load_unaligned(row + j);
      acc[b] = xsimd::fma(br, s, acc[b]);
      s = xsimd::fma(bw, s, bk * B::load_unaligned(v + j));
      s.store_unaligned(row + j);
    }
    for (std::size_t j = vec_end; j < static_cast<std::size_t>(N); ++j) {
      tail[j - vec_end] += r[i] * row[j];
      row[j] = w[i] * row[j] + k[i] * v[j];
    }
  }
  for (std::size_t b = 0; b < nb; ++b) acc[b].store_unaligned(y + b * W);
  for (std::size_t j = vec_end; j < static_cast<std::size_t>(N); ++j) y[j] = tail[j - vec_end];
}

}  // namespace rwkv::kernel::cpu

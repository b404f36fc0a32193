#pragma once
// RWKV-5/6 WKV over a whole sequence, chunk-parallel (spec/v5.md (d-ii), spec/v6.md (d)). Same inputs and results
// as T calls of wkv5_step; per chunk of Lc tokens the work is small dense matrix products. State [key][value].
//
// Per head and chunk, with cumulative decays P_τ = Π_{m≤τ} w_m per key channel (P_{-1} = 1):
//   R₀_τ = r_τ ⊙ P_{τ−1}       K̂_σ = k_σ / P_σ       K_end,σ = k_σ ⊙ Π_{m>σ} w_m
//   D[τ][σ] = R₀_τ · K̂_σ (σ < τ),   D[τ][τ] = Σ_i r_τ[i]·u[i]·k_τ[i] (the bonus),   0 above
//   Y = R₀ S + D V                     S ← diag(P_{L−1}) S + K_endᵀ V
// Decays are products of the float32 w, so every factor carries a relative error of a few Lc·ε, as in the serial
// recurrence. RWKV-5/6 decays are not bounded away from 0 (spec/v6.md (d)), so the factorization
// P_{τ−1}·(1/P_σ) is used only for the key channels whose decay over the chunk stays ≥ 1e-20 (1/P cannot
// overflow there); the others ("fast" channels) get their intra-chunk terms from explicit pairwise products
// Π_{σ<m<τ} w_m (vectorized over σ), exact and ≤ 1, which underflow harmlessly to 0. The inter-chunk factors P_{τ−1}
// and Π_{m>σ} w_m are ≤ 1 and always safe. Key channels are independent rows of the state, so the split is exact.
// RWKV-5.x passes the same decay row for every token (ldw = 0); RWKV-6 its per-token decays.
// Everything is float32, including the state carried between chunks.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "rwkv/kernel/cpu/chunk_gemm.hpp"

namespace rwkv::kernel::cpu {

// Chunk length (benchmarks/wkv_bench.cpp).
inline constexpr int wkv5_chunk_len = 16;

// form::automatic uses the chunked kernel from this many tokens on. Measured (benchmarks/wkv_bench.cpp, RWKV-6, 12
// heads of 64, AVX-512 and AVX2): ahead from about 4 tokens, ~1.5-2x faster at 8. Where chunked_pays_off is false
// (SSE-only builds) automatic never chunks.
template <class Arch>
inline constexpr std::int64_t wkv5_chunked_min_tokens = chunk::chunked_pays_off<Arch>
                                                            ? 8
                                                            : std::numeric_limits<std::int64_t>::max();

// Key channels whose decay over a chunk falls below this take the pairwise path.
inline constexpr float wkv5_chunk_min_decay = 1e-20f;

// Sequence form of wkv5_step for one head: T tokens whose r, k, v lie at r + t·ld (likewise k, v), decays at
// w + t·ldw (ldw = 0: the same decays for every token), bonus u (N). S (N x N, [key][value]) is the incoming state
// and receives the final one; y + t·ldy receives the output of token t. Any T ≥ 0 and any incoming state.
template <class Arch, int N, int Lc = wkv5_chunk_len>
void wkv5_chunked(float* S, std::int64_t T, const float* r, const float* k, const float* v, std::ptrdiff_t ld,
                  const float* w, std::ptrdiff_t ldw, const float* u, float* y, std::ptrdiff_t ldy) {
  static_assert(Lc >= 1 && Lc <= 64, "chunk length out of range");
  using lanes = chunk::lanes<Arch, N>;
  using V = typename lanes::type;
  using O = chunk::ops<V>;
  constexpr int W = lanes::width;
  constexpr int NV = N / W;                // vectors per row
  using lanes_c = chunk::lanes<Arch, Lc>;  // vectors along a chunk (over σ)
  using VL = typename lanes_c::type;
  using OL = chunk::ops<VL>;
  constexpr int WL = lanes_c::width;
  constexpr int NVL = Lc / WL;
  constexpr std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(Lc) * N;
  if (T <= 0) return;

  float* const R0 = chunk::workspace(static_cast<std::size_t>(5 * rows + 2 * Lc * Lc + N));
  float* const KH = R0 + rows;   // K̂                          Lc x N
  float* const KHt = KH + rows;  // K̂ᵀ                         N x Lc
  float* const KE = KHt + rows;  // K_end                      Lc x N
  float* const G = KE + rows;    // fast channels' pair terms  N x Lc
  float* const D = G + rows;     //                            Lc x Lc
  float* const E = D + Lc * Lc;  // identity                   Lc x Lc
  float* const P = E + Lc * Lc;  // P_{L−1}                    N
  int fast_idx[N];               // the fast key channels of a chunk
  std::fill(E, E + Lc * Lc, 0.f);
  for (int i = 0; i < Lc; ++i) E[i * Lc + i] = 1.f;

  for (std::int64_t t0 = 0; t0 < T; t0 += Lc) {
    const int n = static_cast<int>(std::min<std::int64_t>(Lc, T - t0));
    const auto at = [&](const float* base, std::ptrdiff_t stride, int tau) { return base + (t0 + tau) * stride; };
    const float* vc = at(v, ld, 0);
    float* yc = y + t0 * ldy;

    V p[NV], q[NV];
    for (int m = 0; m < NV; ++m) p[m] = q[m] = O::splat(1.f);
    const V floor = O::splat(wkv5_chunk_min_decay);
    for (int tau = 0; tau < n; ++tau) {
      const float *rt = at(r, ld, tau), *kt = at(k, ld, tau), *wt = at(w, ldw, tau);
      float *r0 = R0 + tau * N, *kh = KH + tau * N;
      for (int m = 0; m < NV; ++m) {
        const int j = m * W;
        O::store(r0 + j, O::load(rt + j) * p[m]);
        p[m] = p[m] * O::load(wt + j);
        O::store(kh + j, O::load(kt + j) / O::max(p[m], floor));  // finite; fast channels are cleared below
      }
    }
    for (int m = 0; m < NV; ++m) O::store(P + m * W, p[m]);
    for (int tau = n - 1; tau >= 0; --tau) {
      const float *kt = at(k, ld, tau), *wt = at(w, ldw, tau);
      float* ke = KE + tau * N;
      for (int m = 0; m < NV; ++m) {
        O::store(ke + m * W, O::load(kt + m * W) * q[m]);
        q[m] = q[m] * O::load(wt + m * W);
      }
    }
    int nfast = 0;
    for (int j = 0; j < N; ++j)
      if (!(P[j] >= wkv5_chunk_min_decay)) fast_idx[nfast++] = j;  // NaN decays count as fast (and stay NaN)
    for (int f = 0; f < nfast; ++f)
      for (int tau = 0; tau < n; ++tau) KH[tau * N + fast_idx[f]] = 0.f;

    // D: the factorized part, masked to σ < τ, the bonus on the diagonal, then the fast channels' pairs.
    chunk::transpose(Lc, N, KH, N, KHt, Lc);
    chunk::gemm<Arch, Lc>(n, N, R0, N, 1, KHt, Lc, D, Lc);
    for (int tau = 0; tau < n; ++tau) {
      const float *rt = at(r, ld, tau), *kt = at(k, ld, tau);
      V acc = O::splat(0.f);
      for (int m = 0; m < NV; ++m) {
        const int j = m * W;
        acc = O::fma(O::load(rt + j) * O::load(u + j), O::load(kt + j), acc);
      }
      float* d = D + tau * Lc;
      d[tau] = O::sum(acc);
      std::fill(d + tau + 1, d + Lc, 0.f);
    }
    if (nfast > 0) {
      // Fast channels, vectorized over σ: G_j[σ] = k_σ[j]·Π_{σ<m<τ} w_m[j] for σ < τ (0 for σ ≥ τ), advanced
      // one token at a time (G ← G·w_{τ−1}[j] + k_{τ−1}[j]·e_{τ−1}), then D[τ][:] += r_τ[j]·G_j.
      std::fill(G, G + nfast * Lc, 0.f);
      for (int tau = 1; tau < n; ++tau) {
        const float *rt = at(r, ld, tau), *kp = at(k, ld, tau - 1), *wp = at(w, ldw, tau - 1);
        const float* e = E + (tau - 1) * Lc;
        float* d = D + tau * Lc;
        VL acc[NVL];
        for (int m = 0; m < NVL; ++m) acc[m] = OL::load(d + m * WL);
        for (int f = 0; f < nfast; ++f) {
          const int j = fast_idx[f];
          const VL wj = OL::splat(wp[j]), kj = OL::splat(kp[j]), rj = OL::splat(rt[j]);
          float* g = G + f * Lc;
          for (int m = 0; m < NVL; ++m) {
            const VL gm = OL::fma(OL::load(e + m * WL), kj, OL::load(g + m * WL) * wj);
            OL::store(g + m * WL, gm);
            acc[m] = OL::fma(rj, gm, acc[m]);
          }
        }
        for (int m = 0; m < NVL; ++m) OL::store(d + m * WL, acc[m]);
      }
    }

    chunk::gemm<Arch, N>(n, N, R0, N, 1, S, N, yc, ldy);             // R₀ S
    chunk::gemm<Arch, N>(n, n, D, Lc, 1, vc, ld, yc, ldy, yc, ldy);  // + D V
    chunk::gemm<Arch, N>(N, n, KE, 1, N, vc, ld, S, N, S, N, P);     // S ← diag(P_{L−1}) S + K_endᵀ V
  }
}

}  // namespace rwkv::kernel::cpu

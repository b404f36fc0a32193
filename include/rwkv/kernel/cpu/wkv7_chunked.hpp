#pragma once
// RWKV-7 WKV over a whole sequence, chunk-parallel (spec/v7.md (d), "Chunked form"). Same inputs and results as
// T calls of wkv7_step, but per chunk of Lc tokens the work is a few small dense matrix products instead of
// T·N rank-1 updates that each stream the whole state through the load/store units.
//
// Per head, with the state transposed to X = Sᵀ ([key][value]) for the chunk, cumulative decays
// P_τ = Π_{m≤τ} w_m (per key channel; P_{-1} = 1) and rows r, w, k̃, v, a, b of the chunk's tokens:
//   Ã_τ = a_τ ⊙ P_{τ-1}   R̃_τ = r_τ ⊙ P_τ     B̂_σ = b_σ / P_σ   K̂_σ = k̃_σ / P_σ
//   A_ab = strictly-lower(Ã B̂ᵀ)  A_ak = strictly-lower(Ã K̂ᵀ)  B_rb = lower(R̃ B̂ᵀ)  B_rk = lower(R̃ K̂ᵀ)
//   (I − A_ab) U = Ã X + A_ak V        (forward substitution; row σ of U is sa_σ = S_{σ−1} a_σ)
//   Y = R̃ X + B_rb U + B_rk V
//   X ← diag(P_{L−1}) X + (b ⊙ P_{L−1}/P_σ)ᵀ U + (k̃ ⊙ P_{L−1}/P_σ)ᵀ V
// The factorization e^{λ_{τ−1}−λ_σ} = P_{τ−1}·(1/P_σ) is the spec's; its range is bounded because RWKV-7
// decays are > e^{−0.6066} ≈ 0.5453: 1/P ≤ 1.834^Lc (1.6e4 for Lc = 16). Cumulative decays are products of
// the float32 w (no log/exp round trip), so every factor carries a relative error of a few Lc·ε, as the serial
// recurrence does. The decay-to-the-end factors P_{L−1}/P_σ are formed as suffix products (never a quotient).
// A chunk whose cumulative decay falls below 1e-20 in some channel (decays outside RWKV-7's range) runs the
// serial recurrence instead, so the kernel is exact for any input, only slower there.
// Everything is float32, including the state carried between chunks.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "rwkv/kernel/cpu/chunk_gemm.hpp"
#include "rwkv/kernel/cpu/wkv7.hpp"

namespace rwkv::kernel::cpu {

// Chunk length. 16 keeps the intra-chunk matrices (2Lc x 2Lc) small next to the 4·Lc·N² state products; 32
// was slower on AVX-512 (benchmarks/wkv_bench.cpp).
inline constexpr int wkv7_chunk_len = 16;

// form::automatic uses the chunked kernel from this many tokens on. Measured (benchmarks/wkv_bench.cpp, 12 heads of
// 64, AVX-512 and AVX2): the chunked kernel is ahead from about 4 tokens and ~1.7x faster at 8; 8 leaves a margin.
// Where chunked_pays_off is false (SSE-only builds) automatic never chunks.
template <class Arch>
inline constexpr std::int64_t wkv7_chunked_min_tokens = chunk::chunked_pays_off<Arch>
                                                            ? 8
                                                            : std::numeric_limits<std::int64_t>::max();

// Cumulative decays below this run the chunk serially (1/P would leave the range where the factorization is
// safe; unreachable with RWKV-7's decays, whose product over a chunk of 16 is ≥ 6e-5).
inline constexpr float wkv7_chunk_min_decay = 1e-20f;

// Sequence form of wkv7_step for one head: T tokens whose per-position vectors lie at r + t·ld (likewise w, k, v,
// a, b; w is the decay itself, as for wkv7_step). S (N x N, [value][key]) is the incoming state and receives the
// final one; y + t·ldy receives the output of token t. Any T ≥ 0 and any incoming state.
template <class Arch, int N, int Lc = wkv7_chunk_len>
void wkv7_chunked(float* S, std::int64_t T, const float* r, const float* w, const float* k, const float* v,
                  const float* a, const float* b, std::ptrdiff_t ld, float* y, std::ptrdiff_t ldy) {
  static_assert(Lc >= 1 && Lc <= 64, "chunk length out of range");
  using lanes = chunk::lanes<Arch, N>;
  using V = typename lanes::type;
  using O = chunk::ops<V>;
  constexpr int W = lanes::width;
  constexpr int NV = N / W;  // vectors per row
  constexpr int L2 = 2 * Lc;
  constexpr std::ptrdiff_t rows2 = static_cast<std::ptrdiff_t>(L2) * N;
  if (T <= 0) return;

  float* const X = chunk::workspace(static_cast<std::size_t>(N * N + 6 * rows2 + L2 * L2 + N));
  // A chunk of n ≤ Lc tokens stacks its two row blocks at offset n, so a short last chunk costs in proportion to n.
  float* const AR = X + N * N;     // [Ã; R̃]                     2n x N
  float* const BK = AR + rows2;    // [B̂; K̂]                     2n x N
  float* const BKt = BK + rows2;   // BKᵀ                         N x 2Lc (columns ≥ 2n unused)
  float* const BKe = BKt + rows2;  // [b; k̃] ⊙ P_{L−1}/P_σ        2n x N
  float* const XU = BKe + rows2;   // [Ã X; R̃ X]                 2n x N
  float* const UV = XU + rows2;    // [U; V]                      2n x N
  float* const D = UV + rows2;     // [Ã; R̃]·[B̂; K̂]ᵀ            2n x 2Lc
  float* const P = D + L2 * L2;    // P_{L−1}                     N

  chunk::transpose(N, N, S, N, X, N);
  for (std::int64_t t0 = 0; t0 < T; t0 += Lc) {
    const int n = static_cast<int>(std::min<std::int64_t>(Lc, T - t0));
    const auto at = [&](const float* base, int tau) { return base + (t0 + tau) * ld; };

    // Prefix products forward, then the decay to the chunk's end backward; the running products of all N key
    // channels stay in registers (NV vectors) while the rows stream through.
    V p[NV], q[NV];
    for (int m = 0; m < NV; ++m) p[m] = q[m] = O::splat(1.f);
    for (int tau = 0; tau < n; ++tau) {
      const float *rt = at(r, tau), *wt = at(w, tau), *kt = at(k, tau), *vt = at(v, tau), *a_t = at(a, tau),
                  *bt = at(b, tau);
      float *ar = AR + tau * N, *rr = AR + (n + tau) * N, *bb = BK + tau * N, *kk = BK + (n + tau) * N,
            *vv = UV + (n + tau) * N;
      for (int m = 0; m < NV; ++m) {
        const int j = m * W;
        O::store(ar + j, O::load(a_t + j) * p[m]);
        p[m] = p[m] * O::load(wt + j);
        O::store(rr + j, O::load(rt + j) * p[m]);
        const V ip = O::splat(1.f) / p[m];
        O::store(bb + j, O::load(bt + j) * ip);
        O::store(kk + j, O::load(kt + j) * ip);
        O::store(vv + j, O::load(vt + j));
      }
    }
    for (int m = 0; m < NV; ++m) O::store(P + m * W, p[m]);
    if (!(*std::min_element(P, P + N) >= wkv7_chunk_min_decay)) {  // outside the safe range (or NaN): serially
      chunk::transpose(N, N, X, N, S, N);
      for (int tau = 0; tau < n; ++tau)
        wkv7_step<Arch, N>(S, at(r, tau), at(w, tau), at(k, tau), at(v, tau), at(a, tau), at(b, tau),
                           y + (t0 + tau) * ldy);
      chunk::transpose(N, N, S, N, X, N);
      continue;
    }
    for (int tau = n - 1; tau >= 0; --tau) {
      const float *wt = at(w, tau), *kt = at(k, tau), *bt = at(b, tau);
      float *be = BKe + tau * N, *ke = BKe + (n + tau) * N;
      for (int m = 0; m < NV; ++m) {
        const int j = m * W;
        O::store(be + j, O::load(bt + j) * q[m]);
        O::store(ke + j, O::load(kt + j) * q[m]);
        q[m] = q[m] * O::load(wt + j);
      }
    }

    const int n2 = 2 * n;
    chunk::transpose(n2, N, BK, N, BKt, L2);
    chunk::gemm<Arch, L2>(n2, N, AR, N, 1, BKt, L2, D, L2);  // A_ab, A_ak (rows < n), B_rb, B_rk (rows ≥ n)
    chunk::gemm<Arch, N>(n2, N, AR, N, 1, X, N, XU, N);      // Ã X, R̃ X

    // U = Ã X + A_ak V + A_ab U, row by row (unit lower-triangular forward substitution).
    constexpr int CB = N / W < 8 ? N / W : 8;
    for (int c0 = 0; c0 < N; c0 += CB * W)
      for (int tau = 0; tau < n; ++tau) {
        V acc[CB];
        for (int m = 0; m < CB; ++m) acc[m] = O::load(XU + tau * N + c0 + m * W);
        const float* d = D + tau * L2;
        for (int s = 0; s < tau; ++s) {
          const V ab = O::splat(d[s]), ak = O::splat(d[n + s]);
          const float* us = UV + s * N + c0;
          const float* vs = UV + (n + s) * N + c0;
          for (int m = 0; m < CB; ++m)
            acc[m] = O::fma(ab, O::load(us + m * W), O::fma(ak, O::load(vs + m * W), acc[m]));
        }
        for (int m = 0; m < CB; ++m) O::store(UV + tau * N + c0 + m * W, acc[m]);
      }

    // Y = R̃ X + B_rb U + B_rk V with the strictly upper parts of B_rb, B_rk cleared.
    for (int tau = 0; tau < n; ++tau) {
      float* d = D + (n + tau) * L2;
      std::fill(d + tau + 1, d + n, 0.f);
      std::fill(d + n + tau + 1, d + n2, 0.f);
    }
    chunk::gemm<Arch, N>(n, n2, D + n * L2, L2, 1, UV, N, y + t0 * ldy, ldy, XU + n * N, N);

    // X ← diag(P_{L−1}) X + [b; k̃ ⊙ decay to the end]ᵀ [U; V]
    chunk::gemm<Arch, N>(N, n2, BKe, 1, N, UV, N, X, N, X, N, P);
  }
  chunk::transpose(N, N, X, N, S, N);
}

}  // namespace rwkv::kernel::cpu

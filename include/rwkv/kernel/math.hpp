#pragma once
// Per-element arithmetic shared by every backend: plain functions marked __host__ __device__ under nvcc, so the
// CPU kernels and the tests exercise the same formulas a device kernel compiles. The scalar WKV steps here are
// the reference forms of the vectorised CPU kernels (kernel/cpu/wkv*.hpp); tests compare the two.

#include <cmath>
#include <cstddef>

#if defined(__CUDACC__)
#define RWKV_HD __host__ __device__
#else
#define RWKV_HD
#endif

namespace rwkv::math {

RWKV_HD inline float sigmoid(float x) noexcept { return 1.f / (1.f + expf(-x)); }
RWKV_HD inline float silu(float x) noexcept { return x * sigmoid(x); }
RWKV_HD inline float relu_square(float x) noexcept { return x > 0.f ? x * x : 0.f; }

// Token-shift interpolations. RWKV-4/5 weight the current token by μ; RWKV-6/7 move from it towards the previous
// one by μ. The same value in exact arithmetic, not in float32, so each version keeps its reference's form.
RWKV_HD inline float lerp_current(float cur, float prev, float mu) noexcept { return cur * mu + prev * (1.f - mu); }
RWKV_HD inline float lerp_previous(float cur, float prev, float mu) noexcept { return cur + (prev - cur) * mu; }

// RWKV-5/6 decay from its log-log parametrisation: w = exp(−exp(d)).
RWKV_HD inline float decay_5(float d) noexcept { return expf(-expf(d)); }

// RWKV-7 decay: w = exp(−e^{−1/2}·σ(z)) ∈ (0.545, 1).
inline constexpr float v7_decay_scale = 0.6065306597126334f;
RWKV_HD inline float decay_7(float z) noexcept { return expf(-v7_decay_scale * sigmoid(z)); }

// LayerNorm of n values exactly as PyTorch computes it: biased variance, eps added to it.
RWKV_HD inline void layer_norm(const float* x, const float* weight, const float* bias, float* out, std::size_t n,
                               float eps) noexcept {
  float mean = 0.f;
  for (std::size_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<float>(n);
  float var = 0.f;
  for (std::size_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<float>(n);
  const float inv = 1.f / sqrtf(var + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

// RWKV-4 WKV for one channel and one token (spec/v4.md (b)), the reference's stable form: returns wkv and updates
// (aa, bb, pp). w = −exp(time_decay), u = time_first.
RWKV_HD inline float wkv4(float w, float u, float k, float v, float& aa, float& bb, float& pp) noexcept {
  const float uk = u + k;
  float q = fmaxf(pp, uk);
  float e1 = expf(pp - q), e2 = expf(uk - q);
  const float y = (e1 * aa + e2 * v) / (e1 * bb + e2);
  const float pw = w + pp;
  q = fmaxf(pw, k);
  e1 = expf(pw - q);
  e2 = expf(k - q);
  aa = e1 * aa + e2 * v;
  bb = e1 * bb + e2;
  pp = q;
  return y;
}

// RWKV-5/6 WKV for one head of N channels and one token; S is N x N [key][value] (kernel/cpu/wkv5.hpp).
RWKV_HD inline void wkv5(int N, float* S, const float* r, const float* k, const float* v, const float* w,
                         const float* u, float* y) noexcept {
  float bonus = 0.f;
  for (int i = 0; i < N; ++i) bonus += r[i] * u[i] * k[i];
  for (int j = 0; j < N; ++j) y[j] = bonus * v[j];
  for (int i = 0; i < N; ++i) {
    float* row = S + i * N;
    for (int j = 0; j < N; ++j) {
      y[j] += r[i] * row[j];
      row[j] = w[i] * row[j] + k[i] * v[j];
    }
  }
}

// RWKV-7 WKV for one head of N channels and one token; S is N x N [value][key] (kernel/cpu/wkv7.hpp).
RWKV_HD inline void wkv7(int N, float* S, const float* r, const float* w, const float* k, const float* v,
                         const float* a, const float* b, float* y) noexcept {
  for (int i = 0; i < N; ++i) {
    float* row = S + i * N;
    float sa = 0.f;
    for (int j = 0; j < N; ++j) sa += row[j] * a[j];
    float yi = 0.f;
    for (int j = 0; j < N; ++j) {
      row[j] = row[j] * w[j] + (sa * b[j] + v[i] * k[j]);
      yi += row[j] * r[j];
    }
    y[i] = yi;
  }
}

// RWKV-7, one head of one token, before the recurrence (spec/v7.md (b)), from the LoRA outputs z (decay) and alpha
// (in-context learning rate) without their biases: a = −κ̂, b = κ̂ ⊙ σ(a0 + alpha), k̃ into k, the decay into z.
RWKV_HD inline void v7_prepare_head(int N, float* k, const float* alpha, float* z, float* a, float* b, const float* k_k,
                                    const float* a0, const float* k_a, const float* w0) noexcept {
  float norm2 = 0.f;
  for (int j = 0; j < N; ++j) {
    a[j] = k[j] * k_k[j];  // κ, normalised below
    norm2 += a[j] * a[j];
  }
  const float inv = 1.f / fmaxf(sqrtf(norm2), 1e-12f);
  for (int j = 0; j < N; ++j) {
    const float kk = a[j] * inv;
    const float al = sigmoid(alpha[j] + a0[j]);
    a[j] = -kk;
    b[j] = kk * al;
    k[j] = k[j] * (1.f + (al - 1.f) * k_a[j]);  // k̃, also used by the bonus
    z[j] = decay_7(z[j] + w0[j]);
  }
}

// RWKV-7, one head of one token, after the recurrence: yg = (GroupNorm(y) + (Σ r ⊙ k̃ ⊙ r_k)·v) ⊙ g.
RWKV_HD inline void v7_finish_head(int N, const float* y, const float* r, const float* k, const float* v,
                                   const float* g, float* yg, const float* ln_w, const float* ln_b, const float* r_k,
                                   float eps) noexcept {
  layer_norm(y, ln_w, ln_b, yg, static_cast<std::size_t>(N), eps);
  float bonus = 0.f;
  for (int j = 0; j < N; ++j) bonus += r[j] * k[j] * r_k[j];
  for (int j = 0; j < N; ++j) yg[j] = (yg[j] + bonus * v[j]) * g[j];
}

// RWKV-7 value residual for one element: v + (v_first − v)·σ(v0 + nu).
RWKV_HD inline float v7_mix_v_first(float v, float v_first, float nu, float v0) noexcept {
  return v + (v_first - v) * sigmoid(nu + v0);
}

}  // namespace rwkv::math

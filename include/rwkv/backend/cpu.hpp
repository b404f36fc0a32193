#pragma once
// The CPU backend's operations: what every built-in mixer (and a user's) is written against (docs/backends.md).
// Activations are T x C row-major Eigen matrices in host memory, state tensors std::vector<float>, weights
// matrix<T> of any storage type. Work runs on the context's thread pool; scratch comes from its workspace.
//
// Every product group, norm, mix and WKV stage takes `rows` (model/row_states.hpp): either T consecutive tokens
// of one sequence or one token of each of T sequences, so one mixer body serves the step, the sequence form and
// batched decoding. With one row, the products of a group share one parallel region (decode reads every weight
// once and wakes the threads once); with more, each is a threaded matrix product.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/cpu/norm.hpp"
#include "rwkv/kernel/cpu/wkv4.hpp"
#include "rwkv/kernel/cpu/wkv5.hpp"
#include "rwkv/kernel/cpu/wkv5_chunked.hpp"
#include "rwkv/kernel/cpu/wkv7.hpp"
#include "rwkv/kernel/cpu/wkv7_chunked.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/row_states.hpp"

namespace rwkv {

// Which token-shift interpolation a version uses (kernel/math.hpp).
enum class lerp { current, previous };

template <class Arch>
struct ops<cpu<Arch>> {
  using backend_type = cpu<Arch>;
  using memory_space = host_memory;
  using rows_type = row_matrix;             // activations: T x C, row-major
  using state_tensor = std::vector<float>;  // one tensor of a recurrent state
  template <class T>
  using weights_type = matrix<T>;         // a large matrix in storage type T
  using dense_type = std::vector<float>;  // small float32 parameters (vectors, LoRA factors)

  // ---- Products --------------------------------------------------------------------------------------------

  // Y = X·Wᵀ for a weight matrix W (out x in) of any storage type.
  template <class T>
  struct linear_product {
    const matrix<T>& w;
    const row_matrix& x;
    row_matrix& y;
  };
  // Y = X·A for a float32 factor A stored (in, out): the low-rank (LoRA) branches. The input may be a column
  // range of a wider matrix (x_col, in columns of X starting there).
  struct lora_product {
    const float* a;
    std::int64_t in, out;
    const row_matrix& x;
    Eigen::Index x_col;
    row_matrix& y;
  };

  template <class T>
  static linear_product<T> linear(const matrix<T>& w, const row_matrix& x, row_matrix& y) {
    return {w, x, y};
  }
  // A zero-width factor (out = 0) is skipped: a branch a layer does not compute.
  static lora_product lora(const std::vector<float>& a, std::int64_t in, std::int64_t out, const row_matrix& x,
                           row_matrix& y, Eigen::Index x_col = 0) {
    return {a.data(), in, out, x, x_col, y};
  }

  // Runs independent products. Outputs are resized to T x out (no reallocation when the size is unchanged).
  template <class... P>
  static void products(context& ctx, const P&... p) {
    (prepare(p), ...);
    const bool one_row = ((p.x.rows() == 1) && ...);
    if (one_row) {
      parallel_work(ctx.pool, {work(p)...});
    } else {
      (many_rows(ctx, p), ...);
    }
  }

  // ---- Token shift --------------------------------------------------------------------------------------------

  struct mix {
    const std::vector<float>& mu;
    row_matrix& out;
  };

  // out_j = lerp(x, previous token, μ_j) for each (μ_j, out_j); the previous token of each row from `rows`.
  template <class S>
  static void shift(const row_matrix& x, const row_states<S>& rows, std::vector<float> S::*member, lerp form,
                    std::initializer_list<mix> outs) {
    const auto T = x.rows(), C = x.cols();
    for (const auto& m : outs) m.out.resize(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = rows.previous(x, t, member);
      for (const auto& m : outs) {
        float* o = m.out.row(t).data();
        const float* mu = m.mu.data();
        if (form == lerp::current)
          for (Eigen::Index c = 0; c < C; ++c) o[c] = math::lerp_current(cur[c], prev[c], mu[c]);
        else
          for (Eigen::Index c = 0; c < C; ++c) o[c] = math::lerp_previous(cur[c], prev[c], mu[c]);
      }
    }
  }

  // delta = previous token − x (RWKV-6's data-dependent shift starts from it).
  template <class S>
  static void shift_delta(const row_matrix& x, const row_states<S>& rows, std::vector<float> S::*member,
                          row_matrix& delta) {
    const auto T = x.rows(), C = x.cols();
    delta.resize(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = rows.previous(x, t, member);
      float* d = delta.row(t).data();
      for (Eigen::Index c = 0; c < C; ++c) d[c] = prev[c] - cur[c];
    }
  }

  // ---- Element-wise -----------------------------------------------------------------------------------------

  // y[i] = f(y[i])
  template <class F>
  static void map(row_matrix& y, F f) {
    float* p = y.data();
    for (Eigen::Index i = 0, n = y.size(); i < n; ++i) p[i] = f(p[i]);
  }
  // y[i] = f(y[i], a[i]) (same shapes)
  template <class F>
  static void zip(row_matrix& y, const row_matrix& a, F f) {
    float* p = y.data();
    const float* q = a.data();
    for (Eigen::Index i = 0, n = y.size(); i < n; ++i) p[i] = f(p[i], q[i]);
  }
  // y(t, c) = f(y(t, c), v[c]) for a per-channel vector v
  template <class F>
  static void zip_channels(row_matrix& y, const std::vector<float>& v, F f) {
    for (Eigen::Index t = 0; t < y.rows(); ++t) {
      float* p = y.row(t).data();
      for (Eigen::Index c = 0; c < y.cols(); ++c) p[c] = f(p[c], v[static_cast<std::size_t>(c)]);
    }
  }

  // ---- Norms ---------------------------------------------------------------------------------------------------

  static void layer_norm(const Eigen::Ref<const row_matrix>& x, const std::vector<float>& w,
                         const std::vector<float>& b, row_matrix& out, float eps = 1e-5f) {
    out.resize(x.rows(), x.cols());
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      math::layer_norm(x.row(t).data(), w.data(), b.data(), out.row(t).data(), static_cast<std::size_t>(x.cols()), eps);
  }

  // GroupNorm over consecutive groups of `size` channels, then the per-channel affine.
  static void group_norm(const row_matrix& x, const std::vector<float>& w, const std::vector<float>& b,
                         std::int64_t size, float eps, row_matrix& out) {
    out.resize(x.rows(), x.cols());
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      kernel::cpu::group_norm(x.row(t).data(), w.data(), b.data(), out.row(t).data(),
                              static_cast<std::size_t>(x.cols() / size), static_cast<std::size_t>(size), eps);
  }

  // ---- WKV stages ----------------------------------------------------------------------------------------------

  // RWKV-4: y = σ(r) ⊙ wkv(k, v) per channel, the state (aa, bb, pp) of each row's sequence updated.
  template <class S>
  static void wkv4(context& ctx, const row_states<S>& rows, const std::vector<float>& w, const std::vector<float>& u,
                   const row_matrix& r, const row_matrix& k, const row_matrix& v, row_matrix& y) {
    const auto T = k.rows(), A = k.cols();
    y.resize(T, A);
    // Blocks of 16 channels, so every channel takes the same (vector or scalar) path whatever the split.
    constexpr std::int64_t block = 16;
    auto run = [&](std::int64_t b0, std::int64_t b1) {
      const std::int64_t c0 = b0 * block, c1 = std::min<std::int64_t>(A, b1 * block);
      for (Eigen::Index t = 0; t < T; ++t) {
        S& s = rows.of(t);
        float* yt = y.row(t).data();
        kernel::cpu::wkv4_step<Arch>(static_cast<std::size_t>(c1 - c0), w.data() + c0, u.data() + c0,
                                     k.row(t).data() + c0, v.row(t).data() + c0, s.aa.data() + c0, s.bb.data() + c0,
                                     s.pp.data() + c0, yt + c0);
        const float* rt = r.row(t).data();
        for (std::int64_t c = c0; c < c1; ++c) yt[c] *= math::sigmoid(rt[c]);
      }
    };
    const std::int64_t blocks = (A + block - 1) / block;
    if (T > 1)
      parallel_for(ctx.pool, blocks, run);
    else
      run(0, blocks);
  }

  // RWKV-5/6: per head of N channels, S [key][value]. Decays w: one row per token (w_per_token, RWKV-6) or one
  // vector for all (RWKV-5). Heads run in parallel; a sequence runs chunked when ctx.wkv_form asks for it.
  template <int N, class S>
  static void wkv5(context& ctx, const row_states<S>& rows, const row_matrix& r, const row_matrix& k,
                   const row_matrix& v, const float* w, bool w_per_token, const std::vector<float>& u, row_matrix& y) {
    const auto T = k.rows(), A = k.cols(), H = A / N;
    y.resize(T, A);
    const std::ptrdiff_t ldw = w_per_token ? A : 0;
    const bool chunked =
        !rows.independent() && chunked_wkv(ctx.wkv_form, T, kernel::cpu::wkv5_chunked_min_tokens<Arch>);
    auto run = [&](std::int64_t h0, std::int64_t h1) {
      for (std::int64_t h = h0; h < h1; ++h) {
        const Eigen::Index o = h * N;
        if (chunked) {
          kernel::cpu::wkv5_chunked<Arch, N>(rows.of(0).wkv.data() + h * N * N, T, r.data() + o, k.data() + o,
                                             v.data() + o, A, w + o, ldw, u.data() + o, y.data() + o, A);
          continue;
        }
        for (Eigen::Index t = 0; t < T; ++t)
          kernel::cpu::wkv5_step<Arch, N>(rows.of(t).wkv.data() + h * N * N, r.row(t).data() + o, k.row(t).data() + o,
                                          v.row(t).data() + o, w + t * ldw + o, u.data() + o, y.row(t).data() + o);
      }
    };
    parallel_work(ctx.pool, {work_item{H, double(N) * N * static_cast<double>(T),
                                       [&run](std::int64_t h0, std::int64_t h1) { run(h0, h1); }}});
  }

  // RWKV-7's head stage (spec/v7.md (b)), per head: the value residual (when v_first is given), decay, κ̂ and k̃,
  // the recurrence (S [value][key]), GroupNorm, bonus and gate. Inputs are the projections and the LoRA outputs
  // without their biases; k, v and z are updated in place. Each head's whole path runs on one thread.
  struct v7_params {
    const float *k_k, *a0, *k_a, *w0, *v0, *r_k, *ln_w, *ln_b;
    float eps;
  };
  template <int N, class S>
  static void v7_heads(context& ctx, const row_states<S>& rows, const v7_params& p, const row_matrix& r, row_matrix& z,
                       row_matrix& k, row_matrix& v, const row_matrix& alpha, const row_matrix& g, const row_matrix* nu,
                       const row_matrix* v_first, row_matrix& a, row_matrix& b, row_matrix& y, row_matrix& out) {
    const auto T = k.rows(), C = k.cols(), H = C / N;
    for (row_matrix* m : {&a, &b, &y, &out}) m->resize(T, C);
    const bool chunked =
        !rows.independent() && chunked_wkv(ctx.wkv_form, T, kernel::cpu::wkv7_chunked_min_tokens<Arch>);
    auto run = [&](std::int64_t h0, std::int64_t h1) {
      for (std::int64_t h = h0; h < h1; ++h) {
        const Eigen::Index o = h * N;
        for (Eigen::Index t = 0; t < T; ++t) {
          float* vt = v.row(t).data() + o;
          if (v_first) {
            const float *vf = v_first->row(t).data() + o, *n = nu->row(t).data() + o;
            for (int j = 0; j < N; ++j) vt[j] = math::v7_mix_v_first(vt[j], vf[j], n[j], p.v0[o + j]);
          }
          math::v7_prepare_head(N, k.row(t).data() + o, alpha.row(t).data() + o, z.row(t).data() + o,
                                a.row(t).data() + o, b.row(t).data() + o, p.k_k + o, p.a0 + o, p.k_a + o, p.w0 + o);
          if (!chunked)
            kernel::cpu::wkv7_step<Arch, N>(rows.of(t).wkv.data() + h * N * N, r.row(t).data() + o, z.row(t).data() + o,
                                            k.row(t).data() + o, vt, a.row(t).data() + o, b.row(t).data() + o,
                                            y.row(t).data() + o);
        }
        if (chunked)
          kernel::cpu::wkv7_chunked<Arch, N>(rows.of(0).wkv.data() + h * N * N, T, r.data() + o, z.data() + o,
                                             k.data() + o, v.data() + o, a.data() + o, b.data() + o, C, y.data() + o,
                                             C);
        for (Eigen::Index t = 0; t < T; ++t)
          math::v7_finish_head(N, y.row(t).data() + o, r.row(t).data() + o, k.row(t).data() + o, v.row(t).data() + o,
                               g.row(t).data() + o, out.row(t).data() + o, p.ln_w + o, p.ln_b + o, p.r_k + o, p.eps);
      }
    };
    parallel_work(ctx.pool, {work_item{H, double(N) * N * static_cast<double>(T),
                                       [&run](std::int64_t h0, std::int64_t h1) { run(h0, h1); }}});
  }

 private:
  template <class T>
  static void prepare(const linear_product<T>& p) {
    p.y.resize(p.x.rows(), p.w.rows());
  }
  static void prepare(const lora_product& p) { p.y.resize(p.x.rows(), p.out); }

  template <class T>
  static work_item work(const linear_product<T>& p) {
    return kernel::cpu::matvec_work<Arch>(p.w, p.x.data(), p.y.data());
  }
  static work_item work(const lora_product& p) {
    return kernel::cpu::vecmat_work<Arch>(p.a, p.in, p.out, p.x.data() + p.x_col, p.y.data());
  }

  template <class T>
  static void many_rows(context& ctx, const linear_product<T>& p) {
    kernel::cpu::matmul<Arch>(p.w, p.x, p.y, ctx.pool);
  }
  static void many_rows(context&, const lora_product& p) {
    if (p.out == 0) return;
    using map_t = Eigen::Map<const row_matrix>;
    const Eigen::Map<const row_matrix, 0, Eigen::OuterStride<>> x(p.x.data() + p.x_col, p.x.rows(), p.in,
                                                                  Eigen::OuterStride<>(p.x.cols()));
    p.y.noalias() = x * map_t(p.a, p.in, p.out);
  }
};

}  // namespace rwkv

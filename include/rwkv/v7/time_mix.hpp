#pragma once
// RWKV-7 time mixing (spec/v7.md (b), (d)). Stateless: weights only; the recurrent state is passed in.
// Both forms share the per-head arithmetic (prepare_head, finish_head): T = 1 rows is the RNN step (matrix-vector
// products fused into few parallel regions), T > 1 the sequence form (every projection one matrix product over
// the T rows, the WKV serial or chunked in time).

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/activation.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/cpu/norm.hpp"
#include "rwkv/kernel/cpu/wkv7.hpp"
#include "rwkv/kernel/cpu/wkv7_chunked.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/init.hpp"

namespace rwkv::v7 {

// e^{-1/2}: the decay is w = exp(-e^{-1/2}·σ(z)) ∈ (0.545, 1)
inline constexpr float decay_scale = 0.6065306597126334f;
inline constexpr float group_norm_eps = 64e-5f;

struct TimeMixState {
  std::vector<float> shift;  // previous token's ln1 output (C)
  std::vector<float> wkv;    // H x N x N, [h][value][key]
  friend bool operator==(const TimeMixState&, const TimeMixState&) = default;
  template <class F>
  void visit(F&& f) {
    f("shift", shift);
    f("wkv", wkv);
  }
  template <class F>
  void visit(F&& f) const {
    f("shift", shift);
    f("wkv", wkv);
  }
};

namespace detail {

// Y (T x C) applied to the x_* positions of a LoRA factor stored (in, out): Y = X · M.
inline Eigen::Map<const row_matrix> as_matrix(const std::vector<float>& v, std::int64_t rows, std::int64_t cols) {
  return {v.data(), rows, cols};
}

}  // namespace detail

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
class TimeMix {
 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = TimeMixState;
  using config_type = Config;
  static constexpr int head_size = HeadSize;

  // Writes this mixer's tensors for block `layer`, initialised as the official training code does.
  static void init(init::builder& b, std::int64_t layer) { init_time_mix(b, layer); }

  // Whether block `layer` of a checkpoint has an RWKV-7 time mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) { return r.has(block_prefix(layer) + "att.r_k"); }

  TimeMix() = default;

  TimeMix(io::weight_reader& r, const Config& c, std::int64_t layer) : cfg_(c), layer_(layer) {
    const std::string p = "blocks." + std::to_string(layer) + ".att.";
    if (c.head_size != HeadSize)
      r.fail("head size " + std::to_string(c.head_size) +
                 " is not supported by this model type (compiled for head size " + std::to_string(HeadSize) + ")",
             p + "r_k");
    const auto C = c.n_embd;
    for (auto [dst, name] : {std::pair{&x_r_, "x_r"},
                             {&x_w_, "x_w"},
                             {&x_k_, "x_k"},
                             {&x_v_, "x_v"},
                             {&x_a_, "x_a"},
                             {&x_g_, "x_g"},
                             {&w0_, "w0"},
                             {&a0_, "a0"},
                             {&k_k_, "k_k"},
                             {&k_a_, "k_a"},
                             {&ln_x_w_, "ln_x.weight"},
                             {&ln_x_b_, "ln_x.bias"}})
      *dst = r.vector(p + name, C);
    r_k_ = r.dense(p + "r_k", c.n_head, c.head_size);
    w1_ = r.dense(p + "w1", C, c.d_decay);
    w2_ = r.dense(p + "w2", c.d_decay, C);
    a1_ = r.dense(p + "a1", C, c.d_iclr);
    a2_ = r.dense(p + "a2", c.d_iclr, C);
    g1_ = r.dense(p + "g1", C, c.d_gate);
    g2_ = r.dense(p + "g2", c.d_gate, C);
    if (layer > 0) {
      v0_ = r.vector(p + "v0", C);
      v1_ = r.dense(p + "v1", C, c.d_value);
      v2_ = r.dense(p + "v2", c.d_value, C);
    } else {
      for (auto n : {"v0", "v1", "v2"})  // present in official files, never used by layer 0
        if (r.has(p + n)) r.ignore(p + n);
    }
    receptance_ = r.weight<weight_type>(p + "receptance.weight", C, C);
    key_ = r.weight<weight_type>(p + "key.weight", C, C);
    value_ = r.weight<weight_type>(p + "value.weight", C, C);
    output_ = r.weight<weight_type>(p + "output.weight", C, C);
  }

  state_type make_state() const {
    return {std::vector<float>(static_cast<std::size_t>(cfg_.n_embd), 0.f),
            std::vector<float>(static_cast<std::size_t>(cfg_.n_head * HeadSize * HeadSize), 0.f)};
  }

  // x: T x C rows of ln1 output (consecutive tokens); out: T x C. Layer 0 writes ctx.v_first, others read it.
  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    run(x, row_states<state_type>::sequence(s), ctx, out);
  }

  // Batched decoding: row b is one token of sequence b, whose state is *states[b].
  void forward_batch(const row_matrix& x, std::span<state_type* const> states, context& ctx, row_matrix& out) const {
    run(x, row_states<state_type>::batch(states), ctx, out);
  }

  const Config& cfg() const noexcept { return cfg_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    using namespace kernel::cpu;
    const auto T = x.rows();
    const auto C = cfg_.n_embd;
    const auto H = cfg_.n_head;
    constexpr int N = HeadSize;

    row_matrix xr(T, C), xw(T, C), xk(T, C), xv(T, C), xa(T, C), xg(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = rows.previous(x, t, &state_type::shift);
      for (Eigen::Index c = 0; c < C; ++c) {
        const float d = prev[c] - cur[c];
        xr(t, c) = cur[c] + d * x_r_[c];
        xw(t, c) = cur[c] + d * x_w_[c];
        xk(t, c) = cur[c] + d * x_k_[c];
        xv(t, c) = cur[c] + d * x_v_[c];
        xa(t, c) = cur[c] + d * x_a_[c];
        xg(t, c) = cur[c] + d * x_g_[c];
      }
    }

    if (T == 1) {
      step(xr, xw, xk, xv, xa, xg, rows.of(0), ctx, out);
      rows.store_last(x, &state_type::shift);
      return;
    }

    row_matrix r, k, v;
    linear<arch>(receptance_, xr, r, ctx.pool);
    linear<arch>(key_, xk, k, ctx.pool);
    linear<arch>(value_, xv, v, ctx.pool);

    // The low-rank branches without their biases and final activations (prepare_head and mix_v_first add them).
    using detail::as_matrix;
    row_matrix z = (xw * as_matrix(w1_, C, cfg_.d_decay)).array().tanh().matrix() * as_matrix(w2_, cfg_.d_decay, C);
    row_matrix alpha = (xa * as_matrix(a1_, C, cfg_.d_iclr)) * as_matrix(a2_, cfg_.d_iclr, C);
    row_matrix g = (xg * as_matrix(g1_, C, cfg_.d_gate)).unaryExpr([](float q) { return sigmoid(q); }) *
                   as_matrix(g2_, cfg_.d_gate, C);

    if (owns_v_first(ctx, T)) {
      ctx.v_first = v;
    } else {
      row_matrix nu = (xv * as_matrix(v1_, C, cfg_.d_value)) * as_matrix(v2_, cfg_.d_value, C);
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index h = 0; h < H; ++h)
          mix_v_first(h, v.row(t).data(), ctx.v_first.row(t).data(), nu.row(t).data());
    }

    row_matrix a(T, C), b(T, C);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H; ++h)
        prepare_head(h, k.row(t).data(), alpha.row(t).data(), z.row(t).data(), a.row(t).data(), b.row(t).data());

    // The recurrence, independent per head (heads run in parallel): serial in time, or for a sequence (one
    // state) chunk-parallel when ctx.wkv_form asks for it.
    const bool chunked = !rows.independent() && chunked_wkv(ctx.wkv_form, T, wkv7_chunked_min_tokens<arch>);
    row_matrix y(T, C);
    parallel_for(ctx.pool, H, [&](std::int64_t h0, std::int64_t h1) {
      for (std::int64_t h = h0; h < h1; ++h) {
        const Eigen::Index o = h * N;
        if (chunked) {
          wkv7_chunked<arch, N>(rows.of(0).wkv.data() + h * N * N, T, r.data() + o, z.data() + o, k.data() + o,
                                v.data() + o, a.data() + o, b.data() + o, C, y.data() + o, C);
          continue;
        }
        for (Eigen::Index t = 0; t < T; ++t)
          wkv7_step<arch, N>(rows.of(t).wkv.data() + h * N * N, r.row(t).data() + o, z.row(t).data() + o,
                             k.row(t).data() + o, v.row(t).data() + o, a.row(t).data() + o, b.row(t).data() + o,
                             y.row(t).data() + o);
      }
    });

    row_matrix yg(T, C);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < H; ++h)
        finish_head(h, y.row(t).data(), r.row(t).data(), k.row(t).data(), v.row(t).data(), g.row(t).data(),
                    yg.row(t).data());
    linear<arch>(output_, yg, out, ctx.pool);

    rows.store_last(x, &state_type::shift);
  }

  // One token (decode): the same arithmetic as the sequence form, but every small product of the step shares a
  // parallel region with the large ones, and each head's whole WKV path (decay, κ̂, recurrence, GroupNorm, bonus,
  // gate) runs on one thread, so nothing waits on a serial stretch.
  void step(const row_matrix& xr, const row_matrix& xw, const row_matrix& xk, const row_matrix& xv,
            const row_matrix& xa, const row_matrix& xg, state_type& s, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    using namespace kernel::cpu;
    const auto C = cfg_.n_embd;
    constexpr int N = HeadSize;
    const bool owns = owns_v_first(ctx, 1);
    row_matrix r(1, C), k(1, C), v(1, C);
    // The value LoRA has no columns to compute where this layer provides v_first. (Written as a zero width, not
    // as `owns ? work_item{} : ...`: that conditional crashes nvcc 13's front end.)
    std::vector<float> hw(static_cast<std::size_t>(cfg_.d_decay)), ha(static_cast<std::size_t>(cfg_.d_iclr)),
        hg(static_cast<std::size_t>(cfg_.d_gate)), hv(static_cast<std::size_t>(cfg_.d_value));
    parallel_work(ctx.pool,
                  {matvec_work<arch>(receptance_, xr.data(), r.data()), matvec_work<arch>(key_, xk.data(), k.data()),
                   matvec_work<arch>(value_, xv.data(), v.data()),
                   vecmat_work<arch>(w1_.data(), C, cfg_.d_decay, xw.data(), hw.data()),
                   vecmat_work<arch>(a1_.data(), C, cfg_.d_iclr, xa.data(), ha.data()),
                   vecmat_work<arch>(g1_.data(), C, cfg_.d_gate, xg.data(), hg.data()),
                   vecmat_work<arch>(v1_.data(), C, owns ? 0 : cfg_.d_value, xv.data(), hv.data())});
    for (auto& q : hw) q = std::tanh(q);
    for (auto& q : hg) q = sigmoid(q);
    if (owns) ctx.v_first = v;

    row_matrix z(1, C), alpha(1, C), g(1, C), nu(1, C), a(1, C), b(1, C), y(1, C), yg(1, C);
    parallel_work(ctx.pool, {vecmat_work<arch>(w2_.data(), cfg_.d_decay, C, hw.data(), z.data()),
                             vecmat_work<arch>(a2_.data(), cfg_.d_iclr, C, ha.data(), alpha.data()),
                             vecmat_work<arch>(g2_.data(), cfg_.d_gate, C, hg.data(), g.data()),
                             vecmat_work<arch>(v2_.data(), cfg_.d_value, owns ? 0 : C, hv.data(), nu.data())});

    auto heads = [&](std::int64_t h0, std::int64_t h1) {
      for (std::int64_t h = h0; h < h1; ++h) {
        const std::int64_t o = h * N;
        if (!owns) mix_v_first(h, v.data(), ctx.v_first.data(), nu.data());
        prepare_head(h, k.data(), alpha.data(), z.data(), a.data(), b.data());
        wkv7_step<arch, N>(s.wkv.data() + h * N * N, r.data() + o, z.data() + o, k.data() + o, v.data() + o,
                           a.data() + o, b.data() + o, y.data() + o);
        finish_head(h, y.data(), r.data(), k.data(), v.data(), g.data(), yg.data());
      }
    };
    parallel_work(ctx.pool, {work_item{cfg_.n_head, double(N) * N, heads}});
    linear<arch>(output_, yg, out, ctx.pool);
  }

  // Whether this layer provides v_first: layer 0 of an official model, the lowest RWKV-7 layer of a composed one
  // (whose lower blocks leave the context's v_first empty). Later layers mix it in, and check its shape.
  bool owns_v_first(const context& ctx, Eigen::Index T) const {
    if (layer_ == 0 || ctx.v_first.size() == 0) return true;
    if (ctx.v_first.rows() != T || ctx.v_first.cols() != cfg_.n_embd)
      throw error("RWKV-7 layer " + std::to_string(layer_) + ": the context's v_first is " +
                  std::to_string(ctx.v_first.rows()) + " x " + std::to_string(ctx.v_first.cols()) + ", expected " +
                  std::to_string(T) + " x " + std::to_string(cfg_.n_embd));
    return false;
  }

  // Head h of one position: v += (v_first − v) ⊙ σ(v0 + nu), nu the value LoRA's output.
  void mix_v_first(std::int64_t h, float* v, const float* v_first, const float* nu) const {
    for (std::int64_t j = h * HeadSize; j < (h + 1) * HeadSize; ++j)
      v[j] += (v_first[j] - v[j]) * kernel::cpu::sigmoid(nu[j] + v0_[j]);
  }

  // Head h of one position, from the LoRA outputs z (decay) and alpha (in-context learning rate), both without
  // bias: a = −κ̂, b = κ̂ ⊙ α with α = σ(a0 + alpha), k̃ into k, and the decay w = exp(−e^{−1/2}·σ(w0 + z)) into z.
  void prepare_head(std::int64_t h, float* k, const float* alpha, float* z, float* a, float* b) const {
    constexpr int N = HeadSize;
    const std::int64_t o = h * N;
    float norm2 = 0.f;
    for (int j = 0; j < N; ++j) {
      a[o + j] = k[o + j] * k_k_[o + j];  // κ, normalised below
      norm2 += a[o + j] * a[o + j];
    }
    const float inv = 1.f / std::max(std::sqrt(norm2), 1e-12f);
    for (int j = 0; j < N; ++j) {
      const float kk = a[o + j] * inv;
      const float al = kernel::cpu::sigmoid(alpha[o + j] + a0_[o + j]);
      a[o + j] = -kk;
      b[o + j] = kk * al;
      k[o + j] = k[o + j] * (1.f + (al - 1.f) * k_a_[o + j]);  // k̃, also used by the bonus
      z[o + j] = std::exp(-decay_scale * kernel::cpu::sigmoid(z[o + j] + w0_[o + j]));
    }
  }

  // Head h of one position: yg = (GroupNorm(y) + (Σ r ⊙ k̃ ⊙ r_k)·v) ⊙ g.
  void finish_head(std::int64_t h, const float* y, const float* r, const float* k, const float* v, const float* g,
                   float* yg) const {
    constexpr int N = HeadSize;
    const std::int64_t o = h * N;
    kernel::cpu::group_norm(y + o, ln_x_w_.data() + o, ln_x_b_.data() + o, yg + o, 1, N, group_norm_eps);
    float bonus = 0.f;
    for (int j = 0; j < N; ++j) bonus += r[o + j] * k[o + j] * r_k_[o + j];
    for (int j = 0; j < N; ++j) yg[o + j] = (yg[o + j] + bonus * v[o + j]) * g[o + j];
  }

  Config cfg_;
  std::int64_t layer_ = 0;
  std::vector<float> x_r_, x_w_, x_k_, x_v_, x_a_, x_g_, w0_, a0_, v0_, k_k_, k_a_, r_k_, ln_x_w_, ln_x_b_;
  std::vector<float> w1_, w2_, a1_, a2_, v1_, v2_, g1_, g2_;
  matrix<weight_type> receptance_, key_, value_, output_;
};

}  // namespace rwkv::v7

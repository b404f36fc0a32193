#pragma once
// RWKV-6 time mixing (spec/v6.md (b), (d)). Stateless: weights only; the recurrent state is passed in. One code
// path serves both forms: T = 1 rows is the RNN step (matrix-vector products), T > 1 the sequence form (every
// projection and both LoRAs one matrix product over the T rows, the WKV serial in time). The WKV recurrence is
// RWKV-5.2's with this token's data-dependent decay.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/activation.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/cpu/norm.hpp"
#include "rwkv/kernel/cpu/wkv5.hpp"
#include "rwkv/kernel/cpu/wkv5_chunked.hpp"
#include "rwkv/v5/config.hpp"
#include "rwkv/v6/config.hpp"
#include "rwkv/v6/init.hpp"

namespace rwkv::v6 {

// GroupNorm eps of ln_x (spec/README.md §3).
inline constexpr float group_norm_eps = 64e-5f;

struct TimeMixState {
  std::vector<float> shift;  // previous token's ln1 output (C)
  std::vector<float> wkv;    // H x N x N, [h][key][value]
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

// A LoRA factor stored (in, out), applied as X · M.
inline Eigen::Map<const row_matrix> as_matrix(const float* p, std::int64_t rows, std::int64_t cols) {
  return {p, rows, cols};
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

  // Whether block `layer` of a checkpoint has an RWKV-6 time mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return r.has(block_prefix(layer) + "att.time_maa_x");
  }

  TimeMix() = default;

  TimeMix(io::weight_reader& r, const Config& c, std::int64_t layer) : cfg_(c), layer_(layer) {
    const std::string p = "blocks." + std::to_string(layer) + ".att.";
    if (c.head_size != HeadSize)
      r.fail("head size " + std::to_string(c.head_size) +
                 " is not supported by this model type (compiled for head size " + std::to_string(HeadSize) + ")",
             p + "time_faaaa");
    const auto C = c.n_embd, A = c.dim_att, H = c.n_head, N = c.head_size;
    for (auto [dst, name] : {std::pair{&maa_x_, "time_maa_x"},
                             {&maa_w_, "time_maa_w"},
                             {&maa_k_, "time_maa_k"},
                             {&maa_v_, "time_maa_v"},
                             {&maa_r_, "time_maa_r"},
                             {&maa_g_, "time_maa_g"}})
      *dst = r.vector(p + name, C);
    maa_w1_ = r.dense(p + "time_maa_w1", C, 5 * c.d_mix);
    maa_w2_ = v5::detail::read_3d(r, p + "time_maa_w2", 5, c.d_mix, C);
    decay_ = r.vector(p + "time_decay", A);  // raw: w = exp(-exp(time_decay + lora)) per token
    decay_w1_ = r.dense(p + "time_decay_w1", C, c.d_decay);
    decay_w2_ = r.dense(p + "time_decay_w2", c.d_decay, A);
    bonus_ = r.dense(p + "time_faaaa", H, N);  // used raw
    ln_x_w_ = r.vector(p + "ln_x.weight", A);
    ln_x_b_ = r.vector(p + "ln_x.bias", A);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", A, C);
    key_ = r.weight<weight_type>(p + "key.weight", A, C);
    value_ = r.weight<weight_type>(p + "value.weight", A, C);
    gate_ = r.weight<weight_type>(p + "gate.weight", A, C);
    output_ = r.weight<weight_type>(p + "output.weight", C, A);
    initial_wkv_ = v5::detail::initial_wkv(r, p, H, N);
  }

  // Zero shift; the WKV state is zero or, for state-tuned checkpoints, `time_state` (transposed to [key][value]).
  state_type make_state() const {
    return {std::vector<float>(static_cast<std::size_t>(cfg_.n_embd), 0.f), initial_wkv_};
  }

  // x: T x C rows of ln1 output; out: T x C.
  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    using namespace kernel::cpu;
    using detail::as_matrix;
    const auto T = x.rows();
    const auto C = cfg_.n_embd;
    const auto A = cfg_.dim_att;
    const auto H = cfg_.n_head;
    const auto D = cfg_.d_mix;
    constexpr int N = HeadSize;

    // Data-dependent token shift (ddlerp), v6 parameterization x + (prev − x)·μ.
    row_matrix delta(T, C), xx(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = t == 0 ? s.shift.data() : x.row(t - 1).data();
      for (Eigen::Index c = 0; c < C; ++c) {
        delta(t, c) = prev[c] - cur[c];
        xx(t, c) = cur[c] + delta(t, c) * maa_x_[c];
      }
    }
    const row_matrix z = (xx * as_matrix(maa_w1_.data(), C, 5 * D)).array().tanh().matrix();  // T x 5D
    // Slots in the order w, k, v, r, g: x_j = x + δ ⊙ (μ_j + z[:, jD:(j+1)D] · M2[j]).
    const std::vector<float>* mu[5] = {&maa_w_, &maa_k_, &maa_v_, &maa_r_, &maa_g_};
    row_matrix xs[5];
    for (int j = 0; j < 5; ++j) {
      xs[j] = z.middleCols(j * D, D) * as_matrix(maa_w2_.data() + j * D * C, D, C);
      const auto& m = *mu[j];
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index c = 0; c < C; ++c) xs[j](t, c) = x(t, c) + delta(t, c) * (m[c] + xs[j](t, c));
    }
    const row_matrix &xw = xs[0], &xk = xs[1], &xv = xs[2], &xr = xs[3], &xg = xs[4];

    row_matrix r, k, v, g;
    linear<arch>(receptance_, xr, r);
    linear<arch>(key_, xk, k);
    linear<arch>(value_, xv, v);
    linear<arch>(gate_, xg, g);
    g = g.unaryExpr([](float q) { return q * sigmoid(q); });

    // Per-token decay w = exp(-exp(time_decay + tanh(x_w · Wd1) · Wd2)), float32.
    row_matrix w = (xw * as_matrix(decay_w1_.data(), C, cfg_.d_decay)).array().tanh().matrix() *
                   as_matrix(decay_w2_.data(), cfg_.d_decay, A);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index c = 0; c < A; ++c) w(t, c) = std::exp(-std::exp(decay_[c] + w(t, c)));

    // The recurrence, independent per head (heads run in parallel for sequences): serial in time, or
    // chunk-parallel when ctx.wkv_form asks for it.
    const bool chunked = chunked_wkv(ctx.wkv_form, T, wkv5_chunked_min_tokens<arch>);
    row_matrix y(T, A);
    auto run_heads = [&](std::int64_t h0, std::int64_t h1) {
      for (std::int64_t h = h0; h < h1; ++h) {
        const Eigen::Index o = h * N;
        float* S = s.wkv.data() + h * N * N;
        if (chunked) {
          wkv5_chunked<arch, N>(S, T, r.data() + o, k.data() + o, v.data() + o, A, w.data() + o, A, bonus_.data() + o,
                                y.data() + o, A);
          continue;
        }
        for (Eigen::Index t = 0; t < T; ++t)
          wkv5_step<arch, N>(S, r.row(t).data() + o, k.row(t).data() + o, v.row(t).data() + o, w.row(t).data() + o,
                             bonus_.data() + o, y.row(t).data() + o);
      }
    };
    if (T > 1)
      parallel_for(ctx.pool, H, run_heads);
    else
      run_heads(0, H);

    row_matrix yn(T, A);
    for (Eigen::Index t = 0; t < T; ++t)
      group_norm(y.row(t).data(), ln_x_w_.data(), ln_x_b_.data(), yn.row(t).data(), static_cast<std::size_t>(H), N,
                 group_norm_eps);
    yn.array() *= g.array();
    linear<arch>(output_, yn, out);

    const float* last = x.row(T - 1).data();
    s.shift.assign(last, last + C);
  }

  const Config& cfg() const noexcept { return cfg_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  Config cfg_;
  std::int64_t layer_ = 0;
  std::vector<float> maa_x_, maa_w_, maa_k_, maa_v_, maa_r_, maa_g_, decay_, bonus_, ln_x_w_, ln_x_b_, initial_wkv_;
  std::vector<float> maa_w1_, maa_w2_, decay_w1_, decay_w2_;
  matrix<weight_type> receptance_, key_, value_, gate_, output_;
};

}  // namespace rwkv::v6

#pragma once
// RWKV-6 time mixing (spec/v6.md (b), (d)). Stateless: weights only; the recurrent state is passed in. One body
// serves every form (the RNN step, the sequence form, batched decoding), written against the backend's ops
// (docs/backends.md). The WKV recurrence is RWKV-5.2's with this token's data-dependent decay.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"
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

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
class TimeMix : public row_mixer<TimeMix<P, B, HeadSize>, TimeMixState> {
  friend row_mixer<TimeMix, TimeMixState>;

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

  const Config& cfg() const noexcept { return cfg_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows();
    const auto C = cfg_.n_embd, A = cfg_.dim_att, D = cfg_.d_mix;
    auto take = [&](std::int64_t cols) -> row_matrix& { return ctx.scratch(T, cols); };

    // Data-dependent token shift (ddlerp): δ = prev − x, z = tanh((x + δ·μ_x)·M1), then for the slots w, k, v, r, g
    // x_j = x + δ ⊙ (μ_j + z[:, jD:(j+1)D]·M2[j]).
    row_matrix &delta = take(C), &xx = take(C), &zz = take(5 * D);
    O::shift_delta(x, rows, &state_type::shift, delta);
    O::shift(x, rows, &state_type::shift, lerp::previous, {{maa_x_, xx}});  // x + δ·μ_x
    O::products(ctx, O::lora(maa_w1_, C, 5 * D, xx, zz));
    O::map(zz, [](float q) { return tanhf(q); });
    row_matrix &xw = take(C), &xk = take(C), &xv = take(C), &xr = take(C), &xg = take(C);
    row_matrix* xs[5] = {&xw, &xk, &xv, &xr, &xg};
    const std::vector<float>* mu[5] = {&maa_w_, &maa_k_, &maa_v_, &maa_r_, &maa_g_};
    O::products(ctx, lora_slot(zz, 0, xw), lora_slot(zz, 1, xk), lora_slot(zz, 2, xv), lora_slot(zz, 3, xr),
                lora_slot(zz, 4, xg));
    for (int j = 0; j < 5; ++j) {
      const float* m = mu[j]->data();
      row_matrix& o = *xs[j];
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index c = 0; c < C; ++c) o(t, c) = x(t, c) + delta(t, c) * (m[c] + o(t, c));
    }

    // Projections and the decay branch's first half; then w = exp(-exp(time_decay + tanh(x_w·Wd1)·Wd2)).
    row_matrix &r = take(A), &k = take(A), &v = take(A), &g = take(A), &hd = take(cfg_.d_decay), &w = take(A);
    O::products(ctx, O::linear(receptance_, xr, r), O::linear(key_, xk, k), O::linear(value_, xv, v),
                O::linear(gate_, xg, g), O::lora(decay_w1_, C, cfg_.d_decay, xw, hd));
    O::map(g, [](float q) { return math::silu(q); });
    O::map(hd, [](float q) { return tanhf(q); });
    O::products(ctx, O::lora(decay_w2_, cfg_.d_decay, A, hd, w));
    O::zip_channels(w, decay_, [](float lora, float d) { return math::decay_5(d + lora); });

    row_matrix &y = take(A), &yn = take(A);
    O::template wkv5<HeadSize>(ctx, rows, r, k, v, w.data(), true, bonus_, y);
    O::group_norm(y, ln_x_w_, ln_x_b_, HeadSize, group_norm_eps, yn);
    O::zip(yn, g, [](float a, float b) { return a * b; });
    O::products(ctx, O::linear(output_, yn, out));
    rows.store_last(x, &state_type::shift);
  }

  // Slot j of the ddlerp's second half: z[:, jD:(j+1)D] · M2[j].
  typename ops<B>::lora_product lora_slot(const row_matrix& zz, int j, row_matrix& out) const {
    const auto D = cfg_.d_mix, C = cfg_.n_embd;
    return {maa_w2_.data() + j * D * C, D, C, zz, j * D, out};
  }

  Config cfg_;
  std::int64_t layer_ = 0;
  std::vector<float> maa_x_, maa_w_, maa_k_, maa_v_, maa_r_, maa_g_, decay_, bonus_, ln_x_w_, ln_x_b_, initial_wkv_;
  std::vector<float> maa_w1_, maa_w2_, decay_w1_, decay_w2_;
  matrix<weight_type> receptance_, key_, value_, gate_, output_;
};

}  // namespace rwkv::v6

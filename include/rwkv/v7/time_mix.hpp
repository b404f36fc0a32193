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

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/init.hpp"

namespace rwkv::v7 {

// e^{-1/2}: the decay is w = exp(-e^{-1/2}·σ(z)) ∈ (0.545, 1)
inline constexpr float decay_scale = math::v7_decay_scale;
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

  const Config& cfg() const noexcept { return cfg_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  // One body for every form: with one row (decode) each product group is one parallel region; with T rows every
  // projection is one matrix product. Each head's whole WKV path (value residual, decay, κ̂, recurrence, GroupNorm,
  // bonus, gate) runs on one thread (ops::v7_heads).
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows();
    const auto C = cfg_.n_embd;
    const bool owns = owns_v_first(ctx, T);
    auto take = [&](std::int64_t cols) -> row_matrix& { return ctx.scratch(T, cols); };

    row_matrix &xr = take(C), &xw = take(C), &xk = take(C), &xv = take(C), &xa = take(C), &xg = take(C);
    O::shift(x, rows, &state_type::shift, lerp::previous,
             {{x_r_, xr}, {x_w_, xw}, {x_k_, xk}, {x_v_, xv}, {x_a_, xa}, {x_g_, xg}});

    // The projections and the first halves of the low-rank branches (the value branch only where this layer
    // mixes in v_first), then the second halves.
    row_matrix &r = take(C), &k = take(C), &v = take(C);
    row_matrix &hw = take(cfg_.d_decay), &ha = take(cfg_.d_iclr), &hg = take(cfg_.d_gate);
    row_matrix& hv = take(owns ? 0 : cfg_.d_value);
    const std::int64_t dv = owns ? 0 : cfg_.d_value;
    O::products(ctx, O::linear(receptance_, xr, r), O::linear(key_, xk, k), O::linear(value_, xv, v),
                O::lora(w1_, C, cfg_.d_decay, xw, hw), O::lora(a1_, C, cfg_.d_iclr, xa, ha),
                O::lora(g1_, C, cfg_.d_gate, xg, hg), O::lora(v1_, C, dv, xv, hv));
    O::map(hw, [](float q) { return tanhf(q); });
    O::map(hg, [](float q) { return math::sigmoid(q); });
    if (owns) ctx.set_v_first(v);

    row_matrix &z = take(C), &alpha = take(C), &g = take(C), &nu = take(owns ? 0 : C);
    O::products(ctx, O::lora(w2_, cfg_.d_decay, C, hw, z), O::lora(a2_, cfg_.d_iclr, C, ha, alpha),
                O::lora(g2_, cfg_.d_gate, C, hg, g), O::lora(v2_, dv, owns ? 0 : C, hv, nu));

    row_matrix &a = take(C), &b = take(C), &y = take(C), &yg = take(C);
    const typename O::v7_params params{k_k_.data(), a0_.data(),     k_a_.data(),    w0_.data(),    v0_.data(),
                                       r_k_.data(), ln_x_w_.data(), ln_x_b_.data(), group_norm_eps};
    O::template v7_heads<HeadSize>(ctx, rows, params, r, z, k, v, alpha, g, owns ? nullptr : &nu,
                                   owns ? nullptr : &ctx.v_first(), a, b, y, yg);
    O::products(ctx, O::linear(output_, yg, out));
    rows.store_last(x, &state_type::shift);
  }

  // Whether this layer provides v_first: layer 0 of an official model, the lowest RWKV-7 layer of a composed one
  // (whose lower blocks leave the context without v_first). Later layers mix it in, and check its shape.
  bool owns_v_first(context& ctx, Eigen::Index T) const {
    if (layer_ == 0 || !ctx.has_v_first()) return true;
    const auto& vf = ctx.v_first();
    if (vf.rows() != T || vf.cols() != cfg_.n_embd)
      throw error("RWKV-7 layer " + std::to_string(layer_) + ": the context's v_first is " + std::to_string(vf.rows()) +
                  " x " + std::to_string(vf.cols()) + ", expected " + std::to_string(T) + " x " +
                  std::to_string(cfg_.n_embd));
    return false;
  }

  Config cfg_;
  std::int64_t layer_ = 0;
  std::vector<float> x_r_, x_w_, x_k_, x_v_, x_a_, x_g_, w0_, a0_, v0_, k_k_, k_a_, r_k_, ln_x_w_, ln_x_b_;
  std::vector<float> w1_, w2_, a1_, a2_, v1_, v2_, g1_, g2_;
  matrix<weight_type> receptance_, key_, value_, output_;
};

}  // namespace rwkv::v7

#pragma once
// RWKV-5 time mixing, 5.0 / 5.1 / 5.2 in one class (spec/v5.md (b), (d)). Stateless: weights only; the recurrent
// state is passed in. One body serves every form (the RNN step, the sequence form, batched decoding), written
// against the backend's ops (docs/backends.md).
// The sub-versions differ only in data: the gate (absent in 5.0), the decay (one per head in 5.0/5.1, broadcast
// to the head's N channels; one per channel in 5.2) and the bonus (exp(time_first) or raw time_faaaa).

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
#include "rwkv/v5/init.hpp"

namespace rwkv::v5 {

// GroupNorm eps of ln_x: the official reference's 64e-5 (= training's 1e-5 · head_size_divisor²), not rwkv.cpp's
// 1e-5 (spec/README.md §3).
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

// A per-head (H) or per-channel (H, N) parameter as A = H·N floats (per-head values broadcast to the head).
inline std::vector<float> per_channel(io::weight_reader& r, const std::string& name, std::int64_t H, std::int64_t N) {
  const auto& t = r.peek(name);
  if (t.numel() == H * N && N > 1) return r.dense(name, H, N);
  auto v = r.vector(name, H);
  std::vector<float> out(static_cast<std::size_t>(H * N));
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t j = 0; j < N; ++j) out[static_cast<std::size_t>(h * N + j)] = v[static_cast<std::size_t>(h)];
  return out;
}

}  // namespace detail

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

  // Whether block `layer` of a checkpoint has an RWKV-5 time mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    const auto p = block_prefix(layer) + "att.";
    return r.has(p + "ln_x.weight") && r.has(p + "time_decay") && !r.has(p + "time_maa_x");
  }

  TimeMix() = default;

  TimeMix(io::weight_reader& r, const Config& c, std::int64_t layer) : cfg_(c), layer_(layer) {
    const std::string p = "blocks." + std::to_string(layer) + ".att.";
    if (c.head_size != HeadSize)
      r.fail("head size " + std::to_string(c.head_size) +
                 " is not supported by this model type (compiled for head size " + std::to_string(HeadSize) + ")",
             p + "time_decay");
    const auto C = c.n_embd, A = c.dim_att, H = c.n_head, N = c.head_size;
    mix_k_ = r.vector(p + "time_mix_k", C);
    mix_v_ = r.vector(p + "time_mix_v", C);
    mix_r_ = r.vector(p + "time_mix_r", C);
    // w = exp(-exp(time_decay)) in float32, one value per key channel.
    decay_ = detail::per_channel(r, p + "time_decay", H, N);
    for (auto& d : decay_) d = math::decay_5(d);
    // u: time_faaaa raw; time_first exp'd, unless the model names its bonus time_faaaa anywhere (spec/v5.md).
    const bool faaaa = r.has(p + "time_faaaa");
    bonus_ = detail::per_channel(r, p + (faaaa ? "time_faaaa" : "time_first"), H, N);
    if (!c.bonus_raw)
      for (auto& u : bonus_) u = std::exp(u);
    ln_x_w_ = r.vector(p + "ln_x.weight", A);
    ln_x_b_ = r.vector(p + "ln_x.bias", A);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", A, C);
    key_ = r.weight<weight_type>(p + "key.weight", A, C);
    value_ = r.weight<weight_type>(p + "value.weight", A, C);
    output_ = r.weight<weight_type>(p + "output.weight", C, A);
    if (c.gate) {
      mix_g_ = r.vector(p + "time_mix_g", C);
      gate_ = r.weight<weight_type>(p + "gate.weight", A, C);
    }
    initial_wkv_ = detail::initial_wkv(r, p, H, N);
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
    const auto C = cfg_.n_embd, A = cfg_.dim_att;
    auto take = [&](std::int64_t rows_, std::int64_t cols) -> row_matrix& { return ctx.scratch(rows_, cols); };
    const bool gated = cfg_.gate;

    row_matrix &xk = take(T, C), &xv = take(T, C), &xr = take(T, C), &xg = take(gated ? T : 0, C);
    row_matrix &r = take(T, A), &k = take(T, A), &v = take(T, A), &g = take(gated ? T : 0, A);
    if (gated) {
      O::shift(x, rows, &state_type::shift, lerp::current, {{mix_k_, xk}, {mix_v_, xv}, {mix_r_, xr}, {mix_g_, xg}});
      O::products(ctx, O::linear(receptance_, xr, r), O::linear(key_, xk, k), O::linear(value_, xv, v),
                  O::linear(gate_, xg, g));
      O::map(g, [](float q) { return math::silu(q); });
    } else {
      O::shift(x, rows, &state_type::shift, lerp::current, {{mix_k_, xk}, {mix_v_, xv}, {mix_r_, xr}});
      O::products(ctx, O::linear(receptance_, xr, r), O::linear(key_, xk, k), O::linear(value_, xv, v));
    }

    row_matrix &y = take(T, A), &yn = take(T, A);
    O::template wkv5<HeadSize>(ctx, rows, r, k, v, decay_.data(), false, bonus_, y);
    O::group_norm(y, ln_x_w_, ln_x_b_, HeadSize, group_norm_eps, yn);
    if (gated) O::zip(yn, g, [](float a, float b) { return a * b; });
    O::products(ctx, O::linear(output_, yn, out));
    rows.store_last(x, &state_type::shift);
  }

  Config cfg_;
  std::int64_t layer_ = 0;
  std::vector<float> mix_k_, mix_v_, mix_r_, mix_g_, decay_, bonus_, ln_x_w_, ln_x_b_, initial_wkv_;
  matrix<weight_type> receptance_, key_, value_, output_, gate_;
};

}  // namespace rwkv::v5

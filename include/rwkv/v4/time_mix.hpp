#pragma once
// RWKV-4 time mixing (spec/v4.md (b), (d)). Stateless: weights only; the recurrent state is passed in.
// One body serves every form (the RNN step, the sequence form, batched decoding), written against the backend's
// ops (docs/backends.md); the WKV is serial in time, exactly the reference's per-token recurrence. Either form starts
// from whatever state it is given and leaves the state after the last token, so calls can be chained and mixed freely.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/v4/config.hpp"
#include "rwkv/v4/init.hpp"

namespace rwkv::v4 {

// Initial running-maximum exponent of the WKV state, exactly the reference's (spec/v4.md (c)). Any value
// ≤ −1e30 behaves the same in float32: the first step's max() picks u + k and k. Never −inf ((−inf) − (−inf)).
inline constexpr float initial_pp = -1e30f;

// The WKV running sums are A = aa·e^pp (numerator) and B = bb·e^pp (denominator), per channel. This is the
// reference's representation, value for value, so a state can be compared with the reference's state list.
struct TimeMixState {
  std::vector<float> shift;  // previous token's ln1 output (C)
  std::vector<float> aa;     // numerator scaled by e^{-pp} (A)
  std::vector<float> bb;     // denominator scaled by e^{-pp} (A)
  std::vector<float> pp;     // running maximum exponent (A), initially initial_pp
  friend bool operator==(const TimeMixState&, const TimeMixState&) = default;
  template <class F>
  void visit(F&& f) {
    f("shift", shift);
    f("aa", aa);
    f("bb", bb);
    f("pp", pp);
  }
  template <class F>
  void visit(F&& f) const {
    f("shift", shift);
    f("aa", aa);
    f("bb", bb);
    f("pp", pp);
  }
};

template <Precision P = f32, Backend B = cpu<>>
class TimeMix : public row_mixer<TimeMix<P, B>, TimeMixState> {
  friend row_mixer<TimeMix, TimeMixState>;

 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = TimeMixState;
  using config_type = Config;

  // Writes this mixer's tensors for block `layer`, initialised as the official training code does.
  static void init(init::builder& b, std::int64_t layer) { init_time_mix(b, layer); }

  // Whether block `layer` of a checkpoint has an RWKV-4 time mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    const auto p = block_prefix(layer) + "att.";
    return r.has(p + "time_first") && !r.has(p + "ln_x.weight");
  }

  TimeMix() = default;

  TimeMix(io::weight_reader& r, const Config& c, std::int64_t layer) : n_embd_(c.n_embd), dim_att_(c.dim_att) {
    const std::string p = "blocks." + std::to_string(layer) + ".att.";
    const auto C = c.n_embd, A = c.dim_att;
    mix_k_ = r.vector(p + "time_mix_k", C);
    mix_v_ = r.vector(p + "time_mix_v", C);
    mix_r_ = r.vector(p + "time_mix_r", C);
    decay_ = r.vector(p + "time_decay", A);  // w = −exp(time_decay), in float32 from the stored value
    for (auto& d : decay_) d = -std::exp(d);
    first_ = r.vector(p + "time_first", A);  // u, used raw (log space)
    key_ = r.weight<weight_type>(p + "key.weight", A, C);
    value_ = r.weight<weight_type>(p + "value.weight", A, C);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", A, C);
    output_ = r.weight<weight_type>(p + "output.weight", C, A);
  }

  state_type make_state() const {
    const auto C = static_cast<std::size_t>(n_embd_), A = static_cast<std::size_t>(dim_att_);
    return {std::vector<float>(C, 0.f), std::vector<float>(A, 0.f), std::vector<float>(A, 0.f),
            std::vector<float>(A, initial_pp)};
  }

  std::int64_t n_embd() const noexcept { return n_embd_; }
  std::int64_t dim_att() const noexcept { return dim_att_; }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows();
    auto take = [&](std::int64_t cols) -> row_matrix& { return ctx.scratch(T, cols); };
    // Token shift x·μ + prev·(1 − μ): μ multiplies the current token (spec/README.md §7, item 2).
    row_matrix &xk = take(n_embd_), &xv = take(n_embd_), &xr = take(n_embd_);
    O::shift(x, rows, &state_type::shift, lerp::current, {{mix_k_, xk}, {mix_v_, xv}, {mix_r_, xr}});
    row_matrix &r = take(dim_att_), &k = take(dim_att_), &v = take(dim_att_), &y = take(dim_att_);
    O::products(ctx, O::linear(receptance_, xr, r), O::linear(key_, xk, k), O::linear(value_, xv, v));
    O::wkv4(ctx, rows, decay_, first_, r, k, v, y);  // y = σ(r) ⊙ wkv
    O::products(ctx, O::linear(output_, y, out));
    rows.store_last(x, &state_type::shift);
  }

  std::int64_t n_embd_ = 0, dim_att_ = 0;
  std::vector<float> mix_k_, mix_v_, mix_r_;  // μ
  std::vector<float> decay_, first_;          // w = −exp(time_decay), u = time_first
  matrix<weight_type> key_, value_, receptance_, output_;
};

}  // namespace rwkv::v4

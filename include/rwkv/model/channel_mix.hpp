#pragma once
// The channel mixer of every built-in version, written once against the backend's ops (docs/backends.md):
//   x_k = lerp(x, prev, μ_k)   out = W_v · relu(W_k·x_k)²,  times σ(W_r·lerp(x, prev, μ_r)) where there is a
//   receptance (RWKV-4/5/6; RWKV-7 has none).
// A version contributes a Spec: its token-shift form (rwkv::lerp), tensor names and initialisation.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/model_config.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"

namespace rwkv {

// A recurrent state that is only the previous token's input (C): every channel mixer's.
struct ShiftState {
  std::vector<float> shift;
  friend bool operator==(const ShiftState&, const ShiftState&) = default;
  template <class F>
  void visit(F&& f) {
    f("shift", shift);
  }
  template <class F>
  void visit(F&& f) const {
    f("shift", shift);
  }
};

//   Spec::form            rwkv::lerp::current (x·μ + prev·(1 − μ)) or lerp::previous (x + (prev − x)·μ)
//   Spec::key_mix         name of μ_k under blocks.<i>.ffn.
//   Spec::receptance_mix  name of μ_r, or nullptr for no receptance
//   Spec::init(builder&, layer)
template <class Spec, Precision P = f32, Backend B = cpu<>>
class SquaredReluChannelMix : public row_mixer<SquaredReluChannelMix<Spec, P, B>, ShiftState> {
  friend row_mixer<SquaredReluChannelMix, ShiftState>;

 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = ShiftState;
  using spec_type = Spec;
  static constexpr bool has_receptance = Spec::receptance_mix != nullptr;

  // Writes this mixer's tensors for block `layer`, initialised as the official training code does.
  static void init(init::builder& b, std::int64_t layer) { Spec::init(b, layer); }

  // Whether block `layer` of a checkpoint has this channel mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return r.has(block_prefix(layer) + "ffn." + Spec::key_mix);
  }

  SquaredReluChannelMix() = default;

  // Any config with n_embd (and dim_ffn, else the width is read from ffn.key.weight): channel mixers combine with
  // other versions' time mixers.
  template <class AnyConfig>
  SquaredReluChannelMix(io::weight_reader& r, const AnyConfig& c, std::int64_t layer) : n_embd_(c.n_embd) {
    const std::string p = block_prefix(layer) + "ffn.";
    const std::int64_t dim_ffn = rwkv::detail::ffn_width(r, c, p + "key.weight");
    mix_k_ = r.vector(p + Spec::key_mix, c.n_embd);
    if constexpr (has_receptance) mix_r_ = r.vector(p + Spec::receptance_mix, c.n_embd);
    key_ = r.weight<weight_type>(p + "key.weight", dim_ffn, c.n_embd);
    if constexpr (has_receptance) receptance_ = r.weight<weight_type>(p + "receptance.weight", c.n_embd, c.n_embd);
    value_ = r.weight<weight_type>(p + "value.weight", c.n_embd, dim_ffn);
  }

  state_type make_state() const { return {std::vector<float>(static_cast<std::size_t>(n_embd_), 0.f)}; }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows();
    row_matrix& xk = ctx.scratch(T, n_embd_);
    row_matrix& hidden = ctx.scratch(T, key_.rows());
    if constexpr (has_receptance) {
      row_matrix& xr = ctx.scratch(T, n_embd_);
      row_matrix& r = ctx.scratch(T, n_embd_);
      O::shift(x, rows, &state_type::shift, Spec::form, {{mix_k_, xk}, {mix_r_, xr}});
      O::products(ctx, O::linear(key_, xk, hidden), O::linear(receptance_, xr, r));
      O::map(hidden, [](float q) { return math::relu_square(q); });
      O::products(ctx, O::linear(value_, hidden, out));
      O::zip(out, r, [](float o, float q) { return o * math::sigmoid(q); });
    } else {
      O::shift(x, rows, &state_type::shift, Spec::form, {{mix_k_, xk}});
      O::products(ctx, O::linear(key_, xk, hidden));
      O::map(hidden, [](float q) { return math::relu_square(q); });
      O::products(ctx, O::linear(value_, hidden, out));
    }
    rows.store_last(x, &state_type::shift);
  }

  std::int64_t n_embd_ = 0;
  std::vector<float> mix_k_, mix_r_;
  matrix<weight_type> key_, receptance_, value_;
};

}  // namespace rwkv

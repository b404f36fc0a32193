#pragma once
// RWKV-7 channel mixing: out = W_v · relu(W_k · lerp(x, prev, μ_k))², no receptance (spec/v7.md (b)).

#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/init.hpp"
#include "rwkv/v7/time_mix.hpp"

namespace rwkv::v7 {

struct ChannelMixState {
  std::vector<float> shift;  // previous token's ln2 output (C)
  friend bool operator==(const ChannelMixState&, const ChannelMixState&) = default;
  template <class F>
  void visit(F&& f) {
    f("shift", shift);
  }
  template <class F>
  void visit(F&& f) const {
    f("shift", shift);
  }
};

template <Precision P = f32, Backend B = cpu<>>
class ChannelMix {
 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = ChannelMixState;
  using config_type = Config;

  // Writes this mixer's tensors for block `layer`, initialised as the official training code does.
  static void init(init::builder& b, std::int64_t layer) { init_channel_mix(b, layer); }

  // Whether block `layer` of a checkpoint has this channel mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) { return r.has(block_prefix(layer) + "ffn.x_k"); }

  ChannelMix() = default;

  // Any config with n_embd (and dim_ffn, else the width is read from ffn.key.weight): channel mixers combine with
  // other versions' time mixers.
  template <class AnyConfig>
  ChannelMix(io::weight_reader& r, const AnyConfig& c, std::int64_t layer) : n_embd_(c.n_embd) {
    const std::string p = "blocks." + std::to_string(layer) + ".ffn.";
    const std::int64_t dim_ffn = rwkv::detail::ffn_width(r, c, p + "key.weight");
    x_k_ = r.vector(p + "x_k", c.n_embd);
    key_ = r.weight<weight_type>(p + "key.weight", dim_ffn, c.n_embd);
    value_ = r.weight<weight_type>(p + "value.weight", c.n_embd, dim_ffn);
  }

  state_type make_state() const { return {std::vector<float>(static_cast<std::size_t>(n_embd_), 0.f)}; }

  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    run(x, row_states<state_type>::sequence(s), ctx, out);
  }

  void forward_batch(const row_matrix& x, std::span<state_type* const> states, context& ctx, row_matrix& out) const {
    run(x, row_states<state_type>::batch(states), ctx, out);
  }

 private:
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    const auto T = x.rows();
    row_matrix xk(T, n_embd_);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = rows.previous(x, t, &state_type::shift);
      for (Eigen::Index c = 0; c < n_embd_; ++c) xk(t, c) = cur[c] + (prev[c] - cur[c]) * x_k_[c];
    }
    row_matrix hidden;
    kernel::cpu::linear<arch>(key_, xk, hidden, ctx.pool);
    hidden = hidden.unaryExpr([](float q) { return q > 0.f ? q * q : 0.f; });
    kernel::cpu::linear<arch>(value_, hidden, out, ctx.pool);
    rows.store_last(x, &state_type::shift);
  }

  std::int64_t n_embd_ = 0;
  std::vector<float> x_k_;
  matrix<weight_type> key_, value_;
};

}  // namespace rwkv::v7

#pragma once
// RWKV-4 channel mixing (spec/v4.md (b)): out = σ(W_r·x_r) ⊙ (W_v · relu(W_k·x_k)²), with the token shift
// x_* = x·μ_* + prev·(1 − μ_*).

#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/activation.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/v4/config.hpp"
#include "rwkv/v4/init.hpp"

namespace rwkv::v4 {

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
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return r.has(block_prefix(layer) + "ffn.time_mix_k");
  }

  ChannelMix() = default;

  // Any config with n_embd (and dim_ffn, else the width is read from ffn.key.weight): channel mixers combine with
  // other versions' time mixers.
  template <class AnyConfig>
  ChannelMix(io::weight_reader& r, const AnyConfig& c, std::int64_t layer) : n_embd_(c.n_embd) {
    const std::string p = "blocks." + std::to_string(layer) + ".ffn.";
    const std::int64_t dim_ffn = rwkv::detail::ffn_width(r, c, p + "key.weight");
    mix_k_ = r.vector(p + "time_mix_k", c.n_embd);
    mix_r_ = r.vector(p + "time_mix_r", c.n_embd);
    rest_k_.resize(mix_k_.size());
    rest_r_.resize(mix_r_.size());
    for (std::size_t i = 0; i < mix_k_.size(); ++i) rest_k_[i] = 1.f - mix_k_[i];
    for (std::size_t i = 0; i < mix_r_.size(); ++i) rest_r_[i] = 1.f - mix_r_[i];
    key_ = r.weight<weight_type>(p + "key.weight", dim_ffn, c.n_embd);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", c.n_embd, c.n_embd);
    value_ = r.weight<weight_type>(p + "value.weight", c.n_embd, dim_ffn);
  }

  state_type make_state() const { return {std::vector<float>(static_cast<std::size_t>(n_embd_), 0.f)}; }

  // x: T x C rows of ln2 output; out: T x C. ctx.pool (optional) runs the kernels in parallel.
  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    using namespace kernel::cpu;
    const auto T = x.rows();
    const auto C = n_embd_;
    row_matrix xk(T, C), xr(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = t == 0 ? s.shift.data() : x.row(t - 1).data();
      for (Eigen::Index c = 0; c < C; ++c) {
        xk(t, c) = cur[c] * mix_k_[c] + prev[c] * rest_k_[c];
        xr(t, c) = cur[c] * mix_r_[c] + prev[c] * rest_r_[c];
      }
    }
    row_matrix r, hidden;
    linear<arch>(receptance_, xr, r, ctx.pool);
    linear<arch>(key_, xk, hidden, ctx.pool);
    hidden = hidden.unaryExpr([](float q) { return q > 0.f ? q * q : 0.f; });
    linear<arch>(value_, hidden, out, ctx.pool);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index c = 0; c < C; ++c) out(t, c) *= sigmoid(r(t, c));
    const float* last = x.row(T - 1).data();
    s.shift.assign(last, last + C);
  }

 private:
  std::int64_t n_embd_ = 0;
  std::vector<float> mix_k_, mix_r_, rest_k_, rest_r_;  // μ and 1 − μ
  matrix<weight_type> key_, receptance_, value_;
};

}  // namespace rwkv::v4

#pragma once
// RWKV-6 channel mixing (spec/v6.md (b)): the v4/v5 function with the v6 token-shift parameterization
//   δ = prev − x,  x_k = x + δ·μ_k,  x_r = x + δ·μ_r
//   out = σ(W_r·x_r) ⊙ (W_v · relu(W_k·x_k)²)

#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/activation.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/v6/config.hpp"
#include "rwkv/v6/init.hpp"

namespace rwkv::v6 {

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
    return r.has(block_prefix(layer) + "ffn.time_maa_k");
  }

  ChannelMix() = default;

  // Any config with n_embd (and dim_ffn, else the width is read from ffn.key.weight): channel mixers combine with
  // other versions' time mixers.
  template <class AnyConfig>
  ChannelMix(io::weight_reader& r, const AnyConfig& c, std::int64_t layer) : n_embd_(c.n_embd) {
    const std::string p = "blocks." + std::to_string(layer) + ".ffn.";
    const std::int64_t dim_ffn = rwkv::detail::ffn_width(r, c, p + "key.weight");
    maa_k_ = r.vector(p + "time_maa_k", c.n_embd);
    maa_r_ = r.vector(p + "time_maa_r", c.n_embd);
    key_ = r.weight<weight_type>(p + "key.weight", dim_ffn, c.n_embd);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", c.n_embd, c.n_embd);
    value_ = r.weight<weight_type>(p + "value.weight", c.n_embd, dim_ffn);
  }

  state_type make_state() const { return {std::vector<float>(static_cast<std::size_t>(n_embd_), 0.f)}; }

  void forward(const row_matrix& x, state_type& s, context&, row_matrix& out) const {
    using arch = typename B::arch;
    using kernel::cpu::sigmoid;
    const auto T = x.rows();
    row_matrix xk(T, n_embd_), xr(T, n_embd_);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = t == 0 ? s.shift.data() : x.row(t - 1).data();
      for (Eigen::Index c = 0; c < n_embd_; ++c) {
        const float d = prev[c] - cur[c];
        xk(t, c) = cur[c] + d * maa_k_[c];
        xr(t, c) = cur[c] + d * maa_r_[c];
      }
    }
    row_matrix hidden, r;
    kernel::cpu::linear<arch>(key_, xk, hidden);
    hidden = hidden.unaryExpr([](float q) { return q > 0.f ? q * q : 0.f; });
    kernel::cpu::linear<arch>(value_, hidden, out);
    kernel::cpu::linear<arch>(receptance_, xr, r);
    out.array() *= r.unaryExpr([](float q) { return sigmoid(q); }).array();
    const float* last = x.row(T - 1).data();
    s.shift.assign(last, last + n_embd_);
  }

 private:
  std::int64_t n_embd_ = 0;
  std::vector<float> maa_k_, maa_r_;
  matrix<weight_type> key_, receptance_, value_;
};

}  // namespace rwkv::v6

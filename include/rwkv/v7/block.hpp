#pragma once
// One pre-LN residual block: x += att(ln1(x)); x += ffn(ln2(x)) (spec/README.md §2).

#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/kernel/cpu/norm.hpp"
#include "rwkv/v7/channel_mix.hpp"
#include "rwkv/v7/time_mix.hpp"

namespace rwkv::v7 {

// The recurrent state of one block: its time mixer's and its channel mixer's.
template <class AttState, class FfnState>
struct BlockState {
  AttState att;
  FfnState ffn;
  friend bool operator==(const BlockState&, const BlockState&) = default;
};

template <class TimeMix, class ChannelMix>
class Block {
 public:
  using time_mix_type = TimeMix;
  using channel_mix_type = ChannelMix;
  using state_type = BlockState<typename TimeMix::state_type, typename ChannelMix::state_type>;

  Block() = default;

  Block(io::weight_reader& r, const Config& c, std::int64_t layer)
      : att_(r, c, layer), ffn_(r, c, layer), n_embd_(c.n_embd) {
    const std::string p = "blocks." + std::to_string(layer) + ".";
    ln1_w_ = r.vector(p + "ln1.weight", c.n_embd);
    ln1_b_ = r.vector(p + "ln1.bias", c.n_embd);
    ln2_w_ = r.vector(p + "ln2.weight", c.n_embd);
    ln2_b_ = r.vector(p + "ln2.bias", c.n_embd);
  }

  state_type make_state() const { return {att_.make_state(), ffn_.make_state()}; }

  // x: T x C residual stream, updated in place.
  void forward(row_matrix& x, state_type& s, context& ctx) const {
    row_matrix normed(x.rows(), x.cols()), out;
    norm_rows(x, ln1_w_, ln1_b_, normed);
    att_.forward(normed, s.att, ctx, out);
    x += out;
    norm_rows(x, ln2_w_, ln2_b_, normed);
    ffn_.forward(normed, s.ffn, ctx, out);
    x += out;
  }

  const TimeMix& att() const noexcept { return att_; }
  const ChannelMix& ffn() const noexcept { return ffn_; }

 private:
  void norm_rows(const row_matrix& x, const std::vector<float>& w, const std::vector<float>& b, row_matrix& out) const {
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      kernel::cpu::layer_norm(x.row(t).data(), w.data(), b.data(), out.row(t).data(), static_cast<std::size_t>(n_embd_));
  }

  TimeMix att_;
  ChannelMix ffn_;
  std::int64_t n_embd_ = 0;
  std::vector<float> ln1_w_, ln1_b_, ln2_w_, ln2_b_;
};

}  // namespace rwkv::v7

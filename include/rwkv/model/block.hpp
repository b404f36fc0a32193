#pragma once
// One pre-LN residual block of any time mixer and any channel mixer: x += att(ln1(x)); x += ffn(ln2(x))
// (spec/README.md §2). The mixers see the LayerNorm-ed input; their outputs are added to the raw stream.

#include <cstdint>
#include <string>
#include <vector>

#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/norm.hpp"

namespace rwkv {

// The recurrent state of one block: its time mixer's and its channel mixer's.
template <class AttState, class FfnState>
struct BlockState {
  AttState att;
  FfnState ffn;
  friend bool operator==(const BlockState&, const BlockState&) = default;

  // Calls f(name, std::vector<float>&) for every tensor of the state, in a fixed order.
  template <class F>
  void visit(F&& f) {
    att.visit([&](const std::string& n, auto& v) { f("att." + n, v); });
    ffn.visit([&](const std::string& n, auto& v) { f("ffn." + n, v); });
  }
  template <class F>
  void visit(F&& f) const {
    att.visit([&](const std::string& n, const auto& v) { f("att." + n, v); });
    ffn.visit([&](const std::string& n, const auto& v) { f("ffn." + n, v); });
  }
};

template <class TimeMix, class ChannelMix>
class Block {
 public:
  using time_mix_type = TimeMix;
  using channel_mix_type = ChannelMix;
  using state_type = BlockState<typename TimeMix::state_type, typename ChannelMix::state_type>;

  Block() = default;

  template <class Config>
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
      kernel::cpu::layer_norm(x.row(t).data(), w.data(), b.data(), out.row(t).data(),
                              static_cast<std::size_t>(n_embd_));
  }

  TimeMix att_;
  ChannelMix ffn_;
  std::int64_t n_embd_ = 0;
  std::vector<float> ln1_w_, ln1_b_, ln2_w_, ln2_b_;
};

}  // namespace rwkv

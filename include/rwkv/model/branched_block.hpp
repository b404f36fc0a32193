#pragma once
// A residual block with a third mixer beside the time mixer, reading the raw residual stream (RWKV-7b's
// DeepEmbedAttention, spec/v7-variants.md B(b)):
//   x += att(ln1(x)) + branch(x);   x += ffn(ln2(x))
// Both branches see the same x. The branch is a mixer like the others (state_type, make_state, forward and
// optionally forward_batch), given x itself instead of a LayerNorm output. Its state sits beside the mixers' as
// `branch`, its tensors named "qkv.<name>" in state files (the official prefix of RWKV-7b's branch).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/concepts.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/block.hpp"
#include "rwkv/model/model_config.hpp"
#include "rwkv/model/taps.hpp"

namespace rwkv {

template <class AttState, class BranchState, class FfnState>
struct BranchedBlockState {
  AttState att;
  BranchState branch;
  FfnState ffn;
  friend bool operator==(const BranchedBlockState&, const BranchedBlockState&) = default;

  template <class F>
  void visit(F&& f) {
    att.visit([&](const std::string& n, auto& v) { f("att." + n, v); });
    branch.visit([&](const std::string& n, auto& v) { f("qkv." + n, v); });
    ffn.visit([&](const std::string& n, auto& v) { f("ffn." + n, v); });
  }
  template <class F>
  void visit(F&& f) const {
    att.visit([&](const std::string& n, const auto& v) { f("att." + n, v); });
    branch.visit([&](const std::string& n, const auto& v) { f("qkv." + n, v); });
    ffn.visit([&](const std::string& n, const auto& v) { f("ffn." + n, v); });
  }
};

template <class TimeMix, class Branch, class ChannelMix>
class BranchedBlock {
  static_assert(check_mixer<TimeMix>() && check_mixer<Branch>() && check_mixer<ChannelMix>());

 public:
  using time_mix_type = TimeMix;
  using branch_type = Branch;
  using channel_mix_type = ChannelMix;
  using state_type =
      BranchedBlockState<typename TimeMix::state_type, typename Branch::state_type, typename ChannelMix::state_type>;

  BranchedBlock() = default;

  template <class Config>
  BranchedBlock(io::weight_reader& r, const Config& c, std::int64_t layer)
      : att_(detail::make_mixer<TimeMix>(r, c, layer)),
        branch_(detail::make_mixer<Branch>(r, c, layer)),
        ffn_(detail::make_mixer<ChannelMix>(r, c, layer)),
        layer_(layer) {
    const std::string p = block_prefix(layer);
    ln1_w_ = r.vector(p + "ln1.weight", c.n_embd);
    ln1_b_ = r.vector(p + "ln1.bias", c.n_embd);
    ln2_w_ = r.vector(p + "ln2.weight", c.n_embd);
    ln2_b_ = r.vector(p + "ln2.bias", c.n_embd);
  }

  static void init(init::builder& b, std::int64_t layer) {
    init::block_norms(b, layer);
    TimeMix::init(b, layer);
    Branch::init(b, layer);
    ChannelMix::init(b, layer);
  }

  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return detail::layer_matches<TimeMix>(r, layer) && detail::layer_matches<Branch>(r, layer) &&
           detail::layer_matches<ChannelMix>(r, layer);
  }

  state_type make_state() const { return {att_.make_state(), branch_.make_state(), ffn_.make_state()}; }

  void forward(row_matrix& x, state_type& s, context& ctx) const {
    no_taps none;
    forward(x, s, ctx, none);
  }

  // The branch runs first: a call it refuses (a full cache) leaves every state of the block unchanged.
  template <class Taps>
  void forward(row_matrix& x, state_type& s, context& ctx, Taps& t) const {
    workspace::scope scope(ctx.ws());
    row_matrix& normed = ctx.scratch(x.rows(), x.cols());
    row_matrix& out = ctx.scratch(x.rows(), x.cols());
    row_matrix& side = ctx.scratch(x.rows(), x.cols());
    branch_.forward(x, s.branch, ctx, side);
    ops_type::layer_norm(x, ln1_w_, ln1_b_, normed);
    att_.forward(normed, s.att, ctx, out);
    taps::time_mix_output(t, layer_, out);
    x += out;
    x += side;
    ops_type::layer_norm(x, ln2_w_, ln2_b_, normed);
    ffn_.forward(normed, s.ffn, ctx, out);
    taps::channel_mix_output(t, layer_, out);
    x += out;
  }

  void forward_batch(row_matrix& x, std::span<state_type* const> states, context& ctx) const {
    std::vector<typename TimeMix::state_type*> att(states.size());
    std::vector<typename Branch::state_type*> branch(states.size());
    std::vector<typename ChannelMix::state_type*> ffn(states.size());
    for (std::size_t b = 0; b < states.size(); ++b) {
      att[b] = &states[b]->att;
      branch[b] = &states[b]->branch;
      ffn[b] = &states[b]->ffn;
    }
    workspace::scope scope(ctx.ws());
    row_matrix& normed = ctx.scratch(x.rows(), x.cols());
    row_matrix& out = ctx.scratch(x.rows(), x.cols());
    row_matrix& side = ctx.scratch(x.rows(), x.cols());
    branch_.forward_batch(x, std::span<typename Branch::state_type* const>(branch), ctx, side);
    ops_type::layer_norm(x, ln1_w_, ln1_b_, normed);
    att_.forward_batch(normed, std::span<typename TimeMix::state_type* const>(att), ctx, out);
    x += out;
    x += side;
    ops_type::layer_norm(x, ln2_w_, ln2_b_, normed);
    ffn_.forward_batch(normed, std::span<typename ChannelMix::state_type* const>(ffn), ctx, out);
    x += out;
  }

  const TimeMix& att() const noexcept { return att_; }
  const Branch& branch() const noexcept { return branch_; }
  const ChannelMix& ffn() const noexcept { return ffn_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  using ops_type = ops<typename detail::backend_of<TimeMix>::type>;

  TimeMix att_;
  Branch branch_;
  ChannelMix ffn_;
  std::int64_t layer_ = 0;
  std::vector<float> ln1_w_, ln1_b_, ln2_w_, ln2_b_;
};

}  // namespace rwkv

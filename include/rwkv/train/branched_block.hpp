#pragma once
// A trainable residual block with a branch beside the time mixer, reading the raw residual stream (RWKV-7b's
// DeepEmbedAttention; the inference twin is rwkv::BranchedBlock):
//   x += TM(ln1(x)) + Branch(x);   x += CM(ln2(x))
// The branch is a type with the time mixer's members (state_shapes, state_names, tape, constructor, forward and
// backward: train/block.hpp) except that it reads x itself, and its backward accumulates into dx:
//   void forward(const row_matrix& x, std::span<std::vector<float>> state, segment_context&, tape&,
//                row_matrix& out) const;
//   void backward(const row_matrix& dout, std::span<std::vector<float>> dstate, segment_context&, const tape&,
//                 row_matrix& dx);                      // dx += ∂L/∂x through the branch
// The block's state is the time mixer's tensors, the branch's, then the channel mix's shift; the branch's are
// named "qkv.<name>" in state files, as the inference state names them.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

template <class TimeMix, class Branch, class ChannelMix>
class branched_block {
 public:
  using config_type = typename TimeMix::config_type;
  static constexpr bool reads_tokens = true;  // the network keeps the segment's tokens and embeddings

  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    auto s = TimeMix::state_shapes(c);
    for (auto& b : Branch::state_shapes(c)) s.push_back(b);
    s.push_back({c.n_embd});
    return s;
  }
  static std::string version() { return TimeMix::version; }
  static std::vector<std::string> state_names(const config_type&) {
    std::vector<std::string> names;
    for (const auto& n : TimeMix::state_names()) names.push_back("att." + n);
    for (const auto& n : Branch::state_names()) names.push_back("qkv." + n);
    names.push_back("ffn.shift");
    return names;
  }

  branched_block(parameter_set& ps, const config_type& c, std::int64_t index)
      : C_(c.n_embd),
        time_mix_(ps, c, index),
        branch_(ps, c, index),
        channel_mix_(ps, "blocks." + std::to_string(index) + ".", c.n_embd, c.dim_ffn, TimeMix::channel_mix) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    ln1_w_ = &ps.get(p + "ln1.weight", 1, C_), ln1_b_ = &ps.get(p + "ln1.bias", 1, C_);
  }

  struct tape {
    norm_record ln1;
    row_matrix h, out, branch_out;
    typename TimeMix::tape time_mix;
    typename Branch::tape branch;
    typename ChannelMix::tape channel_mix;
  };

  void forward(row_matrix& x, std::span<std::vector<float>> state, segment_context& seg, tape& tp) const {
    const auto [tm, br] = split(state);
    norm_forward(x, *ln1_w_, *ln1_b_, C_, layer_norm_eps, tp.h, tp.ln1);
    time_mix_.forward(tp.h, tm, seg, tp.time_mix, tp.out);
    branch_.forward(x, br, seg, tp.branch, tp.branch_out);  // both branches see the same x
    x += tp.out + tp.branch_out;
    channel_mix_.forward(x, state.back(), tp.channel_mix, seg);
  }

  void backward(row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp) {
    const auto [tm, br] = split(dstate);
    channel_mix_.backward(dx, dstate.back(), tp.channel_mix, seg);
    row_matrix dh, dln, dbranch = row_matrix::Zero(dx.rows(), dx.cols());
    time_mix_.backward(dx, tm, seg, tp.time_mix, dh);
    branch_.backward(dx, br, seg, tp.branch, dbranch);
    norm_backward(dh, tp.ln1, *ln1_w_, *ln1_b_, C_, dln);
    dx += dln + dbranch;
  }

 private:
  using span = std::span<std::vector<float>>;
  static std::pair<span, span> split(span s) {
    const auto tm = TimeMix::state_names().size(), br = Branch::state_names().size();
    return {s.first(tm), s.subspan(tm, br)};
  }

  std::int64_t C_;
  TimeMix time_mix_;
  Branch branch_;
  ChannelMix channel_mix_;
  parameter *ln1_w_, *ln1_b_;
};

}  // namespace rwkv::train

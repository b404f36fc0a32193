#pragma once
// A trainable residual block: x += TM(ln1(x)); x += CM(ln2(x)). The time mixer is a template parameter, the
// channel mix the squared-ReLU one every version uses (configured by TimeMix::channel_mix), so a new time mixer
// (a research variant) only writes its own forward and backward:
//
//   struct my_mix {
//     using config_type = ...;                        // has n_embd and dim_ffn
//     static constexpr channel_mix_spec channel_mix{...};
//     static std::vector<std::vector<std::int64_t>> state_shapes(const config_type&);  // state[0]: the shift
//     static constexpr const char* version = "...";         // optional: the inference State's version tag
//     static std::vector<std::string> state_names();       // optional: its state tensors' names (state files)
//     struct tape { ... };
//     my_mix(parameter_set&, const config_type&, std::int64_t layer);
//     void forward(const row_matrix& h, std::span<std::vector<float>> state, segment_context&, tape&,
//                  row_matrix& out) const;             // h = ln1(x); out is added to x
//     void backward(const row_matrix& dout, std::span<std::vector<float>> dstate, segment_context&, const tape&,
//                   row_matrix& dh);                   // dstate: after the segment in, before it out
//   };
//
// The block's state is the time mixer's tensors followed by the channel mix's shift (the references' order).
// The channel mix is squared_relu_channel_mix unless another is given (RWKV-7a's deep_embed_channel_mix,
// train/v7a.hpp): a type with the same constructor, a tape, and forward/backward taking the segment_context.

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "rwkv/train/channel_mix.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

template <class TimeMix, class ChannelMix = squared_relu_channel_mix>
class block {
 public:
  using config_type = typename TimeMix::config_type;
  // Whether the channel mix reads the segment's tokens and embeddings (the network then keeps them).
  static constexpr bool reads_tokens = !std::is_same_v<ChannelMix, squared_relu_channel_mix>;

  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    auto s = TimeMix::state_shapes(c);
    s.push_back({c.n_embd});
    return s;
  }
  // The inference model's version tag ("4", "5", "6", "7"; "custom" for a mixer that names none) and the names
  // of the state tensors in its rwkv::State (att.<the time mixer's names>, ffn.shift), for state files.
  static std::string version() {
    if constexpr (requires { TimeMix::version; })
      return TimeMix::version;
    else
      return "custom";
  }
  static std::vector<std::string> state_names(const config_type& c) {
    std::vector<std::string> names;
    if constexpr (requires { TimeMix::state_names(); })
      for (const auto& n : TimeMix::state_names()) names.push_back("att." + n);
    else
      for (std::size_t i = 0; i < TimeMix::state_shapes(c).size(); ++i) names.push_back("att.s" + std::to_string(i));
    names.push_back("ffn.shift");
    return names;
  }
  static void initial_state(std::span<std::vector<float>> s) requires requires { TimeMix::initial_state(s); }
  { TimeMix::initial_state(s.first(s.size() - 1)); }

  block(parameter_set& ps, const config_type& c, std::int64_t index)
      : C_(c.n_embd),
        time_mix_(ps, c, index),
        channel_mix_(ps, "blocks." + std::to_string(index) + ".", c.n_embd, c.dim_ffn, TimeMix::channel_mix) {
    const std::string p = "blocks." + std::to_string(index) + ".";
    ln1_w_ = &ps.get(p + "ln1.weight", 1, C_), ln1_b_ = &ps.get(p + "ln1.bias", 1, C_);
  }

  struct tape {
    norm_record ln1;
    row_matrix h, out;
    typename TimeMix::tape time_mix;
    typename ChannelMix::tape channel_mix;
  };

  // x: the block input (T x C), replaced by the block output. state: this block's tensors, advanced.
  void forward(row_matrix& x, std::span<std::vector<float>> state, segment_context& seg, tape& tp) const {
    norm_forward(x, *ln1_w_, *ln1_b_, C_, layer_norm_eps, tp.h, tp.ln1);
    time_mix_.forward(tp.h, state.first(state.size() - 1), seg, tp.time_mix, tp.out);
    x += tp.out;
    if constexpr (reads_tokens)
      channel_mix_.forward(x, state.back(), tp.channel_mix, seg);
    else
      channel_mix_.forward(x, state.back(), tp.channel_mix, seg.pool);
  }

  // dx: ∂L/∂(block output), replaced by ∂L/∂(block input). dstate: ∂L/∂(state after the segment), replaced by
  // ∂L/∂(state before it). Parameter gradients are accumulated.
  void backward(row_matrix& dx, std::span<std::vector<float>> dstate, segment_context& seg, const tape& tp) {
    if constexpr (reads_tokens)
      channel_mix_.backward(dx, dstate.back(), tp.channel_mix, seg);
    else
      channel_mix_.backward(dx, dstate.back(), tp.channel_mix, seg.pool);
    row_matrix dh, dln;
    time_mix_.backward(dx, dstate.first(dstate.size() - 1), seg, tp.time_mix, dh);
    norm_backward(dh, tp.ln1, *ln1_w_, *ln1_b_, C_, dln);
    dx += dln;
  }

 private:
  std::int64_t C_;
  TimeMix time_mix_;
  ChannelMix channel_mix_;
  parameter *ln1_w_, *ln1_b_;
};

}  // namespace rwkv::train

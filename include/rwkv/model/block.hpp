#pragma once
// One pre-LN residual block of any time mixer and any channel mixer: x += att(ln1(x)); x += ffn(ln2(x))
// (spec/README.md §2). The mixers see the LayerNorm-ed input; their outputs are added to the raw stream.

#include <cstdint>
#include <span>
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

  // Batched decoding: row b of x is one token of sequence b, whose block state is *states[b]. Mixers with a
  // forward_batch (matrix products over the B rows) use it; others run row by row with the same result.
  void forward_batch(row_matrix& x, std::span<state_type* const> states, context& ctx) const {
    std::vector<typename TimeMix::state_type*> att(states.size());
    std::vector<typename ChannelMix::state_type*> ffn(states.size());
    for (std::size_t b = 0; b < states.size(); ++b) {
      att[b] = &states[b]->att;
      ffn[b] = &states[b]->ffn;
    }
    row_matrix normed(x.rows(), x.cols()), out;
    norm_rows(x, ln1_w_, ln1_b_, normed);
    batch_call(att_, normed, std::span<typename TimeMix::state_type* const>(att), ctx, out);
    x += out;
    norm_rows(x, ln2_w_, ln2_b_, normed);
    batch_call(ffn_, normed, std::span<typename ChannelMix::state_type* const>(ffn), ctx, out);
    x += out;
  }

  const TimeMix& att() const noexcept { return att_; }
  const ChannelMix& ffn() const noexcept { return ffn_; }

 private:
  template <class Mixer, class S>
  static void batch_call(const Mixer& m, const row_matrix& x, std::span<S* const> states, context& ctx,
                         row_matrix& out) {
    if constexpr (requires { m.forward_batch(x, states, ctx, out); }) {
      m.forward_batch(x, states, ctx, out);
    } else {
      // Row by row; a per-row context keeps cross-layer entries (v_first) aligned with their row.
      out.resize(x.rows(), x.cols());
      row_matrix one(1, x.cols()), o;
      for (Eigen::Index b = 0; b < x.rows(); ++b) {
        context row_ctx;
        row_ctx.pool = ctx.pool;
        if (ctx.v_first.rows() == x.rows()) row_ctx.v_first = ctx.v_first.row(b);
        one = x.row(b);
        m.forward(one, *states[static_cast<std::size_t>(b)], row_ctx, o);
        if (row_ctx.v_first.rows() == 1) {
          if (ctx.v_first.rows() != x.rows()) ctx.v_first.resize(x.rows(), x.cols());
          ctx.v_first.row(b) = row_ctx.v_first.row(0);
        }
        out.row(b) = o.row(0);
      }
    }
  }

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

#pragma once
// One pre-LN residual block of any time mixer and any channel mixer: x += att(ln1(x)); x += ffn(ln2(x))
// (spec/README.md §2). The mixers see the LayerNorm-ed input; their outputs are added to the raw stream.
// Mixers of different versions combine freely (rwkv::Block<v7::TimeMix<>, v4::ChannelMix<>>): each is built
// from the model's config when it takes that type, otherwise from its own config_type::for_layer(reader, layer).

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/concepts.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"
#include "rwkv/model/taps.hpp"

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

namespace detail {

// A mixer (or block) without a static matches(reader, layer) accepts any layer.
template <class M>
bool layer_matches(const io::weight_reader& r, std::int64_t layer) {
  if constexpr (requires { M::matches(r, layer); })
    return M::matches(r, layer);
  else
    return true;
}

// Runs f(row_ctx) for row b of a batch of B rows with a one-row context of its own (for mixers and blocks without
// a batched path): cross-layer entries (v_first) stay aligned with their row.
template <class F>
void with_row_context(context& ctx, Eigen::Index b, Eigen::Index B, F&& f) {
  context row_ctx;
  row_ctx.pool = ctx.pool;
  if (ctx.has_v_first() && ctx.v_first().rows() == B) row_ctx.set_v_first(ctx.v_first().row(b));
  if (ctx.has_inputs() && ctx.embedded().rows() == B)
    row_ctx.set_inputs(ctx.tokens().subspan(static_cast<std::size_t>(b), 1), ctx.embedded().row(b));
  f(row_ctx);
  if (row_ctx.has_v_first()) {
    if (!ctx.has_v_first() || ctx.v_first().rows() != B) ctx.set_v_first(row_matrix::Zero(B, row_ctx.v_first().cols()));
    ctx.v_first_row(b) = row_ctx.v_first().row(0);
  }
}

template <class Mixer, class Config>
Mixer make_mixer(io::weight_reader& r, const Config& c, std::int64_t layer) {
  if constexpr (std::is_constructible_v<Mixer, io::weight_reader&, const Config&, std::int64_t>) {
    return Mixer(r, c, layer);
  } else {
    static_assert(
        requires { Mixer::config_type::for_layer(r, layer); },
        "rwkv::Block: cannot build this mixer from the model's config: give it a constructor "
        "(io::weight_reader&, const Config&, std::int64_t layer) for that config, or a config_type with "
        "static config_type for_layer(const io::weight_reader&, std::int64_t layer)");
    return Mixer(r, Mixer::config_type::for_layer(r, layer), layer);
  }
}

// The backend a mixer runs on: its backend_type, or the CPU for user mixers that do not name one.
template <class M>
struct backend_of {
  using type = cpu<>;
};
template <class M>
requires requires { typename M::backend_type; }
struct backend_of<M> {
  using type = typename M::backend_type;
};

}  // namespace detail

template <class TimeMix, class ChannelMix>
class Block {
  static_assert(check_mixer<TimeMix>() && check_mixer<ChannelMix>());

 public:
  using time_mix_type = TimeMix;
  using channel_mix_type = ChannelMix;
  using state_type = BlockState<typename TimeMix::state_type, typename ChannelMix::state_type>;

  Block() = default;

  template <class Config>
  Block(io::weight_reader& r, const Config& c, std::int64_t layer)
      : att_(detail::make_mixer<TimeMix>(r, c, layer)),
        ffn_(detail::make_mixer<ChannelMix>(r, c, layer)),
        layer_(layer),
        n_embd_(c.n_embd) {
    const std::string p = block_prefix(layer);
    ln1_w_ = r.vector(p + "ln1.weight", c.n_embd);
    ln1_b_ = r.vector(p + "ln1.bias", c.n_embd);
    ln2_w_ = r.vector(p + "ln2.weight", c.n_embd);
    ln2_b_ = r.vector(p + "ln2.bias", c.n_embd);
  }

  // Writes block `layer`'s tensors from scratch (rwkv/init/builder.hpp): LayerNorms and both mixers' init.
  static void init(init::builder& b, std::int64_t layer) {
    static_assert(
        requires { TimeMix::init(b, layer); } && requires { ChannelMix::init(b, layer); },
        "rwkv::Block::init: both mixers need `static void init(rwkv::init::builder&, std::int64_t layer)`");
    init::block_norms(b, layer);
    TimeMix::init(b, layer);
    ChannelMix::init(b, layer);
  }

  // Whether block `layer` of a checkpoint holds this block type (both mixers' matches, where they have one).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return detail::layer_matches<TimeMix>(r, layer) && detail::layer_matches<ChannelMix>(r, layer);
  }

  state_type make_state() const { return {att_.make_state(), ffn_.make_state()}; }

  // x: T x C residual stream, updated in place.
  void forward(row_matrix& x, state_type& s, context& ctx) const {
    no_taps none;
    forward(x, s, ctx, none);
  }

  // The same, showing the mixers' outputs to `t` (model/taps.hpp) before they are added.
  template <class Taps>
  void forward(row_matrix& x, state_type& s, context& ctx, Taps& t) const {
    workspace::scope scope(ctx.ws());
    row_matrix& normed = ctx.scratch(x.rows(), x.cols());
    row_matrix& out = ctx.scratch(x.rows(), x.cols());
    ops_type::layer_norm(x, ln1_w_, ln1_b_, normed);
    att_.forward(normed, s.att, ctx, out);
    taps::time_mix_output(t, layer_, out);
    x += out;
    ops_type::layer_norm(x, ln2_w_, ln2_b_, normed);
    ffn_.forward(normed, s.ffn, ctx, out);
    taps::channel_mix_output(t, layer_, out);
    x += out;
  }

  // Batched decoding: row b of x is one token of sequence b, whose block state is *states[b]. Mixers with a
  // forward_batch (every built-in one: matrix products over the B rows) use it; others run row by row with the
  // same result.
  void forward_batch(row_matrix& x, std::span<state_type* const> states, context& ctx) const {
    std::vector<typename TimeMix::state_type*> att(states.size());
    std::vector<typename ChannelMix::state_type*> ffn(states.size());
    for (std::size_t b = 0; b < states.size(); ++b) {
      att[b] = &states[b]->att;
      ffn[b] = &states[b]->ffn;
    }
    workspace::scope scope(ctx.ws());
    row_matrix& normed = ctx.scratch(x.rows(), x.cols());
    row_matrix& out = ctx.scratch(x.rows(), x.cols());
    ops_type::layer_norm(x, ln1_w_, ln1_b_, normed);
    batch_call(att_, normed, std::span<typename TimeMix::state_type* const>(att), ctx, out);
    x += out;
    ops_type::layer_norm(x, ln2_w_, ln2_b_, normed);
    batch_call(ffn_, normed, std::span<typename ChannelMix::state_type* const>(ffn), ctx, out);
    x += out;
  }

  const TimeMix& att() const noexcept { return att_; }
  const ChannelMix& ffn() const noexcept { return ffn_; }
  std::int64_t layer() const noexcept { return layer_; }

 private:
  using ops_type = ops<typename detail::backend_of<TimeMix>::type>;

  template <class Mixer, class S>
  static void batch_call(const Mixer& m, const row_matrix& x, std::span<S* const> states, context& ctx,
                         row_matrix& out) {
    if constexpr (requires { m.forward_batch(x, states, ctx, out); }) {
      m.forward_batch(x, states, ctx, out);
    } else {
      out.resize(x.rows(), x.cols());
      row_matrix one(1, x.cols()), o;
      for (Eigen::Index b = 0; b < x.rows(); ++b) {
        one = x.row(b);
        detail::with_row_context(ctx, b, x.rows(), [&](context& row_ctx) {
          m.forward(one, *states[static_cast<std::size_t>(b)], row_ctx, o);
        });
        out.row(b) = o.row(0);
      }
    }
  }

  TimeMix att_;
  ChannelMix ffn_;
  std::int64_t layer_ = 0, n_embd_ = 0;
  std::vector<float> ln1_w_, ln1_b_, ln2_w_, ln2_b_;
};

}  // namespace rwkv

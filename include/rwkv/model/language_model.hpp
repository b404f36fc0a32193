#pragma once
// A whole RWKV language model around one block type: embedding (+ ln0), L blocks, ln_out, head
// (spec/README.md §2). Version-specific parts come from Traits:
//   config_type                         dimensions, with static from(io::weight_reader&) and n_layer/n_embd/vocab
//   block_type                          constructible from (reader, config, layer); forward(x, state, ctx)
//   static constexpr const char* version
//   static void check(const config_type&, io::weight_reader&)   optional: refuses what this instantiation
//                                                                cannot run, before any block is read
// rwkv::ComposedModel (model/composed_model.hpp) supplies traits for any block type.
// Weights are immutable after loading: one model can serve many threads, each with its own State.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/concepts.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/workspace.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/state.hpp"
#include "rwkv/model/taps.hpp"

namespace rwkv {

// Which positions of a sequence call produce logits (the head is the most expensive matrix of small models).
enum class logits_for { last, all };

template <class Traits>
class LanguageModel {
  static_assert(check_block<typename Traits::block_type>());

 public:
  using traits_type = Traits;
  using config_type = typename Traits::config_type;
  using block_type = typename Traits::block_type;
  using precision_type = typename Traits::precision_type;
  using backend_type = typename Traits::backend_type;
  using weight_type = typename precision_type::weight_type;
  using state_type = State<typename block_type::state_type>;
  static constexpr const char* version = Traits::version;

  static LanguageModel load(const std::filesystem::path& path, io::load_options options = {}) {
    auto file = io::open_checkpoint(path);
    io::weight_reader reader(file.path, file.tensors, file.owner, options);
    return from_reader(reader);
  }

  static LanguageModel from_reader(io::weight_reader& r) {
    LanguageModel m;
    check_version(r);
    m.cfg_ = config_type::from(r);
    if constexpr (requires { Traits::check(m.cfg_, r); }) Traits::check(m.cfg_, r);
    const auto& c = m.cfg_;
    m.emb_ = r.weight<weight_type>("emb.weight", c.vocab, c.n_embd);
    m.ln0_w_ = r.vector("blocks.0.ln0.weight", c.n_embd);
    m.ln0_b_ = r.vector("blocks.0.ln0.bias", c.n_embd);
    for (std::int64_t i = 0; i < c.n_layer; ++i) m.blocks_.emplace_back(r, c, i);
    m.ln_out_w_ = r.vector("ln_out.weight", c.n_embd);
    m.ln_out_b_ = r.vector("ln_out.bias", c.n_embd);
    m.head_ = r.weight<weight_type>("head.weight", c.vocab, c.n_embd);
    r.finish();
    m.source_ = r.path();
    m.parameters_ = r.consumed_elements();
    std::vector<typename block_type::state_type> layers;
    for (const auto& b : m.blocks_) layers.push_back(b.make_state());
    m.initial_ = state_type(state_tag(m.blocks_), std::move(layers));
    return m;
  }

  const config_type& cfg() const noexcept { return cfg_; }
  const std::string& source() const noexcept { return source_; }
  const std::vector<block_type>& blocks() const noexcept { return blocks_; }
  // Number of parameters the model uses (tensors in the file that the model ignores are not counted).
  std::int64_t parameter_count() const noexcept { return parameters_; }

  // The initial state (zeros, except where a version says otherwise).
  state_type make_state() const { return initial_; }

  // RNN form: one token, returns its logits (V).
  std::vector<float> step(std::int32_t token, state_type& s, thread_pool* pool = nullptr) const {
    return with_default_workspace([&](workspace& ws) {
      const auto logits = step(token, s, ws, pool);
      return std::vector<float>(logits.begin(), logits.end());
    });
  }

  // RNN form with the caller's workspace: returns a view of the logits (V) inside `ws`, valid until its next
  // use. After the first call nothing is allocated (a decode loop runs without touching the heap).
  std::span<const float> step(std::int32_t token, state_type& s, workspace& ws, thread_pool* pool = nullptr) const {
    const std::int32_t tokens[1] = {token};
    const row_matrix& logits = forward(tokens, s, logits_for::last, ws, pool);
    return {logits.data(), static_cast<std::size_t>(logits.size())};
  }

  // Sequence form: T tokens in one call; returns the logits of the last token (V). `wkv_form` picks how the WKV
  // recurrence runs (serial, chunked, or by length; see rwkv::form).
  std::vector<float> prefill(std::span<const std::int32_t> tokens, state_type& s, thread_pool* pool = nullptr,
                             form wkv_form = form::automatic) const {
    return with_default_workspace([&](workspace& ws) {
      const row_matrix& logits = forward(tokens, s, logits_for::last, ws, pool, wkv_form);
      return std::vector<float>(logits.data(), logits.data() + logits.size());
    });
  }

  // Sequence form with a choice of outputs: T x V (all) or 1 x V (last). Nothing is changed on error.
  // `pool` (optional) runs the kernels of this call on its threads; `wkv_form` picks how the WKV recurrence runs.
  row_matrix forward(std::span<const std::int32_t> tokens, state_type& s, logits_for which, thread_pool* pool = nullptr,
                     form wkv_form = form::automatic) const {
    no_taps none;
    return forward_with(none, tokens, s, which, pool, wkv_form);
  }

  // The same with the caller's workspace: the logits stay in `ws` (valid until its next use), and a call of a
  // shape seen before allocates nothing.
  const row_matrix& forward(std::span<const std::int32_t> tokens, state_type& s, logits_for which, workspace& ws,
                            thread_pool* pool = nullptr, form wkv_form = form::automatic) const {
    no_taps none;
    return run(none, tokens, s, which, ws, pool, wkv_form);
  }

  // forward, showing the residual stream, the mixers' outputs and the states to `taps` (model/taps.hpp) as
  // they are computed; what the taps write is what the rest of the model sees.
  template <class Taps>
  row_matrix forward_with(Taps& t, std::span<const std::int32_t> tokens, state_type& s,
                          logits_for which = logits_for::last, thread_pool* pool = nullptr,
                          form wkv_form = form::automatic) const {
    return with_default_workspace(
        [&](workspace& ws) -> row_matrix { return run(t, tokens, s, which, ws, pool, wkv_form); });
  }

  // A state of another model type is a compile error with a sentence, not a list of overloads.
  template <class S>
  std::vector<float> step(std::int32_t, S&, thread_pool* = nullptr) const {
    static_assert(StateFor<S, LanguageModel>,
                  "rwkv: this state type belongs to another model type; make states with model.make_state()");
    return {};
  }
  template <class S>
  std::vector<float> prefill(std::span<const std::int32_t>, S&, thread_pool* = nullptr, form = form::automatic) const {
    static_assert(StateFor<S, LanguageModel>,
                  "rwkv: this state type belongs to another model type; make states with model.make_state()");
    return {};
  }

  // Batched decoding: token b belongs to the sequence whose state is *states[b]; returns B x V logits.
  // One matrix product over the B rows per weight, instead of B matrix-vector products.
  row_matrix forward_batch(std::span<const std::int32_t> tokens, std::span<state_type* const> states,
                           thread_pool* pool = nullptr) const {
    return with_default_workspace([&](workspace& ws) -> row_matrix { return forward_batch(tokens, states, ws, pool); });
  }

  // The same with the caller's workspace (logits valid until its next use).
  const row_matrix& forward_batch(std::span<const std::int32_t> tokens, std::span<state_type* const> states,
                                  workspace& ws, thread_pool* pool = nullptr) const {
    if (tokens.size() != states.size())
      throw error(std::to_string(tokens.size()) + " tokens for " + std::to_string(states.size()) + " states", source_);
    for (auto* s : states) {
      if (!s) throw error("null state in batch", source_);
      check(tokens, *s);
    }
    for (std::size_t a = 0; a < states.size(); ++a)
      for (std::size_t b = a + 1; b < states.size(); ++b)
        if (states[a] == states[b]) throw error("the same state appears twice in one batch", source_);
    workspace::scope top(ws);
    context ctx(ws, pool);
    row_matrix& x = ws.persistent(workspace::slot::residual);
    embed(tokens, x);
    ctx.set_inputs(tokens, x);
    ctx.embed_tokens = [this](std::span<const std::int32_t> t, row_matrix& out) { embed(t, out); };
    std::vector<typename block_type::state_type*> layer(states.size());
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      for (std::size_t b = 0; b < states.size(); ++b) layer[b] = &states[b]->layers[i];
      blocks_[i].forward_batch(x, layer, ctx);
    }
    row_matrix& logits = ws.persistent(workspace::slot::logits);
    head(x, 0, ctx, logits);
    return logits;
  }

  // ln0(emb[token]) for each token (T x C). The reference pre-applies ln0 to the table; doing it per lookup
  // is the same function and keeps the table in its storage type.
  row_matrix embed(std::span<const std::int32_t> tokens) const {
    row_matrix x;
    embed(tokens, x);
    return x;
  }
  void embed(std::span<const std::int32_t> tokens, row_matrix& x) const {
    const auto C = cfg_.n_embd;
    x.resize(static_cast<Eigen::Index>(tokens.size()), C);
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      float* row = x.row(static_cast<Eigen::Index>(t)).data();
      kernel::cpu::detail::widen_rows(emb_, tokens[t], 1, row);
      math::layer_norm(row, ln0_w_.data(), ln0_b_.data(), row, static_cast<std::size_t>(C), 1e-5f);  // in place
    }
  }

  // head(ln_out(x)) for rows first..T-1 of the residual stream.
  row_matrix head(const row_matrix& x, Eigen::Index first, thread_pool* pool = nullptr) const {
    context ctx;
    ctx.pool = pool;
    row_matrix logits;
    head(x, first, ctx, logits);
    return logits;
  }
  void head(const row_matrix& x, Eigen::Index first, context& ctx, row_matrix& logits) const {
    workspace::scope scope(ctx.ws());
    row_matrix& normed = ctx.scratch(x.rows() - first, cfg_.n_embd);
    ops_type::layer_norm(x.bottomRows(x.rows() - first), ln_out_w_, ln_out_b_, normed);
    ops_type::products(ctx, ops_type::linear(head_, normed, logits));
  }

 private:
  using ops_type = ops<backend_type>;

  template <class Taps>
  const row_matrix& run(Taps& t, std::span<const std::int32_t> tokens, state_type& s, logits_for which, workspace& ws,
                        thread_pool* pool, form wkv_form) const {
    check(tokens, s);
    workspace::scope top(ws);  // scratch a user mixer takes outside a scope of its own is returned too
    context ctx(ws, pool, wkv_form);
    row_matrix& x = ws.persistent(workspace::slot::residual);
    embed(tokens, x);
    ctx.set_inputs(tokens, x);
    ctx.embed_tokens = [this](std::span<const std::int32_t> t, row_matrix& out) { embed(t, out); };
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const auto layer = static_cast<std::int64_t>(i);
      taps::block_input(t, layer, x);
      if constexpr (requires { blocks_[i].forward(x, s.layers[i], ctx, t); })
        blocks_[i].forward(x, s.layers[i], ctx, t);
      else
        blocks_[i].forward(x, s.layers[i], ctx);
      taps::block_output(t, layer, x);
      taps::layer_state(t, layer, s.layers[i]);
    }
    row_matrix& logits = ws.persistent(workspace::slot::logits);
    head(x, which == logits_for::all ? 0 : x.rows() - 1, ctx, logits);
    return logits;
  }

  // f(ws) with one workspace per thread, for the calls that do not pass their own. It keeps up to 64 MiB between
  // calls (any decode, prefill of a few hundred tokens); a long prompt's larger scratch is freed after its call. A
  // call made from inside another on the same thread (from a taps callback) gets a workspace of its own.
  template <class F>
  static auto with_default_workspace(F&& f) {
    thread_local workspace ws;
    thread_local int depth = 0;
    if (depth > 0) {
      workspace nested;
      return f(nested);
    }
    struct leave {
      ~leave() {
        --depth;
        if (ws.bytes() > (std::size_t{64} << 20)) ws.release();
      }
    } guard;
    ++depth;
    return f(ws);
  }

  // A built-in version's model given another version's checkpoint says so, instead of naming a missing tensor
  // (or, for the RWKV-7 variants, instead of running a 7b file as 7a or 7 with tensors ignored).
  static void check_version(const io::weight_reader& r) {
    const std::string_view want = version;
    constexpr std::string_view built_in[] = {"4", "5", "6", "7", "7a", "7b"};
    if (std::find(std::begin(built_in), std::end(built_in), want) == std::end(built_in) || !r.has("emb.weight"))
      return;  // composed models: any
    const std::string found = version_name(detect_version(r.views(), r.path()));
    if (want == "5" ? found.starts_with("5") : found == want) return;
    const std::string module = found.starts_with("5") ? "v5" : "v" + found;
    throw error("this is an RWKV-" + found + " checkpoint, not RWKV-" + std::string(want) +
                    ": load it with rwkv::" + module + "::Model or rwkv::any_model",
                r.path());
  }

  // The version a state carries: the model's, plus the block type of each layer when layers differ in type (a
  // state of a v6/v7 hybrid is no state for a hybrid with another layout, even if the sizes agree).
  static std::string state_tag(const std::vector<block_type>& blocks) {
    std::string tag = version;
    if constexpr (requires(const block_type& b) { b.index(); }) {
      tag += ':';
      for (const auto& b : blocks) tag += static_cast<char>('a' + b.index());
    }
    return tag;
  }

  void check(std::span<const std::int32_t> tokens, const state_type& s) const {
    if (tokens.empty()) throw error("empty token sequence", source_);
    for (auto t : tokens)
      if (t < 0 || t >= cfg_.vocab)
        throw error("token id " + std::to_string(t) + " is out of range [0, " + std::to_string(cfg_.vocab) + ")",
                    source_);
    if (!s.same_shape(initial_))
      throw error("the state was made for a different model (RWKV-" + s.version() + ", " +
                      std::to_string(s.layers.size()) + " layers, or other sizes)",
                  source_);
  }

  config_type cfg_;
  std::string source_;
  std::int64_t parameters_ = 0;
  matrix<weight_type> emb_, head_;
  std::vector<float> ln0_w_, ln0_b_, ln_out_w_, ln_out_b_;
  std::vector<block_type> blocks_;
  state_type initial_;
};

}  // namespace rwkv

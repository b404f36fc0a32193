#pragma once
// A whole RWKV-7 language model: embedding (+ ln0), L blocks, ln_out, head (spec/README.md §2, spec/v7.md).
// Weights are immutable after loading: one model can serve many threads, each with its own State.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/cpu/norm.hpp"
#include "rwkv/v7/block.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/state.hpp"

namespace rwkv {

// Which positions of a sequence call produce logits (the head is the most expensive matrix of small models).
enum class logits_for { last, all };

}  // namespace rwkv

namespace rwkv::v7 {

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
class Model {
 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using time_mix_type = TimeMix<P, B, HeadSize>;
  using channel_mix_type = ChannelMix<P, B>;
  using block_type = Block<time_mix_type, channel_mix_type>;
  using state_type = State;
  static constexpr int head_size = HeadSize;
  static constexpr const char* version = "7";

  static Model load(const std::filesystem::path& path, io::load_options options = {}) {
    auto file = io::safetensors_file::open(path);
    io::weight_reader reader(file.path(), file.tensors(), file.owner(), options);
    return from_reader(reader);
  }

  static Model from_reader(io::weight_reader& r) {
    Model m;
    m.cfg_ = Config::from(r);
    const auto& c = m.cfg_;
    if (c.head_size != HeadSize)
      r.fail("head size " + std::to_string(c.head_size) + " is not supported by this model type (compiled for head size " +
                 std::to_string(HeadSize) + ")",
             "blocks.0.att.r_k");
    m.emb_ = r.weight<weight_type>("emb.weight", c.vocab, c.n_embd);
    m.ln0_w_ = r.vector("blocks.0.ln0.weight", c.n_embd);
    m.ln0_b_ = r.vector("blocks.0.ln0.bias", c.n_embd);
    for (std::int64_t i = 0; i < c.n_layer; ++i) m.blocks_.emplace_back(r, c, i);
    m.ln_out_w_ = r.vector("ln_out.weight", c.n_embd);
    m.ln_out_b_ = r.vector("ln_out.bias", c.n_embd);
    m.head_ = r.weight<weight_type>("head.weight", c.vocab, c.n_embd);
    r.finish();
    m.source_ = r.path();
    return m;
  }

  const Config& cfg() const noexcept { return cfg_; }
  const std::string& source() const noexcept { return source_; }
  const std::vector<block_type>& blocks() const noexcept { return blocks_; }

  State make_state() const { return State(cfg_); }

  // RNN form: one token, returns its logits (V).
  std::vector<float> step(std::int32_t token, State& s) const {
    const std::int32_t tokens[1] = {token};
    auto logits = forward(tokens, s, logits_for::last);
    return {logits.data(), logits.data() + logits.size()};
  }

  // Sequence form: T tokens in one call; returns the logits of the last token (V).
  std::vector<float> prefill(std::span<const std::int32_t> tokens, State& s) const {
    auto logits = forward(tokens, s, logits_for::last);
    return {logits.data(), logits.data() + logits.size()};
  }

  // Sequence form with a choice of outputs: T x V (all) or 1 x V (last). An empty sequence is an error.
  kernel::cpu::row_matrix forward(std::span<const std::int32_t> tokens, State& s, logits_for which) const {
    check(tokens, s);
    const auto T = static_cast<Eigen::Index>(tokens.size());
    const auto C = cfg_.n_embd;
    kernel::cpu::row_matrix x(T, C);
    std::vector<float> row(static_cast<std::size_t>(C));
    for (Eigen::Index t = 0; t < T; ++t) {
      kernel::cpu::detail::widen_rows(emb_, tokens[static_cast<std::size_t>(t)], 1, row.data());
      kernel::cpu::layer_norm(row.data(), ln0_w_.data(), ln0_b_.data(), x.row(t).data(), static_cast<std::size_t>(C));
    }
    context ctx;
    for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i].forward(x, s.layers[i], ctx);

    const Eigen::Index first = which == logits_for::all ? 0 : T - 1;
    kernel::cpu::row_matrix normed(T - first, C), logits;
    for (Eigen::Index t = first; t < T; ++t)
      kernel::cpu::layer_norm(x.row(t).data(), ln_out_w_.data(), ln_out_b_.data(), normed.row(t - first).data(),
                              static_cast<std::size_t>(C));
    detail::linear<typename B::arch>(head_, normed, logits);
    return logits;
  }

  // Number of parameters as stored (every tensor the model uses).
  std::int64_t parameter_count() const {
    const auto& c = cfg_;
    const std::int64_t C = c.n_embd;
    std::int64_t per_layer = 4 * C                                                   // ln1, ln2
                             + 12 * C + c.n_head * c.head_size                       // mix/bias vectors, ln_x, r_k
                             + 2 * C * (c.d_decay + c.d_iclr + c.d_gate)             // LoRAs
                             + 4 * C * C + 2 * C * c.dim_ffn + C;                    // linears, ffn.x_k
    std::int64_t total = c.n_layer * per_layer + (c.n_layer - 1) * (C + 2 * C * c.d_value);
    return total + 2 * c.vocab * C + 4 * C;  // emb, head, ln0, ln_out
  }

 private:
  void check(std::span<const std::int32_t> tokens, const State& s) const {
    if (tokens.empty()) throw error("empty token sequence");
    for (auto t : tokens)
      if (t < 0 || t >= cfg_.vocab)
        throw error("token id " + std::to_string(t) + " is out of range [0, " + std::to_string(cfg_.vocab) + ")", source_);
    if (!(s.cfg() == cfg_)) throw error("the state was made for a different model (shapes differ)", source_);
  }

  Config cfg_;
  std::string source_;
  matrix<weight_type> emb_, head_;
  std::vector<float> ln0_w_, ln0_b_, ln_out_w_, ln_out_b_;
  std::vector<block_type> blocks_;
};

}  // namespace rwkv::v7

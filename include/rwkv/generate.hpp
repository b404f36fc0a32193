#pragma once
// Streaming text generation: the reference generation loop (spec/sampling.md §2) around any model with
// prefill/step and any tokenizer with encode/decode.
//
//   const auto model = rwkv::load_model<rwkv::v7::Model<rwkv::f32>>("tests/data/tiny-7v0.model.safetensors");
//   auto state = model.make_state();
//   rwkv::generate(model, state, rwkv::byte_tokenizer{}, "The quick",
//                  {.sampling = {.temperature = 0.8f}, .max_tokens = 64, .seed = 42},
//                  [](std::string_view piece) { std::cout << piece << std::flush; return true; });
//
// Per token: bans and penalties on the logits, sample, stop on a stop token (not emitted, not fed), update the
// penalties, stream the text, feed the token to the model. The prompt is fed with model.prefill in chunks of
// chunk_len tokens.
//
// Contract:
// * The state is the caller's. On return it has consumed the prompt and every token of result.tokens, so a
//   conversation continues by calling generate again with the same state and the next prompt.
// * Streaming: a piece is passed to the callback as soon as it cannot be the start of a stop string and does
//   not end in the middle of a UTF-8 character (the reference's "\ufffd" rule). Bytes that can never become
//   valid UTF-8 are passed through unchanged rather than held forever, and when generation ends without a stop
//   string whatever was held back is passed on, so the pieces concatenate to tokenizer.decode(result.tokens).
// * A stop string ends generation when the generated text contains it: the text before it is emitted, the stop
//   string and anything after it are not. The tokens that produced it were sampled and fed, so they are in
//   result.tokens.
// * A callback may return bool (false stops generation at once) or nothing.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/sample/penalties.hpp"
#include "rwkv/sample/sampler.hpp"
#include "rwkv/tokenizer/utf8.hpp"

namespace rwkv {

// What generate() needs of a model: rwkv::LanguageModel (e.g. rwkv::v7::Model<>) has it.
template <class M>
concept generation_model = requires(const M& m, typename M::state_type& s, std::span<const std::int32_t> tokens,
                                    std::int32_t token) {
  { m.prefill(tokens, s) } -> std::convertible_to<std::vector<float>>;
  { m.step(token, s) } -> std::convertible_to<std::vector<float>>;
};

// What generate() needs of a tokenizer: rwkv::byte_tokenizer and rwkv::world_tokenizer have it.
template <class T>
concept generation_tokenizer = requires(const T& t, std::string_view text, std::span<const std::int32_t> ids) {
  { t.encode(text) } -> std::convertible_to<std::vector<std::int32_t>>;
  { t.decode(ids) } -> std::convertible_to<std::string>;
};

struct generation_params {
  sampling_params sampling{};               // temperature (0 = greedy), top_p, top_k
  penalty_params penalty{};                 // presence, frequency, decay, bans (reference defaults)
  int max_tokens = 256;                     // tokens to generate at most (0: only feed the prompt)
  std::vector<std::int32_t> stop_tokens{};  // sampled -> stop, neither emitted nor fed
  std::vector<std::string> stop_strings{};  // appear in the generated text -> stop, not emitted
  std::uint64_t seed = 0;                   // std::mt19937_64 seed: same seed, same text
  std::size_t chunk_len = 256;              // prompt tokens per prefill call
  // Sample only tokens that keep the generated text printable UTF-8 (rwkv::keeps_text: no invalid sequences, no
  // control characters but tab and newline). Small byte-level models otherwise emit stray bytes that a terminal
  // shows as garbage. Tokens that decode to nothing (an end-of-text token) stay allowed.
  bool text_only = false;
};

enum class stop_reason { max_tokens, stop_token, stop_string, callback };

constexpr const char* to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::max_tokens:
      return "max_tokens";
    case stop_reason::stop_token:
      return "stop_token";
    case stop_reason::stop_string:
      return "stop_string";
    case stop_reason::callback:
      return "callback";
  }
  return "?";
}

struct generation_result {
  std::vector<std::int32_t> tokens;  // generated, in order, all fed to the state (a stop token is not)
  std::string text;                  // everything passed to the callback, concatenated
  stop_reason reason = stop_reason::max_tokens;
};

namespace detail {

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
inline std::size_t partial_stop_suffix(std::string_view text, std::string_view stop) {
  for (std::size_t k = std::min(text.size(), stop.size() - 1); k > 0; --k)
    if (text.substr(text.size() - k) == stop.substr(0, k)) return k;
  return 0;
}

// generation_params::text_only: bans the tokens that would break printable UTF-8 text, and near the end of the
// token budget those that start a character the remaining tokens could not finish (the text never ends in the
// middle of a character). Every token's bytes are decoded once, and what each does at a character boundary (the
// usual case) is computed once too.
template <class Tokenizer>
class text_filter {
 public:
  text_filter(const Tokenizer& tok, bool on) : tok_(&tok), on_(on) {}

  // `remaining`: tokens that may still be generated, this one included.
  void apply(std::span<float> logits, int remaining) {
    if (!on_) return;
    if (pieces_.size() != logits.size()) prepare(logits.size());
    for (std::size_t v = 0; v < logits.size(); ++v) {
      const int missing = tail_.empty() ? at_boundary_[v] : text_bytes_missing(tail_, pieces_[v]);
      if (missing < 0 || missing > remaining - 1) logits[v] = -INFINITY;  // a token gives at least one byte
    }
  }

  void append(std::string_view piece) {
    if (!on_) return;
    tail_ += piece;
    tail_.erase(0, tail_.size() - incomplete_utf8_suffix(tail_));
  }

 private:
  void prepare(std::size_t V) {
    pieces_.resize(V);
    at_boundary_.resize(V);
    for (std::size_t v = 0; v < V; ++v) {
      const auto id = static_cast<std::int32_t>(v);
      try {
        pieces_[v] = tok_->decode(std::span<const std::int32_t>(&id, 1));
      } catch (const error&) {
        pieces_[v].assign(1, static_cast<char>(0xFF));  // an id the tokenizer has no bytes for: never text
      }
      at_boundary_[v] = static_cast<signed char>(text_bytes_missing({}, pieces_[v]));
    }
  }

  const Tokenizer* tok_;  // a pointer: a generator (which holds this) is assignable
  bool on_;
  std::string tail_;  // the generated text's unfinished last character
  std::vector<std::string> pieces_;
  std::vector<signed char> at_boundary_;
};

}  // namespace detail

// One sequence's generation, a token at a time, from logits computed elsewhere: what generate() runs, and what a
// server runs for each of the sequences it decodes together. Per call of next(): bans and penalties on the
// logits, sample, stop on a stop token (not emitted, not to be fed), update the penalties, stream the text.
//
//   rwkv::generator g(tokenizer, params);
//   while (const auto token = g.next(logits, on_text)) {
//     logits = model.step(*token, state);      // every token next() returns is fed
//     if (g.done()) break;                     // a stop string or the callback ended it
//   }
//   g.finish(on_text);                          // passes on what was held back
namespace detail {

// How many ids (0 .. n-1) the tokenizer has bytes for: a World vocabulary stops at 65530 while its models have
// 65536 logits. A tokenizer that does not say is taken to decode every id.
template <class Tokenizer>
std::size_t decodable_ids(const Tokenizer& tok) {
  if constexpr (requires {
                  { tok.vocab_size() } -> std::convertible_to<std::int64_t>;
                })
    return static_cast<std::size_t>(tok.vocab_size());
  else if constexpr (requires {
                       { Tokenizer::vocab_size } -> std::convertible_to<std::int64_t>;
                     })
    return static_cast<std::size_t>(Tokenizer::vocab_size);
  else
    return std::numeric_limits<std::size_t>::max();
}

}  // namespace detail

template <generation_tokenizer Tokenizer>
class generator {
 public:
  generator(const Tokenizer& tokenizer, generation_params params)
      : params_(std::move(params)),
        tok_(&tokenizer),
        pen_((validate(params_), params_.penalty)),
        rng_(params_.seed),
        filter_(tokenizer, params_.text_only) {}

  // The next token to feed to the model, or nothing when generation has ended (a stop token, max_tokens, or
  // done() after the previous token). `logits` are modified (penalties, filters).
  template <class Callback>
  std::optional<std::int32_t> next(std::span<float> logits, Callback&& on_text) {
    if (stopped_) return std::nullopt;
    const int i = static_cast<int>(result_.tokens.size());
    if (i >= params_.max_tokens) {
      stopped_ = true;
      return std::nullopt;
    }
    // Ids the tokenizer cannot decode are never drawn (a random model, or a fine-tune, may favour them).
    if (const auto n = detail::decodable_ids(*tok_); n < logits.size())
      std::fill(logits.begin() + static_cast<std::ptrdiff_t>(n), logits.end(), -INFINITY);
    pen_.apply(logits);
    filter_.apply(logits, params_.max_tokens - i);
    const std::int32_t token = sample(logits, params_.sampling, rng_);
    if (std::find(params_.stop_tokens.begin(), params_.stop_tokens.end(), token) != params_.stop_tokens.end()) {
      result_.reason = stop_reason::stop_token;
      stopped_ = true;
      return std::nullopt;
    }
    result_.tokens.push_back(token);
    const std::string piece = tok_->decode(std::span<const std::int32_t>(&token, 1));
    pen_.update(token, piece);
    filter_.append(piece);

    pending_ += piece;
    auto match = std::string::npos;
    for (const auto& s : params_.stop_strings) match = std::min(match, pending_.find(s));
    if (match != std::string::npos) {
      emit(std::string_view(pending_).substr(0, match), on_text);
      pending_.clear();
      if (!stopped_) result_.reason = stop_reason::stop_string;
      stopped_ = true;
    } else {
      std::size_t hold = incomplete_utf8_suffix(pending_);
      for (const auto& s : params_.stop_strings) hold = std::max(hold, detail::partial_stop_suffix(pending_, s));
      const std::size_t ready = pending_.size() - hold;
      emit(std::string_view(pending_).substr(0, ready), on_text);
      pending_.erase(0, ready);
    }
    return token;  // fed even when it ended generation: every token of result().tokens is in the state
  }

  // Whether generation has ended (next() returns nothing from now on).
  bool done() const noexcept { return stopped_; }

  // Passes on the text held back (a possible start of a stop string or of a UTF-8 character): call it once
  // generation has ended.
  template <class Callback>
  void finish(Callback&& on_text) {
    stopped_ = true;
    const std::string rest = std::move(pending_);
    pending_.clear();
    emit_always(rest, on_text);
  }

  const generation_result& result() const noexcept { return result_; }
  const generation_params& params() const noexcept { return params_; }

 private:
  static void validate(const generation_params& p) {
    if (p.max_tokens < 0) throw error("generate: max_tokens must be >= 0");
    if (p.chunk_len == 0) throw error("generate: chunk_len must be > 0");
    for (const auto& s : p.stop_strings)
      if (s.empty()) throw error("generate: empty stop string");
  }

  template <class Callback>
  void emit(std::string_view text, Callback& on_text) {
    if (!stopped_) emit_always(text, on_text);
  }
  template <class Callback>
  void emit_always(std::string_view text, Callback& on_text) {
    if (text.empty() || declined_) return;
    result_.text += text;
    if constexpr (std::is_void_v<std::invoke_result_t<Callback&, std::string_view>>) {
      on_text(text);
    } else if (!static_cast<bool>(on_text(text))) {
      declined_ = stopped_ = true;
      result_.reason = stop_reason::callback;
    }
  }

  generation_params params_;
  const Tokenizer* tok_;
  penalties pen_;
  std::mt19937_64 rng_;
  detail::text_filter<Tokenizer> filter_;
  generation_result result_;
  std::string pending_;  // generated bytes not yet passed to the callback
  bool stopped_ = false, declined_ = false;
};

template <generation_model Model, generation_tokenizer Tokenizer, class Callback>
requires std::invocable<Callback&, std::string_view> generation_result
generate(const Model& model, typename Model::state_type& state, const Tokenizer& tokenizer,
         std::span<const std::int32_t> prompt, const generation_params& params, Callback&& on_text) {
  if (prompt.empty()) throw error("generate: the prompt is empty (a step needs logits to sample from)");
  generator<Tokenizer> g(tokenizer, params);  // validates before the state is touched
  std::vector<float> logits;
  for (std::size_t i = 0; i < prompt.size(); i += params.chunk_len)
    logits = model.prefill(prompt.subspan(i, std::min(params.chunk_len, prompt.size() - i)), state);
  while (const auto token = g.next(logits, on_text)) {
    logits = model.step(*token, state);
    if (g.done()) break;
  }
  g.finish(on_text);
  return g.result();
}

template <generation_model Model, generation_tokenizer Tokenizer, class Callback>
requires std::invocable<Callback&, std::string_view> generation_result
generate(const Model& model, typename Model::state_type& state, const Tokenizer& tokenizer, std::string_view prompt,
         const generation_params& params, Callback&& on_text) {
  const std::vector<std::int32_t> ids = tokenizer.encode(prompt);
  return generate(model, state, tokenizer, std::span<const std::int32_t>(ids), params, std::forward<Callback>(on_text));
}

// Without a callback: the text is in result.text.
template <generation_model Model, generation_tokenizer Tokenizer>
generation_result generate(const Model& model, typename Model::state_type& state, const Tokenizer& tokenizer,
                           std::string_view prompt, const generation_params& params = {}) {
  return generate(model, state, tokenizer, prompt, params, [](std::string_view) {});
}

template <generation_model Model, generation_tokenizer Tokenizer>
generation_result generate(const Model& model, typename Model::state_type& state, const Tokenizer& tokenizer,
                           std::span<const std::int32_t> prompt, const generation_params& params = {}) {
  return generate(model, state, tokenizer, prompt, params, [](std::string_view) {});
}

}  // namespace rwkv

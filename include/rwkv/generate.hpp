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
#include <concepts>
#include <cstdint>
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

}  // namespace detail

template <generation_model Model, generation_tokenizer Tokenizer, class Callback>
requires std::invocable<Callback&, std::string_view> generation_result
generate(const Model& model, typename Model::state_type& state, const Tokenizer& tokenizer,
         std::span<const std::int32_t> prompt, const generation_params& params, Callback&& on_text) {
  if (prompt.empty()) throw error("generate: the prompt is empty (a step needs logits to sample from)");
  if (params.max_tokens < 0) throw error("generate: max_tokens must be >= 0");
  if (params.chunk_len == 0) throw error("generate: chunk_len must be > 0");
  for (const auto& s : params.stop_strings)
    if (s.empty()) throw error("generate: empty stop string");

  penalties pen(params.penalty);  // validates before the state is touched
  std::vector<float> logits;
  for (std::size_t i = 0; i < prompt.size(); i += params.chunk_len)
    logits = model.prefill(prompt.subspan(i, std::min(params.chunk_len, prompt.size() - i)), state);

  generation_result result;
  std::mt19937_64 rng(params.seed);
  std::string pending;  // generated bytes not yet passed to the callback
  bool stopped = false;
  auto emit = [&](std::string_view text) {
    if (text.empty() || stopped) return;
    result.text += text;
    if constexpr (std::is_void_v<std::invoke_result_t<Callback&, std::string_view>>) {
      on_text(text);
    } else if (!static_cast<bool>(on_text(text))) {
      stopped = true;
      result.reason = stop_reason::callback;
    }
  };

  for (int i = 0; i < params.max_tokens; ++i) {
    pen.apply(logits);
    const std::int32_t token = sample(logits, params.sampling, rng);
    if (std::find(params.stop_tokens.begin(), params.stop_tokens.end(), token) != params.stop_tokens.end()) {
      result.reason = stop_reason::stop_token;
      break;
    }
    result.tokens.push_back(token);
    const std::string piece = tokenizer.decode(std::span<const std::int32_t>(&token, 1));
    pen.update(token, piece);

    pending += piece;
    auto match = std::string::npos;
    for (const auto& s : params.stop_strings) match = std::min(match, pending.find(s));
    if (match != std::string::npos) {
      emit(std::string_view(pending).substr(0, match));
      pending.clear();
      if (!stopped) result.reason = stop_reason::stop_string;
      stopped = true;
    } else {
      std::size_t hold = incomplete_utf8_suffix(pending);
      for (const auto& s : params.stop_strings) hold = std::max(hold, detail::partial_stop_suffix(pending, s));
      const std::size_t ready = pending.size() - hold;
      emit(std::string_view(pending).substr(0, ready));
      pending.erase(0, ready);
    }

    logits = model.step(token, state);  // every returned token is in the state
    if (stopped) break;
  }
  emit(pending);  // generation ended without a stop string: nothing is held back any more
  return result;
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

#pragma once
// OpenAI-style completion and chat-completion requests (the JSON bodies of POST /v1/completions and
// /v1/chat/completions) checked and turned into rwkv::serve::request: types and ranges of every field, unknown
// fields refused (a misspelt parameter must not be ignored silently), prompts tokenized and bounded. Chat messages
// are rendered in the RWKV World chat format ("System: …\n\nUser: …\n\nAssistant:"), and the reply stops at the
// end of the assistant's turn ("\n\n"). A bad request throws request_error with the HTTP status and an
// OpenAI-style error code; nothing else escapes for any input (fuzz/openai_request_fuzz.cpp).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "rwkv/serve/engine.hpp"

namespace rwkv::serve::openai {

using json = nlohmann::json;

struct request_error {
  int status;
  std::string message, type, code;
};

inline request_error bad_request(std::string message, std::string code = "invalid_request") {
  return {400, std::move(message), "invalid_request_error", std::move(code)};
}

struct request_limits {
  std::size_t max_prompt_tokens = 8192;
};

struct parsed_request {
  serve::request req;
  bool stream = false;
  bool include_usage = false;  // streamed: a last event with the usage counts
};

// A JSON request body whose fields are read one by one; fields that remain unread are an error (a misspelt
// parameter must not be ignored silently), except those the OpenAI API defines and this server accepts as is.
class json_body {
 public:
  explicit json_body(const std::string& text) {
    try {
      j_ = json::parse(text);
    } catch (const json::exception& e) {
      throw bad_request(std::string("the body is not valid JSON: ") + e.what(), "invalid_json");
    }
    if (!j_.is_object()) throw bad_request("the body must be a JSON object", "invalid_json");
  }

  bool has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }
  const json& raw(const std::string& k) {
    read_.insert(k);
    return j_.at(k);
  }

  template <class T>
  std::optional<T> get(const std::string& k) {
    read_.insert(k);
    if (!has(k)) return std::nullopt;
    const auto& v = j_[k];
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) throw type_error(k, "a boolean");
      return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) throw type_error(k, "an integer");
      return v.get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) throw type_error(k, "a number");
      const double d = v.get<double>();
      if (!std::isfinite(d)) throw type_error(k, "a finite number");
      return static_cast<T>(d);
    } else {
      if (!v.is_string()) throw type_error(k, "a string");
      return v.get<std::string>();
    }
  }

  // Every field read, or one the OpenAI API has and this server ignores.
  void check_all_read(const std::set<std::string>& ignorable) const {
    for (const auto& [k, v] : j_.items())
      if (!read_.count(k) && !ignorable.count(k)) throw bad_request("unknown field '" + k + "'", "unknown_field");
  }

 private:
  static request_error type_error(const std::string& k, const char* what) {
    return bad_request("'" + k + "' must be " + std::string(what), "invalid_type");
  }
  json j_;
  std::set<std::string> read_;
};

// Fields of the OpenAI API this server accepts and ignores (n must be 1, logprobs off; user is informational).
inline const std::set<std::string> ignorable_fields{"model",   "user",       "n",      "logprobs",    "echo",
                                                    "best_of", "logit_bias", "suffix", "top_logprobs"};

// The RWKV World chat format: "System: …\n\nUser: …\n\nAssistant: …\n\n", ending with "Assistant:".
inline std::string render_chat(const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw bad_request("'messages' must be a non-empty array", "invalid_messages");
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      throw bad_request(at + " must be an object with string 'role' and 'content'", "invalid_messages");
    for (const auto& [k, v] : m.items())
      if (k != "role" && k != "content" && k != "name")
        throw bad_request(at + ": unknown field '" + k + "'", "unknown_field");
    const std::string role = m["role"].get<std::string>();
    std::string content = m["content"].get<std::string>();
    // "\n\n" ends a turn in this format: inside a message it is folded to one newline, as the references do.
    for (auto p = content.find("\n\n"); p != std::string::npos; p = content.find("\n\n", p)) content.erase(p, 1);
    if (content.empty()) throw bad_request(at + " has empty content", "invalid_messages");
    const char* name = role == "system"      ? "System"
                       : role == "user"      ? "User"
                       : role == "assistant" ? "Assistant"
                                             : nullptr;
    if (!name) throw bad_request(at + ": unknown role '" + role + "' (system, user, assistant)", "invalid_messages");
    out += std::string(name) + ": " + content + "\n\n";
  }
  return out + "Assistant:";
}

template <class Tokenizer>
parsed_request parse_request(const std::string& text, bool chat, const Tokenizer& tok, std::int64_t vocab,
                             const request_limits& limits) {
  json_body b(text);
  parsed_request p;
  auto& g = p.req.params;
  g.penalty = {.presence = 0.f, .frequency = 0.f, .decay = 1.f};  // OpenAI's defaults: no penalty
  g.sampling = {.temperature = 1.f, .top_p = 1.f, .top_k = 0};
  g.max_tokens = chat ? 512 : 16;
  if (chat) {
    if (!b.has("messages")) throw bad_request("'messages' is required", "missing_field");
    p.req.prompt = tok.encode(render_chat(b.raw("messages")));
    g.stop_strings = {"\n\n"};  // the end of the assistant's turn
  } else {
    if (!b.has("prompt")) throw bad_request("'prompt' is required", "missing_field");
    const auto& pr = b.raw("prompt");
    if (pr.is_string()) {
      p.req.prompt = tok.encode(pr.get<std::string>());
    } else if (pr.is_array() && !pr.empty() &&
               std::all_of(pr.begin(), pr.end(), [](const json& x) { return x.is_number_integer(); })) {
      for (const auto& x : pr) {
        const auto id = x.get<std::int64_t>();
        if (id < 0 || id >= vocab)
          throw bad_request(
              "prompt token id " + std::to_string(id) + " is out of range for vocabulary " + std::to_string(vocab),
              "token_out_of_range");
        p.req.prompt.push_back(static_cast<std::int32_t>(id));
      }
    } else {
      throw bad_request("'prompt' must be a string or a non-empty array of token ids", "invalid_type");
    }
  }
  if (p.req.prompt.empty()) throw bad_request("the prompt is empty", "empty_prompt");
  if (p.req.prompt.size() > limits.max_prompt_tokens)
    throw bad_request("the prompt has " + std::to_string(p.req.prompt.size()) + " tokens, more than the limit of " +
                          std::to_string(limits.max_prompt_tokens),
                      "prompt_too_long");
  // Chat requests may name it max_completion_tokens (which wins), as the current OpenAI API does.
  auto max_tokens = b.get<std::int64_t>("max_tokens");
  if (chat)
    if (auto v = b.get<std::int64_t>("max_completion_tokens")) max_tokens = v;
  if (max_tokens) {
    if (*max_tokens < 0 || *max_tokens > 1 << 20)
      throw bad_request("'max_tokens' must be between 0 and 1048576", "invalid_value");
    g.max_tokens = static_cast<int>(*max_tokens);
  }
  if (auto v = b.get<double>("temperature")) {
    if (*v < 0 || *v > 2) throw bad_request("'temperature' must be between 0 and 2", "invalid_value");
    g.sampling.temperature = static_cast<float>(*v);
  }
  if (auto v = b.get<double>("top_p")) {
    if (*v < 0 || *v > 1) throw bad_request("'top_p' must be between 0 and 1", "invalid_value");
    g.sampling.top_p = static_cast<float>(*v);
  }
  if (auto v = b.get<std::int64_t>("top_k")) {
    if (*v < 0) throw bad_request("'top_k' must be >= 0", "invalid_value");
    g.sampling.top_k = static_cast<int>(std::min<std::int64_t>(*v, 1 << 30));
  }
  if (auto v = b.get<double>("presence_penalty")) {
    if (*v < -2 || *v > 2) throw bad_request("'presence_penalty' must be between -2 and 2", "invalid_value");
    g.penalty.presence = static_cast<float>(*v);
  }
  if (auto v = b.get<double>("frequency_penalty")) {
    if (*v < -2 || *v > 2) throw bad_request("'frequency_penalty' must be between -2 and 2", "invalid_value");
    g.penalty.frequency = static_cast<float>(*v);
  }
  if (auto v = b.get<std::int64_t>("seed")) g.seed = static_cast<std::uint64_t>(*v);
  if (b.has("stop")) {
    const auto& s = b.raw("stop");
    std::vector<std::string> stops;
    if (s.is_string()) {
      stops.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4 &&
               std::all_of(s.begin(), s.end(), [](const json& x) { return x.is_string(); })) {
      for (const auto& x : s) stops.push_back(x.get<std::string>());
    } else {
      throw bad_request("'stop' must be a string or an array of at most 4 strings", "invalid_type");
    }
    for (const auto& x : stops)
      if (x.empty()) throw bad_request("'stop' strings must not be empty", "invalid_value");
    g.stop_strings.insert(g.stop_strings.end(), stops.begin(), stops.end());
  }
  if (auto v = b.get<bool>("stream")) p.stream = *v;
  if (b.has("stream_options")) {  // {"include_usage": true}: a last event with the token counts
    const auto& o = b.raw("stream_options");
    if (!o.is_object() || std::any_of(o.items().begin(), o.items().end(), [](const auto& kv) {
          return kv.key() != "include_usage" || !kv.value().is_boolean();
        }))
      throw bad_request("'stream_options' must be {\"include_usage\": true|false}", "invalid_type");
    p.include_usage = o.value("include_usage", false);
  }
  if (b.has("n") && b.raw("n") != 1) throw bad_request("only n = 1 is supported", "invalid_value");
  b.check_all_read(ignorable_fields);
  g.stop_tokens = {0};  // end of text
  return p;
}

}  // namespace rwkv::serve::openai

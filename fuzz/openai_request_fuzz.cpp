// OpenAI-style request bodies (rwkv-server's input): every input is either parsed into a request or refused with
// a request_error (status and message); nothing else may escape. The first byte picks the route.
#include <string>

#include <rwkv/serve/openai.hpp>
#include <rwkv/tokenizer/bytes.hpp>

#include "fuzz_common.hpp"

RWKV_FUZZ_TARGET({
  if (size == 0) return 0;
  const bool chat = (data[0] & 1) != 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto p =
        rwkv::serve::openai::parse_request(body, chat, rwkv::byte_tokenizer{}, 256, {.max_prompt_tokens = 64});
    if (p.req.prompt.empty() || p.req.prompt.size() > 64 || p.req.params.max_tokens < 0) __builtin_trap();
  } catch (const rwkv::serve::openai::request_error& e) {
    if (e.status < 400 || e.status > 499 || e.message.empty()) __builtin_trap();
  }
  (void)bytes;
})

// World tokenizer vocabulary parser, then encode/decode with whatever vocabulary it accepted.
#include <string_view>

#include <rwkv/tokenizer/world.hpp>

#include "fuzz_common.hpp"

RWKV_FUZZ_TARGET({
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto tok = rwkv::world_tokenizer::from_string(text, "fuzz_vocab.txt");
  const auto ids = tok.encode(text.substr(0, 256));
  (void)tok.decode(ids);
})

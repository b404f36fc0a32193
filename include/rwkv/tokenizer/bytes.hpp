#pragma once
// Byte-level tokenizer of vocab-256 models: token id = byte value.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/error.hpp"

namespace rwkv {

struct byte_tokenizer {
  static constexpr std::int64_t vocab_size = 256;

  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }

  std::string decode(std::span<const std::int32_t> ids) const {
    std::string out;
    out.reserve(ids.size());
    for (auto id : ids) {
      if (id < 0 || id > 255) throw error("token id " + std::to_string(id) + " is not a byte (0..255)");
      out.push_back(static_cast<char>(id));
    }
    return out;
  }
};

}  // namespace rwkv

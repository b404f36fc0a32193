#pragma once
// The RWKV World tokenizer (spec/tokenizer.md §1): vocabulary rwkv_vocab_v20230424 (ids 1..65529, shipped in
// data/tokenizer/), greedy longest match over bytes, no normalisation, no special tokens.
//
//   rwkv::world_tokenizer tok("data/tokenizer/rwkv_vocab_v20230424.txt");
//   auto ids = tok.encode("Hello, world!");   // 33155, 45, 40213, 34
//   std::string bytes = tok.decode(ids);       // lossless: the input bytes
//   auto world = rwkv::world_tokenizer::bundled();  // the same vocabulary, found where rwkvpp installed it
//
// Documented choices:
// * Ids run 0 .. vocab_size()-1. Id 0 (end of text / document separator, not in the file) decodes to no bytes;
//   negative ids and ids >= vocab_size() are refused with rwkv::error.
// * decode() returns bytes, which may be invalid UTF-8 (e.g. ids that stop in the middle of a character).
//   is_valid_utf8() / incomplete_utf8_suffix() (rwkv/tokenizer/utf8.hpp) tell text from partial text;
//   utf8_or_replacement(decode(ids)) is the reference's decode (a lone U+FFFD when not valid UTF-8).
// * The longest match runs on a double-array trie: one array lookup per input byte.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/io/mapped_file.hpp"
#include "rwkv/tokenizer/utf8.hpp"

namespace rwkv {

class world_tokenizer {
 public:
  // Loads a vocabulary file in the rwkv_vocab_v20230424 format. Malformed lines are refused with an rwkv::error
  // naming the file and the line.
  explicit world_tokenizer(const std::filesystem::path& vocab_file) {
    const auto file = io::mapped_file::open(vocab_file);
    build({reinterpret_cast<const char*>(file->data()), file->size()}, file->name());
  }

  // The same from a vocabulary already in memory; `name` stands for the file name in error messages.
  static world_tokenizer from_string(std::string_view contents, std::string name = "<memory>") {
    world_tokenizer t;
    t.build(contents, std::move(name));
    return t;
  }

  // The World vocabulary that ships with rwkvpp: the file named by the environment variable RWKV_WORLD_VOCAB when
  // it is set, else the one whose path the rwkv::rwkv CMake target compiles in (RWKV_WORLD_VOCAB_PATH: the source
  // tree's data/tokenizer/ in a build tree or with add_subdirectory, share/rwkvpp/ of an installed package).
  // Throws rwkv::error saying how to point at the file when neither names one.
  static world_tokenizer bundled() { return world_tokenizer(bundled_path()); }

  // The file bundled() reads (it need not exist: the constructor then says so).
  static std::filesystem::path bundled_path() {
    if (const char* env = std::getenv("RWKV_WORLD_VOCAB"); env && *env) return env;
#ifdef RWKV_WORLD_VOCAB_PATH
    const std::filesystem::path built_in = RWKV_WORLD_VOCAB_PATH;
    if (std::filesystem::exists(built_in)) return built_in;
    throw error(
        "the World vocabulary (rwkv_vocab_v20230424.txt) is not where this program was built to find it: "
        "set the environment variable RWKV_WORLD_VOCAB to its path (share/rwkvpp/ of an rwkvpp "
        "installation, data/tokenizer/ of its sources), or pass the path to world_tokenizer(path)",
        built_in.string());
#else
    throw error(
        "no bundled World vocabulary is known to this program (it was not compiled against the rwkv::rwkv CMake "
        "target, which defines RWKV_WORLD_VOCAB_PATH): set the environment variable RWKV_WORLD_VOCAB to the path "
        "of rwkv_vocab_v20230424.txt (share/rwkvpp/ of an rwkvpp installation, data/tokenizer/ of its sources), "
        "or pass the path to world_tokenizer(path)");
#endif
  }

  // Number of token ids, id 0 included: 65530 for rwkv_vocab_v20230424 (World models have V = 65536 logits).
  std::int64_t vocab_size() const noexcept { return static_cast<std::int64_t>(offsets_.size()) - 1; }
  // The file the vocabulary came from (or the name given to from_string).
  const std::string& source() const noexcept { return source_; }

  // Greedy longest match over the bytes (any bytes: invalid UTF-8 is encodable too).
  std::vector<std::int32_t> encode(std::string_view bytes) const {
    std::vector<std::int32_t> ids;
    encode(bytes, ids);
    return ids;
  }

  // Appends the ids of `bytes` to `out`.
  void encode(std::string_view bytes, std::vector<std::int32_t>& out) const {
    const slot* d = slots_.data();
    const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::size_t n = bytes.size();
    out.reserve(out.size() + n / 4 + 1);
    std::size_t pos = 0;
    while (pos < n) {
      std::int32_t s = 0, best = -1;
      std::size_t end = pos;
      for (std::size_t i = pos; i < n; ++i) {
        const std::int32_t t = d[s].base + src[i];
        if (d[t].check != s) break;
        s = t;
        if (d[s].value >= 0) {
          best = d[s].value;
          end = i + 1;
        }
      }
      if (best < 0)
        throw error("byte " + hex_byte(src[pos]) + " at offset " + std::to_string(pos) +
                        " is not the start of any token of the vocabulary",
                    source_);
      out.push_back(best);
      pos = end;
    }
  }

  // Concatenated bytes of the tokens.
  std::string decode(std::span<const std::int32_t> ids) const {
    std::size_t total = 0;
    for (auto id : ids) total += token_bytes(id).size();
    std::string out;
    out.reserve(total);
    for (auto id : ids) out += token_bytes(id);
    return out;
  }

  // The bytes of one token (empty for id 0).
  std::string_view token_bytes(std::int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw error("token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab_size()) + ")",
                  source_);
    const auto i = static_cast<std::size_t>(id);
    return std::string_view(blob_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

  // The id of the token whose bytes are exactly `bytes`, if there is one.
  std::optional<std::int32_t> token_id(std::string_view bytes) const {
    std::int32_t s = 0;
    for (unsigned char c : bytes) {
      const std::int32_t t = slots_[static_cast<std::size_t>(s)].base + c;
      if (slots_[static_cast<std::size_t>(t)].check != s) return std::nullopt;
      s = t;
    }
    const auto v = slots_[static_cast<std::size_t>(s)].value;
    if (bytes.empty() || v < 0) return std::nullopt;
    return v;
  }

 private:
  // Double-array trie: the child of node s along byte c is t = base[s] + c when check[t] == s. Free slots have
  // check -1, the root (slot 0) -2; value is the id of the token ending at the node, or -1.
  struct slot {
    std::int32_t base = 0;
    std::int32_t check = -1;
    std::int32_t value = -1;
  };

  world_tokenizer() = default;

  static std::string hex_byte(unsigned char c) {
    const char* digits = "0123456789abcdef";
    return std::string("0x") + digits[c >> 4] + digits[c & 15];
  }

  void build(std::string_view text, std::string name) {
    source_ = std::move(name);
    blob_.clear();
    offsets_.assign({0, 0});  // id 0 has no bytes
    std::size_t pos = 0;
    std::int64_t line_no = 0;
    while (pos < text.size()) {
      const auto nl = text.find('\n', pos);
      auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? text.size() : nl + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      parse_line(line, line_no);
    }
    if (line_no == 0) throw error("the vocabulary is empty", source_);
    build_trie();
  }

  error line_error(std::int64_t line_no, const std::string& problem) const {
    return error("line " + std::to_string(line_no) + ": " + problem, source_);
  }

  // Decimal digits only, at most 9 of them; -1 otherwise.
  static std::int64_t parse_decimal(std::string_view s) {
    if (s.empty() || s.size() > 9) return -1;
    std::int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  // `<id> <literal> <byte_length>`: the id before the first space, the length after the last one.
  void parse_line(std::string_view line, std::int64_t line_no) {
    const auto first = line.find(' '), last = line.rfind(' ');
    if (first == std::string_view::npos || first == last)
      throw line_error(line_no, "expected '<id> <literal> <byte_length>'");
    const auto id = parse_decimal(line.substr(0, first));
    if (id < 0) throw line_error(line_no, "the id '" + std::string(line.substr(0, first)) + "' is not a number");
    const auto expected = vocab_size();
    if (id != expected)
      throw line_error(line_no, "id " + std::to_string(id) + " where " + std::to_string(expected) +
                                    " was expected (ids run 1, 2, 3, ... without gaps)");
    const auto length = parse_decimal(line.substr(last + 1));
    if (length < 0)
      throw line_error(line_no, "the byte length '" + std::string(line.substr(last + 1)) + "' is not a number");
    const std::size_t start = blob_.size();
    parse_literal(line.substr(first + 1, last - first - 1), line_no);
    const std::size_t got = blob_.size() - start;
    if (got == 0) throw line_error(line_no, "empty token");
    if (got != static_cast<std::size_t>(length))
      throw line_error(line_no,
                       "the literal has " + std::to_string(got) + " bytes but the line says " + std::to_string(length));
    if (blob_.size() > 0xFFFFFFFFu) throw line_error(line_no, "the vocabulary is too large");
    offsets_.push_back(static_cast<std::uint32_t>(blob_.size()));
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  void append_utf8(std::uint32_t cp) {
    if (cp < 0x80) {
      blob_ += static_cast<char>(cp);
    } else if (cp < 0x800) {
      blob_ += static_cast<char>(0xC0 | (cp >> 6));
      blob_ += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      blob_ += static_cast<char>(0xE0 | (cp >> 12));
      blob_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      blob_ += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      blob_ += static_cast<char>(0xF0 | (cp >> 18));
      blob_ += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      blob_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      blob_ += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A Python str ('...' / "...") or bytes (b'...') literal, as eval() reads it; appends its bytes to blob_ (str:
  // UTF-8 of the text). Escapes as Python: \\ \' \" \a \b \f \n \r \t \v, octal \ooo, \xHH (str: code point
  // U+00HH; bytes: the byte), str only \uHHHH \UHHHHHHHH; unknown escapes keep their backslash.
  void parse_literal(std::string_view lit, std::int64_t line_no) {
    const std::size_t start = blob_.size();
    std::size_t i = 0;
    const std::size_t n = lit.size();
    while (i < n && (lit[i] == ' ' || lit[i] == '\t')) ++i;
    bool bytes = false;
    if (i < n && (lit[i] == 'b' || lit[i] == 'B')) {
      bytes = true;
      ++i;
    }
    if (i >= n || (lit[i] != '\'' && lit[i] != '"'))
      throw line_error(line_no, "expected a Python str or bytes literal ('...', \"...\" or b'...')");
    const char quote = lit[i++];
    bool closed = false;
    auto hex_digits = [&](int count) -> std::uint32_t {
      std::uint32_t v = 0;
      for (int k = 0; k < count; ++k) {
        const int h = i < n ? hex_value(lit[i]) : -1;
        if (h < 0) throw line_error(line_no, "truncated escape: expected " + std::to_string(count) + " hex digits");
        v = v * 16 + static_cast<std::uint32_t>(h);
        ++i;
      }
      return v;
    };
    while (i < n) {
      const char c = lit[i];
      if (c == quote) {
        closed = true;
        ++i;
        break;
      }
      if (c != '\\') {
        if (bytes && static_cast<unsigned char>(c) >= 0x80)
          throw line_error(line_no, "non-ASCII character in a bytes literal");
        blob_ += c;
        ++i;
        continue;
      }
      if (i + 1 >= n) break;  // a backslash cannot end the literal
      const char e = lit[i + 1];
      i += 2;
      switch (e) {
        case '\\':
        case '\'':
        case '"':
          blob_ += e;
          break;
        case 'a':
          blob_ += '\a';
          break;
        case 'b':
          blob_ += '\b';
          break;
        case 'f':
          blob_ += '\f';
          break;
        case 'n':
          blob_ += '\n';
          break;
        case 'r':
          blob_ += '\r';
          break;
        case 't':
          blob_ += '\t';
          break;
        case 'v':
          blob_ += '\v';
          break;
        case 'x': {
          const auto v = hex_digits(2);
          if (bytes)
            blob_ += static_cast<char>(v);
          else
            append_utf8(v);
          break;
        }
        case 'u':
        case 'U': {
          if (bytes) {  // not an escape in bytes literals
            blob_ += '\\';
            blob_ += e;
            break;
          }
          const auto v = hex_digits(e == 'u' ? 4 : 8);
          if (v > 0x10FFFF) throw line_error(line_no, "escape beyond U+10FFFF");
          if (v >= 0xD800 && v <= 0xDFFF) throw line_error(line_no, "surrogate escape: not encodable as UTF-8");
          append_utf8(v);
          break;
        }
        case 'N':
          if (!bytes) throw line_error(line_no, "\\N{...} escapes are not supported");
          blob_ += "\\N";
          break;
        default:
          if (e >= '0' && e <= '7') {
            std::uint32_t v = static_cast<std::uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < n && lit[i] >= '0' && lit[i] <= '7'; ++k, ++i)
              v = v * 8 + static_cast<std::uint32_t>(lit[i] - '0');
            if (bytes) {
              if (v > 0xFF) throw line_error(line_no, "octal escape above \\377 in a bytes literal");
              blob_ += static_cast<char>(v);
            } else {
              append_utf8(v);
            }
          } else {  // Python keeps unknown escapes as they are
            blob_ += '\\';
            blob_ += e;
          }
      }
    }
    if (!closed) throw line_error(line_no, "unterminated literal");
    for (; i < n; ++i)
      if (lit[i] != ' ' && lit[i] != '\t') throw line_error(line_no, "unexpected text after the literal");
    if (!bytes && !is_valid_utf8(std::string_view(blob_).substr(start)))
      throw line_error(line_no, "the str literal is not valid UTF-8");
  }

  std::string_view bytes_of(std::int32_t id) const {
    const auto i = static_cast<std::size_t>(id);
    return std::string_view(blob_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

  // Builds the double array breadth-first from the tokens sorted by bytes: the tokens under a node are a range
  // of that order, the one equal to the node's prefix (if any) first.
  void build_trie() {
    const auto count = static_cast<std::int32_t>(vocab_size());
    std::vector<std::int32_t> order;
    order.reserve(static_cast<std::size_t>(count));
    for (std::int32_t id = 1; id < count; ++id) order.push_back(id);
    std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
      const auto x = bytes_of(a), y = bytes_of(b);
      return x != y ? x < y : a < b;
    });
    for (std::size_t k = 1; k < order.size(); ++k)
      if (bytes_of(order[k - 1]) == bytes_of(order[k])) {
        const auto [a, b] = std::minmax(order[k - 1], order[k]);
        throw line_error(b, "the same bytes as id " + std::to_string(a) + " (line " + std::to_string(a) + ")");
      }

    struct range {
      std::int32_t node;
      std::size_t lo, hi, depth;
    };
    std::vector<range> queue{{0, 0, order.size(), 0}};
    slots_.assign(std::max<std::size_t>(1024, order.size() * 2), slot{});
    slots_[0].check = -2;
    std::size_t first_free = 1;
    std::int32_t max_base = 0;
    std::vector<std::pair<unsigned char, std::size_t>> children;  // (byte, start of its range)
    for (std::size_t q = 0; q < queue.size(); ++q) {
      auto [node, lo, hi, depth] = queue[q];
      if (lo < hi && bytes_of(order[lo]).size() == depth) slots_[static_cast<std::size_t>(node)].value = order[lo++];
      if (lo == hi) continue;
      children.clear();
      for (std::size_t k = lo; k < hi; ++k) {
        const auto c = static_cast<unsigned char>(bytes_of(order[k])[depth]);
        if (children.empty() || children.back().first != c) children.emplace_back(c, k);
      }
      // The first base at which every child slot is free.
      while (first_free < slots_.size() && slots_[first_free].check != -1) ++first_free;
      std::size_t base = 0;
      for (std::size_t p = std::max<std::size_t>(first_free, children.front().first + 1u);; ++p) {
        if (slots_.size() < p + 257) slots_.resize(std::max(p + 257, slots_.size() * 2));
        if (slots_[p].check != -1) continue;
        base = p - children.front().first;
        bool fits = true;
        for (const auto& ch : children)
          if (slots_[base + ch.first].check != -1) {
            fits = false;
            break;
          }
        if (fits) break;
      }
      slots_[static_cast<std::size_t>(node)].base = static_cast<std::int32_t>(base);
      max_base = std::max(max_base, static_cast<std::int32_t>(base));
      for (std::size_t k = 0; k < children.size(); ++k) {
        const std::size_t child = base + children[k].first;
        slots_[child].check = node;
        const std::size_t end = k + 1 < children.size() ? children[k + 1].second : hi;
        queue.push_back({static_cast<std::int32_t>(child), children[k].second, end, depth + 1});
      }
    }
    // Every base + byte must stay inside the array, so that encode() needs no bounds checks.
    slots_.resize(static_cast<std::size_t>(max_base) + 256);
    slots_.shrink_to_fit();
  }

  std::string source_;
  std::string blob_;                    // the bytes of every token, by id
  std::vector<std::uint32_t> offsets_;  // token id's bytes: blob_[offsets_[id], offsets_[id + 1])
  std::vector<slot> slots_;
};

}  // namespace rwkv

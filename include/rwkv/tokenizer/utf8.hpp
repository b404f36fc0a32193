#pragma once
// Strict UTF-8 checks (RFC 3629, what Python's decoder accepts: no overlong forms, no surrogates, nothing above
// U+10FFFF). Tokenizers deal in bytes; these say whether bytes are text and whether a streamed chunk stops in
// the middle of a character (spec/tokenizer.md §1.3, spec/sampling.md §2 step 5).

#include <cstddef>
#include <string>
#include <string_view>

namespace rwkv {

namespace detail {

// Length of the sequence a lead byte starts (0: not a lead byte) and the range allowed for its second byte.
struct utf8_lead {
  int length;
  unsigned char lo, hi;
};

constexpr utf8_lead utf8_lead_of(unsigned char c) noexcept {
  if (c < 0x80) return {1, 0, 0};
  if (c < 0xC2) return {0, 0, 0};  // continuation bytes, and C0/C1 (always overlong)
  if (c < 0xE0) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};  // no overlong 3-byte forms
  if (c == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (c < 0xF0) return {3, 0x80, 0xBF};
  if (c == 0xF0) return {4, 0x90, 0xBF};  // no overlong 4-byte forms
  if (c < 0xF4) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

// Number of bytes of s[i..] that continue a sequence started by lead `l` correctly (at most l.length - 1).
constexpr std::size_t utf8_valid_continuation(std::string_view s, std::size_t i, utf8_lead l) noexcept {
  std::size_t k = 0;
  for (; k + 1 < static_cast<std::size_t>(l.length) && i + 1 + k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[i + 1 + k]);
    const bool ok = k == 0 ? (c >= l.lo && c <= l.hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
  }
  return k;
}

}  // namespace detail

// True when `s` is valid UTF-8 (the empty string is).
constexpr bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    const auto l = detail::utf8_lead_of(c);
    if (l.length == 0) return false;
    const auto n = static_cast<std::size_t>(l.length);
    if (detail::utf8_valid_continuation(s, i, l) != n - 1) return false;
    i += n;
  }
  return true;
}

// Number of trailing bytes of `s` (0..3) that form an incomplete but so far valid sequence: the start of a
// character whose remaining bytes have not arrived yet. A streaming generator holds these back.
constexpr std::size_t incomplete_utf8_suffix(std::string_view s) noexcept {
  for (std::size_t k = 1; k <= 3 && k <= s.size(); ++k) {
    const std::size_t i = s.size() - k;
    const auto l = detail::utf8_lead_of(static_cast<unsigned char>(s[i]));
    if (l.length == 0) continue;  // a continuation byte (or invalid): look further back
    if (static_cast<std::size_t>(l.length) > k && detail::utf8_valid_continuation(s, i, l) == k - 1) return k;
    return 0;  // the last lead byte starts a complete or an invalid sequence
  }
  return 0;
}

// Appending `piece` to text whose unfinished last character is `tail` (the bytes incomplete_utf8_suffix leaves,
// at most 3): -1 when the result stops being printable text (invalid UTF-8, or a control character other than
// tab and newline: C0, DEL, C1), otherwise the number of bytes its last character still lacks (0: complete).
// What generation_params::text_only samples by.
constexpr int text_bytes_missing(std::string_view tail, std::string_view piece) noexcept {
  char buf[4] = {};
  if (tail.size() > 3) return -1;
  std::size_t n = 0;
  for (char c : tail) buf[n++] = c;
  // The joined bytes without building a string: tail (<= 3 bytes) then piece.
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(i < n ? buf[i] : piece[i - n]); };
  const std::size_t size = n + piece.size();
  std::size_t i = 0;
  while (i < size) {
    const auto c = at(i);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) return -1;
      ++i;
      continue;
    }
    const auto l = detail::utf8_lead_of(c);
    if (l.length == 0) return -1;
    for (std::size_t k = 1; k < static_cast<std::size_t>(l.length); ++k) {
      if (i + k == size) return l.length - static_cast<int>(k);  // unfinished: a later piece may complete it
      const auto d = at(i + k);
      if (!(k == 1 ? (d >= l.lo && d <= l.hi) : (d >= 0x80 && d <= 0xBF))) return -1;
    }
    if (c == 0xC2 && at(i + 1) < 0xA0) return -1;  // U+0080..U+009F: C1 controls
    i += static_cast<std::size_t>(l.length);
  }
  return 0;
}

// Whether appending `piece` keeps the text printable (its last character may stay unfinished).
constexpr bool keeps_text(std::string_view tail, std::string_view piece) noexcept {
  return text_bytes_missing(tail, piece) >= 0;
}

// The reference's text decoding: the bytes when they are valid UTF-8, otherwise a single U+FFFD for the whole
// call (spec/tokenizer.md §1.3).
inline std::string utf8_or_replacement(std::string bytes) {
  if (is_valid_utf8(bytes)) return bytes;
  return "\xEF\xBF\xBD";
}

}  // namespace rwkv

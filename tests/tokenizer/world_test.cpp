// World tokenizer (spec/tokenizer.md §1): every case of the reference's golden vectors, agreement with a
// brute-force longest match, round trips of random bytes, the vocabulary parser's escapes and its refusals.
#define BOOST_TEST_MODULE world_tokenizer
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <rwkv/tokenizer/utf8.hpp>
#include <rwkv/tokenizer/world.hpp>

namespace {

const rwkv::world_tokenizer& world() {
  static const rwkv::world_tokenizer tok(RWKV_VOCAB_FILE);
  return tok;
}

std::string from_hex(const std::string& hex) {
  BOOST_REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string to_hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Longest match by brute force: every token length from 128 down, looked up in a set of all token bytes.
std::vector<std::int32_t> brute_force_encode(const rwkv::world_tokenizer& tok, std::string_view src) {
  static const auto table = [&] {
    std::map<std::string, std::int32_t, std::less<>> m;
    for (std::int32_t id = 1; id < tok.vocab_size(); ++id) m.emplace(std::string(tok.token_bytes(id)), id);
    return m;
  }();
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  while (pos < src.size()) {
    for (std::size_t len = std::min<std::size_t>(128, src.size() - pos); len > 0; --len) {
      auto it = table.find(src.substr(pos, len));
      if (it != table.end()) {
        ids.push_back(it->second);
        pos += len;
        break;
      }
    }
  }
  return ids;
}

// Expects from_string(vocab) to throw an rwkv::error naming "bad.txt", the line, and `what`.
void expect_refused(const std::string& vocab, int line, const std::string& what) {
  BOOST_TEST_CONTEXT("vocabulary:\n" << vocab) {
    try {
      (void)rwkv::world_tokenizer::from_string(vocab, "bad.txt");
      BOOST_ERROR("accepted a malformed vocabulary");
    } catch (const rwkv::error& e) {
      BOOST_TEST_INFO("message: " << e.what());
      BOOST_CHECK_EQUAL(e.file(), "bad.txt");
      BOOST_CHECK(e.problem().starts_with("line " + std::to_string(line) + ": "));
      BOOST_CHECK(e.problem().find(what) != std::string::npos);
    }
  }
}

// A tiny valid vocabulary: the first lines of a v20230424-style file.
const std::string small_vocab_head = "1 'a' 1\n2 'b' 1\n";

}  // namespace

BOOST_AUTO_TEST_CASE(vocabulary_facts) {
  const auto& tok = world();
  BOOST_CHECK_EQUAL(tok.vocab_size(), 65530);
  for (int b = 0; b < 256; ++b) BOOST_CHECK_EQUAL(tok.token_bytes(b + 1), std::string(1, static_cast<char>(b)));
  BOOST_CHECK_EQUAL(tok.token_bytes(65529), std::string(128, ' '));
  BOOST_CHECK_EQUAL(tok.token_bytes(0), "");
  BOOST_CHECK_EQUAL(tok.token_bytes(261), "\n\n");
  BOOST_CHECK_EQUAL(tok.token_bytes(9810), "\u200d");    // '\u200d' 3
  BOOST_CHECK_EQUAL(tok.token_bytes(2412), "\x82\xac");  // b'\x82\xac' 2
  BOOST_CHECK_EQUAL(tok.token_bytes(40), "'");           // "'" 1
  BOOST_CHECK_EQUAL(tok.token_id("Hello").value_or(-1), 33155);
  BOOST_CHECK(!tok.token_id("").has_value());
  BOOST_CHECK(!tok.token_id("Hellox").has_value());
  std::size_t prev = 0;
  std::set<std::string_view> distinct;
  for (std::int32_t id = 1; id < tok.vocab_size(); ++id) {
    const auto bytes = tok.token_bytes(id);
    BOOST_REQUIRE_GE(bytes.size(), prev);  // lengths are non-decreasing with the id
    prev = bytes.size();
    distinct.insert(bytes);
    BOOST_REQUIRE_EQUAL(tok.token_id(bytes).value_or(-1), id);
  }
  BOOST_CHECK_EQUAL(distinct.size(), 65529u);
}

BOOST_AUTO_TEST_CASE(golden_vectors) {
  std::ifstream in(std::string(RWKV_TEST_DATA_DIR) + "/tokenizer.golden.json");
  BOOST_REQUIRE(in);
  const auto golden = nlohmann::json::parse(in);
  BOOST_REQUIRE_EQUAL(golden["vocab_entries"].get<int>(), 65529);
  const auto& tok = world();
  int cases = 0;
  for (const auto& c : golden["cases"]) {
    BOOST_TEST_CONTEXT("case " << c["name"].get<std::string>()) {
      const auto bytes = from_hex(c["bytes_hex"].get<std::string>());
      if (!c["text"].is_null()) BOOST_CHECK_EQUAL(c["text"].get<std::string>(), bytes);
      const auto want = c["ids"].get<std::vector<std::int32_t>>();
      const auto ids = tok.encode(bytes);
      BOOST_CHECK_EQUAL_COLLECTIONS(ids.begin(), ids.end(), want.begin(), want.end());
      const auto pieces = c["pieces_hex"].get<std::vector<std::string>>();
      BOOST_REQUIRE_EQUAL(pieces.size(), want.size());
      for (std::size_t i = 0; i < want.size(); ++i) BOOST_CHECK_EQUAL(to_hex(tok.token_bytes(want[i])), pieces[i]);
      const auto decoded = tok.decode(want);
      BOOST_CHECK_EQUAL(to_hex(decoded), c["decode_bytes_hex"].get<std::string>());
      BOOST_CHECK_EQUAL(decoded == bytes, c["roundtrip_ok"].get<bool>());
      BOOST_CHECK_EQUAL(rwkv::utf8_or_replacement(decoded), c["decode_text"].get<std::string>());
      BOOST_CHECK_EQUAL(rwkv::is_valid_utf8(decoded), !c["text"].is_null());
    }
    ++cases;
  }
  BOOST_CHECK_EQUAL(cases, 43);
}

BOOST_AUTO_TEST_CASE(spec_examples) {
  const auto& tok = world();
  auto check = [&](std::string_view text, std::vector<std::int32_t> want) {
    const auto got = tok.encode(text);
    BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), want.begin(), want.end());
  };
  check("\n\nUser: 你好\n\nAssistant:", {261, 24281, 59, 33, 10464, 11685, 261, 5585, 41693, 59});
  check("  indentation\tand\r\n", {267, 41621, 33944, 10, 7005, 263});
  check("naïve café 🙂", {2059, 27698, 37946, 32845});
  check("The Eiffel tower is in the city of", {6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706});
  std::vector<std::int32_t> appended{7};
  tok.encode("Hello", appended);
  BOOST_CHECK_EQUAL(appended.size(), 2u);
  BOOST_CHECK_EQUAL(appended[1], 33155);
}

BOOST_AUTO_TEST_CASE(random_bytes_round_trip_and_match_brute_force) {
  const auto& tok = world();
  std::mt19937_64 rng(20230424);
  // Pieces that make long matches likely: real tokens, glued together, with random bytes in between.
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const int parts = static_cast<int>(rng() % 40);
    for (int p = 0; p < parts; ++p) {
      switch (rng() % 3) {
        case 0:
          s += static_cast<char>(rng() % 256);
          break;
        case 1:
          s += tok.token_bytes(static_cast<std::int32_t>(1 + rng() % 65529));
          break;
        default: {
          const auto t = tok.token_bytes(static_cast<std::int32_t>(1 + rng() % 65529));
          s += t.substr(0, rng() % (t.size() + 1));  // a prefix: walks that fail half-way
        }
      }
    }
    const auto ids = tok.encode(s);
    BOOST_REQUIRE_EQUAL(tok.decode(ids), s);
    const auto want = brute_force_encode(tok, s);
    BOOST_REQUIRE_EQUAL_COLLECTIONS(ids.begin(), ids.end(), want.begin(), want.end());
  }
  for (int iter = 0; iter < 100; ++iter) {  // uniformly random bytes
    std::string s(rng() % 300, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 256);
    BOOST_REQUIRE_EQUAL(tok.decode(tok.encode(s)), s);
  }
}

BOOST_AUTO_TEST_CASE(out_of_range_ids_are_refused) {
  const auto& tok = world();
  BOOST_CHECK_EQUAL(tok.decode(std::vector<std::int32_t>{0, 33155, 0}), "Hello");  // id 0 has no bytes
  for (std::int32_t bad : {-1, 65530, 65535, 1 << 30}) {
    try {
      (void)tok.decode(std::vector<std::int32_t>{33155, bad});
      BOOST_ERROR("decoded id " << bad);
    } catch (const rwkv::error& e) {
      BOOST_CHECK(std::string(e.what()).find("token id " + std::to_string(bad) + " is out of range [0, 65530)") !=
                  std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(literal_escapes) {
  const std::string vocab =
      "1 '\\x00' 1\n"
      "2 '\\x7f' 1\n"
      "3 b'\\x80' 1\n"
      "4 '\\xa0' 2\n"             // str \xHH is the code point U+00HH
      "5 ' ' 1\n"                 // the literal is a space
      "6 '   ' 3\n"               // spaces inside the literal
      "7 \"'\" 1\n"               // double quotes around '
      "8 '\\'\\\"\\\\' 3\n"       // \' \" \\.
      "9 '\\n\\r\\t' 3\n"         // \n \r \t
      "10 '\\u200d' 3\n"          // \uHHHH
      "11 '\\U0001F642' 4\n"      // \UHHHHHHHH
      "12 '¡' 2\n"                // raw UTF-8
      "13 b'\\xe4\\xbd' 2\n"      // raw bytes
      "14 '\\a\\b\\f\\v\\0' 5\n"  // the rest of Python's single-character escapes
      "15 '\\101\\7' 2\n"         // octal
      "16 b'\\u12' 4\n"           // \u is no escape in bytes
      "17 '\\q' 2\n"              // unknown escapes keep their backslash
      "18 B'xy' 2\n"              // capital B
      "19  'x z'  3\n";           // extra spaces around the literal
  const auto tok = rwkv::world_tokenizer::from_string(vocab);
  BOOST_CHECK_EQUAL(tok.vocab_size(), 20);
  BOOST_CHECK_EQUAL(tok.token_bytes(1), std::string(1, '\0'));
  BOOST_CHECK_EQUAL(tok.token_bytes(2), "\x7f");
  BOOST_CHECK_EQUAL(tok.token_bytes(3), "\x80");
  BOOST_CHECK_EQUAL(tok.token_bytes(4), "\xc2\xa0");
  BOOST_CHECK_EQUAL(tok.token_bytes(5), " ");
  BOOST_CHECK_EQUAL(tok.token_bytes(6), "   ");
  BOOST_CHECK_EQUAL(tok.token_bytes(7), "'");
  BOOST_CHECK_EQUAL(tok.token_bytes(8), "'\"\\");
  BOOST_CHECK_EQUAL(tok.token_bytes(9), "\n\r\t");
  BOOST_CHECK_EQUAL(tok.token_bytes(10), "\xe2\x80\x8d");
  BOOST_CHECK_EQUAL(tok.token_bytes(11), "\xf0\x9f\x99\x82");
  BOOST_CHECK_EQUAL(tok.token_bytes(12), "\xc2\xa1");
  BOOST_CHECK_EQUAL(tok.token_bytes(13), "\xe4\xbd");
  BOOST_CHECK_EQUAL(tok.token_bytes(14), std::string("\a\b\f\v\0", 5));
  BOOST_CHECK_EQUAL(tok.token_bytes(15), "A\x07");
  BOOST_CHECK_EQUAL(tok.token_bytes(16), "\\u12");
  BOOST_CHECK_EQUAL(tok.token_bytes(17), "\\q");
  BOOST_CHECK_EQUAL(tok.token_bytes(18), "xy");
  BOOST_CHECK_EQUAL(tok.token_bytes(19), "x z");
  // Longest match on the small vocabulary; a byte that starts no token is an error naming the offset.
  const auto ids = tok.encode(std::string("\x7f   \n\r\t", 7));
  const std::vector<std::int32_t> want{2, 6, 9};
  BOOST_CHECK_EQUAL_COLLECTIONS(ids.begin(), ids.end(), want.begin(), want.end());
  BOOST_CHECK_EXCEPTION((void)tok.encode("xyQ"), rwkv::error, [](const rwkv::error& e) {
    return std::string(e.what()).find("byte 0x51 at offset 2") != std::string::npos;
  });
  // A final line without its newline, and CRLF line ends, are accepted.
  BOOST_CHECK_EQUAL(rwkv::world_tokenizer::from_string("1 'a' 1\r\n2 'b' 1").vocab_size(), 3);
}

BOOST_AUTO_TEST_CASE(malformed_lines_are_refused_with_file_and_line) {
  const auto& h = small_vocab_head;  // lines 1 and 2 are fine
  expect_refused(h + "3'c'1\n", 3, "expected '<id> <literal> <byte_length>'");
  expect_refused(h + "3 'c'\n", 3, "expected '<id> <literal> <byte_length>'");
  expect_refused(h + "\n3 'c' 1\n", 3, "expected '<id> <literal> <byte_length>'");  // blank line
  expect_refused(h + "x3 'c' 1\n", 3, "the id 'x3' is not a number");
  expect_refused(h + "4 'c' 1\n", 3, "id 4 where 3 was expected");
  expect_refused("0 'c' 1\n", 1, "id 0 where 1 was expected");
  expect_refused(h + "3 'c' one\n", 3, "the byte length 'one' is not a number");
  expect_refused(h + "3 'c' 2\n", 3, "the literal has 1 bytes but the line says 2");
  expect_refused(h + "3 '' 0\n", 3, "empty token");
  expect_refused(h + "3 c 1\n", 3, "expected a Python str or bytes literal");
  expect_refused(h + "3 r'c' 1\n", 3, "expected a Python str or bytes literal");
  expect_refused(h + "3 'c 1\n", 3, "unterminated literal");
  expect_refused(h + "3 'c\\' 1\n", 3, "unterminated literal");
  expect_refused(h + "3 'c'x 1\n", 3, "unexpected text after the literal");
  expect_refused(h + "3 'c' 'd' 2\n", 3, "unexpected text after the literal");
  expect_refused(h + "3 '\\x4' 1\n", 3, "truncated escape");
  expect_refused(h + "3 '\\u12' 1\n", 3, "truncated escape");
  expect_refused(h + "3 '\\ud800' 3\n", 3, "surrogate");
  expect_refused(h + "3 '\\U00110000' 4\n", 3, "beyond U+10FFFF");
  expect_refused(h + "3 '\\N{BULLET}' 3\n", 3, "\\N{...} escapes are not supported");
  expect_refused(h + "3 b'\\400' 1\n", 3, "octal escape above \\377");
  expect_refused(h + "3 b'¡' 2\n", 3, "non-ASCII character in a bytes literal");
  expect_refused(h + "3 '\xff' 1\n", 3, "not valid UTF-8");
  expect_refused(h + "3 b'a' 1\n", 3, "the same bytes as id 1 (line 1)");
  BOOST_CHECK_EXCEPTION((void)rwkv::world_tokenizer::from_string("", "bad.txt"), rwkv::error,
                        [](const rwkv::error& e) { return e.problem() == "the vocabulary is empty"; });
}

BOOST_AUTO_TEST_CASE(file_errors_name_the_file) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto path = dir / ("rwkvpp-world-test-" + std::to_string(std::random_device{}()) + ".txt");
  {
    std::ofstream out(path, std::ios::binary);
    out << "1 'a' 1\n2 'b' 1\n3 'ab' 3\n";
  }
  try {
    rwkv::world_tokenizer tok(path);
    BOOST_ERROR("accepted a malformed file");
  } catch (const rwkv::error& e) {
    BOOST_CHECK_EQUAL(e.file(), path.string());
    BOOST_CHECK(e.problem().starts_with("line 3: "));
    BOOST_CHECK(std::string(e.what()).find(path.string() + ": line 3: the literal has 2 bytes but the line says 3") !=
                std::string::npos);
  }
  std::filesystem::remove(path);
  BOOST_CHECK_THROW(rwkv::world_tokenizer(dir / "no-such-vocabulary.txt"), rwkv::error);
}

// world_tokenizer::bundled(): the vocabulary the rwkv::rwkv target compiles in (the source tree's here), or the one
// the environment variable RWKV_WORLD_VOCAB names.
BOOST_AUTO_TEST_CASE(bundled_vocabulary) {
  BOOST_REQUIRE(std::getenv("RWKV_WORLD_VOCAB") == nullptr);
  BOOST_CHECK(std::filesystem::equivalent(rwkv::world_tokenizer::bundled_path(), RWKV_VOCAB_FILE));
  const auto tok = rwkv::world_tokenizer::bundled();
  BOOST_CHECK_EQUAL(tok.vocab_size(), world().vocab_size());
  BOOST_CHECK(tok.encode("Hello, world!") == world().encode("Hello, world!"));

  const auto path = std::filesystem::temp_directory_path() /
                    ("rwkvpp-world-bundled-" + std::to_string(std::random_device{}()) + ".txt");
  {
    std::ofstream out(path, std::ios::binary);
    out << "1 'a' 1\n2 'b' 1\n3 'ab' 2\n";
  }
  ::setenv("RWKV_WORLD_VOCAB", path.c_str(), 1);
  BOOST_CHECK_EQUAL(rwkv::world_tokenizer::bundled_path(), path);
  BOOST_CHECK_EQUAL(rwkv::world_tokenizer::bundled().vocab_size(), 4);
  std::filesystem::remove(path);
  BOOST_CHECK_EXCEPTION((void)rwkv::world_tokenizer::bundled(), rwkv::error,
                        [&](const rwkv::error& e) { return e.file() == path.string(); });
  ::unsetenv("RWKV_WORLD_VOCAB");
  BOOST_CHECK(std::filesystem::equivalent(rwkv::world_tokenizer::bundled_path(), RWKV_VOCAB_FILE));
}

BOOST_AUTO_TEST_CASE(utf8_helpers) {
  BOOST_CHECK(rwkv::is_valid_utf8(""));
  BOOST_CHECK(rwkv::is_valid_utf8("a\xc2\xa0\xe4\xbd\xa0\xf0\x9f\x99\x82"));
  BOOST_CHECK(!rwkv::is_valid_utf8("\xc0\xaf"));          // overlong
  BOOST_CHECK(!rwkv::is_valid_utf8("\xe0\x80\xaf"));      // overlong
  BOOST_CHECK(!rwkv::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  BOOST_CHECK(!rwkv::is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  BOOST_CHECK(!rwkv::is_valid_utf8("\x80"));
  BOOST_CHECK(!rwkv::is_valid_utf8("\xe4\xbd"));  // incomplete
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("a\xe4"), 1u);
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("a\xe4\xbd"), 2u);
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("\xf0\x9f\x99"), 3u);
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("\xe4\xbd\xa0"), 0u);
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("a"), 0u);
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("\x80"), 0u);      // invalid, not incomplete
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("\xed\xa0"), 0u);  // a surrogate never completes
  BOOST_CHECK_EQUAL(rwkv::incomplete_utf8_suffix("\xe4\x41"), 0u);
  BOOST_CHECK_EQUAL(rwkv::utf8_or_replacement("\xe4\xbd"), "\xef\xbf\xbd");
}

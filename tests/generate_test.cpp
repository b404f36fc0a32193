// rwkv::generate against hand-written loops on the bundled tiny RWKV-7 model (byte-level), plus a scripted fake
// model for the streaming rules: UTF-8 hold-back, stop strings, prompt chunking, the World tokenizer.
#define BOOST_TEST_MODULE generate
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <rwkv/generate.hpp>
#include <rwkv/rwkv.hpp>
#include <rwkv/tokenizer/world.hpp>

namespace {

using tiny_model = rwkv::v7::Model<rwkv::f32>;

const tiny_model& tiny() {
  static const auto m = rwkv::load_model<tiny_model>(std::string(RWKV_TEST_DATA_DIR) + "/tiny-7v0.model.safetensors");
  return m;
}

const rwkv::byte_tokenizer bytes;

rwkv::generation_params greedy(int max_tokens) {
  return {.sampling = {.temperature = 0.f}, .penalty = {.presence = 0.f, .frequency = 0.f}, .max_tokens = max_tokens};
}

// The reference loop written out: prefill, then argmax (after the penalties when given) and step.
std::vector<std::int32_t> hand_loop(const tiny_model& m, tiny_model::state_type& s, std::string_view prompt, int n,
                                    rwkv::penalties* pen = nullptr) {
  auto logits = m.prefill(bytes.encode(prompt), s);
  std::vector<std::int32_t> out;
  for (int i = 0; i < n; ++i) {
    if (pen) pen->apply(logits);
    const auto t = rwkv::argmax(logits);
    out.push_back(t);
    if (pen) pen->update(t, std::string(1, static_cast<char>(t)));
    logits = m.step(t, s);
  }
  return out;
}

// Collects the streamed pieces.
struct recorder {
  std::vector<std::string> pieces;
  bool operator()(std::string_view piece) {
    pieces.emplace_back(piece);
    return true;
  }
  std::string joined() const {
    std::string s;
    for (const auto& p : pieces) s += p;
    return s;
  }
};

// A model that emits a fixed script: its logits put 10 on script[k] (k = tokens stepped so far) and 0 elsewhere,
// so greedy decoding reproduces the script. Records the sizes of its prefill calls.
struct scripted_model {
  struct state_type {
    std::vector<std::int32_t> fed;
    std::size_t stepped = 0;
    bool operator==(const state_type&) const = default;
  };
  std::vector<std::int32_t> script;
  std::size_t vocab = 256;
  mutable std::vector<std::size_t> prefill_sizes{};

  std::vector<float> next(const state_type& s) const {
    std::vector<float> logits(vocab, 0.f);
    logits[static_cast<std::size_t>(script[s.stepped % script.size()])] = 10.f;
    return logits;
  }
  std::vector<float> prefill(std::span<const std::int32_t> tokens, state_type& s) const {
    prefill_sizes.push_back(tokens.size());
    s.fed.insert(s.fed.end(), tokens.begin(), tokens.end());
    return next(s);
  }
  std::vector<float> step(std::int32_t token, state_type& s) const {
    s.fed.push_back(token);
    ++s.stepped;
    return next(s);
  }
};

std::vector<std::int32_t> script_of(std::string_view text) { return bytes.encode(text); }

}  // namespace

BOOST_AUTO_TEST_CASE(greedy_equals_argmax_and_step) {
  const auto& m = tiny();
  auto s = m.make_state(), hand_state = m.make_state();
  recorder rec;
  const auto r = rwkv::generate(m, s, bytes, "The quick", greedy(48), std::ref(rec));
  const auto want = hand_loop(m, hand_state, "The quick", 48);
  BOOST_CHECK_EQUAL_COLLECTIONS(r.tokens.begin(), r.tokens.end(), want.begin(), want.end());
  BOOST_CHECK(r.reason == rwkv::stop_reason::max_tokens);
  BOOST_CHECK_EQUAL(r.text, bytes.decode(want));
  BOOST_CHECK_EQUAL(rec.joined(), r.text);
  BOOST_CHECK(s == hand_state);  // the state has consumed the prompt and every returned token
  BOOST_TEST_MESSAGE("tiny-7v0 greedy: The quick" << r.text);
}

BOOST_AUTO_TEST_CASE(greedy_with_default_penalties_equals_the_reference_loop) {
  const auto& m = tiny();
  auto s = m.make_state(), hand_state = m.make_state();
  rwkv::generation_params p{.sampling = {.temperature = 0.f}, .max_tokens = 64};  // penalties 0.2 / 0.2 / 0.996
  const auto r = rwkv::generate(m, s, bytes, "The quick", p);
  rwkv::penalties pen;
  const auto want = hand_loop(m, hand_state, "The quick", 64, &pen);
  BOOST_CHECK_EQUAL_COLLECTIONS(r.tokens.begin(), r.tokens.end(), want.begin(), want.end());
  BOOST_CHECK(s == hand_state);
  // The penalties change the text here (otherwise this test would prove little).
  auto plain = m.make_state();
  BOOST_CHECK(rwkv::generate(m, plain, bytes, "The quick", greedy(64)).tokens != want);
}

BOOST_AUTO_TEST_CASE(a_conversation_continues_with_the_same_state) {
  const auto& m = tiny();
  auto s = m.make_state(), hand_state = m.make_state();
  const auto first = rwkv::generate(m, s, bytes, "User: hi", greedy(12));
  const auto second = rwkv::generate(m, s, bytes, "\nUser: again", greedy(12));
  const auto want1 = hand_loop(m, hand_state, "User: hi", 12);
  const auto want2 = hand_loop(m, hand_state, "\nUser: again", 12);
  BOOST_CHECK(first.tokens == want1);
  BOOST_CHECK(second.tokens == want2);
  BOOST_CHECK(s == hand_state);
}

BOOST_AUTO_TEST_CASE(stop_tokens_stop_without_emitting_or_feeding) {
  const auto& m = tiny();
  auto s0 = m.make_state();
  const auto full = rwkv::generate(m, s0, bytes, "The quick", greedy(40)).tokens;
  const auto stop = full[10];
  const auto first = static_cast<std::size_t>(std::find(full.begin(), full.end(), stop) - full.begin());
  auto params = greedy(40);
  params.stop_tokens = {999, stop};
  auto s = m.make_state();
  recorder rec;
  const auto r = rwkv::generate(m, s, bytes, "The quick", params, std::ref(rec));
  BOOST_CHECK(r.reason == rwkv::stop_reason::stop_token);
  BOOST_CHECK(r.tokens == std::vector<std::int32_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(first)));
  BOOST_CHECK_EQUAL(rec.joined(), bytes.decode(r.tokens));
  BOOST_CHECK(rec.joined().find(static_cast<char>(stop)) == std::string::npos);
  auto hand_state = m.make_state();
  (void)hand_loop(m, hand_state, "The quick", static_cast<int>(first));
  BOOST_CHECK(s == hand_state);  // the stop token was not fed
}

BOOST_AUTO_TEST_CASE(stop_strings_stop_without_emitting) {
  const auto& m = tiny();
  auto s0 = m.make_state();
  const auto text = rwkv::generate(m, s0, bytes, "The quick", greedy(60)).text;
  const auto stop = text.substr(20, 3);
  const auto at = text.find(stop);
  auto params = greedy(60);
  params.stop_strings = {"never generated \x01", stop};
  auto s = m.make_state();
  recorder rec;
  const auto r = rwkv::generate(m, s, bytes, "The quick", params, std::ref(rec));
  BOOST_CHECK(r.reason == rwkv::stop_reason::stop_string);
  BOOST_CHECK_EQUAL(r.text, text.substr(0, at));
  BOOST_CHECK_EQUAL(rec.joined(), text.substr(0, at));
  for (const auto& piece : rec.pieces) BOOST_CHECK(piece.find(stop) == std::string::npos);
  BOOST_CHECK_EQUAL(r.tokens.size(), at + stop.size());  // the tokens that made the stop string were fed
  BOOST_CHECK_EQUAL(bytes.decode(r.tokens), text.substr(0, at + stop.size()));
}

BOOST_AUTO_TEST_CASE(max_tokens_is_respected) {
  const auto& m = tiny();
  for (int n : {0, 1, 7, 33}) {
    auto s = m.make_state();
    const auto r = rwkv::generate(m, s, bytes, "Once upon", {.sampling = {.temperature = 1.0f}, .max_tokens = n});
    BOOST_CHECK_EQUAL(r.tokens.size(), static_cast<std::size_t>(n));
    BOOST_CHECK(r.reason == rwkv::stop_reason::max_tokens);
  }
  auto s = m.make_state(), prompt_only = m.make_state();
  (void)rwkv::generate(m, s, bytes, "Once upon", greedy(0));
  (void)m.prefill(bytes.encode("Once upon"), prompt_only);
  BOOST_CHECK(s == prompt_only);  // max_tokens 0 still feeds the prompt
}

BOOST_AUTO_TEST_CASE(same_seed_same_text) {
  const auto& m = tiny();
  auto run = [&](std::uint64_t seed) {
    auto s = m.make_state();
    return rwkv::generate(m, s, bytes, "The quick",
                          {.sampling = {.temperature = 1.0f, .top_p = 0.9f}, .max_tokens = 64, .seed = seed})
        .text;
  };
  const auto a = run(42);
  BOOST_CHECK_EQUAL(a, run(42));
  bool differs = false;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) differs = differs || run(seed) != a;
  BOOST_CHECK(differs);
}

BOOST_AUTO_TEST_CASE(streamed_pieces_concatenate_to_the_text) {
  const auto& m = tiny();
  for (std::uint64_t seed : {1, 2, 3}) {
    auto s = m.make_state();
    recorder rec;
    // A high temperature makes the byte model produce non-ASCII bytes too.
    const auto r = rwkv::generate(m, s, bytes, "The quick",
                                  {.sampling = {.temperature = 2.0f, .top_p = 1.0f}, .max_tokens = 200, .seed = seed},
                                  std::ref(rec));
    BOOST_CHECK_EQUAL(rec.joined(), r.text);
    BOOST_CHECK_EQUAL(r.text, bytes.decode(r.tokens));
    // A piece may end in the start of a character only when the next bytes show that it never completes.
    const auto all = rec.joined();
    std::size_t boundary = 0, held = 0;
    for (std::size_t i = 0; i + 1 < rec.pieces.size(); ++i) {
      BOOST_CHECK(!rec.pieces[i].empty());
      boundary += rec.pieces[i].size();
      const auto k = rwkv::incomplete_utf8_suffix(rec.pieces[i]);
      held += k > 0;
      for (std::size_t len = k + 1; k > 0 && len <= 4 && boundary - k + len <= all.size(); ++len)
        BOOST_CHECK(!rwkv::is_valid_utf8(all.substr(boundary - k, len)));
    }
    BOOST_TEST_MESSAGE("seed " << seed << ": " << rec.pieces.size() << " pieces, " << held
                               << " end in a broken character start");
  }
}

BOOST_AUTO_TEST_CASE(callback_returning_false_stops) {
  const auto& m = tiny();
  auto s = m.make_state(), hand_state = m.make_state();
  int calls = 0;
  const auto r = rwkv::generate(m, s, bytes, "The quick", greedy(50), [&](std::string_view) {
    ++calls;
    return calls < 3;
  });
  BOOST_CHECK_EQUAL(calls, 3);
  BOOST_CHECK(r.reason == rwkv::stop_reason::callback);
  (void)hand_loop(m, hand_state, "The quick", static_cast<int>(r.tokens.size()));
  BOOST_CHECK(s == hand_state);
}

BOOST_AUTO_TEST_CASE(utf8_pieces_are_held_until_complete) {
  // "a", 你 (E4 BD A0), "b", 🙂 (F0 9F 99 82), one token per byte.
  scripted_model m{.script = script_of("a\xe4\xbd\xa0"
                                       "b\xf0\x9f\x99\x82")};
  scripted_model::state_type s;
  recorder rec;
  const auto r = rwkv::generate(m, s, bytes, "p", greedy(9), std::ref(rec));
  BOOST_CHECK(rec.pieces == (std::vector<std::string>{"a", "\xe4\xbd\xa0", "b", "\xf0\x9f\x99\x82"}));
  BOOST_CHECK_EQUAL(r.tokens.size(), 9u);

  // Stopping in the middle of a character: the held-back bytes come out at the end, so nothing is lost.
  scripted_model cut{.script = script_of("x\xe4\xbd\xa0")};
  scripted_model::state_type s2;
  recorder rec2;
  (void)rwkv::generate(cut, s2, bytes, "p", greedy(3), std::ref(rec2));
  BOOST_CHECK(rec2.pieces == (std::vector<std::string>{"x", "\xe4\xbd"}));

  // Bytes that can never become valid UTF-8 are not held forever.
  scripted_model bad{.script = script_of("\x80"
                                         "c")};
  scripted_model::state_type s3;
  recorder rec3;
  (void)rwkv::generate(bad, s3, bytes, "p", greedy(2), std::ref(rec3));
  BOOST_CHECK(rec3.pieces == (std::vector<std::string>{"\x80", "c"}));
}

BOOST_AUTO_TEST_CASE(possible_stop_string_starts_are_held_back) {
  scripted_model m{.script = script_of("abcabdzz")};
  auto params = greedy(8);
  params.stop_strings = {"abd"};
  scripted_model::state_type s;
  recorder rec;
  const auto r = rwkv::generate(m, s, bytes, "p", params, std::ref(rec));
  BOOST_CHECK(rec.pieces == std::vector<std::string>{"abc"});  // "a", "ab" held; "abc" cannot start "abd"
  BOOST_CHECK(r.reason == rwkv::stop_reason::stop_string);
  BOOST_CHECK_EQUAL(r.tokens.size(), 6u);
  BOOST_CHECK_EQUAL(s.fed.size(), 1u + 6u);

  // A held-back prefix that never completes is emitted at the end.
  scripted_model tail{.script = script_of("xab")};
  params.max_tokens = 3;
  scripted_model::state_type s2;
  recorder rec2;
  const auto r2 = rwkv::generate(tail, s2, bytes, "p", params, std::ref(rec2));
  BOOST_CHECK(rec2.pieces == (std::vector<std::string>{"x", "ab"}));
  BOOST_CHECK(r2.reason == rwkv::stop_reason::max_tokens);
}

BOOST_AUTO_TEST_CASE(the_prompt_is_fed_in_chunks) {
  scripted_model m{.script = script_of("z")};
  const std::string prompt(600, 'q');
  scripted_model::state_type s;
  (void)rwkv::generate(m, s, bytes, prompt, greedy(1));
  BOOST_CHECK(m.prefill_sizes == (std::vector<std::size_t>{256, 256, 88}));
  BOOST_CHECK_EQUAL(s.fed.size(), 601u);
  m.prefill_sizes.clear();
  auto params = greedy(1);
  params.chunk_len = 100;
  (void)rwkv::generate(m, s, bytes, std::span<const std::int32_t>(bytes.encode("abc")), params);
  BOOST_CHECK(m.prefill_sizes == std::vector<std::size_t>{3});
}

BOOST_AUTO_TEST_CASE(works_with_the_world_tokenizer) {
  const rwkv::world_tokenizer world(RWKV_VOCAB_FILE);
  // Hello , world ! then id 0 (end of text) as the stop token.
  scripted_model m{.script = {33155, 45, 40213, 34, 0}, .vocab = 65536};
  auto params = greedy(20);
  params.stop_tokens = {0};
  scripted_model::state_type s;
  recorder rec;
  const auto r = rwkv::generate(m, s, world, "\n\nUser: hi\n\nAssistant:", params, std::ref(rec));
  BOOST_CHECK(rec.pieces == (std::vector<std::string>{"Hello", ",", " world", "!"}));
  BOOST_CHECK(r.reason == rwkv::stop_reason::stop_token);
  BOOST_CHECK(r.tokens == (std::vector<std::int32_t>{33155, 45, 40213, 34}));
  BOOST_CHECK_EQUAL(s.fed.size(), world.encode("\n\nUser: hi\n\nAssistant:").size() + 4);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_refused) {
  const auto& m = tiny();
  auto s = m.make_state();
  const auto before = s;
  BOOST_CHECK_THROW(rwkv::generate(m, s, bytes, "", greedy(3)), rwkv::error);
  BOOST_CHECK_THROW(rwkv::generate(m, s, bytes, "x", greedy(-1)), rwkv::error);
  auto p = greedy(3);
  p.stop_strings = {""};
  BOOST_CHECK_THROW(rwkv::generate(m, s, bytes, "x", p), rwkv::error);
  p = greedy(3);
  p.chunk_len = 0;
  BOOST_CHECK_THROW(rwkv::generate(m, s, bytes, "x", p), rwkv::error);
  BOOST_CHECK(s == before);  // nothing was fed
  BOOST_CHECK_EQUAL(rwkv::to_string(rwkv::stop_reason::stop_string), std::string("stop_string"));
}

BOOST_AUTO_TEST_CASE(keeps_text_accepts_printable_utf8_and_unfinished_characters) {
  using rwkv::keeps_text;
  BOOST_CHECK(keeps_text("", "plain text\n\twith tabs"));
  BOOST_CHECK(keeps_text("", "\xC3"));           // unfinished: a later piece may complete it
  BOOST_CHECK(keeps_text("\xC3", "\xA9 ok"));    // é completed
  BOOST_CHECK(keeps_text("\xE4", "\xB8\x96x"));  // 世 completed across pieces
  BOOST_CHECK(!keeps_text("\xC3", "a"));         // a lead byte followed by ASCII
  BOOST_CHECK(!keeps_text("", "\xA9"));          // a lone continuation byte
  BOOST_CHECK(!keeps_text("", "\xFF"));          // never UTF-8
  BOOST_CHECK(!keeps_text("", "\xC0\xAF"));      // overlong
  BOOST_CHECK(!keeps_text("", "\xED\xA0\x80"));  // a surrogate
  BOOST_CHECK(!keeps_text("", "a\x01"));         // C0 control
  BOOST_CHECK(!keeps_text("", "\x7F"));          // DEL
  BOOST_CHECK(!keeps_text("", "\xC2\x85"));      // C1 control (NEL)
  BOOST_CHECK(keeps_text("", ""));               // an end-of-text token decodes to nothing
  BOOST_CHECK_EQUAL(rwkv::text_bytes_missing("", "\xE4"), 2);
  BOOST_CHECK_EQUAL(rwkv::text_bytes_missing("\xE4", "\xB8"), 1);
  BOOST_CHECK_EQUAL(rwkv::text_bytes_missing("\xE4\xB8", "\x96"), 0);
  BOOST_CHECK_EQUAL(rwkv::text_bytes_missing("", "\xF0\x9F\x98\x80"), 0);
  BOOST_CHECK_EQUAL(rwkv::text_bytes_missing("", "\xF0"), 3);
}

// A hot sampler on the tiny byte-level model emits stray bytes; text_only samples around them.
BOOST_AUTO_TEST_CASE(text_only_generation_is_printable_utf8) {
  const auto& m = tiny();
  rwkv::generation_params p{.sampling = {.temperature = 1.5f, .top_p = 1.f}, .max_tokens = 400, .seed = 3};
  auto printable = [](const std::string& t) {
    return rwkv::is_valid_utf8(t) && std::none_of(t.begin(), t.end(), [](char c) {
             const auto u = static_cast<unsigned char>(c);
             return (u < 0x20 && c != '\n' && c != '\t') || u == 0x7F;
           });
  };
  auto s = m.make_state();
  const auto raw = rwkv::generate(m, s, bytes, "The ", p);
  BOOST_CHECK_MESSAGE(!printable(raw.text), "the raw text was already printable: the test shows nothing");
  p.text_only = true;
  s = m.make_state();
  std::string streamed;
  const auto text = rwkv::generate(m, s, bytes, "The ", p, [&](std::string_view piece) { streamed += piece; });
  BOOST_CHECK_EQUAL(text.tokens.size(), 400u);
  BOOST_CHECK(printable(text.text));
  BOOST_CHECK_EQUAL(streamed, text.text);
  BOOST_CHECK_EQUAL(text.text, bytes.decode(text.tokens));
}

// A tokenizer with fewer ids than the model has logits (a World vocabulary's 65530 against 65536): the ids it cannot
// decode are never drawn, however hot the sampling.
BOOST_AUTO_TEST_CASE(ids_the_tokenizer_cannot_decode_are_never_drawn) {
  struct first_hundred {
    std::int64_t vocab_size() const { return 100; }
    std::vector<std::int32_t> encode(std::string_view text) const { return rwkv::byte_tokenizer{}.encode(text); }
    std::string decode(std::span<const std::int32_t> ids) const {
      for (auto id : ids)
        if (id >= 100) throw rwkv::error("id " + std::to_string(id) + " has no bytes");
      return rwkv::byte_tokenizer{}.decode(ids);
    }
  };
  const auto& m = tiny();
  auto s = m.make_state();
  const auto r = rwkv::generate(m, s, first_hundred{}, "The quick",
                                {.sampling = {.temperature = 3.0f, .top_p = 1.0f}, .max_tokens = 200, .seed = 1});
  BOOST_TEST(r.tokens.size() == 200u);
  BOOST_TEST(std::all_of(r.tokens.begin(), r.tokens.end(), [](std::int32_t t) { return t >= 0 && t < 100; }));
}

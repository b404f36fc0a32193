// rwkv::serve::engine: continuous batching gives each request what it would get alone (and what rwkv::generate
// gives), the state cache resumes a conversation exactly, a full queue refuses, cancelling frees a slot.
#define BOOST_TEST_MODULE serve_engine
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/generate.hpp>
#include <rwkv/serve/engine.hpp>
#include <rwkv/serve/state_cache.hpp>
#include <rwkv/tokenizer/bytes.hpp>

#include "../support/golden.hpp"

namespace {

using rwkv::byte_tokenizer;
using rwkv::test::data_path;
using engine_t = rwkv::serve::engine<byte_tokenizer>;

const rwkv::any_model& tiny() {
  static const auto m = rwkv::any_model::load(data_path("tiny-7v0.model.safetensors"));
  return m;
}

rwkv::generation_params params(std::uint64_t seed, int max_tokens = 24) {
  rwkv::generation_params p;
  p.sampling = {.temperature = 0.9f, .top_p = 0.9f, .top_k = 0};
  p.max_tokens = max_tokens;
  p.seed = seed;
  return p;
}

// Submits a request and returns a future of its outcome.
std::future<rwkv::serve::outcome> start(engine_t& e, const std::string& prompt, rwkv::generation_params p) {
  auto done = std::make_shared<std::promise<rwkv::serve::outcome>>();
  auto f = done->get_future();
  rwkv::serve::request r;
  r.prompt = byte_tokenizer{}.encode(prompt);
  r.params = std::move(p);
  r.on_done = [done](const rwkv::serve::outcome& o) { done->set_value(o); };
  BOOST_REQUIRE(e.submit(std::move(r)).has_value());
  return f;
}

rwkv::serve::outcome run_alone(const std::string& prompt, rwkv::generation_params p) {
  engine_t e(tiny(), byte_tokenizer{}, {.slots = 1});
  return start(e, prompt, std::move(p)).get();
}

const std::vector<std::string> prompts{"In the beginning",
                                       "The quick brown fox",
                                       "Once upon a time, in a land",
                                       "Hello",
                                       "RWKV is an RNN",
                                       "To be or not to be",
                                       "A",
                                       "The sea was calm and"};

}  // namespace

// The engine's first request runs the same loop as rwkv::generate: the same tokens and text for the same seed.
BOOST_AUTO_TEST_CASE(one_request_matches_generate) {
  for (std::uint64_t seed : {1u, 7u}) {
    const auto o = run_alone(prompts[1], params(seed, 40));
    auto s = tiny().make_state();
    const auto want = rwkv::generate(tiny(), s, byte_tokenizer{}, prompts[1], params(seed, 40));
    BOOST_TEST(o.result.tokens == want.tokens, boost::test_tools::per_element());
    BOOST_TEST(o.result.text == want.text);
    BOOST_TEST(o.error.empty());
    BOOST_TEST(!o.cancelled);
  }
}

// Sixteen requests on six slots (so some wait, and each decodes among different neighbours at every step) give
// token for token what each gives alone.
BOOST_AUTO_TEST_CASE(concurrent_requests_match_their_solo_runs) {
  engine_t e(tiny(), byte_tokenizer{}, {.slots = 6, .max_queue = 16, .prefill_chunk = 4});
  std::vector<std::future<rwkv::serve::outcome>> running;
  for (std::size_t i = 0; i < 16; ++i)
    running.push_back(start(e, prompts[i % prompts.size()], params(100 + i, 10 + static_cast<int>(i) * 3)));
  for (std::size_t i = 0; i < 16; ++i) {
    const auto got = running[i].get();
    const auto alone = run_alone(prompts[i % prompts.size()], params(100 + i, 10 + static_cast<int>(i) * 3));
    BOOST_TEST_CONTEXT("request " << i) {
      BOOST_TEST(got.result.tokens == alone.result.tokens, boost::test_tools::per_element());
      BOOST_TEST(got.result.text == alone.result.text);
    }
  }
  const auto c = e.counters();
  BOOST_TEST(c.completed == 16u);
  BOOST_TEST(c.active == 0u);
  BOOST_TEST(c.queued == 0u);
}

// A conversation's second turn through the state cache (the state after turn one, then only the new tokens) gives
// the same reply as a cold run over the whole history.
BOOST_AUTO_TEST_CASE(conversation_through_the_cache_matches_a_cold_run) {
  rwkv::serve::state_cache cache(64 << 20);
  engine_t warm(tiny(), byte_tokenizer{}, {.slots = 2, .cache = &cache});
  const std::string turn1 = "User: Who made the sea?\n\nAssistant:";
  const auto first = start(warm, turn1, params(5)).get();
  const std::string history = turn1 + first.result.text + "\n\nUser: And the land?\n\nAssistant:";
  const auto second = start(warm, history, params(6)).get();
  BOOST_TEST(second.cached_tokens >= turn1.size() + first.result.tokens.size() - 1);
  BOOST_TEST(cache.stats().hits >= 1u);
  const auto cold = run_alone(history, params(6));
  BOOST_TEST(cold.cached_tokens == 0u);
  BOOST_TEST(second.result.tokens == cold.result.tokens, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(state_cache_keeps_the_longest_prefix_within_its_budget) {
  rwkv::serve::state_cache cache(3000);
  const auto s = tiny().make_state();
  const std::vector<std::int32_t> a{1, 2, 3}, ab{1, 2, 3, 4, 5}, other{9, 9};
  cache.put(a, s, 1000);
  cache.put(ab, s, 1000);
  auto hit = cache.longest_prefix(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6});
  BOOST_REQUIRE(hit);
  BOOST_TEST(hit->length == 5u);
  hit = cache.longest_prefix(std::vector<std::int32_t>{1, 2, 3, 7});
  BOOST_REQUIRE(hit);
  BOOST_TEST(hit->length == 3u);
  BOOST_TEST(!cache.longest_prefix(std::vector<std::int32_t>{2, 3}));
  cache.put(other, s, 1000);
  cache.put(std::vector<std::int32_t>{7}, s, 1000);  // over budget: the least recently used entry (ab) goes
  BOOST_TEST(cache.stats().evictions == 1u);
  hit = cache.longest_prefix(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6});
  BOOST_REQUIRE(hit);
  BOOST_TEST(hit->length == 3u);
  cache.put(std::vector<std::int32_t>{8}, s, 5000);  // larger than the budget: not kept
  BOOST_TEST(cache.stats().bytes <= 3000u);
}

// With every slot busy and the queue full, submit refuses; a cancelled request frees its slot at once.
BOOST_AUTO_TEST_CASE(full_queue_refuses_and_cancel_frees_the_slot) {
  engine_t e(tiny(), byte_tokenizer{}, {.slots = 1, .max_queue = 1});
  std::promise<rwkv::serve::outcome> long_done;
  rwkv::serve::request r;
  r.prompt = byte_tokenizer{}.encode("The");
  r.params = params(1, 1 << 20);
  r.on_done = [&](const rwkv::serve::outcome& o) { long_done.set_value(o); };
  const auto id = e.submit(std::move(r));
  BOOST_REQUIRE(id);
  auto queued = start(e, "Hello", params(2, 4));
  rwkv::serve::request third;
  third.prompt = byte_tokenizer{}.encode("x");
  BOOST_TEST(!e.submit(std::move(third)).has_value());
  BOOST_TEST(e.counters().rejected == 1u);
  e.cancel(*id);
  const auto o = long_done.get_future().get();
  BOOST_TEST(o.cancelled);
  BOOST_TEST(o.result.tokens.size() < 1000000u);
  const auto q = queued.get();  // ran once the slot was free
  BOOST_TEST(!q.cancelled);
  BOOST_TEST(q.result.tokens.size() == 4u);
}

// A text callback returning false (the client went away) ends the request as cancelled.
BOOST_AUTO_TEST_CASE(declining_callback_cancels) {
  engine_t e(tiny(), byte_tokenizer{}, {.slots = 2});
  std::promise<rwkv::serve::outcome> done;
  rwkv::serve::request r;
  r.prompt = byte_tokenizer{}.encode("The");
  r.params = params(3, 1000);
  int pieces = 0;
  r.on_text = [&](std::string_view) { return ++pieces < 3; };
  r.on_done = [&](const rwkv::serve::outcome& o) { done.set_value(o); };
  BOOST_REQUIRE(e.submit(std::move(r)));
  const auto o = done.get_future().get();
  BOOST_TEST(o.cancelled);
  BOOST_TEST(pieces == 3);
  BOOST_TEST(e.counters().cancelled == 1u);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_refused_before_queueing) {
  engine_t e(tiny(), byte_tokenizer{}, {.slots = 1});
  auto refused = [&](rwkv::serve::request r, const std::string& words) {
    try {
      e.submit(std::move(r));
      BOOST_ERROR("accepted a bad request (" << words << ")");
    } catch (const rwkv::error& err) {
      BOOST_TEST(std::string(err.what()).find(words) != std::string::npos, err.what());
    }
  };
  refused({}, "the prompt is empty");
  refused({.prompt = {1, 300}}, "out of range for vocabulary 256");
  refused({.prompt = {1}, .params = {.max_tokens = -1}}, "max_tokens must be >= 0");
  refused({.prompt = {1}, .params = {.stop_strings = {""}}}, "empty stop string");
  BOOST_TEST(e.counters().requests == 0u);
}

// RWKV-7b's state grows (its attention cache): slots of different lengths decode together and each gets what it
// gets alone.
BOOST_AUTO_TEST_CASE(growing_states_decode_together) {
  const auto m = rwkv::any_model::load(data_path("v7b-dev.model.safetensors"));
  engine_t e(m, byte_tokenizer{}, {.slots = 3, .prefill_chunk = 5});
  std::vector<std::future<rwkv::serve::outcome>> running;
  for (std::size_t i = 0; i < 5; ++i) running.push_back(start(e, prompts[i], params(i, 6 + static_cast<int>(i))));
  for (std::size_t i = 0; i < 5; ++i) {
    const auto got = running[i].get();
    engine_t alone(m, byte_tokenizer{}, {.slots = 1});
    const auto want = start(alone, prompts[i], params(i, 6 + static_cast<int>(i))).get();
    BOOST_TEST(got.result.tokens == want.result.tokens, boost::test_tools::per_element());
  }
}

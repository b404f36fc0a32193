// Properties of the RWKV-7 model that hold for any input: the sequence form is the fold of the step form,
// chunking a sequence anywhere changes nothing, states are independent values, and bad input is refused.
#define BOOST_TEST_MODULE v7_properties
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <random>

#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;
using model_t = v7::Model<f32>;

const model_t& dev_model() {
  static const model_t m = model_t::load(data_path("v7-dev.model.safetensors"));
  return m;
}

std::vector<std::int32_t> random_tokens(std::mt19937& rng, std::size_t n, std::int64_t vocab) {
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

void check_states_close(const v7::State& a, const v7::State& b, const std::string& what) {
  BOOST_REQUIRE_EQUAL(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    check_close(a.layers[i].att.shift, b.layers[i].att.shift, rwkv::test::state_tol, what + " att shift");
    check_close(a.layers[i].att.wkv, b.layers[i].att.wkv, rwkv::test::state_tol, what + " wkv");
    check_close(a.layers[i].ffn.shift, b.layers[i].ffn.shift, rwkv::test::state_tol, what + " ffn shift");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(sequence_equals_fold_of_steps_for_random_lengths) {
  const auto& m = dev_model();
  std::mt19937 rng(7);
  for (int trial = 0; trial < 6; ++trial) {
    const auto T = std::uniform_int_distribution<std::size_t>(1, 200)(rng);
    const auto tokens = random_tokens(rng, T, m.cfg().vocab);
    auto s_seq = m.make_state();
    const auto seq = m.forward(tokens, s_seq, logits_for::all);
    auto s_step = m.make_state();
    for (std::size_t t = 0; t < T; ++t) {
      const auto row = m.step(tokens[t], s_step);
      std::vector<float> want(seq.row(static_cast<Eigen::Index>(t)).data(),
                              seq.row(static_cast<Eigen::Index>(t)).data() + seq.cols());
      check_close(row, want, rwkv::test::logits_tol, "T=" + std::to_string(T) + " position " + std::to_string(t));
    }
    check_states_close(s_step, s_seq, "T=" + std::to_string(T));
  }
}

BOOST_AUTO_TEST_CASE(splitting_a_sequence_anywhere_gives_the_same_result) {
  const auto& m = dev_model();
  std::mt19937 rng(11);
  for (int trial = 0; trial < 8; ++trial) {
    const auto T = std::uniform_int_distribution<std::size_t>(2, 200)(rng);
    const auto split = std::uniform_int_distribution<std::size_t>(1, T - 1)(rng);
    const auto tokens = random_tokens(rng, T, m.cfg().vocab);
    auto whole = m.make_state();
    const auto want = m.prefill(tokens, whole);
    auto parts = m.make_state();
    const std::span<const std::int32_t> all(tokens);
    m.prefill(all.first(split), parts);
    const auto got = m.prefill(all.subspan(split), parts);
    check_close(got, want, rwkv::test::logits_tol, "split at " + std::to_string(split) + " of " + std::to_string(T));
    check_states_close(parts, whole, "split state");
  }
}

BOOST_AUTO_TEST_CASE(copied_state_evolves_independently) {
  const auto& m = dev_model();
  auto s = m.make_state();
  for (std::int32_t t : {5, 17, 300}) m.step(t, s);
  const auto snapshot = s;
  auto fork = s;
  BOOST_CHECK(fork == s);
  const auto a = m.step(42, s);
  BOOST_CHECK(fork == snapshot);  // stepping the original did not touch the copy
  BOOST_CHECK(!(s == snapshot));
  const auto b = m.step(42, fork);
  BOOST_CHECK(a == b);  // same history, same code path: bit-identical
  BOOST_CHECK(fork == s);
}

BOOST_AUTO_TEST_CASE(state_bytes_round_trip) {
  const auto& m = dev_model();
  auto s = m.make_state();
  for (std::int32_t t : {1, 2, 3, 4}) m.step(t, s);
  const auto bytes = s.to_bytes();
  auto back = v7::State::from_bytes(bytes, m.make_state());
  BOOST_CHECK(back == s);
  BOOST_CHECK(m.step(9, back) == m.step(9, s));

  auto truncated = bytes;
  truncated.resize(bytes.size() - 4);
  BOOST_CHECK_THROW(v7::State::from_bytes(truncated, m.make_state()), rwkv::error);
  auto bad_magic = bytes;
  bad_magic[0] = std::byte{'X'};
  BOOST_CHECK_THROW(v7::State::from_bytes(bad_magic, m.make_state()), rwkv::error);

  const auto tiny = model_t::load(data_path("tiny-7v0.model.safetensors"));
  try {
    v7::State::from_bytes(bytes, tiny.make_state(), "saved.state");
    BOOST_FAIL("a state of another model was accepted");
  } catch (const rwkv::error& e) {
    BOOST_CHECK_EQUAL(e.file(), "saved.state");
    BOOST_CHECK(std::string(e.what()).find("the model is RWKV-7 with 12 layers") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(state_of_another_model_is_refused) {
  const auto tiny = model_t::load(data_path("tiny-7v0.model.safetensors"));
  auto s = dev_model().make_state();
  BOOST_CHECK_THROW(tiny.step(1, s), rwkv::error);
}

BOOST_AUTO_TEST_CASE(token_ids_out_of_range_are_refused) {
  const auto& m = dev_model();
  auto s = m.make_state();
  const auto before = s;
  try {
    m.step(static_cast<std::int32_t>(m.cfg().vocab), s);
    BOOST_FAIL("out-of-range token accepted");
  } catch (const rwkv::error& e) {
    BOOST_CHECK(std::string(e.what()).find("out of range") != std::string::npos);
  }
  BOOST_CHECK_THROW(m.step(-1, s), rwkv::error);
  const std::vector<std::int32_t> tokens{1, 2, 99999};
  BOOST_CHECK_THROW(m.prefill(tokens, s), rwkv::error);
  BOOST_CHECK_THROW(m.prefill(std::span<const std::int32_t>{}, s), rwkv::error);
  BOOST_CHECK(s == before);  // a refused call leaves the state untouched
}

BOOST_AUTO_TEST_CASE(head_size_mismatch_names_the_supported_size) {
  try {
    v7::Model<f32, cpu<>, 32>::load(data_path("v7-dev.model.safetensors"));
    BOOST_FAIL("head size 64 file accepted by a head-size-32 model");
  } catch (const rwkv::error& e) {
    BOOST_CHECK(std::string(e.what()).find("head size 64") != std::string::npos);
    BOOST_CHECK(std::string(e.what()).find("32") != std::string::npos);
    BOOST_CHECK_EQUAL(e.tensor(), "blocks.0.att.r_k");
  }
}

BOOST_AUTO_TEST_CASE(missing_file_is_a_clear_error) {
  try {
    model_t::load(data_path("no-such-model.safetensors"));
    BOOST_FAIL("missing file accepted");
  } catch (const rwkv::error& e) {
    BOOST_CHECK(e.file().find("no-such-model.safetensors") != std::string::npos);
  }
}

// Long context: 20,000 random tokens (sequence form in chunks, head only at the end of each chunk); logits and
// state stay finite, and at the end the step and sequence forms agree from the same saved state.
BOOST_AUTO_TEST_CASE(long_context_20000_tokens) {
  const auto& m = dev_model();
  std::mt19937 rng(2024);
  auto s = m.make_state();
  std::vector<float> last;
  for (int chunk = 0; chunk < 10; ++chunk) last = m.prefill(random_tokens(rng, 2000, m.cfg().vocab), s);
  for (float l : last) BOOST_REQUIRE(std::isfinite(l));
  for (const auto& layer : s.layers)
    layer.visit([](const std::string& name, const std::vector<float>& v) {
      for (float x : v) BOOST_REQUIRE_MESSAGE(std::isfinite(x), name);
    });
  const auto tail = random_tokens(rng, 20, m.cfg().vocab);
  auto by_step = s, by_sequence = s;
  const auto seq = m.forward(tail, by_sequence, logits_for::all);
  for (std::size_t t = 0; t < tail.size(); ++t) {
    const auto row = m.step(tail[t], by_step);
    const std::vector<float> want(seq.row(static_cast<Eigen::Index>(t)).data(),
                                  seq.row(static_cast<Eigen::Index>(t)).data() + seq.cols());
    check_close(row, want, rwkv::test::logits_tol, "after 20000 tokens, position " + std::to_string(t));
  }
  check_states_close(by_step, by_sequence, "after 20000 tokens");
}

// Long contexts for RWKV-5.2 and RWKV-6: 20,000 random tokens fed mostly by prefill in chunks of 2048 (only the
// last position of each chunk computes the head), with a few single steps in between. Every returned logit and
// the whole state stay finite, and at the end the step form and the sequence form, started from the same saved
// state, agree on a final chunk of 20 tokens (logits and state).
#define BOOST_TEST_MODULE v5_long_context
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <span>

#include <rwkv/v5.hpp>
#include <rwkv/v6.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;

constexpr std::size_t total_tokens = 20000;
constexpr std::size_t chunk = 2048;
constexpr std::size_t final_chunk = 20;

bool all_finite(std::span<const float> v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

template <class State>
bool state_finite(const State& s) {
  bool ok = true;
  for (const auto& l : s.layers) l.visit([&](const std::string&, const std::vector<float>& v) { ok &= all_finite(v); });
  return ok;
}

template <class Model>
void run_long_context(const std::string& file) {
  const auto start = std::chrono::steady_clock::now();
  const auto m = Model::load(data_path(file));
  std::mt19937 rng(20000);
  std::uniform_int_distribution<std::int32_t> dist(0, static_cast<std::int32_t>(m.cfg().vocab - 1));
  std::vector<std::int32_t> tokens(total_tokens);
  for (auto& t : tokens) t = dist(rng);

  const std::span<const std::int32_t> all(tokens);
  const std::size_t body = total_tokens - final_chunk;
  auto s = m.make_state();
  std::size_t pos = 0, steps = 0, chunks = 0;
  while (pos < body) {
    const auto n = std::min(chunk, body - pos);
    const auto logits = m.prefill(all.subspan(pos, n), s);
    BOOST_REQUIRE_MESSAGE(all_finite(logits), file << ": non-finite logits after position " << pos + n - 1);
    BOOST_REQUIRE_MESSAGE(state_finite(s), file << ": non-finite state after position " << pos + n - 1);
    pos += n;
    // Mostly prefill; after every third chunk one token goes through the RNN step.
    if (++chunks % 3 == 0 && pos < body) {
      BOOST_REQUIRE_MESSAGE(all_finite(m.step(tokens[pos], s)), file << ": non-finite logits at step " << pos);
      ++pos;
      ++steps;
    }
  }
  BOOST_REQUIRE_EQUAL(pos, body);
  BOOST_TEST_MESSAGE(file << ": " << chunks << " prefill chunks, " << steps << " single steps");

  // From the same saved state: the last 20 tokens one at a time vs as one sequence.
  const auto saved = s;
  const auto tail = all.subspan(body, final_chunk);
  auto s_step = saved;
  std::vector<float> step_logits;
  for (auto t : tail) {
    const auto row = m.step(t, s_step);
    step_logits.insert(step_logits.end(), row.begin(), row.end());
  }
  auto s_seq = saved;
  const auto seq = m.forward(tail, s_seq, logits_for::all);
  BOOST_CHECK(all_finite(step_logits));
  BOOST_CHECK(state_finite(s_step));
  check_close(rwkv::test::flat(seq), step_logits, rwkv::test::logits_tol, file + " final chunk: sequence vs step");
  for (std::size_t i = 0; i < s_seq.layers.size(); ++i) {
    check_close(s_seq.layers[i].att.shift, s_step.layers[i].att.shift, rwkv::test::state_tol, file + " att shift");
    check_close(s_seq.layers[i].att.wkv, s_step.layers[i].att.wkv, rwkv::test::state_tol, file + " wkv");
    check_close(s_seq.layers[i].ffn.shift, s_step.layers[i].ffn.shift, rwkv::test::state_tol, file + " ffn shift");
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  BOOST_TEST_MESSAGE(file << ": " << total_tokens << " tokens in " << took.count() << " s");
}

}  // namespace

BOOST_AUTO_TEST_CASE(v5_2_dev_20k_tokens) { run_long_context<v5::Model<f32>>("v5.2-dev.model.safetensors"); }

BOOST_AUTO_TEST_CASE(v6_dev_20k_tokens) { run_long_context<v6::Model<f32>>("v6-dev.model.safetensors"); }

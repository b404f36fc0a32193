// Batches of independent sequences: every slot gives what the same sequence gives alone, slots never leak
// into each other, and replacing or skipping a slot leaves the others untouched.
#define BOOST_TEST_MODULE batch
#include <boost/test/unit_test.hpp>

#include <random>

#include <rwkv/batch.hpp>
#include <rwkv/sample/sampler.hpp>
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

std::vector<std::int32_t> random_tokens(std::mt19937& rng, std::size_t n) {
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = static_cast<std::int32_t>(rng() % 512);
  return t;
}

std::vector<float> row(const row_matrix& m, Eigen::Index r) { return {m.row(r).data(), m.row(r).data() + m.cols()}; }

// A v7 time mixer that hides its batched path, to exercise the row-by-row fallback of rwkv::Block.
template <class P, class B, int N>
struct unbatched_time_mix : v7::TimeMix<P, B, N> {
  using v7::TimeMix<P, B, N>::TimeMix;
  void forward_batch() = delete;
};
template <class P, class B, int N>
struct unbatched_traits : v7::model_traits<P, B, N> {
  using block_type = rwkv::Block<unbatched_time_mix<P, B, N>, v7::ChannelMix<P, B>>;
};
using unbatched_model = LanguageModel<unbatched_traits<f32, cpu<>, 64>>;

template <class M>
void check_slots_match_solo_runs(const M& m, thread_pool* pool) {
  std::mt19937 rng(5);
  const std::vector<std::size_t> prompt_len{3, 17, 1, 40};
  const std::size_t B = prompt_len.size();
  Batch<M> batch(m, B);
  std::vector<typename M::state_type> solo(B, m.make_state());
  std::vector<std::vector<float>> last(B);
  for (std::size_t b = 0; b < B; ++b) {
    const auto prompt = random_tokens(rng, prompt_len[b]);
    last[b] = batch.prefill(b, prompt, pool);
    check_close(last[b], m.prefill(prompt, solo[b]), rwkv::test::logits_tol, "prefill slot " + std::to_string(b));
  }
  for (int step = 0; step < 12; ++step) {
    std::vector<slot_token> in;
    for (std::size_t b = 0; b < B; ++b) in.push_back({b, rwkv::argmax(last[b])});
    const auto logits = batch.step(in, pool);
    for (std::size_t b = 0; b < B; ++b) {
      const auto alone = m.step(in[b].token, solo[b]);
      check_close(row(logits, static_cast<Eigen::Index>(b)), alone, rwkv::test::logits_tol,
                  "step " + std::to_string(step) + " slot " + std::to_string(b));
      last[b] = alone;
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(each_slot_matches_the_sequence_run_alone) { check_slots_match_solo_runs(dev_model(), nullptr); }

BOOST_AUTO_TEST_CASE(each_slot_matches_with_threads) {
  thread_pool pool(2);
  check_slots_match_solo_runs(dev_model(), &pool);
}

BOOST_AUTO_TEST_CASE(row_by_row_fallback_for_mixers_without_batching) {
  const auto m = unbatched_model::load(data_path("v7-dev.model.safetensors"));
  check_slots_match_solo_runs(m, nullptr);
}

BOOST_AUTO_TEST_CASE(replacing_or_skipping_a_slot_leaves_the_others_untouched) {
  const auto& m = dev_model();
  std::mt19937 rng(9);
  Batch<model_t> batch(m, 3);
  for (std::size_t b = 0; b < 3; ++b) batch.prefill(b, random_tokens(rng, 5 + b));
  const auto before1 = batch.state(1);

  // Slot 1 sits out a step: its state must not change at all.
  const std::vector<slot_token> in{{0, 7}, {2, 9}};
  batch.step(in);
  BOOST_CHECK(batch.state(1) == before1);

  // Replace slot 0 with a new conversation; slots 1 and 2 continue as if nothing happened.
  auto solo2 = batch.state(2);
  batch.reset(0);
  batch.prefill(0, random_tokens(rng, 30));
  const std::vector<slot_token> all{{0, 1}, {1, 2}, {2, 3}};
  const auto logits = batch.step(all);
  auto solo1 = before1;
  check_close(row(logits, 1), m.step(2, solo1), rwkv::test::logits_tol, "slot 1 after replacing slot 0");
  check_close(row(logits, 2), m.step(3, solo2), rwkv::test::logits_tol, "slot 2 after replacing slot 0");

  // A saved slot state can be loaded into another slot.
  batch.load(2, batch.state(1));
  BOOST_CHECK(batch.state(2) == batch.state(1));
}

BOOST_AUTO_TEST_CASE(bad_batches_are_refused) {
  const auto& m = dev_model();
  Batch<model_t> batch(m, 2);
  const std::vector<slot_token> twice{{0, 1}, {0, 2}};
  BOOST_CHECK_THROW(batch.step(twice), rwkv::error);
  const std::vector<slot_token> out_of_range{{5, 1}};
  BOOST_CHECK_THROW(batch.step(out_of_range), rwkv::error);
  const std::vector<slot_token> bad_token{{0, 100000}};
  BOOST_CHECK_THROW(batch.step(bad_token), rwkv::error);
  const auto tiny = model_t::load(data_path("tiny-7v0.model.safetensors"));
  BOOST_CHECK_THROW(batch.load(0, tiny.make_state()), rwkv::error);
}

// RWKV-6 against the official reference (tests/data/v6-dev.golden.safetensors): step logits, sequence logits at
// every position, the step/sequence hand-over, the final state and BF16-stored weights; state-tuned checkpoints
// (`att.time_state`).
#define BOOST_TEST_MODULE v6_golden
#include <boost/test/unit_test.hpp>

#include <random>

#include <rwkv/v6.hpp>

#include "../v5/golden_common.hpp"

namespace {

using namespace rwkv;
using namespace rwkv::test::v56;
using rwkv::test::check_close;
using rwkv::test::data_path;
using rwkv::test::floats;

}  // namespace

BOOST_AUTO_TEST_CASE(v6_dev_f32) { check_all<v6::Model<f32>>("v6-dev"); }

BOOST_AUTO_TEST_CASE(v6_dev_bf16_file) { check_bf16<v6::Model<f32>, v6::Model<bf16_weights>>("v6-dev"); }

BOOST_AUTO_TEST_CASE(dimensions_from_shapes) {
  const auto m = v6::Model<f32>::load(data_path("v6-dev.model.safetensors"));
  const auto& c = m.cfg();
  BOOST_CHECK_EQUAL(c.n_layer, 2);
  BOOST_CHECK_EQUAL(c.n_embd, 128);
  BOOST_CHECK_EQUAL(c.n_head, 2);
  BOOST_CHECK_EQUAL(c.head_size, 64);
  BOOST_CHECK_EQUAL(c.dim_ffn, 448);
  BOOST_CHECK_EQUAL(c.vocab, 512);
  BOOST_CHECK_EQUAL(c.d_mix, 16);
  BOOST_CHECK_EQUAL(c.d_decay, 24);
  BOOST_CHECK_EQUAL(std::string(v6::Model<f32>::version), "6");
}

// time_state on layer 1 only: layer 0 starts from zeros, layer 1 from time_state transposed to [h][key][value].
BOOST_AUTO_TEST_CASE(time_state_is_the_initial_wkv_state) {
  using model_t = v6::Model<f32>;
  const auto plain = model_t::load(data_path("v6-dev.model.safetensors"));
  const auto H = plain.cfg().n_head, N = plain.cfg().head_size;
  edited_checkpoint e("v6-dev.model.safetensors");
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.f, 0.5f);
  std::vector<float> x(static_cast<std::size_t>(H * N * N));  // [h][value][key]
  for (auto& v : x) v = dist(rng);
  e.add("blocks.1.att.time_state", {H, N, N}, x);
  const auto m = e.load<model_t>();

  auto want_state = plain.make_state();
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t a = 0; a < N; ++a)
      for (std::int64_t b = 0; b < N; ++b)
        want_state.layers[1].att.wkv[static_cast<std::size_t>((h * N + b) * N + a)] =
            x[static_cast<std::size_t>((h * N + a) * N + b)];
  auto s = m.make_state();
  BOOST_REQUIRE(s == want_state);

  const golden_case g("v6-dev");
  auto s_plain = want_state;
  const auto got = m.forward(g.tokens, s, logits_for::all);
  const auto want = plain.forward(g.tokens, s_plain, logits_for::all);
  check_close(rwkv::test::flat(got), rwkv::test::flat(want), rwkv::test::logits_tol, "time_state vs plain+state");
  BOOST_CHECK(s == s_plain);
  BOOST_CHECK_GT(max_abs_diff(rwkv::test::flat(got), floats(g.golden.at("logits_seq"))), 1e-2);

  // A time_state of the wrong shape is refused, naming the tensor.
  edited_checkpoint bad("v6-dev.model.safetensors");
  bad.add("blocks.0.att.time_state", {H, N, N - 1}, std::vector<float>(static_cast<std::size_t>(H * N * (N - 1))));
  try {
    bad.load<model_t>();
    BOOST_FAIL("a time_state of the wrong shape was accepted");
  } catch (const rwkv::error& err) {
    BOOST_CHECK_EQUAL(err.tensor(), "blocks.0.att.time_state");
  }
}

BOOST_AUTO_TEST_CASE(head_size_mismatch_names_the_supported_size) {
  try {
    v6::Model<f32, cpu<>, 128>::load(data_path("v6-dev.model.safetensors"));
    BOOST_FAIL("head size 64 file accepted by a head-size-128 model");
  } catch (const rwkv::error& e) {
    BOOST_CHECK(std::string(e.what()).find("head size 64") != std::string::npos);
    BOOST_CHECK(std::string(e.what()).find("compiled for head size 128") != std::string::npos);
    BOOST_CHECK_EQUAL(e.tensor(), "blocks.0.att.time_faaaa");
  }
}

BOOST_AUTO_TEST_CASE(other_generations_are_refused) {
  for (const char* f : {"v5.2-dev.model.safetensors", "v7-dev.model.safetensors"})
    BOOST_CHECK_THROW(v6::Model<f32>::load(data_path(f)), rwkv::error);
}

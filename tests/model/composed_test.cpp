// The composition API (issue #4): models assembled from standard blocks reproduce the built-in ones bit for bit,
// hybrid and mixed-version models run both forms and keep their state as values, user mixers plug in with their own
// tensor names and context entries, taps see and change the residual stream, and weights can start from scratch.
#define BOOST_TEST_MODULE composed
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <random>

#include <rwkv/init/builder.hpp>
#include <rwkv/model/composed_model.hpp>
#include <rwkv/v4.hpp>
#include <rwkv/v5.hpp>
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

#include "../../examples/softplus_decay_mix.hpp"
#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::data_path;

std::vector<std::int32_t> random_tokens(std::uint32_t seed, std::size_t n, std::int64_t vocab) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

// Sequence form == fold of the step form, and the state after both agrees.
template <class M>
void check_step_equals_sequence(const M& m, const std::vector<std::int32_t>& tokens, const std::string& what) {
  auto seq_state = m.make_state();
  const auto seq = m.forward(tokens, seq_state, logits_for::all);
  auto step_state = m.make_state();
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto l = m.step(tokens[t], step_state);
    rwkv::test::check_close(l, rwkv::test::flat(row_matrix(seq.row(static_cast<Eigen::Index>(t)))),
                            rwkv::test::logits_tol, what + " token " + std::to_string(t));
  }
  BOOST_REQUIRE_EQUAL(seq_state.layers.size(), step_state.layers.size());
  for (std::size_t i = 0; i < seq_state.layers.size(); ++i) {
    std::vector<std::vector<float>> a, b;
    seq_state.layers[i].visit([&](const std::string&, const std::vector<float>& v) { a.push_back(v); });
    step_state.layers[i].visit([&](const std::string&, const std::vector<float>& v) { b.push_back(v); });
    BOOST_REQUIRE_EQUAL(a.size(), b.size());
    for (std::size_t k = 0; k < a.size(); ++k)
      rwkv::test::check_close(a[k], b[k], rwkv::test::state_tol, what + " state layer " + std::to_string(i));
  }
}

// to_bytes / from_bytes restores the state exactly, and continuing from it gives the same logits.
template <class M>
void check_state_round_trip(const M& m, const std::vector<std::int32_t>& tokens) {
  auto s = m.make_state();
  m.prefill(std::span(tokens).first(tokens.size() / 2), s);
  const auto restored = M::state_type::from_bytes(s.to_bytes(), m.make_state());
  BOOST_TEST((restored == s));
  auto a = s, b = restored;
  const auto rest = std::span(tokens).subspan(tokens.size() / 2);
  BOOST_TEST((m.prefill(rest, a) == m.prefill(rest, b)));
  BOOST_TEST((a == b));
}

const init::dims small{.n_layer = 4, .n_embd = 64, .vocab = 97, .head_size = 16};

// RWKV-6 blocks below RWKV-7 blocks.
using hybrid_t = HybridModel<f32, cpu<>, v6::Block<f32, cpu<>, 16>, v7::Block<f32, cpu<>, 16>>;

hybrid_t make_hybrid() {
  init::builder b(small, 7, init::style::exercised);
  init::model<v6::Block<f32, cpu<>, 16>, v7::Block<f32, cpu<>, 16>>(b, [](std::int64_t i) { return i < 2 ? 0u : 1u; });
  auto r = b.reader();
  return hybrid_t::from_reader(r);
}

}  // namespace

BOOST_AUTO_TEST_CASE(v7_assembled_from_blocks_is_bit_identical_to_the_built_in_model) {
  const auto path = data_path("v7-dev.model.safetensors");
  const auto builtin = v7::Model<>::load(path);
  const auto composed = ComposedModel<v7::Block<>>::load(path);
  const auto hybrid = HybridModel<f32, cpu<>, v6::Block<>, v7::Block<>>::load(path);
  const io::safetensors_file golden = io::safetensors_file::open(data_path("v7-dev.golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));

  for (std::size_t i = 0; i < hybrid.blocks().size(); ++i) BOOST_TEST(hybrid.blocks()[i].index() == 1u);
  BOOST_TEST(composed.parameter_count() == builtin.parameter_count());

  auto s0 = builtin.make_state();
  auto s1 = composed.make_state();
  auto s2 = hybrid.make_state();
  const auto want = builtin.forward(tokens, s0, logits_for::all);
  BOOST_TEST((composed.forward(tokens, s1, logits_for::all) == want));
  BOOST_TEST((hybrid.forward(tokens, s2, logits_for::all) == want));
  auto t0 = builtin.make_state();
  auto t1 = composed.make_state();
  for (auto t : tokens) BOOST_TEST((builtin.step(t, t0) == composed.step(t, t1)));
  // The golden logits themselves, through the composed model.
  rwkv::test::check_close(rwkv::test::flat(want), rwkv::test::floats(golden.at("logits_seq")), rwkv::test::logits_tol,
                          "composed v7-dev logits_seq");
}

BOOST_AUTO_TEST_CASE(hybrid_v6_v7_model_runs_both_forms_and_round_trips_its_state) {
  const auto m = make_hybrid();
  BOOST_REQUIRE_EQUAL(m.blocks().size(), 4u);
  BOOST_TEST(m.blocks()[0].index() == 0u);
  BOOST_TEST(m.blocks()[1].index() == 0u);
  BOOST_TEST(m.blocks()[2].index() == 1u);
  BOOST_TEST(m.blocks()[3].index() == 1u);
  const auto tokens = random_tokens(1, 40, small.vocab);
  check_step_equals_sequence(m, tokens, "hybrid");
  check_state_round_trip(m, tokens);
  // The chunked WKV form (RWKV-6 and RWKV-7 layers alike) gives the serial result.
  auto a = m.make_state(), b = m.make_state();
  rwkv::test::check_close(m.prefill(tokens, a, nullptr, form::chunked), m.prefill(tokens, b, nullptr, form::serial),
                          rwkv::test::logits_tol, "hybrid chunked");
  // Batched decoding over the variant states is the per-sequence step.
  auto x = m.make_state(), y = m.make_state();
  m.prefill(std::span(tokens).first(5), y);
  std::vector<hybrid_t::state_type*> states{&x, &y};
  const std::int32_t next[] = {3, 4};
  auto xs = x, ys = y;
  const auto batch = m.forward_batch(next, states);
  rwkv::test::check_close(m.step(3, xs), rwkv::test::flat(row_matrix(batch.row(0))), rwkv::test::logits_tol, "batch 0");
  rwkv::test::check_close(m.step(4, ys), rwkv::test::flat(row_matrix(batch.row(1))), rwkv::test::logits_tol, "batch 1");
}

BOOST_AUTO_TEST_CASE(a_state_of_another_layout_is_refused) {
  const auto m = make_hybrid();
  init::builder b(small, 7, init::style::exercised);
  init::model<v6::Block<f32, cpu<>, 16>, v7::Block<f32, cpu<>, 16>>(b, [](std::int64_t i) { return i < 1 ? 0u : 1u; });
  auto r = b.reader();
  const auto other = hybrid_t::from_reader(r);  // one RWKV-6 layer, three RWKV-7
  auto s = other.make_state();
  BOOST_CHECK_THROW(m.step(1, s), rwkv::error);
  BOOST_CHECK_THROW(hybrid_t::state_type::from_bytes(s.to_bytes(), m.make_state()), rwkv::error);
}

BOOST_AUTO_TEST_CASE(v7_time_mix_with_v4_channel_mix) {
  using block_t = Block<v7::TimeMix<f32, cpu<>, 16>, v4::ChannelMix<f32>>;
  init::builder b(small, 3, init::style::exercised);
  init::model<block_t>(b);
  auto r = b.reader();
  const auto m = ComposedModel<block_t>::from_reader(r);
  const auto tokens = random_tokens(2, 33, small.vocab);
  check_step_equals_sequence(m, tokens, "v7 att + v4 ffn");
  check_state_round_trip(m, tokens);
}

BOOST_AUTO_TEST_CASE(a_layer_no_block_type_matches_is_named) {
  init::builder b(small, 3, init::style::exercised);
  init::model<v4::Block<>>(b);
  auto r = b.reader();
  try {
    (void)HybridModel<f32, cpu<>, v6::Block<f32, cpu<>, 16>, v7::Block<f32, cpu<>, 16>>::from_reader(r);
    BOOST_FAIL("an RWKV-4 checkpoint loaded as a v6/v7 hybrid");
  } catch (const rwkv::error& e) {
    BOOST_TEST(std::string(e.what()).find("none of the model's block types matches") != std::string::npos);
    BOOST_TEST(e.tensor() == "blocks.0.");
  }
}

// --- A user mixer: RWKV-4's channel mix with a learned output scale, read from its own tensor name, that also
// publishes its hidden activation's mean through the context for the next layer to read.
struct ScaledChannelMix {
  using state_type = v4::ChannelMixState;
  using config_type = v4::Config;

  ScaledChannelMix(io::weight_reader& r, const v4::Config& c, std::int64_t layer) : inner_(r, c, layer), layer_(layer) {
    scale_ = r.vector(block_prefix(layer) + "ffn.my_scale", c.n_embd);
  }
  static void init(init::builder& b, std::int64_t layer) {
    v4::init_channel_mix(b, layer);
    b.fill(block_prefix(layer) + "ffn.my_scale", {b.shape().n_embd}, [](std::int64_t c) { return 0.5 + 0.01 * c; });
  }
  state_type make_state() const { return inner_.make_state(); }
  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    inner_.forward(x, s, ctx, out);
    for (Eigen::Index c = 0; c < out.cols(); ++c) out.col(c) *= scale_[static_cast<std::size_t>(c)];
    auto& seen = ctx.entries["layers_seen"];
    if (layer_ == 0) seen = row_matrix::Zero(1, 1);
    seen(0, 0) += 1;  // a cross-layer value only this forward call sees
    ctx.entries["last_layer"] = row_matrix::Constant(1, 1, static_cast<float>(layer_));
  }

 private:
  v4::ChannelMix<f32> inner_;
  std::int64_t layer_;
  std::vector<float> scale_;
};

static_assert(ChannelMixer<ScaledChannelMix>);
static_assert(!TimeMixer<int>);
static_assert(StateFor<v7::State, v7::Model<>>);
static_assert(!StateFor<v6::State, v7::Model<>>);
static_assert(BlockLike<v7::Block<>>);

BOOST_AUTO_TEST_CASE(user_mixer_with_its_own_tensors_and_context_entries) {
  using block_t = Block<v7::TimeMix<f32, cpu<>, 16>, ScaledChannelMix>;
  init::builder b(small, 5, init::style::exercised);
  init::model<block_t>(b);
  auto r = b.reader();
  const auto m = ComposedModel<block_t>::from_reader(r);
  const auto tokens = random_tokens(3, 30, small.vocab);
  check_step_equals_sequence(m, tokens, "user mixer");
  check_state_round_trip(m, tokens);

  // Every layer ran once in this call and saw the previous layers' entry.
  context ctx;
  auto s = m.make_state();
  row_matrix x = m.embed(tokens);
  for (std::size_t i = 0; i < m.blocks().size(); ++i) m.blocks()[i].forward(x, s.layers[i], ctx);
  BOOST_TEST(ctx.entries.at("layers_seen")(0, 0) == static_cast<float>(small.n_layer));
  BOOST_TEST(ctx.entries.at("last_layer")(0, 0) == static_cast<float>(small.n_layer - 1));
  // The scale is read from the file: without it the model does not load.
  init::builder missing(small, 5, init::style::exercised);
  init::model<Block<v7::TimeMix<f32, cpu<>, 16>, v4::ChannelMix<f32>>>(missing);
  auto r2 = missing.reader();
  BOOST_CHECK_THROW(ComposedModel<block_t>::from_reader(r2), rwkv::error);
}

// A user time mixer (the one examples/custom_block.cpp uses), saved under its own tensor names and loaded back.
BOOST_AUTO_TEST_CASE(user_time_mixer_from_a_safetensors_file) {
  using block_t = Block<SoftplusDecayMix<16>, v7::ChannelMix<>>;
  init::builder b(small, 9, init::style::exercised);
  init::model<block_t>(b);
  const auto path = std::filesystem::temp_directory_path() / "rwkvpp_composed_test_softplus.safetensors";
  b.save(path);
  const auto m = ComposedModel<block_t>::load(path);
  std::filesystem::remove(path);
  BOOST_TEST(m.parameter_count() > 0);
  const auto tokens = random_tokens(8, 25, small.vocab);
  check_step_equals_sequence(m, tokens, "softplus decay mixer");
  check_state_round_trip(m, tokens);
  // Batched decoding falls back to row by row for a mixer without forward_batch, with the same results.
  auto x = m.make_state(), y = m.make_state();
  m.prefill(std::span(tokens).first(4), x);
  std::vector<ComposedModel<block_t>::state_type*> states{&x, &y};
  const std::int32_t next[] = {1, 2};
  auto xs = x, ys = y;
  const auto batch = m.forward_batch(next, states);
  rwkv::test::check_close(m.step(1, xs), rwkv::test::flat(row_matrix(batch.row(0))), rwkv::test::logits_tol, "row 0");
  rwkv::test::check_close(m.step(2, ys), rwkv::test::flat(row_matrix(batch.row(1))), rwkv::test::logits_tol, "row 1");
}

// --- Taps.
struct recorder {
  std::vector<row_matrix> inputs, outputs;
  std::vector<v7::LayerState> states;
  void block_input(std::int64_t, row_matrix& x) { inputs.push_back(x); }
  void block_output(std::int64_t, row_matrix& x) { outputs.push_back(x); }
  void layer_state(std::int64_t, v7::LayerState& s) { states.push_back(s); }
};

struct ablate_time_mix {
  std::int64_t layer;
  void time_mix_output(std::int64_t l, row_matrix& out) {
    if (l == layer) out.setZero();
  }
};

BOOST_AUTO_TEST_CASE(taps_see_the_residual_stream_and_states_and_can_ablate) {
  const auto m = v7::Model<>::load(data_path("v7-dev.model.safetensors"));
  const auto tokens = random_tokens(4, 12, m.cfg().vocab);
  auto s0 = m.make_state(), s1 = m.make_state();
  const auto plain = m.forward(tokens, s0, logits_for::all);
  recorder rec;
  const auto tapped = m.forward_with(rec, tokens, s1, logits_for::all);
  BOOST_TEST((tapped == plain));  // read-only taps change nothing, bit for bit
  BOOST_TEST((s1 == s0));
  const auto L = static_cast<std::size_t>(m.cfg().n_layer);
  BOOST_REQUIRE_EQUAL(rec.inputs.size(), L);
  BOOST_REQUIRE_EQUAL(rec.outputs.size(), L);
  BOOST_REQUIRE_EQUAL(rec.states.size(), L);
  BOOST_TEST((rec.inputs[0] == m.embed(tokens)));
  for (std::size_t i = 1; i < L; ++i) BOOST_TEST((rec.inputs[i] == rec.outputs[i - 1]));
  BOOST_TEST((m.head(rec.outputs.back(), 0) == plain));  // the final stream is what the head reads
  for (std::size_t i = 0; i < L; ++i) BOOST_TEST((rec.states[i] == s1.layers[i]));

  ablate_time_mix cut{1};
  auto s2 = m.make_state();
  const auto ablated = m.forward_with(cut, tokens, s2, logits_for::all);
  BOOST_TEST(ablated.allFinite());
  BOOST_TEST((ablated - plain).cwiseAbs().maxCoeff() > 1e-3f);
}

// --- Initialisation from scratch.
BOOST_AUTO_TEST_CASE(official_initialisation_follows_the_spec) {
  init::builder b(small, 11);
  init::model<v7::Block<f32, cpu<>, 16>>(b);
  auto r = b.reader();
  const auto m = v7::Model<f32, cpu<>, 16>::from_reader(r);
  auto values = [&](const std::string& n) { return rwkv::test::floats(r.peek(n)); };
  // Constants and ramps of spec/v7.md "Initialization", at a few points, computed here from the formulas.
  const auto L = small.n_layer, C = small.n_embd;
  for (std::int64_t i = 0; i < L; ++i) {
    const auto p = block_prefix(i) + "att.";
    BOOST_TEST(values(p + "k_a")[5] == 1.02f);
    BOOST_TEST(values(p + "r_k")[3] == -0.04f);
    BOOST_TEST(values(p + "ln_x.weight")[0] == static_cast<float>(std::pow((1.0 + i) / L, 0.7)));
    const double r1 = 1.0 - static_cast<double>(i) / L;
    BOOST_TEST(values(p + "x_r")[10] == static_cast<float>(1 - std::pow(10.0 / C, 0.2 * r1)));
    BOOST_TEST(values(p + "v0")[0] == static_cast<float>(0.73 + 0.4 * 0.5));
    for (float w : values(p + "w1")) BOOST_TEST(w == 0.f);
    for (float w : values(p + "output.weight")) BOOST_TEST(w == 0.f);
    // w2: orthogonal rows with gain 0.1 (Dw < C).
    const auto w2 = values(p + "w2");
    const auto D = static_cast<std::int64_t>(w2.size()) / C;
    Eigen::Map<const row_matrix> W(w2.data(), D, C);
    const Eigen::MatrixXf gram = W * W.transpose();
    BOOST_TEST((gram - 0.01f * Eigen::MatrixXf::Identity(D, D)).cwiseAbs().maxCoeff() < 1e-5f);
  }
  // With att.output and ffn.value at zero every block adds nothing: the stream leaving the last block is ln0(emb).
  struct last_output {
    row_matrix x;
    void block_output(std::int64_t, row_matrix& out) { x = out; }
  } t;
  const auto tokens = random_tokens(5, 6, small.vocab);
  auto s = m.make_state();
  m.forward_with(t, tokens, s);
  BOOST_TEST((t.x == m.embed(tokens)));
}

BOOST_AUTO_TEST_CASE(every_version_initialises_and_loads) {
  auto run = [](auto tag, init::style st) {
    using block_t = typename decltype(tag)::type;
    init::builder b(small, 1, st);
    init::model<block_t>(b);
    auto r = b.reader();
    const auto m = ComposedModel<block_t>::from_reader(r);
    auto s = m.make_state();
    const auto l = m.prefill(random_tokens(6, 8, small.vocab), s);
    for (float v : l) BOOST_REQUIRE(std::isfinite(v));
    return l;
  };
  for (auto st : {init::style::official, init::style::exercised}) {
    run(std::type_identity<v4::Block<>>{}, st);
    run(std::type_identity<v5::Block<f32, cpu<>, 16>>{}, st);
    run(std::type_identity<v6::Block<f32, cpu<>, 16>>{}, st);
    run(std::type_identity<v7::Block<f32, cpu<>, 16>>{}, st);
  }
  // Built-in model types load what init writes (version detection included).
  init::builder b(small, 2);
  init::model<v6::Block<f32, cpu<>, 16>>(b);
  auto r = b.reader();
  BOOST_TEST((v6::Model<f32, cpu<>, 16>::from_reader(r).cfg().n_layer == small.n_layer));
}

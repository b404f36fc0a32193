// RWKV-7a (DeepEmbed) and RWKV-7b (DeepEmbedAttention) against the official references
// (tests/data/v7a-dev.*, v7b-dev.*; spec/v7-variants.md): step logits, sequence logits at every position, the
// step/sequence hand-over, the final state, batched decoding, every weight precision, and detection.
#define BOOST_TEST_MODULE v7_variants
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <filesystem>

#include <rwkv/model/composed_model.hpp>
#include <rwkv/state_file.hpp>
#include <rwkv/v7a.hpp>
#include <rwkv/v7b.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;
using rwkv::test::floats;

using rwkv::test::golden_case;

// The reference's state entries of every layer: att shift, WKV [H][value][key], ffn shift; for 7b then the token
// ids (3L), the key and value latent caches of layer i (3L+1+2i, 3L+2+2i) and its query shift (3L+25+i).
template <class S>
void check_v7_state(const S& st, const golden_case& g, const std::string& what) {
  const std::size_t L = st.layers.size();
  for (std::size_t i = 0; i < L; ++i) {
    const auto& l = st.layers[i];
    check_close(l.att.shift, g.state(3 * i), rwkv::test::state_tol, what + " att shift");
    check_close(l.att.wkv, g.state(3 * i + 1), rwkv::test::state_tol, what + " wkv");
    check_close(l.ffn.shift, g.state(3 * i + 2), rwkv::test::state_tol, what + " ffn shift");
    if constexpr (requires { l.branch.tokens; }) {
      const auto tokens = rwkv::test::ints(g.golden.at("state." + std::to_string(3 * L)));
      BOOST_REQUIRE_EQUAL(l.branch.tokens.size(), tokens.size());
      for (std::size_t p = 0; p < tokens.size(); ++p) BOOST_TEST(l.branch.tokens[p] == static_cast<float>(tokens[p]));
      check_close(l.branch.key_latent, g.state(3 * L + 1 + 2 * i), rwkv::test::state_tol, what + " key latents");
      check_close(l.branch.value_latent, g.state(3 * L + 2 + 2 * i), rwkv::test::state_tol, what + " value latents");
      check_close(l.branch.q_prev, g.state(3 * L + 25 + i), rwkv::test::state_tol, what + " query shift");
    }
  }
}

template <class M>
void check_forms(const M& model, const golden_case& g, rwkv::test::tolerance tol) {
  BOOST_REQUIRE_EQUAL(model.cfg().vocab, g.V);
  auto st = model.make_state();
  for (std::size_t t = 0; t < g.tokens.size(); ++t)
    check_close(model.step(g.tokens[t], st), g.row("logits", t), tol, g.name + " step " + std::to_string(t));
  check_v7_state(st, g, g.name + " state after steps");

  for (auto f : {form::serial, form::chunked}) {
    auto s = model.make_state();
    const auto seq = model.forward(g.tokens, s, logits_for::all, nullptr, f);
    check_close(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), tol, g.name + " logits_seq");
    check_v7_state(s, g, g.name + " state after the sequence");
  }
  auto s2 = model.make_state();
  check_close(model.prefill(g.tokens, s2), floats(g.golden.at("logits_seq_last")), tol, g.name + " seq last");

  auto sp = model.make_state();
  const std::span<const std::int32_t> all(g.tokens);
  model.prefill(all.first(10), sp);
  std::vector<float> last;
  for (std::size_t t = 10; t < g.tokens.size(); ++t) last = model.step(g.tokens[t], sp);
  check_close(last, floats(g.golden.at("logits_split")), tol, g.name + " logits_split");
}

// Batched decoding: three sequences, each a rotation of the golden tokens, stepped together, give each sequence's
// own step logits (no row sees another's token or state).
template <class M>
void check_batch(const M& model, const golden_case& g, rwkv::test::tolerance tol) {
  const std::size_t B = 3, T = g.tokens.size();
  std::vector<typename M::state_type> states(B, model.make_state()), alone(B, model.make_state());
  std::vector<typename M::state_type*> ptrs;
  for (auto& s : states) ptrs.push_back(&s);
  for (std::size_t t = 0; t < 12; ++t) {
    std::vector<std::int32_t> tokens;
    for (std::size_t b = 0; b < B; ++b) tokens.push_back(g.tokens[(t + 5 * b) % T]);
    const auto logits = model.forward_batch(tokens, ptrs);
    for (std::size_t b = 0; b < B; ++b) {
      const auto want = model.step(tokens[b], alone[b]);
      const std::vector<float> got(logits.row(static_cast<Eigen::Index>(b)).data(),
                                   logits.row(static_cast<Eigen::Index>(b)).data() + logits.cols());
      check_close(got, want, tol, g.name + " batch row " + std::to_string(b) + " token " + std::to_string(t));
    }
  }
  // The same states (within rounding: a batch multiplies matrices where a step multiplies matrix and vector).
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t i = 0; i < states[b].layers.size(); ++i) {
      std::vector<std::vector<float>> want;
      alone[b].layers[i].visit([&](const std::string&, const std::vector<float>& v) { want.push_back(v); });
      std::size_t k = 0;
      states[b].layers[i].visit([&](const std::string& n, const std::vector<float>& v) {
        BOOST_REQUIRE_LT(k, want.size());
        check_close(v, want[k++], rwkv::test::state_tol, g.name + " batch state " + n);
      });
      BOOST_TEST(k == want.size());
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v7a_dev_f32) {
  const golden_case g("v7a-dev");
  const auto model = v7a::Model<f32>::load(data_path("v7a-dev.model.safetensors"));
  check_forms(model, g, rwkv::test::logits_tol);
  check_batch(model, g, rwkv::test::logits_tol);
}

BOOST_AUTO_TEST_CASE(v7b_dev_f32) {
  const golden_case g("v7b-dev");
  const auto model = v7b::Model<f32>::load(data_path("v7b-dev.model.safetensors"));
  check_forms(model, g, rwkv::test::logits_tol);
  check_batch(model, g, rwkv::test::logits_tol);
}

// ---- detection and refusal ----------------------------------------------------------------------------------------

namespace {

std::vector<io::tensor_to_write> tensors_of(const std::string& file) {
  const auto f = io::safetensors_file::open(data_path(file));
  std::vector<io::tensor_to_write> out;
  for (const auto& t : f.tensors()) out.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
  return out;
}

void drop(std::vector<io::tensor_to_write>& ts, const std::string& name) {
  const auto before = ts.size();
  std::erase_if(ts, [&](const io::tensor_to_write& t) { return t.name == name; });
  BOOST_REQUIRE_EQUAL(ts.size() + 1, before);
}

void replace(std::vector<io::tensor_to_write>& ts, const std::string& name, std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  const std::vector<float> values(static_cast<std::size_t>(n), 0.01f);
  for (auto& t : ts)
    if (t.name == name) t = io::tensor_to_write::from<float>(name, std::move(shape), std::span<const float>(values));
}

// The model M read from in-memory tensors, with `options`.
template <class M>
M from_tensors(const std::vector<io::tensor_to_write>& ts, io::load_options options = {}) {
  const auto st = io::safetensors_file::from_bytes(io::to_safetensors_bytes(ts), "crafted.safetensors");
  io::weight_reader r(st.path(), st.tensors(), st.owner(), options);
  return M::from_reader(r);
}

using rwkv::test::expect_error;

}  // namespace

BOOST_AUTO_TEST_CASE(detected_from_the_tensors) {
  auto detect = [](const std::string& file) {
    return detect_version(io::safetensors_file::open(data_path(file)).tensors(), file);
  };
  BOOST_TEST((detect("v7-dev.model.safetensors") == arch_version::v7));
  BOOST_TEST((detect("v7a-dev.model.safetensors") == arch_version::v7a));
  BOOST_TEST((detect("v7b-dev.model.safetensors") == arch_version::v7b));
  BOOST_TEST(version_name(arch_version::v7a) == std::string("7a"));
  BOOST_TEST(version_name(arch_version::v7b) == std::string("7b"));
  // One DEA tensor is enough to make a file 7b; one DeepEmbed tensor makes it (at least) 7a.
  auto ts = tensors_of("v7-dev.model.safetensors");
  ts.push_back(io::tensor_to_write::from<float>("blocks.1.ffn.s0", {4}, std::vector<float>(4)));
  auto views = io::safetensors_file::from_bytes(io::to_safetensors_bytes(ts), "x").tensors();
  BOOST_TEST((detect_version(views) == arch_version::v7a));
  ts.push_back(io::tensor_to_write::from<float>("blocks.0.qkv.k1", {4}, std::vector<float>(4)));
  views = io::safetensors_file::from_bytes(io::to_safetensors_bytes(ts), "x").tensors();
  BOOST_TEST((detect_version(views) == arch_version::v7b));
}

// A variant's file is never run as another version with tensors ignored (the pip package runs a 7b file as 7a, and
// a 7a file as plain 7 when its switch is off: spec/v7-variants.md §0).
BOOST_AUTO_TEST_CASE(each_model_type_refuses_the_other_variants) {
  const auto v7a_file = data_path("v7a-dev.model.safetensors"), v7b_file = data_path("v7b-dev.model.safetensors");
  expect_error([&] { v7::Model<f32>::load(v7a_file); }, {"RWKV-7a checkpoint, not RWKV-7", "rwkv::v7a::Model"});
  expect_error([&] { v7::Model<f32>::load(v7b_file); }, {"RWKV-7b checkpoint, not RWKV-7", "rwkv::v7b::Model"});
  expect_error([&] { v7a::Model<f32>::load(v7b_file); }, {"RWKV-7b checkpoint, not RWKV-7a"});
  expect_error([&] { v7b::Model<f32>::load(v7a_file); }, {"RWKV-7a checkpoint, not RWKV-7b"});
  expect_error([&] { v7a::Model<f32>::load(data_path("v7-dev.model.safetensors")); },
               {"RWKV-7 checkpoint, not RWKV-7a", "rwkv::v7::Model"});
}

// Partial tensor sets are refused naming the missing tensor; unsupported widths of the hard-coded constants with a
// sentence (spec/v7-variants.md §1).
BOOST_AUTO_TEST_CASE(partial_sets_and_unsupported_widths) {
  {
    auto ts = tensors_of("v7a-dev.model.safetensors");
    drop(ts, "blocks.1.ffn.s2");
    expect_error([&] { from_tensors<v7a::Model<f32>>(ts); }, {"missing tensor", "RWKV-7a"}, "crafted.safetensors",
                 "blocks.1.ffn.s2");
  }
  {
    auto ts = tensors_of("v7b-dev.model.safetensors");
    drop(ts, "blocks.0.qkv.lnv.bias");
    expect_error([&] { from_tensors<v7b::Model<f32>>(ts); }, {"missing tensor", "DeepEmbedAttention"},
                 "crafted.safetensors", "blocks.0.qkv.lnv.bias");
  }
  {
    auto ts = tensors_of("v7b-dev.model.safetensors");  // 7b needs DeepEmbed too
    drop(ts, "blocks.1.ffn.s_emb.weight");
    expect_error([&] { from_tensors<v7b::Model<f32>>(ts); }, {"missing tensor"}, "crafted.safetensors",
                 "blocks.1.ffn.s_emb.weight");
  }
  {
    auto ts = tensors_of("v7a-dev.model.safetensors");  // DeepEmbed rank 16: tables of 16 x 16
    for (std::int64_t i = 0; i < 2; ++i) {
      const auto p = "blocks." + std::to_string(i) + ".ffn.";
      replace(ts, p + "s1", {128, 16});
      replace(ts, p + "s2", {16, 512});
      replace(ts, p + "s_emb.weight", {256, 256});
      replace(ts, p + "s_emb_x.weight", {256, 128});
    }
    expect_error([&] { from_tensors<v7a::Model<f32>>(ts); }, {"DeepEmbed rank 16 is not supported"},
                 "crafted.safetensors", "blocks.0.ffn.s1");
  }
  {
    auto ts = tensors_of("v7b-dev.model.safetensors");  // DEA query width 128
    replace(ts, "blocks.0.qkv.qq.weight", {128, 128});
    expect_error([&] { from_tensors<v7b::Model<f32>>(ts); }, {"DEA query width 128 is not supported"},
                 "crafted.safetensors", "blocks.0.qkv.qq.weight");
  }
  {
    auto ts = tensors_of("v7b-dev.model.safetensors");  // DEA latent width 16
    replace(ts, "blocks.0.qkv.k1", {128, 16});
    expect_error([&] { from_tensors<v7b::Model<f32>>(ts); }, {"DEA latent width 16 is not supported"},
                 "crafted.safetensors", "blocks.0.qkv.k1");
  }
}

// ---- the 7b state: a value that grows ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v7b_state_grows_by_one_row_per_token) {
  const auto model = v7b::Model<f32>::load(data_path("v7b-dev.model.safetensors"));
  const golden_case g("v7b-dev");
  auto s = model.make_state();
  BOOST_TEST(s.layers[0].branch.positions() == 0);
  model.prefill(std::span<const std::int32_t>(g.tokens).first(5), s);
  model.step(g.tokens[5], s);
  for (const auto& l : s.layers) {
    BOOST_TEST(l.branch.positions() == 6);
    BOOST_TEST(l.branch.key_latent.size() == 6u * 32);
    BOOST_TEST(l.branch.value_latent.size() == 6u * 32);
    BOOST_TEST(l.branch.derived.keys.size() == 6u * 256);
    BOOST_TEST(l.branch.derived.values.size() == 6u * 128);
  }
  // A state of another length is still this model's state (same_shape accepts growing tensors).
  auto fresh = model.make_state();
  BOOST_TEST(fresh.same_shape(s));
  BOOST_TEST(!(fresh == s));
}

// Copy, compare, bytes and files: a state read back equals the original, and continuing from it (its keys and
// values rebuilt from the latents) gives the logits of continuing the original.
BOOST_AUTO_TEST_CASE(v7b_state_round_trips_and_continues) {
  const auto model = v7b::Model<f32>::load(data_path("v7b-dev.model.safetensors"));
  const golden_case g("v7b-dev");
  const std::span<const std::int32_t> all(g.tokens);
  auto s = model.make_state();
  model.prefill(all.first(20), s);

  auto copy = s;
  BOOST_TEST((copy == s));
  const auto bytes = s.to_bytes();
  auto from_bytes = v7b::State::from_bytes(bytes, model.make_state(), "bytes");
  BOOST_TEST((from_bytes == s));
  BOOST_TEST(from_bytes.layers[0].branch.derived.positions == 0);  // rebuilt on first use
  const auto file = std::filesystem::temp_directory_path() / ("rwkv_v7b_state_" + std::to_string(::getpid()));
  save_state(file, s);
  auto from_file = load_state(file, model.make_state());
  std::filesystem::remove(file);
  BOOST_TEST((from_file == s));

  // Continue all of them with the rest of the golden tokens: the golden step logits, and identical states.
  for (auto* st : {&s, &copy, &from_bytes, &from_file})
    for (std::size_t t = 20; t < g.tokens.size(); ++t)
      check_close(model.step(g.tokens[t], *st), g.row("logits", t), rwkv::test::logits_tol,
                  "continued step " + std::to_string(t));
  check_v7_state(from_file, g, "state continued after a file round trip");
  for (std::size_t i = 0; i < s.layers.size(); ++i) {
    check_close(from_bytes.layers[i].branch.derived.keys, s.layers[i].branch.derived.keys, rwkv::test::state_tol,
                "rebuilt keys");
    check_close(from_bytes.layers[i].branch.derived.values, s.layers[i].branch.derived.values, rwkv::test::state_tol,
                "rebuilt values");
  }

  // A truncated byte image or a cache of the wrong width is refused, not read past its end or run.
  expect_error([&] { v7b::State::from_bytes(std::span(bytes).first(bytes.size() - 4), model.make_state()); },
               {"truncated"});
  auto bad = s;
  bad.layers[1].branch.key_latent.pop_back();
  expect_error([&] { model.step(1, bad); }, {"inconsistent state", "layer 1"});
  bad = s;
  bad.layers[0].branch.tokens[3] = 1e6f;
  bad.layers[0].branch.derived = {};  // forces a rebuild from the tokens
  bad.layers[0].branch.derived.key_shift.assign(256, 0.f);
  bad.layers[0].branch.derived.value_shift.assign(128, 0.f);
  expect_error([&] { model.step(1, bad); }, {"cached token 3", "not a token id"});
}

// The cache has a cap; a call that would pass it fails and leaves the state as it was.
BOOST_AUTO_TEST_CASE(v7b_cache_cap) {
  io::load_options options;
  options.max_cached_tokens = 20;
  const auto model = from_tensors<v7b::Model<f32>>(tensors_of("v7b-dev.model.safetensors"), options);
  const golden_case g("v7b-dev");
  const std::span<const std::int32_t> all(g.tokens);
  auto s = model.make_state();
  model.prefill(all.first(15), s);
  const auto before = s;
  expect_error([&] { model.prefill(all.subspan(15, 6), s); }, {"holds 15 tokens", "6 more", "cap of 20"});
  BOOST_TEST((s == before));
  for (std::size_t t = 15; t < 20; ++t) model.step(g.tokens[t], s);
  expect_error([&] { model.step(g.tokens[20], s); }, {"holds 20 tokens", "cap of 20", "max_cached_tokens"});
  options.max_cached_tokens = 0;
  expect_error([&] { from_tensors<v7b::Model<f32>>(tensors_of("v7b-dev.model.safetensors"), options); },
               {"max_cached_tokens must be positive"}, "crafted.safetensors", "blocks.0.qkv.qq.weight");
}

// ---- composition and initialisation --------------------------------------------------------------------------------

// The variants' blocks initialise from scratch like every other block, and combine with RWKV-7 blocks in one
// composed model (a DeepEmbed channel mix after a plain RWKV-7 layer).
BOOST_AUTO_TEST_CASE(init_and_composition) {
  init::builder b({.n_layer = 3, .n_embd = 64, .vocab = 100, .head_size = 16}, 7);
  init::model<v7b::Block<f32, cpu<>, 16>>(b);
  auto r = b.reader();
  BOOST_TEST((detect_version(r.views()) == arch_version::v7b));
  const auto m = v7b::Model<f32, cpu<>, 16>::from_reader(r);
  auto s = m.make_state();
  const std::vector<std::int32_t> tokens{1, 50, 99, 3};
  const auto seq = m.forward(tokens, s, logits_for::all);
  BOOST_TEST(seq.allFinite());
  auto s2 = m.make_state();
  std::vector<float> last;
  for (auto t : tokens) last = m.step(t, s2);
  check_close(last, std::vector<float>(seq.row(3).data(), seq.row(3).data() + seq.cols()), rwkv::test::logits_tol,
              "initialised 7b, step vs sequence");

  init::builder h({.n_layer = 2, .n_embd = 64, .vocab = 100, .head_size = 16}, 8);
  using plain = v7::Block<f32, cpu<>, 16>;
  using deep = v7a::Block<f32, cpu<>, 16>;
  init::model<plain, deep>(h, [](std::int64_t layer) { return static_cast<std::size_t>(layer); });
  auto hr = h.reader();
  // Each layer takes the first block type whose tensors it has: DeepEmbed's first (a 7a layer is a 7 layer too).
  const auto hybrid = HybridModel<f32, cpu<>, deep, plain>::from_reader(hr);
  BOOST_TEST(hybrid.blocks()[0].index() == 1u);
  BOOST_TEST(hybrid.blocks()[1].index() == 0u);
  auto hs = hybrid.make_state();
  BOOST_TEST(hybrid.prefill(tokens, hs).size() == 100u);
}

// ---- every weight precision ------------------------------------------------------------------------------------

namespace {

// Step logits over the golden tokens and sequence logits over english.txt (bytes: vocab 256).
struct precision_run {
  row_matrix steps, text;
};

template <class M>
precision_run run_model(const std::string& file, const golden_case& g, const std::vector<std::int32_t>& text) {
  const auto model = M::load(data_path(file));
  precision_run out;
  out.steps.resize(static_cast<Eigen::Index>(g.tokens.size()), g.V);
  auto s = model.make_state();
  for (std::size_t t = 0; t < g.tokens.size(); ++t) {
    const auto l = model.step(g.tokens[t], s);
    std::copy(l.begin(), l.end(), out.steps.row(static_cast<Eigen::Index>(t)).data());
  }
  auto s2 = model.make_state();
  out.text = model.forward(text, s2, logits_for::all);
  return out;
}

// Mean KL divergence of each weight storage from float32, over the golden tokens and over a longer text (the 7b
// cache at 400+ tokens). Bounds are about twice what was measured (bf16 2.8e-5 / 2.0e-4, f16 4e-7 / 2.1e-6, q8
// 2.6e-4 / 3.7e-4, q4 0.058 / 0.068 for 7a / 7b), like the other dev models' (tests/precision/quant_test.cpp): a
// kernel or table-row error shows up as KL ≥ 0.1.
template <template <class> class M>
void check_precisions(const std::string& name, double kl_bf16, double kl_f16, double kl_q8, double kl_q4) {
  const golden_case g(name);
  auto text = rwkv::test::byte_tokens("english.txt");
  text.resize(std::min<std::size_t>(text.size(), 420));
  const auto file = name + ".model.safetensors";
  const auto f32 = run_model<M<rwkv::f32>>(file, g, text);
  check_close(rwkv::test::flat(f32.steps), floats(g.golden.at("logits")), rwkv::test::logits_tol, name + " f32");
  struct row {
    const char* format;
    precision_run r;
    double max_kl;
  };
  for (const row& x : {row{"bf16", run_model<M<bf16_weights>>(file, g, text), kl_bf16},
                       row{"f16", run_model<M<f16_weights>>(file, g, text), kl_f16},
                       row{"q8", run_model<M<q8_weights>>(file, g, text), kl_q8},
                       row{"q4", run_model<M<q4_weights>>(file, g, text), kl_q4}}) {
    const double kl_steps = rwkv::test::mean_kl(f32.steps, x.r.steps),
                 kl_text = rwkv::test::mean_kl(f32.text, x.r.text);
    BOOST_TEST_MESSAGE(name << " " << x.format << ": mean KL vs f32 " << kl_steps << " (golden tokens), " << kl_text
                            << " (english.txt)");
    BOOST_TEST(kl_steps <= x.max_kl, name << " " << x.format << " KL over the golden tokens");
    BOOST_TEST(kl_text <= x.max_kl, name << " " << x.format << " KL over english.txt");
  }
}

template <class P>
using v7a_model = v7a::Model<P>;
template <class P>
using v7b_model = v7b::Model<P>;

}  // namespace

BOOST_AUTO_TEST_CASE(every_weight_precision) {
  check_precisions<v7a_model>("v7a-dev", 6e-5, 1e-6, 6e-4, 0.12);
  check_precisions<v7b_model>("v7b-dev", 4e-4, 5e-6, 8e-4, 0.14);
}

// The attention's threaded paths (positions split for one query, blocks of queries for a sequence) against the
// single-threaded ones, past 1024 cached tokens.
BOOST_AUTO_TEST_CASE(v7b_threads_and_long_context) {
  const auto model = v7b::Model<f32>::load(data_path("v7b-dev.model.safetensors"));
  auto text = rwkv::test::byte_tokens("english.txt");
  while (text.size() < 1200) text.insert(text.end(), text.begin(), text.end());
  text.resize(1200);
  const std::span<const std::int32_t> all(text);
  thread_pool pool(2);
  auto threaded = model.make_state(), serial = model.make_state();
  const auto seq_threaded = model.forward(all.first(1100), threaded, logits_for::all, &pool);
  const auto seq_serial = model.forward(all.first(1100), serial, logits_for::all);
  check_close(rwkv::test::flat(seq_threaded), rwkv::test::flat(seq_serial), rwkv::test::logits_tol,
              "1100-token sequence, 2 threads vs 1");
  std::vector<float> last_step;
  for (std::size_t t = 1100; t < 1200; ++t) {
    last_step = model.step(text[t], serial);
    check_close(model.step(text[t], threaded, &pool), last_step, rwkv::test::logits_tol,
                "step " + std::to_string(t) + ", 2 threads vs 1");
  }
  // The sequence form over all 1200 tokens ends where the steps did.
  auto whole = model.make_state();
  check_close(model.prefill(all, whole, &pool), last_step, rwkv::test::logits_tol, "1200 tokens: sequence vs steps");
  BOOST_TEST(whole.layers[1].branch.positions() == 1200);
}

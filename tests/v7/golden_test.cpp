// RWKV-7 against the official reference (tests/data/*.golden.safetensors): step logits, sequence logits at
// every position, the step/sequence hand-over, the final state and BF16-stored weights.
#define BOOST_TEST_MODULE v7_golden
#include <boost/test/unit_test.hpp>

#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;
using rwkv::test::floats;

using rwkv::test::golden_case;

template <class M>
void check_step(const M& model, const golden_case& g, const std::string& tensor) {
  auto s = model.make_state();
  for (std::size_t t = 0; t < g.tokens.size(); ++t)
    check_close(model.step(g.tokens[t], s), g.row(tensor, t), rwkv::test::logits_tol,
                g.name + " " + tensor + " step " + std::to_string(t));
}

template <class M>
void check_all(const std::string& name) {
  const golden_case g(name);
  const auto model = M::load(data_path(name + ".model.safetensors"));
  BOOST_REQUIRE_EQUAL(model.cfg().vocab, g.V);

  check_step(model, g, "logits");

  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check_close(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), rwkv::test::logits_tol, name + " logits_seq");
  auto s2 = model.make_state();
  check_close(model.prefill(g.tokens, s2), floats(g.golden.at("logits_seq_last")), rwkv::test::logits_tol,
              name + " logits_seq_last");

  // Final state (reference order per layer: att shift, WKV [H][value][key], ffn shift), after the step run.
  auto st = model.make_state();
  for (auto t : g.tokens) model.step(t, st);
  for (std::size_t i = 0; i < st.layers.size(); ++i) {
    const auto& l = st.layers[i];
    check_close(l.att.shift, floats(g.golden.at("state." + std::to_string(3 * i))), rwkv::test::state_tol,
                name + " state att shift");
    check_close(l.att.wkv, floats(g.golden.at("state." + std::to_string(3 * i + 1))), rwkv::test::state_tol,
                name + " state wkv");
    check_close(l.ffn.shift, floats(g.golden.at("state." + std::to_string(3 * i + 2))), rwkv::test::state_tol,
                name + " state ffn shift");
  }
  // The sequence form leaves the same state.
  for (std::size_t i = 0; i < st.layers.size(); ++i)
    check_close(s.layers[i].att.wkv, st.layers[i].att.wkv, rwkv::test::state_tol, name + " sequence state wkv");

  if (g.golden.find("logits_split")) {
    auto sp = model.make_state();
    const std::span<const std::int32_t> all(g.tokens);
    model.prefill(all.first(10), sp);
    std::vector<float> last;
    for (std::size_t t = 10; t < g.tokens.size(); ++t) last = model.step(g.tokens[t], sp);
    check_close(last, floats(g.golden.at("logits_split")), rwkv::test::logits_tol, name + " logits_split");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v7_dev_f32) { check_all<v7::Model<f32>>("v7-dev"); }

BOOST_AUTO_TEST_CASE(tiny_7v0_f32) { check_all<v7::Model<f32>>("tiny-7v0"); }

BOOST_AUTO_TEST_CASE(tiny_7v0_matches_rwkvcpp_expected_logits) {
  const golden_case g("tiny-7v0");
  const auto model = v7::Model<f32>::load(data_path("tiny-7v0.model.safetensors"));
  auto s = model.make_state();
  std::vector<float> last;
  for (auto t : g.tokens) last = model.step(t, s);
  check_close(last, floats(g.golden.at("expected_rwkvcpp")), rwkv::test::logits_tol, "tiny-7v0 expected_rwkvcpp");
}

// BF16 file widened to f32 storage, and kept as bf16 storage: both are the exact target logits_bf16w.
BOOST_AUTO_TEST_CASE(v7_dev_bf16_file_f32_storage) {
  const golden_case g("v7-dev");
  check_step(v7::Model<f32>::load(data_path("v7-dev.model.bf16.safetensors")), g, "logits_bf16w");
}

BOOST_AUTO_TEST_CASE(v7_dev_bf16_file_bf16_storage) {
  const golden_case g("v7-dev");
  const auto model = v7::Model<bf16_weights>::load(data_path("v7-dev.model.bf16.safetensors"));
  check_step(model, g, "logits_bf16w");
  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check_close(rwkv::test::flat(seq), floats(g.golden.at("logits_bf16w")), rwkv::test::logits_tol,
              "v7-dev bf16 storage, sequence form");
}

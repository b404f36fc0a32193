#pragma once
// Shared by the RWKV-5 and RWKV-6 golden tests: reading a golden case, the checks of tests/v7/golden_test.cpp
// (per-step logits, all-position sequence logits, last-position sequence logits, the step/sequence hand-over,
// the final state, BF16 weights) with the max |got - want| of each golden tensor logged, and in-memory edited
// checkpoints (tensors removed or added) for detection and time_state tests.

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "rwkv/core/precision.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/language_model.hpp"

#include "../support/golden.hpp"

namespace rwkv::test::v56 {

using namespace rwkv;

using rwkv::test::golden_case;

// Largest |got - want| (reported in the log so that the margin to the tolerance is visible).
template <class Got>
double max_abs_diff(const Got& got, const std::vector<float>& want) {
  double m = 0;
  for (std::size_t i = 0; i < want.size() && i < static_cast<std::size_t>(got.size()); ++i)
    m = std::max(m, std::abs(static_cast<double>(got[static_cast<decltype(got.size())>(i)]) - want[i]));
  return m;
}

template <class Got>
void check_logged(const Got& got, const std::vector<float>& want, rwkv::test::tolerance tol, const std::string& what) {
  BOOST_TEST_MESSAGE(what << ": max |got - want| = " << max_abs_diff(got, want));
  check_close(got, want, tol, what);
}

template <class M>
void check_step(const M& model, const golden_case& g, const std::string& tensor, const std::string& label) {
  auto s = model.make_state();
  std::vector<float> got;
  for (std::size_t t = 0; t < g.tokens.size(); ++t) {
    const auto row = model.step(g.tokens[t], s);
    check_close(row, g.row(tensor, t), rwkv::test::logits_tol, label + " step " + std::to_string(t));
    got.insert(got.end(), row.begin(), row.end());
  }
  BOOST_TEST_MESSAGE(label << ": max |got - want| = " << max_abs_diff(got, floats(g.golden.at(tensor))));
}

template <class M>
void check_all(const std::string& name) {
  const golden_case g(name);
  const auto model = M::load(data_path(name + ".model.safetensors"));
  BOOST_REQUIRE_EQUAL(model.cfg().vocab, g.V);

  check_step(model, g, "logits", name + " logits");

  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check_logged(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), rwkv::test::logits_tol, name + " logits_seq");
  auto s2 = model.make_state();
  check_logged(model.prefill(g.tokens, s2), floats(g.golden.at("logits_seq_last")), rwkv::test::logits_tol,
               name + " logits_seq_last");

  // Final state (reference order per layer: att shift, WKV [H][key][value], ffn shift), after the step run.
  auto st = model.make_state();
  for (auto t : g.tokens) model.step(t, st);
  for (std::size_t i = 0; i < st.layers.size(); ++i) {
    const auto& l = st.layers[i];
    const auto idx = [&](std::size_t k) { return "state." + std::to_string(3 * i + k); };
    check_logged(l.att.shift, floats(g.golden.at(idx(0))), rwkv::test::state_tol, name + " " + idx(0) + " att shift");
    check_logged(l.att.wkv, floats(g.golden.at(idx(1))), rwkv::test::state_tol, name + " " + idx(1) + " wkv");
    check_logged(l.ffn.shift, floats(g.golden.at(idx(2))), rwkv::test::state_tol, name + " " + idx(2) + " ffn shift");
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
    check_logged(last, floats(g.golden.at("logits_split")), rwkv::test::logits_tol, name + " logits_split");
  }
}

// BF16 file widened to f32 storage, and kept as bf16 storage: both are the exact target logits_bf16w.
template <class F32Model, class Bf16Model>
void check_bf16(const std::string& name) {
  const golden_case g(name);
  check_step(F32Model::load(rwkv::test::bf16_copy(name)), g, "logits_bf16w", name + " logits_bf16w (f32 storage)");
  const auto model = Bf16Model::load(rwkv::test::bf16_copy(name));
  check_step(model, g, "logits_bf16w", name + " logits_bf16w (bf16 storage)");
  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check_logged(rwkv::test::flat(seq), floats(g.golden.at("logits_bf16w")), rwkv::test::logits_tol,
               name + " logits_bf16w (bf16 storage, sequence form)");
}

// An in-memory checkpoint: the tensors of a file, some removed, some added (with their own storage).
struct edited_checkpoint {
  io::safetensors_file file;
  std::vector<tensor_view> tensors;
  std::vector<std::shared_ptr<std::vector<float>>> added;

  explicit edited_checkpoint(const std::string& name)
      : file(io::safetensors_file::open(data_path(name))), tensors(file.tensors()) {}

  void remove_if(const std::function<bool(const std::string&)>& pred) {
    std::erase_if(tensors, [&](const tensor_view& t) { return pred(t.name); });
  }
  void add(const std::string& name, std::vector<std::int64_t> shape, std::vector<float> values) {
    auto store = std::make_shared<std::vector<float>>(std::move(values));
    tensor_view t;
    t.name = name;
    t.type = dtype::f32;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const std::byte*>(store->data());
    t.nbytes = store->size() * sizeof(float);
    tensors.push_back(t);
    added.push_back(std::move(store));
  }
  template <class M>
  M load() const {
    io::weight_reader r("<edited " + file.path() + ">", tensors, file.owner());
    return M::from_reader(r);
  }
};

inline bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace rwkv::test::v56

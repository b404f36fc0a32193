// RWKV-4 against the official reference (tests/data/*.golden.safetensors): step logits, sequence logits at
// every position, the step/sequence hand-over, the final state and BF16-stored weights; the WKV operator against
// the float64 test vector of spec/v4.md.
#define BOOST_TEST_MODULE v4_golden
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include <rwkv/v4.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::data_path;
using rwkv::test::floats;

// Largest |got − want| seen per golden tensor (over every check of it), printed at the end of the run.
std::map<std::string, double>& worst_abs() {
  static std::map<std::string, double> m;
  return m;
}

struct report_worst {
  ~report_worst() {
    std::ostringstream os;
    os << "max |got - want| per golden tensor:\n";
    for (const auto& [k, v] : worst_abs()) os << "  " << std::left << std::setw(44) << k << " " << v << "\n";
    BOOST_TEST_MESSAGE(os.str());
  }
};
BOOST_TEST_GLOBAL_FIXTURE(report_worst);

// check_close with the shared tolerances, also recording the largest absolute difference under `key`.
template <class Got>
void check(const Got& got, const std::vector<float>& want, rwkv::test::tolerance tol, const std::string& what,
           const std::string& key) {
  double m = 0;
  if (static_cast<std::size_t>(got.size()) == want.size())
    for (std::size_t i = 0; i < want.size(); ++i)
      m = std::max(m, std::abs(static_cast<double>(got[static_cast<decltype(got.size())>(i)]) - want[i]));
  auto& w = worst_abs()[key];
  w = std::max(w, m);
  rwkv::test::check_close(got, want, tol, what);
}

using rwkv::test::golden_case;

template <class M>
void check_step(const M& model, const golden_case& g, const std::string& tensor, const std::string& label) {
  auto s = model.make_state();
  for (std::size_t t = 0; t < g.tokens.size(); ++t)
    check(model.step(g.tokens[t], s), g.row(tensor, t), rwkv::test::logits_tol,
          g.name + " " + label + " step " + std::to_string(t), g.name + " " + tensor + " (" + label + ")");
}

template <class M>
void check_all(const std::string& name) {
  const golden_case g(name);
  const auto model = M::load(data_path(name + ".model.safetensors"));
  BOOST_REQUIRE_EQUAL(model.cfg().vocab, g.V);
  BOOST_REQUIRE_EQUAL(std::string(model.make_state().version()), "4");

  check_step(model, g, "logits", "step");

  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), rwkv::test::logits_tol, name + " logits_seq",
        name + " logits_seq");
  auto s2 = model.make_state();
  check(model.prefill(g.tokens, s2), floats(g.golden.at("logits_seq_last")), rwkv::test::logits_tol,
        name + " logits_seq_last", name + " logits_seq_last");

  // Final state, reference order per layer: att shift, aa, bb, pp, ffn shift (after the step run).
  // aa, bb, pp are compared directly: they are representation-specific (A = aa·e^pp, B = bb·e^pp), but this
  // implementation runs the reference's own recurrence from the reference's initial pp = −1e30, so its
  // representation is the reference's value for value, not merely an equivalent one.
  auto st = model.make_state();
  for (auto t : g.tokens) model.step(t, st);
  const std::vector<std::string> part = {"att shift", "aa", "bb", "pp", "ffn shift"};
  for (std::size_t i = 0; i < st.layers.size(); ++i) {
    const auto& l = st.layers[i];
    const std::vector<const std::vector<float>*> got = {&l.att.shift, &l.att.aa, &l.att.bb, &l.att.pp, &l.ffn.shift};
    for (std::size_t j = 0; j < 5; ++j)
      check(*got[j], g.state(5 * i + j), rwkv::test::state_tol,
            name + " layer " + std::to_string(i) + " state " + part[j], name + " state " + part[j]);
    // The meaningful quantity aa/bb (= A/B, the WKV of the past without the bonus) agrees as well.
    const auto aa = g.state(5 * i + 1), bb = g.state(5 * i + 2);
    std::vector<float> want_ratio(aa.size()), got_ratio(aa.size());
    for (std::size_t c = 0; c < aa.size(); ++c) {
      want_ratio[c] = aa[c] / bb[c];
      got_ratio[c] = l.att.aa[c] / l.att.bb[c];
    }
    check(got_ratio, want_ratio, rwkv::test::state_tol, name + " layer " + std::to_string(i) + " state aa/bb",
          name + " state aa/bb");
  }
  // The sequence form leaves the same state (same recurrence, so the same representation too).
  for (std::size_t i = 0; i < st.layers.size(); ++i) {
    st.layers[i].visit([&](const std::string& n, const std::vector<float>& v) {
      const std::vector<float>* other = nullptr;
      s.layers[i].visit([&](const std::string& m, const std::vector<float>& w) {
        if (m == n) other = &w;
      });
      BOOST_REQUIRE(other);
      check(*other, v, rwkv::test::state_tol, name + " sequence state " + n, name + " sequence vs step state");
    });
  }

  if (g.golden.find("logits_split")) {
    auto sp = model.make_state();
    const std::span<const std::int32_t> all(g.tokens);
    model.prefill(all.first(10), sp);
    std::vector<float> last;
    for (std::size_t t = 10; t < g.tokens.size(); ++t) last = model.step(g.tokens[t], sp);
    check(last, floats(g.golden.at("logits_split")), rwkv::test::logits_tol, name + " logits_split",
          name + " logits_split");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v4_dev_f32) { check_all<v4::Model<f32>>("v4-dev"); }

BOOST_AUTO_TEST_CASE(tiny_4v0_f32) { check_all<v4::Model<f32>>("tiny-4v0"); }

BOOST_AUTO_TEST_CASE(tiny_4v0_matches_rwkvcpp_expected_logits) {
  const golden_case g("tiny-4v0");
  const auto model = v4::Model<f32>::load(data_path("tiny-4v0.model.safetensors"));
  auto s = model.make_state();
  std::vector<float> last;
  for (auto t : g.tokens) last = model.step(t, s);
  check(last, floats(g.golden.at("expected_rwkvcpp")), rwkv::test::logits_tol, "tiny-4v0 expected_rwkvcpp",
        "tiny-4v0 expected_rwkvcpp");
}

// BF16 file widened to f32 storage, and kept as bf16 storage: both are the exact target logits_bf16w.
BOOST_AUTO_TEST_CASE(v4_dev_bf16_file_f32_storage) {
  const golden_case g("v4-dev");
  check_step(v4::Model<f32>::load(rwkv::test::bf16_copy("v4-dev")), g, "logits_bf16w", "f32 storage");
}

BOOST_AUTO_TEST_CASE(v4_dev_bf16_file_bf16_storage) {
  const golden_case g("v4-dev");
  const auto model = v4::Model<bf16_weights>::load(rwkv::test::bf16_copy("v4-dev"));
  check_step(model, g, "logits_bf16w", "bf16 storage");
  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all);
  check(rwkv::test::flat(seq), floats(g.golden.at("logits_bf16w")), rwkv::test::logits_tol,
        "v4-dev bf16 storage, sequence form", "v4-dev logits_bf16w (bf16 storage, sequence)");
}

// With a thread pool (matrix products split by rows, the WKV by blocks of channels) the results are the same.
BOOST_AUTO_TEST_CASE(v4_dev_thread_pool) {
  const golden_case g("v4-dev");
  const auto model = v4::Model<f32>::load(data_path("v4-dev.model.safetensors"));
  thread_pool pool(3);
  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all, &pool);
  check(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), rwkv::test::logits_tol, "v4-dev pool logits_seq",
        "v4-dev logits_seq (thread pool)");
  auto st = model.make_state();
  for (std::size_t t = 0; t < g.tokens.size(); ++t)
    check(model.step(g.tokens[t], st, &pool), g.row("logits", t), rwkv::test::logits_tol,
          "v4-dev pool step " + std::to_string(t), "v4-dev logits (step, thread pool)");
  for (std::size_t i = 0; i < st.layers.size(); ++i) {
    check(s.layers[i].att.aa, g.state(5 * i + 1), rwkv::test::state_tol, "v4-dev pool sequence state aa",
          "v4-dev state aa (sequence, thread pool)");
    check(st.layers[i].att.pp, g.state(5 * i + 3), rwkv::test::state_tol, "v4-dev pool step state pp",
          "v4-dev state pp (step, thread pool)");
  }
}

// The WKV operator alone against spec/v4.md's float64 test vector (C = 4, T = 4, zero state, pp = −1e30), once
// with all channels in one call (the vector path) and once channel by channel (the scalar path).
BOOST_AUTO_TEST_CASE(wkv4_operator_test_vector) {
  using arch = xsimd::default_arch;
  constexpr int C = 4, T = 4;
  const double want_y[T][C] = {{0, 0.841470985, 0.909297427, 0.141120008},
                               {0.33694211, 0.589806009, 0.153879586, -0.535353961},
                               {0.241067632, 0.118767626, -0.168088006, 0.144723239},
                               {0.028312905, 0.143777022, 0.403219057, 0.373214288}};
  const std::vector<float> want_a = {-0.0249604299f, 0.409053467f, 1.01516761f, 0.864879002f};
  const std::vector<float> want_b = {2.34631413f, 1.68836836f, 1.78954047f, 2.24091879f};
  float w[C], u[C], k[T][C], v[T][C];
  for (int c = 0; c < C; ++c) {
    w[c] = -std::exp(-1.f + 0.3f * static_cast<float>(c));
    u[c] = 0.2f * static_cast<float>(c) - 0.3f;
    for (int t = 0; t < T; ++t) {
      k[t][c] = 0.5f * std::cos(static_cast<float>(c + t));
      v[t][c] = std::sin(static_cast<float>(c + 2 * t));
    }
  }
  for (const bool per_channel : {false, true}) {
    const std::string label = per_channel ? "scalar path" : "vector path";
    std::vector<float> aa(C, 0.f), bb(C, 0.f), pp(C, v4::initial_pp);
    for (int t = 0; t < T; ++t) {
      std::vector<float> y(C), want(want_y[t], want_y[t] + C);
      if (per_channel) {
        for (int c = 0; c < C; ++c)
          kernel::cpu::wkv4_step<arch>(1, w + c, u + c, &k[t][c], &v[t][c], &aa[c], &bb[c], &pp[c], &y[c]);
      } else {
        kernel::cpu::wkv4_step<arch>(C, w, u, k[t], v[t], aa.data(), bb.data(), pp.data(), y.data());
      }
      check(y, want, rwkv::test::logits_tol, "wkv4 " + label + " t=" + std::to_string(t), "spec/v4.md wkv_t");
    }
    std::vector<float> a(C), b(C);
    for (int c = 0; c < C; ++c) {
      a[c] = aa[c] * std::exp(pp[c]);
      b[c] = bb[c] * std::exp(pp[c]);
    }
    check(a, want_a, rwkv::test::state_tol, "wkv4 " + label + " final a·e^p", "spec/v4.md final a·e^p");
    check(b, want_b, rwkv::test::state_tol, "wkv4 " + label + " final b·e^p", "spec/v4.md final b·e^p");
  }
}

// A checkpoint of another generation is refused with a sentence naming it.
BOOST_AUTO_TEST_CASE(refuses_other_generations) {
  BOOST_CHECK_EXCEPTION(v4::Model<f32>::load(data_path("tiny-7v0.model.safetensors")), rwkv::error,
                        [](const rwkv::error& e) { return std::string(e.what()).find("RWKV-7") != std::string::npos; });
}

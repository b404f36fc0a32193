// Training gradients of RWKV-4, 5.1, 5.2, 6 and 7 against the official reference (tests/data/*.grad.safetensors,
// evaluated in float64 with autograd through the reference's own load-time transforms): the loss, the gradient of
// every checkpoint tensor, and the gradient of a random initial state, in the sequence form and token by token.
#define BOOST_TEST_MODULE train_grad
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../support/golden.hpp"
#include "rwkv/quantize.hpp"
#include "rwkv/train.hpp"
#include "rwkv/v7a.hpp"

namespace {

using rwkv::test::data_path;

struct golden_grads {
  rwkv::io::safetensors_file file;
  std::map<std::string, const rwkv::tensor_view*> by_name;

  explicit golden_grads(const std::string& name) : file(rwkv::io::safetensors_file::open(data_path(name))) {
    for (const auto& t : file.tensors()) by_name[t.name] = &t;
  }
  const rwkv::tensor_view& get(const std::string& n) const {
    auto it = by_name.find(n);
    BOOST_REQUIRE_MESSAGE(it != by_name.end(), "golden file lacks " << n);
    return *it->second;
  }
  std::vector<float> floats(const std::string& n) const { return rwkv::test::floats(get(n)); }
  std::vector<std::int32_t> tokens() const { return rwkv::test::ints(get("tokens")); }
};

// testdata/README.md § Gradients: |got − want| ≤ 1e-4·max|want| + 1e-3·|want| per tensor.
void check_gradient(const float* got, const std::vector<float>& want, const std::string& what) {
  double scale = 0;
  for (float w : want) scale = std::max(scale, static_cast<double>(std::abs(w)));
  const rwkv::test::tolerance tol{1e-4 * scale, 1e-3};
  rwkv::test::check_close(Eigen::Map<const Eigen::VectorXf>(got, static_cast<Eigen::Index>(want.size())), want, tol,
                          what);
}

template <class Layer>
void check_against_golden(const std::string& case_name, rwkv::train::form form, unsigned threads = 1) {
  const golden_grads g(case_name + ".grad.safetensors");
  auto net = rwkv::train::network<Layer>::load(data_path(case_name + ".model.safetensors"));
  rwkv::thread_pool pool(threads);  // > 1: products split by rows, WKV heads in parallel
  net.use_threads(&pool);
  const auto tokens = g.tokens();
  const std::vector<std::int32_t> inputs(tokens.begin(), tokens.end() - 1), targets(tokens.begin() + 1, tokens.end());

  // From the zero state: every parameter's gradient.
  net.parameters().zero_grad();
  const double loss = net.loss_and_gradients(inputs, targets, form);
  const double want_loss = g.floats("loss")[0];
  BOOST_CHECK_SMALL(loss - want_loss, 1e-5 * std::abs(want_loss));
  std::size_t checked = 0;
  for (const auto& p : net.parameters().all()) {
    const auto want = g.floats("grad." + p.name);
    BOOST_REQUIRE_EQUAL(static_cast<std::size_t>(p.grad.size()), want.size());
    check_gradient(p.grad.data(), want, "grad." + p.name);
    ++checked;
  }
  BOOST_CHECK_EQUAL(checked, net.parameters().all().size());
  BOOST_CHECK_GT(checked, 30u);

  // From a random initial state: the state-tuning gradient.
  auto init = net.initial_state();
  for (std::size_t i = 0; i < init.tensors.size(); ++i) init.tensors[i] = g.floats("init_state." + std::to_string(i));
  rwkv::train::state d_init;
  net.parameters().zero_grad();
  const double loss_s = net.loss_and_gradients(inputs, targets, form, &init, &d_init);
  const double want_s = g.floats("loss_from_state")[0];
  BOOST_CHECK_SMALL(loss_s - want_s, 1e-5 * std::abs(want_s));
  BOOST_REQUIRE_EQUAL(d_init.tensors.size(), init.tensors.size());
  for (std::size_t i = 0; i < d_init.tensors.size(); ++i)
    check_gradient(d_init.tensors[i].data(), g.floats("grad_state." + std::to_string(i)),
                   "grad_state." + std::to_string(i));
}

}  // namespace

#define RWKV_GRAD_CASE(name, layer, file)                                           \
  BOOST_AUTO_TEST_CASE(name##_sequence_form_matches_the_reference_gradients) {      \
    check_against_golden<rwkv::train::layer>(file, rwkv::train::form::sequence);    \
  }                                                                                 \
  BOOST_AUTO_TEST_CASE(name##_step_form_matches_the_reference_gradients) {          \
    check_against_golden<rwkv::train::layer>(file, rwkv::train::form::step);        \
  }                                                                                 \
  BOOST_AUTO_TEST_CASE(name##_on_two_threads_matches_the_reference_gradients) {     \
    check_against_golden<rwkv::train::layer>(file, rwkv::train::form::sequence, 2); \
  }

RWKV_GRAD_CASE(v4, v4::layer, "v4-dev")
RWKV_GRAD_CASE(v5_1, v5::layer, "v5.1-dev")
RWKV_GRAD_CASE(v5_2, v5::layer, "v5.2-dev")
RWKV_GRAD_CASE(v6, v6::layer, "v6-dev")
RWKV_GRAD_CASE(v7, v7::layer, "v7-dev")

// The golden sequences (16 inputs) are one WKV checkpoint chunk; a longer one crosses chunk boundaries, where the
// backward restarts from a saved state. Its gradients must equal those of the token-by-token form, which saves
// the state before every token.
BOOST_AUTO_TEST_CASE(sequence_form_across_wkv_checkpoints_equals_the_step_form) {
  for (const char* file : {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev", "v7-dev"}) {
    BOOST_TEST_CONTEXT(file) {
      rwkv::train::with_network(data_path(std::string(file) + ".model.safetensors"), [&](auto& net) {
        std::vector<std::int32_t> tokens(51);
        for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 131 + 7) % 512);
        const std::vector<std::int32_t> inputs(tokens.begin(), tokens.end() - 1),
            targets(tokens.begin() + 1, tokens.end());
        // The golden file's random initial state, so that the state gradient is not trivially zero anywhere.
        const auto init =
            rwkv::train::read_state(data_path(std::string(file) + ".grad.safetensors"), net.initial_state());
        std::vector<std::vector<float>> grads[2];
        rwkv::train::state d_init[2];
        double loss[2];
        for (int f = 0; f < 2; ++f) {
          net.parameters().zero_grad();
          loss[f] = net.loss_and_gradients(inputs, targets, f ? rwkv::train::form::step : rwkv::train::form::sequence,
                                           &init, &d_init[f]);
          for (const auto& p : net.parameters().all())
            grads[f].emplace_back(p.grad.data(), p.grad.data() + p.grad.size());
        }
        BOOST_CHECK_SMALL(loss[0] - loss[1], 1e-5 * std::abs(loss[1]));
        std::size_t i = 0;
        for (const auto& p : net.parameters().all()) {
          check_gradient(grads[0][i].data(), grads[1][i], "grad." + p.name);
          ++i;
        }
        for (std::size_t s = 0; s < d_init[0].tensors.size(); ++s)
          check_gradient(d_init[0].tensors[s].data(), d_init[1].tensors[s], "grad_state." + std::to_string(s));
        return 0;
      });
    }
  }
}

// The same weights in another file format give the same gradients, under the official names and shapes.
BOOST_AUTO_TEST_CASE(every_model_format_trains) {
  const std::vector<std::int32_t> inputs{34, 105, 110, 32, 116}, targets{105, 110, 32, 116, 104};
  std::vector<std::vector<float>> grads;
  for (const char* file : {"tiny-7v0.model.safetensors", "tiny-7v0.model.pth", "tiny-7v0.rwkvcpp.bin"}) {
    rwkv::train::with_network(data_path(file), [&](auto& net) {
      net.loss_and_gradients(inputs, targets);
      std::vector<float> all;
      for (const auto& p : net.parameters().all()) all.insert(all.end(), p.grad.data(), p.grad.data() + p.grad.size());
      grads.push_back(std::move(all));
      return 0;
    });
  }
  BOOST_REQUIRE_EQUAL(grads.size(), 3u);
  BOOST_CHECK_GT(grads[0].size(), 800'000u);
  check_gradient(grads[1].data(), grads[0], "pth");
  check_gradient(grads[2].data(), grads[0], "rwkv.cpp");
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error) {
  auto net = rwkv::train::network<rwkv::train::v7::layer>::load(data_path("v7-dev.model.safetensors"));
  auto message_has = [](const std::string& part) {
    return [part](const rwkv::error& e) {
      const bool ok = std::string(e.what()).find(part) != std::string::npos;
      if (!ok) BOOST_TEST_MESSAGE("message: " << e.what());
      return ok;
    };
  };
  const std::vector<std::int32_t> ok{1, 2, 3}, bad{1, 512, 3}, negative{-1, 2, 3}, short_{1, 2};
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients(bad, ok), rwkv::error, message_has("token id 512 is out of range"));
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients(ok, bad), rwkv::error, message_has("token id 512 is out of range"));
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients(negative, ok), rwkv::error, message_has("token id -1"));
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients(ok, short_), rwkv::error, message_has("differ in length"));
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients({}, {}), rwkv::error, message_has("at least one input token"));
  auto s = net.initial_state();
  s.tensors[1].pop_back();
  BOOST_CHECK_EXCEPTION(net.loss_and_gradients(ok, ok, rwkv::train::form::sequence, &s), rwkv::error,
                        message_has("initial state tensor 1"));
  // A state file of another model: the RWKV-7 golden's init_state read for the tiny 12-layer model.
  auto tiny = rwkv::train::network<rwkv::train::v7::layer>::load(data_path("tiny-7v0.model.safetensors"));
  BOOST_CHECK_EXCEPTION(rwkv::train::read_state(data_path("v7-dev.grad.safetensors"), tiny.initial_state()),
                        rwkv::error, message_has("does not match this model"));
  // Not a checkpoint: named as such.
  BOOST_CHECK_EXCEPTION(rwkv::train::with_network(data_path("english.txt"), [](auto&) { return 0; }), rwkv::error,
                        message_has("english.txt"));
  // Quantized weights cannot be trained.
  const auto q8 = std::filesystem::temp_directory_path() / ("rwkvpp-train-q8-" + std::to_string(::getpid()));
  rwkv::quantize_checkpoint(data_path("v7-dev.model.safetensors"), q8, rwkv::storage_choice::q8);
  BOOST_CHECK_EXCEPTION(rwkv::train::with_network(q8, [](auto&) { return 0; }), rwkv::error,
                        message_has("training needs the full-precision weights"));
  std::filesystem::remove(q8);
}

// RWKV-7a has no official training code, so no reference gradients: its backward is checked against finite
// differences of its own loss (check_gradients) in both forms, the two forms against each other, and its loss
// against the inference model's (which matches the official reference).
BOOST_AUTO_TEST_CASE(v7a_backward_passes_check_gradients) {
  namespace tr = rwkv::train;
  const auto golden = rwkv::io::safetensors_file::open(data_path("v7a-dev.golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const std::vector<std::int32_t> in(tokens.begin(), tokens.begin() + 16), tg(tokens.begin() + 1, tokens.begin() + 17);
  auto net = tr::network<tr::v7a::layer>::load(data_path("v7a-dev.model.safetensors"));

  // The loss of the inference model's logits.
  const auto model = rwkv::v7a::Model<rwkv::f32>::load(data_path("v7a-dev.model.safetensors"));
  auto s = model.make_state();
  const auto logits = model.forward(in, s, rwkv::logits_for::all);
  double want = 0;
  for (std::size_t t = 0; t < in.size(); ++t)
    want -= rwkv::test::log_softmax(logits.row(static_cast<Eigen::Index>(t)).data(),
                                    logits.cols())[static_cast<std::size_t>(tg[t])];
  want /= static_cast<double>(in.size());
  BOOST_TEST(net.loss(in, tg) == want, boost::test_tools::tolerance(1e-5));

  std::map<std::string, std::vector<float>> by_form[2];
  for (int k = 0; k < 2; ++k) {
    const auto f = k == 0 ? tr::form::sequence : tr::form::step;
    const auto r = tr::check_gradients(net, in, tg, {.segments = f});
    BOOST_TEST_MESSAGE("7a check_gradients: " << r.checked << " directions, worst " << r.worst << " at " << r.tensor
                                              << ": " << r.analytic << " vs " << r.numeric);
    BOOST_CHECK_GT(r.checked, 60u);
    BOOST_CHECK_LT(r.worst, 2e-2);
    net.parameters().zero_grad();
    net.loss_and_gradients(in, tg, f);
    for (const auto& p : net.parameters().all())
      by_form[k][p.name] = std::vector<float>(p.grad.data(), p.grad.data() + p.grad.size());
  }
  for (const auto& [name, g] : by_form[0]) check_gradient(by_form[1][name].data(), g, "7a step vs sequence: " + name);
  // The merge's path to the embedding (emb'·X_sᵀ) is small at the test data's scale (X_s ~ 0.06/√C): with X_s 30
  // times larger it carries a large part of the embedding's gradient, and a missed or wrong path fails the check.
  for (const char* name : {"blocks.0.ffn.s_emb_x.weight", "blocks.1.ffn.s_emb_x.weight"})
    net.parameters().get_any(name).value *= 30.f;
  const auto strong = tr::check_gradients(net, in, tg);
  BOOST_TEST_MESSAGE("7a check_gradients, X_s x 30: worst " << strong.worst << " at " << strong.tensor);
  BOOST_CHECK_LT(strong.worst, 2e-2);
  // Every DeepEmbed tensor takes part, and the embedding through the merge.
  for (const char* name : {"blocks.0.ffn.s0", "blocks.1.ffn.s1", "blocks.0.ffn.s2", "blocks.1.ffn.s_emb.weight",
                           "blocks.0.ffn.s_emb_x.weight", "emb.weight"}) {
    const auto& g = by_form[0][name];
    BOOST_CHECK_MESSAGE(std::any_of(g.begin(), g.end(), [](float x) { return x != 0.f; }), name << " has no gradient");
  }
}

// An RWKV-7a checkpoint trains through the version-detecting entry point (rwkv-cli grad/train use it); 7b says it
// cannot yet.
BOOST_AUTO_TEST_CASE(with_network_detects_v7a_and_refuses_v7b) {
  const bool is_7a = rwkv::train::with_network(data_path("v7a-dev.model.safetensors"), [](auto& net) {
    return std::is_same_v<std::decay_t<decltype(net)>, rwkv::train::network<rwkv::train::v7a::layer>>;
  });
  BOOST_TEST(is_7a);
  try {
    rwkv::train::with_network(data_path("v7b-dev.model.safetensors"), [](auto&) { return std::string(); });
    BOOST_ERROR("RWKV-7b trained");
  } catch (const rwkv::error& e) {
    BOOST_TEST(std::string(e.what()).find("training RWKV-7b is not supported yet") != std::string::npos);
  }
}

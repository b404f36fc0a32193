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
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../support/golden.hpp"
#include "rwkv/quantize.hpp"
#include "rwkv/train.hpp"
#include "rwkv/v7a.hpp"
#include "rwkv/v7b.hpp"

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

namespace {

// The first 16 tokens of a golden file and their next tokens.
std::pair<std::vector<std::int32_t>, std::vector<std::int32_t>> inputs_and_targets(const std::string& golden_file) {
  const auto golden = rwkv::io::safetensors_file::open(data_path(golden_file));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  return {{tokens.begin(), tokens.begin() + 16}, {tokens.begin() + 1, tokens.begin() + 17}};
}

// The mean cross-entropy of the inference model's logits (which match the official reference).
template <class Model>
double inference_loss(const std::string& file, const std::vector<std::int32_t>& in,
                      const std::vector<std::int32_t>& tg) {
  const auto model = Model::load(data_path(file));
  auto s = model.make_state();
  const auto logits = model.forward(in, s, rwkv::logits_for::all);
  double loss = 0;
  for (std::size_t t = 0; t < in.size(); ++t)
    loss -= rwkv::test::log_softmax(logits.row(static_cast<Eigen::Index>(t)).data(),
                                    logits.cols())[static_cast<std::size_t>(tg[t])];
  return loss / static_cast<double>(in.size());
}

}  // namespace

// RWKV-7a has no official training code, so no reference gradients: its backward is checked against finite
// differences of its own loss (check_gradients) in both forms, the two forms against each other, and its loss
// against the inference model's (which matches the official reference).
BOOST_AUTO_TEST_CASE(v7a_backward_passes_check_gradients) {
  namespace tr = rwkv::train;
  const auto [in, tg] = inputs_and_targets("v7a-dev.golden.safetensors");
  auto net = tr::network<tr::v7a::layer>::load(data_path("v7a-dev.model.safetensors"));
  const double want = inference_loss<rwkv::v7a::Model<rwkv::f32>>("v7a-dev.model.safetensors", in, tg);
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

// RWKV-7b: the same checks as 7a, with DeepEmbedAttention's key/value cache in the state. The gradient reaches the
// latents of positions cached by an earlier call (checked by finite differences of the loss along d_initial) and
// a split run's losses add up to the whole run's.
BOOST_AUTO_TEST_CASE(v7b_backward_passes_check_gradients) {
  namespace tr = rwkv::train;
  const auto [in, tg] = inputs_and_targets("v7b-dev.golden.safetensors");
  auto net = tr::network<tr::v7b::layer>::load(data_path("v7b-dev.model.safetensors"));
  const double want = inference_loss<rwkv::v7b::Model<rwkv::f32>>("v7b-dev.model.safetensors", in, tg);
  BOOST_TEST(net.loss(in, tg) == want, boost::test_tools::tolerance(1e-5));
  BOOST_TEST(net.loss(in, tg, tr::form::step) == want, boost::test_tools::tolerance(1e-5));

  std::map<std::string, std::vector<float>> by_form[2];
  for (int k = 0; k < 2; ++k) {
    const auto f = k == 0 ? tr::form::sequence : tr::form::step;
    // The attention bends the loss more than the other blocks: at check_gradients' default step the finite
    // differences of the first layer's tensors are 2.7% off, at a 10 times smaller one (the loss still moves
    // 100 times its float32 rounding) under 0.2%.
    const auto r = tr::check_gradients(net, in, tg, {.change = 3e-4, .segments = f});
    BOOST_TEST_MESSAGE("7b check_gradients: " << r.checked << " directions, worst " << r.worst << " at " << r.tensor
                                              << ": " << r.analytic << " vs " << r.numeric);
    BOOST_CHECK_GT(r.checked, 90u);
    BOOST_CHECK_LT(r.worst, 2e-2);
    net.parameters().zero_grad();
    net.loss_and_gradients(in, tg, f);
    for (const auto& p : net.parameters().all())
      by_form[k][p.name] = std::vector<float>(p.grad.data(), p.grad.data() + p.grad.size());
  }
  for (const auto& [name, g] : by_form[0]) check_gradient(by_form[1][name].data(), g, "7b step vs sequence: " + name);
  for (const char* name : {"blocks.0.qkv.qq.weight", "blocks.1.qkv.k1", "blocks.0.qkv.k2", "blocks.1.qkv.v1",
                           "blocks.0.qkv.v2", "blocks.1.qkv.k_emb.weight", "blocks.0.qkv.k_emb_x.weight",
                           "blocks.1.qkv.v_emb.weight", "blocks.0.qkv.v_emb_x.weight", "blocks.1.qkv.x_q",
                           "blocks.0.qkv.x_k", "blocks.1.qkv.x_v", "blocks.0.qkv.lnq.weight", "blocks.1.qkv.lnk.bias",
                           "blocks.0.qkv.lnv.weight", "blocks.0.ln0.weight", "emb.weight"}) {
    const auto& g = by_form[0][name];
    BOOST_CHECK_MESSAGE(std::any_of(g.begin(), g.end(), [](float x) { return x != 0.f; }), name << " has no gradient");
  }

  // Split: 6 tokens, then 10 from the state they leave (6 cached positions per layer).
  const std::span<const std::int32_t> all_in(in), all_tg(tg);
  tr::state after;
  const double head = net.loss(all_in.first(6), all_tg.first(6), tr::form::sequence, nullptr, &after);
  BOOST_REQUIRE_EQUAL(after.tensors.size(), 2u * 7u);  // per layer: shift, wkv, tokens, latents x2, q_prev, shift
  BOOST_TEST(after.tensors[3].size() == 6u * 32u);
  BOOST_TEST(after.shape_of(3) == (std::vector<std::int64_t>{6, 32}), boost::test_tools::per_element());
  for (int k = 0; k < 2; ++k) {
    const auto f = k == 0 ? tr::form::sequence : tr::form::step;
    tr::state d;
    net.parameters().zero_grad();
    const double tail = net.loss_and_gradients(all_in.subspan(6), all_tg.subspan(6), f, &after, &d);
    BOOST_TEST((6 * head + 10 * tail) / 16 == want, boost::test_tools::tolerance(1e-5));
    // ∂loss/∂(cached key and value latents of both layers), against finite differences along it.
    for (std::size_t i : {3u, 4u, 10u, 11u}) {
      BOOST_REQUIRE_EQUAL(d.tensors[i].size(), after.tensors[i].size());
      const Eigen::Map<const Eigen::VectorXf> g(d.tensors[i].data(), static_cast<Eigen::Index>(d.tensors[i].size()));
      BOOST_REQUIRE_GT(g.norm(), 0.f);
      auto moved = [&](float e) {
        tr::state x = after;
        Eigen::Map<Eigen::VectorXf>(x.tensors[i].data(), g.size()) += e * g.normalized();
        return net.loss(all_in.subspan(6), all_tg.subspan(6), f, &x);
      };
      // Central differences with Richardson extrapolation, the loss moved by about 0.03%.
      const float eps = 3e-4f * static_cast<float>(tail) / g.norm();
      auto central = [&](float e) { return (moved(e) - moved(-e)) / (2.0 * static_cast<double>(e)); };
      const double numeric = (4 * central(eps / 2) - central(eps)) / 3;
      BOOST_TEST(numeric == static_cast<double>(g.norm()), boost::test_tools::tolerance(1e-2));
    }
    BOOST_TEST(d.tensors[2].size() == 6u);  // the token ids: no gradient, but the cache's shape
  }
}

// RWKV-7a and 7b checkpoints train through the version-detecting entry point (rwkv-cli grad/train use it).
BOOST_AUTO_TEST_CASE(with_network_detects_v7a_and_v7b) {
  const bool is_7a = rwkv::train::with_network(data_path("v7a-dev.model.safetensors"), [](auto& net) {
    return std::is_same_v<std::decay_t<decltype(net)>, rwkv::train::network<rwkv::train::v7a::layer>>;
  });
  BOOST_TEST(is_7a);
  const bool is_7b = rwkv::train::with_network(data_path("v7b-dev.model.safetensors"), [](auto& net) {
    return std::is_same_v<std::decay_t<decltype(net)>, rwkv::train::network<rwkv::train::v7b::layer>>;
  });
  BOOST_TEST(is_7b);
}

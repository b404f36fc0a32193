// The training loop (rwkv::train::trainer): gradient accumulation over a batch, checkpoints that resume
// bit-identically (f32, bf16 master weights, state tuning), state tuning that leaves the weights alone and
// produces a state file the inference model starts from, and the errors a bad run or a bad file gives.
#define BOOST_TEST_MODULE trainer
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../support/golden.hpp"
#include "rwkv/any_model.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/train.hpp"
#include "rwkv/v7.hpp"

namespace {

namespace tr = rwkv::train;
using v7_network = tr::network<tr::v7::layer>;

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("rwkvpp-trainer-" + std::to_string(::getpid()) + "-" + name);
}

// A fresh 2-layer RWKV-7 (C = 64, head size 32, byte vocabulary) initialised as the official code does, saved once.
const std::filesystem::path& tiny_v7() {
  static const auto path = [] {
    auto p = temp_path("init.safetensors");
    rwkv::init::builder b({.n_layer = 2, .n_embd = 64, .vocab = 256, .head_size = 32}, 3);
    rwkv::init::model<rwkv::v7::Block<rwkv::f32, rwkv::cpu<>, 32>>(b);
    b.save(p);
    return p;
  }();
  return path;
}

struct cleanup {
  ~cleanup() { std::filesystem::remove(tiny_v7()); }
} const cleanup_at_exit;

std::vector<std::vector<float>> weights_of(const tr::parameter_set& ps) {
  std::vector<std::vector<float>> out;
  for (const auto& p : ps.all()) out.emplace_back(p.value.data(), p.value.data() + p.value.size());
  return out;
}

tr::trainer_options small_options(tr::trained what, tr::weight_precision precision) {
  return {.context = 24,
          .batch = 3,
          .steps = 8,
          .warmup = 2,
          .lr = 3e-3f,
          .lr_final = 1e-3f,
          .adam = {.weight_decay = 0.01f},
          .what = what,
          .precision = precision,
          .seed = 11};
}

}  // namespace

// The gradient of a step is the mean of its sequences' gradients (L2Wrap included), the windows drawn from the
// seeded generator; the loss reported is their mean loss.
BOOST_AUTO_TEST_CASE(a_step_accumulates_the_mean_gradient_of_its_batch) {
  const auto text = rwkv::test::byte_tokens("english.txt");
  auto net = v7_network::load(tiny_v7());
  auto opts = small_options(tr::trained::weights, tr::weight_precision::f32);
  opts.grad_clip = 0;  // the gradients stay as accumulated
  tr::trainer t(net, text, opts);
  const auto r = t.step();

  auto ref = v7_network::load(tiny_v7());
  ref.use_l2wrap(true);
  std::mt19937_64 rng(opts.seed);
  double loss = 0;
  for (int b = 0; b < opts.batch; ++b) {
    const auto o = static_cast<std::size_t>(rng() % (text.size() - static_cast<std::size_t>(opts.context)));
    const std::span<const std::int32_t> all(text);
    loss += ref.loss_and_gradients(all.subspan(o, 24), all.subspan(o + 1, 24));
  }
  BOOST_CHECK_CLOSE(r.loss, loss / opts.batch, 1e-9);
  BOOST_CHECK_EQUAL(r.tokens, 3 * 24);
  double worst = 0;  // relative to the tensor's largest gradient: the two sums round differently
  for (std::size_t i = 0; i < ref.parameters().all().size(); ++i) {
    const auto& want = ref.parameters().all()[i].grad;
    const auto& got = net.parameters().all()[i].grad;
    const double scale = std::max(1e-30, static_cast<double>(want.cwiseAbs().maxCoeff()) / 3);
    worst = std::max(worst, static_cast<double>((got - want / 3.f).cwiseAbs().maxCoeff()) / scale);
  }
  BOOST_TEST_MESSAGE("worst relative gradient difference: " << worst);
  BOOST_CHECK_LT(worst, 1e-5);
}

// Training 8 steps straight and training 4, saving, resuming in a new process-like setup (fresh network from the
// initial file, fresh trainer) and training 4 more give the same weights, bit for bit.
BOOST_AUTO_TEST_CASE(a_resumed_run_is_bit_identical_to_an_uninterrupted_one) {
  const auto text = rwkv::test::byte_tokens("english.txt");
  for (auto [what, precision] : {std::pair{tr::trained::weights, tr::weight_precision::f32},
                                 {tr::trained::weights, tr::weight_precision::bf16},
                                 {tr::trained::state, tr::weight_precision::f32}}) {
    const std::string label = std::string(tr::to_string(what)) + "/" + tr::to_string(precision);
    const auto opts = small_options(what, precision);

    auto straight_net = v7_network::load(tiny_v7());
    tr::trainer straight(straight_net, text, opts);
    std::vector<double> straight_losses;
    for (int i = 0; i < 8; ++i) straight_losses.push_back(straight.step().loss);

    const auto ckpt = temp_path("resume.safetensors");
    {
      auto net = v7_network::load(tiny_v7());
      tr::trainer first(net, text, opts);
      for (int i = 0; i < 4; ++i) first.step();
      first.save(ckpt);
    }
    auto net = v7_network::load(tiny_v7());
    tr::trainer resumed(net, text, opts);
    resumed.resume(ckpt);
    BOOST_CHECK_EQUAL(resumed.steps_done(), 4);
    std::vector<double> resumed_losses;
    for (int i = 0; i < 4; ++i) resumed_losses.push_back(resumed.step().loss);

    BOOST_TEST_INFO(label);
    BOOST_CHECK(weights_of(net.parameters()) == weights_of(straight_net.parameters()));
    BOOST_TEST_INFO(label);
    BOOST_CHECK(resumed.initial_state().tensors == straight.initial_state().tensors);
    for (int i = 0; i < 4; ++i)
      BOOST_CHECK_EQUAL(resumed_losses[static_cast<std::size_t>(i)], straight_losses[static_cast<std::size_t>(i + 4)]);

    if (precision == tr::weight_precision::bf16)  // the forward sees bf16 weights; the masters are float32
      for (const auto& p : net.parameters().all())
        for (Eigen::Index i = 0; i < p.value.size(); ++i)
          BOOST_REQUIRE_EQUAL(p.value.data()[i], rwkv::to_float(rwkv::to_bf16(p.value.data()[i])));

    // The saved model is an ordinary checkpoint.
    const auto m = rwkv::any_model::load(ckpt);
    BOOST_CHECK_EQUAL(m.info().n_layer, 2);
    std::filesystem::remove(ckpt);
    std::filesystem::remove(tr::trainer_state_path(ckpt));
  }
}

// State tuning trains the initial state only: the weights stay bit-identical, the loss on the tuned text falls, and
// the state file it writes is what the inference model (and so `rwkv-cli generate --state-in`) starts from.
BOOST_AUTO_TEST_CASE(state_tuning_trains_only_the_state_and_inference_starts_from_it) {
  const auto model_path = rwkv::test::data_path("v7-dev.model.safetensors");
  auto net = v7_network::load(model_path);
  const auto before = weights_of(net.parameters());
  // One window: the tuned state works as a learned prompt that makes the model expect this sentence.
  const std::string sentence = "The answer is always forty-two, my friend.";
  const std::vector<std::int32_t> text(sentence.begin(), sentence.end());
  const auto T = static_cast<std::int64_t>(text.size()) - 1;

  tr::trainer t(net, text,
                {.context = T,
                 .batch = 1,
                 .steps = 60,
                 .warmup = 0,
                 .lr = 1.f,
                 .lr_final = 0.1f,
                 .what = tr::trained::state,
                 .seed = 5});
  const std::span<const std::int32_t> probe(text);
  const double loss_before = t.evaluate(probe);
  for (int i = 0; i < 60; ++i) t.step();
  const double loss_after = t.evaluate(probe);
  BOOST_TEST_MESSAGE("state tuning: loss on the sentence " << loss_before << " -> " << loss_after);
  BOOST_CHECK_LT(loss_after, 0.25 * loss_before);
  BOOST_CHECK(weights_of(net.parameters()) == before);

  const auto tuned = t.initial_state();
  const auto state_file = temp_path("tuned.state.safetensors");
  net.save_state_file(state_file, tuned);
  BOOST_CHECK(net.read_state_file(state_file).tensors == tuned.tensors);

  const auto m = rwkv::any_model::load(model_path);
  auto s = m.load_state(state_file);
  const auto logits = m.forward(probe.first(static_cast<std::size_t>(T)), s, rwkv::logits_for::all);
  double loss = 0;
  for (Eigen::Index r = 0; r < T; ++r) {
    const float mx = logits.row(r).maxCoeff();
    loss += std::log((logits.row(r).array() - mx).exp().cast<double>().sum()) + mx -
            logits(r, probe[static_cast<std::size_t>(r + 1)]);
  }
  loss /= static_cast<double>(T);
  BOOST_TEST_MESSAGE("inference from the state file: " << loss);
  BOOST_CHECK_CLOSE(loss, loss_after, 1e-3);
  std::filesystem::remove(state_file);
}

// RWKV-5/6 state tuning exports as the official `att.time_state` tensors: the inference model loaded with them
// starts from the tuned WKV state (token shifts zero).
BOOST_AUTO_TEST_CASE(rwkv6_tuned_state_exports_as_time_state_tensors) {
  const auto model_path = rwkv::test::data_path("v6-dev.model.safetensors");
  auto net = tr::network<tr::v6::layer>::load(model_path);
  auto s = net.initial_state();
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.f, 0.5f);
  const auto names = tr::v6::layer::state_names(net.config());
  for (std::size_t i = 0; i < s.tensors.size(); ++i)
    if (names[i % names.size()] == "att.wkv")
      for (auto& v : s.tensors[i]) v = normal(rng);

  auto tensors = net.parameters().values();
  for (auto& t : net.time_state_tensors(s)) tensors.push_back(std::move(t));
  const auto path = temp_path("v6-time-state.safetensors");
  rwkv::io::save_safetensors(path, tensors, {{"format", "pt"}});
  const std::vector<std::int32_t> tokens{1, 7, 3, 9, 2, 5};
  const double want = net.loss(std::span(tokens).first(5), std::span(tokens).subspan(1), tr::form::sequence, &s);

  const auto m = rwkv::any_model::load(path);
  auto st = m.make_state();
  const auto logits = m.forward(std::span(tokens).first(5), st, rwkv::logits_for::all);
  double got = 0;
  for (Eigen::Index r = 0; r < 5; ++r) {
    const float mx = logits.row(r).maxCoeff();
    got += std::log((logits.row(r).array() - mx).exp().cast<double>().sum()) + mx -
           logits(r, tokens[static_cast<std::size_t>(r + 1)]);
  }
  got /= 5;
  BOOST_CHECK_CLOSE(got, want, 1e-3);
  std::filesystem::remove(path);
  BOOST_CHECK_THROW(v7_network::load(tiny_v7()).time_state_tensors(v7_network::load(tiny_v7()).initial_state()),
                    rwkv::error);
}

BOOST_AUTO_TEST_CASE(bad_runs_and_bad_checkpoints_give_clear_errors) {
  const auto text = rwkv::test::byte_tokens("english.txt");
  auto net = v7_network::load(tiny_v7());
  const auto opts = small_options(tr::trained::weights, tr::weight_precision::f32);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const rwkv::error& e) {
      BOOST_TEST_MESSAGE(e.what());
      return std::string(e.what());
    }
    BOOST_ERROR("no error");
    return std::string();
  };
  // A text shorter than one context window is an error, not a hang.
  BOOST_CHECK(message([&] {
                tr::trainer(net, std::vector<std::int32_t>(10, 65), opts);
              }).find("fewer than one context window") != std::string::npos);
  BOOST_CHECK(message([&] { tr::trainer(net, std::vector<std::int32_t>(100, 300), opts); }).find("out of range") !=
              std::string::npos);

  // A NaN weight gives a NaN loss: the step stops with the step named, the weights untouched.
  tr::trainer t(net, text, opts);
  t.step();
  net.parameters().all()[5].value(0, 0) = NAN;
  const auto kept = weights_of(net.parameters());
  const auto nan_error = message([&] { t.step(); });
  BOOST_CHECK(nan_error.find("training step 1") != std::string::npos);
  BOOST_CHECK(nan_error.find(net.parameters().all()[5].name) != std::string::npos);
  const auto after = weights_of(net.parameters());
  BOOST_CHECK(std::equal(kept.begin(), kept.end(), after.begin(), [](const auto& a, const auto& b) {
    return std::equal(a.begin(), a.end(), b.begin(),
                      [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); });
  }));

  // Resuming with other options, or from a damaged or missing trainer file, is refused.
  auto good = v7_network::load(tiny_v7());
  const auto ckpt = temp_path("bad.safetensors");
  tr::trainer saver(good, text, opts);
  saver.step();
  saver.save(ckpt);
  auto other_opts = opts;
  other_opts.context = 16;
  auto net2 = v7_network::load(tiny_v7());
  tr::trainer other(net2, text, other_opts);
  BOOST_CHECK(message([&] { other.resume(ckpt); }).find("context") != std::string::npos);
  tr::trainer other_text(net2, std::vector<std::int32_t>(text.begin(), text.end() - 1), opts);
  BOOST_CHECK(message([&] { other_text.resume(ckpt); }).find("data_") != std::string::npos);
  {
    std::ofstream f(tr::trainer_state_path(ckpt), std::ios::binary | std::ios::trunc);
    f << "garbage";
  }
  tr::trainer same(net2, text, opts);
  BOOST_CHECK_THROW(same.resume(ckpt), rwkv::error);
  std::filesystem::remove(tr::trainer_state_path(ckpt));
  BOOST_CHECK_THROW(same.resume(ckpt), rwkv::error);
  std::filesystem::remove(ckpt);
}

// Training end to end: a small RWKV-7 initialised as the official code does trains on English text with AdamW,
// the schedule and clipping, and its loss on held-out text falls far below the uniform byte distribution's.
#define BOOST_TEST_MODULE train_loop
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
#include "rwkv/init/builder.hpp"
#include "rwkv/train.hpp"
#include "rwkv/train/optimizer.hpp"
#include "rwkv/v7.hpp"

namespace {

std::vector<std::int32_t> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto s = ss.str();
  return {s.begin(), s.end()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(rwkv7_learns_english_bytes) {
  const auto path = std::filesystem::temp_directory_path() / ("rwkvpp-train-" + std::to_string(::getpid()));
  rwkv::init::builder b({.n_layer = 2, .n_embd = 64, .vocab = 256, .head_size = 32}, 1);
  rwkv::init::model<rwkv::v7::Block<rwkv::f32, rwkv::cpu<>, 32>>(b);
  b.save(path);
  auto net = rwkv::train::network<rwkv::train::v7::layer>::load(path);
  std::filesystem::remove(path);

  const auto text = bytes_of(rwkv::test::data_path("english.txt"));
  const std::size_t held = 512, ctx = 64;
  BOOST_REQUIRE_GT(text.size(), held + 4 * ctx);
  const std::vector<std::int32_t> train(text.begin(), text.end() - held), test(text.end() - held, text.end());
  auto held_out_loss = [&] {
    const std::vector<std::int32_t> in(test.begin(), test.end() - 1), tg(test.begin() + 1, test.end());
    return net.loss(in, tg);
  };

  const double before = held_out_loss();
  BOOST_TEST_MESSAGE("held-out loss before training: " << before);
  BOOST_CHECK_CLOSE(before, std::log(256.0), 2.0);  // an untrained model is near uniform

  rwkv::train::adamw opt(net.parameters(), {.weight_decay = 0.01f});
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::size_t> offset(0, train.size() - ctx - 2);
  const std::int64_t steps = 150;
  double first = 0, last = 0;
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto o = offset(rng);
    const std::vector<std::int32_t> in(train.begin() + o, train.begin() + o + ctx),
        tg(train.begin() + o + 1, train.begin() + o + ctx + 1);
    net.parameters().zero_grad();
    const double loss = net.loss_and_gradients(in, tg);
    rwkv::train::check_loss(loss, step);
    rwkv::train::clip_gradients(net.parameters(), 1.0, step);
    opt.step(rwkv::train::scheduled_lr(step, 10, steps, 3e-3f, 3e-4f));
    (step == 0 ? first : last) = loss;
  }
  const double after = held_out_loss();
  BOOST_TEST_MESSAGE("training loss " << first << " -> " << last << "; held-out loss after " << steps
                                      << " steps: " << after);
  BOOST_CHECK_LT(after, 3.0);
}

BOOST_AUTO_TEST_CASE(non_finite_gradients_stop_training_naming_the_tensor) {
  auto net = rwkv::train::network<rwkv::train::v7::layer>::load(rwkv::test::data_path("v7-dev.model.safetensors"));
  net.parameters().zero_grad();
  net.parameters().all()[3].grad(0, 5) = NAN;
  try {
    rwkv::train::clip_gradients(net.parameters(), 1.0, 42);
    BOOST_FAIL("no error");
  } catch (const rwkv::error& e) {
    const std::string what = e.what();
    BOOST_TEST_MESSAGE(what);
    BOOST_CHECK(what.find("training step 42") != std::string::npos);
    BOOST_CHECK(what.find(net.parameters().all()[3].name) != std::string::npos);
  }
  BOOST_CHECK_THROW(rwkv::train::check_loss(INFINITY, 3), rwkv::error);
}

BOOST_AUTO_TEST_CASE(schedule_warms_up_then_decays_to_the_final_rate) {
  using rwkv::train::scheduled_lr;
  BOOST_CHECK_CLOSE(scheduled_lr(0, 10, 100, 1.f, 0.1f), 0.1f, 1e-4);
  BOOST_CHECK_CLOSE(scheduled_lr(9, 10, 100, 1.f, 0.1f), 1.f, 1e-4);
  BOOST_CHECK_CLOSE(scheduled_lr(55, 10, 100, 1.f, 0.1f), 0.55f, 1e-3);  // half way: the mean of the two
  BOOST_CHECK_CLOSE(scheduled_lr(100, 10, 100, 1.f, 0.1f), 0.1f, 1e-3);
}

// A research mixer trains: examples/custom_block.cpp's softplus-decay variant, written for training with the
// library's operations (examples/softplus_decay_train.hpp), passes check_gradients, learns English bytes, and the
// weights it learns run in the inference model of custom_block.cpp with the same loss.
#define BOOST_TEST_MODULE custom_mixer
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../../examples/softplus_decay_mix.hpp"
#include "../../examples/softplus_decay_train.hpp"
#include "../support/golden.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/model/composed_model.hpp"
#include "rwkv/train.hpp"
#include "rwkv/v7.hpp"

namespace {

namespace tr = rwkv::train;
using InferenceBlock = rwkv::Block<SoftplusDecayMix<16>, rwkv::v7::ChannelMix<>>;
using InferenceModel = rwkv::ComposedModel<InferenceBlock>;
using layer = tr::block<SoftplusDecayTrain<16>>;

// The same fresh checkpoint for both sides (style::exercised: no zero-initialised paths, so every gradient is
// exercised).
struct checkpoint_bytes {
  std::vector<std::byte> bytes;
  rwkv::io::safetensors_file file;
  explicit checkpoint_bytes(const std::vector<rwkv::io::tensor_to_write>& t)
      : bytes(rwkv::io::to_safetensors_bytes(t)), file(rwkv::io::safetensors_file::from_bytes(bytes, "<custom>")) {}
  rwkv::io::checkpoint checkpoint() const {
    return {file.path(), rwkv::io::file_format::safetensors, file.tensors(), file.owner(), file.metadata()};
  }
};

checkpoint_bytes fresh(rwkv::init::style style) {
  rwkv::init::builder b({.n_layer = 2, .n_embd = 64, .vocab = 256, .head_size = 16}, 5, style);
  rwkv::init::model<InferenceBlock>(b);
  return checkpoint_bytes(b.tensors());
}

double inference_loss(const InferenceModel& m, std::span<const std::int32_t> tokens) {
  auto s = m.make_state();
  const auto logits = m.forward(tokens.first(tokens.size() - 1), s, rwkv::logits_for::all);
  double loss = 0;
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    const float mx = logits.row(t).maxCoeff();
    loss += std::log((logits.row(t).array() - mx).exp().cast<double>().sum()) + mx -
            logits(t, tokens[static_cast<std::size_t>(t + 1)]);
  }
  return loss / static_cast<double>(logits.rows());
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_custom_mixer_backward_passes_check_gradients) {
  const auto ck = fresh(rwkv::init::style::exercised);
  auto net = tr::network<layer>::from(ck.checkpoint());
  const auto text = rwkv::test::byte_tokens("english.txt");
  const std::vector<std::int32_t> in(text.begin(), text.begin() + 20), tg(text.begin() + 1, text.begin() + 21);
  for (auto f : {tr::form::sequence, tr::form::step}) {
    const auto r = tr::check_gradients(net, in, tg, {.segments = f});
    BOOST_TEST_MESSAGE("check_gradients: " << r.checked << " directions, worst " << r.worst << " at " << r.tensor
                                           << ": " << r.analytic << " vs " << r.numeric);
    BOOST_CHECK_GT(r.checked, 20u);
    BOOST_CHECK_LT(r.worst, 2e-2);
  }
}

BOOST_AUTO_TEST_CASE(check_gradients_finds_a_broken_backward) {
  // RWKV-7's network, whose backward matches the reference, passes; the same network with a sign error in each
  // layer's input gradient does not.
  auto net = tr::network<tr::v7::layer>::load(rwkv::test::data_path("v7-dev.model.safetensors"));
  const std::vector<std::int32_t> in{1, 5, 9, 2, 7, 3}, tg{5, 9, 2, 7, 3, 8};
  const auto good = tr::check_gradients(net, in, tg);
  BOOST_TEST_MESSAGE("RWKV-7: worst " << good.worst << " at " << good.tensor);
  BOOST_CHECK_LT(good.worst, 0.1);  // v7-dev's random weights curve fast: a few percent is the check's own error

  struct broken_layer : tr::v7::layer {
    using tr::v7::layer::layer;
    void backward(rwkv::row_matrix& dx, std::span<std::vector<float>> ds, tr::segment_context& seg, const tape& tp) {
      tr::v7::layer::backward(dx, ds, seg, tp);
      dx *= -1.f;  // a sign error in the layer's input gradient
    }
  };
  auto bad = tr::network<broken_layer>::load(rwkv::test::data_path("v7-dev.model.safetensors"));
  const auto r = tr::check_gradients(bad, in, tg);
  BOOST_TEST_MESSAGE("with a sign error: worst " << r.worst << " at " << r.tensor);
  BOOST_CHECK_GT(r.worst, 0.5);
}

BOOST_AUTO_TEST_CASE(the_custom_mixer_learns_and_runs_in_the_inference_model) {
  const auto ck = fresh(rwkv::init::style::official);
  auto net = tr::network<layer>::from(ck.checkpoint());
  const auto text = rwkv::test::byte_tokens("english.txt");
  const std::vector<std::int32_t> training(text.begin(), text.end() - 512), held(text.end() - 512, text.end());
  tr::trainer t(net, training, {.context = 64, .steps = 150, .warmup = 10, .lr = 3e-3f, .lr_final = 3e-4f, .seed = 2});
  const double before = t.evaluate(held);
  while (t.steps_done() < 150) t.step();
  const double after = t.evaluate(held);
  BOOST_TEST_MESSAGE("softplus-decay mixer: held-out loss " << before << " -> " << after);
  BOOST_CHECK_LT(after, 3.0);

  // The trained weights, loaded by the inference model of custom_block.cpp: the same loss on held-out text.
  const auto trained = rwkv::io::to_safetensors_bytes(net.parameters().values());
  const auto file = rwkv::io::safetensors_file::from_bytes(trained, "<trained>");
  rwkv::io::weight_reader reader(file.path(), file.tensors(), file.owner());
  const auto model = InferenceModel::from_reader(reader);
  const std::span<const std::int32_t> probe(held.data(), 65);
  const double want = net.loss(probe.first(64), probe.subspan(1, 64));
  const double got = inference_loss(model, probe);
  BOOST_TEST_MESSAGE("training network " << want << ", inference model " << got);
  BOOST_CHECK_CLOSE(got, want, 1e-3);
}

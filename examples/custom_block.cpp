// A model built around a research time mixer (softplus_decay_mix.hpp) and RWKV-7's channel mixer: weights
// initialised from scratch, saved as safetensors under the mixer's own tensor names, loaded back, then run in
// both forms (one call over the prompt, and token by token), which agree.
//
//   custom_block [OUT.safetensors]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <rwkv/init/builder.hpp>
#include <rwkv/model/composed_model.hpp>
#include <rwkv/v7.hpp>

#include "softplus_decay_mix.hpp"

using Block = rwkv::Block<SoftplusDecayMix<16>, rwkv::v7::ChannelMix<>>;
using Model = rwkv::ComposedModel<Block>;

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : "custom_block.safetensors";

  // 1. Fresh weights: 4 blocks of width 128, a byte vocabulary.
  rwkv::init::builder init({.n_layer = 4, .n_embd = 128, .vocab = 256, .head_size = 16}, /*seed*/ 42,
                           rwkv::init::style::exercised);
  rwkv::init::model<Block>(init);
  init.save(path);

  // 2. Load it like any checkpoint.
  const Model model = Model::load(path);
  std::printf("loaded %s: %lld layers, %lld parameters\n", path.c_str(), static_cast<long long>(model.cfg().n_layer),
              static_cast<long long>(model.parameter_count()));

  // 3. Sequence form and step form.
  const std::vector<std::int32_t> prompt{'H', 'e', 'l', 'l', 'o', ',', ' ', 'R', 'W', 'K', 'V'};
  auto seq_state = model.make_state();
  const auto seq = model.prefill(prompt, seq_state);
  auto step_state = model.make_state();
  std::vector<float> step;
  for (auto t : prompt) step = model.step(t, step_state);
  double worst = 0;
  for (std::size_t i = 0; i < seq.size(); ++i) worst = std::max(worst, double(std::abs(seq[i] - step[i])));
  std::printf("sequence vs step: max |difference| of the last logits %.3g\n", worst);
  if (!(worst < 1e-3)) {
    std::fprintf(stderr, "custom_block: the two forms disagree\n");
    return 1;
  }

  // 4. The state is a value: copy, serialise, restore.
  const auto restored = Model::state_type::from_bytes(seq_state.to_bytes(), model.make_state());
  std::printf("state: %zu bytes, restored %s\n", seq_state.to_bytes().size(),
              restored == seq_state ? "exactly" : "WRONG");
  return restored == seq_state ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "custom_block: %s\n", e.what());
  return 1;
}

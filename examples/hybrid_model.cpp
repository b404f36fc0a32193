// A hybrid model: RWKV-6 blocks below RWKV-7 blocks. Each layer's block type is picked from its tensors at load;
// the first RWKV-7 layer provides the value residual (v_first) for the ones above it. Taps show how the residual
// stream grows through the layers, and one layer's time mixing is ablated.
//
//   hybrid_model [OUT.safetensors]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <rwkv/init/builder.hpp>
#include <rwkv/model/composed_model.hpp>
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

using V6 = rwkv::v6::Block<rwkv::f32, rwkv::cpu<>, 32>;
using V7 = rwkv::v7::Block<rwkv::f32, rwkv::cpu<>, 32>;
using Model = rwkv::HybridModel<rwkv::f32, rwkv::cpu<>, V6, V7>;

// Records the RMS of the residual stream leaving each block.
struct stream_rms {
  std::vector<double> rms;
  void block_output(std::int64_t, rwkv::row_matrix& x) { rms.push_back(x.norm() / std::sqrt(double(x.size()))); }
};

// Zeroes one layer's time-mixing output.
struct ablate {
  std::int64_t layer;
  void time_mix_output(std::int64_t l, rwkv::row_matrix& out) {
    if (l == layer) out.setZero();
  }
};

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : "hybrid_model.safetensors";
  rwkv::init::builder init({.n_layer = 6, .n_embd = 128, .vocab = 256, .head_size = 32}, /*seed*/ 7,
                           rwkv::init::style::exercised);
  rwkv::init::model<V6, V7>(init, [](std::int64_t layer) { return layer < 3 ? 0u : 1u; });  // 3 × v6, 3 × v7
  init.save(path);

  const Model model = Model::load(path);
  std::printf("layers:");
  for (const auto& b : model.blocks()) std::printf(" %s", b.index() == 0 ? "v6" : "v7");
  std::printf("\n");

  const std::vector<std::int32_t> prompt{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
  auto state = model.make_state();
  stream_rms taps;
  const auto logits = model.forward_with(taps, prompt, state);
  for (std::size_t i = 0; i < taps.rms.size(); ++i) std::printf("  after block %zu: rms %.4f\n", i, taps.rms[i]);

  auto fresh = model.make_state();
  ablate cut{4};
  const auto ablated = model.forward_with(cut, prompt, fresh);
  std::printf("ablating layer 4's time mixing moves the last logits by %.4f (max |difference|)\n",
              (ablated - logits).cwiseAbs().maxCoeff());

  // Greedy continuation, token by token, from the state the prompt left.
  std::printf("greedy continuation:");
  std::vector<float> next(logits.data(), logits.data() + logits.size());
  for (int i = 0; i < 8; ++i) {
    const auto tok = static_cast<std::int32_t>(std::max_element(next.begin(), next.end()) - next.begin());
    std::printf(" %d", tok);
    next = model.step(tok, state);
  }
  std::printf("\nstate version tag: %s\n", state.version().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hybrid_model: %s\n", e.what());
  return 1;
}

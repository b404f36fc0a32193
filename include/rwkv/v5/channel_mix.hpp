#pragma once
// RWKV-5 channel mixing, RWKV-4's form (spec/v5.md (b)): out = σ(W_r·x_r) ⊙ (W_v · relu(W_k·x_k)²), x_* = x·μ_* +
// prev·(1 − μ_*). The body is rwkv::SquaredReluChannelMix (model/channel_mix.hpp); this file gives its names and
// formula.

#include <cstdint>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/channel_mix.hpp"
#include "rwkv/v5/config.hpp"
#include "rwkv/v5/init.hpp"

namespace rwkv::v5 {

using ChannelMixState = rwkv::ShiftState;

struct channel_mix_spec {
  static constexpr lerp form = lerp::current;
  static constexpr const char* key_mix = "time_mix_k";
  static constexpr const char* receptance_mix = "time_mix_r";
  static void init(init::builder& b, std::int64_t layer) { init_channel_mix(b, layer); }
};

template <Precision P = f32, Backend B = cpu<>>
using ChannelMix = rwkv::SquaredReluChannelMix<channel_mix_spec, P, B>;

}  // namespace rwkv::v5

#pragma once
// RWKV-7 channel mixing (spec/v7.md (b)): out = W_v · relu(W_k · (x + (prev − x)·μ_k))², no receptance.
// The body is rwkv::SquaredReluChannelMix (model/channel_mix.hpp); this file gives its names and formula.

#include <cstdint>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/channel_mix.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/init.hpp"

namespace rwkv::v7 {

using ChannelMixState = rwkv::ShiftState;

struct channel_mix_spec {
  static constexpr lerp form = lerp::previous;
  static constexpr const char* key_mix = "x_k";
  static constexpr const char* receptance_mix = nullptr;
  static void init(init::builder& b, std::int64_t layer) { init_channel_mix(b, layer); }
};

template <Precision P = f32, Backend B = cpu<>>
using ChannelMix = rwkv::SquaredReluChannelMix<channel_mix_spec, P, B>;

}  // namespace rwkv::v7

#pragma once
// RWKV-7a (DeepEmbed) as a whole model: RWKV-7 blocks whose channel mix is DeepEmbed's (spec/v7-variants.md,
// Part A). The time mix, WKV state and v_first are RWKV-7's; the state is RWKV-7's, tagged "7a".

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/block.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/model/state.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/model.hpp"
#include "rwkv/v7/time_mix.hpp"
#include "rwkv/v7a/channel_mix.hpp"

namespace rwkv::v7a {

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
using Block = rwkv::Block<v7::TimeMix<P, B, HeadSize>, ChannelMix<P, B>>;

using LayerState = v7::LayerState;
using State = rwkv::State<LayerState>;

template <Precision P, Backend B, int HeadSize>
struct model_traits {
  using config_type = v7::Config;
  using block_type = Block<P, B, HeadSize>;
  using precision_type = P;
  using backend_type = B;
  static constexpr const char* version = "7a";
};

template <class P = f32, class B = cpu<>, int HeadSize = 64>
using Model = LanguageModel<model_traits<checked_precision<P>, checked_backend<B>, HeadSize>>;

}  // namespace rwkv::v7a

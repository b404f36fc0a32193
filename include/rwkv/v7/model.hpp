#pragma once
// RWKV-7 as a whole model: the generic LanguageModel around v7 blocks (spec/v7.md).

#include <string>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/block.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/model/state.hpp"
#include "rwkv/v7/channel_mix.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/time_mix.hpp"

namespace rwkv::v7 {

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
using Block = rwkv::Block<TimeMix<P, B, HeadSize>, ChannelMix<P, B>>;

using LayerState = BlockState<TimeMixState, ChannelMixState>;
using State = rwkv::State<LayerState>;

template <Precision P, Backend B, int HeadSize>
struct model_traits {
  using config_type = Config;
  using block_type = Block<P, B, HeadSize>;
  using precision_type = P;
  using backend_type = B;
  static constexpr const char* version = "7";
  // The head size is checked by TimeMix (it is a template parameter there).
};

// P and B are checked with a one-sentence error (rwkv::checked_precision, rwkv::checked_backend).
template <class P = f32, class B = cpu<>, int HeadSize = 64>
using Model = LanguageModel<model_traits<checked_precision<P>, checked_backend<B>, HeadSize>>;

}  // namespace rwkv::v7

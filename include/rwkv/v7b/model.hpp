#pragma once
// RWKV-7b (DeepEmbed + DeepEmbedAttention) as a whole model (spec/v7-variants.md, Part B): RWKV-7 time mix, a
// DEA branch beside it on the raw residual stream, and RWKV-7a's DeepEmbed channel mix. The state adds the DEA
// key/value cache, which grows by one row per token (v7b/attention.hpp); it is tagged "7b".

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/branched_block.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/model/state.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/time_mix.hpp"
#include "rwkv/v7a/channel_mix.hpp"
#include "rwkv/v7b/attention.hpp"

namespace rwkv::v7b {

template <Precision P = f32, Backend B = cpu<>, int HeadSize = 64>
using Block = rwkv::BranchedBlock<v7::TimeMix<P, B, HeadSize>, Attention<P, B>, v7a::ChannelMix<P, B>>;

using LayerState = BranchedBlockState<v7::TimeMixState, AttentionState, ShiftState>;
using State = rwkv::State<LayerState>;

template <Precision P, Backend B, int HeadSize>
struct model_traits {
  using config_type = v7::Config;
  using block_type = Block<P, B, HeadSize>;
  using precision_type = P;
  using backend_type = B;
  static constexpr const char* version = "7b";
};

template <class P = f32, class B = cpu<>, int HeadSize = 64>
using Model = LanguageModel<model_traits<checked_precision<P>, checked_backend<B>, HeadSize>>;

}  // namespace rwkv::v7b

#pragma once
// Models assembled from any blocks, through the same LanguageModel as the built-in versions:
//
//   rwkv::ComposedModel<Block, P, B>          every layer is Block (say rwkv::Block<v7::TimeMix<>, MyChannelMix>)
//   rwkv::HybridModel<P, B, Blocks...>        each layer is the first of Blocks... matching its tensors
//                                            (say v6::Block<> below v7::Block<>)
//
// Embedding and head are stored as P's weight type; each block reads its own tensors. The config is the
// version-independent ModelConfig; blocks whose mixers need more read their own per-layer configs.

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/model/layer_variant.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv {

template <class BlockType, Precision P = f32, Backend B = cpu<>>
struct composed_traits {
  using config_type = ModelConfig;
  using block_type = BlockType;
  using precision_type = P;
  using backend_type = B;
  // States of composed models are tagged "composed": a state file of a built-in model is not one of these.
  static constexpr const char* version = "composed";
};

template <class BlockType, Precision P = f32, Backend B = cpu<>>
using ComposedModel = LanguageModel<composed_traits<BlockType, P, B>>;

template <Precision P, Backend B, class... Blocks>
using HybridModel = LanguageModel<composed_traits<LayerVariant<Blocks...>, P, B>>;

}  // namespace rwkv

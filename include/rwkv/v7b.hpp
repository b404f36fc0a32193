#pragma once
// RWKV-7b (DeepEmbed + DeepEmbedAttention): RWKV-7a plus a small softmax-attention branch per layer whose
// key/value cache is part of the state. Attention, Block, State, Model.

#include "rwkv/model/branched_block.hpp"
#include "rwkv/v7b/attention.hpp"
#include "rwkv/v7b/model.hpp"

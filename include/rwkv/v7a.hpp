#pragma once
// RWKV-7a (DeepEmbed): RWKV-7 with a token-indexed factor in every channel mix. ChannelMix, Block, State, Model.

#include "rwkv/v7a/channel_mix.hpp"
#include "rwkv/v7a/model.hpp"

#pragma once
// RWKV-7 ("Goose"): TimeMix, ChannelMix, Block, State, Model.

#include "rwkv/core/context.hpp"
#include "rwkv/v7/channel_mix.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/model.hpp"
#include "rwkv/v7/time_mix.hpp"

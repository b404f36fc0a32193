#pragma once
// RWKV-6 ("Finch"): TimeMix, ChannelMix, Block, State, Model.

#include "rwkv/core/context.hpp"
#include "rwkv/v6/channel_mix.hpp"
#include "rwkv/v6/config.hpp"
#include "rwkv/v6/model.hpp"
#include "rwkv/v6/time_mix.hpp"

#pragma once
// RWKV-5 ("Eagle", 5.0 / 5.1 / 5.2): TimeMix, ChannelMix, Block, State, Model.

#include "rwkv/core/context.hpp"
#include "rwkv/v5/channel_mix.hpp"
#include "rwkv/v5/config.hpp"
#include "rwkv/v5/model.hpp"
#include "rwkv/v5/time_mix.hpp"

#pragma once
// RWKV-4: TimeMix, ChannelMix, Block, State, Model.

#include "rwkv/core/context.hpp"
#include "rwkv/v4/channel_mix.hpp"
#include "rwkv/v4/config.hpp"
#include "rwkv/v4/model.hpp"
#include "rwkv/v4/time_mix.hpp"

#pragma once
// Umbrella header: everything a user needs to load an RWKV checkpoint, run it and sample from it.

#include "rwkv/core/backend.hpp"
#include "rwkv/core/config.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/load.hpp"
#include "rwkv/sample/sampler.hpp"
#include "rwkv/tokenizer/bytes.hpp"
#include "rwkv/v7.hpp"

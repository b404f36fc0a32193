#pragma once

#include "rwkv/kernel/math.hpp"

namespace rwkv::kernel::cpu {

using math::sigmoid;

}  // namespace rwkv::kernel::cpu

#pragma once

#include <cmath>

namespace rwkv::kernel::cpu {

inline float sigmoid(float x) noexcept { return 1.f / (1.f + std::exp(-x)); }

}  // namespace rwkv::kernel::cpu

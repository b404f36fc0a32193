#pragma once
// Build-wide facts the library relies on.

#include <bit>

namespace rwkv {

static_assert(
    std::endian::native == std::endian::little,
    "rwkv: model files are little-endian and are mapped without byte swapping; big-endian hosts are not supported");

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;

}  // namespace rwkv

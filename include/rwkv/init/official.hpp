#pragma once
// A whole model of a version named at run time, initialised as the official training code does
// (rwkv::init::model<vN::Block<>> for the version): what `rwkv-cli train` starts from when no checkpoint is given.

#include <cstdint>
#include <string>

#include "rwkv/core/error.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/v4.hpp"
#include "rwkv/v5.hpp"
#include "rwkv/v6.hpp"
#include "rwkv/v7.hpp"

namespace rwkv::init {

// version: "4", "5.2", "6" or "7" (the head size is d.head_size; the blocks' compiled head size plays no part).
inline builder official_model(const std::string& version, dims d, std::uint64_t seed) {
  builder b(d, seed);
  if (version == "4")
    model<v4::Block<>>(b);
  else if (version == "5.2")
    model<v5::Block<>>(b);
  else if (version == "6")
    model<v6::Block<>>(b);
  else if (version == "7")
    model<v7::Block<>>(b);
  else
    throw error("cannot initialise RWKV version '" + version + "' (supported: 4, 5.2, 6, 7)");
  return b;
}

}  // namespace rwkv::init

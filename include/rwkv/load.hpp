#pragma once
// rwkv::load_model<M>(path): opens a checkpoint and builds model type M from it.

#include <filesystem>

#include "rwkv/io/weight_reader.hpp"

namespace rwkv {

template <class M>
M load_model(const std::filesystem::path& path, io::load_options options = {}) {
  return M::load(path, options);
}

}  // namespace rwkv

#pragma once
// Training: trainable blocks with their backward passes (rwkv/train/<version>.hpp), the whole-model network with
// the loss (rwkv/train/network.hpp), the optimizer and the training loop (rwkv/train/trainer.hpp), and with_network,
// which opens any checkpoint as the network of its version.

#include <filesystem>
#include <string>
#include <utility>

#include "rwkv/core/error.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/train/check_gradients.hpp"
#include "rwkv/train/memory.hpp"
#include "rwkv/train/network.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/optimizer.hpp"
#include "rwkv/train/parameters.hpp"
#include "rwkv/train/trainer.hpp"
#include "rwkv/train/v4.hpp"
#include "rwkv/train/v5.hpp"
#include "rwkv/train/v6.hpp"
#include "rwkv/train/v7.hpp"
#include "rwkv/train/v7a.hpp"
#include "rwkv/train/v7b.hpp"
#include "rwkv/train/wkv7.hpp"

namespace rwkv::train {

// Calls f(network<Layer>&) with an opened checkpoint as the network of its version.
template <class F>
decltype(auto) with_network(const io::checkpoint& ck, F&& f) {
  switch (detect_version(ck.tensors, ck.path)) {
    case arch_version::v4: {
      auto net = network<v4::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
    case arch_version::v5_0:
    case arch_version::v5_1:
    case arch_version::v5_2: {
      auto net = network<v5::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
    case arch_version::v6: {
      auto net = network<v6::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
    case arch_version::v7: {
      auto net = network<v7::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
    case arch_version::v7a: {
      auto net = network<v7a::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
    case arch_version::v7b: {
      auto net = network<v7b::layer>::from(ck);
      return std::forward<F>(f)(net);
    }
  }
  throw error("unknown RWKV version", ck.path);
}

// Opens a checkpoint (any format the library reads), recognises its version and calls f(network<Layer>&).
template <class F>
decltype(auto) with_network(const std::filesystem::path& path, F&& f) {
  return with_network(io::open_checkpoint(path), std::forward<F>(f));
}

}  // namespace rwkv::train

#pragma once
// The forward skeleton the WKV operators share (train/wkv5.hpp, train/wkv7.hpp): every head through every token of
// a segment, heads in parallel, with each head's state kept before every wkv_checkpoint-th token for the backward
// to recompute from.

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/thread_pool.hpp"
#include "rwkv/train/ops.hpp"

namespace rwkv::train {

// The state (all heads) before every wkv_checkpoint-th token of a segment.
using wkv_tape = std::vector<std::vector<float>>;

// Calls step(h, t, Sh) for t = 0..T−1 on head h's state Sh = S + h·NN, every head, heads in parallel on the pool.
template <class Step>
void scan_heads(std::vector<float>& S, Eigen::Index T, Eigen::Index H, Eigen::Index NN, wkv_tape& tp, thread_pool* pool,
                Step&& step) {
  tp.resize(static_cast<std::size_t>((T + wkv_checkpoint - 1) / wkv_checkpoint));
  for (auto& c : tp) c.resize(S.size());
  parallel_for(pool, H, [&](std::int64_t h0, std::int64_t h1) {
    for (Eigen::Index h = h0; h < h1; ++h) {
      float* Sh = S.data() + h * NN;
      for (Eigen::Index t = 0; t < T; ++t) {
        if (t % wkv_checkpoint == 0)
          std::copy_n(Sh, NN, tp[static_cast<std::size_t>(t / wkv_checkpoint)].data() + h * NN);
        step(h, t, Sh);
      }
    }
  });
}

}  // namespace rwkv::train

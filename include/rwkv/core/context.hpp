#pragma once
// Per-forward context: values that flow across layers within one forward call but are not recurrent state.
// RWKV-7's value residual v_first (layer 0's value projection, read by every later layer) is the built-in
// entry; user mixers may add their own named entries.

#include <map>
#include <string>

#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"

namespace rwkv {

struct context {
  thread_pool* pool = nullptr;                             // where kernels may run in parallel (none: inline)
  row_matrix v_first;                                      // T x C, written by the first RWKV-7 layer
  std::map<std::string, row_matrix, std::less<>> entries;  // free for user mixers
};

}  // namespace rwkv

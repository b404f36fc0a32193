#pragma once
// Per-forward context: values that flow across layers within one forward call but are not recurrent state.
// RWKV-7's value residual v_first (layer 0's value projection, read by every later layer) is the built-in
// entry; user mixers may add their own named entries.

#include <cstdint>
#include <map>
#include <string>

#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"

namespace rwkv {

// How the sequence form evaluates the WKV recurrence: token by token (serial), per chunk of tokens as small matrix
// products (chunked; the same results within float32 rounding), or chosen by length (automatic: chunked from the
// measured crossover on, see kernel/cpu/wkv7_chunked.hpp and wkv5_chunked.hpp; steps stay serial). Batched
// decoding (one token of each of several sequences) is always serial.
enum class form { automatic, serial, chunked };

// Whether a sequence of T tokens runs chunked under f, given the kernel's crossover length.
inline bool chunked_wkv(form f, std::int64_t T, std::int64_t min_tokens) noexcept {
  return f == form::chunked || (f == form::automatic && T >= min_tokens);
}

struct context {
  thread_pool* pool = nullptr;                             // where kernels may run in parallel (none: inline)
  row_matrix v_first;                                      // T x C, written by the first RWKV-7 layer
  std::map<std::string, row_matrix, std::less<>> entries;  // free for user mixers
  form wkv_form = form::automatic;                         // how sequence calls evaluate the WKV
};

}  // namespace rwkv

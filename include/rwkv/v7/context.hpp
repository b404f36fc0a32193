#pragma once
// Per-forward context: values that flow across layers within one forward call but are not recurrent state.
// RWKV-7's value residual v_first (layer 0's value projection, read by every later layer) lives here.

#include <Eigen/Core>

#include "rwkv/kernel/cpu/linear.hpp"

namespace rwkv::v7 {

struct context {
  kernel::cpu::row_matrix v_first;  // T x C
};

}  // namespace rwkv::v7

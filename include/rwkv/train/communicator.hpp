#pragma once
// The seam between the trainer and a data-parallel engine: the trainer sums its gradients over every process with
// all_reduce_sum and takes rank 0's initial weights with broadcast. One process needs nothing (single_process);
// Open MPI plugs in through rwkv/train/mpi.hpp. A CUDA trainer's NCCL communicator implements the same two calls
// on device buffers (ncclAllReduce / ncclBroadcast on the trainer's stream), so the trainer does not change.

#include <span>

namespace rwkv::train {

class communicator {
 public:
  virtual ~communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every process passes a buffer of the same length; each ends with the element-wise sum over all of them.
  virtual void all_reduce_sum(std::span<float> values) = 0;
  // Every process ends with the root's values.
  virtual void broadcast(std::span<float> values, int root) = 0;
};

// One process: the sums and broadcasts are the identity.
class single_process final : public communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void broadcast(std::span<float>, int) override {}
};

}  // namespace rwkv::train

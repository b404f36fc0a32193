#pragma once
// Data-parallel training over MPI (Open MPI from Debian's libopenmpi-dev): the communicator the trainer sums its
// gradients with. Link MPI::MPI_CXX (find_package(MPI)); the program calls MPI_Init before and MPI_Finalize after.
//
//   MPI_Init(&argc, &argv);
//   rwkv::train::mpi_communicator comm;                     // MPI_COMM_WORLD
//   rwkv::train::trainer t(net, tokens, options, &comm);   // rank 0's weights are broadcast, gradients summed
//
// Each rank runs every batch-th sequence of the global batch, so N ranks with batch B take the same steps as one
// process with batch B (to rounding: the sums are added in another order).

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <span>
#include <string>

#include "rwkv/core/error.hpp"
#include "rwkv/train/communicator.hpp"

namespace rwkv::train {

class mpi_communicator final : public communicator {
 public:
  explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) throw error("mpi_communicator: MPI_Init has not been called");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // MPI counts are ints: larger buffers go in pieces.
  void all_reduce_sum(std::span<float> values) override {
    for (std::size_t i = 0; i < values.size(); i += max_count) {
      const auto n = static_cast<int>(std::min(max_count, values.size() - i));
      check(MPI_Allreduce(MPI_IN_PLACE, values.data() + i, n, MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce");
    }
  }

  void broadcast(std::span<float> values, int root) override {
    for (std::size_t i = 0; i < values.size(); i += max_count) {
      const auto n = static_cast<int>(std::min(max_count, values.size() - i));
      check(MPI_Bcast(values.data() + i, n, MPI_FLOAT, root, comm_), "MPI_Bcast");
    }
  }

 private:
  static constexpr std::size_t max_count = static_cast<std::size_t>(std::numeric_limits<int>::max());

  static void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING];
      int n = 0;
      MPI_Error_string(rc, text, &n);
      throw error(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(n)));
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace rwkv::train

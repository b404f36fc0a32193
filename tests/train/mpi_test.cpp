// Data-parallel training over MPI (run by mpiexec with 2 ranks): rank 0's initial weights reach every rank, and
// after N steps every rank holds the same weights as one process that trained the same global batch (to the
// rounding of the gradient sums, which the two add in another order).
#define BOOST_TEST_MODULE train_mpi
#define BOOST_TEST_NO_MAIN
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "../support/golden.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/train.hpp"
#include "rwkv/train/mpi.hpp"
#include "rwkv/v7.hpp"

namespace {

namespace tr = rwkv::train;
using v7_network = tr::network<tr::v7::layer>;

v7_network fresh_model(std::uint64_t seed) {
  rwkv::init::builder b({.n_layer = 2, .n_embd = 64, .vocab = 256, .head_size = 32}, seed,
                        rwkv::init::style::exercised);
  rwkv::init::model<rwkv::v7::Block<rwkv::f32, rwkv::cpu<>, 32>>(b);
  const auto bytes = rwkv::io::to_safetensors_bytes(b.tensors());
  const auto st = rwkv::io::safetensors_file::from_bytes(bytes, "<init>");
  return v7_network::from({st.path(), rwkv::io::file_format::safetensors, st.tensors(), st.owner(), st.metadata()});
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_ranks_train_like_one_process_with_the_same_global_batch) {
  tr::mpi_communicator comm;
  BOOST_REQUIRE_EQUAL(comm.size(), 2);
  const tr::trainer_options opts{.context = 32,
                                 .batch = 4,
                                 .steps = 6,
                                 .warmup = 1,
                                 .lr = 2e-3f,
                                 .lr_final = 5e-4f,
                                 .adam = {.eps = 1e-8f, .weight_decay = 0.01f},
                                 .seed = 9};
  // (AdamW's eps 1e-8 here: with the official 1e-18 the first update of a gradient that is pure rounding noise is
  // ±lr whatever its size, and the comparison would measure that noise.)
  const auto text = rwkv::test::byte_tokens("english.txt");

  // Rank 1 starts from other weights: the trainer must replace them with rank 0's.
  auto net = fresh_model(comm.rank() == 0 ? 1 : 2);
  tr::trainer t(net, text, opts, &comm);
  std::vector<double> losses;
  for (int i = 0; i < opts.steps; ++i) losses.push_back(t.step().loss);

  auto ref_net = fresh_model(1);
  tr::trainer ref(ref_net, text, opts);
  std::vector<double> ref_losses;
  for (int i = 0; i < opts.steps; ++i) ref_losses.push_back(ref.step().loss);

  for (int i = 0; i < opts.steps; ++i)
    BOOST_CHECK_CLOSE(losses[static_cast<std::size_t>(i)], ref_losses[static_cast<std::size_t>(i)], 1e-3);
  double worst = 0;
  std::string worst_name;
  for (std::size_t i = 0; i < net.parameters().all().size(); ++i) {
    const auto& got = net.parameters().all()[i];
    const auto& want = ref_net.parameters().all()[i].value;
    const double d = (got.value - want).cwiseAbs().maxCoeff() / std::max(1e-3f, want.cwiseAbs().maxCoeff());
    if (d > worst) worst = d, worst_name = got.name;
  }
  BOOST_TEST_MESSAGE("rank " << comm.rank() << ": worst weight difference from one process " << worst << " ("
                             << worst_name << ")");
  BOOST_CHECK_LT(worst, 1e-4);

  // Every rank holds exactly rank 0's weights.
  for (auto& p : net.parameters().all()) {
    rwkv::row_matrix mine = p.value, root = p.value;
    comm.broadcast({root.data(), static_cast<std::size_t>(root.size())}, 0);
    BOOST_REQUIRE_MESSAGE(mine == root, p.name << " differs between ranks");
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int rc = boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
  MPI_Finalize();
  return rc;
}

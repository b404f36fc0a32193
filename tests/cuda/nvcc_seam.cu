// The backend seam, compiled by nvcc: the library's headers build as CUDA host code (a model type instantiated,
// loaded and stepped on the host), next to a kernel. Without a GPU the device part is skipped with a message
// (exit code 77, which CTest reports as "Skipped").
#include <cmath>
#include <cstdio>
#include <vector>

#include <cuda_runtime.h>

#include <rwkv/rwkv.hpp>

namespace {

__global__ void scale(float* x, float a, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}

static_assert(rwkv::Backend<rwkv::cpu<>>);
static_assert(rwkv::BlockLike<rwkv::v7::Block<>>);
static_assert(rwkv::TimeMixer<rwkv::v6::TimeMix<>>);

int fail(const char* what) {
  std::fprintf(stderr, "nvcc_seam: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: nvcc_seam MODEL");
  // Host side, compiled by nvcc: load, step, compare with the sequence form.
  const auto model = rwkv::v7::Model<>::load(argv[1]);
  auto a = model.make_state();
  auto b = model.make_state();
  const std::vector<std::int32_t> tokens{1, 2, 3, 4};
  std::vector<float> step;
  for (auto t : tokens) step = model.step(t, a);
  const auto seq = model.prefill(tokens, b);
  for (std::size_t i = 0; i < seq.size(); ++i)
    if (!(std::abs(seq[i] - step[i]) <= 1e-3f + 1e-3f * std::abs(seq[i]))) return fail("step != sequence");
  std::printf("nvcc_seam: host code built by nvcc ran RWKV-%s (%zu logits)\n", model.version, seq.size());

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("nvcc_seam: SKIPPED the device part: no CUDA device on this machine\n");
    return 77;
  }
  std::vector<float> host(1000, 2.f);
  float* dev = nullptr;
  if (cudaMalloc(&dev, host.size() * sizeof(float)) != cudaSuccess) return fail("cudaMalloc");
  cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  scale<<<4, 256>>>(dev, 1.5f, static_cast<int>(host.size()));
  cudaMemcpy(host.data(), dev, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dev);
  for (float v : host)
    if (v != 3.f) return fail("kernel result");
  std::printf("nvcc_seam: device kernel ran on one of %d device(s)\n", devices);
  return 0;
}

// The backend seam, compiled by nvcc: the library's headers build as CUDA host code (a model type instantiated,
// loaded and stepped on the host), and the shared per-element math (rwkv/kernel/math.hpp: the WKV steps of RWKV-4,
// 5/6 and 7, RWKV-7's head stages, LayerNorm) runs in device kernels whose results are compared with the same
// functions on the host. Without a GPU the device part is skipped with a message (exit code 77, which CTest
// reports as "Skipped").
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#include <rwkv/rwkv.hpp>

namespace {

constexpr int N = 64;  // one head

// One thread runs one head's token: the shared functions, unchanged, on the device.
__global__ void head_math(float* S7, float* S5, const float* in, float* out) {
  using namespace rwkv::math;
  const float *r = in, *w = in + N, *k = in + 2 * N, *v = in + 3 * N, *a = in + 4 * N, *b = in + 5 * N;
  float k2[N], z[N], a2[N], b2[N];
  for (int j = 0; j < N; ++j) {
    k2[j] = k[j];
    z[j] = w[j];
  }
  wkv7(N, S7, r, w, k, v, a, b, out);
  wkv5(N, S5, r, k, v, w, b, out + N);
  v7_prepare_head(N, k2, a, z, a2, b2, r, v, b, w);
  v7_finish_head(N, out, r, k2, v, b, out + 2 * N, a, b, w, 64e-5f);
  float aa = 0.5f, bb = 1.f, pp = -1e30f;
  out[3 * N] = wkv4(-0.3f, 0.2f, k[0], v[0], aa, bb, pp);
  out[3 * N + 1] = aa;
  for (int j = 0; j < N; ++j) out[3 * N + 2 + j] = z[j] + a2[j] + b2[j] + k2[j];
}

void head_math_host(std::vector<float>& S7, std::vector<float>& S5, const std::vector<float>& input,
                    std::vector<float>& out) {
  using namespace rwkv::math;
  const float* in = input.data();
  const float *r = in, *w = in + N, *k = in + 2 * N, *v = in + 3 * N, *a = in + 4 * N, *b = in + 5 * N;
  float k2[N], z[N], a2[N], b2[N];
  for (int j = 0; j < N; ++j) {
    k2[j] = k[j];
    z[j] = w[j];
  }
  wkv7(N, S7.data(), r, w, k, v, a, b, out.data());
  wkv5(N, S5.data(), r, k, v, w, b, out.data() + N);
  v7_prepare_head(N, k2, a, z, a2, b2, r, v, b, w);
  v7_finish_head(N, out.data(), r, k2, v, b, out.data() + 2 * N, a, b, w, 64e-5f);
  float aa = 0.5f, bb = 1.f, pp = -1e30f;
  out[3 * N] = wkv4(-0.3f, 0.2f, k[0], v[0], aa, bb, pp);
  out[3 * N + 1] = aa;
  for (int j = 0; j < N; ++j) out[3 * N + 2 + j] = z[j] + a2[j] + b2[j] + k2[j];
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
  // Inputs in (0.1, 0.9) so that decays and norms are in range.
  std::vector<float> input(6 * N), S7(N * N), S5(N * N);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = 0.1f + 0.8f * static_cast<float>((i * 37) % 101) / 101.f;
  for (std::size_t i = 0; i < S7.size(); ++i) S7[i] = S5[i] = 0.01f * static_cast<float>((i * 13) % 17);
  std::vector<float> want(3 * N + 2 + N), got(want.size()), S7d(S7.size()), S5d(S5.size());
  float *d_s7 = nullptr, *d_s5 = nullptr, *d_in = nullptr, *d_out = nullptr;
  auto check = [](cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
      std::fprintf(stderr, "nvcc_seam: %s: %s\n", what, cudaGetErrorString(e));
      std::exit(1);
    }
  };
  check(cudaMalloc(&d_s7, S7.size() * 4), "cudaMalloc");
  check(cudaMalloc(&d_s5, S5.size() * 4), "cudaMalloc");
  check(cudaMalloc(&d_in, input.size() * 4), "cudaMalloc");
  check(cudaMalloc(&d_out, want.size() * 4), "cudaMalloc");
  check(cudaMemcpy(d_s7, S7.data(), S7.size() * 4, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_s5, S5.data(), S5.size() * 4, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_in, input.data(), input.size() * 4, cudaMemcpyHostToDevice), "copy");
  head_math<<<1, 1>>>(d_s7, d_s5, d_in, d_out);
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpy(got.data(), d_out, got.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  check(cudaMemcpy(S7d.data(), d_s7, S7d.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  check(cudaMemcpy(S5d.data(), d_s5, S5d.size() * 4, cudaMemcpyDeviceToHost), "copy back");
  for (float* p : {d_s7, d_s5, d_in, d_out}) cudaFree(p);
  head_math_host(S7, S5, input, want);
  // Device and host may contract a·b + c into an FMA differently: a few ulps apart, not more.
  auto close = [](float x, float y) { return std::abs(x - y) <= 1e-5f + 1e-5f * std::abs(y); };
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!close(got[i], want[i])) return fail("device math differs from the host's");
  for (std::size_t i = 0; i < S7.size(); ++i)
    if (!close(S7d[i], S7[i]) || !close(S5d[i], S5[i])) return fail("device state differs from the host's");
  std::printf("nvcc_seam: the shared math ran on one of %d device(s) and matched the host\n", devices);
  return 0;
}

// The shared per-element math (rwkv/kernel/math.hpp, what device kernels compile) against the vectorised CPU
// kernels on random inputs, and the inplace_function used on the hot path. Both forms of each WKV step compute the
// same sums in another order (SIMD lanes, FMA), so they agree to float32 rounding: |scalar − simd| ≤ 1e-5 + 1e-5·|x|
// over a few steps. A wrong index, decay or sign is off by O(1).
#define BOOST_TEST_MODULE math
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <rwkv/core/inplace_function.hpp>
#include <rwkv/kernel/cpu/wkv4.hpp>
#include <rwkv/kernel/cpu/wkv5.hpp>
#include <rwkv/kernel/cpu/wkv7.hpp>
#include <rwkv/kernel/math.hpp>

namespace {

using arch = xsimd::default_arch;
constexpr int N = 64;

std::vector<float> uniform(std::mt19937& rng, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  int bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= 1e-5f + 1e-5f * std::abs(want[i])) && bad++ < 3)
      BOOST_ERROR(what << "[" << i << "]: " << got[i] << " vs " << want[i]);
  BOOST_TEST(bad == 0, what);
}

BOOST_AUTO_TEST_CASE(wkv7_scalar_matches_simd) {
  std::mt19937 rng(1);
  auto S1 = uniform(rng, N * N, -1, 1), S2 = S1;
  for (int step = 0; step < 4; ++step) {
    const auto r = uniform(rng, N, -1, 1), w = uniform(rng, N, 0.55f, 1), k = uniform(rng, N, -1, 1),
               v = uniform(rng, N, -1, 1), a = uniform(rng, N, -0.2f, 0), b = uniform(rng, N, 0, 0.2f);
    std::vector<float> y1(N), y2(N);
    rwkv::math::wkv7(N, S1.data(), r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), y1.data());
    rwkv::kernel::cpu::wkv7_step<arch, N>(S2.data(), r.data(), w.data(), k.data(), v.data(), a.data(), b.data(),
                                          y2.data());
    check_close(y1, y2, "wkv7 y, step " + std::to_string(step));
  }
  check_close(S1, S2, "wkv7 state");
}

BOOST_AUTO_TEST_CASE(wkv5_scalar_matches_simd) {
  std::mt19937 rng(2);
  auto S1 = uniform(rng, N * N, -1, 1), S2 = S1;
  const auto u = uniform(rng, N, -1, 1);
  for (int step = 0; step < 4; ++step) {
    const auto r = uniform(rng, N, -1, 1), w = uniform(rng, N, 0.5f, 1), k = uniform(rng, N, -1, 1),
               v = uniform(rng, N, -1, 1);
    std::vector<float> y1(N), y2(N);
    rwkv::math::wkv5(N, S1.data(), r.data(), k.data(), v.data(), w.data(), u.data(), y1.data());
    rwkv::kernel::cpu::wkv5_step<arch, N>(S2.data(), r.data(), k.data(), v.data(), w.data(), u.data(), y2.data());
    check_close(y1, y2, "wkv5 y, step " + std::to_string(step));
  }
  check_close(S1, S2, "wkv5 state");
}

BOOST_AUTO_TEST_CASE(wkv4_scalar_matches_simd) {
  std::mt19937 rng(3);
  constexpr std::size_t n = 37;  // vector body and scalar tail
  const auto w = uniform(rng, n, -3, -0.1f), u = uniform(rng, n, -1, 1);
  std::vector<float> aa1(n, 0.f), bb1(n, 0.f), pp1(n, -1e30f), aa2 = aa1, bb2 = bb1, pp2 = pp1;
  for (int step = 0; step < 5; ++step) {
    const auto k = uniform(rng, n, -30, 30), v = uniform(rng, n, -2, 2);  // large k: the max-exponent path
    std::vector<float> y1(n), y2(n);
    for (std::size_t i = 0; i < n; ++i) y1[i] = rwkv::math::wkv4(w[i], u[i], k[i], v[i], aa1[i], bb1[i], pp1[i]);
    rwkv::kernel::cpu::wkv4_step<arch>(n, w.data(), u.data(), k.data(), v.data(), aa2.data(), bb2.data(), pp2.data(),
                                       y2.data());
    check_close(y1, y2, "wkv4 y, step " + std::to_string(step));
  }
  check_close(aa1, aa2, "wkv4 aa");
  check_close(pp1, pp2, "wkv4 pp");
}

BOOST_AUTO_TEST_CASE(token_shift_forms) {
  // Both forms are the same interpolation; each keeps its reference's rounding.
  BOOST_TEST(rwkv::math::lerp_current(2.f, 4.f, 0.25f) == 3.5f);
  BOOST_TEST(rwkv::math::lerp_previous(2.f, 4.f, 0.25f) == 2.5f);
  BOOST_TEST(rwkv::math::relu_square(-1.f) == 0.f);
  BOOST_TEST(rwkv::math::relu_square(3.f) == 9.f);
  BOOST_TEST(std::abs(rwkv::math::decay_7(0.f) - std::exp(-0.6065306597126334f * 0.5f)) < 1e-7f);
}

BOOST_AUTO_TEST_CASE(inplace_function_copies_moves_and_calls) {
  int calls = 0;
  std::vector<int> big{1, 2, 3};
  rwkv::inplace_function<int(int)> f = [&calls, big](int x) {
    ++calls;
    return x + big[2];
  };
  auto g = f;             // copy: its own captured vector
  auto h = std::move(f);  // move
  BOOST_TEST(g(1) == 4);
  BOOST_TEST(h(2) == 5);
  BOOST_TEST(calls == 2);
  rwkv::inplace_function<int(int)> empty;
  BOOST_TEST(!empty);
  empty = g;
  BOOST_TEST(empty(0) == 3);
}

}  // namespace

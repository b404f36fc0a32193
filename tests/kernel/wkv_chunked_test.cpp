// The chunked WKV kernels (kernel/cpu/wkv7_chunked.hpp, wkv5_chunked.hpp) against the serial recurrence, and whole
// models with the chunked form forced against the official reference (the golden sequence-form checks of
// tests/v7, tests/v5, tests/v6 at their normal tolerances) and against their own step form.
//
// Kernel tolerance: the chunked and serial forms round differently, so they agree to float32 rounding relative to
// the size of what is computed, not element by element: for every token and head (and for each head's final
// state), max |chunked − serial| ≤ (1e-5 + 3e-8·T) · max(1, max |serial|) over that row. The term in T is the
// serial recurrence's own rounding, which accumulates with the length where decays are ≈ 1 (measured against a
// float64 evaluation at T = 1000 with constant decays: serial up to 1.2e-5, chunked up to 7e-6; elsewhere both
// ~1e-6). The chunked result is also checked against that float64 evaluation with the same bound. A wrong index,
// decay or mask is off by O(1).
#define BOOST_TEST_MODULE wkv_chunked
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <rwkv/core/thread_pool.hpp>
#include <rwkv/kernel/cpu/wkv5.hpp>
#include <rwkv/kernel/cpu/wkv5_chunked.hpp>
#include <rwkv/kernel/cpu/wkv7.hpp>
#include <rwkv/kernel/cpu/wkv7_chunked.hpp>
#include <rwkv/v5.hpp>
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;
using rwkv::test::floats;
using simd_arch = xsimd::default_arch;

double kernel_rtol(std::int64_t T) { return 1e-5 + 3e-8 * static_cast<double>(T); }
constexpr std::int64_t lengths[] = {1, 5, 16, 17, 63, 64, 200, 1000};

// Worst |got − want| / max(1, max |want|) over consecutive rows of n floats starting every `stride` floats.
template <class Want>
double worst_row_error(const std::vector<float>& got, const std::vector<Want>& want, std::size_t rows,
                       std::size_t stride, std::size_t offset, std::size_t n) {
  double worst = 0;
  for (std::size_t row = 0; row < rows; ++row) {
    double err = 0, scale = 1;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t at = row * stride + offset + i;
      const double d = std::abs(static_cast<double>(got[at]) - want[at]);
      err = std::isnan(d) ? INFINITY : std::max(err, d);
      scale = std::max(scale, std::abs(static_cast<double>(want[at])));
    }
    worst = std::max(worst, err / scale);
  }
  return worst;
}

// Compares outputs (T x H·N) per token and head, and states (H x N x N) per head, within kernel_rtol(T).
template <class Want>
void check_agree(const std::vector<float>& y, const std::vector<Want>& y_ref, const std::vector<float>& s,
                 const std::vector<Want>& s_ref, std::int64_t T, int H, int N, const std::string& what) {
  const auto C = static_cast<std::size_t>(H * N), NN = static_cast<std::size_t>(N * N);
  double worst_y = 0, worst_s = 0;
  for (int h = 0; h < H; ++h) {
    worst_y = std::max(worst_y, worst_row_error(y, y_ref, static_cast<std::size_t>(T), C,
                                                static_cast<std::size_t>(h * N), static_cast<std::size_t>(N)));
    worst_s = std::max(worst_s, worst_row_error(s, s_ref, 1, 0, static_cast<std::size_t>(h) * NN, NN));
  }
  BOOST_TEST_MESSAGE(what << ": worst relative difference y " << worst_y << ", state " << worst_s);
  BOOST_CHECK_MESSAGE(worst_y <= kernel_rtol(T), what << ": outputs differ by " << worst_y << " (relative)");
  BOOST_CHECK_MESSAGE(worst_s <= kernel_rtol(T), what << ": final states differ by " << worst_s << " (relative)");
}

// The serial recurrences evaluated in float64 from the same float32 inputs (spec/v7.md (b), spec/v5.md (b)).
void wkv7_f64(std::vector<double>& S, std::int64_t T, int H, int N, const std::vector<float>& r,
              const std::vector<float>& w, const std::vector<float>& k, const std::vector<float>& v,
              const std::vector<float>& a, const std::vector<float>& b, std::vector<double>& y) {
  const auto n = static_cast<std::size_t>(N);
  for (int h = 0; h < H; ++h)
    for (std::int64_t t = 0; t < T; ++t) {
      const auto o = static_cast<std::size_t>((t * H + h) * N);
      double* st = S.data() + static_cast<std::size_t>(h) * n * n;
      for (std::size_t i = 0; i < n; ++i) {
        double* row = st + i * n;
        double sa = 0, yi = 0;
        for (std::size_t j = 0; j < n; ++j) sa += row[j] * a[o + j];
        for (std::size_t j = 0; j < n; ++j) {
          row[j] = row[j] * w[o + j] + sa * b[o + j] + static_cast<double>(v[o + i]) * k[o + j];
          yi += row[j] * r[o + j];
        }
        y[o + i] = yi;
      }
    }
}

void wkv5_f64(std::vector<double>& S, std::int64_t T, int H, int N, const std::vector<float>& r,
              const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>& w, std::ptrdiff_t ldw,
              const std::vector<float>& u, std::vector<double>& y) {
  const auto n = static_cast<std::size_t>(N);
  const std::ptrdiff_t C = H * N;
  for (int h = 0; h < H; ++h)
    for (std::int64_t t = 0; t < T; ++t) {
      const auto o = static_cast<std::size_t>(t * C + h * N);
      const auto ow = static_cast<std::size_t>(t * ldw + h * N);
      double* st = S.data() + static_cast<std::size_t>(h) * n * n;
      double bonus = 0;
      for (std::size_t i = 0; i < n; ++i)
        bonus += static_cast<double>(r[o + i]) * u[static_cast<std::size_t>(h * N) + i] * k[o + i];
      for (std::size_t j = 0; j < n; ++j) {
        double yj = bonus * v[o + j];
        for (std::size_t i = 0; i < n; ++i) yj += r[o + i] * st[i * n + j];
        y[o + j] = yj;
      }
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
          st[i * n + j] = w[ow + i] * st[i * n + j] + static_cast<double>(k[o + i]) * v[o + j];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RWKV-7 kernel

enum class decay7 { spanning, out_of_range };

struct inputs7 {
  std::int64_t T;
  int H, N;
  std::vector<float> r, w, k, v, a, b, state;
};

// r, k̃, v normal; a = −κ̂, b = κ̂·α with ‖κ̂‖ = 1 per head, α ∈ (0, 1); decays w = exp(−e^{−1/2}·σ(z)) covering
// the whole allowed range: exactly the lower end 0.5453 (σ = 1), exactly 1 (σ underflows) and everything between.
// out_of_range adds decays far below RWKV-7's range (the kernel's serial fallback).
inputs7 make_inputs7(std::int64_t T, int H, int N, decay7 kind, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unit(0.f, 1.f), z_span(-12.f, 12.f);
  const auto n = static_cast<std::size_t>(T * H * N);
  inputs7 in{T,
             H,
             N,
             std::vector<float>(n),
             std::vector<float>(n),
             std::vector<float>(n),
             std::vector<float>(n),
             std::vector<float>(n),
             std::vector<float>(n),
             std::vector<float>(static_cast<std::size_t>(H * N * N))};
  std::vector<float> kappa(static_cast<std::size_t>(N));
  for (std::int64_t t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      float norm2 = 0;
      for (auto& x : kappa) {
        x = normal(rng);
        norm2 += x * x;
      }
      const float inv = 1.f / std::sqrt(norm2);
      for (int j = 0; j < N; ++j) {
        const auto i = static_cast<std::size_t>((t * H + h) * N + j);
        in.r[i] = normal(rng);
        in.k[i] = normal(rng);
        in.v[i] = normal(rng);
        in.a[i] = -kappa[static_cast<std::size_t>(j)] * inv;
        in.b[i] = kappa[static_cast<std::size_t>(j)] * inv * unit(rng);
        const float pick = unit(rng);
        const float z = pick < 0.25f ? 40.f : pick < 0.5f ? -120.f : z_span(rng);
        in.w[i] = std::exp(-v7::decay_scale / (1.f + std::exp(-z)));
        if (kind == decay7::out_of_range && pick > 0.97f) in.w[i] = unit(rng) * 1e-3f;
      }
    }
  for (auto& x : in.state) x = normal(rng);
  return in;
}

template <int N, int Lc = kernel::cpu::wkv7_chunk_len>
void check_wkv7(std::int64_t T, int H, decay7 kind, unsigned seed) {
  const auto in = make_inputs7(T, H, N, kind, seed);
  const std::ptrdiff_t C = H * N;
  auto s_ref = in.state, s = in.state;
  std::vector<float> y_ref(in.r.size()), y(in.r.size());
  for (int h = 0; h < H; ++h) {
    for (std::int64_t t = 0; t < T; ++t) {
      const auto o = static_cast<std::size_t>(t * C + h * N);
      kernel::cpu::wkv7_step<simd_arch, N>(s_ref.data() + h * N * N, &in.r[o], &in.w[o], &in.k[o], &in.v[o], &in.a[o],
                                           &in.b[o], &y_ref[o]);
    }
    const auto o = static_cast<std::size_t>(h * N);
    kernel::cpu::wkv7_chunked<simd_arch, N, Lc>(s.data() + h * N * N, T, &in.r[o], &in.w[o], &in.k[o], &in.v[o],
                                                &in.a[o], &in.b[o], C, &y[o], C);
  }
  std::vector<double> s64(in.state.begin(), in.state.end()), y64(in.r.size());
  wkv7_f64(s64, T, H, N, in.r, in.w, in.k, in.v, in.a, in.b, y64);
  std::ostringstream what;
  what << "wkv7 N=" << N << " Lc=" << Lc << " T=" << T
       << (kind == decay7::out_of_range ? " (out-of-range decays)" : "");
  check_agree(y, y_ref, s, s_ref, T, H, N, what.str() + ", chunked vs serial");
  check_agree(y, y64, s, s64, T, H, N, what.str() + ", chunked vs float64");
}

// ---------------------------------------------------------------------------------------------------------------
// RWKV-5/6 kernel

// per_token: RWKV-6 (a decay per token and channel); per_channel: RWKV-5.2 (one row for all tokens);
// per_head: RWKV-5.0/5.1 (one value per head, broadcast to its channels, for all tokens).
enum class decay5 { per_token, per_channel, per_head };

// A decay near 0 or near 1 or anywhere between, exactly 0 and exactly 1 included.
float spanning_decay(std::mt19937& rng) {
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const float pick = unit(rng), x = unit(rng);
  if (pick < 0.08f) return 0.f;
  if (pick < 0.16f) return 1.f;
  if (pick < 0.30f) return x * 1e-6f;                            // near 0
  if (pick < 0.44f) return 1.f - x * 1e-6f;                      // near 1
  if (pick < 0.58f) return std::exp(-std::exp(4.f + 4.f * x));   // exp(−exp(dd)) of large dd: underflows
  if (pick < 0.72f) return std::exp(-std::exp(-9.f + 3.f * x));  // exp(−exp(dd)) of small dd: 1 − 1e-4..1e-3
  return x;
}

template <int N, int Lc = kernel::cpu::wkv5_chunk_len>
void check_wkv5(std::int64_t T, int H, decay5 kind, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const std::ptrdiff_t C = H * N;
  const auto n = static_cast<std::size_t>(T * C);
  std::vector<float> r(n), k(n), v(n), u(static_cast<std::size_t>(C)), state(static_cast<std::size_t>(H * N * N));
  for (std::size_t i = 0; i < n; ++i) {
    r[i] = normal(rng);
    k[i] = normal(rng);
    v[i] = normal(rng);
  }
  for (auto& x : u) x = normal(rng);
  for (auto& x : state) x = normal(rng);
  const std::int64_t decay_rows = kind == decay5::per_token ? T : 1;
  std::vector<float> w(static_cast<std::size_t>(decay_rows * C));
  for (std::int64_t t = 0; t < decay_rows; ++t)
    for (int h = 0; h < H; ++h) {
      const float head_decay = spanning_decay(rng);
      for (int j = 0; j < N; ++j)
        w[static_cast<std::size_t>(t * C + h * N + j)] = kind == decay5::per_head ? head_decay : spanning_decay(rng);
    }
  const std::ptrdiff_t ldw = kind == decay5::per_token ? C : 0;

  auto s_ref = state, s = state;
  std::vector<float> y_ref(n), y(n);
  for (int h = 0; h < H; ++h) {
    for (std::int64_t t = 0; t < T; ++t) {
      const auto o = static_cast<std::size_t>(t * C + h * N);
      kernel::cpu::wkv5_step<simd_arch, N>(s_ref.data() + h * N * N, &r[o], &k[o], &v[o], &w[t * ldw + h * N],
                                           &u[static_cast<std::size_t>(h * N)], &y_ref[o]);
    }
    const auto o = static_cast<std::size_t>(h * N);
    kernel::cpu::wkv5_chunked<simd_arch, N, Lc>(s.data() + h * N * N, T, &r[o], &k[o], &v[o], C, &w[o], ldw, &u[o],
                                                &y[o], C);
  }
  std::vector<double> s64(state.begin(), state.end()), y64(n);
  wkv5_f64(s64, T, H, N, r, k, v, w, ldw, u, y64);
  std::ostringstream what;
  what << "wkv5 N=" << N << " Lc=" << Lc << " T=" << T << " decays "
       << (kind == decay5::per_token     ? "per token"
           : kind == decay5::per_channel ? "per channel"
                                         : "per head");
  check_agree(y, y_ref, s, s_ref, T, H, N, what.str() + ", chunked vs serial");
  check_agree(y, y64, s, s64, T, H, N, what.str() + ", chunked vs float64");
}

// ---------------------------------------------------------------------------------------------------------------
// Whole models

struct golden_case {
  std::string name;
  io::safetensors_file golden;
  std::vector<std::int32_t> tokens;

  explicit golden_case(const std::string& n)
      : name(n), golden(io::safetensors_file::open(data_path(n + ".golden.safetensors"))) {
    tokens = rwkv::test::ints(golden.at("tokens"));
  }
};

// Every sequence-form golden check with form::chunked forced, at the normal tolerances of tests/support/golden.hpp:
// all-position logits, last-position logits, the hand-over to steps (logits_split), and the final state (per layer:
// att shift, WKV, ffn shift).
template <class M>
void check_golden_chunked(const std::string& name) {
  const golden_case g(name);
  const auto model = M::load(data_path(name + ".model.safetensors"));
  const auto chunked = form::chunked;

  auto s = model.make_state();
  const auto seq = model.forward(g.tokens, s, logits_for::all, nullptr, chunked);
  check_close(rwkv::test::flat(seq), floats(g.golden.at("logits_seq")), rwkv::test::logits_tol,
              name + " chunked logits_seq");
  for (std::size_t i = 0; i < s.layers.size(); ++i) {
    const auto& l = s.layers[i];
    const auto idx = [&](std::size_t k) { return "state." + std::to_string(3 * i + k); };
    check_close(l.att.shift, floats(g.golden.at(idx(0))), rwkv::test::state_tol, name + " chunked " + idx(0));
    check_close(l.att.wkv, floats(g.golden.at(idx(1))), rwkv::test::state_tol, name + " chunked " + idx(1));
    check_close(l.ffn.shift, floats(g.golden.at(idx(2))), rwkv::test::state_tol, name + " chunked " + idx(2));
  }

  auto s2 = model.make_state();
  check_close(model.prefill(g.tokens, s2, nullptr, chunked), floats(g.golden.at("logits_seq_last")),
              rwkv::test::logits_tol, name + " chunked logits_seq_last");

  // Heads in parallel on a pool: the same logits.
  thread_pool pool(2);
  auto s3 = model.make_state();
  check_close(rwkv::test::flat(model.forward(g.tokens, s3, logits_for::all, &pool, chunked)),
              floats(g.golden.at("logits_seq")), rwkv::test::logits_tol, name + " chunked logits_seq (2 threads)");

  if (g.golden.find("logits_split")) {
    auto sp = model.make_state();
    const std::span<const std::int32_t> all(g.tokens);
    model.prefill(all.first(10), sp, nullptr, chunked);
    std::vector<float> last;
    for (std::size_t t = 10; t < g.tokens.size(); ++t) last = model.step(g.tokens[t], sp);
    check_close(last, floats(g.golden.at("logits_split")), rwkv::test::logits_tol, name + " chunked logits_split");
  }
}

// 300 random tokens: one chunked sequence call gives the logits of 300 steps, and the same final state.
template <class M>
void check_step_equals_chunked(const std::string& name, unsigned seed) {
  const auto model = M::load(data_path(name + ".model.safetensors"));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(model.cfg().vocab - 1));
  std::vector<std::int32_t> tokens(300);
  for (auto& t : tokens) t = pick(rng);

  auto s_seq = model.make_state();
  const auto seq = model.forward(tokens, s_seq, logits_for::all, nullptr, form::chunked);
  auto s_step = model.make_state();
  std::vector<float> steps;
  for (auto t : tokens) {
    const auto row = model.step(t, s_step);
    steps.insert(steps.end(), row.begin(), row.end());
  }
  check_close(rwkv::test::flat(seq), steps, rwkv::test::logits_tol, name + " chunked sequence vs 300 steps");
  for (std::size_t i = 0; i < s_seq.layers.size(); ++i) {
    check_close(s_seq.layers[i].att.wkv, s_step.layers[i].att.wkv, rwkv::test::state_tol, name + " wkv state");
    check_close(s_seq.layers[i].att.shift, s_step.layers[i].att.shift, rwkv::test::state_tol, name + " att shift");
    check_close(s_seq.layers[i].ffn.shift, s_step.layers[i].ffn.shift, rwkv::test::state_tol, name + " ffn shift");
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kernel_rwkv7)

BOOST_AUTO_TEST_CASE(chunked_matches_serial_head_size_64) {
  unsigned seed = 70;
  for (auto T : lengths) check_wkv7<64>(T, 2, decay7::spanning, ++seed);
}

BOOST_AUTO_TEST_CASE(chunked_matches_serial_head_size_8) {
  unsigned seed = 170;
  for (auto T : lengths) check_wkv7<8>(T, 3, decay7::spanning, ++seed);
}

BOOST_AUTO_TEST_CASE(chunk_length_32) {
  unsigned seed = 270;
  for (std::int64_t T : {1, 31, 32, 33, 200}) check_wkv7<64, 32>(T, 2, decay7::spanning, ++seed);
}

// Decays below RWKV-7's range make the factorization unsafe; those chunks run serially, with the same results.
BOOST_AUTO_TEST_CASE(out_of_range_decays_fall_back_to_serial) {
  unsigned seed = 370;
  for (std::int64_t T : {17, 200}) check_wkv7<64>(T, 2, decay7::out_of_range, ++seed);
}

BOOST_AUTO_TEST_CASE(zero_length_changes_nothing) {
  std::vector<float> s(64 * 64, 0.5f), dummy(64, 0.f);
  kernel::cpu::wkv7_chunked<simd_arch, 64>(s.data(), 0, dummy.data(), dummy.data(), dummy.data(), dummy.data(),
                                           dummy.data(), dummy.data(), 64, dummy.data(), 64);
  BOOST_CHECK(std::all_of(s.begin(), s.end(), [](float x) { return x == 0.5f; }));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(kernel_rwkv5_6)

BOOST_AUTO_TEST_CASE(chunked_matches_serial_head_size_64) {
  unsigned seed = 50;
  for (auto kind : {decay5::per_token, decay5::per_channel, decay5::per_head})
    for (auto T : lengths) check_wkv5<64>(T, 2, kind, ++seed);
}

BOOST_AUTO_TEST_CASE(chunked_matches_serial_head_size_8) {
  unsigned seed = 150;
  for (auto kind : {decay5::per_token, decay5::per_channel, decay5::per_head})
    for (auto T : lengths) check_wkv5<8>(T, 3, kind, ++seed);
}

BOOST_AUTO_TEST_CASE(chunk_length_32) {
  unsigned seed = 250;
  for (std::int64_t T : {1, 31, 32, 33, 200}) check_wkv5<64, 32>(T, 2, decay5::per_token, ++seed);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(models_chunked)

BOOST_AUTO_TEST_CASE(v7_dev_golden) { check_golden_chunked<v7::Model<f32>>("v7-dev"); }
BOOST_AUTO_TEST_CASE(tiny_7v0_golden) { check_golden_chunked<v7::Model<f32>>("tiny-7v0"); }
BOOST_AUTO_TEST_CASE(v6_dev_golden) { check_golden_chunked<v6::Model<f32>>("v6-dev"); }
BOOST_AUTO_TEST_CASE(v5_2_dev_golden) { check_golden_chunked<v5::Model<f32>>("v5.2-dev"); }
BOOST_AUTO_TEST_CASE(v5_1_dev_golden) { check_golden_chunked<v5::Model<f32>>("v5.1-dev"); }
BOOST_AUTO_TEST_CASE(tiny_5v2_golden) { check_golden_chunked<v5::Model<f32, cpu<>, 8>>("tiny-5v2"); }

BOOST_AUTO_TEST_CASE(v7_step_equals_chunked_sequence) {
  check_step_equals_chunked<v7::Model<f32>>("v7-dev", 7);
  check_step_equals_chunked<v7::Model<f32>>("tiny-7v0", 8);
}
BOOST_AUTO_TEST_CASE(v6_step_equals_chunked_sequence) { check_step_equals_chunked<v6::Model<f32>>("v6-dev", 6); }
BOOST_AUTO_TEST_CASE(v5_step_equals_chunked_sequence) {
  check_step_equals_chunked<v5::Model<f32>>("v5.2-dev", 52);
  check_step_equals_chunked<v5::Model<f32>>("v5.1-dev", 51);
  check_step_equals_chunked<v5::Model<f32, cpu<>, 8>>("tiny-5v2", 5);
}

// form::automatic is chunked from the crossover length on and serial below it (always serial where the build's
// ISA does not profit); form::serial never chunks.
BOOST_AUTO_TEST_CASE(automatic_form_switches_at_the_crossover) {
  const auto model = v7::Model<f32>::load(data_path("v7-dev.model.safetensors"));
  const auto at = kernel::cpu::wkv7_chunked_min_tokens<simd_arch>;
  BOOST_TEST_MESSAGE("automatic form on " << simd_arch::name() << ": chunked from "
                                          << (at > 1000 ? std::string("never") : std::to_string(at) + " tokens"));
  const std::int64_t c = std::min<std::int64_t>(at, 1000);
  std::vector<std::int64_t> lengths_to_try = {2, 100};
  if (c < 100) lengths_to_try = {c - 1, c, c + 37};
  for (const auto T : lengths_to_try) {
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(T));
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 37 + 11) % 512);
    auto s1 = model.make_state(), s2 = model.make_state(), s3 = model.make_state();
    const auto serial = rwkv::test::flat(model.forward(tokens, s1, logits_for::all, nullptr, form::serial));
    const auto chunked = rwkv::test::flat(model.forward(tokens, s2, logits_for::all, nullptr, form::chunked));
    const auto automatic = rwkv::test::flat(model.forward(tokens, s3, logits_for::all));
    check_close(chunked, serial, rwkv::test::logits_tol, "T=" + std::to_string(T) + " chunked vs serial");
    if (T >= at) {
      BOOST_CHECK(automatic == chunked);
      BOOST_CHECK(s3 == s2);
    } else {
      BOOST_CHECK(automatic == serial);
      BOOST_CHECK(s3 == s1);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

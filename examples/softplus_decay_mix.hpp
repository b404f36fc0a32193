#pragma once
// A research time mixer written against rwkv's concepts (docs/extending.md): RWKV-7's delta-rule state update
// with a different decay parametrisation. RWKV-7 uses w = exp(−e^{−1/2}·σ(z)) ∈ (0.545, 1); this one uses
// w = exp(−softplus(z)) ∈ (0, 1) — any decay, with a data-dependent rank-R part z = d0 + tanh(x·d1)·d2.
// It keeps RWKV-7's removal key (a = −κ̂, b = κ̂) but no in-context learning rate, gate, bonus or value residual,
// and reads its own tensor names: att.mu, att.d0/d1/d2, att.{receptance,key,value,output}.weight.

#include <cmath>
#include <string>
#include <vector>

#include <rwkv/core/concepts.hpp>
#include <rwkv/init/builder.hpp>
#include <rwkv/io/weight_reader.hpp>
#include <rwkv/kernel/cpu/linear.hpp>
#include <rwkv/kernel/cpu/wkv7.hpp>
#include <rwkv/model/model_config.hpp>

template <int N = 16>  // head size
class SoftplusDecayMix {
 public:
  static constexpr std::int64_t rank = 16;

  struct state_type {
    std::vector<float> shift, wkv;  // previous token (C); H x N x N, [h][value][key]
    friend bool operator==(const state_type&, const state_type&) = default;
    template <class F>
    void visit(F&& f) {
      f("shift", shift);
      f("wkv", wkv);
    }
    template <class F>
    void visit(F&& f) const {
      f("shift", shift);
      f("wkv", wkv);
    }
  };

  // Built from the model-wide config: everything else comes from the tensor shapes.
  SoftplusDecayMix(rwkv::io::weight_reader& r, const rwkv::ModelConfig& c, std::int64_t layer) : C_(c.n_embd) {
    const auto p = rwkv::block_prefix(layer) + "att.";
    if (C_ % N != 0) r.fail("n_embd " + std::to_string(C_) + " is not a multiple of the head size", p + "mu");
    mu_ = r.vector(p + "mu", C_);
    d0_ = r.vector(p + "d0", C_);
    d1_ = r.dense(p + "d1", C_, rank);
    d2_ = r.dense(p + "d2", rank, C_);
    for (auto [m, name] : {std::pair{&wr_, "receptance"}, {&wk_, "key"}, {&wv_, "value"}, {&wo_, "output"}})
      *m = r.weight<float>(p + name + ".weight", C_, C_);
  }

  // Fresh weights for block `layer`, in the spirit of RWKV-7's initialisation.
  static void init(rwkv::init::builder& b, std::int64_t layer) {
    const auto C = b.shape().n_embd;
    const auto p = rwkv::block_prefix(layer) + "att.";
    b.fill(p + "mu", {C}, [&](std::int64_t c) { return 1.0 - std::pow(double(c) / double(C), 0.5 * b.r1(layer)); });
    b.fill(p + "d0", {C}, [&](std::int64_t c) { return -4.0 + 5.0 * double(c) / double(C); });
    b.zeros(p + "d1", {C, rank});
    b.orthogonal(p + "d2", rank, C, 0.1);
    for (auto [name, gain] : {std::pair{"receptance", 1.0}, {"key", 0.1}, {"value", 1.0}, {"output", 0.0}})
      b.orthogonal(p + name + ".weight", C, C, gain);
  }

  state_type make_state() const {
    return {std::vector<float>(C_, 0.f), std::vector<float>(C_ * N, 0.f)};  // H·N·N = C·N
  }

  // x: T x C consecutive tokens (LayerNorm-ed); out: T x C.
  void forward(const rwkv::row_matrix& x, state_type& s, rwkv::context& ctx, rwkv::row_matrix& out) const {
    using arch = xsimd::default_arch;
    const auto T = x.rows();
    rwkv::row_matrix xs(T, C_);  // token shift: lerp towards the previous token
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index c = 0; c < C_; ++c) {
        const float prev = t == 0 ? s.shift[c] : x(t - 1, c);
        xs(t, c) = x(t, c) + (prev - x(t, c)) * mu_[c];
      }
    rwkv::row_matrix r, k, v, y(T, C_);
    rwkv::kernel::cpu::linear<arch>(wr_, xs, r, ctx.pool);
    rwkv::kernel::cpu::linear<arch>(wk_, xs, k, ctx.pool);
    rwkv::kernel::cpu::linear<arch>(wv_, xs, v, ctx.pool);
    const Eigen::Map<const rwkv::row_matrix> d1(d1_.data(), C_, rank), d2(d2_.data(), rank, C_);
    rwkv::row_matrix w = (xs * d1).array().tanh().matrix() * d2;
    std::vector<float> a(N), bb(N);
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index h = 0; h < C_ / N; ++h) {
        float* kh = &k(t, h * N);
        float norm = 0.f;
        for (int j = 0; j < N; ++j) norm += kh[j] * kh[j];
        norm = 1.f / std::max(std::sqrt(norm), 1e-12f);
        for (int j = 0; j < N; ++j) {
          bb[j] = kh[j] * norm;
          a[j] = -bb[j];
          const float z = d0_[h * N + j] + w(t, h * N + j);
          w(t, h * N + j) = std::exp(-(z > 20.f ? z : std::log1p(std::exp(z))));  // exp(−softplus(z))
        }
        rwkv::kernel::cpu::wkv7_step<arch, N>(s.wkv.data() + h * N * N, &r(t, h * N), &w(t, h * N), kh, &v(t, h * N),
                                              a.data(), bb.data(), &y(t, h * N));
      }
    rwkv::kernel::cpu::linear<arch>(wo_, y, out, ctx.pool);
    for (Eigen::Index c = 0; c < C_; ++c) s.shift[c] = x(T - 1, c);
  }

 private:
  std::int64_t C_;
  std::vector<float> mu_, d0_, d1_, d2_;
  rwkv::matrix<float> wr_, wk_, wv_, wo_;
};

static_assert(rwkv::TimeMixer<SoftplusDecayMix<>>);

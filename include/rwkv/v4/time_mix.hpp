#pragma once
// RWKV-4 time mixing (spec/v4.md (b), (d)). Stateless: weights only; the recurrent state is passed in.
// One code path serves both forms: T = 1 rows is the RNN step (matrix-vector products), T > 1 the sequence
// form (every projection one matrix product over the T rows, the WKV serial in time, exactly the reference's
// per-token recurrence). Either form starts from whatever state it is given and leaves the state after the last
// token, so calls can be chained and mixed freely.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/activation.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/cpu/wkv4.hpp"
#include "rwkv/v4/config.hpp"
#include "rwkv/v4/init.hpp"

namespace rwkv::v4 {

// Initial running-maximum exponent of the WKV state, exactly the reference's (spec/v4.md (c)). Any value
// ≤ −1e30 behaves the same in float32: the first step's max() picks u + k and k. Never −inf ((−inf) − (−inf)).
inline constexpr float initial_pp = -1e30f;

// The WKV running sums are A = aa·e^pp (numerator) and B = bb·e^pp (denominator), per channel. This is the
// reference's representation, value for value, so a state can be compared with the reference's state list.
struct TimeMixState {
  std::vector<float> shift;  // previous token's ln1 output (C)
  std::vector<float> aa;     // numerator scaled by e^{-pp} (A)
  std::vector<float> bb;     // denominator scaled by e^{-pp} (A)
  std::vector<float> pp;     // running maximum exponent (A), initially initial_pp
  friend bool operator==(const TimeMixState&, const TimeMixState&) = default;
  template <class F>
  void visit(F&& f) {
    f("shift", shift);
    f("aa", aa);
    f("bb", bb);
    f("pp", pp);
  }
  template <class F>
  void visit(F&& f) const {
    f("shift", shift);
    f("aa", aa);
    f("bb", bb);
    f("pp", pp);
  }
};

template <Precision P = f32, Backend B = cpu<>>
class TimeMix {
 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = TimeMixState;
  using config_type = Config;

  // Writes this mixer's tensors for block `layer`, initialised as the official training code does.
  static void init(init::builder& b, std::int64_t layer) { init_time_mix(b, layer); }

  // Whether block `layer` of a checkpoint has an RWKV-4 time mixer (composed models pick block types by this).
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    const auto p = block_prefix(layer) + "att.";
    return r.has(p + "time_first") && !r.has(p + "ln_x.weight");
  }

  TimeMix() = default;

  TimeMix(io::weight_reader& r, const Config& c, std::int64_t layer) : n_embd_(c.n_embd), dim_att_(c.dim_att) {
    const std::string p = "blocks." + std::to_string(layer) + ".att.";
    const auto C = c.n_embd, A = c.dim_att;
    mix_k_ = r.vector(p + "time_mix_k", C);
    mix_v_ = r.vector(p + "time_mix_v", C);
    mix_r_ = r.vector(p + "time_mix_r", C);
    for (auto [dst, src] : {std::pair{&rest_k_, &mix_k_}, {&rest_v_, &mix_v_}, {&rest_r_, &mix_r_}}) {
      dst->resize(src->size());
      for (std::size_t i = 0; i < src->size(); ++i) (*dst)[i] = 1.f - (*src)[i];
    }
    decay_ = r.vector(p + "time_decay", A);  // w = −exp(time_decay), in float32 from the stored value
    for (auto& d : decay_) d = -std::exp(d);
    first_ = r.vector(p + "time_first", A);  // u, used raw (log space)
    key_ = r.weight<weight_type>(p + "key.weight", A, C);
    value_ = r.weight<weight_type>(p + "value.weight", A, C);
    receptance_ = r.weight<weight_type>(p + "receptance.weight", A, C);
    output_ = r.weight<weight_type>(p + "output.weight", C, A);
  }

  state_type make_state() const {
    const auto C = static_cast<std::size_t>(n_embd_), A = static_cast<std::size_t>(dim_att_);
    return {std::vector<float>(C, 0.f), std::vector<float>(A, 0.f), std::vector<float>(A, 0.f),
            std::vector<float>(A, initial_pp)};
  }

  // x: T x C rows of ln1 output; out: T x C. ctx.pool (optional) runs the kernels in parallel.
  void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const {
    using arch = typename B::arch;
    using namespace kernel::cpu;
    const auto T = x.rows();
    const auto C = n_embd_;
    const auto A = dim_att_;

    // Token shift x·μ + prev·(1 − μ): μ multiplies the current token (spec/README.md §7, item 2).
    row_matrix xk(T, C), xv(T, C), xr(T, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const float* cur = x.row(t).data();
      const float* prev = t == 0 ? s.shift.data() : x.row(t - 1).data();
      for (Eigen::Index c = 0; c < C; ++c) {
        xk(t, c) = cur[c] * mix_k_[c] + prev[c] * rest_k_[c];
        xv(t, c) = cur[c] * mix_v_[c] + prev[c] * rest_v_[c];
        xr(t, c) = cur[c] * mix_r_[c] + prev[c] * rest_r_[c];
      }
    }

    row_matrix r, k, v;
    linear<arch>(receptance_, xr, r, ctx.pool);
    linear<arch>(key_, xk, k, ctx.pool);
    linear<arch>(value_, xv, v, ctx.pool);

    // The recurrence: serial in time, independent per channel (blocks of channels run in parallel for
    // sequences). Blocks are multiples of 16 channels, so every channel takes the same (vector or scalar) path
    // of the kernel whatever the split: results do not depend on the pool.
    row_matrix y(T, A);
    auto run_channels = [&](std::int64_t b0, std::int64_t b1) {
      const std::int64_t c0 = b0 * channel_block, c1 = std::min<std::int64_t>(A, b1 * channel_block);
      const auto n = static_cast<std::size_t>(c1 - c0);
      for (Eigen::Index t = 0; t < T; ++t) {
        float* yt = y.row(t).data();
        wkv4_step<arch>(n, decay_.data() + c0, first_.data() + c0, k.row(t).data() + c0, v.row(t).data() + c0,
                        s.aa.data() + c0, s.bb.data() + c0, s.pp.data() + c0, yt + c0);
        const float* rt = r.row(t).data();
        for (std::int64_t c = c0; c < c1; ++c) yt[c] *= sigmoid(rt[c]);  // r ⊙ wkv
      }
    };
    const std::int64_t blocks = (A + channel_block - 1) / channel_block;
    if (T > 1)
      parallel_for(ctx.pool, blocks, run_channels);
    else
      run_channels(0, blocks);
    linear<arch>(output_, y, out, ctx.pool);

    const float* last = x.row(T - 1).data();
    s.shift.assign(last, last + C);
  }

  std::int64_t n_embd() const noexcept { return n_embd_; }
  std::int64_t dim_att() const noexcept { return dim_att_; }

 private:
  static constexpr std::int64_t channel_block = 16;

  std::int64_t n_embd_ = 0, dim_att_ = 0;
  std::vector<float> mix_k_, mix_v_, mix_r_, rest_k_, rest_v_, rest_r_;  // μ and 1 − μ
  std::vector<float> decay_, first_;                                     // w = −exp(time_decay), u = time_first
  matrix<weight_type> key_, value_, receptance_, output_;
};

}  // namespace rwkv::v4

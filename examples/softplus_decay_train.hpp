#pragma once
// The softplus-decay research mixer of softplus_decay_mix.hpp as a trainable time mixer (docs/training.md,
// "Your own mixer"): the same mathematics written with rwkv::train's operations, each of which has its backward
// (token-shift mix, linear and LoRA products, the delta-rule WKV operator), so the mixer's backward is those
// backwards in reverse order. rwkv::train::block adds ln1, the residuals and RWKV-7's channel mix;
// rwkv::train::network the embedding, head and loss; rwkv::train::check_gradients verifies the backward against
// finite differences.
//
//   using layer = rwkv::train::block<SoftplusDecayTrain<16>>;
//   auto net = rwkv::train::network<layer>::load("custom_block.safetensors");   // custom_block's checkpoint

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include <rwkv/model/model_config.hpp>
#include <rwkv/train.hpp>
#include <rwkv/train/wkv7.hpp>

template <int N = 16>  // head size
class SoftplusDecayTrain {
 public:
  // The shapes the network and block need: ModelConfig's plus the channel mix's hidden size.
  struct config_type {
    std::int64_t n_layer = 0, n_embd = 0, vocab = 0, dim_ffn = 0;
    static config_type from(const rwkv::io::weight_reader& r) {
      const auto m = rwkv::ModelConfig::from(r);
      return {m.n_layer, m.n_embd, m.vocab, r.peek("blocks.0.ffn.key.weight").shape.at(0)};
    }
  };
  static constexpr rwkv::train::channel_mix_spec channel_mix{rwkv::train::mix_form::previous, "x_k", nullptr};
  static constexpr std::int64_t rank = 16;

  // The inference mixer's state: token shift (C), WKV state (H, N, N) [h][value][key].
  static std::vector<std::string> state_names() { return {"shift", "wkv"}; }
  static std::vector<std::vector<std::int64_t>> state_shapes(const config_type& c) {
    return {{c.n_embd}, {c.n_embd / N, N, N}};
  }

  SoftplusDecayTrain(rwkv::train::parameter_set& ps, const config_type& c, std::int64_t layer)
      : C_(c.n_embd), H_(c.n_embd / N), wkv_(c.n_embd / N, N) {
    const auto p = rwkv::block_prefix(layer) + "att.";
    mu_ = &ps.get(p + "mu", 1, C_), d0_ = &ps.get(p + "d0", 1, C_);
    d1_ = &ps.get(p + "d1", C_, rank), d2_ = &ps.get(p + "d2", rank, C_);
    for (auto [m, name] : {std::pair{&wr_, "receptance"}, {&wk_, "key"}, {&wv_, "value"}, {&wo_, "output"}})
      *m = &ps.get(p + name + ".weight", C_, C_);
  }

  struct tape {
    rwkv::row_matrix h, prev, xs, r, k, v, hd, z, w, kh, a, y;
    std::vector<float> knorm;  // ‖k‖ per token and head
    rwkv::train::wkv7_op::tape wkv;
  };

  void forward(const rwkv::row_matrix& h, std::span<std::vector<float>> state, rwkv::train::segment_context& seg,
               tape& tp, rwkv::row_matrix& out) const {
    using namespace rwkv::train;
    const auto T = h.rows();
    tp.h = h;
    tp.prev = shifted(h, state[0]);
    mix_forward(h, tp.prev, *mu_, tp.xs);
    linear_forward(tp.xs, *wr_, tp.r, seg.pool);
    linear_forward(tp.xs, *wk_, tp.k, seg.pool);
    linear_forward(tp.xs, *wv_, tp.v, seg.pool);
    tp.hd = (tp.xs * d1_->value).array().tanh();
    tp.z = (tp.hd * d2_->value).rowwise() + d0_->value.row(0);
    tp.w = tp.z.unaryExpr([](float z) { return std::exp(-softplus(z)); });
    tp.kh.resize(T, C_);
    tp.knorm.resize(static_cast<std::size_t>(T * H_));
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index hd = 0; hd < H_; ++hd) {
        const auto k = tp.k.row(t).segment(hd * N, N);
        const float n = k.norm();
        tp.knorm[static_cast<std::size_t>(t * H_ + hd)] = n;
        tp.kh.row(t).segment(hd * N, N) = k / std::max(n, 1e-12f);
      }
    tp.a = -tp.kh;  // key k, removal key −κ̂, replacement key κ̂
    wkv_.forward({tp.r, tp.w, tp.k, tp.v, tp.a, tp.kh}, state[1], tp.y, tp.wkv, seg.pool);
    linear_forward(tp.y, *wo_, out, seg.pool);
    Eigen::Map<rwkv::train::row_vector>(state[0].data(), C_) = h.row(T - 1);
  }

  void backward(const rwkv::row_matrix& dout, std::span<std::vector<float>> dstate, rwkv::train::segment_context& seg,
                const tape& tp, rwkv::row_matrix& dh) {
    using namespace rwkv::train;
    using rwkv::row_matrix;
    const auto T = dout.rows();
    const row_matrix dy = linear_backward(dout, tp.y, *wo_, seg.pool);
    row_matrix dr = row_matrix::Zero(T, C_), dw = dr, dkey = dr, dv = dr, da = dr, db = dr;
    wkv_.backward(dy, {tp.r, tp.w, tp.k, tp.v, tp.a, tp.kh}, tp.wkv, dstate[1], dr, dw, dkey, dv, da, db, seg.pool);

    // κ̂ = k/‖k‖ is the replacement key and minus the removal key; k itself is the key.
    const row_matrix dkh = db - da;
    row_matrix dk = dkey;
    for (Eigen::Index t = 0; t < T; ++t)
      for (Eigen::Index hd = 0; hd < H_; ++hd) {
        const auto s = Eigen::seqN(hd * N, N);
        const float n = tp.knorm[static_cast<std::size_t>(t * H_ + hd)];
        if (n > 1e-12f)
          dk.row(t)(s) += (dkh.row(t)(s) - tp.kh.row(t)(s) * tp.kh.row(t)(s).dot(dkh.row(t)(s))) / n;
        else
          dk.row(t)(s) += dkh.row(t)(s) / 1e-12f;
      }

    // w = exp(−softplus(z)), z = d0 + tanh(xs·d1)·d2.
    const row_matrix dz = dw.array() * -tp.w.array() * tp.z.unaryExpr([](float z) { return softplus_grad(z); }).array();
    d0_->grad.row(0) += dz.colwise().sum();
    row_matrix dxs = row_matrix::Zero(T, C_), dhd = row_matrix::Zero(T, rank);
    lora_backward(dz, tp.hd, *d2_, dhd, seg.pool);
    const row_matrix dpre = dhd.array() * (1.f - tp.hd.array().square());
    lora_backward(dpre, tp.xs, *d1_, dxs, seg.pool);
    linear_backward(dr, tp.xs, *wr_, dxs, seg.pool);
    linear_backward(dk, tp.xs, *wk_, dxs, seg.pool);
    linear_backward(dv, tp.xs, *wv_, dxs, seg.pool);

    // Token shift.
    dh = row_matrix::Zero(T, C_);
    row_matrix dprev = row_matrix::Zero(T, C_);
    mix_backward(dxs, tp.h, tp.prev, *mu_, dh, dprev);
    state_shift_backward(dprev, dh, dstate[0]);
  }

 private:
  // softplus as the inference mixer computes it (linear above 20), and its derivative.
  static float softplus(float z) { return z > 20.f ? z : std::log1p(std::exp(z)); }
  static float softplus_grad(float z) { return z > 20.f ? 1.f : rwkv::train::sigmoid(z); }

  std::int64_t C_, H_;
  rwkv::train::wkv7_op wkv_;
  rwkv::train::parameter *mu_, *d0_, *d1_, *d2_, *wr_, *wk_, *wv_, *wo_;
};

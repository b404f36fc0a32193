#pragma once
// RWKV-7b's DeepEmbedAttention (DEA, spec/v7-variants.md Part B): one small softmax-attention head per layer,
// reading the raw residual stream x (not a LayerNorm output) in parallel with the time mix. Per token τ at
// position t:
//   q_t = W_q·x            a_t = x·K1 (R)          b_t = x·V1 (R)          (a_t, b_t, τ appended to the cache)
//   kc_p = (a_p·K2) ⊙ (E_k[τ_p] + X_k·emb'[τ_p])    vc_p = tanh(b_p·V2) ⊙ (E_v[τ_p] + X_v·emb'[τ_p])
//   k_p = LN(kc_p + (kc_{p−1} − kc_p)⊙μ_k)           v_p = LN(vc_p + (vc_{p−1} − vc_p)⊙μ_v)    (kc_{−1} = vc_{−1} = 0)
//   q̂ = LN(q_t + (q_{t−1} − q_t)⊙μ_q)                σ_p = 64·tanh(q̂·k_p / 1024),  p = 0 … t
//   out = Σ_p softmax(σ)_p · v_p                      (no output projection)
// with D = 256 (query/key width), R = 32 (latent width), the widths and constants of the only reference.
//
// The state is the reference's: every position's token and its two R-wide latents, growing by one row per token,
// and the previous query projection. The keys and values the latents stand for never change once computed, so the
// state also keeps them (materialised: D + C values per position) and each call computes only its new positions:
// a step costs O(t·(D + C)) per layer instead of recomputing every position (O(t·R·(D + C)) plus a table merge
// per position). That copy is derived: it is neither compared nor saved, and a state read from a file rebuilds it
// on its first call (through the context's embed_tokens). Memory per cached token and layer: 4·(2R + D + C) bytes,
// plus 4 for its token id. load_options::max_cached_tokens bounds the tokens a state may hold.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/backend/cpu.hpp"
#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/init/builder.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/kernel/cpu/linear.hpp"
#include "rwkv/kernel/math.hpp"
#include "rwkv/model/model_config.hpp"
#include "rwkv/model/row_mixer.hpp"
#include "rwkv/model/row_states.hpp"
#include "rwkv/model/state.hpp"

namespace rwkv::v7b {

inline constexpr std::int64_t dea_query_width = 256;  // D: queries and keys
inline constexpr std::int64_t dea_latent_width = 32;  // R: the cached key and value latents
inline constexpr float dea_score_scale = 1.f / 1024.f;
inline constexpr float dea_soft_cap = 64.f;
inline constexpr float dea_norm_eps = 1e-5f;

struct AttentionState {
  growing_tensor tokens;        // token id of every cached position (exact as float32 below 2^24)
  growing_tensor key_latent;    // positions x R: a_p
  growing_tensor value_latent;  // positions x R: b_p
  std::vector<float> q_prev;    // D: the previous token's query projection (zero before the first)

  // Derived from the above (see the top of this file): the first `positions` keys (D each) and values (C each),
  // and the last of them before their token shift and LayerNorm.
  struct materialised {
    std::int64_t positions = 0;
    std::vector<float> keys, values, key_shift, value_shift;
  } derived;

  std::int64_t positions() const noexcept { return static_cast<std::int64_t>(tokens.size()); }

  friend bool operator==(const AttentionState& a, const AttentionState& b) {
    return a.tokens == b.tokens && a.key_latent == b.key_latent && a.value_latent == b.value_latent &&
           a.q_prev == b.q_prev;
  }
  template <class F>
  void visit(F&& f) {
    f("tokens", tokens);
    f("key_latent", key_latent);
    f("value_latent", value_latent);
    f("q_prev", q_prev);
  }
  template <class F>
  void visit(F&& f) const {
    f("tokens", tokens);
    f("key_latent", key_latent);
    f("value_latent", value_latent);
    f("q_prev", q_prev);
  }
};

// DEA's tensors of block `layer`. No official initialisation exists: these are the magnitudes of the golden test
// data (spec/v7-variants.md "Initialization"), with the token-shift mixes as RWKV-7's ramps.
inline void init_attention(init::builder& b, std::int64_t layer) {
  const auto& d = b.shape();
  const auto C = d.n_embd, D = dea_query_width, R = dea_latent_width;
  const double Cd = static_cast<double>(C), r1 = b.r1(layer);
  const auto p = block_prefix(layer) + "qkv.";
  auto ramp = [&](const std::string& name, std::int64_t n, double e) {
    b.fill(p + name, {1, 1, n}, [&, n, e](std::int64_t c) {
      return 1.0 - std::pow(static_cast<double>(c) / static_cast<double>(n), e * r1);
    });
  };
  ramp("x_q", D, 0.2);
  ramp("x_k", D, 0.7);
  ramp("x_v", C, 0.7);
  b.normal(p + "qq.weight", {D, C}, 0.0, 1.0 / std::sqrt(Cd));
  b.normal(p + "k1", {C, R}, 0.0, 1.0 / std::sqrt(Cd));
  b.normal(p + "k2", {R, D}, 0.0, 1.0 / std::sqrt(static_cast<double>(R)));
  b.normal(p + "k_emb.weight", {d.vocab, D}, 1.0, 0.3);
  b.normal(p + "k_emb_x.weight", {D, C}, 0.0, 0.3 / std::sqrt(Cd));
  b.normal(p + "v1", {C, R}, 0.0, 1.0 / std::sqrt(Cd));
  b.normal(p + "v2", {R, C}, 0.0, 1.0 / std::sqrt(static_cast<double>(R)));
  b.normal(p + "v_emb.weight", {d.vocab, C}, 1.0, 0.3);
  b.normal(p + "v_emb_x.weight", {C, C}, 0.0, 0.3 / std::sqrt(Cd));
  b.normal(p + "lnq.weight", {D}, 1.5, 0.15);
  b.normal(p + "lnq.bias", {D}, 0.0, 0.3);
  b.normal(p + "lnk.weight", {D}, 1.5, 0.15);
  b.normal(p + "lnk.bias", {D}, 0.0, 0.3);
  b.normal(p + "lnv.weight", {C}, 0.4, 0.1);
  b.normal(p + "lnv.bias", {C}, 0.0, 0.05);
}

template <Precision P = f32, Backend B = cpu<>>
class Attention : public row_mixer<Attention<P, B>, AttentionState> {
  friend row_mixer<Attention, AttentionState>;

 public:
  using precision_type = P;
  using backend_type = B;
  using weight_type = typename P::weight_type;
  using state_type = AttentionState;

  static void init(init::builder& b, std::int64_t layer) { init_attention(b, layer); }

  // Whether block `layer` of a checkpoint has a DEA branch.
  static bool matches(const io::weight_reader& r, std::int64_t layer) {
    return r.has(block_prefix(layer) + "qkv.qq.weight");
  }

  Attention() = default;

  // Any config with n_embd and vocab.
  template <class AnyConfig>
  Attention(io::weight_reader& r, const AnyConfig& c, std::int64_t layer)
      : n_embd_(c.n_embd), layer_(layer), max_tokens_(r.options().max_cached_tokens) {
    const std::string p = block_prefix(layer) + "qkv.";
    const std::int64_t C = c.n_embd, D = dea_query_width, R = dea_latent_width;
    for (const char* n :
         {"x_q", "x_k", "x_v", "qq.weight", "k1", "k2", "k_emb.weight", "k_emb_x.weight", "v1", "v2", "v_emb.weight",
          "v_emb_x.weight", "lnq.weight", "lnq.bias", "lnk.weight", "lnk.bias", "lnv.weight", "lnv.bias"})
      if (!r.has(p + n))
        r.fail(
            "missing tensor: an RWKV-7b DeepEmbedAttention block has qkv.x_q/x_k/x_v, qq.weight, k1, k2, k_emb, "
            "k_emb_x, v1, v2, v_emb, v_emb_x and lnq/lnk/lnv in every layer",
            p + n);
    const auto& qq = r.peek(p + "qq.weight");
    if (qq.shape.size() != 2 || qq.shape[0] != D)
      r.fail("DEA query width " + (qq.shape.empty() ? std::string("?") : std::to_string(qq.shape[0])) +
                 " is not supported: the only reference runs width 256 (its score scale 1/1024 and soft-cap 64 are "
                 "not known for others); shape " +
                 shape_string(qq.shape),
             p + "qq.weight");
    const auto& k1 = r.peek(p + "k1");
    if (k1.shape.size() != 2 || k1.shape[1] != R)
      r.fail("DEA latent width " + (k1.shape.size() == 2 ? std::to_string(k1.shape[1]) : shape_string(k1.shape)) +
                 " is not supported: the only reference runs width 32",
             p + "k1");
    if (max_tokens_ <= 0) r.fail("load_options::max_cached_tokens must be positive", p + "qq.weight");
    mu_q_ = r.vector(p + "x_q", D);
    mu_k_ = r.vector(p + "x_k", D);
    mu_v_ = r.vector(p + "x_v", C);
    query_ = r.weight<weight_type>(p + "qq.weight", D, C);
    k1_ = r.dense(p + "k1", C, R);
    k2_ = r.dense(p + "k2", R, D);
    v1_ = r.dense(p + "v1", C, R);
    v2_ = r.dense(p + "v2", R, C);
    key_table_ = r.table<weight_type>(p + "k_emb.weight", c.vocab, D);
    value_table_ = r.table<weight_type>(p + "v_emb.weight", c.vocab, C);
    key_table_x_ = r.weight<weight_type>(p + "k_emb_x.weight", D, C);
    value_table_x_ = r.weight<weight_type>(p + "v_emb_x.weight", C, C);
    lnq_w_ = r.vector(p + "lnq.weight", D);
    lnq_b_ = r.vector(p + "lnq.bias", D);
    lnk_w_ = r.vector(p + "lnk.weight", D);
    lnk_b_ = r.vector(p + "lnk.bias", D);
    lnv_w_ = r.vector(p + "lnv.weight", C);
    lnv_b_ = r.vector(p + "lnv.bias", C);
  }

  state_type make_state() const {
    state_type s;
    s.q_prev.assign(static_cast<std::size_t>(dea_query_width), 0.f);
    s.derived.key_shift.assign(static_cast<std::size_t>(dea_query_width), 0.f);
    s.derived.value_shift.assign(static_cast<std::size_t>(n_embd_), 0.f);
    return s;
  }

  std::int64_t max_cached_tokens() const noexcept { return max_tokens_; }

  // What a state grows by per token in this layer: the two latents, the materialised key and value, the token id.
  std::int64_t cache_bytes_per_token() const noexcept {
    return static_cast<std::int64_t>(sizeof(float)) * (2 * R + D + n_embd_ + 1);
  }

 private:
  static constexpr std::int64_t D = dea_query_width, R = dea_latent_width;

  // x: the raw residual stream (T x C); out: the branch's output (T x C).
  void run(const row_matrix& x, const row_states<state_type>& rows, context& ctx, row_matrix& out) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = x.rows(), C = n_embd_;
    if (!ctx.has_inputs() || ctx.embedded().rows() != T || static_cast<Eigen::Index>(ctx.tokens().size()) != T)
      throw error("RWKV-7b attention, layer " + std::to_string(layer_) +
                  ": the context does not hold this call's tokens and embeddings (DeepEmbedAttention reads the "
                  "input token of every row; run it inside a language model, or call context::set_inputs)");
    // One segment per state: all rows of a sequence call, or each row of a batch. Checked before anything changes.
    const Eigen::Index segments = rows.independent() ? T : 1, per_segment = rows.independent() ? 1 : T;
    for (Eigen::Index g = 0; g < segments; ++g) {
      const state_type& s = rows.of(g * per_segment);
      check_consistent(s);
      if (s.positions() + per_segment > max_tokens_)
        throw error("RWKV-7b attention: the state's key/value cache holds " + std::to_string(s.positions()) +
                    " tokens; " + std::to_string(per_segment) + " more would exceed the cap of " +
                    std::to_string(max_tokens_) + " (load_options::max_cached_tokens)");
    }

    row_matrix &q = ctx.scratch(T, D), &a = ctx.scratch(T, R), &b = ctx.scratch(T, R);
    row_matrix &kc = ctx.scratch(T, D), &vc = ctx.scratch(T, C);
    O::products(ctx, O::linear(query_, x, q), O::lora(k1_, C, R, x, a), O::lora(v1_, C, R, x, b));
    pre_shift(ctx, a, b, ctx.embedded(), ctx.tokens(), kc, vc);

    out.resize(T, C);
    row_matrix& qh = ctx.scratch(per_segment, D);
    for (Eigen::Index g = 0; g < segments; ++g) {
      state_type& s = rows.of(g * per_segment);
      if (s.derived.positions < s.positions()) rebuild(ctx, s);
      const std::int64_t first = s.positions();
      for (Eigen::Index j = 0; j < per_segment; ++j) {
        const Eigen::Index t = g * per_segment + j;
        s.tokens.push_back(static_cast<float>(ctx.tokens()[static_cast<std::size_t>(t)]));
        s.key_latent.insert(s.key_latent.end(), a.row(t).data(), a.row(t).data() + R);
        s.value_latent.insert(s.value_latent.end(), b.row(t).data(), b.row(t).data() + R);
      }
      append_positions(s, kc.middleRows(g * per_segment, per_segment), vc.middleRows(g * per_segment, per_segment));
      // Queries, each shifted against the previous token's projection.
      for (Eigen::Index j = 0; j < per_segment; ++j) {
        const float* qt = q.row(g * per_segment + j).data();
        const float* prev = j == 0 ? s.q_prev.data() : q.row(g * per_segment + j - 1).data();
        float* h = qh.row(j).data();
        for (std::int64_t c = 0; c < D; ++c)
          h[c] = math::lerp_previous(qt[c], prev[c], mu_q_[static_cast<std::size_t>(c)]);
        math::layer_norm(h, lnq_w_.data(), lnq_b_.data(), h, static_cast<std::size_t>(D), dea_norm_eps);
      }
      const float* q_last = q.row(g * per_segment + per_segment - 1).data();
      s.q_prev.assign(q_last, q_last + D);
      attend(ctx, s, first, qh, g * per_segment, out);
    }
  }

  // kc = (a·K2) ⊙ (E_k[τ] + X_k·emb'), vc = tanh(b·V2) ⊙ (E_v[τ] + X_v·emb') for rows of latents a, b, embeddings
  // emb' and their tokens.
  void pre_shift(context& ctx, const row_matrix& a, const row_matrix& b, const row_matrix& emb,
                 std::span<const std::int32_t> tokens, row_matrix& kc, row_matrix& vc) const {
    using O = ops<B>;
    workspace::scope scope(ctx.ws());
    const auto T = a.rows(), C = n_embd_;
    row_matrix &ek = ctx.scratch(T, D), &ev = ctx.scratch(T, C);
    O::products(ctx, O::lora(k2_, R, D, a, kc), O::lora(v2_, R, C, b, vc), O::linear(key_table_x_, emb, ek),
                O::linear(value_table_x_, emb, ev));
    row_matrix &krow = ctx.scratch(1, D), &vrow = ctx.scratch(1, C);
    for (Eigen::Index t = 0; t < T; ++t) {
      const auto token = tokens[static_cast<std::size_t>(t)];
      kernel::cpu::detail::widen_rows(key_table_, token, 1, krow.data());
      kernel::cpu::detail::widen_rows(value_table_, token, 1, vrow.data());
      float *k = kc.row(t).data(), *v = vc.row(t).data();
      const float *ekt = ek.row(t).data(), *evt = ev.row(t).data(), *kr = krow.data(), *vr = vrow.data();
      for (std::int64_t c = 0; c < D; ++c) k[c] *= kr[c] + ekt[c];
      for (std::int64_t c = 0; c < C; ++c) v[c] = std::tanh(v[c]) * (vr[c] + evt[c]);
    }
  }

  // Shifts each row against the previous position's pre-shift vector, normalises it and appends it to the
  // materialised keys and values.
  template <class Rows>
  void append_positions(state_type& s, const Rows& kc, const Rows& vc) const {
    const auto n = kc.rows(), C = n_embd_;
    auto& d = s.derived;
    const auto at_k = d.keys.size(), at_v = d.values.size();
    d.keys.resize(at_k + static_cast<std::size_t>(n * D));
    d.values.resize(at_v + static_cast<std::size_t>(n * C));
    for (Eigen::Index i = 0; i < n; ++i) {
      float* k = d.keys.data() + at_k + static_cast<std::size_t>(i * D);
      float* v = d.values.data() + at_v + static_cast<std::size_t>(i * C);
      const float *kt = kc.row(i).data(), *vt = vc.row(i).data();
      for (std::int64_t c = 0; c < D; ++c)
        k[c] = math::lerp_previous(kt[c], d.key_shift[static_cast<std::size_t>(c)], mu_k_[static_cast<std::size_t>(c)]);
      for (std::int64_t c = 0; c < C; ++c)
        v[c] =
            math::lerp_previous(vt[c], d.value_shift[static_cast<std::size_t>(c)], mu_v_[static_cast<std::size_t>(c)]);
      math::layer_norm(k, lnk_w_.data(), lnk_b_.data(), k, static_cast<std::size_t>(D), dea_norm_eps);
      math::layer_norm(v, lnv_w_.data(), lnv_b_.data(), v, static_cast<std::size_t>(C), dea_norm_eps);
      d.key_shift.assign(kt, kt + D);
      d.value_shift.assign(vt, vt + C);
    }
    d.positions += n;
  }

  // Materialises the cached positions the derived copy lacks (a state read from a file, or one whose copy was
  // cleared), from their latents and tokens.
  void rebuild(context& ctx, state_type& s) const {
    workspace::scope scope(ctx.ws());
    const std::int64_t from = s.derived.positions, n = s.positions() - from;
    if (!ctx.embed_tokens)
      throw error("RWKV-7b attention, layer " + std::to_string(layer_) +
                  ": rebuilding the key/value cache of a loaded state needs the model's embeddings "
                  "(context::embed_tokens); run it inside a language model");
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(n));
    for (std::int64_t p = 0; p < n; ++p) tokens[static_cast<std::size_t>(p)] = token_at(s, from + p);
    row_matrix &emb = ctx.scratch(n, n_embd_), &a = ctx.scratch(n, R), &b = ctx.scratch(n, R);
    ctx.embed_tokens(tokens, emb);
    using map_t = Eigen::Map<const row_matrix>;
    a = map_t(s.key_latent.data() + from * R, n, R);
    b = map_t(s.value_latent.data() + from * R, n, R);
    row_matrix &kc = ctx.scratch(n, D), &vc = ctx.scratch(n, n_embd_);
    pre_shift(ctx, a, b, emb, tokens, kc, vc);
    append_positions(s, kc, vc);
  }

  // Output rows row0 + j of out, for query rows j of qh at positions first + j: the softmax over positions
  // 0 … first + j of 64·tanh(q̂·k_p / 1024), weighting the values v_p. One query (decode) splits the positions and
  // channels over the threads; several run in blocks of rows, each two matrix products over the positions it sees.
  void attend(context& ctx, const state_type& s, std::int64_t first, const row_matrix& qh, Eigen::Index row0,
              row_matrix& out) const {
    const auto rows = qh.rows(), C = n_embd_;
    const std::int64_t n_all = first + rows;
    using map_t = Eigen::Map<const row_matrix>;
    const map_t keys(s.derived.keys.data(), n_all, D), values(s.derived.values.data(), n_all, C);
    auto soft_cap = [](float z) { return dea_soft_cap * std::tanh(z * dea_score_scale); };
    if (rows == 1) {
      row_matrix& sc = ctx.scratch(1, n_all);
      const Eigen::Map<const Eigen::VectorXf> q(qh.data(), D);
      constexpr std::int64_t chunk = 256;  // positions per task
      parallel_for(ctx.pool, (n_all + chunk - 1) / chunk, [&](std::int64_t c0, std::int64_t c1) {
        const std::int64_t p0 = c0 * chunk, p1 = std::min(n_all, c1 * chunk);
        sc.middleCols(p0, p1 - p0).transpose().noalias() = keys.middleRows(p0, p1 - p0) * q;
      });
      float top = -1e30f;
      for (std::int64_t p = 0; p < n_all; ++p) top = std::max(top, sc(0, p) = soft_cap(sc(0, p)));
      float sum = 0.f;
      for (std::int64_t p = 0; p < n_all; ++p) sum += (sc(0, p) = std::exp(sc(0, p) - top));
      sc /= sum;
      const std::int64_t cols = 64;
      parallel_for(n_all >= 1024 ? ctx.pool : nullptr, (C + cols - 1) / cols, [&](std::int64_t b0, std::int64_t b1) {
        const std::int64_t k0 = b0 * cols, k1 = std::min<std::int64_t>(C, b1 * cols);
        out.row(row0).segment(k0, k1 - k0).noalias() = sc * values.middleCols(k0, k1 - k0);
      });
      return;
    }
    constexpr std::int64_t block = 32;
    parallel_for(ctx.pool, (rows + block - 1) / block, [&](std::int64_t b0, std::int64_t b1) {
      row_matrix scores;
      for (std::int64_t bk = b0; bk < b1; ++bk) {
        const std::int64_t j0 = bk * block, j1 = std::min<std::int64_t>(rows, j0 + block), n = first + j1;
        scores.noalias() = qh.middleRows(j0, j1 - j0) * keys.topRows(n).transpose();
        for (std::int64_t j = j0; j < j1; ++j) {
          float* z = scores.row(j - j0).data();
          const std::int64_t seen = first + j + 1;  // causal: positions 0 … first + j
          float top = -1e30f;
          for (std::int64_t p = 0; p < seen; ++p) top = std::max(top, z[p] = soft_cap(z[p]));
          float sum = 0.f;
          for (std::int64_t p = 0; p < seen; ++p) sum += (z[p] = std::exp(z[p] - top));
          for (std::int64_t p = 0; p < seen; ++p) z[p] /= sum;
          for (std::int64_t p = seen; p < n; ++p) z[p] = 0.f;
        }
        out.middleRows(row0 + j0, j1 - j0).noalias() = scores * values.topRows(n);
      }
    });
  }

  void check_consistent(const state_type& s) const {
    const auto n = static_cast<std::size_t>(s.positions());
    if (s.key_latent.size() != n * R || s.value_latent.size() != n * R || s.q_prev.size() != D ||
        s.derived.positions > s.positions() || s.derived.key_shift.size() != D ||
        s.derived.value_shift.size() != static_cast<std::size_t>(n_embd_) ||
        s.derived.keys.size() != static_cast<std::size_t>(s.derived.positions * D) ||
        s.derived.values.size() != static_cast<std::size_t>(s.derived.positions * n_embd_))
      throw error("RWKV-7b attention, layer " + std::to_string(layer_) + ": inconsistent state (" + std::to_string(n) +
                  " cached tokens with " + std::to_string(s.key_latent.size()) + " key and " +
                  std::to_string(s.value_latent.size()) + " value latent values; " + std::to_string(R) +
                  " per token expected)");
    for (std::int64_t p = s.derived.positions; p < s.positions(); ++p) token_at(s, p);
  }

  std::int32_t token_at(const state_type& s, std::int64_t p) const {
    const float f = s.tokens[static_cast<std::size_t>(p)];
    const auto vocab = key_table_.rows();
    if (!(f >= 0.f && f < static_cast<float>(vocab)) || f != std::floor(f))
      throw error("RWKV-7b attention, layer " + std::to_string(layer_) + ": the state's cached token " +
                  std::to_string(p) + " is " + std::to_string(f) + ", not a token id in [0, " + std::to_string(vocab) +
                  ")");
    return static_cast<std::int32_t>(f);
  }

  std::int64_t n_embd_ = 0, layer_ = 0, max_tokens_ = 0;
  std::vector<float> mu_q_, mu_k_, mu_v_, k1_, k2_, v1_, v2_, lnq_w_, lnq_b_, lnk_w_, lnk_b_, lnv_w_, lnv_b_;
  matrix<weight_type> query_, key_table_, value_table_, key_table_x_, value_table_x_;
};

}  // namespace rwkv::v7b

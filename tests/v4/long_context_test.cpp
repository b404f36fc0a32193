// RWKV-4 over long contexts: the WKV state stays finite where a naive (unstabilised) evaluation overflows, and
// after 100,000 (stress) / 20,000 (random) tokens the step form and the sequence form still agree when started
// from the same saved state.
//
// Stress pattern (large keys). spec/v4.md (d) notes that keys of 20–40 occur in trained models and that the
// unstabilised form e^{k}·v summed with e^{−i·w} factors overflows float32 after a few tokens; e^{k} alone
// overflows for k > 88.7. The spec defines no stress input, so it is built here: the v4-dev weights with every
// att.key.weight multiplied by key_scale, which puts layer-0 keys at about ±60..100 (measured and asserted
// below), fed a pattern of runs of the tokens with the largest keys (a repeated token gives the same key again
// and again, the worst case for a running sum) interleaved with random tokens.
#define BOOST_TEST_MODULE v4_long_context
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <rwkv/kernel/cpu/norm.hpp>
#include <rwkv/v4.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::check_close;
using rwkv::test::data_path;
using model_t = v4::Model<f32>;

constexpr float key_scale = 24.f;
constexpr std::size_t chunk = 4096;       // sequence-form chunk for the bulk of the tokens
constexpr std::size_t final_chunk = 256;  // fed both ways at the end

// v4-dev with every att.key.weight scaled, as an in-memory safetensors file.
io::safetensors_file stress_file() {
  const auto src = io::safetensors_file::open(data_path("v4-dev.model.safetensors"));
  std::vector<io::tensor_to_write> out;
  for (const auto& t : src.tensors()) {
    BOOST_REQUIRE(t.type == dtype::f32);
    if (t.name.ends_with(".att.key.weight")) {
      auto v = rwkv::test::floats(t);
      for (auto& x : v) x *= key_scale;
      out.push_back(io::tensor_to_write::from<float>(t.name, t.shape, std::span<const float>(v)));
    } else {
      io::tensor_to_write w{t.name, t.type, t.shape, {}};
      w.bytes.assign(t.data, t.data + t.nbytes);
      out.push_back(std::move(w));
    }
  }
  const auto bytes = io::to_safetensors_bytes(out);
  return io::safetensors_file::from_bytes(bytes, "v4-dev with att.key.weight x24");
}

model_t load(const io::safetensors_file& f) {
  io::weight_reader r(f.path(), f.tensors(), f.owner());
  return model_t::from_reader(r);
}

// Layer-0 keys k_t = W_k·(x_t·μ_k + x_{t−1}·(1 − μ_k)) of a token sequence, x = ln1(ln0(emb[token])): layer 0
// sees the embedding directly, so its keys can be computed from the weights alone. Returns min and max.
std::pair<float, float> layer0_key_range(const io::safetensors_file& f, std::span<const std::int32_t> tokens) {
  auto get = [&](const char* n) { return rwkv::test::floats(f.at(n)); };
  const auto emb = get("emb.weight"), ln0w = get("blocks.0.ln0.weight"), ln0b = get("blocks.0.ln0.bias"),
             ln1w = get("blocks.0.ln1.weight"), ln1b = get("blocks.0.ln1.bias"), mix = get("blocks.0.att.time_mix_k"),
             wk = get("blocks.0.att.key.weight");
  const std::size_t C = mix.size(), A = wk.size() / C;
  std::vector<float> e(C), x(C), prev(C, 0.f), xk(C);
  float lo = INFINITY, hi = -INFINITY;
  for (auto tok : tokens) {
    kernel::cpu::layer_norm(emb.data() + static_cast<std::size_t>(tok) * C, ln0w.data(), ln0b.data(), e.data(), C);
    kernel::cpu::layer_norm(e.data(), ln1w.data(), ln1b.data(), x.data(), C);
    for (std::size_t c = 0; c < C; ++c) xk[c] = x[c] * mix[c] + prev[c] * (1.f - mix[c]);
    for (std::size_t a = 0; a < A; ++a) {
      const float k = std::inner_product(xk.begin(), xk.end(), wk.begin() + static_cast<std::ptrdiff_t>(a * C), 0.f);
      lo = std::min(lo, k);
      hi = std::max(hi, k);
    }
    prev = x;
  }
  return {lo, hi};
}

// Runs of the `hot` tokens (those with the largest layer-0 keys), 1..64 long, each followed by a random token.
std::vector<std::int32_t> stress_pattern(const io::safetensors_file& f, std::size_t n, std::int64_t vocab) {
  std::vector<std::pair<float, std::int32_t>> peak;
  for (std::int32_t t = 0; t < vocab; ++t) {
    const std::int32_t one[1] = {t};
    const auto [lo, hi] = layer0_key_range(f, one);
    peak.push_back({std::max(-lo, hi), t});
  }
  std::sort(peak.rbegin(), peak.rend());
  std::mt19937 rng(4);
  std::uniform_int_distribution<std::int32_t> any(0, static_cast<std::int32_t>(vocab - 1));
  std::uniform_int_distribution<int> hot(0, 7), run(1, 64);
  std::vector<std::int32_t> out;
  out.reserve(n);
  while (out.size() < n) {
    const auto t = peak[static_cast<std::size_t>(hot(rng))].second;
    for (int i = run(rng); i > 0 && out.size() < n; --i) out.push_back(t);
    if (out.size() < n) out.push_back(any(rng));
  }
  return out;
}

std::vector<std::int32_t> random_tokens(std::size_t n, std::int64_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> d(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

template <class V>
bool all_finite(const V& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

bool state_finite(const v4::State& s) {
  bool ok = true;
  for (const auto& l : s.layers) l.visit([&](const std::string&, const std::vector<float>& v) { ok &= all_finite(v); });
  return ok;
}

// Feeds all but the last final_chunk tokens through the sequence form in chunks (checking logits and state
// after every chunk), then the last chunk once token by token and once as one sequence from the same state.
void run_long(const model_t& m, const std::vector<std::int32_t>& tokens, const std::string& what) {
  BOOST_REQUIRE_GT(tokens.size(), final_chunk);
  const std::span<const std::int32_t> all(tokens);
  const std::size_t bulk = tokens.size() - final_chunk;
  // The bulk runs on two threads (matrix products by rows, the WKV by channel blocks); the final comparison
  // below uses none, so it also checks that the pooled sequence form left a state the plain forms continue.
  thread_pool pool(2);
  auto s = m.make_state();
  for (std::size_t at = 0; at < bulk; at += chunk) {
    const auto logits = m.prefill(all.subspan(at, std::min(chunk, bulk - at)), s, &pool);
    BOOST_REQUIRE_MESSAGE(all_finite(logits), what << ": non-finite logits after token " << at);
    BOOST_REQUIRE_MESSAGE(state_finite(s), what << ": non-finite state after token " << at);
  }
  // The state carries information: pp has moved far from its initial −1e30 in every channel.
  for (const auto& l : s.layers)
    BOOST_CHECK(std::all_of(l.att.pp.begin(), l.att.pp.end(), [](float p) { return p > -1e3f; }));

  const auto tail = all.subspan(bulk);
  auto s_seq = s;
  const auto seq = m.forward(tail, s_seq, logits_for::all);
  BOOST_REQUIRE(all_finite(rwkv::test::flat(seq)));
  auto s_step = s;
  double worst = 0;
  for (std::size_t t = 0; t < tail.size(); ++t) {
    const auto row = m.step(tail[t], s_step);
    BOOST_REQUIRE(all_finite(row));
    const auto r = seq.row(static_cast<Eigen::Index>(t));
    const std::vector<float> want(r.data(), r.data() + r.size());
    for (std::size_t i = 0; i < row.size(); ++i) worst = std::max(worst, std::abs(double(row[i]) - want[i]));
    check_close(row, want, rwkv::test::logits_tol,
                what + ": step vs sequence, final chunk position " + std::to_string(t));
  }
  BOOST_TEST_MESSAGE(what << ": max |step - sequence| over the final chunk's logits " << worst);
  BOOST_REQUIRE(state_finite(s_seq) && state_finite(s_step));
  for (std::size_t i = 0; i < s.layers.size(); ++i) {
    const auto& a = s_step.layers[i];
    const auto& b = s_seq.layers[i];
    check_close(a.att.shift, b.att.shift, rwkv::test::state_tol, what + ": final state att shift");
    check_close(a.att.aa, b.att.aa, rwkv::test::state_tol, what + ": final state aa");
    check_close(a.att.bb, b.att.bb, rwkv::test::state_tol, what + ": final state bb");
    check_close(a.att.pp, b.att.pp, rwkv::test::state_tol, what + ": final state pp");
    check_close(a.ffn.shift, b.ffn.shift, rwkv::test::state_tol, what + ": final state ffn shift");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(stress_large_keys_100k_tokens) {
  const auto f = stress_file();
  const auto m = load(f);
  const auto tokens = stress_pattern(f, 100'000, m.cfg().vocab);
  BOOST_REQUIRE_EQUAL(tokens.size(), 100'000u);

  // The pattern really has large keys: |k| reaches 60..100+ in layer 0, beyond what e^k can hold in float32.
  const auto [lo, hi] = layer0_key_range(f, std::span<const std::int32_t>(tokens).first(chunk));
  BOOST_TEST_MESSAGE("layer-0 keys of the stress pattern span [" << lo << ", " << hi << "]");
  BOOST_CHECK_GE(std::max(-lo, hi), 60.f);
  BOOST_CHECK(std::isinf(std::exp(std::max(-lo, hi))));  // the naive e^{k} overflows

  run_long(m, tokens, "stress");
}

BOOST_AUTO_TEST_CASE(random_20k_tokens) {
  const auto m = model_t::load(data_path("v4-dev.model.safetensors"));
  run_long(m, random_tokens(20'000, m.cfg().vocab, 11), "random");
}

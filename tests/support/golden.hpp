#pragma once
// Test helpers: paths to the bundled fixtures, reading golden tensors, and the tolerance checks of
// tests/data/README.md (logits: 2e-4 + 1e-4·|want|; states: 1e-3 + 1e-4·|want|).

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <boost/test/unit_test.hpp>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv::test {

inline std::string data_path(const std::string& name) { return std::string(RWKV_TEST_DATA_DIR) + "/" + name; }

// A file of tests/data as byte tokens (the byte tokenizer's ids).
inline std::vector<std::int32_t> byte_tokens(const std::string& name) {
  std::ifstream in(data_path(name), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto s = ss.str();
  return {s.begin(), s.end()};
}

inline std::vector<float> floats(const tensor_view& t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_as_float(t, i);
  return out;
}

inline std::vector<std::int32_t> ints(const tensor_view& t) {
  BOOST_REQUIRE(t.type == dtype::i32);
  std::vector<std::int32_t> out(static_cast<std::size_t>(t.numel()));
  std::memcpy(out.data(), t.data, out.size() * 4);
  return out;
}

// Row-major matrix contents as one vector.
template <class M>
std::vector<float> flat(const M& m) {
  return {m.data(), m.data() + m.size()};
}

// A BF16 copy of tests/data/<name>.model.safetensors, rounded to nearest even exactly as the shared golden
// data's BF16 files were made (safetensors_test checks this against v7-dev's official BF16 file bit for bit),
// so the fixtures need not carry a BF16 file per version. Written once per process to the temp directory.
inline std::string bf16_copy(const std::string& name) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("rwkvpp-test-" + std::to_string(::getpid()) + "-" + name + ".model.bf16.safetensors");
  if (!std::filesystem::exists(out)) {
    const auto f32 = io::safetensors_file::open(data_path(name + ".model.safetensors"));
    std::vector<io::tensor_to_write> tensors;
    for (const auto& t : f32.tensors()) {
      std::vector<bf16> v(static_cast<std::size_t>(t.numel()));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = to_bf16(load_as_float(t, i));
      tensors.push_back(io::tensor_to_write::from<bf16>(t.name, t.shape, std::span<const bf16>(v)));
    }
    io::save_safetensors(out, tensors, f32.metadata());
    static std::vector<std::filesystem::path> cleanup;  // removed at exit
    struct remover {
      ~remover() {
        for (auto& p : cleanup) std::filesystem::remove(p);
      }
    };
    static remover r;
    cleanup.push_back(out);
  }
  return out.string();
}

struct tolerance {
  double atol, rtol;
};
inline constexpr tolerance logits_tol{2e-4, 1e-4};
inline constexpr tolerance state_tol{1e-3, 1e-4};

// Checks |got - want| <= atol + rtol·|want| element-wise; reports the worst element.
template <class Got>
void check_close(const Got& got, const std::vector<float>& want, tolerance tol, const std::string& what) {
  BOOST_REQUIRE_MESSAGE(static_cast<std::size_t>(got.size()) == want.size(),
                        what << ": size " << got.size() << " != " << want.size());
  double worst = 0;
  std::size_t worst_i = 0;
  bool ok = true;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = got[static_cast<decltype(got.size())>(i)], w = want[i];
    const double excess = std::abs(g - w) - (tol.atol + tol.rtol * std::abs(w));
    if (!(excess <= 0)) ok = false;
    if (!(excess <= worst) || std::isnan(excess)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_i = i;
    }
  }
  BOOST_CHECK_MESSAGE(ok, what << ": element " << worst_i << " got " << got[static_cast<decltype(got.size())>(worst_i)]
                               << " want " << want[worst_i] << " (exceeds tolerance by " << worst << ")");
}

// One golden case of tests/data: its tokens, vocabulary size and reference tensors.
struct golden_case {
  std::string name;
  io::safetensors_file golden;
  std::vector<std::int32_t> tokens;
  std::int64_t V;

  explicit golden_case(const std::string& n)
      : name(n), golden(io::safetensors_file::open(data_path(n + ".golden.safetensors"))) {
    tokens = ints(golden.at("tokens"));
    V = golden.at("logits").shape[1];
  }
  // Row t (V values) of a T x V tensor.
  std::vector<float> row(const std::string& tensor, std::size_t t) const {
    auto all = floats(golden.at(tensor));
    return {all.begin() + static_cast<std::ptrdiff_t>(t * V), all.begin() + static_cast<std::ptrdiff_t>((t + 1) * V)};
  }
  std::vector<float> state(std::size_t i) const { return floats(golden.at("state." + std::to_string(i))); }
};

// Runs f, which must throw rwkv::error whose message contains every fragment, naming `file` (when not empty) and
// exactly `tensor` (empty: none).
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments,
                         const std::string& file = {}, const std::string& tensor = {}) {
  try {
    f();
    BOOST_ERROR("no error; expected: " << fragments.front());
  } catch (const rwkv::error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments)
      BOOST_CHECK_MESSAGE(msg.find(frag) != std::string::npos, "'" << frag << "' not in: " << msg);
    if (!file.empty())
      BOOST_CHECK_MESSAGE(e.file().find(file) != std::string::npos, "file '" << e.file() << "' in: " << msg);
    BOOST_CHECK_EQUAL(e.tensor(), tensor);
  }
}

// log softmax of one row of logits, in double.
inline std::vector<double> log_softmax(const float* logits, Eigen::Index V) {
  double mx = -INFINITY;
  for (Eigen::Index i = 0; i < V; ++i) mx = std::max(mx, double(logits[i]));
  double s = 0;
  for (Eigen::Index i = 0; i < V; ++i) s += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(s);
  std::vector<double> out(static_cast<std::size_t>(V));
  for (Eigen::Index i = 0; i < V; ++i) out[static_cast<std::size_t>(i)] = double(logits[i]) - lse;
  return out;
}

// KL(p‖q) of the next-token distributions, averaged over the rows.
inline double mean_kl(const row_matrix& p, const row_matrix& q) {
  double total = 0;
  for (Eigen::Index t = 0; t < p.rows(); ++t) {
    const auto lp = log_softmax(p.row(t).data(), p.cols()), lq = log_softmax(q.row(t).data(), q.cols());
    for (std::size_t i = 0; i < lp.size(); ++i) total += std::exp(lp[i]) * (lp[i] - lq[i]);
  }
  return total / double(p.rows());
}

}  // namespace rwkv::test

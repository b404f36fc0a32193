#pragma once
// Test helpers: paths to the bundled fixtures, reading golden tensors, and the tolerance checks of
// tests/data/README.md (logits: 2e-4 + 1e-4·|want|; states: 1e-3 + 1e-4·|want|).

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

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

}  // namespace rwkv::test

// rwkv.cpp .bin reader (include/rwkv/io/rwkvcpp.hpp).
//
// * The bundled rwkv.cpp files (tiny-4v0 version 100, tiny-5v2, tiny-7v0; FP32) give exactly the tensors of their
//   official-form safetensors twins and the golden logits in step and sequence form.
// * The dev checkpoints of every version (4, 5.1, 5.2, 6, 7) are converted in memory exactly as rwkv.cpp's
//   converter (python/convert_pytorch_to_ggml.py) does, in FP32 and FP16, read back, and must give the original
//   tensors and (FP32) the golden logits: this covers the RWKV-5.1 and RWKV-6 transforms no fixture has.
// * Quantized blocks: hand-built blocks dequantize to hand-computed values; an in-test writer quantizes known
//   values as spec/formats.md (c) describes; the tiny models re-encoded as Q8_0 stay close to the F32 logits.
// * Hostile input (truncation everywhere, bad magic/version/types, overflowing dims, names past the end, ...) always
//   gives an rwkv::error naming the file (and the tensor when known), never a crash.
#define BOOST_TEST_MODULE rwkvcpp
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rwkv/core/error.hpp>
#include <rwkv/core/half.hpp>
#include <rwkv/core/tensor.hpp>
#include <rwkv/detect.hpp>
#include <rwkv/io/checkpoint.hpp>
#include <rwkv/io/rwkvcpp.hpp>
#include <rwkv/io/safetensors.hpp>
#include <rwkv/io/weight_reader.hpp>
#include <rwkv/v4.hpp>
#include <rwkv/v5.hpp>
#include <rwkv/v6.hpp>
#include <rwkv/v7.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using bytes = std::vector<std::byte>;
using rwkv::test::data_path;
using rwkv::test::floats;
namespace tt = boost::test_tools;

constexpr const char* crafted_name = "crafted.bin";
constexpr std::uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 7, Q5_1 = 8, Q8_0 = 9;
constexpr std::uint32_t quantized_types[] = {Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};

bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot open " << path);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

void put_u32(bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}
void append_u32(bytes& b, std::uint32_t v) {
  b.resize(b.size() + 4);
  put_u32(b, b.size() - 4, v);
}
void append_u16(bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::byte>(v & 0xFF));
  b.push_back(static_cast<std::byte>(v >> 8));
}

bytes f32_bytes(const std::vector<float>& v) {
  bytes out(v.size() * 4);
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}
bytes f16_bytes(const std::vector<float>& v) {
  bytes out;
  for (float x : v) append_u16(out, to_f16(x).bits);
  return out;
}

float f16_value(std::uint16_t bits) { return to_float(f16{bits}); }
float f16_round(float x) { return to_float(to_f16(x)); }

// ---- quantizers, exactly as spec/formats.md (c) describes (float32 arithmetic) -----------------------------

bytes quantize(std::uint32_t type, std::span<const float> x) {
  BOOST_REQUIRE(x.size() % 32 == 0);
  bytes out;
  for (std::size_t b = 0; b < x.size(); b += 32) {
    const float* v = x.data() + b;
    float amax = 0, max = 0, lo = v[0], hi = v[0];
    for (int i = 0; i < 32; ++i) {
      if (std::fabs(v[i]) > amax) {  // first one on ties
        amax = std::fabs(v[i]);
        max = v[i];
      }
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    int q[32];
    float d = 0, m = 0;
    switch (type) {
      case Q4_0:
      case Q5_0: {
        d = max / (type == Q4_0 ? -8.0f : -16.0f);
        const float id = d != 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < 32; ++i)
          q[i] = type == Q4_0 ? std::min(15, static_cast<int>(v[i] * id + 8.5f))
                              : std::min(31, static_cast<int>(v[i] * id + 16.5f));
        break;
      }
      case Q4_1:
      case Q5_1: {
        d = (hi - lo) / (type == Q4_1 ? 15.0f : 31.0f);
        const float id = d != 0 ? 1.0f / d : 0.0f;
        m = lo;
        for (int i = 0; i < 32; ++i)
          q[i] = type == Q4_1 ? std::min(15, static_cast<int>((v[i] - lo) * id + 0.5f))
                              : static_cast<int>((v[i] - lo) * id + 0.5f);
        break;
      }
      case Q8_0: {
        d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < 32; ++i) q[i] = static_cast<int>(std::round(v[i] * id));  // half away from zero
        break;
      }
      default:
        BOOST_FAIL("not a quantized type");
    }
    append_u16(out, to_f16(d).bits);
    if (type == Q4_1 || type == Q5_1) append_u16(out, to_f16(m).bits);
    if (type == Q8_0) {
      for (int i = 0; i < 32; ++i) out.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(q[i])));
      continue;
    }
    if (type == Q5_0 || type == Q5_1) {
      std::uint32_t qh = 0;
      for (int j = 0; j < 16; ++j)
        qh |= (static_cast<std::uint32_t>((q[j] >> 4) & 1) << j) |
              (static_cast<std::uint32_t>((q[j + 16] >> 4) & 1) << (j + 16));
      append_u32(out, qh);
    }
    for (int j = 0; j < 16; ++j) out.push_back(static_cast<std::byte>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)));
  }
  return out;
}

// ---- a tiny rwkv.cpp file writer ---------------------------------------------------------------------------

struct file_header {
  std::uint32_t magic = 0x67676d66, version = 101, n_vocab = 2, n_embed = 32, n_layer = 1, type = F32;
};

struct record {
  std::string name;
  std::uint32_t type = F32;
  std::vector<std::int64_t> shape;  // PyTorch order; written reversed
  bytes data;
};

// Where each part of a written record starts (for corrupting it).
struct record_at {
  std::size_t start, dims, name, data, end;
};

struct crafted {
  bytes file;
  std::vector<record_at> at;
};

crafted write_file(const file_header& h, const std::vector<record>& records) {
  crafted c;
  for (auto v : {h.magic, h.version, h.n_vocab, h.n_embed, h.n_layer, h.type}) append_u32(c.file, v);
  for (const auto& r : records) {
    record_at a{};
    a.start = c.file.size();
    append_u32(c.file, static_cast<std::uint32_t>(r.shape.size()));
    append_u32(c.file, static_cast<std::uint32_t>(r.name.size()));
    append_u32(c.file, r.type);
    a.dims = c.file.size();
    for (auto it = r.shape.rbegin(); it != r.shape.rend(); ++it) append_u32(c.file, static_cast<std::uint32_t>(*it));
    a.name = c.file.size();
    for (char ch : r.name) c.file.push_back(static_cast<std::byte>(ch));
    a.data = c.file.size();
    c.file.insert(c.file.end(), r.data.begin(), r.data.end());
    a.end = c.file.size();
    c.at.push_back(a);
  }
  return c;
}

std::vector<float> iota_values(std::size_t n, float scale = 0.01f, float offset = 0.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = offset + scale * static_cast<float>(i);
  return v;
}

record f32_record(std::string name, std::vector<std::int64_t> shape, const std::vector<float>& values) {
  return {std::move(name), F32, std::move(shape), f32_bytes(values)};
}

record emb_record(std::int64_t vocab = 2, std::int64_t C = 32) {
  return f32_record("emb.weight", {vocab, C}, iota_values(static_cast<std::size_t>(vocab * C)));
}

io::rwkvcpp_file parse(const bytes& b) { return io::rwkvcpp_file::from_bytes(b, crafted_name); }

// A valid file with one record of each kind: F32, quantized, F16, a v4 decay.
std::vector<record> base_records() {
  const auto key = iota_values(64, 0.03f, -1.0f);
  return {emb_record(),
          f32_record("blocks.0.att.time_decay", {32}, iota_values(32, -0.1f, -0.1f)),
          {"blocks.0.att.key.weight", Q8_0, {2, 32}, quantize(Q8_0, key)},
          {"blocks.0.att.output.weight", F16, {2, 32}, f16_bytes(iota_values(64, 0.5f))}};
}
crafted base_file() { return write_file({}, base_records()); }

// ---- checking errors ----------------------------------------------------------------------------------------

void expect_error(const std::function<void()>& f, const std::string& tensor_name,
                  std::initializer_list<std::string_view> needles, int line) {
  BOOST_TEST_CONTEXT("expectation at line " << line) {
    try {
      f();
      BOOST_ERROR("expected rwkv::error, nothing was thrown");
    } catch (const rwkv::error& e) {
      const std::string what = e.what();
      BOOST_TEST_MESSAGE("line " << line << ": " << what);
      for (auto n : needles)
        BOOST_CHECK_MESSAGE(what.find(n) != std::string::npos, "message \"" << what << "\" lacks \"" << n << "\"");
      BOOST_CHECK_EQUAL(e.file(), crafted_name);
      BOOST_CHECK_MESSAGE(what.find(crafted_name) != std::string::npos, "message \"" << what << "\" names no file");
      BOOST_CHECK_EQUAL(e.tensor(), tensor_name);
    } catch (const std::exception& e) {
      BOOST_ERROR("expected rwkv::error, got another exception: " << e.what());
    }
  }
}

#define EXPECT_BAD_FILE(file_bytes, tensor_name, ...) \
  expect_error([&] { (void)parse(file_bytes); }, tensor_name, {__VA_ARGS__}, __LINE__)

// ---- official tensors and the converter ---------------------------------------------------------------------

struct official_tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

std::vector<official_tensor> official_tensors(const std::vector<tensor_view>& views) {
  std::vector<official_tensor> out;
  for (const auto& t : views) out.push_back({t.name, t.shape, floats(t)});
  return out;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// (batch, rows, cols) → (batch, cols, rows)
std::vector<float> transpose_last2(const std::vector<float>& v, std::int64_t batch, std::int64_t rows,
                                   std::int64_t cols) {
  std::vector<float> out(v.size());
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        out[static_cast<std::size_t>((b * cols + c) * rows + r)] =
            v[static_cast<std::size_t>((b * rows + r) * cols + c)];
  return out;
}

// What rwkv.cpp's python/convert_pytorch_to_ggml.py writes for a state dict (FP32 or FP16 file), transform for
// transform; exp() in float32 as PyTorch computes it.
bytes convert_like_rwkvcpp(const std::vector<official_tensor>& in, bool fp16) {
  std::map<std::string, const official_tensor*> by_name;
  for (const auto& t : in) by_name[t.name] = &t;
  const auto has = [&](const std::string& n) { return by_name.count(n) != 0; };
  const bool v5 = has("blocks.0.att.ln_x.weight"), v5_2 = has("blocks.0.att.gate.weight");
  const bool v6 = has("blocks.0.att.time_maa_x"), v7 = has("blocks.0.att.k_k");
  std::uint32_t n_layer = 0;
  while (has("blocks." + std::to_string(n_layer) + ".ln1.weight")) ++n_layer;
  const auto& emb = *by_name.at("emb.weight");
  const std::int64_t C = emb.shape[1];

  std::vector<official_tensor> list;
  std::set<std::string> concatenated;
  for (const auto& t : in) {
    if (v7 && contains(t.name, "att.x_")) {  // x_r..x_g → att.x_rwkvag (6, 1, C) at the first one's position
      const std::string prefix = t.name.substr(0, t.name.find("att.x_"));
      if (!concatenated.insert(prefix).second) continue;
      official_tensor cat{prefix + "att.x_rwkvag", {6, 1, C}, {}};
      for (const char* part : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) {
        const auto& v = by_name.at(prefix + "att." + part)->values;
        cat.values.insert(cat.values.end(), v.begin(), v.end());
      }
      list.push_back(std::move(cat));
      continue;
    }
    list.push_back(t);
  }
  const std::int64_t n_head = v6 ? by_name.at("blocks.0.att.time_faaaa")->shape[0] : 0;

  std::vector<record> records;
  for (auto t : list) {
    auto& s = t.shape;
    auto& v = t.values;
    const auto numel = static_cast<std::int64_t>(v.size());
    if (contains(t.name, ".time_")) s.erase(std::remove(s.begin(), s.end(), 1), s.end());  // squeeze()
    if (v7) {
      for (const char* lora : {".w1", ".w2", ".a1", ".a2", ".v1", ".v2", ".g1", ".g2"})
        if (contains(t.name, lora)) {
          v = transpose_last2(v, 1, s[0], s[1]);
          std::swap(s[0], s[1]);
        }
    } else if (v6) {
      if (contains(t.name, ".time_faaaa")) s.push_back(1);
      if (contains(t.name, ".time_maa_w1") || contains(t.name, ".time_decay_w")) {
        v = transpose_last2(v, 1, s[0], s[1]);
        std::swap(s[0], s[1]);
      }
      if (contains(t.name, ".time_maa_w2")) {
        v = transpose_last2(v, s[0], s[1], s[2]);
        std::swap(s[1], s[2]);
      }
      if (contains(t.name, ".time_decay") && !contains(t.name, "_w")) s = {n_head, numel / n_head, 1};
    } else if (v5) {
      if (contains(t.name, ".time_decay")) {
        for (auto& x : v) x = std::exp(-std::exp(x));
        if (v5_2)
          s.push_back(1);
        else
          s = {numel, 1, 1};
      }
      if (contains(t.name, ".time_first")) {
        for (auto& x : v) x = std::exp(x);
        s = {numel, 1, 1};
      }
      if (contains(t.name, ".time_faaaa")) s.push_back(1);
    } else if (contains(t.name, ".time_decay")) {
      for (auto& x : v) x = -std::exp(x);
    }
    bool half = fp16 && s.size() > 1;
    for (const char* keep : {".time_", ".k_k", ".k_a", ".r_k", ".x_rwkvag", ".x_k", ".w0", ".a0", ".v0"})
      half = half && !contains(t.name, keep);
    records.push_back({t.name, half ? F16 : F32, s, half ? f16_bytes(v) : f32_bytes(v)});
  }
  file_header h;
  h.n_vocab = static_cast<std::uint32_t>(emb.shape[0]);
  h.n_embed = static_cast<std::uint32_t>(C);
  h.n_layer = n_layer;
  h.type = fp16 ? F16 : F32;
  return write_file(h, records).file;
}

// rwkv.cpp's quantizer: 2-D tensors except emb, head and the v7 LoRA factors / r_k; the others keep their type.
bool rwkvcpp_quantizes(const io::rwkvcpp_record& r) {
  if (r.shape.size() != 2 || r.name == "emb.weight" || r.name == "head.weight") return false;
  for (const char* skip : {"att.v1", "att.v2", "att.g1", "att.g2", "att.a1", "att.a2", "att.w1", "att.w2", "att.r_k"})
    if (contains(r.name, skip)) return false;
  return true;
}

// Re-encodes an F32/F16 rwkv.cpp file as a quantized one (file version 101).
bytes requantize(const io::rwkvcpp_file& f, std::uint32_t type) {
  file_header h;
  h.n_vocab = f.header().n_vocab;
  h.n_embed = f.header().n_embed;
  h.n_layer = f.header().n_layer;
  h.type = type;
  std::vector<record> records;
  for (const auto& r : f.records()) {
    const std::byte* data = f.file_bytes().data() + r.offset;
    record out{r.name, r.data_type, r.shape, bytes(data, data + r.nbytes)};
    if (rwkvcpp_quantizes(r)) {
      tensor_view v;
      v.type = r.data_type == F16 ? dtype::f16 : dtype::f32;
      v.data = data;
      std::vector<float> values(static_cast<std::size_t>(r.numel));
      for (std::size_t i = 0; i < values.size(); ++i) values[i] = load_as_float(v, i);
      out.type = type;
      out.data = quantize(type, values);
    }
    records.push_back(std::move(out));
  }
  return write_file(h, records).file;
}

template <class M>
M model_from(const io::rwkvcpp_file& f) {
  io::weight_reader reader(f.path(), f.tensors(), f.owner());
  return M::from_reader(reader);
}

bool inside(std::span<const std::byte> file, const tensor_view& t) {
  return t.data >= file.data() && t.data + t.nbytes <= file.data() + file.size();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

// ---- the bundled rwkv.cpp fixtures ----------------------------------------------------------------------------

// The v7 LoRA factors, stored transposed: the reader gives transposed copies.
bool transposed_lora(const std::string& name) {
  for (const char* l : {"att.w1", "att.w2", "att.a1", "att.a2", "att.v1", "att.v2", "att.g1", "att.g2"})
    if (name.ends_with(l)) return true;
  return false;
}

// Every tensor equals the same-named tensor of the official-form safetensors twin: bit for bit, except the inverse
// value transforms, computed in double and rounded once (bit-exact with the fixture's own conversion on glibc;
// a libm may differ in the last bit of log, hence the 1e-6 relative allowance).
void check_same_as_safetensors(const std::string& name) {
  const auto bin = io::rwkvcpp_file::open(data_path(name + ".rwkvcpp.bin"));
  const auto st = io::safetensors_file::open(data_path(name + ".model.safetensors"));
  BOOST_REQUIRE_EQUAL(bin.tensors().size(), st.tensors().size());
  const auto file = bin.file_bytes();
  std::size_t transformed = 0, exact = 0;
  for (const auto& t : bin.tensors()) {
    BOOST_TEST_CONTEXT(name << " tensor '" << t.name << "'") {
      const auto* s = st.find(t.name);
      BOOST_REQUIRE(s != nullptr);
      BOOST_TEST((t.type == dtype::f32));
      BOOST_TEST(t.shape == s->shape, tt::per_element());
      BOOST_REQUIRE_EQUAL(t.nbytes, s->nbytes);
      if (t.name.ends_with("att.time_decay")) {  // v4: log(−x); v5: log(−log(x))
        ++transformed;
        const auto got = floats(t), want = floats(*s);
        bool all_exact = true;
        for (std::size_t i = 0; i < got.size(); ++i) {
          all_exact = all_exact && got[i] == want[i];
          BOOST_TEST(got[i] == want[i], tt::tolerance(1e-6f));
        }
        exact += all_exact;
        BOOST_TEST(!inside(file, t));
      } else {
        BOOST_TEST(std::memcmp(t.data, s->data, t.nbytes) == 0);
        // Zero-copy where no transform is needed (reshapes and the x_rwkvag split included).
        BOOST_TEST(inside(file, t) == !transposed_lora(t.name));
      }
    }
  }
  BOOST_TEST_MESSAGE(name << ": " << exact << " of " << transformed
                          << " value-transformed tensors are bit-exact; the rest within 1e-6");
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_4v0_bin_equals_safetensors) { check_same_as_safetensors("tiny-4v0"); }
BOOST_AUTO_TEST_CASE(tiny_5v2_bin_equals_safetensors) { check_same_as_safetensors("tiny-5v2"); }
BOOST_AUTO_TEST_CASE(tiny_7v0_bin_equals_safetensors) { check_same_as_safetensors("tiny-7v0"); }

BOOST_AUTO_TEST_CASE(tiny_fixtures_header_records_and_version) {
  const auto v4 = io::rwkvcpp_file::open(data_path("tiny-4v0.rwkvcpp.bin"));
  BOOST_TEST(v4.header().version == 100u);
  BOOST_TEST(v4.header().n_vocab == 256u);
  BOOST_TEST(v4.header().n_embed == 128u);
  BOOST_TEST(v4.header().n_layer == 4u);
  BOOST_TEST(v4.header().data_type == F32);
  BOOST_TEST((v4.version() == arch_version::v4));
  BOOST_TEST(std::string(v4.rwkvcpp_arch_name()) == "4");
  BOOST_TEST(v4.records().size() == v4.tensors().size());
  const auto find = [](const io::rwkvcpp_file& f, const std::string& n) {
    for (const auto& r : f.records())
      if (r.name == n) return r;
    BOOST_FAIL("no record " << n);
    return io::rwkvcpp_record{};
  };
  BOOST_TEST(find(v4, "blocks.0.att.time_mix_k").shape == std::vector<std::int64_t>{128}, tt::per_element());
  BOOST_TEST(v4.at("blocks.0.att.time_mix_k").shape == (std::vector<std::int64_t>{1, 1, 128}), tt::per_element());

  const auto v5 = io::rwkvcpp_file::open(data_path("tiny-5v2.rwkvcpp.bin"));
  BOOST_TEST(v5.header().version == 101u);
  BOOST_TEST((v5.version() == arch_version::v5_2));
  BOOST_TEST(std::string(v5.rwkvcpp_arch_name()) == "5.2");
  BOOST_TEST(find(v5, "blocks.0.att.time_decay").shape == (std::vector<std::int64_t>{8, 8, 1}), tt::per_element());
  BOOST_TEST(v5.at("blocks.0.att.time_decay").shape == (std::vector<std::int64_t>{8, 8}), tt::per_element());
  BOOST_TEST(v5.at("blocks.0.att.time_faaaa").shape == (std::vector<std::int64_t>{8, 8}), tt::per_element());

  const auto v7 = io::rwkvcpp_file::open(data_path("tiny-7v0.rwkvcpp.bin"));
  BOOST_TEST((v7.version() == arch_version::v7));
  BOOST_TEST(find(v7, "blocks.0.att.x_rwkvag").shape == (std::vector<std::int64_t>{6, 1, 64}), tt::per_element());
  BOOST_TEST(find(v7, "blocks.0.att.w1").shape == (std::vector<std::int64_t>{32, 64}), tt::per_element());
  BOOST_TEST(v7.at("blocks.0.att.w1").shape == (std::vector<std::int64_t>{64, 32}), tt::per_element());
  BOOST_TEST(v7.find("blocks.0.att.x_rwkvag") == nullptr);
  // 12 records of x_rwkvag became 72 tensors.
  BOOST_TEST(v7.tensors().size() == v7.records().size() + 5 * 12);
}

BOOST_AUTO_TEST_CASE(open_checkpoint_detects_rwkvcpp) {
  const auto c = io::open_checkpoint(data_path("tiny-5v2.rwkvcpp.bin"));
  BOOST_TEST((c.format == io::file_format::rwkvcpp));
  BOOST_TEST(c.path == data_path("tiny-5v2.rwkvcpp.bin"));
  BOOST_TEST(c.owner != nullptr);
  BOOST_TEST(c.metadata.at("rwkvcpp_file_version") == "101");
  BOOST_TEST(c.metadata.at("rwkvcpp_data_type") == "FP32");
  BOOST_TEST(c.metadata.at("rwkvcpp_arch_version") == "5.2");
  BOOST_TEST(c.metadata.at("rwkv_version") == "5.2");
  const auto st = io::safetensors_file::open(data_path("tiny-5v2.model.safetensors"));
  BOOST_TEST(c.tensors.size() == st.tensors().size());
}

// The tensors stay valid after the reader is gone (owner keeps the mapping and the copies).
BOOST_AUTO_TEST_CASE(owner_keeps_views_alive) {
  std::shared_ptr<const void> owner;
  std::vector<tensor_view> tensors;
  {
    const auto bin = io::rwkvcpp_file::open(data_path("tiny-7v0.rwkvcpp.bin"));
    owner = bin.owner();
    tensors = bin.tensors();
  }
  const auto st = io::safetensors_file::open(data_path("tiny-7v0.model.safetensors"));
  for (const auto& t : tensors) BOOST_TEST(std::memcmp(t.data, st.at(t.name).data, t.nbytes) == 0);
}

// ---- golden logits from the .bin files ---------------------------------------------------------------------

namespace {

template <class M>
void check_golden(const std::string& name) {
  const auto golden = io::safetensors_file::open(data_path(name + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto want = floats(golden.at("logits"));
  const auto model = M::load(data_path(name + ".rwkvcpp.bin"));  // through io::open_checkpoint
  const auto V = static_cast<std::size_t>(model.cfg().vocab);
  BOOST_REQUIRE_EQUAL(want.size(), tokens.size() * V);
  auto s = model.make_state();
  std::vector<float> all;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto got = model.step(tokens[t], s);
    const std::vector<float> row(want.begin() + static_cast<std::ptrdiff_t>(t * V),
                                 want.begin() + static_cast<std::ptrdiff_t>((t + 1) * V));
    rwkv::test::check_close(got, row, rwkv::test::logits_tol, name + ".rwkvcpp.bin logits step " + std::to_string(t));
    all.insert(all.end(), got.begin(), got.end());
  }
  BOOST_TEST_MESSAGE(name << ".rwkvcpp.bin: step max |got - want| = " << max_abs_diff(all, want));
  auto s2 = model.make_state();
  const auto seq = model.forward(tokens, s2, logits_for::all);
  const auto want_seq = floats(golden.at("logits_seq"));
  rwkv::test::check_close(rwkv::test::flat(seq), want_seq, rwkv::test::logits_tol, name + ".rwkvcpp.bin logits_seq");
  BOOST_TEST_MESSAGE(name << ".rwkvcpp.bin: sequence max |got - want| = "
                          << max_abs_diff(rwkv::test::flat(seq), want_seq));
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_4v0_bin_golden_logits) { check_golden<v4::Model<f32>>("tiny-4v0"); }
BOOST_AUTO_TEST_CASE(tiny_5v2_bin_golden_logits) { check_golden<v5::Model<f32, cpu<>, 8>>("tiny-5v2"); }
BOOST_AUTO_TEST_CASE(tiny_7v0_bin_golden_logits) { check_golden<v7::Model<f32>>("tiny-7v0"); }

// ---- every version through rwkv.cpp's converter -------------------------------------------------------------

namespace {

// Bound on |restored − official| for the inverse value transforms, from the float32 rounding of what the converter
// stored (expf within 1 ulp, then the stored float rounded), propagated through the inverse's derivative:
//   v4 d = log(−x), x = −exp(d):            |Δd| ≲ 2^-23 (relative error of x)
//   v5 d = log(−log(x)), x = exp(−exp(d)):  |Δd| ≲ 2^-23 · (1 + 1/exp(d))  (x ≈ 1 loses bits when exp(d) is small)
//   v5 u = log(x), x = exp(u):              |Δu| ≲ 2^-23
// each plus the final rounding to float32; 4× margin.
double inverse_bound(const std::string& name, bool v5, double want) {
  const double e = std::ldexp(1.0, -23);
  if (v5 && name.ends_with("time_decay")) return 4 * e * (1 + 1 / std::exp(want) + std::abs(want));
  return 4 * e * (1 + std::abs(want));
}

template <class M>
void check_converted(const std::string& name, bool fp16) {
  BOOST_TEST_CONTEXT(name << (fp16 ? " FP16" : " FP32")) {
    const auto st = io::safetensors_file::open(data_path(name + ".model.safetensors"));
    const auto official = official_tensors(st.tensors());
    const auto bin = parse(convert_like_rwkvcpp(official, fp16));
    const bool v5 = name.starts_with("v5");
    BOOST_TEST((bin.version() == detect_version(st.tensors())));
    BOOST_REQUIRE_EQUAL(bin.tensors().size(), official.size());
    double worst_inverse = 0;
    for (const auto& o : official) {
      BOOST_TEST_CONTEXT("tensor '" << o.name << "'") {
        const auto* t = bin.find(o.name);
        BOOST_REQUIRE(t != nullptr);
        BOOST_TEST(t->shape == o.shape, tt::per_element());
        const auto got = floats(*t);
        BOOST_REQUIRE_EQUAL(got.size(), o.values.size());
        // Inverse value transforms: v4 time_decay; v5 time_decay and time_first (v6, v7: none).
        const bool inverse = (name.starts_with("v4") && o.name.ends_with("att.time_decay")) ||
                             (v5 && (o.name.ends_with("att.time_decay") || o.name.ends_with("att.time_first")));
        if (inverse) {
          BOOST_TEST((t->type == dtype::f32));
          for (std::size_t i = 0; i < got.size(); ++i) {
            const double diff = std::abs(static_cast<double>(got[i]) - o.values[i]);
            worst_inverse = std::max(worst_inverse, diff);
            BOOST_TEST(diff <= inverse_bound(o.name, v5, o.values[i]),
                       "element " << i << ": " << got[i] << " vs " << o.values[i]);
          }
          continue;
        }
        // The converter's FP16 rule: >= 2 dims after its transforms and none of the kept-FP32 names (the split
        // x_r..x_g have no record of their own: x_rwkvag stays FP32).
        const io::rwkvcpp_record* rec = nullptr;
        for (const auto& r : bin.records())
          if (r.name == o.name) rec = &r;
        bool half = fp16 && rec != nullptr && rec->shape.size() > 1;
        for (const char* keep : {".time_", ".k_k", ".k_a", ".r_k", ".x_rwkvag", ".x_k", ".w0", ".a0", ".v0"})
          half = half && !contains(o.name, keep);
        BOOST_TEST((t->type == (half ? dtype::f16 : dtype::f32)));
        if (rec) BOOST_TEST(rec->data_type == (half ? F16 : F32));
        for (std::size_t i = 0; i < got.size(); ++i)
          BOOST_TEST(got[i] == (half ? f16_round(o.values[i]) : o.values[i]), "element " << i);
      }
    }
    BOOST_TEST_MESSAGE(name << (fp16 ? " FP16" : " FP32")
                            << ": max |restored - official| of the inverse value transforms = " << worst_inverse);
    if (fp16) return;
    const auto golden = io::safetensors_file::open(data_path(name + ".golden.safetensors"));
    const auto tokens = rwkv::test::ints(golden.at("tokens"));
    const auto want = floats(golden.at("logits"));
    const auto model = model_from<M>(bin);
    const auto V = static_cast<std::size_t>(model.cfg().vocab);
    auto s = model.make_state();
    std::vector<float> all;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const auto got = model.step(tokens[t], s);
      const std::vector<float> row(want.begin() + static_cast<std::ptrdiff_t>(t * V),
                                   want.begin() + static_cast<std::ptrdiff_t>((t + 1) * V));
      rwkv::test::check_close(got, row, rwkv::test::logits_tol, name + " converted, step " + std::to_string(t));
      all.insert(all.end(), got.begin(), got.end());
    }
    BOOST_TEST_MESSAGE(name << " converted: max |logits - golden| = " << max_abs_diff(all, want));
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v4_dev_through_converter) {
  check_converted<v4::Model<f32>>("v4-dev", false);
  check_converted<v4::Model<f32>>("v4-dev", true);
}
BOOST_AUTO_TEST_CASE(v5_1_dev_through_converter) {  // gate, per-head decay, time_first: stored (H,1) and (H,1,1)
  check_converted<v5::Model<f32>>("v5.1-dev", false);
  check_converted<v5::Model<f32>>("v5.1-dev", true);
}
BOOST_AUTO_TEST_CASE(v5_2_dev_through_converter) {
  check_converted<v5::Model<f32>>("v5.2-dev", false);
  check_converted<v5::Model<f32>>("v5.2-dev", true);
}
BOOST_AUTO_TEST_CASE(v6_dev_through_converter) {
  check_converted<v6::Model<f32>>("v6-dev", false);
  check_converted<v6::Model<f32>>("v6-dev", true);
}
BOOST_AUTO_TEST_CASE(v7_dev_through_converter) {
  check_converted<v7::Model<f32>>("v7-dev", false);
  check_converted<v7::Model<f32>>("v7-dev", true);
}

// ---- crafted files: the transforms one by one ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v4_time_decay_inverse_and_saturated_values) {
  const float denorm = std::numeric_limits<float>::denorm_min();
  const std::vector<float> stored{-1.0f, -0.5f, -0.0f, -denorm, -std::exp(-3.25f), 0.0f, -2.0f, -1e-3f};
  std::vector<float> decay(32, -1.0f);
  std::copy(stored.begin(), stored.end(), decay.begin());
  const auto c = write_file({}, {emb_record(), f32_record("blocks.0.att.time_decay", {32}, decay),
                                 f32_record("blocks.0.att.time_first", {32}, iota_values(32)),
                                 f32_record("blocks.0.att.time_mix_k", {32}, iota_values(32))});
  const auto f = parse(c.file);
  const auto d = floats(f.at("blocks.0.att.time_decay"));
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == std::vector<std::int64_t>{32}, tt::per_element());
  BOOST_TEST(d[0] == 0.0f);
  BOOST_TEST(d[1] == static_cast<float>(std::log(0.5)));
  // −exp(d) rounded to −0: any d with exp(d) = 0 in float32 reproduces it.
  BOOST_TEST(d[2] == static_cast<float>(io::rwkvcpp_detail::log_of_zero()));
  BOOST_TEST(-std::exp(d[2]) == 0.0f);
  BOOST_TEST(std::signbit(-std::exp(d[2])));
  BOOST_TEST(d[3] == static_cast<float>(std::log(static_cast<double>(denorm))));
  BOOST_TEST(d[4] == -3.25f, tt::tolerance(1e-6f));
  BOOST_TEST(d[5] == static_cast<float>(io::rwkvcpp_detail::log_of_zero()));  // +0 treated like −0
  BOOST_TEST(d[6] == static_cast<float>(std::log(2.0)));
  BOOST_TEST(d[7] == static_cast<float>(std::log(static_cast<double>(1e-3f))));
  // The official code's −exp(d) gives the stored value back (to float32 rounding).
  for (std::size_t i = 0; i < 8; ++i)
    if (i != 3 && i != 5)
      BOOST_TEST_CONTEXT("element " << i) BOOST_TEST(-std::exp(d[i]) == stored[i], tt::tolerance(1e-6f));
  // time_first is raw in v4; the mix vector is only reshaped (a view into the file).
  BOOST_TEST(floats(f.at("blocks.0.att.time_first")) == iota_values(32), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_mix_k").shape == (std::vector<std::int64_t>{1, 1, 32}), tt::per_element());
  BOOST_TEST(inside(f.file_bytes(), f.at("blocks.0.att.time_mix_k")));
  BOOST_TEST((f.version() == arch_version::v4));
}

BOOST_AUTO_TEST_CASE(v5_without_gate_rwkvcpp_5_1) {  // official 5.0: (H,1,1) decay and first → [H]
  const float x0 = std::exp(-std::exp(-1.5f)), u0 = std::exp(0.25f);
  const auto c = write_file({}, {emb_record(), f32_record("blocks.0.att.ln_x.weight", {32}, iota_values(32)),
                                 f32_record("blocks.0.att.time_decay", {4, 1, 1}, {x0, 1.0f, 0.0f, 0.5f}),
                                 f32_record("blocks.0.att.time_first", {4, 1, 1}, {u0, 0.0f, 1.0f, 2.0f}),
                                 f32_record("blocks.0.att.time_mix_r", {32}, iota_values(32))});
  const auto f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v5_0));
  BOOST_TEST(std::string(f.rwkvcpp_arch_name()) == "5.1");
  const auto& decay = f.at("blocks.0.att.time_decay");
  BOOST_TEST(decay.shape == std::vector<std::int64_t>{4}, tt::per_element());
  const auto d = floats(decay);
  BOOST_TEST(d[0] == -1.5f, tt::tolerance(1e-5f));
  BOOST_TEST(d[0] == static_cast<float>(std::log(-std::log(static_cast<double>(x0)))));
  // exp(−exp(d)) = 1: exp(d) rounded to 0; = 0: exp(d) > 104. Both reproduce the stored decay in float32.
  BOOST_TEST(std::exp(-std::exp(d[1])) == 1.0f);
  BOOST_TEST(std::exp(-std::exp(d[2])) == 0.0f);
  BOOST_TEST(d[3] == static_cast<float>(std::log(-std::log(0.5))));
  const auto& first = f.at("blocks.0.att.time_first");
  BOOST_TEST(first.shape == std::vector<std::int64_t>{4}, tt::per_element());
  const auto u = floats(first);
  BOOST_TEST(u[0] == 0.25f, tt::tolerance(1e-6f));
  BOOST_TEST(std::exp(u[1]) == 0.0f);
  BOOST_TEST(u[2] == 0.0f);
  BOOST_TEST(u[3] == static_cast<float>(std::log(2.0)));
  BOOST_TEST(f.at("blocks.0.att.time_mix_r").shape == (std::vector<std::int64_t>{1, 1, 32}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(v5_gate_per_head_official_5_1) {  // decay stored (H,1), first (H,1,1) → [H]
  const auto c = write_file({}, {emb_record(), f32_record("blocks.0.att.ln_x.weight", {32}, iota_values(32)),
                                 f32_record("blocks.0.att.gate.weight", {32, 32}, iota_values(1024)),
                                 f32_record("blocks.0.att.time_decay", {4, 1}, {0.5f, 0.25f, 0.75f, 0.125f}),
                                 f32_record("blocks.0.att.time_first", {4, 1, 1}, {1.0f, 2.0f, 0.5f, 4.0f})});
  const auto f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v5_1));
  BOOST_TEST(std::string(f.rwkvcpp_arch_name()) == "5.2");
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == std::vector<std::int64_t>{4}, tt::per_element());
  BOOST_TEST(floats(f.at("blocks.0.att.time_decay"))[1] == static_cast<float>(std::log(-std::log(0.25))));
  BOOST_TEST(f.at("blocks.0.att.time_first").shape == std::vector<std::int64_t>{4}, tt::per_element());
  BOOST_TEST(floats(f.at("blocks.0.att.time_first"))[3] == static_cast<float>(std::log(4.0)));
}

BOOST_AUTO_TEST_CASE(v5_2_per_channel_and_single_head) {
  // 4 heads of 8: (H, N, 1) → [H, N].
  std::vector<float> decay(32), faaaa = iota_values(32, 0.1f);
  for (std::size_t i = 0; i < 32; ++i) decay[i] = 0.5f + 0.01f * static_cast<float>(i);
  const auto gate = f32_record("blocks.0.att.gate.weight", {32, 32}, iota_values(1024));
  const auto ln_x = f32_record("blocks.0.att.ln_x.weight", {32}, iota_values(32));
  auto c = write_file({}, {emb_record(), ln_x, gate, f32_record("blocks.0.att.time_decay", {4, 8, 1}, decay),
                           f32_record("blocks.0.att.time_faaaa", {4, 8, 1}, faaaa)});
  auto f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v5_2));
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == (std::vector<std::int64_t>{4, 8}), tt::per_element());
  BOOST_TEST(floats(f.at("blocks.0.att.time_decay"))[9] ==
             static_cast<float>(std::log(-std::log(static_cast<double>(decay[9])))));
  BOOST_TEST(f.at("blocks.0.att.time_faaaa").shape == (std::vector<std::int64_t>{4, 8}), tt::per_element());
  BOOST_TEST(floats(f.at("blocks.0.att.time_faaaa")) == faaaa, tt::per_element());
  BOOST_TEST(inside(f.file_bytes(), f.at("blocks.0.att.time_faaaa")));
  // One head of 32: the converter's squeeze removed H = 1, (N, 1) → [1, N].
  c = write_file({}, {emb_record(), ln_x, gate, f32_record("blocks.0.att.time_decay", {32, 1}, decay),
                      f32_record("blocks.0.att.time_faaaa", {32, 1}, faaaa)});
  f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v5_2));
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == (std::vector<std::int64_t>{1, 32}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_faaaa").shape == (std::vector<std::int64_t>{1, 32}), tt::per_element());
  // A per-channel decay (H, N, 1) with N > 1 is [H, N] even without time_faaaa in the layer.
  c = write_file({}, {emb_record(), ln_x, gate, f32_record("blocks.0.att.time_decay", {4, 8, 1}, decay)});
  f = parse(c.file);
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == (std::vector<std::int64_t>{4, 8}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(v6_transposes_and_reshapes) {
  constexpr std::int64_t C = 32, D = 3, Dd = 5;
  const auto w1 = iota_values(5 * D * C, 0.5f), w2 = iota_values(5 * C * D, 0.25f);
  const auto dw1 = iota_values(Dd * C, 1.0f, 100.0f), dw2 = iota_values(C * Dd, -1.0f);
  const auto c =
      write_file({}, {emb_record(),
                      f32_record("blocks.0.att.time_maa_x", {C}, iota_values(C)),
                      f32_record("blocks.0.att.time_maa_w1", {5 * D, C}, w1),  // stored transposed
                      f32_record("blocks.0.att.time_maa_w2", {5, C, D}, w2),   // dims 1, 2 swapped
                      f32_record("blocks.0.att.time_decay", {4, 8, 1}, iota_values(C, -0.1f)),
                      {"blocks.0.att.time_decay_w1", Q8_0, {Dd, C}, quantize(Q8_0, dw1)},  // quantized, transposed
                      f32_record("blocks.0.att.time_decay_w2", {C, Dd}, dw2),
                      f32_record("blocks.0.att.time_faaaa", {4, 8, 1}, iota_values(C, 0.3f)),
                      f32_record("blocks.0.ffn.time_maa_k", {C}, iota_values(C))});
  const auto f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v6));
  using shape = std::vector<std::int64_t>;
  BOOST_TEST(f.at("blocks.0.att.time_maa_x").shape == (shape{1, 1, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.ffn.time_maa_k").shape == (shape{1, 1, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_maa_w1").shape == (shape{C, 5 * D}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_maa_w2").shape == (shape{5, D, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_decay").shape == (shape{1, 1, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_decay_w1").shape == (shape{C, Dd}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_decay_w2").shape == (shape{Dd, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.time_faaaa").shape == (shape{4, 8}), tt::per_element());
  const auto gw1 = floats(f.at("blocks.0.att.time_maa_w1")), gw2 = floats(f.at("blocks.0.att.time_maa_w2"));
  for (std::int64_t ci = 0; ci < C; ++ci)
    for (std::int64_t k = 0; k < 5 * D; ++k)
      BOOST_TEST(gw1[static_cast<std::size_t>(ci * 5 * D + k)] == w1[static_cast<std::size_t>(k * C + ci)]);
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t d = 0; d < D; ++d)
      for (std::int64_t ci = 0; ci < C; ++ci)
        BOOST_TEST(gw2[static_cast<std::size_t>((i * D + d) * C + ci)] ==
                   w2[static_cast<std::size_t>((i * C + ci) * D + d)]);
  const auto gd1 = floats(f.at("blocks.0.att.time_decay_w1")), gd2 = floats(f.at("blocks.0.att.time_decay_w2"));
  for (std::int64_t ci = 0; ci < C; ++ci)
    for (std::int64_t k = 0; k < Dd; ++k) {
      // Q8_0 of 100 + i in blocks of 32: |error| <= d/2 + 127·|d − fp16(d)| with d = max/127 <= 260/127.
      BOOST_TEST(std::abs(gd1[static_cast<std::size_t>(ci * Dd + k)] - dw1[static_cast<std::size_t>(k * C + ci)]) <=
                 1.25f);
      BOOST_TEST(gd2[static_cast<std::size_t>(k * C + ci)] == dw2[static_cast<std::size_t>(ci * Dd + k)]);
    }
  BOOST_TEST(floats(f.at("blocks.0.att.time_decay")) == iota_values(C, -0.1f), tt::per_element());
}

BOOST_AUTO_TEST_CASE(v7_split_and_transposed_lora) {
  constexpr std::int64_t C = 32, D = 8;
  const auto xs = iota_values(6 * C, 1.0f), w1 = iota_values(D * C, 0.5f);
  const auto c = write_file(
      {}, {emb_record(), f32_record("blocks.0.att.x_rwkvag", {6, 1, C}, xs), f32_record("blocks.0.att.w1", {D, C}, w1),
           f32_record("blocks.0.att.k_k", {1, 1, C}, iota_values(C)),
           f32_record("blocks.0.att.r_k", {1, C}, iota_values(C)),
           f32_record("blocks.0.ffn.x_k", {1, 1, C}, iota_values(C))});
  const auto f = parse(c.file);
  BOOST_TEST((f.version() == arch_version::v7));
  BOOST_TEST(f.tensors().size() == 11u);
  std::size_t part = 0;
  for (const char* n : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) {
    const auto& t = f.at(std::string("blocks.0.att.") + n);
    BOOST_TEST(t.shape == (std::vector<std::int64_t>{1, 1, C}), tt::per_element());
    BOOST_TEST(inside(f.file_bytes(), t));
    const std::vector<float> want(xs.begin() + static_cast<std::ptrdiff_t>(part * C),
                                  xs.begin() + static_cast<std::ptrdiff_t>((part + 1) * C));
    BOOST_TEST(floats(t) == want, tt::per_element());
    ++part;
  }
  BOOST_TEST(f.at("blocks.0.att.w1").shape == (std::vector<std::int64_t>{C, D}), tt::per_element());
  const auto g = floats(f.at("blocks.0.att.w1"));
  for (std::int64_t ci = 0; ci < C; ++ci)
    for (std::int64_t k = 0; k < D; ++k)
      BOOST_TEST(g[static_cast<std::size_t>(ci * D + k)] == w1[static_cast<std::size_t>(k * C + ci)]);
  BOOST_TEST(f.at("blocks.0.att.r_k").shape == (std::vector<std::int64_t>{1, C}), tt::per_element());
  BOOST_TEST(f.at("blocks.0.att.k_k").shape == (std::vector<std::int64_t>{1, 1, C}), tt::per_element());
}

// ---- quantized blocks -------------------------------------------------------------------------------------------

namespace {

// A file holding `tensor` of the given type and shape (plus emb.weight), read back as floats.
std::vector<float> read_back(std::uint32_t type, std::vector<std::int64_t> shape, const bytes& data) {
  const auto c = write_file({}, {emb_record(), {"blocks.0.att.key.weight", type, shape, data}});
  const auto f = parse(c.file);
  const auto& t = f.at("blocks.0.att.key.weight");
  BOOST_TEST((t.type == dtype::f32));
  BOOST_TEST(t.shape == shape, tt::per_element());
  BOOST_TEST(!inside(f.file_bytes(), t));
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(t.data) % alignof(float) == 0u);
  return floats(t);
}

std::vector<int> as_ints(const bytes& b) {
  std::vector<int> out;
  for (auto x : b) out.push_back(static_cast<int>(x));
  return out;
}

bytes byte_list(std::initializer_list<unsigned> v) {
  bytes out;
  for (auto x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

// Hand-built blocks (bytes written out per spec/formats.md (c), independent of the quantizer) and their values.
struct hand_block {
  std::uint32_t type;
  bytes block;
  std::vector<float> values;
};

std::vector<hand_block> hand_blocks() {
  std::vector<hand_block> out;
  {  // Q4_0, d = 0.5 (fp16 0x3800); qs[j] = j | (15 − j) << 4 → x[j] = (j − 8)·0.5, x[j+16] = (7 − j)·0.5
    hand_block h{Q4_0, byte_list({0x00, 0x38}), std::vector<float>(32)};
    for (unsigned j = 0; j < 16; ++j) h.block.push_back(static_cast<std::byte>(j | (15 - j) << 4));
    for (int j = 0; j < 16; ++j) {
      h.values[static_cast<std::size_t>(j)] = static_cast<float>(j - 8) * 0.5f;
      h.values[static_cast<std::size_t>(j + 16)] = static_cast<float>(7 - j) * 0.5f;
    }
    out.push_back(h);
  }
  {  // Q4_1, d = 0.25 (0x3400), m = −1.5 (0xBE00); same nibbles → x[j] = j·0.25 − 1.5, x[j+16] = (15 − j)·0.25 − 1.5
    hand_block h{Q4_1, byte_list({0x00, 0x34, 0x00, 0xBE}), std::vector<float>(32)};
    for (unsigned j = 0; j < 16; ++j) h.block.push_back(static_cast<std::byte>(j | (15 - j) << 4));
    for (int j = 0; j < 16; ++j) {
      h.values[static_cast<std::size_t>(j)] = static_cast<float>(j) * 0.25f - 1.5f;
      h.values[static_cast<std::size_t>(j + 16)] = static_cast<float>(15 - j) * 0.25f - 1.5f;
    }
    out.push_back(h);
  }
  {  // Q5_0, d = 0.125 (0x3000); q[i] = i: qs[j] = j | j << 4, qh = 0xFFFF0000 → x[i] = (i − 16)·0.125
    hand_block h{Q5_0, byte_list({0x00, 0x30, 0x00, 0x00, 0xFF, 0xFF}), std::vector<float>(32)};
    for (unsigned j = 0; j < 16; ++j) h.block.push_back(static_cast<std::byte>(j | j << 4));
    for (int i = 0; i < 32; ++i) h.values[static_cast<std::size_t>(i)] = static_cast<float>(i - 16) * 0.125f;
    out.push_back(h);
  }
  {  // Q5_1, d = 0.5 (0x3800), m = 2 (0x4000); q[i] = 31 − i: low nibbles 15 − j twice, qh = 0x0000FFFF
    //   → x[i] = (31 − i)·0.5 + 2
    hand_block h{Q5_1, byte_list({0x00, 0x38, 0x00, 0x40, 0xFF, 0xFF, 0x00, 0x00}), std::vector<float>(32)};
    for (unsigned j = 0; j < 16; ++j) h.block.push_back(static_cast<std::byte>((15 - j) | (15 - j) << 4));
    for (int i = 0; i < 32; ++i) h.values[static_cast<std::size_t>(i)] = static_cast<float>(31 - i) * 0.5f + 2.0f;
    out.push_back(h);
  }
  {  // Q8_0, d = 0.0999755859375 (0x2E66); qs[i] = 8i − 127 → x[i] = (8i − 127)·d (exact: 11 × 8 bits)
    hand_block h{Q8_0, byte_list({0x66, 0x2E}), std::vector<float>(32)};
    for (int i = 0; i < 32; ++i) {
      h.block.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(static_cast<std::int8_t>(8 * i - 127))));
      h.values[static_cast<std::size_t>(i)] = static_cast<float>(8 * i - 127) * 0.0999755859375f;
    }
    out.push_back(h);
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fp16_constants_of_the_hand_built_blocks) {
  BOOST_TEST(f16_value(0x3800) == 0.5f);
  BOOST_TEST(f16_value(0x3400) == 0.25f);
  BOOST_TEST(f16_value(0x3000) == 0.125f);
  BOOST_TEST(f16_value(0xBE00) == -1.5f);
  BOOST_TEST(f16_value(0x4000) == 2.0f);
  BOOST_TEST(f16_value(0x2E66) == 0.0999755859375f);
}

BOOST_AUTO_TEST_CASE(hand_built_blocks_dequantize_as_specified) {
  for (const auto& h : hand_blocks()) {
    BOOST_TEST_CONTEXT(io::rwkvcpp_detail::type_name(h.type)) {
      BOOST_REQUIRE_EQUAL(h.block.size(), io::rwkvcpp_detail::block_bytes(h.type));
      BOOST_TEST(read_back(h.type, {1, 32}, h.block) == h.values, tt::per_element());
      // Several blocks and rows: blocks follow each other along ne0, rows after rows. The second block has its
      // scale doubled (fp16 exponent + 1), the third is the first again.
      bytes data = h.block;
      bytes twice = h.block;
      twice[1] = static_cast<std::byte>(static_cast<unsigned>(twice[1]) + 0x04);  // d·2
      if (h.type == Q4_1 || h.type == Q5_1) twice[3] = static_cast<std::byte>(static_cast<unsigned>(twice[3]) + 0x04);
      data.insert(data.end(), twice.begin(), twice.end());
      data.insert(data.end(), h.block.begin(), h.block.end());
      data.insert(data.end(), h.block.begin(), h.block.end());
      std::vector<float> want = h.values;
      for (float v : h.values) want.push_back(2 * v);  // (q·d + m)·2 = q·2d + 2m
      want.insert(want.end(), h.values.begin(), h.values.end());
      want.insert(want.end(), h.values.begin(), h.values.end());
      BOOST_TEST(read_back(h.type, {2, 64}, data) == want, tt::per_element());
    }
  }
  // Q8_0 extremes: −128 and 127.
  bytes q8 = byte_list({0x00, 0x3C});  // d = 1
  for (int i = 0; i < 32; ++i) q8.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(i < 16 ? -128 : 127)));
  const auto v = read_back(Q8_0, {32}, q8);
  BOOST_TEST(v[0] == -128.0f);
  BOOST_TEST(v[31] == 127.0f);
}

// The in-test quantizer (spec/formats.md (c)) writes exactly the hand-built blocks for their values, and those
// values come back unchanged.
BOOST_AUTO_TEST_CASE(quantizer_reproduces_hand_built_blocks) {
  for (const auto& h : hand_blocks()) {
    BOOST_TEST_CONTEXT(io::rwkvcpp_detail::type_name(h.type)) {
      const auto q = quantize(h.type, h.values);
      BOOST_TEST(as_ints(q) == as_ints(h.block), tt::per_element());
      BOOST_TEST(read_back(h.type, {32}, q) == h.values, tt::per_element());
    }
  }
}

// Values that are not on the grid, dequantized values worked out by hand from the spec's quantizers.
BOOST_AUTO_TEST_CASE(quantizer_hand_computed_values) {
  const auto block = [](std::initializer_list<float> head) {
    std::vector<float> v(32, 0.0f);
    std::copy(head.begin(), head.end(), v.begin());
    return v;
  };
  const auto check = [](std::uint32_t type, const std::vector<float>& x, std::initializer_list<float> want) {
    BOOST_TEST_CONTEXT(io::rwkvcpp_detail::type_name(type)) {
      const auto got = read_back(type, {32}, quantize(type, x));
      std::size_t i = 0;
      for (float w : want) {
        BOOST_TEST(got[i] == w, "element " << i);
        ++i;
      }
    }
  };
  // Q8_0: d = 1/127 → fp16 0.00787353515625; q = round(x·127): 1 → 127, 0.3 → 38, −0.5 → −64 (half away from zero)
  check(Q8_0, block({1.0f, 0.3f, -0.5f}), {0.99993896484375f, 0.2991943359375f, -0.50390625f, 0.0f});
  // Q4_0: max |x| is the first 1.0 (ties keep the first) → d = −0.125; q = min(15, trunc(−8x + 8.5)):
  //   1 → 0 → 1; −0.25 → 10 → −0.25; 0.3 → 6 → 0.25; −1 → 16 clamped to 15 → −0.875; 0 → 8 → 0
  check(Q4_0, block({1.0f, -0.25f, 0.3f, -1.0f}), {1.0f, -0.25f, 0.25f, -0.875f, 0.0f});
  // Q5_0: d = 1/−16 = −0.0625; q = min(31, trunc(−16x + 16.5)): 1 → 0 → 1; 0.3 → 11 → 0.3125; −1 → 32 → 31 → −0.9375
  check(Q5_0, block({1.0f, 0.3f, -1.0f}), {1.0f, 0.3125f, -0.9375f, 0.0f});
  // Q4_1: lo = 0, hi = 1, d = 1/15 = 0.0666666701f → fp16 0.066650390625; id = 1/d = 14.99999905f (just below
  //   15 in float32), q = trunc(id·x + 0.5): 0.5 → trunc(7.9999995) = 7 → 0.466552734375;
  //   1 → trunc(15.499999) = 15 → 0.999755859375; 0.1 → trunc(1.9999999) = 1 → 0.066650390625
  check(Q4_1, block({0.5f, 1.0f, 0.1f}), {0.466552734375f, 0.999755859375f, 0.066650390625f, 0.0f});
  // Q5_1: d = 1/31 → fp16 0.032257080078125, id = 31; 0.5 → 16 → 0.51611328125; 1 → 31 → 0.999969482421875
  check(Q5_1, block({0.5f, 1.0f}), {0.51611328125f, 0.999969482421875f, 0.0f});
  // Q4_1 / Q5_1 with a negative minimum: m = lo = −2 (fp16 exact), d = 3/15 = 0.2 → fp16 0.199951171875;
  //   x = 1 → q = trunc(3·5 + 0.5) = 15 → 15·0.199951171875 − 2 = 0.999267578125
  check(Q4_1, block({-2.0f, 1.0f}), {-2.0f, 0.999267578125f});
}

// Arbitrary values: every element within the quantization step (plus the fp16 rounding of d and m) of the input.
BOOST_AUTO_TEST_CASE(quantizer_error_bounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(32 * 64);
  for (auto& v : x) v = normal(rng) * 0.3f + 0.05f;
  for (auto type : quantized_types) {
    BOOST_TEST_CONTEXT(io::rwkvcpp_detail::type_name(type)) {
      const auto got = read_back(type, {64, 32}, quantize(type, x));
      for (std::size_t b = 0; b < x.size(); b += 32) {
        float lo = x[b], hi = x[b], amax = 0;
        for (std::size_t i = b; i < b + 32; ++i) {
          lo = std::min(lo, x[i]);
          hi = std::max(hi, x[i]);
          amax = std::max(amax, std::abs(x[i]));
        }
        // Step d; the symmetric types clamp −max to one step short (an error of a whole step).
        const double step = type == Q4_0   ? amax / 8.0
                            : type == Q5_0 ? amax / 16.0
                            : type == Q8_0 ? amax / 127.0
                            : type == Q4_1 ? (hi - lo) / 15.0
                                           : (hi - lo) / 31.0;
        const double levels = type == Q8_0 ? 128 : type == Q4_0 || type == Q4_1 ? 16 : 32;
        const double fp16 = std::ldexp(1.0, -11) * (levels * step + std::abs(lo));
        const double bound = (type == Q4_0 || type == Q5_0 ? 1.0 : 0.5) * step + fp16 + 1e-6;
        for (std::size_t i = b; i < b + 32; ++i) BOOST_TEST(std::abs(got[i] - x[i]) <= bound, "element " << i);
      }
    }
  }
}

// Every quantized format on real weights (tiny-7v0): the quantized tensors are exactly the dequantized blocks the
// in-test quantizer wrote, the others unchanged; Q8_0 files of the three tiny models give logits close to F32.
BOOST_AUTO_TEST_CASE(quantized_files_of_tiny_7v0) {
  const auto f32_file = io::rwkvcpp_file::open(data_path("tiny-7v0.rwkvcpp.bin"));
  for (auto type : quantized_types) {
    BOOST_TEST_CONTEXT(io::rwkvcpp_detail::type_name(type)) {
      const auto q = parse(requantize(f32_file, type));
      BOOST_TEST(q.header().data_type == type);
      BOOST_REQUIRE_EQUAL(q.records().size(), f32_file.records().size());
      std::size_t quantized = 0;
      for (std::size_t i = 0; i < q.records().size(); ++i) {
        const auto& r = q.records()[i];
        BOOST_TEST(r.data_type == (rwkvcpp_quantizes(f32_file.records()[i]) ? type : F32), r.name);
        quantized += r.data_type == type;
      }
      BOOST_TEST(quantized == 12u * 6u);  // receptance, key, value, output, ffn key, ffn value per layer
      for (const auto& t : q.tensors()) {
        const auto& orig = f32_file.at(t.name);
        const bool is_q = t.name.ends_with("receptance.weight") || t.name.ends_with("key.weight") ||
                          t.name.ends_with("value.weight") || t.name.ends_with("output.weight");
        if (!is_q) {
          BOOST_TEST(floats(t) == floats(orig), tt::per_element());
          continue;
        }
        // Dequantizing what the quantizer wrote, block by block.
        const auto orig_values = floats(orig);
        const auto blocks = quantize(type, orig_values);
        std::vector<float> want(orig_values.size());
        io::rwkvcpp_detail::dequantize(type, blocks.data(), want.size() / 32, want.data());
        BOOST_TEST(floats(t) == want, tt::per_element());
      }
    }
  }
}

namespace {

// Q8_0 round trip of a whole model: logits of the re-encoded file vs those of the F32 file (same model class).
// Q8_0 keeps ~8 bits per weight (error <= amax/254 per block). Observed max |logit difference| over the 3 prompt
// tokens (logits up to about 10-20 in size): tiny-4v0 0.020, tiny-5v2 0.063 (8-wide heads: ln_x normalises
// tiny groups and amplifies weight noise), tiny-7v0 0.00097. Each bound is about 3x its observed value.
template <class M>
void check_q8_0_round_trip(const std::string& name, double bound) {
  const auto f32_file = io::rwkvcpp_file::open(data_path(name + ".rwkvcpp.bin"));
  const auto q = parse(requantize(f32_file, Q8_0));
  const auto golden = io::safetensors_file::open(data_path(name + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto ref = model_from<M>(f32_file);
  const auto quant = model_from<M>(q);
  auto s1 = ref.make_state();
  auto s2 = quant.make_state();
  double worst = 0;
  for (auto t : tokens) {
    const auto a = ref.step(t, s1), b = quant.step(t, s2);
    worst = std::max(worst, max_abs_diff(a, b));
  }
  BOOST_TEST_MESSAGE(name << " Q8_0 vs F32: max |logit difference| = " << worst);
  BOOST_TEST(worst > 0.0);  // the weights did change
  BOOST_TEST(worst <= bound);
}

}  // namespace

BOOST_AUTO_TEST_CASE(q8_0_round_trip_logits) {
  check_q8_0_round_trip<v4::Model<f32>>("tiny-4v0", 0.06);
  check_q8_0_round_trip<v5::Model<f32, cpu<>, 8>>("tiny-5v2", 0.2);
  check_q8_0_round_trip<v7::Model<f32>>("tiny-7v0", 0.003);
}

// ---- hostile input --------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(base_file_is_valid) {
  const auto f = parse(base_file().file);
  BOOST_TEST(f.tensors().size() == 4u);
  BOOST_TEST((f.at("blocks.0.att.output.weight").type == dtype::f16));
  BOOST_TEST(inside(f.file_bytes(), f.at("blocks.0.att.output.weight")));
  BOOST_TEST(inside(f.file_bytes(), f.at("emb.weight")));
}

// Every prefix of a small file: an rwkv::error, or (cut exactly after a whole record) a valid shorter file.
BOOST_AUTO_TEST_CASE(truncated_everywhere_crafted) {
  const auto c = base_file();
  std::set<std::size_t> boundaries;
  for (const auto& a : c.at) boundaries.insert(a.end);
  std::size_t parsed = 0;
  for (std::size_t n = 0; n < c.file.size(); ++n) {
    const bytes cut(c.file.begin(), c.file.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      const auto f = parse(cut);
      BOOST_TEST(boundaries.count(n) == 1u, "prefix of " << n << " bytes parsed");
      ++parsed;
    } catch (const rwkv::error& e) {
      BOOST_TEST(e.file() == crafted_name);
    }
  }
  BOOST_TEST(parsed == 3u);  // after emb.weight, after the decay, after the Q8_0 tensor
}

BOOST_AUTO_TEST_CASE(truncated_fixtures) {
  for (const char* name : {"tiny-4v0", "tiny-5v2", "tiny-7v0"}) {
    const auto full = read_file(data_path(std::string(name) + ".rwkvcpp.bin"));
    const auto f = parse(full);
    std::set<std::size_t> boundaries;
    std::set<std::size_t> cuts{0, 1, 4, 8, 23, 24, 25, 30, 36};
    for (std::size_t i = 0; i < 6 && i < f.records().size(); ++i) {
      const auto& r = f.records()[i];
      for (std::size_t d :
           {r.offset - r.name.size() - 1, r.offset - 1, r.offset, r.offset + 1, r.offset + r.nbytes - 1})
        cuts.insert(d);
    }
    for (const auto& r : f.records()) boundaries.insert(r.offset + r.nbytes);
    for (std::size_t k = 1; k < 48; ++k) cuts.insert(full.size() * k / 48);
    cuts.insert(full.size() - 1);
    for (auto n : cuts) {
      BOOST_TEST_CONTEXT(name << " cut at " << n) {
        try {
          (void)parse(bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)));
          BOOST_TEST(boundaries.count(n) == 1u);
        } catch (const rwkv::error& e) {
          BOOST_TEST(e.file() == crafted_name);
          BOOST_TEST(boundaries.count(n) == 0u);
        }
      }
    }
  }
}

// Random corruptions of a small file (bytes flipped, counts and dimensions replaced by extreme values): every
// result is a parsed file or an rwkv::error, never another exception, a crash or a sanitizer report.
BOOST_AUTO_TEST_CASE(random_corruptions) {
  const auto c = base_file();
  std::vector<std::size_t> fields;  // the u32 fields of the record headers and dimensions
  for (const auto& a : c.at)
    for (std::size_t at = a.start; at < a.name; at += 4) fields.push_back(at);
  std::mt19937 rng(12345);
  const std::uint32_t extremes[] = {0,  1,          2,          3,          4,          31,      32,
                                    33, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 1u << 24};
  std::size_t parsed = 0, errors = 0;
  for (int i = 0; i < 4000; ++i) {
    auto b = c.file;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      if (rng() % 2)
        b[rng() % b.size()] = static_cast<std::byte>(rng() & 0xFF);
      else
        put_u32(b, fields[rng() % fields.size()], rng() % 3 ? extremes[rng() % std::size(extremes)] : rng());
    }
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      (void)parse(b);
      ++parsed;
    } catch (const rwkv::error& e) {
      ++errors;
      BOOST_TEST(e.file() == crafted_name);
    } catch (const std::exception& e) {
      BOOST_ERROR("corruption " << i << ": not an rwkv::error: " << e.what());
    }
  }
  BOOST_TEST_MESSAGE("random corruptions: " << parsed << " parsed, " << errors << " rejected");
  BOOST_TEST(errors > 0u);
}

BOOST_AUTO_TEST_CASE(bad_headers) {
  const auto good = base_file().file;
  EXPECT_BAD_FILE(bytes(good.begin(), good.begin() + 10), "", "10 bytes, too short");
  auto b = good;
  put_u32(b, 0, 0x67676d6c);  // "ggml" (unversioned ggml)
  EXPECT_BAD_FILE(b, "", "magic 0x67676d6c", "expected 0x67676d66");
  b = good;
  put_u32(b, 0, 0x46554747);  // "GGUF"
  EXPECT_BAD_FILE(b, "", "not an rwkv.cpp model file");
  for (std::uint32_t v : {0u, 1u, 99u, 102u, 0xFFFFFFFFu}) {
    b = good;
    put_u32(b, 4, v);
    EXPECT_BAD_FILE(b, "", "unsupported rwkv.cpp file version " + std::to_string(v));
  }
  for (std::uint32_t t : {10u, 11u, 0xFFFFFFFFu}) {
    b = good;
    put_u32(b, 20, t);
    EXPECT_BAD_FILE(b, "", "the header's data type " + std::to_string(t) + " is unknown");
  }
  for (std::uint32_t t : {4u, 5u, 6u}) {
    b = good;
    put_u32(b, 20, t);
    EXPECT_BAD_FILE(b, "", "was removed");
  }
  // Version 100 with a quantized main type, and a quantized tensor in a version-100 file.
  b = good;
  put_u32(b, 4, 100);
  put_u32(b, 20, Q5_1);
  EXPECT_BAD_FILE(b, "", "header's data type 8 (Q5_1) is quantized", "version-100");
  b = good;
  put_u32(b, 4, 100);
  EXPECT_BAD_FILE(b, "blocks.0.att.key.weight", "data type 9 (Q8_0) is quantized", "version-100");
  // The header's sizes must match the tensors.
  file_header h;
  h.n_vocab = 3;
  EXPECT_BAD_FILE(write_file(h, base_records()).file, "emb.weight", "does not match the header's n_vocab 3");
  h = {};
  h.n_embed = 64;
  EXPECT_BAD_FILE(write_file(h, base_records()).file, "emb.weight", "n_embed 64");
  h = {};
  h.n_layer = 0;
  EXPECT_BAD_FILE(write_file(h, base_records()).file, "blocks.0.att.time_decay", "outside the header's n_layer 0");
  auto records = base_records();
  records.erase(records.begin());
  EXPECT_BAD_FILE(write_file({}, records).file, "", "no 'emb.weight' tensor");
  EXPECT_BAD_FILE(write_file({}, {}).file, "", "no 'emb.weight' tensor");
}

BOOST_AUTO_TEST_CASE(bad_records) {
  const auto c = base_file();
  const auto& key = c.at[2];  // blocks.0.att.key.weight, Q8_0 [2, 32]
  const std::string name = "blocks.0.att.key.weight";
  auto b = c.file;
  for (std::uint32_t n : {0u, 4u, 5u, 0xFFFFFFFFu}) {
    b = c.file;
    put_u32(b, key.start, n);
    EXPECT_BAD_FILE(b, "", "record 2", "dimension count " + std::to_string(n) + " is not 1, 2 or 3");
  }
  for (std::uint32_t t : {10u, 0x80000000u}) {
    b = c.file;
    put_u32(b, key.start + 8, t);
    EXPECT_BAD_FILE(b, name, "data type " + std::to_string(t) + " is unknown");
  }
  b = c.file;
  put_u32(b, key.start + 8, 6);
  EXPECT_BAD_FILE(b, name, "data type 6 (Q4_3) was removed");
  // Dimensions whose product overflows (3 × 0xFFFFFFFF), or passes 2^48, or is zero.
  {
    auto r = base_records();
    r[2] = {"blocks.0.att.key.weight", F32, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}};
    EXPECT_BAD_FILE(write_file({}, r).file, name, "overflow");
    r[2] = {"blocks.0.att.key.weight", F32, {1 << 16, 1 << 16, 1 << 17}, {}};
    EXPECT_BAD_FILE(write_file({}, r).file, name, "overflow");
    r[2] = {"blocks.0.att.key.weight", F32, {2, 0}, {}};
    EXPECT_BAD_FILE(write_file({}, r).file, name, "dimension 0 of the stored shape is zero");
    // Data past the end of the file (a huge but non-overflowing tensor, and one element too many).
    r[2] = {"blocks.0.att.key.weight", F32, {1 << 20, 1 << 20}, {}};
    EXPECT_BAD_FILE(write_file({}, r).file, name, "extends past the end of the file");
    r = base_records();
    r.push_back(f32_record("blocks.0.att.time_first", {32}, iota_values(32)));
    auto w = write_file({}, r).file;
    w.pop_back();
    EXPECT_BAD_FILE(w, "blocks.0.att.time_first", "128 bytes at offset", "extends past the end of the file");
    // Quantized rows must be whole blocks.
    r = base_records();
    r[2] = {"blocks.0.att.key.weight", Q8_0, {1, 48}, bytes(51)};
    EXPECT_BAD_FILE(write_file({}, r).file, name, "innermost dimension 48 is not a multiple of the 32-element block");
  }
  // Name length: zero, past the end of the file, over the limit.
  b = c.file;
  put_u32(b, key.start + 4, 0);
  EXPECT_BAD_FILE(b, "", "empty tensor name");
  b = c.file;
  put_u32(b, key.start + 4, 1000);
  b.resize(key.name + 500);
  EXPECT_BAD_FILE(b, "", "tensor name of 1000 bytes", "extends past the end of the file");
  b = c.file;
  put_u32(b, key.start + 4, 0xFFFFFFFF);
  EXPECT_BAD_FILE(b, "", "tensor name length 4294967295 exceeds the limit");
  // Truncated inside the fixed part and the dimensions.
  EXPECT_BAD_FILE(bytes(c.file.begin(), c.file.begin() + static_cast<std::ptrdiff_t>(key.start + 7)), "",
                  "truncated record header (7 bytes left");
  EXPECT_BAD_FILE(bytes(c.file.begin(), c.file.begin() + static_cast<std::ptrdiff_t>(key.dims + 5)), "",
                  "the 2 dimensions extend past the end of the file");
}

BOOST_AUTO_TEST_CASE(bad_names) {
  for (const std::string& bad :
       {std::string("emb weight"), std::string("blocks.0.att.key\x01"), std::string("blocks.0.att.k\xc3\xa9y"),
        std::string("blocks.x.att.key.weight"), std::string("blocks.01.att.key.weight"), std::string("blocks.0."),
        std::string("blocks.0"), std::string("blocks..att"), std::string(1, '\0')}) {
    auto r = base_records();
    r[2].name = bad;
    EXPECT_BAD_FILE(write_file({}, r).file, "", "record 2", "is not valid");
  }
  auto r = base_records();
  r[3].name = r[2].name;
  EXPECT_BAD_FILE(write_file({}, r).file, "blocks.0.att.key.weight", "duplicate tensor name");
  r = base_records();
  r[2].name = "emb.weight";
  EXPECT_BAD_FILE(write_file({}, r).file, "emb.weight", "duplicate tensor name");
  // A name only as long as the limit is fine; one byte more is not.
  r = base_records();
  r[2].name = "x" + std::string(1023, 'y');
  BOOST_CHECK_NO_THROW(parse(write_file({}, r).file));
  r[2].name += "z";
  EXPECT_BAD_FILE(write_file({}, r).file, "", "tensor name length 1025 exceeds the limit of 1024 bytes");
}

BOOST_AUTO_TEST_CASE(bad_transformed_tensors) {
  // v7: the concatenated mix vectors must be (6, 1, C); splitting must not collide with a stored x_r.
  auto v7 = [](record x) {
    return write_file({}, {emb_record(), f32_record("blocks.0.att.k_k", {1, 1, 32}, iota_values(32)), x}).file;
  };
  EXPECT_BAD_FILE(v7(f32_record("blocks.0.att.x_rwkvag", {5, 1, 32}, iota_values(160))), "blocks.0.att.x_rwkvag",
                  "is not (6, 1, C)");
  EXPECT_BAD_FILE(v7(f32_record("blocks.0.att.x_rwkvag", {192}, iota_values(192))), "blocks.0.att.x_rwkvag",
                  "is not (6, 1, C)");
  {
    const auto f = write_file({}, {emb_record(), f32_record("blocks.0.att.k_k", {1, 1, 32}, iota_values(32)),
                                   f32_record("blocks.0.att.x_r", {1, 1, 32}, iota_values(32)),
                                   f32_record("blocks.0.att.x_rwkvag", {6, 1, 32}, iota_values(192))});
    EXPECT_BAD_FILE(f.file, "blocks.0.att.x_r", "duplicate tensor name (after splitting att.x_rwkvag)");
  }
  EXPECT_BAD_FILE(v7(f32_record("blocks.0.att.w1", {2, 4, 4}, iota_values(32))), "blocks.0.att.w1", "is not 2-D");
  // v6: LoRA matrices have the stored rank the converter writes.
  auto v6 = [](record x) {
    return write_file({}, {emb_record(), f32_record("blocks.0.att.time_maa_x", {32}, iota_values(32)), x}).file;
  };
  EXPECT_BAD_FILE(v6(f32_record("blocks.0.att.time_maa_w1", {2, 5, 32}, iota_values(320))), "blocks.0.att.time_maa_w1",
                  "is not 2-D");
  EXPECT_BAD_FILE(v6(f32_record("blocks.0.att.time_maa_w2", {5, 32}, iota_values(160))), "blocks.0.att.time_maa_w2",
                  "is not 3-D");
  EXPECT_BAD_FILE(v6(f32_record("blocks.0.att.time_decay", {4, 8}, iota_values(32))), "blocks.0.att.time_decay",
                  "is not (H, N, 1) or (C)");
  // Converters before the v7 update stored the v6 decay squeezed, (C): accepted.
  BOOST_TEST(
      parse(v6(f32_record("blocks.0.att.time_decay", {32}, iota_values(32)))).at("blocks.0.att.time_decay").shape ==
          (std::vector<std::int64_t>{1, 1, 32}),
      tt::per_element());
  EXPECT_BAD_FILE(v6(f32_record("blocks.0.att.time_faaaa", {4, 8, 2}, iota_values(64))), "blocks.0.att.time_faaaa",
                  "is not (H, N, 1)");
  // Values the converter cannot have written.
  auto v4 = [](std::vector<float> d) {
    d.resize(32, -1.0f);
    return write_file({}, {emb_record(), f32_record("blocks.0.att.time_decay", {32}, d)}).file;
  };
  EXPECT_BAD_FILE(v4({-1.0f, 0.5f}), "blocks.0.att.time_decay", "value 0.5", "element 1", "cannot be -exp(time_decay)");
  EXPECT_BAD_FILE(v4({std::numeric_limits<float>::quiet_NaN()}), "blocks.0.att.time_decay", "element 0");
  EXPECT_BAD_FILE(v4({-std::numeric_limits<float>::infinity()}), "blocks.0.att.time_decay", "element 0");
  auto v5 = [](record x) {
    return write_file({}, {emb_record(), f32_record("blocks.0.att.ln_x.weight", {32}, iota_values(32)), x}).file;
  };
  EXPECT_BAD_FILE(v5(f32_record("blocks.0.att.time_decay", {2, 1, 1}, {0.5f, 1.5f})), "blocks.0.att.time_decay",
                  "element 1", "cannot be exp(-exp(time_decay))");
  EXPECT_BAD_FILE(v5(f32_record("blocks.0.att.time_decay", {2, 1, 1}, {-0.5f, 0.5f})), "blocks.0.att.time_decay",
                  "element 0");
  EXPECT_BAD_FILE(v5(f32_record("blocks.0.att.time_first", {2, 1, 1}, {1.0f, -1.0f})), "blocks.0.att.time_first",
                  "element 1", "cannot be exp(time_first)");
  EXPECT_BAD_FILE(v5(f32_record("blocks.0.att.time_first", {2, 1, 1}, {std::numeric_limits<float>::infinity(), 1.0f})),
                  "blocks.0.att.time_first", "element 0");
}

// open_checkpoint recognises the format by content and reports the reader's errors with the file name.
BOOST_AUTO_TEST_CASE(open_checkpoint_reports_errors) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto path = dir / ("rwkvcpp_test_" + std::to_string(std::random_device{}()) + ".dat");
  auto b = base_file().file;
  put_u32(b, 4, 7);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  try {
    (void)io::open_checkpoint(path);
    BOOST_ERROR("expected rwkv::error");
  } catch (const rwkv::error& e) {
    BOOST_TEST(e.file() == path.string());
    BOOST_TEST(std::string(e.what()).find("unsupported rwkv.cpp file version 7") != std::string::npos);
  }
  std::filesystem::remove(path);
}

#pragma once
// Reader for rwkv.cpp model files (`.bin`, magic "ggmf", file version 100 or 101). Format: spec/formats.md (c).
//
// The file is a 24-byte header (magic, version, n_vocab, n_embed, n_layer, data type) followed by records until
// the end of the file: u32 n_dims, u32 name length, u32 data type, the dimensions innermost first (the reverse of
// PyTorch's order), the name, the data. Every count, length and size is checked against the file size before it
// is used (hostile input gives an rwkv::error naming the file, the tensor when known, and the problem; never an
// out-of-bounds read or an allocation larger than a small multiple of the file).
//
// rwkv.cpp's converter (python/convert_pytorch_to_ggml.py) stores some tensors transformed. The reader undoes
// every transform, so that tensors() holds what the official checkpoint holds (official names, shapes and
// semantics) and every model class loads it unchanged:
//
//   all versions  `.time_*` tensors were squeezed: mix vectors (C) → (1, 1, C)
//   4             att.time_decay stored as −exp(d)                → d = log(−x)
//   5             att.time_decay stored as exp(−exp(d)), (H,1,1) / (H,1) (per head) or (H,N,1) (per channel)
//                                                                 → d = log(−log(x)), [H] or [H, N]
//                 att.time_first stored as exp(u), (H,1,1)        → u = log(x), [H]
//                 att.time_faaaa stored (H,N,1)                   → [H, N] (raw)
//   6             time_maa_w1, time_decay_w1, time_decay_w2 stored transposed → transposed back
//                 time_maa_w2 stored (5, C, D)                    → [5, D, C]
//                 time_decay stored (H, N, 1) (older converters: (C)) → [1, 1, C]; time_faaaa (H,N,1) → [H, N]
//   7             att.x_rwkvag (6, 1, C)                          → att.x_r, x_w, x_k, x_v, x_a, x_g, each (1,1,C)
//                 att.w1, w2, a1, a2, v1, v2, g1, g2 stored transposed → official (in, out)
//
// The inverse value transforms are computed in double and rounded once to float32 (this reproduces the official
// values exactly whenever the forward transform did not lose them to float32 rounding). Values the forward
// transform cannot produce (e.g. a positive "−exp(d)") are rejected. Where the forward transform saturated in
// float32 (−exp(d) = −0, exp(−exp(d)) = 1 or 0, exp(u) = 0) the original is lost; the reader restores a value
// that the official code maps to the same float32 decay/bonus (e.g. d = −104.3 with exp(d) = 0).
//
// Data: FP32 and FP16 tensors that need no transform (or only a reshape, or a split) are zero-copy views into the
// file (possibly unaligned; weight_reader copies those). Quantized tensors (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the
// version-101 block layouts) are dequantized to F32 into memory owned by the reader, as are transposed or
// value-transformed tensors; owner() keeps all of it (and the mapping) alive. Quantized tensors in version-100
// files use an older incompatible layout and are rejected, as are the removed types Q4_1_O, Q4_2, Q4_3.
//
// rwkv.cpp numbers the RWKV-5 variants differently ("5.1" = official 5.0 without gate, "5.2" = any v5 with a
// gate); version() uses the official numbering (rwkv::detect_version on the restored tensors).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/detect.hpp"
#include "rwkv/io/mapped_file.hpp"

namespace rwkv::io {

// Data type ids of rwkv.cpp files (header and records).
enum class rwkvcpp_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q4_1_o = 4,  // removed from rwkv.cpp
  q4_2 = 5,    // removed
  q4_3 = 6,    // removed
  q5_0 = 7,
  q5_1 = 8,
  q8_0 = 9,
};

namespace rwkvcpp_detail {

inline constexpr std::uint32_t magic = 0x67676d66;  // "ggmf", on disk 66 6D 67 67
inline constexpr std::size_t header_bytes = 24;
inline constexpr std::size_t block_elements = 32;                      // elements per quantized block (along ne0)
inline constexpr std::uint64_t max_elements = std::uint64_t{1} << 48;  // per tensor
inline constexpr std::size_t max_name_bytes = 1024;

inline std::uint32_t u32(const std::byte* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

inline float half_at(const std::byte* p) {
  return to_float(f16{static_cast<std::uint16_t>(static_cast<unsigned>(p[0]) | static_cast<unsigned>(p[1]) << 8)});
}

inline const char* type_name(std::uint32_t t) {
  static const char* names[] = {"FP32", "FP16", "Q4_0", "Q4_1", "Q4_1_O", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0"};
  return t < 10 ? names[t] : "unknown";
}
inline bool is_known(std::uint32_t t) { return t <= 9; }
inline bool is_removed(std::uint32_t t) { return t >= 4 && t <= 6; }
inline bool is_quantized(std::uint32_t t) { return (t >= 2 && t <= 3) || (t >= 7 && t <= 9); }

// Bytes of one block of 32 elements (quantized types only).
inline std::size_t block_bytes(std::uint32_t t) {
  switch (static_cast<rwkvcpp_type>(t)) {
    case rwkvcpp_type::q4_0:
      return 18;
    case rwkvcpp_type::q4_1:
      return 20;
    case rwkvcpp_type::q5_0:
      return 22;
    case rwkvcpp_type::q5_1:
      return 24;
    case rwkvcpp_type::q8_0:
      return 34;
    default:
      return 0;
  }
}

// Dequantizes `blocks` consecutive blocks of a quantized type into 32·blocks floats (version-101 layouts,
// spec/formats.md (c): d and m are fp16, qh a little-endian u32).
inline void dequantize(std::uint32_t type, const std::byte* src, std::size_t blocks, float* out) {
  const auto byte = [](const std::byte* p, std::size_t i) { return static_cast<unsigned>(p[i]); };
  const std::size_t bb = block_bytes(type);
  for (std::size_t b = 0; b < blocks; ++b, src += bb, out += block_elements) {
    switch (static_cast<rwkvcpp_type>(type)) {
      case rwkvcpp_type::q4_0: {
        const float d = half_at(src);
        for (std::size_t j = 0; j < 16; ++j) {
          const unsigned q = byte(src + 2, j);
          out[j] = static_cast<float>(static_cast<int>(q & 0xF) - 8) * d;
          out[j + 16] = static_cast<float>(static_cast<int>(q >> 4) - 8) * d;
        }
        break;
      }
      case rwkvcpp_type::q4_1: {
        const float d = half_at(src), m = half_at(src + 2);
        for (std::size_t j = 0; j < 16; ++j) {
          const unsigned q = byte(src + 4, j);
          out[j] = static_cast<float>(q & 0xF) * d + m;
          out[j + 16] = static_cast<float>(q >> 4) * d + m;
        }
        break;
      }
      case rwkvcpp_type::q5_0:
      case rwkvcpp_type::q5_1: {
        const bool with_min = static_cast<rwkvcpp_type>(type) == rwkvcpp_type::q5_1;
        const float d = half_at(src), m = with_min ? half_at(src + 2) : 0.0f;
        const std::byte* rest = src + (with_min ? 4 : 2);
        const std::uint32_t qh = u32(rest);
        const std::byte* qs = rest + 4;
        for (std::size_t j = 0; j < 16; ++j) {
          const unsigned q = byte(qs, j);
          const int q0 = static_cast<int>((q & 0xF) | (((qh >> j) & 1u) << 4));
          const int q1 = static_cast<int>((q >> 4) | (((qh >> (j + 16)) & 1u) << 4));
          if (with_min) {
            out[j] = static_cast<float>(q0) * d + m;
            out[j + 16] = static_cast<float>(q1) * d + m;
          } else {
            out[j] = static_cast<float>(q0 - 16) * d;
            out[j + 16] = static_cast<float>(q1 - 16) * d;
          }
        }
        break;
      }
      case rwkvcpp_type::q8_0: {
        const float d = half_at(src);
        for (std::size_t j = 0; j < 32; ++j)
          out[j] = static_cast<float>(static_cast<std::int8_t>(static_cast<std::uint8_t>(src[2 + j]))) * d;
        break;
      }
      default:
        throw error(std::string("internal: dequantize called for non-quantized type ") + type_name(type));
    }
  }
}

// Text from the file, shortened and with non-printable bytes escaped, for error messages.
inline std::string printable(std::string_view s, std::size_t max_len = 80) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

inline std::string dims_string(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

inline std::string hex32(std::uint32_t v) {
  static const char* hex = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += hex[(v >> (4 * i)) & 15];
  return s;
}

// Stands for the log of a float32 that rounded to zero: exp(log_of_zero()) = exp(-104.28) is below half the
// smallest float32 subnormal, so it is 0 in float32 again.
inline double log_of_zero() { return std::log(static_cast<double>(std::numeric_limits<float>::denorm_min())) - 1.0; }

// Keeps the mapped file and the reader's own copies (dequantized or transformed tensors) alive.
struct rwkvcpp_owner {
  std::shared_ptr<const mapped_file> file;
  std::vector<std::vector<std::byte>> copies;
};

}  // namespace rwkvcpp_detail

// The file header as stored.
struct rwkvcpp_header {
  std::uint32_t magic = 0, version = 0, n_vocab = 0, n_embed = 0, n_layer = 0, data_type = 0;
};

// A record as stored in the file (before the reader undoes the converter's transforms).
struct rwkvcpp_record {
  std::string name;
  std::uint32_t data_type = 0;      // rwkvcpp_type id
  std::vector<std::int64_t> shape;  // PyTorch order (the file's dimensions reversed), as the converter wrote it
  std::uint64_t offset = 0;         // absolute file offset of the data
  std::uint64_t nbytes = 0;
  std::uint64_t numel = 0;
};

class rwkvcpp_file {
 public:
  static rwkvcpp_file open(const std::filesystem::path& path) { return rwkvcpp_file(mapped_file::open(path)); }

  static rwkvcpp_file from_bytes(std::span<const std::byte> bytes, std::string name = "<memory>") {
    return rwkvcpp_file(mapped_file::from_bytes(bytes, std::move(name)));
  }

  explicit rwkvcpp_file(std::shared_ptr<const mapped_file> file)
      : owner_(std::make_shared<rwkvcpp_detail::rwkvcpp_owner>()) {
    owner_->file = std::move(file);
    parse();
  }

  const std::string& path() const noexcept { return owner_->file->name(); }
  // The official tensors (names, shapes, semantics) in file order; att.x_rwkvag becomes six tensors in its place.
  const std::vector<tensor_view>& tensors() const noexcept { return tensors_; }
  // Keeps every tensor's memory alive (the mapped file and the reader's copies).
  std::shared_ptr<const void> owner() const noexcept { return owner_; }
  const rwkvcpp_header& header() const noexcept { return header_; }
  // The records as stored, in file order.
  const std::vector<rwkvcpp_record>& records() const noexcept { return records_; }
  // The RWKV version in the official numbering (4, 5.0, 5.1, 5.2, 6, 7).
  arch_version version() const noexcept { return version_; }
  // rwkv.cpp's own name of the architecture: "4", "5.1" (v5 without gate), "5.2" (v5 with gate), "6", "7".
  const char* rwkvcpp_arch_name() const noexcept {
    switch (family_) {
      case 4:
        return "4";
      case 5:
        return gate_ ? "5.2" : "5.1";
      case 6:
        return "6";
      default:
        return "7";
    }
  }
  // The whole file, for checking which tensors are zero-copy views.
  std::span<const std::byte> file_bytes() const noexcept { return owner_->file->bytes(); }

  const tensor_view* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }

  const tensor_view& at(std::string_view name) const {
    if (auto* t = find(name)) return *t;
    throw error("tensor not found", path(), std::string(name));
  }

 private:
  // A record's data as F32/F16 bytes: a view into the file, or dequantized F32 owned by the reader.
  struct source {
    dtype type = dtype::f32;
    const std::byte* data = nullptr;
    std::size_t nbytes = 0;
    std::size_t numel = 0;
  };

  [[noreturn]] void fail(const std::string& problem, const std::string& tensor = {}) const {
    throw error(problem, path(), tensor);
  }

  void parse() {
    using namespace rwkvcpp_detail;
    const auto bytes = owner_->file->bytes();
    const std::uint64_t n = bytes.size();
    const std::byte* p = bytes.data();

    if (n < header_bytes)
      fail("file is " + std::to_string(n) + " bytes, too short for the 24-byte rwkv.cpp header (truncated?)");
    header_ = {u32(p), u32(p + 4), u32(p + 8), u32(p + 12), u32(p + 16), u32(p + 20)};
    if (header_.magic != magic)
      fail("not an rwkv.cpp model file: magic " + hex32(header_.magic) + ", expected " + hex32(magic) + " ('ggmf')");
    if (header_.version != 100 && header_.version != 101)
      fail("unsupported rwkv.cpp file version " + std::to_string(header_.version) + " (expected 100 or 101)");
    check_type(header_.data_type, {}, true);

    std::uint64_t pos = header_bytes;
    std::map<std::string, std::size_t, std::less<>> stored_index;
    while (pos < n) {
      const std::string where = "record " + std::to_string(records_.size()) + " (offset " + std::to_string(pos) + ")";
      if (n - pos < 12)
        fail(where + ": truncated record header (" + std::to_string(n - pos) + " bytes left, at least 12 needed)");
      const std::uint32_t n_dims = u32(p + pos), name_len = u32(p + pos + 4), type = u32(p + pos + 8);
      if (n_dims < 1 || n_dims > 3) fail(where + ": dimension count " + std::to_string(n_dims) + " is not 1, 2 or 3");
      const std::uint64_t dims_at = pos + 12, name_at = dims_at + 4 * std::uint64_t{n_dims};
      if (name_at > n)
        fail(where + ": the " + std::to_string(n_dims) + " dimensions extend past the end of the file (" +
             std::to_string(n) + " bytes; truncated?)");
      if (name_len == 0) fail(where + ": empty tensor name");
      if (name_len > max_name_bytes)
        fail(where + ": tensor name length " + std::to_string(name_len) + " exceeds the limit of " +
             std::to_string(max_name_bytes) + " bytes");
      if (name_len > n - name_at)
        fail(where + ": tensor name of " + std::to_string(name_len) + " bytes at offset " + std::to_string(name_at) +
             " extends past the end of the file (" + std::to_string(n) + " bytes; truncated?)");
      rwkvcpp_record r;
      r.name.assign(reinterpret_cast<const char*>(p + name_at), name_len);
      check_name(r.name, where);
      const std::string& name = r.name;

      check_type(type, name);
      r.data_type = type;
      std::vector<std::int64_t> ne(n_dims);  // file order: ne[0] innermost
      std::uint64_t numel = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) ne[d] = u32(p + dims_at + 4 * d);
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto v = static_cast<std::uint64_t>(ne[d]);
        if (v == 0) fail("dimension " + std::to_string(d) + " of the stored shape is zero", name);
        if (v > max_elements / numel)
          fail("stored dimensions (innermost first) " + dims_string(ne) + " overflow the element count limit 2^48",
               name);
        numel *= v;
      }
      r.shape.assign(ne.rbegin(), ne.rend());
      r.numel = numel;
      if (is_quantized(type)) {
        if (ne[0] % static_cast<std::int64_t>(block_elements) != 0)
          fail(std::string(type_name(type)) + " tensor's innermost dimension " + std::to_string(ne[0]) +
                   " is not a multiple of the 32-element block",
               name);
        r.nbytes = numel / block_elements * block_bytes(type);
      } else {
        r.nbytes = numel * (type == 0 ? 4 : 2);
      }
      r.offset = name_at + name_len;
      if (r.nbytes > n - r.offset)
        fail(std::string(type_name(type)) + " data of shape " + dims_string(r.shape) + " (" + std::to_string(r.nbytes) +
                 " bytes at offset " + std::to_string(r.offset) + ") extends past the end of the file (" +
                 std::to_string(n) + " bytes; truncated?)",
             name);
      if (!stored_index.emplace(name, records_.size()).second) fail("duplicate tensor name", name);
      pos = r.offset + r.nbytes;
      records_.push_back(std::move(r));
    }

    detect_family(stored_index);
    for (const auto& r : records_) restore(r, stored_index);
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      if (!index_.emplace(tensors_[i].name, i).second)
        fail("duplicate tensor name (after splitting att.x_rwkvag)", tensors_[i].name);
    check_header_against_tensors();
    version_ = detect_version(tensors_, path());
  }

  void check_type(std::uint32_t type, const std::string& tensor, bool in_header = false) const {
    using namespace rwkvcpp_detail;
    const std::string what = in_header ? "the header's data type " : "data type ";
    if (!is_known(type))
      fail(what + std::to_string(type) + " is unknown (known: 0 FP32, 1 FP16, 2 Q4_0, 3 Q4_1, 7 Q5_0, 8 Q5_1, 9 Q8_0)",
           tensor);
    if (is_removed(type))
      fail(what + std::to_string(type) + " (" + type_name(type) +
               ") was removed from rwkv.cpp and cannot be read; re-quantize the model",
           tensor);
    if (is_quantized(type) && header_.version == 100)
      fail(what + std::to_string(type) + " (" + type_name(type) +
               ") is quantized, but version-100 files use an older, incompatible block layout; re-quantize the "
               "model with a current rwkv.cpp",
           tensor);
  }

  // Official names are printable ASCII (letters, digits, '.', '_'); anything else is refused here so that error
  // messages and lookups never deal with control bytes or invalid UTF-8.
  void check_name(const std::string& name, const std::string& where) const {
    for (char ch : name) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c >= 0x7f)
        fail(where + ": tensor name '" + rwkvcpp_detail::printable(name) +
             "' is not valid (only printable ASCII without spaces is allowed)");
    }
    if (name.starts_with("blocks.")) {
      const auto dot = name.find('.', 7);
      const std::string_view index = std::string_view(name).substr(7, dot == std::string::npos ? 0 : dot - 7);
      bool digits = !index.empty() && index.size() <= 9 && (index.size() == 1 || index[0] != '0');
      for (char c : index) digits = digits && c >= '0' && c <= '9';
      if (!digits || dot + 1 >= name.size())
        fail(where + ": tensor name '" + rwkvcpp_detail::printable(name) +
             "' is not valid (expected blocks.<layer>.<name>)");
    }
  }

  // The converter's version tests, on the stored names: k_k (x_rwkvag, r_k) → 7, time_maa → 6, ln_x → 5, else 4.
  template <class Index>
  void detect_family(const Index& stored) {
    bool v7 = false, v6 = false, v5 = false;
    for (const auto& [name, i] : stored) {
      const std::string_view s = name;
      v7 |= s.find("att.k_k") != s.npos || s.find("att.x_rwkvag") != s.npos || s.find("att.r_k") != s.npos;
      v6 |= s.find("time_maa") != s.npos;
      v5 |= s.find("att.ln_x") != s.npos;
      gate_ |= s.find("att.gate.weight") != s.npos;
    }
    family_ = v7 ? 7 : v6 ? 6 : v5 ? 5 : 4;
  }

  // Splits "blocks.<i>.<local>" into prefix "blocks.<i>." and local (checked by check_name); false otherwise.
  static bool split_block_name(const std::string& name, std::string& prefix, std::string& local) {
    if (!name.starts_with("blocks.")) return false;
    const auto dot = name.find('.', 7);
    prefix = name.substr(0, dot + 1);
    local = name.substr(dot + 1);
    return true;
  }

  source load(const rwkvcpp_record& r) {
    using namespace rwkvcpp_detail;
    const std::byte* data = owner_->file->data() + r.offset;
    const auto numel = static_cast<std::size_t>(r.numel);
    if (r.data_type == 0) return {dtype::f32, data, static_cast<std::size_t>(r.nbytes), numel};
    if (r.data_type == 1) return {dtype::f16, data, static_cast<std::size_t>(r.nbytes), numel};
    // Quantized: nbytes was checked against the file, so this allocation is at most 128/18 times the record.
    auto& out = owner_->copies.emplace_back(numel * sizeof(float));
    const std::size_t bb = block_bytes(r.data_type);
    float block[block_elements];
    for (std::size_t b = 0; b < numel / block_elements; ++b) {
      dequantize(r.data_type, data + b * bb, 1, block);
      std::memcpy(out.data() + b * sizeof block, block, sizeof block);
    }
    return {dtype::f32, out.data(), out.size(), numel};
  }

  void emit(std::string name, const source& s, std::vector<std::int64_t> shape, std::size_t first = 0,
            std::size_t count = std::numeric_limits<std::size_t>::max()) {
    const std::size_t item = dtype_size(s.type);
    if (count == std::numeric_limits<std::size_t>::max()) count = s.numel;
    tensor_view t;
    t.name = std::move(name);
    t.type = s.type;
    t.shape = std::move(shape);
    t.data = s.data + first * item;
    t.nbytes = count * item;
    tensors_.push_back(std::move(t));
  }

  // batch × (rows × cols) → batch × (cols × rows), any element size; owned by the reader.
  source transposed(const source& s, std::size_t batch, std::size_t rows, std::size_t cols) {
    const std::size_t item = dtype_size(s.type);
    auto& out = owner_->copies.emplace_back(s.nbytes);
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c)
          std::memcpy(out.data() + ((b * cols + c) * rows + r) * item, s.data + ((b * rows + r) * cols + c) * item,
                      item);
    return {s.type, out.data(), out.size(), s.numel};
  }

  // Applies an inverse value transform element-wise (in double, rounded once to F32); owned by the reader.
  // `inverse` returns false for a value the converter cannot have written.
  template <class F>
  source mapped(const source& s, const std::string& name, const char* stored_as, F inverse) {
    auto& out = owner_->copies.emplace_back(s.numel * sizeof(float));
    tensor_view v;
    v.name = name;
    v.type = s.type;
    v.data = s.data;
    for (std::size_t i = 0; i < s.numel; ++i) {
      const double x = load_as_float(v, i);
      double y = 0;
      if (!std::isfinite(x) || !inverse(x, y)) {
        char shown[32];
        std::snprintf(shown, sizeof shown, "%.9g", x);
        fail(std::string("value ") + shown + " at element " + std::to_string(i) + " cannot be " + stored_as +
                 " as rwkv.cpp's converter stores it",
             name);
      }
      const auto f = static_cast<float>(y);
      std::memcpy(out.data() + i * sizeof(float), &f, sizeof f);
    }
    return {dtype::f32, out.data(), out.size(), s.numel};
  }

  // Official shape of a per-head/per-channel v5/v6 tensor stored with a trailing unit dimension:
  // (H, N, 1) → [H, N]; (X, 1) (the converter's squeeze removed H = 1) → [1, X].
  std::vector<std::int64_t> heads_shape(const rwkvcpp_record& r) const {
    const auto& s = r.shape;
    if (s.size() == 3 && s[2] == 1) return {s[0], s[1]};
    if (s.size() == 2 && s[1] == 1) return {1, s[0]};
    fail("stored shape " + rwkvcpp_detail::dims_string(s) + " is not (H, N, 1) as the converter writes it", r.name);
  }

  void expect_dims(const rwkvcpp_record& r, std::size_t n, const char* what) const {
    if (r.shape.size() != n)
      fail("stored shape " + rwkvcpp_detail::dims_string(r.shape) + " is not " + what + " as the converter writes it",
           r.name);
  }

  template <class Index>
  void restore(const rwkvcpp_record& r, const Index& stored) {
    using rwkvcpp_detail::log_of_zero;
    const source s = load(r);
    const auto numel = static_cast<std::int64_t>(r.numel);
    std::string prefix, local;
    if (!split_block_name(r.name, prefix, local)) return emit(r.name, s, r.shape);
    const bool one_d = r.shape.size() == 1;
    const auto has = [&](const std::string& local_name) { return stored.find(prefix + local_name) != stored.end(); };
    const auto is_mix = [&](std::string_view l) {
      for (const char* m : {"att.time_mix_k", "att.time_mix_v", "att.time_mix_r", "att.time_mix_g", "ffn.time_mix_k",
                            "ffn.time_mix_r", "att.time_maa_x", "att.time_maa_w", "att.time_maa_k", "att.time_maa_v",
                            "att.time_maa_r", "att.time_maa_g", "ffn.time_maa_k", "ffn.time_maa_r"})
        if (l == m) return true;
      return false;
    };
    // A state-tuned initial state (H, N, N) loses its head dimension to the squeeze when H = 1.
    if ((family_ == 5 || family_ == 6) && local == "att.time_state" && r.shape.size() == 2)
      return emit(r.name, s, {1, r.shape[0], r.shape[1]});
    if (family_ <= 6 && is_mix(local) && one_d) return emit(r.name, s, {1, 1, numel});

    switch (family_) {
      case 4:
        if (local == "att.time_decay") {  // stored −exp(d)
          const auto inv = [](double x, double& d) {
            if (x > 0) return false;
            d = x == 0 ? log_of_zero() : std::log(-x);
            return true;
          };
          return emit(r.name, mapped(s, r.name, "-exp(time_decay)", inv), {numel});
        }
        break;
      case 5:
        if (local == "att.time_decay") {  // stored exp(−exp(d))
          const auto inv = [](double x, double& d) {
            if (x < 0 || x > 1) return false;
            // x = 1: exp(d) rounded to 0; x = 0: exp(−exp(d)) underflowed (exp(d) > 104), e.g. d = 5.
            d = x == 1 ? log_of_zero() : x == 0 ? 5.0 : std::log(-std::log(x));
            return true;
          };
          // Per channel (a layer with time_faaaa, or stored (H, N, 1) with N > 1) → [H, N]; per head → [H].
          const bool per_channel = has("att.time_faaaa") || (r.shape.size() == 3 && r.shape[1] > 1);
          auto shape = per_channel ? heads_shape(r) : std::vector<std::int64_t>{numel};
          return emit(r.name, mapped(s, r.name, "exp(-exp(time_decay))", inv), std::move(shape));
        }
        if (local == "att.time_first") {  // stored exp(u)
          const auto inv = [](double x, double& u) {
            if (x < 0) return false;
            u = x == 0 ? log_of_zero() : std::log(x);
            return true;
          };
          return emit(r.name, mapped(s, r.name, "exp(time_first)", inv), {numel});
        }
        if (local == "att.time_faaaa") return emit(r.name, s, heads_shape(r));
        break;
      case 6:
        if (local == "att.time_maa_w1" || local == "att.time_decay_w1" || local == "att.time_decay_w2") {
          expect_dims(r, 2, "2-D");
          const auto rows = static_cast<std::size_t>(r.shape[0]), cols = static_cast<std::size_t>(r.shape[1]);
          return emit(r.name, transposed(s, 1, rows, cols), {r.shape[1], r.shape[0]});
        }
        if (local == "att.time_maa_w2") {  // stored (5, C, D)
          expect_dims(r, 3, "3-D (5, C, D)");
          const auto rows = static_cast<std::size_t>(r.shape[1]), cols = static_cast<std::size_t>(r.shape[2]);
          return emit(r.name, transposed(s, static_cast<std::size_t>(r.shape[0]), rows, cols),
                      {r.shape[0], r.shape[2], r.shape[1]});
        }
        if (local == "att.time_decay") {  // raw; (H, N, 1), or (C) squeezed from converters before the reshape
          if (!one_d && !(r.shape.size() == 3 && r.shape[2] == 1))
            fail("stored shape " + rwkvcpp_detail::dims_string(r.shape) +
                     " is not (H, N, 1) or (C) as the converter writes it",
                 r.name);
          return emit(r.name, s, {1, 1, numel});
        }
        if (local == "att.time_faaaa") return emit(r.name, s, heads_shape(r));
        break;
      default:                          // 7
        if (local == "att.x_rwkvag") {  // (6, 1, C): x_r, x_w, x_k, x_v, x_a, x_g in checkpoint order
          if (r.shape.size() != 3 || r.shape[0] != 6 || r.shape[1] != 1)
            fail("stored shape " + rwkvcpp_detail::dims_string(r.shape) +
                     " is not (6, 1, C) (x_r, x_w, x_k, x_v, x_a, x_g concatenated)",
                 r.name);
          const auto C = static_cast<std::size_t>(r.shape[2]);
          std::size_t i = 0;
          for (const char* part : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"})
            emit(prefix + "att." + part, s, {1, 1, r.shape[2]}, C * i++, C);
          return;
        }
        for (const char* lora : {"att.w1", "att.w2", "att.a1", "att.a2", "att.v1", "att.v2", "att.g1", "att.g2"})
          if (local == lora) {
            expect_dims(r, 2, "2-D");
            const auto rows = static_cast<std::size_t>(r.shape[0]), cols = static_cast<std::size_t>(r.shape[1]);
            return emit(r.name, transposed(s, 1, rows, cols), {r.shape[1], r.shape[0]});
          }
        break;
    }
    emit(r.name, s, r.shape);
  }

  // The header's sizes must describe the tensors: emb.weight is [n_vocab, n_embed], layers are < n_layer.
  void check_header_against_tensors() const {
    const auto* emb = find("emb.weight");
    if (!emb) fail("no 'emb.weight' tensor: not an RWKV model");
    const std::vector<std::int64_t> want{header_.n_vocab, header_.n_embed};
    if (emb->shape != want)
      fail("shape " + shape_string(emb->shape) + " does not match the header's n_vocab " +
               std::to_string(header_.n_vocab) + " and n_embed " + std::to_string(header_.n_embed),
           "emb.weight");
    for (const auto& t : tensors_) {
      std::string prefix, local;
      if (!split_block_name(t.name, prefix, local)) continue;
      const auto layer = std::stoull(prefix.substr(7, prefix.size() - 8));
      if (layer >= header_.n_layer)
        fail("layer " + std::to_string(layer) + " is outside the header's n_layer " + std::to_string(header_.n_layer),
             t.name);
    }
  }

  std::shared_ptr<rwkvcpp_detail::rwkvcpp_owner> owner_;
  rwkvcpp_header header_;
  std::vector<rwkvcpp_record> records_;
  std::vector<tensor_view> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  int family_ = 4;
  bool gate_ = false;
  arch_version version_ = arch_version::v4;
};

}  // namespace rwkv::io

#pragma once
// safetensors reader (memory-mapped, zero-copy, strictly validated) and writer. Format: spec/formats.md (a).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/mapped_file.hpp"

namespace rwkv::io {

namespace detail {

inline std::optional<dtype> parse_safetensors_dtype(std::string_view s) {
  static const std::pair<std::string_view, dtype> table[] = {
      {"F32", dtype::f32}, {"F16", dtype::f16}, {"BF16", dtype::bf16},   {"F64", dtype::f64}, {"I8", dtype::i8},
      {"U8", dtype::u8},   {"I16", dtype::i16}, {"U16", dtype::u16},     {"I32", dtype::i32}, {"U32", dtype::u32},
      {"I64", dtype::i64}, {"U64", dtype::u64}, {"BOOL", dtype::boolean}};
  for (auto& [name, d] : table)
    if (name == s) return d;
  return std::nullopt;
}

inline std::uint64_t read_u64_le(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(p[i]);
  return v;
}

}  // namespace detail

class safetensors_file {
 public:
  static constexpr std::uint64_t max_header_bytes = 100'000'000;  // the reference reader's bound

  static safetensors_file open(const std::filesystem::path& path) { return safetensors_file(mapped_file::open(path)); }

  static safetensors_file from_bytes(std::span<const std::byte> bytes, std::string name = "<memory>") {
    return safetensors_file(mapped_file::from_bytes(bytes, std::move(name)));
  }

  explicit safetensors_file(std::shared_ptr<const mapped_file> file) : file_(std::move(file)) { parse(); }

  const std::string& path() const noexcept { return file_->name(); }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // Tensors in the order of their data offsets (which is file order for every writer we know).
  const std::vector<tensor_view>& tensors() const noexcept { return tensors_; }
  std::shared_ptr<const void> owner() const noexcept { return file_; }

  const tensor_view* find(std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }

  const tensor_view& at(std::string_view name) const {
    if (auto* t = find(name)) return *t;
    throw error("tensor not found", path(), std::string(name));
  }

 private:
  [[noreturn]] void fail(const std::string& problem, const std::string& tensor = {}) const {
    throw error(problem, path(), tensor);
  }

  void parse() {
    const auto bytes = file_->bytes();
    if (bytes.size() < 8)
      fail("truncated safetensors file: " + std::to_string(bytes.size()) +
           " bytes, need at least 8 for the header length");
    const std::uint64_t n = detail::read_u64_le(bytes.data());
    if (n > max_header_bytes) fail("safetensors header length " + std::to_string(n) + " exceeds the 100 MB limit");
    if (n > bytes.size() - 8)
      fail("truncated safetensors file: header length " + std::to_string(n) + " but only " +
           std::to_string(bytes.size() - 8) + " bytes follow");
    if (n < 2) fail("safetensors header too short to be a JSON object");
    const auto* hdr = reinterpret_cast<const char*>(bytes.data() + 8);
    if (hdr[0] != '{') fail("safetensors header does not start with '{' (not a safetensors file?)");
    // JSON never contains a raw NUL, and nlohmann's lexer would end the input there, ignoring what follows.
    if (const void* nul = std::memchr(hdr, 0, static_cast<std::size_t>(n)))
      fail("safetensors header is not valid JSON: NUL byte at offset " +
           std::to_string(static_cast<const char*>(nul) - hdr));

    // Duplicate tensor names would silently shadow each other: detect them while parsing.
    std::set<std::string> seen;
    std::string duplicate;
    nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
      if (depth == 1 && ev == nlohmann::json::parse_event_t::key && duplicate.empty()) {
        const auto& k = v.get_ref<const std::string&>();
        if (!seen.insert(k).second) duplicate = k;
      }
      return true;
    };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(hdr, hdr + n, on_event);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("safetensors header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) fail("duplicate tensor name in safetensors header", duplicate);
    if (!j.is_object()) fail("safetensors header is not a JSON object");

    const std::uint64_t buffer_begin = 8 + n;
    const std::uint64_t buffer_size = bytes.size() - buffer_begin;
    struct span_info {
      std::uint64_t begin, end;
      std::size_t index;
    };
    std::vector<span_info> spans;

    for (auto& [name, entry] : j.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("__metadata__ is not an object");
        for (auto& [k, v] : entry.items()) {
          if (!v.is_string()) fail("__metadata__ value for key '" + k + "' is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      if (!entry.is_object()) fail("header entry is not an object", name);
      auto dt = entry.find("dtype");
      auto sh = entry.find("shape");
      auto off = entry.find("data_offsets");
      if (dt == entry.end() || !dt->is_string()) fail("missing or non-string 'dtype'", name);
      if (sh == entry.end() || !sh->is_array()) fail("missing or non-array 'shape'", name);
      if (off == entry.end() || !off->is_array() || off->size() != 2) fail("'data_offsets' must be [begin, end]", name);
      auto type = detail::parse_safetensors_dtype(dt->get<std::string>());
      if (!type) fail("unknown dtype '" + dt->get<std::string>() + "'", name);

      tensor_view t;
      t.name = name;
      t.type = *type;
      std::uint64_t numel = 1;
      for (auto& d : *sh) {
        if (!d.is_number_unsigned()) fail("shape entries must be non-negative integers", name);
        const auto dim = d.get<std::uint64_t>();
        if (dim > (std::uint64_t{1} << 48) || (dim != 0 && numel > (std::uint64_t{1} << 48) / dim))
          fail("shape " + sh->dump() + " is too large", name);
        numel *= dim;
        t.shape.push_back(static_cast<std::int64_t>(dim));
      }
      for (auto& o : *off)
        if (!o.is_number_unsigned()) fail("data_offsets must be non-negative integers", name);
      const auto begin = (*off)[0].get<std::uint64_t>();
      const auto end = (*off)[1].get<std::uint64_t>();
      if (begin > end) fail("data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end), name);
      if (end > buffer_size)
        fail("data_offsets end " + std::to_string(end) + " is past the end of the data buffer (" +
                 std::to_string(buffer_size) + " bytes; file truncated?)",
             name);
      const std::uint64_t want = numel * dtype_size(t.type);
      if (end - begin != want)
        fail("data_offsets span " + std::to_string(end - begin) + " bytes but shape " + shape_string(t.shape) + " of " +
                 dtype_name(t.type) + " needs " + std::to_string(want),
             name);
      t.data = bytes.data() + buffer_begin + begin;
      t.nbytes = static_cast<std::size_t>(want);
      spans.push_back({begin, end, tensors_.size()});
      tensors_.push_back(std::move(t));
    }

    std::sort(spans.begin(), spans.end(),
              [](auto& a, auto& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
    std::uint64_t cursor = 0;
    for (auto& s : spans) {
      if (s.begin < cursor) fail("tensor data overlaps the previous tensor", tensors_[s.index].name);
      if (s.begin > cursor)
        fail("gap of " + std::to_string(s.begin - cursor) + " bytes before this tensor's data", tensors_[s.index].name);
      cursor = s.end;
    }
    if (cursor != buffer_size)
      fail(std::to_string(buffer_size - cursor) + " bytes of data after the last tensor (corrupt or not safetensors)");

    std::vector<tensor_view> ordered;
    ordered.reserve(spans.size());
    for (auto& s : spans) ordered.push_back(std::move(tensors_[s.index]));
    tensors_ = std::move(ordered);
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  }

  std::shared_ptr<const mapped_file> file_;
  std::map<std::string, std::string> metadata_;
  std::vector<tensor_view> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// A tensor to write: name, dtype, shape and its little-endian bytes.
struct tensor_to_write {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;

  template <class T>
  static tensor_to_write from(std::string name, std::vector<std::int64_t> shape, std::span<const T> values) {
    tensor_to_write t{std::move(name), dtype_of<T>(), std::move(shape), {}};
    t.bytes.resize(values.size_bytes());
    if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), values.size_bytes());  // memcpy(null, ..) is UB
    return t;
  }
};

// A tensor written from a callback (save_safetensors fills one at a time, in order): for files larger than memory.
struct tensor_source {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::function<void(std::span<std::byte>)> fill;  // writes exactly the tensor's bytes

  std::size_t bytes() const {
    std::size_t n = dtype_size(type);
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

namespace detail {

// The 8-byte header length and the JSON header (padded with spaces to a multiple of 8) of a safetensors file
// holding tensors of these names, dtypes, shapes and byte counts, in this order.
template <class Tensors, class Bytes>
std::string safetensors_prefix(const Tensors& tensors, const std::map<std::string, std::string>& metadata,
                               Bytes bytes_of) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    const std::size_t bytes = bytes_of(t);
    if (static_cast<std::size_t>(numel) * dtype_size(t.type) != bytes)
      throw error("byte count does not match shape " + shape_string(t.shape), {}, t.name);
    header[t.name] = {{"dtype", dtype_name(t.type)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  while ((8 + json.size()) % 8 != 0) json.push_back(' ');
  std::string out(8, '\0');
  const std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + json;
}

inline std::string safetensors_prefix(const std::vector<tensor_to_write>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  return safetensors_prefix(tensors, metadata, [](const tensor_to_write& t) { return t.bytes.size(); });
}

}  // namespace detail

// Serialises tensors (in the given order) into safetensors bytes; the header is padded to 8 bytes.
inline std::vector<std::byte> to_safetensors_bytes(const std::vector<tensor_to_write>& tensors,
                                                   const std::map<std::string, std::string>& metadata = {}) {
  const std::string prefix = detail::safetensors_prefix(tensors, metadata);
  std::size_t size = prefix.size();
  for (const auto& t : tensors) size += t.bytes.size();
  std::vector<std::byte> out(size);
  std::memcpy(out.data(), prefix.data(), prefix.size());
  std::size_t pos = prefix.size();
  for (const auto& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(out.data() + pos, t.bytes.data(), t.bytes.size());
    pos += t.bytes.size();
  }
  return out;
}

// Writes the file tensor by tensor (no second copy of the data in memory). `progress` (optional) is called after
// each tensor with the bytes written so far and the total.
inline void save_safetensors(const std::filesystem::path& path, const std::vector<tensor_to_write>& tensors,
                             const std::map<std::string, std::string>& metadata = {},
                             const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  const std::string prefix = detail::safetensors_prefix(tensors, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw error(std::string("cannot open for writing: ") + std::strerror(errno), path.string());
  out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  std::int64_t total = 0, done = 0;
  for (const auto& t : tensors) total += static_cast<std::int64_t>(t.bytes.size());
  for (const auto& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    done += static_cast<std::int64_t>(t.bytes.size());
    if (progress) progress(done, total);
  }
  out.flush();
  if (!out) throw error(std::string("write failed: ") + std::strerror(errno), path.string());
}

// Writes tensors produced by their callbacks, one at a time (memory: the largest tensor). `progress` as above.
inline void save_safetensors(const std::filesystem::path& path, const std::vector<tensor_source>& tensors,
                             const std::map<std::string, std::string>& metadata = {},
                             const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  const std::string prefix =
      detail::safetensors_prefix(tensors, metadata, [](const tensor_source& t) { return t.bytes(); });
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw error(std::string("cannot open for writing: ") + std::strerror(errno), path.string());
  out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  std::int64_t total = 0, done = 0;
  for (const auto& t : tensors) total += static_cast<std::int64_t>(t.bytes());
  std::vector<std::byte> buffer;
  for (const auto& t : tensors) {
    buffer.resize(t.bytes());
    t.fill(buffer);
    out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
    done += static_cast<std::int64_t>(buffer.size());
    if (progress) progress(done, total);
    if (!out) throw error(std::string("write failed: ") + std::strerror(errno), path.string());
  }
  out.flush();
  if (!out) throw error(std::string("write failed: ") + std::strerror(errno), path.string());
}

}  // namespace rwkv::io

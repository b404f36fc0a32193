#pragma once
// Reader for official PyTorch `.pth` checkpoints: `torch.save(state_dict)` with the zip serialization of
// PyTorch >= 1.6. Format: spec/formats.md (b). No Python and no code execution: the pickle is interpreted by a
// small stack machine that knows only the opcodes and the few whitelisted globals a state dict needs.
//
// Two layers, both strictly validated (hostile input gives an rwkv::error naming the file, never an
// out-of-bounds read or an unbounded allocation):
//  * zip: end-of-central-directory (and ZIP64) records, central directory, local headers. Only stored
//    (uncompressed) entries can be read; every offset and size is checked against the file size before use.
//  * pickle (`<prefix>/data.pkl`): stack, mark stack and memo with explicit limits; persistent ids resolve to the
//    storage entries `<prefix>/data/<key>`; `_rebuild_tensor_v2` gives the tensors.
//
// Contiguous (row-major) tensors are zero-copy views into the mapped file. Non-contiguous tensors (transposes,
// strided or expanded views, which torch.save writes as the whole storage plus offset/size/stride) are
// materialised: gathered into a contiguous copy owned by the reader and kept alive by owner(). The copies of one
// file may not exceed the file size in total (an expanded view with stride 0 could otherwise claim any amount of
// memory from a few bytes). Big-endian checkpoints (`byteorder` = `big`) are rejected.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/mapped_file.hpp"

namespace rwkv::io {

namespace pth_detail {

inline std::uint64_t read_le(const std::byte* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(p[i]);
  return v;
}
inline std::uint16_t u16(const std::byte* p) { return static_cast<std::uint16_t>(read_le(p, 2)); }
inline std::uint32_t u32(const std::byte* p) { return static_cast<std::uint32_t>(read_le(p, 4)); }
inline std::uint64_t u64(const std::byte* p) { return read_le(p, 8); }

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

// ---- zip layer --------------------------------------------------------------------------------------------

struct zip_entry {
  std::string name;
  std::uint16_t flags = 0;
  std::uint16_t method = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t local_offset = 0;
};

class zip_archive {
 public:
  zip_archive(std::span<const std::byte> bytes, const std::string& path) : bytes_(bytes), path_(path) { parse(); }

  const std::vector<zip_entry>& entries() const noexcept { return entries_; }

  const zip_entry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  // The bytes of a stored entry, located through its local header; every bound checked.
  std::span<const std::byte> data(const zip_entry& e) const {
    const std::string what = "archive entry '" + printable(e.name) + "'";
    if (e.flags & 1) fail(what + " is encrypted");
    if (e.method != 0)
      fail(what + " is compressed (zip method " + std::to_string(e.method) + (e.method == 8 ? ", deflate" : "") +
           "); PyTorch checkpoints store every entry uncompressed (method 0)");
    if (e.compressed_size != e.size)
      fail(what + " is stored but its compressed size " + std::to_string(e.compressed_size) +
           " differs from its size " + std::to_string(e.size));
    const std::uint64_t n = bytes_.size();
    if (e.local_offset > n || n - e.local_offset < 30)
      fail("local header of " + what + " at offset " + std::to_string(e.local_offset) +
           " is past the end of the file (" + std::to_string(n) + " bytes; truncated?)");
    const std::byte* lh = bytes_.data() + e.local_offset;
    if (u32(lh) != 0x04034b50)
      fail("no local header signature at offset " + std::to_string(e.local_offset) + " for " + what);
    const std::uint64_t name_len = u16(lh + 26), extra_len = u16(lh + 28);
    const std::uint64_t data_offset = e.local_offset + 30 + name_len + extra_len;
    if (data_offset > n)
      fail("local header of " + what + " extends past the end of the file (" + std::to_string(n) +
           " bytes; truncated?)");
    if (name_len != e.name.size() || std::memcmp(lh + 30, e.name.data(), e.name.size()) != 0)
      fail("local header name does not match the central directory for " + what);
    if (e.size > n - data_offset)
      fail("data of " + what + " (offset " + std::to_string(data_offset) + ", " + std::to_string(e.size) +
           " bytes) extends past the end of the file (" + std::to_string(n) + " bytes; truncated?)");
    return bytes_.subspan(static_cast<std::size_t>(data_offset), static_cast<std::size_t>(e.size));
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const { throw error(problem, path_); }

  void parse() {
    const std::uint64_t n = bytes_.size();
    const std::byte* p = bytes_.data();
    static constexpr unsigned char legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20};
    if (n >= sizeof legacy_magic && std::memcmp(p, legacy_magic, sizeof legacy_magic) == 0)
      fail("legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with PyTorch >= 1.6");
    if (n < 4 || u32(p) != 0x04034b50)
      fail("not a PyTorch zip checkpoint: the file does not start with a zip local header ('PK\\x03\\x04')");
    if (n < 22)
      fail("truncated zip archive: " + std::to_string(n) + " bytes, too short for an end-of-central-directory record");

    // End of central directory: 22 bytes + a comment of at most 65535 bytes that must end exactly at EOF.
    std::optional<std::uint64_t> eocd;
    const std::uint64_t lowest = n - 22 > 0xFFFF ? n - 22 - 0xFFFF : 0;
    for (std::uint64_t pos = n - 22 + 1; pos-- > lowest;)
      if (u32(p + pos) == 0x06054b50 && pos + 22 + u16(p + pos + 20) == n) {
        eocd = pos;
        break;
      }
    if (!eocd) fail("no zip end-of-central-directory record found (the file is truncated or not a zip archive)");
    const std::byte* e = p + *eocd;
    const std::uint16_t disk = u16(e + 4), cd_disk = u16(e + 6);
    if ((disk != 0 && disk != 0xFFFF) || (cd_disk != 0 && cd_disk != 0xFFFF))
      fail("multi-disk (split) zip archives are not supported");
    std::uint64_t count = u16(e + 10), cd_size = u32(e + 12), cd_offset = u32(e + 16);
    std::uint64_t cd_limit = *eocd;  // the central directory lies before the end records
    if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      if (*eocd < 20 || u32(p + *eocd - 20) != 0x07064b50)
        fail("the end-of-central-directory record needs ZIP64 values but there is no ZIP64 locator before it");
      const std::uint64_t locator = *eocd - 20;
      const std::uint64_t record = u64(p + locator + 8);
      if (record > locator || locator - record < 56)
        fail("ZIP64 end-of-central-directory record offset " + std::to_string(record) + " is out of bounds");
      const std::byte* r = p + record;
      if (u32(r) != 0x06064b50) fail("no ZIP64 end-of-central-directory signature at offset " + std::to_string(record));
      count = u64(r + 32);
      cd_size = u64(r + 40);
      cd_offset = u64(r + 48);
      cd_limit = record;
    }
    if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset)
      fail("central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
           " bytes) extends past the end-of-central-directory record at " + std::to_string(cd_limit) + " (file is " +
           std::to_string(n) + " bytes; truncated or corrupt?)");
    if (count > cd_size / 46)
      fail("zip entry count " + std::to_string(count) + " cannot fit in a central directory of " +
           std::to_string(cd_size) + " bytes");

    entries_.reserve(static_cast<std::size_t>(count));
    std::uint64_t pos = cd_offset;
    const std::uint64_t end = cd_offset + cd_size;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (end - pos < 46) fail("central directory truncated at entry " + std::to_string(i));
      const std::byte* h = p + pos;
      if (u32(h) != 0x02014b50)
        fail("bad central directory signature at offset " + std::to_string(pos) + " (entry " + std::to_string(i) + ")");
      zip_entry z;
      z.flags = u16(h + 8);
      z.method = u16(h + 10);
      z.compressed_size = u32(h + 20);
      z.size = u32(h + 24);
      z.local_offset = u32(h + 42);
      const std::uint64_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
      if (end - pos - 46 < name_len + extra_len + comment_len)
        fail("central directory entry " + std::to_string(i) + " extends past the central directory");
      z.name.assign(reinterpret_cast<const char*>(h + 46), static_cast<std::size_t>(name_len));
      read_zip64_extra(z, h + 46 + name_len, extra_len);
      pos += 46 + name_len + extra_len + comment_len;
      if (!index_.emplace(z.name, entries_.size()).second) fail("duplicate archive entry '" + printable(z.name) + "'");
      entries_.push_back(std::move(z));
    }
  }

  // ZIP64 extended information (header id 1): u64 size, compressed size, local offset, each present only
  // if the 32-bit field is saturated, in that order.
  void read_zip64_extra(zip_entry& z, const std::byte* extra, std::uint64_t len) const {
    constexpr std::uint64_t sat = 0xFFFFFFFF;
    const bool needed = z.size == sat || z.compressed_size == sat || z.local_offset == sat;
    bool found = false;
    std::uint64_t q = 0;
    while (len - q >= 4) {
      const std::uint64_t id = u16(extra + q), size = u16(extra + q + 2);
      if (size > len - q - 4) fail("malformed extra field in the central directory entry '" + printable(z.name) + "'");
      if (id == 1 && needed) {
        const std::byte* f = extra + q + 4;
        std::uint64_t r = 0;
        for (std::uint64_t* v : {&z.size, &z.compressed_size, &z.local_offset}) {
          if (*v != sat) continue;
          if (size - r < 8) fail("ZIP64 extra field too short for archive entry '" + printable(z.name) + "'");
          *v = u64(f + r);
          r += 8;
        }
        found = true;
      }
      q += 4 + size;
    }
    if (needed && !found) fail("archive entry '" + printable(z.name) + "' needs a ZIP64 extra field but has none");
  }

  std::span<const std::byte> bytes_;
  const std::string& path_;
  std::vector<zip_entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// ---- pickle layer -----------------------------------------------------------------------------------------

enum class kind : std::uint8_t {
  none,
  boolean,
  integer,
  floating,
  string,
  bytes,
  tuple,
  list,
  dict,
  global,
  storage,
  tensor
};

// "an int", "a tuple", ... for error messages.
inline const char* kind_name(kind k) {
  switch (k) {
    case kind::none:
      return "None";
    case kind::boolean:
      return "a bool";
    case kind::integer:
      return "an int";
    case kind::floating:
      return "a float";
    case kind::string:
      return "a str";
    case kind::bytes:
      return "a bytes object";
    case kind::tuple:
      return "a tuple";
    case kind::list:
      return "a list";
    case kind::dict:
      return "a dict";
    case kind::global:
      return "a global";
    case kind::storage:
      return "a storage";
    case kind::tensor:
      return "a tensor";
  }
  return "?";
}

enum class global_fn : std::uint8_t { ordered_dict, rebuild_tensor_v2, rebuild_parameter, storage_type };

// One pickled object, 16 bytes; containers and strings live in side tables (`ref` indexes them). Objects refer
// to each other by index into the arena, so a hostile pickle can build neither deep recursion nor cycles of
// owning pointers.
struct object {
  kind k = kind::none;
  global_fn fn = global_fn::ordered_dict;  // kind::global
  dtype storage_dtype = dtype::u8;         // kind::global with fn == storage_type
  union {
    std::int64_t i;  // integer, boolean; index into strings / containers / storages / tensors
    double f;        // floating
  };
  object() : i(0) {}
};

struct storage {
  const std::byte* data = nullptr;
  dtype type = dtype::u8;
  std::uint64_t numel = 0;
  std::size_t key = 0;  // index into the unpickler's strings (never copied: a memoised key may be long)
};

// _rebuild_tensor_v2's arguments; size and stride stay tuples in the arena (validated, at most max_dims ints)
// until a state-dict entry needs them, so that reusing memoised arguments costs no memory per call.
struct tensor_args {
  std::size_t storage = 0;
  std::int64_t offset = 0;
  std::uint32_t size = 0, stride = 0;
};

struct named_tensor {
  std::string name;
  std::size_t tensor = 0;  // index into unpickler::tensors()
};

class unpickler {
 public:
  static constexpr std::size_t max_stack_depth = std::size_t{1} << 20;  // stack entries plus marks
  static constexpr std::size_t max_memo_entries = std::size_t{1} << 22;
  static constexpr std::size_t max_dims = 32;  // PyTorch's kernels handle at most 25

  unpickler(std::span<const std::byte> pickle, const zip_archive& zip, std::string prefix, const std::string& path)
      : pk_(pickle), zip_(zip), prefix_(std::move(prefix)), path_(path) {
    // Every opcode creates at most one object and reads at least one byte: the arena is bounded by the pickle.
    objects_.reserve(std::min<std::size_t>(pk_.size(), 1024));
    none_ = make(kind::none);
  }

  // Runs the pickle and returns the state dict's entries in file order.
  std::vector<named_tensor> run() {
    const std::uint32_t result = execute();
    const object& top = objects_[result];
    if (top.k != kind::dict)
      fail_at_end(std::string("the pickled object is ") + kind_name(top.k) +
                  ", not a state dict (a dict of name to tensor)");
    const auto items = containers_[static_cast<std::size_t>(top.i)];
    std::vector<named_tensor> out;
    std::unordered_map<std::string, std::size_t> seen;
    for (std::size_t j = 0; j + 1 < items.size(); j += 2) {
      const object& key = objects_[items[j]];
      const object& value = objects_[items[j + 1]];
      if (key.k != kind::string) fail_at_end(std::string("a state-dict key is ") + kind_name(key.k) + ", not a string");
      const std::string& name = strings_[static_cast<std::size_t>(key.i)];
      if (value.k != kind::tensor)
        throw error(std::string("the state-dict value is ") + kind_name(value.k) + ", not a tensor", path_, name);
      if (!seen.emplace(name, out.size()).second) throw error("duplicate state-dict key", path_, name);
      out.push_back({name, static_cast<std::size_t>(value.i)});
    }
    return out;
  }

  const std::vector<storage>& storages() const noexcept { return storages_; }
  const std::vector<tensor_args>& tensors() const noexcept { return tensors_; }
  const std::string& key(const storage& s) const { return strings_[s.key]; }

  // The values of a tuple of ints (checked when it was passed to _rebuild_tensor_v2).
  std::vector<std::int64_t> ints(std::uint32_t tuple) const {
    std::vector<std::int64_t> out;
    for (auto d : containers_[static_cast<std::size_t>(objects_[tuple].i)]) out.push_back(objects_[d].i);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw error("data.pkl: " + problem + " (opcode at byte " + std::to_string(op_pos_) + ")", path_);
  }
  [[noreturn]] void fail_at_end(const std::string& problem) const { throw error("data.pkl: " + problem, path_); }

  // ---- reading the stream
  const std::byte* need(std::uint64_t n) {
    if (n > pk_.size() - pos_)
      fail("truncated pickle: needs " + std::to_string(n) + " more bytes but only " +
           std::to_string(pk_.size() - pos_) + " remain");
    const std::byte* p = pk_.data() + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  std::uint64_t arg(int n) { return read_le(need(static_cast<std::uint64_t>(n)), n); }
  std::string text(std::uint64_t n) {
    const auto* p = reinterpret_cast<const char*>(need(n));  // bounded by the remaining pickle bytes
    return std::string(p, static_cast<std::size_t>(n));
  }
  std::string line() {
    const auto* start = reinterpret_cast<const char*>(pk_.data() + pos_);
    const void* nl = std::memchr(start, '\n', pk_.size() - pos_);
    if (!nl) fail("unterminated GLOBAL (no newline before the end of the pickle)");
    const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
    pos_ += len + 1;
    return std::string(start, len);
  }

  // ---- objects
  std::uint32_t make(kind k, std::int64_t i = 0) {
    object o;
    o.k = k;
    o.i = i;
    objects_.push_back(o);
    return static_cast<std::uint32_t>(objects_.size() - 1);
  }
  std::uint32_t make_string(kind k, std::string s) {
    strings_.push_back(std::move(s));
    return make(k, static_cast<std::int64_t>(strings_.size() - 1));
  }
  std::uint32_t make_container(kind k, std::vector<std::uint32_t> items = {}) {
    containers_.push_back(std::move(items));
    return make(k, static_cast<std::int64_t>(containers_.size() - 1));
  }
  std::vector<std::uint32_t>& items(std::uint32_t o) { return containers_[static_cast<std::size_t>(objects_[o].i)]; }
  const std::string& str(std::uint32_t o) const { return strings_[static_cast<std::size_t>(objects_[o].i)]; }

  // ---- stack and marks: nothing below the innermost mark can be popped (as in Python's unpickler)
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(std::uint32_t o) {
    if (stack_.size() + marks_.size() >= max_stack_depth)
      fail("pickle stack deeper than " + std::to_string(max_stack_depth) + " entries");
    stack_.push_back(o);
  }
  std::uint32_t pop() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    const auto o = stack_.back();
    stack_.pop_back();
    return o;
  }
  std::uint32_t top() const {
    if (stack_.size() <= floor()) fail("pickle stack underflow (no object on top of the stack)");
    return stack_.back();
  }
  std::vector<std::uint32_t> pop_mark() {
    if (marks_.empty()) fail("no MARK on the pickle stack");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<std::uint32_t> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(std::uint64_t key) {
    const auto o = top();
    if (memo_.size() >= max_memo_entries && !memo_.count(key))
      fail("pickle memo larger than " + std::to_string(max_memo_entries) + " entries");
    memo_[key] = o;
  }

  std::int64_t as_int(std::uint32_t o, const char* what) const {
    if (objects_[o].k != kind::integer && objects_[o].k != kind::boolean)
      fail(std::string(what) + " is " + kind_name(objects_[o].k) + ", not an int");
    return objects_[o].i;
  }
  const std::vector<std::uint32_t>& as_tuple(std::uint32_t o, const char* what) const {
    if (objects_[o].k != kind::tuple) fail(std::string(what) + " is " + kind_name(objects_[o].k) + ", not a tuple");
    return containers_[static_cast<std::size_t>(objects_[o].i)];
  }
  std::uint32_t target(kind k, const char* op) const {
    const auto o = top();
    if (objects_[o].k != k)
      fail(std::string(op) + " on " + kind_name(objects_[o].k) + " (expected " + kind_name(k) + ")");
    return o;
  }

  // ---- the whitelisted globals
  std::uint32_t global(const std::string& module, const std::string& name) {
    object o;
    o.k = kind::global;
    if (module == "collections" && name == "OrderedDict") {
      o.fn = global_fn::ordered_dict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      o.fn = global_fn::rebuild_tensor_v2;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      o.fn = global_fn::rebuild_parameter;
    } else if (auto t = module == "torch" ? storage_dtype(name) : std::nullopt) {
      o.fn = global_fn::storage_type;
      o.storage_dtype = *t;
    } else {
      fail("disallowed pickle GLOBAL '" + printable(module) + " " + printable(name) +
           "' (only state dicts of tensors are read; no code is executed)");
    }
    objects_.push_back(o);
    return static_cast<std::uint32_t>(objects_.size() - 1);
  }

  static std::optional<dtype> storage_dtype(const std::string& name) {
    static const std::pair<const char*, dtype> table[] = {
        {"FloatStorage", dtype::f32},    {"HalfStorage", dtype::f16},  {"BFloat16Storage", dtype::bf16},
        {"DoubleStorage", dtype::f64},   {"LongStorage", dtype::i64},  {"IntStorage", dtype::i32},
        {"ShortStorage", dtype::i16},    {"CharStorage", dtype::i8},   {"ByteStorage", dtype::u8},
        {"BoolStorage", dtype::boolean}, {"UntypedStorage", dtype::u8}};
    for (auto& [n, d] : table)
      if (name == n) return d;
    return std::nullopt;
  }

  // REDUCE / NEWOBJ: callable(*args) for the whitelisted callables.
  std::uint32_t call(std::uint32_t fn, std::uint32_t args_obj) {
    if (objects_[fn].k != kind::global)
      fail(std::string("REDUCE on ") + kind_name(objects_[fn].k) + ", not a callable");
    // The argument tuple is only looked at in place (a memoised tuple may be huge and reused many times).
    const auto& args = as_tuple(args_obj, "REDUCE arguments");
    switch (objects_[fn].fn) {
      case global_fn::ordered_dict:
        if (!args.empty()) fail("collections.OrderedDict called with arguments (only OrderedDict() is supported)");
        return make_container(kind::dict);
      case global_fn::rebuild_parameter:
        if (args.size() != 3) fail("_rebuild_parameter takes 3 arguments, got " + std::to_string(args.size()));
        if (objects_[args[0]].k != kind::tensor) fail("_rebuild_parameter's first argument is not a tensor");
        return args[0];
      case global_fn::rebuild_tensor_v2: {
        if (args.size() != 6 && args.size() != 7)
          fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(args.size()));
        const auto& size = as_tuple(args[2], "_rebuild_tensor_v2's size");
        const auto& stride = as_tuple(args[3], "_rebuild_tensor_v2's stride");
        if (size.size() > max_dims || stride.size() > max_dims)
          fail("_rebuild_tensor_v2 with " + std::to_string(std::max(size.size(), stride.size())) +
               " dimensions (at most " + std::to_string(max_dims) + " are supported)");
        if (objects_[args[0]].k != kind::storage)
          fail(std::string("_rebuild_tensor_v2's storage argument is ") + kind_name(objects_[args[0]].k));
        for (auto d : size) as_int(d, "a size entry");
        for (auto d : stride) as_int(d, "a stride entry");
        if (size.size() != stride.size())
          fail("_rebuild_tensor_v2's size " + dims_string(ints(args[2])) + " and stride " + dims_string(ints(args[3])) +
               " differ in length");
        tensor_args t;
        t.storage = static_cast<std::size_t>(objects_[args[0]].i);
        t.offset = as_int(args[1], "_rebuild_tensor_v2's storage_offset");
        t.size = args[2];
        t.stride = args[3];
        tensors_.push_back(t);
        return make(kind::tensor, static_cast<std::int64_t>(tensors_.size() - 1));
      }
      case global_fn::storage_type:
        break;
    }
    fail("a torch storage type cannot be called");
  }

  // BINPERSID: ('storage', storage_type, key, location, numel) → the storage entry <prefix>/data/<key>.
  std::uint32_t persistent_load(std::uint32_t pid) {
    const auto& t = as_tuple(pid, "persistent id");
    if (t.size() != 5 || objects_[t[0]].k != kind::string || str(t[0]) != "storage")
      fail("persistent id is not a ('storage', type, key, location, numel) tuple");
    if (objects_[t[1]].k != kind::global || objects_[t[1]].fn != global_fn::storage_type)
      fail("persistent id's storage type is not a torch storage type");
    if (objects_[t[2]].k != kind::string) fail("persistent id's storage key is not a string");
    const std::int64_t numel = as_int(t[4], "persistent id's numel");
    storage s;  // (nothing below adds objects or containers, so `t` stays valid)
    s.type = objects_[t[1]].storage_dtype;
    s.key = static_cast<std::size_t>(objects_[t[2]].i);
    const std::string& key = strings_[s.key];
    auto entry_name = [&] { return prefix_ + "data/" + key; };
    auto cached = entry_cache_.find(s.key);  // resolved once per key string
    if (cached == entry_cache_.end()) {
      if (key.size() > 0xFFFF) fail("storage key of " + std::to_string(key.size()) + " bytes names no zip entry");
      const zip_entry* e = zip_.find(entry_name());
      if (!e) fail("storage key '" + printable(key) + "' has no archive entry '" + printable(entry_name()) + "'");
      cached = entry_cache_.emplace(s.key, zip_.data(*e)).first;
    }
    const auto bytes = cached->second;
    const std::uint64_t item = dtype_size(s.type);
    if (numel < 0 || static_cast<std::uint64_t>(numel) > bytes.size() / item)
      fail("storage '" + printable(key) + "' claims " + std::to_string(numel) + " elements of " + dtype_name(s.type) +
           " but its entry '" + printable(entry_name()) + "' holds only " + std::to_string(bytes.size()) + " bytes");
    s.numel = static_cast<std::uint64_t>(numel);
    s.data = bytes.data();
    storages_.push_back(std::move(s));
    return make(kind::storage, static_cast<std::int64_t>(storages_.size() - 1));
  }

  std::uint32_t execute() {
    if (pk_.size() < 2 || pk_[0] != std::byte{0x80})
      fail_at_end("not a pickle (does not start with the PROTO opcode 0x80)");
    while (pos_ < pk_.size()) {
      op_pos_ = pos_;
      const auto op = static_cast<unsigned char>(pk_[pos_++]);
      switch (op) {
        case 0x80: {  // PROTO
          const auto v = arg(1);
          if (v > 5) fail("unsupported pickle protocol " + std::to_string(v));
          break;
        }
        case 0x95: {  // FRAME (protocol 4): the length is only a hint
          const auto len = arg(8);
          if (len > pk_.size() - pos_) fail("FRAME of " + std::to_string(len) + " bytes extends past the pickle");
          break;
        }
        case '.': {  // STOP
          const auto result = pop();
          return result;
        }
        case '(':  // MARK
          if (stack_.size() + marks_.size() >= max_stack_depth)
            fail("pickle stack deeper than " + std::to_string(max_stack_depth) + " entries");
          marks_.push_back(stack_.size());
          break;
        case '}':
          push(make_container(kind::dict));
          break;
        case ']':
          push(make_container(kind::list));
          break;
        case ')':
          push(make_container(kind::tuple));
          break;
        case 't':
          push(make_container(kind::tuple, pop_mark()));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1/2/3
          std::vector<std::uint32_t> v(op - 0x84u);
          for (std::size_t j = v.size(); j-- > 0;) v[j] = pop();
          push(make_container(kind::tuple, std::move(v)));
          break;
        }
        case 'c': {  // GLOBAL
          const auto module = line();
          const auto name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const auto name = pop(), module = pop();
          if (objects_[name].k != kind::string || objects_[module].k != kind::string)
            fail("STACK_GLOBAL needs two strings");
          push(global(str(module), str(name)));
          break;
        }
        case 'q':
          memo_put(arg(1));
          break;  // BINPUT
        case 'r':
          memo_put(arg(4));
          break;  // LONG_BINPUT
        case 0x94:
          memo_put(memo_.size());
          break;  // MEMOIZE
        case 'h':
        case 'j': {  // BINGET, LONG_BINGET
          const auto key = arg(op == 'h' ? 1 : 4);
          auto it = memo_.find(key);
          if (it == memo_.end()) fail("memo key " + std::to_string(key) + " is not defined");
          push(it->second);
          break;
        }
        case 'X':
          push(make_string(kind::string, text(arg(4))));
          break;  // BINUNICODE
        case 0x8c:
          push(make_string(kind::string, text(arg(1))));
          break;  // SHORT_BINUNICODE
        case 'B':
          push(make_string(kind::bytes, text(arg(4))));
          break;  // BINBYTES
        case 'C':
          push(make_string(kind::bytes, text(arg(1))));
          break;  // SHORT_BINBYTES
        case 0x8e:
          push(make_string(kind::bytes, text(arg(8))));
          break;  // BINBYTES8
        case 'K':
          push(make(kind::integer, static_cast<std::int64_t>(arg(1))));
          break;  // BININT1
        case 'M':
          push(make(kind::integer, static_cast<std::int64_t>(arg(2))));
          break;   // BININT2
        case 'J':  // BININT
          push(make(kind::integer, static_cast<std::int32_t>(static_cast<std::uint32_t>(arg(4)))));
          break;
        case 0x8a: {  // LONG1: little-endian two's complement of n bytes
          const auto n = arg(1);
          const std::byte* b = need(n);
          std::int64_t v = 0;
          if (n > 0) {
            const bool negative = (static_cast<unsigned>(b[n - 1]) & 0x80) != 0;
            for (std::uint64_t j = 8; j < n; ++j)  // bytes above the 8th must be pure sign extension
              if (b[j] != (negative ? std::byte{0xFF} : std::byte{0}))
                fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
            if (n > 8 && ((static_cast<unsigned>(b[7]) & 0x80) != 0) != negative)
              fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
            const int k = static_cast<int>(std::min<std::uint64_t>(n, 8));
            std::uint64_t u = read_le(b, k);
            if (negative && k < 8) u |= ~std::uint64_t{0} << (8 * k);
            v = static_cast<std::int64_t>(u);
          }
          push(make(kind::integer, v));
          break;
        }
        case 0x88:
          push(make(kind::boolean, 1));
          break;  // NEWTRUE
        case 0x89:
          push(make(kind::boolean, 0));
          break;  // NEWFALSE
        case 'N':
          push(none_);
          break;     // NONE
        case 'G': {  // BINFLOAT, big-endian
          const std::byte* b = need(8);
          std::uint64_t u = 0;
          for (int j = 0; j < 8; ++j) u = (u << 8) | static_cast<std::uint64_t>(b[j]);
          const auto o = make(kind::floating);
          std::memcpy(&objects_[o].f, &u, 8);
          push(o);
          break;
        }
        case 'R':     // REDUCE
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict
          const auto args = pop(), fn = pop();
          if (op == 0x81 && !(objects_[fn].k == kind::global && objects_[fn].fn == global_fn::ordered_dict))
            fail("NEWOBJ is supported only for collections.OrderedDict");
          push(call(fn, args));
          break;
        }
        case 'Q':
          push(persistent_load(pop()));
          break;     // BINPERSID
        case 's': {  // SETITEM
          const auto value = pop(), key = pop();
          auto& d = items(target(kind::dict, "SETITEM"));
          d.push_back(key);
          d.push_back(value);
          break;
        }
        case 'u': {  // SETITEMS
          auto kv = pop_mark();
          if (kv.size() % 2) fail("SETITEMS with an odd number of items");
          auto& d = items(target(kind::dict, "SETITEMS"));
          d.insert(d.end(), kv.begin(), kv.end());
          break;
        }
        case 'a': {  // APPEND
          const auto value = pop();
          items(target(kind::list, "APPEND")).push_back(value);
          break;
        }
        case 'e': {  // APPENDS
          auto v = pop_mark();
          auto& l = items(target(kind::list, "APPENDS"));
          l.insert(l.end(), v.begin(), v.end());
          break;
        }
        case 'b': {  // BUILD: state of an OrderedDict (its _metadata) or a tensor is ignored
          pop();
          const auto o = top();
          if (objects_[o].k != kind::dict && objects_[o].k != kind::tensor)
            fail(std::string("BUILD on ") + kind_name(objects_[o].k) + " is not supported");
          break;
        }
        default: {
          std::string shown = op >= 0x20 && op < 0x7f ? std::string(" ('") + static_cast<char>(op) + "')" : "";
          static const char* hex = "0123456789abcdef";
          fail(std::string("unsupported pickle opcode 0x") + hex[op >> 4] + hex[op & 15] + shown);
        }
      }
    }
    fail_at_end("the pickle ends without a STOP opcode (truncated or corrupt data.pkl)");
  }

  std::span<const std::byte> pk_;
  const zip_archive& zip_;
  std::string prefix_;
  const std::string& path_;
  std::size_t pos_ = 0, op_pos_ = 0;

  std::vector<object> objects_;
  std::vector<std::string> strings_;
  std::vector<std::vector<std::uint32_t>> containers_;
  std::vector<storage> storages_;
  std::vector<tensor_args> tensors_;
  std::vector<std::uint32_t> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, std::uint32_t> memo_;
  std::unordered_map<std::size_t, std::span<const std::byte>> entry_cache_;
  std::uint32_t none_ = 0;
};

// Keeps the mapped file and the contiguous copies of non-contiguous tensors alive.
struct pth_owner {
  std::shared_ptr<const mapped_file> file;
  std::vector<std::vector<std::byte>> copies;
};

}  // namespace pth_detail

class pth_file {
 public:
  // A state-dict pickle takes about 100 bytes per tensor (tiny-7v0: 41 KB for 399 tensors). The reader's memory
  // is linear in the pickle size; this bound keeps it modest for hostile files.
  static constexpr std::uint64_t max_pickle_bytes = std::uint64_t{16} << 20;

  static pth_file open(const std::filesystem::path& path) { return pth_file(mapped_file::open(path)); }

  static pth_file from_bytes(std::span<const std::byte> bytes, std::string name = "<memory>") {
    return pth_file(mapped_file::from_bytes(bytes, std::move(name)));
  }

  explicit pth_file(std::shared_ptr<const mapped_file> file) : owner_(std::make_shared<pth_detail::pth_owner>()) {
    owner_->file = std::move(file);
    parse();
  }

  const std::string& path() const noexcept { return owner_->file->name(); }
  // The state dict's tensors in file (pickle) order, named by their state-dict keys.
  const std::vector<tensor_view>& tensors() const noexcept { return tensors_; }
  // Keeps every tensor's memory alive (the mapped file and any materialised copies).
  std::shared_ptr<const void> owner() const noexcept { return owner_; }
  // The archive's top-level directory, e.g. "tiny-7v0.model/" or "archive/".
  const std::string& prefix() const noexcept { return prefix_; }
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
  [[noreturn]] void fail(const std::string& problem, const std::string& tensor = {}) const {
    throw error(problem, path(), tensor);
  }

  void parse() {
    const pth_detail::zip_archive zip(owner_->file->bytes(), path());

    const pth_detail::zip_entry* pkl = nullptr;
    const std::string suffix = "/data.pkl";
    for (const auto& e : zip.entries())
      if (e.name.size() > suffix.size() && e.name.ends_with(suffix)) {
        if (pkl)
          fail("several data.pkl entries ('" + pth_detail::printable(pkl->name) + "', '" +
               pth_detail::printable(e.name) + "')");
        pkl = &e;
      }
    if (!pkl)
      fail("no '<prefix>/data.pkl' entry among the " + std::to_string(zip.entries().size()) +
           " archive entries: not a PyTorch checkpoint");
    prefix_ = pkl->name.substr(0, pkl->name.size() - suffix.size() + 1);

    if (const auto* bo = zip.find(prefix_ + "byteorder")) {
      const auto b = zip.data(*bo);
      const std::string order(reinterpret_cast<const char*>(b.data()), std::min<std::size_t>(b.size(), 16));
      if (order == "big")
        fail(
            "the storages are big-endian ('byteorder' entry says 'big'); only little-endian checkpoints are "
            "supported (re-save it on a little-endian machine)");
      if (order != "little") fail("unrecognised 'byteorder' entry '" + pth_detail::printable(order) + "'");
    }

    const auto pickle = zip.data(*pkl);
    if (pickle.size() > max_pickle_bytes)
      fail("data.pkl is " + std::to_string(pickle.size()) + " bytes, more than the " +
           std::to_string(max_pickle_bytes) + "-byte limit for a state-dict pickle");
    pth_detail::unpickler up(pickle, zip, prefix_, path());
    const auto entries = up.run();
    tensors_.reserve(entries.size());
    for (const auto& e : entries) {
      const auto& args = up.tensors()[e.tensor];
      const auto& st = up.storages()[args.storage];
      tensors_.push_back(make_view(e.name, st, up.key(st), args.offset, up.ints(args.size), up.ints(args.stride)));
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }

  // Bounds-checks a tensor against its storage; views it when contiguous, otherwise gathers a copy.
  tensor_view make_view(const std::string& name, const pth_detail::storage& st, const std::string& key,
                        std::int64_t storage_offset, std::vector<std::int64_t> size,
                        const std::vector<std::int64_t>& stride) {
    const auto where = [&] {
      return " (storage '" + pth_detail::printable(key) + "' of " + std::to_string(st.numel) + " elements, offset " +
             std::to_string(storage_offset) + ", size " + pth_detail::dims_string(size) + ", stride " +
             pth_detail::dims_string(stride) + ")";
    };
    const std::size_t ndim = size.size();  // == stride.size(), checked by the unpickler
    constexpr std::uint64_t max_numel = std::uint64_t{1} << 48;
    bool empty = false;
    for (std::size_t d = 0; d < ndim; ++d) {
      if (size[d] < 0) fail("negative size" + where(), name);
      if (stride[d] < 0) fail("negative stride" + where(), name);
      empty |= size[d] == 0;
    }
    std::uint64_t numel = empty ? 0 : 1;
    if (!empty)
      for (auto d : size) {
        const auto u = static_cast<std::uint64_t>(d);
        if (u > max_numel / numel) fail("shape is too large" + where(), name);
        numel *= u;
      }
    if (storage_offset < 0 || static_cast<std::uint64_t>(storage_offset) > st.numel)
      fail("storage offset is outside the storage" + where(), name);
    const auto offset = static_cast<std::uint64_t>(storage_offset);
    // The last element reached, offset + sum of (size_d - 1) * stride_d, must lie inside the storage.
    if (numel > 0) {
      if (offset >= st.numel) fail("tensor extends past the end of its storage" + where(), name);
      std::uint64_t room = st.numel - 1 - offset;
      for (std::size_t d = 0; d < ndim; ++d) {
        const auto extent = static_cast<std::uint64_t>(size[d] - 1), step = static_cast<std::uint64_t>(stride[d]);
        if (extent == 0 || step == 0) continue;
        if (extent > room / step) fail("tensor extends past the end of its storage" + where(), name);
        room -= extent * step;
      }
    }

    tensor_view t;
    t.name = name;
    t.type = st.type;
    const std::size_t item = dtype_size(st.type);
    t.nbytes = static_cast<std::size_t>(numel) * item;
    const std::byte* base = st.data + offset * item;

    bool contiguous = true;  // row-major strides; those of size-1 dimensions do not matter (as in PyTorch)
    std::int64_t expected = 1;
    for (std::size_t d = ndim; d-- > 0 && numel > 0;) {
      if (size[d] != 1 && stride[d] != expected) contiguous = false;
      expected *= size[d];  // <= numel <= 2^48
    }
    if (contiguous || numel == 0) {
      t.data = base;
      t.shape = std::move(size);
      return t;
    }

    // Non-contiguous: gather into a row-major copy, within a budget of the file size for all copies together.
    const std::uint64_t budget = owner_->file->size();
    if (t.nbytes > budget - std::min(budget, materialised_))
      fail("non-contiguous tensor needs a " + std::to_string(t.nbytes) +
               "-byte contiguous copy; the copies of this file would exceed its size" + where(),
           name);
    materialised_ += t.nbytes;
    std::vector<std::byte> copy(t.nbytes);
    std::vector<std::int64_t> index(ndim, 0);
    std::uint64_t src = 0;  // element offset from base
    for (std::uint64_t i = 0; i < numel; ++i) {
      std::memcpy(copy.data() + i * item, base + src * item, item);
      for (std::size_t d = ndim; d-- > 0;) {  // odometer increment, last dimension fastest
        if (++index[d] < size[d]) {
          src += static_cast<std::uint64_t>(stride[d]);
          break;
        }
        src -= static_cast<std::uint64_t>(stride[d]) * static_cast<std::uint64_t>(size[d] - 1);
        index[d] = 0;
      }
    }
    t.data = copy.data();
    t.shape = std::move(size);
    owner_->copies.push_back(std::move(copy));
    return t;
  }

  std::shared_ptr<pth_detail::pth_owner> owner_;
  std::string prefix_;
  std::vector<tensor_view> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::uint64_t materialised_ = 0;
};

}  // namespace rwkv::io

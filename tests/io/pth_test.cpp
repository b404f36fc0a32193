// PyTorch .pth reader (include/rwkv/io/pth.hpp): the bundled torch.save fixtures equal their safetensors twins
// bit for bit and give the golden logits; crafted archives (a tiny zip writer and pickle writer below) cover
// every supported opcode, dtype, layout and view, and every malformed-file case must fail with an rwkv::error
// naming the file and the problem, never crash or read out of bounds.
#define BOOST_TEST_MODULE pth
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rwkv/core/error.hpp>
#include <rwkv/core/tensor.hpp>
#include <rwkv/io/checkpoint.hpp>
#include <rwkv/io/pth.hpp>
#include <rwkv/io/safetensors.hpp>
#include <rwkv/v7.hpp>
#include <rwkv/v7a.hpp>
#include <rwkv/v7b.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using bytes = std::vector<std::byte>;
using rwkv::test::data_path;
namespace tt = boost::test_tools;

constexpr const char* crafted_name = "crafted.pth";

bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot open " << path);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

bytes text_bytes(std::string_view s) {
  bytes out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

template <class T>
bytes raw(const std::vector<T>& values) {
  bytes out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

void put_le(bytes& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}
void append_le(bytes& b, std::uint64_t v, int n) {
  b.resize(b.size() + static_cast<std::size_t>(n));
  put_le(b, b.size() - static_cast<std::size_t>(n), v, n);
}

// ---- a tiny zip writer: stored entries, PyTorch-style 64-byte aligned data, optional ZIP64 ------------------

struct zip_input {
  std::string name;
  bytes data;
};

struct zip_layout {
  bytes file;
  std::vector<std::size_t> local;  // local header offset per entry
  std::vector<std::size_t> data;   // data offset per entry
  std::vector<std::size_t> cd;     // central directory header offset per entry
  std::size_t cd_offset = 0, eocd = 0;
};

zip_layout write_zip(const std::vector<zip_input>& entries, bool zip64 = false) {
  zip_layout z;
  bytes& f = z.file;
  for (const auto& e : entries) {
    z.local.push_back(f.size());
    append_le(f, 0x04034b50, 4);
    append_le(f, 20, 2);             // version needed
    append_le(f, 0, 2);              // flags
    append_le(f, 0, 2);              // method: stored
    append_le(f, 0, 4);              // time, date
    append_le(f, 0, 4);              // crc (not checked)
    append_le(f, e.data.size(), 4);  // sizes
    append_le(f, e.data.size(), 4);
    append_le(f, e.name.size(), 2);
    // The "FB" padding record PyTorch writes so that the data is 64-byte aligned.
    const std::size_t before = f.size() + 2 + e.name.size() + 4;
    const std::size_t pad = (64 - before % 64) % 64;
    append_le(f, 4 + pad, 2);
    for (char c : e.name) f.push_back(static_cast<std::byte>(c));
    append_le(f, 0x4246, 2);
    append_le(f, pad, 2);
    f.insert(f.end(), pad, std::byte{'Z'});
    z.data.push_back(f.size());
    f.insert(f.end(), e.data.begin(), e.data.end());
  }
  z.cd_offset = f.size();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    z.cd.push_back(f.size());
    const std::uint64_t sat = 0xFFFFFFFF;
    append_le(f, 0x02014b50, 4);
    append_le(f, 45, 2);  // version made by
    append_le(f, 45, 2);  // version needed
    append_le(f, 0, 2);   // flags
    append_le(f, 0, 2);   // method
    append_le(f, 0, 4);   // time, date
    append_le(f, 0, 4);   // crc
    append_le(f, zip64 ? sat : e.data.size(), 4);
    append_le(f, zip64 ? sat : e.data.size(), 4);
    append_le(f, e.name.size(), 2);
    append_le(f, zip64 ? 28 : 0, 2);  // extra length
    append_le(f, 0, 2);               // comment length
    append_le(f, 0, 2);               // disk
    append_le(f, 0, 2);               // internal attributes
    append_le(f, 0, 4);               // external attributes
    append_le(f, zip64 ? sat : z.local[i], 4);
    for (char c : e.name) f.push_back(static_cast<std::byte>(c));
    if (zip64) {
      append_le(f, 1, 2);
      append_le(f, 24, 2);
      append_le(f, e.data.size(), 8);
      append_le(f, e.data.size(), 8);
      append_le(f, z.local[i], 8);
    }
  }
  const std::size_t cd_size = f.size() - z.cd_offset;
  if (zip64) {
    const std::size_t record = f.size();
    append_le(f, 0x06064b50, 4);
    append_le(f, 44, 8);  // size of the rest of the record
    append_le(f, 45, 2);
    append_le(f, 45, 2);
    append_le(f, 0, 4);
    append_le(f, 0, 4);
    append_le(f, entries.size(), 8);
    append_le(f, entries.size(), 8);
    append_le(f, cd_size, 8);
    append_le(f, z.cd_offset, 8);
    append_le(f, 0x07064b50, 4);  // locator
    append_le(f, 0, 4);
    append_le(f, record, 8);
    append_le(f, 1, 4);
  }
  z.eocd = f.size();
  append_le(f, 0x06054b50, 4);
  append_le(f, 0, 2);
  append_le(f, 0, 2);
  append_le(f, zip64 ? 0xFFFF : entries.size(), 2);
  append_le(f, zip64 ? 0xFFFF : entries.size(), 2);
  append_le(f, zip64 ? 0xFFFFFFFF : cd_size, 4);
  append_le(f, zip64 ? 0xFFFFFFFF : z.cd_offset, 4);
  append_le(f, 0, 2);
  return z;
}

// ---- a tiny pickle writer ----------------------------------------------------------------------------------

struct pickle_writer {
  bytes out;

  pickle_writer& op(unsigned c) {
    out.push_back(static_cast<std::byte>(c));
    return *this;
  }
  pickle_writer& le(std::uint64_t v, int n) {
    append_le(out, v, n);
    return *this;
  }
  pickle_writer& text(std::string_view s) {
    for (char c : s) out.push_back(static_cast<std::byte>(c));
    return *this;
  }
  pickle_writer& proto(unsigned v = 2) { return op(0x80).op(v); }
  pickle_writer& global(std::string_view module, std::string_view name) {
    return op('c').text(module).text("\n").text(name).text("\n");
  }
  pickle_writer& str(std::string_view s) { return op('X').le(s.size(), 4).text(s); }
  pickle_writer& integer(std::int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<std::uint64_t>(v), 1);
    if (v >= 0 && v < 65536) return op('M').le(static_cast<std::uint64_t>(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX)
      return op('J').le(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)), 4);
    return op(0x8a).op(8).le(static_cast<std::uint64_t>(v), 8);  // LONG1
  }
  pickle_writer& int_tuple(const std::vector<std::int64_t>& v) {
    if (v.empty()) return op(')');
    if (v.size() > 3) op('(');
    for (auto x : v) integer(x);
    return v.size() > 3 ? op('t') : op(0x84 + static_cast<unsigned>(v.size()));
  }
  pickle_writer& empty_ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
};

struct tensor_spec {
  std::string name;
  std::string storage_type;  // "FloatStorage", ...
  std::string key;
  std::int64_t storage_numel;
  std::int64_t offset;
  std::vector<std::int64_t> size, stride;
};

// What torch.save writes for one tensor (without the memo puts, which the reader does not need).
void write_tensor(pickle_writer& w, const tensor_spec& t) {
  w.global("torch._utils", "_rebuild_tensor_v2").op('(');
  w.op('(').str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.storage_numel).op('t');
  w.op('Q');
  w.integer(t.offset).int_tuple(t.size).int_tuple(t.stride).op(0x89).empty_ordered_dict();
  w.op('t').op('R');
}

bytes state_dict_pickle(const std::vector<tensor_spec>& tensors, bool ordered_dict = false) {
  pickle_writer w;
  w.proto(2);
  if (ordered_dict)
    w.empty_ordered_dict();
  else
    w.op('}');
  w.op('(');
  for (const auto& t : tensors) {
    w.str(t.name);
    write_tensor(w, t);
  }
  w.op('u').op('.');
  return w.out;
}

// An archive holding `pickle` as archive/data.pkl and each storage as archive/data/<key>.
zip_layout make_pth(const bytes& pickle, const std::map<std::string, bytes>& storages, std::vector<zip_input> more = {},
                    bool zip64 = false, const std::string& prefix = "archive/") {
  std::vector<zip_input> entries{{prefix + "data.pkl", pickle}};
  for (const auto& [key, data] : storages) entries.push_back({prefix + "data/" + key, data});
  entries.push_back({prefix + "version", text_bytes("3\n")});
  for (auto& e : more) entries.push_back(std::move(e));
  return write_zip(entries, zip64);
}

// A valid small checkpoint: "a" F32 [2,3] and "b" BF16 [4], one storage each.
std::vector<tensor_spec> small_specs() {
  return {{"a", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}}, {"b", "BFloat16Storage", "1", 4, 0, {4}, {1}}};
}
std::map<std::string, bytes> small_storages() {
  return {{"0", raw<float>({1, 2, 3, 4, 5, 6})}, {"1", raw<std::uint16_t>({0x3f80, 0x4000, 0x4040, 0xbf80})}};
}
zip_layout small_pth() { return make_pth(state_dict_pickle(small_specs()), small_storages()); }

io::pth_file parse(const bytes& b) { return io::pth_file::from_bytes(b, crafted_name); }

std::vector<float> floats_of(const tensor_view& t) { return rwkv::test::floats(t); }

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

// A checkpoint whose data.pkl is `pickle` (storages of small_pth()).
bytes with_pickle(const bytes& pickle) { return make_pth(pickle, small_storages()).file; }

// A pickle: PROTO 2, the given opcodes, nothing else.
bytes pickle_of(std::initializer_list<unsigned> ops) {
  pickle_writer w;
  w.proto(2);
  for (auto o : ops) w.op(o);
  return w.out;
}

// ---- the bundled fixtures ------------------------------------------------------------------------------------

void check_same_as_safetensors(const std::string& pth_name, const std::string& st_name, const std::string& prefix,
                               dtype expected_type) {
  const auto pth = io::pth_file::open(data_path(pth_name));
  const auto st = io::safetensors_file::open(data_path(st_name));
  BOOST_TEST(pth.prefix() == prefix);
  BOOST_REQUIRE_EQUAL(pth.tensors().size(), st.tensors().size());
  const auto file = pth.file_bytes();
  for (std::size_t i = 0; i < pth.tensors().size(); ++i) {
    const auto& t = pth.tensors()[i];
    BOOST_TEST_CONTEXT(pth_name << " tensor " << i << " '" << t.name << "'") {
      // Both writers keep the state dict's order.
      BOOST_TEST(t.name == st.tensors()[i].name);
      const auto* s = st.find(t.name);
      BOOST_REQUIRE(s != nullptr);
      BOOST_TEST((t.type == expected_type));
      BOOST_TEST((t.type == s->type));
      BOOST_TEST(t.shape == s->shape, tt::per_element());
      BOOST_REQUIRE_EQUAL(t.nbytes, s->nbytes);
      BOOST_TEST(std::memcmp(t.data, s->data, t.nbytes) == 0);
      // Zero-copy, 64-byte aligned views into the file, as PyTorch lays them out.
      BOOST_TEST((t.data >= file.data() && t.data + t.nbytes <= file.data() + file.size()));
      BOOST_TEST((t.data - file.data()) % 64 == 0);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_7v0_pth_equals_safetensors) {
  check_same_as_safetensors("tiny-7v0.model.pth", "tiny-7v0.model.safetensors", "tiny-7v0.model/", dtype::f32);
}

BOOST_AUTO_TEST_CASE(v7_dev_bf16_pth_equals_safetensors) {
  check_same_as_safetensors("v7-dev.model.bf16.pth", "v7-dev.model.bf16.safetensors", "v7-dev.model.bf16/",
                            dtype::bf16);
}

BOOST_AUTO_TEST_CASE(open_checkpoint_detects_pth) {
  const auto c = io::open_checkpoint(data_path("v7-dev.model.bf16.pth"));
  BOOST_TEST((c.format == io::file_format::pth));
  BOOST_TEST(c.path == data_path("v7-dev.model.bf16.pth"));
  BOOST_TEST(c.tensors.size() == 72u);
  BOOST_TEST(c.owner != nullptr);
}

// The tensors stay valid after the reader is gone (owner keeps the mapping).
BOOST_AUTO_TEST_CASE(owner_keeps_views_alive) {
  std::shared_ptr<const void> owner;
  std::vector<tensor_view> tensors;
  {
    const auto pth = io::pth_file::open(data_path("v7-dev.model.bf16.pth"));
    owner = pth.owner();
    tensors = pth.tensors();
  }
  const auto st = io::safetensors_file::open(data_path("v7-dev.model.bf16.safetensors"));
  for (const auto& t : tensors) BOOST_TEST(std::memcmp(t.data, st.at(t.name).data, t.nbytes) == 0);
}

// ---- golden logits from the .pth files -----------------------------------------------------------------------

namespace {

template <class M>
void check_step_golden(const std::string& model_file, const std::string& twin, const std::string& golden_case,
                       const std::string& tensor) {
  const auto golden = io::safetensors_file::open(data_path(golden_case + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto want = rwkv::test::floats(golden.at(tensor));
  const auto model = M::load(data_path(model_file));
  const auto same = M::load(data_path(twin));
  const auto V = static_cast<std::size_t>(model.cfg().vocab);
  BOOST_REQUIRE_EQUAL(want.size(), tokens.size() * V);
  auto s = model.make_state();
  auto s2 = same.make_state();
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto got = model.step(tokens[t], s);
    const std::vector<float> row(want.begin() + static_cast<std::ptrdiff_t>(t * V),
                                 want.begin() + static_cast<std::ptrdiff_t>((t + 1) * V));
    rwkv::test::check_close(got, row, rwkv::test::logits_tol, model_file + " " + tensor + " step " + std::to_string(t));
    // Same weights, same arithmetic: exactly the logits of the safetensors twin.
    const auto twin_logits = same.step(tokens[t], s2);
    BOOST_TEST(std::memcmp(got.data(), twin_logits.data(), got.size() * sizeof(float)) == 0);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiny_7v0_pth_golden_logits) {
  check_step_golden<v7::Model<f32>>("tiny-7v0.model.pth", "tiny-7v0.model.safetensors", "tiny-7v0", "logits");
}

BOOST_AUTO_TEST_CASE(v7_dev_bf16_pth_golden_logits) {
  check_step_golden<v7::Model<f32>>("v7-dev.model.bf16.pth", "v7-dev.model.bf16.safetensors", "v7-dev", "logits_bf16w");
}

BOOST_AUTO_TEST_CASE(v7_dev_bf16_pth_bf16_storage_golden_logits) {
  check_step_golden<v7::Model<bf16_weights>>("v7-dev.model.bf16.pth", "v7-dev.model.bf16.safetensors", "v7-dev",
                                             "logits_bf16w");
}

// The RWKV-7 variants' golden data comes as safetensors only: their .pth twins are written here the way torch.save
// writes a state dict (one F32 storage per tensor, contiguous strides), and must give the golden step logits and
// exactly the logits of the safetensors file.
namespace {

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> stride(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) stride[i - 1] = stride[i] * shape[i];
  return stride;
}

template <class M>
void check_variant_pth(const std::string& name) {
  const auto st = io::safetensors_file::open(data_path(name + ".model.safetensors"));
  std::vector<tensor_spec> specs;
  std::map<std::string, bytes> storages;
  for (const auto& t : st.tensors()) {
    BOOST_REQUIRE(t.type == dtype::f32);
    const std::string key = std::to_string(specs.size());
    specs.push_back({t.name, "FloatStorage", key, t.numel(), 0, t.shape, contiguous_strides(t.shape)});
    storages[key] = bytes(t.data, t.data + t.nbytes);
  }
  const auto file = make_pth(state_dict_pickle(specs, /*ordered_dict*/ true), storages).file;
  const auto path = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()) + ".pth");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()), std::streamsize(file.size()));
  BOOST_TEST((io::open_checkpoint(path).format == io::file_format::pth));

  const auto golden = io::safetensors_file::open(data_path(name + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto want = rwkv::test::floats(golden.at("logits"));
  const auto from_pth = M::load(path);
  std::filesystem::remove(path);
  const auto twin = M::load(data_path(name + ".model.safetensors"));
  const auto V = static_cast<std::size_t>(twin.cfg().vocab);
  auto s = from_pth.make_state(), s2 = twin.make_state();
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto got = from_pth.step(tokens[t], s);
    rwkv::test::check_close(
        got, std::vector<float>(want.begin() + std::ptrdiff_t(t * V), want.begin() + std::ptrdiff_t((t + 1) * V)),
        rwkv::test::logits_tol, name + " .pth step " + std::to_string(t));
    const auto same = twin.step(tokens[t], s2);
    BOOST_TEST(std::memcmp(got.data(), same.data(), got.size() * sizeof(float)) == 0);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v7a_and_v7b_pth_golden_logits) {
  check_variant_pth<v7a::Model<f32>>("v7a-dev");
  check_variant_pth<v7b::Model<f32>>("v7b-dev");
}

// ---- crafted valid archives -----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(crafted_round_trip) {
  for (bool zip64 : {false, true})
    for (bool ordered : {false, true}) {
      BOOST_TEST_CONTEXT("zip64 " << zip64 << ", OrderedDict " << ordered) {
        const auto z = make_pth(state_dict_pickle(small_specs(), ordered), small_storages(), {}, zip64);
        const auto f = parse(z.file);
        BOOST_TEST(f.path() == crafted_name);
        BOOST_TEST(f.prefix() == "archive/");
        BOOST_REQUIRE_EQUAL(f.tensors().size(), 2u);
        const auto& a = f.tensors()[0];
        const auto& b = f.tensors()[1];
        BOOST_TEST(a.name == "a");
        BOOST_TEST((a.type == dtype::f32));
        BOOST_TEST(a.shape == (std::vector<std::int64_t>{2, 3}), tt::per_element());
        BOOST_TEST(floats_of(a) == (std::vector<float>{1, 2, 3, 4, 5, 6}), tt::per_element());
        BOOST_TEST(b.name == "b");
        BOOST_TEST((b.type == dtype::bf16));
        BOOST_TEST(floats_of(b) == (std::vector<float>{1, 2, 3, -1}), tt::per_element());
        BOOST_TEST(a.data == f.file_bytes().data() + z.data[1]);  // zero-copy
        BOOST_TEST(&f.at("b") == &b);
        BOOST_TEST(f.find("c") == nullptr);
      }
    }
}

BOOST_AUTO_TEST_CASE(every_storage_dtype) {
  const std::vector<std::pair<std::string, dtype>> types{
      {"FloatStorage", dtype::f32},    {"HalfStorage", dtype::f16},  {"BFloat16Storage", dtype::bf16},
      {"DoubleStorage", dtype::f64},   {"LongStorage", dtype::i64},  {"IntStorage", dtype::i32},
      {"ShortStorage", dtype::i16},    {"CharStorage", dtype::i8},   {"ByteStorage", dtype::u8},
      {"BoolStorage", dtype::boolean}, {"UntypedStorage", dtype::u8}};
  std::vector<tensor_spec> specs;
  std::map<std::string, bytes> storages;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const auto key = std::to_string(i);
    specs.push_back({"t" + key, types[i].first, key, 3, 0, {3}, {1}});
    bytes data(3 * dtype_size(types[i].second));
    for (std::size_t j = 0; j < data.size(); ++j) data[j] = static_cast<std::byte>(i * 16 + j);
    storages[key] = data;
  }
  const auto f = parse(make_pth(state_dict_pickle(specs), storages).file);
  BOOST_REQUIRE_EQUAL(f.tensors().size(), types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    const auto& t = f.tensors()[i];
    BOOST_TEST(t.name == "t" + std::to_string(i));
    BOOST_TEST((t.type == types[i].second));
    BOOST_TEST(t.nbytes == 3 * dtype_size(types[i].second));
    const auto& want = storages[std::to_string(i)];
    BOOST_TEST(std::memcmp(t.data, want.data(), want.size()) == 0);
  }
}

BOOST_AUTO_TEST_CASE(views_offsets_zero_d_and_empty_tensors) {
  // One storage of 12 floats 0..11 shared by several views.
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  const std::vector<tensor_spec> specs{
      {"whole", "FloatStorage", "0", 12, 0, {3, 4}, {4, 1}},
      {"row1", "FloatStorage", "0", 12, 4, {4}, {1}},
      {"scalar", "FloatStorage", "0", 12, 7, {}, {}},
      {"empty", "FloatStorage", "0", 12, 12, {0, 5}, {5, 1}},
      {"unit_dims", "FloatStorage", "0", 12, 2, {1, 2, 1}, {99, 1, 42}},  // strides of size-1 dims do not matter
      {"transposed", "FloatStorage", "0", 12, 0, {4, 3}, {1, 4}},
      {"strided", "FloatStorage", "0", 12, 1, {2, 2}, {6, 2}},
      {"expanded", "FloatStorage", "0", 12, 5, {2, 3}, {0, 1}},
  };
  const auto z = make_pth(state_dict_pickle(specs), {{"0", raw(v)}});
  const auto f = parse(z.file);
  const auto* base = f.file_bytes().data() + z.data[1];
  auto in_file = [&](const tensor_view& t) {
    return t.data >= f.file_bytes().data() && t.data < f.file_bytes().data() + f.file_bytes().size();
  };
  BOOST_TEST(f.at("whole").data == base);
  BOOST_TEST(f.at("row1").data == base + 16);
  BOOST_TEST(floats_of(f.at("row1")) == (std::vector<float>{4, 5, 6, 7}), tt::per_element());
  BOOST_TEST(f.at("scalar").shape.empty());
  BOOST_TEST(f.at("scalar").nbytes == 4u);
  BOOST_TEST(floats_of(f.at("scalar")) == (std::vector<float>{7}), tt::per_element());
  BOOST_TEST(f.at("empty").nbytes == 0u);
  BOOST_TEST(f.at("empty").numel() == 0);
  BOOST_TEST(f.at("unit_dims").data == base + 8);
  BOOST_TEST(floats_of(f.at("unit_dims")) == (std::vector<float>{2, 3}), tt::per_element());
  // Non-contiguous views are materialised row-major copies owned by the reader.
  BOOST_TEST(!in_file(f.at("transposed")));
  BOOST_TEST(floats_of(f.at("transposed")) == (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}),
             tt::per_element());
  BOOST_TEST(floats_of(f.at("strided")) == (std::vector<float>{1, 3, 7, 9}), tt::per_element());
  BOOST_TEST(floats_of(f.at("expanded")) == (std::vector<float>{5, 6, 7, 5, 6, 7}), tt::per_element());
}

// Materialised copies and file views outlive the reader through owner().
BOOST_AUTO_TEST_CASE(copies_outlive_the_reader) {
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  std::shared_ptr<const void> owner;
  std::vector<tensor_view> tensors;
  {
    auto file = make_pth(state_dict_pickle({{"t", "FloatStorage", "0", 12, 0, {4, 3}, {1, 4}},
                                            {"w", "FloatStorage", "0", 12, 0, {12}, {1}}}),
                         {{"0", raw(v)}})
                    .file;
    const auto f = parse(file);
    owner = f.owner();
    tensors = f.tensors();
  }  // the reader and the input bytes are gone
  BOOST_TEST(floats_of(tensors[0]) == (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), tt::per_element());
  BOOST_TEST(floats_of(tensors[1]) == v, tt::per_element());
}

// Protocol-4 opcodes, memo, _rebuild_parameter, the 7-argument form, OrderedDict _metadata (BUILD), lists,
// and extra archive entries (byteorder little, unknown files).
BOOST_AUTO_TEST_CASE(protocol_4_opcodes_parameters_and_build) {
  pickle_writer w;
  w.proto(4).op(0x95).le(0, 8);                                      // FRAME
  w.op(0x8c).op(11).text("collections").op(0x94);                    // SHORT_BINUNICODE, MEMOIZE
  w.op(0x8c).op(11).text("OrderedDict").op(0x94).op(0x93).op(0x94);  // STACK_GLOBAL
  w.op(')').op(0x81).op(0x94);                                       // NEWOBJ: OrderedDict()
  w.op('(');
  w.op(0x8c).op(1).text("p");
  w.global("torch._utils", "_rebuild_parameter").op('(');
  w.global("torch._utils", "_rebuild_tensor_v2").op('(');
  w.op('(').str("storage").global("torch", "HalfStorage").op('q').op(9).str("0").str("cuda:0");
  w.op(0x8a).op(2).le(3, 2);  // LONG1: numel 3 in two bytes
  w.op('t').op('Q');
  w.op(0x8a).op(0);             // LONG1 with no bytes: storage offset 0
  w.op('J').le(3, 4).op(0x85);  // size (3,)
  w.integer(1).op(0x85);        // stride (1,)
  w.op(0x88).empty_ordered_dict();
  // metadata: {b"md": 0.0, b"x": b"y", "l": [1, 2, 3], "t": (None, True, storage type)}
  w.op('}').op('(').op('B').le(2, 4).text("md").op('G').le(0, 8);
  w.op('C').op(1).text("x").op(0x8e).le(1, 8).text("y");
  w.str("l").op(']').integer(1).op('a').op('(').integer(2).integer(3).op('e');
  w.str("t").op('N').op(0x88).op('h').op(9).op(0x87);
  w.op('u');
  w.op('t').op('R');                                // 7-argument _rebuild_tensor_v2
  w.op(0x88).empty_ordered_dict().op('t').op('R');  // _rebuild_parameter(tensor, True, OrderedDict())
  w.op('u');
  // BUILD with the OrderedDict's state {"_metadata": OrderedDict([("", {"version": 1})])}, as state_dict() has.
  w.op('}').str("_metadata").empty_ordered_dict().str("").op('}').str("version").integer(1).op('s').op('s').op('s');
  w.op('b').op('.');
  const auto f = parse(make_pth(w.out, {{"0", raw<std::uint16_t>({0x3c00, 0x4000, 0xc000})}},
                                {{"archive/byteorder", text_bytes("little")},
                                 {"archive/.data/serialization_id", text_bytes("1234")},
                                 {"archive/unrelated", text_bytes("ignored")}})
                           .file);
  BOOST_REQUIRE_EQUAL(f.tensors().size(), 1u);
  BOOST_TEST(f.tensors()[0].name == "p");
  BOOST_TEST((f.tensors()[0].type == dtype::f16));
  BOOST_TEST(floats_of(f.tensors()[0]) == (std::vector<float>{1, 2, -2}), tt::per_element());
}

// Another prefix, LONG_BINPUT / LONG_BINGET past 255 memo entries, one tensor object under two names.
BOOST_AUTO_TEST_CASE(other_prefix_memo_and_aliases) {
  pickle_writer w;
  w.proto(2).op('}').op('q').op(0).op('(');
  for (int i = 0; i < 300; ++i) {
    std::string name = "t";  // (not "t" + ...: GCC 12 warns falsely about that at -O3, -Wrestrict)
    name += std::to_string(i);
    w.str(name).op('r').le(static_cast<std::uint64_t>(1000 + i), 4);
    write_tensor(w, {"", "FloatStorage", std::to_string(i % 3), 2, i % 2, {1}, {1}});
    w.op('r').le(static_cast<std::uint64_t>(5000 + i), 4);
  }
  w.op('u');
  w.op('h').op(0).str("alias").op('j').le(5005, 4).op('s');  // dict["alias"] = the tensor of "t5"
  w.op('.');
  const auto f =
      parse(make_pth(w.out, {{"0", raw<float>({10, 20})}, {"1", raw<float>({30, 40})}, {"2", raw<float>({50, 60})}}, {},
                     false, "my model.v1/")
                .file);
  BOOST_TEST(f.prefix() == "my model.v1/");
  BOOST_REQUIRE_EQUAL(f.tensors().size(), 301u);
  BOOST_TEST(f.tensors()[299].name == "t299");
  BOOST_TEST(floats_of(f.at("t5")) == (std::vector<float>{60}), tt::per_element());
  BOOST_TEST(floats_of(f.at("t6")) == (std::vector<float>{10}), tt::per_element());
  BOOST_TEST(f.tensors()[300].name == "alias");
  BOOST_TEST(f.at("alias").data == f.at("t5").data);
}

// ---- hostile input -------------------------------------------------------------------------------------------

// A real file cut at many points: always an rwkv::error naming the file, never a crash.
BOOST_AUTO_TEST_CASE(truncated_real_files) {
  for (const auto* name : {"v7-dev.model.bf16.pth", "tiny-7v0.model.pth"}) {
    const auto whole = read_file(data_path(name));
    std::vector<std::size_t> cuts;
    for (std::size_t n = 0; n < 200; ++n) cuts.push_back(n);
    for (std::size_t n = 200; n < whole.size(); n += whole.size() / 97 + 1) cuts.push_back(n);
    for (std::size_t n = whole.size() - 300; n < whole.size(); ++n) cuts.push_back(n);
    for (auto n : cuts)
      expect_error([&] { (void)io::pth_file::from_bytes(std::span(whole).first(n), crafted_name); }, "", {},
                   static_cast<int>(n));
    BOOST_TEST(io::pth_file::from_bytes(whole, crafted_name).tensors().size() > 0u);
  }
}

// A crafted file cut at every byte, and the end-of-central-directory comment length mismatched.
BOOST_AUTO_TEST_CASE(truncated_crafted_file_every_byte) {
  const auto z = small_pth();
  for (std::size_t n = 0; n < z.file.size(); ++n)
    expect_error([&] { (void)parse(bytes(z.file.begin(), z.file.begin() + static_cast<std::ptrdiff_t>(n))); }, "", {},
                 static_cast<int>(n));
  EXPECT_BAD_FILE(bytes{}, "", "does not start with a zip local header");
  EXPECT_BAD_FILE(bytes(z.file.begin(), z.file.begin() + 21), "", "truncated zip archive: 21 bytes");
  EXPECT_BAD_FILE(bytes(z.file.begin(), z.file.end() - 1), "", "no zip end-of-central-directory record");
}

BOOST_AUTO_TEST_CASE(not_a_zip_or_legacy_format) {
  EXPECT_BAD_FILE(text_bytes("hello world, this is not a checkpoint"), "", "not a PyTorch zip checkpoint");
  const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  bytes b(sizeof legacy);
  std::memcpy(b.data(), legacy, sizeof legacy);
  EXPECT_BAD_FILE(b, "", "legacy (pre-1.6, non-zip) torch.save format is not supported");
}

BOOST_AUTO_TEST_CASE(bad_end_of_central_directory) {
  auto z = small_pth();
  auto bad_sig = z.file;
  put_le(bad_sig, z.eocd, 0x06054b51, 4);
  EXPECT_BAD_FILE(bad_sig, "", "no zip end-of-central-directory record");
  auto bad_comment = z.file;
  put_le(bad_comment, z.eocd + 20, 5, 2);  // a comment that is not there
  EXPECT_BAD_FILE(bad_comment, "", "no zip end-of-central-directory record");
  auto with_comment = z.file;
  put_le(with_comment, z.eocd + 20, 3, 2);
  for (char c : std::string("abc")) with_comment.push_back(static_cast<std::byte>(c));
  BOOST_TEST(parse(with_comment).tensors().size() == 2u);  // a real comment is fine
  auto multi_disk = z.file;
  put_le(multi_disk, z.eocd + 4, 1, 2);
  EXPECT_BAD_FILE(multi_disk, "", "multi-disk");
  auto too_many = z.file;
  put_le(too_many, z.eocd + 10, 1000, 2);
  EXPECT_BAD_FILE(too_many, "", "zip entry count 1000 cannot fit in a central directory");
  auto no_locator = z.file;
  put_le(no_locator, z.eocd + 16, 0xFFFFFFFF, 4);
  EXPECT_BAD_FILE(no_locator, "", "no ZIP64 locator");
}

BOOST_AUTO_TEST_CASE(central_directory_past_eof) {
  const auto z = small_pth();
  auto b = z.file;
  put_le(b, z.eocd + 16, 0x7FFFFFF0, 4);
  EXPECT_BAD_FILE(b, "", "central directory (offset 2147483632", "extends past");
  b = z.file;
  put_le(b, z.eocd + 12, 0xFFFFFFF0, 4);  // size
  EXPECT_BAD_FILE(b, "", "central directory", "extends past");
  b = z.file;
  put_le(b, z.eocd + 16, z.cd_offset + 1, 4);
  put_le(b, z.eocd + 12, z.eocd - z.cd_offset - 1, 4);
  EXPECT_BAD_FILE(b, "", "bad central directory signature");
  b = z.file;
  put_le(b, z.cd[0] + 28, 0xFFFF, 2);  // name length
  EXPECT_BAD_FILE(b, "", "central directory entry 0 extends past the central directory");
}

BOOST_AUTO_TEST_CASE(zip64_records_past_eof_and_huge) {
  const auto z = make_pth(state_dict_pickle(small_specs()), small_storages(), {}, true);
  BOOST_TEST(parse(z.file).tensors().size() == 2u);
  const std::size_t locator = z.eocd - 20, record = locator - 56;
  auto b = z.file;
  put_le(b, locator + 8, ~std::uint64_t{0}, 8);
  EXPECT_BAD_FILE(b, "", "ZIP64 end-of-central-directory record offset 18446744073709551615 is out of bounds");
  b = z.file;
  put_le(b, record, 0, 4);
  EXPECT_BAD_FILE(b, "", "no ZIP64 end-of-central-directory signature");
  b = z.file;
  put_le(b, record + 48, std::uint64_t{1} << 62, 8);  // CD offset
  EXPECT_BAD_FILE(b, "", "central directory (offset 4611686018427387904", "extends past");
  b = z.file;
  put_le(b, record + 32, ~std::uint64_t{0}, 8);  // entry count
  EXPECT_BAD_FILE(b, "", "zip entry count 18446744073709551615 cannot fit");
  b = z.file;
  put_le(b, z.cd[1] + 46 + 14 + 4 + 16, ~std::uint64_t{0}, 8);  // ZIP64 local offset of archive/data/0
  EXPECT_BAD_FILE(b, "", "local header of archive entry 'archive/data/0' at offset 18446744073709551615",
                  "past the end of the file");
  b = z.file;
  put_le(b, z.cd[1] + 46 + 14 + 4, std::uint64_t{1} << 40, 8);  // ZIP64 size
  put_le(b, z.cd[1] + 46 + 14 + 4 + 8, std::uint64_t{1} << 40, 8);
  EXPECT_BAD_FILE(b, "", "data of archive entry 'archive/data/0'", "extends past the end of the file");
  b = z.file;
  put_le(b, z.cd[1] + 46 + 14 + 2, 16, 2);  // ZIP64 field too short for the three values
  EXPECT_BAD_FILE(b, "", "ZIP64 extra field too short for archive entry 'archive/data/0'");
  b = z.file;
  put_le(b, z.cd[1] + 46 + 14, 7, 2);  // not a ZIP64 field after all
  EXPECT_BAD_FILE(b, "", "archive entry 'archive/data/0' needs a ZIP64 extra field but has none");
  b = z.file;
  put_le(b, z.cd[1] + 46 + 14 + 2, 0xFFF0, 2);  // field longer than the extra block
  EXPECT_BAD_FILE(b, "", "malformed extra field");
}

BOOST_AUTO_TEST_CASE(entry_offset_or_size_past_eof) {
  const auto z = small_pth();
  auto b = z.file;
  put_le(b, z.cd[1] + 42, 0xFFFFFF00, 4);
  EXPECT_BAD_FILE(b, "", "local header of archive entry 'archive/data/0' at offset 4294967040",
                  "past the end of the file");
  b = z.file;
  put_le(b, z.cd[1] + 20, 0x7FFFFFFF, 4);
  put_le(b, z.cd[1] + 24, 0x7FFFFFFF, 4);
  EXPECT_BAD_FILE(b, "", "data of archive entry 'archive/data/0'",
                  "2147483647 bytes) extends past the end of the file");
  b = z.file;
  put_le(b, z.cd[0] + 20, 0x7FFFFFFF, 4);  // data.pkl
  put_le(b, z.cd[0] + 24, 0x7FFFFFFF, 4);
  EXPECT_BAD_FILE(b, "", "data of archive entry 'archive/data.pkl'", "extends past the end of the file");
  b = z.file;
  put_le(b, z.local[1] + 28, 0xFFFF, 2);  // local extra length
  EXPECT_BAD_FILE(b, "", "archive entry 'archive/data/0'", "extends past the end of the file");
  b = z.file;
  put_le(b, z.cd[1] + 42, z.local[1] + 1, 4);
  EXPECT_BAD_FILE(b, "", "no local header signature", "'archive/data/0'");
  b = z.file;
  put_le(b, z.cd[1] + 42, z.local[2], 4);  // points at another entry's local header
  EXPECT_BAD_FILE(b, "", "local header name does not match the central directory for archive entry 'archive/data/0'");
  b = z.file;
  put_le(b, z.cd[1] + 20, 4, 4);
  EXPECT_BAD_FILE(b, "", "'archive/data/0' is stored but its compressed size 4 differs from its size 24");
}

BOOST_AUTO_TEST_CASE(compressed_or_encrypted_entry) {
  const auto z = small_pth();
  auto b = z.file;
  put_le(b, z.cd[1] + 10, 8, 2);
  EXPECT_BAD_FILE(b, "", "archive entry 'archive/data/0' is compressed (zip method 8, deflate)",
                  "uncompressed (method 0)");
  b = z.file;
  put_le(b, z.cd[0] + 10, 12, 2);
  EXPECT_BAD_FILE(b, "", "archive entry 'archive/data.pkl' is compressed (zip method 12)");
  b = z.file;
  put_le(b, z.cd[0] + 8, 1, 2);
  EXPECT_BAD_FILE(b, "", "archive entry 'archive/data.pkl' is encrypted");
  // A compressed entry the reader never needs is fine.
  auto extra = make_pth(state_dict_pickle(small_specs()), small_storages(), {{"archive/notes", text_bytes("x")}});
  put_le(extra.file, extra.cd[4] + 10, 8, 2);
  BOOST_TEST(parse(extra.file).tensors().size() == 2u);
}

BOOST_AUTO_TEST_CASE(missing_or_ambiguous_data_pkl) {
  auto z = small_pth();
  auto b = z.file;
  b[z.cd[0] + 46 + 13] = std::byte{'x'};  // central name archive/data.pkx
  EXPECT_BAD_FILE(b, "", "no '<prefix>/data.pkl' entry among the 4 archive entries", "not a PyTorch checkpoint");
  const auto two = make_pth(state_dict_pickle(small_specs()), small_storages(), {{"other/data.pkl", bytes{}}});
  EXPECT_BAD_FILE(two.file, "", "several data.pkl entries", "'other/data.pkl'");
  const auto dup = make_pth(state_dict_pickle(small_specs()), small_storages(), {{"archive/version", bytes{}}});
  EXPECT_BAD_FILE(dup.file, "", "duplicate archive entry 'archive/version'");
}

BOOST_AUTO_TEST_CASE(big_endian_byteorder) {
  const auto big =
      make_pth(state_dict_pickle(small_specs()), small_storages(), {{"archive/byteorder", text_bytes("big")}});
  EXPECT_BAD_FILE(big.file, "", "big-endian", "only little-endian checkpoints are supported");
  const auto odd =
      make_pth(state_dict_pickle(small_specs()), small_storages(), {{"archive/byteorder", text_bytes("middle")}});
  EXPECT_BAD_FILE(odd.file, "", "unrecognised 'byteorder' entry 'middle'");
}

BOOST_AUTO_TEST_CASE(bad_pickle_opcodes) {
  EXPECT_BAD_FILE(with_pickle(pickle_of({0xff})), "", "data.pkl: unsupported pickle opcode 0xff (opcode at byte 2)");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'i'})), "", "unsupported pickle opcode 0x69 ('i')");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', '0'})), "", "unsupported pickle opcode 0x30 ('0')");         // POP
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 0x8b, 0, 0, 0, 0})), "", "unsupported pickle opcode 0x8b");  // LONG4
  EXPECT_BAD_FILE(with_pickle(text_bytes("}.")), "", "data.pkl: not a pickle");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x80, 6, '}', '.'})), "", "unsupported pickle protocol 6");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'K', 1, '.'})), "", "the pickled object is an int, not a state dict");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'K', 1, 'K', 2, 's', '.'})), "", "a state-dict key is an int");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'X', 1, 0, 0, 0, 'k', 'N', 's', '.'})), "k",
                  "the state-dict value is None, not a tensor");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'N', 'K', 1, 'a', '.'})), "", "APPEND on None (expected a list)");
  EXPECT_BAD_FILE(with_pickle(pickle_of({']', 'K', 1, 'N', 's', '.'})), "", "SETITEM on a list (expected a dict)");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', '(', 'K', 1, 'u', '.'})), "", "SETITEMS with an odd number of items");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'h', 3, '.'})), "", "memo key 3 is not defined");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'N', ')', 'R', '.'})), "", "REDUCE on None, not a callable");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'K', 1, 'N', 'b', '.'})), "", "BUILD on an int is not supported");
}

BOOST_AUTO_TEST_CASE(disallowed_globals) {
  pickle_writer w;
  w.proto(2).global("os", "system").str("echo pwned").op(0x85).op('R').op('.');
  EXPECT_BAD_FILE(with_pickle(w.out), "", "disallowed pickle GLOBAL 'os system'", "no code is executed");
  pickle_writer s;
  s.proto(4).op(0x8c).op(8).text("builtins").op(0x8c).op(4).text("eval").op(0x93).op('.');
  EXPECT_BAD_FILE(with_pickle(s.out), "", "disallowed pickle GLOBAL 'builtins eval'");
  pickle_writer near;
  near.proto(2).global("torch._utils", "_rebuild_tensor").op('.');  // the old v1 rebuild is not whitelisted
  EXPECT_BAD_FILE(with_pickle(near.out), "", "disallowed pickle GLOBAL 'torch._utils _rebuild_tensor'");
  pickle_writer ctl;
  ctl.proto(2).global("torch\x01", "x\xff").op('.');
  EXPECT_BAD_FILE(with_pickle(ctl.out), "", "disallowed pickle GLOBAL 'torch\\x01 x\\xff'");
  pickle_writer od;
  od.proto(2).global("collections", "OrderedDict").op(']').op(0x85).op('R').op('.');
  EXPECT_BAD_FILE(with_pickle(od.out), "", "OrderedDict called with arguments");
  pickle_writer st;
  st.proto(2).global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_BAD_FILE(with_pickle(st.out), "", "a torch storage type cannot be called");
  pickle_writer nw;
  nw.proto(2).global("torch._utils", "_rebuild_tensor_v2").op(')').op(0x81).op('.');
  EXPECT_BAD_FILE(with_pickle(nw.out), "", "NEWOBJ is supported only for collections.OrderedDict");
  pickle_writer unterminated;
  unterminated.proto(2).op('c').text("collections\nOrderedDict");
  EXPECT_BAD_FILE(with_pickle(unterminated.out), "", "unterminated GLOBAL");
}

BOOST_AUTO_TEST_CASE(storage_problems) {
  auto specs = small_specs();
  specs[1].key = "7";
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle(specs)), "", "storage key '7' has no archive entry 'archive/data/7'");
  specs = small_specs();
  specs[0].storage_numel = 7;  // the entry holds 6 floats
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle(specs)), "",
                  "storage '0' claims 7 elements of F32 but its entry 'archive/data/0' holds only 24 bytes");
  specs[0].storage_numel = std::int64_t{1} << 62;
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle(specs)), "", "storage '0' claims 4611686018427387904 elements");
  specs[0].storage_numel = -1;
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle(specs)), "", "storage '0' claims -1 elements");
  pickle_writer w;  // a persistent id that is not a storage tuple
  w.proto(2).str("storage").op(0x85).op('Q').op('.');
  EXPECT_BAD_FILE(with_pickle(w.out), "", "persistent id is not a ('storage', type, key, location, numel) tuple");
  pickle_writer t;
  t.proto(2).op('(').str("storage").global("collections", "OrderedDict").str("0").str("cpu").integer(1).op('t');
  t.op('Q').op('.');
  EXPECT_BAD_FILE(with_pickle(t.out), "", "persistent id's storage type is not a torch storage type");
}

BOOST_AUTO_TEST_CASE(tensor_past_its_storage) {
  const std::map<std::string, bytes> one{{"0", raw<float>({1, 2, 3, 4, 5, 6})}};
  auto bad = [&](tensor_spec s, std::initializer_list<std::string_view> needles, int line) {
    s.name = "w";
    s.storage_type = "FloatStorage";
    s.key = "0";
    s.storage_numel = 6;
    const auto file = make_pth(state_dict_pickle({s}), one).file;
    expect_error([&] { (void)parse(file); }, "w", needles, line);
  };
  bad({"", "", "", 0, 0, {2, 4}, {4, 1}},
      {"tensor extends past the end of its storage", "storage '0' of 6 elements", "size (2, 4), stride (4, 1)"},
      __LINE__);
  bad({"", "", "", 0, 1, {6}, {1}}, {"tensor extends past the end of its storage", "offset 1"}, __LINE__);
  bad({"", "", "", 0, 6, {1}, {1}}, {"tensor extends past the end of its storage"}, __LINE__);
  bad({"", "", "", 0, 7, {0}, {1}}, {"storage offset is outside the storage"}, __LINE__);
  bad({"", "", "", 0, -1, {1}, {1}}, {"storage offset is outside the storage"}, __LINE__);
  bad({"", "", "", 0, 0, {2, 3}, {1, 3}}, {"tensor extends past the end of its storage"}, __LINE__);
  bad({"", "", "", 0, 0, {2}, {std::int64_t{1} << 62}}, {"tensor extends past the end of its storage"}, __LINE__);
  bad({"", "", "", 0, 0, {3}, {-1}}, {"negative stride"}, __LINE__);
  bad({"", "", "", 0, 0, {-3}, {1}}, {"negative size"}, __LINE__);
  bad({"", "", "", 0, 0, {std::int64_t{1} << 40, std::int64_t{1} << 40}, {0, 0}}, {"shape is too large"}, __LINE__);
  EXPECT_BAD_FILE(make_pth(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {2, 3}, {1}}}), one).file, "",
                  "_rebuild_tensor_v2's size (2, 3) and stride (1,) differ in length");
  // A stride-0 expansion may be valid but needs a copy: all copies together must stay within the file size.
  bad({"", "", "", 0, 0, {std::int64_t{1} << 30}, {0}},
      {"non-contiguous tensor needs a 4294967296-byte contiguous copy"}, __LINE__);
}

BOOST_AUTO_TEST_CASE(duplicate_state_dict_key) {
  auto specs = small_specs();
  specs[1].name = "a";
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle(specs)), "a", "duplicate state-dict key");
}

BOOST_AUTO_TEST_CASE(stack_underflow) {
  EXPECT_BAD_FILE(with_pickle(pickle_of({'.'})), "", "pickle stack underflow");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x85, '.'})), "", "pickle stack underflow (opcode at byte 2)");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'N', '(', 0x85, '.'})), "", "pickle stack underflow");  // below a MARK
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'R', '.'})), "", "pickle stack underflow");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'u', '.'})), "", "no MARK on the pickle stack");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'q', 0, '.'})), "", "pickle stack underflow (no object on top");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'(', '}', 's', '.'})), "", "pickle stack underflow");
}

BOOST_AUTO_TEST_CASE(unterminated_pickle) {
  auto p = state_dict_pickle(small_specs());
  p.pop_back();  // STOP
  EXPECT_BAD_FILE(with_pickle(p), "", "the pickle ends without a STOP opcode");
  // Cut at every byte: an error each time, never a crash.
  const auto full = state_dict_pickle(small_specs());
  for (std::size_t n = 0; n < full.size(); ++n)
    expect_error([&] { (void)parse(with_pickle(bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)))); },
                 "", {"data.pkl"}, static_cast<int>(n));
}

BOOST_AUTO_TEST_CASE(huge_length_fields) {
  EXPECT_BAD_FILE(with_pickle(pickle_of({'X', 0xff, 0xff, 0xff, 0xff, 'a'})), "",
                  "truncated pickle: needs 4294967295 more bytes but only 1 remain");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'B', 0xff, 0xff, 0xff, 0x7f})), "", "needs 2147483647 more bytes");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})), "",
                  "needs 18446744073709551615 more bytes");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8c, 200, 'a'})), "", "needs 200 more bytes");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8a, 255, 1})), "", "needs 255 more bytes");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x95, 0, 0, 0, 0, 0, 0, 0, 1, '.'})), "", "FRAME of 72057594037927936 bytes");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'}', 'j', 0xff, 0xff, 0xff, 0xff, '.'})), "",
                  "memo key 4294967295 is not defined");
  EXPECT_BAD_FILE(with_pickle(pickle_of({'J', 1, 2})), "", "truncated pickle: needs 4 more bytes but only 2 remain");
  // LONG1 beyond 64 bits; 9 bytes of pure sign extension are fine.
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, '.'})), "", "does not fit in 64 bits");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, '.'})), "", "does not fit in 64 bits");
  EXPECT_BAD_FILE(with_pickle(pickle_of({0x8a, 9, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '.'})), "",
                  "the pickled object is an int");
}

// Deeply nested tuples (no recursion anywhere) and a very deep stack of marks.
BOOST_AUTO_TEST_CASE(deep_nesting_and_deep_stack) {
  pickle_writer w;
  w.proto(2).op('N');
  for (int i = 0; i < 200000; ++i) w.op(0x85);
  w.op('.');
  EXPECT_BAD_FILE(with_pickle(w.out), "", "the pickled object is a tuple, not a state dict");
  pickle_writer m;
  m.proto(2);
  for (std::size_t i = 0; i < io::pth_detail::unpickler::max_stack_depth + 1; ++i) m.op('(');
  EXPECT_BAD_FILE(with_pickle(m.out), "", "pickle stack deeper than 1048576 entries");
}

// Every byte of a small archive replaced by a few values: each result is a checkpoint or an rwkv::error.
BOOST_AUTO_TEST_CASE(byte_mutations_never_crash) {
  const auto z = small_pth();
  std::size_t ok = 0, errors = 0;
  for (std::size_t i = 0; i < z.file.size(); ++i)
    for (unsigned v : {0x00u, 0xffu, 0x80u, 0x7fu, 0x01u}) {
      if (z.file[i] == static_cast<std::byte>(v)) continue;
      auto b = z.file;
      b[i] = static_cast<std::byte>(v);
      try {
        const auto f = parse(b);
        for (const auto& t : f.tensors()) (void)std::count(t.data, t.data + t.nbytes, std::byte{0});  // readable
        ++ok;
      } catch (const rwkv::error& e) {
        ++errors;
        BOOST_CHECK_EQUAL(e.file(), crafted_name);
      } catch (const std::exception& e) {
        BOOST_ERROR("byte " << i << " = " << v << ": not an rwkv::error: " << e.what());
      }
    }
  BOOST_TEST_MESSAGE(ok << " mutated files parsed, " << errors << " rejected");
  BOOST_TEST(errors > 0u);
}

BOOST_AUTO_TEST_CASE(too_many_dimensions_and_pickle_size_limit) {
  const std::vector<std::int64_t> ones(33, 1);
  EXPECT_BAD_FILE(with_pickle(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, ones, ones}})), "",
                  "_rebuild_tensor_v2 with 33 dimensions (at most 32 are supported)");
  const std::vector<std::int64_t> ok(32, 1);
  BOOST_TEST(parse(with_pickle(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, ok, ok}}))).at("w").shape.size() ==
             32u);
  auto big = state_dict_pickle(small_specs());
  big.resize(io::pth_file::max_pickle_bytes + 1, std::byte{'N'});  // after STOP: never read
  EXPECT_BAD_FILE(with_pickle(big), "", "data.pkl is 16777217 bytes, more than the 16777216-byte limit");
}

// Memoised arguments reused many times cost constant memory and time per call (no copies of tuples).
BOOST_AUTO_TEST_CASE(memoised_arguments_reused) {
  pickle_writer w;
  w.proto(2).op('}').op('(');
  w.str("w").global("torch._utils", "_rebuild_tensor_v2").op('q').op(1);
  w.op('(').op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(6).op('t').op('Q');
  w.integer(0).op('(');
  for (int i = 0; i < 32; ++i) w.integer(1);
  w.op('t').op('q').op(2).op('h').op(2).op(0x89).empty_ordered_dict().op('t').op('q').op(3).op('R');
  w.op('u');
  // 200000 more tensors from the same memoised arguments, each given to BUILD on the dict (ignored state).
  for (int i = 0; i < 200000; ++i) w.op('h').op(1).op('h').op(3).op('R').op('b');
  w.op('.');
  const auto f = parse(with_pickle(w.out));
  BOOST_REQUIRE_EQUAL(f.tensors().size(), 1u);
  BOOST_TEST(f.at("w").shape.size() == 32u);
}

// A long memoised storage key given to many persistent loads is resolved once, never copied per load.
BOOST_AUTO_TEST_CASE(memoised_storage_key_reused) {
  const std::string key(60000, 'k');
  pickle_writer w;
  w.proto(2).op('}');
  w.op('(')
      .str("storage")
      .global("torch", "FloatStorage")
      .str(key)
      .str("cpu")
      .integer(1)
      .op('t')
      .op('q')
      .op(1)
      .op('Q')
      .op('b');
  for (int i = 0; i < 100000; ++i) w.op('h').op(1).op('Q').op('b');  // BUILD on the dict ignores the storage
  w.op('.');
  const auto f = parse(make_pth(w.out, {{key, raw<float>({1})}}).file);
  BOOST_TEST(f.tensors().empty());
  pickle_writer too_long;
  too_long.proto(2).op('(').str("storage").global("torch", "FloatStorage").str(std::string(70000, 'k')).str("cpu");
  too_long.integer(1).op('t').op('Q').op('.');
  EXPECT_BAD_FILE(with_pickle(too_long.out), "", "storage key of 70000 bytes names no zip entry");
}

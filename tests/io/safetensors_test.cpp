// safetensors reader / writer (include/rwkv/io/safetensors.hpp) and weight_reader
// (include/rwkv/io/weight_reader.hpp): round trips, one test per malformed-file case (each checking that the
// rwkv::error names the problem, the file and the tensor), weight conversion, NaN/Inf rejection, zero-copy.
#define BOOST_TEST_MODULE safetensors
#include <boost/test/unit_test.hpp>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <rwkv/core/error.hpp>
#include <rwkv/core/half.hpp>
#include <rwkv/core/tensor.hpp>
#include <rwkv/io/mapped_file.hpp>
#include <rwkv/io/safetensors.hpp>
#include <rwkv/io/weight_reader.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using bytes = std::vector<std::byte>;
using namespace std::string_literals;

constexpr const char* crafted_name = "crafted.safetensors";

// ---- building files -------------------------------------------------------------------------------------

// The 8-byte little-endian length, then `header` verbatim (no padding), then `data`.
bytes craft(std::string_view header, const bytes& data = {}) {
  bytes out(8);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xFF);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// A declared header length followed by `rest` (which need not be that long).
bytes craft_declared(std::uint64_t declared, std::string_view rest) {
  bytes out(8);
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((declared >> (8 * i)) & 0xFF);
  for (char c : rest) out.push_back(static_cast<std::byte>(c));
  return out;
}

bytes zeros(std::size_t n) { return bytes(n, std::byte{0}); }

template <class T>
bytes raw(std::initializer_list<T> values) {
  bytes out(values.size() * sizeof(T));
  if (values.size()) std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

template <class T>
io::tensor_to_write tensor(std::string name, std::vector<std::int64_t> shape, std::vector<T> values) {
  return io::tensor_to_write::from<T>(std::move(name), std::move(shape), std::span<const T>(values));
}

io::tensor_to_write bf16_tensor(std::string name, std::vector<std::int64_t> shape, std::vector<std::uint16_t> bits) {
  io::tensor_to_write t{std::move(name), dtype::bf16, std::move(shape), bytes(bits.size() * 2)};
  if (!bits.empty()) std::memcpy(t.bytes.data(), bits.data(), t.bytes.size());
  return t;
}

io::tensor_to_write f16_tensor(std::string name, std::vector<std::int64_t> shape, std::vector<std::uint16_t> bits) {
  auto t = bf16_tensor(std::move(name), std::move(shape), std::move(bits));
  t.type = dtype::f16;
  return t;
}

io::safetensors_file parse(const bytes& b) { return io::safetensors_file::from_bytes(b, crafted_name); }

// One-tensor header: {"<name>": {"dtype": ..., "shape": ..., "data_offsets": ...}}.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

const std::byte* file_base(const io::safetensors_file& f) {
  return std::static_pointer_cast<const io::mapped_file>(f.owner())->data();
}
std::size_t file_size(const io::safetensors_file& f) {
  return std::static_pointer_cast<const io::mapped_file>(f.owner())->size();
}
bool inside_file(const io::safetensors_file& f, const void* p) {
  const auto* b = static_cast<const std::byte*>(p);
  return b >= file_base(f) && b < file_base(f) + file_size(f);
}

io::weight_reader reader_of(const io::safetensors_file& f, io::load_options o = {}) {
  return io::weight_reader(f.path(), f.tensors(), f.owner(), o);
}

float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }

// ---- checking errors ------------------------------------------------------------------------------------

// Runs `f`, requires an rwkv::error whose what() contains every needle and names `file` and, when not empty,
// `tensor_name` (which must also be e.tensor()).
void expect_error(const std::function<void()>& f, const std::string& file, const std::string& tensor_name,
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
      BOOST_CHECK_EQUAL(e.tensor(), tensor_name);
      if (!tensor_name.empty())
        BOOST_CHECK_MESSAGE(what.find("'" + tensor_name + "'") != std::string::npos,
                            "message \"" << what << "\" does not name tensor '" << tensor_name << "'");
      BOOST_CHECK_EQUAL(e.file(), file);
      if (!file.empty())
        BOOST_CHECK_MESSAGE(what.find(file) != std::string::npos,
                            "message \"" << what << "\" does not name file " << file);
    } catch (const std::exception& e) {
      BOOST_ERROR("expected rwkv::error, got another exception: " << e.what());
    }
  }
}

// A malformed file: parsing it must fail naming the problem (and the tensor, where given).
#define EXPECT_BAD_FILE(file_bytes, tensor_name, ...) \
  expect_error([&] { (void)parse(file_bytes); }, crafted_name, tensor_name, {__VA_ARGS__}, __LINE__)
#define EXPECT_RWKV_ERROR(stmt, file, tensor_name, ...) \
  expect_error([&] { stmt; }, file, tensor_name, {__VA_ARGS__}, __LINE__)

// A valid file with two F32 tensors "a" [2] and "b" [3] (8-byte aligned data, 20 data bytes).
bytes two_tensor_file() {
  return io::to_safetensors_bytes({tensor<float>("a", {2}, {1, 2}), tensor<float>("b", {3}, {3, 4, 5})});
}

}  // namespace

// =========================================================================================================
BOOST_AUTO_TEST_SUITE(valid_files)

BOOST_AUTO_TEST_CASE(round_trip_dtypes_shapes_metadata) {
  const std::vector<float> a_vals{1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
  const std::vector<std::uint16_t> b_bits{0x3F80, 0xC040, 0x0001, 0x7F7F};
  const std::vector<std::uint16_t> c_bits{0x3C00, 0x7BFF, 0x8001, 0x0400};
  const std::vector<std::int32_t> d_vals{-1, 0, std::numeric_limits<std::int32_t>::min(), 123456789};
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "quotes \" and \\ and \xc3\xbcnicode"}};

  const std::vector<io::tensor_to_write> in{
      tensor<float>("a", {2, 3}, a_vals),   bf16_tensor("b", {4}, b_bits),
      f16_tensor("c", {2, 2}, c_bits),      tensor<std::int32_t>("d", {1, 4}, d_vals),
      tensor<float>("scalar", {}, {42.5f}), tensor<float>("empty", {0, 4}, {}),
      bf16_tensor("empty2", {3, 0, 2}, {}),
  };
  const bytes file_bytes = io::to_safetensors_bytes(in, meta);

  // Layout: header length, space-padded JSON header, data starting on an 8-byte boundary.
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<std::uint64_t>(file_bytes[static_cast<std::size_t>(i)]);
  BOOST_TEST((8 + n) % 8 == 0u);
  BOOST_TEST(static_cast<char>(file_bytes[8]) == '{');
  const std::string header(reinterpret_cast<const char*>(file_bytes.data() + 8), n);
  BOOST_TEST(nlohmann::json::parse(header).is_object());
  BOOST_TEST(file_bytes.size() == 8 + n + 24 + 8 + 8 + 16 + 4);

  const auto f = parse(file_bytes);
  BOOST_TEST(f.path() == crafted_name);
  BOOST_TEST((f.metadata() == meta));
  BOOST_REQUIRE_EQUAL(f.tensors().size(), 7u);
  // Order of data offsets (the two empty tensors both sit at the end).
  const char* order[] = {"a", "b", "c", "d", "scalar"};
  for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(f.tensors()[i].name == order[i]);
  BOOST_TEST(f.find("__metadata__") == nullptr);
  BOOST_TEST(f.find("missing") == nullptr);

  const std::byte* data_start = file_base(f) + 8 + n;
  BOOST_TEST(f.at("a").data == data_start);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(data_start) % 8 == 0u);

  for (const auto& t : in) {
    BOOST_TEST_CONTEXT("tensor " << t.name) {
      const auto* v = f.find(t.name);
      BOOST_REQUIRE(v != nullptr);
      BOOST_TEST(v->name == t.name);
      BOOST_TEST((v->type == t.type));
      BOOST_TEST(v->shape == t.shape, boost::test_tools::per_element());
      BOOST_TEST(v->nbytes == t.bytes.size());
      BOOST_TEST(v->data >= data_start);
      BOOST_TEST(v->data + v->nbytes <= file_base(f) + file_size(f));
      if (!t.bytes.empty()) BOOST_TEST(std::memcmp(v->data, t.bytes.data(), t.bytes.size()) == 0);
    }
  }
  BOOST_TEST(f.at("scalar").numel() == 1);
  BOOST_TEST(load_as_float(f.at("scalar"), 0) == 42.5f);
  BOOST_TEST(f.at("empty").numel() == 0);
  BOOST_TEST(f.at("empty2").numel() == 0);
  for (std::size_t i = 0; i < a_vals.size(); ++i) BOOST_TEST(load_as_float(f.at("a"), i) == a_vals[i]);
  BOOST_TEST(load_as_float(f.at("b"), 1) == -3.0f);
  BOOST_TEST(load_as_float(f.at("c"), 1) == 65504.0f);
  BOOST_TEST(std::signbit(load_as_float(f.at("a"), 4)));
}

BOOST_AUTO_TEST_CASE(empty_and_metadata_only_files) {
  const auto empty = parse(io::to_safetensors_bytes({}));
  BOOST_TEST(empty.tensors().empty());
  BOOST_TEST(empty.metadata().empty());

  const auto meta_only = parse(io::to_safetensors_bytes({}, {{"k", "v"}}));
  BOOST_TEST(meta_only.tensors().empty());
  BOOST_TEST(meta_only.metadata().at("k") == "v");

  // Unpadded headers and tensors listed out of data order are fine; tensors() comes back in offset order.
  const auto f =
      parse(craft("{" + entry("second", "F32", "[1]", "[4,8]") + "," + entry("first", "F32", "[1]", "[0,4]") + "}",
                  raw<float>({1.0f, 2.0f})));
  BOOST_REQUIRE_EQUAL(f.tensors().size(), 2u);
  BOOST_TEST(f.tensors()[0].name == "first");
  BOOST_TEST(f.tensors()[1].name == "second");
  BOOST_TEST(load_as_float(f.at("second"), 0) == 2.0f);
}

BOOST_AUTO_TEST_CASE(at_names_missing_tensor) {
  const auto f = parse(two_tensor_file());
  BOOST_TEST(f.at("b").numel() == 3);
  EXPECT_RWKV_ERROR((void)f.at("nope"), crafted_name, "nope", "tensor not found");
}

BOOST_AUTO_TEST_CASE(save_and_open_file) {
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  const auto path =
      std::filesystem::temp_directory_path() / ("rwkvpp_safetensors_test_" + std::to_string(stamp) + ".safetensors");
  const std::vector<io::tensor_to_write> in{tensor<float>("w", {2, 2}, {1, 2, 3, 4}), bf16_tensor("v", {1}, {0x3F80})};
  io::save_safetensors(path, in, {{"format", "pt"}});
  {
    const auto f = io::safetensors_file::open(path);
    BOOST_TEST(f.path() == path.string());
    BOOST_TEST(f.metadata().at("format") == "pt");
    BOOST_REQUIRE_EQUAL(f.tensors().size(), 2u);
    BOOST_TEST(load_as_float(f.at("w"), 3) == 4.0f);
    BOOST_TEST(load_as_float(f.at("v"), 0) == 1.0f);
    // The saved file is byte-identical to the in-memory serialisation.
    const auto want = io::to_safetensors_bytes(in, {{"format", "pt"}});
    BOOST_REQUIRE_EQUAL(file_size(f), want.size());
    BOOST_TEST(std::memcmp(file_base(f), want.data(), want.size()) == 0);
  }
  std::filesystem::remove(path);

  const auto bad = std::filesystem::temp_directory_path() / "rwkvpp_no_such_dir" / "x" / "y.safetensors";
  EXPECT_RWKV_ERROR(io::save_safetensors(bad, in), bad.string(), "", "cannot open for writing");
  EXPECT_RWKV_ERROR((void)io::safetensors_file::open(bad), bad.string(), "", "no such file");
}

BOOST_AUTO_TEST_CASE(writer_rejects_byte_count_mismatch) {
  io::tensor_to_write t{"bad", dtype::f32, {3}, zeros(8)};
  EXPECT_RWKV_ERROR((void)io::to_safetensors_bytes({t}), "", "bad", "byte count does not match shape [3]");
}

BOOST_AUTO_TEST_SUITE_END()

// =========================================================================================================
BOOST_AUTO_TEST_SUITE(malformed_files)

BOOST_AUTO_TEST_CASE(shorter_than_8_bytes) {
  EXPECT_BAD_FILE(bytes{}, "", "truncated safetensors file: 0 bytes", "need at least 8");
  EXPECT_BAD_FILE(zeros(1), "", "truncated safetensors file: 1 bytes");
  EXPECT_BAD_FILE(zeros(7), "", "truncated safetensors file: 7 bytes", "need at least 8");
}

BOOST_AUTO_TEST_CASE(header_length_larger_than_file) {
  EXPECT_BAD_FILE(craft_declared(100, "{}"), "", "truncated safetensors file",
                  "header length 100 but only 2 bytes follow");
  EXPECT_BAD_FILE(craft_declared(3, "{}"), "", "header length 3 but only 2 bytes follow");
  EXPECT_BAD_FILE(craft_declared(1, ""), "", "header length 1 but only 0 bytes follow");
  // A valid file cut inside its header.
  const auto good = two_tensor_file();
  const bytes cut(good.begin(), good.begin() + 20);
  EXPECT_BAD_FILE(cut, "", "truncated safetensors file: header length", "but only 12 bytes follow");
}

BOOST_AUTO_TEST_CASE(header_length_over_100mb) {
  EXPECT_BAD_FILE(craft_declared(200'000'000, "{}"), "", "header length 200000000", "exceeds the 100 MB limit");
  EXPECT_BAD_FILE(craft_declared(io::safetensors_file::max_header_bytes + 1, "{}"), "", "exceeds the 100 MB limit");
  EXPECT_BAD_FILE(craft_declared(~std::uint64_t{0}, "{}"), "", "exceeds the 100 MB limit");
  // At the limit it is the truncation that is reported, not the limit.
  EXPECT_BAD_FILE(craft_declared(io::safetensors_file::max_header_bytes, "{}"), "", "truncated safetensors file");
}

BOOST_AUTO_TEST_CASE(header_too_short) {
  EXPECT_BAD_FILE(craft(""), "", "header too short");
  EXPECT_BAD_FILE(craft("{"), "", "header too short");
}

BOOST_AUTO_TEST_CASE(header_not_json) {
  EXPECT_BAD_FILE(craft("{not json}"), "", "header is not valid JSON");
  EXPECT_BAD_FILE(craft("{\"a\":}"), "", "header is not valid JSON");
  EXPECT_BAD_FILE(craft("{\"a\":{}"), "", "header is not valid JSON");
  EXPECT_BAD_FILE(craft("{} trailing"), "", "header is not valid JSON");
  // A NUL byte must not end the header early (whatever follows it would go unchecked).
  EXPECT_BAD_FILE(craft("{}\0\0"s), "", "header is not valid JSON", "NUL byte at offset 2");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":{}}\0{garbage"s), "", "header is not valid JSON", "NUL byte");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":{\"k\":\"a\0b\"}}"s), "", "header is not valid JSON");
}

BOOST_AUTO_TEST_CASE(header_not_an_object) {
  EXPECT_BAD_FILE(craft("[1,2]"), "", "does not start with '{'");
  EXPECT_BAD_FILE(craft("\"a string\""), "", "does not start with '{'");
  EXPECT_BAD_FILE(craft("42"), "", "does not start with '{'");
  EXPECT_BAD_FILE(craft("null"), "", "does not start with '{'");
  EXPECT_BAD_FILE(craft(" {}"), "", "does not start with '{'");
  // Random bytes (e.g. a PyTorch zip) are rejected the same way.
  EXPECT_BAD_FILE(craft("PK\x03\x04"), "", "does not start with '{'", "not a safetensors file");
}

BOOST_AUTO_TEST_CASE(entry_not_an_object) {
  EXPECT_BAD_FILE(craft("{\"t\":5}"), "t", "header entry is not an object");
  EXPECT_BAD_FILE(craft("{\"t\":[\"F32\",[1],[0,4]]}", zeros(4)), "t", "header entry is not an object");
}

BOOST_AUTO_TEST_CASE(entry_missing_dtype) {
  EXPECT_BAD_FILE(craft("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)), "t", "'dtype'");
  EXPECT_BAD_FILE(craft("{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", zeros(4)), "t",
                  "missing or non-string 'dtype'");
}

BOOST_AUTO_TEST_CASE(entry_missing_shape) {
  EXPECT_BAD_FILE(craft("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", zeros(4)), "t", "'shape'");
  EXPECT_BAD_FILE(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", zeros(4)), "t",
                  "missing or non-array 'shape'");
}

BOOST_AUTO_TEST_CASE(entry_missing_data_offsets) {
  EXPECT_BAD_FILE(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", zeros(4)), "t", "'data_offsets'");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[4]") + "}", zeros(4)), "t",
                  "'data_offsets' must be [begin, end]");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[0,4,8]") + "}", zeros(4)), "t",
                  "'data_offsets' must be [begin, end]");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "{\"a\":0,\"b\":4}") + "}", zeros(4)), "t",
                  "'data_offsets' must be [begin, end]");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[-1,3]") + "}", zeros(4)), "t",
                  "data_offsets must be non-negative integers");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[0,4.0]") + "}", zeros(4)), "t",
                  "data_offsets must be non-negative integers");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[\"0\",\"4\"]") + "}", zeros(4)), "t",
                  "data_offsets must be non-negative integers");
}

BOOST_AUTO_TEST_CASE(unknown_dtype) {
  EXPECT_BAD_FILE(craft("{" + entry("t", "F8_E4M3", "[4]", "[0,4]") + "}", zeros(4)), "t", "unknown dtype 'F8_E4M3'");
  EXPECT_BAD_FILE(craft("{" + entry("t", "float32", "[1]", "[0,4]") + "}", zeros(4)), "t", "unknown dtype 'float32'");
  EXPECT_BAD_FILE(craft("{" + entry("t", "f32", "[1]", "[0,4]") + "}", zeros(4)), "t", "unknown dtype 'f32'");
}

BOOST_AUTO_TEST_CASE(bad_shape_entries) {
  for (const char* shape : {"[-1]", "[2,-2]", "[2.5]", "[1.0]", "[\"4\"]", "[null]", "[[4]]", "[true]"})
    BOOST_TEST_CONTEXT("shape " << shape) {
      EXPECT_BAD_FILE(craft("{" + entry("t", "F32", shape, "[0,16]") + "}", zeros(16)), "t",
                      "shape entries must be non-negative integers");
    }
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1048576,1048576,1048576]", "[0,4]") + "}", zeros(4)), "t",
                  "is too large");
}

BOOST_AUTO_TEST_CASE(begin_after_end) {
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[1]", "[8,4]") + "}", zeros(8)), "t", "data_offsets begin 8 > end 4");
}

BOOST_AUTO_TEST_CASE(end_past_buffer_truncated_file) {
  const auto good = two_tensor_file();
  BOOST_REQUIRE_NO_THROW(parse(good));
  for (std::size_t cut : {1u, 4u, 12u}) {
    BOOST_TEST_CONTEXT("cut " << cut << " bytes") {
      const bytes truncated(good.begin(), good.end() - static_cast<std::ptrdiff_t>(cut));
      EXPECT_BAD_FILE(truncated, "b", "data_offsets end 20 is past the end of the data buffer",
                      "(" + std::to_string(20 - cut) + " bytes; file truncated?)");
    }
  }
  // All data gone: the first tensor is past the end as well (whichever the reader meets first is named).
  const bytes no_data(good.begin(), good.end() - 20);
  BOOST_CHECK_THROW(parse(no_data), rwkv::error);
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[2]", "[0,8]") + "}", zeros(4)), "t",
                  "data_offsets end 8 is past the end of the data buffer (4 bytes");
}

BOOST_AUTO_TEST_CASE(span_size_not_matching_shape) {
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[2]", "[0,4]") + "}", zeros(4)), "t",
                  "data_offsets span 4 bytes but shape [2] of F32 needs 8");
  EXPECT_BAD_FILE(craft("{" + entry("t", "BF16", "[2,3]", "[0,16]") + "}", zeros(16)), "t",
                  "data_offsets span 16 bytes but shape [2, 3] of BF16 needs 12");
  EXPECT_BAD_FILE(craft("{" + entry("t", "F32", "[]", "[0,8]") + "}", zeros(8)), "t",
                  "data_offsets span 8 bytes but shape [] of F32 needs 4");
  EXPECT_BAD_FILE(craft("{" + entry("t", "I32", "[0]", "[0,4]") + "}", zeros(4)), "t",
                  "data_offsets span 4 bytes but shape [0] of I32 needs 0");
}

BOOST_AUTO_TEST_CASE(overlapping_tensors) {
  EXPECT_BAD_FILE(
      craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", zeros(12)), "b",
      "tensor data overlaps the previous tensor");
  // Two names aliasing the same bytes (either may be the one reported).
  try {
    (void)parse(
        craft("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[0,4]") + "}", zeros(4)));
    BOOST_ERROR("aliased tensors accepted");
  } catch (const rwkv::error& e) {
    BOOST_TEST(std::string(e.what()).find("overlaps") != std::string::npos, e.what());
    BOOST_TEST((e.tensor() == "a" || e.tensor() == "b"));
  }
  // An empty tensor placed inside another one.
  EXPECT_BAD_FILE(
      craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("e", "F32", "[0]", "[4,4]") + "}", zeros(8)), "e",
      "overlaps");
}

BOOST_AUTO_TEST_CASE(gap_between_tensors) {
  EXPECT_BAD_FILE(
      craft("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}", zeros(12)), "b",
      "gap of 4 bytes before this tensor's data");
  // A gap before the first tensor.
  EXPECT_BAD_FILE(craft("{" + entry("a", "F32", "[1]", "[4,8]") + "}", zeros(8)), "a", "gap of 4 bytes");
}

BOOST_AUTO_TEST_CASE(trailing_bytes_after_last_tensor) {
  EXPECT_BAD_FILE(craft("{" + entry("a", "F32", "[1]", "[0,4]") + "}", zeros(8)), "",
                  "4 bytes of data after the last tensor");
  EXPECT_BAD_FILE(craft("{}", zeros(3)), "", "3 bytes of data after the last tensor");
  auto good = two_tensor_file();
  good.push_back(std::byte{0});
  EXPECT_BAD_FILE(good, "", "1 bytes of data after the last tensor");
}

BOOST_AUTO_TEST_CASE(duplicate_tensor_names) {
  EXPECT_BAD_FILE(
      craft("{" + entry("t", "F32", "[1]", "[0,4]") + "," + entry("t", "F32", "[1]", "[4,8]") + "}", zeros(8)), "t",
      "duplicate tensor name");
  // Even when the duplicate would otherwise make a consistent file on its own.
  EXPECT_BAD_FILE(
      craft("{" + entry("x", "F32", "[1]", "[0,4]") + "," + entry("x", "F32", "[1]", "[0,4]") + "}", zeros(4)), "x",
      "duplicate tensor name");
  // The same key inside different entries is not a duplicate tensor name.
  BOOST_CHECK_NO_THROW(
      parse(craft("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[4,8]") + "}", zeros(8))));
}

BOOST_AUTO_TEST_CASE(metadata_with_non_string_value) {
  EXPECT_BAD_FILE(craft("{\"__metadata__\":{\"ok\":\"v\",\"k\":1}}"), "",
                  "__metadata__ value for key 'k' is not a string");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":{\"k\":null}}"), "", "key 'k' is not a string");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":{\"k\":{\"nested\":\"x\"}}}"), "", "key 'k' is not a string");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":[\"a\"]}"), "", "__metadata__ is not an object");
  EXPECT_BAD_FILE(craft("{\"__metadata__\":\"text\"}"), "", "__metadata__ is not an object");
  const auto ok = parse(craft("{\"__metadata__\":{\"k\":\"1\"}}"));
  BOOST_TEST(ok.metadata().at("k") == "1");
}

BOOST_AUTO_TEST_SUITE_END()

// =========================================================================================================
BOOST_AUTO_TEST_SUITE(weight_reader)

BOOST_AUTO_TEST_CASE(missing_tensor_names_tensor_and_file) {
  const auto f = parse(two_tensor_file());
  auto r = reader_of(f);
  BOOST_TEST(r.path() == crafted_name);
  BOOST_TEST(r.has("a"));
  BOOST_TEST(!r.has("blocks.0.att.r_k"));
  EXPECT_RWKV_ERROR((void)r.vector("blocks.0.att.r_k", 2), crafted_name, "blocks.0.att.r_k", "missing tensor");
  EXPECT_RWKV_ERROR((void)r.weight<float>("head.weight", 1, 2), crafted_name, "head.weight", "missing tensor");
  EXPECT_RWKV_ERROR((void)r.peek("emb.weight"), crafted_name, "emb.weight", "missing tensor");
  EXPECT_RWKV_ERROR((void)r.dense("x", 1, 1), crafted_name, "x", "missing tensor");
}

BOOST_AUTO_TEST_CASE(shape_mismatch) {
  const auto f = parse(
      io::to_safetensors_bytes({tensor<float>("v", {4}, {1, 2, 3, 4}), tensor<float>("w", {2, 3}, {1, 2, 3, 4, 5, 6}),
                                tensor<float>("w3", {1, 2, 3}, {1, 2, 3, 4, 5, 6})}));
  auto r = reader_of(f);
  EXPECT_RWKV_ERROR((void)r.vector("v", 5), crafted_name, "v", "shape [4] does not match the expected vector of 5");
  EXPECT_RWKV_ERROR((void)r.vector("w", 6), crafted_name, "w", "shape [2, 3] does not match the expected vector of 6");
  EXPECT_RWKV_ERROR((void)r.weight<float>("w", 3, 2), crafted_name, "w",
                    "shape [2, 3] does not match the expected [3, 2]");
  EXPECT_RWKV_ERROR((void)r.weight<float>("v", 2, 2), crafted_name, "v",
                    "shape [4] does not match the expected [2, 2]");
  EXPECT_RWKV_ERROR((void)r.weight<rwkv::bf16>("w", 2, 2), crafted_name, "w", "does not match the expected [2, 2]");
  EXPECT_RWKV_ERROR((void)r.dense("w", 6, 1), crafted_name, "w", "does not match the expected [6, 1]");
  // Leading unit dimensions are dropped for matrices.
  const auto m = r.weight<float>("w3", 2, 3);
  BOOST_TEST(m.rows() == 2);
  BOOST_TEST(m.cols() == 3);
  BOOST_TEST(m.row(1)[2] == 6.0f);
  BOOST_TEST(r.dense("w", 2, 3)[4] == 5.0f);
}

BOOST_AUTO_TEST_CASE(vector_shapes) {
  const std::vector<float> v{1, 2, 3, 4};
  const auto f = parse(io::to_safetensors_bytes(
      {tensor<float>("c", {4}, v), tensor<float>("one_c", {1, 4}, v), tensor<float>("one_one_c", {1, 1, 4}, v),
       tensor<float>("c_one", {4, 1}, v), tensor<float>("two", {2, 2}, v), tensor<float>("two_one", {1, 2, 2}, v)}));
  auto r = reader_of(f);
  for (const char* ok : {"c", "one_c", "one_one_c", "c_one"}) BOOST_TEST_CONTEXT(ok) {
      BOOST_TEST(r.vector(ok, 4) == v, boost::test_tools::per_element());
    }
  EXPECT_RWKV_ERROR((void)r.vector("two", 4), crafted_name, "two",
                    "shape [2, 2] does not match the expected vector of 4");
  EXPECT_RWKV_ERROR((void)r.vector("two_one", 4), crafted_name, "two_one", "shape [1, 2, 2] does not match");
}

BOOST_AUTO_TEST_CASE(unsupported_dtype_for_weight) {
  const auto f = parse(io::to_safetensors_bytes({tensor<std::int32_t>("ids", {2, 2}, {1, 2, 3, 4})}));
  auto r = reader_of(f);
  EXPECT_RWKV_ERROR((void)r.weight<float>("ids", 2, 2), crafted_name, "ids", "unsupported dtype I32 for a weight");
  EXPECT_RWKV_ERROR((void)r.vector("ids", 4), crafted_name, "ids", "unsupported dtype I32");
  EXPECT_RWKV_ERROR((void)r.dense("ids", 2, 2), crafted_name, "ids", "unsupported dtype I32");
}

BOOST_AUTO_TEST_CASE(non_finite_values_rejected) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const auto f = parse(io::to_safetensors_bytes({
      tensor<float>("f32_nan", {1, 4}, {1, 2, nan, 4}),
      tensor<float>("f32_inf", {1, 4}, {1, 2, 3, -inf}),
      bf16_tensor("bf16_nan", {1, 4}, {0x3F80, 0x7FC0, 0x3F80, 0x3F80}),
      bf16_tensor("bf16_inf", {1, 4}, {0x3F80, 0x3F80, 0x3F80, 0x7F80}),
      f16_tensor("f16_nan", {1, 4}, {0x7E00, 0x3C00, 0x3C00, 0x3C00}),
      f16_tensor("f16_inf", {1, 4}, {0x3C00, 0xFC00, 0x3C00, 0x3C00}),
  }));
  const std::map<std::string, std::size_t> bad_element{{"f32_nan", 2},  {"f32_inf", 3}, {"bf16_nan", 1},
                                                       {"bf16_inf", 3}, {"f16_nan", 0}, {"f16_inf", 1}};
  auto r = reader_of(f);
  for (const auto& [tensor_name, element] : bad_element) {
    const std::string name = tensor_name;
    const std::size_t i = element;
    BOOST_TEST_CONTEXT(name) {
      const std::string at = "non-finite value (NaN or Inf) at element " + std::to_string(i);
      // Every path: zero-copy views (same dtype), conversions, vectors, dense.
      EXPECT_RWKV_ERROR((void)r.weight<float>(name, 1, 4), crafted_name, name, at);
      EXPECT_RWKV_ERROR((void)r.weight<rwkv::bf16>(name, 1, 4), crafted_name, name, at);
      EXPECT_RWKV_ERROR((void)r.weight<rwkv::f16>(name, 1, 4), crafted_name, name, at);
      EXPECT_RWKV_ERROR((void)r.vector(name, 4), crafted_name, name, at);
      EXPECT_RWKV_ERROR((void)r.dense(name, 1, 4), crafted_name, name, at);
    }
  }

  auto lax = reader_of(f, io::load_options{.check_finite = false});
  BOOST_TEST(std::isnan(lax.weight<float>("f32_nan", 1, 4).data()[2]));
  BOOST_TEST(std::isinf(lax.weight<float>("f32_inf", 1, 4).data()[3]));
  BOOST_TEST(std::isnan(rwkv::to_float(lax.weight<rwkv::bf16>("bf16_nan", 1, 4).data()[1])));
  BOOST_TEST(std::isnan(lax.weight<float>("bf16_nan", 1, 4).data()[1]));
  BOOST_TEST(std::isinf(lax.vector("bf16_inf", 4)[3]));
  BOOST_TEST(std::isnan(lax.vector("f16_nan", 4)[0]));
  BOOST_TEST(lax.dense("f16_inf", 1, 4)[1] == -inf);
  BOOST_TEST(std::isnan(rwkv::to_float(lax.weight<rwkv::f16>("f16_nan", 1, 4).data()[0])));
}

BOOST_AUTO_TEST_CASE(finish_lists_unexpected_tensors) {
  const auto f =
      parse(io::to_safetensors_bytes({tensor<float>("used", {1}, {1}), tensor<float>("ignored", {1}, {1}),
                                      tensor<float>("extra.b", {1}, {1}), tensor<float>("extra.a", {1}, {1})}));
  auto r = reader_of(f);
  (void)r.vector("used", 1);
  r.ignore("ignored");
  EXPECT_RWKV_ERROR(r.finish(), crafted_name, "extra.a", "unexpected tensors for this model: extra.a, extra.b");
  (void)r.vector("extra.a", 1);
  (void)r.vector("extra.b", 1);
  BOOST_CHECK_NO_THROW(r.finish());

  // Long lists are cut after 8 names with the total count.
  std::vector<io::tensor_to_write> many;
  for (int i = 0; i < 10; ++i) many.push_back(tensor<float>("t" + std::to_string(i), {1}, {1}));
  const auto g = parse(io::to_safetensors_bytes(many));
  auto r2 = reader_of(g);
  EXPECT_RWKV_ERROR(r2.finish(), crafted_name, "t0", "t0, t1, t2, t3, t4, t5, t6, t7, ... (10 in all)");
}

BOOST_AUTO_TEST_CASE(weight_conversions_round_correctly) {
  const std::vector<float> src{1.0f,
                               from_bits(0x3F808000u),  // tie, even: down to 0x3F80
                               from_bits(0x3F818000u),  // tie, odd: up to 0x3F82
                               from_bits(0x3F808001u),  // above tie: 0x3F81
                               -0.0f,
                               from_bits(0xBF818000u)};
  const std::uint16_t want_bf16[] = {0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x8000, 0xBF82};
  const std::vector<float> src16{65504.0f, 3 * std::ldexp(1.0f, -25), std::ldexp(1.0f, -25), 1.0f, -2.0f, 65519.0f};
  const std::uint16_t want_f16[] = {0x7BFF, 0x0002, 0x0000, 0x3C00, 0xC000, 0x7BFF};
  const auto f =
      parse(io::to_safetensors_bytes({tensor<float>("w", {2, 3}, src), tensor<float>("h", {2, 3}, src16),
                                      bf16_tensor("b", {2, 3}, {0x3F80, 0xC040, 0x0001, 0x7F7F, 0x3E00, 0x8000})}));
  auto r = reader_of(f);
  const auto m = r.weight<rwkv::bf16>("w", 2, 3);
  BOOST_TEST(!inside_file(f, m.data()));  // converted copy
  for (std::size_t i = 0; i < 6; ++i) BOOST_TEST(m.data()[i].bits == want_bf16[i], "element " << i);
  const auto h = r.weight<rwkv::f16>("h", 2, 3);
  for (std::size_t i = 0; i < 6; ++i) BOOST_TEST(h.data()[i].bits == want_f16[i], "element " << i);
  // Widening BF16 -> F32 is exact.
  const auto w = r.weight<float>("b", 2, 3);
  const float want_f32[] = {1.0f, -3.0f, from_bits(0x00010000u), from_bits(0x7F7F0000u), 0.125f, -0.0f};
  for (std::size_t i = 0; i < 6; ++i)
    BOOST_TEST(std::bit_cast<std::uint32_t>(w.data()[i]) == std::bit_cast<std::uint32_t>(want_f32[i]));
}

BOOST_AUTO_TEST_CASE(zero_copy_when_aligned) {
  std::shared_ptr<const void> keep;
  rwkv::matrix<float> m;
  rwkv::matrix<rwkv::bf16> mb;
  {
    const auto f = parse(io::to_safetensors_bytes(
        {tensor<float>("w", {2, 2}, {1, 2, 3, 4}), bf16_tensor("b", {1, 2}, {0x3F80, 0x4000})}));
    auto r = reader_of(f);
    m = r.weight<float>("w", 2, 2);
    BOOST_TEST(reinterpret_cast<const void*>(m.data()) == reinterpret_cast<const void*>(f.at("w").data));
    BOOST_TEST(inside_file(f, m.data()));
    mb = r.weight<rwkv::bf16>("b", 1, 2);
    BOOST_TEST(reinterpret_cast<const void*>(mb.data()) == reinterpret_cast<const void*>(f.at("b").data));
    keep = f.owner();
  }
  // The matrices keep the file alive after the file object and reader are gone.
  BOOST_TEST(keep.use_count() >= 3);
  keep.reset();
  BOOST_TEST(m.row(1)[1] == 4.0f);
  BOOST_TEST(mb.data()[1].bits == 0x4000u);
}

BOOST_AUTO_TEST_CASE(copy_when_misaligned) {
  // A 2-byte tensor first puts the F32 data at an address that is 2 mod 4.
  const auto f =
      parse(io::to_safetensors_bytes({bf16_tensor("pad", {1}, {0x3F80}), tensor<float>("w", {2, 2}, {1, 2, 3, 4})}));
  BOOST_REQUIRE(reinterpret_cast<std::uintptr_t>(f.at("w").data) % alignof(float) != 0);
  auto r = reader_of(f);
  const auto m = r.weight<float>("w", 2, 2);
  BOOST_TEST(!inside_file(f, m.data()));
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(m.data()) % alignof(float) == 0u);
  for (int i = 0; i < 4; ++i) BOOST_TEST(m.data()[i] == static_cast<float>(i + 1));
}

BOOST_AUTO_TEST_SUITE_END()

// =========================================================================================================
BOOST_AUTO_TEST_SUITE(real_file)

BOOST_AUTO_TEST_CASE(v7_dev_model) {
  const auto path = rwkv::test::data_path("v7-dev.model.safetensors");
  const auto f = io::safetensors_file::open(path);
  BOOST_TEST(f.tensors().size() == 72u);
  BOOST_TEST(f.metadata().at("rwkv_version") == "7");
  BOOST_TEST(f.metadata().at("n_embd") == "128");
  const auto& emb = f.at("emb.weight");
  BOOST_TEST((emb.type == dtype::f32));
  BOOST_TEST(emb.shape == (std::vector<std::int64_t>{512, 128}), boost::test_tools::per_element());
  BOOST_TEST(f.tensors().front().name == "emb.weight");
  BOOST_TEST(load_as_float(emb, 0) == -0.5374183058738708f);
  BOOST_TEST(load_as_float(emb, 3) == 0.405074805021286f);

  auto r = reader_of(f);
  const auto m = r.weight<float>("emb.weight", 512, 128);
  BOOST_TEST(reinterpret_cast<const void*>(m.data()) == reinterpret_cast<const void*>(emb.data));  // zero-copy
  BOOST_TEST(r.vector("blocks.0.att.x_r", 128).size() == 128u);  // stored as [1, 1, 128]

  // Re-serialising every tensor gives a file that reads back identically.
  std::vector<io::tensor_to_write> out;
  for (const auto& t : f.tensors()) out.push_back({t.name, t.type, t.shape, bytes(t.data, t.data + t.nbytes)});
  const auto g = parse(io::to_safetensors_bytes(out, f.metadata()));
  BOOST_TEST((g.metadata() == f.metadata()));
  BOOST_REQUIRE_EQUAL(g.tensors().size(), f.tensors().size());
  for (std::size_t i = 0; i < f.tensors().size(); ++i) {
    const auto &a = f.tensors()[i], &b = g.tensors()[i];
    BOOST_TEST(a.name == b.name);
    BOOST_TEST(a.shape == b.shape, boost::test_tools::per_element());
    BOOST_TEST(a.nbytes == b.nbytes);
    BOOST_TEST(std::memcmp(a.data, b.data, a.nbytes) == 0);
  }
}

BOOST_AUTO_TEST_CASE(bf16_file_matches_our_rounding) {
  // The bf16 fixture was made by rounding the F32 weights to nearest-even with an independent tool: our
  // F32 -> BF16 conversion (weight<bf16>) must reproduce every value bit for bit.
  const auto f32 = io::safetensors_file::open(rwkv::test::data_path("v7-dev.model.safetensors"));
  const auto b16 = io::safetensors_file::open(rwkv::test::data_path("v7-dev.model.bf16.safetensors"));
  BOOST_REQUIRE_EQUAL(f32.tensors().size(), b16.tensors().size());
  std::size_t mismatches = 0, checked = 0;
  for (const auto& t : f32.tensors()) {
    const auto& u = b16.at(t.name);
    BOOST_REQUIRE((u.type == dtype::bf16));
    BOOST_REQUIRE_EQUAL(u.numel(), t.numel());
    for (std::size_t i = 0; i < static_cast<std::size_t>(t.numel()); ++i, ++checked) {
      std::uint16_t want;
      std::memcpy(&want, u.data + 2 * i, 2);
      if (rwkv::to_bf16(load_as_float(t, i)).bits != want && ++mismatches <= 5)
        BOOST_ERROR(t.name << "[" << i << "]: got 0x" << std::hex << rwkv::to_bf16(load_as_float(t, i)).bits
                           << " want 0x" << want);
    }
  }
  BOOST_TEST(mismatches == 0u);
  BOOST_TEST(checked > 100000u);
  auto r = reader_of(f32);
  const auto m = r.weight<rwkv::bf16>("emb.weight", 512, 128);
  BOOST_TEST(std::memcmp(m.data(), b16.at("emb.weight").data, m.bytes()) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

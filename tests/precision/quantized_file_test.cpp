// Pre-quantized checkpoints (io/quantized.hpp, rwkv::quantize_checkpoint): the layout written, logits
// bit-identical to quantizing the source at load, zero-copy loading, dequantizing to float precisions, the
// refusal of the other quantized format, and an rwkv::error naming the file and the tensor for every kind of
// damage a quantized file can have.
#define BOOST_TEST_MODULE quantized_file
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <rwkv/any_model.hpp>
#include <rwkv/quantize.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
using rwkv::test::data_path;
namespace fs = std::filesystem;

// A temporary directory for the test's files, removed at exit.
const fs::path& temp_dir() {
  static const struct dir {
    fs::path path = fs::temp_directory_path() / ("rwkvpp-quantized-test-" + std::to_string(::getpid()));
    dir() { fs::create_directories(path); }
    ~dir() { fs::remove_all(path); }
  } d;
  return d.path;
}

std::string temp(const std::string& name) { return (temp_dir() / name).string(); }

// The source quantized once per process: <name>.<q8|q4>.safetensors in the temp directory.
std::string quantized(const std::string& source, storage_choice to) {
  const std::string label = to == storage_choice::q8 ? "q8" : "q4";
  const auto out = temp(fs::path(source).filename().string() + "." + label + ".safetensors");
  if (!fs::exists(out)) quantize_checkpoint(data_path(source), out, to);
  return out;
}

std::vector<std::int32_t> english_bytes(std::size_t n) {
  std::ifstream in(data_path("english.txt"), std::ios::binary);
  BOOST_REQUIRE(in);
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {s.begin(), s.begin() + static_cast<std::ptrdiff_t>(std::min(n, s.size()))};
}

// Step logits over `tokens` (matrix-vector kernels) followed by sequence logits at every position (GEMM).
std::vector<float> logits(const any_model& m, const std::vector<std::int32_t>& tokens) {
  std::vector<float> out;
  auto s = m.make_state();
  for (auto t : tokens) {
    const auto l = m.step(t, s);
    out.insert(out.end(), l.begin(), l.end());
  }
  auto s2 = m.make_state();
  const auto all = m.forward(tokens, s2, logits_for::all);
  out.insert(out.end(), all.data(), all.data() + all.size());
  return out;
}

// Tokens valid for every model of tests/data (vocab ≥ 256): bytes of english.txt.
const std::vector<std::int32_t>& tokens() {
  static const auto t = english_bytes(48);
  return t;
}

void check_bit_identical(const std::string& source, storage_choice q) {
  const auto file = quantized(source, q);
  const auto want = logits(any_model::load(data_path(source), q), tokens());
  const auto got = logits(any_model::load(file, q), tokens());
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  BOOST_TEST(differ == 0u, source << " " << (q == storage_choice::q8 ? "q8" : "q4") << ": " << differ << " of "
                                  << got.size() << " logits differ from quantizing the source at load");
}

// Checks that f throws rwkv::error naming `file` and `tensor`, with every fragment in its problem.
void expect_error(const std::function<void()>& f, const std::string& file, const std::string& tensor,
                  const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("no error; expected: " << fragments.front());
  } catch (const rwkv::error& e) {
    BOOST_TEST(e.file() == file, e.what());
    BOOST_TEST(e.tensor() == tensor, e.what());
    for (const auto& frag : fragments)
      BOOST_TEST((e.problem().find(frag) != std::string::npos), "'" << frag << "' not in: " << e.what());
  }
}

// The tensors and metadata of a safetensors file, to damage and write back.
struct editable {
  std::vector<io::tensor_to_write> tensors;
  std::map<std::string, std::string> metadata;

  explicit editable(const std::string& path) {
    const auto f = io::safetensors_file::open(path);
    for (const auto& t : f.tensors()) tensors.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
    metadata = f.metadata();
  }
  io::tensor_to_write& at(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    BOOST_FAIL("no tensor " << name);
    throw;
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const io::tensor_to_write& t) { return t.name == name; });
  }
  std::string write(const std::string& name) const {
    const auto p = temp(name);
    io::save_safetensors(p, tensors, metadata);
    return p;
  }
};

void set_f16(io::tensor_to_write& t, std::size_t i, std::uint16_t bits) {
  t.bytes[2 * i] = static_cast<std::byte>(bits & 0xFF);
  t.bytes[2 * i + 1] = static_cast<std::byte>(bits >> 8);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Layout and logits
// ---------------------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(logits_are_bit_identical_to_quantizing_at_load) {
  for (const std::string source : {"tiny-7v0.model.safetensors", "v7-dev.model.safetensors"})
    for (auto q : {storage_choice::q8, storage_choice::q4}) check_bit_identical(source, q);
}

BOOST_AUTO_TEST_CASE(every_version_and_source_format) {
  // Other versions (the matrices each reads differ: v4's ffn.receptance, v5/v6 gates), a BF16 file, and the
  // other checkpoint formats the library reads (.pth, rwkv.cpp's dequantized blocks).
  // (any_model has q8/q4 for head size 64: tiny-5v2, head size 8, is quantized by the CLI test.)
  for (const std::string source :
       {"tiny-4v0.model.safetensors", "v5.2-dev.model.safetensors", "v6-dev.model.safetensors",
        "v5.1-dev.model.safetensors", "v7-dev.model.bf16.safetensors", "tiny-7v0.model.pth", "tiny-7v0.rwkvcpp.bin"})
    for (auto q : {storage_choice::q8, storage_choice::q4}) check_bit_identical(source, q);
}

BOOST_AUTO_TEST_CASE(layout_of_a_quantized_file) {
  const auto source = io::safetensors_file::open(data_path("v7-dev.model.safetensors"));
  for (auto [q, label, block_bytes] : {std::tuple{storage_choice::q8, "q8", 32}, {storage_choice::q4, "q4", 16}}) {
    const auto f = io::safetensors_file::open(quantized("v7-dev.model.safetensors", q));
    const auto& meta = f.metadata();
    BOOST_TEST(meta.at("rwkvpp.quantization") == label);
    BOOST_TEST(meta.at("rwkvpp.quantization_version") == "1");
    BOOST_TEST(meta.at("rwkvpp.block_size") == "32");
    BOOST_TEST(meta.at("rwkv_version") == "7");
    const auto list = nlohmann::json::parse(meta.at("rwkvpp.quantized_tensors"));
    // What v7 reads as matrices: the embedding, the head, and per layer r/k/v/o and the FFN's key/value.
    std::set<std::string> want{"emb.weight", "head.weight"};
    for (int l = 0; l < 2; ++l)
      for (const char* m : {"att.receptance", "att.key", "att.value", "att.output", "ffn.key", "ffn.value"})
        want.insert("blocks." + std::to_string(l) + "." + m + ".weight");
    std::set<std::string> listed;
    for (const auto& [name, shape] : list.items()) listed.insert(name);
    BOOST_TEST(listed == want);
    for (const auto& [name, shape] : list.items()) {
      const auto& src = source.at(name);
      const auto rows = shape[0].get<std::int64_t>(), cols = shape[1].get<std::int64_t>();
      BOOST_TEST((std::vector<std::int64_t>{rows, cols} == src.shape), name);
      const auto blocks = (cols + 31) / 32;
      const auto& w = f.at(name);
      BOOST_TEST((w.type == dtype::u8 && w.shape == std::vector<std::int64_t>{rows, blocks * block_bytes}), name);
      const auto& s = f.at(name + ".scale");
      BOOST_TEST((s.type == dtype::f16 && s.shape == std::vector<std::int64_t>{rows, blocks}), name);
      BOOST_TEST((f.find(name + ".min") != nullptr) == (q == storage_choice::q4), name);
      // The codes are those of quantizing the source at load.
      std::vector<float> values(static_cast<std::size_t>(rows * cols));
      for (std::size_t i = 0; i < values.size(); ++i) values[i] = load_as_float(src, i);
      std::vector<float> want_w(values.size()), got_w(values.size());
      auto decode = [&]<class Q>(Q) {
        matrix<Q>::quantize(values.data(), rows, cols).decode_rows(0, rows, want_w.data());
        const auto c = io::open_checkpoint(quantized("v7-dev.model.safetensors", q));
        for (const auto& t : c.tensors)
          if (t.name == name) got_w = io::dequantize(t);
      };
      if (q == storage_choice::q8) decode(q8{});
      if (q == storage_choice::q4) decode(q4{});
      BOOST_TEST(got_w == want_w, name);
    }
    // Every other tensor is copied byte for byte, dtype kept.
    for (const auto& t : source.tensors()) {
      if (list.contains(t.name)) continue;
      const auto& g = f.at(t.name);
      BOOST_TEST((g.type == t.type && g.shape == t.shape && g.nbytes == t.nbytes &&
                  std::memcmp(g.data, t.data, t.nbytes) == 0),
                 t.name);
    }
    BOOST_TEST(f.tensors().size() == source.tensors().size() + list.size() * (q == storage_choice::q4 ? 2 : 1));
  }
}

BOOST_AUTO_TEST_CASE(quantized_file_loads_zero_copy) {
  for (auto q : {storage_choice::q8, storage_choice::q4}) {
    const auto c = io::open_checkpoint(quantized("tiny-7v0.model.safetensors", q));
    io::weight_reader r(c.path, c.tensors, c.owner);
    const auto& emb = r.peek("emb.weight");
    BOOST_REQUIRE(emb.quantized.has_value());
    BOOST_TEST((emb.shape == std::vector<std::int64_t>{256, 64}));  // the logical shape, for the configs
    BOOST_TEST(emb.quantized->padded);
    auto check = [&](const auto& m) {
      // Codes, scales and minimums are the file's bytes, not copies.
      BOOST_TEST(reinterpret_cast<const std::byte*>(m.codes(0)) == emb.data);
      BOOST_TEST(reinterpret_cast<const std::byte*>(m.scales(0)) == emb.quantized->scales);
      if constexpr (std::remove_cvref_t<decltype(m)>::format::has_min)
        BOOST_TEST(reinterpret_cast<const std::byte*>(m.mins(0)) == emb.quantized->mins);
    };
    if (q == storage_choice::q8) check(r.weight<q8>("emb.weight", 256, 64));
    if (q == storage_choice::q4) check(r.weight<q4>("emb.weight", 256, 64));
  }
}

BOOST_AUTO_TEST_CASE(scales_at_the_end_of_the_file_are_copied) {
  // A file whose last tensor is a scale array (not what quantize writes, but valid): the kernels' 16-wide reads
  // would pass the end of the mapping, so the scales are copied; the logits are the same.
  editable e(quantized("v7-dev.model.safetensors", storage_choice::q8));
  const auto it = std::find_if(e.tensors.begin(), e.tensors.end(),
                               [](const io::tensor_to_write& t) { return t.name == "head.weight.scale"; });
  BOOST_REQUIRE(it != e.tensors.end());
  std::rotate(it, it + 1, e.tensors.end());
  const auto p = e.write("scale-last.safetensors");
  const auto c = io::open_checkpoint(p);
  io::weight_reader r(c.path, c.tensors, c.owner);
  const auto& head = r.peek("head.weight");
  BOOST_TEST(!head.quantized->padded);
  const auto m = r.weight<q8>("head.weight", 512, 128);
  BOOST_TEST(reinterpret_cast<const std::byte*>(m.scales(0)) != head.quantized->scales);
  BOOST_TEST(reinterpret_cast<const std::byte*>(m.codes(0)) == head.data);
  BOOST_TEST(logits(any_model::load(p, storage_choice::q8), tokens()) ==
             logits(any_model::load(data_path("v7-dev.model.safetensors"), storage_choice::q8), tokens()));
}

BOOST_AUTO_TEST_CASE(model_info_of_a_quantized_file) {
  const auto m = any_model::load(quantized("tiny-7v0.model.safetensors", storage_choice::q4), storage_choice::q4);
  const auto src = any_model::load(data_path("tiny-7v0.model.safetensors"), storage_choice::q4);
  BOOST_TEST(m.info().file_dtype == "F32+Q4");
  BOOST_TEST(m.info().parameters == src.info().parameters);  // counted in weights, not bytes
  BOOST_TEST(m.info().n_embd == 64);
  BOOST_TEST(m.info().vocab == 256);
}

BOOST_AUTO_TEST_CASE(requantizing_the_same_format_reproduces_the_file) {
  for (auto q : {storage_choice::q8, storage_choice::q4}) {
    const auto first = quantized("tiny-5v2.model.safetensors", q);
    const auto again = temp("again.safetensors");
    quantize_checkpoint(first, again, q);
    std::ifstream a(first, std::ios::binary), b(again, std::ios::binary);
    const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    BOOST_TEST((sa == sb));
    fs::remove(again);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Other precisions on a quantized file
// ---------------------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(float_precisions_dequantize) {
  // f32 holds w = d·q (+ m) exactly: each matrix equals the quantized one decoded.
  for (auto q : {storage_choice::q8, storage_choice::q4}) {
    const auto file = quantized("v7-dev.model.safetensors", q);
    const auto c = io::open_checkpoint(file);
    io::weight_reader r(c.path, c.tensors, c.owner);
    const auto w = r.weight<float>("blocks.1.ffn.key.weight", 512, 128);
    const auto src = io::safetensors_file::open(data_path("v7-dev.model.safetensors"));
    const auto values = test::floats(src.at("blocks.1.ffn.key.weight"));
    std::vector<float> want(values.size());
    if (q == storage_choice::q8) matrix<q8>::quantize(values.data(), 512, 128).decode_rows(0, 512, want.data());
    if (q == storage_choice::q4) matrix<q4>::quantize(values.data(), 512, 128).decode_rows(0, 512, want.data());
    BOOST_TEST(std::equal(want.begin(), want.end(), w.data()));
    // Whole models: f32 and bf16 of the quantized file stay next to the quantized model's logits (same weights
    // up to bf16 rounding, other kernels).
    const auto ref = logits(any_model::load(file, q), tokens());
    // Bounds ~10x the measured 2e-6/8e-6 (f32: float32 rounding only), 3x 3.4e-2 (bf16), 5x 4.4e-3 (f16).
    for (auto [p, label, bound] : {std::tuple{storage_choice::f32, "f32", 1e-4},
                                   {storage_choice::bf16, "bf16", 0.1},
                                   {storage_choice::f16, "f16", 0.02}}) {
      const auto got = logits(any_model::load(file, p), tokens());
      BOOST_REQUIRE_EQUAL(got.size(), ref.size());
      double worst = 0;
      for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - ref[i])));
      BOOST_TEST_MESSAGE("v7-dev " << (q == storage_choice::q8 ? "q8" : "q4") << " file loaded as " << label
                                   << ": max |Δlogit| vs the quantized model " << worst);
      BOOST_TEST(worst < bound, label);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_other_quantized_format_is_refused) {
  const auto q8file = quantized("tiny-7v0.model.safetensors", storage_choice::q8);
  expect_error([&] { any_model::load(q8file, storage_choice::q4); }, q8file, "emb.weight",
               {"stored as q8 blocks", "as q4", "precision q8"});
  const auto q4file = quantized("tiny-7v0.model.safetensors", storage_choice::q4);
  expect_error([&] { any_model::load(q4file, storage_choice::q8); }, q4file, "emb.weight", {"stored as q4 blocks"});
  expect_error([&] { quantize_checkpoint(q4file, temp("x.safetensors"), storage_choice::q8); }, q4file, "emb.weight",
               {"stored as q4 blocks"});
  expect_error([&] { quantize_checkpoint(q4file, q4file, storage_choice::q4); }, q4file, "",
               {"would overwrite the input"});
}

// ---------------------------------------------------------------------------------------------------------------
// Damaged quantized files: an rwkv::error naming the file and the tensor
// ---------------------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(wrong_byte_length) {
  editable e(quantized("v7-dev.model.safetensors", storage_choice::q8));
  auto& w = e.at("blocks.0.att.key.weight");
  w.shape = {128, 4 * 32 - 1};
  w.bytes.resize(128 * (4 * 32 - 1));
  const auto p = e.write("short.safetensors");
  expect_error([&] { any_model::load(p, storage_choice::q8); }, p, "blocks.0.att.key.weight",
               {"shape [128, 127]", "expected [128, 128]", "codes of a q8 matrix of [128, 128]"});
  // A listed shape that does not match the blocks (rows of 100 columns need 4 blocks; 200 need 7).
  editable e2(quantized("v7-dev.model.safetensors", storage_choice::q4));
  auto list = nlohmann::json::parse(e2.metadata.at("rwkvpp.quantized_tensors"));
  list["head.weight"] = {512, 200};
  e2.metadata["rwkvpp.quantized_tensors"] = list.dump();
  const auto p2 = e2.write("listed.safetensors");
  expect_error([&] { any_model::load(p2, storage_choice::q4); }, p2, "head.weight",
               {"expected [512, 112]", "q4 matrix of [512, 200]"});
}

BOOST_AUTO_TEST_CASE(missing_scale_or_minimum) {
  editable e(quantized("v7-dev.model.safetensors", storage_choice::q4));
  e.erase("blocks.1.ffn.value.weight.scale");
  const auto p = e.write("noscale.safetensors");
  expect_error([&] { any_model::load(p, storage_choice::q4); }, p, "blocks.1.ffn.value.weight.scale",
               {"missing", "scales of q4 matrix 'blocks.1.ffn.value.weight'"});
  editable e2(quantized("v7-dev.model.safetensors", storage_choice::q4));
  e2.erase("emb.weight.min");
  const auto p2 = e2.write("nomin.safetensors");
  expect_error([&] { any_model::load(p2, storage_choice::q4); }, p2, "emb.weight.min", {"missing", "minimums"});
  // A q8 file with minimums: not a q8 layout.
  editable e3(quantized("v7-dev.model.safetensors", storage_choice::q8));
  e3.tensors.push_back(io::tensor_to_write::from<f16>("emb.weight.min", {512, 4}, std::vector<f16>(2048)));
  const auto p3 = e3.write("q8min.safetensors");
  expect_error([&] { any_model::load(p3, storage_choice::q8); }, p3, "emb.weight.min", {"no minimums"});
}

BOOST_AUTO_TEST_CASE(non_finite_scale_or_minimum) {
  // NaN and ±Inf, in the middle and in the last block of a matrix: refused however the file is loaded (the
  // kernels' float16 conversion assumes finite scales), whatever check_finite says.
  for (auto [tensor, bits, index] : {std::tuple{"blocks.0.ffn.key.weight.scale", std::uint16_t{0x7E00}, 37},
                                     {"head.weight.scale", std::uint16_t{0x7C00}, 2047},
                                     {"emb.weight.min", std::uint16_t{0xFC00}, 5}}) {
    editable e(quantized("v7-dev.model.safetensors", storage_choice::q4));
    set_f16(e.at(tensor), static_cast<std::size_t>(index), bits);
    const auto p = e.write("nonfinite.safetensors");
    const std::string what = std::string(tensor).ends_with(".min") ? "non-finite minimum" : "non-finite scale";
    for (auto precision : {storage_choice::q4, storage_choice::f32})
      expect_error([&] { any_model::load(p, precision, {.check_finite = false}); }, p, tensor,
                   {what, "row " + std::to_string(index / 4) + ", block " + std::to_string(index % 4)});
  }
}

BOOST_AUTO_TEST_CASE(wrong_dtypes) {
  {
    editable e(quantized("v7-dev.model.safetensors", storage_choice::q8));
    e.at("blocks.0.att.value.weight").type = dtype::i8;
    const auto p = e.write("i8codes.safetensors");
    expect_error([&] { any_model::load(p, storage_choice::q8); }, p, "blocks.0.att.value.weight",
                 {"dtype I8 for the codes", "expected U8"});
  }
  {
    editable e(quantized("v7-dev.model.safetensors", storage_choice::q8));
    auto& s = e.at("emb.weight.scale");
    std::vector<float> wide(s.bytes.size() / 2, 0.01f);
    s = io::tensor_to_write::from<float>(s.name, s.shape, std::span<const float>(wide));
    const auto p = e.write("f32scale.safetensors");
    expect_error([&] { any_model::load(p, storage_choice::q8); }, p, "emb.weight.scale",
                 {"dtype F32 for the scales", "expected F16"});
  }
  {
    // A U8 tensor that the metadata does not list as quantized.
    editable e(quantized("v7-dev.model.safetensors", storage_choice::q8));
    auto list = nlohmann::json::parse(e.metadata.at("rwkvpp.quantized_tensors"));
    list.erase("blocks.1.att.output.weight");
    e.metadata["rwkvpp.quantized_tensors"] = list.dump();
    e.erase("blocks.1.att.output.weight.scale");
    const auto p = e.write("unlisted.safetensors");
    expect_error([&] { any_model::load(p, storage_choice::q8); }, p, "blocks.1.att.output.weight",
                 {"U8 tensor not listed in rwkvpp.quantized_tensors"});
  }
}

BOOST_AUTO_TEST_CASE(unknown_or_incomplete_metadata) {
  const auto source = quantized("v7-dev.model.safetensors", storage_choice::q8);
  struct edit {
    std::string key, value;  // value "" erases the key
    std::vector<std::string> fragments;
  };
  for (const auto& x : {edit{"rwkvpp.quantization", "q3", {"unknown rwkvpp.quantization 'q3'", "q8, q4"}},
                        edit{"rwkvpp.quantization", "", {"no rwkvpp.quantization"}},
                        edit{"rwkvpp.quantization_version", "2", {"unsupported rwkvpp.quantization_version '2'"}},
                        edit{"rwkvpp.block_size", "64", {"unsupported rwkvpp.block_size '64'"}},
                        edit{"rwkvpp.quantized_tensors", "", {"without the metadata entry rwkvpp.quantized_tensors"}},
                        edit{"rwkvpp.quantized_tensors", "{\"emb.weight\": [512", {"not valid JSON"}},
                        edit{"rwkvpp.quantized_tensors", "{\"emb.weight\": [512, -4]}", {"not [rows, cols]"}}}) {
    editable e(source);
    if (x.value.empty())
      e.metadata.erase(x.key);
    else
      e.metadata[x.key] = x.value;
    const auto p = e.write("meta.safetensors");
    const std::string tensor = x.fragments.front() == "not [rows, cols]" ? "emb.weight" : "";
    expect_error([&] { any_model::load(p, storage_choice::q8); }, p, tensor, x.fragments);
    expect_error([&] { io::open_checkpoint(p); }, p, tensor, x.fragments);
  }
}

BOOST_AUTO_TEST_CASE(float_precision_is_not_a_quantization_target) {
  expect_error(
      [&] { quantize_checkpoint(data_path("v7-dev.model.safetensors"), temp("f.safetensors"), storage_choice::bf16); },
      data_path("v7-dev.model.safetensors"), "", {"q8 or q4"});
}

namespace {

// load_options::huge_pages copies every weight matrix into anonymous memory (core/memory.hpp): the same values,
// so the same logits bit for bit, for every storage type, pre-quantized files included.
BOOST_AUTO_TEST_CASE(huge_page_weights_give_identical_logits) {
  const auto tokens = english_bytes(24);
  const std::vector<std::pair<std::string, storage_choice>> cases = {
      {data_path("v7-dev.model.safetensors"), storage_choice::f32},
      {data_path("v7-dev.model.safetensors"), storage_choice::bf16},
      {data_path("v7-dev.model.bf16.safetensors"), storage_choice::bf16},  // zero-copy when mapped
      {data_path("v7-dev.model.safetensors"), storage_choice::q4},
      {quantized("v7-dev.model.safetensors", storage_choice::q8), storage_choice::q8},  // blocks in the file
      {data_path("v5.2-dev.model.safetensors"), storage_choice::f16},
  };
  for (const auto& [path, storage] : cases) {
    const auto mapped = any_model::load(path, storage);
    const auto huge = any_model::load(path, storage, io::load_options{.huge_pages = true});
    auto a = mapped.make_state(), b = huge.make_state();
    BOOST_TEST(mapped.prefill(tokens, a) == huge.prefill(tokens, b), path);
    BOOST_TEST(mapped.step(7, a) == huge.step(7, b), path);
  }
}

BOOST_AUTO_TEST_CASE(huge_page_weights_are_copies_in_aligned_memory) {
  const auto c = io::open_checkpoint(data_path("v7-dev.model.bf16.safetensors"));
  const io::weight_reader probe(c.path, c.tensors, c.owner);
  const auto& emb = probe.peek("emb.weight");
  const auto rows = emb.shape.at(0), cols = emb.shape.at(1);
  io::weight_reader mapped(c.path, c.tensors, c.owner);
  io::weight_reader huge(c.path, c.tensors, c.owner, io::load_options{.huge_pages = true});
  const auto m = mapped.weight<bf16>("emb.weight", rows, cols);
  const auto h = huge.weight<bf16>("emb.weight", rows, cols);
  BOOST_TEST(reinterpret_cast<const std::byte*>(m.data()) == emb.data);  // the file, zero-copy
  BOOST_TEST(reinterpret_cast<const std::byte*>(h.data()) != emb.data);  // a copy
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(h.data()) % 64 == 0);
  BOOST_TEST(std::memcmp(h.data(), m.data(), m.bytes()) == 0);
}

}  // namespace

// One test per row of docs/errors.md, end to end: a damaged checkpoint or misuse, loaded or run the way a
// user would, gives an rwkv::error naming the file, the tensor (where there is one) and the problem.
#define BOOST_TEST_MODULE error_table
#include <boost/test/unit_test.hpp>

#include <unistd.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <rwkv/any_model.hpp>
#include <rwkv/quantize.hpp>
#include <rwkv/state_file.hpp>
#include <rwkv/v7.hpp>
#include <rwkv/v7a.hpp>

#include "../support/golden.hpp"

namespace {

using namespace rwkv;
namespace fs = std::filesystem;
using model_t = v7::Model<f32>;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("rwkv_error_table_" + std::to_string(::getpid()) + "_" + name);
}

std::vector<io::tensor_to_write> dev_tensors() {
  const auto f = io::safetensors_file::open(test::data_path("v7-dev.model.safetensors"));
  std::vector<io::tensor_to_write> out;
  for (const auto& t : f.tensors()) out.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
  return out;
}

io::tensor_to_write& find(std::vector<io::tensor_to_write>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return t;
  BOOST_FAIL("no tensor " << name);
  throw;
}

fs::path write(const std::string& name, const std::vector<io::tensor_to_write>& ts) {
  const auto p = temp_file(name);
  io::save_safetensors(p, ts);
  return p;
}

fs::path write_bytes(const std::string& name, const std::vector<std::byte>& bytes) {
  const auto p = temp_file(name);
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return p;
}

using rwkv::test::expect_error;

}  // namespace

BOOST_AUTO_TEST_CASE(truncated_file) {
  const auto full = io::to_safetensors_bytes(dev_tensors());
  const auto p =
      write_bytes("truncated.safetensors", {full.begin(), full.begin() + static_cast<std::ptrdiff_t>(full.size() / 2)});
  expect_error([&] { model_t::load(p); }, {"past the end of the data buffer", "truncated"}, p.string(),
               "blocks.0.ffn.value.weight");  // the first (in header order) that lies past the end
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(bad_magic) {
  std::vector<std::byte> junk(64, std::byte{'x'});
  const auto p = write_bytes("junk.bin", junk);
  expect_error([&] { model_t::load(p); }, {"unrecognised model file format"}, p.string());
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(unknown_and_wrong_dtype) {
  auto ts = dev_tensors();
  auto bytes = io::to_safetensors_bytes(ts);
  const std::string h(reinterpret_cast<const char*>(bytes.data()) + 8, 200);
  const auto at = h.find("\"F32\"");  // first tensor's dtype
  BOOST_REQUIRE(at != std::string::npos);
  std::memcpy(bytes.data() + 8 + at, "\"F8X\"", 5);
  const auto p = write_bytes("unknown_dtype.safetensors", bytes);
  expect_error([&] { model_t::load(p); }, {"unknown dtype 'F8X'"}, p.string(), "emb.weight");
  fs::remove(p);

  auto& w = find(ts, "blocks.0.att.key.weight");
  w.type = dtype::i32;  // same byte size, wrong kind
  const auto q = write("wrong_dtype.safetensors", ts);
  expect_error([&] { model_t::load(q); }, {"unsupported dtype I32 for a weight"}, q.string(),
               "blocks.0.att.key.weight");
  fs::remove(q);
}

BOOST_AUTO_TEST_CASE(shape_mismatch) {
  auto ts = dev_tensors();
  find(ts, "blocks.1.att.key.weight").shape = {256, 64};
  const auto p = write("shape.safetensors", ts);
  expect_error([&] { model_t::load(p); }, {"shape [256, 64] does not match the expected [128, 128]"}, p.string(),
               "blocks.1.att.key.weight");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(missing_tensor) {
  auto ts = dev_tensors();
  std::erase_if(ts, [](auto& t) { return t.name == "blocks.1.ffn.value.weight"; });
  const auto p = write("missing.safetensors", ts);
  expect_error([&] { model_t::load(p); }, {"missing tensor"}, p.string(), "blocks.1.ffn.value.weight");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(unexpected_tensor) {
  auto ts = dev_tensors();
  ts.push_back(io::tensor_to_write::from<float>("blocks.0.att.extra", {2}, std::vector<float>{1.f, 2.f}));
  const auto p = write("unexpected.safetensors", ts);
  expect_error([&] { model_t::load(p); }, {"unexpected tensors for this model: blocks.0.att.extra"}, p.string(),
               "blocks.0.att.extra");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(overlapping_offsets) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("emb.weight":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  std::vector<std::byte> bytes(8 + header.size() + 12);
  const std::uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  const auto p = write_bytes("overlap.safetensors", bytes);
  expect_error([&] { model_t::load(p); }, {"overlaps the previous tensor"}, p.string(), "emb.weight");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(nan_and_inf_weights_are_rejected_by_default) {
  for (float bad : {NAN, INFINITY}) {
    auto ts = dev_tensors();
    auto& w = find(ts, "blocks.0.ffn.key.weight");
    std::memcpy(w.bytes.data() + 17 * 4, &bad, 4);
    const auto p = write("nan.safetensors", ts);
    expect_error([&] { model_t::load(p); }, {"non-finite value (NaN or Inf) at element 17"}, p.string(),
                 "blocks.0.ffn.key.weight");
    BOOST_CHECK_NO_THROW(model_t::load(p, {.check_finite = false}));  // documented opt-out
    fs::remove(p);
  }
}

BOOST_AUTO_TEST_CASE(not_an_rwkv_checkpoint_and_unsupported_head_size) {
  const auto golden = test::data_path("v7-dev.golden.safetensors");
  expect_error([&] { any_model::load(golden); }, {"not an RWKV checkpoint"}, golden);

  auto ts = dev_tensors();
  find(ts, "blocks.0.att.r_k").shape = {8, 16};  // head size 16 is not compiled in
  const auto p = write("head16.safetensors", ts);
  expect_error([&] { any_model::load(p); }, {"head size 16 is not supported (supported: 8, 32, 64, 128)"}, p.string(),
               "blocks.0.att.r_k");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(token_id_out_of_range) {
  const auto m = model_t::load(test::data_path("v7-dev.model.safetensors"));
  auto s = m.make_state();
  expect_error([&] { m.step(512, s); }, {"token id 512 is out of range [0, 512)"}, "v7-dev.model.safetensors");
  BOOST_CHECK(s == m.make_state());
}

BOOST_AUTO_TEST_CASE(state_file_of_another_model) {
  const auto tiny = model_t::load(test::data_path("tiny-7v0.model.safetensors"));
  const auto dev = model_t::load(test::data_path("v7-dev.model.safetensors"));
  const auto p = temp_file("tiny.state");
  save_state(p, tiny.make_state());
  expect_error([&] { load_state(p, dev.make_state()); },
               {"state file is for RWKV-7 with 12 layers; the model is RWKV-7 with 2 layers"}, p.string());
  auto wrong = tiny.make_state();
  expect_error([&] { dev.step(1, wrong); }, {"the state was made for a different model"}, "v7-dev.model.safetensors");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(damaged_quantized_file_and_other_quantized_precision) {
  const auto q8file = temp_file("q8.safetensors");
  quantize_checkpoint(test::data_path("v7-dev.model.safetensors"), q8file, storage_choice::q8);
  expect_error([&] { any_model::load(q8file, storage_choice::q4); },
               {"stored as q8 blocks; loading them as q4 would quantize already-quantized weights"}, q8file.string(),
               "emb.weight");
  const auto f = io::safetensors_file::open(q8file);
  std::vector<io::tensor_to_write> ts;
  for (const auto& t : f.tensors()) ts.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
  auto& scale = find(ts, "blocks.0.ffn.key.weight.scale");
  scale.bytes[2 * 37] = std::byte{0x00};
  scale.bytes[2 * 37 + 1] = std::byte{0x7E};  // float16 NaN; 4 blocks a row: row 9, block 1
  const auto nan = temp_file("q8nan.safetensors");
  io::save_safetensors(nan, ts, f.metadata());
  expect_error([&] { any_model::load(nan, storage_choice::q8); }, {"non-finite scale (NaN or Inf) at row 9, block 1"},
               nan.string(), "blocks.0.ffn.key.weight.scale");
  auto meta = f.metadata();
  meta["rwkvpp.quantization"] = "q3";
  const auto q3 = temp_file("q3.safetensors");
  io::save_safetensors(q3, ts, meta);
  expect_error([&] { any_model::load(q3, storage_choice::q8); },
               {"unknown rwkvpp.quantization 'q3' (supported: q8, q4)"}, q3.string());
  for (const auto& p : {q8file, nan, q3}) fs::remove(p);
}

BOOST_AUTO_TEST_CASE(missing_empty_and_directory_paths) {
  const auto missing = temp_file("does-not-exist.safetensors");
  expect_error([&] { model_t::load(missing); }, {"no such file"}, missing.string());
  const auto empty = write_bytes("empty.safetensors", {});
  expect_error([&] { model_t::load(empty); }, {"the file is empty (0 bytes)"}, empty.string());
  expect_error([&] { model_t::load(fs::temp_directory_path()); }, {"is a directory"}, {});
  fs::remove(empty);
  expect_error([&] { io::save_safetensors("/nonexistent-dir/x.safetensors", dev_tensors()); },
               {"cannot open for writing: No such file or directory"}, "/nonexistent-dir/x.safetensors");
}

BOOST_AUTO_TEST_CASE(checkpoint_of_another_version_names_it) {
  expect_error([&] { model_t::load(test::data_path("v6-dev.model.safetensors")); },
               {"this is an RWKV-6 checkpoint, not RWKV-7: load it with rwkv::v6::Model or rwkv::any_model"},
               "v6-dev.model.safetensors");
  expect_error([&] { v5::Model<f32>::load(test::data_path("v4-dev.model.safetensors")); },
               {"this is an RWKV-4 checkpoint, not RWKV-5"}, "v4-dev.model.safetensors");
  BOOST_CHECK_NO_THROW(v5::Model<f32>::load(test::data_path("v5.1-dev.model.safetensors")));  // 5.x is RWKV-5
}

BOOST_AUTO_TEST_CASE(model_file_given_as_a_state_and_empty_any_state) {
  const auto dev = model_t::load(test::data_path("v7-dev.model.safetensors"));
  expect_error([&] { load_state(test::data_path("v7-dev.model.safetensors"), dev.make_state()); },
               {"this is a model checkpoint, not a state file"}, "v7-dev.model.safetensors");
  const auto m = any_model::load(test::data_path("v7-dev.model.safetensors"));
  any_state empty;
  BOOST_CHECK(!empty);
  expect_error([&] { m.step(1, empty); }, {"the state is empty (a default-constructed any_state)"}, {});
  auto other = any_model::load(test::data_path("v6-dev.model.safetensors")).make_state();
  expect_error([&] { m.step(1, other); }, {"the state belongs to another model"}, {});
}

// rwkv::save_state / rwkv::load_state take any_model's states as they take typed ones (the README's calls).
BOOST_AUTO_TEST_CASE(any_state_through_save_state_and_load_state) {
  const auto m = any_model::load(test::data_path("v7-dev.model.safetensors"));
  auto s = m.make_state();
  m.step(7, s);
  const auto p = temp_file("any.state");
  save_state(p, s);
  const auto back = load_state(p, m.make_state());
  BOOST_CHECK(back == s);
  BOOST_CHECK(m.load_state(p) == s);
  const auto v6 = any_model::load(test::data_path("v6-dev.model.safetensors"));
  expect_error([&] { load_state(p, v6.make_state()); }, {"state file is for RWKV-7"}, p.string());
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(rwkv7_variant_given_to_another_variants_type) {
  const auto p = test::data_path("v7b-dev.model.safetensors");
  expect_error([&] { v7a::Model<f32>::load(p); },
               {"this is an RWKV-7b checkpoint, not RWKV-7a: load it with rwkv::v7b::Model or rwkv::any_model"}, p);
  BOOST_TEST(any_model::load(p).info().version == "7b");
}

BOOST_AUTO_TEST_CASE(unsupported_rwkv7a_width) {
  const auto f = io::safetensors_file::open(test::data_path("v7a-dev.model.safetensors"));
  std::vector<io::tensor_to_write> ts;
  for (const auto& t : f.tensors()) ts.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
  auto resize = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    find(ts, name) = io::tensor_to_write::from<float>(name, shape, std::vector<float>(static_cast<std::size_t>(n)));
  };
  for (const char* layer : {"0", "1"}) {
    const std::string pre = std::string("blocks.") + layer + ".ffn.";
    resize(pre + "s1", {128, 16});
    resize(pre + "s2", {16, 512});
    resize(pre + "s_emb.weight", {256, 256});
    resize(pre + "s_emb_x.weight", {256, 128});
  }
  const auto p = write("rank16.safetensors", ts);
  expect_error([&] { any_model::load(p); }, {"DeepEmbed rank 16 is not supported"}, p.string(), "blocks.0.ffn.s1");
  fs::remove(p);
}

BOOST_AUTO_TEST_CASE(rwkv7b_cache_full) {
  const auto p = test::data_path("v7b-dev.model.safetensors");
  io::load_options options;
  options.max_cached_tokens = 20;
  const auto m = any_model::load(p, storage_choice::f32, options);
  auto s = m.make_state();
  const std::vector<std::int32_t> tokens(20, 7);
  m.prefill(tokens, s);
  const auto before = s;
  expect_error([&] { m.step(7, s); },
               {"the state's key/value cache holds 20 tokens; 1 more would exceed the cap of 20 "
                "(load_options::max_cached_tokens)"},
               "");
  BOOST_TEST((s == before));
}

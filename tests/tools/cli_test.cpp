// rwkv-cli as a user (or an outside check) runs it: logits reproduce the official goldens, info reports the
// checkpoint, generate is reproducible, and every failure is one line on stderr with a non-zero exit.
#define BOOST_TEST_MODULE rwkv_cli
#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <rwkv/io/safetensors.hpp>

#include "../support/golden.hpp"

namespace {

using rwkv::test::check_close;
using rwkv::test::data_path;
using rwkv::test::floats;
namespace fs = std::filesystem;

struct result {
  int code;
  std::string out, err;
};

result run(const std::string& args) {
  static int counter = 0;
  const auto err_file =
      fs::temp_directory_path() / ("rwkv_cli_test_err_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string cmd = std::string(RWKV_CLI) + " " + args + " 2>" + err_file.string();
  FILE* p = ::popen(cmd.c_str(), "r");
  BOOST_REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  const int status = ::pclose(p);
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  fs::remove(err_file);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, ss.str()};
}

std::string join(const std::vector<std::int32_t>& t) {
  std::string s;
  for (auto x : t) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / (std::to_string(::getpid()) + "_" + name);
}

void check_logits(const std::string& model, const std::string& golden_name, const std::string& mode,
                  const std::string& tensor) {
  const auto golden = rwkv::io::safetensors_file::open(data_path(golden_name + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto out = temp_file(golden_name + mode + ".safetensors");
  const auto r =
      run("logits " + data_path(model) + " --tokens " + join(tokens) + " --mode " + mode + " --out " + out.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto got = rwkv::io::safetensors_file::open(out);
  const auto& l = got.at("logits");
  BOOST_CHECK(l.type == rwkv::dtype::f32);
  BOOST_REQUIRE_EQUAL(l.shape.size(), 2u);
  BOOST_CHECK_EQUAL(l.shape[0], static_cast<std::int64_t>(tokens.size()));
  check_close(floats(l), floats(golden.at(tensor)), rwkv::test::logits_tol, model + " " + mode);
  fs::remove(out);
}

void check_one_line_error(const result& r) {
  BOOST_CHECK_NE(r.code, 0);
  BOOST_CHECK(r.err.rfind("rwkv-cli: error: ", 0) == 0);
  BOOST_CHECK(r.out.empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(logits_step_reproduces_goldens) {
  check_logits("v7-dev.model.safetensors", "v7-dev", "step", "logits");
  check_logits("tiny-7v0.model.safetensors", "tiny-7v0", "step", "logits");
}

BOOST_AUTO_TEST_CASE(logits_sequence_reproduces_goldens) {
  check_logits("v7-dev.model.safetensors", "v7-dev", "sequence", "logits_seq");
  check_logits("tiny-7v0.model.safetensors", "tiny-7v0", "sequence", "logits_seq");
}

BOOST_AUTO_TEST_CASE(logits_from_bf16_file) {
  check_logits("v7-dev.model.bf16.safetensors", "v7-dev", "step", "logits_bf16w");
}

BOOST_AUTO_TEST_CASE(info_describes_the_checkpoint) {
  const auto r = run("info " + data_path("v7-dev.model.safetensors"));
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  for (const char* line :
       {"version: 7\n", "n_layer: 2\n", "n_embd: 128\n", "head_size: 64\n", "vocab: 512\n", "dtype: F32\n"})
    BOOST_CHECK_MESSAGE(r.out.find(line) != std::string::npos, "missing '" << line << "' in:\n" << r.out);
  // Parameter count: every tensor of the file except layer 0's unused v0/v1/v2, counted from the file.
  const auto f = rwkv::io::safetensors_file::open(data_path("v7-dev.model.safetensors"));
  std::int64_t params = 0;
  for (const auto& t : f.tensors())
    if (t.name != "blocks.0.att.v0" && t.name != "blocks.0.att.v1" && t.name != "blocks.0.att.v2") params += t.numel();
  BOOST_CHECK_MESSAGE(r.out.find("parameters: " + std::to_string(params) + "\n") != std::string::npos, r.out);
  const auto b = run("info " + data_path("v7-dev.model.bf16.safetensors"));
  BOOST_CHECK(b.out.find("dtype: BF16\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(generate_is_reproducible_with_a_seed) {
  const auto a = run("generate --prompt Hello --max-tokens 40 --seed 7");
  const auto b = run("generate --prompt Hello --max-tokens 40 --seed 7");
  BOOST_REQUIRE_MESSAGE(a.code == 0, a.err);
  BOOST_CHECK_EQUAL(a.out, b.out);
  BOOST_CHECK(a.out.rfind("Hello", 0) == 0);
  BOOST_CHECK_EQUAL(a.out.size(), 5u + 40u + 1u);  // prompt, one byte per token, final newline
}

BOOST_AUTO_TEST_CASE(failures_are_one_line_errors) {
  check_one_line_error(run("info /nonexistent/model.safetensors"));
  check_one_line_error(
      run("logits " + data_path("tiny-7v0.model.safetensors") + " --tokens 1,256 --out " + temp_file("x").string()));
  check_one_line_error(
      run("logits " + data_path("tiny-7v0.model.safetensors") + " --tokens 1,x --out " + temp_file("x").string()));
  check_one_line_error(run("info " + data_path("v7-dev.golden.safetensors")));  // not a model
  check_one_line_error(run("frobnicate"));
  check_one_line_error(run("generate " + data_path("v7-dev.model.safetensors")));  // vocab 512: no tokenizer
  const auto r = run("info " + data_path("README.md"));                            // not a safetensors file at all
  check_one_line_error(r);
  BOOST_CHECK_EQUAL(r.code, 1);
  BOOST_CHECK_EQUAL(run("frobnicate").code, 2);
}

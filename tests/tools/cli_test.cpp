// rwkv-cli as a user (or an outside check) runs it: logits reproduce the official goldens, info reports the
// checkpoint, generate is reproducible, and every failure is one line on stderr with a non-zero exit.
#define BOOST_TEST_MODULE rwkv_cli
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <rwkv/io/safetensors.hpp>
#include <rwkv/tokenizer/utf8.hpp>

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

// Runs rwkv-cli with `args` (shell syntax), with `env` (VAR=value ...) in front.
result run_env(const std::string& env, const std::string& args) {
  static int counter = 0;
  const auto err_file =
      fs::temp_directory_path() / ("rwkv_cli_test_err_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string cmd = env + " " + std::string(RWKV_CLI) + " " + args + " 2>" + err_file.string();
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

result run(const std::string& args) { return run_env("", args); }

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

// `tensor` may carry extra CLI options after the golden tensor name ("logits_bf16w --precision bf16").
void check_logits(const std::string& model, const std::string& golden_name, const std::string& mode,
                  std::string tensor) {
  std::string extra;
  if (const auto sp = tensor.find(' '); sp != std::string::npos) {
    extra = tensor.substr(sp);
    tensor.resize(sp);
  }
  const auto golden = rwkv::io::safetensors_file::open(data_path(golden_name + ".golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const auto out = temp_file(golden_name + mode + ".safetensors");
  const auto path = model.starts_with("/") ? model : data_path(model);
  const auto r =
      run("logits " + path + " --tokens " + join(tokens) + " --mode " + mode + " --out " + out.string() + extra);
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
  BOOST_CHECK_MESSAGE(r.err.rfind("rwkv-cli: error: ", 0) == 0, r.err);
  BOOST_CHECK_MESSAGE(std::count(r.err.begin(), r.err.end(), '\n') == 1, "not one line: " << r.err);
  BOOST_CHECK(r.out.empty());
}

// A usage error: one line naming the problem and where the usage is, exit status 2, nothing on stdout.
void check_usage_error(const result& r, const std::string& fragment) {
  check_one_line_error(r);
  BOOST_CHECK_EQUAL(r.code, 2);
  BOOST_CHECK_MESSAGE(r.err.find(fragment) != std::string::npos, "'" << fragment << "' not in: " << r.err);
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

BOOST_AUTO_TEST_CASE(logits_reproduce_every_dev_golden_through_version_detection) {
  for (const std::string name :
       {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev", "tiny-4v0", "tiny-5v2", "v7a-dev", "v7b-dev"}) {
    check_logits(name + ".model.safetensors", name, "step", "logits");
    check_logits(name + ".model.safetensors", name, "sequence", "logits_seq");
  }
  for (const std::string name : {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev"})
    check_logits(rwkv::test::bf16_copy(name), name, "step", "logits_bf16w --precision bf16");
}

BOOST_AUTO_TEST_CASE(info_names_every_version) {
  const std::pair<const char*, const char*> cases[] = {
      {"v4-dev", "4"},   {"v5.1-dev", "5.1"}, {"v5.2-dev", "5.2"}, {"v6-dev", "6"},   {"v7-dev", "7"},
      {"tiny-4v0", "4"}, {"tiny-5v2", "5.2"}, {"tiny-7v0", "7"},   {"v7a-dev", "7a"}, {"v7b-dev", "7b"}};
  for (const auto& [file, version] : cases) {
    const auto r = run("info " + data_path(std::string(file) + ".model.safetensors"));
    BOOST_CHECK_MESSAGE(r.out.find(std::string("version: ") + version + "\n") != std::string::npos, file << ":\n"
                                                                                                         << r.out);
  }
  const auto tiny5 = run("info " + data_path("tiny-5v2.model.safetensors"));
  BOOST_CHECK(tiny5.out.find("head_size: 8\n") != std::string::npos);
  // State memory: RWKV-7's per layer (shifts 2C, WKV H·N·N) in every case; 7b grows by 4·(2·32 + 256 + C + 1) bytes
  // per token and layer (latents, materialised key and value, token id).
  const auto v7 = run("info " + data_path("v7-dev.model.safetensors"));
  const std::string fixed = std::to_string(2 * 4 * (2 * 128 + 2 * 64 * 64));
  BOOST_CHECK_MESSAGE(v7.out.find("state_bytes: " + fixed + "\n") != std::string::npos, v7.out);
  BOOST_CHECK(v7.out.find("state_bytes_per_token: 0\n") != std::string::npos);
  const auto v7b = run("info " + data_path("v7b-dev.model.safetensors"));
  BOOST_CHECK_MESSAGE(v7b.out.find("state_bytes_per_token: " + std::to_string(2 * 4 * (64 + 256 + 128 + 1)) + "\n") !=
                          std::string::npos,
                      v7b.out);
}

// At the size of the released 0.1B RWKV-7a/7b (12 x 768, vocab 65536: 2.0 and 3.6 GB in bf16, mostly token
// tables), from rwkv-cli make-random: written, detected, loaded (the tables mapped from the file) and run.
BOOST_AUTO_TEST_CASE(full_size_0_1b_variants) {
#ifdef RWKV_SANITIZED
  std::cout << "full_size_0_1b_variants: SKIPPED under sanitizers (4 GB of instrumented writes and reads)\n";
#else
  const auto dir = fs::temp_directory_path();
  const auto free_bytes = fs::space(dir).available;
  if (free_bytes < (std::uintmax_t{6} << 30)) {
    std::cout << "full_size_0_1b_variants: SKIPPED, " << (free_bytes >> 20) << " MiB free in " << dir
              << " (needs 6 GiB)\n";
    return;
  }
  for (const std::string v : {"7a", "7b"}) {
    const auto file = temp_file("full-" + v + ".safetensors");
    const auto made = run("make-random --version " + v + " --dtype bf16 --quiet --out " + file.string());
    BOOST_REQUIRE_MESSAGE(made.code == 0, made.err);
    std::int64_t params = 0;
    {
      const auto f = rwkv::io::safetensors_file::open(file);
      for (const auto& t : f.tensors()) params += t.numel();
      BOOST_TEST_MESSAGE("RWKV-" << v << " 0.1B: " << params << " values, " << fs::file_size(file) << " bytes");
    }
    const auto info = run("info " + file.string() + " --precision bf16");
    BOOST_REQUIRE_MESSAGE(info.code == 0, info.err);
    for (const std::string& line : {"version: " + v + "\n", std::string("n_layer: 12\n"), std::string("n_embd: 768\n"),
                                    std::string("vocab: 65536\n"), "parameters: " + std::to_string(params) + "\n"})
      BOOST_CHECK_MESSAGE(info.out.find(line) != std::string::npos, "missing '" << line << "' in:\n" << info.out);
    const auto out = temp_file("full-" + v + ".logits");
    const auto l = run("logits " + file.string() + " --precision bf16 --tokens 0,65535,3,1000 --mode sequence --out " +
                       out.string());
    BOOST_REQUIRE_MESSAGE(l.code == 0, l.err);
    const auto logits = floats(rwkv::io::safetensors_file::open(out).at("logits"));
    BOOST_CHECK_EQUAL(logits.size(), 4u * 65536u);
    BOOST_CHECK(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
    fs::remove(out);
    fs::remove(file);
  }
#endif
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

BOOST_AUTO_TEST_CASE(logits_with_bf16_storage_reproduce_the_bf16_golden) {
  check_logits("v7-dev.model.bf16.safetensors", "v7-dev", "step", "logits_bf16w --precision bf16");
}

// A state saved mid-sequence by one process and loaded by another continues with identical logits.
BOOST_AUTO_TEST_CASE(state_saved_and_loaded_across_processes) {
  const auto golden = rwkv::io::safetensors_file::open(data_path("v7-dev.golden.safetensors"));
  const auto tokens = rwkv::test::ints(golden.at("tokens"));
  const std::vector<std::int32_t> head(tokens.begin(), tokens.begin() + 15), tail(tokens.begin() + 15, tokens.end());
  const auto state = temp_file("mid.state.safetensors"), a = temp_file("a.safetensors"), b = temp_file("b.safetensors");
  const std::string model = data_path("v7-dev.model.safetensors");
  BOOST_REQUIRE_EQUAL(
      run("logits " + model + " --tokens " + join(head) + " --out " + a.string() + " --state-out " + state.string())
          .code,
      0);
  const auto r = run("logits " + model + " --tokens " + join(tail) + " --out " + b.string() + " --state-in " +
                     state.string() + " --threads 2");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  // Rows of the continued run are rows 15.. of the reference's step logits.
  auto want = floats(golden.at("logits"));
  want.erase(want.begin(), want.begin() + 15 * 512);
  check_close(floats(rwkv::io::safetensors_file::open(b).at("logits")), want, rwkv::test::logits_tol, "continued run");
  // The same state file refused by another model.
  const auto bad = run("logits " + data_path("tiny-7v0.model.safetensors") + " --tokens 1 --out " + b.string() +
                       " --state-in " + state.string());
  check_one_line_error(bad);
  BOOST_CHECK(bad.err.find("state file is for RWKV-7 with 2 layers") != std::string::npos);
  fs::remove(state);
  fs::remove(a);
  fs::remove(b);
}

BOOST_AUTO_TEST_CASE(tokenize_and_detokenize_contract) {
  const auto in = temp_file("text.txt");
  {
    std::ofstream f(in, std::ios::binary);
    f << "Hello, \xe4\xb8\x96\xe7\x95\x8c! rwkv";
  }
  const auto t = run("tokenize --file " + in.string());
  BOOST_REQUIRE_MESSAGE(t.code == 0, t.err);
  // From the official World tokenizer (independent of our code): "Hello" "," " " "世界" "!" " r" "wkv"
  BOOST_CHECK_EQUAL(t.out, "33155,45,33,10267,14610,34,4771,2003\n");
  const auto d = run("detokenize --tokens 33155,45,33,10267,14610,34,4771,2003");
  BOOST_CHECK_EQUAL(d.out, "Hello, \xe4\xb8\x96\xe7\x95\x8c! rwkv");
  check_one_line_error(run("detokenize --tokens 70000"));
  fs::remove(in);
}

BOOST_AUTO_TEST_CASE(chat_keeps_the_state_between_turns) {
  const auto r = run("chat --max-tokens 8 --temperature 0 < /dev/null");
  BOOST_CHECK_EQUAL(r.code, 0);
  const auto input = temp_file("chat.txt");
  {
    std::ofstream f(input);
    f << "hi\nagain\n";
  }
  const auto two = run("chat --max-tokens 8 --temperature 0 < " + input.string());
  BOOST_REQUIRE_MESSAGE(two.code == 0, two.err);
  std::size_t prompts = 0;
  for (auto at = two.out.find("User: "); at != std::string::npos; at = two.out.find("User: ", at + 1)) ++prompts;
  BOOST_CHECK_EQUAL(prompts, 3u);  // two turns, then the prompt that meets end of input
  fs::remove(input);
}

BOOST_AUTO_TEST_CASE(convert_gives_official_safetensors) {
  // .pth (BF16) to safetensors keeping the dtype: identical to the official BF16 safetensors file.
  const auto out = temp_file("converted.safetensors");
  auto r = run("convert " + data_path("v7-dev.model.bf16.pth") + " --out " + out.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto want = rwkv::io::safetensors_file::open(data_path("v7-dev.model.bf16.safetensors"));
  auto compare = [&](const rwkv::io::safetensors_file& got) {
    BOOST_REQUIRE_EQUAL(got.tensors().size(), want.tensors().size());
    for (const auto& t : want.tensors()) {
      const auto& g = got.at(t.name);
      BOOST_CHECK(g.type == t.type && g.shape == t.shape);
      BOOST_CHECK_MESSAGE(g.nbytes == t.nbytes && std::memcmp(g.data, t.data, t.nbytes) == 0, t.name);
    }
  };
  compare(rwkv::io::safetensors_file::open(out));
  // F32 to --dtype bf16 rounds exactly as the official BF16 file was made (round to nearest even).
  r = run("convert " + data_path("v7-dev.model.safetensors") + " --out " + out.string() + " --dtype bf16");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  compare(rwkv::io::safetensors_file::open(out));
  check_one_line_error(run("convert " + data_path("v7-dev.golden.safetensors") + " --out " + out.string()));
  fs::remove(out);
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

namespace {

// The data of a logits file (everything after the header): equal data means bit-identical logits.
std::string logits_bytes(const fs::path& p) {
  const auto f = rwkv::io::safetensors_file::open(p);
  const auto& l = f.at("logits");
  return {reinterpret_cast<const char*>(l.data), l.nbytes};
}

}  // namespace

// quantize writes a file that logits/generate/bench/info load directly, with the logits of the source loaded
// with the same precision, bit for bit; its default precision is the file's own.
BOOST_AUTO_TEST_CASE(quantize_round_trip) {
  const auto golden = rwkv::io::safetensors_file::open(data_path("v7-dev.golden.safetensors"));
  const std::string tokens = join(rwkv::test::ints(golden.at("tokens")));
  const auto want = temp_file("want.safetensors"), got = temp_file("got.safetensors");
  for (const std::string q : {"q8", "q4"}) {
    for (const std::string source : {"v7-dev.model.safetensors", "tiny-7v0.model.pth"}) {
      const auto file = temp_file(source + "." + q + ".safetensors");
      const auto r = run("quantize " + data_path(source) + " --to " + q + " --out " + file.string());
      BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
      BOOST_CHECK_MESSAGE(r.err.find(" matrices as " + q) != std::string::npos, r.err);
      const std::string toks = source.starts_with("v7-dev") ? tokens : "84,104,101,32,113";
      for (const std::string mode : {"step", "sequence"}) {
        BOOST_REQUIRE_EQUAL(run("logits " + data_path(source) + " --tokens " + toks + " --mode " + mode +
                                " --precision " + q + " --out " + want.string())
                                .code,
                            0);
        for (const std::string& precision : {" --precision " + q, std::string()}) {  // explicit, then default
          const auto l = run("logits " + file.string() + " --tokens " + toks + " --mode " + mode + precision +
                             " --out " + got.string());
          BOOST_REQUIRE_MESSAGE(l.code == 0, l.err);
          BOOST_CHECK_MESSAGE(logits_bytes(got) == logits_bytes(want), source << " " << q << " " << mode << precision);
        }
      }
      const auto info = run("info " + file.string());
      BOOST_CHECK_MESSAGE(
          info.out.find("dtype: F32+" + std::string(q == "q8" ? "Q8" : "Q4") + "\n") != std::string::npos, info.out);
      fs::remove(file);
    }
  }
  // generate and bench on a quantized file (tiny-7v0: byte-level, so generate has a tokenizer).
  const auto tiny = temp_file("tiny.q8.safetensors");
  BOOST_REQUIRE_EQUAL(
      run("quantize " + data_path("tiny-7v0.model.safetensors") + " --to q8 --out " + tiny.string()).code, 0);
  const auto g = run("generate " + tiny.string() + " --prompt Hello --max-tokens 16 --seed 3");
  BOOST_REQUIRE_MESSAGE(g.code == 0, g.err);
  BOOST_CHECK_EQUAL(g.out.size(), 5u + 16u + 1u);
  const auto b = run("bench " + tiny.string() + " --prompt 4 --decode 2 --runs 1");
  BOOST_REQUIRE_MESSAGE(b.code == 0, b.err);
  BOOST_CHECK_MESSAGE(b.out.find("\"precision\": \"q8\"") != std::string::npos, b.out);
  // Weights in huge pages by default; the roofline against probes with both page sizes.
  for (const char* key :
       {"\"memory\": \"huge-pages\"", "\"read_bandwidth_4k_gb_s\"", "\"read_bandwidth_hugepage_gb_s\"",
        "\"roofline_fraction_4k\"", "\"roofline_fraction_hugepage\""})
    BOOST_CHECK_MESSAGE(b.out.find(key) != std::string::npos, key << " missing from " << b.out);
  const auto mapped = run("bench " + tiny.string() + " --prompt 4 --decode 2 --runs 1 --memory mapped");
  BOOST_REQUIRE_MESSAGE(mapped.code == 0, mapped.err);
  BOOST_CHECK_MESSAGE(mapped.out.find("\"memory\": \"mapped\"") != std::string::npos, mapped.out);
  BOOST_CHECK_EQUAL(run("bench " + tiny.string() + " --memory swap").code, 2);  // a usage error
  // convert dequantizes: its F32 file gives the logits of the quantized file loaded as f32.
  const auto f32 = temp_file("tiny.dequantized.safetensors");
  BOOST_REQUIRE_EQUAL(run("convert " + tiny.string() + " --out " + f32.string()).code, 0);
  BOOST_REQUIRE_EQUAL(run("logits " + f32.string() + " --tokens 1,2,3 --out " + want.string()).code, 0);
  BOOST_REQUIRE_EQUAL(run("logits " + tiny.string() + " --tokens 1,2,3 --precision f32 --out " + got.string()).code, 0);
  BOOST_CHECK(logits_bytes(got) == logits_bytes(want));
  BOOST_CHECK(run("info " + f32.string()).out.find("dtype: F32\n") != std::string::npos);
  // Failures: the other quantized format (one line naming the file and tensor), usage errors.
  const auto other = run("logits " + tiny.string() + " --tokens 1 --precision q4 --out " + got.string());
  check_one_line_error(other);
  BOOST_CHECK_EQUAL(other.code, 1);
  BOOST_CHECK_MESSAGE(other.err.find(tiny.string() + ": tensor 'emb.weight': stored as q8 blocks") != std::string::npos,
                      other.err);
  const auto q5 = run("quantize " + data_path("tiny-7v0.model.safetensors") + " --to q5 --out " + got.string());
  check_one_line_error(q5);
  BOOST_CHECK_EQUAL(q5.code, 2);
  BOOST_CHECK_EQUAL(run("quantize " + data_path("tiny-7v0.model.safetensors") + " --to q8").code, 2);
  const auto not_model = run("quantize " + data_path("v7-dev.golden.safetensors") + " --to q8 --out " + got.string());
  check_one_line_error(not_model);
  BOOST_CHECK_EQUAL(not_model.code, 1);
  for (const auto& p : {tiny, f32, want, got}) fs::remove(p);
}

// The `grad` contract: loss, grad.<tensor> for every checkpoint tensor (official names and shapes, zeros for
// unused ones) and with --init-state (a golden .grad.safetensors file itself) grad_state.<i>.
BOOST_AUTO_TEST_CASE(grad_reproduces_the_reference_gradients) {
  const auto golden = rwkv::io::safetensors_file::open(data_path("v7-dev.grad.safetensors"));
  const auto model = rwkv::io::safetensors_file::open(data_path("v7-dev.model.safetensors"));
  const auto tokens = join(rwkv::test::ints(golden.at("tokens")));
  auto scaled = [](const std::vector<float>& want) {
    double m = 0;
    for (float w : want) m = std::max(m, static_cast<double>(std::abs(w)));
    return rwkv::test::tolerance{1e-4 * m, 1e-3};
  };
  for (const std::string mode : {"step", "sequence"}) {
    const auto out = temp_file("grad_" + mode + ".safetensors");
    auto r = run("grad " + data_path("v7-dev.model.safetensors") + " --tokens " + tokens + " --mode " + mode +
                 " --out " + out.string());
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
    {
      const auto got = rwkv::io::safetensors_file::open(out);
      const auto loss = floats(got.at("loss"))[0], want = floats(golden.at("loss"))[0];
      BOOST_CHECK_SMALL(loss - want, 1e-5f * want);
      for (const auto& t : model.tensors()) {
        const auto& g = got.at("grad." + t.name);
        BOOST_CHECK(g.shape == t.shape);
        const auto want_g = floats(golden.at("grad." + t.name));
        check_close(floats(g), want_g, scaled(want_g), mode + " grad." + t.name);
      }
      BOOST_CHECK(got.find("grad_state.0") == nullptr);
    }
    r = run("grad " + data_path("v7-dev.model.safetensors") + " --tokens " + tokens + " --mode " + mode +
            " --init-state " + data_path("v7-dev.grad.safetensors") + " --out " + out.string());
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
    const auto got = rwkv::io::safetensors_file::open(out);
    const auto loss = floats(got.at("loss"))[0], want = floats(golden.at("loss_from_state"))[0];
    BOOST_CHECK_SMALL(loss - want, 1e-5f * want);
    for (int i = 0; i < 6; ++i) {
      const auto name = "grad_state." + std::to_string(i);
      const auto want_s = floats(golden.at(name));
      check_close(floats(got.at(name)), want_s, scaled(want_s), mode + " " + name);
    }
    fs::remove(out);
  }
  check_one_line_error(run("grad " + data_path("v7-dev.model.safetensors") + " --tokens 1 --out /tmp/x.safetensors"));
  check_one_line_error(run("grad " + data_path("v7-dev.model.safetensors") + " --tokens 1,999 --out /tmp/x"));
  check_one_line_error(run("grad " + data_path("missing.safetensors") + " --tokens 1,2 --out /tmp/x"));
  // Every version, through version detection: the loss from the golden's initial state.
  for (const std::string name : {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev"}) {
    const auto g = rwkv::io::safetensors_file::open(data_path(name + ".grad.safetensors"));
    const auto out = temp_file("grad_" + name + ".safetensors");
    const auto r =
        run("grad " + data_path(name + ".model.safetensors") + " --tokens " + join(rwkv::test::ints(g.at("tokens"))) +
            " --init-state " + data_path(name + ".grad.safetensors") + " --out " + out.string());
    BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
    const auto got = rwkv::io::safetensors_file::open(out);
    const auto want = floats(g.at("loss_from_state"))[0];
    BOOST_CHECK_SMALL(floats(got.at("loss"))[0] - want, 1e-5f * want);
    const auto want_s = floats(g.at("grad_state.1"));
    check_close(floats(got.at("grad_state.1")), want_s, scaled(want_s), name + " grad_state.1");
    fs::remove(out);
  }
}

namespace {

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(cells);
  }
  return rows;
}

void remove_run(const fs::path& model) {
  auto stem = model;
  stem.replace_extension();
  for (const std::string suffix : {".safetensors", ".trainer.safetensors", ".loss.csv", ".loss.svg"})
    fs::remove(fs::path(stem.string() + suffix));
}

}  // namespace

// `train` from scratch on English text: the held-out loss falls below 3.0 nats per byte (uniform: 5.55), the CSV
// has a row per step, progress goes to stderr, the model generates, and a run stopped and resumed writes the
// same bytes as the uninterrupted one.
BOOST_AUTO_TEST_CASE(train_learns_english_and_resumes_bit_identically) {
  const auto a = temp_file("train_a.safetensors"), b = temp_file("train_b.safetensors");
  const std::string common = "train --data " + data_path("english.txt") +
                             " --layers 2 --embd 64 --head-size 32 --ctx 64 --steps 150 --lr 3e-3 --lr-final 3e-4 "
                             "--warmup 10 --eval-every 50 --holdout 0.1 --seed 4";
  auto r = run(common + " --out " + a.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_TEST_MESSAGE(r.out);
  BOOST_CHECK(r.err.find("step 150/150") != std::string::npos);
  BOOST_CHECK(r.err.find("tok/s") != std::string::npos && r.err.find("ETA") != std::string::npos);
  const auto rows = read_csv(temp_file("train_a.loss.csv"));
  BOOST_REQUIRE_EQUAL(rows.size(), 151u);
  BOOST_CHECK_EQUAL(rows[0][0], "step");
  BOOST_CHECK_EQUAL(rows[0][3], "held_out_loss");
  BOOST_CHECK_CLOSE(std::stod(rows[1][2]), std::log(256.0), 5.0);
  const double held_out = std::stod(rows.back()[3]);
  BOOST_TEST_MESSAGE("held-out loss after 150 steps: " << held_out);
  BOOST_CHECK_LT(held_out, 3.0);
  if (r.out.find(".loss.svg") != std::string::npos)
    BOOST_CHECK(file_bytes(temp_file("train_a.loss.svg")).find("<svg") != std::string::npos);
  else
    BOOST_CHECK(r.err.find("gnuplot") != std::string::npos);

  r = run("generate " + a.string() + " --prompt The --max-tokens 8");
  BOOST_CHECK_MESSAGE(r.code == 0, r.err);

  r = run(common + " --out " + b.string() + " --stop-at 60");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_CHECK_EQUAL(read_csv(temp_file("train_b.loss.csv")).size(), 61u);
  r = run(
      "train --data " + data_path("english.txt") +
      " --ctx 64 --steps 150 --lr 3e-3 --lr-final 3e-4 --warmup 10 --eval-every 50 --holdout 0.1 --seed 4 --resume " +
      b.string() + " --out " + b.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_CHECK_EQUAL(read_csv(temp_file("train_b.loss.csv")).size(), 151u);
  BOOST_CHECK(file_bytes(a) == file_bytes(b));
  BOOST_CHECK(file_bytes(temp_file("train_a.trainer.safetensors")) ==
              file_bytes(temp_file("train_b.trainer.safetensors")));

  // Resuming with another context or text is refused; so is a finished run.
  check_one_line_error(run("train --data " + data_path("english.txt") +
                           " --ctx 32 --steps 150 --holdout 0.1 --seed 4 "
                           "--lr 3e-3 --lr-final 3e-4 --resume " +
                           b.string() + " --out " + b.string()));
  check_one_line_error(run("train --data " + data_path("english.txt") +
                           " --ctx 64 --steps 150 --holdout 0.1 --seed 4 "
                           "--lr 3e-3 --lr-final 3e-4 --warmup 10 --resume " +
                           b.string() + " --out " + b.string()));
  remove_run(a);
  remove_run(b);
}

// `train --tune state` leaves the model alone and writes a state file that generate and logits start from.
BOOST_AUTO_TEST_CASE(train_tune_state_writes_a_state_file_for_state_in) {
  const auto text = temp_file("state_text.txt");
  {
    std::ofstream f(text);
    for (int i = 0; i < 40; ++i) f << "User: hi\n\nAssistant: The answer is forty-two.\n\n";
  }
  const auto model = data_path("tiny-7v0.model.safetensors");
  const auto st = temp_file("tuned.state.safetensors");
  auto r = run("train --data " + text.string() + " --tune state --model " + model + " --state-out " + st.string() +
               " --ctx 32 --steps 12 --lr 1 --lr-final 0.1 --warmup 0 --holdout 0");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_CHECK(fs::exists(st));
  const auto with_state = temp_file("logits_state.safetensors"), without = temp_file("logits_zero.safetensors");
  r = run("logits " + model + " --tokens 85,115,101,114 --out " + with_state.string() + " --state-in " + st.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  r = run("logits " + model + " --tokens 85,115,101,114 --out " + without.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto l1 = floats(rwkv::io::safetensors_file::open(with_state).at("logits"));
  const auto l0 = floats(rwkv::io::safetensors_file::open(without).at("logits"));
  float diff = 0;
  for (std::size_t i = 0; i < l0.size(); ++i) diff = std::max(diff, std::abs(l1[i] - l0[i]));
  BOOST_CHECK_GT(diff, 1e-3f);  // the tuned state changes what the model predicts
  r = run("generate " + model + " --state-in " + st.string() + " --prompt User --max-tokens 8");
  BOOST_CHECK_MESSAGE(r.code == 0, r.err);

  check_one_line_error(run("train --data " + text.string() + " --tune state --model " + model +
                           " --time-state-out /tmp/x.safetensors --steps 1 --ctx 8"));  // RWKV-7: no time_state
  check_one_line_error(run("train --data " + text.string() + " --tune state --state-out /tmp/x --steps 1"));
  check_one_line_error(run("train --data " + text.string() + " --model " + model + " --out /tmp/x --ctx 100000"));
  check_one_line_error(run("train --data " + data_path("missing.txt") + " --out /tmp/x"));
  check_one_line_error(run("train --data " + text.string() + " --out /tmp/x --version 9"));
  fs::remove(text);
  fs::remove(st);
  fs::remove(with_state);
  fs::remove(without);
  remove_run(temp_file("tuned.state.safetensors"));
}

// RWKV-7b (its state grows with DeepEmbedAttention's key/value cache) trains and tunes its state through the CLI;
// what it writes loads for inference.
BOOST_AUTO_TEST_CASE(train_and_tune_state_of_a_7b_model) {
  const auto text = temp_file("text_7b.txt");
  {
    std::ofstream f(text);
    for (int i = 0; i < 40; ++i) f << "User: hi\n\nAssistant: The answer is forty-two.\n\n";
  }
  const auto model = data_path("v7b-dev.model.safetensors");
  const auto out = temp_file("trained_7b.safetensors"), st = temp_file("tuned_7b.state.safetensors");
  auto r = run("train --data " + text.string() + " --model " + model + " --out " + out.string() +
               " --ctx 24 --steps 4 --holdout 0 --eval-every 2 --save-every 4");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  r = run("info " + out.string());
  BOOST_CHECK_MESSAGE(r.code == 0 && r.out.find("7b") != std::string::npos, r.out + r.err);
  r = run("train --data " + text.string() + " --tune state --model " + model + " --state-out " + st.string() +
          " --ctx 24 --steps 4 --holdout 0 --mode step");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  r = run("generate " + model + " --state-in " + st.string() + " --prompt User --max-tokens 4");
  BOOST_CHECK_MESSAGE(r.code == 0, r.err);
  fs::remove(text);
  fs::remove(st);
  remove_run(out);
  remove_run(st);
}

BOOST_AUTO_TEST_CASE(every_command_has_its_own_help) {
  for (const char* cmd : {"info", "generate", "chat", "logits", "bench", "train", "grad", "convert", "quantize",
                          "make-random", "tokenize", "detokenize"}) {
    const auto r = run(std::string(cmd) + " --help");
    BOOST_CHECK_MESSAGE(r.code == 0 && r.err.empty(), cmd << ": " << r.code << " " << r.err);
    BOOST_CHECK_MESSAGE(r.out.rfind(std::string("usage: rwkv-cli ") + cmd, 0) == 0, cmd << ":\n" << r.out);
  }
  BOOST_CHECK(run("generate -h").out.find("--stop TEXT") != std::string::npos);
  BOOST_CHECK(run("chat --help").out.find("User: {your line}") != std::string::npos);  // the template, visible
  const auto all = run("--help");
  BOOST_CHECK_EQUAL(all.code, 0);
  BOOST_CHECK(all.out.find("make-random") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(usage_errors_are_one_line_with_status_2) {
  check_usage_error(run("generate --bogus 1"), "unknown option --bogus (rwkv-cli generate --help shows the usage)");
  check_usage_error(run("generate --precision q3"), "--precision: unknown precision 'q3'");
  check_usage_error(run("generate --top-p 2"), "--top-p must be in (0, 1]");  // before the prompt is printed
  check_usage_error(run("generate --temperature -1"), "--temperature must be >= 0");
  check_usage_error(run("generate --temperature nan"), "--temperature must be a finite number");
  check_usage_error(run("generate --stop ''"), "--stop must not be empty");
  const auto out = temp_file("r.safetensors").string();
  check_usage_error(run("make-random --head-size 16 --out " + out), "--head-size 16 is not one rwkv-cli runs");
  check_usage_error(run("make-random --embd 60 --out " + out),
                    "--embd 60 is not a multiple of the head size 64 (the default; set it with --head-size)");
  check_usage_error(run("bench"), "bench takes exactly one MODEL");
  check_usage_error(run("frobnicate"), "unknown command 'frobnicate'");
  BOOST_CHECK(!fs::exists(out));
}

BOOST_AUTO_TEST_CASE(error_messages_say_what_happened) {
  const auto missing = run("info /nonexistent/model.safetensors");
  check_one_line_error(missing);
  BOOST_CHECK_MESSAGE(missing.err.find("no such file") != std::string::npos, missing.err);
  const auto empty = temp_file("empty.safetensors");
  std::ofstream(empty).close();
  const auto e = run("info " + empty.string());
  BOOST_CHECK_MESSAGE(e.err.find("the file is empty") != std::string::npos, e.err);
  fs::remove(empty);
  const auto model = data_path("tiny-7v0.model.safetensors");
  const auto as_state =
      run("logits " + model + " --tokens 1 --out " + temp_file("l").string() + " --state-in " + model);
  check_one_line_error(as_state);
  BOOST_CHECK_MESSAGE(as_state.err.find("this is a model checkpoint, not a state file") != std::string::npos,
                      as_state.err);
  const auto no_dir = run("convert " + model + " --out /nonexistent-dir/x.safetensors --quiet");
  check_one_line_error(no_dir);
  BOOST_CHECK_MESSAGE(no_dir.err.find("No such file or directory") != std::string::npos, no_dir.err);
}

BOOST_AUTO_TEST_CASE(tokenize_reads_text_file_or_stdin_and_shows_pieces) {
  const std::string want = "33155,45,33,10267,14610,34,4771,2003\n";
  BOOST_CHECK_EQUAL(run("tokenize --text 'Hello, \xe4\xb8\x96\xe7\x95\x8c! rwkv'").out, want);
  BOOST_CHECK_EQUAL(run("tokenize < /dev/null").out, "\n");
  const auto in = temp_file("tok.txt");
  std::ofstream(in, std::ios::binary) << "Hello,\n";
  BOOST_CHECK_EQUAL(run("tokenize --file - < " + in.string()).out, run("tokenize --file " + in.string()).out);
  BOOST_CHECK_EQUAL(run("tokenize < " + in.string()).out, run("tokenize --file " + in.string()).out);
  const auto pieces = run("tokenize --format pieces --file " + in.string());
  BOOST_CHECK_EQUAL(pieces.code, 0);
  BOOST_CHECK_MESSAGE(pieces.out.find("33155\tHello\n") == 0 && pieces.out.find("\t\\n\n") != std::string::npos,
                      pieces.out);
  const auto json = run("tokenize --format json --text Hello");
  BOOST_CHECK_EQUAL(json.out, "{\"ids\":[33155],\"pieces\":[\"Hello\"]}\n");
  check_usage_error(run("tokenize --text a --file " + in.string()), "give --text or --file, not both");
  fs::remove(in);
}

BOOST_AUTO_TEST_CASE(generate_prints_text_stops_and_reports_timing) {
  // Hot sampling on the tiny (babbling) byte-level model: printable UTF-8 unless --raw.
  const auto tiny = data_path("tiny-7v0.model.safetensors");
  const auto text = run("generate " + tiny + " --prompt The --max-tokens 300 --temperature 1.5 --top-p 1 --seed 3");
  BOOST_REQUIRE_EQUAL(text.code, 0);
  auto printable = [](const std::string& t) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      const auto u = static_cast<unsigned char>(t[i]);
      if ((u < 0x20 && u != '\n' && u != '\t') || u == 0x7F) return false;
    }
    return rwkv::is_valid_utf8(t);
  };
  BOOST_CHECK_MESSAGE(printable(text.out), text.out);
  const auto raw =
      run("generate " + tiny + " --prompt The --max-tokens 300 --temperature 1.5 --top-p 1 --seed 3 --raw");
  BOOST_CHECK_MESSAGE(!printable(raw.out), "--raw sampled printable text only: the check above shows nothing");
  // The timing line (stderr), and nothing with --quiet.
  BOOST_CHECK_MESSAGE(
      text.err.find("rwkv-cli: 300 tokens in ") == 0 && text.err.find("tokens/s), prompt 3 tokens, "
                                                                      "first token after ") != std::string::npos,
      text.err);
  const auto quiet = run("generate --prompt The --max-tokens 5 --quiet");
  BOOST_CHECK(quiet.err.empty());
  // --stop: the text before it is printed, not the stop string.
  const auto greedy = run("generate --prompt The --max-tokens 60 --temperature 0 --quiet");
  const std::string body = greedy.out.substr(3, 6);  // six generated bytes, cut where they are
  const auto stopped =
      run("generate --prompt The --max-tokens 60 --temperature 0 --quiet --stop '" + body.substr(3) + "'");
  BOOST_CHECK_EQUAL(stopped.out, "The" + body.substr(0, 3) + "\n");
}

BOOST_AUTO_TEST_CASE(chat_system_prompt_and_session_resume) {
  const auto session = temp_file("chat.state");
  fs::remove(session);
  const auto input = temp_file("chat_in.txt");
  std::ofstream(input) << "Hi\n";
  const auto first = run("chat --max-tokens 8 --temperature 0 --system 'Be brief.' --session " + session.string() +
                         " < " + input.string());
  BOOST_REQUIRE_EQUAL(first.code, 0);
  BOOST_CHECK(fs::exists(session));
  BOOST_CHECK_MESSAGE(first.err.find("template: ") != std::string::npos, first.err);
  BOOST_CHECK_MESSAGE(first.err.find(" tokens in ") != std::string::npos, first.err);  // a timing line per turn
  const auto second = run("chat --max-tokens 8 --temperature 0 --session " + session.string() + " < " + input.string());
  BOOST_REQUIRE_EQUAL(second.code, 0);
  BOOST_CHECK_MESSAGE(second.err.find("session resumed from") != std::string::npos, second.err);
  // Two sessions of one turn each end in the state of one session of two turns (greedy: seeds do not matter).
  const auto both = temp_file("chat_both.state");
  fs::remove(both);
  const auto two_turns = temp_file("chat_in2.txt");
  std::ofstream(two_turns) << "Hi\nHi\n";
  BOOST_REQUIRE_EQUAL(run("chat --max-tokens 8 --temperature 0 --system 'Be brief.' --session " + both.string() +
                          " < " + two_turns.string())
                          .code,
                      0);
  BOOST_CHECK(file_bytes(session) == file_bytes(both));
  const auto fresh = run("chat --max-tokens 8 --temperature 0 --system 'Be brief.' < " + input.string());
  BOOST_CHECK_EQUAL(fresh.out, first.out);
  fs::remove(both);
  fs::remove(two_turns);
  check_usage_error(run("chat --session " + session.string() + " --state-in " + session.string()),
                    "give --session or --init-state, not both");
  fs::remove(session);
  fs::remove(input);
}

BOOST_AUTO_TEST_CASE(long_operations_show_progress_unless_quiet) {
  const auto out = temp_file("progress.safetensors");
  const auto r =
      run_env("RWKV_CLI_PROGRESS=lines", "make-random --layers 2 --embd 64 --vocab 256 --out " + out.string());
  BOOST_REQUIRE_EQUAL(r.code, 0);
  // make-random generates each tensor as it writes it: one bar.
  BOOST_CHECK_MESSAGE(r.err.find("writing " + out.string() + ": 50%") != std::string::npos, r.err);
  BOOST_CHECK_MESSAGE(r.err.find("writing " + out.string() + ": 100%") != std::string::npos, r.err);
  const auto q =
      run_env("RWKV_CLI_PROGRESS=lines", "quantize " + out.string() + " --to q8 --out " + out.string() + ".q8 --quiet");
  BOOST_CHECK_EQUAL(q.code, 0);
  BOOST_CHECK_MESSAGE(q.err.empty(), q.err);
  const auto q2 =
      run_env("RWKV_CLI_PROGRESS=lines", "quantize " + out.string() + " --to q4 --out " + out.string() + ".q4");
  BOOST_CHECK_MESSAGE(q2.err.find("quantizing: 100%") != std::string::npos, q2.err);
  for (const auto& p : {out.string(), out.string() + ".q8", out.string() + ".q4"}) fs::remove(p);
}

BOOST_AUTO_TEST_CASE(bench_uses_every_hardware_thread_by_default) {
  const auto r = run("bench " + data_path("tiny-7v0.model.safetensors") + " --prompt 4 --decode 2 --runs 1 --quiet");
  BOOST_REQUIRE_EQUAL(r.code, 0);
  const auto threads = std::max(1u, std::thread::hardware_concurrency());
  BOOST_CHECK_MESSAGE(r.out.find("\"threads\": " + std::to_string(threads) + ",") != std::string::npos, r.out);
  // Explains a fraction above 1 (weights served from the caches) where there is one.
  BOOST_CHECK_MESSAGE(r.out.find("\"roofline_note\": \"") != std::string::npos, r.out);
}

// The first thing a new user runs (scripts/demo.sh, plain `generate`) reads like English: the bundled model's words,
// with its default sampling, are words.
BOOST_AUTO_TEST_CASE(the_default_model_writes_words) {
  const auto r = run("generate --prompt 'And it came to pass' --max-tokens 300 --seed 1 --quiet");
  BOOST_REQUIRE_EQUAL(r.code, 0);
  BOOST_CHECK(rwkv::is_valid_utf8(r.out));
  std::istringstream in(r.out);
  std::string word;
  int words = 0, plain = 0, common = 0;
  while (in >> word) {
    while (!word.empty() && std::string(",.;:!?'()").find(word.back()) != std::string::npos) word.pop_back();
    ++words;
    plain += !word.empty() && std::all_of(word.begin(), word.end(), [](char c) { return std::isalpha(c); });
    common += word == "the" || word == "and" || word == "of" || word == "unto";
  }
  BOOST_CHECK_MESSAGE(words >= 40 && plain >= words * 9 / 10 && common >= 10,
                      words << " words, " << plain << " alphabetic, " << common << " common:\n"
                            << r.out);
}

// --lora merges an adapter at load (the logits of a checkpoint saved with the merged weights, bit for bit; convert
// --lora writes that checkpoint), and --init-state starts from a state-tuning file.
BOOST_AUTO_TEST_CASE(lora_adapters_and_state_tuned_files) {
  const auto base = data_path("v7-dev.model.safetensors");
  const auto f = rwkv::io::safetensors_file::open(base);
  std::vector<rwkv::io::tensor_to_write> merged, adapter;
  for (const auto& t : f.tensors()) {
    auto v = floats(t);
    if (t.name == "blocks.1.att.value.weight") {  // W += (alpha / r)·B·A with dyadic factors: exact products
      const auto out = t.shape[0], in = t.shape[1], r = std::int64_t{4};
      std::vector<float> A(static_cast<std::size_t>(r * in)), B(static_cast<std::size_t>(out * r));
      for (std::size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>(static_cast<int>(i % 5) - 2) / 8;
      for (std::size_t i = 0; i < B.size(); ++i) B[i] = static_cast<float>(static_cast<int>(i % 3) - 1) / 16;
      for (std::int64_t o = 0; o < out; ++o)
        for (std::int64_t i = 0; i < in; ++i) {
          float d = 0;
          for (std::int64_t k = 0; k < r; ++k)
            d += B[static_cast<std::size_t>(o * r + k)] * A[static_cast<std::size_t>(k * in + i)];
          v[static_cast<std::size_t>(o * in + i)] += 6.f / 4.f * d;  // alpha 6, rank 4
        }
      adapter.push_back(
          rwkv::io::tensor_to_write::from<float>("blocks.1.att.value.lora_A", {r, in}, std::span<const float>(A)));
      adapter.push_back(
          rwkv::io::tensor_to_write::from<float>("blocks.1.att.value.lora_B", {out, r}, std::span<const float>(B)));
    }
    merged.push_back(rwkv::io::tensor_to_write::from<float>(t.name, t.shape, std::span<const float>(v)));
  }
  const auto adapter_file = temp_file("lora.safetensors"), merged_file = temp_file("merged.safetensors");
  rwkv::io::save_safetensors(adapter_file, adapter);
  rwkv::io::save_safetensors(merged_file, merged);
  const auto want = temp_file("want.safetensors"), got = temp_file("got.safetensors"),
             conv = temp_file("conv.safetensors");
  BOOST_REQUIRE_EQUAL(run("logits " + merged_file.string() + " --tokens 1,2,3 --out " + want.string()).code, 0);
  const auto r = run("logits " + base + " --tokens 1,2,3 --out " + got.string() + " --lora " + adapter_file.string() +
                     " --lora-alpha 6");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  BOOST_CHECK(logits_bytes(got) == logits_bytes(want));
  BOOST_REQUIRE_EQUAL(
      run("convert " + base + " --quiet --lora " + adapter_file.string() + " --lora-alpha 6 --out " + conv.string())
          .code,
      0);
  BOOST_REQUIRE_EQUAL(run("logits " + conv.string() + " --tokens 1,2,3 --out " + got.string()).code, 0);
  BOOST_CHECK(logits_bytes(got) == logits_bytes(want));
  check_usage_error(run("logits " + base + " --tokens 1 --out " + got.string() + " --lora " + adapter_file.string()),
                    "--lora needs --lora-alpha");
  const auto small = run("logits " + data_path("tiny-7v0.model.safetensors") + " --tokens 1 --out " + got.string() +
                         " --lora " + adapter_file.string() + " --lora-alpha 6");
  check_one_line_error(small);  // tiny-7v0's matrices are 64 x 64: the factors do not fit
  BOOST_CHECK_MESSAGE(small.err.find("do not fit the model's matrix") != std::string::npos, small.err);
  // A state-tuning file for the default model (4 layers, 3 heads of 64): generate starts from it.
  std::vector<rwkv::io::tensor_to_write> st;
  for (int l = 0; l < 4; ++l) {
    std::vector<float> v(3 * 64 * 64);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<int>((i * 7 + l) % 13) - 6) * 0.5f;
    st.push_back(rwkv::io::tensor_to_write::from<float>("blocks." + std::to_string(l) + ".att.time_state", {3, 64, 64},
                                                        std::span<const float>(v)));
  }
  const auto st_file = temp_file("time_state.safetensors");
  rwkv::io::save_safetensors(st_file, st);
  const auto plain = run("generate --prompt And --max-tokens 20 --temperature 0 --quiet");
  const auto tuned =
      run("generate --prompt And --max-tokens 20 --temperature 0 --quiet --init-state " + st_file.string());
  BOOST_REQUIRE_MESSAGE(tuned.code == 0, tuned.err);
  BOOST_CHECK_NE(tuned.out, plain.out);
  const auto as_state = run("generate --max-tokens 2 --init-state " + base);
  check_one_line_error(as_state);
  BOOST_CHECK_MESSAGE(as_state.err.find("this is a model checkpoint") != std::string::npos, as_state.err);
  for (const auto& p : {adapter_file, merged_file, want, got, conv, st_file}) fs::remove(p);
}

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

BOOST_AUTO_TEST_CASE(logits_reproduce_every_dev_golden_through_version_detection) {
  for (const std::string name : {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev", "tiny-4v0", "tiny-5v2"}) {
    check_logits(name + ".model.safetensors", name, "step", "logits");
    check_logits(name + ".model.safetensors", name, "sequence", "logits_seq");
  }
  for (const std::string name : {"v4-dev", "v5.1-dev", "v5.2-dev", "v6-dev"})
    check_logits(rwkv::test::bf16_copy(name), name, "step", "logits_bf16w --precision bf16");
}

BOOST_AUTO_TEST_CASE(info_names_every_version) {
  const std::pair<const char*, const char*> cases[] = {{"v4-dev", "4"},     {"v5.1-dev", "5.1"}, {"v5.2-dev", "5.2"},
                                                       {"v6-dev", "6"},     {"v7-dev", "7"},     {"tiny-4v0", "4"},
                                                       {"tiny-5v2", "5.2"}, {"tiny-7v0", "7"}};
  for (const auto& [file, version] : cases) {
    const auto r = run("info " + data_path(std::string(file) + ".model.safetensors"));
    BOOST_CHECK_MESSAGE(r.out.find(std::string("version: ") + version + "\n") != std::string::npos, file << ":\n"
                                                                                                         << r.out);
  }
  const auto tiny5 = run("info " + data_path("tiny-5v2.model.safetensors"));
  BOOST_CHECK(tiny5.out.find("head_size: 8\n") != std::string::npos);
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

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

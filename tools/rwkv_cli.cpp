// rwkv-cli: inspect a checkpoint, dump logits, generate text. Its interface is a contract that outside checks
// rely on; keep it stable. Any failure prints one line "rwkv-cli: error: ..." on stderr and exits non-zero.

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/rwkv.hpp>

namespace {

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* usage_text =
    "usage:\n"
    "  rwkv-cli info MODEL\n"
    "  rwkv-cli logits MODEL --tokens 1,2,3 [--mode step|sequence] --out FILE.safetensors\n"
    "  rwkv-cli generate [MODEL] [--prompt TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed "
    "S]\n"
    "\n"
    "MODEL is a safetensors checkpoint with official RWKV tensor names (F32, F16 or BF16).\n";

// Positional arguments and --key value options (every option takes a value).
struct args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;

  args(int argc, char** argv, const std::set<std::string>& known) {
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) == 0) {
        if (!known.count(a)) throw usage_error("unknown option " + a);
        if (i + 1 >= argc) throw usage_error("option " + a + " needs a value");
        options[a] = argv[++i];
      } else {
        positional.push_back(a);
      }
    }
  }

  std::optional<std::string> get(const std::string& k) const {
    auto it = options.find(k);
    return it == options.end() ? std::nullopt : std::optional(it->second);
  }
};

template <class T>
T parse_number(const std::string& s, const std::string& what) {
  T v{};
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end) throw usage_error("invalid " + what + ": '" + s + "'");
  return v;
}

std::vector<std::int32_t> parse_tokens(const std::string& s) {
  std::vector<std::int32_t> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const auto comma = s.find(',', pos);
    const auto item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    out.push_back(parse_number<std::int32_t>(item, "token id"));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (out.empty()) throw usage_error("--tokens is empty");
  return out;
}

int cmd_info(int argc, char** argv) {
  args a(argc, argv, {});
  if (a.positional.size() != 1) throw usage_error("info takes exactly one MODEL");
  const auto m = rwkv::any_model::load(a.positional[0]);
  const auto& i = m.info();
  std::cout << "version: " << i.version << "\n"
            << "n_layer: " << i.n_layer << "\n"
            << "n_embd: " << i.n_embd << "\n"
            << "head_size: " << i.head_size << "\n"
            << "n_head: " << i.n_head << "\n"
            << "vocab: " << i.vocab << "\n"
            << "dim_ffn: " << i.dim_ffn << "\n"
            << "parameters: " << i.parameters << "\n"
            << "dtype: " << i.file_dtype << "\n"
            << "format: " << i.format << "\n";
  return 0;
}

int cmd_logits(int argc, char** argv) {
  args a(argc, argv, {"--tokens", "--mode", "--out", "--precision"});
  if (a.positional.size() != 1) throw usage_error("logits takes exactly one MODEL");
  const auto tokens_arg = a.get("--tokens");
  const auto out = a.get("--out");
  if (!tokens_arg) throw usage_error("logits needs --tokens");
  if (!out) throw usage_error("logits needs --out");
  const auto mode = a.get("--mode").value_or("step");
  if (mode != "step" && mode != "sequence") throw usage_error("--mode must be step or sequence");
  const auto tokens = parse_tokens(*tokens_arg);
  const auto m = rwkv::any_model::load(a.positional[0], rwkv::parse_storage(a.get("--precision").value_or("f32")));
  const auto V = m.info().vocab;
  std::vector<float> logits;
  logits.reserve(tokens.size() * static_cast<std::size_t>(V));
  auto s = m.make_state();
  if (mode == "step") {
    for (auto t : tokens) {
      const auto row = m.step(t, s);
      logits.insert(logits.end(), row.begin(), row.end());
    }
  } else {
    const auto all = m.forward(tokens, s, rwkv::logits_for::all);
    logits.assign(all.data(), all.data() + all.size());
  }
  rwkv::io::save_safetensors(
      *out, {rwkv::io::tensor_to_write::from<float>("logits", {static_cast<std::int64_t>(tokens.size()), V}, logits)},
      {{"mode", mode}, {"model", a.positional[0]}});
  return 0;
}

int cmd_generate(int argc, char** argv) {
  args a(argc, argv, {"--prompt", "--max-tokens", "--temperature", "--top-p", "--top-k", "--seed", "--precision"});
  if (a.positional.size() > 1) throw usage_error("generate takes at most one MODEL");
  const std::string path = a.positional.empty() ? std::string(RWKV_DEFAULT_MODEL) : a.positional[0];
  const auto m = rwkv::any_model::load(path, rwkv::parse_storage(a.get("--precision").value_or("f32")));
  if (m.info().vocab != rwkv::byte_tokenizer::vocab_size)
    throw rwkv::error("text generation needs a tokenizer for vocab " + std::to_string(m.info().vocab) +
                          "; this build has the byte tokenizer (vocab 256) only",
                      path);
  const std::string prompt = a.get("--prompt").value_or("\n");
  if (prompt.empty()) throw usage_error("--prompt must not be empty");
  const auto max_tokens = parse_number<int>(a.get("--max-tokens").value_or("200"), "--max-tokens");
  rwkv::sampling_params p;
  p.temperature = parse_number<float>(a.get("--temperature").value_or("1.0"), "--temperature");
  p.top_p = parse_number<float>(a.get("--top-p").value_or("0.85"), "--top-p");
  p.top_k = parse_number<int>(a.get("--top-k").value_or("0"), "--top-k");
  std::mt19937_64 rng(parse_number<std::uint64_t>(a.get("--seed").value_or("42"), "--seed"));

  const rwkv::byte_tokenizer tok;
  auto s = m.make_state();
  auto logits = m.prefill(tok.encode(prompt), s);
  std::cout << prompt << std::flush;
  for (int i = 0; i < max_tokens; ++i) {
    const auto next = rwkv::sample(logits, p, rng);
    std::cout << static_cast<char>(next) << std::flush;
    logits = m.step(next, s);
  }
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw usage_error("missing command");
    const std::string_view cmd = argv[1];
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "logits") return cmd_logits(argc, argv);
    if (cmd == "generate") return cmd_generate(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << usage_text;
      return 0;
    }
    throw usage_error("unknown command '" + std::string(cmd) + "'");
  } catch (const usage_error& e) {
    std::cerr << "rwkv-cli: error: " << e.what() << "\n" << usage_text;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "rwkv-cli: error: " << e.what() << "\n";
    return 1;
  }
}

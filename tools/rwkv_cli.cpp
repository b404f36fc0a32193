// rwkv-cli: inspect a checkpoint, dump logits, generate text. Its interface is a contract that outside checks
// rely on; keep it stable. Any failure prints one line "rwkv-cli: error: ..." on stderr and exits non-zero.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <rwkv/any_model.hpp>
#include <rwkv/core/memory.hpp>
#include <rwkv/generate.hpp>
#include <rwkv/quantize.hpp>
#include <rwkv/random_checkpoint.hpp>
#include <rwkv/rwkv.hpp>
#include <rwkv/tokenizer/world.hpp>
#include <rwkv/train.hpp>

#include "cli_args.hpp"
#include "cli_data.hpp"
#include "cli_progress.hpp"

namespace {

using namespace rwkv_cli;

// What `rwkv-cli` and `rwkv-cli --help` print: one line per command.
constexpr const char* usage_text = R"(usage: rwkv-cli COMMAND [ARGS]   (rwkv-cli COMMAND --help: that command's options)

  info MODEL                 version, shapes and parameter count of a checkpoint
  generate [MODEL]           text from a prompt (default: the bundled tiny model)
  chat [MODEL]               an interactive conversation that keeps the state between turns
  logits MODEL               the logits of a token sequence, as a safetensors file
  bench MODEL                decode and prefill speed with the memory-bandwidth roofline (one JSON line)
  train                      train a model, or only its initial state, on a text file
  grad MODEL                 the training gradients of one token sequence
  convert MODEL              any checkpoint to safetensors with official names, optionally another float dtype
  quantize MODEL             a checkpoint with q8 or q4 weight blocks, loaded without quantizing again
  make-random                a random checkpoint of any shape with official names, for benchmarks
  tokenize                   World-tokenizer ids (and pieces) of a text
  detokenize                 the bytes of World-tokenizer ids

MODEL is an RWKV-4, 5.x, 6 or 7 checkpoint: safetensors, PyTorch .pth or rwkv.cpp .bin, recognised by content.
Errors print one line, "rwkv-cli: error: ...", and exit with 1 (2 for a usage error).
)";

constexpr const char* precision_help = R"(
P (--precision) is the weight storage: f32, bf16, f16, q8 or q4; arithmetic and the state are always float32.
The default is f32, or for a file written by `quantize` its own format (q8/q4 blocks load as they are).
M (--memory) is where the weights live: huge-pages (copied into anonymous memory with transparent huge pages,
the fastest to decode from), locked (the same, mlock'ed), or mapped (zero-copy views of the file where the dtype
matches: fastest load, least memory, but decoding slows when the kernel evicts and re-reads the file's pages).
--threads N defaults to every hardware thread; --quiet silences progress and timing lines (stderr).
--lora FILE --lora-alpha A [--lora-scale S] merges a LoRA adapter (RWKV-PEFT's lora_A/lora_B tensors, plus the full
tensors it carries) into the weights at load: W + S·(A/r)·B·A. Repeat --lora for several (in order), with one
--lora-alpha for all or one each. Every adapter tensor must match the model (docs/adapters.md).
)";

constexpr const char* sampling_help = R"(
SAMPLING (defaults for byte-level models in brackets where they differ):
  --max-tokens N [200]         tokens to generate at most
  --temperature T [1.0 (0.7)]  0 is greedy
  --top-p P [0.85 (0.5)]       nucleus: keep the most likely tokens up to probability P, in (0, 1]
  --top-k K [0]                keep the K most likely (0: all)
  --presence A [0.2]  --frequency A [0.2]  --penalty-decay D [0.996]   repetition penalties (reference defaults)
  --seed S [42]                the same seed gives the same text
  --stop TEXT                  stop when the text contains TEXT (repeatable; \n, \t and \\ are escapes)
  --raw                        sample from every token; by default only tokens that keep the output printable
                               UTF-8 text are sampled (no invalid bytes, no control characters but tab and newline)
  --init-state FILE            start from a saved state (rwkvpp state file) or a state-tuning file (att.time_state
                               tensors, e.g. RWKV-PEFT's) instead of zeros; --state-in is the same option
  --vocab PATH                 World vocabulary (default: the bundled one); byte-level models need none
)";

struct command {
  const char* name;
  int (*run)(int, char**);
  std::string help;
};

// any_model with a thread pool bound, in the shape rwkv::generate expects.
struct pooled {
  using state_type = rwkv::any_state;
  const rwkv::any_model& model;
  rwkv::thread_pool* pool;
  std::vector<float> prefill(std::span<const std::int32_t> t, state_type& s) const { return model.prefill(t, s, pool); }
  std::vector<float> step(std::int32_t t, state_type& s) const { return model.step(t, s, pool); }
};

// --threads, by default every hardware thread.
unsigned parse_threads(const args& a) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const auto n = parse_number<int>(a.get("--threads").value_or(std::to_string(hw)), "--threads");
  if (n < 1 || n > 1024) throw usage_error("--threads must be between 1 and 1024");
  return static_cast<unsigned>(n);
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

// --memory (see usage_text); `fallback` where it is not given.
rwkv::io::load_options memory_options(const args& a, const char* fallback) {
  const std::string m = a.get("--memory").value_or(fallback);
  rwkv::io::load_options o;
  if (m == "huge-pages" || m == "locked") {
    o.huge_pages = true;
    o.mlock = m == "locked";
  } else if (m != "mapped") {
    throw usage_error("--memory must be mapped, huge-pages or locked");
  }
  return o;
}

// The state a command starts from: --init-state or --state-in FILE (an rwkvpp state file, or a state-tuning
// file of att.time_state tensors), else zeros.
rwkv::any_state initial_state(const args& a, const rwkv::any_model& m) {
  const auto init = a.get("--init-state"), in = a.get("--state-in");
  if (init && in) throw usage_error("give --init-state or --state-in, not both (they are the same option)");
  if (init || in) return m.load_initial_state(init ? *init : *in);
  return m.make_state();
}

// --precision, or by default f32; a file written by `quantize` defaults to its own format (f32 would dequantize
// every matrix into four to eight times the memory).
rwkv::storage_choice precision_for(const args& a, const std::string& path) {
  if (const auto p = a.get("--precision")) {
    try {
      return rwkv::parse_storage(*p);
    } catch (const rwkv::error& e) {
      throw usage_error("--precision: " + e.problem());
    }
  }
  const auto file = rwkv::io::mapped_file::open(path);
  if (rwkv::io::detect_format(file->bytes(), file->name()) == rwkv::io::file_format::safetensors) {
    const rwkv::io::safetensors_file st(file);
    const auto it = st.metadata().find(rwkv::io::quantized_format::quantization_key);
    if (it != st.metadata().end() && (it->second == "q8" || it->second == "q4")) return rwkv::parse_storage(it->second);
    // (another value: loading reports it, naming the file)
  }
  return rwkv::storage_choice::f32;
}

// --lora FILE (repeatable) with --lora-alpha A (one for all, or one per adapter, in order) and --lora-scale S.
std::vector<rwkv::io::adapter> parse_adapters(const args& a) {
  const auto files = a.every("--lora");
  const auto alphas = a.every("--lora-alpha");
  if (files.empty()) {
    if (!alphas.empty() || a.get("--lora-scale")) throw usage_error("--lora-alpha and --lora-scale need --lora FILE");
    return {};
  }
  if (alphas.empty())
    throw usage_error(
        "--lora needs --lora-alpha A: the lora_alpha of the training run (not stored in the adapter; "
        "RWKV-PEFT writes it to train_log.txt)");
  if (alphas.size() != 1 && alphas.size() != files.size())
    throw usage_error("give one --lora-alpha for all adapters or one per --lora, in order");
  const float scale = parse_number<float>(a.get("--lora-scale").value_or("1"), "--lora-scale");
  std::vector<rwkv::io::adapter> out;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const float alpha = parse_number<float>(alphas[alphas.size() == 1 ? 0 : i], "--lora-alpha");
    if (!(alpha > 0) || !std::isfinite(alpha)) throw usage_error("--lora-alpha must be positive");
    if (!std::isfinite(scale)) throw usage_error("--lora-scale must be a finite number");
    out.push_back({files[i], alpha, scale});
  }
  return out;
}

const std::set<std::string> adapter_options = {"--lora", "--lora-alpha", "--lora-scale"};

std::set<std::string> with_adapters(std::set<std::string> known) {
  known.insert(adapter_options.begin(), adapter_options.end());
  return known;
}

// The model at `path` with the command's --precision, --memory and --lora, showing a progress bar for large files.
rwkv::any_model load_model(const args& a, const std::string& path, const char* memory_fallback) {
  const auto storage = precision_for(a, path);
  auto options = memory_options(a, memory_fallback);
  options.adapters = parse_adapters(a);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  progress bar("loading " + std::filesystem::path(path).filename().string(), a.has("--quiet"));
  if (!ec && size >= (std::uintmax_t{64} << 20))
    options.progress = [&bar](std::int64_t d, std::int64_t t) { bar(d, t); };
  return rwkv::any_model::load(path, storage, options);
}

int cmd_info(int argc, char** argv) {
  args a(argc, argv, {"--precision", "--memory"});
  if (a.positional.size() != 1) throw usage_error("info takes exactly one MODEL");
  const auto m = load_model(a, a.positional[0], "mapped");
  const auto& i = m.info();
  std::cout << "version: " << i.version << "\n"
            << "n_layer: " << i.n_layer << "\n"
            << "n_embd: " << i.n_embd << "\n"
            << "head_size: " << i.head_size << "\n"
            << "n_head: " << i.n_head << "\n"
            << "vocab: " << i.vocab << "\n"
            << "dim_ffn: " << i.dim_ffn << "\n"
            << "parameters: " << i.parameters << "\n"
            << "state_bytes: " << i.state_bytes << "\n"
            << "state_bytes_per_token: " << i.state_bytes_per_token << "\n"
            << "dtype: " << i.file_dtype << "\n"
            << "format: " << i.format << "\n";
  return 0;
}

int cmd_logits(int argc, char** argv) {
  args a(argc, argv,
         with_adapters({"--tokens", "--mode", "--out", "--precision", "--threads", "--state-in", "--init-state",
                        "--state-out", "--memory"}));
  if (a.positional.size() != 1) throw usage_error("logits takes exactly one MODEL");
  const auto tokens_arg = a.get("--tokens");
  const auto out = a.get("--out");
  if (!tokens_arg) throw usage_error("logits needs --tokens");
  if (!out) throw usage_error("logits needs --out");
  const auto mode = a.get("--mode").value_or("step");
  if (mode != "step" && mode != "sequence") throw usage_error("--mode must be step or sequence");
  const auto tokens = parse_tokens(*tokens_arg);
  const auto m = load_model(a, a.positional[0], "mapped");
  const auto V = m.info().vocab;
  rwkv::thread_pool pool(parse_threads(a));
  std::vector<float> logits;
  logits.reserve(tokens.size() * static_cast<std::size_t>(V));
  auto s = initial_state(a, m);
  if (mode == "step") {
    for (auto t : tokens) {
      const auto row = m.step(t, s, &pool);
      logits.insert(logits.end(), row.begin(), row.end());
    }
  } else {
    const auto all = m.forward(tokens, s, rwkv::logits_for::all, &pool);
    logits.assign(all.data(), all.data() + all.size());
  }
  if (auto path = a.get("--state-out")) s.save(*path);
  rwkv::io::save_safetensors(
      *out, {rwkv::io::tensor_to_write::from<float>("logits", {static_cast<std::int64_t>(tokens.size()), V}, logits)},
      {{"mode", mode}, {"model", a.positional[0]}});
  return 0;
}

// The training gradients of the golden files' loss (rwkv/train/network.hpp): every checkpoint tensor's gradient
// under its official name and shape, and with --init-state the gradient of that state (reference layout).
int cmd_grad(int argc, char** argv) {
  args a(argc, argv, {"--tokens", "--init-state", "--mode", "--out"});
  if (a.positional.size() != 1) throw usage_error("grad takes exactly one MODEL");
  const auto tokens_arg = a.get("--tokens");
  const auto out = a.get("--out");
  if (!tokens_arg) throw usage_error("grad needs --tokens");
  if (!out) throw usage_error("grad needs --out");
  const auto mode = a.get("--mode").value_or("sequence");
  if (mode != "step" && mode != "sequence") throw usage_error("--mode must be step or sequence");
  const auto tokens = parse_tokens(*tokens_arg);
  if (tokens.size() < 2) throw usage_error("grad needs at least two --tokens (inputs and the tokens they predict)");
  const std::vector<std::int32_t> inputs(tokens.begin(), tokens.end() - 1), targets(tokens.begin() + 1, tokens.end());
  return rwkv::train::with_network(a.positional[0], [&](auto& net) {
    const auto form = mode == "step" ? rwkv::train::form::step : rwkv::train::form::sequence;
    std::optional<rwkv::train::state> init, d_init;
    if (auto path = a.get("--init-state")) {
      init = rwkv::train::read_state(*path, net.initial_state());
      d_init.emplace();
    }
    const double loss =
        net.loss_and_gradients(inputs, targets, form, init ? &*init : nullptr, d_init ? &*d_init : nullptr);
    const float loss_f = static_cast<float>(loss);
    std::vector<rwkv::io::tensor_to_write> tensors{
        rwkv::io::tensor_to_write::from<float>("loss", {1}, std::span<const float>(&loss_f, 1))};
    for (auto& t : net.parameters().gradients("grad.")) tensors.push_back(std::move(t));
    if (d_init)
      for (auto& t : d_init->to_tensors("grad_state.")) tensors.push_back(std::move(t));
    rwkv::io::save_safetensors(*out, tensors, {{"mode", mode}, {"model", a.positional[0]}});
    return 0;
  });
}

// Calls f(tokenizer) with the tokenizer a model of this vocabulary size needs.
template <class F>
int with_tokenizer(std::int64_t vocab, const args& a, const std::string& model_path, F&& f) {
  if (vocab == rwkv::byte_tokenizer::vocab_size) return f(rwkv::byte_tokenizer{});
  if (vocab == 65536 || a.get("--vocab"))
    return f(rwkv::world_tokenizer(a.get("--vocab").value_or(default_vocab_path())));
  throw rwkv::error("no tokenizer for vocabulary size " + std::to_string(vocab) +
                        " (byte-level models have 256, World models 65536; pass --vocab for another World vocabulary)",
                    model_path);
}

const std::set<std::string> sampling_options = {
    "--max-tokens", "--temperature", "--top-p",      "--top-k",     "--seed",          "--precision",
    "--threads",    "--vocab",       "--presence",   "--frequency", "--penalty-decay", "--memory",
    "--state-in",   "--stop",        "--init-state", "--lora",      "--lora-alpha",    "--lora-scale"};
const std::set<std::string> sampling_flags = {"--raw", "--quiet"};

// \n, \t and \\ in a --stop value (a newline is hard to type on a command line).
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Sampling options, checked before anything is loaded or printed. Byte-level models (vocab 256) get a cooler
// default: a small byte-level model's tail is mostly misspellings.
rwkv::generation_params parse_generation(const args& a, int default_tokens, bool byte_level) {
  rwkv::generation_params g;
  auto number = [&](const char* key, const char* fallback) {
    const float v = parse_number<float>(a.get(key).value_or(fallback), key);
    if (!std::isfinite(v)) throw usage_error(std::string(key) + " must be a finite number");
    return v;
  };
  g.max_tokens = parse_number<int>(a.get("--max-tokens").value_or(std::to_string(default_tokens)), "--max-tokens");
  g.sampling.temperature = number("--temperature", byte_level ? "0.7" : "1.0");
  g.sampling.top_p = number("--top-p", byte_level ? "0.5" : "0.85");
  g.sampling.top_k = parse_number<int>(a.get("--top-k").value_or("0"), "--top-k");
  g.penalty.presence = number("--presence", "0.2");
  g.penalty.frequency = number("--frequency", "0.2");
  g.penalty.decay = number("--penalty-decay", "0.996");
  g.seed = parse_number<std::uint64_t>(a.get("--seed").value_or("42"), "--seed");
  if (g.max_tokens < 0) throw usage_error("--max-tokens must be >= 0");
  if (g.sampling.temperature < 0) throw usage_error("--temperature must be >= 0 (0 is greedy)");
  if (!(g.sampling.top_p > 0 && g.sampling.top_p <= 1)) throw usage_error("--top-p must be in (0, 1]");
  if (g.sampling.top_k < 0) throw usage_error("--top-k must be >= 0 (0: no limit)");
  if (!(g.penalty.decay >= 0 && g.penalty.decay <= 1)) throw usage_error("--penalty-decay must be in [0, 1]");
  for (const auto& stop : a.every("--stop")) {
    if (stop.empty()) throw usage_error("--stop must not be empty");
    g.stop_strings.push_back(unescape(stop));
  }
  g.text_only = !a.has("--raw");
  return g;
}

// The vocabulary size of a checkpoint, from its tensors (before the model is loaded, so that option errors come
// first and fast).
std::int64_t vocab_of(const std::string& path) {
  const auto file = rwkv::io::open_checkpoint(path);
  for (const auto& t : file.tensors)
    if (t.name == "emb.weight" && !t.shape.empty()) return t.shape.front();
  return 0;
}

// "rwkv-cli: 200 tokens in 1.52 s (131.6 tokens/s), prompt 4 tokens, first token after 15 ms" on stderr.
struct timing {
  using clock = std::chrono::steady_clock;
  clock::time_point start = clock::now();
  std::optional<clock::time_point> first;
  void token() {
    if (!first) first = clock::now();
  }
  void report(std::size_t prompt_tokens, std::size_t tokens, bool quiet) const {
    if (quiet) return;
    const auto end = clock::now();
    const double total = std::chrono::duration<double>(end - start).count();
    const double gen = first ? std::chrono::duration<double>(end - *first).count() : 0;
    std::fprintf(stderr,
                 "rwkv-cli: %zu tokens in %.2f s (%.1f tokens/s), prompt %zu tokens, first token after %.0f ms\n",
                 tokens, total, tokens > 1 && gen > 0 ? static_cast<double>(tokens - 1) / gen : 0.0, prompt_tokens,
                 first ? std::chrono::duration<double>(*first - start).count() * 1e3 : total * 1e3);
  }
};

int cmd_generate(int argc, char** argv) {
  auto known = sampling_options;
  known.insert("--prompt");
  args a(argc, argv, known, sampling_flags);
  if (a.positional.size() > 1) throw usage_error("generate takes at most one MODEL");
  const std::string path = a.positional.empty() ? default_model_path() : a.positional[0];
  const std::string prompt = unescape(a.get("--prompt").value_or("\n"));
  if (prompt.empty()) throw usage_error("--prompt must not be empty");
  const auto params = parse_generation(a, 200, vocab_of(path) == rwkv::byte_tokenizer::vocab_size);
  const bool quiet = a.has("--quiet");
  const auto m = load_model(a, path, "huge-pages");
  rwkv::thread_pool pool(parse_threads(a));
  return with_tokenizer(m.info().vocab, a, path, [&](const auto& tok) {
    auto s = initial_state(a, m);
    std::cout << prompt << std::flush;
    timing clock;
    const auto r = rwkv::generate(pooled{m, &pool}, s, tok, prompt, params, [&](std::string_view piece) {
      clock.token();
      std::cout << piece << std::flush;
      return true;
    });
    std::cout << "\n" << std::flush;
    clock.report(tok.encode(prompt).size(), r.tokens.size(), quiet);
    return 0;
  });
}

constexpr const char* chat_template = "User: {your line}\n\nAssistant:{the reply, up to a blank line}\n\n";

// An interactive conversation: the state is kept between turns, so each turn only feeds the new text. With
// --session FILE the state is saved after every turn and a later chat with the same FILE continues it.
int cmd_chat(int argc, char** argv) {
  auto known = sampling_options;
  known.insert("--system");
  known.insert("--session");
  args a(argc, argv, known, sampling_flags);
  if (a.positional.size() > 1) throw usage_error("chat takes at most one MODEL");
  const std::string path = a.positional.empty() ? default_model_path() : a.positional[0];
  auto params = parse_generation(a, 300, vocab_of(path) == rwkv::byte_tokenizer::vocab_size);
  params.stop_strings.insert(params.stop_strings.begin(), {"\n\nUser:", "\n\n"});
  const auto session = a.get("--session");
  if (session && (a.get("--state-in") || a.get("--init-state")))
    throw usage_error("give --session or --init-state, not both");
  const bool quiet = a.has("--quiet");
  const auto m = load_model(a, path, "huge-pages");
  rwkv::thread_pool pool(parse_threads(a));
  return with_tokenizer(m.info().vocab, a, path, [&](const auto& tok) {
    const bool resume = session && std::filesystem::exists(*session);
    auto s = resume ? m.load_state(*session) : initial_state(a, m);
    if (!quiet) {
      std::cerr << "rwkv-cli chat: " << path << " (RWKV-" << m.info().version << "). Empty line or EOF ends.\n"
                << "template: " << std::quoted(chat_template) << (resume ? "; session resumed from " : "")
                << (resume ? *session : "") << "\n";
    }
    if (const auto system = a.get("--system"); system && !resume) {
      const auto ids = tok.encode("System: " + unescape(*system) + "\n\n");
      m.prefill(ids, s, &pool);
    }
    std::string line;
    while (std::cout << "User: " << std::flush, std::getline(std::cin, line) && !line.empty()) {
      std::cout << "Assistant:" << std::flush;
      const std::string turn = "User: " + line + "\n\nAssistant:";
      timing clock;
      const auto r = rwkv::generate(pooled{m, &pool}, s, tok, turn, params, [&](std::string_view piece) {
        clock.token();
        std::cout << piece << std::flush;
        return true;
      });
      std::cout << "\n\n" << std::flush;
      clock.report(tok.encode(turn).size(), r.tokens.size(), quiet);
      if (session) s.save(*session);
      ++params.seed;
    }
    return 0;
  });
}

// Any supported checkpoint to a safetensors file with official names, optionally changing the float dtype.
int cmd_convert(int argc, char** argv) {
  args a(argc, argv, with_adapters({"--out", "--dtype"}), {"--quiet"});
  if (a.positional.size() != 1) throw usage_error("convert takes exactly one input MODEL");
  const auto out = a.get("--out");
  if (!out) throw usage_error("convert needs --out");
  const auto dtype = a.get("--dtype").value_or("keep");
  if (dtype != "keep" && dtype != "f32" && dtype != "bf16" && dtype != "f16")
    throw usage_error("--dtype must be f32, bf16 or f16");
  auto in = rwkv::io::open_checkpoint(a.positional[0]);
  rwkv::io::apply_adapters(in.tensors, in.owner, parse_adapters(a), in.path);  // --lora: a merged checkpoint
  const auto version = rwkv::detect_version(in.tensors, in.path);
  std::vector<rwkv::io::tensor_to_write> tensors;
  progress converting("converting", a.has("--quiet"));
  for (const auto& t : in.tensors) {
    converting(static_cast<std::int64_t>(tensors.size()), static_cast<std::int64_t>(in.tensors.size()));
    rwkv::io::tensor_to_write w{t.name, t.type, t.shape, {}};
    const bool is_float = t.type == rwkv::dtype::f32 || t.type == rwkv::dtype::f16 || t.type == rwkv::dtype::bf16;
    // A quantized file's blocks are dequantized (to F32 unless --dtype says otherwise).
    const std::string to = t.quantized && dtype == "keep" ? "f32" : dtype;
    if (!t.quantized && (!is_float || dtype == "keep" || dtype == rwkv::dtype_name(t.type))) {
      w.bytes.assign(t.data, t.data + t.nbytes);
    } else {
      const auto n = static_cast<std::size_t>(t.numel());
      const auto dequantized = t.quantized ? rwkv::io::dequantize(t) : std::vector<float>{};
      auto put = [&]<class T>(T) {
        w.type = rwkv::dtype_of<T>();
        w.bytes.resize(n * sizeof(T));
        for (std::size_t i = 0; i < n; ++i) {
          const T v = rwkv::from_float<T>(t.quantized ? dequantized[i] : rwkv::load_as_float(t, i));
          std::memcpy(w.bytes.data() + i * sizeof(T), &v, sizeof(T));
        }
      };
      if (to == "f32") put(float{});
      if (to == "bf16") put(rwkv::bf16{});
      if (to == "f16") put(rwkv::f16{});
    }
    tensors.push_back(std::move(w));
  }
  converting(1, 1);
  progress writing("writing " + *out, a.has("--quiet"));
  rwkv::io::save_safetensors(*out, tensors,
                             {{"format", "pt"},
                              {"rwkv_version", rwkv::version_name(version)},
                              {"converted_from", std::string(rwkv::io::format_name(in.format))}},
                             std::ref(writing));
  if (!a.has("--quiet"))
    std::cerr << "rwkv-cli: wrote " << tensors.size() << " tensors (RWKV-" << rwkv::version_name(version) << ") to "
              << *out << "\n";
  return 0;
}

// Any supported checkpoint to a safetensors file of q8 or q4 blocks (io/quantized.hpp), which loads without
// quantizing again and gives the logits of the source loaded with that precision.
int cmd_quantize(int argc, char** argv) {
  args a(argc, argv, {"--to", "--out"}, {"--quiet"});
  if (a.positional.size() != 1) throw usage_error("quantize takes exactly one input MODEL");
  const auto out = a.get("--out");
  const auto to = a.get("--to");
  if (!out) throw usage_error("quantize needs --out");
  if (!to) throw usage_error("quantize needs --to q8|q4");
  if (*to != "q8" && *to != "q4") throw usage_error("--to must be q8 or q4");
  progress bar("quantizing", a.has("--quiet"));
  const auto s = rwkv::quantize_checkpoint(a.positional[0], *out, rwkv::parse_storage(*to), std::ref(bar));
  if (!a.has("--quiet"))
    std::cerr << "rwkv-cli: wrote RWKV-" << s.version << " with " << s.quantized << " matrices as " << *to << " ("
              << s.quantized_elements << " of " << s.parameters << " parameters) and " << s.copied
              << " tensors unchanged to " << *out << "\n";
  return 0;
}

int cmd_make_random(int argc, char** argv) {
  args a(argc, argv, {"--version", "--layers", "--embd", "--vocab", "--head-size", "--dtype", "--seed", "--out"},
         {"--quiet"});
  if (!a.positional.empty()) throw usage_error("make-random takes no positional arguments");
  const auto out = a.get("--out");
  if (!out) throw usage_error("make-random needs --out");
  rwkv::random_spec spec;
  spec.version = a.get("--version").value_or("7");
  spec.n_layer = parse_number<std::int64_t>(a.get("--layers").value_or("12"), "--layers");
  spec.n_embd = parse_number<std::int64_t>(a.get("--embd").value_or("768"), "--embd");
  spec.vocab = parse_number<std::int64_t>(a.get("--vocab").value_or("65536"), "--vocab");
  spec.head_size = parse_number<std::int64_t>(a.get("--head-size").value_or("64"), "--head-size");
  spec.seed = parse_number<std::uint64_t>(a.get("--seed").value_or("0"), "--seed");
  const auto dtype = a.get("--dtype").value_or("f32");
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16") throw usage_error("--dtype must be f32, bf16 or f16");
  const std::string& v = spec.version;
  if (v != "4" && v != "5.2" && v != "6" && v != "7" && v != "7a" && v != "7b")
    throw usage_error("--version must be 4, 5.2, 6, 7, 7a or 7b");
  if (spec.n_layer < 1 || spec.n_embd < 1 || spec.vocab < 1)
    throw usage_error("--layers, --embd and --vocab must be positive");
  if (spec.version != "4") {
    const auto n = spec.head_size;
    const bool variant = v == "7a" || v == "7b";
    if (variant ? n != 64 : (n != 8 && n != 32 && n != 64 && n != 128))
      throw usage_error("--head-size " + std::to_string(n) + " is not one rwkv-cli runs (" +
                        (variant ? "64 for RWKV-7a/7b" : "8, 32, 64 or 128") + ")");
    if (spec.n_embd % n != 0)
      throw usage_error("--embd " + std::to_string(spec.n_embd) + " is not a multiple of the head size " +
                        std::to_string(n) + (a.get("--head-size") ? "" : " (the default; set it with --head-size)"));
  }
  // One tensor at a time: a 0.1B RWKV-7b is 1.8G values, mostly token tables.
  progress writing("writing " + *out, a.has("--quiet"));
  const std::map<std::string, std::string> metadata{{"generator", "rwkv-cli make-random"},
                                                    {"seed", std::to_string(spec.seed)}};
  if (dtype == "f32")
    rwkv::save_random_checkpoint<float>(*out, spec, metadata, std::ref(writing));
  else if (dtype == "bf16")
    rwkv::save_random_checkpoint<rwkv::bf16>(*out, spec, metadata, std::ref(writing));
  else
    rwkv::save_random_checkpoint<rwkv::f16>(*out, spec, metadata, std::ref(writing));
  return 0;
}

// Read bandwidth of this machine with the pool's threads over `mem` (written first, so every page is resident):
// the best of `passes` sums, GB/s. Each thread streams its contiguous share with 8 independent vector
// accumulators (128 partial sums with AVX-512, 64 with AVX2), enough loads in flight to saturate memory, so the
// probe reads as fast as the machine can and the roofline fraction is not flattered. The region is far larger
// than the caches; its page size (4 KiB or 2 MiB) is chosen by the caller to match the weights'.
double measure_read_bandwidth(rwkv::thread_pool& pool, const rwkv::anonymous_memory& mem, int passes) {
  using batch = xsimd::batch<float>;
  constexpr auto W = static_cast<std::int64_t>(batch::size);
  const auto* data = reinterpret_cast<const float*>(mem.data());
  const auto n = static_cast<std::int64_t>(mem.size() / sizeof(float)) / (8 * W) * (8 * W);
  double best = 0;
  std::vector<float> partial(pool.size(), 0.f);
  for (int pass = 0; pass < passes; ++pass) {
    std::atomic<unsigned> slot{0};
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n / (8 * W), [&](std::int64_t b, std::int64_t e) {
      batch acc[8];
      for (auto& x : acc) x = batch(0.f);
      for (std::int64_t i = b * 8 * W; i < e * 8 * W; i += 8 * W)
        for (int j = 0; j < 8; ++j) acc[j] += batch::load_aligned(data + i + j * W);
      batch sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      partial[slot++ % partial.size()] = rwkv::kernel::cpu::reduce_sum<xsimd::default_arch>(sum);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile float sink = partial[0];
    (void)sink;
    best = std::max(best, static_cast<double>(n) * sizeof(float) / s / 1e9);
  }
  return best;
}

// A 512 MiB probe region with the given page size, every page written (resident).
rwkv::anonymous_memory probe_memory(rwkv::page_size pages) {
  rwkv::anonymous_memory mem(std::size_t{512} << 20, pages);
  auto* f = reinterpret_cast<float*>(mem.data());
  for (std::size_t i = 0; i < mem.size() / sizeof(float); ++i) f[i] = 1.f;
  return mem;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

const char* storage_label(rwkv::storage_choice s) {
  switch (s) {
    case rwkv::storage_choice::f32:
      return "f32";
    case rwkv::storage_choice::bf16:
      return "bf16";
    case rwkv::storage_choice::f16:
      return "f16";
    case rwkv::storage_choice::q8:
      return "q8";
    case rwkv::storage_choice::q4:
      return "q4";
  }
  return "?";
}

// Bytes read per weight of a big matrix: q8 is 32 int8 + an f16 scale per 32 weights, q4 32 nibbles + f16
// scale and minimum.
double bytes_per_weight(rwkv::storage_choice s) {
  switch (s) {
    case rwkv::storage_choice::f32:
      return 4;
    case rwkv::storage_choice::bf16:
    case rwkv::storage_choice::f16:
      return 2;
    case rwkv::storage_choice::q8:
      return 34.0 / 32;
    case rwkv::storage_choice::q4:
      return 20.0 / 32;
  }
  return 4;
}

// Decode and prefill speed of MODEL as one JSON object (medians), with the decode roofline fraction: measured
// read bandwidth / bytes of weights read per token (every parameter but the embedding table, in the storage it
// has in memory). The machine's bandwidth drifts (shared hosts), so decode runs in rounds, each followed by a
// bandwidth probe, and the fraction is the median over rounds of each round's own ratio.
int cmd_bench(int argc, char** argv) {
  args a(argc, argv, with_adapters({"--prompt", "--decode", "--threads", "--precision", "--runs", "--memory"}),
         {"--quiet"});
  if (a.positional.size() != 1) throw usage_error("bench takes exactly one MODEL");
  const auto prompt_len = parse_number<int>(a.get("--prompt").value_or("512"), "--prompt");
  const auto decode_len = parse_number<int>(a.get("--decode").value_or("64"), "--decode");
  const auto runs = parse_number<int>(a.get("--runs").value_or("5"), "--runs");
  if (prompt_len < 1 || decode_len < 1 || runs < 1) throw usage_error("--prompt, --decode and --runs must be >= 1");
  const auto storage = precision_for(a, a.positional[0]);
  const std::string precision = storage_label(storage);
  rwkv::thread_pool pool(parse_threads(a));
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };

  const auto t_load = clock::now();
  auto options = memory_options(a, "huge-pages");
  options.adapters = parse_adapters(a);
  const auto m = rwkv::any_model::load(a.positional[0], storage, options);
  const double load_s = seconds(t_load);
  const auto& info = m.info();

  std::mt19937 rng(1);
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_len));
  for (auto& t : prompt) t = static_cast<std::int32_t>(rng() % static_cast<unsigned>(info.vocab));
  std::vector<double> prefill_rates;
  auto s = m.make_state();
  std::vector<float> logits;
  for (int r = 0; r < runs; ++r) {
    s = m.make_state();
    const auto t0 = clock::now();
    logits = m.prefill(prompt, s, &pool);
    prefill_rates.push_back(prompt_len / seconds(t0));
  }

  const double emb_elements = static_cast<double>(info.vocab * info.n_embd);
  const double weight_bytes = (static_cast<double>(info.weight_elements) - emb_elements) * bytes_per_weight(storage) +
                              static_cast<double>(info.parameters - info.weight_elements) * sizeof(float);
  auto decode_round = [&] {
    std::vector<double> step_times;
    for (int i = 0; i < decode_len; ++i) {
      const auto next = rwkv::argmax(logits);
      const auto t0 = clock::now();
      logits = m.step(next, s, &pool);
      step_times.push_back(seconds(t0));
    }
    return 1.0 / median(step_times);
  };
  // Probes with small and huge pages after each decode round; the roofline is against the probe whose pages are
  // those of the weights (huge with --memory huge-pages or locked, small when mapped).
  std::vector<double> decode_rates, bw_small, bw_huge, frac_small, frac_huge;
  decode_rates.push_back(decode_round());
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);  // before the probes' memory
  const auto small = probe_memory(rwkv::page_size::small), huge = probe_memory(rwkv::page_size::huge);
  for (int r = 0; r < runs; ++r) {
    if (r > 0) decode_rates.push_back(decode_round());
    bw_small.push_back(measure_read_bandwidth(pool, small, 3));
    bw_huge.push_back(measure_read_bandwidth(pool, huge, 3));
    frac_small.push_back(decode_rates.back() / (bw_small.back() * 1e9 / weight_bytes));
    frac_huge.push_back(decode_rates.back() / (bw_huge.back() * 1e9 / weight_bytes));
  }
  const bool huge_weights = options.huge_pages;
  const double bandwidth = median(huge_weights ? bw_huge : bw_small);
  const double fraction = median(huge_weights ? frac_huge : frac_small);
  // Decoding faster than memory can deliver the weights means they come from the CPU's caches (small models):
  // the JSON then says so instead of leaving a fraction above 1 unexplained.
  const std::string note =
      fraction > 1 ? "decode is faster than reading the weights from memory: they are served from the CPU caches; "
                     "use a model whose weights exceed the caches to measure memory-bound decoding"
                   : "";

  std::printf(
      "{\"model\": \"%s\", \"version\": \"%s\", \"n_layer\": %lld, \"n_embd\": %lld, \"vocab\": %lld, "
      "\"precision\": \"%s\", \"threads\": %u, \"isa\": \"%s\", \"memory\": \"%s\", \"load_s\": %.3f, "
      "\"prefill_tokens\": %d, \"prefill_tok_s\": %.1f, \"decode_tokens\": %d, \"decode_rounds\": %d, "
      "\"decode_tok_s\": %.2f, \"weight_mb_per_token\": %.1f, \"read_bandwidth_gb_s\": %.1f, "
      "\"read_bandwidth_4k_gb_s\": %.1f, \"read_bandwidth_hugepage_gb_s\": %.1f, \"decode_roofline_tok_s\": %.2f, "
      "\"roofline_fraction\": %.3f, \"roofline_fraction_4k\": %.3f, \"roofline_fraction_hugepage\": %.3f, "
      "\"roofline_note\": \"%s\", \"peak_rss_mib\": %.1f}\n",
      a.positional[0].c_str(), info.version.c_str(), static_cast<long long>(info.n_layer),
      static_cast<long long>(info.n_embd), static_cast<long long>(info.vocab), precision.c_str(), pool.size(),
      xsimd::default_arch::name(),
      options.mlock  ? "locked"
      : huge_weights ? "huge-pages"
                     : "mapped",
      load_s, prompt_len, median(prefill_rates), decode_len, runs, median(decode_rates), weight_bytes / 1e6, bandwidth,
      median(bw_small), median(bw_huge), bandwidth * 1e9 / weight_bytes, fraction, median(frac_small),
      median(frac_huge), note.c_str(), static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}

// A token's bytes for a terminal: printable ASCII as is, everything else escaped (\n, \t, \xNN); valid
// multi-byte UTF-8 characters are kept.
std::string escape_piece(std::string_view p) {
  std::string out;
  char buf[8];
  for (std::size_t i = 0; i < p.size(); ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      const auto l = rwkv::detail::utf8_lead_of(c);
      const auto n = static_cast<std::size_t>(l.length);
      if (n > 1 && i + n <= p.size() && rwkv::is_valid_utf8(p.substr(i, n))) {
        out += p.substr(i, n);
        i += n - 1;
      } else {
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        out += buf;
      }
    }
  }
  return out;
}

int cmd_tokenize(int argc, char** argv) {
  args a(argc, argv, {"--vocab", "--file", "--text", "--format"});
  if (!a.positional.empty())
    throw usage_error("tokenize takes no positional arguments (the text: --text, --file or stdin)");
  const auto file = a.get("--file");
  const auto text_arg = a.get("--text");
  if (file && text_arg) throw usage_error("give --text or --file, not both");
  const auto format = a.get("--format").value_or("ids");
  if (format != "ids" && format != "pieces" && format != "json")
    throw usage_error("--format must be ids, pieces or json");
  std::string text;
  if (text_arg) {
    text = *text_arg;
  } else if (file && *file != "-") {
    text = read_file(*file);
  } else {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  const rwkv::world_tokenizer tok(a.get("--vocab").value_or(default_vocab_path()));
  const auto ids = tok.encode(text);
  if (format == "pieces") {
    for (auto id : ids) std::cout << id << '\t' << escape_piece(tok.token_bytes(id)) << '\n';
  } else if (format == "json") {
    nlohmann::json j;
    j["ids"] = ids;
    auto& pieces = j["pieces"] = nlohmann::json::array();
    for (auto id : ids) pieces.push_back(rwkv::utf8_or_replacement(std::string(tok.token_bytes(id))));
    std::cout << j.dump() << '\n';
  } else {
    std::string out;
    for (auto id : ids) {
      if (!out.empty()) out += ',';
      out += std::to_string(id);
    }
    std::cout << out << "\n";
  }
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  args a(argc, argv, {"--vocab", "--tokens"});
  const auto tokens = a.get("--tokens");
  if (!tokens) throw usage_error("detokenize needs --tokens");
  const rwkv::world_tokenizer tok(a.get("--vocab").value_or(default_vocab_path()));
  const auto bytes = tok.decode(parse_tokens(*tokens));
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return 0;
}

}  // namespace

const std::vector<command>& commands() {
  static const std::vector<command> list = {
      {"info", cmd_info,
       "usage: rwkv-cli info MODEL [--precision P] [--memory M]\n\nLoads the model and prints version, n_layer, "
       "n_embd, "
       "head_size, n_head, vocab, dim_ffn, parameters,\nstate_bytes, state_bytes_per_token (what a state grows by per "
       "token: RWKV-7b's cache), dtype and format.\n"},
      {"generate", cmd_generate,
       std::string(
           "usage: rwkv-cli generate [MODEL] [--prompt TEXT] [SAMPLING] [--precision P] [--memory M] [--threads N] "
           "[--quiet]\n\n"
           "Prints the prompt and its continuation, then a timing line on stderr. MODEL defaults to the bundled\n"
           "tiny model; byte-level models (vocab 256) use the byte tokenizer, vocab-65536 ones the World tokenizer.\n"
           "--prompt defaults to a newline; \\n and \\t in it are escapes.\n") +
           sampling_help + precision_help},
      {"chat", cmd_chat,
       std::string(
           "usage: rwkv-cli chat [MODEL] [--system TEXT] [--session FILE] [SAMPLING] [--precision P] [--memory M]\n"
           "                     [--threads N] [--quiet]\n\n"
           "Reads one line per turn from stdin (an empty line or end of input ends) and feeds it as\n"
           "  User: {your line}\\n\\nAssistant:\n"
           "then streams the reply until a blank line. The state is kept between turns: each turn feeds only its\n"
           "own text. --system TEXT is fed first as \"System: TEXT\\n\\n\". --session FILE saves the state after\n"
           "every turn and, when FILE exists, continues that conversation (the system text is not fed again).\n") +
           sampling_help + precision_help},
      {"logits", cmd_logits,
       std::string(
           "usage: rwkv-cli logits MODEL --tokens 1,2,3 --out FILE.safetensors [--mode step|sequence]\n"
           "                       [--init-state FILE] [--state-out FILE] [--precision P] [--memory M] [--threads N]\n"
           "                       [--lora FILE --lora-alpha A]\n\n"
           "Writes one F32 tensor `logits` [T, V]. step (default): row t is the output after feeding tokens[0..t]\n"
           "one at a time from the zero state (or --init-state); sequence: one sequence call gives every row.\n"
           "--memory defaults to mapped here.\n") +
           precision_help},
      {"bench", cmd_bench,
       std::string(
           "usage: rwkv-cli bench MODEL [--prompt N (512)] [--decode N (64)] [--runs R (5)] [--threads N]\n"
           "                      [--precision P] [--memory M] [--quiet]\n\n"
           "Prints one JSON object: prefill and decode tokens/s (medians), load time, peak RSS, ISA, and the decode\n"
           "roofline: bytes of weights read per token against the machine's read bandwidth, probed after every\n"
           "decode round with 4 KiB and 2 MiB pages. A roofline_fraction above 1 means the weights fit in the CPU's\n"
           "caches and are not read from memory at all (roofline_note says so): use a larger model.\n") +
           precision_help},
      {"train", cmd_train, train_usage},
      {"grad", cmd_grad,
       "usage: rwkv-cli grad MODEL --tokens 1,2,3 --out FILE.safetensors [--init-state FILE] [--mode step|sequence]\n\n"
       "loss = mean cross-entropy of tokens[t+1] after tokens[0..t]; writes loss, grad.<tensor> for every checkpoint\n"
       "tensor and, with --init-state (tensors init_state.<i>, reference layout), grad_state.<i>.\n"},
      {"convert", cmd_convert,
       "usage: rwkv-cli convert MODEL --out OUT.safetensors [--dtype f32|bf16|f16] [--lora FILE --lora-alpha A] "
       "[--quiet]\n\n"
       "Any checkpoint (safetensors, .pth, rwkv.cpp .bin, quantized) to safetensors with official names; --dtype\n"
       "changes the float tensors' dtype (quantized blocks become F32 unless --dtype says otherwise). With --lora the\n"
       "adapters are merged (W + S·(alpha/r)·B·A in float32, their full tensors replacing the model's): a merged "
       "checkpoint.\n"},
      {"quantize", cmd_quantize,
       "usage: rwkv-cli quantize MODEL --to q8|q4 --out OUT.safetensors [--quiet]\n\n"
       "q8: int8 blocks of 32 with a float16 scale; q4: 4-bit blocks of 32 with a float16 scale and minimum. The file\n"
       "loads without quantizing again and gives the logits of MODEL loaded with --precision q8|q4.\n"},
      {"make-random", cmd_make_random,
       "usage: rwkv-cli make-random --out PATH [--version 4|5.2|6|7|7a|7b (7)] [--layers L (12)] [--embd C (768)]\n"
       "                            [--vocab V (65536)] [--head-size N (64)] [--dtype f32|bf16|f16 (f32)] [--seed S "
       "(0)]\n"
       "                            [--quiet]\n\n"
       "A random checkpoint with official names and shapes (not trained weights), for benchmarks and tests. The\n"
       "head size must be 8, 32, 64 or 128 (64 for 7a/7b) and divide --embd (RWKV-4 has no heads). Written one\n"
       "tensor at a time: a 0.1B RWKV-7b holds 1.8G values (3.6 GB in bf16), mostly its token tables.\n"},
      {"tokenize", cmd_tokenize,
       "usage: rwkv-cli tokenize [--text TEXT | --file F | --file - ] [--format ids|pieces|json] [--vocab PATH]\n\n"
       "World-tokenizer ids of the text (stdin when neither --text nor --file is given). ids: comma-separated;\n"
       "pieces: one line per token, id TAB bytes (escaped: \\n, \\t, \\xNN); json: {\"ids\": [...], \"pieces\": "
       "[...]}.\n"},
      {"detokenize", cmd_detokenize,
       "usage: rwkv-cli detokenize --tokens 1,2,3 [--vocab PATH]\n\nWrites the bytes of the World-tokenizer ids.\n"},
  };
  return list;
}

int main(int argc, char** argv) {
  const command* cmd = nullptr;
  try {
    if (argc < 2) {
      std::cerr << usage_text;
      return 2;
    }
    const std::string_view name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
      std::cout << usage_text;
      return 0;
    }
    for (const auto& c : commands())
      if (name == c.name) cmd = &c;
    if (!cmd) throw usage_error("unknown command '" + std::string(name) + "' (rwkv-cli --help lists them)");
    return cmd->run(argc, argv);
  } catch (const help_requested&) {
    std::cout << cmd->help;
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "rwkv-cli: error: " << e.what();
    if (cmd) std::cerr << " (rwkv-cli " << cmd->name << " --help shows the usage)";
    std::cerr << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "rwkv-cli: error: " << e.what() << "\n";
    return 1;
  }
}

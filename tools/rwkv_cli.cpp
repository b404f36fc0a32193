// rwkv-cli: inspect a checkpoint, dump logits, generate text. Its interface is a contract that outside checks
// rely on; keep it stable. Any failure prints one line "rwkv-cli: error: ..." on stderr and exits non-zero.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
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

namespace {

using namespace rwkv_cli;

constexpr const char* usage_text = R"(usage:
  rwkv-cli info MODEL
  rwkv-cli logits MODEL --tokens 1,2,3 [--mode step|sequence] --out FILE.safetensors [--precision P]
                  [--threads N] [--state-in FILE] [--state-out FILE]
  rwkv-cli grad MODEL --tokens 1,2,3 [--init-state FILE] [--mode step|sequence] --out FILE.safetensors
                  loss = mean cross-entropy of tokens[t+1] after tokens[0..t]; writes loss, grad.<tensor>
                  and, with --init-state (reference layout), grad_state.<i>
  rwkv-cli train --data TEXT --out MODEL.safetensors [--model CHECKPOINT | --resume MODEL] [...]
                  trains a model, or with --tune state its initial state (all options: rwkv-cli train --help)
  rwkv-cli generate [MODEL] [--prompt TEXT] [SAMPLING]
  rwkv-cli chat [MODEL] [SAMPLING]
  rwkv-cli convert MODEL --out OUT.safetensors [--dtype f32|bf16|f16]
  rwkv-cli quantize MODEL --to q8|q4 --out OUT.safetensors
  rwkv-cli make-random --version 4|5.2|6|7 --layers L --embd C --vocab V [--head-size N] [--dtype f32|bf16|f16]
                       --seed S --out PATH
  rwkv-cli bench MODEL [--prompt N] [--decode N] [--threads N] [--precision P] [--runs R] [--memory M]
                 (one JSON line)
  rwkv-cli tokenize [--vocab PATH] --file F       token ids of the file's bytes, comma-separated
  rwkv-cli detokenize [--vocab PATH] --tokens 1,2,3

SAMPLING: [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--presence A] [--frequency A]
          [--penalty-decay D] [--seed S] [--precision P] [--threads N] [--vocab PATH] [--memory M]
          [--state-in FILE] (start from a saved or state-tuned state instead of zeros)

MODEL is an RWKV-4, 5.x, 6 or 7 checkpoint: safetensors, PyTorch .pth or rwkv.cpp .bin, recognised by content.
P is the weight storage: f32, bf16, f16, q8 or q4; arithmetic and the state are always float32. The default is
f32, or for a file written by `quantize` its own format (q8/q4 blocks load as they are; f32/bf16/f16 dequantize).
M is where the weights live: huge-pages (the default of generate, chat and bench: copied into anonymous memory
with transparent huge pages, the fastest to decode from), locked (the same, mlock'ed: never swapped or evicted),
or mapped (the default of logits: zero-copy views of the file where the dtype matches; fastest load, least
memory, but decoding slows down when the kernel evicts and re-reads the file's pages).
generate and chat default to the tiny RWKV-7 model bundled in the source tree.
)";

// any_model with a thread pool bound, in the shape rwkv::generate expects.
struct pooled {
  using state_type = rwkv::any_state;
  const rwkv::any_model& model;
  rwkv::thread_pool* pool;
  std::vector<float> prefill(std::span<const std::int32_t> t, state_type& s) const { return model.prefill(t, s, pool); }
  std::vector<float> step(std::int32_t t, state_type& s) const { return model.step(t, s, pool); }
};

unsigned parse_threads(const args& a) {
  const auto n = parse_number<int>(a.get("--threads").value_or("1"), "--threads");
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

// --precision, or by default f32; a file written by `quantize` defaults to its own format (f32 would dequantize
// every matrix into four to eight times the memory).
rwkv::storage_choice precision_for(const args& a, const std::string& path) {
  if (const auto p = a.get("--precision")) return rwkv::parse_storage(*p);
  const auto file = rwkv::io::mapped_file::open(path);
  if (rwkv::io::detect_format(file->bytes(), file->name()) == rwkv::io::file_format::safetensors) {
    const rwkv::io::safetensors_file st(file);
    const auto it = st.metadata().find(rwkv::io::quantized_format::quantization_key);
    if (it != st.metadata().end() && (it->second == "q8" || it->second == "q4")) return rwkv::parse_storage(it->second);
    // (another value: loading reports it, naming the file)
  }
  return rwkv::storage_choice::f32;
}

int cmd_info(int argc, char** argv) {
  args a(argc, argv, {});
  if (a.positional.size() != 1) throw usage_error("info takes exactly one MODEL");
  const auto m = rwkv::any_model::load(a.positional[0], precision_for(a, a.positional[0]), memory_options(a, "mapped"));
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
  args a(argc, argv,
         {"--tokens", "--mode", "--out", "--precision", "--threads", "--state-in", "--state-out", "--memory"});
  if (a.positional.size() != 1) throw usage_error("logits takes exactly one MODEL");
  const auto tokens_arg = a.get("--tokens");
  const auto out = a.get("--out");
  if (!tokens_arg) throw usage_error("logits needs --tokens");
  if (!out) throw usage_error("logits needs --out");
  const auto mode = a.get("--mode").value_or("step");
  if (mode != "step" && mode != "sequence") throw usage_error("--mode must be step or sequence");
  const auto tokens = parse_tokens(*tokens_arg);
  const auto m = rwkv::any_model::load(a.positional[0], precision_for(a, a.positional[0]), memory_options(a, "mapped"));
  const auto V = m.info().vocab;
  rwkv::thread_pool pool(parse_threads(a));
  std::vector<float> logits;
  logits.reserve(tokens.size() * static_cast<std::size_t>(V));
  auto s = a.get("--state-in") ? m.load_state(*a.get("--state-in")) : m.make_state();
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
    return f(rwkv::world_tokenizer(a.get("--vocab").value_or(RWKV_DEFAULT_VOCAB)));
  throw rwkv::error("no tokenizer for vocabulary size " + std::to_string(vocab) +
                        " (byte-level models have 256, World models 65536; pass --vocab for another World vocabulary)",
                    model_path);
}

const std::set<std::string> sampling_options = {
    "--max-tokens", "--temperature", "--top-p",     "--top-k",         "--seed",   "--precision", "--threads",
    "--vocab",      "--presence",    "--frequency", "--penalty-decay", "--memory", "--state-in"};

rwkv::generation_params parse_generation(const args& a, int default_tokens) {
  rwkv::generation_params g;
  g.max_tokens = parse_number<int>(a.get("--max-tokens").value_or(std::to_string(default_tokens)), "--max-tokens");
  g.sampling.temperature = parse_number<float>(a.get("--temperature").value_or("1.0"), "--temperature");
  g.sampling.top_p = parse_number<float>(a.get("--top-p").value_or("0.85"), "--top-p");
  g.sampling.top_k = parse_number<int>(a.get("--top-k").value_or("0"), "--top-k");
  g.penalty.presence = parse_number<float>(a.get("--presence").value_or("0.2"), "--presence");
  g.penalty.frequency = parse_number<float>(a.get("--frequency").value_or("0.2"), "--frequency");
  g.penalty.decay = parse_number<float>(a.get("--penalty-decay").value_or("0.996"), "--penalty-decay");
  g.seed = parse_number<std::uint64_t>(a.get("--seed").value_or("42"), "--seed");
  return g;
}

int cmd_generate(int argc, char** argv) {
  auto known = sampling_options;
  known.insert("--prompt");
  args a(argc, argv, known);
  if (a.positional.size() > 1) throw usage_error("generate takes at most one MODEL");
  const std::string path = a.positional.empty() ? std::string(RWKV_DEFAULT_MODEL) : a.positional[0];
  const auto m = rwkv::any_model::load(path, precision_for(a, path), memory_options(a, "huge-pages"));
  const std::string prompt = a.get("--prompt").value_or("\n");
  if (prompt.empty()) throw usage_error("--prompt must not be empty");
  const auto params = parse_generation(a, 200);
  rwkv::thread_pool pool(parse_threads(a));
  return with_tokenizer(m.info().vocab, a, path, [&](const auto& tok) {
    auto s = a.get("--state-in") ? m.load_state(*a.get("--state-in")) : m.make_state();
    std::cout << prompt << std::flush;
    rwkv::generate(pooled{m, &pool}, s, tok, prompt, params, [](std::string_view piece) {
      std::cout << piece << std::flush;
      return true;
    });
    std::cout << "\n";
    return 0;
  });
}

// An interactive conversation: the state is kept between turns, so each turn only feeds the new text.
int cmd_chat(int argc, char** argv) {
  args a(argc, argv, sampling_options);
  if (a.positional.size() > 1) throw usage_error("chat takes at most one MODEL");
  const std::string path = a.positional.empty() ? std::string(RWKV_DEFAULT_MODEL) : a.positional[0];
  const auto m = rwkv::any_model::load(path, precision_for(a, path), memory_options(a, "huge-pages"));
  auto params = parse_generation(a, 300);
  params.stop_strings = {"\n\nUser:", "\n\n"};
  rwkv::thread_pool pool(parse_threads(a));
  return with_tokenizer(m.info().vocab, a, path, [&](const auto& tok) {
    auto s = a.get("--state-in") ? m.load_state(*a.get("--state-in")) : m.make_state();
    std::cerr << "rwkv-cli chat: " << path << " (RWKV-" << m.info().version << "). Empty line or EOF ends.\n";
    std::string line;
    while (std::cout << "User: " << std::flush, std::getline(std::cin, line) && !line.empty()) {
      std::cout << "Assistant:" << std::flush;
      rwkv::generate(pooled{m, &pool}, s, tok, "User: " + line + "\n\nAssistant:", params, [](std::string_view piece) {
        std::cout << piece << std::flush;
        return true;
      });
      std::cout << "\n\n";
      ++params.seed;
    }
    return 0;
  });
}

// Any supported checkpoint to a safetensors file with official names, optionally changing the float dtype.
int cmd_convert(int argc, char** argv) {
  args a(argc, argv, {"--out", "--dtype"});
  if (a.positional.size() != 1) throw usage_error("convert takes exactly one input MODEL");
  const auto out = a.get("--out");
  if (!out) throw usage_error("convert needs --out");
  const auto dtype = a.get("--dtype").value_or("keep");
  if (dtype != "keep" && dtype != "f32" && dtype != "bf16" && dtype != "f16")
    throw usage_error("--dtype must be f32, bf16 or f16");
  const auto in = rwkv::io::open_checkpoint(a.positional[0]);
  const auto version = rwkv::detect_version(in.tensors, in.path);
  std::vector<rwkv::io::tensor_to_write> tensors;
  for (const auto& t : in.tensors) {
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
  rwkv::io::save_safetensors(*out, tensors,
                             {{"format", "pt"},
                              {"rwkv_version", rwkv::version_name(version)},
                              {"converted_from", std::string(rwkv::io::format_name(in.format))}});
  std::cerr << "rwkv-cli: wrote " << tensors.size() << " tensors (RWKV-" << rwkv::version_name(version) << ") to "
            << *out << "\n";
  return 0;
}

// Any supported checkpoint to a safetensors file of q8 or q4 blocks (io/quantized.hpp), which loads without
// quantizing again and gives the logits of the source loaded with that precision.
int cmd_quantize(int argc, char** argv) {
  args a(argc, argv, {"--to", "--out"});
  if (a.positional.size() != 1) throw usage_error("quantize takes exactly one input MODEL");
  const auto out = a.get("--out");
  const auto to = a.get("--to");
  if (!out) throw usage_error("quantize needs --out");
  if (!to) throw usage_error("quantize needs --to q8|q4");
  if (*to != "q8" && *to != "q4") throw usage_error("--to must be q8 or q4");
  const auto s = rwkv::quantize_checkpoint(a.positional[0], *out, rwkv::parse_storage(*to));
  std::cerr << "rwkv-cli: wrote RWKV-" << s.version << " with " << s.quantized << " matrices as " << *to << " ("
            << s.quantized_elements << " of " << s.parameters << " parameters) and " << s.copied
            << " tensors unchanged to " << *out << "\n";
  return 0;
}

int cmd_make_random(int argc, char** argv) {
  args a(argc, argv, {"--version", "--layers", "--embd", "--vocab", "--head-size", "--dtype", "--seed", "--out"});
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
  std::vector<rwkv::io::tensor_to_write> tensors;
  if (dtype == "f32")
    tensors = rwkv::random_checkpoint<float>(spec);
  else if (dtype == "bf16")
    tensors = rwkv::random_checkpoint<rwkv::bf16>(spec);
  else if (dtype == "f16")
    tensors = rwkv::random_checkpoint<rwkv::f16>(spec);
  else
    throw usage_error("--dtype must be f32, bf16 or f16");
  rwkv::io::save_safetensors(*out, tensors,
                             {{"format", "pt"},
                              {"rwkv_version", spec.version},
                              {"generator", "rwkv-cli make-random"},
                              {"seed", std::to_string(spec.seed)}});
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
  args a(argc, argv, {"--prompt", "--decode", "--threads", "--precision", "--runs", "--memory"});
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
  const auto options = memory_options(a, "huge-pages");
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

  std::printf(
      "{\"model\": \"%s\", \"version\": \"%s\", \"n_layer\": %lld, \"n_embd\": %lld, \"vocab\": %lld, "
      "\"precision\": \"%s\", \"threads\": %u, \"isa\": \"%s\", \"memory\": \"%s\", \"load_s\": %.3f, "
      "\"prefill_tokens\": %d, \"prefill_tok_s\": %.1f, \"decode_tokens\": %d, \"decode_rounds\": %d, "
      "\"decode_tok_s\": %.2f, \"weight_mb_per_token\": %.1f, \"read_bandwidth_gb_s\": %.1f, "
      "\"read_bandwidth_4k_gb_s\": %.1f, \"read_bandwidth_hugepage_gb_s\": %.1f, \"decode_roofline_tok_s\": %.2f, "
      "\"roofline_fraction\": %.3f, \"roofline_fraction_4k\": %.3f, \"roofline_fraction_hugepage\": %.3f, "
      "\"peak_rss_mib\": %.1f}\n",
      a.positional[0].c_str(), info.version.c_str(), static_cast<long long>(info.n_layer),
      static_cast<long long>(info.n_embd), static_cast<long long>(info.vocab), precision.c_str(), pool.size(),
      xsimd::default_arch::name(),
      options.mlock  ? "locked"
      : huge_weights ? "huge-pages"
                     : "mapped",
      load_s, prompt_len, median(prefill_rates), decode_len, runs, median(decode_rates), weight_bytes / 1e6, bandwidth,
      median(bw_small), median(bw_huge), bandwidth * 1e9 / weight_bytes, fraction, median(frac_small),
      median(frac_huge), static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}

int cmd_tokenize(int argc, char** argv) {
  args a(argc, argv, {"--vocab", "--file"});
  if (!a.positional.empty()) throw usage_error("tokenize takes no positional arguments");
  const auto file = a.get("--file");
  if (!file) throw usage_error("tokenize needs --file");
  const rwkv::world_tokenizer tok(a.get("--vocab").value_or(RWKV_DEFAULT_VOCAB));
  const auto ids = tok.encode(read_file(*file));
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  std::cout << out << "\n";
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  args a(argc, argv, {"--vocab", "--tokens"});
  const auto tokens = a.get("--tokens");
  if (!tokens) throw usage_error("detokenize needs --tokens");
  const rwkv::world_tokenizer tok(a.get("--vocab").value_or(RWKV_DEFAULT_VOCAB));
  const auto bytes = tok.decode(parse_tokens(*tokens));
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw usage_error("missing command");
    const std::string_view cmd = argv[1];
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "logits") return cmd_logits(argc, argv);
    if (cmd == "grad") return cmd_grad(argc, argv);
    if (cmd == "train") return cmd_train(argc, argv);
    if (cmd == "generate") return cmd_generate(argc, argv);
    if (cmd == "chat") return cmd_chat(argc, argv);
    if (cmd == "convert") return cmd_convert(argc, argv);
    if (cmd == "quantize") return cmd_quantize(argc, argv);
    if (cmd == "make-random") return cmd_make_random(argc, argv);
    if (cmd == "bench") return cmd_bench(argc, argv);
    if (cmd == "tokenize") return cmd_tokenize(argc, argv);
    if (cmd == "detokenize") return cmd_detokenize(argc, argv);
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

// rwkv-cli train: trains a model (a checkpoint, or one initialised from scratch as the official code does) or
// only its initial state on a text file, with a progress bar, a loss CSV, a plot rendered by gnuplot when it is
// installed, periodic checkpoints and bit-identical resume.

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <rwkv/init/official.hpp>
#include <rwkv/tokenizer/bytes.hpp>
#include <rwkv/tokenizer/world.hpp>
#include <rwkv/train.hpp>

#include "cli_args.hpp"
#include "cli_data.hpp"

namespace rwkv_cli {

const char* const train_usage = R"(usage: rwkv-cli train --data TEXT --out MODEL.safetensors [FROM] [OPTIONS]
       rwkv-cli train --data TEXT --tune state --model CHECKPOINT --state-out STATE.safetensors [OPTIONS]

Trains on a text file (tokenized with the byte tokenizer for a 256-token vocabulary, else the World tokenizer)
and writes MODEL.safetensors (an ordinary checkpoint) with MODEL.trainer.safetensors beside it (optimizer state;
continue with --resume MODEL.safetensors), MODEL.loss.csv and, when gnuplot is installed, MODEL.loss.svg.

FROM (one of):
  --model CHECKPOINT          any checkpoint rwkv-cli reads, float weights
  --resume MODEL.safetensors  a checkpoint written by train (same --data and options), continued bit-identically
  (neither)                   a new model, initialised as the official code does:
      --version 4|5.2|6|7 (7)  --layers L (4)  --embd C (128)  --head-size N (32)
      --tokenizer byte|world (byte)  --init-seed S (0)

OPTIONS (defaults in brackets):
  --ctx T [256]            tokens per training window
  --batch B [1]            windows per optimizer step (gradients accumulated)
  --steps N [500]          optimizer steps (the schedule's length)
  --lr X [1e-3]  --lr-final X [1e-4]  --warmup N [10]   linear warmup, then cosine decay
  --weight-decay X [0.01]  --clip X [1.0] (0: none)  --l2wrap 0|1 [1]
  --precision f32|bf16 [f32]   bf16: the forward and backward see bf16 weights, float32 master weights
  --mode sequence|step [sequence]   parallel form, or token by token through the state
  --seed S [0]             order of the training windows
  --threads N [1]          threads for the matrix products and WKV heads (a resumed run is bit-identical with
                           the same N)
  --tune weights|state [weights]   state: train only the initial state of the frozen model
  --state-out FILE         (state tuning) the tuned state, for generate/chat --state-in
  --time-state-out FILE    (state tuning, RWKV-5/6) the model with the state as att.time_state tensors
  --holdout F [0.05]       fraction at the end of the text kept out of training, for the held-out loss
  --eval-every N [50]      held-out loss every N steps (and at the end)
  --save-every N [100]     checkpoint every N steps (and at the end)
  --stop-at N              stop after step N (a checkpoint is saved; --resume continues the same schedule)
  --loss-csv FILE          default MODEL.loss.csv (STATE.loss.csv when tuning without --out)
  --plot FILE.svg|.png     default beside the CSV, .svg; drawn with gnuplot when it is installed
  --vocab PATH             World vocabulary file (default: the bundled rwkv_vocab_v20230424.txt)
)";

namespace {

namespace tr = rwkv::train;

std::filesystem::path with_suffix(std::filesystem::path p, const std::string& suffix) {
  if (p.extension() == ".safetensors") p.replace_extension();
  p += suffix;
  return p;
}

std::string duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  std::ostringstream out;
  if (s >= 3600)
    out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60)
    out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else
    out << s << "s";
  return out.str();
}

// The progress of a run: a redrawn bar on a terminal, a plain line every ~5% otherwise.
class progress {
 public:
  progress(std::int64_t first_step, std::int64_t steps)
      : first_(first_step), steps_(steps), tty_(::isatty(STDERR_FILENO) != 0), start_(clock::now()) {}

  void update(const tr::step_report& r, std::int64_t tokens_done, std::optional<double> held_out) {
    const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
    const double tok_s = elapsed > 0 ? static_cast<double>(tokens_done) / elapsed : 0;
    const auto done = r.step + 1;
    const double eta =
        done > first_ ? elapsed / static_cast<double>(done - first_) * static_cast<double>(steps_ - done) : 0;
    if (held_out) last_held_out_ = held_out;
    std::ostringstream line;
    line << "step " << done << "/" << steps_;
    if (tty_) {
      const int width = 24, filled = static_cast<int>(width * done / std::max<std::int64_t>(1, steps_));
      line << " [" << std::string(static_cast<std::size_t>(filled), '=')
           << std::string(static_cast<std::size_t>(width - filled), ' ') << "]";
    }
    line << std::fixed << std::setprecision(3) << "  loss " << r.loss;
    if (last_held_out_) line << "  held-out " << *last_held_out_;
    line << std::setprecision(0) << "  " << tok_s << " tok/s  ETA " << duration(eta);
    if (tty_) {
      std::cerr << "\r" << line.str() << "\033[K" << std::flush;
      if (done == steps_) std::cerr << "\n";
    } else if (done == steps_ || done % std::max<std::int64_t>(1, steps_ / 20) == 0 || held_out) {
      std::cerr << line.str() << "\n";
    }
  }

 private:
  using clock = std::chrono::steady_clock;
  std::int64_t first_, steps_;
  bool tty_;
  clock::time_point start_;
  std::optional<double> last_held_out_;
};

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((std::filesystem::path(dir) / program).c_str(), X_OK) == 0) return true;
  return false;
}

// Draws the CSV's training and held-out loss with gnuplot; says so and returns false when gnuplot is missing.
bool plot(const std::filesystem::path& csv, const std::filesystem::path& out) {
  if (!on_path("gnuplot")) {
    std::cerr << "rwkv-cli: gnuplot is not installed, so no plot was drawn (Debian: apt install gnuplot-nox); the "
                 "losses are in "
              << csv.string() << "\n";
    return false;
  }
  for (const auto& p : {csv.string(), out.string()})
    if (p.find('\'') != std::string::npos) throw rwkv::error("cannot plot to a path with a quote in it", p);
  const bool png = out.extension() == ".png";
  FILE* g = ::popen("gnuplot", "w");
  if (!g) throw rwkv::error("cannot run gnuplot");
  std::ostringstream script;
  script << (png ? "set terminal pngcairo size 900,540\n"
                 : "set terminal svg size 900,540 dynamic background rgb 'white'\n")
         << "set output '" << out.string() << "'\n"
         << "set datafile separator ','\n"
         << "set xlabel 'step'\nset ylabel 'loss (nats per token)'\nset grid\nset key top right\n"
         << "plot '" << csv.string() << "' using 1:3 with lines lw 1.5 title 'training loss', \\\n"
         << "     '' using 1:4 with linespoints pt 7 ps 0.6 lw 1.5 title 'held-out loss'\n";
  const auto text = script.str();
  std::fwrite(text.data(), 1, text.size(), g);
  if (::pclose(g) != 0) throw rwkv::error("gnuplot failed to draw the plot", out.string());
  return true;
}

struct run_paths {
  std::optional<std::filesystem::path> out, state_out, time_state_out, csv, plot;
};

template <class Layer>
int train(tr::network<Layer>& net, const args& a, const std::vector<std::int32_t>& all_tokens, const run_paths& paths,
          tr::trainer_options o, const std::optional<std::string>& resume) {
  const double holdout = parse_number<double>(a.get("--holdout").value_or("0.05"), "--holdout");
  if (!(holdout >= 0 && holdout < 0.5)) throw usage_error("--holdout must be in [0, 0.5)");
  auto held_n = static_cast<std::size_t>(static_cast<double>(all_tokens.size()) * holdout);
  if (held_n < 2) held_n = 0;
  const std::vector<std::int32_t> training(all_tokens.begin(), all_tokens.end() - static_cast<std::ptrdiff_t>(held_n)),
      held(all_tokens.end() - static_cast<std::ptrdiff_t>(held_n), all_tokens.end());
  const auto eval_every = parse_number<std::int64_t>(a.get("--eval-every").value_or("50"), "--eval-every");
  const auto save_every = parse_number<std::int64_t>(a.get("--save-every").value_or("100"), "--save-every");
  if (eval_every < 1 || save_every < 1) throw usage_error("--eval-every and --save-every must be positive");
  const auto stop_at = parse_number<std::int64_t>(a.get("--stop-at").value_or(std::to_string(o.steps)), "--stop-at");
  if (stop_at < 1 || stop_at > o.steps) throw usage_error("--stop-at must be between 1 and --steps");

  if (paths.time_state_out && std::string(Layer::version()) != "5" && std::string(Layer::version()) != "6")
    throw usage_error("--time-state-out is for RWKV-5/6 (this is RWKV-" + std::string(Layer::version()) +
                      "): use --state-out");
  const auto threads = parse_number<int>(a.get("--threads").value_or("1"), "--threads");
  if (threads < 1 || threads > 1024) throw usage_error("--threads must be between 1 and 1024");
  rwkv::thread_pool pool(static_cast<unsigned>(threads));
  o.pool = &pool;
  tr::trainer<Layer> t(net, training, o);
  if (resume) t.resume(*resume);
  const auto first = t.steps_done();
  if (first >= stop_at)
    throw usage_error("the checkpoint is already at step " + std::to_string(first) + ": nothing to do up to step " +
                      std::to_string(stop_at) + " (raise --steps or --stop-at)");

  const bool append = resume && std::filesystem::exists(*paths.csv);
  std::ofstream csv(*paths.csv, append ? std::ios::app : std::ios::trunc);
  if (!csv) throw rwkv::error("cannot open for writing", paths.csv->string());
  if (!append) csv << "step,tokens,loss,held_out_loss,lr,grad_norm,seconds\n";

  std::cerr << "training " << net.parameters().all().size() << " tensors (RWKV-" << Layer::version() << ", "
            << net.config().n_layer << " x " << net.config().n_embd << ", vocab " << net.config().vocab << ") on "
            << training.size() << " tokens" << (held.empty() ? "" : " (" + std::to_string(held.size()) + " held out)")
            << ", " << tr::to_string(o.what) << ", steps " << first + 1 << ".." << stop_at << " of " << o.steps << "\n";

  auto save = [&] {
    if (paths.out) t.save(*paths.out);
    if (paths.state_out) net.save_state_file(*paths.state_out, t.initial_state());
    if (paths.time_state_out) {
      auto tensors = net.parameters().values();
      for (auto& x : net.time_state_tensors(t.initial_state())) tensors.push_back(std::move(x));
      rwkv::io::save_safetensors(*paths.time_state_out, tensors, {{"format", "pt"}, {"generator", "rwkv-cli train"}});
    }
  };

  progress bar(first, stop_at);
  const auto start = std::chrono::steady_clock::now();
  std::int64_t tokens = 0;
  std::optional<double> last_held_out;
  while (t.steps_done() < stop_at) {
    const auto r = t.step();
    tokens += r.tokens;
    const auto done = r.step + 1;
    std::optional<double> held_out;
    if (!held.empty() && (done % eval_every == 0 || done == stop_at)) held_out = last_held_out = t.evaluate(held);
    csv << done << "," << done * r.tokens << "," << r.loss << ",";
    if (held_out) csv << *held_out;
    csv << "," << r.lr << "," << r.grad_norm << ","
        << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << "\n"
        << std::flush;
    bar.update(r, tokens, held_out);
    if (done % save_every == 0 || done == stop_at) save();
  }
  csv.close();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "trained " << stop_at - first << " steps, " << tokens << " tokens in " << duration(seconds) << " ("
            << std::llround(static_cast<double>(tokens) / std::max(seconds, 1e-9)) << " tokens/s)";
  if (last_held_out) std::cout << "; held-out loss " << std::fixed << std::setprecision(4) << *last_held_out;
  std::cout << "\n";
  for (const auto* p : {&paths.out, &paths.state_out, &paths.time_state_out})
    if (*p) std::cout << "wrote " << (*p)->string() << "\n";
  std::cout << "wrote " << paths.csv->string() << "\n";
  if (plot(*paths.csv, *paths.plot)) std::cout << "wrote " << paths.plot->string() << "\n";
  return 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  if (argc >= 3 && (std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h")) {
    std::cout << train_usage;
    return 0;
  }
  args a(argc, argv,
         {"--data",           "--out",       "--model",      "--resume",     "--version",      "--layers",
          "--embd",           "--head-size", "--tokenizer",  "--init-seed",  "--ctx",          "--batch",
          "--steps",          "--lr",        "--lr-final",   "--warmup",     "--weight-decay", "--clip",
          "--l2wrap",         "--precision", "--mode",       "--seed",       "--tune",         "--state-out",
          "--time-state-out", "--holdout",   "--eval-every", "--save-every", "--loss-csv",     "--plot",
          "--vocab",          "--stop-at",   "--threads"});
  if (!a.positional.empty()) throw usage_error("train takes no positional arguments (see rwkv-cli train --help)");
  const auto data = a.get("--data");
  if (!data) throw usage_error("train needs --data TEXT");

  tr::trainer_options o;
  o.context = parse_number<std::int64_t>(a.get("--ctx").value_or("256"), "--ctx");
  o.batch = parse_number<std::int64_t>(a.get("--batch").value_or("1"), "--batch");
  o.steps = parse_number<std::int64_t>(a.get("--steps").value_or("500"), "--steps");
  o.warmup = parse_number<std::int64_t>(a.get("--warmup").value_or("10"), "--warmup");
  o.lr = parse_number<float>(a.get("--lr").value_or("1e-3"), "--lr");
  o.lr_final = parse_number<float>(a.get("--lr-final").value_or("1e-4"), "--lr-final");
  o.adam.weight_decay = parse_number<float>(a.get("--weight-decay").value_or("0.01"), "--weight-decay");
  o.grad_clip = parse_number<double>(a.get("--clip").value_or("1.0"), "--clip");
  o.seed = parse_number<std::uint64_t>(a.get("--seed").value_or("0"), "--seed");
  const auto l2wrap = a.get("--l2wrap").value_or("1");
  if (l2wrap != "0" && l2wrap != "1") throw usage_error("--l2wrap must be 0 or 1");
  o.l2wrap = l2wrap == "1";
  const auto precision = a.get("--precision").value_or("f32");
  if (precision != "f32" && precision != "bf16") throw usage_error("--precision must be f32 or bf16 for training");
  o.precision = precision == "bf16" ? tr::weight_precision::bf16 : tr::weight_precision::f32;
  const auto mode = a.get("--mode").value_or("sequence");
  if (mode != "sequence" && mode != "step") throw usage_error("--mode must be sequence or step");
  o.segments = mode == "step" ? tr::form::step : tr::form::sequence;
  const auto tune = a.get("--tune").value_or("weights");
  if (tune != "weights" && tune != "state") throw usage_error("--tune must be weights or state");
  o.what = tune == "state" ? tr::trained::state : tr::trained::weights;
  if (o.context < 1 || o.batch < 1 || o.steps < 1 || o.warmup < 0)
    throw usage_error("--ctx, --batch and --steps must be positive, --warmup not negative");
  if (!(o.lr > 0) || !(o.lr_final >= 0) || !(o.adam.weight_decay >= 0))
    throw usage_error("--lr must be positive, --lr-final and --weight-decay not negative");

  run_paths paths;
  if (auto p = a.get("--out")) paths.out = *p;
  if (auto p = a.get("--state-out")) paths.state_out = *p;
  if (auto p = a.get("--time-state-out")) paths.time_state_out = *p;
  if (o.what == tr::trained::weights) {
    if (!paths.out) throw usage_error("train needs --out MODEL.safetensors");
    if (paths.state_out || paths.time_state_out)
      throw usage_error("--state-out and --time-state-out need --tune state");
  } else if (!paths.out && !paths.state_out && !paths.time_state_out) {
    throw usage_error("state tuning needs --state-out FILE (or --time-state-out, --out)");
  }
  const auto base = paths.out ? *paths.out : paths.state_out ? *paths.state_out : *paths.time_state_out;
  paths.csv = a.get("--loss-csv") ? std::filesystem::path(*a.get("--loss-csv")) : with_suffix(base, ".loss.csv");
  paths.plot = a.get("--plot") ? std::filesystem::path(*a.get("--plot"))
                               : std::filesystem::path(*paths.csv).replace_extension(".svg");
  if (paths.plot->extension() != ".svg" && paths.plot->extension() != ".png")
    throw usage_error("--plot must end in .svg or .png");

  const auto resume = a.get("--resume");
  const auto model = a.get("--model");
  if (resume && model) throw usage_error("give --model or --resume, not both (a resumed run continues its own model)");
  if ((resume || model) && (a.get("--version") || a.get("--layers") || a.get("--embd") || a.get("--head-size") ||
                            a.get("--tokenizer") || a.get("--init-seed")))
    throw usage_error("the shape options (--version, --layers, ...) are for a new model, not with --model/--resume");
  if (resume && o.what == tr::trained::weights && paths.out && std::filesystem::path(*resume) != *paths.out)
    std::cerr << "rwkv-cli: resuming from " << *resume << ", writing checkpoints to " << paths.out->string() << "\n";
  if (o.what == tr::trained::state && !model && !resume)
    throw usage_error("state tuning needs the frozen model: --model CHECKPOINT");

  // The model: a checkpoint, or a fresh one initialised as the official code does, kept in memory.
  std::optional<rwkv::io::checkpoint> ck;
  std::vector<std::byte> fresh_bytes;
  if (model || resume) {
    ck = rwkv::io::open_checkpoint(model ? *model : *resume);
  } else {
    const auto tokenizer = a.get("--tokenizer").value_or("byte");
    if (tokenizer != "byte" && tokenizer != "world") throw usage_error("--tokenizer must be byte or world");
    rwkv::init::dims d;
    d.n_layer = parse_number<std::int64_t>(a.get("--layers").value_or("4"), "--layers");
    d.n_embd = parse_number<std::int64_t>(a.get("--embd").value_or("128"), "--embd");
    d.head_size = parse_number<std::int64_t>(a.get("--head-size").value_or("32"), "--head-size");
    d.vocab = tokenizer == "byte" ? rwkv::byte_tokenizer::vocab_size : 65536;
    const auto b =
        rwkv::init::official_model(a.get("--version").value_or("7"), d,
                                   parse_number<std::uint64_t>(a.get("--init-seed").value_or("0"), "--init-seed"));
    fresh_bytes = rwkv::io::to_safetensors_bytes(b.tensors(), {{"format", "pt"}});
    const auto st = rwkv::io::safetensors_file::from_bytes(fresh_bytes, "<new model>");
    ck = rwkv::io::checkpoint{st.path(), rwkv::io::file_format::safetensors, st.tensors(), st.owner(), st.metadata()};
  }

  return tr::with_network(*ck, [&](auto& net) {
    const auto vocab = net.config().vocab;
    const auto text = read_file(*data);
    std::vector<std::int32_t> tokens;
    if (vocab == rwkv::byte_tokenizer::vocab_size)
      tokens = rwkv::byte_tokenizer{}.encode(text);
    else if (vocab == 65536 || a.get("--vocab"))
      tokens = rwkv::world_tokenizer(a.get("--vocab").value_or(default_vocab_path())).encode(text);
    else
      throw rwkv::error("no tokenizer for vocabulary size " + std::to_string(vocab) +
                        " (byte-level models have 256, World models 65536; pass --vocab for another World vocabulary)");
    return train(net, a, tokens, paths, o, resume);
  });
}

}  // namespace rwkv_cli

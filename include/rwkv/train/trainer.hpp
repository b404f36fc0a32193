#pragma once
// The training loop over a token stream: random context windows, gradient accumulation over a batch (split over
// the processes of a communicator), L2Wrap, clipping, the schedule and AdamW; training either the weights or only
// the initial state (state tuning); bf16 weights with float32 master weights; checkpoints that resume
// bit-identically.
//
//   auto net = rwkv::train::network<rwkv::train::v7::layer>::load("init.safetensors");
//   rwkv::train::trainer t(net, tokens, {.context = 256, .batch = 4, .steps = 1000, .lr = 1e-3f});
//   while (t.steps_done() < 1000) {
//     const auto r = t.step();                   // r.loss, r.grad_norm, r.lr
//     if (r.step % 100 == 99) t.save("out.safetensors");   // + out.trainer.safetensors
//   }
//
// Determinism: the windows come from a seeded std::mt19937_64 (its state is in the checkpoint), the arithmetic is
// the same on every run, so a run resumed from a checkpoint takes exactly the steps of the uninterrupted run.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/train/communicator.hpp"
#include "rwkv/train/memory.hpp"
#include "rwkv/train/network.hpp"
#include "rwkv/train/optimizer.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

// What the optimizer updates.
enum class trained {
  weights,  // every checkpoint tensor
  state,    // only the initial state (every layer's WKV state and token shifts); the weights stay frozen
};

// How the forward and backward see the weights. bf16: every weight rounded to bfloat16 (the master copy the
// optimizer updates stays float32, and so does the state).
enum class weight_precision { f32, bf16 };

struct trainer_options {
  std::int64_t context = 512;  // tokens per sequence
  std::int64_t batch = 1;      // sequences per optimizer step, over all processes (gradients are accumulated)
  std::int64_t steps = 1000;   // length of the schedule
  std::int64_t warmup = 10;    // linear warmup steps, then a cosine from lr to lr_final
  float lr = 6e-4f, lr_final = 6e-5f;
  adamw_options adam{};
  double grad_clip = 1.0;  // global gradient-norm bound; ≤ 0: none
  bool l2wrap = true;      // the official trainers' L2Wrap term
  trained what = trained::weights;
  weight_precision precision = weight_precision::f32;
  form segments = form::sequence;
  std::uint64_t seed = 0;
  thread_pool* pool = nullptr;  // threads for the products and WKV heads (the caller's; null: this thread only)
};

struct step_report {
  std::int64_t step = 0;    // index of the step just taken (0-based)
  double loss = 0;          // mean over the step's sequences (before the update)
  double grad_norm = 0;     // global gradient norm before clipping
  float lr = 0;             // the learning rate used
  std::int64_t tokens = 0;  // tokens trained on in this step (batch × context)
};

inline const char* to_string(trained t) { return t == trained::state ? "state" : "weights"; }
inline const char* to_string(weight_precision p) { return p == weight_precision::bf16 ? "bf16" : "f32"; }

// The file next to a saved model that holds the rest of a checkpoint (optimizer moments, step, random state).
inline std::filesystem::path trainer_state_path(const std::filesystem::path& model_path) {
  auto p = model_path;
  if (p.extension() == ".safetensors") p.replace_extension();
  p += ".trainer.safetensors";
  return p;
}

template <class Layer>
class trainer {
 public:
  static constexpr const char* file_format = "rwkvpp-trainer-1";

  // `tokens` is the training text; every window of context + 1 tokens is a sequence (inputs and the tokens they
  // predict). With a communicator of N processes, every process must pass the same tokens and options; rank 0's
  // weights are broadcast to the others.
  trainer(network<Layer>& net, std::vector<std::int32_t> tokens, trainer_options o, communicator* comm = nullptr)
      : net_(&net), tokens_(std::move(tokens)), o_(o), comm_(comm ? comm : &single_), rng_(o.seed) {
    if (o_.context < 1 || o_.batch < 1 || o_.steps < 1 || o_.warmup < 0)
      throw error("trainer: context, batch and steps must be positive and warmup not negative");
    if (tokens_.size() < static_cast<std::size_t>(o_.context) + 1)
      throw error("the training text has " + std::to_string(tokens_.size()) +
                  " tokens, fewer than one context window needs (" + std::to_string(o_.context + 1) +
                  "): use a longer text or a shorter context");
    const auto vocab = net.config().vocab;
    for (std::size_t i = 0; i < tokens_.size(); ++i)
      if (tokens_[i] < 0 || tokens_[i] >= vocab)
        throw error("training token " + std::to_string(i) + " has id " + std::to_string(tokens_[i]) +
                    ", out of range for vocabulary " + std::to_string(vocab));
    retain_freed_memory();  // a step's temporaries are reused, not page-faulted in afresh (train/memory.hpp)
    net_->use_l2wrap(o_.l2wrap);
    net_->use_threads(o_.pool);
    for (auto& p : net_->parameters().all()) comm_->broadcast(values_of(p.value), 0);
    if (o_.what == trained::state) {
      state_params_ = std::make_unique<parameter_set>();
      set_initial_state(net_->initial_state());
    }
    if (o_.precision == weight_precision::bf16) {
      for (auto& p : net_->parameters().all()) {
        master_.push_back(p.value);
        round_to_bf16(p.value);
      }
    }
    opt_.emplace(trainable(), o_.adam);
  }

  trainer(const trainer&) = delete;
  trainer& operator=(const trainer&) = delete;

  // State tuning: the state to start tuning from (default: the model's initial state, zeros).
  void set_initial_state(const state& s) {
    if (o_.what != trained::state) throw error("set_initial_state: this trainer trains the weights, not the state");
    if (step_ != 0) throw error("set_initial_state: call it before the first step");
    const auto like = net_->initial_state();
    if (s.tensors.size() != like.tensors.size()) throw error("set_initial_state: the state is of another model");
    auto fresh = std::make_unique<parameter_set>();
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      if (grows(like.shapes[i]) && !s.tensors[i].empty())
        throw error(
            "set_initial_state: state tuning starts from an empty key/value cache (RWKV-7b); this state "
            "holds cached tokens in tensor " +
            std::to_string(i));
      if (s.tensors[i].size() != like.tensors[i].size())
        throw error("set_initial_state: the state is of another model");
      auto& p = fresh->add("init_state." + std::to_string(i), like.shapes[i]);
      std::copy(s.tensors[i].begin(), s.tensors[i].end(), p.value.data());
      comm_->broadcast(values_of(p.value), 0);
    }
    state_params_ = std::move(fresh);
    if (opt_) opt_.emplace(trainable(), o_.adam);
  }

  // One optimizer step on `batch` random windows.
  step_report step() {
    const auto windows = static_cast<std::uint64_t>(tokens_.size()) - static_cast<std::uint64_t>(o_.context);
    std::vector<std::size_t> offsets(static_cast<std::size_t>(o_.batch));
    for (auto& off : offsets) off = static_cast<std::size_t>(rng_() % windows);  // the same draws on every rank

    auto& tp = trainable();
    net_->parameters().zero_grad();
    tp.zero_grad();
    const std::optional<state> init = o_.what == trained::state ? std::optional(initial_state()) : std::nullopt;
    const auto ctx = static_cast<std::size_t>(o_.context);
    double loss_sum = 0;
    for (auto b = static_cast<std::size_t>(comm_->rank()); b < offsets.size();
         b += static_cast<std::size_t>(comm_->size())) {
      const std::span<const std::int32_t> in(tokens_.data() + offsets[b], ctx),
          tg(tokens_.data() + offsets[b] + 1, ctx);
      if (init) {
        state d;
        loss_sum += net_->loss_and_gradients(in, tg, o_.segments, &*init, &d);
        for (std::size_t i = 0; i < d.tensors.size(); ++i)
          tp.all()[i].grad_vec() += Eigen::Map<const Eigen::VectorXf>(d.tensors[i].data(), d.tensors[i].size());
      } else {
        loss_sum += net_->loss_and_gradients(in, tg, o_.segments);
      }
    }

    // One all-reduce of every gradient and the loss sum, then the mean over the global batch.
    reduce_buffer_.clear();
    for (const auto& p : tp.all())
      reduce_buffer_.insert(reduce_buffer_.end(), p.grad.data(), p.grad.data() + p.grad.size());
    reduce_buffer_.push_back(static_cast<float>(loss_sum));
    comm_->all_reduce_sum(reduce_buffer_);
    const float inv_batch = 1.f / static_cast<float>(o_.batch);
    std::size_t at = 0;
    for (auto& p : tp.all()) {
      std::copy_n(reduce_buffer_.data() + at, p.grad.size(), p.grad.data());
      p.grad *= inv_batch;
      at += static_cast<std::size_t>(p.grad.size());
    }
    if (comm_->size() > 1) loss_sum = reduce_buffer_.back();

    step_report r;
    r.step = step_;
    r.loss = loss_sum / static_cast<double>(o_.batch);
    r.tokens = o_.batch * o_.context;
    if (!std::isfinite(r.loss))
      for (const auto& p : net_->parameters().all())
        if (!p.value.allFinite())
          throw error("training step " + std::to_string(step_) + ": the loss is " + std::to_string(r.loss) +
                          "; this weight has non-finite values (the weights before this step are kept)",
                      {}, p.name);
    check_loss(r.loss, step_);
    r.grad_norm = clip_gradients(tp, o_.grad_clip, step_);  // throws on NaN before any weight changes
    r.lr = scheduled_lr(step_, o_.warmup, o_.steps, o_.lr, o_.lr_final);
    update(r.lr);
    ++step_;
    return r;
  }

  std::int64_t steps_done() const noexcept { return step_; }
  const trainer_options& options() const noexcept { return o_; }
  network<Layer>& model() noexcept { return *net_; }

  // The initial state training starts every window from: the tuned one (state tuning) or the model's.
  state initial_state() const {
    if (o_.what != trained::state) return net_->initial_state();
    state s = net_->initial_state();
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      const auto& v = state_params_->all()[i].value;
      s.tensors[i].assign(v.data(), v.data() + v.size());
    }
    return s;
  }

  // Mean loss over consecutive windows of `tokens` (each from initial_state()), weighted by their lengths.
  double evaluate(std::span<const std::int32_t> tokens) {
    if (tokens.size() < 2) throw error("evaluation needs at least two tokens");
    const auto init = initial_state();
    const auto ctx = static_cast<std::size_t>(o_.context);
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t o = 0; o + 1 < tokens.size(); o += ctx) {
      const auto len = std::min(ctx, tokens.size() - 1 - o);
      sum += net_->loss(tokens.subspan(o, len), tokens.subspan(o + 1, len), form::sequence, &init) *
             static_cast<double>(len);
      n += len;
    }
    return sum / static_cast<double>(n);
  }

  // A checkpoint: the weights under their official names at `model_path` (a model every rwkvpp tool loads; the
  // float32 master weights in bf16 training) and the rest beside it (trainer_state_path): optimizer moments,
  // step, the random generator, the tuned state, the options a resume must share. Written by rank 0 only, each
  // file to a temporary name first, so a crash never leaves a half-written checkpoint.
  void save(const std::filesystem::path& model_path) const {
    if (comm_->rank() != 0) return;
    const auto md = metadata();
    auto model_md = md;
    model_md["format"] = "pt";
    std::vector<io::tensor_to_write> weights;
    std::size_t i = 0;
    for (const auto& p : net_->parameters().all()) {
      const auto& v = master_.empty() ? p.value : master_[i];
      ++i;
      weights.push_back(io::tensor_to_write::from<float>(p.name, p.shape, span_of(v)));
    }
    std::vector<io::tensor_to_write> rest;
    i = 0;
    for (const auto& p : trainable().all()) {
      rest.push_back(io::tensor_to_write::from<float>("adam.m." + p.name, p.shape, span_of(opt_->first_moments()[i])));
      rest.push_back(io::tensor_to_write::from<float>("adam.v." + p.name, p.shape, span_of(opt_->second_moments()[i])));
      if (o_.what == trained::state)
        rest.push_back(io::tensor_to_write::from<float>(p.name, p.shape, span_of(p.value)));
      ++i;
    }
    const auto rest_path = trainer_state_path(model_path);
    write_atomically(model_path, weights, model_md);
    write_atomically(rest_path, rest, md);
  }

  // Continues from a checkpoint written by save() with the same text and options (context, batch, seed, what is
  // trained, precision, segments): the following steps are bit-identical to those of the uninterrupted run.
  void resume(const std::filesystem::path& model_path) {
    const auto rest_path = trainer_state_path(model_path);
    const auto model = io::safetensors_file::open(model_path);
    const auto rest = io::safetensors_file::open(rest_path);
    const auto want = metadata();
    const auto& got = rest.metadata();
    auto field = [&](const std::string& k) {
      const auto it = got.find(k);
      if (it == got.end()) throw error("not an rwkvpp trainer checkpoint (metadata '" + k + "' missing)", rest.path());
      return it->second;
    };
    if (field("format") != file_format)
      throw error("unsupported trainer checkpoint format '" + field("format") + "'", rest.path());
    for (const char* k : {"rwkv_version", "context", "batch", "seed", "trained", "precision", "segments", "data_tokens",
                          "data_hash", "l2wrap"})
      if (field(k) != want.at(k))
        throw error(std::string("the checkpoint was trained with ") + k + " = " + field(k) + ", this run has " +
                        want.at(k) + " (resume with the same text and options)",
                    rest.path());
    const auto model_step = model.metadata().find("step");
    if (model_step == model.metadata().end() || model_step->second != field("step"))
      throw error("the model file is not from the same step as " + rest.path() + " (an interrupted save?)",
                  model.path());

    std::size_t i = 0;
    for (auto& p : net_->parameters().all()) {
      read_into(model, p.name, p.value);
      if (!master_.empty()) {
        master_[i] = p.value;
        round_to_bf16(p.value);
      }
      ++i;
    }
    if (model.tensors().size() != net_->parameters().all().size())
      throw error("the checkpoint has " + std::to_string(model.tensors().size()) + " tensors, the model " +
                      std::to_string(net_->parameters().all().size()),
                  model.path());
    i = 0;
    for (auto& p : trainable().all()) {
      read_into(rest, "adam.m." + p.name, opt_->first_moments()[i]);
      read_into(rest, "adam.v." + p.name, opt_->second_moments()[i]);
      if (o_.what == trained::state) read_into(rest, p.name, p.value);
      ++i;
    }
    std::istringstream rng_text(field("rng"));
    rng_text >> rng_;
    if (!rng_text) throw error("unreadable random-generator state", rest.path());
    step_ = parse_int(field("step"), rest.path());
    opt_->set_steps(parse_int(field("adam_steps"), rest.path()));
  }

 private:
  parameter_set& trainable() { return o_.what == trained::state ? *state_params_ : net_->parameters(); }
  const parameter_set& trainable() const { return o_.what == trained::state ? *state_params_ : net_->parameters(); }

  // AdamW on the trainable tensors; in bf16 training it updates the float32 masters and re-rounds the weights.
  void update(float lr) {
    if (master_.empty() || o_.what == trained::state) {
      opt_->step(lr);
      return;
    }
    auto& params = net_->parameters().all();
    for (std::size_t i = 0; i < params.size(); ++i) std::swap(params[i].value, master_[i]);
    opt_->step(lr);
    for (std::size_t i = 0; i < params.size(); ++i) {
      master_[i] = params[i].value;
      round_to_bf16(params[i].value);
    }
  }

  std::map<std::string, std::string> metadata() const {
    std::ostringstream rng_text;
    rng_text << rng_;
    std::uint64_t hash = 14695981039346656037ull;  // FNV-1a over the token ids
    for (auto t : tokens_) {
      hash ^= static_cast<std::uint32_t>(t);
      hash *= 1099511628211ull;
    }
    return {{"format", file_format},
            {"generator", "rwkvpp trainer"},
            {"rwkv_version", Layer::version()},
            {"step", std::to_string(step_)},
            {"adam_steps", std::to_string(opt_ ? opt_->steps() : 0)},
            {"rng", rng_text.str()},
            {"context", std::to_string(o_.context)},
            {"batch", std::to_string(o_.batch)},
            {"seed", std::to_string(o_.seed)},
            {"trained", to_string(o_.what)},
            {"precision", to_string(o_.precision)},
            {"segments", o_.segments == form::step ? "step" : "sequence"},
            {"l2wrap", o_.l2wrap ? "1" : "0"},
            {"data_tokens", std::to_string(tokens_.size())},
            {"data_hash", std::to_string(hash)}};
  }

  static void write_atomically(const std::filesystem::path& path, const std::vector<io::tensor_to_write>& tensors,
                               const std::map<std::string, std::string>& metadata) {
    auto tmp = path;
    tmp += ".partial";
    io::save_safetensors(tmp, tensors, metadata);
    std::filesystem::rename(tmp, path);
  }

  static void read_into(const io::safetensors_file& file, const std::string& name, row_matrix& m) {
    const auto* t = file.find(name);
    if (!t) throw error("missing tensor (the checkpoint is of another model or trainer)", file.path(), name);
    if (t->type != dtype::f32)
      throw error(std::string("dtype ") + dtype_name(t->type) + ", expected F32", file.path(), name);
    if (t->numel() != m.size())
      throw error("has " + std::to_string(t->numel()) + " values, the model needs " + std::to_string(m.size()),
                  file.path(), name);
    if (m.size() > 0)  // a tuned state's empty cache (RWKV-7b): data() is null
      std::memcpy(m.data(), t->data, static_cast<std::size_t>(m.size()) * sizeof(float));
    if (!m.allFinite()) throw error("non-finite values", file.path(), name);
  }

  static std::int64_t parse_int(const std::string& s, const std::string& path) {
    try {
      std::size_t used = 0;
      const auto v = std::stoll(s, &used);
      if (used == s.size() && v >= 0) return v;
    } catch (const std::exception&) {
    }
    throw error("bad step count '" + s + "'", path);
  }

  static void round_to_bf16(row_matrix& m) {
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = to_float(to_bf16(m.data()[i]));
  }
  static std::span<float> values_of(row_matrix& m) { return {m.data(), static_cast<std::size_t>(m.size())}; }
  static std::span<const float> span_of(const row_matrix& m) { return {m.data(), static_cast<std::size_t>(m.size())}; }

  network<Layer>* net_;
  std::vector<std::int32_t> tokens_;
  trainer_options o_;
  single_process single_;
  communicator* comm_;
  std::mt19937_64 rng_;
  std::unique_ptr<parameter_set> state_params_;
  std::vector<row_matrix> master_;
  std::optional<adamw> opt_;
  std::vector<float> reduce_buffer_;
  std::int64_t step_ = 0;
};

}  // namespace rwkv::train

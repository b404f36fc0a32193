#pragma once
// A trainable RWKV language model: embedding, ln0, the blocks of one version, ln_out, head and the cross-entropy
// loss, with the backward of all of it. Tokens run in segments: one segment of the whole sequence (the parallel
// form) or one token per segment (the RNN form, trained by back-propagation through the state); the gradient of
// the state carries from segment to segment and, at the start, gives the gradient of the initial state (state
// tuning).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/state_file.hpp"
#include "rwkv/train/ops.hpp"
#include "rwkv/train/parameters.hpp"

namespace rwkv::train {

// A state tensor whose shape starts with 0 grows by rows of the remaining dimensions (RWKV-7b's key/value cache:
// {0, 32} holds any number of 32-wide rows); the others have a fixed size.
inline bool grows(const std::vector<std::int64_t>& shape) noexcept { return !shape.empty() && shape[0] == 0; }
inline std::int64_t row_size(const std::vector<std::int64_t>& shape) noexcept {
  std::int64_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

// The recurrent state as the reference lists it: per layer, its tensors in the reference's order and shapes
// (spec/*.md (c); ../testdata/README.md § Gradients): the layout of `init_state.<i>` / `grad_state.<i>`. A growing
// tensor's shape keeps its leading 0; shape_of gives its current one.
struct state {
  std::vector<std::vector<float>> tensors;
  std::vector<std::vector<std::int64_t>> shapes;

  std::vector<std::int64_t> shape_of(std::size_t i) const {
    auto shape = shapes[i];
    if (grows(shape))
      shape[0] = static_cast<std::int64_t>(tensors[i].size()) / std::max<std::int64_t>(1, row_size(shape));
    return shape;
  }

  std::vector<io::tensor_to_write> to_tensors(const std::string& prefix) const {
    std::vector<io::tensor_to_write> out;
    for (std::size_t i = 0; i < tensors.size(); ++i)
      out.push_back(io::tensor_to_write::from<float>(prefix + std::to_string(i), shape_of(i), std::span(tensors[i])));
    return out;
  }
};

// Reads a state written in the reference layout (tensors `<prefix>0`, `<prefix>1`, ...; a golden
// `.grad.safetensors` file holds one under `init_state.`), checked against the tensors of `like`.
inline state read_state(const std::filesystem::path& path, const state& like,
                        const std::string& prefix = "init_state.") {
  const auto file = io::safetensors_file::open(path);
  std::map<std::string, const tensor_view*> by_name;
  for (const auto& t : file.tensors()) by_name[t.name] = &t;
  state s = like;
  for (std::size_t i = 0; i < s.tensors.size(); ++i) {
    const auto name = prefix + std::to_string(i);
    const auto it = by_name.find(name);
    if (it == by_name.end())
      throw error("missing state tensor (this model's state has " + std::to_string(s.tensors.size()) + " tensors)",
                  file.path(), name);
    const auto& t = *it->second;
    if (grows(s.shapes[i]) && t.numel() % row_size(s.shapes[i]) == 0)
      s.tensors[i].resize(static_cast<std::size_t>(t.numel()));
    if (static_cast<std::size_t>(t.numel()) != s.tensors[i].size())
      throw error("shape " + shape_string(t.shape) + " does not match this model's " + shape_string(s.shapes[i]),
                  file.path(), name);
    for (std::size_t j = 0; j < s.tensors[i].size(); ++j) {
      s.tensors[i][j] = load_as_float(t, j);
      if (!std::isfinite(s.tensors[i][j]))
        throw error("non-finite value at element " + std::to_string(j), file.path(), name);
    }
  }
  if (by_name.count(prefix + std::to_string(s.tensors.size())))
    throw error("more state tensors than this model has (" + std::to_string(s.tensors.size()) + ")", file.path(),
                prefix + std::to_string(s.tensors.size()));
  return s;
}

// How the tokens of one sequence are grouped for the forward and backward (the gradients agree to rounding).
enum class form {
  sequence,  // all tokens in one segment: every projection one matrix product over T rows
  step,      // one token per segment: the RNN form
};

template <class Layer>
class network {
 public:
  using config_type = typename Layer::config_type;

  // Loads any checkpoint the library reads (safetensors, .pth, rwkv.cpp) as float32 parameters.
  static network load(const std::filesystem::path& path) { return from(io::open_checkpoint(path)); }

  static network from(const io::checkpoint& ck) {
    io::weight_reader r(ck.path, ck.tensors, ck.owner);
    const auto cfg = config_type::from(r);
    return network(parameter_set::from(ck), cfg);
  }

  network(parameter_set params, const config_type& cfg) : params_(std::move(params)), cfg_(cfg) {
    const auto C = cfg_.n_embd, V = cfg_.vocab;
    emb_ = &params_.get("emb.weight", V, C);
    ln0_w_ = &params_.get("blocks.0.ln0.weight", 1, C), ln0_b_ = &params_.get("blocks.0.ln0.bias", 1, C);
    ln_out_w_ = &params_.get("ln_out.weight", 1, C), ln_out_b_ = &params_.get("ln_out.bias", 1, C);
    head_ = &params_.get("head.weight", V, C);
    for (std::int64_t l = 0; l < cfg_.n_layer; ++l) layers_.emplace_back(params_, cfg_, l);
  }

  network(network&&) = default;

  parameter_set& parameters() noexcept { return params_; }
  const parameter_set& parameters() const noexcept { return params_; }
  const config_type& config() const noexcept { return cfg_; }

  // The state inference starts from: zeros, or what the layer type sets (RWKV-4: p = −1e30).
  state initial_state() const {
    state s;
    for (std::int64_t l = 0; l < cfg_.n_layer; ++l)
      for (auto& shape : Layer::state_shapes(cfg_)) {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        s.tensors.emplace_back(static_cast<std::size_t>(n), 0.f);
        s.shapes.push_back(shape);
      }
    if constexpr (requires { Layer::initial_state(layer_state(s, 0)); })
      for (std::size_t l = 0; l < layers_.size(); ++l) Layer::initial_state(layer_state(s, l));
    return s;
  }

  // The threads the following forwards and backwards use: matrix products split by rows, WKV heads in parallel
  // (null: the calling thread only). The pool is the caller's; it must outlive its use here.
  void use_threads(thread_pool* pool) noexcept { pool_ = pool; }

  // Adds the official trainers' L2Wrap term to the gradient of the next losses (spec/README.md): it pushes each
  // position's largest logit towards zero by 1e-4/T, leaving the loss value unchanged. Off by default (the
  // golden gradients have none).
  void use_l2wrap(bool on) noexcept { l2wrap_ = on; }
  bool l2wrap() const noexcept { return l2wrap_; }

  // A state (from initial_state(), state tuning or a loss() run) as an rwkvpp state file: what
  // rwkv::load_state and `rwkv-cli generate/chat --state-in` read into the inference model of this checkpoint.
  void save_state_file(const std::filesystem::path& path, const state& s,
                       std::map<std::string, std::string> metadata = {}) const {
    check_state(s);
    metadata["format"] = state_file_format;
    metadata["rwkv_version"] = Layer::version();
    metadata["n_layer"] = std::to_string(cfg_.n_layer);
    const auto names = Layer::state_names(cfg_);
    std::vector<io::tensor_to_write> out;
    for (std::size_t i = 0; i < s.tensors.size(); ++i)
      out.push_back(
          io::tensor_to_write::from<float>("blocks." + std::to_string(i / names.size()) + "." + names[i % names.size()],
                                           {static_cast<std::int64_t>(s.tensors[i].size())}, std::span(s.tensors[i])));
    io::save_safetensors(path, out, metadata);
  }

  // Reads an rwkvpp state file (save_state_file, rwkv::save_state, `--state-out`) of this model as a state.
  state read_state_file(const std::filesystem::path& path) const {
    const auto file = io::safetensors_file::open(path);
    const auto& md = file.metadata();
    auto meta = [&](const std::string& k) {
      const auto it = md.find(k);
      if (it == md.end()) throw error("not an rwkvpp state file (metadata '" + k + "' missing)", file.path());
      return it->second;
    };
    if (meta("format") != state_file_format)
      throw error("unsupported state file format '" + meta("format") + "'", file.path());
    if (meta("rwkv_version") != Layer::version() || meta("n_layer") != std::to_string(cfg_.n_layer))
      throw error("state file is for RWKV-" + meta("rwkv_version") + " with " + meta("n_layer") +
                      " layers; the model is RWKV-" + Layer::version() + " with " + std::to_string(cfg_.n_layer) +
                      " layers",
                  file.path());
    state s = initial_state();
    const auto names = Layer::state_names(cfg_);
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      const auto name = "blocks." + std::to_string(i / names.size()) + "." + names[i % names.size()];
      const auto* t = file.find(name);
      if (!t) throw error("missing tensor in state file", file.path(), name);
      if (t->type != dtype::f32)
        throw error(std::string("dtype ") + dtype_name(t->type) + ", expected F32", file.path(), name);
      if (grows(s.shapes[i]) && t->numel() % row_size(s.shapes[i]) == 0)
        s.tensors[i].resize(static_cast<std::size_t>(t->numel()));
      if (t->numel() != static_cast<std::int64_t>(s.tensors[i].size()))
        throw error("has " + std::to_string(t->numel()) + " values, this model's state needs " +
                        std::to_string(s.tensors[i].size()),
                    file.path(), name);
      if (!s.tensors[i].empty())  // an empty cache (RWKV-7b): data() is null, and memcpy(null, ...) is undefined
        std::memcpy(s.tensors[i].data(), t->data, s.tensors[i].size() * sizeof(float));
      for (float v : s.tensors[i])
        if (!std::isfinite(v)) throw error("non-finite value", file.path(), name);
    }
    if (file.tensors().size() != s.tensors.size())
      throw error("state file has " + std::to_string(file.tensors().size()) + " tensors, this model's state has " +
                      std::to_string(s.tensors.size()),
                  file.path());
    return s;
  }

  // RWKV-5/6: the WKV part of a state as the official state-tuning tensors `blocks.<l>.att.time_state`
  // (H, N, N) [h][value][key], to add to the checkpoint (the inference loaders start from them; the token-shift
  // parts of the state are not representable there and are left out).
  std::vector<io::tensor_to_write> time_state_tensors(const state& s) const {
    check_state(s);
    const std::string v = Layer::version();
    if (v != "5" && v != "6")
      throw error("time_state tensors exist for RWKV-5 and 6 only (this is RWKV-" + v + "; use a state file)");
    const auto names = Layer::state_names(cfg_);
    std::vector<io::tensor_to_write> out;
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      if (names[i % names.size()] != "att.wkv") continue;
      const auto& shape = s.shapes[i];  // H, N (key), N (value)
      const auto H = shape[0], N = shape[1];
      std::vector<float> vk(s.tensors[i].size());
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t k = 0; k < N; ++k)
          for (std::int64_t val = 0; val < N; ++val)
            vk[static_cast<std::size_t>((h * N + val) * N + k)] =
                s.tensors[i][static_cast<std::size_t>((h * N + k) * N + val)];
      out.push_back(io::tensor_to_write::from<float>("blocks." + std::to_string(i / names.size()) + ".att.time_state",
                                                     shape, std::span<const float>(vk)));
    }
    return out;
  }

  // The loss alone (mean cross-entropy of the logits after inputs[0..t] against targets[t]), from `initial`
  // (initial_state() when null); the final state is written back to `final` when given. No gradient is computed.
  double loss(std::span<const std::int32_t> inputs, std::span<const std::int32_t> targets, form f = form::sequence,
              const state* initial = nullptr, state* final = nullptr) {
    if (inputs.empty()) throw error("training needs at least one input token");
    if (inputs.size() != targets.size())
      throw error("inputs and targets differ in length (" + std::to_string(inputs.size()) + " vs " +
                  std::to_string(targets.size()) + ")");
    for (auto t : inputs)
      if (t < 0 || t >= cfg_.vocab)
        throw error("token id " + std::to_string(t) + " is out of range for vocabulary " + std::to_string(cfg_.vocab));
    state s = initial ? *initial : initial_state();
    check_state(s);
    const auto T = static_cast<Eigen::Index>(inputs.size());
    const Eigen::Index L = f == form::step ? 1 : T;
    const auto n_seg = static_cast<std::size_t>((T + L - 1) / L);
    segments_.resize(n_seg);

    row_matrix logits(T, cfg_.vocab);
    for (std::size_t i = 0; i < n_seg; ++i) {
      const Eigen::Index t0 = static_cast<Eigen::Index>(i) * L, n = std::min(L, T - t0);
      auto& sg = segments_[i];
      sg.tokens.assign(inputs.begin() + t0, inputs.begin() + t0 + n);
      sg.tapes.resize(layers_.size());
      sg.ctx.pool = pool_;
      row_matrix x(n, cfg_.n_embd), y;
      for (Eigen::Index t = 0; t < n; ++t) x.row(t) = emb_->value.row(sg.tokens[static_cast<std::size_t>(t)]);
      norm_forward(x, *ln0_w_, *ln0_b_, cfg_.n_embd, layer_norm_eps, y, sg.ln0);
      sg.ctx.tokens = sg.tokens;
      if constexpr (requires { requires Layer::reads_tokens; }) sg.ctx.embedded = y;
      for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l].forward(y, layer_state(s, l), sg.ctx, sg.tapes[l]);
      norm_forward(y, *ln_out_w_, *ln_out_b_, cfg_.n_embd, layer_norm_eps, sg.xo, sg.ln_out);
      product(pool_, logits.middleRows(t0, n), sg.xo, head_->value.transpose());
    }
    if (final) *final = s;

    const double loss = cross_entropy(logits, targets, dlogits_);
    if (l2wrap_) train::l2wrap(logits, dlogits_, static_cast<double>(T));
    L_ = L;
    return loss;
  }

  // Mean cross-entropy of the logits after inputs[0..t] against targets[t], from `initial` (initial_state() when
  // null). Accumulates ∂loss/∂parameter into the parameters' gradients and, when `d_initial` is given, writes
  // ∂loss/∂initial there.
  double loss_and_gradients(std::span<const std::int32_t> inputs, std::span<const std::int32_t> targets,
                            form f = form::sequence, const state* initial = nullptr, state* d_initial = nullptr) {
    const double l = loss(inputs, targets, f, initial);
    backward(d_initial);
    return l;
  }

 private:
  // The backward of the last loss(): segments from the last, the state gradient carried between them.
  void backward(state* d_initial) {
    const auto& dlogits = dlogits_;
    const Eigen::Index L = L_;
    const auto n_seg = segments_.size();
    state ds = initial_state();
    for (auto& t : ds.tensors) std::fill(t.begin(), t.end(), 0.f);
    for (auto i = static_cast<std::ptrdiff_t>(n_seg) - 1; i >= 0; --i) {
      auto& sg = segments_[static_cast<std::size_t>(i)];
      const Eigen::Index t0 = i * L, n = static_cast<Eigen::Index>(sg.tokens.size());
      const auto dl = dlogits.middleRows(t0, n);
      product(pool_, head_->grad, dl.transpose(), sg.xo, true);
      row_matrix dxo;
      product(pool_, dxo, dl, head_->value);
      row_matrix dx;
      norm_backward(dxo, sg.ln_out, *ln_out_w_, *ln_out_b_, cfg_.n_embd, dx);
      sg.ctx.d_v_first.resize(0, 0);
      sg.ctx.d_embedded.resize(0, 0);
      for (auto l = static_cast<std::ptrdiff_t>(layers_.size()) - 1; l >= 0; --l)
        layers_[static_cast<std::size_t>(l)].backward(dx, layer_state(ds, static_cast<std::size_t>(l)), sg.ctx,
                                                      sg.tapes[static_cast<std::size_t>(l)]);
      if (sg.ctx.d_embedded.rows() == n) dx += sg.ctx.d_embedded;
      row_matrix demb;
      norm_backward(dx, sg.ln0, *ln0_w_, *ln0_b_, cfg_.n_embd, demb);
      for (Eigen::Index t = 0; t < n; ++t) emb_->grad.row(sg.tokens[static_cast<std::size_t>(t)]) += demb.row(t);
    }
    if (d_initial) *d_initial = std::move(ds);
  }

  struct segment {
    std::vector<std::int32_t> tokens;
    norm_record ln0, ln_out;
    row_matrix xo;
    segment_context ctx;
    std::vector<typename Layer::tape> tapes;
  };

  std::span<std::vector<float>> layer_state(state& s, std::size_t l) const {
    const auto per = Layer::state_shapes(cfg_).size();
    return std::span(s.tensors).subspan(l * per, per);
  }

  void check_state(const state& s) const {
    const auto want = initial_state();
    if (s.tensors.size() != want.tensors.size())
      throw error("the initial state has " + std::to_string(s.tensors.size()) + " tensors, this model needs " +
                  std::to_string(want.tensors.size()));
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      const bool ok = grows(want.shapes[i])
                          ? static_cast<std::int64_t>(s.tensors[i].size()) % row_size(want.shapes[i]) == 0
                          : s.tensors[i].size() == want.tensors[i].size();
      if (!ok)
        throw error("initial state tensor " + std::to_string(i) + " has " + std::to_string(s.tensors[i].size()) +
                    " values, this model needs " +
                    (grows(want.shapes[i]) ? "rows of " + std::to_string(row_size(want.shapes[i]))
                                           : shape_string(want.shapes[i])));
    }
  }

  parameter_set params_;
  config_type cfg_;
  parameter *emb_, *ln0_w_, *ln0_b_, *ln_out_w_, *ln_out_b_, *head_;
  std::vector<Layer> layers_;
  std::vector<segment> segments_;
  row_matrix dlogits_;
  Eigen::Index L_ = 0;
  bool l2wrap_ = false;
  thread_pool* pool_ = nullptr;
};

}  // namespace rwkv::train

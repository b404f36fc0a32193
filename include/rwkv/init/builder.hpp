#pragma once
// Random initialisation of model weights from scratch, the way the official training code does it
// (spec/v*.md "Initialization"), so that research variants can start from nothing and tests need no files.
//
//   rwkv::init::builder b({.n_layer = 4, .n_embd = 128, .vocab = 512, .head_size = 32}, /*seed*/ 1);
//   rwkv::init::model<rwkv::v7::Block<>>(b);          // every block's tensors, plus emb/ln0/ln_out/head
//   auto reader = b.reader();                          // an in-memory checkpoint
//   auto m = rwkv::v7::Model<>::from_reader(reader);   // or b.save("x.safetensors")
//
// style::official reproduces the formulas, zeros included (att.output and ffn.value start at zero, so a fresh
// model's blocks change nothing); style::exercised replaces those zeros with small orthogonal or Gaussian values
// so that every path computes something — what tests and benchmarks want.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/QR>

#include "rwkv/core/error.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/model_config.hpp"

namespace rwkv::init {

enum class style { official, exercised };

struct dims {
  std::int64_t n_layer = 2, n_embd = 64, vocab = 256;
  std::int64_t head_size = 16;  // RWKV-5/6/7 heads (n_embd must be a multiple)
  std::int64_t dim_ffn = 0;     // 0: each version's default (4C for 4 and 7, 3.5C rounded to 32 for 5 and 6)
};

class builder {
 public:
  explicit builder(dims d, std::uint64_t seed = 0, style s = style::official) : dims_(d), style_(s), rng_(seed) {
    if (d.n_layer <= 0 || d.n_embd <= 0 || d.vocab <= 0 || d.head_size <= 0 || d.n_embd % d.head_size != 0)
      throw error("rwkv::init: layers, n_embd and vocab must be positive and n_embd a multiple of head_size");
  }

  const dims& shape() const noexcept { return dims_; }
  style how() const noexcept { return style_; }
  bool exercised() const noexcept { return style_ == style::exercised; }

  // The layer ratios of the official formulas: r01 = i/(L−1) (0 for one layer), r1 = 1 − i/L.
  double r01(std::int64_t layer) const {
    return dims_.n_layer > 1 ? static_cast<double>(layer) / static_cast<double>(dims_.n_layer - 1) : 0.0;
  }
  double r1(std::int64_t layer) const { return 1.0 - static_cast<double>(layer) / static_cast<double>(dims_.n_layer); }

  // A tensor whose element i is value(i) (row-major).
  void fill(const std::string& name, std::vector<std::int64_t> shape,
            const std::function<double(std::int64_t)>& value) {
    std::vector<float> v(static_cast<std::size_t>(numel(shape)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(value(static_cast<std::int64_t>(i)));
    add(name, std::move(shape), std::move(v));
  }
  void constant(const std::string& name, std::vector<std::int64_t> shape, double c) {
    fill(name, std::move(shape), [c](std::int64_t) { return c; });
  }
  void uniform(const std::string& name, std::vector<std::int64_t> shape, double lo, double hi) {
    std::uniform_real_distribution<double> u(lo, hi);
    fill(name, std::move(shape), [&](std::int64_t) { return u(rng_); });
  }
  // A tensor the official code sets to zero; under style::exercised, N(0, (0.1/√cols)²) instead (a LoRA factor
  // at zero would hide the path behind it).
  void normal(const std::string& name, std::vector<std::int64_t> shape, double mean, double stddev) {
    std::normal_distribution<double> n(mean, stddev);
    fill(name, std::move(shape), [&](std::int64_t) { return n(rng_); });
  }
  void zeros(const std::string& name, std::vector<std::int64_t> shape) {
    if (!exercised()) return constant(name, std::move(shape), 0.0);
    std::normal_distribution<double> n(0.0, 0.1 / std::sqrt(static_cast<double>(shape.back())));
    fill(name, std::move(shape), [&](std::int64_t) { return n(rng_); });
  }
  // torch.nn.init.orthogonal_ for a rows x cols matrix times `gain`: orthonormal rows (rows <= cols) or columns,
  // from the QR decomposition of a Gaussian matrix. Gain 0 gives zeros, or under style::exercised gain 0.1.
  void orthogonal(const std::string& name, std::int64_t rows, std::int64_t cols, double gain) {
    if (gain == 0.0 && !exercised()) return constant(name, {rows, cols}, 0.0);
    if (gain == 0.0) gain = 0.1;
    const auto big = std::max(rows, cols), small = std::min(rows, cols);
    std::normal_distribution<double> n(0.0, 1.0);
    Eigen::MatrixXd g(big, small);
    for (Eigen::Index j = 0; j < small; ++j)
      for (Eigen::Index i = 0; i < big; ++i) g(i, j) = n(rng_);
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
    Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(big, small);
    // Sign fix (as torch): makes Q unique, so its distribution is uniform (Haar).
    const Eigen::MatrixXd rr = qr.matrixQR().topRows(small).triangularView<Eigen::Upper>();
    for (Eigen::Index j = 0; j < small; ++j)
      if (rr(j, j) < 0) q.col(j) = -q.col(j);
    std::vector<float> v(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j)
        v[static_cast<std::size_t>(i * cols + j)] = static_cast<float>(gain * (rows >= cols ? q(i, j) : q(j, i)));
    add(name, {rows, cols}, std::move(v));
  }
  // A weight (out x in) with the RWKV-4/5/6 gain rule: √(rows/cols) when rows > cols, else 1, times `scale`.
  void matrix(const std::string& name, std::int64_t rows, std::int64_t cols, double scale) {
    const double gain = rows > cols ? std::sqrt(static_cast<double>(rows) / static_cast<double>(cols)) : 1.0;
    orthogonal(name, rows, cols, gain * scale);
  }

  void add(const std::string& name, std::vector<std::int64_t> shape, std::vector<float> values) {
    if (static_cast<std::int64_t>(values.size()) != numel(shape))
      throw error("rwkv::init: value count does not match the shape", {}, name);
    for (const auto& t : tensors_)
      if (t.name == name) throw error("rwkv::init: tensor written twice", {}, name);
    tensors_.push_back(io::tensor_to_write::from<float>(name, std::move(shape), std::span<const float>(values)));
  }

  const std::vector<io::tensor_to_write>& tensors() const noexcept { return tensors_; }

  // The tensors as an in-memory safetensors checkpoint, ready for Model::from_reader.
  io::weight_reader reader(std::string name = "<random init>") const {
    auto st = io::safetensors_file::from_bytes(io::to_safetensors_bytes(tensors_), std::move(name));
    return io::weight_reader(st.path(), st.tensors(), st.owner());
  }
  void save(const std::filesystem::path& path) const { io::save_safetensors(path, tensors_); }

 private:
  static std::int64_t numel(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }

  dims dims_;
  style style_;
  std::mt19937_64 rng_;
  std::vector<io::tensor_to_write> tensors_;
};

// emb (U(−1e−4, 1e−4)), ln0 and ln_out (1, 0) and head (orthogonal, gain 0.5·√(V/C) when V > C, else 0.5):
// the same in every version.
inline void embedding_and_head(builder& b) {
  const auto& d = b.shape();
  b.uniform("emb.weight", {d.vocab, d.n_embd}, -1e-4, 1e-4);
  b.constant("blocks.0.ln0.weight", {d.n_embd}, 1.0);
  b.constant("blocks.0.ln0.bias", {d.n_embd}, 0.0);
  b.constant("ln_out.weight", {d.n_embd}, 1.0);
  b.constant("ln_out.bias", {d.n_embd}, 0.0);
  b.matrix("head.weight", d.vocab, d.n_embd, 0.5);
}

// A block's two LayerNorms (1, 0).
inline void block_norms(builder& b, std::int64_t layer) {
  const auto p = block_prefix(layer);
  for (auto n : {"ln1", "ln2"}) {
    b.constant(p + n + ".weight", {b.shape().n_embd}, 1.0);
    b.constant(p + n + ".bias", {b.shape().n_embd}, 0.0);
  }
}

// Every tensor of a model whose blocks are all `Block` (Block::init(builder&, layer) writes one block).
template <class Block>
void model(builder& b) {
  embedding_and_head(b);
  for (std::int64_t i = 0; i < b.shape().n_layer; ++i) Block::init(b, i);
}

// A hybrid model: layer i is Blocks...[which(i)].
template <class... Blocks>
void model(builder& b, const std::function<std::size_t(std::int64_t)>& which) {
  embedding_and_head(b);
  for (std::int64_t i = 0; i < b.shape().n_layer; ++i) {
    const std::size_t k = which(i), n = sizeof...(Blocks);
    if (k >= n)
      throw error("rwkv::init::model: layer " + std::to_string(i) + " asks for block type " + std::to_string(k));
    std::size_t j = 0;
    ((j++ == k ? Blocks::init(b, i) : void()), ...);
  }
}

}  // namespace rwkv::init

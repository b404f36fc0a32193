#pragma once
// Trainable parameters: every checkpoint tensor as a float32 value with its gradient, under its official name and
// shape, so that gradients, optimizer state and trained checkpoints are written with the names every other
// RWKV tool reads.

#include <cmath>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv::train {

// One tensor. `value` and `grad` hold it as a row-major matrix: vectors ((C), (1,1,C)) as 1 x C, matrices as they
// are, higher ranks with their leading dimensions folded into rows. `shape` is the official one, for writing.
struct parameter {
  std::string name;
  std::vector<std::int64_t> shape;
  row_matrix value, grad;

  Eigen::Index size() const noexcept { return value.size(); }
  // The value as a vector (for 1 x C parameters).
  Eigen::Map<const Eigen::VectorXf> vec() const { return {value.data(), value.size()}; }
  Eigen::Map<Eigen::VectorXf> grad_vec() { return {grad.data(), grad.size()}; }
};

// Every parameter of a model in checkpoint order. Addresses are stable (layers keep pointers to their tensors).
class parameter_set {
 public:
  parameter_set() = default;
  parameter_set(const parameter_set&) = delete;
  parameter_set& operator=(const parameter_set&) = delete;
  parameter_set(parameter_set&&) = default;
  parameter_set& operator=(parameter_set&&) = default;

  // Reads every tensor of a checkpoint (safetensors, .pth or rwkv.cpp; any float dtype) as float32. Quantized
  // files are refused (training needs the full-precision weights), and so are NaN/Inf values.
  static parameter_set load(const std::filesystem::path& path) { return from(io::open_checkpoint(path)); }

  static parameter_set from(const io::checkpoint& ck) {
    parameter_set set;
    set.path_ = ck.path;
    for (const auto& t : ck.tensors) {
      if (t.quantized)
        throw error("stored as " + t.quantized->format +
                        " blocks: training needs the full-precision weights (use the checkpoint it was quantized from)",
                    ck.path, t.name);
      auto& p = set.add(t.name, t.shape);
      float* out = p.value.data();
      for (std::int64_t i = 0; i < t.numel(); ++i) {
        out[i] = load_as_float(t, static_cast<std::size_t>(i));
        if (!std::isfinite(out[i]))
          throw error("non-finite value at element " + std::to_string(i) + ": cannot train from it", ck.path, t.name);
      }
    }
    return set;
  }

  // Adds a zero tensor of the given shape.
  parameter& add(std::string name, std::vector<std::int64_t> shape) {
    if (index_.count(name)) throw error("duplicate parameter", path_, name);
    std::int64_t cols = shape.empty() ? 1 : shape.back(), rows = 1;
    for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    auto& p = params_.emplace_back();
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.value = row_matrix::Zero(rows, cols);
    p.grad = row_matrix::Zero(rows, cols);
    index_[p.name] = &p;
    return p;
  }

  bool has(const std::string& name) const { return index_.count(name) != 0; }

  // The tensor `name`, checked to hold `rows` x `cols` values (a vector is 1 x C whatever its leading 1s).
  // The parameter of that name, whatever its shape (for reading a dimension off it).
  parameter& get_any(const std::string& name) {
    auto it = index_.find(name);
    if (it == index_.end()) throw error("missing tensor (the checkpoint does not match this model)", path_, name);
    return *it->second;
  }

  parameter& get(const std::string& name, std::int64_t rows, std::int64_t cols) {
    auto it = index_.find(name);
    if (it == index_.end()) throw error("missing tensor (the checkpoint does not match this model)", path_, name);
    auto& p = *it->second;
    if (p.value.rows() != rows || p.value.cols() != cols)
      throw error("shape " + shape_string(p.shape) + " does not match the expected " + std::to_string(rows) + " x " +
                      std::to_string(cols),
                  path_, name);
    return p;
  }

  std::deque<parameter>& all() noexcept { return params_; }
  const std::deque<parameter>& all() const noexcept { return params_; }
  const std::string& path() const noexcept { return path_; }

  void zero_grad() {
    for (auto& p : params_) p.grad.setZero();
  }

  // The values (as a checkpoint) or the gradients, as tensors to write under `prefix` + official name.
  std::vector<io::tensor_to_write> values(const std::string& prefix = {}) const { return write(prefix, false); }
  std::vector<io::tensor_to_write> gradients(const std::string& prefix = "grad.") const { return write(prefix, true); }

 private:
  std::vector<io::tensor_to_write> write(const std::string& prefix, bool grads) const {
    std::vector<io::tensor_to_write> out;
    for (const auto& p : params_) {
      const auto& m = grads ? p.grad : p.value;
      out.push_back(io::tensor_to_write::from<float>(
          prefix + p.name, p.shape, std::span<const float>(m.data(), static_cast<std::size_t>(m.size()))));
    }
    return out;
  }

  std::string path_;
  std::deque<parameter> params_;
  std::map<std::string, parameter*> index_;
};

}  // namespace rwkv::train

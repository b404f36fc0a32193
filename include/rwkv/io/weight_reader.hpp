#pragma once
// Turns named tensors of a checkpoint into the model's weights: checks each expected tensor exists with the
// expected shape and a floating-point dtype (or is a pre-quantized matrix, io/quantized.hpp), converts to the
// storage type (or views the file when it already is), rejects NaN/Inf, and at the end lists every tensor the
// model did not use.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/memory.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/adapter.hpp"
#include "rwkv/io/quantized.hpp"

namespace rwkv::io {

struct load_options {
  // Reject weights containing NaN or Inf (a corrupt download gives garbage logits otherwise).
  bool check_finite = true;
  // Place every weight matrix in 2 MiB-aligned anonymous memory with transparent huge pages (core/memory.hpp),
  // copied from the file or converted into it: the fastest memory to stream during decoding, and immune to the
  // page cache being evicted and re-read under memory pressure. Costs a copy at load and resident memory for
  // every weight. Off: matrices whose file dtype matches the storage view the mapped file (zero-copy: fastest
  // load, smallest peak RSS, shared between processes), others live in ordinary heap memory.
  bool huge_pages = false;
  // With huge_pages: lock the weights in memory (mlock) so that they are never swapped or reclaimed; loading fails
  // with a clear error when RLIMIT_MEMLOCK is too small.
  bool mlock = false;
  // Called as tensors are read, with the bytes read so far and the file's total (for a progress bar); the last
  // call has done == total.
  std::function<void(std::int64_t done_bytes, std::int64_t total_bytes)> progress{};
  // LoRA adapters (and the full tensors they carry) merged into the checkpoint, in order (io/adapter.hpp).
  std::vector<adapter> adapters{};
  // RWKV-7b: the most tokens a state's DeepEmbedAttention key/value cache may hold; a call that would go beyond
  // it fails with an error saying so (nothing is dropped silently). The cache costs 4·(2·32 + 256 + n_embd)
  // bytes per token and layer (about 50 KB per token for a 12-layer, 768-wide model).
  std::int64_t max_cached_tokens = 32768;
};

class weight_reader {
 public:
  weight_reader(std::string path, std::vector<tensor_view> tensors, std::shared_ptr<const void> owner,
                load_options options = {})
      : path_(std::move(path)), owner_(std::move(owner)), options_(options) {
    if (options_.huge_pages) arena_ = std::make_shared<weight_arena>(page_size::huge, options_.mlock);
    apply_adapters(tensors, owner_, options_.adapters, path_);
    for (auto& t : tensors) {
      auto name = t.name;
      total_bytes_ += static_cast<std::int64_t>(t.nbytes);
      tensors_.emplace(std::move(name), std::move(t));
    }
  }

  // Every tensor of the file (for detect_version and other whole-file checks).
  std::vector<tensor_view> views() const {
    std::vector<tensor_view> out;
    for (const auto& [k, v] : tensors_) out.push_back(v);
    return out;
  }

  const std::string& path() const noexcept { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

  const tensor_view& peek(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("missing tensor (the checkpoint does not match this model)", name);
    return it->second;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [k, v] : tensors_) out.push_back(k);
    return out;
  }

  // Marks a tensor as known but unused (e.g. RWKV-7 layer-0 v0/v1/v2).
  void ignore(const std::string& name) { used_.insert(name); }

  // A vector of n floats. Any shape whose dimensions multiply to n and which has at most one dimension
  // different from 1 is accepted ((1,1,C), (C), (1,C)): the official files store vectors with leading 1s.
  std::vector<float> vector(const std::string& name, std::int64_t n) {
    const auto& t = take(name);
    int non_unit = 0;
    for (auto d : t.shape) non_unit += d != 1;
    if (t.numel() != n || non_unit > 1)
      fail("shape " + shape_string(t.shape) + " does not match the expected vector of " + std::to_string(n), name);
    return to_floats(t);
  }

  // A (rows x cols) tensor as floats, row-major. Also accepts (1, rows, cols) etc. when `flexible`.
  std::vector<float> dense(const std::string& name, std::int64_t rows, std::int64_t cols) {
    const auto& t = take(name);
    check_2d(t, rows, cols);
    return to_floats(t);
  }

  // A tensor of exactly `shape` (leading unit dimensions beyond it are accepted) as floats, row-major.
  std::vector<float> dense(const std::string& name, const std::vector<std::int64_t>& shape) {
    const auto& t = take(name);
    std::vector<std::int64_t> s(t.shape.begin(), t.shape.end());
    while (s.size() > shape.size() && s.front() == 1) s.erase(s.begin());
    if (s != shape) {
      std::string want = shape_string(shape);
      fail("shape " + shape_string(t.shape) + " does not match the expected " + want, name);
    }
    return to_floats(t);
  }

  // A (rows x cols) weight matrix in storage type T, zero-copy when the file already holds T aligned.
  // Quantized types (q8, q4) are quantized here from the file's F32/F16/BF16 values, or taken as they are from
  // a pre-quantized file of the same format (zero-copy over the mapping, io/quantized.hpp). A pre-quantized
  // matrix read as f32/bf16/f16 is dequantized; read as the other quantized format it is refused (quantizing
  // quantized weights again compounds the errors).
  template <class T>
  matrix<T> weight(const std::string& name, std::int64_t rows, std::int64_t cols) {
    const auto& t = take(name);
    check_2d(t, rows, cols);
    weight_shapes_[name] = {rows, cols};
    if constexpr (QuantizedStorage<T>) {
      if (t.quantized) {
        if (t.quantized->format != T::name)
          fail("stored as " + t.quantized->format + " blocks; loading them as " + std::string(T::name) +
                   " would quantize already-quantized weights (the errors compound): load it with precision " +
                   t.quantized->format + " (or f32/bf16/f16 to dequantize), or quantize the original checkpoint to " +
                   T::name,
               name);
        return place(io::quantized_matrix<T>(t, owner_));
      }
      const auto floats = to_floats(t);  // also rejects NaN/Inf unless check_finite is off
      try {
        return place(matrix<T>::quantize(floats.data(), rows, cols, name));
      } catch (const error& e) {  // a non-finite value (checks off) or a block beyond float16's range
        fail(e.problem(), name);
      }
    } else {
      if (t.type == dtype_of<T>() && reinterpret_cast<std::uintptr_t>(t.data) % alignof(T) == 0) {
        const T* p = reinterpret_cast<const T*>(t.data);
        if (options_.check_finite) check_finite_values(t);
        return place(matrix<T>::view(p, rows, cols, owner_));
      }
      auto floats = to_floats(t);
      std::vector<T> out(floats.size());
      std::transform(floats.begin(), floats.end(), out.begin(), [](float f) { return from_float<T>(f); });
      if (options_.check_finite)
        for (std::size_t i = 0; i < out.size(); ++i)
          if (!std::isfinite(to_float(out[i])))
            fail("value " + std::to_string(floats[i]) + " at element " + std::to_string(i) + " overflows " +
                     std::string(storage_name<T>()),
                 name);
      return place(matrix<T>::owned(std::move(out), rows, cols));
    }
  }

  // A token-indexed table (V x width, read one row per token, such as RWKV-7a/7b's DeepEmbed tables): as weight<T>,
  // but never copied into the huge-page arena. Streaming speed does not matter for it, and it can be larger than
  // all the model's matrices together; where the file holds T it stays mapped and is paged in row by row.
  template <class T>
  matrix<T> table(const std::string& name, std::int64_t rows, std::int64_t cols) {
    struct outside_arena {  // weight<T> places nothing while the reader has no arena
      std::shared_ptr<weight_arena>& arena;
      std::shared_ptr<weight_arena> kept = std::move(arena);
      ~outside_arena() { arena = std::move(kept); }
    } scope{arena_};
    return weight<T>(name, rows, cols);
  }

  const load_options& options() const noexcept { return options_; }

  // Every tensor read with weight<T>() so far and its (rows, cols): what a quantized model stores quantized.
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>>& weight_shapes() const noexcept {
    return weight_shapes_;
  }

  // Total number of elements of the tensors consumed so far (the model's parameter count).
  std::int64_t consumed_elements() const {
    std::int64_t n = 0;
    for (const auto& name : consumed_) n += tensors_.at(name).numel();
    return n;
  }

  // Throws listing every tensor that no part of the model consumed.
  void finish() const {
    if (arena_) arena_->trim();
    if (options_.progress) options_.progress(total_bytes_, total_bytes_);
    std::vector<std::string> extra;
    for (auto& [k, v] : tensors_)
      if (!used_.count(k)) extra.push_back(k);
    if (extra.empty()) return;
    throw error("unexpected tensors for this model: " + name_list(extra), path_, extra.front());
  }

  [[noreturn]] void fail(const std::string& problem, const std::string& tensor = {}) const {
    throw error(problem, path_, tensor);
  }

 private:
  // With load_options::huge_pages, a copy of m in the arena (for quantized formats: codes, scales and minimums,
  // with the scales' read-ahead padding); otherwise m.
  template <class T>
  matrix<T> place(matrix<T> m) {
    if (!arena_) return m;
    if constexpr (QuantizedStorage<T>) {
      const auto nblocks = static_cast<std::size_t>(m.rows() * m.blocks_per_row());
      const std::size_t code_bytes = (nblocks * T::block_bytes + 63) / 64 * 64;
      const std::size_t scale_bytes = ((nblocks + 32) * sizeof(f16) + 63) / 64 * 64;  // >= 32 bytes of padding
      auto b = arena_->allocate(code_bytes + scale_bytes * (T::has_min ? 2 : 1));
      if (nblocks) {
        std::memcpy(b.data, m.codes(0), nblocks * T::block_bytes);
        std::memcpy(b.data + code_bytes, m.scales(0), nblocks * sizeof(f16));
        if constexpr (T::has_min) std::memcpy(b.data + code_bytes + scale_bytes, m.mins(0), nblocks * sizeof(f16));
      }
      return matrix<T>::from_blocks(reinterpret_cast<const std::uint8_t*>(b.data), b.data + code_bytes,
                                    T::has_min ? b.data + code_bytes + scale_bytes : nullptr, m.rows(), m.cols(),
                                    /*padded*/ true, std::move(b.owner));
    } else {
      auto b = arena_->allocate(m.bytes());
      if (m.bytes()) std::memcpy(b.data, m.data(), m.bytes());
      return matrix<T>::view(reinterpret_cast<const T*>(b.data), m.rows(), m.cols(), std::move(b.owner));
    }
  }

  const tensor_view& take(const std::string& name) {
    const auto& t = peek(name);
    if (t.type != dtype::f32 && t.type != dtype::f16 && t.type != dtype::bf16 && !t.quantized)
      fail(std::string("unsupported dtype ") + dtype_name(t.type) + " for a weight (expected F32, F16 or BF16)", name);
    used_.insert(name);
    if (consumed_.insert(name).second && options_.progress) {
      read_bytes_ += static_cast<std::int64_t>(t.nbytes);
      options_.progress(std::min(read_bytes_, total_bytes_), total_bytes_);
    }
    return t;
  }

  void check_2d(const tensor_view& t, std::int64_t rows, std::int64_t cols) const {
    std::vector<std::int64_t> s;
    for (auto d : t.shape)
      if (!(d == 1 && s.empty() && t.shape.size() > 2)) s.push_back(d);  // drop leading unit dims
    if (s.size() != 2 || s[0] != rows || s[1] != cols)
      fail("shape " + shape_string(t.shape) + " does not match the expected [" + std::to_string(rows) + ", " +
               std::to_string(cols) + "]",
           t.name);
  }

  std::vector<float> to_floats(const tensor_view& t) const {
    if (t.quantized) return io::dequantize(t);  // finite: the scales and minimums were checked when opened
    std::vector<float> out(static_cast<std::size_t>(t.numel()));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_as_float(t, i);
    if (options_.check_finite)
      for (std::size_t i = 0; i < out.size(); ++i)
        if (!std::isfinite(out[i])) fail("non-finite value (NaN or Inf) at element " + std::to_string(i), t.name);
    return out;
  }

  void check_finite_values(const tensor_view& t) const {
    const std::size_t n = static_cast<std::size_t>(t.numel());
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(load_as_float(t, i)))
        fail("non-finite value (NaN or Inf) at element " + std::to_string(i), t.name);
  }

  std::string path_;
  std::map<std::string, tensor_view> tensors_;
  std::set<std::string> used_;      // consumed or explicitly ignored
  std::set<std::string> consumed_;  // read by the model
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> weight_shapes_;
  std::shared_ptr<const void> owner_;
  std::int64_t total_bytes_ = 0, read_bytes_ = 0;
  load_options options_;
  std::shared_ptr<weight_arena> arena_;  // set with load_options::huge_pages
};

}  // namespace rwkv::io

#pragma once
// Quantizing a checkpoint once, ahead of time: rwkv::quantize_checkpoint (what `rwkv-cli quantize` runs) reads
// any checkpoint the library loads (safetensors, .pth, rwkv.cpp; recognised by content) and writes a safetensors
// file in rwkvpp's quantized layout (io/quantized.hpp, docs/quantized-format.md). Loading that file with the same
// precision gives bit-identical logits to loading the source with that precision, without quantizing at load
// and with a fraction of the bytes to map.
//
// Which tensors are quantized is decided by the models themselves, not by a list of names: the source is loaded
// as a model (which also validates it), and every tensor the model read with weight_reader::weight<T>() — the
// large matrices, the embedding and the head (core/quant.hpp says why only those) — is quantized exactly as
// weight<q8>() / weight<q4>() quantizes it at load. Every other tensor is copied unchanged, dtype kept.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rwkv/any_model.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/quantized.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/io/weight_reader.hpp"

namespace rwkv {

struct quantize_summary {
  std::string version;                  // RWKV version of the model, e.g. "7"
  std::size_t quantized = 0;            // matrices stored quantized
  std::size_t copied = 0;               // tensors copied unchanged
  std::int64_t quantized_elements = 0;  // weights in the quantized matrices
  std::int64_t parameters = 0;          // weights the model uses
};

namespace detail {

template <QuantizedStorage Q>
quantize_summary quantize_checkpoint(const std::filesystem::path& in, const std::filesystem::path& out,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress) {
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && std::filesystem::equivalent(in, out, ec))
    throw error("the output would overwrite the input checkpoint", out.string());
  const auto file = io::open_checkpoint(in);
  io::weight_reader reader(file.path, file.tensors, file.owner);
  // Loading the model validates the checkpoint and records which tensors it reads as matrices. As f32: zero-copy
  // for an F32 file, and compiled for every head size (any_model has q8/q4 for head size 64 only).
  const auto model = any_model::from_reader(reader, file, storage_choice::f32);

  quantize_summary summary;
  summary.version = model.info().version;
  summary.parameters = model.info().parameters;
  const auto& shapes = reader.weight_shapes();
  std::int64_t done = 0;
  std::vector<io::quantized_entry> matrices;
  std::vector<io::tensor_to_write> quantized, copied;
  for (const auto& t : file.tensors) {
    if (auto it = shapes.find(t.name); it != shapes.end()) {
      const auto [rows, cols] = it->second;
      // The very function that quantizes at load, so the blocks are those a load of the source gives.
      for (auto& w : io::quantized_tensors_to_write(t.name, reader.weight<Q>(t.name, rows, cols)))
        quantized.push_back(std::move(w));
      matrices.push_back({t.name, rows, cols});
      summary.quantized_elements += rows * cols;
      if (progress) progress(++done, static_cast<std::int64_t>(shapes.size()));
    } else if (t.quantized) {  // quantized, but not read as a matrix by this model: stored as float32
      copied.push_back(io::tensor_to_write::from<float>(t.name, t.shape, std::span<const float>(io::dequantize(t))));
    } else {
      copied.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
    }
  }
  summary.quantized = matrices.size();
  summary.copied = copied.size();
  auto metadata = io::quantized_metadata<Q>(matrices);
  metadata["format"] = "pt";
  metadata["rwkv_version"] = summary.version;
  metadata["quantized_from"] = io::format_name(file.format);
  // Matrices first, each followed by its scales, then the rest: every scale array has file bytes after it, so
  // the kernels can read it in place (io/quantized.hpp).
  for (auto& t : copied) quantized.push_back(std::move(t));
  io::save_safetensors(out, quantized, metadata);
  return summary;
}

}  // namespace detail

// Writes `in` (any supported checkpoint) quantized to `to` (q8 or q4) as `out`. Throws rwkv::error for a
// checkpoint no model loads, a float precision as `to`, an already-quantized input of the other format, or an
// output path that is the input.
// `progress` (optional) is called after each matrix with (matrices done, matrices to quantize).
inline quantize_summary quantize_checkpoint(
    const std::filesystem::path& in, const std::filesystem::path& out, storage_choice to,
    const std::function<void(std::int64_t done, std::int64_t total)>& progress = {}) {
  switch (to) {
    case storage_choice::q8:
      return detail::quantize_checkpoint<q8>(in, out, progress);
    case storage_choice::q4:
      return detail::quantize_checkpoint<q4>(in, out, progress);
    default:
      throw error("quantize writes q8 or q4 (f32, bf16 and f16 files: rwkv-cli convert --dtype)", in.string());
  }
}

}  // namespace rwkv

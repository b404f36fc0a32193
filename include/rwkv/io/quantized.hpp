#pragma once
// rwkvpp's quantized checkpoint layout (version 1): a safetensors file holding the q8/q4 blocks of core/quant.hpp
// as they are in memory, written by `rwkv-cli quantize` (rwkv::quantize_checkpoint, rwkv/quantize.hpp) and read
// by io::open_checkpoint, so that a quantized model loads without quantizing again and gives the same logits as
// the source checkpoint quantized at load. docs/quantized-format.md describes it for other tools.
//
// __metadata__ (all values are strings, as safetensors requires):
//   rwkvpp.quantization          "q8" or "q4": the format of every quantized matrix of the file
//   rwkvpp.quantization_version  "1" (this layout; a reader refuses versions it does not know)
//   rwkvpp.block_size            "32" (weights per block along a row)
//   rwkvpp.quantized_tensors     a JSON object {"emb.weight": [rows, cols], ...}: every quantized matrix and its
//                                logical shape (the columns are not implied by the block count: rows end in a
//                                partial block when cols is not a multiple of 32)
// For each quantized matrix W of rows x cols, with B = ceil(cols / 32) blocks a row:
//   W        U8  [rows, B·block_bytes]  the codes, row-major: block b of row r at byte (r·B + b)·block_bytes.
//                                       q8: 32 int8 codes a block (block_bytes 32), w = d·q;
//                                       q4: 16 bytes a block (block_bytes 16), element j (0..15) in the low nibble
//                                       of byte j and element j+16 in the high nibble, w = d·q + m.
//                                       The padding elements of a partial last block have code 0.
//   W.scale  F16 [rows, B]              d of each block, finite
//   W.min    F16 [rows, B]              m of each block, finite (q4 only; a q8 file has none)
// Every other tensor is stored as in the source checkpoint, its dtype kept. What is quantized is what the models
// read as a weight matrix (core/quant.hpp: the large nn.Linear matrices, the embedding and the head).
// The writer puts the quantized matrices first, each followed by its scales (and minimums), and the other
// tensors after them, so that every scale array is followed by at least 32 bytes of the file and the kernels
// can use it in place: loading is zero-copy (io::weight_reader::weight<q8>() views the mapped file).
//
// Reading (assemble_quantized, called by io::open_checkpoint): W, W.scale and W.min become one tensor_view
// named W, with dtype U8, the logical shape [rows, cols] and `quantized` set, so that version detection, the
// configs and weight_reader see the matrix as the source checkpoint had it. Everything is checked first: an
// unknown quantization, version or block size; a listed matrix missing, or with the wrong dtype or byte length;
// a missing, mistyped or misshaped scale or minimum; a NaN or infinite scale or minimum; each gives an
// rwkv::error naming the file and the tensor.
//
// Loading a quantized file with another precision (policy, see weight_reader::weight): f32, bf16 and f16
// dequantize the blocks (w = d·q (+ m), exact in float32, then rounded to bf16/f16 like any float32 file);
// the other quantized format is refused, because quantizing already-quantized weights compounds both errors
// (quantize the source checkpoint to that format instead).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rwkv/core/error.hpp"
#include "rwkv/core/quant.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv::io {

namespace quantized_format {
inline constexpr const char* quantization_key = "rwkvpp.quantization";
inline constexpr const char* version_key = "rwkvpp.quantization_version";
inline constexpr const char* block_size_key = "rwkvpp.block_size";
inline constexpr const char* tensors_key = "rwkvpp.quantized_tensors";
inline constexpr const char* version = "1";
inline constexpr const char* scale_suffix = ".scale";
inline constexpr const char* min_suffix = ".min";
// Bytes that must follow a scale array for the kernels to read it in place (16 float16 at a time).
inline constexpr std::size_t read_slack = 32;
}  // namespace quantized_format

// Calls f(Q{}) with the quantized storage type named `format` ("q8", "q4"); false when there is none.
template <class F>
bool with_quantized_format(std::string_view format, F&& f) {
  if (format == q8::name) return f(q8{}), true;
  if (format == q4::name) return f(q4{}), true;
  return false;
}

// The matrix<Q> of a pre-quantized tensor view (see above): zero-copy where its scales may be used in place.
template <QuantizedStorage Q>
matrix<Q> quantized_matrix(const tensor_view& t, std::shared_ptr<const void> owner) {
  const auto& q = *t.quantized;
  return matrix<Q>::from_blocks(reinterpret_cast<const std::uint8_t*>(t.data), q.scales, q.mins, t.shape[0], t.shape[1],
                                q.padded, std::move(owner));
}

// The weights of a pre-quantized tensor view as float32, rows x cols row-major (exact: w = d·q (+ m)).
inline std::vector<float> dequantize(const tensor_view& t) {
  if (!t.quantized) throw error("not a quantized tensor", {}, t.name);
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  with_quantized_format(t.quantized->format, [&]<class Q>(Q) {
    const auto& q = *t.quantized;
    matrix<Q>::from_blocks(reinterpret_cast<const std::uint8_t*>(t.data), q.scales, q.mins, t.shape[0], t.shape[1],
                           /*padded=*/false, nullptr)
        .decode_rows(0, t.shape[0], out.data());
  });
  return out;
}

namespace detail {

inline std::uint16_t u16_at(const std::byte* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned>(p[0]) | static_cast<unsigned>(p[1]) << 8);
}

}  // namespace detail

// Folds the quantized matrices of a safetensors file written in the layout above into one tensor_view each
// (see above); returns `tensors` unchanged when the metadata has no rwkvpp.quantization. `file_bytes` is the
// whole file (to know what may be read past a scale array).
inline std::vector<tensor_view> assemble_quantized(std::vector<tensor_view> tensors,
                                                   const std::map<std::string, std::string>& metadata,
                                                   const std::string& path, std::span<const std::byte> file_bytes) {
  namespace qf = quantized_format;
  const auto fail = [&](const std::string& problem, const std::string& tensor = {}) -> void {
    throw error(problem, path, tensor);
  };
  const auto format_it = metadata.find(qf::quantization_key);
  if (format_it == metadata.end()) {
    for (const char* key : {qf::version_key, qf::block_size_key, qf::tensors_key})
      if (metadata.count(key))
        fail(std::string("metadata has ") + key + " but no " + qf::quantization_key +
             " (an incomplete rwkvpp quantized file?)");
    return tensors;
  }
  const std::string& format = format_it->second;
  std::int64_t block_bytes = 0;
  bool has_min = false;
  if (!with_quantized_format(format, [&]<class Q>(Q) {
        block_bytes = Q::block_bytes;
        has_min = Q::has_min;
      }))
    fail("unknown " + std::string(qf::quantization_key) + " '" + format + "' (supported: q8, q4)");
  const auto meta = [&](const char* key) -> std::string {
    auto it = metadata.find(key);
    if (it == metadata.end()) fail(std::string("quantized file without the metadata entry ") + key);
    return it->second;
  };
  if (const auto v = meta(qf::version_key); v != qf::version)
    fail("unsupported " + std::string(qf::version_key) + " '" + v + "' (this reader knows version " + qf::version +
         ")");
  if (const auto b = meta(qf::block_size_key); b != "32")
    fail("unsupported " + std::string(qf::block_size_key) + " '" + b + "' (blocks are 32 weights)");
  nlohmann::json list;
  try {
    list = nlohmann::json::parse(meta(qf::tensors_key));
  } catch (const nlohmann::json::exception& e) {
    fail(std::string(qf::tensors_key) + " is not valid JSON: " + e.what());
  }
  if (!list.is_object()) fail(std::string(qf::tensors_key) + " is not a JSON object of name: [rows, cols]");

  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < tensors.size(); ++i) index[tensors[i].name] = i;
  const std::byte* file_end = file_bytes.data() + file_bytes.size();
  std::vector<bool> drop(tensors.size(), false);

  for (const auto& item : list.items()) {
    const std::string name =
        item.key();  // a plain variable: lambdas below capture it (clang 14 cannot capture bindings)
    const auto& shape = item.value();
    if (!shape.is_array() || shape.size() != 2 || !shape[0].is_number_unsigned() || !shape[1].is_number_unsigned() ||
        shape[0].get<std::uint64_t>() == 0 || shape[1].get<std::uint64_t>() == 0 ||
        shape[0].get<std::uint64_t>() > (std::uint64_t{1} << 32) ||
        shape[1].get<std::uint64_t>() > (std::uint64_t{1} << 32))
      fail(std::string(qf::tensors_key) + " gives " + shape.dump() + ", not [rows, cols] of positive integers", name);
    const auto rows = shape[0].get<std::int64_t>(), cols = shape[1].get<std::int64_t>();
    const std::int64_t blocks = (cols + 31) / 32;
    const auto find = [&](const std::string& n, const std::string& what) -> std::size_t {
      auto it = index.find(n);
      if (it == index.end()) fail("missing (the " + what + " of " + format + " matrix '" + name + "')", n);
      return it->second;
    };
    const auto expect = [&](const tensor_view& t, dtype type, std::vector<std::int64_t> want, const std::string& what) {
      if (t.type != type)
        fail(std::string("dtype ") + dtype_name(t.type) + " for the " + what + " of a " + format +
                 " matrix (expected " + dtype_name(type) + ")",
             t.name);
      if (t.shape != want)
        fail("shape " + shape_string(t.shape) + " (" + std::to_string(t.nbytes) + " bytes) does not match the " + what +
                 " of a " + format + " matrix of [" + std::to_string(rows) + ", " + std::to_string(cols) +
                 "]: expected " + shape_string(want),
             t.name);
    };
    const auto check_finite = [&](const tensor_view& t, const std::string& what) {
      for (std::size_t i = 0; i < t.nbytes / 2; ++i)
        if ((detail::u16_at(t.data + 2 * i) & 0x7C00u) == 0x7C00u)
          fail("non-finite " + what + " (NaN or Inf) at row " + std::to_string(static_cast<std::int64_t>(i) / blocks) +
                   ", block " + std::to_string(static_cast<std::int64_t>(i) % blocks),
               t.name);
    };
    const auto padded = [&](const tensor_view& t) {
      return file_end - (t.data + t.nbytes) >= static_cast<std::ptrdiff_t>(qf::read_slack);
    };

    const std::size_t wi = find(name, "codes");
    expect(tensors[wi], dtype::u8, {rows, blocks * block_bytes}, "codes");
    const std::size_t si = find(name + qf::scale_suffix, "scales");
    expect(tensors[si], dtype::f16, {rows, blocks}, "scales");
    check_finite(tensors[si], "scale");
    quantized_blocks q{format, blocks, tensors[si].data, nullptr, padded(tensors[si])};
    drop[si] = true;
    if (has_min) {
      const std::size_t mi = find(name + qf::min_suffix, "minimums");
      expect(tensors[mi], dtype::f16, {rows, blocks}, "minimums");
      check_finite(tensors[mi], "minimum");
      q.mins = tensors[mi].data;
      q.padded = q.padded && padded(tensors[mi]);
      drop[mi] = true;
    } else if (index.count(name + qf::min_suffix)) {
      fail("a q8 matrix has no minimums (only q4 blocks do)", name + qf::min_suffix);
    }
    tensors[wi].shape = {rows, cols};
    tensors[wi].quantized = std::move(q);
  }

  std::vector<tensor_view> out;
  out.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (!drop[i]) {
      if (tensors[i].type == dtype::u8 && !tensors[i].quantized)
        fail("U8 tensor not listed in " + std::string(qf::tensors_key) + " (a quantized matrix needs its shape there)",
             tensors[i].name);
      out.push_back(std::move(tensors[i]));
    }
  return out;
}

// The tensors that store matrix m in the layout above under `name`: codes, scales and (q4) minimums.
template <QuantizedStorage Q>
std::vector<tensor_to_write> quantized_tensors_to_write(const std::string& name, const matrix<Q>& m) {
  const auto rows = m.rows(), blocks = m.blocks_per_row();
  const auto n = static_cast<std::size_t>(rows * blocks);
  std::vector<tensor_to_write> out;
  tensor_to_write codes{name, dtype::u8, {rows, blocks * Q::block_bytes}, {}};
  const auto* c = reinterpret_cast<const std::byte*>(m.codes(0));
  codes.bytes.assign(c, c + n * Q::block_bytes);
  out.push_back(std::move(codes));
  out.push_back(tensor_to_write::from<f16>(name + quantized_format::scale_suffix, {rows, blocks}, {m.scales(0), n}));
  if constexpr (Q::has_min)
    out.push_back(tensor_to_write::from<f16>(name + quantized_format::min_suffix, {rows, blocks}, {m.mins(0), n}));
  return out;
}

// The name and logical [rows, cols] of a quantized matrix.
struct quantized_entry {
  std::string name;
  std::int64_t rows = 0, cols = 0;
};

// The rwkvpp.* metadata of a file of Q matrices (in file order).
template <QuantizedStorage Q>
std::map<std::string, std::string> quantized_metadata(const std::vector<quantized_entry>& matrices) {
  nlohmann::ordered_json list = nlohmann::ordered_json::object();
  for (const auto& m : matrices) list[m.name] = {m.rows, m.cols};
  namespace qf = quantized_format;
  return {{qf::quantization_key, Q::name},
          {qf::version_key, qf::version},
          {qf::block_size_key, std::to_string(Q::block_size)},
          {qf::tensors_key, list.dump()}};
}

}  // namespace rwkv::io

#pragma once
// Views over tensor bytes as they lie in a file (dtype + shape + pointer), and the row-major weight matrix
// the models hold. Matrices either view the mapped file (zero-copy, the file kept alive by `owner`) or own a
// converted copy. Eigen::Map appears only at the edges (kernels), never as a stored member.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/core/half.hpp"

namespace rwkv {

// Activations of T tokens: T rows of C floats, row-major so a token is contiguous.
using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class dtype { f32, f16, bf16, f64, i8, u8, i16, u16, i32, u32, i64, u64, boolean };

inline std::size_t dtype_size(dtype d) {
  switch (d) {
    case dtype::f64:
    case dtype::i64:
    case dtype::u64:
      return 8;
    case dtype::f32:
    case dtype::i32:
    case dtype::u32:
      return 4;
    case dtype::f16:
    case dtype::bf16:
    case dtype::i16:
    case dtype::u16:
      return 2;
    case dtype::i8:
    case dtype::u8:
    case dtype::boolean:
      return 1;
  }
  return 0;
}

inline const char* dtype_name(dtype d) {
  switch (d) {
    case dtype::f32:
      return "F32";
    case dtype::f16:
      return "F16";
    case dtype::bf16:
      return "BF16";
    case dtype::f64:
      return "F64";
    case dtype::i8:
      return "I8";
    case dtype::u8:
      return "U8";
    case dtype::i16:
      return "I16";
    case dtype::u16:
      return "U16";
    case dtype::i32:
      return "I32";
    case dtype::u32:
      return "U32";
    case dtype::i64:
      return "I64";
    case dtype::u64:
      return "U64";
    case dtype::boolean:
      return "BOOL";
  }
  return "?";
}

template <class T>
constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return dtype::f32;
  if constexpr (std::is_same_v<T, bf16>) return dtype::bf16;
  if constexpr (std::is_same_v<T, f16>) return dtype::f16;
  if constexpr (std::is_same_v<T, std::int32_t>) return dtype::i32;
}

inline std::string shape_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The blocks of a matrix stored pre-quantized (rwkvpp's quantized safetensors layout, io/quantized.hpp). The
// tensor_view then has dtype U8, `data`/`nbytes` are the codes (rows × blocks_per_row blocks, row-major, in the
// layout of core/quant.hpp) and `shape` is the logical [rows, cols] of the matrix.
struct quantized_blocks {
  std::string format;                 // "q8" or "q4" (rwkv::q8::name, rwkv::q4::name)
  std::int64_t blocks_per_row = 0;    // ceil(cols / 32)
  const std::byte* scales = nullptr;  // rows × blocks_per_row float16, little-endian, possibly unaligned
  const std::byte* mins = nullptr;    // the same for q4's minimums; null for q8
  // At least 32 readable bytes follow the scales and the minimums in memory (the kernels convert 16 float16
  // at a time and may read up to 15 past a row's last block), so they can be used in place.
  bool padded = false;
};

// A tensor as stored in a file: bytes are little-endian, row-major, possibly unaligned.
struct tensor_view {
  std::string name;
  rwkv::dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  std::optional<quantized_blocks> quantized;  // set for a pre-quantized matrix (see above)

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

// Reads element i of a floating-point tensor view as float (handles any alignment).
inline float load_as_float(const tensor_view& t, std::size_t i) {
  switch (t.type) {
    case dtype::f32: {
      float v;
      std::memcpy(&v, t.data + 4 * i, 4);
      return v;
    }
    case dtype::bf16: {
      bf16 v;
      std::memcpy(&v.bits, t.data + 2 * i, 2);
      return to_float(v);
    }
    case dtype::f16: {
      f16 v;
      std::memcpy(&v.bits, t.data + 2 * i, 2);
      return to_float(v);
    }
    case dtype::f64: {
      double v;
      std::memcpy(&v, t.data + 8 * i, 8);
      return static_cast<float>(v);
    }
    default:
      if (t.quantized)
        throw error("stored as " + t.quantized->format + " blocks, not floating-point values (io::dequantize)", {},
                    t.name);
      throw error(std::string("dtype ") + dtype_name(t.type) + " is not a floating-point type", {}, t.name);
  }
}

// Row-major matrix of weights in storage type T.
template <class T>
class matrix {
 public:
  matrix() = default;

  static matrix view(const T* data, std::int64_t rows, std::int64_t cols, std::shared_ptr<const void> owner) {
    matrix m;
    m.data_ = data;
    m.rows_ = rows;
    m.cols_ = cols;
    m.owner_ = std::move(owner);
    return m;
  }

  static matrix owned(std::vector<T> values, std::int64_t rows, std::int64_t cols) {
    auto store = std::make_shared<std::vector<T>>(std::move(values));
    const T* data = store->data();  // taken before the move below (argument order is unspecified)
    return view(data, rows, cols, std::move(store));
  }

  const T* data() const noexcept { return data_; }
  const T* row(std::int64_t r) const noexcept { return data_ + r * cols_; }
  std::int64_t rows() const noexcept { return rows_; }
  std::int64_t cols() const noexcept { return cols_; }
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(rows_ * cols_) * sizeof(T); }

 private:
  const T* data_ = nullptr;
  std::int64_t rows_ = 0, cols_ = 0;
  std::shared_ptr<const void> owner_;
};

}  // namespace rwkv

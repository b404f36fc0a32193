#pragma once
// Opens a model file of any supported format, recognised by its content (not its extension), as a list of
// named tensor views with official names and semantics. A safetensors file written by `rwkv-cli quantize`
// (io/quantized.hpp) gives its quantized matrices as views of their blocks, with their logical shapes.

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/mapped_file.hpp"
#include "rwkv/io/pth.hpp"
#include "rwkv/io/quantized.hpp"
#include "rwkv/io/rwkvcpp.hpp"
#include "rwkv/io/safetensors.hpp"

namespace rwkv::io {

enum class file_format { safetensors, pth, rwkvcpp };

inline const char* format_name(file_format f) {
  switch (f) {
    case file_format::safetensors:
      return "safetensors";
    case file_format::pth:
      return "pth";
    case file_format::rwkvcpp:
      return "rwkv.cpp";
  }
  return "?";
}

// A tensor name as official checkpoints spell it: training wrappers prefix names (torch.compile `_orig_mod.`,
// DistributedDataParallel `module.`, Lightning `model.`).
inline std::string_view without_wrapper_prefixes(std::string_view name) {
  for (std::string_view p : {"_orig_mod.", "module.", "model."})
    if (name.starts_with(p)) name.remove_prefix(p.size());
  return name;
}

// "a, b, c" for an error message: at most 8 names, then how many there are in all.
inline std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 8) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

struct checkpoint {
  std::string path;
  file_format format = file_format::safetensors;
  std::vector<tensor_view> tensors;   // official names, row-major, little-endian
  std::shared_ptr<const void> owner;  // keeps the views' memory alive
  std::map<std::string, std::string> metadata;
};

// Recognises the format from the first bytes of the file.
inline file_format detect_format(std::span<const std::byte> bytes, const std::string& path) {
  auto starts = [&](const char* m, std::size_t n) { return bytes.size() >= n && std::memcmp(bytes.data(), m, n) == 0; };
  if (bytes.empty()) throw error("the file is empty (0 bytes), not a model checkpoint", path);
  if (starts("PK\x03\x04", 4)) return file_format::pth;
  if (starts("fmgg", 4)) return file_format::rwkvcpp;  // little-endian 0x67676d66
  if (bytes.size() >= 9 && static_cast<char>(bytes[8]) == '{') return file_format::safetensors;
  throw error("unrecognised model file format (not safetensors, PyTorch .pth or rwkv.cpp)", path);
}

inline checkpoint open_checkpoint(const std::filesystem::path& path) {
  auto file = mapped_file::open(path);
  const auto format = detect_format(file->bytes(), file->name());
  switch (format) {
    case file_format::safetensors: {
      safetensors_file st(file);
      // A file written by rwkv-cli quantize: its q8/q4 matrices become one view each (io/quantized.hpp).
      return {st.path(), format, assemble_quantized(st.tensors(), st.metadata(), st.path(), file->bytes()), st.owner(),
              st.metadata()};
    }
    case file_format::pth: {
      pth_file pth(file);
      return {pth.path(), format, pth.tensors(), pth.owner(), {}};
    }
    case file_format::rwkvcpp: {
      rwkvcpp_file bin(file);  // official names, shapes and semantics (the converter's transforms undone)
      const auto& h = bin.header();
      return {bin.path(),
              format,
              bin.tensors(),
              bin.owner(),
              {{"rwkvcpp_file_version", std::to_string(h.version)},
               {"rwkvcpp_data_type", rwkvcpp_detail::type_name(h.data_type)},
               {"rwkvcpp_arch_version", bin.rwkvcpp_arch_name()},
               {"rwkv_version", version_name(bin.version())}}};
    }
    default:
      throw error(std::string(format_name(format)) + " files are not supported by this build yet", file->name());
  }
}

}  // namespace rwkv::io

#pragma once
// Recurrent states on disk, as safetensors: one F32 tensor per state tensor, named
// `blocks.<layer>.<att|ffn>.<name>` (e.g. blocks.3.att.wkv), with metadata naming the RWKV version, the
// layer count and the format. A state file written for one model and read into another is refused with a
// message naming both shapes.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/io/safetensors.hpp"
#include "rwkv/model/state.hpp"

namespace rwkv {

inline constexpr const char* state_file_format = "rwkvpp-state-1";

template <class L>
std::vector<io::tensor_to_write> state_tensors(const State<L>& s) {
  std::vector<io::tensor_to_write> out;
  for (std::size_t i = 0; i < s.layers.size(); ++i)
    s.layers[i].visit([&](const std::string& name, const std::vector<float>& v) {
      out.push_back(io::tensor_to_write::from<float>("blocks." + std::to_string(i) + "." + name,
                                                     {static_cast<std::int64_t>(v.size())}, v));
    });
  return out;
}

template <class L>
void save_state(const std::filesystem::path& path, const State<L>& s,
                std::map<std::string, std::string> metadata = {}) {
  metadata["format"] = state_file_format;
  metadata["rwkv_version"] = s.version();
  metadata["n_layer"] = std::to_string(s.layers.size());
  io::save_safetensors(path, state_tensors(s), metadata);
}

// Reads a state file into a state shaped like `like` (normally model.make_state()).
template <class L>
State<L> load_state(const std::filesystem::path& path, State<L> like) {
  return load_state(io::safetensors_file::open(path), std::move(like));
}

// The same from an already opened (or in-memory) safetensors file.
template <class L>
State<L> load_state(const io::safetensors_file& file, State<L> like) {
  const auto& md = file.metadata();
  const std::string p = file.path();
  auto meta = [&](const std::string& k) {
    auto it = md.find(k);
    if (it == md.end()) throw error("not an rwkvpp state file (metadata '" + k + "' missing)", p);
    return it->second;
  };
  if (meta("format") != state_file_format) throw error("unsupported state file format '" + meta("format") + "'", p);
  if (meta("rwkv_version") != like.version() || meta("n_layer") != std::to_string(like.layers.size()))
    throw error("state file is for RWKV-" + meta("rwkv_version") + " with " + meta("n_layer") +
                    " layers; the model is RWKV-" + like.version() + " with " + std::to_string(like.layers.size()) +
                    " layers",
                p);
  std::size_t expected = 0;
  for (std::size_t i = 0; i < like.layers.size(); ++i)
    like.layers[i].visit([&](const std::string& name, std::vector<float>& v) {
      const std::string tensor = "blocks." + std::to_string(i) + "." + name;
      const auto* t = file.find(tensor);
      if (!t) throw error("missing tensor in state file", p, tensor);
      if (t->type != dtype::f32) throw error(std::string("dtype ") + dtype_name(t->type) + ", expected F32", p, tensor);
      if (t->numel() != static_cast<std::int64_t>(v.size()))
        throw error("has " + std::to_string(t->numel()) + " values, the model's state needs " +
                        std::to_string(v.size()) + " (state of a different model shape)",
                    p, tensor);
      std::memcpy(v.data(), t->data, v.size() * sizeof(float));
      ++expected;
    });
  if (file.tensors().size() != expected)
    throw error("state file has " + std::to_string(file.tensors().size()) + " tensors, the model's state has " +
                    std::to_string(expected),
                p);
  return like;
}

}  // namespace rwkv

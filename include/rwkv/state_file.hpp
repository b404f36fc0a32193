#pragma once
// Recurrent states on disk, as safetensors: one F32 tensor per state tensor, named
// `blocks.<layer>.<att|ffn>.<name>` (e.g. blocks.3.att.wkv), with metadata naming the RWKV version, the
// layer count and the format. A state file written for one model and read into another is refused with a
// message naming both shapes.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/io/checkpoint.hpp"
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
  if (file.find("emb.weight") || file.find("head.weight"))
    throw error(
        "this is a model checkpoint, not a state file (state files are written by save_state, "
        "rwkv-cli --state-out or rwkv-cli train --tune state)",
        p);
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
    like.layers[i].visit([&](const std::string& name, auto& v) {
      const std::string tensor = "blocks." + std::to_string(i) + "." + name;
      const auto* t = file.find(tensor);
      if (!t) throw error("missing tensor in state file", p, tensor);
      if (t->type != dtype::f32) throw error(std::string("dtype ") + dtype_name(t->type) + ", expected F32", p, tensor);
      if constexpr (is_growing_tensor<decltype(v)>) v.resize(static_cast<std::size_t>(t->numel()));
      if (t->numel() != static_cast<std::int64_t>(v.size()))
        throw error("has " + std::to_string(t->numel()) + " values, the model's state needs " +
                        std::to_string(v.size()) + " (state of a different model shape)",
                    p, tensor);
      if (!v.empty()) std::memcpy(v.data(), t->data, v.size() * sizeof(float));  // an empty cache: data() is null
      ++expected;
    });
  if (file.tensors().size() != expected)
    throw error("state file has " + std::to_string(file.tensors().size()) + " tensors, the model's state has " +
                    std::to_string(expected),
                p);
  return like;
}

// A state to start from, read from either kind of file that state tuning produces (docs/adapters.md):
// * an rwkvpp state file (save_state, rwkv-cli --state-out, rwkv-cli train --tune state): as load_state;
// * a checkpoint holding only `blocks.<l>.att.time_state` tensors (H, N, N) for every layer, any float dtype, in any
//   format rwkvpp reads (RWKV-PEFT's state tuning writes a .pth of them), stored [h][value][key] as the official
//   trainers keep it, for RWKV-5, 6 and 7. The WKV state of each layer starts from it; token shifts from zeros.
// `like` is a fresh state of the model (model.make_state()). Other tensors, missing layers, other shapes, or a
// model without a WKV state (RWKV-4) are refused naming the file and the tensor.
template <class L>
State<L> load_initial_state(const std::filesystem::path& path, State<L> like) {
  {
    const auto file = io::mapped_file::open(path);
    if (io::detect_format(file->bytes(), file->name()) == io::file_format::safetensors) {
      const io::safetensors_file st(file);
      if (const auto it = st.metadata().find("format"); it != st.metadata().end() && it->second == state_file_format)
        return load_state(st, std::move(like));
    }
  }
  const auto ck = io::open_checkpoint(path);
  for (const auto& t : ck.tensors)
    if (t.name == "emb.weight" || t.name == "head.weight")
      throw error("this is a model checkpoint, not a state file or a state-tuning file (att.time_state tensors)",
                  ck.path);
  const std::string version = like.version();
  const bool v7 = version == "7" || version == "7a" || version == "7b",
             v5_or_6 = version.starts_with("5") || version == "6";
  if (!v7 && !v5_or_6)
    throw error(
        "a state-tuning file (att.time_state tensors) gives the WKV state of RWKV-5, 6 or 7 (7a, 7b); this model is "
        "RWKV-" +
            version,
        ck.path);
  std::map<std::string, const tensor_view*> by_name;
  for (const auto& t : ck.tensors) {
    by_name[std::string(io::without_wrapper_prefixes(t.name))] = &t;
  }
  std::size_t used = 0;
  for (std::size_t i = 0; i < like.layers.size(); ++i) {
    const std::string name = "blocks." + std::to_string(i) + ".att.time_state";
    const auto it = by_name.find(name);
    if (it == by_name.end())
      throw error("missing tensor (the model has " + std::to_string(like.layers.size()) +
                      " layers; a state-tuning file holds blocks.<l>.att.time_state for each)",
                  ck.path, name);
    const tensor_view& t = *it->second;
    ++used;
    bool found = false;
    like.layers[i].visit([&](const std::string& part, std::vector<float>& v) {
      if (part != "att.wkv") return;
      found = true;
      std::vector<std::int64_t> shape(t.shape.begin(), t.shape.end());
      while (shape.size() > 3 && shape.front() == 1) shape.erase(shape.begin());
      if (t.quantized || (t.type != dtype::f32 && t.type != dtype::f16 && t.type != dtype::bf16))
        throw error(std::string("dtype ") + dtype_name(t.type) + ", expected F32, F16 or BF16", ck.path, name);
      if (shape.size() != 3 || shape[1] != shape[2] ||
          shape[0] * shape[1] * shape[2] != static_cast<std::int64_t>(v.size()))
        throw error("shape " + shape_string(t.shape) + " does not match the model's WKV state (" +
                        std::to_string(v.size()) + " values as (H, N, N))",
                    ck.path, name);
      const auto H = shape[0], N = shape[1];
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t a = 0; a < N; ++a)      // value
          for (std::int64_t b = 0; b < N; ++b) {  // key
            const float x = load_as_float(t, static_cast<std::size_t>((h * N + a) * N + b));
            if (!std::isfinite(x)) throw error("non-finite value (NaN or Inf)", ck.path, name);
            // RWKV-7 keeps [h][value][key] as the file does; RWKV-5/6 keep [h][key][value].
            v[static_cast<std::size_t>(v7 ? (h * N + a) * N + b : (h * N + b) * N + a)] = x;
          }
    });
    if (!found) throw error("this model's layer " + std::to_string(i) + " has no WKV state", ck.path, name);
  }
  if (used != ck.tensors.size()) {
    std::string extra;
    for (const auto& t : ck.tensors)
      if (t.name.find(".att.time_state") == std::string::npos) extra += (extra.empty() ? "" : ", ") + t.name;
    throw error(
        "unexpected tensors for a state-tuning file (it holds only blocks.<l>.att.time_state): " +
            (extra.empty() ? std::string("time_state of layers the model does not have") : extra.substr(0, 400)),
        ck.path);
  }
  return like;
}

}  // namespace rwkv

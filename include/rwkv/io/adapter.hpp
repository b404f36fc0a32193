#pragma once
// LoRA adapters merged into a checkpoint at load (docs/adapters.md), in the format RWKV-PEFT writes: a checkpoint
// (usually a torch.save .pth) holding, for each adapted matrix `X.weight` (out x in), `X.lora_A` (r x in) and
// `X.lora_B` (out x r), plus the other tensors that training changed ("train parts": LayerNorms, RWKV-6's time_*)
// in full. The merge is RWKV-PEFT's: W' = W + scale·(alpha / r)·B·A, computed in float32; full tensors replace the
// model's. alpha (lora_alpha of the training run) is not stored in the file, so it is given with the adapter.
//
// Every tensor of an adapter must find its counterpart in the model: a LoRA pair without its matrix, a lone
// lora_A or lora_B, a full tensor the model does not have, or a shape that does not fit is an rwkv::error naming
// the adapter file and listing the tensors, never a silent skip. Several adapters apply in order.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/checkpoint.hpp"
#include "rwkv/io/quantized.hpp"

namespace rwkv::io {

struct adapter {
  std::filesystem::path path;
  float alpha = 0;  // lora_alpha of the training run; the LoRA delta is (alpha / r)·B·A
  float scale = 1;  // an extra factor on the delta (0.5: half strength); full tensors are replaced regardless
};

namespace adapter_detail {

// "X.lora_A" or "X.lora_A.weight" -> X (and which factor), else nothing.
inline bool lora_factor(std::string_view n, std::string& base, char& which) {
  for (std::string_view suffix : {".lora_A", ".lora_B", ".lora_A.weight", ".lora_B.weight"})
    if (n.ends_with(suffix)) {
      base = std::string(n.substr(0, n.size() - suffix.size()));
      which = suffix[6];
      return true;
    }
  return false;
}

inline std::vector<float> floats_of(const tensor_view& t) {
  if (t.quantized) return dequantize(t);
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_as_float(t, i);
  return out;
}

inline bool is_float(const tensor_view& t) {
  return t.quantized || t.type == dtype::f32 || t.type == dtype::f16 || t.type == dtype::bf16;
}

// Dimensions without leading 1s ((1, 1, C) -> (C)).
inline std::vector<std::int64_t> squeezed(const std::vector<std::int64_t>& s) {
  std::vector<std::int64_t> out(s.begin(), s.end());
  while (out.size() > 1 && out.front() == 1) out.erase(out.begin());
  return out;
}

// Keeps the base checkpoint, the adapters' files and the merged matrices alive for as long as any view does.
struct merged_storage {
  std::shared_ptr<const void> base;
  std::vector<std::shared_ptr<const void>> adapters;
  std::vector<std::vector<float>> matrices;
};

}  // namespace adapter_detail

// Merges `adapters`, in order, into `tensors` (the views of the checkpoint at `model_path`, kept alive by
// `owner`); afterwards the views of merged or replaced tensors point into memory that the new `owner` keeps.
inline void apply_adapters(std::vector<tensor_view>& tensors, std::shared_ptr<const void>& owner,
                           const std::vector<adapter>& adapters, const std::string& model_path) {
  using namespace adapter_detail;
  if (adapters.empty()) return;
  auto storage = std::make_shared<merged_storage>();
  storage->base = owner;
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < tensors.size(); ++i) index[tensors[i].name] = i;

  for (const auto& a : adapters) {
    const auto file = open_checkpoint(a.path);
    const std::string where = file.path;
    storage->adapters.push_back(file.owner);
    struct pair_t {
      const tensor_view *A = nullptr, *B = nullptr;
    };
    std::map<std::string, pair_t> pairs;
    std::vector<const tensor_view*> full;
    std::vector<std::string> unmatched, lone;
    for (const auto& t : file.tensors) {
      const auto name = without_wrapper_prefixes(t.name);
      std::string base;
      char which = 0;
      if (lora_factor(name, base, which))
        (which == 'A' ? pairs[base].A : pairs[base].B) = &t;
      else if (index.count(std::string(name)))
        full.push_back(&t);
      else
        unmatched.push_back(t.name);
    }
    for (const auto& [base, p] : pairs) {
      if (!p.A || !p.B) lone.push_back(base + (p.A ? ".lora_A without .lora_B" : ".lora_B without .lora_A"));
      if (!index.count(base + ".weight")) unmatched.push_back(base + ".lora_A/.lora_B (no " + base + ".weight)");
    }
    if (!lone.empty()) throw error("incomplete LoRA pairs: " + name_list(lone), where);
    if (!unmatched.empty())
      throw error("adapter tensors with no counterpart in the model " + model_path + ": " + name_list(unmatched),
                  where);
    if (!pairs.empty() && !(a.alpha > 0))
      throw error(
          "a LoRA adapter needs its lora_alpha (not stored in the file; RWKV-PEFT writes it to the run's "
          "train_log.txt as lora_config): pass it with the adapter (rwkv-cli --lora-alpha)",
          where);

    for (const auto* t : full) {
      auto& target = tensors[index.at(std::string(without_wrapper_prefixes(t->name)))];
      if (!is_float(*t) || t->numel() != target.numel())
        throw error("cannot replace the model's tensor (shape " + shape_string(target.shape) + ") with shape " +
                        shape_string(t->shape) + ", dtype " + dtype_name(t->type),
                    where, t->name);
      const std::string name = target.name;
      const auto shape = target.shape;  // the model's view of it ((1, 1, C) and (C) hold the same values)
      target = *t;
      target.name = name;
      target.shape = shape;
    }
    for (const auto& [base, p] : pairs) {
      auto& w = tensors[index.at(base + ".weight")];
      const auto ws = squeezed(w.shape), as = squeezed(p.A->shape), bs = squeezed(p.B->shape);
      if (ws.size() != 2 || as.size() != 2 || bs.size() != 2 || as[1] != ws[1] || bs[0] != ws[0] || as[0] != bs[1] ||
          !is_float(*p.A) || !is_float(*p.B))
        throw error("lora_A " + shape_string(p.A->shape) + " and lora_B " + shape_string(p.B->shape) +
                        " do not fit the model's matrix " + shape_string(w.shape) +
                        " (lora_A is r x in, lora_B out x r)",
                    where, base);
      const auto out = ws[0], in = ws[1], r = as[0];
      using rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      const auto A = floats_of(*p.A), B = floats_of(*p.B);
      auto merged = floats_of(w);
      Eigen::Map<rows> W(merged.data(), out, in);
      const rows delta = Eigen::Map<const rows>(B.data(), out, r) * Eigen::Map<const rows>(A.data(), r, in);
      W += (a.scale * a.alpha / static_cast<float>(r)) * delta;  // one rounding per weight
      storage->matrices.push_back(std::move(merged));
      const auto& m = storage->matrices.back();
      tensor_view v;
      v.name = w.name;
      v.type = dtype::f32;
      v.shape = w.shape;
      v.data = reinterpret_cast<const std::byte*>(m.data());
      v.nbytes = m.size() * sizeof(float);
      w = std::move(v);
    }
  }
  owner = storage;
}

}  // namespace rwkv::io

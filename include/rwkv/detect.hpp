#pragma once
// Which RWKV generation a checkpoint holds, decided from tensor names and shapes after scanning every key
// (spec/README.md §4): r_k/k_k/x_r/w0 → 7; time_maa → 6; ln_x → 5.x (no gate → 5.0; gate with per-head
// decay → 5.1; decay (H, N) with N > 1 → 5.2); otherwise 4. Among RWKV-7 checkpoints (spec/v7-variants.md,
// "Detection"): any blocks.<i>.qkv.* tensor → 7b (DeepEmbedAttention); else any DeepEmbed tensor
// (ffn.s_emb, ffn.s_emb_x, ffn.s0/s1/s2) → 7a; else plain 7. Never from the file name. Whether the variant's
// tensor set is complete is checked by its loader, which names what is missing.

#include <string>
#include <string_view>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"

namespace rwkv {

enum class arch_version { v4, v5_0, v5_1, v5_2, v6, v7, v7a, v7b };

inline const char* version_name(arch_version v) {
  switch (v) {
    case arch_version::v4:
      return "4";
    case arch_version::v5_0:
      return "5.0";
    case arch_version::v5_1:
      return "5.1";
    case arch_version::v5_2:
      return "5.2";
    case arch_version::v6:
      return "6";
    case arch_version::v7:
      return "7";
    case arch_version::v7a:
      return "7a";
    case arch_version::v7b:
      return "7b";
  }
  return "?";
}

inline arch_version detect_version(const std::vector<tensor_view>& tensors, const std::string& path = {}) {
  auto contains = [](std::string_view name, std::string_view part) {
    return name.find(part) != std::string_view::npos;
  };
  bool v7 = false, v6 = false, ln_x = false, gate = false, emb = false, decay_2d = false, dea = false, de = false;
  for (const auto& t : tensors) {
    const std::string_view n = t.name;
    emb |= n == "emb.weight";
    v7 |= contains(n, "att.r_k") || contains(n, "att.k_k") || contains(n, "att.x_r") || contains(n, "att.w0");
    v6 |= contains(n, "time_maa");
    ln_x |= contains(n, "ln_x");
    gate |= contains(n, "gate.weight");
    if (contains(n, "att.time_decay") && t.shape.size() >= 2 && t.shape[1] > 1) decay_2d = true;
    if (n.starts_with("blocks.")) {
      dea |= contains(n, ".qkv.");
      for (const char* part : {".ffn.s_emb.weight", ".ffn.s_emb_x.weight", ".ffn.s0", ".ffn.s1", ".ffn.s2"})
        de |= n.ends_with(part);
    }
  }
  if (!emb) throw error("not an RWKV checkpoint: no 'emb.weight' tensor", path);
  if (v7) return dea ? arch_version::v7b : de ? arch_version::v7a : arch_version::v7;
  if (v6) return arch_version::v6;
  if (ln_x) {
    if (!gate) return arch_version::v5_0;
    return decay_2d ? arch_version::v5_2 : arch_version::v5_1;
  }
  return arch_version::v4;
}

}  // namespace rwkv

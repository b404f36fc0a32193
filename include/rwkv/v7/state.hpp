#pragma once
// The recurrent state of a whole RWKV-7 model: a plain value (copy it to fork a conversation, compare it,
// serialise it). Per layer: att shift (C), WKV matrices (H x N x N, [h][value][key]), ffn shift (C).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/v7/block.hpp"
#include "rwkv/v7/channel_mix.hpp"
#include "rwkv/v7/config.hpp"
#include "rwkv/v7/time_mix.hpp"

namespace rwkv::v7 {

using LayerState = BlockState<TimeMixState, ChannelMixState>;

class State {
 public:
  static constexpr char magic[8] = {'R', 'W', 'K', 'V', 'S', 'T', '0', '1'};

  State() = default;
  explicit State(const Config& c) : cfg_(c) {
    const auto C = static_cast<std::size_t>(c.n_embd);
    const auto S = static_cast<std::size_t>(c.n_head * c.head_size * c.head_size);
    layers.assign(static_cast<std::size_t>(c.n_layer),
                  LayerState{{std::vector<float>(C, 0.f), std::vector<float>(S, 0.f)}, {std::vector<float>(C, 0.f)}});
  }

  std::vector<LayerState> layers;

  const Config& cfg() const noexcept { return cfg_; }
  void reset() { *this = State(cfg_); }

  friend bool operator==(const State& a, const State& b) { return a.cfg_ == b.cfg_ && a.layers == b.layers; }

  // Layout: magic, u32 version (7), u32 n_layer, n_embd, n_head, head_size, then per layer the att shift,
  // the WKV matrices and the ffn shift as little-endian float32.
  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out(sizeof magic + 5 * 4);
    std::memcpy(out.data(), magic, sizeof magic);
    const std::uint32_t h[5] = {7, u32(cfg_.n_layer), u32(cfg_.n_embd), u32(cfg_.n_head), u32(cfg_.head_size)};
    std::memcpy(out.data() + sizeof magic, h, sizeof h);
    for (const auto& l : layers)
      for (const auto* v : {&l.att.shift, &l.att.wkv, &l.ffn.shift}) {
        const auto at = out.size();
        out.resize(at + v->size() * sizeof(float));
        std::memcpy(out.data() + at, v->data(), v->size() * sizeof(float));
      }
    return out;
  }

  // Reads bytes written by to_bytes; they must describe a state of the model with Config `c`.
  static State from_bytes(std::span<const std::byte> bytes, const Config& c, const std::string& source = "<bytes>") {
    if (bytes.size() < sizeof magic + 20 || std::memcmp(bytes.data(), magic, sizeof magic) != 0)
      throw error("not an RWKV state (bad magic or truncated header)", source);
    std::uint32_t h[5];
    std::memcpy(h, bytes.data() + sizeof magic, sizeof h);
    if (h[0] != 7) throw error("state is for RWKV version " + std::to_string(h[0]) + ", the model is RWKV-7", source);
    if (h[1] != u32(c.n_layer) || h[2] != u32(c.n_embd) || h[3] != u32(c.n_head) || h[4] != u32(c.head_size))
      throw error("state shape (layers " + std::to_string(h[1]) + ", n_embd " + std::to_string(h[2]) + ", heads " +
                      std::to_string(h[3]) + "x" + std::to_string(h[4]) + ") does not match the model (layers " +
                      std::to_string(c.n_layer) + ", n_embd " + std::to_string(c.n_embd) + ", heads " +
                      std::to_string(c.n_head) + "x" + std::to_string(c.head_size) + ")",
                  source);
    State s(c);
    std::size_t pos = sizeof magic + sizeof h;
    for (auto& l : s.layers)
      for (auto* v : {&l.att.shift, &l.att.wkv, &l.ffn.shift}) {
        const auto n = v->size() * sizeof(float);
        if (bytes.size() - pos < n) throw error("truncated state: " + std::to_string(bytes.size()) + " bytes", source);
        std::memcpy(v->data(), bytes.data() + pos, n);
        pos += n;
      }
    if (pos != bytes.size()) throw error("state has " + std::to_string(bytes.size() - pos) + " trailing bytes", source);
    return s;
  }

 private:
  static std::uint32_t u32(std::int64_t v) { return static_cast<std::uint32_t>(v); }
  Config cfg_;
};

}  // namespace rwkv::v7

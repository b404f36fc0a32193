#pragma once
// The recurrent state of a whole model: one BlockState per layer. A plain value: copy it to fork a
// conversation, compare it, serialise it to bytes and back. Never stored inside a model.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rwkv/core/error.hpp"

namespace rwkv {

// A state tensor whose length grows with the context, such as RWKV-7b's key/value cache (one row per token seen).
// It is a std::vector<float> to everything that visits states; shape checks, state files and bytes accept any
// length for it (the mixer that owns it checks its consistency).
struct growing_tensor : std::vector<float> {
  using std::vector<float>::vector;
};

template <class T>
inline constexpr bool is_growing_tensor = std::is_same_v<std::remove_cvref_t<T>, growing_tensor>;

template <class LayerState>
class State {
 public:
  static constexpr char magic[8] = {'R', 'W', 'K', 'V', 'S', 'T', '0', '2'};

  State() = default;
  State(std::string version, std::vector<LayerState> layers)
      : layers(std::move(layers)), version_(std::move(version)) {}

  std::vector<LayerState> layers;

  // RWKV version the state belongs to ("7", "5.2", ...; "composed:aabb" for a hybrid model whose layers are of
  // block types a, a, b, b).
  const std::string& version() const noexcept { return version_; }

  friend bool operator==(const State&, const State&) = default;

  // True when `other` has the same version, layer count and tensor sizes (it could come from the same model;
  // growing tensors may have any size). Tensor names are fixed by the layer state's type and its version tag.
  // Allocates nothing (checked per call).
  bool same_shape(const State& other) const {
    if (version_ != other.version_ || layers.size() != other.layers.size()) return false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      std::size_t sizes[64], n = 0;
      bool same = true;
      other.layers[i].visit([&](const std::string&, const auto& v) {
        if (n < 64) sizes[n] = v.size();
        ++n;
      });
      std::size_t m = 0;
      layers[i].visit([&](const std::string&, const auto& v) {
        if (m >= n || (m < 64 && !is_growing_tensor<decltype(v)> && sizes[m] != v.size())) same = false;
        ++m;
      });
      if (!same || m != n) return false;
    }
    return true;
  }

  // Layout: magic, u32 length + version string, u32 layer count, then every tensor of every layer as
  // u64 element count + little-endian float32 values.
  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out;
    append(out, magic, sizeof magic);
    put_u32(out, static_cast<std::uint32_t>(version_.size()));
    append(out, version_.data(), version_.size());
    put_u32(out, static_cast<std::uint32_t>(layers.size()));
    for (const auto& l : layers)
      l.visit([&](const std::string&, const std::vector<float>& v) {
        const std::uint64_t n = v.size();
        append(out, &n, sizeof n);
        append(out, v.data(), v.size() * sizeof(float));
      });
    return out;
  }

  // Reads bytes written by to_bytes into a state shaped like `like` (normally model.make_state()); a state
  // of another version or shape is refused with a message naming both.
  static State from_bytes(std::span<const std::byte> bytes, State like, const std::string& source = "<bytes>") {
    std::size_t pos = 0;
    auto need = [&](std::size_t n) {
      if (bytes.size() - pos < n) throw error("truncated state (" + std::to_string(bytes.size()) + " bytes)", source);
    };
    need(sizeof magic + 4);
    if (std::memcmp(bytes.data(), magic, sizeof magic) != 0) throw error("not an RWKV state (bad magic)", source);
    pos = sizeof magic;
    const auto vlen = get_u32(bytes, pos);
    if (vlen > 4096) throw error("corrupt state header (version string of " + std::to_string(vlen) + " bytes)", source);
    need(vlen + 4);
    const std::string version(reinterpret_cast<const char*>(bytes.data() + pos), vlen);
    pos += vlen;
    const auto n_layer = get_u32(bytes, pos);
    if (version != like.version_ || n_layer != like.layers.size())
      throw error("state is for RWKV-" + version + " with " + std::to_string(n_layer) + " layers; the model is RWKV-" +
                      like.version_ + " with " + std::to_string(like.layers.size()) + " layers",
                  source);
    for (auto& l : like.layers)
      l.visit([&](const std::string& name, auto& v) {
        need(8);
        std::uint64_t n;
        std::memcpy(&n, bytes.data() + pos, 8);
        pos += 8;
        if constexpr (is_growing_tensor<decltype(v)>) {
          if (n > (bytes.size() - pos) / sizeof(float))  // before resizing: a corrupt count must not allocate
            throw error("truncated state (tensor '" + name + "' claims " + std::to_string(n) + " values)", source);
          v.resize(n);
        }
        if (n != v.size())
          throw error("state tensor '" + name + "' has " + std::to_string(n) + " values, the model needs " +
                          std::to_string(v.size()) + " (state of a different model shape)",
                      source);
        need(n * sizeof(float));
        if (n) std::memcpy(v.data(), bytes.data() + pos, n * sizeof(float));  // an empty cache: data() is null
        pos += n * sizeof(float);
      });
    if (pos != bytes.size()) throw error("state has " + std::to_string(bytes.size() - pos) + " trailing bytes", source);
    return like;
  }

 private:
  static void append(std::vector<std::byte>& out, const void* p, std::size_t n) {
    const auto at = out.size();
    out.resize(at + n);
    if (n) std::memcpy(out.data() + at, p, n);
  }
  static void put_u32(std::vector<std::byte>& out, std::uint32_t v) { append(out, &v, 4); }
  static std::uint32_t get_u32(std::span<const std::byte> b, std::size_t& pos) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return v;
  }

  std::string version_;
};

}  // namespace rwkv

#pragma once
// Precision bundle: which type the big weight matrices are stored in, and the types of activations, the
// recurrent state and accumulation. State and accumulation are float32: decays reach 0.9999 and a 16-bit
// state destroys them (DESIGN.md), so a narrower state must be an explicit, visible opt-in.

#include <string_view>
#include <type_traits>

#include "rwkv/core/half.hpp"

namespace rwkv {

template <class T>
concept WeightStorage = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

template <WeightStorage Weight, class Activation = float, class State = float, class Accumulator = float>
struct precision {
  static_assert(std::is_same_v<Activation, float>,
                "rwkv::precision: activations are float32 in this version of the library");
  static_assert(std::is_same_v<State, float> && std::is_same_v<Accumulator, float>,
                "rwkv::precision: the recurrent state and accumulation must be float32 (decays near 1 are lost "
                "in 16-bit state)");
  using weight_type = Weight;
  using activation_type = Activation;
  using state_type = State;
  using accumulator_type = Accumulator;
};

template <class P>
concept Precision = requires {
  typename P::weight_type;
  typename P::activation_type;
  typename P::state_type;
  typename P::accumulator_type;
}
&&WeightStorage<typename P::weight_type>;

using f32 = precision<float>;
using bf16_weights = precision<bf16>;
using f16_weights = precision<f16>;

template <class T>
constexpr std::string_view storage_name() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  if constexpr (std::is_same_v<T, bf16>) return "bf16";
  if constexpr (std::is_same_v<T, f16>) return "f16";
}

}  // namespace rwkv

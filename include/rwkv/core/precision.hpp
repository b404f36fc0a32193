#pragma once
// Precision bundle: which type the big weight matrices are stored in, and the types of activations, the
// recurrent state and accumulation. State and accumulation are float32: decays reach 0.9999 and a 16-bit
// state destroys them (DESIGN.md), so a narrower state must be an explicit, visible opt-in.
// Weight storage: float, bf16, f16, or the quantized q8 / q4 (core/quant.hpp: blocks of 32 with float16 scales,
// quantized at load; only the large matrices, embedding and head are stored so).

#include <string_view>
#include <type_traits>

#include "rwkv/core/half.hpp"
#include "rwkv/core/quant.hpp"

namespace rwkv {

template <class T>
concept WeightStorage =
    std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16> || QuantizedStorage<T>;

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

// P when it is a precision bundle; otherwise a static_assert with a sentence, and f32 so that the instantiation
// goes on without a cascade of follow-up errors (the public model aliases take their P through this).
template <class P>
struct checked_precision_of {
  static_assert(Precision<P>,
                "rwkv: the precision must be a precision bundle: rwkv::f32, rwkv::bf16_weights, rwkv::f16_weights, "
                "rwkv::q8_weights or rwkv::q4_weights (or rwkv::precision<WeightStorage>)");
  using type = std::conditional_t<Precision<P>, P, precision<float>>;
};
template <class P>
using checked_precision = typename checked_precision_of<P>::type;

using f32 = precision<float>;
using bf16_weights = precision<bf16>;
using f16_weights = precision<f16>;
using q8_weights = precision<q8>;  // int8 blocks of 32, float16 scale per block
using q4_weights = precision<q4>;  // 4-bit blocks of 32, float16 scale and minimum per block

template <class T>
constexpr std::string_view storage_name() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  if constexpr (std::is_same_v<T, bf16>) return "bf16";
  if constexpr (std::is_same_v<T, f16>) return "f16";
  if constexpr (std::is_same_v<T, q8>) return "q8";
  if constexpr (std::is_same_v<T, q4>) return "q4";
}

}  // namespace rwkv

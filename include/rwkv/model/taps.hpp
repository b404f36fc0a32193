#pragma once
// Taps: read, and if wanted modify, what flows through a model during one forward call — for embeddings,
// probing and ablations. A taps object may define any of these members; the others cost nothing (the calls are
// removed at compile time, and rwkv::no_taps has none):
//
//   void block_input(std::int64_t layer, row_matrix& x)          residual stream entering block `layer` (T x C)
//   void time_mix_output(std::int64_t layer, row_matrix& out)    the time mixer's output, before it is added
//   void channel_mix_output(std::int64_t layer, row_matrix& out) the channel mixer's output, before it is added
//   void block_output(std::int64_t layer, row_matrix& x)         residual stream leaving block `layer`
//   void layer_state(std::int64_t layer, S& state)               block `layer`'s state after the call
//                                                                (S = the block's state_type; a template is fine)
//
// Pass one to LanguageModel::forward_with. Writing to the argument changes the rest of the computation
// (zero a time-mix output to ablate it); the final residual stream is block_output of the last layer.

#include <cstdint>

#include "rwkv/core/tensor.hpp"

namespace rwkv {

struct no_taps {};

namespace taps {

template <class Taps>
void block_input(Taps& t, std::int64_t layer, row_matrix& x) {
  if constexpr (requires { t.block_input(layer, x); }) t.block_input(layer, x);
}
template <class Taps>
void time_mix_output(Taps& t, std::int64_t layer, row_matrix& out) {
  if constexpr (requires { t.time_mix_output(layer, out); }) t.time_mix_output(layer, out);
}
template <class Taps>
void channel_mix_output(Taps& t, std::int64_t layer, row_matrix& out) {
  if constexpr (requires { t.channel_mix_output(layer, out); }) t.channel_mix_output(layer, out);
}
template <class Taps>
void block_output(Taps& t, std::int64_t layer, row_matrix& x) {
  if constexpr (requires { t.block_output(layer, x); }) t.block_output(layer, x);
}
template <class Taps, class S>
void layer_state(Taps& t, std::int64_t layer, S& s) {
  if constexpr (requires { t.layer_state(layer, s); }) t.layer_state(layer, s);
}

}  // namespace taps
}  // namespace rwkv

#pragma once
// The two entry points every built-in mixer has, over one body: forward (T consecutive tokens of one sequence)
// and forward_batch (one token of each of T sequences) both call Derived::run(x, rows, ctx, out) with the matching
// row_states (model/row_states.hpp). Derived befriends row_mixer to keep run private.

#include <span>

#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/model/row_states.hpp"

namespace rwkv {

template <class Derived, class State>
class row_mixer {
 public:
  // x: T x C rows of LayerNorm output (consecutive tokens); out: T x C.
  void forward(const row_matrix& x, State& s, context& ctx, row_matrix& out) const {
    self().run(x, row_states<State>::sequence(s), ctx, out);
  }

  // Batched decoding: row b is one token of sequence b, whose state is *states[b].
  void forward_batch(const row_matrix& x, std::span<State* const> states, context& ctx, row_matrix& out) const {
    self().run(x, row_states<State>::batch(states), ctx, out);
  }

 private:
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

}  // namespace rwkv

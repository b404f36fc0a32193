#pragma once
// What the library asks of the types it composes (docs/extending.md walks through writing one).
//
//   MixerState<S>    a value type (default-constructible, copyable, ==) exposing its tensors by name:
//                    s.visit(f) calls f(name, std::vector<float>&) for each, in a fixed order (const and non-const).
//   TimeMixer<M>     a mixer: `state_type` (a MixerState), `state_type make_state() const` and
//   ChannelMixer<M>  `void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& out) const`
//                    (x: T x C rows of LayerNorm output, consecutive tokens; out: T x C). The two roles ask the
//                    same of a type; the names say where it sits in a block.
//   BlockLike<B>     a residual block: `state_type`, `make_state()`, `forward(row_matrix& x, state_type&, context&)`
//                    updating the residual stream x in place.
//   StateFor<S, M>   S is the state type of model or block M.
//   Backend<B>, Precision<P>   the tag concepts of core/backend.hpp and core/precision.hpp.
//
// rwkv::Block and rwkv::LanguageModel check these with static_asserts that name the missing piece, rather than
// with constraints whose diagnostics list every overload.

#include <concepts>
#include <string>
#include <type_traits>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/core/tensor.hpp"

namespace rwkv {

namespace detail {
// Callables for the visit requirement (named types: nvcc 13 rejects lambdas inside a concept's requires).
struct visit_probe {
  void operator()(const std::string&, std::vector<float>&) const {}
};
struct const_visit_probe {
  void operator()(const std::string&, const std::vector<float>&) const {}
};
}  // namespace detail

template <class S>
concept MixerState = std::regular<S> && requires(S& s, const S& cs) {
  s.visit(detail::visit_probe{});
  cs.visit(detail::const_visit_probe{});
};

namespace detail {
template <class M>
concept has_state_type = requires {
  typename M::state_type;
};

template <class M>
concept makes_state = has_state_type<M> && requires(const M& m) {
  { m.make_state() } -> std::same_as<typename M::state_type>;
};

template <class M>
concept mixer_forward = has_state_type<M> &&
    requires(const M& m, const row_matrix& x, typename M::state_type& s, context& ctx, row_matrix& out) {
  m.forward(x, s, ctx, out);
};

template <class B>
concept block_forward = has_state_type<B> &&
    requires(const B& b, row_matrix& x, typename B::state_type& s, context& ctx) {
  b.forward(x, s, ctx);
};
}  // namespace detail

template <class M>
concept Mixer = detail::has_state_type<M> && MixerState<typename M::state_type> && detail::makes_state<M> &&
    detail::mixer_forward<M>;

template <class M>
concept TimeMixer = Mixer<M>;

template <class M>
concept ChannelMixer = Mixer<M>;

template <class B>
concept BlockLike = detail::has_state_type<B> && MixerState<typename B::state_type> && detail::makes_state<B> &&
    detail::block_forward<B>;

template <class S, class M>
concept StateFor = detail::has_state_type<M> && std::same_as < std::remove_cvref_t<S>,
typename M::state_type > ;

// One static_assert per requirement, so that a type missing one gets one sentence naming it. `Role` is
// "time mixer" or "channel mixer" (for the message only).
template <class M>
constexpr bool check_mixer() {
  static_assert(detail::has_state_type<M>,
                "rwkv: a mixer must declare its recurrent state as `using state_type = ...;` (see docs/extending.md)");
  if constexpr (detail::has_state_type<M>) {
    static_assert(MixerState<typename M::state_type>,
                  "rwkv: a mixer's state_type must be a regular value type (default-constructible, copyable, ==) "
                  "with visit(f) calling f(name, std::vector<float>&) for each tensor");
    static_assert(detail::makes_state<M>, "rwkv: a mixer needs `state_type make_state() const`");
    static_assert(detail::mixer_forward<M>,
                  "rwkv: a mixer needs `void forward(const row_matrix& x, state_type& s, context& ctx, row_matrix& "
                  "out) const` (a missing forward, or one taking another state type)");
  }
  return true;
}

template <class B>
constexpr bool check_block() {
  static_assert(detail::has_state_type<B>, "rwkv: a block must declare `using state_type = ...;`");
  if constexpr (detail::has_state_type<B>) {
    static_assert(MixerState<typename B::state_type>,
                  "rwkv: a block's state_type must be a regular value type with visit(f)");
    static_assert(detail::makes_state<B>, "rwkv: a block needs `state_type make_state() const`");
    static_assert(detail::block_forward<B>,
                  "rwkv: a block needs `void forward(row_matrix& x, state_type& s, context& ctx) const`");
  }
  return true;
}

}  // namespace rwkv

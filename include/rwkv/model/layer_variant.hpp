#pragma once
// A block that is, layer by layer, one of several block types: the layers of a hybrid model (RWKV-6 blocks
// below RWKV-7 blocks, say). At load, each layer takes the first of Blocks... whose static matches(reader, layer)
// accepts that layer's tensors (rwkv::Block asks its mixers; a type without matches accepts any layer). The
// state is a variant of the alternatives' states, so State, serialisation and both forms work unchanged.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "rwkv/core/concepts.hpp"
#include "rwkv/core/context.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/io/weight_reader.hpp"
#include "rwkv/model/block.hpp"
#include "rwkv/model/taps.hpp"

namespace rwkv {

namespace detail {
// Calls f(std::integral_constant<std::size_t, I>{}) for the I == i (i < N).
template <std::size_t N, class F, std::size_t I = 0>
decltype(auto) with_index(std::size_t i, F&& f) {
  if constexpr (I + 1 == N) {
    return f(std::integral_constant<std::size_t, I>{});
  } else {
    if (i == I) return f(std::integral_constant<std::size_t, I>{});
    return with_index<N, F, I + 1>(i, std::forward<F>(f));
  }
}
}  // namespace detail

// The state of one layer of a LayerVariant: the state of whichever block type that layer is.
template <class... States>
struct VariantState {
  std::variant<States...> value;
  friend bool operator==(const VariantState&, const VariantState&) = default;

  template <class F>
  void visit(F&& f) {
    std::visit([&](auto& s) { s.visit(f); }, value);
  }
  template <class F>
  void visit(F&& f) const {
    std::visit([&](const auto& s) { s.visit(f); }, value);
  }
};

template <class... Blocks>
class LayerVariant {
  static_assert(sizeof...(Blocks) >= 1, "rwkv::LayerVariant needs at least one block type");
  static_assert((check_block<Blocks>() && ...));
  using variant_type = std::variant<Blocks...>;
  static constexpr std::size_t count = sizeof...(Blocks);

 public:
  using state_type = VariantState<typename Blocks::state_type...>;

  LayerVariant() = default;

  template <class Config>
  LayerVariant(io::weight_reader& r, const Config& c, std::int64_t layer) : block_(make<0>(r, c, layer)) {}

  // Which of Blocks... this layer is (0-based).
  std::size_t index() const noexcept { return block_.index(); }
  template <std::size_t I>
  const auto& get() const {
    return std::get<I>(block_);
  }

  state_type make_state() const {
    return detail::with_index<count>(block_.index(), [&](auto i) {
      return state_type{
          std::variant<typename Blocks::state_type...>(std::in_place_index<i>, std::get<i>(block_).make_state())};
    });
  }

  void forward(row_matrix& x, state_type& s, context& ctx) const {
    no_taps none;
    forward(x, s, ctx, none);
  }

  template <class Taps>
  void forward(row_matrix& x, state_type& s, context& ctx, Taps& t) const {
    detail::with_index<count>(block_.index(), [&](auto i) {
      const auto& b = std::get<i>(block_);
      auto& bs = std::get<i>(s.value);
      if constexpr (requires { b.forward(x, bs, ctx, t); })
        b.forward(x, bs, ctx, t);
      else
        b.forward(x, bs, ctx);
    });
  }

  // Batched decoding: every state is of this layer's block type.
  void forward_batch(row_matrix& x, std::span<state_type* const> states, context& ctx) const {
    detail::with_index<count>(block_.index(), [&](auto i) {
      const auto& b = std::get<i>(block_);
      using S = std::variant_alternative_t<i, std::variant<typename Blocks::state_type...>>;
      std::vector<S*> alt(states.size());
      for (std::size_t k = 0; k < states.size(); ++k) alt[k] = &std::get<i>(states[k]->value);
      if constexpr (requires { b.forward_batch(x, std::span<S* const>(alt), ctx); }) {
        b.forward_batch(x, std::span<S* const>(alt), ctx);
      } else {
        // Row by row, each with a one-row context of its own.
        row_matrix one(1, x.cols());
        for (Eigen::Index k = 0; k < x.rows(); ++k) {
          one = x.row(k);
          detail::with_row_context(
              ctx, k, x.rows(), [&](context& row_ctx) { b.forward(one, *alt[static_cast<std::size_t>(k)], row_ctx); });
          x.row(k) = one.row(0);
        }
      }
    });
  }

 private:
  template <std::size_t I, class Config>
  static variant_type make(io::weight_reader& r, const Config& c, std::int64_t layer) {
    using B = std::variant_alternative_t<I, variant_type>;
    if (detail::layer_matches<B>(r, layer)) return variant_type(std::in_place_index<I>, r, c, layer);
    if constexpr (I + 1 < count)
      return make<I + 1>(r, c, layer);
    else
      r.fail("none of the model's block types matches the tensors of this layer", block_prefix(layer));
  }

  variant_type block_;
};

}  // namespace rwkv

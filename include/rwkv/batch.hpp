#pragma once
// A batch of independent sequences sharing one model: B slots, each with its own state. Prompts of any
// lengths are prefilled per slot (sequence form); decoding advances every listed slot by one token in a
// single call whose weights are read once for all rows (matrix-matrix products over the B rows).

#include <cstdint>
#include <span>
#include <vector>

#include "rwkv/core/error.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/core/workspace.hpp"
#include "rwkv/model/language_model.hpp"

namespace rwkv {

struct slot_token {
  std::size_t slot;
  std::int32_t token;
};

template <class Model>
class Batch {
 public:
  using state_type = typename Model::state_type;

  Batch(const Model& model, std::size_t slots) : model_(&model), states_(slots, model.make_state()) {}

  std::size_t size() const noexcept { return states_.size(); }

  // Per-slot state load and store (e.g. to resume a saved conversation in a slot, or to save one).
  const state_type& state(std::size_t slot) const { return states_.at(slot); }
  void load(std::size_t slot, state_type s) {
    if (!s.same_shape(model_->make_state()))
      throw error("state for slot " + std::to_string(slot) + " is of another model");
    states_.at(slot) = std::move(s);
  }
  void reset(std::size_t slot) { states_.at(slot) = model_->make_state(); }

  // Feeds a prompt to one slot; returns the logits after its last token.
  std::vector<float> prefill(std::size_t slot, std::span<const std::int32_t> tokens, thread_pool* pool = nullptr) {
    const auto& logits = model_->forward(tokens, states_.at(slot), logits_for::last, ws_, pool);
    return {logits.data(), logits.data() + logits.size()};
  }

  // One decoding step for the listed slots (each at most once); row i of the result is inputs[i]'s logits.
  row_matrix step(std::span<const slot_token> inputs, thread_pool* pool = nullptr) {
    auto& tokens = tokens_;
    auto& states = states_ptr_;
    tokens.clear();
    states.clear();
    for (const auto& in : inputs) {
      if (in.slot >= states_.size())
        throw error("slot " + std::to_string(in.slot) + " out of range (batch of " + std::to_string(size()) + ")");
      tokens.push_back(in.token);
      states.push_back(&states_[in.slot]);
    }
    if (tokens.empty()) return {};
    return model_->forward_batch(tokens, states, ws_, pool);
  }

 private:
  const Model* model_;
  std::vector<state_type> states_;
  workspace ws_;  // scratch kept between calls
  std::vector<std::int32_t> tokens_;
  std::vector<state_type*> states_ptr_;
};

}  // namespace rwkv

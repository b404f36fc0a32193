#pragma once
// How the T rows handed to a mixer relate to recurrent state. Either consecutive tokens of one sequence
// (one state; row t's previous token is row t−1, row 0's is the state's) or one token of each of B
// independent sequences (one state per row; every previous token comes from that row's state). Mixers
// written against this serve both the sequence form and batched decoding with one body of code.

#include <span>
#include <vector>

#include "rwkv/core/tensor.hpp"

namespace rwkv {

template <class S>
class row_states {
 public:
  static row_states sequence(S& s) { return row_states(&s, {}); }
  static row_states batch(std::span<S* const> per_row) { return row_states(nullptr, per_row); }

  bool independent() const noexcept { return single_ == nullptr; }

  // The state that row t reads and updates.
  S& of(Eigen::Index t) const { return single_ ? *single_ : *each_[static_cast<std::size_t>(t)]; }

  // The previous token's vector `member` (e.g. &S::shift) as seen by row t.
  const float* previous(const row_matrix& x, Eigen::Index t, std::vector<float> S::*member) const {
    if (single_) return t == 0 ? (single_->*member).data() : x.row(t - 1).data();
    return (each_[static_cast<std::size_t>(t)]->*member).data();
  }

  // After the call: each state's `member` becomes the last row it saw.
  void store_last(const row_matrix& x, std::vector<float> S::*member) const {
    const auto C = x.cols();
    if (single_) {
      const float* last = x.row(x.rows() - 1).data();
      (single_->*member).assign(last, last + C);
      return;
    }
    for (Eigen::Index t = 0; t < x.rows(); ++t)
      (each_[static_cast<std::size_t>(t)]->*member).assign(x.row(t).data(), x.row(t).data() + C);
  }

 private:
  row_states(S* single, std::span<S* const> each) : single_(single), each_(each) {}
  S* single_;
  std::span<S* const> each_;
};

}  // namespace rwkv

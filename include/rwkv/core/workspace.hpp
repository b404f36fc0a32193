#pragma once
// Scratch memory for forward calls, kept between them so that the hot path does not allocate (and, for long
// prompts, does not fault fresh pages in on every call). Mixers take T x C matrices in a fixed order within a
// scope; the k-th matrix of a scope is the same object on every call, so once a call of a given shape has run,
// the next one of that shape allocates nothing. One workspace serves one call at a time (one per thread).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>

#include "rwkv/core/tensor.hpp"

namespace rwkv {

class workspace {
 public:
  workspace() = default;
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  workspace(workspace&&) = default;  // between calls only
  workspace& operator=(workspace&&) = default;

  // A rows x cols matrix whose contents are unspecified, valid until the enclosing scope ends. A free matrix of
  // that many elements is reused when there is one (successive mixers ask for different shapes in the same scope
  // positions); otherwise a new one is made, up to a bound, after which a free one is resized.
  row_matrix& take(Eigen::Index rows, Eigen::Index cols) {
    const Eigen::Index n = rows * cols;
    std::size_t pick = buffers_.size();
    for (std::size_t i = next_; i < buffers_.size(); ++i)
      if (buffers_[i].size() == n) {
        pick = i;
        break;
      }
    if (pick == buffers_.size()) {
      if (buffers_.size() < 2 * peak_ + 16 || next_ == buffers_.size())
        buffers_.emplace_back();
      else
        pick = next_;  // bounded: resize a free one (varying shapes, e.g. prompts of many lengths)
    }
    if (pick != next_) buffers_[pick].swap(buffers_[next_]);  // free slots only: swapping moves pointers
    row_matrix& m = buffers_[next_++];
    peak_ = std::max(peak_, next_);
    if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);  // no reallocation when rows·cols is unchanged
    return m;
  }

  // Matrices taken after a scope begins are returned to the workspace when it ends (in reverse order).
  class scope {
   public:
    explicit scope(workspace& ws) noexcept : ws_(ws), mark_(ws.next_) {}
    ~scope() { ws_.next_ = mark_; }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    workspace& ws_;
    std::size_t mark_;
  };

  // Matrices that live across the layers of one call (and keep their memory between calls).
  enum class slot { v_first, residual, logits, embedded, count };
  row_matrix& persistent(slot s) noexcept { return persistent_[static_cast<std::size_t>(s)]; }

  // Bytes held (for the thread-local default workspace's trimming, and for reports).
  std::size_t bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& m : buffers_) n += static_cast<std::size_t>(m.size()) * sizeof(float);
    for (const auto& m : persistent_) n += static_cast<std::size_t>(m.size()) * sizeof(float);
    return n;
  }

  // Frees every buffer (only between calls).
  void release() noexcept {
    if (next_ != 0) return;
    buffers_.clear();
    for (auto& m : persistent_) m = row_matrix();
  }

 private:
  std::deque<row_matrix> buffers_;
  row_matrix persistent_[static_cast<std::size_t>(slot::count)];
  std::size_t next_ = 0, peak_ = 0;
};

}  // namespace rwkv

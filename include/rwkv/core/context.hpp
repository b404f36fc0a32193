#pragma once
// Per-forward context: how the call runs (thread pool, WKV form), where its scratch memory comes from (a
// workspace kept between calls), and values that flow across layers within one forward call but are not
// recurrent state. RWKV-7's value residual v_first (the first RWKV-7 layer's values, read by every later layer)
// is the built-in entry; user mixers may add their own named entries. The model also puts its inputs here: the
// token of each row and its embedding (ln0 output), which token-indexed blocks read (RWKV-7a/7b's DeepEmbed).

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "rwkv/core/inplace_function.hpp"
#include "rwkv/core/tensor.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/core/workspace.hpp"

namespace rwkv {

// How the sequence form evaluates the WKV recurrence: token by token (serial), per chunk of tokens as small matrix
// products (chunked; the same results within float32 rounding), or chosen by length (automatic: chunked from the
// measured crossover on, see kernel/cpu/wkv7_chunked.hpp and wkv5_chunked.hpp; steps stay serial). Batched
// decoding (one token of each of several sequences) is always serial.
enum class form { automatic, serial, chunked };

// Whether a sequence of T tokens runs chunked under f, given the kernel's crossover length.
inline bool chunked_wkv(form f, std::int64_t T, std::int64_t min_tokens) noexcept {
  return f == form::chunked || (f == form::automatic && T >= min_tokens);
}

class context {
 public:
  context() = default;
  explicit context(workspace& ws, thread_pool* pool = nullptr, form wkv_form = form::automatic) noexcept
      : pool(pool), wkv_form(wkv_form), ws_(&ws) {}
  context(const context&) = delete;  // it may point into itself (its own workspace)
  context& operator=(const context&) = delete;

  thread_pool* pool = nullptr;                             // where kernels may run in parallel (none: inline)
  form wkv_form = form::automatic;                         // how sequence calls evaluate the WKV
  std::map<std::string, row_matrix, std::less<>> entries;  // free for user mixers, for one forward call

  // Scratch memory for this call (the caller's workspace, or one owned by this context).
  workspace& ws() {
    if (!ws_) {
      own_ = std::make_unique<workspace>();
      ws_ = own_.get();
    }
    return *ws_;
  }
  // A rows x cols scratch matrix (contents unspecified) until the enclosing workspace::scope ends.
  row_matrix& scratch(Eigen::Index rows, Eigen::Index cols) { return ws().take(rows, cols); }

  // RWKV-7's value residual: T x C, written by the first RWKV-7 layer of a forward call, read by the later ones.
  bool has_v_first() const noexcept { return has_v_first_; }
  const row_matrix& v_first() { return ws().persistent(workspace::slot::v_first); }
  void set_v_first(const Eigen::Ref<const row_matrix>& v) {
    ws().persistent(workspace::slot::v_first) = v;  // the workspace keeps the memory between calls
    has_v_first_ = true;
  }
  void clear_v_first() noexcept { has_v_first_ = false; }
  // Row b of v_first, writable (for batches assembled row by row).
  auto v_first_row(Eigen::Index b) { return ws().persistent(workspace::slot::v_first).row(b); }

  // The model's input: the token of each row of the call, and its embedding ln0(emb[token]) (T x C), which is the
  // residual stream entering the first block. Set by the language model (or a caller running blocks itself).
  std::span<const std::int32_t> tokens() const noexcept { return tokens_; }
  // Embeds any tokens (out: one ln0(emb[token]) row each), for blocks that need the embeddings of tokens of
  // earlier calls (RWKV-7b rebuilding its key/value cache from a state read from a file).
  inplace_function<void(std::span<const std::int32_t>, row_matrix&), 16> embed_tokens;
  bool has_inputs() const noexcept { return has_inputs_; }
  const row_matrix& embedded() { return ws().persistent(workspace::slot::embedded); }
  void set_inputs(std::span<const std::int32_t> tokens, const Eigen::Ref<const row_matrix>& embedded) {
    tokens_ = tokens;
    ws().persistent(workspace::slot::embedded) = embedded;
    has_inputs_ = true;
  }

 private:
  workspace* ws_ = nullptr;
  std::unique_ptr<workspace> own_;
  bool has_v_first_ = false;
  std::span<const std::int32_t> tokens_;
  bool has_inputs_ = false;
};

}  // namespace rwkv

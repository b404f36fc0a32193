#pragma once
// Continuous batching: one thread steps every active sequence together. Requests wait in a bounded queue for one
// of `slots` sequences; between decode steps, waiting prompts are prefilled a chunk at a time (so a long prompt
// does not stall the streams already decoding), and every decoding sequence advances by one token in a single
// any_model::forward_batch call (the weights are read once for all of them). A slot is freed as soon as its
// request ends: finished, cancelled (cancel(), or its text callback returning false) or failed.
//
// With a state_cache, the state after each prompt and after each finished request is kept by its token prefix,
// and a request whose prompt extends a cached prefix (a conversation's next turn) starts from that state and
// prefills only the rest.
//
//   rwkv::serve::engine<rwkv::world_tokenizer> e(model, tokenizer, {.slots = 8});
//   e.submit({.prompt = tokens, .params = {.max_tokens = 64}, .on_text = print, .on_done = finished});

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rwkv/any_model.hpp"
#include "rwkv/core/error.hpp"
#include "rwkv/core/thread_pool.hpp"
#include "rwkv/generate.hpp"
#include "rwkv/serve/state_cache.hpp"

namespace rwkv::serve {

struct engine_options {
  std::size_t slots = 4;            // sequences decoded together
  std::size_t max_queue = 64;       // requests waiting when every slot is busy; beyond it submit() refuses
  std::size_t prefill_chunk = 128;  // prompt tokens per sequence between two decode steps
  thread_pool* pool = nullptr;      // threads of the matrix products (null: the engine's thread only)
  state_cache* cache = nullptr;     // states kept by token prefix (null: none)
};

// How a request ended.
struct outcome {
  generation_result result;       // tokens, text, stop reason
  std::size_t prompt_tokens = 0;  // the request's prompt
  std::size_t cached_tokens = 0;  // of which the state cache covered
  bool cancelled = false;         // cancel() or the client went away
  std::string error;              // non-empty: the request failed (its slot was freed, the others went on)
  double seconds_to_first_token = 0, seconds = 0;
};

struct request {
  std::vector<std::int32_t> prompt{};  // at least one token
  generation_params params{};
  // Each piece of generated text, in order, on the engine's thread or one of its pool's (never two at once for one
  // request); false cancels the request.
  std::function<bool(std::string_view)> on_text{};
  // Once, on the engine's thread, when the request has ended.
  std::function<void(const outcome&)> on_done{};
};

// Counters for /metrics.
struct engine_counters {
  std::uint64_t requests = 0, completed = 0, cancelled = 0, failed = 0, rejected = 0;
  std::uint64_t prompt_tokens = 0, cached_prompt_tokens = 0, generated_tokens = 0;
  std::uint64_t queued = 0, active = 0, slots = 0;
};

template <class Tokenizer>
class engine {
 public:
  using id_type = std::uint64_t;

  engine(const any_model& model, const Tokenizer& tokenizer, engine_options o)
      : model_(model), tokenizer_(tokenizer), o_(o), slots_(o.slots) {
    if (o_.slots == 0) throw error("engine: at least one slot is needed");
    if (o_.prefill_chunk == 0) throw error("engine: prefill_chunk must be positive");
    thread_ = std::thread([this] { run(); });
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Ends every request still waiting or running (cancelled) and stops the thread.
  ~engine() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  // Queues a request; nothing when the queue is full (the caller answers "try later"). Throws on a bad request
  // (empty prompt, token ids out of range, bad generation parameters) before anything is queued.
  std::optional<id_type> submit(request r) {
    if (r.prompt.empty()) throw error("the prompt is empty");
    const auto vocab = model_.info().vocab;
    for (std::size_t i = 0; i < r.prompt.size(); ++i)
      if (r.prompt[i] < 0 || r.prompt[i] >= vocab)
        throw error("prompt token " + std::to_string(i) + " has id " + std::to_string(r.prompt[i]) +
                    ", out of range for vocabulary " + std::to_string(vocab));
    generator<Tokenizer> check(tokenizer_, r.params);  // validates the parameters
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() + active_ >= o_.slots + o_.max_queue) {
      ++counters_.rejected;
      return std::nullopt;
    }
    const id_type id = next_id_++;
    queue_.push_back({id, std::move(r), clock::now()});
    ++counters_.requests;
    wake_.notify_all();
    return id;
  }

  // Ends a request (waiting or running) as cancelled; its slot is freed before the next step. Unknown or
  // finished ids are ignored.
  void cancel(id_type id) {
    std::lock_guard lock(mutex_);
    cancelled_.push_back(id);
    wake_.notify_all();
  }

  engine_counters counters() const {
    std::lock_guard lock(mutex_);
    auto c = counters_;
    c.queued = queue_.size();
    c.active = active_;
    c.slots = o_.slots;
    return c;
  }

  const engine_options& options() const noexcept { return o_; }

 private:
  using clock = std::chrono::steady_clock;

  struct queued {
    id_type id;
    request req;
    clock::time_point arrived;
  };

  struct slot {
    bool busy = false;
    id_type id = 0;
    request req;
    clock::time_point arrived;
    any_state state;
    std::size_t fed = 0;  // prompt tokens in the state
    std::size_t cached = 0;
    std::optional<generator<Tokenizer>> gen;
    std::vector<float> logits;
    std::vector<std::int32_t> history;  // prompt and fed tokens: the state's key in the cache
    bool cancelled = false;
    std::string error;
    std::optional<clock::time_point> first_token;
  };

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || active_ > 0 || !cancelled_.empty(); });
        if (stopping_) break;
        apply_cancellations();
        admit();
      }
      prefill_step();
      decode_step();
      finish_ended();
    }
    // Stopping: whatever is left ends as cancelled.
    for (auto& s : slots_)
      if (s.busy) s.cancelled = true;
    finish_ended();
    cancel_waiting(queue_);
  }

  // Under the lock.
  void apply_cancellations() {
    for (const auto id : cancelled_) {
      for (auto& s : slots_)
        if (s.busy && s.id == id) s.cancelled = true;
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if (it->id == id) {
          finished_queue_.push_back(std::move(*it));
          queue_.erase(it);
          break;
        }
    }
    cancelled_.clear();
  }

  // Under the lock: free slots take waiting requests, starting from the longest cached prefix of their prompt.
  void admit() {
    for (auto& s : slots_) {
      if (s.busy || queue_.empty()) continue;
      auto q = std::move(queue_.front());
      queue_.pop_front();
      s = slot{};
      s.busy = true;
      s.id = q.id;
      s.req = std::move(q.req);
      s.arrived = q.arrived;
      ++active_;
    }
  }

  void prefill_step() {
    for (auto& s : slots_) {
      if (!s.busy || s.gen || s.cancelled || !s.error.empty()) continue;
      try {
        const auto& prompt = s.req.prompt;
        if (!s.state) start(s);
        const std::size_t n = std::min(o_.prefill_chunk, prompt.size() - s.fed);
        const std::span<const std::int32_t> chunk(prompt.data() + s.fed, n);
        s.logits = model_.prefill(chunk, s.state, o_.pool);
        s.fed += n;
        if (s.fed == prompt.size()) {
          s.history = prompt;
          if (o_.cache) o_.cache->put(prompt, s.state, state_bytes(prompt.size()));
          s.gen.emplace(tokenizer_, s.req.params);
        }
      } catch (const std::exception& e) {
        s.error = e.what();
      }
    }
  }

  void start(slot& s) {
    const auto& prompt = s.req.prompt;
    std::optional<state_cache::hit> hit;
    // The cache may cover all but the last prompt token (prefill needs at least one token for the logits).
    if (o_.cache && prompt.size() > 1)
      hit = o_.cache->longest_prefix(std::span<const std::int32_t>(prompt).first(prompt.size() - 1));
    if (hit) {
      s.state = std::move(hit->state);
      s.fed = s.cached = hit->length;
    } else {
      s.state = model_.make_state();
    }
  }

  // Samples every decoding slot's next token (split across the pool: with a 65536-token vocabulary sampling costs
  // about as much as a token's share of the batched forward), then feeds them all in one forward_batch.
  void decode_step() {
    std::vector<slot*> ready;
    for (auto& s : slots_)
      if (s.busy && s.gen && !s.cancelled && s.error.empty() && !s.gen->done()) ready.push_back(&s);
    std::vector<std::optional<std::int32_t>> next(ready.size());
    parallel_for(ready.size() > 1 ? o_.pool : nullptr, static_cast<std::int64_t>(ready.size()),
                 [&](std::int64_t i0, std::int64_t i1) {
                   for (auto i = static_cast<std::size_t>(i0); i < static_cast<std::size_t>(i1); ++i) {
                     slot& s = *ready[i];
                     try {
                       auto on_text = [&s](std::string_view piece) {
                         return s.req.on_text ? s.req.on_text(piece) : true;
                       };
                       next[i] = s.gen->next(s.logits, on_text);
                       if (!s.first_token) s.first_token = clock::now();
                     } catch (const std::exception& e) {
                       s.error = e.what();
                     }
                   }
                 });
    std::vector<std::int32_t> tokens;
    std::vector<any_state*> states;
    std::vector<slot*> rows;
    for (std::size_t i = 0; i < ready.size(); ++i) {
      if (!next[i]) continue;
      tokens.push_back(*next[i]);
      states.push_back(&ready[i]->state);
      rows.push_back(ready[i]);
    }
    if (tokens.empty()) return;
    try {
      const auto logits = model_.forward_batch(tokens, states, o_.pool);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto r = logits.row(static_cast<Eigen::Index>(i));
        rows[i]->logits.assign(r.data(), r.data() + r.size());
        rows[i]->history.push_back(tokens[i]);
      }
      std::lock_guard lock(mutex_);
      counters_.generated_tokens += tokens.size();
    } catch (const std::exception& e) {
      for (auto* s : rows) s->error = e.what();
    }
  }

  // Ends the requests waiting in `waiting` (a queue guarded by the lock) as cancelled.
  void cancel_waiting(std::deque<queued>& waiting) {
    std::deque<queued> taken;
    {
      std::lock_guard lock(mutex_);
      taken.swap(waiting);
    }
    for (auto& q : taken) {
      outcome o;
      o.cancelled = true;
      o.prompt_tokens = q.req.prompt.size();
      count(o);
      if (q.req.on_done) q.req.on_done(o);
    }
  }

  // Ends the requests that are done, failed or cancelled, and frees their slots.
  void finish_ended() {
    cancel_waiting(finished_queue_);
    for (auto& s : slots_) {
      if (!s.busy) continue;
      const bool done = s.gen && s.gen->done();
      if (!done && !s.cancelled && s.error.empty()) continue;
      outcome o;
      o.prompt_tokens = s.req.prompt.size();
      o.cached_tokens = s.cached;
      o.cancelled = s.cancelled || (s.gen && s.gen->result().reason == stop_reason::callback);
      o.error = s.error;
      if (s.gen) {
        if (!o.cancelled && o.error.empty()) {
          auto on_text = [&s](std::string_view piece) { return s.req.on_text ? s.req.on_text(piece) : true; };
          s.gen->finish(on_text);
        }
        o.result = s.gen->result();
        // The conversation so far, to resume from: every fed token is in the state.
        if (o_.cache && o.error.empty() && s.history.size() > s.req.prompt.size())
          o_.cache->put(s.history, s.state, state_bytes(s.history.size()));
      }
      const auto now = clock::now();
      o.seconds = std::chrono::duration<double>(now - s.arrived).count();
      o.seconds_to_first_token = std::chrono::duration<double>(s.first_token.value_or(now) - s.arrived).count();
      count(o);
      auto on_done = std::move(s.req.on_done);
      s = slot{};
      {
        std::lock_guard lock(mutex_);
        --active_;
      }
      if (on_done) on_done(o);
    }
  }

  void count(const outcome& o) {
    std::lock_guard lock(mutex_);
    counters_.prompt_tokens += o.prompt_tokens;
    counters_.cached_prompt_tokens += o.cached_tokens;
    if (!o.error.empty())
      ++counters_.failed;
    else if (o.cancelled)
      ++counters_.cancelled;
    else
      ++counters_.completed;
  }

  std::size_t state_bytes(std::size_t tokens) const {
    const auto& i = model_.info();
    return static_cast<std::size_t>(i.state_bytes + i.state_bytes_per_token * static_cast<std::int64_t>(tokens));
  }

  const any_model& model_;
  const Tokenizer& tokenizer_;
  const engine_options o_;
  std::vector<slot> slots_;  // touched by the engine's thread only

  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  std::deque<queued> queue_, finished_queue_;
  std::vector<id_type> cancelled_;
  engine_counters counters_;
  std::size_t active_ = 0;
  id_type next_id_ = 1;
  bool stopping_ = false;

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace rwkv::serve

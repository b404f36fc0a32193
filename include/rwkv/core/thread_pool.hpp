#pragma once
// A small fork-join pool for the kernels. The calling thread takes part, so a pool of n runs n-way.
// Pools are passed per call (never hidden in a model), so a program that has its own threads decides how
// many cores each forward may use and nothing is oversubscribed behind its back. One parallel region runs
// at a time per pool; concurrent callers of the same pool are serialised.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <thread>
#include <vector>

#include "rwkv/core/inplace_function.hpp"

namespace rwkv {

class thread_pool {
 public:
  explicit thread_pool(unsigned threads = std::max(1u, std::thread::hardware_concurrency())) {
    threads = std::max(1u, threads);
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
  }

  ~thread_pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_release);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls f(begin, end) on disjoint chunks covering [0, n), one chunk per thread, and waits for all.
  // Exceptions from f propagate to the caller (the first one wins).
  template <class F>
  void parallel_for(std::int64_t n, F&& f) {
    if (n <= 0) return;
    const unsigned parts = static_cast<unsigned>(std::min<std::int64_t>(size(), n));
    if (parts <= 1) {
      f(std::int64_t{0}, n);
      return;
    }
    std::lock_guard<std::mutex> region(region_mutex_);
    auto chunk = [n, parts](unsigned i) { return std::pair{n * i / parts, n * (i + 1) / parts}; };
    std::exception_ptr failure;
    std::mutex failure_mutex;
    job_ = [&](unsigned i) {
      if (i >= parts) return;
      try {
        auto [b, e] = chunk(i);
        f(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
    };
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the sleeping workers' predicate check
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job_(0);
    // Workers finish within microseconds for kernel-sized chunks: spin, then yield.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins)
      if (spins > 1000) std::this_thread::yield();
    job_ = nullptr;
    if (failure) std::rethrow_exception(failure);
  }

 private:
  void work(unsigned index) {
    std::uint64_t seen = 0;
    for (;;) {
      // Decode issues ~100 short regions per token: spin a little before sleeping to skip the wake-up cost.
      for (int i = 0; i < 20000 && generation_.load(std::memory_order_acquire) == seen; ++i) std::this_thread::yield();
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      job_(index);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, region_mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  inplace_function<void(unsigned)> job_;  // built per region: no heap
  std::atomic<int> pending_{0};
};

// One piece of a fused parallel region: `units` independent units of about `unit_cost` each (bytes read, say);
// run(b, e) does units [b, e).
struct work_item {
  std::int64_t units = 0;
  double unit_cost = 1;
  inplace_function<void(std::int64_t, std::int64_t)> run;  // no heap: decode builds ~10 items per layer
};

// Runs independent pieces of work in one fork-join region, their total cost split evenly across the threads
// (a decode step has many small products; one region for all of them costs one wake-up, not one each).
// Without a pool, or with one thread, the items run in order on the caller.
inline void parallel_work(thread_pool* pool, std::initializer_list<work_item> items) {
  const unsigned parts = pool ? pool->size() : 1;
  if (parts <= 1) {
    for (const auto& w : items)
      if (w.units > 0) w.run(0, w.units);
    return;
  }
  double total = 0;
  for (const auto& w : items) total += static_cast<double>(std::max<std::int64_t>(w.units, 0)) * w.unit_cost;
  pool->parallel_for(parts, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      // Unit u of an item starting at cost `start` belongs to the part whose [lo, hi) holds start + u·cost.
      const double lo = total * static_cast<double>(p) / parts;
      const double hi = p + 1 == parts ? total * 2 + 1 : total * static_cast<double>(p + 1) / parts;
      double start = 0;
      for (const auto& w : items) {
        if (w.units <= 0) continue;
        auto first_at_or_after = [&](double c) {
          return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil((c - start) / w.unit_cost)), 0, w.units);
        };
        const std::int64_t b = first_at_or_after(lo), e = first_at_or_after(hi);
        if (b < e) w.run(b, e);
        start += static_cast<double>(w.units) * w.unit_cost;
      }
    }
  });
}

// Runs f(begin, end) over [0, n) on the pool, or inline when there is none.
template <class F>
void parallel_for(thread_pool* pool, std::int64_t n, F&& f) {
  if (pool && pool->size() > 1)
    pool->parallel_for(n, std::forward<F>(f));
  else if (n > 0)
    f(std::int64_t{0}, n);
}

}  // namespace rwkv

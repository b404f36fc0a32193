#pragma once
// States kept by the token prefix that produced them, so that a conversation's next turn resumes from the state
// after the previous one instead of feeding the whole history again (an RWKV state is a fixed-size summary of
// everything before it: restoring it costs a copy, not a cache the size of the history). Least recently used
// entries are dropped to stay within a byte budget. Thread-safe.
//
//   rwkv::serve::state_cache cache(256 << 20);
//   cache.put(tokens, state, bytes);                 // the state after feeding `tokens`
//   if (auto hit = cache.longest_prefix(next_turn))  // hit->length tokens are covered by hit->state
//     ...feed next_turn[hit->length...] to hit->state

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "rwkv/any_model.hpp"

namespace rwkv::serve {

class state_cache {
 public:
  struct hit {
    std::size_t length;  // tokens of the query the state has consumed
    any_state state;     // a copy: the caller may advance it
  };
  struct counters {
    std::uint64_t hits = 0, misses = 0, entries = 0, bytes = 0, evictions = 0;
  };

  explicit state_cache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Keeps the state after `tokens` (replacing an entry for the same tokens). `bytes` is what the entry is charged
  // (the state's size); an entry larger than the whole budget is not kept.
  void put(std::span<const std::int32_t> tokens, const any_state& state, std::size_t bytes) {
    if (tokens.empty() || bytes > max_bytes_) return;
    const auto key = hash_of(tokens);
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      bytes_ -= it->second->bytes;
      lru_.erase(it->second);
      index_.erase(it);
    }
    lru_.push_front({key, {tokens.begin(), tokens.end()}, state, bytes});
    index_[key] = lru_.begin();
    bytes_ += bytes;
    while (bytes_ > max_bytes_) {
      auto& last = lru_.back();
      bytes_ -= last.bytes;
      index_.erase(last.key);
      lru_.pop_back();
      ++evictions_;
    }
  }

  // The longest cached prefix of `tokens` (at most all of them), or nothing.
  std::optional<hit> longest_prefix(std::span<const std::int32_t> tokens) {
    std::vector<std::uint64_t> prefix(tokens.size());
    std::uint64_t h = seed;
    for (std::size_t i = 0; i < tokens.size(); ++i) prefix[i] = h = mix(h, tokens[i]);
    std::lock_guard lock(mutex_);
    for (std::size_t n = tokens.size(); n > 0; --n) {
      const auto it = index_.find(prefix[n - 1]);
      if (it == index_.end()) continue;
      const auto& e = *it->second;
      if (e.tokens.size() != n || !std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin())) continue;
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      return hit{n, e.state};
    }
    ++misses_;
    return std::nullopt;
  }

  counters stats() const {
    std::lock_guard lock(mutex_);
    return {hits_, misses_, static_cast<std::uint64_t>(lru_.size()), static_cast<std::uint64_t>(bytes_), evictions_};
  }

  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  struct entry {
    std::uint64_t key;
    std::vector<std::int32_t> tokens;  // compared on lookup: a hash collision is a miss, never a wrong state
    any_state state;
    std::size_t bytes;
  };

  static constexpr std::uint64_t seed = 0x9E3779B97F4A7C15ull;
  static std::uint64_t mix(std::uint64_t h, std::int32_t token) noexcept {
    h ^= static_cast<std::uint32_t>(token) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xBF58476D1CE4E5B9ull;
  }
  static std::uint64_t hash_of(std::span<const std::int32_t> tokens) noexcept {
    std::uint64_t h = seed;
    for (auto t : tokens) h = mix(h, t);
    return h;
  }

  const std::size_t max_bytes_;
  mutable std::mutex mutex_;
  std::list<entry> lru_;  // most recently used first
  std::unordered_map<std::uint64_t, std::list<entry>::iterator> index_;
  std::size_t bytes_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace rwkv::serve

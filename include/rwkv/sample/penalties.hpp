#pragma once
// Presence / frequency penalties with decay and token bans, as the reference generation loop applies them
// (spec/sampling.md §2, steps 2 and 4):
//
//   apply(logits):        logits[b] = -inf for every ban b, then for every token n seen so far
//                         logits[n] -= presence + occurrence[n] * frequency
//   update(token, piece): occurrence[m] *= decay for every m, then occurrence[token] += weight(piece),
//                         weight 0 when the decoded text of the single token is a substring of " \t0123456789"
//                         (spaces, tabs, digits: presence penalty but no frequency), 1 otherwise.
//
// A token once seen always receives the full presence penalty, however far its count has decayed.
// `piece` may be the token's raw bytes: " \t0123456789" is ASCII, so a piece that is not valid UTF-8 on its own
// (the reference's "\ufffd") is never a substring of it either way.

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rwkv/core/error.hpp"

namespace rwkv {

struct penalty_params {
  float presence = 0.2f;             // alpha_presence
  float frequency = 0.2f;            // alpha_frequency
  float decay = 0.996f;              // alpha_decay, per generated token
  std::vector<std::int32_t> bans{};  // token_ban: logits forced to -inf
};

class penalties {
 public:
  penalties() = default;
  explicit penalties(penalty_params p) : p_(std::move(p)) {
    if (!std::isfinite(p_.presence) || !std::isfinite(p_.frequency) || !std::isfinite(p_.decay))
      throw error("penalty parameters must be finite");
    for (auto b : p_.bans)
      if (b < 0) throw error("banned token id " + std::to_string(b) + " is negative");
  }

  const penalty_params& params() const noexcept { return p_; }

  // Token id -> decayed, weighted count of its occurrences (an entry exists once the token was generated).
  const std::map<std::int32_t, double>& occurrences() const noexcept { return occurrence_; }

  // Bans first, then the penalties of every token seen so far. Ids outside the logits are an error.
  void apply(std::span<float> logits) const {
    const auto V = static_cast<std::int64_t>(logits.size());
    for (auto b : p_.bans) {
      if (b >= V) throw error(range_message("banned token id", b, V));
      logits[static_cast<std::size_t>(b)] = -INFINITY;
    }
    for (const auto& [id, count] : occurrence_) {
      if (id >= V) throw error(range_message("penalised token id", id, V));
      auto& l = logits[static_cast<std::size_t>(id)];
      l = static_cast<float>(l - (static_cast<double>(p_.presence) + count * static_cast<double>(p_.frequency)));
    }
  }

  // Records a generated token: decays every count, then adds weight(piece) to the token's count.
  void update(std::int32_t token, std::string_view piece) {
    if (token < 0) throw error("token id " + std::to_string(token) + " is negative");
    for (auto& entry : occurrence_) entry.second *= static_cast<double>(p_.decay);
    occurrence_[token] += weight(piece);
  }

  // 0 when `piece` is a substring of " \t0123456789" (the empty piece included), else 1.
  static double weight(std::string_view piece) noexcept {
    return std::string_view(" \t0123456789").find(piece) != std::string_view::npos ? 0.0 : 1.0;
  }

  // Forgets every occurrence (a new generation); the parameters stay.
  void reset() noexcept { occurrence_.clear(); }

 private:
  static std::string range_message(const char* what, std::int32_t id, std::int64_t V) {
    return std::string(what) + " " + std::to_string(id) + " is out of range [0, " + std::to_string(V) + ")";
  }

  penalty_params p_;
  std::map<std::int32_t, double> occurrence_;
};

}  // namespace rwkv

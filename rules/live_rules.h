// Hot reload: the current rule set behind an atomic swap with a generation
// number, and a per-worker matcher that moves to the new generation between
// two events. Every event is matched by exactly one generation, so a reload
// neither loses nor double-matches an event. Correlation and suppression
// state start afresh with the new generation.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "rules/engine.h"

namespace siper::rules {

class LiveRuleSet {
 public:
  explicit LiveRuleSet(std::shared_ptr<const RuleSet> initial);

  std::shared_ptr<const RuleSet> Current() const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Publishes `next`; workers pick it up before their next event.
  void Swap(std::shared_ptr<const RuleSet> next);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const RuleSet> current_;  // guarded by mu_
  std::atomic<uint64_t> generation_{1};
};

// One per worker thread; not thread-safe (like Matcher).
class LiveMatcher {
 public:
  explicit LiveMatcher(const LiveRuleSet* live) : live_(live) {}

  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format,
                                                 FieldMap* fields_out = nullptr);
  // Generation of the rule set that matched the last event.
  uint64_t generation() const { return generation_; }

 private:
  const LiveRuleSet* live_;
  std::unique_ptr<Matcher> matcher_;
  uint64_t generation_ = 0;
};

}  // namespace siper::rules

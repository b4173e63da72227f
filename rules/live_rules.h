// Hot reload: the current rule set and IOC set, each behind an atomic swap
// with a generation number, and a per-worker matcher that moves to a new
// generation between two events. Every event is matched by exactly one rule
// set generation, so a reload neither loses nor double-matches an event.
// Correlation and suppression state start afresh with a new rule set; a new
// IOC set keeps them (only the IOC scanner is re-created).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "rules/engine.h"
#include "rules/ioc.h"

namespace siper::rules {

// A shared immutable T published with a generation (1 for the initial value).
template <typename T>
class LiveValue {
 public:
  explicit LiveValue(std::shared_ptr<const T> initial) : current_(std::move(initial)) {}

  std::shared_ptr<const T> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  // The value and its generation, read together.
  std::pair<std::shared_ptr<const T>, uint64_t> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {current_, generation_.load(std::memory_order_relaxed)};
  }
  // Cheap check for workers: has anything been published since `seen`?
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Publishes `next` and returns its generation; workers pick it up before their next event.
  uint64_t Swap(std::shared_ptr<const T> next) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(next);
    // Bumped under the lock so Snapshot() never pairs a value with another's generation.
    return generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const T> current_;  // guarded by mu_
  std::atomic<uint64_t> generation_{1};
};

using LiveRuleSet = LiveValue<RuleSet>;
// The IOC set may be null (no feeds imported).
using LiveIocSet = LiveValue<IocSet>;

// One per worker thread; not thread-safe (like Matcher).
class LiveMatcher {
 public:
  explicit LiveMatcher(const LiveRuleSet* live, const LiveIocSet* ioc = nullptr)
      : live_(live), ioc_(ioc) {}

  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format,
                                                 FieldMap* fields_out = nullptr);
  absl::StatusOr<std::vector<Detection>> ProcessFile(const FileObservation& file,
                                                     FieldMap* fields_out = nullptr);
  // With the decoded fields as one snapshot (Matcher's overloads).
  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format, DetectionFields* fields_out);
  absl::StatusOr<std::vector<Detection>> ProcessFile(const FileObservation& file,
                                                     DetectionFields* fields_out);
  // Generation of the rule set that matched the last event.
  uint64_t generation() const { return generation_; }
  // Generation of the IOC set that the last event was looked up in.
  uint64_t ioc_generation() const { return ioc_generation_; }

 private:
  absl::Status Refresh();

  const LiveRuleSet* live_;
  const LiveIocSet* ioc_;
  std::unique_ptr<Matcher> matcher_;
  uint64_t generation_ = 0;
  uint64_t ioc_generation_ = 0;
};

}  // namespace siper::rules

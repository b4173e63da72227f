// Streaming state for Sigma correlation rules and Siper suppression, kept per
// Matcher. Windows are driven by event time; memory is bounded by evicting
// groups whose window has ended and by a cap per rule.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rules/compiled.h"
#include "rules/decoder.h"

namespace siper::rules {

// The fields shared by every detection of one event, copied from the event
// the first time a detection needs them (most events raise none), with the
// event's `@timestamp` set first when decoding left it pending.
class LazySnapshot {
 public:
  explicit LazySnapshot(Event* event) : event_(event) {}
  const DetectionFields& Get() {
    if (!taken_) {
      ResolveTimestamp(event_);
      value_ = event_->fields.Snapshot();
      taken_ = true;
    }
    return value_;
  }

 private:
  Event* event_;
  bool taken_ = false;
  DetectionFields value_;
};

class CorrelationState {
 public:
  // Most open groups kept per correlation rule; beyond it the oldest expire early.
  static constexpr size_t kMaxGroupsPerRule = 100000;

  explicit CorrelationState(const RuleSetImpl* rules);

  // Feeds one match of detection rule `rule`; appends completed correlations.
  void OnMatch(uint32_t rule, const Event& event, LazySnapshot* fields,
               std::vector<Detection>* out);

  // True when a detection of `rule` for `event` falls in an open suppression window.
  bool Suppressed(uint32_t rule, const Event& event, int64_t* count_out = nullptr);

  uint64_t dropped_groups() const { return dropped_groups_; }

 private:
  struct Window {
    int64_t start_ns = 0;
    int64_t count = 0;
    bool fired = false;
    std::unordered_set<std::string> values;  // value_count
    std::vector<int64_t> last_seen;          // temporal: per entry of `rules`, 0 = never
  };
  // Group keys are looked up as views of key_ (built in place, no allocation
  // per event); a string is made only when a new group opens.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct PerRule {
    std::unordered_map<std::string, Window, KeyHash, std::equal_to<>> groups;
    size_t next_sweep = 1024;  // sweep expired windows when this many are open
  };

  // Feeds one event of member `member` (see CompiledCorrelation::members) to correlation `ci`.
  void Feed(uint32_t ci, uint32_t member, const Event& event, int64_t now, int depth,
            LazySnapshot* fields, std::vector<Detection>* out);
  // The group of `event` in `state` (by the values of `by`), created when absent.
  Window& GroupOf(PerRule* state, const std::vector<std::string>& by, const Event& event);
  void Evict(PerRule* state, int64_t now_ns, int64_t span_ns);

  const RuleSetImpl* rules_;
  std::vector<PerRule> correlation_state_;
  std::vector<PerRule> suppression_state_;  // by detection rule index
  uint64_t dropped_groups_ = 0;
  std::string key_;  // GroupOf()'s buffer, reused
};

}  // namespace siper::rules

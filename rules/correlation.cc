#include "rules/correlation.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "rules/strutil.h"

namespace siper::rules {

CorrelationState::CorrelationState(const RuleSetImpl* rules)
    : rules_(rules),
      correlation_state_(rules->correlations.size()),
      suppression_state_(rules->rules.size()) {}

CorrelationState::Window& CorrelationState::GroupOf(PerRule* state,
                                                    const std::vector<std::string>& by,
                                                    const Event& event) {
  key_.clear();
  for (const std::string& f : by) {
    auto it = event.fields.find(f);
    if (it != event.fields.end()) key_ += it->second;
    key_.push_back('\x1f');
  }
  auto it = state->groups.find(std::string_view(key_));
  if (it != state->groups.end()) return it->second;
  return state->groups.emplace(key_, Window{}).first->second;
}

void CorrelationState::Evict(PerRule* state, int64_t now_ns, int64_t span_ns) {
  if (state->groups.size() < state->next_sweep) return;
  for (auto it = state->groups.begin(); it != state->groups.end();) {
    if (now_ns - it->second.start_ns > span_ns) {
      it = state->groups.erase(it);
    } else {
      ++it;
    }
  }
  if (state->groups.size() >= kMaxGroupsPerRule) {
    // Still full of live windows: drop the oldest to keep memory bounded.
    auto oldest = std::min_element(
        state->groups.begin(), state->groups.end(),
        [](const auto& a, const auto& b) { return a.second.start_ns < b.second.start_ns; });
    state->groups.erase(oldest);
    ++dropped_groups_;
  }
  state->next_sweep = std::min(kMaxGroupsPerRule, std::max<size_t>(1024, state->groups.size() * 2));
}

static int64_t EventTime(const Event& event) {
  return event.time_unix_ns != 0 ? event.time_unix_ns : absl::ToUnixNanos(absl::Now());
}

bool CorrelationState::Suppressed(uint32_t rule, const Event& event, int64_t* count_out) {
  const ParsedRule& r = rules_->rules[rule].rule;
  if (r.suppress_ns <= 0) return false;
  const int64_t now = EventTime(event);
  PerRule& st = suppression_state_[rule];
  Evict(&st, now, r.suppress_ns);
  Window& w = GroupOf(&st, r.suppress_by, event);
  if (w.count > 0 && now - w.start_ns <= r.suppress_ns && now >= w.start_ns) {
    ++w.count;
    if (count_out != nullptr) *count_out = w.count;
    return true;
  }
  w = Window{};
  w.start_ns = now;
  w.count = 1;
  return false;
}

void CorrelationState::OnMatch(uint32_t rule, const Event& event, LazySnapshot* fields,
                               std::vector<Detection>* out) {
  const int64_t now = EventTime(event);
  for (uint32_t ci : rules_->rules[rule].correlations) Feed(ci, rule, event, now, 0, fields, out);
}

void CorrelationState::Feed(uint32_t ci, uint32_t member, const Event& event, int64_t now,
                            int depth, LazySnapshot* fields, std::vector<Detection>* out) {
  const CompiledCorrelation& cc = rules_->correlations[ci];
  if (!cc.enabled || depth > 16) return;
  const CorrelationSpec& spec = cc.rule.correlation;
  PerRule& st = correlation_state_[ci];
  Evict(&st, now, spec.timespan_ns);
  Window& w = GroupOf(&st, spec.group_by, event);
  const bool expired = w.count > 0 && (now - w.start_ns > spec.timespan_ns || now < w.start_ns);
  if (w.count == 0 || expired) {
    w = Window{};
    w.start_ns = now;
  }
  ++w.count;
  int64_t measure = 0;
  switch (spec.type) {
    case CorrelationSpec::Type::kEventCount:
      measure = w.count;
      break;
    case CorrelationSpec::Type::kValueCount: {
      auto it = event.fields.find(spec.value_field);
      if (it != event.fields.end() && w.values.size() <= static_cast<size_t>(spec.threshold)) {
        w.values.emplace(it->second);
      }
      measure = static_cast<int64_t>(w.values.size());
      break;
    }
    case CorrelationSpec::Type::kTemporal:
    case CorrelationSpec::Type::kTemporalOrdered: {
      w.last_seen.resize(spec.rules.size(), 0);
      for (size_t m = 0; m < cc.members.size(); ++m) {
        if (cc.members[m] != member) continue;
        const uint32_t slot = cc.member_slots[m];
        if (spec.type == CorrelationSpec::Type::kTemporalOrdered && slot > 0 &&
            w.last_seen[slot - 1] == 0) {
          continue;  // out of order: the previous step has not happened yet
        }
        w.last_seen[slot] = now;
      }
      measure =
          std::count_if(w.last_seen.begin(), w.last_seen.end(), [](int64_t t) { return t != 0; });
      break;
    }
  }
  bool complete = false;
  switch (spec.cmp) {
    case CorrelationSpec::Cmp::kGt:
      complete = measure > spec.threshold;
      break;
    case CorrelationSpec::Cmp::kGte:
      complete = measure >= spec.threshold;
      break;
    case CorrelationSpec::Cmp::kEq:
      complete = measure == spec.threshold;
      break;
    default:
      complete = false;
      break;  // lt/lte are rejected at load
  }
  if (!complete || w.fired) return;
  w.fired = true;
  Detection d;
  d.rule_id = cc.rule.id;
  d.title = cc.rule.title;
  d.level = cc.rule.level;
  d.tags = cc.rule.tags;
  d.fields = fields->Get();
  d.count = static_cast<uint32_t>(w.count);
  out->push_back(std::move(d));
  const uint32_t as_member = static_cast<uint32_t>(rules_->rules.size()) + ci;
  for (uint32_t parent : cc.parents) Feed(parent, as_member, event, now, depth + 1, fields, out);
}

}  // namespace siper::rules

#include "rules/live_rules.h"

#include "common/status.h"

namespace siper::rules {

LiveRuleSet::LiveRuleSet(std::shared_ptr<const RuleSet> initial) : current_(std::move(initial)) {}

std::shared_ptr<const RuleSet> LiveRuleSet::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void LiveRuleSet::Swap(std::shared_ptr<const RuleSet> next) {
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(next);
  // Bumped under the lock so a reader that sees the new generation also gets
  // the new rule set from Current().
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

absl::StatusOr<std::vector<Detection>> LiveMatcher::Process(std::string_view line,
                                                            std::string_view source,
                                                            InputFormat format,
                                                            FieldMap* fields_out) {
  const uint64_t gen = live_->generation();
  if (matcher_ == nullptr || gen != generation_) {
    SIPER_ASSIGN_OR_RETURN(matcher_, Matcher::Create(live_->Current()));
    generation_ = gen;
  }
  return matcher_->Process(line, source, format, fields_out);
}

}  // namespace siper::rules

#include "rules/live_rules.h"

#include "common/status.h"

namespace siper::rules {

absl::Status LiveMatcher::Refresh() {
  if (matcher_ == nullptr || live_->generation() != generation_) {
    auto [rules, gen] = live_->Snapshot();
    std::shared_ptr<const IocSet> ioc;
    uint64_t ioc_gen = 0;
    if (ioc_ != nullptr) std::tie(ioc, ioc_gen) = ioc_->Snapshot();
    SIPER_ASSIGN_OR_RETURN(matcher_, Matcher::Create(std::move(rules), std::move(ioc)));
    generation_ = gen;
    ioc_generation_ = ioc_gen;
    return absl::OkStatus();
  }
  if (ioc_ != nullptr && ioc_->generation() != ioc_generation_) {
    auto [ioc, ioc_gen] = ioc_->Snapshot();
    // A new IOC set keeps the rule set's correlation state.
    SIPER_RETURN_IF_ERROR(matcher_->SetIocSet(std::move(ioc)));
    ioc_generation_ = ioc_gen;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Detection>> LiveMatcher::Process(std::string_view line,
                                                            std::string_view source,
                                                            InputFormat format,
                                                            FieldMap* fields_out) {
  SIPER_RETURN_IF_ERROR(Refresh());
  return matcher_->Process(line, source, format, fields_out);
}

absl::StatusOr<std::vector<Detection>> LiveMatcher::ProcessFile(const FileObservation& file,
                                                                FieldMap* fields_out) {
  SIPER_RETURN_IF_ERROR(Refresh());
  return matcher_->ProcessFile(file, fields_out);
}

absl::StatusOr<std::vector<Detection>> LiveMatcher::Process(std::string_view line,
                                                            std::string_view source,
                                                            InputFormat format,
                                                            DetectionFields* fields_out) {
  SIPER_RETURN_IF_ERROR(Refresh());
  return matcher_->Process(line, source, format, fields_out);
}

absl::StatusOr<std::vector<Detection>> LiveMatcher::ProcessFile(const FileObservation& file,
                                                                DetectionFields* fields_out) {
  SIPER_RETURN_IF_ERROR(Refresh());
  return matcher_->ProcessFile(file, fields_out);
}

}  // namespace siper::rules

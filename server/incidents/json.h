// Incident <-> JSON: the stored form (storage may keep it as a JSON value or map it to
// protobuf), the `--json` output of siperctl, and the before/after of audit records.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/incidents/model.h"

namespace siper::incidents {

nlohmann::json IncidentToJson(const Incident& incident);
// A view for display that stays small for a huge incident: the first `limit` alerts and
// event refs, the last `limit` timeline entries and at most `limit` alert ids per
// observable, with the totals in "alert_count", "event_ref_count", "timeline_count" and
// per observable "alert_id_count", and "truncated": true when anything was left out.
// `limit` 0: everything (the counts are still added). Costs O(limit + head), not O(alerts).
nlohmann::json IncidentToJsonView(const Incident& incident, size_t limit);
absl::StatusOr<Incident> IncidentFromJson(const nlohmann::json& j);
// From stored text (what storage returns); the error names the incident or the parse failure.
absl::StatusOr<Incident> IncidentFromJsonText(std::string_view text);

nlohmann::json ObservableToJson(const Observable& o);
nlohmann::json LinkedAlertToJson(const LinkedAlert& a);
nlohmann::json TimelineEntryToJson(const TimelineEntry& e);
// The parts alone; these throw std::invalid_argument (or nlohmann's type errors) on a bad
// time or enum, as IncidentFromJson catches them.
LinkedAlert LinkedAlertFromJson(const nlohmann::json& j);
TimelineEntry TimelineEntryFromJson(const nlohmann::json& j);
Observable ObservableFromJson(const nlohmann::json& j);
nlohmann::json AlertInputToJson(const AlertInput& a);

// Byte for byte j.dump() (no indent, UTF-8 kept, the same exceptions), appended to `out`.
// Strings of printable ASCII without quotes or backslashes (nearly every key and value of
// an incident) are copied as they are instead of going through nlohmann's per-byte UTF-8
// escaper, which was most of the JSON cost of an alert joining an incident; anything else
// (other strings, floats) is written by nlohmann itself.
void AppendDump(const nlohmann::json& j, std::string* out);
std::string Dump(const nlohmann::json& j);
// nlohmann::json(s).dump() appended to `out`, without the copy.
void AppendJsonString(const std::string& s, std::string* out);

}  // namespace siper::incidents

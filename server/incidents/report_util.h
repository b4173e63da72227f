// Helpers shared by the report renderers. Internal to server/incidents.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "server/incidents/model.h"
#include "server/incidents/report.h"

namespace siper::incidents::internal {

// A Markdown table cell: pipes and backslashes escaped, line breaks as spaces, control
// characters shown as \xNN so nothing an attacker put in a log can restructure the report.
std::string MdCell(std::string_view text);
// Markdown body text: control characters escaped, lines kept.
std::string MdText(std::string_view text);
// HTML text and attribute escaping.
std::string Html(std::string_view text);

// "2026-11-28 13:00 (UTC+3)" style for people; "-" if unset. Reports are for Turkey, so times
// are shown in UTC+3 beside the RFC 3339 UTC form.
std::string HumanTime(absl::Time t, std::string_view lang);
// "3 sa 20 dk" / "3 h 20 min"; "-" for InfiniteDuration.
std::string HumanDuration(absl::Duration d, std::string_view lang);

// Labels for enum values in the report language.
std::string StateLabel(State s, std::string_view lang);
std::string SeverityLabel(Severity s, std::string_view lang);
std::string ResolutionLabel(Resolution r, std::string_view lang);
std::string KindLabel(ObservableKind k, std::string_view lang);

bool InRanges(const std::string& ip, const std::vector<std::string>& ranges);

struct Affected {
  std::vector<std::string> hosts;
  std::vector<std::string> addresses;  // ours: in the institution's ranges or destination.ip
  std::vector<std::string> attackers;  // source addresses outside our ranges
};
Affected AffectedOf(const Incident& incident, const std::vector<std::string>& ranges);

}  // namespace siper::incidents::internal

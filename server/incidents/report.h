// Reports: to USOM (md, json, STIX 2.1), to the KVKK Board (md, json), and a periodic summary
// (md, self-contained HTML). Turkish labels by default, English with lang "en". Pure: the
// caller passes the incidents, the institution profile and "now".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/incidents/deadlines.h"
#include "server/incidents/model.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents {

struct Contact {
  std::string name;
  std::string role;  // e.g. "SOME yöneticisi"
  std::string email;
  std::string phone;
};

// The SOME's registration data (R1, R4), from the server's configuration.
struct InstitutionProfile {
  std::string institution;  // e.g. "Mersin Büyükşehir Belediyesi"
  std::string some_name;    // e.g. "Mersin BB SOME"
  std::string some_mailbox;
  std::string address;
  std::string phone;
  std::vector<Contact> contacts;
  std::vector<std::string> ip_ranges;  // CIDR, v4 or v6
  std::string isp;
  // KVKK: the data controller (default: institution) and its VERBIS registration number.
  std::string kvkk_controller;
  std::string verbis_number;
};

enum class ReportFormat { kMarkdown, kJson, kStix, kHtml };
// "md"/"markdown", "json", "stix", "html"; the error names what each report accepts.
absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view text);

struct ReportOptions {
  std::string lang = "tr";             // "tr" (default) or "en"
  absl::Time now = absl::UnixEpoch();  // generation time, printed and used for STIX timestamps
};

// A label in the report language; the key itself if unknown.
std::string Label(std::string_view key, std::string_view lang);

// USOM incident report: md, json or stix.
absl::StatusOr<std::string> UsomReport(const Incident& incident, const InstitutionProfile& profile,
                                       const Taxonomy& taxonomy, ReportFormat format,
                                       const ReportOptions& options);
nlohmann::json UsomReportJson(const Incident& incident, const InstitutionProfile& profile,
                              const Taxonomy& taxonomy, const ReportOptions& options);

// KVKK breach notification: md or json. Refused for incidents not flagged as breaches.
absl::StatusOr<std::string> KvkkReport(const Incident& incident, const InstitutionProfile& profile,
                                       const Taxonomy& taxonomy, ReportFormat format,
                                       const ReportOptions& options,
                                       const DeadlinePolicy& policy = {});
absl::StatusOr<nlohmann::json> KvkkReportJson(const Incident& incident,
                                              const InstitutionProfile& profile,
                                              const ReportOptions& options,
                                              const DeadlinePolicy& policy = {});

// Agent health lines for the summary, from the server (agents silent or dropping).
struct AgentHealth {
  std::string agent_id;
  std::string host;
  std::string problem;  // "silent", "dropping"
  absl::Time since = absl::InfinitePast();
  std::string detail;
};

struct SummaryInput {
  // All known (IncidentBook::View); those detected in [since, until) are counted.
  std::vector<const Incident*> incidents;
  absl::Time since;
  absl::Time until;
  std::vector<AgentHealth> agents;
  DeadlinePolicy deadlines;
  std::vector<std::string> ip_ranges;  // our own ranges, left out of "top attackers"
};

struct Summary {
  int total = 0;      // incidents in the period, exercises not included
  int exercises = 0;  // RSIT class test, counted apart (R5)
  std::vector<std::pair<std::string, int>> by_class;     // RSIT class id -> count, all classes
  std::vector<std::pair<std::string, int>> by_severity;  // low .. critical
  std::vector<std::pair<std::string, int>> by_state;     // new .. closed
  std::vector<std::pair<std::string, int>> exercises_by_state;
  // Means over incidents where both times are known; InfiniteDuration when there are none.
  absl::Duration mean_time_to_detect = absl::InfiniteDuration();   // occurred -> detected
  absl::Duration mean_time_to_contain = absl::InfiniteDuration();  // detected -> contained
  absl::Duration mean_time_to_close = absl::InfiniteDuration();    // detected -> closed
  std::vector<std::pair<std::string, int>> top_rules;              // "title (rule id)" -> alerts
  std::vector<std::pair<std::string, int>> top_attackers;          // source address -> incidents
  int deadlines_met = 0;
  int deadlines_missed = 0;   // reported late
  int deadlines_overdue = 0;  // not reported, past due
  int deadlines_pending = 0;
  std::vector<AgentHealth> agents;
};

Summary ComputeSummary(const SummaryInput& input, const Taxonomy& taxonomy, absl::Time now);
// md or html (html: one self-contained file, inline CSS and SVG charts, no network).
absl::StatusOr<std::string> SummaryReport(const SummaryInput& input, const Taxonomy& taxonomy,
                                          ReportFormat format, const ReportOptions& options);

}  // namespace siper::incidents

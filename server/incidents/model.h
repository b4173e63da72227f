// The incident model: what an incident is, independent of storage and wire formats.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::incidents {

enum class State { kNew, kTriage, kInvestigating, kContained, kEradicated, kRecovered, kClosed };
enum class Severity { kLow, kMedium, kHigh, kCritical };
enum class Tlp { kClear, kGreen, kAmber, kAmberStrict, kRed };
enum class Resolution { kNone, kTruePositive, kFalsePositive, kDuplicate };
enum class ObservableKind { kIp, kDomain, kUrl, kHash, kUser, kHost };
enum class NoticeKind { kFirst, kFollowUp };

// Machine names: "new", "triage", ...; "low" ...; "CLEAR", "AMBER+STRICT" ...;
// "true-positive" ...; "ip", "domain", "url", "hash", "user", "host"; "first", "follow-up".
std::string_view ToString(State s);
std::string_view ToString(Severity s);
std::string_view ToString(Tlp t);
std::string_view ToString(Resolution r);
std::string_view ToString(ObservableKind k);
std::string_view ToString(NoticeKind k);
// Parsers accept the machine names (case-insensitive) and name the valid values on error.
absl::StatusOr<State> ParseState(std::string_view s);
absl::StatusOr<Severity> ParseSeverity(std::string_view s);
absl::StatusOr<Tlp> ParseTlp(std::string_view s);
absl::StatusOr<Resolution> ParseResolution(std::string_view s);
absl::StatusOr<ObservableKind> ParseObservableKind(std::string_view s);
absl::StatusOr<NoticeKind> ParseNoticeKind(std::string_view s);

// Rule levels as Sigma writes them: informational=1, low=2, medium=3, high=4, critical=5;
// anything else counts as 1.
int LevelWeight(std::string_view level);
// informational/low -> low, medium -> medium, high -> high, critical -> critical.
Severity SeverityFromLevel(std::string_view level);

// A rule match as the incident logic needs it. The integrator maps siper.v1.Alert to this.
struct AlertInput {
  std::string id;  // alert id
  std::string rule_id;
  std::string title;
  std::string level;                       // informational, low, medium, high, critical
  absl::Time time = absl::InfinitePast();  // when the server received the event
  // When the event happened by the log's own time (@timestamp); InfinitePast when the log
  // has none. Incidents take it as their occurred time.
  absl::Time occurred = absl::InfinitePast();
  std::string agent_id;
  uint64_t seq = 0;  // the event that raised it: (agent_id, seq)
  std::string host;  // host.hostname if known
  // The ECS fields of the event, owned ...
  std::map<std::string, std::string, std::less<>> fields;
  // ... and/or as views into memory the caller keeps alive while the AlertInput is used
  // (ingest hands the stored record's snapshot this way: no copy per alert). An incident
  // keeps nothing of them by reference: what it keeps (LinkedAlert, observables) is copied.
  // Names are looked up in `fields` first, then here (the first of equal names wins).
  std::span<const std::pair<std::string_view, std::string_view>> field_views;
  // IOC match, if the alert came from (or was enriched by) an IOC set.
  bool ioc_hit = false;
  int ioc_confidence = 0;  // 0..100
  std::string ioc_value;
  std::string ioc_feed;
  // RSIT class/type from the rule (optional).
  std::string rsit_class;
  std::string rsit_type;

  // The value of field `name` ("" when the alert has none).
  std::string_view Field(std::string_view name) const;
  bool HasField(std::string_view name) const;
  // The fields whose names start with `prefix`, ordered by name, each name once (as a
  // std::map of all of them would iterate).
  std::vector<std::pair<std::string_view, std::string_view>> FieldsWithPrefix(
      std::string_view prefix) const;
};

// What an incident keeps of each linked alert.
struct LinkedAlert {
  std::string id;
  std::string rule_id;
  std::string title;
  std::string level;
  absl::Time time = absl::InfinitePast();
  absl::Time occurred = absl::InfinitePast();  // log time, never after `time`
  std::string agent_id;
  uint64_t seq = 0;
  std::string host;
  std::string source_ip;
  int ioc_confidence = 0;  // 0 when no IOC hit
};

struct Observable {
  ObservableKind kind = ObservableKind::kIp;
  std::string value;
  std::string hash_algo;  // for hashes: "md5", "sha1", "sha256", "sha512"
  std::string field;      // ECS field it came from, e.g. "source.ip"; "ioc" for IOC values
  absl::Time first_seen = absl::InfiniteFuture();
  absl::Time last_seen = absl::InfinitePast();
  std::set<std::string> alert_ids;  // alerts it was seen in; empty for analyst-added ones
};

struct TimelineEntry {
  absl::Time time;
  std::string actor;
  std::string kind;  // created, state, reopened, alert-attached, note, merged, ...
  std::string text;
};

struct Note {
  absl::Time time;
  std::string author;
  std::string text;
};

// KVKK (Law 6698) personal-data breach details, for the Board's notification form.
struct KvkkBreach {
  bool personal_data_breach = false;
  absl::Time breach_started = absl::InfinitePast();  // InfinitePast: unknown
  absl::Time breach_ended = absl::InfinitePast();
  std::string source;  // how it happened / where from
  std::string description;
  std::vector<std::string> data_categories;  // identity, contact, health, ...
  bool special_categories = false;           // KVKK art. 6 data involved
  std::vector<std::string> subject_groups;   // employees, citizens, ...
  int64_t people_count = -1;                 // -1: not yet known
  int64_t record_count = -1;
  std::string consequences;
  std::vector<std::string> measures_taken;
  std::vector<std::string> measures_planned;
  bool subjects_informed = false;
  // Notices sent to the Board (first, then follow-ups).
  struct Notice {
    NoticeKind kind = NoticeKind::kFirst;
    absl::Time sent;
    std::string reference;
  };
  std::vector<Notice> notices;
  std::vector<std::string> delay_reasons;  // required once past the deadline
};

struct IncidentTimes {
  absl::Time occurred = absl::InfinitePast();  // InfinitePast: not set
  absl::Time detected = absl::InfinitePast();
  absl::Time created = absl::InfinitePast();
  absl::Time updated = absl::InfinitePast();
  absl::Time closed = absl::InfinitePast();  // last close; cleared on reopen
  absl::Time reported_to_usom = absl::InfinitePast();
  // First time each state was entered, and first time severity was at least each level:
  // deadlines are computed from these, whatever policy is configured later.
  std::map<State, absl::Time> entered;
  std::map<Severity, absl::Time> severity_reached;
};

inline bool IsSet(absl::Time t) { return t != absl::InfinitePast(); }

struct Incident {
  std::string id;  // INC-YYYY-NNNN
  std::string title;
  std::string description;
  std::string rsit_class = "other";
  std::string rsit_type = "undetermined";
  Severity severity = Severity::kLow;
  int risk_score = 0;         // 0..100, see ComputeRiskScore
  int asset_criticality = 3;  // 1..5, highest of the affected hosts
  Tlp tlp = Tlp::kAmber;
  State state = State::kNew;
  Resolution resolution = Resolution::kNone;
  std::string assignee;
  std::string usom_reference;
  std::string impact;
  std::vector<std::string> actions;  // actions taken, for reports
  std::vector<LinkedAlert> alerts;
  std::vector<std::string> event_refs;  // "agent_id:seq"
  std::vector<Observable> observables;
  std::vector<Note> notes;
  std::vector<TimelineEntry> timeline;
  IncidentTimes times;
  KvkkBreach kvkk;
  std::string merged_into;  // set when closed as a duplicate by a merge

  // Exercises (R5) are incidents of RSIT class "test".
  bool exercise() const { return rsit_class == "test"; }
  bool open() const { return state != State::kClosed; }
};

// Risk score 0..100 (R6):
//   risk = round(100 * (0.5 * (L-1)/4 + 0.3 * (C-1)/4 + 0.2 * I/100))
// with L the highest rule level weight (1..5; without alerts, the severity: low 2 ..
// critical 5), C the asset criticality (1..5) and I the
// highest IOC confidence (0..100, 0 without an IOC hit). Rule level dominates; a critical
// rule on a critical asset with a certain IOC scores 100, an informational rule on the least
// critical asset without IOC scores 0.
int ComputeRiskScore(int level_weight, int asset_criticality, int ioc_confidence);
// Recomputes risk_score from the linked alerts and asset_criticality.
void RecomputeRisk(Incident& incident);

// Observables in an alert's ECS fields: source.ip, destination.ip (ip), url.original (url),
// url.domain and dns.question.name (domain), file.hash.* (hash), user.name (user),
// host.hostname or the alert's host (host), and the IOC value. Deduplicated.
std::vector<Observable> ExtractObservables(const AlertInput& alert);
// Adds `add` into `into`, merging equal (kind, value, field) entries.
void MergeObservables(std::vector<Observable>& into, const std::vector<Observable>& add);
// Removes alert ids from observables and drops those no alert (and no analyst) backs any more.
void RemoveAlertsFromObservables(std::vector<Observable>& obs, const std::set<std::string>& ids);

LinkedAlert ToLinkedAlert(const AlertInput& alert);

// "INC-2026-0001"; numbers above 9999 keep all digits.
std::string FormatIncidentId(int year, int number);
// Year and number of an id, or an error naming the expected form.
absl::StatusOr<std::pair<int, int>> ParseIncidentId(std::string_view id);

// True if `ip` (v4 or v6 text) lies in `cidr` ("10.0.0.0/8", "2001:db8::/32" or a bare address).
bool IpInCidr(std::string_view ip, std::string_view cidr);

// RFC 3339 UTC with milliseconds: 2026-11-28T10:00:00.123Z; "" for an unset time.
std::string FormatRfc3339(absl::Time t);
// Parses RFC 3339 (as FormatTime writes it, or with an offset); "" gives InfinitePast.
absl::StatusOr<absl::Time> ParseRfc3339(std::string_view text);

}  // namespace siper::incidents

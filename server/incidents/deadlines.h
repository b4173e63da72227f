// Regulatory deadlines: USOM notification (R3) and KVKK's 72 hours (R18).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "server/incidents/model.h"

namespace siper::incidents {

struct DeadlinePolicy {
  bool usom_enabled = true;  // default: true
  // The USOM clock starts when the incident has reached this state (or a later open state)
  // with at least this severity. Default: investigating, high.
  State usom_trigger_state = State::kInvestigating;
  Severity usom_min_severity = Severity::kHigh;
  // Time allowed after the trigger. Default: zero ("without delay", Law 7545 art. 7).
  absl::Duration usom_delay = absl::ZeroDuration();
  // KVKK: from detection of a personal-data breach. Default: 72 hours.
  absl::Duration kvkk_window = absl::Hours(72);
};

enum class DeadlineKind { kUsom, kKvkk };
enum class DeadlineStatus {
  kPending,  // not done, not yet due
  kOverdue,  // not done, past due
  kMet,      // done on time
  kMissed,   // done, but late
};
std::string_view ToString(DeadlineKind k);    // "usom", "kvkk"
std::string_view ToString(DeadlineStatus s);  // "pending", "overdue", "met", "missed"

struct Deadline {
  std::string incident_id;
  DeadlineKind kind = DeadlineKind::kUsom;
  absl::Time due;
  absl::Time done = absl::InfinitePast();  // when it was reported; InfinitePast if not yet
  DeadlineStatus status = DeadlineStatus::kPending;
};

// When USOM must have been told, if it must: not for exercises, nor for incidents closed as
// false positive or duplicate before being reported, nor before the trigger was reached.
std::optional<absl::Time> UsomDue(const Incident& incident, const DeadlinePolicy& policy);
// Detection + kvkk_window for incidents flagged as personal-data breaches with a detection
// time (exercises excluded).
std::optional<absl::Time> KvkkDue(const Incident& incident, const DeadlinePolicy& policy);

// The incident's deadlines and their status at `now`.
std::vector<Deadline> ComputeDeadlines(const Incident& incident, const DeadlinePolicy& policy,
                                       absl::Time now);
// Deadlines passed without the report being made, over all incidents, most overdue first.
// `incidents` as IncidentBook::View gives them (no copies).
std::vector<Deadline> Overdue(const std::vector<const Incident*>& incidents,
                              const DeadlinePolicy& policy, absl::Time now);

// A notice that a deadline passed. `key` ("INC-2026-0001/usom") identifies it so the caller
// sends it once: keep the keys sent and pass them back as `already_sent`.
// The server raises it as an alert with `rule_id` and `level` so it shows where analysts look.
struct DeadlineNotification {
  std::string key;
  std::string incident_id;
  DeadlineKind kind = DeadlineKind::kUsom;
  absl::Time due;
  std::string rule_id;  // "siper-deadline-usom" or "siper-deadline-kvkk"
  std::string level;    // "high"
  std::string title;    // short, English, e.g. "USOM notification overdue"
  std::string message;  // what passed and what to do
};
std::vector<DeadlineNotification> DeadlinePassedNotifications(
    const std::vector<const Incident*>& incidents, const DeadlinePolicy& policy, absl::Time now,
    const std::set<std::string>& already_sent);

}  // namespace siper::incidents

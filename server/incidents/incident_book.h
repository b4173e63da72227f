// The incident workflow over a set of incidents: alerts open and join incidents by policy,
// analysts create, merge, split and edit them, and every change goes to the audit log.
// In memory and single-threaded; the server holds it under its own lock, loads it from
// storage and persists what TakePendingWrite() returns (the stored form of stored.h: a
// growing incident hands out only its new alerts, timeline entries and observables).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/incidents/audit.h"
#include "server/incidents/clock.h"
#include "server/incidents/deadlines.h"
#include "server/incidents/model.h"
#include "server/incidents/stored.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents {

struct GroupingPolicy {
  // Alerts at or above this level open an incident. Default: "high".
  std::string min_level = "high";
  // Alerts of these rules open an incident whatever their level. Default: none.
  std::set<std::string> rule_ids;
  // An IOC hit with at least this confidence opens an incident. Default: on, 0.
  bool ioc_hit_opens = true;
  int min_ioc_confidence = 0;
  // Alerts from the same attacker (source.ip; without one, the same rule) on the same host
  // within this time of an alert already in an open incident join it. Default: 1 hour.
  absl::Duration window = absl::Hours(1);
  // Whether alerts below the opening threshold still join a matching open incident.
  // Default: true.
  bool attach_below_threshold = true;
  // Classification when the rule gives none (or one the taxonomy does not know).
  std::string default_rsit_class = "other";  // default: other/undetermined
  std::string default_rsit_type = "undetermined";
  Tlp default_tlp = Tlp::kAmber;  // default: AMBER
  // Asset criticality 1..5 by host name; hosts not listed get the default (3).
  std::map<std::string, int> asset_criticality;
  int default_asset_criticality = 3;
};

// Checks the policy's default classification against the taxonomy and its numbers' ranges;
// call after loading the configuration and the taxonomy.
[[nodiscard]] absl::Status ValidateGroupingPolicy(const GroupingPolicy& policy,
                                                  const Taxonomy& taxonomy);

// What the grouping policy decides an alert's fate on, as views (valid as long as what they
// view): `Triage(input)`, or made by the server from a stored alert before any AlertInput is
// built (incident_service.cc), so an alert the book would ignore costs no copies.
struct AlertTriage {
  std::string_view id;
  std::string_view rule_id;
  std::string_view level;
  absl::Time time = absl::InfinitePast();
  std::string_view source_ip;  // field source.ip, "" when none
  std::string_view host;       // field host.hostname, or AlertInput::host when that is empty
  bool ioc_hit = false;        // AlertInput::ioc_hit
  int ioc_confidence = 0;      // AlertInput::ioc_confidence
};
AlertTriage Triage(const AlertInput& alert);

// Whether the alert opens an incident under `policy`: its level reaches min_level, its rule
// is in rule_ids, or it is an IOC notice the policy opens on. Needs nothing of a book.
bool OpensIncident(const GroupingPolicy& policy, const AlertTriage& alert);
// False when no book with this policy can do anything with the alert: it does not open one
// and alerts below the threshold do not join (Ingest would ignore it, or find it linked).
inline bool MayOpenOrJoin(const GroupingPolicy& policy, const AlertTriage& alert) {
  return policy.attach_below_threshold || OpensIncident(policy, alert);
}

struct IngestResult {
  enum class Outcome {
    kIgnored,        // below policy and no open incident to join
    kOpened,         // a new incident was opened
    kAttached,       // joined an open incident
    kAlreadyLinked,  // the alert is already in an incident (a resend)
  };
  Outcome outcome = Outcome::kIgnored;
  std::string incident_id;
};

// What an analyst gives to create an incident by hand.
struct NewIncident {
  std::string title{};
  std::string description{};
  std::string rsit_class = "other";
  std::string rsit_type = "undetermined";
  Severity severity = Severity::kMedium;
  Tlp tlp = Tlp::kAmber;
  std::string assignee{};
  absl::Time occurred = absl::InfinitePast();
  absl::Time detected = absl::InfinitePast();  // default: now
  bool personal_data_breach = false;
  int asset_criticality = 3;
};

class IncidentBook {
 public:
  // `taxonomy` and `clock` must outlive the book; `audit` may be null (no audit).
  IncidentBook(const Taxonomy* taxonomy, const Clock* clock, GroupingPolicy policy = {},
               AuditLog* audit = nullptr);

  // Adds stored incidents (at start-up) and continues numbering after the highest id per year.
  // Incidents named in `rewrite` (stored in an older form) are handed out whole by the next
  // TakePendingWrite; the others count as stored as they are.
  [[nodiscard]] absl::Status Load(std::vector<Incident> incidents,
                                  const std::set<std::string>& rewrite = {});

  // Applies the grouping policy to one alert, as actor "system".
  IngestResult Ingest(const AlertInput& alert);
  // True exactly when Ingest(alert) would open an incident or join one (kOpened,
  // kAttached), with `triage` = Triage(alert); false when it would ignore it or find it
  // already linked, which change nothing. Costs a few lookups and no copy of the alert, so a
  // caller can skip building the AlertInput of an alert the book would not take.
  bool WouldChange(const AlertTriage& triage) const;

  absl::StatusOr<std::string> Create(const NewIncident& spec, const std::string& actor);
  [[nodiscard]] absl::Status Attach(const std::string& id, const AlertInput& alert,
                                    const std::string& actor);
  [[nodiscard]] absl::Status Detach(const std::string& id, const std::string& alert_id,
                                    const std::string& actor);
  // Moves everything from `sources` into `target`; sources close as duplicates.
  [[nodiscard]] absl::Status Merge(const std::string& target,
                                   const std::vector<std::string>& sources,
                                   const std::string& actor);
  // Moves `alert_ids` out of `id` into a new incident (same classification); returns its id.
  absl::StatusOr<std::string> Split(const std::string& id, const std::set<std::string>& alert_ids,
                                    const std::string& title, const std::string& actor);
  [[nodiscard]] absl::Status Transition(const std::string& id, State to, const std::string& actor,
                                        Resolution resolution = Resolution::kNone,
                                        const std::string& reason = "");
  // Any other edit (functions of workflow.h), audited as `action` with before and after.
  // `edit` gets the clock's now.
  [[nodiscard]] absl::Status Update(const std::string& id, const std::string& actor,
                                    const std::string& action,
                                    const std::function<absl::Status(Incident&, absl::Time)>& edit);

  const Incident* Find(const std::string& id) const;
  // Every incident, ordered by id: copies (for tests and reloading).
  std::vector<Incident> List() const;
  // The same without copying: valid until the book next changes (callers hold the lock that
  // guards the book).
  std::vector<const Incident*> View() const;
  std::vector<Deadline> Overdue(const DeadlinePolicy& policy) const;
  // Ids changed since the last call, for the storage layer to write.
  std::vector<std::string> TakeChanged();

  // What to persist after one or more operations, as values (serialize with stored.h's
  // Serialize, which may run without the book's lock): the changed incidents' heads, their
  // items added since the last call (or all of them, after a detach, merge, split or an
  // edit that rewrote the timeline), and the audit records appended since the last call.
  // Write them in one batch, in the order taken; if the write fails, reload the book from
  // storage rather than go on with memory ahead of disk.
  using PendingWrite = IncidentChanges;
  PendingWrite TakePendingWrite();

  const GroupingPolicy& policy() const { return policy_; }
  const Taxonomy& taxonomy() const { return *taxonomy_; }

 private:
  static std::string GroupKey(std::string_view source_ip, std::string_view rule_id,
                              std::string_view host);
  void RebuildGroupIndex();  // after Load, Detach, Merge, Split; Ingest/Attach add in place
  // The open incident the alert joins (attacker or rule, host, window), or null.
  const Incident* FindGroup(const AlertTriage& alert) const;
  Incident* Mutable(const std::string& id);
  std::string NextId(absl::Time now);
  int CriticalityOf(const std::string& host) const;
  void LinkAlert(Incident& incident, const AlertInput& alert, const std::string& actor,
                 absl::Time now);
  void Recompute(Incident& incident);
  // Appends an audit record; `before`/`after` are AuditSnapshot()s or deltas (null: none).
  // Marks `changed` for the next TakePendingWrite.
  void Audit(const std::string& actor, const std::string& action, const std::string& target,
             nlohmann::json before, nlohmann::json after, const std::string& changed,
             absl::Time now);
  // Rebuilds the derived state of one incident (observable index, event refs, maxima);
  // with `rewrite`, its items are handed out whole by the next TakePendingWrite.
  void Reindex(const std::string& id, bool rewrite);
  std::string FindAlertOwner(const std::string& alert_id) const;

  const Taxonomy* taxonomy_;
  const Clock* clock_;
  GroupingPolicy policy_;
  AuditLog* audit_;
  std::map<std::string, Incident> incidents_;
  std::map<std::string, std::string, std::less<>> alert_owner_;  // alert id -> incident id
  // Grouping key (attacker, host) -> incident id -> times of its alerts with that key, so
  // an alert finds its group without scanning every incident.
  std::map<std::string, std::map<std::string, std::multiset<absl::Time>>> group_index_;
  std::map<int, int> last_number_;  // year -> highest number used
  // Per incident: what storage holds of it and indexes that keep linking an alert O(1)-ish.
  struct Side {
    uint64_t stored_alerts = 0;  // alerts[0, stored_alerts) are stored items
    uint64_t stored_timeline = 0;
    uint64_t stored_observables = 0;
    bool rewrite = true;                 // items must be written whole (new or restructured)
    std::set<size_t> dirty_observables;  // stored observables changed in place
    std::vector<std::vector<ObservableKey>> new_alert_observables;  // for alerts not stored yet
    std::map<ObservableKey, size_t> observable_index;
    std::set<std::string> event_refs;
    int max_level = 1;  // highest LevelWeight of the alerts
    int max_ioc = 0;    // highest IOC confidence of the alerts
  };
  std::map<std::string, Side> side_;
  std::set<std::string> changed_;
  uint64_t audit_written_ = 0;  // highest audit seq handed out by TakePendingWrite
};

}  // namespace siper::incidents

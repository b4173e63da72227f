// The stored form of incidents, so that a growing incident costs storage O(new alerts), not
// O(incident): an incident is one small *head* record (every field but its alerts, timeline
// and observables, with their counts) plus one *item* record per linked alert, timeline
// entry and observable, keyed (incident id, kind, seq) and appended as the incident grows.
// An observable's alert ids are not stored with it: each alert item names the observables
// it backs, and loading rebuilds the sets. Event refs are derived from the alerts.
//
// Incidents stored before this form (one JSON record holding everything) are read as they
// are and rewritten in this form by the server at start-up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/incidents/audit.h"
#include "server/incidents/model.h"

namespace siper::incidents {

// Item kinds (one byte of the storage key).
inline constexpr char kAlertItem = 'a';
inline constexpr char kTimelineItem = 't';
inline constexpr char kObservableItem = 'o';
// The "format" field of a head record.
inline constexpr int kStoredFormat = 2;

// What identifies an observable within an incident: (kind, value, field).
using ObservableKey = std::tuple<ObservableKind, std::string, std::string>;
ObservableKey KeyOf(const Observable& o);

// The incident without its alerts, timeline and event refs, and its observables without
// their alert ids: what a head record and an audit snapshot hold. O(analyst-written
// fields + observables), never O(alerts).
// Without `with_observables`, observables are left out too (O(analyst-written fields)).
Incident HeadCopy(const Incident& in, bool with_observables = true);
// The observable without its alert ids.
Observable HeadObservable(const Observable& o);
// An audit before/after of `in`: HeadCopy as JSON with "alert_count" and "timeline_count".
nlohmann::json AuditSnapshot(const Incident& in);

// One changed incident's rows to write, as values: the book copies them under its lock and
// the server turns them into JSON without it (Serialize).
struct IncidentChanges {
  struct Head {
    Incident incident;  // HeadCopy, observables cleared (they are items)
    uint64_t alerts = 0;
    uint64_t timeline = 0;
    uint64_t observables = 0;
  };
  struct AlertItem {
    std::string incident_id;
    uint64_t seq = 0;
    LinkedAlert alert;
    std::vector<ObservableKey> observables;  // the observables this alert backs
  };
  struct TimelineItem {
    std::string incident_id;
    uint64_t seq = 0;
    TimelineEntry entry;
  };
  struct ObservableItem {
    std::string incident_id;
    uint64_t seq = 0;
    Observable observable;  // alert_ids empty
  };
  std::vector<Head> heads;
  std::vector<std::string> clear_items;  // incidents whose items are rewritten from scratch
  std::vector<AlertItem> alerts;
  std::vector<TimelineItem> timeline;
  std::vector<ObservableItem> observables;
  // Audit records appended meanwhile, as AuditLog::TakeForWrite hands them out: with
  // their stored text, and then without before/after.
  std::vector<AuditRecord> audit;
  bool empty() const { return heads.empty() && audit.empty(); }
};

// Rows as storage keeps them (the shape of storage::IncidentWrite).
struct StoredItem {
  std::string incident_id;
  char kind = 0;
  uint64_t seq = 0;
  std::string json;
};
struct StoredWrite {
  std::vector<std::pair<std::string, std::string>> incidents;  // id -> head JSON
  std::vector<std::pair<uint64_t, std::string>> audit;         // seq -> JSON
  std::vector<std::string> clear_items;                        // delete before `items`
  std::vector<StoredItem> items;
  bool empty() const { return incidents.empty() && audit.empty(); }
};

// Serializes one change set (each ingest thread its own, without any lock).
StoredWrite Serialize(const IncidentChanges& changes);
// Combines writes of change sets, given in the order the sets were taken, into one write:
// a later head replaces an earlier one, a later item an earlier one with its key, and a
// later clear of an incident drops the items the earlier writes had for it (the clear runs
// before every put of the write). Moves the text, makes no JSON.
StoredWrite Combine(std::vector<StoredWrite> writes);
// Serialize of each set, then Combine.
StoredWrite Serialize(const std::vector<const IncidentChanges*>& changes);

// One stored item as read back: kind, seq, JSON text.
struct ReadItem {
  char kind = 0;
  uint64_t seq = 0;
  std::string json;
};

// Builds the incident from its stored record and items (in key order: kind, then seq).
// `*old_format` is set when the record is the older whole-incident JSON (items must then be
// empty). Errors name the incident and what does not match (a missing or extra item, a
// count that differs from the head).
absl::StatusOr<Incident> AssembleIncident(std::string_view record,
                                          const std::vector<ReadItem>& items, bool* old_format);

}  // namespace siper::incidents

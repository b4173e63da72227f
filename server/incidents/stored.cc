#include "server/incidents/stored.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/incidents/json.h"

namespace siper::incidents {
namespace {

using nlohmann::json;

constexpr const char* kCollections[] = {"alerts", "event_refs", "timeline", "observables"};

json ObservableItemJson(const Observable& o) {
  json j = ObservableToJson(o);
  j.erase("alert_ids");
  return j;
}

json HeadJson(const IncidentChanges::Head& h) {
  json j = IncidentToJson(h.incident);
  for (const char* key : kCollections) j.erase(key);
  j["format"] = kStoredFormat;
  j["alert_count"] = h.alerts;
  j["timeline_count"] = h.timeline;
  j["observable_count"] = h.observables;
  return j;
}

json AlertItemJson(const IncidentChanges::AlertItem& a) {
  json j = LinkedAlertToJson(a.alert);
  if (!a.observables.empty()) {
    json keys = json::array();
    for (const auto& [kind, value, field] : a.observables) {
      keys.push_back(json::array({std::string(ToString(kind)), value, field}));
    }
    j["observables"] = std::move(keys);
  }
  return j;
}

absl::Status Mismatch(const std::string& id, const std::string& what) {
  return absl::DataLossError(absl::StrCat("stored incident ", id, ": ", what,
                                          "; restore the data directory from a backup"));
}

}  // namespace

ObservableKey KeyOf(const Observable& o) { return {o.kind, o.value, o.field}; }

Observable HeadObservable(const Observable& o) {
  Observable c;
  c.kind = o.kind;
  c.value = o.value;
  c.hash_algo = o.hash_algo;
  c.field = o.field;
  c.first_seen = o.first_seen;
  c.last_seen = o.last_seen;
  return c;
}

Incident HeadCopy(const Incident& in, bool with_observables) {
  // Every field of Incident but alerts, event_refs and timeline (keep in step with model.h).
  Incident h;
  h.id = in.id;
  h.title = in.title;
  h.description = in.description;
  h.rsit_class = in.rsit_class;
  h.rsit_type = in.rsit_type;
  h.severity = in.severity;
  h.risk_score = in.risk_score;
  h.asset_criticality = in.asset_criticality;
  h.tlp = in.tlp;
  h.state = in.state;
  h.resolution = in.resolution;
  h.assignee = in.assignee;
  h.usom_reference = in.usom_reference;
  h.impact = in.impact;
  h.actions = in.actions;
  if (with_observables) {
    h.observables.reserve(in.observables.size());
    for (const Observable& o : in.observables) h.observables.push_back(HeadObservable(o));
  }
  h.notes = in.notes;
  h.times = in.times;
  h.kvkk = in.kvkk;
  h.merged_into = in.merged_into;
  return h;
}

json AuditSnapshot(const Incident& in) {
  json j = IncidentToJson(HeadCopy(in));
  for (const char* key : {"alerts", "event_refs", "timeline"}) j.erase(key);
  for (json& o : j["observables"]) o.erase("alert_ids");
  j["alert_count"] = in.alerts.size();
  j["timeline_count"] = in.timeline.size();
  return j;
}

StoredWrite Serialize(const IncidentChanges& c) {
  StoredWrite w;
  // One set holds one head per incident (TakePendingWrite) and each item once.
  w.clear_items = c.clear_items;
  w.incidents.reserve(c.heads.size());
  for (const IncidentChanges::Head& h : c.heads) {
    w.incidents.emplace_back(h.incident.id, Dump(HeadJson(h)));
  }
  w.items.reserve(c.alerts.size() + c.timeline.size() + c.observables.size());
  for (const IncidentChanges::AlertItem& a : c.alerts) {
    w.items.push_back({a.incident_id, kAlertItem, a.seq, Dump(AlertItemJson(a))});
  }
  for (const IncidentChanges::TimelineItem& t : c.timeline) {
    w.items.push_back({t.incident_id, kTimelineItem, t.seq, Dump(TimelineEntryToJson(t.entry))});
  }
  for (const IncidentChanges::ObservableItem& o : c.observables) {
    w.items.push_back(
        {o.incident_id, kObservableItem, o.seq, Dump(ObservableItemJson(o.observable))});
  }
  // In key order, as a combined write has them (readers of a write may rely on it).
  std::sort(w.incidents.begin(), w.incidents.end());
  std::sort(w.items.begin(), w.items.end(), [](const StoredItem& x, const StoredItem& y) {
    return std::tie(x.incident_id, x.kind, x.seq) < std::tie(y.incident_id, y.kind, y.seq);
  });
  std::sort(w.clear_items.begin(), w.clear_items.end());
  w.audit.reserve(c.audit.size());
  for (const AuditRecord& r : c.audit) {
    // The text Append made with the hash; built again only for records made otherwise.
    w.audit.emplace_back(r.seq, r.text.empty() ? Dump(AuditRecordToJson(r)) : r.text);
  }
  return w;
}

StoredWrite Combine(std::vector<StoredWrite> writes) {
  if (writes.size() == 1) return std::move(writes.front());
  StoredWrite w;
  // Later writes win: heads by id, items by key; a clear forgets earlier items of its
  // incident.
  std::map<std::string, std::string> heads;
  std::map<std::tuple<std::string, char, uint64_t>, std::string> items;
  std::set<std::string> cleared;
  for (StoredWrite& s : writes) {
    for (std::string& id : s.clear_items) {
      auto first = items.lower_bound({id, 0, 0});
      auto last = first;
      while (last != items.end() && std::get<0>(last->first) == id) ++last;
      items.erase(first, last);
      cleared.insert(std::move(id));
    }
    for (auto& [id, text] : s.incidents) heads[id] = std::move(text);
    for (StoredItem& i : s.items) {
      items[{std::move(i.incident_id), i.kind, i.seq}] = std::move(i.json);
    }
    for (auto& a : s.audit) w.audit.push_back(std::move(a));
  }
  w.incidents.reserve(heads.size());
  for (auto& [id, text] : heads) w.incidents.emplace_back(id, std::move(text));
  w.clear_items.assign(cleared.begin(), cleared.end());
  w.items.reserve(items.size());
  for (auto& [key, text] : items) {
    w.items.push_back(
        StoredItem{std::get<0>(key), std::get<1>(key), std::get<2>(key), std::move(text)});
  }
  return w;
}

StoredWrite Serialize(const std::vector<const IncidentChanges*>& changes) {
  std::vector<StoredWrite> writes;
  writes.reserve(changes.size());
  for (const IncidentChanges* c : changes) writes.push_back(Serialize(*c));
  return Combine(std::move(writes));
}

absl::StatusOr<Incident> AssembleIncident(std::string_view record,
                                          const std::vector<ReadItem>& items, bool* old_format) {
  json j = json::parse(record.begin(), record.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::DataLossError("a stored incident is not valid JSON; restore it from backup");
  }
  const bool head = j.is_object() && j.value("format", 0) == kStoredFormat;
  *old_format = !head;
  absl::StatusOr<Incident> parsed = IncidentFromJson(j);
  if (!parsed.ok() || !head) {
    if (parsed.ok() && !items.empty()) {
      return Mismatch(parsed->id, "an incident of the old whole-record form has item records");
    }
    return parsed;
  }
  Incident in = *std::move(parsed);
  const std::string& id = in.id;
  uint64_t want_alerts = 0;
  uint64_t want_timeline = 0;
  uint64_t want_observables = 0;
  try {
    want_alerts = j.at("alert_count").get<uint64_t>();
    want_timeline = j.at("timeline_count").get<uint64_t>();
    want_observables = j.at("observable_count").get<uint64_t>();
  } catch (const std::exception& e) {
    return Mismatch(id, absl::StrCat("the record lacks its item counts (", e.what(), ")"));
  }
  std::vector<std::vector<ObservableKey>> alert_observables;
  try {
    for (const ReadItem& item : items) {
      json v = json::parse(item.json, nullptr, /*allow_exceptions=*/false);
      if (v.is_discarded() || !v.is_object()) {
        return Mismatch(id, absl::StrCat("item ", std::string(1, item.kind), "/", item.seq,
                                         " is not a JSON object"));
      }
      auto expect_seq = [&](size_t have, const char* what) -> absl::Status {
        if (item.seq != have) {
          return Mismatch(
              id, absl::StrCat(what, " ", have, " is missing (next stored is ", item.seq, ")"));
        }
        return absl::OkStatus();
      };
      switch (item.kind) {
        case kAlertItem: {
          if (absl::Status st = expect_seq(in.alerts.size(), "linked alert"); !st.ok()) return st;
          std::vector<ObservableKey> keys;
          for (const json& k : v.value("observables", json::array())) {
            absl::StatusOr<ObservableKind> kind = ParseObservableKind(k.at(0).get<std::string>());
            if (!kind.ok()) return Mismatch(id, std::string(kind.status().message()));
            keys.emplace_back(*kind, k.at(1).get<std::string>(), k.at(2).get<std::string>());
          }
          in.alerts.push_back(LinkedAlertFromJson(v));
          alert_observables.push_back(std::move(keys));
          break;
        }
        case kTimelineItem:
          if (absl::Status st = expect_seq(in.timeline.size(), "timeline entry"); !st.ok())
            return st;
          in.timeline.push_back(TimelineEntryFromJson(v));
          break;
        case kObservableItem:
          if (absl::Status st = expect_seq(in.observables.size(), "observable"); !st.ok())
            return st;
          in.observables.push_back(ObservableFromJson(v));
          break;
        default:
          return Mismatch(id, absl::StrCat("unknown item kind 0x",
                                           absl::Hex(static_cast<unsigned char>(item.kind))));
      }
    }
  } catch (const std::exception& e) {
    return Mismatch(id, absl::StrCat("an item is malformed: ", e.what()));
  }
  if (in.alerts.size() != want_alerts || in.timeline.size() != want_timeline ||
      in.observables.size() != want_observables) {
    return Mismatch(id, absl::StrCat("the record counts ", want_alerts, " alerts, ", want_timeline,
                                     " timeline entries and ", want_observables,
                                     " observables, storage holds ", in.alerts.size(), ", ",
                                     in.timeline.size(), " and ", in.observables.size()));
  }
  // Observables' alert ids and the event refs follow from the alerts.
  std::map<ObservableKey, size_t> index;
  for (size_t i = 0; i < in.observables.size(); ++i) index[KeyOf(in.observables[i])] = i;
  std::set<std::string> refs;
  for (size_t i = 0; i < in.alerts.size(); ++i) {
    const LinkedAlert& a = in.alerts[i];
    for (const ObservableKey& k : alert_observables[i]) {
      auto it = index.find(k);
      if (it == index.end()) {
        return Mismatch(id, absl::StrCat("alert ", a.id, " names an observable (", std::get<1>(k),
                                         ") the incident does not have"));
      }
      in.observables[it->second].alert_ids.insert(a.id);
    }
    if (a.agent_id.empty()) continue;
    std::string ref = absl::StrCat(a.agent_id, ":", a.seq);
    if (refs.insert(ref).second) in.event_refs.push_back(std::move(ref));
  }
  return in;
}

}  // namespace siper::incidents

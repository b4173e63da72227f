#include "server/incidents/incident_book.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/incidents/json.h"
#include "server/incidents/workflow.h"

namespace siper::incidents {
namespace {

std::string SourceIp(const AlertInput& a) { return std::string(a.Field("source.ip")); }

std::string HostOf(const AlertInput& a) {
  const std::string_view host = a.Field("host.hostname");
  return !host.empty() ? std::string(host) : a.host;
}

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("no incident ", id, "; list them with `siperctl incidents list`"));
}

absl::Status ClosedError(const Incident& in, const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(
      in.id, " is closed; reopen it (transition to triage or investigating) before ", what));
}

}  // namespace

absl::Status ValidateGroupingPolicy(const GroupingPolicy& policy, const Taxonomy& taxonomy) {
  if (absl::Status st = taxonomy.Validate(policy.default_rsit_class, policy.default_rsit_type);
      !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("incidents.grouping.default_rsit: ", std::string(st.message())));
  }
  if (policy.default_asset_criticality < 1 || policy.default_asset_criticality > 5) {
    return absl::InvalidArgumentError("incidents.grouping.default_asset_criticality must be 1..5");
  }
  for (const auto& [host, c] : policy.asset_criticality) {
    if (c < 1 || c > 5) {
      return absl::InvalidArgumentError(
          absl::StrCat("incidents.grouping.asset_criticality.", host, " must be 1..5"));
    }
  }
  if (policy.window < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("incidents.grouping.window must not be negative");
  }
  return absl::OkStatus();
}

IncidentBook::IncidentBook(const Taxonomy* taxonomy, const Clock* clock, GroupingPolicy policy,
                           AuditLog* audit)
    : taxonomy_(taxonomy),
      clock_(clock),
      policy_(std::move(policy)),
      audit_(audit),
      audit_written_(audit != nullptr ? audit->records().size() : 0) {}

absl::Status IncidentBook::Load(std::vector<Incident> incidents,
                                const std::set<std::string>& rewrite) {
  for (Incident& in : incidents) {
    auto parsed = ParseIncidentId(in.id);
    if (!parsed.ok()) return parsed.status();
    if (incidents_.count(in.id) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("incident ", in.id, " is loaded twice"));
    }
    int& last = last_number_[parsed->first];
    last = std::max(last, parsed->second);
    for (const LinkedAlert& a : in.alerts) alert_owner_[a.id] = in.id;
    const std::string id = in.id;
    incidents_.emplace(id, std::move(in));
    if (rewrite.contains(id)) {
      Reindex(id, /*rewrite=*/true);
      changed_.insert(id);
    } else {
      Reindex(id, /*rewrite=*/false);
      Side& side = side_[id];
      side.rewrite = false;
      const Incident& stored = incidents_.at(id);
      side.stored_alerts = stored.alerts.size();
      side.stored_timeline = stored.timeline.size();
      side.stored_observables = stored.observables.size();
    }
  }
  RebuildGroupIndex();
  return absl::OkStatus();
}

std::string IncidentBook::NextId(absl::Time now) {
  const int year = static_cast<int>(absl::ToCivilYear(now, absl::UTCTimeZone()).year());
  return FormatIncidentId(year, ++last_number_[year]);
}

int IncidentBook::CriticalityOf(const std::string& host) const {
  auto it = policy_.asset_criticality.find(host);
  return it == policy_.asset_criticality.end() ? policy_.default_asset_criticality : it->second;
}

AlertTriage Triage(const AlertInput& alert) {
  AlertTriage t;
  t.id = alert.id;
  t.rule_id = alert.rule_id;
  t.level = alert.level;
  t.time = alert.time;
  t.source_ip = alert.Field("source.ip");
  t.host = alert.Field("host.hostname");
  if (t.host.empty()) t.host = alert.host;
  t.ioc_hit = alert.ioc_hit;
  t.ioc_confidence = alert.ioc_confidence;
  return t;
}

bool OpensIncident(const GroupingPolicy& policy, const AlertTriage& alert) {
  if (LevelWeight(alert.level) >= LevelWeight(policy.min_level)) return true;
  if (!policy.rule_ids.empty() && policy.rule_ids.contains(std::string(alert.rule_id))) {
    return true;
  }
  return policy.ioc_hit_opens && alert.ioc_hit && alert.ioc_confidence >= policy.min_ioc_confidence;
}

std::string IncidentBook::GroupKey(std::string_view source_ip, std::string_view rule_id,
                                   std::string_view host) {
  // The attacker is the source address; without one, the rule stands in for it.
  const std::string_view kind = source_ip.empty() ? "rule\x1f" : "ip\x1f";
  const std::string_view who = source_ip.empty() ? rule_id : source_ip;
  std::string key;
  key.reserve(kind.size() + who.size() + 1 + host.size());
  key.append(kind).append(who).append("\x1f").append(host);
  return key;
}

namespace {

void IndexAlert(std::map<std::string, std::map<std::string, std::multiset<absl::Time>>>& index,
                const std::string& key, const std::string& incident_id, absl::Time t) {
  index[key][incident_id].insert(t);
}

}  // namespace

void IncidentBook::RebuildGroupIndex() {
  group_index_.clear();
  for (const auto& [id, in] : incidents_) {
    for (const LinkedAlert& a : in.alerts) {
      IndexAlert(group_index_, GroupKey(a.source_ip, a.rule_id, a.host), id, a.time);
    }
  }
}

const Incident* IncidentBook::FindGroup(const AlertTriage& alert) const {
  if (group_index_.empty()) return nullptr;
  auto key = group_index_.find(GroupKey(alert.source_ip, alert.rule_id, alert.host));
  if (key == group_index_.end()) return nullptr;
  const Incident* best = nullptr;
  absl::Time best_time = absl::InfinitePast();
  for (const auto& [id, times] : key->second) {
    const Incident* in = Find(id);
    if (in == nullptr || !in->open()) continue;
    // The latest alert of this attack within the window on either side of the new one.
    auto it = times.upper_bound(alert.time + policy_.window);
    if (it == times.begin()) continue;
    const absl::Time t = *std::prev(it);
    if (t < alert.time - policy_.window) continue;
    if (best == nullptr || t > best_time) {
      best = in;
      best_time = t;
    }
  }
  return best;
}

Incident* IncidentBook::Mutable(const std::string& id) {
  auto it = incidents_.find(id);
  return it == incidents_.end() ? nullptr : &it->second;
}

const Incident* IncidentBook::Find(const std::string& id) const {
  auto it = incidents_.find(id);
  return it == incidents_.end() ? nullptr : &it->second;
}

std::string IncidentBook::FindAlertOwner(const std::string& alert_id) const {
  auto it = alert_owner_.find(alert_id);
  return it == alert_owner_.end() ? std::string() : it->second;
}

void IncidentBook::Audit(const std::string& actor, const std::string& action,
                         const std::string& target, nlohmann::json before, nlohmann::json after,
                         const std::string& changed, absl::Time now) {
  if (!changed.empty()) changed_.insert(changed);
  if (audit_ == nullptr) return;
  audit_->Append(now, actor, action, target, std::move(before), std::move(after));
}

void IncidentBook::Reindex(const std::string& id, bool rewrite) {
  Side& side = side_[id];
  const Incident* in = Find(id);
  if (in == nullptr) {
    side_.erase(id);
    return;
  }
  side.observable_index.clear();
  for (size_t i = 0; i < in->observables.size(); ++i) {
    side.observable_index[KeyOf(in->observables[i])] = i;
  }
  side.event_refs = std::set<std::string>(in->event_refs.begin(), in->event_refs.end());
  side.max_level = 1;
  side.max_ioc = 0;
  for (const LinkedAlert& a : in->alerts) {
    side.max_level = std::max(side.max_level, LevelWeight(a.level));
    side.max_ioc = std::max(side.max_ioc, a.ioc_confidence);
  }
  if (rewrite) {
    side.rewrite = true;
    side.dirty_observables.clear();
    side.new_alert_observables.clear();
  }
}

void IncidentBook::Recompute(Incident& in) {
  int crit = 1;
  bool any_host = false;
  for (const LinkedAlert& a : in.alerts) {
    if (a.host.empty()) continue;
    any_host = true;
    crit = std::max(crit, CriticalityOf(a.host));
  }
  if (any_host) in.asset_criticality = std::max(in.asset_criticality, crit);
  RecomputeRisk(in);
  for (const LinkedAlert& a : in.alerts) {
    if (!IsSet(in.times.occurred) || a.occurred < in.times.occurred) in.times.occurred = a.occurred;
  }
}

// Costs O(log of the incident's size): everything it updates is indexed (side_), so an
// incident that keeps growing does not slow ingest down.
void IncidentBook::LinkAlert(Incident& in, const AlertInput& alert, const std::string& actor,
                             absl::Time now) {
  Side& side = side_[in.id];
  in.alerts.push_back(ToLinkedAlert(alert));
  const LinkedAlert& linked = in.alerts.back();
  if (!alert.agent_id.empty()) {
    std::string ref = absl::StrCat(alert.agent_id, ":", alert.seq);
    if (side.event_refs.insert(ref).second) in.event_refs.push_back(std::move(ref));
  }
  // As MergeObservables, through the index.
  std::vector<ObservableKey> keys;
  for (Observable& o : ExtractObservables(alert)) {
    ObservableKey key = KeyOf(o);
    auto found = side.observable_index.find(key);
    if (found == side.observable_index.end()) {
      side.observable_index.emplace(key, in.observables.size());
      in.observables.push_back(std::move(o));
    } else {
      Observable& x = in.observables[found->second];
      x.first_seen = std::min(x.first_seen, o.first_seen);
      x.last_seen = std::max(x.last_seen, o.last_seen);
      x.alert_ids.insert(o.alert_ids.begin(), o.alert_ids.end());
      if (x.hash_algo.empty()) x.hash_algo = o.hash_algo;
      if (found->second < side.stored_observables) side.dirty_observables.insert(found->second);
    }
    keys.push_back(std::move(key));
  }
  if (!side.rewrite) side.new_alert_observables.push_back(std::move(keys));
  alert_owner_[alert.id] = in.id;
  IndexAlert(group_index_, GroupKey(linked.source_ip, linked.rule_id, linked.host), in.id,
             linked.time);
  // As Recompute, for the one new alert.
  if (!linked.host.empty()) {
    in.asset_criticality = std::max(in.asset_criticality, CriticalityOf(linked.host));
  }
  side.max_level = std::max(side.max_level, LevelWeight(linked.level));
  side.max_ioc = std::max(side.max_ioc, linked.ioc_confidence);
  in.risk_score = ComputeRiskScore(side.max_level, in.asset_criticality, side.max_ioc);
  if (!IsSet(in.times.occurred) || linked.occurred < in.times.occurred) {
    in.times.occurred = linked.occurred;
  }
  AddTimeline(
      in, now, actor, "alert-attached",
      absl::StrCat("alert ", alert.id, " (", alert.rule_id, ", ", alert.level, ") ", alert.title));
}

bool IncidentBook::WouldChange(const AlertTriage& triage) const {
  // Ingest's decisions, in its order, without its effects.
  if (alert_owner_.contains(triage.id)) return false;
  const bool opens = OpensIncident(policy_, triage);
  if (opens) return true;  // opens one, or joins one
  return policy_.attach_below_threshold && FindGroup(triage) != nullptr;
}

IngestResult IncidentBook::Ingest(const AlertInput& alert) {
  const absl::Time now = clock_->Now();
  if (const std::string owner = FindAlertOwner(alert.id); !owner.empty()) {
    return {IngestResult::Outcome::kAlreadyLinked, owner};
  }
  const AlertTriage triage = Triage(alert);
  const bool opens = OpensIncident(policy_, triage);
  if (opens || policy_.attach_below_threshold) {
    if (const Incident* found = FindGroup(triage)) {
      Incident* in = Mutable(found->id);
      // A delta, not the whole incident before and after: this runs for every alert of an
      // attack, and its cost must not grow with the incident.
      auto summary = [](const Incident& i) {
        return nlohmann::json{{"state", std::string(ToString(i.state))},
                              {"severity", std::string(ToString(i.severity))},
                              {"risk_score", i.risk_score},
                              {"asset_criticality", i.asset_criticality},
                              {"alert_count", i.alerts.size()}};
      };
      nlohmann::json before = summary(*in);
      LinkAlert(*in, alert, "system", now);
      // An alert above the incident's severity raises it.
      const Severity sev = SeverityFromLevel(alert.level);
      if (sev > in->severity) (void)SetSeverity(*in, sev, "system", now);
      nlohmann::json after = summary(*in);
      after["alert"] = LinkedAlertToJson(in->alerts.back());
      Audit("system", "incident.attach-alert", in->id, std::move(before), std::move(after), in->id,
            now);
      return {IngestResult::Outcome::kAttached, in->id};
    }
  }
  if (!opens) return {IngestResult::Outcome::kIgnored, ""};

  Incident in;
  in.id = NextId(now);
  const std::string ip = SourceIp(alert);
  const std::string host = HostOf(alert);
  // Language-neutral, since the title goes into Turkish and English reports alike.
  in.title = alert.title;
  if (!ip.empty() && !host.empty()) {
    absl::StrAppend(&in.title, " (", ip, " → ", host, ")");
  } else if (!ip.empty() || !host.empty()) {
    absl::StrAppend(&in.title, " (", ip, host, ")");
  }
  in.tlp = policy_.default_tlp;
  in.asset_criticality = 1;
  in.times.created = now;
  in.times.detected = alert.time;
  in.times.occurred = ToLinkedAlert(alert).occurred;
  std::string note;
  if (taxonomy_->Validate(alert.rsit_class, alert.rsit_type).ok()) {
    in.rsit_class = alert.rsit_class;
    in.rsit_type = alert.rsit_type;
  } else {
    in.rsit_class = policy_.default_rsit_class;
    in.rsit_type = policy_.default_rsit_type;
    if (!alert.rsit_class.empty()) {
      note =
          absl::StrCat("; rule's RSIT ", alert.rsit_class, "/", alert.rsit_type,
                       " is not in the taxonomy, classified as ", in.rsit_class, "/", in.rsit_type);
    }
  }
  in.severity = SeverityFromLevel(alert.level);
  MarkEntered(in, State::kNew, now);
  MarkSeverity(in, in.severity, now);
  AddTimeline(in, now, "system", "created",
              absl::StrCat("opened by alert ", alert.id, " (rule ", alert.rule_id, ")", note));
  const std::string id = in.id;
  auto [it, inserted] = incidents_.emplace(id, std::move(in));
  Reindex(id, /*rewrite=*/true);
  LinkAlert(it->second, alert, "system", now);
  Audit("system", "incident.open", id, nullptr, AuditSnapshot(it->second), id, now);
  return {IngestResult::Outcome::kOpened, id};
}

absl::StatusOr<std::string> IncidentBook::Create(const NewIncident& spec,
                                                 const std::string& actor) {
  const absl::Time now = clock_->Now();
  if (spec.title.empty()) {
    return absl::InvalidArgumentError("a new incident needs a title");
  }
  if (absl::Status st = taxonomy_->Validate(spec.rsit_class, spec.rsit_type); !st.ok()) return st;
  if (spec.asset_criticality < 1 || spec.asset_criticality > 5) {
    return absl::InvalidArgumentError(absl::StrCat("asset criticality ", spec.asset_criticality,
                                                   " is out of range; use 1 (lowest) to 5"));
  }
  Incident in;
  in.id = NextId(now);
  in.title = spec.title;
  in.description = spec.description;
  in.rsit_class = spec.rsit_class;
  in.rsit_type = spec.rsit_type;
  in.severity = spec.severity;
  in.tlp = spec.tlp;
  in.assignee = spec.assignee;
  in.asset_criticality = spec.asset_criticality;
  in.times.created = now;
  in.times.detected = IsSet(spec.detected) ? spec.detected : now;
  in.times.occurred = spec.occurred;
  in.kvkk.personal_data_breach = spec.personal_data_breach;
  RecomputeRisk(in);
  MarkEntered(in, State::kNew, now);
  MarkSeverity(in, in.severity, now);
  AddTimeline(in, now, actor, "created", absl::StrCat("created by ", actor));
  const std::string id = in.id;
  auto [it, inserted] = incidents_.emplace(id, std::move(in));
  Reindex(id, /*rewrite=*/true);
  Audit(actor, "incident.create", id, nullptr, AuditSnapshot(it->second), id, now);
  return id;
}

absl::Status IncidentBook::Attach(const std::string& id, const AlertInput& alert,
                                  const std::string& actor) {
  Incident* in = Mutable(id);
  if (in == nullptr) return NotFound(id);
  if (!in->open()) return ClosedError(*in, "attaching alerts");
  if (alert.id.empty()) return absl::InvalidArgumentError("the alert to attach has no id");
  if (const std::string owner = FindAlertOwner(alert.id); !owner.empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat("alert ", alert.id, " is already in ", owner, "; detach it from there first"));
  }
  const absl::Time now = clock_->Now();
  nlohmann::json before = AuditSnapshot(*in);
  LinkAlert(*in, alert, actor, now);
  nlohmann::json after = AuditSnapshot(*in);
  after["alert"] = LinkedAlertToJson(in->alerts.back());
  Audit(actor, "incident.attach-alert", id, std::move(before), std::move(after), id, now);
  return absl::OkStatus();
}

absl::Status IncidentBook::Detach(const std::string& id, const std::string& alert_id,
                                  const std::string& actor) {
  Incident* in = Mutable(id);
  if (in == nullptr) return NotFound(id);
  if (!in->open()) return ClosedError(*in, "detaching alerts");
  auto it = std::find_if(in->alerts.begin(), in->alerts.end(),
                         [&](const LinkedAlert& a) { return a.id == alert_id; });
  if (it == in->alerts.end()) {
    return absl::NotFoundError(absl::StrCat("alert ", alert_id, " is not in ", id));
  }
  const absl::Time now = clock_->Now();
  nlohmann::json before = AuditSnapshot(*in);
  const std::string ref = absl::StrCat(it->agent_id, ":", it->seq);
  in->alerts.erase(it);
  const bool ref_still_used = std::any_of(
      in->alerts.begin(), in->alerts.end(),
      [&](const LinkedAlert& a) { return absl::StrCat(a.agent_id, ":", a.seq) == ref; });
  if (!ref_still_used) {
    in->event_refs.erase(std::remove(in->event_refs.begin(), in->event_refs.end(), ref),
                         in->event_refs.end());
  }
  RemoveAlertsFromObservables(in->observables, {alert_id});
  alert_owner_.erase(alert_id);
  RecomputeRisk(*in);
  RebuildGroupIndex();
  AddTimeline(*in, now, actor, "alert-detached", absl::StrCat("alert ", alert_id, " detached"));
  Reindex(id, /*rewrite=*/true);
  nlohmann::json after = AuditSnapshot(*in);
  after["detached_alert"] = alert_id;
  Audit(actor, "incident.detach-alert", id, std::move(before), std::move(after), id, now);
  return absl::OkStatus();
}

absl::Status IncidentBook::Merge(const std::string& target, const std::vector<std::string>& sources,
                                 const std::string& actor) {
  Incident* into = Mutable(target);
  if (into == nullptr) return NotFound(target);
  if (!into->open()) return ClosedError(*into, "merging into it");
  if (sources.empty())
    return absl::InvalidArgumentError("merge needs at least one incident to merge");
  std::set<std::string> seen;
  for (const std::string& s : sources) {
    if (s == target) {
      return absl::InvalidArgumentError(absl::StrCat("cannot merge ", s, " into itself"));
    }
    if (!seen.insert(s).second) {
      return absl::InvalidArgumentError(absl::StrCat(s, " is named twice in the merge"));
    }
    const Incident* src = Find(s);
    if (src == nullptr) return NotFound(s);
    if (!src->open()) return ClosedError(*src, "merging it");
  }
  const absl::Time now = clock_->Now();
  nlohmann::json before_target = AuditSnapshot(*into);
  for (const std::string& s : sources) {
    Incident* src = Mutable(s);
    nlohmann::json before_src = AuditSnapshot(*src);
    const size_t moved = src->alerts.size();
    for (const LinkedAlert& a : src->alerts) {
      into->alerts.push_back(a);
      alert_owner_[a.id] = target;
    }
    for (const std::string& r : src->event_refs) {
      if (std::find(into->event_refs.begin(), into->event_refs.end(), r) ==
          into->event_refs.end()) {
        into->event_refs.push_back(r);
      }
    }
    MergeObservables(into->observables, src->observables);
    into->notes.insert(into->notes.end(), src->notes.begin(), src->notes.end());
    into->actions.insert(into->actions.end(), src->actions.begin(), src->actions.end());
    for (const TimelineEntry& e : src->timeline) {
      into->timeline.push_back(
          TimelineEntry{e.time, e.actor, e.kind, absl::StrCat("[", s, "] ", e.text)});
    }
    if (IsSet(src->times.occurred) &&
        (!IsSet(into->times.occurred) || src->times.occurred < into->times.occurred)) {
      into->times.occurred = src->times.occurred;
    }
    if (IsSet(src->times.detected) &&
        (!IsSet(into->times.detected) || src->times.detected < into->times.detected)) {
      into->times.detected = src->times.detected;
    }
    if (src->severity > into->severity) (void)SetSeverity(*into, src->severity, actor, now);
    into->asset_criticality = std::max(into->asset_criticality, src->asset_criticality);
    into->kvkk.personal_data_breach |= src->kvkk.personal_data_breach;
    src->alerts.clear();
    src->observables.clear();
    src->event_refs.clear();
    absl::Status st =
        siper::incidents::Transition(*src, State::kClosed, actor, now, Resolution::kDuplicate,
                                     absl::StrCat("merged into ", target));
    if (!st.ok()) return st;  // cannot happen: every open state may close
    src->merged_into = target;
    Reindex(s, /*rewrite=*/true);
    nlohmann::json after_src = AuditSnapshot(*src);
    after_src["moved_alerts"] = moved;
    Audit(actor, "incident.merged-away", s, std::move(before_src), std::move(after_src), s, now);
  }
  std::sort(into->timeline.begin(), into->timeline.end(),
            [](const TimelineEntry& a, const TimelineEntry& b) { return a.time < b.time; });
  RecomputeRisk(*into);
  RebuildGroupIndex();
  AddTimeline(*into, now, actor, "merged", absl::StrCat("merged ", absl::StrJoin(sources, ", ")));
  Reindex(target, /*rewrite=*/true);
  nlohmann::json after_target = AuditSnapshot(*into);
  after_target["merged"] = sources;
  Audit(actor, "incident.merge", target, std::move(before_target), std::move(after_target), target,
        now);
  return absl::OkStatus();
}

absl::StatusOr<std::string> IncidentBook::Split(const std::string& id,
                                                const std::set<std::string>& alert_ids,
                                                const std::string& title,
                                                const std::string& actor) {
  Incident* from = Mutable(id);
  if (from == nullptr) return NotFound(id);
  if (!from->open()) return ClosedError(*from, "splitting it");
  if (alert_ids.empty()) return absl::InvalidArgumentError("split needs the alerts to move");
  for (const std::string& a : alert_ids) {
    if (FindAlertOwner(a) != id) {
      return absl::NotFoundError(absl::StrCat("alert ", a, " is not in ", id));
    }
  }
  if (alert_ids.size() == from->alerts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("splitting every alert out of ", id,
                                                   " would leave it empty; leave at least one"));
  }
  const absl::Time now = clock_->Now();
  nlohmann::json before = AuditSnapshot(*from);
  Incident in;
  in.id = NextId(now);
  in.title = title.empty() ? absl::StrCat(from->title, " (split)") : title;
  in.rsit_class = from->rsit_class;
  in.rsit_type = from->rsit_type;
  in.tlp = from->tlp;
  in.assignee = from->assignee;
  in.asset_criticality = 1;
  in.times.created = now;
  in.times.detected = absl::InfiniteFuture();
  std::vector<LinkedAlert> kept;
  Severity sev = Severity::kLow;
  for (LinkedAlert& a : from->alerts) {
    if (alert_ids.count(a.id) == 0) {
      kept.push_back(std::move(a));
      continue;
    }
    in.times.detected = std::min(in.times.detected, a.time);
    sev = std::max(sev, SeverityFromLevel(a.level));
    const std::string ref = absl::StrCat(a.agent_id, ":", a.seq);
    if (!a.agent_id.empty()) in.event_refs.push_back(ref);
    alert_owner_[a.id] = in.id;
    in.alerts.push_back(std::move(a));
  }
  from->alerts = std::move(kept);
  std::set<std::string> kept_refs;
  for (const LinkedAlert& a : from->alerts) kept_refs.insert(absl::StrCat(a.agent_id, ":", a.seq));
  from->event_refs.erase(
      std::remove_if(from->event_refs.begin(), from->event_refs.end(),
                     [&](const std::string& r) { return kept_refs.count(r) == 0; }),
      from->event_refs.end());
  // Observables follow their alerts; one seen in both halves stays in both.
  for (const Observable& o : from->observables) {
    Observable moved = o;
    moved.alert_ids.clear();
    for (const std::string& a : o.alert_ids) {
      if (alert_ids.count(a) > 0) moved.alert_ids.insert(a);
    }
    if (!moved.alert_ids.empty()) in.observables.push_back(std::move(moved));
  }
  RemoveAlertsFromObservables(from->observables, alert_ids);
  in.severity = sev;
  MarkEntered(in, State::kNew, now);
  MarkSeverity(in, in.severity, now);
  Recompute(in);
  RecomputeRisk(*from);
  AddTimeline(in, now, actor, "created",
              absl::StrCat("split from ", id, " with alerts ", absl::StrJoin(alert_ids, ", ")));
  AddTimeline(*from, now, actor, "split",
              absl::StrCat("alerts ", absl::StrJoin(alert_ids, ", "), " moved to ", in.id));
  const std::string new_id = in.id;
  auto [it, inserted] = incidents_.emplace(new_id, std::move(in));
  RebuildGroupIndex();
  Reindex(id, /*rewrite=*/true);
  Reindex(new_id, /*rewrite=*/true);
  const std::vector<std::string> moved(alert_ids.begin(), alert_ids.end());
  nlohmann::json after = AuditSnapshot(*from);
  after["split_alerts"] = moved;
  after["split_into"] = new_id;
  Audit(actor, "incident.split", id, std::move(before), std::move(after), id, now);
  nlohmann::json created = AuditSnapshot(it->second);
  created["alerts"] = moved;
  Audit(actor, "incident.create", new_id, nullptr, std::move(created), new_id, now);
  return new_id;
}

absl::Status IncidentBook::Transition(const std::string& id, State to, const std::string& actor,
                                      Resolution resolution, const std::string& reason) {
  Incident* in = Mutable(id);
  if (in == nullptr) return NotFound(id);
  const absl::Time now = clock_->Now();
  const State from = in->state;
  nlohmann::json before = AuditSnapshot(*in);
  absl::Status st = siper::incidents::Transition(*in, to, actor, now, resolution, reason);
  if (!st.ok()) return st;
  // A transition only appends to the timeline; the items stored so far stay valid.
  Audit(actor, from == State::kClosed ? "incident.reopen" : "incident.transition", id,
        std::move(before), AuditSnapshot(*in), id, now);
  return absl::OkStatus();
}

absl::Status IncidentBook::Update(const std::string& id, const std::string& actor,
                                  const std::string& action,
                                  const std::function<absl::Status(Incident&, absl::Time)>& edit) {
  Incident* in = Mutable(id);
  if (in == nullptr) return NotFound(id);
  const absl::Time now = clock_->Now();
  Incident copy = *in;
  absl::Status st = edit(copy, now);
  if (!st.ok()) return st;  // the incident is left as it was
  if (copy.id != id) {
    return absl::InvalidArgumentError(absl::StrCat("an edit may not change the id of ", id));
  }
  // Linked alerts change only through Attach, Detach, Merge and Split, which keep the
  // alert index and the observables in step.
  auto alert_ids = [](const Incident& in) {
    std::vector<std::string> ids;
    for (const LinkedAlert& a : in.alerts) ids.push_back(a.id);
    return ids;
  };
  if (alert_ids(copy) != alert_ids(*in)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an edit of ", id, " may not change its alerts; use attach, detach, merge or split"));
  }
  // Items stay valid when the edit only appended to the timeline and did not drop
  // observables; changed observables are written again; anything else rewrites them all.
  auto same = [](const TimelineEntry& a, const TimelineEntry& b) {
    return a.time == b.time && a.actor == b.actor && a.kind == b.kind && a.text == b.text;
  };
  const bool appended =
      copy.timeline.size() >= in->timeline.size() &&
      std::equal(in->timeline.begin(), in->timeline.end(), copy.timeline.begin(), same) &&
      copy.observables.size() >= in->observables.size();
  nlohmann::json before = AuditSnapshot(*in);
  *in = std::move(copy);
  Side& side = side_[id];
  if (appended) {
    for (size_t i = 0; i < side.stored_observables; ++i) side.dirty_observables.insert(i);
  }
  Reindex(id, /*rewrite=*/!appended);
  Audit(actor, action, id, std::move(before), AuditSnapshot(*in), id, now);
  return absl::OkStatus();
}

std::vector<const Incident*> IncidentBook::View() const {
  std::vector<const Incident*> out;
  out.reserve(incidents_.size());
  for (const auto& [id, in] : incidents_) out.push_back(&in);
  std::sort(out.begin(), out.end(), [](const Incident* a, const Incident* b) {
    auto pa = ParseIncidentId(a->id);
    auto pb = ParseIncidentId(b->id);
    if (pa.ok() && pb.ok()) return *pa < *pb;
    return a->id < b->id;
  });
  return out;
}

std::vector<Incident> IncidentBook::List() const {
  std::vector<Incident> out;
  for (const Incident* in : View()) out.push_back(*in);
  return out;
}

std::vector<Deadline> IncidentBook::Overdue(const DeadlinePolicy& policy) const {
  return siper::incidents::Overdue(View(), policy, clock_->Now());
}

std::vector<std::string> IncidentBook::TakeChanged() {
  std::vector<std::string> out(changed_.begin(), changed_.end());
  changed_.clear();
  return out;
}

IncidentBook::PendingWrite IncidentBook::TakePendingWrite() {
  PendingWrite w;
  for (const std::string& id : TakeChanged()) {
    const Incident* in = Find(id);
    if (in == nullptr) continue;
    Side& side = side_[id];
    IncidentChanges::Head head;
    head.incident = HeadCopy(*in, /*with_observables=*/false);
    head.alerts = in->alerts.size();
    head.timeline = in->timeline.size();
    head.observables = in->observables.size();
    w.heads.push_back(std::move(head));
    const bool whole = side.rewrite || side.stored_alerts > in->alerts.size() ||
                       side.stored_timeline > in->timeline.size() ||
                       side.stored_observables > in->observables.size() ||
                       side.new_alert_observables.size() != in->alerts.size() - side.stored_alerts;
    if (whole) {
      // Which observables each alert backs, from the observables' alert ids.
      std::map<std::string, std::vector<ObservableKey>> backs;
      for (const Observable& o : in->observables) {
        for (const std::string& a : o.alert_ids) backs[a].push_back(KeyOf(o));
      }
      w.clear_items.push_back(id);
      for (size_t i = 0; i < in->alerts.size(); ++i) {
        auto b = backs.find(in->alerts[i].id);
        w.alerts.push_back(
            {id, i, in->alerts[i], b == backs.end() ? std::vector<ObservableKey>{} : b->second});
      }
      for (size_t i = 0; i < in->timeline.size(); ++i)
        w.timeline.push_back({id, i, in->timeline[i]});
      for (size_t i = 0; i < in->observables.size(); ++i) {
        w.observables.push_back({id, i, HeadObservable(in->observables[i])});
      }
    } else {
      for (size_t i = side.stored_alerts; i < in->alerts.size(); ++i) {
        w.alerts.push_back(
            {id, i, in->alerts[i], std::move(side.new_alert_observables[i - side.stored_alerts])});
      }
      for (size_t i = side.stored_timeline; i < in->timeline.size(); ++i) {
        w.timeline.push_back({id, i, in->timeline[i]});
      }
      for (size_t i : side.dirty_observables) {
        if (i < side.stored_observables) {
          w.observables.push_back({id, i, HeadObservable(in->observables[i])});
        }
      }
      for (size_t i = side.stored_observables; i < in->observables.size(); ++i) {
        w.observables.push_back({id, i, HeadObservable(in->observables[i])});
      }
    }
    side.rewrite = false;
    side.dirty_observables.clear();
    side.new_alert_observables.clear();
    side.stored_alerts = in->alerts.size();
    side.stored_timeline = in->timeline.size();
    side.stored_observables = in->observables.size();
  }
  if (audit_ != nullptr) {
    // Records are seq 1..n at index seq-1: start at the first one not handed out.
    const std::vector<AuditRecord>& records = audit_->records();
    for (size_t i = audit_written_; i < records.size(); ++i) {
      w.audit.push_back(audit_->TakeForWrite(i));
    }
    audit_written_ = records.size();
  }
  return w;
}

}  // namespace siper::incidents

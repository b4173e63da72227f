#include "server/incidents/deadlines.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace siper::incidents {

std::string_view ToString(DeadlineKind k) { return k == DeadlineKind::kUsom ? "usom" : "kvkk"; }

std::string_view ToString(DeadlineStatus s) {
  switch (s) {
    case DeadlineStatus::kPending:
      return "pending";
    case DeadlineStatus::kOverdue:
      return "overdue";
    case DeadlineStatus::kMet:
      return "met";
    case DeadlineStatus::kMissed:
      return "missed";
  }
  return "?";
}

std::optional<absl::Time> UsomDue(const Incident& incident, const DeadlinePolicy& policy) {
  if (!policy.usom_enabled || incident.exercise()) return std::nullopt;
  const bool reported = IsSet(incident.times.reported_to_usom);
  if (!reported && incident.state == State::kClosed &&
      incident.resolution != Resolution::kTruePositive) {
    return std::nullopt;
  }
  // First time the incident was in the trigger state or any later open state.
  std::optional<absl::Time> state_time;
  for (int s = static_cast<int>(policy.usom_trigger_state);
       s <= static_cast<int>(State::kRecovered); ++s) {
    auto it = incident.times.entered.find(static_cast<State>(s));
    if (it != incident.times.entered.end() && (!state_time || it->second < *state_time)) {
      state_time = it->second;
    }
  }
  auto sev = incident.times.severity_reached.find(policy.usom_min_severity);
  if (!state_time || sev == incident.times.severity_reached.end()) return std::nullopt;
  return std::max(*state_time, sev->second) + policy.usom_delay;
}

std::optional<absl::Time> KvkkDue(const Incident& incident, const DeadlinePolicy& policy) {
  if (!incident.kvkk.personal_data_breach || incident.exercise() ||
      !IsSet(incident.times.detected)) {
    return std::nullopt;
  }
  return incident.times.detected + policy.kvkk_window;
}

namespace {

Deadline Make(const Incident& incident, DeadlineKind kind, absl::Time due, absl::Time done,
              absl::Time now) {
  Deadline d{incident.id, kind, due, done, DeadlineStatus::kPending};
  if (IsSet(done)) {
    d.status = done <= due ? DeadlineStatus::kMet : DeadlineStatus::kMissed;
  } else if (now > due) {
    d.status = DeadlineStatus::kOverdue;
  }
  return d;
}

}  // namespace

std::vector<Deadline> ComputeDeadlines(const Incident& incident, const DeadlinePolicy& policy,
                                       absl::Time now) {
  std::vector<Deadline> out;
  if (auto due = UsomDue(incident, policy)) {
    out.push_back(Make(incident, DeadlineKind::kUsom, *due, incident.times.reported_to_usom, now));
  }
  if (auto due = KvkkDue(incident, policy)) {
    const absl::Time done =
        incident.kvkk.notices.empty() ? absl::InfinitePast() : incident.kvkk.notices.front().sent;
    out.push_back(Make(incident, DeadlineKind::kKvkk, *due, done, now));
  }
  return out;
}

std::vector<Deadline> Overdue(const std::vector<const Incident*>& incidents,
                              const DeadlinePolicy& policy, absl::Time now) {
  std::vector<Deadline> out;
  for (const Incident* incident : incidents) {
    for (Deadline& d : ComputeDeadlines(*incident, policy, now)) {
      if (d.status == DeadlineStatus::kOverdue) out.push_back(std::move(d));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Deadline& a, const Deadline& b) { return a.due < b.due; });
  return out;
}

std::vector<DeadlineNotification> DeadlinePassedNotifications(
    const std::vector<const Incident*>& incidents, const DeadlinePolicy& policy, absl::Time now,
    const std::set<std::string>& already_sent) {
  std::vector<DeadlineNotification> out;
  for (const Deadline& d : Overdue(incidents, policy, now)) {
    const std::string key = absl::StrCat(d.incident_id, "/", std::string(ToString(d.kind)));
    if (already_sent.count(key) > 0) continue;
    std::string message;
    if (d.kind == DeadlineKind::kUsom) {
      message = absl::StrCat(d.incident_id, ": USOM notification was due at ", FormatRfc3339(d.due),
                             " and has not been sent; file `siperctl report usom ", d.incident_id,
                             "` with USOM and record its reference");
    } else {
      message = absl::StrCat(
          d.incident_id, ": KVKK breach notice (72 hours from detection) was due at ",
          FormatRfc3339(d.due), "; notify the KVKK Board now with `siperctl report kvkk ",
          d.incident_id, "` and give the reasons for the delay");
    }
    const bool usom = d.kind == DeadlineKind::kUsom;
    out.push_back(DeadlineNotification{
        key, d.incident_id, d.kind, d.due, usom ? "siper-deadline-usom" : "siper-deadline-kvkk",
        "high", usom ? "USOM notification overdue" : "KVKK breach notice overdue",
        std::move(message)});
  }
  return out;
}

}  // namespace siper::incidents

#include "server/incidents/workflow.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace siper::incidents {
namespace {

std::string S(std::string_view v) { return std::string(v); }

// One row per state: where it may go next. The order is what messages print.
const std::map<State, std::vector<State>>& Table() {
  static const auto* table = new std::map<State, std::vector<State>>{
      {State::kNew, {State::kTriage, State::kClosed}},
      {State::kTriage, {State::kInvestigating, State::kClosed}},
      {State::kInvestigating, {State::kContained, State::kClosed}},
      {State::kContained, {State::kEradicated, State::kClosed}},
      {State::kEradicated, {State::kRecovered, State::kClosed}},
      {State::kRecovered, {State::kClosed}},
      {State::kClosed, {State::kTriage, State::kInvestigating}},
  };
  return *table;
}

}  // namespace

const std::vector<State>& AllowedNext(State from) { return Table().at(from); }

bool IsAllowedTransition(State from, State to) {
  const std::vector<State>& next = AllowedNext(from);
  return std::find(next.begin(), next.end(), to) != next.end();
}

void AddTimeline(Incident& incident, absl::Time time, const std::string& actor,
                 const std::string& kind, const std::string& text) {
  incident.timeline.push_back(TimelineEntry{time, actor, kind, text});
  incident.times.updated = std::max(incident.times.updated, time);
}

void MarkEntered(Incident& incident, State state, absl::Time now) {
  incident.times.entered.emplace(state, now);
}

void MarkSeverity(Incident& incident, Severity severity, absl::Time now) {
  for (int s = 0; s <= static_cast<int>(severity); ++s) {
    incident.times.severity_reached.emplace(static_cast<Severity>(s), now);
  }
}

absl::Status Transition(Incident& incident, State to, const std::string& actor, absl::Time now,
                        Resolution resolution, const std::string& reason) {
  const State from = incident.state;
  if (!IsAllowedTransition(from, to)) {
    std::vector<std::string> next;
    for (State s : AllowedNext(from)) next.push_back(S(ToString(s)));
    return absl::FailedPreconditionError(
        absl::StrCat(incident.id, ": cannot move from '", S(ToString(from)), "' to '",
                     S(ToString(to)), "'; allowed next: ", absl::StrJoin(next, ", ")));
  }
  if (to == State::kClosed && resolution == Resolution::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(
        incident.id,
        ": closing needs a resolution; give true-positive, false-positive or duplicate"));
  }
  if (to != State::kClosed && resolution != Resolution::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat(incident.id, ": a resolution is only given when closing, not when moving to '",
                     S(ToString(to)), "'"));
  }
  incident.state = to;
  MarkEntered(incident, to, now);
  std::string text = absl::StrCat(S(ToString(from)), " -> ", S(ToString(to)));
  if (to == State::kClosed) {
    incident.resolution = resolution;
    incident.times.closed = now;
    absl::StrAppend(&text, " (", S(ToString(resolution)), ")");
  }
  if (!reason.empty()) absl::StrAppend(&text, ": ", reason);
  if (from == State::kClosed) {
    incident.resolution = Resolution::kNone;
    incident.times.closed = absl::InfinitePast();
    incident.merged_into.clear();
    AddTimeline(incident, now, actor, "reopened", text);
  } else {
    AddTimeline(incident, now, actor, "state", text);
  }
  return absl::OkStatus();
}

absl::Status SetSeverity(Incident& incident, Severity severity, const std::string& actor,
                         absl::Time now) {
  if (severity == incident.severity) return absl::OkStatus();
  AddTimeline(incident, now, actor, "severity",
              absl::StrCat(S(ToString(incident.severity)), " -> ", S(ToString(severity))));
  incident.severity = severity;
  MarkSeverity(incident, severity, now);
  RecomputeRisk(incident);
  return absl::OkStatus();
}

absl::Status SetClassification(Incident& incident, const Taxonomy& taxonomy,
                               const std::string& rsit_class, const std::string& rsit_type,
                               const std::string& actor, absl::Time now) {
  absl::Status st = taxonomy.Validate(rsit_class, rsit_type);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(incident.id, ": ", std::string(st.message())));
  }
  if (rsit_class == incident.rsit_class && rsit_type == incident.rsit_type) {
    return absl::OkStatus();
  }
  AddTimeline(incident, now, actor, "classification",
              absl::StrCat(incident.rsit_class, "/", incident.rsit_type, " -> ", rsit_class, "/",
                           rsit_type));
  incident.rsit_class = rsit_class;
  incident.rsit_type = rsit_type;
  return absl::OkStatus();
}

void SetTlp(Incident& incident, Tlp tlp, const std::string& actor, absl::Time now) {
  if (tlp == incident.tlp) return;
  AddTimeline(incident, now, actor, "tlp",
              absl::StrCat("TLP:", S(ToString(incident.tlp)), " -> TLP:", S(ToString(tlp))));
  incident.tlp = tlp;
}

void Assign(Incident& incident, const std::string& assignee, const std::string& actor,
            absl::Time now) {
  if (assignee == incident.assignee) return;
  AddTimeline(
      incident, now, actor, "assigned",
      assignee.empty() ? std::string("unassigned") : absl::StrCat("assigned to ", assignee));
  incident.assignee = assignee;
}

absl::Status AddNote(Incident& incident, const std::string& text, const std::string& actor,
                     absl::Time now) {
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(incident.id, ": a note needs text"));
  }
  incident.notes.push_back(Note{now, actor, text});
  AddTimeline(incident, now, actor, "note", text);
  return absl::OkStatus();
}

void AddAction(Incident& incident, const std::string& action, const std::string& actor,
               absl::Time now) {
  incident.actions.push_back(action);
  AddTimeline(incident, now, actor, "action", action);
}

void SetImpact(Incident& incident, const std::string& impact, const std::string& actor,
               absl::Time now) {
  incident.impact = impact;
  AddTimeline(incident, now, actor, "impact", impact);
}

absl::Status SetAssetCriticality(Incident& incident, int criticality, const std::string& actor,
                                 absl::Time now) {
  if (criticality < 1 || criticality > 5) {
    return absl::InvalidArgumentError(absl::StrCat(incident.id, ": asset criticality ", criticality,
                                                   " is out of range; use 1 (lowest) to 5"));
  }
  incident.asset_criticality = criticality;
  RecomputeRisk(incident);
  AddTimeline(
      incident, now, actor, "risk",
      absl::StrCat("asset criticality ", criticality, ", risk score ", incident.risk_score));
  return absl::OkStatus();
}

absl::Status RecordUsomReport(Incident& incident, absl::Time sent, const std::string& reference,
                              const std::string& actor, absl::Time now) {
  if (incident.exercise()) {
    return absl::FailedPreconditionError(absl::StrCat(
        incident.id, ": is an exercise (RSIT class test); exercises are not reported to USOM"));
  }
  incident.times.reported_to_usom = sent;
  incident.usom_reference = reference;
  AddTimeline(
      incident, now, actor, "usom-report",
      absl::StrCat("reported to USOM at ", FormatRfc3339(sent),
                   reference.empty() ? std::string() : absl::StrCat(", reference ", reference)));
  return absl::OkStatus();
}

void SetPersonalDataBreach(Incident& incident, bool breach, const std::string& actor,
                           absl::Time now) {
  if (incident.kvkk.personal_data_breach == breach) return;
  incident.kvkk.personal_data_breach = breach;
  AddTimeline(incident, now, actor, "kvkk",
              breach ? "flagged as a personal-data breach (KVKK 72-hour notice applies)"
                     : "personal-data breach flag removed");
}

absl::Status RecordKvkkNotice(Incident& incident, NoticeKind kind, absl::Time sent,
                              const std::string& reference,
                              const std::vector<std::string>& delay_reasons, absl::Time deadline,
                              const std::string& actor, absl::Time now) {
  KvkkBreach& k = incident.kvkk;
  if (!k.personal_data_breach) {
    return absl::FailedPreconditionError(absl::StrCat(
        incident.id, ": is not flagged as a personal-data breach; flag it before a KVKK notice"));
  }
  if (k.notices.empty() && kind != NoticeKind::kFirst) {
    return absl::FailedPreconditionError(absl::StrCat(
        incident.id, ": no first notice yet; send the first notice before a follow-up"));
  }
  if (!k.notices.empty() && kind == NoticeKind::kFirst) {
    return absl::FailedPreconditionError(
        absl::StrCat(incident.id, ": the first notice was already sent; this one is a follow-up"));
  }
  if (kind == NoticeKind::kFirst && sent > deadline && delay_reasons.empty() &&
      k.delay_reasons.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        incident.id, ": first KVKK notice at ", FormatRfc3339(sent), " is past the deadline ",
        FormatRfc3339(deadline), "; give the reasons for the delay (KVKK Board decision 2019/10)"));
  }
  k.delay_reasons.insert(k.delay_reasons.end(), delay_reasons.begin(), delay_reasons.end());
  k.notices.push_back(KvkkBreach::Notice{kind, sent, reference});
  AddTimeline(
      incident, now, actor, "kvkk-notice",
      absl::StrCat(S(ToString(kind)), " notice to the KVKK Board at ", FormatRfc3339(sent),
                   reference.empty() ? std::string() : absl::StrCat(", reference ", reference)));
  return absl::OkStatus();
}

absl::Status UpdateKvkkDetails(Incident& incident, const KvkkBreach& details,
                               const std::string& actor, absl::Time now) {
  if (details.people_count < -1 || details.record_count < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        incident.id, ": people and record counts are -1 (not yet known) or a number of 0 or more"));
  }
  if (IsSet(details.breach_started) && IsSet(details.breach_ended) &&
      details.breach_ended < details.breach_started) {
    return absl::InvalidArgumentError(
        absl::StrCat(incident.id, ": the breach cannot end (", FormatRfc3339(details.breach_ended),
                     ") before it started (", FormatRfc3339(details.breach_started), ")"));
  }
  KvkkBreach& k = incident.kvkk;
  k.breach_started = details.breach_started;
  k.breach_ended = details.breach_ended;
  k.source = details.source;
  k.description = details.description;
  k.data_categories = details.data_categories;
  k.special_categories = details.special_categories;
  k.subject_groups = details.subject_groups;
  k.people_count = details.people_count;
  k.record_count = details.record_count;
  k.consequences = details.consequences;
  k.measures_taken = details.measures_taken;
  k.measures_planned = details.measures_planned;
  k.subjects_informed = details.subjects_informed;
  AddTimeline(incident, now, actor, "kvkk", "personal-data breach details updated");
  return absl::OkStatus();
}

absl::Status AddObservable(Incident& incident, ObservableKind kind, const std::string& value,
                           const std::string& actor, absl::Time now) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(incident.id, ": an observable needs a value"));
  }
  if (kind == ObservableKind::kIp && !IpInCidr(value, value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(incident.id, ": '", value, "' is not an IPv4 or IPv6 address"));
  }
  Observable o;
  o.kind = kind;
  o.value = value;
  o.field = "analyst";
  o.first_seen = now;
  o.last_seen = now;
  if (kind == ObservableKind::kHash) {
    const size_t n = value.size();
    o.hash_algo = n == 32    ? "md5"
                  : n == 40  ? "sha1"
                  : n == 64  ? "sha256"
                  : n == 128 ? "sha512"
                             : "";
    if (o.hash_algo.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          incident.id, ": '", value, "' is not an MD5, SHA-1, SHA-256 or SHA-512 hex digest"));
    }
    o.value = absl::AsciiStrToLower(value);
  }
  MergeObservables(incident.observables, {o});
  AddTimeline(incident, now, actor, "observable",
              absl::StrCat("added ", std::string(ToString(kind)), " ", o.value));
  return absl::OkStatus();
}

}  // namespace siper::incidents

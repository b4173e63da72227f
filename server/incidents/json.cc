#include "server/incidents/json.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "server/incidents/stored.h"

namespace siper::incidents {
namespace {

using nlohmann::json;

std::string T(absl::Time t) { return FormatRfc3339(t); }
std::string S(std::string_view v) { return std::string(v); }

// Reads a time field written by T(); missing or empty is "not set".
absl::Time ReadTime(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return absl::InfinitePast();
  auto t = ParseRfc3339(j[key].get<std::string>());
  if (!t.ok())
    throw std::invalid_argument(absl::StrCat(key, ": ", std::string(t.status().message())));
  return *t;
}

template <typename E>
E ReadEnum(const json& j, const char* key, absl::StatusOr<E> (*parse)(std::string_view), E def) {
  if (!j.contains(key)) return def;
  auto v = parse(j[key].get<std::string>());
  if (!v.ok())
    throw std::invalid_argument(absl::StrCat(key, ": ", std::string(v.status().message())));
  return *v;
}

std::vector<std::string> Strings(const json& j, const char* key) {
  return j.contains(key) ? j[key].get<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace

namespace {

// What a linked alert and an alert input both say of the alert.
template <typename Alert>
json AlertCommonToJson(const Alert& a) {
  return {{"id", a.id},
          {"rule_id", a.rule_id},
          {"title", a.title},
          {"level", a.level},
          {"time", T(a.time)},
          {"occurred", T(a.occurred)},
          {"agent_id", a.agent_id},
          {"seq", a.seq},
          {"host", a.host},
          {"ioc_confidence", a.ioc_confidence}};
}

}  // namespace

json LinkedAlertToJson(const LinkedAlert& a) {
  json j = AlertCommonToJson(a);
  j["source_ip"] = a.source_ip;
  return j;
}

LinkedAlert LinkedAlertFromJson(const json& a) {
  LinkedAlert l;
  l.id = a.value("id", "");
  l.rule_id = a.value("rule_id", "");
  l.title = a.value("title", "");
  l.level = a.value("level", "");
  l.time = ReadTime(a, "time");
  // Incidents stored before log times were kept have only the receive time.
  l.occurred = a.contains("occurred") ? ReadTime(a, "occurred") : l.time;
  l.agent_id = a.value("agent_id", "");
  l.seq = a.value("seq", uint64_t{0});
  l.host = a.value("host", "");
  l.source_ip = a.value("source_ip", "");
  l.ioc_confidence = a.value("ioc_confidence", 0);
  return l;
}

json TimelineEntryToJson(const TimelineEntry& e) {
  return {{"time", T(e.time)}, {"actor", e.actor}, {"kind", e.kind}, {"text", e.text}};
}

TimelineEntry TimelineEntryFromJson(const json& e) {
  return TimelineEntry{ReadTime(e, "time"), e.value("actor", ""), e.value("kind", ""),
                       e.value("text", "")};
}

Observable ObservableFromJson(const json& o) {
  Observable ob;
  ob.kind = ReadEnum(o, "kind", &ParseObservableKind, ObservableKind::kIp);
  ob.value = o.value("value", "");
  ob.field = o.value("field", "");
  ob.hash_algo = o.value("hash_algo", "");
  ob.first_seen = ReadTime(o, "first_seen");
  ob.last_seen = ReadTime(o, "last_seen");
  for (const json& id : o.value("alert_ids", json::array()))
    ob.alert_ids.insert(id.get<std::string>());
  return ob;
}

json ObservableToJson(const Observable& o) {
  json j = {{"kind", S(ToString(o.kind))},
            {"value", o.value},
            {"field", o.field},
            {"first_seen",
             T(o.first_seen == absl::InfiniteFuture() ? absl::InfinitePast() : o.first_seen)},
            {"last_seen", T(o.last_seen)},
            {"alert_ids", o.alert_ids}};
  if (!o.hash_algo.empty()) j["hash_algo"] = o.hash_algo;
  return j;
}

json AlertInputToJson(const AlertInput& a) {
  json j = AlertCommonToJson(a);
  json fields = json::object();
  for (const auto& [name, value] : a.FieldsWithPrefix("")) {
    fields[std::string(name)] = std::string(value);
  }
  j["fields"] = std::move(fields);
  j["ioc_hit"] = a.ioc_hit;
  j["ioc_value"] = a.ioc_value;
  j["ioc_feed"] = a.ioc_feed;
  j["rsit_class"] = a.rsit_class;
  j["rsit_type"] = a.rsit_type;
  return j;
}

json IncidentToJson(const Incident& in) {
  json alerts = json::array();
  for (const LinkedAlert& a : in.alerts) alerts.push_back(LinkedAlertToJson(a));
  json observables = json::array();
  for (const Observable& o : in.observables) observables.push_back(ObservableToJson(o));
  json notes = json::array();
  for (const Note& n : in.notes) {
    notes.push_back({{"time", T(n.time)}, {"author", n.author}, {"text", n.text}});
  }
  json timeline = json::array();
  for (const TimelineEntry& e : in.timeline) timeline.push_back(TimelineEntryToJson(e));
  json entered = json::object();
  for (const auto& [s, t] : in.times.entered) entered[S(ToString(s))] = T(t);
  json severity_reached = json::object();
  for (const auto& [s, t] : in.times.severity_reached) severity_reached[S(ToString(s))] = T(t);
  json notices = json::array();
  for (const KvkkBreach::Notice& n : in.kvkk.notices) {
    notices.push_back(
        {{"kind", S(ToString(n.kind))}, {"sent", T(n.sent)}, {"reference", n.reference}});
  }
  const KvkkBreach& k = in.kvkk;
  return {
      {"id", in.id},
      {"title", in.title},
      {"description", in.description},
      {"rsit_class", in.rsit_class},
      {"rsit_type", in.rsit_type},
      {"exercise", in.exercise()},
      {"severity", S(ToString(in.severity))},
      {"risk_score", in.risk_score},
      {"asset_criticality", in.asset_criticality},
      {"tlp", S(ToString(in.tlp))},
      {"state", S(ToString(in.state))},
      {"resolution", S(ToString(in.resolution))},
      {"assignee", in.assignee},
      {"usom_reference", in.usom_reference},
      {"impact", in.impact},
      {"actions", in.actions},
      {"alerts", alerts},
      {"event_refs", in.event_refs},
      {"observables", observables},
      {"notes", notes},
      {"timeline", timeline},
      {"merged_into", in.merged_into},
      {"times",
       {{"occurred", T(in.times.occurred)},
        {"detected", T(in.times.detected)},
        {"created", T(in.times.created)},
        {"updated", T(in.times.updated)},
        {"closed", T(in.times.closed)},
        {"reported_to_usom", T(in.times.reported_to_usom)},
        {"entered", entered},
        {"severity_reached", severity_reached}}},
      {"kvkk",
       {{"personal_data_breach", k.personal_data_breach},
        {"breach_started", T(k.breach_started)},
        {"breach_ended", T(k.breach_ended)},
        {"source", k.source},
        {"description", k.description},
        {"data_categories", k.data_categories},
        {"special_categories", k.special_categories},
        {"subject_groups", k.subject_groups},
        {"people_count", k.people_count},
        {"record_count", k.record_count},
        {"consequences", k.consequences},
        {"measures_taken", k.measures_taken},
        {"measures_planned", k.measures_planned},
        {"subjects_informed", k.subjects_informed},
        {"notices", notices},
        {"delay_reasons", k.delay_reasons}}},
  };
}

json IncidentToJsonView(const Incident& in, size_t limit) {
  const size_t n = limit == 0 ? SIZE_MAX : limit;
  bool truncated = false;
  // Built from a copy holding only what is shown, so a huge incident is never serialized.
  Incident view = HeadCopy(in, /*with_observables=*/false);
  auto first = [&](const auto& from, auto& to) {
    const size_t k = std::min(from.size(), n);
    truncated |= k < from.size();
    to.assign(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(k));
  };
  first(in.alerts, view.alerts);
  first(in.event_refs, view.event_refs);
  const size_t t = std::min(in.timeline.size(), n);
  truncated |= t < in.timeline.size();
  view.timeline.assign(in.timeline.end() - static_cast<std::ptrdiff_t>(t), in.timeline.end());
  std::vector<size_t> id_counts;
  for (const Observable& o : in.observables) {
    Observable c = HeadObservable(o);
    for (const std::string& a : o.alert_ids) {
      if (c.alert_ids.size() >= n) {
        truncated = true;
        break;
      }
      c.alert_ids.insert(a);
    }
    id_counts.push_back(o.alert_ids.size());
    view.observables.push_back(std::move(c));
  }
  json j = IncidentToJson(view);
  j["alert_count"] = in.alerts.size();
  j["event_ref_count"] = in.event_refs.size();
  j["timeline_count"] = in.timeline.size();
  for (size_t i = 0; i < id_counts.size(); ++i)
    j["observables"][i]["alert_id_count"] = id_counts[i];
  j["truncated"] = truncated;
  return j;
}

absl::StatusOr<Incident> IncidentFromJson(const json& j) {
  if (!j.is_object() || !j.contains("id")) {
    return absl::InvalidArgumentError("incident JSON must be an object with at least an 'id'");
  }
  Incident in;
  try {
    in.id = j.at("id").get<std::string>();
    in.title = j.value("title", "");
    in.description = j.value("description", "");
    in.rsit_class = j.value("rsit_class", "other");
    in.rsit_type = j.value("rsit_type", "undetermined");
    in.severity = ReadEnum(j, "severity", &ParseSeverity, Severity::kLow);
    in.risk_score = j.value("risk_score", 0);
    in.asset_criticality = j.value("asset_criticality", 3);
    in.tlp = ReadEnum(j, "tlp", &ParseTlp, Tlp::kAmber);
    in.state = ReadEnum(j, "state", &ParseState, State::kNew);
    in.resolution = ReadEnum(j, "resolution", &ParseResolution, Resolution::kNone);
    in.assignee = j.value("assignee", "");
    in.usom_reference = j.value("usom_reference", "");
    in.impact = j.value("impact", "");
    in.actions = Strings(j, "actions");
    in.event_refs = Strings(j, "event_refs");
    in.merged_into = j.value("merged_into", "");
    for (const json& a : j.value("alerts", json::array())) {
      in.alerts.push_back(LinkedAlertFromJson(a));
    }
    for (const json& o : j.value("observables", json::array())) {
      in.observables.push_back(ObservableFromJson(o));
    }
    for (const json& n : j.value("notes", json::array())) {
      in.notes.push_back(Note{ReadTime(n, "time"), n.value("author", ""), n.value("text", "")});
    }
    for (const json& e : j.value("timeline", json::array())) {
      in.timeline.push_back(TimelineEntryFromJson(e));
    }
    const json times = j.value("times", json::object());
    in.times.occurred = ReadTime(times, "occurred");
    in.times.detected = ReadTime(times, "detected");
    in.times.created = ReadTime(times, "created");
    in.times.updated = ReadTime(times, "updated");
    in.times.closed = ReadTime(times, "closed");
    in.times.reported_to_usom = ReadTime(times, "reported_to_usom");
    const json entered = times.value("entered", json::object());
    for (const auto& [name, value] : entered.items()) {
      auto s = ParseState(name);
      if (!s.ok()) return s.status();
      in.times.entered[*s] = ReadTime(json{{"t", value}}, "t");
    }
    const json severity_reached = times.value("severity_reached", json::object());
    for (const auto& [name, value] : severity_reached.items()) {
      auto s = ParseSeverity(name);
      if (!s.ok()) return s.status();
      in.times.severity_reached[*s] = ReadTime(json{{"t", value}}, "t");
    }
    const json k = j.value("kvkk", json::object());
    KvkkBreach& b = in.kvkk;
    b.personal_data_breach = k.value("personal_data_breach", false);
    b.breach_started = ReadTime(k, "breach_started");
    b.breach_ended = ReadTime(k, "breach_ended");
    b.source = k.value("source", "");
    b.description = k.value("description", "");
    b.data_categories = Strings(k, "data_categories");
    b.special_categories = k.value("special_categories", false);
    b.subject_groups = Strings(k, "subject_groups");
    b.people_count = k.value("people_count", int64_t{-1});
    b.record_count = k.value("record_count", int64_t{-1});
    b.consequences = k.value("consequences", "");
    b.measures_taken = Strings(k, "measures_taken");
    b.measures_planned = Strings(k, "measures_planned");
    b.subjects_informed = k.value("subjects_informed", false);
    for (const json& n : k.value("notices", json::array())) {
      b.notices.push_back(
          KvkkBreach::Notice{ReadEnum(n, "kind", &ParseNoticeKind, NoticeKind::kFirst),
                             ReadTime(n, "sent"), n.value("reference", "")});
    }
    b.delay_reasons = Strings(k, "delay_reasons");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("incident JSON ",
                                                   j.value("id", std::string("?")),
                                                   " is malformed: ", std::string(e.what())));
  }
  return in;
}

absl::StatusOr<Incident> IncidentFromJsonText(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::DataLossError("a stored incident is not valid JSON; restore it from backup");
  }
  return IncidentFromJson(j);
}

namespace {

// True when nlohmann writes `s` as it is between quotes: bytes 0x20..0x7e but '"' and '\\'.
bool PlainAscii(const std::string& s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

void AppendJsonString(const std::string& s, std::string* out) {
  if (PlainAscii(s)) {
    out->push_back('"');
    out->append(s);
    out->push_back('"');
  } else {
    out->append(json(s).dump());
  }
}

void AppendDump(const json& j, std::string* out) {
  switch (j.type()) {
    case json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(it.key(), out);
        out->push_back(':');
        AppendDump(it.value(), out);
      }
      out->push_back('}');
      return;
    }
    case json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const json& v : j) {
        if (!first) out->push_back(',');
        first = false;
        AppendDump(v, out);
      }
      out->push_back(']');
      return;
    }
    case json::value_t::string:
      AppendJsonString(j.get_ref<const std::string&>(), out);
      return;
    case json::value_t::number_integer:
      absl::StrAppend(out, j.get<int64_t>());
      return;
    case json::value_t::number_unsigned:
      absl::StrAppend(out, j.get<uint64_t>());
      return;
    case json::value_t::boolean:
      out->append(j.get<bool>() ? "true" : "false");
      return;
    case json::value_t::null:
      out->append("null");
      return;
    default:  // floats, binary, discarded: nlohmann's own form
      out->append(j.dump());
      return;
  }
}

std::string Dump(const json& j) {
  std::string out;
  AppendDump(j, &out);
  return out;
}

}  // namespace siper::incidents

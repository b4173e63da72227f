#include "server/incidents/model.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace siper::incidents {
namespace {

template <typename E, size_t N>
absl::StatusOr<E> ParseEnum(std::string_view text,
                            const std::array<std::pair<E, const char*>, N>& names,
                            const char* what) {
  const std::string lower = absl::AsciiStrToLower(std::string(text));
  std::vector<std::string> valid;
  for (const auto& [value, name] : names) {
    if (lower == absl::AsciiStrToLower(std::string(name))) return value;
    valid.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ", what, " '", std::string(text),
                                                 "'; use one of: ", absl::StrJoin(valid, ", ")));
}

template <typename E, size_t N>
std::string_view NameOf(E value, const std::array<std::pair<E, const char*>, N>& names) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "?";
}

constexpr std::array<std::pair<State, const char*>, 7> kStateNames{{
    {State::kNew, "new"},
    {State::kTriage, "triage"},
    {State::kInvestigating, "investigating"},
    {State::kContained, "contained"},
    {State::kEradicated, "eradicated"},
    {State::kRecovered, "recovered"},
    {State::kClosed, "closed"},
}};
constexpr std::array<std::pair<Severity, const char*>, 4> kSeverityNames{{
    {Severity::kLow, "low"},
    {Severity::kMedium, "medium"},
    {Severity::kHigh, "high"},
    {Severity::kCritical, "critical"},
}};
constexpr std::array<std::pair<Tlp, const char*>, 5> kTlpNames{{
    {Tlp::kClear, "CLEAR"},
    {Tlp::kGreen, "GREEN"},
    {Tlp::kAmber, "AMBER"},
    {Tlp::kAmberStrict, "AMBER+STRICT"},
    {Tlp::kRed, "RED"},
}};
constexpr std::array<std::pair<Resolution, const char*>, 4> kResolutionNames{{
    {Resolution::kNone, "none"},
    {Resolution::kTruePositive, "true-positive"},
    {Resolution::kFalsePositive, "false-positive"},
    {Resolution::kDuplicate, "duplicate"},
}};
constexpr std::array<std::pair<ObservableKind, const char*>, 6> kKindNames{{
    {ObservableKind::kIp, "ip"},
    {ObservableKind::kDomain, "domain"},
    {ObservableKind::kUrl, "url"},
    {ObservableKind::kHash, "hash"},
    {ObservableKind::kUser, "user"},
    {ObservableKind::kHost, "host"},
}};
constexpr std::array<std::pair<NoticeKind, const char*>, 2> kNoticeNames{{
    {NoticeKind::kFirst, "first"},
    {NoticeKind::kFollowUp, "follow-up"},
}};

// Parses an IPv4 or IPv6 text address into 16 bytes (v4 kept as 4 bytes); false if neither.
bool ParseIp(std::string_view text, std::array<unsigned char, 16>& out, int& len) {
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
    len = 4;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
    len = 16;
    return true;
  }
  return false;
}

}  // namespace

std::string_view ToString(State s) { return NameOf(s, kStateNames); }
std::string_view ToString(Severity s) { return NameOf(s, kSeverityNames); }
std::string_view ToString(Tlp t) { return NameOf(t, kTlpNames); }
std::string_view ToString(Resolution r) { return NameOf(r, kResolutionNames); }
std::string_view ToString(ObservableKind k) { return NameOf(k, kKindNames); }
std::string_view ToString(NoticeKind k) { return NameOf(k, kNoticeNames); }

absl::StatusOr<State> ParseState(std::string_view s) { return ParseEnum(s, kStateNames, "state"); }
absl::StatusOr<Severity> ParseSeverity(std::string_view s) {
  return ParseEnum(s, kSeverityNames, "severity");
}
absl::StatusOr<Tlp> ParseTlp(std::string_view s) {
  // "TLP:AMBER" and "WHITE" (TLP 1.0's name for CLEAR) are accepted too.
  std::string t = absl::AsciiStrToUpper(std::string(s));
  if (t.rfind("TLP:", 0) == 0) t = t.substr(4);
  if (t == "WHITE") t = "CLEAR";
  return ParseEnum(t, kTlpNames, "TLP");
}
absl::StatusOr<Resolution> ParseResolution(std::string_view s) {
  return ParseEnum(s, kResolutionNames, "resolution");
}
absl::StatusOr<ObservableKind> ParseObservableKind(std::string_view s) {
  return ParseEnum(s, kKindNames, "observable kind");
}
absl::StatusOr<NoticeKind> ParseNoticeKind(std::string_view s) {
  return ParseEnum(s, kNoticeNames, "notice kind");
}

int LevelWeight(std::string_view level) {
  // Runs for every stored alert (the grouping policy's first question): no copy.
  auto is = [&](std::string_view name) {  // `name` lower case; ASCII case-insensitive
    return level.size() == name.size() &&
           std::equal(level.begin(), level.end(), name.begin(), [](char a, char b) {
             return absl::ascii_tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  if (is("critical")) return 5;
  if (is("high")) return 4;
  if (is("medium")) return 3;
  if (is("low")) return 2;
  return 1;
}

std::string_view AlertInput::Field(std::string_view name) const {
  if (!fields.empty()) {
    if (auto it = fields.find(name); it != fields.end()) return it->second;
  }
  for (const auto& [n, v] : field_views) {
    if (n == name) return v;
  }
  return {};
}

bool AlertInput::HasField(std::string_view name) const {
  if (fields.contains(name)) return true;
  for (const auto& entry : field_views) {
    if (entry.first == name) return true;
  }
  return false;
}

std::vector<std::pair<std::string_view, std::string_view>> AlertInput::FieldsWithPrefix(
    std::string_view prefix) const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (auto it = fields.lower_bound(prefix); it != fields.end() && it->first.starts_with(prefix);
       ++it) {
    out.emplace_back(it->first, it->second);
  }
  const size_t owned = out.size();
  for (const auto& [n, v] : field_views) {
    if (n.starts_with(prefix)) out.emplace_back(n, v);
  }
  if (out.size() > owned) {
    // Stable: of equal names, the owned one (then the first view) comes first and stays.
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    out.erase(std::unique(out.begin(), out.end(),
                          [](const auto& a, const auto& b) { return a.first == b.first; }),
              out.end());
  }
  return out;
}

Severity SeverityFromLevel(std::string_view level) {
  switch (LevelWeight(level)) {
    case 5:
      return Severity::kCritical;
    case 4:
      return Severity::kHigh;
    case 3:
      return Severity::kMedium;
    default:
      return Severity::kLow;
  }
}

int ComputeRiskScore(int level_weight, int asset_criticality, int ioc_confidence) {
  const double l = std::clamp(level_weight, 1, 5);
  const double c = std::clamp(asset_criticality, 1, 5);
  const double i = std::clamp(ioc_confidence, 0, 100);
  const double score = 100.0 * (0.5 * (l - 1) / 4 + 0.3 * (c - 1) / 4 + 0.2 * i / 100);
  return static_cast<int>(std::lround(score));
}

void RecomputeRisk(Incident& incident) {
  // Without alerts (an incident opened by hand) the analyst's severity stands in for the
  // rule level: low 2, medium 3, high 4, critical 5.
  int level = incident.alerts.empty() ? static_cast<int>(incident.severity) + 2 : 1;
  int ioc = 0;
  for (const LinkedAlert& a : incident.alerts) {
    level = std::max(level, LevelWeight(a.level));
    ioc = std::max(ioc, a.ioc_confidence);
  }
  incident.risk_score = ComputeRiskScore(level, incident.asset_criticality, ioc);
}

std::vector<Observable> ExtractObservables(const AlertInput& alert) {
  std::vector<Observable> out;
  auto add = [&](ObservableKind kind, std::string_view value, std::string_view field,
                 const std::string& algo = "") {
    if (value.empty() || value == "-") return;
    Observable o;
    o.kind = kind;
    o.value = kind == ObservableKind::kDomain || kind == ObservableKind::kHash
                  ? absl::AsciiStrToLower(std::string(value))
                  : std::string(value);
    o.hash_algo = algo;
    o.field = std::string(field);
    o.first_seen = alert.time;
    o.last_seen = alert.time;
    if (!alert.id.empty()) o.alert_ids.insert(alert.id);
    MergeObservables(out, {o});
  };
  auto field = [&](const char* name) { return alert.Field(name); };
  std::array<unsigned char, 16> buf{};
  int len = 0;
  for (const char* name : {"source.ip", "destination.ip"}) {
    const std::string_view v = field(name);
    if (!v.empty() && ParseIp(v, buf, len)) add(ObservableKind::kIp, v, name);
  }
  add(ObservableKind::kUrl, field("url.original"), "url.original");
  add(ObservableKind::kDomain, field("url.domain"), "url.domain");
  add(ObservableKind::kDomain, field("dns.question.name"), "dns.question.name");
  for (const auto& [name, value] : alert.FieldsWithPrefix("file.hash.")) {
    add(ObservableKind::kHash, value, name, absl::AsciiStrToLower(std::string(name.substr(10))));
  }
  add(ObservableKind::kUser, field("user.name"), "user.name");
  std::string_view host = field("host.hostname");
  if (host.empty()) host = alert.host;
  add(ObservableKind::kHost, host, "host.hostname");
  if (alert.ioc_hit && !alert.ioc_value.empty()) {
    // Classify the IOC value by its shape so it lands next to the same value from a field.
    const std::string v = alert.ioc_value;
    ObservableKind kind = ObservableKind::kDomain;
    std::string algo;
    if (ParseIp(v, buf, len)) {
      kind = ObservableKind::kIp;
    } else if (v.find("://") != std::string::npos) {
      kind = ObservableKind::kUrl;
    } else if (std::all_of(v.begin(), v.end(),
                           [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); }) &&
               (v.size() == 32 || v.size() == 40 || v.size() == 64 || v.size() == 128)) {
      kind = ObservableKind::kHash;
      algo = v.size() == 32   ? "md5"
             : v.size() == 40 ? "sha1"
             : v.size() == 64 ? "sha256"
                              : "sha512";
    }
    add(kind, v, "ioc", algo);
  }
  return out;
}

void MergeObservables(std::vector<Observable>& into, const std::vector<Observable>& add) {
  for (const Observable& o : add) {
    auto it = std::find_if(into.begin(), into.end(), [&](const Observable& x) {
      return x.kind == o.kind && x.value == o.value && x.field == o.field;
    });
    if (it == into.end()) {
      into.push_back(o);
      continue;
    }
    it->first_seen = std::min(it->first_seen, o.first_seen);
    it->last_seen = std::max(it->last_seen, o.last_seen);
    it->alert_ids.insert(o.alert_ids.begin(), o.alert_ids.end());
    if (it->hash_algo.empty()) it->hash_algo = o.hash_algo;
  }
}

void RemoveAlertsFromObservables(std::vector<Observable>& obs, const std::set<std::string>& ids) {
  std::vector<Observable> kept;
  for (Observable& o : obs) {
    if (o.alert_ids.empty()) {  // added by an analyst
      kept.push_back(std::move(o));
      continue;
    }
    for (const std::string& id : ids) o.alert_ids.erase(id);
    if (!o.alert_ids.empty()) kept.push_back(std::move(o));
  }
  obs = std::move(kept);
}

LinkedAlert ToLinkedAlert(const AlertInput& alert) {
  LinkedAlert l;
  l.id = alert.id;
  l.rule_id = alert.rule_id;
  l.title = alert.title;
  l.level = alert.level;
  l.time = alert.time;
  // A log time ahead of the server's (a skewed host clock) says nothing about when it
  // happened; the receive time is then the best bound.
  l.occurred = alert.occurred != absl::InfinitePast() && alert.occurred <= alert.time
                   ? alert.occurred
                   : alert.time;
  l.agent_id = alert.agent_id;
  l.seq = alert.seq;
  const std::string_view host = alert.Field("host.hostname");
  l.host = !host.empty() ? std::string(host) : alert.host;
  l.source_ip = std::string(alert.Field("source.ip"));
  l.ioc_confidence = alert.ioc_hit ? std::clamp(alert.ioc_confidence, 0, 100) : 0;
  return l;
}

std::string FormatIncidentId(int year, int number) {
  return absl::StrFormat("INC-%04d-%04d", year, number);
}

absl::StatusOr<std::pair<int, int>> ParseIncidentId(std::string_view id) {
  const std::string s(id);
  int year = 0;
  int number = 0;
  if (s.size() >= 13 && s.rfind("INC-", 0) == 0 && s[8] == '-' &&
      absl::SimpleAtoi(s.substr(4, 4), &year) && absl::SimpleAtoi(s.substr(9), &number) &&
      number > 0 &&
      std::all_of(s.begin() + 9, s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::make_pair(year, number);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", s, "' is not an incident id; write it as INC-YYYY-NNNN, e.g. INC-2026-0001"));
}

bool IpInCidr(std::string_view ip, std::string_view cidr) {
  std::array<unsigned char, 16> a{};
  std::array<unsigned char, 16> net{};
  int alen = 0;
  int nlen = 0;
  const std::string c(cidr);
  const size_t slash = c.find('/');
  if (!ParseIp(ip, a, alen) || !ParseIp(c.substr(0, slash), net, nlen) || alen != nlen) {
    return false;
  }
  int bits = alen * 8;
  if (slash != std::string::npos) {
    if (!absl::SimpleAtoi(c.substr(slash + 1), &bits) || bits < 0 || bits > alen * 8) return false;
  }
  for (int i = 0; i < alen && bits > 0; ++i, bits -= 8) {
    const unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((a[i] & mask) != (net[i] & mask)) return false;
  }
  return true;
}

std::string FormatRfc3339(absl::Time t) {
  if (!IsSet(t)) return "";
  // Years 1970..9999 by arithmetic: absl::FormatTime parses its format and breaks the time
  // down through the zone on every call, and an alert joining an incident formats about ten
  // times (its item, timeline entry, observables and audit record). Same text as below.
  constexpr int64_t kYear10000Ms = int64_t{253402300800} * 1000;  // 10000-01-01T00:00:00Z
  const int64_t ms = absl::ToUnixMillis(t);                       // rounds down, as %E3S truncates
  if (t == absl::InfiniteFuture() || ms < 0 || ms >= kYear10000Ms) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  }
  const int64_t secs = ms / 1000;
  const int64_t sod = secs % 86400;
  // Civil date from days since 1970-01-01 (H. Hinnant's civil_from_days), for days >= 0.
  const int64_t z = secs / 86400 + 719468;
  const int64_t era = z / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  std::string out(24, '0');  // YYYY-MM-DDTHH:MM:SS.mmmZ
  auto put = [&out](size_t at, int64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i, v /= 10) out[at + i] = static_cast<char>('0' + v % 10);
  };
  put(0, year, 4);
  out[4] = '-';
  put(5, month, 2);
  out[7] = '-';
  put(8, day, 2);
  out[10] = 'T';
  put(11, sod / 3600, 2);
  out[13] = ':';
  put(14, sod / 60 % 60, 2);
  out[16] = ':';
  put(17, sod % 60, 2);
  out[19] = '.';
  put(20, ms % 1000, 3);
  out[23] = 'Z';
  return out;
}

absl::StatusOr<absl::Time> ParseRfc3339(std::string_view text) {
  if (text.empty()) return absl::InfinitePast();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("time '", std::string(text),
                                                   "' is not RFC 3339 (", err,
                                                   "); write e.g. 2026-11-28T10:00:00Z"));
  }
  return t;
}

}  // namespace siper::incidents

#include "server/incidents/report_util.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace siper::incidents::internal {
namespace {

void AppendEscapedControl(std::string& out, char c) {
  out += absl::StrFormat("\\x%02X", static_cast<unsigned char>(c));
}

void AddUnique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

std::string MdCell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|' || c == '\\' || c == '`' || c == '<' || c == '*' || c == '_' || c == '[' ||
        c == ']') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out.push_back(' ');
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      AppendEscapedControl(out, c);
    } else {
      out.push_back(c);
    }
  }
  return out.empty() ? "-" : out;
}

std::string MdText(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out.push_back('\n');
    } else if (c == '<' || c == '`' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\t') {
      out.push_back(' ');
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      AppendEscapedControl(out, c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Html(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
          out += absl::StrFormat("\\x%02X", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

std::string HumanTime(absl::Time t, std::string_view lang) {
  if (!IsSet(t)) return "-";
  static const absl::TimeZone kTurkey = absl::FixedTimeZone(3 * 3600);
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S", t, kTurkey),
                      lang == "en" ? " (UTC+3)" : " (TSİ)");
}

std::string HumanDuration(absl::Duration d, std::string_view lang) {
  if (d == absl::InfiniteDuration()) return "-";
  const bool en = lang == "en";
  int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes < 0) minutes = 0;
  const int64_t days = minutes / (int64_t{24} * 60);
  const int64_t hours = (minutes / 60) % 24;
  const int64_t mins = minutes % 60;
  std::string out;
  if (days > 0) absl::StrAppend(&out, days, en ? " d " : " gün ");
  if (days > 0 || hours > 0) absl::StrAppend(&out, hours, en ? " h " : " sa ");
  absl::StrAppend(&out, mins, en ? " min" : " dk");
  return out;
}

std::string StateLabel(State s, std::string_view lang) {
  return Label(absl::StrCat("state.", std::string(ToString(s))), lang);
}
std::string SeverityLabel(Severity s, std::string_view lang) {
  return Label(absl::StrCat("severity.", std::string(ToString(s))), lang);
}
std::string ResolutionLabel(Resolution r, std::string_view lang) {
  return Label(absl::StrCat("resolution.", std::string(ToString(r))), lang);
}
std::string KindLabel(ObservableKind k, std::string_view lang) {
  return Label(absl::StrCat("kind.", std::string(ToString(k))), lang);
}

bool InRanges(const std::string& ip, const std::vector<std::string>& ranges) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const std::string& r) { return IpInCidr(ip, r); });
}

Affected AffectedOf(const Incident& incident, const std::vector<std::string>& ranges) {
  Affected a;
  for (const LinkedAlert& l : incident.alerts) AddUnique(a.hosts, l.host);
  for (const Observable& o : incident.observables) {
    if (o.kind == ObservableKind::kHost) AddUnique(a.hosts, o.value);
    if (o.kind != ObservableKind::kIp) continue;
    if (InRanges(o.value, ranges) || o.field == "destination.ip") {
      AddUnique(a.addresses, o.value);
    } else {
      AddUnique(a.attackers, o.value);
    }
  }
  return a;
}

}  // namespace siper::incidents::internal

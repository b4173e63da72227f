#include "common/time_util.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace siper {

absl::StatusOr<absl::Duration> ParseDurationArg(std::string_view text) {
  absl::string_view rest = absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  if (rest.empty()) return absl::InvalidArgumentError("empty duration");
  absl::Duration total = absl::ZeroDuration();
  while (!rest.empty()) {
    size_t digits = 0;
    while (digits < rest.size() && absl::ascii_isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    int64_t n = 0;
    if (digits == 0 || digits > 12 || !absl::SimpleAtoi(rest.substr(0, digits), &n)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid duration '", std::string(text),
                                                     "': expected a number then s, m, h, d or w"));
    }
    if (digits == rest.size()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid duration '", std::string(text),
                                                     "': missing unit (s, m, h, d or w)"));
    }
    char unit = rest[digits];
    absl::Duration step;
    switch (unit) {
      case 's':
        step = absl::Seconds(n);
        break;
      case 'm':
        step = absl::Minutes(n);
        break;
      case 'h':
        step = absl::Hours(n);
        break;
      case 'd':
        step = absl::Hours(24 * n);
        break;
      case 'w':
        step = absl::Hours(24 * 7 * n);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("invalid duration '", std::string(text),
                                                       "': unknown unit '", std::string(1, unit),
                                                       "'"));
    }
    total += step;
    rest.remove_prefix(digits + 1);
  }
  return total;
}

absl::StatusOr<absl::Time> ParseTimeArg(std::string_view text, absl::Time now) {
  absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  if (t == "now") return now;
  if (!t.empty() && absl::ascii_isdigit(static_cast<unsigned char>(t[0])) &&
      t.find('-') == absl::string_view::npos && t.find(':') == absl::string_view::npos) {
    absl::StatusOr<absl::Duration> d = ParseDurationArg(std::string_view(t.data(), t.size()));
    if (d.ok()) return now - *d;
  }
  static constexpr std::array<const char*, 7> kFormats = {"%Y-%m-%dT%H:%M:%E*S%Ez",
                                                          "%Y-%m-%dT%H:%M:%E*SZ",
                                                          "%Y-%m-%dT%H:%M:%E*S",
                                                          "%Y-%m-%d %H:%M:%E*S",
                                                          "%Y-%m-%dT%H:%MZ",
                                                          "%Y-%m-%dT%H:%M",
                                                          "%Y-%m-%d"};
  std::string input(t);
  for (const char* format : kFormats) {
    absl::Time out;
    if (absl::ParseTime(format, input, absl::UTCTimeZone(), &out, nullptr)) return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid time '", std::string(text),
                   "': use a duration back from now (2h, 7d) or ISO 8601 (2026-11-28T10:00:00Z)"));
}

std::string FormatTimeNs(int64_t unix_ns) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixNanos(unix_ns),
                          absl::UTCTimeZone());
}

}  // namespace siper

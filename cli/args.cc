#include "cli/args.h"

#include "absl/strings/str_cat.h"
#include "common/text.h"
#include "common/time_util.h"

namespace siper::cli {

absl::StatusOr<int64_t> ParseTimeFlag(std::string_view text, std::string_view flag,
                                      absl::Time now) {
  if (text.empty()) return 0;
  absl::StatusOr<absl::Time> t = ParseTimeArg(text, now);
  if (!t.ok()) {
    // The message quotes the value, which may hold control characters.
    const absl::string_view message = t.status().message();
    return absl::InvalidArgumentError(
        absl::StrCat(absl::string_view(flag.data(), flag.size()), ": ",
                     EscapeForTerminal(std::string_view(message.data(), message.size()))));
  }
  return absl::ToUnixNanos(*t);
}

absl::StatusOr<std::pair<int64_t, int64_t>> ParseTimeRange(std::string_view since,
                                                           std::string_view until, absl::Time now) {
  absl::StatusOr<int64_t> from = ParseTimeFlag(since, "--since", now);
  if (!from.ok()) return from.status();
  absl::StatusOr<int64_t> to = ParseTimeFlag(until, "--until", now);
  if (!to.ok()) return to.status();
  if (*from != 0 && *to != 0 && *to <= *from) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--until ", EscapeForTerminal(until), " (", FormatTimeNs(*to), ") is not after --since ",
        EscapeForTerminal(since), " (", FormatTimeNs(*from),
        "): the range holds no time; a duration counts back from now, so the larger one is the "
        "earlier time (--since 2h --until 1h)"));
  }
  return std::make_pair(*from, *to);
}

absl::StatusOr<std::pair<std::string, std::string>> ParseFieldFilter(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--field '", EscapeForTerminal(text),
                     "': expected NAME=VALUE, a decoded field name and the value it must equal "
                     "(e.g. source.ip=203.0.113.7)"));
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

const CLI::Validator& NonNegative() {
  static const CLI::Validator* const kValidator = new CLI::Validator(
      [](std::string& value) -> std::string {
        if (!value.empty() && value[0] == '-') return "must be 0 or more, got " + value;
        return "";
      },
      "N>=0");
  return *kValidator;
}

}  // namespace siper::cli

// Time arguments and formats shared by the command line and the server.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper {

// "90s", "30m", "2h", "7d", "2w" (also combined: "1h30m").
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDurationArg(std::string_view text);

// A point in time as a user writes it: "now", a duration back from `now`
// ("2h" is two hours ago), or ISO 8601 ("2026-11-28", "2026-11-28T10:00:00Z",
// "2026-11-28T13:00:00+03:00", "2026-11-28 10:00:00" read as UTC).
[[nodiscard]] absl::StatusOr<absl::Time> ParseTimeArg(std::string_view text, absl::Time now);

// Unix nanoseconds for a time, and back.
inline int64_t ToUnixNanosSat(absl::Time t) { return absl::ToUnixNanos(t); }

// RFC 3339 in UTC with milliseconds: 2026-11-28T10:00:00.123Z.
[[nodiscard]] std::string FormatTimeNs(int64_t unix_ns);

}  // namespace siper

// Checks of command-line values shared by siperctl's commands, done before any
// call to the server: a bad value is bad usage (exit 2) and the message names
// the flag and the value.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::cli {

// A time flag's value (`2h`, `7d` back from `now`, or ISO 8601) in Unix
// nanoseconds; 0 for an empty value (no bound). The error names `flag`.
[[nodiscard]] absl::StatusOr<int64_t> ParseTimeFlag(std::string_view text, std::string_view flag,
                                                    absl::Time now);

// Parses --since and --until and refuses a range that holds no time at all
// (until at or before since), which would otherwise answer "nothing found".
[[nodiscard]] absl::StatusOr<std::pair<int64_t, int64_t>> ParseTimeRange(std::string_view since,
                                                                         std::string_view until,
                                                                         absl::Time now);

// `NAME=VALUE` of --field, split; the error names the flag and the value.
[[nodiscard]] absl::StatusOr<std::pair<std::string, std::string>> ParseFieldFilter(
    std::string_view text);

// For unsigned options: CLI11 2.1 reads "-1" into an unsigned integer as its
// two's complement (so `--limit -1` meant "no limit"); this refuses a sign.
const CLI::Validator& NonNegative();

}  // namespace siper::cli

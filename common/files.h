// Small file helpers: whole-file reads and atomic replacement.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace siper {

// Reads a whole file. The error names the path.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path);

// Writes `data` to a temporary file beside `path` with `mode`, fsyncs it and
// renames it over `path`, so readers see the old or the new content, never a mix.
[[nodiscard]] absl::Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                                           mode_t mode = 0644);

// Creates `dir` (and parents) with `mode` when missing.
[[nodiscard]] absl::Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode = 0755);

}  // namespace siper

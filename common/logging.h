// Logging set-up for Siper's daemons (spdlog).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace siper {

struct LogOptions {
  std::filesystem::path file;        // rotating log file; empty: no file
  bool to_stderr = false;            // also (or only) to stderr
  std::string level = "info";        // trace, debug, info, warn, error
  size_t max_file_bytes = 10 << 20;  // rotate at 10 MiB
  size_t max_files = 5;              // keep 5 rotated files
};

// Makes the default spdlog logger write where `options` say. Names the file on error.
[[nodiscard]] absl::Status SetupLogging(const std::string& name, const LogOptions& options);

}  // namespace siper

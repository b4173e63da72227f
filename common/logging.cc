#include "common/logging.h"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace siper {

absl::Status SetupLogging(const std::string& name, const LogOptions& options) {
  std::vector<spdlog::sink_ptr> sinks;
  try {
    if (!options.file.empty()) {
      if (options.file.has_parent_path()) {
        if (absl::Status st = EnsureDirectory(options.file.parent_path(), 0750); !st.ok())
          return st;
      }
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          options.file.string(), options.max_file_bytes, options.max_files));
    }
    if (options.to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (sinks.empty()) sinks.push_back(std::make_shared<spdlog::sinks::null_sink_mt>());
  } catch (const spdlog::spdlog_ex& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open log file ", options.file.string(), ": ", e.what()));
  }
  auto logger = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(absl::StrCat("unknown log level '", options.level,
                                                   "': use trace, debug, info, warn or error"));
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l [%t] %v");
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace siper

#include "server/health_config.h"

#include "absl/strings/str_cat.h"

namespace siper::server {
namespace {

template <typename T>
absl::Status Get(const YAML::Node& root, const std::string& key, const std::string& file, T* out) {
  const YAML::Node node = root[key];
  if (!node) return absl::OkStatus();
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", node.Mark().line + 1, ": key '", key, "' has the wrong type"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Range(const YAML::Node& root, const std::string& key, const std::string& file, T min,
                   T max, T* out) {
  if (absl::Status st = Get(root, key, file, out); !st.ok()) return st;
  if (*out < min || *out > max) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", root[key].Mark().line + 1, ": key '",
                                                   key, "' must be between ", min, " and ", max,
                                                   " (got ", *out, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

const std::set<std::string>& HealthConfigKeys() {
  static const std::set<std::string> keys = {
      "health_check_interval_s", "agent_silent_after_s", "spool_warn_percent",
      "clock_skew_max_s",        "disk_min_free_bytes",  "disk_min_free_percent",
      "disk_probe_file",         "metrics_listen",       "metrics_allow_remote"};
  return keys;
}

absl::Status ParseHealthConfig(const YAML::Node& root, const std::string& file,
                               HealthOptions* health, MetricsConfig* metrics) {
  constexpr int64_t kYear = int64_t{366} * 24 * 3600;
  std::string probe;
  int64_t min_free = static_cast<int64_t>(health->disk_min_free_bytes);
  for (absl::Status st : {
           Range<int64_t>(root, "health_check_interval_s", file, 1, 3600,
                          &health->check_interval_s),
           Range<int64_t>(root, "agent_silent_after_s", file, 1, kYear,
                          &health->agent_silent_after_s),
           Range<double>(root, "spool_warn_percent", file, 1, 100, &health->spool_warn_percent),
           Range<int64_t>(root, "clock_skew_max_s", file, 1, kYear, &health->clock_skew_max_s),
           Range<int64_t>(root, "disk_min_free_bytes", file, 0, int64_t{1} << 50, &min_free),
           Range<double>(root, "disk_min_free_percent", file, 0, 99,
                         &health->disk_min_free_percent),
           Get(root, "disk_probe_file", file, &probe),
           Get(root, "metrics_listen", file, &metrics->listen),
           Get(root, "metrics_allow_remote", file, &metrics->allow_remote),
       }) {
    if (!st.ok()) return st;
  }
  health->disk_min_free_bytes = static_cast<uint64_t>(min_free);
  health->disk_probe_file = probe;
  if (!metrics->listen.empty() && metrics->listen.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", root["metrics_listen"].Mark().line + 1,
                     ": key 'metrics_listen' must be HOST:PORT (got '", metrics->listen, "')"));
  }
  return absl::OkStatus();
}

}  // namespace siper::server

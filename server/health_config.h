// The health and metrics keys of the server's YAML configuration (see
// deploy/server.example.yaml): detector thresholds, the disk floor and the metrics port.
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"
#include "server/health_monitor.h"
#include "yaml-cpp/yaml.h"

namespace siper::server {

struct MetricsConfig {
  std::string listen;         // HOST:PORT of the plain-HTTP /metrics; empty: off (default)
  bool allow_remote = false;  // a non-loopback metrics_listen is refused unless true
};

// The top-level keys ParseHealthConfig reads.
const std::set<std::string>& HealthConfigKeys();

// Reads those keys of `root` into `health` and `metrics` (absent keys keep their defaults).
// Errors name `file`, the line, the key and what is wrong.
[[nodiscard]] absl::Status ParseHealthConfig(const YAML::Node& root, const std::string& file,
                                             HealthOptions* health, MetricsConfig* metrics);

}  // namespace siper::server

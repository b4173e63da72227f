// siper-server's configuration: YAML file and/or command-line flags.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/health_config.h"
#include "server/incidents/config.h"
#include "server/timestamp.h"

namespace siper::server {

struct ServerConfig {
  std::filesystem::path data_dir = "./var/siper";  // RocksDB, PKI, logs
  std::string listen = "127.0.0.1:7443";           // the one TLS port
  std::filesystem::path rules_dir;                 // empty: the installed default rule set
  std::vector<std::string> server_names;           // extra DNS/IP names for the server certificate
  int64_t token_ttl_s = 3600;                      // default enrollment token lifetime
  int64_t max_token_ttl_s = 7 * 24 * 3600;         // the longest an admin may ask for
  int64_t agent_cert_validity_s = 365 * 86400;     // agent certificates (enrollment, renewal)
  int workers = 0;                                 // ingest workers; 0: one per core
  bool sync_writes = true;                         // fsync the WAL before acknowledging
  std::string log_level = "info";
  bool log_to_stderr = true;     // besides DATA_DIR/log/server.log
  int64_t seal_interval_s = 60;  // how often the chain head is signed (and at shutdown)
  // Retention (Law 5651: two years). retention_days applies to every kind not
  // set under `retention:`; 0 keeps records forever.
  int64_t retention_days = 730;
  int64_t retention_events_days = -1;  // -1: retention_days
  int64_t retention_alerts_days = -1;  // -1: retention_days
  // `tsa: {url, cert_file, ca_file, timeout_s, policy}`: RFC 3161 time-stamps of chain seals.
  TsaOptions tsa;
  // The `institution:` and `incidents:` blocks (server/incidents/config.h); defaults when absent.
  incidents::IncidentsConfig incidents;
  // Health detectors, the disk floor and the metrics port (health_config.h).
  HealthOptions health;
  MetricsConfig metrics;
};

// Reads a YAML config. Unknown keys and wrong types are errors naming the file and key.
[[nodiscard]] absl::StatusOr<ServerConfig> LoadServerConfig(const std::filesystem::path& file);

// The rule set to load when none is configured: next to the binary once
// installed, else the source tree's rules/ruleset.
[[nodiscard]] std::filesystem::path DefaultRulesDir();

}  // namespace siper::server

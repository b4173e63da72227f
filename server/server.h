// The whole server: storage, PKI, rules, ingest and the gRPC services on one TLS port.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "rules/live_rules.h"
#include "server/agent_service.h"
#include "server/analyst_service.h"
#include "server/chain_sealer.h"
#include "server/config.h"
#include "server/dev_pki.h"
#include "server/incident_service.h"
#include "server/ingest.h"
#include "server/ioc_feeds.h"
#include "server/maintenance.h"
#include "server/server_health.h"
#include "server/storage/store.h"
#include "server/user_service.h"

namespace siper::server {

// Offline restore: copies a backup (siperctl backup) into data_dir/db, which
// must be empty or missing, and opens it once to check it.
[[nodiscard]] absl::Status RestoreStore(const std::filesystem::path& backup_dir,
                                        const std::filesystem::path& data_dir);

class SiperServer {
 public:
  // Opens the store, makes or loads the PKI, compiles the rules and starts listening.
  static absl::StatusOr<std::unique_ptr<SiperServer>> Start(const ServerConfig& config);
  ~SiperServer();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }

  // Stops taking calls, lets running ones end (up to a deadline), drains ingest.
  void Shutdown();

  // Re-reads the rules folder (with the compiled-database cache) and swaps the new
  // set in atomically; a set with any error is refused with every error named
  // (file:line) and the running set kept. `actor` is audited. Thread-safe.
  absl::StatusOr<siper::v1::ReloadRulesResponse> ReloadRules(const std::string& actor);

  // Online restore of a backup (siperctl restore; server/README.md "Backup and restore"):
  // copies `backup_dir` beside the database, checks the copy (opens, schema, chain
  // verifies), pauses agent batches, swaps the database directory (the previous one is
  // kept as db.before-restore-TIME), reloads what holds store state (chain head, incidents
  // and audit trail, IOC set, seals) and resumes. A bad backup changes nothing.
  // `actor` is audited. One restore (or rule reload) at a time.
  absl::StatusOr<siper::v1::RestoreResponse> RestoreBackup(const std::string& actor,
                                                           const std::filesystem::path& backup_dir);

 private:
  SiperServer() = default;

  ServerConfig config_;
  ServerPki pki_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<IncidentServiceImpl> incident_service_;  // outlives ingest, which feeds it
  std::unique_ptr<ChainSealer> sealer_;
  std::unique_ptr<MaintenanceThread> maintenance_;
  std::filesystem::path rules_dir_;
  std::unique_ptr<rules::LiveRuleSet> live_rules_;
  std::unique_ptr<rules::LiveIocSet> live_ioc_;
  std::unique_ptr<IocFeeds> ioc_feeds_;
  std::mutex reload_mu_;  // one reload or restore at a time
  std::unique_ptr<IngestPipeline> ingest_;
  std::unique_ptr<ServerHealth> health_;  // detectors, health events, metrics port
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<AnalystServiceImpl> analyst_service_;
  std::unique_ptr<UserServiceImpl> user_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace siper::server

// siper-server: the central server. See server/README.md.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/files.h"
#include "common/logging.h"
#include "server/server.h"

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"siper-server: receives agent events, detects, stores and serves analysts"};
  std::string config_file, data_dir, listen, rules_dir, log_level, restore_from;
  int workers = 0;
  app.add_option("--config", config_file, "YAML configuration file")->check(CLI::ExistingFile);
  app.add_option("--data-dir", data_dir, "data directory (default ./var/siper)");
  app.add_option("--listen", listen, "HOST:PORT of the TLS port (default 127.0.0.1:7443)");
  app.add_option("--rules", rules_dir, "folder of Sigma rules (default: the shipped rule set)");
  app.add_option("--workers", workers, "ingest workers (default: one per core)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.add_option("--restore-from", restore_from,
                 "offline: install this backup (siperctl backup) as DATA_DIR/db, then exit; "
                 "the server must be stopped and DATA_DIR/db empty or missing")
      ->check(CLI::ExistingDirectory);
  app.set_version_flag("--version", SIPER_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  siper::server::ServerConfig config;
  if (!config_file.empty()) {
    absl::StatusOr<siper::server::ServerConfig> loaded =
        siper::server::LoadServerConfig(config_file);
    if (!loaded.ok()) {
      std::cerr << "siper-server: " << loaded.status().message() << "\n";
      return 2;
    }
    config = *loaded;
  }
  // Flags win over the file.
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!listen.empty()) config.listen = listen;
  if (!rules_dir.empty()) config.rules_dir = rules_dir;
  if (workers > 0) config.workers = workers;
  if (!log_level.empty()) config.log_level = log_level;

  if (!restore_from.empty()) {
    // No server runs: the store directory is replaced by a checked copy of the backup.
    if (absl::Status st = siper::server::RestoreStore(restore_from, config.data_dir); !st.ok()) {
      std::cerr << "siper-server: restore failed: " << st.message() << "\n";
      return 1;
    }
    std::cout << "restored " << restore_from << " into " << (config.data_dir / "db").string()
              << "\n";
    return 0;
  }

  siper::LogOptions log;
  log.file = config.data_dir / "log" / "server.log";
  log.to_stderr = config.log_to_stderr;
  log.level = config.log_level;
  if (absl::Status st = siper::SetupLogging("siper-server", log); !st.ok()) {
    std::cerr << "siper-server: " << st.message() << "\n";
    return 2;
  }

  // Signals are taken synchronously by this thread; block them before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // reload the rules
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<siper::server::SiperServer>> server =
      siper::server::SiperServer::Start(config);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", std::string(server.status().message()));
    if (!config.log_to_stderr) std::cerr << "siper-server: " << server.status().message() << "\n";
    return 1;
  }
  // Tests and scripts wait for this file to learn the bound port.
  if (absl::Status st = siper::WriteFileAtomic(config.data_dir / "server.port",
                                               absl::StrCat((*server)->port(), "\n"));
      !st.ok()) {
    spdlog::warn("{}", std::string(st.message()));
  }
  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    absl::StatusOr<siper::v1::ReloadRulesResponse> reloaded = (*server)->ReloadRules("SIGHUP");
    if (!reloaded.ok()) spdlog::error("SIGHUP: {}", std::string(reloaded.status().message()));
  }
  spdlog::info("received signal {}, shutting down", sig);
  (*server)->Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built without NDEBUG, so absl::Mutex (which gRPC uses for all its
  // locks) checks every acquisition for lock-order cycles: a per-thread held-locks list
  // and a process-wide graph under one global lock, on every lock of every stream's
  // read, write and completion. That is a debugging aid, not a behaviour: off here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "siper-server: fatal: " << e.what() << "\n";
    return 1;
  }
}

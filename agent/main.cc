// siper-agent: enroll with a server, or run as a silent service.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/enroll.h"
#include "agent/identity.h"
#include "agent/systemd_notify.h"
#include "common/logging.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitStartup = 2;  // usage, configuration or state errors: refuses to start

int RunEnroll(const siper::agent::EnrollOptions& options, bool verbose) {
  // --verbose: each step on stderr; otherwise only the result or the error.
  siper::LogOptions log_options;
  log_options.to_stderr = true;
  log_options.level = verbose ? "debug" : "off";
  if (absl::Status st = siper::SetupLogging("siper-agent", log_options); !st.ok()) {
    std::cerr << "siper-agent: " << st.message() << "\n";
    return kExitRuntime;
  }
  auto agent_id = siper::agent::Enroll(options);
  if (!agent_id.ok()) {
    std::cerr << "siper-agent: " << agent_id.status().message() << "\n";
    return kExitRuntime;
  }
  std::cout << "enrolled as " << *agent_id << "\n";
  return 0;
}

// Points stdin and stdout at /dev/null and stderr at a file beside the log,
// so that nothing a library prints reaches a terminal.
void DetachFromTerminal(const std::filesystem::path& log_file) {
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    close(null_fd);
  }
  const std::filesystem::path stderr_file = log_file.parent_path() / "agent.stderr.log";
  int err_fd = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (err_fd < 0) err_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (err_fd >= 0) {
    dup2(err_fd, STDERR_FILENO);
    close(err_fd);
  }
}

int RunAgent(const std::string& config_path, bool foreground) {
  // Signals are taken by sigwait below; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  (void)signal(SIGPIPE, SIG_IGN);

  auto config = siper::agent::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "siper-agent: " << config.status().message() << "\n";
    return kExitStartup;
  }
  // Checked before the log directory is made, so a wrong state_dir leaves no trace.
  if (auto identity = siper::agent::LoadIdentity(config->state_dir); !identity.ok()) {
    std::cerr << "siper-agent: " << identity.status().message() << "\n";
    return kExitStartup;
  }
  siper::LogOptions log_options;
  log_options.file = config->log_file;
  log_options.level = config->log_level;
  log_options.to_stderr = foreground;
  if (absl::Status st = siper::SetupLogging("siper-agent", log_options); !st.ok()) {
    std::cerr << "siper-agent: " << config_path << ": key 'log_file': " << st.message() << "\n";
    return kExitStartup;
  }
  auto agent = siper::agent::Agent::Create(*config);
  if (!agent.ok()) {
    spdlog::critical("cannot start: {}", std::string(agent.status().message()));
    if (!foreground) std::cerr << "siper-agent: " << agent.status().message() << "\n";
    return kExitStartup;
  }
  if (!foreground) DetachFromTerminal(config->log_file);
  (*agent)->Start();
  siper::agent::NotifySystemd("READY=1");
  const std::optional<absl::Duration> watchdog = siper::agent::SystemdWatchdogInterval();
  absl::Time last_watchdog_ping = absl::InfinitePast();

  int exit_code = 0;
  for (;;) {
    // Pinged only while the tailer keeps making rounds: a stuck agent is restarted.
    if (watchdog && absl::Now() - last_watchdog_ping >= *watchdog / 4 &&
        absl::Now() - (*agent)->last_tail_round() < *watchdog / 2) {
      siper::agent::NotifySystemd("WATCHDOG=1");
      last_watchdog_ping = absl::Now();
    }
    timespec timeout{1, 0};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("signal {}: stopping", sig);
      break;
    }
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading is not supported yet; restart to apply a new config");
      continue;
    }
    if (absl::Status health = (*agent)->health(); !health.ok()) {
      exit_code = kExitRuntime;
      break;
    }
  }
  siper::agent::NotifySystemd("STOPPING=1");
  if (!(*agent)->Stop(absl::Seconds(5)).ok()) exit_code = kExitRuntime;
  spdlog::shutdown();
  return exit_code;
}

int Main(int argc, char** argv) {
  CLI::App app{"Siper endpoint agent: ships log lines to siper-server"};
  app.set_version_flag("--version", SIPER_VERSION);
  app.require_subcommand(1);

  siper::agent::EnrollOptions enroll;
  bool verbose = false;
  CLI::App* enroll_cmd = app.add_subcommand("enroll", "Get a certificate with a one-time token");
  enroll_cmd->add_option("--server", enroll.server, "siper-server HOST:PORT")->required();
  enroll_cmd->add_option("--token", enroll.token, "one-time enrollment token")->required();
  enroll_cmd->add_option("--ca", enroll.ca_file, "CA certificate of the server (PEM)")
      ->required()
      ->check(CLI::ExistingFile);
  enroll_cmd->add_option("--state-dir", enroll.state_dir, "where the key and certificate go")
      ->required();
  enroll_cmd->add_option("--hostname", enroll.hostname,
                         "name sent to the server (default: this host)");
  enroll_cmd->add_flag("--verbose", verbose,
                       "print each step on stderr (errors are printed either way)");

  std::string config_path;
  bool foreground = false;
  CLI::App* run_cmd = app.add_subcommand("run", "Run the agent (silent; logs to its own file)");
  run_cmd->add_option("--config", config_path, "agent configuration (YAML)")->required();
  run_cmd->add_flag("--foreground", foreground, "also log to stderr (for debugging)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return kExitStartup;
  }

  if (*enroll_cmd) return RunEnroll(enroll, verbose);
  return RunAgent(config_path, foreground);
}

}  // namespace

int main(int argc, char** argv) {
  // Library exceptions (yaml-cpp, CLI11, std) end here; our own code returns Status.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    std::fprintf(stderr, "siper-agent: fatal: %s\n", e.what());
    return kExitRuntime;
  } catch (...) {
    std::fprintf(stderr, "siper-agent: fatal: unknown exception\n");
    return kExitRuntime;
  }
}

// A test fixture that gives each test a temporary directory with one real
// siper-server in it, and the calls every end-to-end suite makes on it:
// siperctl as admin, enrollment tokens, `siper-agent enroll`.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"

namespace siper::testing {

class ServerTest : public ::testing::Test {
 protected:
  // ROOT = /tmp/siper-e2e-XXXXXX with DATA_DIR = ROOT/server. No server yet.
  void SetUp() override;
  // Stops the agent and the server (which must exit 0 on SIGTERM); removes
  // ROOT unless the test failed, so its outputs stay for a look.
  void TearDown() override;

  // Starts siper-server (use with ASSERT_NO_FATAL_FAILURE) with `config_yaml`
  // (written to ROOT/server.yaml) as --config when not empty, and flags for
  // the data dir, listen address, rules and workers on top. The first start
  // takes any free port; later starts (after a stop or a kill) listen on the
  // same one, as a restarted server would, so `address_` stays valid.
  void StartServer(const std::string& config_yaml = "", int workers = 2,
                   const std::filesystem::path& rules_dir = SIPER_RULES_DIR);
  // SIGTERM must end it with 0, SIGKILL with -1 (killed). No-op without one.
  // Until the next StartServer the port stays bound (not listening, so agents
  // are refused as by a stopped server): otherwise another test running in
  // parallel may get it as an ephemeral port, and the restart could not listen.
  void StopServer(int sig = SIGTERM);
  // The standard error of the latest server run.
  std::string ServerOutput() const;

  std::filesystem::path Pki(const std::string& name) const { return data_dir_ / "pki" / name; }
  // siperctl with DATA_DIR/pki/CERT.pem and .key ("admin" by default).
  CommandResult Ctl(const std::vector<std::string>& args, const std::string& cert = "admin") const;
  // A one-time enrollment token (`siperctl tokens create`).
  std::string CreateToken();
  // `siper-agent enroll` into `state_dir` with `token`.
  CommandResult Enroll(const std::filesystem::path& state_dir, const std::string& token,
                       const std::vector<std::string>& extra_args = {}) const;

  std::filesystem::path root_;
  std::filesystem::path data_dir_;
  std::string address_;
  std::unique_ptr<ChildProcess> server_;
  std::unique_ptr<ChildProcess> agent_;
  int server_runs_ = 0;
  int port_hold_ = -1;  // the stopped server's port, bound by the test (StopServer)
};

}  // namespace siper::testing

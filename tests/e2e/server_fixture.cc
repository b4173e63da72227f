#include "tests/e2e/server_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <utility>

#include "common/files.h"

namespace siper::testing {

namespace fs = std::filesystem;

namespace {

// A socket bound to `address` ("127.0.0.1:PORT") without listening, or -1.
int HoldPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) != 1) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // past TIME_WAIT
  if (bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;  // best effort: the restart then takes its chance as before
  }
  return fd;
}

}  // namespace

void ServerTest::SetUp() {
  char tmpl[] = "/tmp/siper-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << "mkdtemp: " << strerror(errno);
  root_ = tmpl;
  data_dir_ = root_ / "server";
}

void ServerTest::TearDown() {
  agent_.reset();
  StopServer();
  if (port_hold_ >= 0) close(std::exchange(port_hold_, -1));
  if (!HasFailure() && !root_.empty()) fs::remove_all(root_);
}

void ServerTest::StartServer(const std::string& config_yaml, int workers,
                             const fs::path& rules_dir) {
  if (port_hold_ >= 0) close(std::exchange(port_hold_, -1));
  fs::remove(data_dir_ / "server.port");
  ++server_runs_;
  const std::string listen = address_.empty() ? "127.0.0.1:0" : address_;
  std::vector<std::string> argv = {SIPER_SERVER_BIN,   "--data-dir", data_dir_.string(),
                                   "--listen",         listen,       "--rules",
                                   rules_dir.string(), "--workers",  std::to_string(workers)};
  if (!config_yaml.empty()) {
    const fs::path config = root_ / "server.yaml";
    std::ofstream(config) << config_yaml;
    argv.insert(argv.end(), {"--config", config.string()});
  }
  server_ = std::make_unique<ChildProcess>(
      argv, root_ / ("server" + std::to_string(server_runs_) + ".out"));
  absl::StatusOr<std::string> address = WaitForServerAddress(*server_, data_dir_);
  ASSERT_TRUE(address.ok()) << address.status() << ": " << ServerOutput();
  if (address_.empty()) address_ = *address;
  ASSERT_EQ(*address, address_) << "the restarted server did not take its old port";
}

void ServerTest::StopServer(int sig) {
  if (!server_) return;
  server_->Signal(sig);
  const int code = server_->Wait(20000);
  if (sig == SIGTERM) {
    EXPECT_EQ(code, 0) << ServerOutput();
  } else {
    EXPECT_EQ(code, -1) << "the server was not killed by signal " << sig;
  }
  server_.reset();
  if (port_hold_ < 0 && !address_.empty()) port_hold_ = HoldPort(address_);
}

std::string ServerTest::ServerOutput() const {
  return ReadFile(root_ / ("server" + std::to_string(server_runs_) + ".out.err")).value_or("");
}

CommandResult ServerTest::Ctl(const std::vector<std::string>& args, const std::string& cert) const {
  return RunSiperctl(address_, data_dir_ / "pki", args, cert);
}

std::string ServerTest::CreateToken() {
  CommandResult r = Ctl({"tokens", "create"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string token = r.out.substr(0, r.out.find('\n'));
  EXPECT_FALSE(token.empty()) << "no token in: " << r.out;
  return token;
}

CommandResult ServerTest::Enroll(const fs::path& state_dir, const std::string& token,
                                 const std::vector<std::string>& extra_args) const {
  std::vector<std::string> argv = {
      SIPER_AGENT_BIN,        "enroll",      "--server",        address_, "--token", token, "--ca",
      Pki("ca.pem").string(), "--state-dir", state_dir.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return RunCommand(argv);
}

}  // namespace siper::testing

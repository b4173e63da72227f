// The siper-agent binary itself: exit codes, messages, silence while running,
// clean stop on SIGTERM. The server side is the in-process AgentService stand-in.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/grpc_test_log.h"
#include "tests/agent/test_dir.h"

extern char** environ;

namespace siper::agent {
namespace {

using ::siper::agent::testing::Append;
using ::siper::agent::testing::FakeServer;
using ::siper::agent::testing::TestDir;
using ::siper::agent::testing::WaitFor;

// A child process with stdout and stderr captured in files.
class Child {
 public:
  Child(std::vector<std::string> args, const std::filesystem::path& out_prefix)
      : out_(out_prefix.string() + ".out"), err_(out_prefix.string() + ".err") {
    args.insert(args.begin(), SIPER_AGENT_BIN);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(posix_spawn(&pid_, SIPER_AGENT_BIN, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }
  void Signal(int sig) { kill(pid_, sig); }
  // Exit code, or -1 when killed by a signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string out() const { return ReadFile(out_).value_or(""); }
  std::string err() const { return ReadFile(err_).value_or(""); }

 private:
  std::filesystem::path out_;
  std::filesystem::path err_;
  pid_t pid_ = -1;
};

class BinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::SilenceGrpcLogs();
    server_.Start();
    ASSERT_TRUE(WriteFileAtomic(dir_ / "ca.pem", server_.ca_pem()).ok());
  }

  int Run(std::vector<std::string> args, std::string* out = nullptr, std::string* err = nullptr) {
    Child child(std::move(args), dir_ / absl::StrCat("cmd", ++commands_));
    const int code = child.Wait();
    if (out != nullptr) *out = child.out();
    if (err != nullptr) *err = child.err();
    return code;
  }

  std::vector<std::string> EnrollArgs(const std::string& token) {
    return {"enroll",
            "--server",
            server_.address(),
            "--token",
            token,
            "--ca",
            (dir_ / "ca.pem").string(),
            "--state-dir",
            (dir_ / "state").string()};
  }

  FakeServer server_;
  TestDir dir_;
  int commands_ = 0;
};

TEST_F(BinaryTest, EnrollPrintsAgentIdAndRefusalGoesToStderr) {
  server_.service().AllowToken("tok");
  std::string out, err;
  EXPECT_EQ(Run(EnrollArgs("tok"), &out, &err), 0) << err;
  EXPECT_EQ(out, "enrolled as agt-1\n");
  EXPECT_EQ(err, "");

  EXPECT_NE(Run(EnrollArgs("tok"), &out, &err), 0);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(absl::StrContains(err, "unknown, used or expired")) << err;
}

TEST_F(BinaryTest, ConfigErrorExitsTwoNamingFileAndKey) {
  const auto config = dir_ / "agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(config, "server: 127.0.0.1:1\nbatch_max_events: lots\n").ok());
  std::string out, err;
  EXPECT_EQ(Run({"run", "--config", config.string()}, &out, &err), 2);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(absl::StrContains(err, config.string() + ":2: key 'batch_max_events'")) << err;
}

TEST_F(BinaryTest, NotEnrolledExitsTwo) {
  const auto config = dir_ / "agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(config, absl::StrCat("server: 127.0.0.1:1\nstate_dir: ",
                                                   (dir_ / "nowhere").string(), "\n"))
                  .ok());
  std::string err;
  EXPECT_EQ(Run({"run", "--config", config.string()}, nullptr, &err), 2);
  EXPECT_TRUE(absl::StrContains(err, "not enrolled")) << err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "nowhere"));
}

TEST_F(BinaryTest, RunIsSilentShipsLinesAndStopsCleanly) {
  server_.service().AllowToken("tok");
  ASSERT_EQ(Run(EnrollArgs("tok")), 0);
  const auto log = dir_ / "app.log";
  Append(log, "before start\n");
  const auto config = dir_ / "agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(config, absl::StrCat("server: ", server_.address(),
                                                   "\nstate_dir: ", (dir_ / "state").string(),
                                                   "\nbatch_max_delay_ms: 10\nlogs:\n  - path: ",
                                                   log.string(), "\n    start: beginning\n"))
                  .ok());
  {
    Child agent({"run", "--config", config.string()}, dir_ / "agent");
    Append(log, "line 1\nline 2\n");
    EXPECT_TRUE(WaitFor([&] { return server_.service().stored_count() == 3; }));
    agent.Signal(SIGTERM);
    EXPECT_EQ(agent.Wait(), 0);
    EXPECT_EQ(agent.out(), "");
    EXPECT_EQ(agent.err(), "");
  }
  Append(log, "line 3\n");
  {
    Child agent({"run", "--config", config.string()}, dir_ / "agent2");
    EXPECT_TRUE(WaitFor([&] { return server_.service().stored_count() == 4; }));
    agent.Signal(SIGINT);
    EXPECT_EQ(agent.Wait(), 0);
  }
  auto stored = server_.service().stored();
  ASSERT_EQ(stored.size(), 4u);
  std::vector<std::string> lines;
  for (const auto& [key, entry] : stored) {
    EXPECT_EQ(entry.received, 1) << key.second;
    lines.push_back(entry.line);
  }
  EXPECT_EQ(lines, std::vector<std::string>({"before start", "line 1", "line 2", "line 3"}));
  const std::string agent_log = ReadFile(dir_ / "state" / "log" / "agent.log").value_or("");
  EXPECT_TRUE(absl::StrContains(agent_log, "offsets saved")) << agent_log;
}

}  // namespace
// A UDP port the agent cannot have stops the start (exit 2), naming the
// config file, the key and the address; nothing is half started.
TEST_F(BinaryTest, SyslogUdpPortInUseExitsTwoNamingFileAndKey) {
  server_.service().AllowToken("tok");
  ASSERT_EQ(Run(EnrollArgs("tok")), 0);
  const int taken = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string listen = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  const auto config = dir_ / "agent.yaml";
  ASSERT_TRUE(WriteFileAtomic(
                  config, absl::StrCat("server: ", server_.address(),
                                       "\nstate_dir: ", (dir_ / "state").string(),
                                       "\nsyslog_udp:\n  enabled: true\n  listen: ", listen, "\n"))
                  .ok());
  std::string out, err;
  EXPECT_EQ(Run({"run", "--config", config.string()}, &out, &err), 2);
  close(taken);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(absl::StrContains(
      err, absl::StrCat(config.string(), ": key 'syslog_udp.listen': ", listen, ": cannot bind")))
      << err;
  EXPECT_TRUE(absl::StrContains(err, "in use")) << err;
}

}  // namespace siper::agent

// End to end, the agent's journald collector, certificate renewal and
// revocation: the real siper-server, siper-agent and siperctl on loopback with
// real TLS, a temporary RocksDB and real journal files written by
// systemd-journal-remote (no running journald needed).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pki.h"
#include "siper/v1/agent_service.grpc.pb.h"
#include "tests/agent/journal_files.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using agent::testing::HaveJournalRemote;
using agent::testing::JournalEntry;
using agent::testing::SyslogEntry;
using agent::testing::WriteJournal;
using nlohmann::json;

// rules/ruleset/linux/ssh_failed_password.yml
constexpr char kSshFailedLogin[] = "7e623b43-6405-435c-a416-65a247983365";

size_t CountOccurrences(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++count;
  }
  return count;
}

class AgentFeaturesTest : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ServerTest::SetUp());
    state_dir_ = root_ / "agent";
  }

  // `extra`: server config lines (YAML).
  void StartServer(const std::string& extra = "") { ServerTest::StartServer(extra); }

  std::string AgentLog() {
    absl::StatusOr<std::string> out = ReadFile(state_dir_ / "log" / "agent.log");
    return out.ok() ? *out : "";
  }

  std::string EnrollAgent() {
    CommandResult r = ServerTest::Enroll(state_dir_, CreateToken());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // "enrolled as agt-..."
    const size_t at = r.out.find("agt-");
    return at == std::string::npos ? "" : r.out.substr(at, r.out.find_first_of(" \n", at) - at);
  }

  fs::path WriteAgentConfig(const std::string& body) {
    fs::path config = root_ / "agent.yaml";
    std::ofstream(config) << "server: " << address_ << "\n"
                          << "state_dir: " << state_dir_.string() << "\n"
                          << "batch_max_delay_ms: 50\n"
                          << "poll_interval_ms: 50\n"
                          << body;
    return config;
  }

  void StartAgent(const fs::path& config) {
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", config.string()},
        root_ / "agent.out");
  }

  std::vector<json> Events() {
    CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return AgentEventLines(r.out);
  }

  std::vector<json> WaitForEvents(size_t count, int seconds = 60) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::vector<json> events;
    while (std::chrono::steady_clock::now() < deadline) {
      events = Events();
      if (events.size() >= count) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return events;
  }

  bool WaitForAgentLog(const std::string& what, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (AgentLog().find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // Every stored line once, seqs 1..N in order, lines in `expected` order.
  void ExpectExactlyOnceInOrder(const std::vector<json>& events,
                                const std::vector<std::string>& expected) {
    ASSERT_EQ(events.size(), expected.size());
    std::map<std::string, int> seen;
    for (size_t i = 0; i < events.size(); ++i) {
      seen[events[i]["line"].get<std::string>()]++;
      EXPECT_EQ(events[i]["seq"].get<uint64_t>(), i + 1) << "order differs at " << i;
      EXPECT_EQ(events[i]["line"].get<std::string>(), expected[i]) << "order differs at " << i;
    }
    for (const std::string& line : expected) EXPECT_EQ(seen[line], 1) << line;
  }

  fs::path state_dir_;
};

// Journal entries arrive as syslog lines the server decodes (the sshd rule
// fires), filtered by the configured match, each exactly once across a
// SIGTERM restart and a kill -9 of the agent, with entries written while it
// was down.
TEST_F(AgentFeaturesTest, JournalEntriesStoredExactlyOnceAcrossRestarts) {
  if (!HaveJournalRemote()) {
    GTEST_SKIP() << agent::testing::kJournalRemote
                 << " is missing (Debian package systemd-journal-remote)";
  }
  StartServer();
  EnrollAgent();
  const fs::path journal_dir = root_ / "journal";
  fs::create_directories(journal_dir);
  const fs::path journal = journal_dir / "remote.journal";
  const int64_t t0 = absl::ToUnixMicros(absl::Now()) - 60 * 1000000;
  int n = 0;
  std::vector<std::string> expected;
  auto add = [&](int count) {
    std::vector<JournalEntry> entries;
    for (int i = 0; i < count; ++i, ++n) {
      const int64_t t = t0 + n * 1000;
      const std::string message =
          absl::StrCat("Failed password for root from 203.0.113.9 port ", 40000 + n, " ssh2");
      entries.push_back(SyslogEntry(t, "sshd", 500 + n, "ssh.service", message));
      // Not selected by the match: never shipped.
      entries.push_back(SyslogEntry(t + 1, "CRON", 900 + n, "cron.service", "noise"));
      expected.push_back(
          absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00", absl::FromUnixMicros(t),
                                        absl::UTCTimeZone()),
                       " pc1 sshd[", 500 + n, "]: ", message));
    }
    ASSERT_TRUE(WriteJournal(journal, entries));
  };
  add(5);
  const fs::path config =
      WriteAgentConfig(absl::StrCat("journald:\n"
                                    "  enabled: true\n"
                                    "  directory: ",
                                    journal_dir.string(),
                                    "\n"
                                    "  start: beginning\n"
                                    "  matches: [_SYSTEMD_UNIT=ssh.service]\n"));
  StartAgent(config);
  std::vector<json> events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << AgentLog();
  add(20);  // while running
  events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << AgentLog();

  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  add(7);  // while stopped
  StartAgent(config);
  events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << AgentLog();

  add(30);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  agent_->Signal(SIGKILL);  // maybe mid-batch
  agent_->Wait(20000);
  add(3);
  StartAgent(config);
  events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << AgentLog();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  events = Events();
  ExpectExactlyOnceInOrder(events, expected);
  for (const json& e : events) EXPECT_EQ(e["source"].get<std::string>(), "journald:ssh.service");

  // The server's sshd decoder read them: the failed-login rule fired with the address.
  CommandResult r = Ctl({"alerts", "list", "--limit", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int failed = 0;
  for (const json& a : ParseJsonLines(r.out)) {
    if (a["rule_id"] == kSshFailedLogin && a["fields"].value("source.ip", "") == "203.0.113.9") {
      ++failed;
    }
  }
  EXPECT_GT(failed, 0) << r.out;
}

// With a short certificate lifetime the agent renews with a new key, stores
// it 0600 and reconnects, and a stream of lines written meanwhile arrives
// whole, once each.
TEST_F(AgentFeaturesTest, CertificateIsRenewedAndTheStreamGoesOn) {
  StartServer("agent_cert_validity_s: 60\n");
  const std::string agent_id = EnrollAgent();
  ASSERT_FALSE(agent_id.empty());
  const std::string first_cert = ReadFile(state_dir_ / "agent.pem").value();
  const std::string first_key = ReadFile(state_dir_ / "agent.key").value();
  const fs::path log = root_ / "app.log";
  std::ofstream(log).close();
  // 60 s lifetime (+6 s backdated): renewed once less than half is left, ~27 s in.
  const fs::path config =
      WriteAgentConfig(absl::StrCat("cert_renew_fraction: 0.5\n"
                                    "logs:\n"
                                    "  - path: ",
                                    log.string(), "\n    start: beginning\n"));
  StartAgent(config);
  std::vector<std::string> expected;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(50);
  bool renewed = false;
  for (int i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string line = absl::StrCat("app line ", i);
    std::ofstream(log, std::ios::app) << line << "\n";
    expected.push_back(line);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!renewed && AgentLog().find("certificate renewed") != std::string::npos) {
      renewed = true;
    }
    // Keep writing for a few seconds after the renewal, across the reconnect.
    if (renewed && expected.size() % 100 == 0) break;
  }
  ASSERT_TRUE(renewed) << AgentLog();
  EXPECT_TRUE(WaitForAgentLog("reconnecting with the renewed certificate", 10)) << AgentLog();
  std::vector<json> events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << AgentLog();
  ExpectExactlyOnceInOrder(events, expected);

  const std::string cert = ReadFile(state_dir_ / "agent.pem").value();
  const std::string key = ReadFile(state_dir_ / "agent.key").value();
  EXPECT_NE(cert, first_cert);
  EXPECT_NE(key, first_key);  // a new key, not the old one re-certified
  absl::StatusOr<pki::Identity> id = pki::ParseIdentity(cert);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->common_name, agent_id);
  EXPECT_EQ(id->role, pki::kRoleAgent);
  for (const char* name : {"agent.pem", "agent.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((state_dir_ / name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
  EXPECT_FALSE(fs::exists(state_dir_ / "agent.key.next"));
  EXPECT_NE(ServerOutput().find("renewed the certificate of agent " + agent_id), std::string::npos);
}

std::shared_ptr<grpc::Channel> AgentChannel(const std::string& address, const fs::path& state_dir) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(state_dir / "ca.pem").value();
  tls.pem_private_key = ReadFile(state_dir / "agent.key").value();
  tls.pem_cert_chain = ReadFile(state_dir / "agent.pem").value();
  return grpc::CreateChannel(address, grpc::SslCredentials(tls));
}

grpc::Status Renew(const std::shared_ptr<grpc::Channel>& channel, const std::string& cn,
                   siper::v1::RenewResponse* response) {
  const std::string key = pki::GenerateKeyPem().value();
  siper::v1::RenewRequest request;
  request.set_csr_pem(pki::CreateCsrPem(key, cn).value());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return siper::v1::AgentService::NewStub(channel)->Renew(&context, request, response);
}

// Renew checks who asks: the CSR must name the caller, and a revoked agent
// gets nothing. The revoked agent says so in its log, a line per attempt
// (backing off), and keeps spooling what it reads.
TEST_F(AgentFeaturesTest, RevokedAgentIsRefusedAndSaysSo) {
  StartServer();
  const std::string agent_id = EnrollAgent();
  ASSERT_FALSE(agent_id.empty());
  auto channel = AgentChannel(address_, state_dir_);

  siper::v1::RenewResponse response;
  grpc::Status other = Renew(channel, "agt-someoneelse", &response);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED) << other.error_message();
  EXPECT_NE(other.error_message().find("agt-someoneelse"), std::string::npos);
  grpc::Status ok = Renew(channel, agent_id, &response);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(pki::ParseIdentity(response.certificate_pem()).value().common_name, agent_id);

  const fs::path log = root_ / "app.log";
  std::ofstream(log) << "before 1\nbefore 2\n";
  const fs::path config =
      WriteAgentConfig(absl::StrCat("logs:\n  - path: ", log.string(), "\n    start: beginning\n"));
  StartAgent(config);
  ASSERT_EQ(WaitForEvents(2).size(), 2u) << AgentLog();

  CommandResult revoke = Ctl({"agents", "revoke", agent_id});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  grpc::Status refused = Renew(channel, agent_id, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("revoked"), std::string::npos) << refused.error_message();

  // The next connection is refused too (the open stream ended at its next message).
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  const size_t refusals_before = CountOccurrences(AgentLog(), "the server refused this agent");
  StartAgent(config);
  std::ofstream(log, std::ios::app) << "after 1\nafter 2\nafter 3\n";
  ASSERT_TRUE(WaitForAgentLog("has been revoked", 20)) << AgentLog();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const std::string agent_log = AgentLog();
  EXPECT_NE(
      agent_log.find("the server refused this agent: agent " + agent_id + " has been revoked"),
      std::string::npos)
      << agent_log;
  // Backing off 0.5, 1, 2, 4 s: a handful of lines in these seconds, not a flood.
  const size_t refusals =
      CountOccurrences(agent_log, "the server refused this agent") - refusals_before;
  EXPECT_GE(refusals, 1u);
  EXPECT_LE(refusals, 6u) << agent_log;
  EXPECT_TRUE(agent_->Running());
  EXPECT_EQ(Events().size(), 2u);
  // The new lines are kept in the spool (offsets advanced past them).
  auto offsets = json::parse(ReadFile(state_dir_ / "offsets.json").value());
  EXPECT_EQ(offsets["next_seq"].get<uint64_t>(), 6u) << offsets.dump();
  EXPECT_EQ(offsets["acked_seq"].get<uint64_t>(), 2u) << offsets.dump();
}

}  // namespace
}  // namespace siper::testing

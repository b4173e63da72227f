// End to end: the real siper-server, siper-agent and siperctl binaries on
// loopback with real TLS and a temporary RocksDB.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/pki.h"
#include "siper/v1/agent_service.grpc.pb.h"
#include "siper/v1/analyst_service.grpc.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// rules/ruleset/linux/ssh_brute_force.yml
constexpr char kSshBruteForce[] = "d5c5f79f-af7a-436d-bc49-a04d1840d3d2";
// rules/ruleset/linux/ssh_failed_password.yml
constexpr char kSshFailedLogin[] = "7e623b43-6405-435c-a416-65a247983365";

// rules/ruleset/fim/fim_authorized_keys_changed.yml
constexpr char kAuthorizedKeysChanged[] = "SSH authorized_keys changed";
// rules/ruleset/fim/fim_malware_test_file.yml
constexpr char kMalwareTestFile[] = "Anti-malware test file (EICAR) written to disk";
constexpr char kEicar[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

void AppendLines(const fs::path& file, const std::vector<std::string>& lines) {
  std::ofstream out(file, std::ios::app | std::ios::binary);
  for (const std::string& l : lines) out << l << "\n";
}

class EndToEndTest : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ServerTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  // Enrolls an agent and writes its config watching `log`.
  fs::path SetUpAgent(const fs::path& log) {
    fs::path state = root_ / "agent";
    CommandResult r = Enroll(state, CreateToken());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    fs::path config = root_ / "agent.yaml";
    std::ofstream(config) << "server: " << address_ << "\n"
                          << "state_dir: " << state.string() << "\n"
                          << "batch_max_delay_ms: 50\n"
                          << "logs:\n"
                          << "  - path: " << log.string() << "\n"
                          << "    start: beginning\n";
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

  // Polls until `count` events are stored (or a deadline passes).
  std::vector<json> WaitForEvents(size_t count) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::vector<json> events;
    while (std::chrono::steady_clock::now() < deadline) {
      events = Events();
      if (events.size() >= count) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return events;
  }
};

// Every line appended to a watched file is stored exactly once, in order,
// across an agent restart, and the attack lines raise alerts.
TEST_F(EndToEndTest, EveryLineStoredExactlyOnceAndAlertsRaised) {
  fs::path log = root_ / "auth.log";
  std::vector<std::string> expected;
  auto add = [&](const std::vector<std::string>& lines) {
    AppendLines(log, lines);
    expected.insert(expected.end(), lines.begin(), lines.end());
  };
  add({"Nov 28 10:00:00 web01 sshd[100]: Server listening on 0.0.0.0 port 22."});
  fs::path config = SetUpAgent(log);
  StartAgent(config);

  // Twelve failures from one address within a minute: a brute force.
  for (int i = 0; i < 12; ++i) {
    add({"Nov 28 10:00:" + std::to_string(10 + i) + " web01 sshd[" + std::to_string(200 + i) +
         "]: Failed password for root from 203.0.113.7 port " + std::to_string(40000 + i) +
         " ssh2"});
  }
  std::vector<std::string> bulk;
  for (int i = 0; i < 300; ++i) {
    bulk.push_back("Nov 28 10:01:00 web01 CRON[" + std::to_string(1000 + i) +
                   "]: pam_unix(cron:session): session opened for user root by (uid=0) #" +
                   std::to_string(i));
  }
  add(bulk);
  add(
      {"Nov 28 10:02:00 web01 sudo:    alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice "
       "; USER=root ; COMMAND=/bin/bash"});
  // Invalid UTF-8 (here in the user name) is carried, stored and searchable.
  const std::string invalid_utf8 =
      "Nov 28 10:02:01 web01 sshd[400]: Invalid user b\xff\xfe"
      "d from 198.51.100.10 port 40000";
  add({invalid_utf8});

  std::vector<json> events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << ServerOutput();

  // Restart the agent mid-stream: nothing is lost or stored twice.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  add(
      {"Nov 28 10:03:00 web01 sshd[300]: Accepted password for root from 203.0.113.7 port 40100 "
       "ssh2",
       "Nov 28 10:03:01 web01 sshd[301]: Invalid user admin from 198.51.100.9 port 50000"});
  StartAgent(config);
  events = WaitForEvents(expected.size());
  ASSERT_EQ(events.size(), expected.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  events = Events();
  ASSERT_EQ(events.size(), expected.size()) << "late duplicates appeared";

  std::map<std::string, int> seen;
  std::set<uint64_t> seqs;
  for (const json& e : events) {
    seen[e["line"].get<std::string>()]++;
    seqs.insert(e["seq"].get<uint64_t>());
    EXPECT_EQ(e["source"].get<std::string>(), log.string());
    EXPECT_FALSE(e["agent_id"].get<std::string>().empty());
  }
  for (const std::string& line : expected) {
    if (line != invalid_utf8) {
      EXPECT_EQ(seen[line], 1) << line;
    }
  }
  // JSON output carries invalid bytes as U+FFFD.
  EXPECT_EQ(seen["Nov 28 10:02:01 web01 sshd[400]: Invalid user b\xEF\xBF\xBD\xEF\xBF\xBD"
                 "d from "
                 "198.51.100.10 port 40000"],
            1);
  // Sequence numbers are 1..N without gaps or repeats; oldest-first order is seq order.
  EXPECT_EQ(seqs.size(), expected.size());
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), expected.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["seq"].get<uint64_t>(), i + 1) << "order differs at " << i;
    if (expected[i] != invalid_utf8) {
      EXPECT_EQ(events[i]["line"].get<std::string>(), expected[i]) << "order differs at " << i;
    }
  }

  // Alerts: the failed logins carry the attacker's address, the sudo abuse is seen.
  CommandResult r = Ctl({"alerts", "list", "--limit", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> alerts = ParseJsonLines(r.out);
  int failed_from_attacker = 0;
  int brute_force = 0;
  bool sudo_alert = false;
  for (const json& a : alerts) {
    const json& f = a["fields"];
    if (a["rule_id"] == kSshFailedLogin && f.value("source.ip", "") == "203.0.113.7") {
      ++failed_from_attacker;
    }
    if (a["rule_id"] == kSshBruteForce) {
      ++brute_force;
      EXPECT_EQ(f.value("source.ip", ""), "203.0.113.7");
      EXPECT_GE(a["count"].get<int>(), 10);
    }
    if (a["line"].get<std::string>().find("NOT in sudoers") != std::string::npos) sudo_alert = true;
  }
  EXPECT_EQ(failed_from_attacker, 12) << r.out;
  // One correlated alert for the whole brute force, not one per attempt.
  EXPECT_EQ(brute_force, 1) << r.out;
  EXPECT_TRUE(sudo_alert) << r.out;

  // The text filter and the agent list work through the same CLI.
  r = Ctl({"events", "search", "--query", "Invalid user admin", "--json"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(ParseJsonLines(r.out).size(), 1u);
  // The registry's last seq is written off the ack path, within a second of the batch.
  std::vector<json> agents;
  for (int tries = 0; tries < 100; ++tries) {
    r = Ctl({"agents", "list", "--json"});
    agents = ParseJsonLines(r.out);
    if (r.exit_code == 0 && agents.size() == 1 &&
        agents[0]["last_seq"].get<uint64_t>() == expected.size()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(agents.size(), 1u) << r.out;
  EXPECT_EQ(agents[0]["last_seq"].get<uint64_t>(), expected.size()) << r.out;

  // The agent wrote nothing to its stdout or stderr while running as a service.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  EXPECT_EQ(ReadFile(root_ / "agent.out").value_or("x"), "");
  EXPECT_EQ(ReadFile(root_ / "agent.out.err").value_or("x"), "");
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address, const std::string& ca_pem,
                                       const std::string& key_pem, const std::string& cert_pem) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  tls.pem_private_key = key_pem;
  tls.pem_cert_chain = cert_pem;
  return grpc::CreateChannel(address, grpc::SslCredentials(tls));
}

// Opens an event stream and returns how the server ended it.
grpc::Status TryStream(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = siper::v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->Stream(&context);
  siper::v1::AgentMessage message;
  siper::v1::Event* event = message.mutable_batch()->add_events();
  event->set_seq(1);
  event->mutable_log()->set_line("forged");
  stream->Write(message);
  stream->WritesDone();
  siper::v1::ServerMessage reply;
  while (stream->Read(&reply)) {
  }
  return stream->Finish();
}

// File integrity through the real agent and server: the first scan (baseline)
// raises nothing, a new key in authorized_keys and an EICAR file do.
TEST_F(EndToEndTest, FimChangesRaiseAlertsButTheBaselineDoesNot) {
  fs::path watched = root_ / "home" / "deploy";
  fs::create_directories(watched / ".ssh");
  std::ofstream(watched / ".ssh" / "authorized_keys") << "ssh-ed25519 AAAAC3Nza deploy@laptop\n";
  fs::path log = root_ / "auth.log";
  std::ofstream(log).flush();
  fs::path config = SetUpAgent(log);
  std::ofstream(config, std::ios::app)
      << "fim:\n  - path: " << watched.string() << "\n    recursive: true\n";
  StartAgent(config);
  std::vector<json> events = WaitForEvents(1);
  ASSERT_EQ(events.size(), 1u) << "baseline of authorized_keys";
  CommandResult r = Ctl({"alerts", "list", "--limit", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ParseJsonLines(r.out).empty()) << r.out;

  std::ofstream(watched / ".ssh" / "authorized_keys", std::ios::app)
      << "ssh-rsa AAAAB3NzaC1yc2E attacker@kali\n";
  // Written elsewhere and renamed in, as a download lands: one "added" event
  // (written in place, it is "added" empty and then "modified").
  std::ofstream(root_ / "eicar.part", std::ios::binary) << kEicar;
  fs::rename(root_ / "eicar.part", watched / "eicar.com");
  events = WaitForEvents(3);
  ASSERT_GE(events.size(), 3u);
  std::vector<json> alerts;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && alerts.size() < 2) {
    r = Ctl({"alerts", "list", "--limit", "0", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    alerts = ParseJsonLines(r.out);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::map<std::string, json> by_title;
  for (const json& a : alerts) by_title[a["title"].get<std::string>()] = a;
  EXPECT_EQ(by_title.size(), 2u) << r.out;  // nothing else, and nothing for the baseline
  ASSERT_EQ(by_title.count(kAuthorizedKeysChanged), 1u) << r.out;
  const json& keys = by_title[kAuthorizedKeysChanged]["fields"];
  EXPECT_EQ(keys.value("file.path", ""), (watched / ".ssh" / "authorized_keys").string());
  EXPECT_EQ(keys.value("event.action", ""), "modified");
  EXPECT_EQ(by_title[kMalwareTestFile]["fields"].value("event.action", ""), "added");
  ASSERT_EQ(by_title.count(kMalwareTestFile), 1u) << r.out;
  EXPECT_EQ(by_title[kMalwareTestFile]["fields"].value("file.hash.sha256", ""),
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f");

  // The stored events replay offline through `rules test --format fim` with
  // the same result.
  r = Ctl({"events", "search", "--limit", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(root_ / "fim.jsonl") << r.out;
  CommandResult replay =
      RunCommand({SIPERCTL_BIN, "rules", "test", "--rules", SIPER_RULES_DIR, "--input",
                  (root_ / "fim.jsonl").string(), "--format", "fim", "--json"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  std::set<std::string> replayed;
  for (const json& a : ParseJsonLines(replay.out)) replayed.insert(a["title"].get<std::string>());
  EXPECT_EQ(replayed, (std::set<std::string>{kAuthorizedKeysChanged, kMalwareTestFile}))
      << replay.out;
}

TEST_F(EndToEndTest, ClientsWithoutAValidCertificateAreRefused) {
  std::string ca_pem = ReadFile(Pki("ca.pem")).value();

  // No client certificate: the stream is refused.
  grpc::Status no_cert = TryStream(Channel(address_, ca_pem, "", ""));
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAUTHENTICATED) << no_cert.error_message();

  // A certificate from another CA: the TLS handshake fails.
  absl::StatusOr<pki::KeyAndCert> other_ca = pki::CreateCa("Other CA", absl::Hours(1));
  ASSERT_TRUE(other_ca.ok());
  absl::StatusOr<pki::KeyAndCert> foreign =
      pki::IssueWithNewKey(*other_ca, "agt-forged", pki::kRoleAgent, absl::Hours(1));
  ASSERT_TRUE(foreign.ok());
  grpc::Status foreign_status =
      TryStream(Channel(address_, ca_pem, foreign->key_pem, foreign->cert_pem));
  EXPECT_EQ(foreign_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << foreign_status.error_message();

  // The same through siperctl: an admin certificate from another CA gets nothing.
  fs::path key = root_ / "foreign.key", cert = root_ / "foreign.pem";
  absl::StatusOr<pki::KeyAndCert> foreign_admin =
      pki::IssueWithNewKey(*other_ca, "admin", pki::kRoleAdmin, absl::Hours(1));
  ASSERT_TRUE(foreign_admin.ok());
  ASSERT_TRUE(WriteFileAtomic(key, foreign_admin->key_pem, 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(cert, foreign_admin->cert_pem).ok());
  CommandResult r =
      RunCommand({SIPERCTL_BIN, "--server", address_, "--ca", Pki("ca.pem").string(), "--cert",
                  cert.string(), "--key", key.string(), "tokens", "create"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;

  // A token is good once; an unknown one is refused with a clear message.
  std::string token = CreateToken();
  fs::path state = root_ / "agent1";
  CommandResult first = Enroll(state, token);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.err, "");  // quiet unless asked: the result goes to stdout
  EXPECT_NE(first.out.find("enrolled as "), std::string::npos) << first.out;
  struct stat st {};
  ASSERT_EQ(stat((state / "agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CommandResult again = Enroll(root_ / "agent2", token);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already used"), std::string::npos) << again.err;
  CommandResult unknown = Enroll(root_ / "agent3", "not-a-token");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("unknown token"), std::string::npos) << unknown.err;

  // --verbose tells each step on stderr, and never the token.
  const std::string verbose_token = CreateToken();
  CommandResult verbose = Enroll(root_ / "agent4", verbose_token, {"--verbose"});
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  for (const char* step : {"generated an EC P-256 key", "sending the request to",
                           "issued a certificate for agent", "mode 0600"}) {
    EXPECT_NE(verbose.err.find(step), std::string::npos) << step << " not in: " << verbose.err;
  }
  EXPECT_EQ(verbose.err.find(verbose_token), std::string::npos) << verbose.err;

  // An agent certificate may stream but may not use the analyst service.
  auto agent_channel = Channel(address_, ca_pem, ReadFile(state / "agent.key").value(),
                               ReadFile(state / "agent.pem").value());
  auto analyst = siper::v1::AnalystService::NewStub(agent_channel);
  grpc::ClientContext context;
  siper::v1::CreateTokenResponse response;
  grpc::Status denied = analyst->CreateToken(&context, siper::v1::CreateTokenRequest(), &response);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << denied.error_message();
  EXPECT_TRUE(response.token().empty());
}

// Oversized and garbage batches end their stream with a clear status and
// never take the server down; a well-formed stream with many batches in
// flight gets every ack, in order, and its events stored once.
TEST_F(EndToEndTest, BadBatchesAreRefusedAndPipelinedBatchesAckedInOrder) {
  fs::path state = root_ / "agent";
  CommandResult enrolled = Enroll(state, CreateToken());
  ASSERT_EQ(enrolled.exit_code, 0) << enrolled.err;
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(Pki("ca.pem")).value();
  tls.pem_private_key = ReadFile(state / "agent.key").value();
  tls.pem_cert_chain = ReadFile(state / "agent.pem").value();
  auto channel = grpc::CreateCustomChannel(address_, grpc::SslCredentials(tls), args);

  auto send = [&](const siper::v1::AgentMessage& message) {
    return RawStream(channel, message.SerializeAsString());
  };
  // More events than a batch may hold.
  siper::v1::AgentMessage many;
  for (int i = 1; i <= 10001; ++i) {
    siper::v1::Event* e = many.mutable_batch()->add_events();
    e->set_seq(static_cast<uint64_t>(i));
    e->mutable_log()->set_line("x");
  }
  grpc::Status too_many = send(many);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(too_many.error_message().find("10001 events"), std::string::npos)
      << too_many.error_message();
  // More bytes than a batch may hold (17 lines of 1 MiB).
  siper::v1::AgentMessage big;
  for (int i = 1; i <= 17; ++i) {
    siper::v1::Event* e = big.mutable_batch()->add_events();
    e->set_seq(static_cast<uint64_t>(i));
    e->mutable_log()->set_line(std::string(1 << 20, 'a'));
  }
  grpc::Status too_big = send(big);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(too_big.error_message().find("bytes is larger than the limit"), std::string::npos)
      << too_big.error_message();
  // Bytes that are not an AgentMessage: a length-delimited field cut short.
  grpc::Status garbage = RawStream(channel, std::string("\x12\x40garbage", 9));
  EXPECT_EQ(garbage.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << garbage.error_message();
  EXPECT_NE(garbage.error_message().find("not a siper.v1.AgentMessage"), std::string::npos)
      << garbage.error_message();
  ASSERT_TRUE(server_->Running()) << ServerOutput();
  EXPECT_TRUE(Events().empty());  // nothing of the refused batches was stored

  // Twenty batches of 50 without waiting, then the acks: in order, all stored once.
  auto stub = siper::v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Stream(&context);
  uint64_t seq = 0;
  for (int b = 0; b < 20; ++b) {
    siper::v1::AgentMessage message;
    for (int i = 0; i < 50; ++i) {
      siper::v1::Event* e = message.mutable_batch()->add_events();
      e->set_seq(++seq);
      e->mutable_log()->set_source("/var/log/test.log");
      e->mutable_log()->set_line("pipelined line " + std::to_string(seq));
    }
    ASSERT_TRUE(stream->Write(message));
  }
  stream->WritesDone();
  siper::v1::ServerMessage reply;
  uint64_t last_ack = 0, stored = 0;
  while (stream->Read(&reply)) {
    ASSERT_TRUE(reply.has_ack());
    EXPECT_GT(reply.ack().acked_seq(), last_ack);  // acks only move forward
    EXPECT_EQ(reply.ack().acked_seq() % 50, 0u);   // and always end on a whole batch
    last_ack = reply.ack().acked_seq();
    stored += reply.ack().stored();
  }
  grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << finished.error_message();
  EXPECT_EQ(last_ack, 1000u);
  EXPECT_EQ(stored, 1000u);
  std::vector<json> events = Events();
  ASSERT_EQ(events.size(), 1000u);
  std::set<uint64_t> seqs;
  for (const json& e : events) seqs.insert(e["seq"].get<uint64_t>());
  EXPECT_EQ(seqs.size(), 1000u);
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), 1000u);
}

}  // namespace
}  // namespace siper::testing

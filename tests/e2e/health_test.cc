// End to end for the server's health events and metrics: a real siper-server, siper-agent and
// siperctl. A killed agent raises exactly one "agent silent" alert and, once restarted, an
// agent_back event; a passed USOM deadline raises one "deadline missed" alert attached to its
// incident; /metrics answers a real HTTP GET and its counters move when an agent ships; a
// data directory below the free-space floor refuses batches (agents keep them) and takes
// them again, each exactly once, when space returns.
//
// The disk test drives free space through the documented test knob `disk_probe_file` (the
// server reads "FREE_BYTES" from that file instead of statvfs): filling a real disk on a
// shared machine is neither safe nor repeatable. Everything else in the path is real.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/files.h"
#include "siper/v1/agent_service.grpc.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// rules/ruleset/siper/*.yml
constexpr char kAgentSilentRule[] = "9ff1eb60-241c-4332-858f-9f85c07d424b";
constexpr char kDeadlineRule[] = "bb0a7253-0435-4c25-a7f4-a14703f48286";
constexpr char kDiskRule[] = "4eeb3c0a-14bd-47f1-8821-98c7a3f5fa53";

bool Eventually(const std::function<bool()>& done, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return done();
}

// Sends raw bytes on AgentService.Stream with the given TLS identity and returns how the
// server ended the stream.
grpc::Status RawStream(const std::string& address, const grpc::SslCredentialsOptions& tls,
                       const std::string& bytes) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  return testing::RawStream(grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), args),
                            bytes);
}

class HealthEndToEnd : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ServerTest::SetUp());
    log_ = root_ / "app.log";
    std::ofstream(log_) << "";
  }

  void StartServer(const std::string& config_yaml) { ServerTest::StartServer(config_yaml); }

  std::vector<json> CtlJson(std::vector<std::string> args) {
    args.push_back("--json");
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseJsonLines(r.out);
  }

  void EnrollAgent() {
    agent_state_ = root_ / "agent";
    CommandResult enroll = Enroll(agent_state_, CreateToken());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.out << enroll.err;
    std::vector<json> agents = CtlJson({"agents", "list"});
    ASSERT_EQ(agents.size(), 1u);
    agent_id_ = agents[0]["agent_id"];
  }

  void StartAgent() {
    fs::path config = root_ / "agent.yaml";
    std::ofstream(config) << "server: " << address_ << "\n"
                          << "state_dir: " << agent_state_.string() << "\n"
                          << "batch_max_delay_ms: 50\n"
                          << "heartbeat_s: 1\n"
                          << "logs:\n"
                          << "  - path: " << log_.string() << "\n"
                          << "    start: beginning\n";
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", config.string()},
        root_ / "agent.out");
  }

  void AppendLines(int from, int count) {
    std::ofstream out(log_, std::ios::app);
    for (int i = from; i < from + count; ++i) out << "health e2e line " << i << "\n";
  }

  std::vector<json> AgentEvents() {
    return CtlJson({"events", "search", "--agent", agent_id_, "--limit", "0"});
  }

  // Health events (agent siper-server) with this event.action.
  std::vector<json> HealthEvents(const std::string& action) {
    return CtlJson({"events", "search", "--agent", "siper-server", "--field",
                    "event.action=" + action, "--limit", "0"});
  }

  std::vector<json> Alerts(const std::string& rule) {
    return CtlJson({"alerts", "list", "--rule", rule, "--limit", "0"});
  }

  // GET /metrics on the port the server wrote to DATA_DIR/metrics.port.
  std::string Scrape() {
    absl::StatusOr<std::string> port = ReadFile(data_dir_ / "metrics.port");
    EXPECT_TRUE(port.ok()) << port.status();
    if (!port.ok()) return "";
    httplib::Client client("127.0.0.1", std::stoi(*port));
    client.set_read_timeout(10, 0);
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return "";
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
    return res->body;
  }

  // The value of the sample whose line starts with `series` ("name" or "name{labels}").
  static double Sample(const std::string& text, const std::string& series) {
    size_t pos = 0;
    while ((pos = text.find(series + " ", pos)) != std::string::npos) {
      if (pos == 0 || text[pos - 1] == '\n') {
        return std::stod(text.substr(pos + series.size() + 1));
      }
      ++pos;
    }
    return -1;
  }

  fs::path agent_state_, log_;
  std::string agent_id_;
};

TEST_F(HealthEndToEnd, KilledAgentRaisesOneSilentAlertThenComesBackAndMetricsMove) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer("agent_silent_after_s: 8\n"
                  "health_check_interval_s: 1\n"
                  "metrics_listen: 127.0.0.1:0\n"));
  const std::string before = Scrape();
  ASSERT_NE(before.find("# TYPE siper_events_stored_total counter"), std::string::npos) << before;
  const double stored_before = Sample(before, "siper_events_stored_total");
  ASSERT_GE(stored_before, 0);

  ASSERT_NO_FATAL_FAILURE(EnrollAgent());
  AppendLines(1, 20);
  StartAgent();
  ASSERT_TRUE(Eventually([&] { return AgentEvents().size() == 20; }, 60))
      << AgentEvents().size() << " events stored";

  // The counters moved by what the agent shipped; the agent is listed as seen.
  const std::string after = Scrape();
  EXPECT_GE(Sample(after, "siper_events_received_total"), 20);
  EXPECT_GE(Sample(after, "siper_events_stored_total"), stored_before + 20) << after;
  EXPECT_GE(Sample(after, "siper_write_seconds_count"), 1);
  EXPECT_GE(Sample(after, "siper_match_seconds_count"), 20);
  EXPECT_EQ(Sample(after, "siper_ingest_paused"), 0);
  EXPECT_GT(Sample(after, "siper_disk_free_bytes"), 0);
  const double last_seen =
      Sample(after, "siper_agent_last_seen_seconds{agent_id=\"" + agent_id_ + "\"}");
  EXPECT_GT(last_seen, 1.7e9) << after;
  // Heartbeats reach the registry, spool cap included.
  ASSERT_TRUE(Eventually(
      [&] {
        std::vector<json> agents = CtlJson({"agents", "list"});
        return agents.size() == 1 && agents[0]["spool_cap_bytes"].get<uint64_t>() > 0 &&
               !agents[0]["last_heartbeat"].get<std::string>().empty();
      },
      15));
  EXPECT_TRUE(Alerts(kAgentSilentRule).empty());

  // Killed: one alert after the gap, and only one however long it stays away.
  agent_->Signal(SIGKILL);
  agent_->Wait();
  agent_.reset();
  ASSERT_TRUE(Eventually([&] { return !Alerts(kAgentSilentRule).empty(); }, 30)) << ServerOutput();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  std::vector<json> silent = Alerts(kAgentSilentRule);
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0]["agent_id"], "siper-server");
  EXPECT_EQ(silent[0]["level"], "medium");
  EXPECT_EQ(silent[0]["fields"]["agent.id"], agent_id_);
  EXPECT_EQ(silent[0]["fields"]["event.action"], "agent_silent");
  EXPECT_GE(std::stoi(silent[0]["fields"]["siper.silent_seconds"].get<std::string>()), 8);
  EXPECT_EQ(HealthEvents("agent_silent").size(), 1u);
  EXPECT_TRUE(HealthEvents("agent_back").empty());

  // Restarted: agent_back, no second silent alert, and the events are all still once.
  AppendLines(21, 5);
  StartAgent();
  ASSERT_TRUE(Eventually([&] { return HealthEvents("agent_back").size() == 1; }, 30))
      << ServerOutput();
  std::vector<json> back = HealthEvents("agent_back");
  EXPECT_EQ(back[0]["fields"]["agent.id"], agent_id_);
  EXPECT_EQ(back[0]["source"], "siper:health");
  ASSERT_TRUE(Eventually([&] { return AgentEvents().size() == 25; }, 30));
  EXPECT_EQ(Alerts(kAgentSilentRule).size(), 1u);
  const std::string later = Scrape();
  EXPECT_GE(Sample(later, "siper_health_events_total"), 2);
}

// Every way the agent service refuses a message or a stream is a counter by reason on the
// metrics port, and only that reason's counter moves.
TEST_F(HealthEndToEnd, RefusedBatchesAndStreamsAreCountedByReason) {
  ASSERT_NO_FATAL_FAILURE(StartServer("metrics_listen: 127.0.0.1:0\n"));
  ASSERT_NO_FATAL_FAILURE(EnrollAgent());
  grpc::SslCredentialsOptions agent_tls;
  agent_tls.pem_root_certs = ReadFile(Pki("ca.pem")).value();
  agent_tls.pem_private_key = ReadFile(agent_state_ / "agent.key").value();
  agent_tls.pem_cert_chain = ReadFile(agent_state_ / "agent.pem").value();
  const std::vector<std::string> reasons = {"too_large",   "foreign_agent_id", "no_seq",
                                            "malformed",   "disk_low",         "restoring",
                                            "store_failed"};
  auto batches = [&](const std::string& text, const std::string& reason) {
    return Sample(text, "siper_batches_rejected_total{reason=\"" + reason + "\"}");
  };
  const std::string before = Scrape();
  for (const std::string& reason : reasons) {
    EXPECT_EQ(batches(before, reason), 0) << reason << "\n" << before;
  }

  // Not an AgentMessage (a length-delimited field cut short), and an empty message.
  EXPECT_EQ(RawStream(address_, agent_tls, std::string("\x12\x40garbage", 9)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawStream(address_, agent_tls, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // More events than a batch may hold: counted with its events.
  siper::v1::AgentMessage many;
  for (int i = 1; i <= 10001; ++i) {
    siper::v1::Event* e = many.mutable_batch()->add_events();
    e->set_seq(static_cast<uint64_t>(i));
    e->mutable_log()->set_line("x");
  }
  EXPECT_EQ(RawStream(address_, agent_tls, many.SerializeAsString()).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // An event claiming another agent, and one without a seq.
  siper::v1::AgentMessage foreign;
  siper::v1::Event* f = foreign.mutable_batch()->add_events();
  f->set_seq(1);
  f->set_agent_id("agt-someoneelse");
  f->mutable_log()->set_line("forged");
  EXPECT_EQ(RawStream(address_, agent_tls, foreign.SerializeAsString()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  siper::v1::AgentMessage no_seq;
  no_seq.mutable_batch()->add_events()->mutable_log()->set_line("no seq");
  EXPECT_EQ(RawStream(address_, agent_tls, no_seq.SerializeAsString()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A stream with the admin's certificate (not an agent): refused before any batch.
  grpc::SslCredentialsOptions admin_tls;
  admin_tls.pem_root_certs = agent_tls.pem_root_certs;
  admin_tls.pem_private_key = ReadFile(Pki("admin.key")).value();
  admin_tls.pem_cert_chain = ReadFile(Pki("admin.pem")).value();
  EXPECT_EQ(RawStream(address_, admin_tls, foreign.SerializeAsString()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A revoked agent's next stream.
  ASSERT_EQ(Ctl({"agents", "revoke", agent_id_}).exit_code, 0);
  EXPECT_EQ(RawStream(address_, agent_tls, no_seq.SerializeAsString()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(server_->Running()) << ServerOutput();

  const std::string after = Scrape();
  EXPECT_EQ(batches(after, "malformed"), 2) << after;
  EXPECT_EQ(batches(after, "too_large"), 1) << after;
  EXPECT_EQ(Sample(after, "siper_events_rejected_total{reason=\"too_large\"}"), 10001) << after;
  EXPECT_EQ(batches(after, "foreign_agent_id"), 1) << after;
  EXPECT_EQ(batches(after, "no_seq"), 1) << after;
  EXPECT_EQ(batches(after, "disk_low"), 0) << after;
  EXPECT_EQ(batches(after, "store_failed"), 0) << after;
  EXPECT_EQ(Sample(after, "siper_streams_rejected_total{reason=\"not_agent\"}"), 1) << after;
  EXPECT_EQ(Sample(after, "siper_streams_rejected_total{reason=\"revoked\"}"), 1) << after;
  EXPECT_EQ(Sample(after, "siper_streams_rejected_total{reason=\"not_registered\"}"), 0) << after;
  EXPECT_NE(after.find("# TYPE siper_streams_rejected_total counter"), std::string::npos);
  EXPECT_TRUE(AgentEvents().empty());  // nothing of the refused batches was stored
}

TEST_F(HealthEndToEnd, PassedUsomDeadlineRaisesOneAlertOnItsIncident) {
  ASSERT_NO_FATAL_FAILURE(StartServer("health_check_interval_s: 1\n"));
  std::vector<json> created =
      CtlJson({"incidents", "create", "--title", "Web defacement", "--severity", "high",
               "--rsit-class", "intrusions", "--rsit-type", "application-compromise"});
  ASSERT_EQ(created.size(), 1u);
  const std::string id = created[0]["id"];
  EXPECT_TRUE(Alerts(kDeadlineRule).empty());
  // Default policy: USOM is due at once when a high incident reaches investigating.
  ASSERT_EQ(Ctl({"incidents", "transition", id, "--to", "triage"}).exit_code, 0);
  ASSERT_EQ(Ctl({"incidents", "transition", id, "--to", "investigating"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return !Alerts(kDeadlineRule).empty(); }, 30)) << ServerOutput();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // several more rounds of the check
  std::vector<json> alerts = Alerts(kDeadlineRule);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0]["level"], "high");
  EXPECT_EQ(alerts[0]["fields"]["incident.id"], id);
  EXPECT_EQ(alerts[0]["fields"]["siper.deadline"], "usom");
  // The alert joined the incident it is about instead of opening another.
  std::vector<json> shown = CtlJson({"incidents", "show", id});
  ASSERT_EQ(shown.size(), 1u);
  bool linked = false;
  for (const json& a : shown[0]["alerts"])
    linked |= a.dump().find(alerts[0]["id"]) != std::string::npos;
  EXPECT_TRUE(linked) << shown[0].dump();
  EXPECT_EQ(CtlJson({"incidents", "list"}).size(), 1u);

  // A restart raises it no second time (the incident's timeline remembers it).
  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->Wait(20000), 0);
  fs::remove(data_dir_ / "server.port");
  ASSERT_NO_FATAL_FAILURE(StartServer("health_check_interval_s: 1\n"));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(Alerts(kDeadlineRule).size(), 1u);
}

TEST_F(HealthEndToEnd, DiskBelowTheFloorPausesIngestAndResumesWithNothingLost) {
  const fs::path probe = root_ / "free-bytes";
  std::ofstream(probe) << "50000000000\n";
  ASSERT_NO_FATAL_FAILURE(
      StartServer("health_check_interval_s: 1\n"
                  "disk_min_free_bytes: 1000000\n"
                  "metrics_listen: 127.0.0.1:0\n"
                  "disk_probe_file: " +
                  probe.string() + "\n"));
  ASSERT_NO_FATAL_FAILURE(EnrollAgent());
  AppendLines(1, 10);
  StartAgent();
  ASSERT_TRUE(Eventually([&] { return AgentEvents().size() == 10; }, 60));

  // Nearly full: one alert, the server refuses batches, the agent keeps its lines.
  std::ofstream(probe) << "1000\n";
  ASSERT_TRUE(Eventually([&] { return Alerts(kDiskRule).size() == 1; }, 30)) << ServerOutput();
  EXPECT_EQ(Sample(Scrape(), "siper_ingest_paused"), 1);
  AppendLines(11, 15);
  ASSERT_TRUE(Eventually(
      [&] { return Sample(Scrape(), "siper_batches_rejected_total{reason=\"disk_low\"}") >= 1; },
      30))
      << ServerOutput();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(AgentEvents().size(), 10u);
  EXPECT_EQ(Alerts(kDiskRule).size(), 1u);
  std::vector<json> full = HealthEvents("disk_nearly_full");
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(full[0]["fields"]["siper.disk.free_bytes"], "1000");

  // Space is back: disk_ok, and every line is stored exactly once.
  std::ofstream(probe) << "50000000000\n";
  ASSERT_TRUE(Eventually([&] { return HealthEvents("disk_ok").size() == 1; }, 30));
  ASSERT_TRUE(Eventually([&] { return AgentEvents().size() == 25; }, 90)) << AgentEvents().size();
  std::vector<json> events = AgentEvents();
  std::set<uint64_t> seqs;
  for (const json& e : events) seqs.insert(e["seq"].get<uint64_t>());
  EXPECT_EQ(seqs.size(), 25u);
  EXPECT_EQ(Sample(Scrape(), "siper_ingest_paused"), 0);
  EXPECT_EQ(Alerts(kDiskRule).size(), 1u);
}

TEST_F(HealthEndToEnd, ConfigErrorsNameFileKeyAndProblem) {
  fs::path config = root_ / "bad.yaml";
  std::ofstream(config) << "listen: 127.0.0.1:0\nspool_warn_percent: 150\n";
  CommandResult r =
      RunCommand({SIPER_SERVER_BIN, "--config", config.string(), "--data-dir", data_dir_.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(config.string() + ":2: key 'spool_warn_percent' must be between 1 and 100"),
            std::string::npos)
      << r.err;
  std::ofstream(config) << "metrics_listen: 0.0.0.0:0\n";
  r = RunCommand({SIPER_SERVER_BIN, "--config", config.string(), "--data-dir", data_dir_.string(),
                  "--listen", "127.0.0.1:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a loopback address"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace siper::testing

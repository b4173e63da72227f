// The whole agent (tailer, pending events, shipper) in-process against the
// AgentService stand-in, for faults the real siper-server cannot be made to
// show on demand: a server that stores batches but whose acknowledgements
// never arrive (every line is sent twice and must be stored once), and the
// content of heartbeats (the server keeps only the version); also the
// events/s cap. Delivery, restarts, server down, rotation, inotify, spool
// resend and FIM through the whole agent are tested against the real server
// in tests/e2e/agent_faults_test.cc.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/enroll.h"
#include "common/files.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/grpc_test_log.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::Append;
using ::siper::agent::testing::FakeServer;
using ::siper::agent::testing::TestDir;
using ::siper::agent::testing::WaitFor;

class AgentRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::SilenceGrpcLogs();
    server_.Start();
    server_.service().AllowToken("tok");
    ASSERT_TRUE(WriteFileAtomic(dir_ / "server-ca.pem", server_.ca_pem()).ok());
    EnrollOptions enroll;
    enroll.server = server_.address();
    enroll.token = "tok";
    enroll.ca_file = dir_ / "server-ca.pem";
    enroll.state_dir = dir_ / "state";
    auto agent_id = Enroll(enroll);
    ASSERT_TRUE(agent_id.ok()) << agent_id.status();
    agent_id_ = *agent_id;

    config_.server = server_.address();
    config_.state_dir = dir_ / "state";
    config_.logs = {{(dir_ / "*.log").string(), StartAt::kBeginning}};
    config_.batch_max_events = 7;
    config_.batch_max_delay_ms = 5;
    config_.poll_interval_ms = 20;
  }

  std::unique_ptr<Agent> StartAgent() {
    auto agent = Agent::Create(config_);
    EXPECT_TRUE(agent.ok()) << agent.status();
    if (!agent.ok()) return nullptr;
    (*agent)->Start();
    return std::move(*agent);
  }

  void AppendLines(const std::string& file, int first, int last) {
    std::string data;
    for (int i = first; i <= last; ++i) data += absl::StrCat(file, " line ", i, "\n");
    Append(dir_ / file, data);
  }

  // Each expected line stored exactly once, nothing else, in order per file.
  void ExpectStoredOnce(int lines_per_file) {
    auto stored = server_.service().stored();
    std::map<std::string, std::vector<std::string>> per_source;
    for (const auto& [key, entry] : stored) {
      EXPECT_EQ(key.first, agent_id_);
      per_source[entry.source].push_back(entry.line);
    }
    for (const std::string file : {"a.log", "b.log"}) {
      std::vector<std::string> expected;
      for (int i = 1; i <= lines_per_file; ++i) expected.push_back(absl::StrCat(file, " line ", i));
      EXPECT_EQ(per_source[(dir_ / file).string()], expected) << file;
    }
    EXPECT_EQ(stored.size(), static_cast<size_t>(2 * lines_per_file));
  }

  FakeServer server_;
  TestDir dir_;
  AgentConfig config_;
  std::string agent_id_;
};

TEST_F(AgentRunTest, RestartWithUnacknowledgedEventsStoresEachLineOnce) {
  server_.service().set_ack(false);  // the server stores but its acks are lost
  AppendLines("a.log", 1, 30);
  AppendLines("b.log", 1, 30);
  {
    auto agent = StartAgent();
    ASSERT_NE(agent, nullptr);
    ASSERT_TRUE(WaitFor([&] { return server_.service().stored_count() == 60; }));
    EXPECT_TRUE(agent->Stop(absl::Milliseconds(100)).ok());
  }
  // Lines written while the agent is down, with the server back to normal.
  AppendLines("a.log", 31, 50);
  AppendLines("b.log", 31, 50);
  server_.service().set_ack(true);
  auto agent = StartAgent();
  ASSERT_NE(agent, nullptr);
  EXPECT_TRUE(WaitFor([&] { return server_.service().stored_count() == 100; }));
  EXPECT_TRUE(agent->Stop(absl::Seconds(5)).ok());
  ExpectStoredOnce(50);
  // The first 60 were sent twice (same seqs), and deduplicated.
  int resent = 0;
  for (const auto& [key, entry] : server_.service().stored()) resent += entry.received > 1;
  EXPECT_EQ(resent, 60);
}

// Over limits.events_per_s the files are read more slowly, nothing is lost:
// 100 + 400 lines at 100/s with a burst of 100 take at least 4 s to read
// (3 s as margin), and every line arrives once, in order.
TEST_F(AgentRunTest, EventsPerSecondCapSlowsReadingWithoutLoss) {
  config_.max_events_per_s = 100;
  config_.events_burst = 100;
  AppendLines("a.log", 1, 250);
  AppendLines("b.log", 1, 250);
  const absl::Time start = absl::Now();
  auto agent = StartAgent();
  ASSERT_NE(agent, nullptr);
  EXPECT_TRUE(WaitFor([&] { return server_.service().stored_count() == 500; }, 30));
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(agent->Stop(absl::Seconds(5)).ok());
  ExpectStoredOnce(250);
  EXPECT_GE(took, absl::Seconds(3)) << took;
}

TEST_F(AgentRunTest, HeartbeatsCarryVersionSpoolAndRate) {
  config_.heartbeat_s = 1;
  server_.service().set_ack(false);  // events stay in the spool
  AppendLines("a.log", 1, 30);
  auto agent = StartAgent();
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(WaitFor([&] { return server_.service().stored_count() == 30; }));
  ASSERT_TRUE(WaitFor([&] { return server_.service().heartbeats().size() >= 3; }));
  EXPECT_TRUE(agent->Stop(absl::Milliseconds(100)).ok());
  const auto heartbeats = server_.service().heartbeats();
  const v1::Heartbeat& last = heartbeats.back();
  EXPECT_EQ(last.version(), SIPER_VERSION);
  EXPECT_EQ(last.spool_records(), 30u);
  EXPECT_GT(last.spool_bytes(), 30u * 16);
  EXPECT_EQ(last.drops(), 0u);
  EXPECT_NEAR(static_cast<double>(last.agent_time_ns()),
              static_cast<double>(absl::ToUnixNanos(absl::Now())), 10e9);
  double max_rate = 0;
  for (const auto& heartbeat : heartbeats) max_rate = std::max(max_rate, heartbeat.events_per_s());
  EXPECT_GT(max_rate, 0.0);
  EXPECT_GE(heartbeats.size(), 3u);
}

}  // namespace
}  // namespace siper::agent

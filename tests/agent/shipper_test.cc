#include "agent/shipper.h"

#include <gtest/gtest.h>

#include <thread>

#include "agent/enroll.h"
#include "agent/identity.h"
#include "common/files.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/grpc_test_log.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

constexpr size_t kBig = size_t{1} << 30;

using ::siper::agent::testing::FakeServer;
using ::siper::agent::testing::TestDir;
using ::siper::agent::testing::WaitFor;

class ShipperTest : public ::testing::Test {
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
    ASSERT_TRUE(Enroll(enroll).ok());
    identity_ = *LoadIdentity(dir_ / "state");
  }

  ShipperOptions Options() {
    ShipperOptions options;
    options.server = server_.address();
    options.ca_pem = identity_.ca_pem;
    options.cert_pem = identity_.cert_pem;
    options.key_pem = identity_.key_pem;
    options.agent_id = identity_.agent_id;
    options.hostname = "test-host";
    options.batch_max_events = 100;
    options.batch_max_delay = absl::Milliseconds(5);
    options.backoff_initial = absl::Milliseconds(20);
    options.backoff_max = absl::Milliseconds(200);
    return options;
  }

  void Fill(PendingEvents& pending, uint64_t first, uint64_t last) {
    std::vector<v1::Event> events;
    for (uint64_t seq = first; seq <= last; ++seq) {
      v1::Event event;
      event.set_agent_id(identity_.agent_id);
      event.set_seq(seq);
      event.mutable_log()->set_source("/var/log/test.log");
      event.mutable_log()->set_line("line " + std::to_string(seq));
      events.push_back(std::move(event));
    }
    pending.Append(std::move(events));
  }

  FakeServer server_;
  TestDir dir_;
  AgentIdentity identity_;
};

TEST_F(ShipperTest, DeliversEverythingOnceAndReleasesIt) {
  MemoryPendingEvents pending(10000, kBig, 0);
  Fill(pending, 1, 1000);
  Shipper shipper(Options(), &pending);
  std::thread thread([&] { shipper.Run(); });
  EXPECT_TRUE(WaitFor([&] { return pending.Size() == 0; }));
  Fill(pending, 1001, 1010);
  EXPECT_TRUE(WaitFor([&] { return pending.AckedSeq() == 1010; }));
  shipper.Stop();
  thread.join();
  EXPECT_EQ(server_.service().stored_count(), 1010u);
  EXPECT_EQ(server_.service().last_peer_cn(), identity_.agent_id);
  for (const auto& [key, stored] : server_.service().stored()) {
    EXPECT_EQ(stored.line, "line " + std::to_string(key.second));
  }
}

TEST_F(ShipperTest, WaitsForAServerThatIsDownThenDelivers) {
  server_.Stop();
  MemoryPendingEvents pending(10000, kBig, 0);
  Fill(pending, 1, 50);
  Shipper shipper(Options(), &pending);
  std::thread thread([&] { shipper.Run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few failed attempts
  EXPECT_EQ(pending.Size(), 50u);
  server_.Start();
  EXPECT_TRUE(WaitFor([&] { return pending.Size() == 0; }));
  shipper.Stop();
  thread.join();
  EXPECT_EQ(server_.service().stored_count(), 50u);
}

TEST_F(ShipperTest, ResendsWhatWasNotAcknowledgedAfterReconnect) {
  server_.service().set_ack(false);  // stores, then "crashes" before acknowledging
  MemoryPendingEvents pending(10000, kBig, 0);
  Fill(pending, 1, 200);
  Shipper shipper(Options(), &pending);
  std::thread thread([&] { shipper.Run(); });
  ASSERT_TRUE(WaitFor([&] { return server_.service().stored_count() == 200; }));
  EXPECT_EQ(pending.Size(), 200u);  // nothing released without an ack
  server_.Stop();
  server_.service().set_ack(true);
  server_.Start();
  EXPECT_TRUE(WaitFor([&] { return pending.Size() == 0; }));
  shipper.Stop();
  thread.join();
  // Every event stored once; the resent ones arrived twice and were deduplicated.
  auto stored = server_.service().stored();
  EXPECT_EQ(stored.size(), 200u);
  for (const auto& [key, entry] : stored) EXPECT_GE(entry.received, 2) << key.second;
  EXPECT_GE(server_.service().hellos(), 2);
}

TEST_F(ShipperTest, StopEndsRunWhileDisconnected) {
  server_.Stop();
  MemoryPendingEvents pending(10, kBig, 0);
  ShipperOptions options = Options();
  options.backoff_initial = absl::Seconds(30);
  Shipper shipper(options, &pending);
  std::thread thread([&] { shipper.Run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  shipper.Stop();
  thread.join();  // would hang for the backoff if Stop did not interrupt it
  SUCCEED();
}

}  // namespace
}  // namespace siper::agent

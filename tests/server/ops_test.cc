// Server operations without the network: the chain sealer's key and
// signatures, retention through the maintenance thread with injected times,
// and the config keys for both.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "server/chain_sealer.h"
#include "server/config.h"
#include "server/maintenance.h"
#include "server/storage/store.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kDay = 24 * 3600 * kSecond;
constexpr int64_t kT0 = 1'700'000'000 * kSecond;

class OpsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/siper-ops-unit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto store = storage::Store::Open(dir_ / "db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Write(uint64_t seq, int64_t server_time_ns) {
    std::vector<storage::EventRecord> records(1);
    records[0].event.set_agent_id("a1");
    records[0].event.set_seq(seq);
    records[0].event.set_server_time_ns(server_time_ns);
    records[0].event.mutable_log()->set_source("/var/log/auth.log");
    records[0].event.mutable_log()->set_line("line " + std::to_string(seq));
    ASSERT_TRUE(store_->Write("a1", records).ok());
  }
  size_t CountEvents() {
    size_t n = 0;
    EXPECT_TRUE(store_
                    ->SearchEvents({},
                                   [&](const siper::v1::Event&) {
                                     ++n;
                                     return true;
                                   })
                    .ok());
    return n;
  }

  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
};

TEST_F(OpsFixture, SealerKeyIsPrivateStableAndItsSealsVerify) {
  fs::path key = dir_ / "pki" / "chain.key";
  fs::create_directories(key.parent_path());
  auto sealer = ChainSealer::Create(store_.get(), key, 60);
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  struct stat st {};
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ((*sealer)->key_id().size(), 64u);

  // Nothing to seal in an empty chain.
  ASSERT_TRUE((*sealer)->SealNow().ok());
  int seals = 0;
  ASSERT_TRUE(store_
                  ->ListChainSeals([&](const storage::ChainSeal&) {
                    ++seals;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seals, 0);

  Write(1, kT0);
  ASSERT_TRUE((*sealer)->SealNow().ok());
  ASSERT_TRUE((*sealer)->SealNow().ok());  // same head: not sealed twice
  Write(2, kT0 + kSecond);
  ASSERT_TRUE((*sealer)->SealNow().ok());
  auto report = (*sealer)->CheckSeals();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->message;
  EXPECT_EQ(report->seals, 2u);

  // The same key after a restart.
  std::string id = (*sealer)->key_id();
  sealer->reset();
  auto again = ChainSealer::Create(store_.get(), key, 60);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->key_id(), id);
  EXPECT_TRUE((*again)->CheckSeals()->ok);

  // A server with another key does not accept these seals.
  auto other = ChainSealer::Create(store_.get(), dir_ / "other.key", 60);
  ASSERT_TRUE(other.ok());
  auto foreign = (*other)->CheckSeals();
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(foreign->ok);
  EXPECT_NE(foreign->message.find("unknown key"), std::string::npos) << foreign->message;

  // A key file that is not a key is refused, not replaced.
  std::ofstream(dir_ / "bad.key") << "not a key\n";
  EXPECT_FALSE(ChainSealer::Create(store_.get(), dir_ / "bad.key", 60).ok());
}

TEST_F(OpsFixture, RetentionDropsOldEventsAndTheChainStillVerifies) {
  Write(1, kT0);
  Write(2, kT0 + 1 * kDay);
  Write(3, kT0 + 5 * kDay);
  storage::RetentionOptions retention;
  retention.events_ns = 2 * kDay;
  retention.alerts_ns = 2 * kDay;
  MaintenanceThread maintenance(store_.get(), retention);
  auto r = maintenance.RunRetention(kT0 + 6 * kDay);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events_cutoff_ns, kT0 + 4 * kDay);
  EXPECT_EQ(CountEvents(), 1u);
  auto verify = store_->Verify();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok) << verify->message;
}

TEST(OpsConfigTest, SealAndRetentionKeys) {
  char tmpl[] = "/tmp/siper-ops-config-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  fs::path file = dir / "server.yaml";
  std::ofstream(file) << "seal_interval_s: 5\nretention_days: 365\n"
                         "retention:\n  alerts_days: 1000\n";
  auto config = LoadServerConfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->seal_interval_s, 5);
  EXPECT_EQ(config->retention_days, 365);
  EXPECT_EQ(config->retention_events_days, -1);
  EXPECT_EQ(config->retention_alerts_days, 1000);

  ServerConfig defaults;
  EXPECT_EQ(defaults.retention_days, 730);
  EXPECT_EQ(defaults.seal_interval_s, 60);

  std::ofstream(file) << "retention:\n  event_days: 3\n";
  absl::Status typo = LoadServerConfig(file).status();
  EXPECT_FALSE(typo.ok());
  EXPECT_NE(typo.message().find("retention.event_days"), std::string::npos) << typo;
  std::ofstream(file) << "seal_interval_s: 0\n";
  EXPECT_FALSE(LoadServerConfig(file).ok());
  // A bad value names the file, its line, the key and the value.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"log_level: info\nseal_interval_s: -3\n", ":2: key 'seal_interval_s' must be positive"},
      {"retention_days: -1\n", ":1: key 'retention_days' must be 0 (keep forever)"},
      // Days in nanoseconds overflowed int64 past some 106,000 days.
      {"retention_days: 200000\n", ":1: key 'retention_days' must be 0 (keep forever)"},
      {"retention:\n  alerts_days: 10\n  events_days: -7\n",
       ":3: key 'retention.events_days' must be 0 (keep forever) or a number of days up to "
       "36500 (got -7)"},
  };
  for (const auto& [text, message] : bad) {
    std::ofstream(file) << text;
    absl::Status st = LoadServerConfig(file).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(st.message().find(file.string() + message), std::string::npos) << st;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace siper::server

// The health detectors (server/health_monitor.h) with a controllable clock and disk probe
// over a real store; the reporter through the real ingest pipeline and the default rule set;
// the metrics registry and its HTTP port; the health config keys.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "rules/live_rules.h"
#include "server/config.h"
#include "server/health_events.h"
#include "server/health_monitor.h"
#include "server/ingest.h"
#include "server/metrics.h"
#include "server/metrics_http.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kS = 1'000'000'000;

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/siper-health-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto store = storage::Store::Open(dir_ / "db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    monitor_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // A monitor whose events land in events_ (emit_ok_ false: the store "fails").
  void MakeMonitor(HealthOptions options = {}) {
    monitor_ = std::make_unique<HealthMonitor>(
        store_.get(),
        [this](const HealthEvent& e, absl::Time) {
          if (!emit_ok_) return absl::UnavailableError("store down");
          events_.push_back(e);
          return absl::OkStatus();
        },
        &gate_, options,
        [this]() -> absl::StatusOr<DiskSpace> {
          return DiskSpace{free_bytes_, 100'000'000'000};
        },
        &clock_);
  }

  void PutAgent(const std::string& id, int64_t last_seen_ns) {
    siper::v1::AgentInfo a;
    a.set_agent_id(id);
    a.set_hostname("pc-" + id);
    a.set_last_seen_ns(last_seen_ns);
    ASSERT_TRUE(store_->PutAgent(a).ok());
  }

  // A heartbeat arriving now, as the agent service records it.
  void Heartbeat(const std::string& id, uint64_t spool_bytes, uint64_t cap, uint64_t drops,
                 int64_t clock_offset_ms) {
    siper::v1::AgentInfo a = store_->GetAgent(id).value().value();
    siper::v1::Heartbeat hb;
    hb.set_spool_bytes(spool_bytes);
    hb.set_spool_cap_bytes(cap);
    hb.set_drops(drops);
    hb.set_agent_time_ns(absl::ToUnixNanos(clock_.Now()) + clock_offset_ms * 1'000'000);
    RecordHeartbeat(hb, clock_.Now(), &a);
    a.set_last_seen_ns(absl::ToUnixNanos(clock_.Now()));
    ASSERT_TRUE(store_->PutAgent(a).ok());
  }

  std::vector<std::string> Actions() {
    std::vector<std::string> out;
    for (const HealthEvent& e : events_) out.push_back(e.action);
    return out;
  }

  int64_t NowNs() { return absl::ToUnixNanos(clock_.Now()); }

  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
  incidents::FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  IngestGate gate_;
  uint64_t free_bytes_ = uint64_t{50} << 30;
  bool emit_ok_ = true;
  std::vector<HealthEvent> events_;
  std::unique_ptr<HealthMonitor> monitor_;
};

TEST_F(HealthTest, AgentSilentOncePerSilenceThenBack) {
  PutAgent("agt-1", NowNs());
  HealthOptions o;
  o.agent_silent_after_s = 600;
  MakeMonitor(o);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(599));
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(monitor_->Check(), 1);
  ASSERT_EQ(Actions(), std::vector<std::string>{"agent_silent"});
  EXPECT_EQ(events_[0].agent_id, "agt-1");
  EXPECT_EQ(events_[0].agent_name, "pc-agt-1");
  clock_.Advance(absl::Hours(5));
  EXPECT_EQ(monitor_->Check(), 0);  // one alert per silence
  PutAgent("agt-1", NowNs());
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_EQ(Actions(), (std::vector<std::string>{"agent_silent", "agent_back"}));
  bool found = false;
  for (const auto& [k, v] : events_[1].numbers) {
    if (k == "siper.silent_seconds") {
      found = true;
      EXPECT_EQ(v, 600 + 5 * 3600);
    }
  }
  EXPECT_TRUE(found);
  // A second silence is a second alert.
  clock_.Advance(absl::Seconds(600));
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_EQ(Actions().back(), "agent_silent");
}

TEST_F(HealthTest, SilenceCountsFromServerStartAndSkipsRevokedAgents) {
  PutAgent("agt-old", NowNs() - 24 * 3600 * kS);  // last heard a day before the server started
  siper::v1::AgentInfo revoked;
  revoked.set_agent_id("agt-revoked");
  revoked.set_last_seen_ns(NowNs() - 24 * 3600 * kS);
  revoked.set_revoked(true);
  ASSERT_TRUE(store_->PutAgent(revoked).ok());
  PutAgent("agt-never", 0);  // enrolled, never connected
  HealthOptions o;
  o.agent_silent_after_s = 600;
  MakeMonitor(o);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(600));
  EXPECT_EQ(monitor_->Check(), 1);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].agent_id, "agt-old");
}

TEST_F(HealthTest, SpoolFillingOncePerEpisodeAndDroppingWhenTheCounterGrows) {
  PutAgent("agt-1", NowNs());
  HealthOptions o;
  o.spool_warn_percent = 80;
  MakeMonitor(o);
  Heartbeat("agt-1", 50, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 85, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 1);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 95, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 0);  // still the same episode
  EXPECT_EQ(monitor_->Check(), 0);  // the same heartbeat is looked at once
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 10, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 80, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 1);  // a new episode
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 80, 100, 5, 0);
  EXPECT_EQ(monitor_->Check(), 1);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 80, 100, 5, 0);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 80, 100, 7, 0);
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_EQ(Actions(), (std::vector<std::string>{"spool_filling", "spool_filling", "spool_dropping",
                                                 "spool_dropping"}));
  int64_t fresh = -1;
  for (const auto& [k, v] : events_.back().numbers) {
    if (k == "siper.drops_new") fresh = v;
  }
  EXPECT_EQ(fresh, 2);
}

TEST_F(HealthTest, ClockSkewOncePerEpisode) {
  PutAgent("agt-1", NowNs());
  HealthOptions o;
  o.clock_skew_max_s = 300;
  MakeMonitor(o);
  Heartbeat("agt-1", 0, 100, 0, 299'000);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 0, 100, 0, -301'000);
  EXPECT_EQ(monitor_->Check(), 1);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 0, 100, 0, -400'000);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 0, 100, 0, 0);
  EXPECT_EQ(monitor_->Check(), 0);
  clock_.Advance(absl::Seconds(30));
  Heartbeat("agt-1", 0, 100, 0, 600'000);
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_EQ(Actions(), (std::vector<std::string>{"clock_skew", "clock_skew"}));
}

TEST_F(HealthTest, DiskBelowTheFloorPausesOnceAndResumesAboveIt) {
  HealthOptions o;
  o.disk_min_free_bytes = 1000;
  MakeMonitor(o);
  free_bytes_ = 5000;
  EXPECT_EQ(monitor_->Check(), 0);
  EXPECT_FALSE(gate_.paused());
  EXPECT_EQ(monitor_->disk_free_bytes(), 5000);
  free_bytes_ = 999;
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_TRUE(gate_.paused());
  EXPECT_EQ(monitor_->Check(), 0);
  free_bytes_ = 1020;  // above the floor, but not by 5 %: no flapping
  EXPECT_EQ(monitor_->Check(), 0);
  EXPECT_TRUE(gate_.paused());
  free_bytes_ = 1100;
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_FALSE(gate_.paused());
  EXPECT_EQ(Actions(), (std::vector<std::string>{"disk_nearly_full", "disk_ok"}));
}

TEST_F(HealthTest, DiskPercentFloor) {
  HealthOptions o;
  o.disk_min_free_bytes = 0;
  o.disk_min_free_percent = 10;
  MakeMonitor(o);
  free_bytes_ = 11'000'000'000;  // 11 % of 100 GB
  EXPECT_EQ(monitor_->Check(), 0);
  free_bytes_ = 9'000'000'000;
  EXPECT_EQ(monitor_->Check(), 1);
  EXPECT_TRUE(gate_.paused());
}

TEST_F(HealthTest, AnEventThatCannotBeStoredIsRaisedAgainNextRound) {
  PutAgent("agt-1", NowNs());
  HealthOptions o;
  o.agent_silent_after_s = 60;
  o.disk_min_free_bytes = 1000;
  MakeMonitor(o);
  clock_.Advance(absl::Seconds(60));
  free_bytes_ = 10;
  emit_ok_ = false;
  EXPECT_EQ(monitor_->Check(), 0);
  EXPECT_TRUE(gate_.paused());  // the pause does not wait for the event
  emit_ok_ = true;
  EXPECT_EQ(monitor_->Check(), 2);
  EXPECT_EQ(monitor_->Check(), 0);
}

TEST(HealthEventTest, JsonIsNestedEcs) {
  HealthEvent e;
  e.action = "spool_filling";
  e.agent_id = "agt-1";
  e.agent_name = "pc \"42\"";
  e.numbers = {{"siper.spool.percent", 85}};
  e.strings = {{"incident.id", "INC-2026-0001"}};
  nlohmann::json j =
      nlohmann::json::parse(HealthEventJson(e, absl::FromUnixSeconds(1'800'000'000)));
  EXPECT_EQ(j["@timestamp"], "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(j["event"]["module"], "siper");
  EXPECT_EQ(j["event"]["dataset"], "siper.health");
  EXPECT_EQ(j["event"]["action"], "spool_filling");
  EXPECT_EQ(j["agent"]["id"], "agt-1");
  EXPECT_EQ(j["host"]["name"], "pc \"42\"");
  EXPECT_EQ(j["siper"]["spool"]["percent"], 85);
  EXPECT_EQ(j["incident"]["id"], "INC-2026-0001");
  EXPECT_EQ(MatchSource(kInternalAgentId, kHealthSource), kHealthSource);
  EXPECT_NE(MatchSource("agt-1", kHealthSource), kHealthSource);
  EXPECT_EQ(MatchSource("agt-1", "/var/log/auth.log"), "/var/log/auth.log");
}

// Through the real pipeline and rule set: stored as agent siper-server, matched by
// rules/ruleset/siper, seq continuing across a restart, read back for seeding; an agent
// cannot raise the same rule by naming its file "siper:health".
TEST_F(HealthTest, ReporterStoresMatchedEventsWithSeqThatSurvivesRestart) {
  auto rules = rules::RuleSet::Load(fs::path(SIPER_SOURCE_DIR) / "rules/ruleset");
  ASSERT_TRUE(rules.ok()) << rules.status();
  auto run = [&](const HealthEvent& event) {
    rules::LiveRuleSet live(*rules);
    IngestPipeline ingest(store_.get(), &live, nullptr, 1);
    EXPECT_TRUE(ingest.Start().ok());
    HealthReporter reporter(store_.get(), &ingest);
    EXPECT_TRUE(reporter.Init().ok());
    EXPECT_TRUE(reporter.Emit(event, clock_.Now()).ok());
    ingest.Stop();
  };
  HealthEvent silent;
  silent.action = "agent_silent";
  silent.agent_id = "agt-1";
  silent.numbers = {{"siper.silent_seconds", 700}, {"siper.last_seen_ns", 123}};
  run(silent);
  HealthEvent back = silent;
  back.action = "agent_back";
  clock_.Advance(absl::Seconds(5));
  run(back);
  EXPECT_EQ(store_->LastSeq(kInternalAgentId).value(), 2u);
  std::vector<siper::v1::Alert> alerts;
  storage::AlertQuery internal;
  internal.agent_id = kInternalAgentId;
  ASSERT_TRUE(store_
                  ->ListAlerts(internal,
                               [&](const siper::v1::Alert& a) {
                                 alerts.push_back(a);
                                 return true;
                               })
                  .ok());
  ASSERT_EQ(alerts.size(), 1u);  // agent_back raises no alert
  EXPECT_EQ(alerts[0].title(), "Siper agent silent");
  EXPECT_EQ(alerts[0].level(), "medium");
  EXPECT_EQ(alerts[0].fields().at("agent.id"), "agt-1");

  absl::StatusOr<StoredHealth> stored = LoadStoredHealth(*store_);
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(stored->newest["agt-1"].contains("agent_silent"));
  EXPECT_EQ(stored->newest["agt-1"]["agent_silent"]["siper.last_seen_ns"], "123");

  // The same line from an agent's own file raises nothing.
  rules::LiveRuleSet live(*rules);
  IngestPipeline ingest(store_.get(), &live, nullptr, 1);
  ASSERT_TRUE(ingest.Start().ok());
  siper::v1::EventBatch batch;
  siper::v1::Event* e = batch.add_events();
  e->set_agent_id("agt-9");
  e->set_seq(1);
  e->mutable_log()->set_source(kHealthSource);
  e->mutable_log()->set_line(HealthEventJson(silent, clock_.Now()));
  std::promise<absl::StatusOr<storage::WriteResult>> done;
  ingest.Submit("agt-9", batch,
                [&](absl::StatusOr<storage::WriteResult> r) { done.set_value(std::move(r)); });
  ASSERT_TRUE(done.get_future().get().ok());
  ingest.Stop();
  int forged = 0;
  storage::AlertQuery agent9;
  agent9.agent_id = "agt-9";
  ASSERT_TRUE(store_
                  ->ListAlerts(agent9,
                               [&](const siper::v1::Alert&) {
                                 ++forged;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(forged, 0);
}

// A restarted monitor does not raise again what the store says it raised.
TEST_F(HealthTest, RestartedMonitorRemembersOpenEpisodes) {
  auto rules = rules::RuleSet::Load(fs::path(SIPER_SOURCE_DIR) / "rules/ruleset");
  ASSERT_TRUE(rules.ok()) << rules.status();
  PutAgent("agt-1", NowNs());
  HealthOptions o;
  o.agent_silent_after_s = 60;
  o.disk_min_free_bytes = 1000;
  free_bytes_ = 10;
  auto run_monitor = [&] {
    rules::LiveRuleSet live(*rules);
    IngestPipeline ingest(store_.get(), &live, nullptr, 1);
    EXPECT_TRUE(ingest.Start().ok());
    HealthReporter reporter(store_.get(), &ingest);
    EXPECT_TRUE(reporter.Init().ok());
    IngestGate gate;
    HealthMonitor monitor(
        store_.get(),
        [&](const HealthEvent& e, absl::Time now) {
          events_.push_back(e);
          return reporter.Emit(e, now);
        },
        &gate, o,
        [this]() -> absl::StatusOr<DiskSpace> {
          return DiskSpace{free_bytes_, 0};
        },
        &clock_);
    EXPECT_TRUE(monitor.Init().ok());  // runs one Check
    clock_.Advance(absl::Seconds(61));
    monitor.Check();
    EXPECT_TRUE(gate.paused());
    ingest.Stop();
  };
  run_monitor();
  EXPECT_EQ(Actions(), (std::vector<std::string>{"disk_nearly_full", "agent_silent"}));
  run_monitor();  // still low, still silent: nothing new
  EXPECT_EQ(Actions(), (std::vector<std::string>{"disk_nearly_full", "agent_silent"}));
}

TEST(MetricsTest, RendersTextExpositionFormat) {
  MetricsRegistry r;
  Counter& c = r.AddCounter("t_events_total", "Events.");
  r.AddCounter("t_rejected_total", "Rejected.", {{"reason", "a\"b"}}).Add(2);
  r.AddCounter("t_rejected_total", "Rejected.", {{"reason", "c"}});
  Gauge& g = r.AddGauge("t_depth", "Depth.");
  Histogram& h = r.AddHistogram("t_seconds", "Time.", {0.001, 0.01});
  c.Add(3);
  g.Set(-2);
  h.ObserveNanos(500'000);     // 0.5 ms
  h.ObserveNanos(5'000'000);   // 5 ms
  h.ObserveNanos(50'000'000);  // 50 ms
  int id = r.AddCollector([](ScrapeWriter& w) {
    w.Family("t_collected", "gauge", "From a collector.");
    w.Sample("t_collected", {{"agent_id", "agt-1"}}, 1.5);
  });
  std::string text = r.Render();
  EXPECT_NE(text.find("# TYPE t_events_total counter\nt_events_total 3\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("t_rejected_total{reason=\"a\\\"b\"} 2\nt_rejected_total{reason=\"c\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_depth -2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE t_seconds histogram\n"
                      "t_seconds_bucket{le=\"0.001\"} 1\n"
                      "t_seconds_bucket{le=\"0.01\"} 2\n"
                      "t_seconds_bucket{le=\"+Inf\"} 3\n"
                      "t_seconds_sum 0.0555\n"
                      "t_seconds_count 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("t_collected{agent_id=\"agt-1\"} 1.5\n"), std::string::npos);
  r.RemoveCollector(id);
  EXPECT_EQ(r.Render().find("t_collected"), std::string::npos);
}

TEST(MetricsTest, HttpPortServesMetricsAndRefusesRemoteAddressesByDefault) {
  MetricsRegistry r;
  r.AddCounter("t_total", "T.").Add(7);
  auto server = MetricsHttpServer::Start("127.0.0.1:0", false, &r);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("t_total 7\n"), std::string::npos);
  EXPECT_EQ(client.Get("/other")->status, 404);
  (*server)->Stop();

  auto remote = MetricsHttpServer::Start("0.0.0.0:0", false, &r);
  ASSERT_FALSE(remote.ok());
  EXPECT_NE(remote.status().message().find("no TLS"), std::string::npos);
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.2"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
}

TEST(HealthConfigTest, ReadsKeysAndNamesBadValues) {
  char tmpl[] = "/tmp/siper-health-config-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  fs::path file = dir / "server.yaml";
  std::ofstream(file) << "agent_silent_after_s: 30\nspool_warn_percent: 90\n"
                         "clock_skew_max_s: 60\ndisk_min_free_bytes: 2048\n"
                         "disk_min_free_percent: 5\nhealth_check_interval_s: 2\n"
                         "metrics_listen: 127.0.0.1:9464\n";
  absl::StatusOr<ServerConfig> config = LoadServerConfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->health.agent_silent_after_s, 30);
  EXPECT_EQ(config->health.spool_warn_percent, 90);
  EXPECT_EQ(config->health.clock_skew_max_s, 60);
  EXPECT_EQ(config->health.disk_min_free_bytes, 2048u);
  EXPECT_EQ(config->health.disk_min_free_percent, 5);
  EXPECT_EQ(config->health.check_interval_s, 2);
  EXPECT_EQ(config->metrics.listen, "127.0.0.1:9464");
  EXPECT_FALSE(config->metrics.allow_remote);

  std::ofstream(file) << "listen: 127.0.0.1:7443\nagent_silent_after_s: 0\n";
  config = LoadServerConfig(file);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(
      config.status().message().find(file.string() + ":2: key 'agent_silent_after_s' must be"),
      std::string::npos)
      << config.status();
  std::ofstream(file) << "spool_warn_percent: lots\n";
  config = LoadServerConfig(file);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("spool_warn_percent"), std::string::npos);
  std::ofstream(file) << "metrics_listen: 9464\n";
  EXPECT_FALSE(LoadServerConfig(file).ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace siper::server

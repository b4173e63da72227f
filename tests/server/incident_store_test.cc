// The incident service on a real store: alerts from ingest grow an incident as appended
// item records, a restart reloads it, concurrent ingest threads' changes all land, and
// incidents stored whole by older versions are read and rewritten in the item form.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/incident_service.h"
#include "server/incidents/audit.h"
#include "server/incidents/json.h"
#include "server/incidents/stored.h"
#include "server/storage/store.h"
#include "tests/server/stored_incidents.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

class IncidentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/siper-incident-store-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void Open() {
    auto store = storage::Store::Open(dir_ / "db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void StartService() {
    IncidentServiceOptions options;
    options.config.taxonomy_path =
        std::string(SIPER_SOURCE_DIR) + "/server/incidents/data/rsit.yaml";
    auto s = IncidentServiceImpl::Create(store_.get(), options);
    ASSERT_TRUE(s.ok()) << s.status();
    service_ = *std::move(s);
  }
  void Restart() {
    service_.reset();
    store_.reset();
    Open();
    StartService();
  }

  // Stores `n` failed-login events of `attacker` on web01 (the first one high, opening an
  // incident) the way ingest does, then hands them to the service.
  void Ship(const std::string& agent, const std::string& attacker, uint64_t first_seq, int n) {
    std::vector<storage::EventRecord> records;
    for (int i = 0; i < n; ++i) {
      storage::EventRecord r;
      r.event.set_agent_id(agent);
      r.event.set_seq(first_seq + static_cast<uint64_t>(i));
      r.event.mutable_log()->set_line("Failed password for root from " + attacker);
      siper::v1::Alert a;
      a.set_rule_id("siper-ssh-failed-login");
      a.set_title("SSH failed login");
      a.set_level(first_seq == 1 && i == 0 ? "high" : "medium");
      (*a.mutable_fields())["source.ip"] = attacker;
      (*a.mutable_fields())["host.hostname"] = "web01";
      (*a.mutable_fields())["user.name"] = absl::StrCat("user", i % 5);
      r.alerts.push_back(a);
      records.push_back(std::move(r));
    }
    auto written = store_->Write(agent, records);
    ASSERT_TRUE(written.ok()) << written.status();
    service_->OnStored(agent, records);
  }

  // The stored incidents, assembled as the service does at start-up.
  std::vector<incidents::Incident> Stored(std::vector<std::string>* old_format = nullptr) {
    return test_support::ReadStoredIncidents(*store_, old_format);
  }

  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<IncidentServiceImpl> service_;
};

TEST_F(IncidentStoreTest, AnIncidentGrowsByItemsAndSurvivesARestart) {
  ASSERT_NO_FATAL_FAILURE(StartService());
  uint64_t seq = 1;
  for (int batch = 0; batch < 16; ++batch) {
    ASSERT_NO_FATAL_FAILURE(Ship("agent-1", "203.0.113.7", seq, 50));
    seq += 50;
  }
  std::vector<incidents::Incident> stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].alerts.size(), 800u);
  const std::string id = stored[0].id;
  // The head record stays small: it holds counts, not alerts.
  auto head = store_->GetIncident(id);
  ASSERT_TRUE(head.ok() && head->has_value());
  EXPECT_LT((*head)->size(), 4000u) << **head;

  ASSERT_NO_FATAL_FAILURE(Restart());
  ASSERT_NO_FATAL_FAILURE(Ship("agent-1", "203.0.113.7", seq, 10));  // joins the same incident
  stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].id, id);
  EXPECT_EQ(stored[0].alerts.size(), 810u);
  // Observables name their alerts again after the reload.
  for (const incidents::Observable& o : stored[0].observables) {
    if (o.value == "203.0.113.7") {
      EXPECT_EQ(o.alert_ids.size(), 810u);
    }
  }
  // Every change was audited, in an unbroken chain.
  std::vector<incidents::AuditRecord> records;
  ASSERT_TRUE(store_
                  ->ListAudit(1,
                              [&](uint64_t, std::string_view text) {
                                records.push_back(
                                    *incidents::AuditRecordFromJsonText(std::string(text)));
                                return true;
                              })
                  .ok());
  EXPECT_EQ(records.size(), 810u);  // one open, 809 attaches
  EXPECT_TRUE(incidents::VerifyAuditChain(records).ok());
}

TEST_F(IncidentStoreTest, ConcurrentIngestThreadsShareWritesAndLoseNothing) {
  ASSERT_NO_FATAL_FAILURE(StartService());
  // Four agents, one attacker each, shipped from four threads at once.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      const std::string agent = absl::StrCat("agent-", t);
      const std::string attacker = absl::StrCat("198.51.100.", t + 1);
      uint64_t seq = 1;
      for (int batch = 0; batch < 10; ++batch) {
        Ship(agent, attacker, seq, 25);
        seq += 25;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_NO_FATAL_FAILURE(Restart());
  std::vector<incidents::Incident> stored = Stored();
  ASSERT_EQ(stored.size(), 4u);
  for (const incidents::Incident& in : stored) EXPECT_EQ(in.alerts.size(), 250u) << in.id;
}

TEST_F(IncidentStoreTest, OldWholeRecordIncidentsAreRewrittenAtStart) {
  // An incident as an older server stored it: one JSON record with its alerts inside.
  incidents::Incident old;
  old.id = "INC-2026-0007";
  old.title = "old";
  old.times.created = absl::FromUnixSeconds(1'800'000'000);
  for (int i = 0; i < 25; ++i) {
    incidents::LinkedAlert a;
    a.id = absl::StrCat("old-alert-", i);
    a.rule_id = "r";
    a.level = "high";
    a.time = absl::FromUnixSeconds(1'800'000'000 + i);
    a.occurred = a.time;
    a.agent_id = "agent-9";
    a.seq = static_cast<uint64_t>(i + 1);
    a.source_ip = "192.0.2.9";
    old.alerts.push_back(a);
    old.event_refs.push_back(absl::StrCat("agent-9:", i + 1));
  }
  incidents::Observable ip;
  ip.kind = incidents::ObservableKind::kIp;
  ip.value = "192.0.2.9";
  ip.field = "source.ip";
  for (const incidents::LinkedAlert& a : old.alerts) ip.alert_ids.insert(a.id);
  old.observables.push_back(ip);
  old.timeline.push_back({old.times.created, "system", "created", "opened"});
  const std::string old_json = incidents::IncidentToJson(old).dump();
  storage::IncidentWrite w;
  w.incidents = {{old.id, old_json}};
  ASSERT_TRUE(store_->PutIncidents(w).ok());

  ASSERT_NO_FATAL_FAILURE(StartService());
  std::vector<std::string> old_format;
  std::vector<incidents::Incident> stored = Stored(&old_format);
  EXPECT_TRUE(old_format.empty()) << "still in the old form after start-up";
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(incidents::IncidentToJson(stored[0]).dump(), old_json);
  auto head = store_->GetIncident(old.id);
  ASSERT_TRUE(head.ok() && head->has_value());
  EXPECT_EQ((*head)->find("old-alert-"), std::string::npos) << **head;
  // And it reloads again from the new form.
  ASSERT_NO_FATAL_FAILURE(Restart());
  EXPECT_EQ(incidents::IncidentToJson(Stored()[0]).dump(), old_json);
}

}  // namespace
}  // namespace siper::server

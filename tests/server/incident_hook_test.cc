// The incident service's ingest hook (OnStored) reading alerts as views: the book gets the
// same input as when every alert's fields were copied into a std::map (the hook before
// it triaged alerts first), and stores fed ingest's views or alerts with their own
// protobuf maps end with the same incidents and audit trail, under the default policy and
// one that opens on a rule and an incident named by a server health alert.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/health_events.h"
#include "server/incident_service.h"
#include "server/incidents/audit.h"
#include "server/incidents/json.h"
#include "server/incidents/stored.h"
#include "server/storage/store.h"
#include "tests/server/stored_incidents.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;
using Fields = std::vector<std::pair<std::string, std::string>>;
using RuleRsit = std::map<std::string, std::pair<std::string, std::string>>;

// The AlertInput as the hook built it before (every field copied into the map, the first of
// equal names kept): the specification StoredAlertInput must meet.
incidents::AlertInput CopiedAlertInput(const siper::v1::Alert& alert, const Fields& fields,
                                       const RuleRsit& rule_rsit) {
  incidents::AlertInput in;
  for (const auto& [name, value] : fields) in.fields.emplace(name, value);
  in.id = alert.id();
  in.rule_id = alert.rule_id();
  in.title = alert.title();
  in.level = alert.level();
  in.time = absl::FromUnixNanos(alert.time_ns());
  if (auto ts = in.fields.find("@timestamp"); ts != in.fields.end()) {
    absl::StatusOr<absl::Time> t = incidents::ParseRfc3339(ts->second);
    if (t.ok()) in.occurred = *t;
  }
  in.agent_id = alert.agent_id();
  in.seq = alert.seq();
  auto host = in.fields.find("host.hostname");
  in.host = host != in.fields.end() && !host->second.empty() ? host->second : alert.agent_id();
  if (auto rsit = rule_rsit.find(alert.rule_id()); rsit != rule_rsit.end()) {
    in.rsit_class = rsit->second.first;
    in.rsit_type = rsit->second.second;
  }
  for (const std::string& tag : alert.tags()) {
    if (tag.starts_with("ioc")) in.ioc_hit = true;
  }
  if (auto v = in.fields.find("threat.indicator.value");
      v != in.fields.end() && !v->second.empty()) {
    in.ioc_hit = true;
    in.ioc_value = v->second;
    if (auto f = in.fields.find("threat.feed.name"); f != in.fields.end()) in.ioc_feed = f->second;
    if (auto c = in.fields.find("threat.indicator.confidence"); c != in.fields.end()) {
      int confidence = 0;
      if (absl::SimpleAtoi(c->second, &confidence)) in.ioc_confidence = confidence;
    }
  }
  return in;
}

std::vector<std::pair<std::string_view, std::string_view>> ViewsOf(const Fields& fields) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& [n, v] : fields) out.emplace_back(n, v);
  return out;
}

TEST(IncidentHookTest, StoredAlertInputIsTheAlertCopiedAsBefore) {
  const RuleRsit rsit = {{"siper-ssh-bruteforce", {"intrusion-attempts", "brute-force"}}};
  struct Case {
    std::string rule, level;
    std::vector<std::string> tags;
    Fields fields;
  };
  const std::vector<Case> cases = {
      {"siper-ssh-bruteforce",
       "high",
       {},
       {{"source.ip", "203.0.113.7"}, {"host.hostname", "web01"}, {"user.name", "root"}}},
      // Out of order, a repeated name (the first counts), an empty host.
      {"r2",
       "medium",
       {"attack.t1110"},
       {{"user.name", "a"},
        {"host.hostname", ""},
        {"source.ip", "198.51.100.9"},
        {"user.name", "b"},
        {"@timestamp", "2026-11-28T09:59:00Z"}}},
      // An IOC notice with feed and confidence; a tag alone; a bad confidence and time.
      {"siper-ioc-ip",
       "medium",
       {"ioc.ip"},
       {{"threat.indicator.value", "192.0.2.66"},
        {"threat.feed.name", "usom"},
        {"threat.indicator.confidence", "85"},
        {"@timestamp", "not a time"}}},
      {"siper-ioc-hash", "low", {"ioc"}, {{"threat.indicator.confidence", "70"}}},
      {"r5",
       "critical",
       {},
       {{"threat.indicator.value", ""},
        {"threat.indicator.confidence", "x"},
        {"@timestamp", ""},
        {"file.hash.sha256", std::string(64, 'A')},
        {"file.hash.md5", std::string(32, 'b')}}},
      {"r6", "informational", {}, {}},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule);
    siper::v1::Alert alert;
    alert.set_id(absl::StrCat("alert-", n));
    alert.set_rule_id(c.rule);
    alert.set_title("title " + c.rule);
    alert.set_level(c.level);
    alert.set_time_ns(1'800'000'000'000'000'000 + n);
    alert.set_agent_id("agt-1");
    alert.set_seq(static_cast<uint64_t>(100 + n++));
    for (const std::string& tag : c.tags) alert.add_tags(tag);
    const auto views = ViewsOf(c.fields);
    const incidents::AlertTriage triage = TriageStoredAlert(alert, views);
    const incidents::AlertInput got = StoredAlertInput(alert, views, triage, rsit);
    const incidents::AlertInput want = CopiedAlertInput(alert, c.fields, rsit);
    EXPECT_EQ(incidents::AlertInputToJson(got).dump(), incidents::AlertInputToJson(want).dump());
    EXPECT_EQ(got.host, want.host);
    EXPECT_EQ(got.occurred, want.occurred);
    EXPECT_EQ(got.ioc_confidence, want.ioc_confidence);
    EXPECT_EQ(incidents::LinkedAlertToJson(incidents::ToLinkedAlert(got)),
              incidents::LinkedAlertToJson(incidents::ToLinkedAlert(want)));
    std::vector<incidents::Observable> og = incidents::ExtractObservables(got);
    std::vector<incidents::Observable> ow = incidents::ExtractObservables(want);
    ASSERT_EQ(og.size(), ow.size());
    for (size_t k = 0; k < og.size(); ++k) {
      EXPECT_EQ(incidents::ObservableToJson(og[k]), incidents::ObservableToJson(ow[k]));
    }
    // The triage is what the book reads of the input.
    const incidents::AlertTriage from_input = incidents::Triage(want);
    EXPECT_EQ(triage.id, from_input.id);
    EXPECT_EQ(triage.rule_id, from_input.rule_id);
    EXPECT_EQ(triage.level, from_input.level);
    EXPECT_EQ(triage.time, from_input.time);
    EXPECT_EQ(triage.source_ip, from_input.source_ip);
    EXPECT_EQ(triage.host, from_input.host);
    EXPECT_EQ(triage.ioc_hit, from_input.ioc_hit);
    EXPECT_EQ(triage.ioc_confidence, from_input.ioc_confidence);
    // And the owned form is the same input.
    siper::v1::Alert with_map = alert;
    for (const auto& [name, value] : c.fields) with_map.mutable_fields()->insert({name, value});
    EXPECT_EQ(incidents::AlertInputToJson(OwnedAlertInput(with_map, rsit)).dump(),
              incidents::AlertInputToJson(CopiedAlertInput(with_map, c.fields, rsit)).dump());
  }
}

// A store and an incident service on it, in a temporary directory.
class Server {
 public:
  explicit Server(const incidents::GroupingPolicy& policy) {
    char tmpl[] = "/tmp/siper-incident-hook-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto store = storage::Store::Open(dir_ / "db");
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    IncidentServiceOptions options;
    options.config.taxonomy_path =
        std::string(SIPER_SOURCE_DIR) + "/server/incidents/data/rsit.yaml";
    options.config.grouping = policy;
    options.rule_rsit = {{"siper-ssh-bruteforce", {"intrusion-attempts", "brute-force"}}};
    auto s = IncidentServiceImpl::Create(store_.get(), options);
    EXPECT_TRUE(s.ok()) << s.status();
    service_ = *std::move(s);
  }
  ~Server() {
    service_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // Stores one event per entry of `alerts` (each with that alert) for `agent` from `seq` on,
  // its fields as ingest hands them (views) or in the alert's own map, then runs the hook.
  void Ship(const std::string& agent, uint64_t seq, const std::vector<siper::v1::Alert>& alerts,
            const std::vector<Fields>& fields, bool as_views) {
    std::vector<storage::EventRecord> records;
    for (size_t i = 0; i < alerts.size(); ++i) {
      storage::EventRecord r;
      r.event.set_agent_id(agent);
      r.event.set_seq(seq + i);
      r.event.set_server_time_ns(1'800'000'000'000'000'000 + static_cast<int64_t>(seq + i));
      r.event.mutable_log()->set_line("line");
      siper::v1::Alert a = alerts[i];
      if (as_views) {
        auto owned = std::make_shared<
            std::pair<Fields, std::vector<std::pair<std::string_view, std::string_view>>>>();
        owned->first = fields[i];
        owned->second = ViewsOf(owned->first);
        r.alert_fields.push_back({owned->second, owned});
      } else {
        for (const auto& [n, v] : fields[i]) a.mutable_fields()->insert({n, v});
      }
      r.alerts.push_back(std::move(a));
      records.push_back(std::move(r));
    }
    auto written = store_->Write(agent, records);
    ASSERT_TRUE(written.ok()) << written.status();
    service_->OnStored(agent, records);
  }

  // The incidents as stored, without what the wall clock sets (creation, timeline and
  // state times): alerts, observables, classification, severity, risk.
  std::vector<std::string> Incidents() {
    std::vector<std::string> out;
    for (const incidents::Incident& incident : test_support::ReadStoredIncidents(*store_)) {
      nlohmann::json j = incidents::IncidentToJson(incident);
      nlohmann::json kept = {{"id", j["id"]},
                             {"title", j["title"]},
                             {"severity", j["severity"]},
                             {"risk_score", j["risk_score"]},
                             {"rsit_class", j["rsit_class"]},
                             {"rsit_type", j["rsit_type"]},
                             {"alerts", j["alerts"]},
                             {"observables", j["observables"]},
                             {"event_refs", j["event_refs"]},
                             {"timeline_count", incident.timeline.size()}};
      out.push_back(kept.dump());
    }
    return out;
  }
  std::vector<std::string> AuditActions() {
    std::vector<std::string> out;
    EXPECT_TRUE(store_
                    ->ListAudit(1,
                                [&](uint64_t, std::string_view text) {
                                  auto r = incidents::AuditRecordFromJsonText(std::string(text));
                                  EXPECT_TRUE(r.ok());
                                  if (r.ok()) out.push_back(r->action + " " + r->target);
                                  return true;
                                })
                    .ok());
    return out;
  }

 private:
  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<IncidentServiceImpl> service_;
};

siper::v1::Alert MakeAlert(const std::string& rule, const std::string& level,
                           const std::string& tag = "") {
  siper::v1::Alert a;
  a.set_rule_id(rule);
  a.set_title("title " + rule);
  a.set_level(level);
  if (!tag.empty()) a.add_tags(tag);
  return a;
}

// An attack of `n` alerts from `ip` on web01 (the 5th high), a sweep on db01 below the
// threshold, IOC notices, and alerts of a rule the second policy opens on.
void ShipAttack(Server& s, bool as_views) {
  std::vector<siper::v1::Alert> alerts;
  std::vector<Fields> fields;
  for (int i = 0; i < 40; ++i) {
    const std::string ip = i % 3 == 0 ? "198.51.100.9" : "203.0.113.7";
    alerts.push_back(MakeAlert(i == 4 ? "siper-ssh-bruteforce" : "siper-ssh-failed",
                               i == 4 ? "high" : "medium"));
    fields.push_back({{"user.name", absl::StrCat("user", i % 4)},
                      {"source.ip", ip},
                      {"host.hostname", i % 5 == 0 ? "db01" : "web01"},
                      {"@timestamp", "2026-11-28T09:00:00Z"}});
    if (i % 7 == 0) {
      alerts.push_back(MakeAlert("siper-ioc-ip", "medium", "ioc.ip"));
      fields.push_back({{"threat.indicator.value", ip},
                        {"threat.indicator.confidence", i % 2 == 0 ? "90" : "10"},
                        {"threat.feed.name", "usom"},
                        {"source.ip", ip},
                        {"host.hostname", "pc-3"}});
    }
    if (i % 11 == 0) {
      alerts.push_back(MakeAlert("siper-sudo", "low"));
      fields.push_back({{"user.name", "mehmet"}, {"file.hash.sha256", std::string(64, 'C')}});
    }
  }
  ASSERT_NO_FATAL_FAILURE(s.Ship("agt-1", 1, alerts, fields, as_views));
}

TEST(IncidentHookTest, ViewsAndOwnMapsGiveTheSameIncidents) {
  std::vector<incidents::GroupingPolicy> policies(3);
  // The second: bench/loadgen/no-incidents.yaml with a rule that always opens.
  policies[1].min_level = "critical";
  policies[1].attach_below_threshold = false;
  policies[1].ioc_hit_opens = false;
  policies[1].rule_ids = {"siper-sudo"};
  // The third: IOC notices of confidence 50 and up open; nothing else does.
  policies[2] = policies[1];
  policies[2].rule_ids.clear();
  policies[2].ioc_hit_opens = true;
  policies[2].min_ioc_confidence = 50;
  for (size_t p = 0; p < policies.size(); ++p) {
    SCOPED_TRACE(absl::StrCat("policy ", p));
    Server views(policies[p]), maps(policies[p]);
    ASSERT_NO_FATAL_FAILURE(ShipAttack(views, true));
    ASSERT_NO_FATAL_FAILURE(ShipAttack(maps, false));
    std::vector<std::string> a = views.Incidents();
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a, maps.Incidents());
    // A server health alert naming an incident joins it, below any threshold.
    const std::string first = nlohmann::json::parse(a.front())["id"];
    for (Server* s : {&views, &maps}) {
      ASSERT_NO_FATAL_FAILURE(
          s->Ship(kInternalAgentId, 1, {MakeAlert("siper-deadline-usom", "informational")},
                  {{{"event.action", "deadline_missed"}, {"incident.id", first}}}, s == &views));
    }
    a = views.Incidents();
    EXPECT_EQ(a, maps.Incidents());
    EXPECT_NE(a.front().find("siper-deadline-usom"), std::string::npos) << a.front();
    EXPECT_EQ(views.AuditActions(), maps.AuditActions());
  }
}

}  // namespace
}  // namespace siper::server

// The ingest hook's shortcuts in the book: IncidentBook::WouldChange answers exactly as
// Ingest decides (open or join, against ignore or already linked) over varied alerts,
// policies and book states, and an AlertInput that reads its fields as views behaves as one
// whose fields were copied into its map (lookups, observables, linked alerts, whole books).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/incidents/clock.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/json.h"
#include "server/incidents/model.h"
#include "tests/incidents/test_util.h"

namespace siper::incidents {
namespace {

using testing::At;
using testing::Rsit;

using Views = std::vector<std::pair<std::string_view, std::string_view>>;

// A pseudo-random alert (fixed seed per test): levels in odd cases and unknown ones, a few
// attackers and hosts (some missing or empty), rules, IOC notices, resent ids, times on
// both sides of the grouping window.
struct AlertMaker {
  AlertMaker(uint32_t seed, absl::Time start) : rng(seed), start(start) {}
  std::mt19937 rng;
  absl::Time start;
  int next_id = 0;
  std::vector<std::string> issued;

  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  }
  bool Coin(int percent) { return std::uniform_int_distribution<int>(0, 99)(rng) < percent; }

  AlertInput Make() {
    static const std::vector<std::string> levels = {
        "informational", "low", "medium", "high", "critical", "HIGH", "Critical", "", "bogus"};
    static const std::vector<std::string> ips = {"203.0.113.7", "198.51.100.9", "192.0.2.66", "",
                                                 "2001:db8::5"};
    static const std::vector<std::string> hosts = {"web01", "db01", "pc-3", ""};
    static const std::vector<std::string> rules = {"siper-ssh-bruteforce", "siper-ssh-failed",
                                                   "siper-ioc-ip", "siper-sudo"};
    AlertInput a;
    if (!issued.empty() && Coin(8)) {
      a.id = Pick(issued);  // a resend
    } else {
      a.id = absl::StrCat("alert-", next_id++);
      issued.push_back(a.id);
    }
    a.rule_id = Pick(rules);
    a.title = absl::StrCat("title of ", a.rule_id);
    a.level = Pick(levels);
    a.time = start + absl::Minutes(std::uniform_int_distribution<int>(0, 300)(rng));
    a.agent_id = Coin(50) ? "agent-1" : "agent-2";
    a.seq = static_cast<uint64_t>(next_id);
    a.host = a.agent_id;
    const std::string ip = Pick(ips);
    if (!ip.empty() || Coin(30)) a.fields["source.ip"] = ip;
    const std::string host = Pick(hosts);
    if (!host.empty() || Coin(50)) a.fields["host.hostname"] = host;
    if (Coin(30)) a.fields["user.name"] = Coin(50) ? "root" : "admin";
    if (Coin(20)) a.fields["file.hash.sha256"] = std::string(64, Coin(50) ? 'a' : 'b');
    if (Coin(15)) {
      a.ioc_hit = true;
      a.ioc_confidence = std::uniform_int_distribution<int>(0, 100)(rng);
      a.ioc_value = Coin(50) ? "evil.example" : ip;
    }
    return a;
  }
};

std::vector<GroupingPolicy> Policies() {
  std::vector<GroupingPolicy> out;
  out.emplace_back();   // the default
  GroupingPolicy none;  // bench/loadgen/no-incidents.yaml
  none.min_level = "critical";
  none.attach_below_threshold = false;
  none.ioc_hit_opens = false;
  out.push_back(none);
  GroupingPolicy rules = none;
  rules.rule_ids = {"siper-sudo"};
  out.push_back(rules);
  GroupingPolicy ioc = none;
  ioc.ioc_hit_opens = true;
  ioc.min_ioc_confidence = 50;
  out.push_back(ioc);
  GroupingPolicy low_attach;
  low_attach.min_level = "medium";
  low_attach.window = absl::Minutes(10);
  out.push_back(low_attach);
  GroupingPolicy no_window;
  no_window.window = absl::ZeroDuration();
  out.push_back(no_window);
  return out;
}

TEST(TriageTest, WouldChangeAnswersAsIngestDecides) {
  const absl::Time start = At("2026-11-28T10:00:00Z");
  int policy_index = 0;
  for (const GroupingPolicy& policy : Policies()) {
    SCOPED_TRACE(absl::StrCat("policy ", policy_index++));
    FakeClock clock(start);
    AuditLog audit;
    IncidentBook book(&Rsit(), &clock, policy, &audit);
    AlertMaker maker(20261129 + policy_index, start);
    int changes = 0, unchanged = 0;
    for (int i = 0; i < 600; ++i) {
      if (i == 300) {
        // Closed incidents collect nothing: close one and go on.
        std::vector<const Incident*> open = book.View();
        if (!open.empty()) {
          ASSERT_TRUE(book.Transition(open.front()->id, State::kClosed, "analyst",
                                      Resolution::kFalsePositive)
                          .ok());
          (void)book.TakePendingWrite();
        }
      }
      const AlertInput a = maker.Make();
      const bool would = book.WouldChange(Triage(a));
      // Whether any book with the policy may take it: never false when this one would.
      if (would) {
        EXPECT_TRUE(MayOpenOrJoin(policy, Triage(a)));
      }
      const size_t audit_before = audit.records().size();
      const IngestResult r = book.Ingest(a);
      const bool changed = r.outcome == IngestResult::Outcome::kOpened ||
                           r.outcome == IngestResult::Outcome::kAttached;
      EXPECT_EQ(would, changed) << "alert " << a.id << " level '" << a.level << "' rule "
                                << a.rule_id << " outcome " << static_cast<int>(r.outcome);
      if (!changed) {
        EXPECT_TRUE(book.TakePendingWrite().empty()) << a.id;
        EXPECT_EQ(audit.records().size(), audit_before) << a.id;
        ++unchanged;
      } else {
        (void)book.TakePendingWrite();
        ++changes;
      }
      clock.Advance(absl::Seconds(7));
    }
    // The run exercised both answers.
    EXPECT_GT(changes, 0);
    EXPECT_GT(unchanged, 0);
  }
}

TEST(TriageTest, TriageReadsWhatIngestReads) {
  AlertInput a;
  a.id = "x1";
  a.rule_id = "r";
  a.level = "High";
  a.time = At("2026-11-28T10:00:00Z");
  a.host = "agent-host";
  a.ioc_hit = true;
  a.ioc_confidence = 40;
  AlertTriage t = Triage(a);
  EXPECT_EQ(t.id, "x1");
  EXPECT_EQ(t.level, "High");
  EXPECT_EQ(t.host, "agent-host");  // no host.hostname: the alert's host
  EXPECT_EQ(t.source_ip, "");
  EXPECT_TRUE(t.ioc_hit);
  EXPECT_EQ(t.ioc_confidence, 40);
  a.fields["host.hostname"] = "";
  EXPECT_EQ(Triage(a).host, "agent-host");  // empty counts as none
  const Views views = {{"host.hostname", "web01"}, {"source.ip", "203.0.113.7"}};
  a.fields.clear();
  a.field_views = views;
  t = Triage(a);
  EXPECT_EQ(t.host, "web01");
  EXPECT_EQ(t.source_ip, "203.0.113.7");
  GroupingPolicy policy;
  EXPECT_TRUE(OpensIncident(policy, t));  // "High" is high, case-insensitively
  t.level = "medium";
  t.ioc_hit = false;
  EXPECT_FALSE(OpensIncident(policy, t));
  policy.attach_below_threshold = false;
  EXPECT_FALSE(MayOpenOrJoin(policy, t));
  policy.rule_ids = {"r"};
  EXPECT_TRUE(MayOpenOrJoin(policy, t));
}

TEST(FieldViewsTest, LookupsAsTheCopiedMap) {
  // Out of name order, with a repeated name (the first counts, as std::map::emplace keeps
  // it) and an empty value.
  const Views views = {{"user.name", "root"},        {"file.hash.sha256", "B"},
                       {"source.ip", "203.0.113.7"}, {"file.hash.md5", "A"},
                       {"user.name", "second"},      {"file.hash.", "bare"},
                       {"host.hostname", ""},        {"file.hash.sha1", "C"}};
  AlertInput copied;
  for (const auto& [n, v] : views) copied.fields.emplace(n, v);
  AlertInput viewed;
  viewed.field_views = views;
  for (const char* name : {"user.name", "file.hash.sha256", "source.ip", "host.hostname", "missing",
                           "file.hash.", ""}) {
    EXPECT_EQ(viewed.Field(name), copied.Field(name)) << name;
    EXPECT_EQ(viewed.HasField(name), copied.HasField(name)) << name;
  }
  EXPECT_EQ(viewed.Field("user.name"), "root");
  EXPECT_TRUE(viewed.HasField("host.hostname"));
  EXPECT_EQ(viewed.FieldsWithPrefix("file.hash."), copied.FieldsWithPrefix("file.hash."));
  EXPECT_EQ(viewed.FieldsWithPrefix(""), copied.FieldsWithPrefix(""));
  const auto hashes = viewed.FieldsWithPrefix("file.hash.");
  ASSERT_EQ(hashes.size(), 4u);
  EXPECT_EQ(hashes[0].first, "file.hash.");
  EXPECT_EQ(hashes[1].first, "file.hash.md5");
  EXPECT_EQ(hashes[3].first, "file.hash.sha256");
  EXPECT_EQ(viewed.FieldsWithPrefix("").size(), 7u);
  // Both at once: the owned map first.
  AlertInput both;
  both.fields["user.name"] = "owned";
  both.field_views = views;
  EXPECT_EQ(both.Field("user.name"), "owned");
  EXPECT_EQ(both.Field("source.ip"), "203.0.113.7");
  const auto all = both.FieldsWithPrefix("user.");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].second, "owned");
  EXPECT_EQ(AlertInputToJson(viewed).dump(), AlertInputToJson(copied).dump());
}

TEST(FieldViewsTest, BooksFedViewsOrCopiesAreTheSame) {
  const absl::Time start = At("2026-11-28T10:00:00Z");
  for (const GroupingPolicy& policy : Policies()) {
    FakeClock clock_a(start), clock_b(start);
    AuditLog audit_a, audit_b;
    IncidentBook copied(&Rsit(), &clock_a, policy, &audit_a);
    IncidentBook viewed(&Rsit(), &clock_b, policy, &audit_b);
    AlertMaker maker(77, start);
    for (int i = 0; i < 300; ++i) {
      const AlertInput a = maker.Make();
      // The same fields as views, in reverse name order.
      Views views;
      for (auto it = a.fields.rbegin(); it != a.fields.rend(); ++it) {
        views.emplace_back(it->first, it->second);
      }
      AlertInput v = a;
      v.fields.clear();
      v.field_views = views;
      EXPECT_EQ(LinkedAlertToJson(ToLinkedAlert(v)), LinkedAlertToJson(ToLinkedAlert(a)));
      std::vector<Observable> ov = ExtractObservables(v), oa = ExtractObservables(a);
      ASSERT_EQ(ov.size(), oa.size());
      for (size_t k = 0; k < ov.size(); ++k) {
        EXPECT_EQ(ObservableToJson(ov[k]), ObservableToJson(oa[k]));
      }
      const IngestResult ra = copied.Ingest(a);
      const IngestResult rv = viewed.Ingest(v);
      EXPECT_EQ(ra.outcome, rv.outcome);
      EXPECT_EQ(ra.incident_id, rv.incident_id);
      clock_a.Advance(absl::Seconds(5));
      clock_b.Advance(absl::Seconds(5));
    }
    const std::vector<Incident> la = copied.List(), lv = viewed.List();
    ASSERT_EQ(la.size(), lv.size());
    for (size_t k = 0; k < la.size(); ++k) {
      EXPECT_EQ(IncidentToJson(la[k]).dump(), IncidentToJson(lv[k]).dump());
    }
    ASSERT_EQ(audit_a.records().size(), audit_b.records().size());
    for (size_t k = 0; k < audit_a.records().size(); ++k) {
      EXPECT_EQ(audit_a.records()[k].hash, audit_b.records()[k].hash);
    }
  }
}

}  // namespace
}  // namespace siper::incidents

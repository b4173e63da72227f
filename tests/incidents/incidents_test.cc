#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/incidents/audit.h"
#include "server/incidents/clock.h"
#include "server/incidents/deadlines.h"
#include "server/incidents/hash.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/json.h"
#include "server/incidents/model.h"
#include "server/incidents/stored.h"
#include "server/incidents/taxonomy.h"
#include "server/incidents/workflow.h"
#include "tests/incidents/test_util.h"

namespace siper::incidents {
namespace {

using testing::At;
using testing::Rsit;
using testing::SshAlert;

// ---------- taxonomy ----------

TEST(TaxonomyTest, LoadsAllRsitClassesWithTypesAndLabels) {
  const Taxonomy& t = Rsit();
  const std::vector<std::string> want = {"abusive-content",
                                         "malicious-code",
                                         "information-gathering",
                                         "intrusion-attempts",
                                         "intrusions",
                                         "availability",
                                         "information-content-security",
                                         "fraud",
                                         "vulnerable",
                                         "other",
                                         "test"};
  ASSERT_EQ(t.classes().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t.classes()[i].id, want[i]);
    EXPECT_FALSE(t.classes()[i].tr.empty());
    EXPECT_FALSE(t.classes()[i].en.empty());
  }
  size_t types = 0;
  for (const RsitClass& c : t.classes()) types += c.types.size();
  EXPECT_EQ(types, 39u);
  EXPECT_TRUE(t.Validate("malicious-code", "infected-system").ok());
  EXPECT_TRUE(t.Validate("intrusion-attempts", "brute-force").ok());
  EXPECT_TRUE(t.Validate("information-content-security", "data-leak").ok());
  EXPECT_TRUE(t.Validate("test", "test").ok());
  EXPECT_EQ(t.ClassLabel("fraud", "tr"), "Dolandırıcılık");
  EXPECT_EQ(t.ClassLabel("fraud", "en"), "Fraud");
  EXPECT_EQ(t.TypeLabel("fraud", "phishing", "tr"), "Oltalama");
}

TEST(TaxonomyTest, UnknownClassOrTypeNamesTheChoices) {
  absl::Status st = Rsit().Validate("malware", "x");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("malicious-code"), std::string::npos);
  st = Rsit().Validate("intrusion-attempts", "bruteforce");
  EXPECT_NE(st.message().find("brute-force"), std::string::npos);
  EXPECT_NE(st.message().find("ids-alert"), std::string::npos);
}

TEST(TaxonomyTest, RejectsBrokenFiles) {
  EXPECT_FALSE(Taxonomy::LoadFromString("classes: [", "bad.yaml").ok());
  EXPECT_FALSE(Taxonomy::LoadFromString("foo: 1", "bad.yaml").ok());
  auto dup = Taxonomy::LoadFromString(
      "classes:\n- {id: a, en: A, tr: A, types: [{id: x, en: X, tr: X}, {id: x, en: X, tr: X}]}\n",
      "dup.yaml");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("dup.yaml"), std::string::npos);
  EXPECT_FALSE(Taxonomy::LoadFromFile("/nonexistent/rsit.yaml").ok());
}

// ---------- model ----------

TEST(ModelTest, IncidentIds) {
  EXPECT_EQ(FormatIncidentId(2026, 1), "INC-2026-0001");
  EXPECT_EQ(FormatIncidentId(2026, 12345), "INC-2026-12345");
  auto p = ParseIncidentId("INC-2026-0042");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, 2026);
  EXPECT_EQ(p->second, 42);
  EXPECT_FALSE(ParseIncidentId("INC-26-1").ok());
  EXPECT_FALSE(ParseIncidentId("INC-2026-00x1").ok());
}

TEST(ModelTest, EnumNamesRoundTrip) {
  for (State s : {State::kNew, State::kTriage, State::kInvestigating, State::kContained,
                  State::kEradicated, State::kRecovered, State::kClosed}) {
    EXPECT_EQ(*ParseState(ToString(s)), s);
  }
  EXPECT_EQ(*ParseTlp("amber+strict"), Tlp::kAmberStrict);
  EXPECT_EQ(*ParseTlp("TLP:WHITE"), Tlp::kClear);
  EXPECT_EQ(ToString(Tlp::kAmberStrict), "AMBER+STRICT");
  auto bad = ParseSeverity("severe");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("critical"), std::string::npos);
}

TEST(ModelTest, RiskScoreFormula) {
  EXPECT_EQ(ComputeRiskScore(1, 1, 0), 0);
  EXPECT_EQ(ComputeRiskScore(5, 5, 100), 100);
  EXPECT_EQ(ComputeRiskScore(5, 1, 0), 50);
  EXPECT_EQ(ComputeRiskScore(1, 5, 0), 30);
  EXPECT_EQ(ComputeRiskScore(1, 1, 100), 20);
  EXPECT_EQ(ComputeRiskScore(4, 3, 50), 63);  // 37.5 + 15 + 10 = 62.5 -> 63
  EXPECT_EQ(ComputeRiskScore(9, 0, 200), ComputeRiskScore(5, 1, 100));  // clamped
}

TEST(ModelTest, ExtractsObservablesFromEcsFields) {
  AlertInput a;
  a.id = "a1";
  a.time = At("2026-11-28T10:00:00Z");
  a.host = "fallback-host";
  a.fields = {{"source.ip", "203.0.113.7"},
              {"destination.ip", "2001:db8::1"},
              {"url.original", "http://evil.example/x.php?a=1"},
              {"url.domain", "Evil.Example"},
              {"dns.question.name", "c2.example.net"},
              {"file.hash.sha256", "AB" + std::string(62, 'c')},
              {"file.hash.md5", std::string(32, 'd')},
              {"user.name", "mehmet"},
              {"host.hostname", "web01"},
              {"source.port", "4444"}};
  a.ioc_hit = true;
  a.ioc_value = "evil.example";
  std::vector<Observable> obs = ExtractObservables(a);
  auto has = [&](ObservableKind k, const std::string& v, const std::string& field) {
    return std::any_of(obs.begin(), obs.end(), [&](const Observable& o) {
      return o.kind == k && o.value == v && o.field == field && o.alert_ids.count("a1") == 1;
    });
  };
  EXPECT_TRUE(has(ObservableKind::kIp, "203.0.113.7", "source.ip"));
  EXPECT_TRUE(has(ObservableKind::kIp, "2001:db8::1", "destination.ip"));
  EXPECT_TRUE(has(ObservableKind::kUrl, "http://evil.example/x.php?a=1", "url.original"));
  EXPECT_TRUE(has(ObservableKind::kDomain, "evil.example", "url.domain"));  // lower-cased
  EXPECT_TRUE(has(ObservableKind::kDomain, "c2.example.net", "dns.question.name"));
  EXPECT_TRUE(has(ObservableKind::kHash, "ab" + std::string(62, 'c'), "file.hash.sha256"));
  EXPECT_TRUE(has(ObservableKind::kHash, std::string(32, 'd'), "file.hash.md5"));
  EXPECT_TRUE(has(ObservableKind::kUser, "mehmet", "user.name"));
  EXPECT_TRUE(has(ObservableKind::kHost, "web01", "host.hostname"));
  EXPECT_TRUE(has(ObservableKind::kDomain, "evil.example", "ioc"));
  EXPECT_EQ(obs.size(), 10u);
  auto sha = std::find_if(obs.begin(), obs.end(),
                          [](const Observable& o) { return o.field == "file.hash.sha256"; });
  EXPECT_EQ(sha->hash_algo, "sha256");
}

TEST(ModelTest, ObservablesSkipBadIpsAndUseAlertHost) {
  AlertInput a;
  a.id = "a2";
  a.host = "pc-17";
  a.fields = {{"source.ip", "not-an-ip"}, {"user.name", "-"}};
  std::vector<Observable> obs = ExtractObservables(a);
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_EQ(obs[0].kind, ObservableKind::kHost);
  EXPECT_EQ(obs[0].value, "pc-17");
}

TEST(ModelTest, IpInCidr) {
  EXPECT_TRUE(IpInCidr("10.1.2.3", "10.0.0.0/8"));
  EXPECT_FALSE(IpInCidr("11.1.2.3", "10.0.0.0/8"));
  EXPECT_TRUE(IpInCidr("192.0.2.130", "192.0.2.128/25"));
  EXPECT_FALSE(IpInCidr("192.0.2.127", "192.0.2.128/25"));
  EXPECT_TRUE(IpInCidr("2001:db8::5", "2001:db8::/32"));
  EXPECT_FALSE(IpInCidr("10.0.0.1", "2001:db8::/32"));
  EXPECT_TRUE(IpInCidr("192.0.2.1", "192.0.2.1"));
  EXPECT_FALSE(IpInCidr("192.0.2.1", "192.0.2.0/33"));
}

TEST(ModelTest, Rfc3339) {
  const absl::Time t = At("2026-11-28T10:00:00.123456Z");
  EXPECT_EQ(FormatRfc3339(t), "2026-11-28T10:00:00.123Z");
  EXPECT_EQ(FormatRfc3339(absl::InfinitePast()), "");
  EXPECT_EQ(*ParseRfc3339("2026-11-28T13:00:00+03:00"), At("2026-11-28T10:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("yesterday").ok());
}

// ---------- state machine ----------

const std::vector<State> kAllStates = {State::kNew,       State::kTriage,     State::kInvestigating,
                                       State::kContained, State::kEradicated, State::kRecovered,
                                       State::kClosed};

Incident InState(State s) {
  Incident in;
  in.id = "INC-2026-0001";
  in.state = s;
  if (s == State::kClosed) in.resolution = Resolution::kTruePositive;
  return in;
}

TEST(StateMachineTest, EveryTransitionIsLegalOrRefusedAsTheTableSays) {
  const std::set<std::pair<State, State>> legal = {
      {State::kNew, State::kTriage},
      {State::kNew, State::kClosed},
      {State::kTriage, State::kInvestigating},
      {State::kTriage, State::kClosed},
      {State::kInvestigating, State::kContained},
      {State::kInvestigating, State::kClosed},
      {State::kContained, State::kEradicated},
      {State::kContained, State::kClosed},
      {State::kEradicated, State::kRecovered},
      {State::kEradicated, State::kClosed},
      {State::kRecovered, State::kClosed},
      {State::kClosed, State::kTriage},
      {State::kClosed, State::kInvestigating},
  };
  const absl::Time now = At("2026-11-28T10:00:00Z");
  int checked = 0;
  for (State from : kAllStates) {
    for (State to : kAllStates) {
      ++checked;
      Incident in = InState(from);
      const Resolution r = to == State::kClosed ? Resolution::kFalsePositive : Resolution::kNone;
      absl::Status st = Transition(in, to, "ayse", now, r);
      const bool want = legal.count({from, to}) > 0;
      EXPECT_EQ(st.ok(), want) << ToString(from) << " -> " << ToString(to) << ": " << st;
      EXPECT_EQ(IsAllowedTransition(from, to), want);
      if (want) {
        EXPECT_EQ(in.state, to);
        ASSERT_FALSE(in.timeline.empty());
        EXPECT_EQ(in.timeline.back().actor, "ayse");
        EXPECT_EQ(in.times.entered.at(to), now);
      } else {
        EXPECT_EQ(in.state, from);
        EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
        // The message names every allowed next state.
        for (State next : AllowedNext(from)) {
          EXPECT_NE(st.message().find(std::string(ToString(next))), std::string::npos) << st;
        }
        EXPECT_TRUE(in.timeline.empty());
      }
    }
  }
  EXPECT_EQ(checked, 49);
}

TEST(StateMachineTest, ClosingNeedsAResolution) {
  Incident in = InState(State::kRecovered);
  const absl::Time now = At("2026-11-28T10:00:00Z");
  absl::Status st = Transition(in, State::kClosed, "ayse", now);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("true-positive"), std::string::npos);
  EXPECT_EQ(in.state, State::kRecovered);
  for (Resolution r :
       {Resolution::kTruePositive, Resolution::kFalsePositive, Resolution::kDuplicate}) {
    Incident c = InState(State::kRecovered);
    ASSERT_TRUE(Transition(c, State::kClosed, "ayse", now, r).ok());
    EXPECT_EQ(c.resolution, r);
    EXPECT_EQ(c.times.closed, now);
  }
  Incident t = InState(State::kNew);
  EXPECT_FALSE(Transition(t, State::kTriage, "ayse", now, Resolution::kDuplicate).ok());
}

TEST(StateMachineTest, ReopenIsRecorded) {
  Incident in = InState(State::kRecovered);
  const absl::Time t0 = At("2026-11-28T10:00:00Z");
  ASSERT_TRUE(Transition(in, State::kClosed, "ayse", t0, Resolution::kTruePositive).ok());
  ASSERT_TRUE(Transition(in, State::kInvestigating, "can", t0 + absl::Hours(1), Resolution::kNone,
                         "attacker came back")
                  .ok());
  EXPECT_EQ(in.state, State::kInvestigating);
  EXPECT_EQ(in.resolution, Resolution::kNone);
  EXPECT_FALSE(IsSet(in.times.closed));
  EXPECT_EQ(in.timeline.back().kind, "reopened");
  EXPECT_EQ(in.timeline.back().actor, "can");
  EXPECT_NE(in.timeline.back().text.find("attacker came back"), std::string::npos);
}

// ---------- grouping ----------

struct BookFixture : public ::testing::Test {
  FakeClock clock{At("2026-11-28T10:00:00Z")};
  AuditLog audit;
  GroupingPolicy policy;
  std::unique_ptr<IncidentBook> book;
  void SetUp() override {
    policy.asset_criticality = {{"db01", 5}};
    book = std::make_unique<IncidentBook>(&Rsit(), &clock, policy, &audit);
  }
};

TEST_F(BookFixture, OneAttackerOnOneHostWithinTheWindowIsOneIncident) {
  const absl::Time t = clock.Now();
  IngestResult r1 = book->Ingest(SshAlert("a1", "203.0.113.7", "web01", t));
  ASSERT_EQ(r1.outcome, IngestResult::Outcome::kOpened);
  EXPECT_EQ(r1.incident_id, "INC-2026-0001");
  IngestResult r2 = book->Ingest(SshAlert("a2", "203.0.113.7", "web01", t + absl::Minutes(30)));
  EXPECT_EQ(r2.outcome, IngestResult::Outcome::kAttached);
  EXPECT_EQ(r2.incident_id, "INC-2026-0001");
  // The window runs from the latest alert: 80 minutes after the first is 50 after the second.
  IngestResult r3 = book->Ingest(SshAlert("a3", "203.0.113.7", "web01", t + absl::Minutes(80)));
  EXPECT_EQ(r3.incident_id, "INC-2026-0001");
  // Another attacker, another host, or past the window: new incidents.
  EXPECT_EQ(book->Ingest(SshAlert("b1", "198.51.100.9", "web01", t)).incident_id, "INC-2026-0002");
  EXPECT_EQ(book->Ingest(SshAlert("c1", "203.0.113.7", "db01", t)).incident_id, "INC-2026-0003");
  EXPECT_EQ(book->Ingest(SshAlert("d1", "203.0.113.7", "web01", t + absl::Hours(4))).outcome,
            IngestResult::Outcome::kOpened);
  // A resend of a known alert is recognised.
  IngestResult again = book->Ingest(SshAlert("a2", "203.0.113.7", "web01", t));
  EXPECT_EQ(again.outcome, IngestResult::Outcome::kAlreadyLinked);
  EXPECT_EQ(again.incident_id, "INC-2026-0001");

  const Incident* in = book->Find("INC-2026-0001");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->alerts.size(), 3u);
  EXPECT_EQ(in->rsit_class, "intrusion-attempts");
  EXPECT_EQ(in->rsit_type, "brute-force");
  EXPECT_EQ(in->severity, Severity::kHigh);
  EXPECT_EQ(in->times.detected, t);
  EXPECT_EQ(in->title, "SSH brute force (203.0.113.7 → web01)");
  EXPECT_EQ(in->event_refs, std::vector<std::string>{"agent-1:100"});
  EXPECT_EQ(book->Find("INC-2026-0003")->asset_criticality, 5);
  EXPECT_GT(book->Find("INC-2026-0003")->risk_score, in->risk_score);
}

TEST_F(BookFixture, OccurredIsTheLogTimeAndDetectedTheReceiveTime) {
  const absl::Time t = clock.Now();
  AlertInput late = SshAlert("a1", "203.0.113.7", "web01", t);
  late.occurred = t - absl::Hours(3);  // shipped three hours after it was logged
  const std::string id = book->Ingest(late).incident_id;
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(book->Find(id)->times.occurred, t - absl::Hours(3));
  EXPECT_EQ(book->Find(id)->times.detected, t);

  // An earlier log line attached later moves occurred back; one "from the future" (a host
  // clock ahead of the server's) counts from when it was received.
  AlertInput earlier = SshAlert("a2", "203.0.113.7", "web01", t + absl::Minutes(5));
  earlier.occurred = t - absl::Hours(4);
  book->Ingest(earlier);
  EXPECT_EQ(book->Find(id)->times.occurred, t - absl::Hours(4));
  AlertInput skewed = SshAlert("b1", "198.51.100.9", "web01", t);
  skewed.occurred = t + absl::Hours(1);
  EXPECT_EQ(book->Find(book->Ingest(skewed).incident_id)->times.occurred, t);

  // The log time survives the stored form.
  auto back = IncidentFromJson(nlohmann::json::parse(IncidentToJson(*book->Find(id)).dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->alerts[1].occurred, t - absl::Hours(4));
}

TEST_F(BookFixture, PolicyDecidesWhatOpens) {
  const absl::Time t = clock.Now();
  EXPECT_EQ(book->Ingest(SshAlert("low1", "203.0.113.7", "web01", t, "low")).outcome,
            IngestResult::Outcome::kIgnored);
  ASSERT_EQ(book->Ingest(SshAlert("hi1", "203.0.113.7", "web01", t)).outcome,
            IngestResult::Outcome::kOpened);
  // Below the threshold, but the same attack: it joins.
  EXPECT_EQ(book->Ingest(SshAlert("low2", "203.0.113.7", "web01", t, "low")).outcome,
            IngestResult::Outcome::kAttached);

  AlertInput ioc = SshAlert("ioc1", "192.0.2.66", "pc-3", t, "low");
  ioc.ioc_hit = true;
  ioc.ioc_confidence = 90;
  ioc.ioc_value = "192.0.2.66";
  EXPECT_EQ(book->Ingest(ioc).outcome, IngestResult::Outcome::kOpened);

  AlertInput by_rule = SshAlert("r1", "192.0.2.67", "pc-3", t, "informational");
  by_rule.rule_id = "siper-usom-notice";
  EXPECT_EQ(book->Ingest(by_rule).outcome, IngestResult::Outcome::kIgnored);

  GroupingPolicy strict;
  strict.min_level = "critical";
  strict.rule_ids = {"siper-usom-notice"};
  strict.ioc_hit_opens = false;
  strict.attach_below_threshold = false;
  IncidentBook other(&Rsit(), &clock, strict);
  EXPECT_EQ(other.Ingest(by_rule).outcome, IngestResult::Outcome::kOpened);
  EXPECT_EQ(other.Ingest(ioc).outcome, IngestResult::Outcome::kIgnored);
  EXPECT_EQ(other.Ingest(SshAlert("h", "203.0.113.7", "web01", t, "high")).outcome,
            IngestResult::Outcome::kIgnored);
}

TEST_F(BookFixture, AlertsWithoutSourceIpGroupByRuleAndHost) {
  const absl::Time t = clock.Now();
  AlertInput a = SshAlert("m1", "", "pc-9", t, "critical");
  a.fields.erase("source.ip");
  a.rule_id = "siper-malware-hash";
  AlertInput b = a;
  b.id = "m2";
  AlertInput c = a;
  c.id = "m3";
  c.rule_id = "siper-other";
  EXPECT_EQ(book->Ingest(a).outcome, IngestResult::Outcome::kOpened);
  EXPECT_EQ(book->Ingest(b).outcome, IngestResult::Outcome::kAttached);
  EXPECT_EQ(book->Ingest(c).outcome, IngestResult::Outcome::kOpened);
}

TEST_F(BookFixture, ClosedIncidentsDoNotCollectNewAlerts) {
  const absl::Time t = clock.Now();
  const std::string id = book->Ingest(SshAlert("a1", "203.0.113.7", "web01", t)).incident_id;
  ASSERT_TRUE(book->Transition(id, State::kClosed, "ayse", Resolution::kFalsePositive).ok());
  IngestResult r = book->Ingest(SshAlert("a2", "203.0.113.7", "web01", t + absl::Minutes(1)));
  EXPECT_EQ(r.outcome, IngestResult::Outcome::kOpened);
  EXPECT_NE(r.incident_id, id);
}

TEST_F(BookFixture, UnknownRuleClassificationFallsBackAndSaysSo) {
  AlertInput a = SshAlert("a1", "203.0.113.7", "web01", clock.Now());
  a.rsit_class = "bogus";
  const std::string id = book->Ingest(a).incident_id;
  const Incident* in = book->Find(id);
  EXPECT_EQ(in->rsit_class, "other");
  EXPECT_EQ(in->rsit_type, "undetermined");
  EXPECT_NE(in->timeline.front().text.find("bogus"), std::string::npos);
}

TEST_F(BookFixture, AttachAndDetach) {
  const absl::Time t = clock.Now();
  const std::string id = book->Ingest(SshAlert("a1", "203.0.113.7", "web01", t)).incident_id;
  AlertInput other = SshAlert("x1", "198.51.100.1", "pc-2", t, "low");
  other.fields["file.hash.sha256"] = std::string(64, 'e');
  other.agent_id = "agent-2";
  other.seq = 7;
  ASSERT_TRUE(book->Attach(id, other, "ayse").ok());
  const Incident* in = book->Find(id);
  EXPECT_EQ(in->alerts.size(), 2u);
  EXPECT_EQ(in->event_refs.size(), 2u);
  auto count = [&](ObservableKind k) {
    return std::count_if(in->observables.begin(), in->observables.end(),
                         [&](const Observable& o) { return o.kind == k; });
  };
  EXPECT_EQ(count(ObservableKind::kHash), 1);
  EXPECT_EQ(count(ObservableKind::kIp), 2);
  // The same alert cannot be in two incidents.
  const std::string id2 = *book->Create({.title = "manual"}, "ayse");
  absl::Status st = book->Attach(id2, other, "ayse");
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(st.message().find(id), std::string::npos);

  ASSERT_TRUE(book->Detach(id, "x1", "ayse").ok());
  EXPECT_EQ(in->alerts.size(), 1u);
  EXPECT_EQ(in->event_refs, std::vector<std::string>{"agent-1:100"});
  EXPECT_EQ(count(ObservableKind::kHash), 0);
  EXPECT_EQ(count(ObservableKind::kIp), 1);
  EXPECT_EQ(book->Detach(id, "x1", "ayse").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(book->Attach(id2, other, "ayse").ok());  // free again
  EXPECT_EQ(in->timeline.back().kind, "alert-detached");
}

TEST_F(BookFixture, MergeMovesEverythingAndClosesSourcesAsDuplicates) {
  const absl::Time t = clock.Now();
  const std::string a = book->Ingest(SshAlert("a1", "203.0.113.7", "web01", t)).incident_id;
  const std::string b = book->Ingest(SshAlert("b1", "203.0.113.8", "web01", t)).incident_id;
  AlertInput crit = SshAlert("c1", "203.0.113.9", "db01", t - absl::Hours(1), "critical");
  const std::string c = book->Ingest(crit).incident_id;
  ASSERT_TRUE(book->Update(b, "ayse", "incident.note",
                           [](Incident& in, absl::Time now) {
                             return AddNote(in, "same botnet", "ayse", now);
                           })
                  .ok());
  ASSERT_TRUE(book->Merge(a, {b, c}, "ayse").ok());
  const Incident* into = book->Find(a);
  EXPECT_EQ(into->alerts.size(), 3u);
  EXPECT_EQ(into->severity, Severity::kCritical);
  EXPECT_EQ(into->times.occurred, t - absl::Hours(1));
  EXPECT_EQ(into->asset_criticality, 5);
  EXPECT_EQ(into->notes.size(), 1u);
  EXPECT_EQ(into->timeline.back().kind, "merged");
  for (const std::string& s : {b, c}) {
    const Incident* src = book->Find(s);
    EXPECT_EQ(src->state, State::kClosed);
    EXPECT_EQ(src->resolution, Resolution::kDuplicate);
    EXPECT_EQ(src->merged_into, a);
    EXPECT_TRUE(src->alerts.empty());
  }
  // Alerts now belong to the target: a resend points there.
  EXPECT_EQ(book->Ingest(SshAlert("b1", "203.0.113.8", "web01", t)).incident_id, a);
  EXPECT_FALSE(book->Merge(a, {a}, "ayse").ok());
  EXPECT_EQ(book->Merge(a, {b}, "ayse").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(book->Merge(a, {"INC-2026-0099"}, "ayse").code(), absl::StatusCode::kNotFound);
}

TEST_F(BookFixture, SplitMovesAlertsAndTheirObservables) {
  const absl::Time t = clock.Now();
  const std::string id = book->Ingest(SshAlert("a1", "203.0.113.7", "web01", t)).incident_id;
  AlertInput two = SshAlert("a2", "203.0.113.7", "web01", t + absl::Minutes(5), "critical");
  two.fields["user.name"] = "admin";
  two.seq = 101;
  ASSERT_EQ(book->Ingest(two).incident_id, id);
  auto split = book->Split(id, {"a2"}, "Admin login after brute force", "ayse");
  ASSERT_TRUE(split.ok()) << split.status();
  const Incident* from = book->Find(id);
  const Incident* to = book->Find(*split);
  EXPECT_EQ(*split, "INC-2026-0002");
  ASSERT_EQ(from->alerts.size(), 1u);
  ASSERT_EQ(to->alerts.size(), 1u);
  EXPECT_EQ(to->alerts[0].id, "a2");
  EXPECT_EQ(to->severity, Severity::kCritical);
  EXPECT_EQ(to->rsit_class, from->rsit_class);
  EXPECT_EQ(to->event_refs, std::vector<std::string>{"agent-1:101"});
  EXPECT_EQ(from->event_refs, std::vector<std::string>{"agent-1:100"});
  auto users = [](const Incident* in) {
    std::set<std::string> u;
    for (const Observable& o : in->observables)
      if (o.kind == ObservableKind::kUser) u.insert(o.value);
    return u;
  };
  EXPECT_EQ(users(from), std::set<std::string>{"root"});
  EXPECT_EQ(users(to), std::set<std::string>{"admin"});
  // The attacker's address was in both halves, so both keep it.
  for (const Incident* in : {from, to}) {
    EXPECT_TRUE(std::any_of(in->observables.begin(), in->observables.end(),
                            [](const Observable& o) { return o.value == "203.0.113.7"; }));
  }
  EXPECT_EQ(book->Split(id, {"a1"}, "", "ayse").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(book->Split(id, {"zz"}, "", "ayse").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BookFixture, CreateValidatesAndNumbersPerYear) {
  auto bad = book->Create({.title = "x", .rsit_class = "fraud", .rsit_type = "spam"}, "ayse");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("phishing"), std::string::npos);
  EXPECT_FALSE(book->Create({.title = ""}, "ayse").ok());
  EXPECT_EQ(*book->Create({.title = "one"}, "ayse"), "INC-2026-0001");
  clock.Set(At("2027-01-01T00:00:01Z"));
  EXPECT_EQ(*book->Create({.title = "two"}, "ayse"), "INC-2027-0001");

  // Loading stored incidents continues the numbering.
  IncidentBook reloaded(&Rsit(), &clock);
  ASSERT_TRUE(reloaded.Load(book->List()).ok());
  EXPECT_EQ(*reloaded.Create({.title = "three"}, "ayse"), "INC-2027-0002");
  EXPECT_FALSE(reloaded.Load(book->List()).ok());  // duplicates refused
}

TEST_F(BookFixture, UpdateIsAllOrNothing) {
  const std::string id = *book->Create({.title = "x"}, "ayse");
  const size_t records = audit.records().size();
  absl::Status st = book->Update(id, "ayse", "incident.classify", [](Incident& in, absl::Time now) {
    return SetClassification(in, Rsit(), "fraud", "nope", "ayse", now);
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(book->Find(id)->rsit_class, "other");
  EXPECT_EQ(audit.records().size(), records);
  ASSERT_TRUE(book->Update(id, "ayse", "incident.classify",
                           [](Incident& in, absl::Time now) {
                             return SetClassification(in, Rsit(), "fraud", "phishing", "ayse", now);
                           })
                  .ok());
  EXPECT_EQ(book->Find(id)->rsit_type, "phishing");
  EXPECT_EQ(audit.records().size(), records + 1);
  EXPECT_EQ(audit.records().back().before["rsit_class"], "other");
  EXPECT_EQ(audit.records().back().after["rsit_class"], "fraud");
  EXPECT_EQ(audit.records().back().actor, "ayse");
  std::vector<std::string> changed = book->TakeChanged();
  EXPECT_EQ(changed, std::vector<std::string>{id});
  EXPECT_TRUE(book->TakeChanged().empty());
}

TEST_F(BookFixture, ExerciseIsClassTest) {
  const std::string id =
      *book->Create({.title = "tatbikat", .rsit_class = "test", .rsit_type = "test"}, "ayse");
  EXPECT_TRUE(book->Find(id)->exercise());
  Incident copy = *book->Find(id);
  EXPECT_FALSE(RecordUsomReport(copy, clock.Now(), "X", "ayse", clock.Now()).ok());
}

// ---------- deadlines ----------

TEST_F(BookFixture, UsomDeadlineDefaultIsImmediateOnInvestigatingWithHighSeverity) {
  DeadlinePolicy policy;
  const std::string id =
      book->Ingest(SshAlert("a1", "203.0.113.7", "web01", clock.Now())).incident_id;
  EXPECT_TRUE(book->Overdue(policy).empty());  // still new
  clock.Advance(absl::Minutes(10));
  ASSERT_TRUE(book->Transition(id, State::kTriage, "ayse").ok());
  clock.Advance(absl::Minutes(10));
  EXPECT_TRUE(book->Overdue(policy).empty());
  ASSERT_TRUE(book->Transition(id, State::kInvestigating, "ayse").ok());
  const absl::Time reached = clock.Now();
  EXPECT_TRUE(book->Overdue(policy).empty());  // due exactly now, not past
  clock.Advance(absl::Seconds(1));
  std::vector<Deadline> overdue = book->Overdue(policy);
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[0].kind, DeadlineKind::kUsom);
  EXPECT_EQ(overdue[0].due, reached);
  EXPECT_EQ(overdue[0].incident_id, id);

  // Notifications are produced once per deadline.
  std::vector<DeadlineNotification> n =
      DeadlinePassedNotifications(book->View(), policy, clock.Now(), {});
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].key, id + "/usom");
  EXPECT_EQ(n[0].rule_id, "siper-deadline-usom");
  EXPECT_EQ(n[0].level, "high");
  EXPECT_NE(n[0].message.find("siperctl report usom " + id), std::string::npos);
  EXPECT_TRUE(DeadlinePassedNotifications(book->View(), policy, clock.Now(), {n[0].key}).empty());

  // Reporting late is "missed"; on time would be "met".
  ASSERT_TRUE(book->Update(id, "ayse", "incident.usom-report",
                           [](Incident& in, absl::Time now) {
                             return RecordUsomReport(in, now, "USOM-2026-123", "ayse", now);
                           })
                  .ok());
  EXPECT_TRUE(book->Overdue(policy).empty());
  std::vector<Deadline> all = ComputeDeadlines(*book->Find(id), policy, clock.Now());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].status, DeadlineStatus::kMissed);
  EXPECT_EQ(book->Find(id)->usom_reference, "USOM-2026-123");
}

TEST_F(BookFixture, UsomDeadlineConfigurableAndSeverityRaisedLater) {
  DeadlinePolicy policy;
  policy.usom_delay = absl::Hours(8);
  const std::string id =
      book->Ingest(SshAlert("a1", "203.0.113.7", "web01", clock.Now(), "medium")).incident_id;
  EXPECT_EQ(id, "");  // medium does not open by default
  const std::string m = *book->Create({.title = "m", .severity = Severity::kMedium}, "ayse");
  ASSERT_TRUE(book->Transition(m, State::kTriage, "ayse").ok());
  ASSERT_TRUE(book->Transition(m, State::kInvestigating, "ayse").ok());
  clock.Advance(absl::Hours(1));
  EXPECT_FALSE(UsomDue(*book->Find(m), policy).has_value());  // medium: no USOM deadline
  ASSERT_TRUE(book->Update(m, "ayse", "incident.severity",
                           [](Incident& in, absl::Time now) {
                             return SetSeverity(in, Severity::kCritical, "ayse", now);
                           })
                  .ok());
  const absl::Time raised = clock.Now();
  EXPECT_EQ(*UsomDue(*book->Find(m), policy), raised + absl::Hours(8));
  clock.Advance(absl::Hours(8));
  EXPECT_TRUE(book->Overdue(policy).empty());
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(book->Overdue(policy).size(), 1u);
  policy.usom_enabled = false;
  EXPECT_TRUE(book->Overdue(policy).empty());
}

TEST_F(BookFixture, NoUsomDeadlineForFalsePositivesOrExercises) {
  DeadlinePolicy policy;
  const std::string fp = *book->Create({.title = "fp", .severity = Severity::kHigh}, "ayse");
  ASSERT_TRUE(book->Transition(fp, State::kTriage, "ayse").ok());
  ASSERT_TRUE(book->Transition(fp, State::kInvestigating, "ayse").ok());
  ASSERT_TRUE(book->Transition(fp, State::kClosed, "ayse", Resolution::kFalsePositive).ok());
  const std::string ex = *book->Create(
      {.title = "ex", .rsit_class = "test", .rsit_type = "test", .severity = Severity::kCritical},
      "ayse");
  ASSERT_TRUE(book->Transition(ex, State::kTriage, "ayse").ok());
  ASSERT_TRUE(book->Transition(ex, State::kInvestigating, "ayse").ok());
  clock.Advance(absl::Hours(1));
  EXPECT_TRUE(book->Overdue(policy).empty());
}

TEST_F(BookFixture, KvkkSeventyTwoHoursFromDetection) {
  DeadlinePolicy policy;
  const absl::Time detected = clock.Now() - absl::Hours(2);
  const std::string id = *book->Create({.title = "leak",
                                        .rsit_class = "information-content-security",
                                        .rsit_type = "data-leak",
                                        .severity = Severity::kMedium,
                                        .detected = detected,
                                        .personal_data_breach = true},
                                       "ayse");
  EXPECT_EQ(*KvkkDue(*book->Find(id), policy), detected + absl::Hours(72));
  clock.Set(detected + absl::Hours(72));
  EXPECT_TRUE(book->Overdue(policy).empty());
  clock.Advance(absl::Minutes(1));
  std::vector<Deadline> overdue = book->Overdue(policy);
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[0].kind, DeadlineKind::kKvkk);
  std::vector<DeadlineNotification> n =
      DeadlinePassedNotifications(book->View(), policy, clock.Now(), {});
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].key, id + "/kvkk");
  EXPECT_NE(n[0].message.find("KVKK"), std::string::npos);

  // A late first notice needs delay reasons.
  const absl::Time due = *KvkkDue(*book->Find(id), policy);
  absl::Status st =
      book->Update(id, "ayse", "incident.kvkk-notice", [&](Incident& in, absl::Time now) {
        return RecordKvkkNotice(in, NoticeKind::kFirst, now, "", {}, due, "ayse", now);
      });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("reasons"), std::string::npos);
  EXPECT_EQ(book->Update(id, "ayse", "incident.kvkk-notice",
                         [&](Incident& in, absl::Time now) {
                           return RecordKvkkNotice(in, NoticeKind::kFollowUp, now, "", {}, due,
                                                   "ayse", now);
                         })
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(book->Update(id, "ayse", "incident.kvkk-notice",
                           [&](Incident& in, absl::Time now) {
                             return RecordKvkkNotice(
                                 in, NoticeKind::kFirst, now, "KVKK-1",
                                 {"scope of the leak was still being established"}, due, "ayse",
                                 now);
                           })
                  .ok());
  EXPECT_TRUE(book->Overdue(policy).empty());
  std::vector<Deadline> d = ComputeDeadlines(*book->Find(id), policy, clock.Now());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status, DeadlineStatus::kMissed);
  EXPECT_TRUE(book->Update(id, "ayse", "incident.kvkk-notice",
                           [&](Incident& in, absl::Time now) {
                             return RecordKvkkNotice(in, NoticeKind::kFollowUp, now, "KVKK-1", {},
                                                     due, "ayse", now);
                           })
                  .ok());
  EXPECT_EQ(book->Find(id)->kvkk.notices.size(), 2u);
}

TEST_F(BookFixture, KvkkOnTimeIsMetWithoutReasons) {
  DeadlinePolicy policy;
  const std::string id = *book->Create({.title = "leak", .personal_data_breach = true}, "ayse");
  clock.Advance(absl::Hours(20));
  const absl::Time due = *KvkkDue(*book->Find(id), policy);
  ASSERT_TRUE(book->Update(id, "ayse", "incident.kvkk-notice",
                           [&](Incident& in, absl::Time now) {
                             return RecordKvkkNotice(in, NoticeKind::kFirst, now, "", {}, due,
                                                     "ayse", now);
                           })
                  .ok());
  clock.Advance(absl::Hours(100));
  std::vector<Deadline> d = ComputeDeadlines(*book->Find(id), policy, clock.Now());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status, DeadlineStatus::kMet);
}

// ---------- audit ----------

TEST_F(BookFixture, EveryChangeIsAuditedAndTheChainVerifies) {
  const std::string id =
      book->Ingest(SshAlert("a1", "203.0.113.7", "web01", clock.Now())).incident_id;
  ASSERT_TRUE(book->Transition(id, State::kTriage, "ayse").ok());
  ASSERT_TRUE(book->Transition(id, State::kInvestigating, "can").ok());
  ASSERT_TRUE(book->Transition(id, State::kClosed, "can", Resolution::kTruePositive).ok());
  ASSERT_TRUE(book->Transition(id, State::kTriage, "ayse").ok());
  const std::vector<AuditRecord>& r = audit.records();
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].action, "incident.open");
  EXPECT_TRUE(r[0].before.is_null());
  EXPECT_EQ(r[0].actor, "system");
  EXPECT_EQ(r[2].actor, "can");
  EXPECT_EQ(r[2].before["state"], "triage");
  EXPECT_EQ(r[2].after["state"], "investigating");
  EXPECT_EQ(r[4].action, "incident.reopen");
  EXPECT_TRUE(VerifyAuditChain(r, audit.head()).ok());
  // Failed operations leave no record.
  EXPECT_FALSE(book->Transition(id, State::kRecovered, "ayse").ok());
  EXPECT_EQ(audit.records().size(), 5u);
}

std::vector<AuditRecord> SampleChain() {
  AuditLog log;
  const absl::Time t = At("2026-11-28T10:00:00Z");
  for (int i = 0; i < 5; ++i) {
    log.Append(t + absl::Minutes(i), "ayse", "incident.transition", "INC-2026-0001",
               {{"state", "a"}}, {{"state", "b"}, {"i", i}});
  }
  return log.records();
}

TEST(AuditTest, DetectsEditedRecord) {
  std::vector<AuditRecord> r = SampleChain();
  ASSERT_TRUE(VerifyAuditChain(r).ok());
  r[2].after["state"] = "closed";
  absl::Status st = VerifyAuditChain(r);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("record 3"), std::string::npos) << st;
  EXPECT_NE(st.message().find("edited"), std::string::npos);
  r = SampleChain();
  r[1].actor = "mallory";
  EXPECT_FALSE(VerifyAuditChain(r).ok());
  r = SampleChain();
  r[4].time += absl::Seconds(1);
  EXPECT_FALSE(VerifyAuditChain(r).ok());
}

TEST(AuditTest, DetectsEditWithRecomputedHash) {
  // An attacker who recomputes the edited record's hash breaks the next link instead.
  std::vector<AuditRecord> r = SampleChain();
  r[1].actor = "mallory";
  r[1].hash = ComputeAuditHash(r[1]);
  absl::Status st = VerifyAuditChain(r);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("record 3"), std::string::npos) << st;
}

TEST(AuditTest, DetectsRemovedAndReorderedRecords) {
  std::vector<AuditRecord> r = SampleChain();
  r.erase(r.begin() + 2);
  absl::Status st = VerifyAuditChain(r);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("removed"), std::string::npos);
  r = SampleChain();
  std::swap(r[1], r[3]);
  EXPECT_FALSE(VerifyAuditChain(r).ok());
  // Removing the tail needs the head kept elsewhere.
  r = SampleChain();
  const std::string head = r.back().hash;
  r.pop_back();
  EXPECT_TRUE(VerifyAuditChain(r).ok());
  EXPECT_FALSE(VerifyAuditChain(r, head).ok());
}

TEST(AuditTest, JsonRoundTripKeepsTheChainAndRestoreVerifies) {
  std::vector<AuditRecord> r = SampleChain();
  std::vector<AuditRecord> back;
  for (const AuditRecord& rec : r) {
    auto parsed = AuditRecordFromJson(nlohmann::json::parse(AuditRecordToJson(rec).dump()));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    back.push_back(*parsed);
  }
  EXPECT_TRUE(VerifyAuditChain(back, r.back().hash).ok());
  auto log = AuditLog::Restore(back);
  ASSERT_TRUE(log.ok());
  log->Append(At("2026-11-28T11:00:00Z"), "can", "x", "y", nullptr, nullptr);
  EXPECT_TRUE(VerifyAuditChain(log->records()).ok());
  back[0].action = "tampered";
  EXPECT_FALSE(AuditLog::Restore(back).ok());
}

// FormatRfc3339 computes years 1970..9999 by hand; it must say what absl::FormatTime says.
TEST(TimeTest, Rfc3339ByArithmeticMatchesAbsl) {
  auto absl_text = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  };
  std::vector<absl::Time> times = {
      absl::UnixEpoch(),
      absl::FromUnixMillis(1),
      absl::FromUnixNanos(999'999),  // below a millisecond: truncated
      At("1972-02-29T23:59:59.999Z"),
      At("2000-02-29T12:00:00Z"),
      At("2000-03-01T00:00:00Z"),
      At("2024-12-31T23:59:59.999999Z"),
      At("2100-02-28T23:59:59Z"),
      At("2100-03-01T00:00:00Z"),
      At("9999-12-31T23:59:59.999999999Z"),
      At("1969-12-31T23:59:59.5Z"),                  // before 1970: absl's path
      absl::FromUnixSeconds(int64_t{253402300800}),  // year 10000: absl's path
      absl::InfiniteFuture(),
  };
  uint64_t x = 88172645463325252u;  // xorshift: times spread over 1970..9999
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    times.push_back(absl::FromUnixMillis(static_cast<int64_t>(x % 253402300800000u)) +
                    absl::Nanoseconds(static_cast<int64_t>((x >> 48) % 1000000)));
  }
  for (absl::Time t : times) EXPECT_EQ(FormatRfc3339(t), absl_text(t)) << absl_text(t);
  EXPECT_EQ(FormatRfc3339(absl::InfinitePast()), "");
}

// Append builds the canonical text and the stored text from parts (each JSON value dumped
// once); they must be byte for byte what the whole objects dump to, or records hashed now
// would not verify with records hashed before, nor read back.
TEST(AuditTest, AppendedTextAndHashAreThoseOfTheWholeObjects) {
  AuditLog log;
  const nlohmann::json nested = {{"alert", {{"id", "a\"1\\"}, {"n", 3}, {"x", nullptr}}},
                                 {"list", {1, 2.5, "ş", true}},
                                 {"empty", nlohmann::json::object()}};
  log.Append(At("2026-11-28T10:00:00.123456Z"), "CN=ayşe,O=Kurum", "incident.open", "INC-2026-0001",
             nullptr, nested);
  log.Append(At("2026-11-28T10:00:01Z"), "sys\ttem\n\x01", "a\u00e7tion\"", "", nested, "text");
  log.Append(At("1970-01-01T00:00:00Z"), "", "", "t", nlohmann::json::array(),
             18446744073709551615u);
  for (const AuditRecord& r : log.records()) {
    EXPECT_EQ(r.text, AuditRecordToJson(r).dump()) << "record " << r.seq;
    const nlohmann::json canonical = {{"seq", r.seq},       {"time", FormatRfc3339(r.time)},
                                      {"actor", r.actor},   {"action", r.action},
                                      {"target", r.target}, {"before", r.before},
                                      {"after", r.after}};
    EXPECT_EQ(r.hash, internal::Sha256Hex(absl::StrCat(r.prev_hash, "\n", canonical.dump())))
        << "record " << r.seq;
    EXPECT_EQ(ComputeAuditHash(r), r.hash);
  }
  EXPECT_TRUE(VerifyAuditChain(log.records()).ok());
  // The text is handed out once for the write; the log keeps what verifying needs.
  const std::string text = log.records()[1].text;
  const AuditRecord written = log.TakeForWrite(1);
  EXPECT_EQ(written.text, text);
  EXPECT_EQ(written.text, AuditRecordToJson(log.records()[1]).dump());
  EXPECT_TRUE(written.after.is_null());  // the text holds it
  EXPECT_TRUE(log.records()[1].text.empty());
  EXPECT_EQ(log.records()[1].before, nested);
  EXPECT_EQ(log.records()[1].hash, written.hash);
  EXPECT_TRUE(VerifyAuditChain(log.records()).ok());
}

// ---------- JSON ----------

// Dump copies plain ASCII strings without nlohmann's escaper; its text must be j.dump()'s.
TEST(JsonDumpTest, SameBytesAsNlohmann) {
  using nlohmann::json;
  std::vector<json> values = {
      json(),
      json::object(),
      json::array(),
      true,
      false,
      0,
      -1,
      int64_t{-9223372036854775807} - 1,
      uint64_t{18446744073709551615u},
      1.5,
      -0.0,
      1e300,
      0.1,
      std::nan(""),
      "",
      "plain text 123 ~!@#$%^&*()_+{}|:<>?`-=[];',./",
      "quote \" and backslash \\",
      "tab\tnewline\ncr\rbell\x07 del\x7f",
      "Türkçe: ğüşıöç İ — €",
      std::string("nul\0inside", 10),
      json::parse(R"({"b":[1,{"z":null,"a":"x"}],"a":{"ş":"ı","k":[]},"":0})"),
  };
  Incident in;
  in.id = "INC-2026-0001";
  in.title = "SSH brute force (203.0.113.7 → web01)";
  in.notes.push_back({At("2026-11-28T10:00:00Z"), "ayşe", "line\n\"two\""});
  values.push_back(IncidentToJson(in));
  LinkedAlert a;
  a.id = "a1";
  a.title = "Failed password for invalid user \\admin";
  values.push_back(LinkedAlertToJson(a));
  values.push_back(json{{"list", values}});  // everything nested once more
  for (const json& v : values) {
    EXPECT_EQ(Dump(v), v.dump()) << v.dump();
    std::string s = "prefix";
    AppendDump(v, &s);
    EXPECT_EQ(s, "prefix" + v.dump());
  }
  for (const json& v : values) {
    if (!v.is_string()) continue;
    std::string s;
    AppendJsonString(v.get<std::string>(), &s);
    EXPECT_EQ(s, v.dump());
  }
  // Text that is not UTF-8 is refused as nlohmann refuses it.
  const json bad = std::string("bad \xff byte");
  EXPECT_THROW((void)bad.dump(), json::type_error);
  EXPECT_THROW((void)Dump(bad), json::type_error);
  EXPECT_THROW((void)Dump(json{{"k", bad}}), json::type_error);
}

TEST_F(BookFixture, IncidentJsonRoundTrip) {
  AlertInput a = SshAlert("a1", "203.0.113.7", "web01", clock.Now());
  a.fields["file.hash.sha256"] = std::string(64, 'a');
  const std::string id = book->Ingest(a).incident_id;
  ASSERT_TRUE(book->Transition(id, State::kTriage, "ayse").ok());
  ASSERT_TRUE(book->Update(id, "ayse", "edit",
                           [](Incident& in, absl::Time now) {
                             SetPersonalDataBreach(in, true, "ayse", now);
                             in.kvkk.data_categories = {"kimlik", "iletişim"};
                             in.kvkk.people_count = 1200;
                             SetTlp(in, Tlp::kAmberStrict, "ayse", now);
                             return AddNote(in, "not: şüpheli", "ayse", now);
                           })
                  .ok());
  const Incident& in = *book->Find(id);
  nlohmann::json j = IncidentToJson(in);
  auto back = IncidentFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(IncidentToJson(*back), j);
  EXPECT_EQ(back->tlp, Tlp::kAmberStrict);
  EXPECT_EQ(back->kvkk.people_count, 1200);
  EXPECT_EQ(back->times.entered.size(), 2u);
  EXPECT_EQ(back->observables.size(), in.observables.size());
  EXPECT_FALSE(IncidentFromJson(nlohmann::json{{"id", "x"}, {"state", "bogus"}}).ok());
  EXPECT_FALSE(IncidentFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

TEST(BookEditTest, UpdateMayNotChangeAlertsBehindTheIndex) {
  FakeClock clock(testing::At("2026-11-28T10:00:00Z"));
  IncidentBook book(&testing::Rsit(), &clock);
  const std::string id =
      book.Ingest(testing::SshAlert("a1", "203.0.113.7", "web01", clock.Now())).incident_id;
  absl::Status st = book.Update(id, "ayse", "edit", [](Incident& in, absl::Time) {
    in.alerts.clear();
    return absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("detach"), std::string::npos);
  EXPECT_EQ(book.Find(id)->alerts.size(), 1u);
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

TEST(BookEditTest, ManualIncidentRiskFollowsSeverity) {
  FakeClock clock(testing::At("2026-11-28T10:00:00Z"));
  IncidentBook book(&testing::Rsit(), &clock);
  const std::string id =
      *book.Create({.title = "x", .severity = Severity::kCritical, .asset_criticality = 1}, "ayse");
  EXPECT_EQ(book.Find(id)->risk_score, 50);
  ASSERT_TRUE(book.Update(id, "ayse", "severity",
                          [](Incident& in, absl::Time now) {
                            return SetSeverity(in, Severity::kMedium, "ayse", now);
                          })
                  .ok());
  EXPECT_EQ(book.Find(id)->risk_score, 25);
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

// What the server does: persist after each operation, restart, reload, go on.
TEST(PersistenceTest, PendingWritesReloadIntoAnEqualBook) {
  FakeClock clock(testing::At("2026-11-28T10:00:00Z"));
  AuditLog audit;
  std::map<std::string, std::string> stored_incidents;
  std::map<uint64_t, std::string> stored_audit;
  std::map<std::string, std::vector<ReadItem>> stored_items;
  auto persist = [&](IncidentBook& book) {
    StoredWrite w = Serialize(book.TakePendingWrite());
    for (auto& [id, text] : w.incidents) stored_incidents[id] = text;
    for (const std::string& id : w.clear_items) stored_items.erase(id);
    for (StoredItem& item : w.items) {
      stored_items[item.incident_id].push_back({item.kind, item.seq, item.json});
    }
    for (auto& [seq, text] : w.audit) {
      ASSERT_EQ(stored_audit.count(seq), 0u) << "audit seq handed out twice";
      stored_audit[seq] = text;
    }
  };
  std::string id;
  {
    IncidentBook book(&testing::Rsit(), &clock, {}, &audit);
    id = book.Ingest(testing::SshAlert("a1", "203.0.113.7", "web01", clock.Now())).incident_id;
    persist(book);
    EXPECT_EQ(stored_incidents.size(), 1u);
    EXPECT_EQ(stored_audit.size(), 1u);
    ASSERT_TRUE(book.Transition(id, State::kTriage, "ayse").ok());
    ASSERT_TRUE(book.Create({.title = "manual"}, "ayse").ok());
    persist(book);
    EXPECT_EQ(stored_incidents.size(), 2u);
    EXPECT_EQ(stored_audit.size(), 3u);
    EXPECT_TRUE(book.TakePendingWrite().empty());
  }
  // Restart.
  std::vector<AuditRecord> records;
  for (const auto& [seq, text] : stored_audit) records.push_back(*AuditRecordFromJsonText(text));
  auto restored = AuditLog::Restore(records);
  ASSERT_TRUE(restored.ok()) << restored.status();
  std::vector<Incident> incidents;
  for (const auto& [iid, text] : stored_incidents) {
    bool old_format = true;
    auto in = AssembleIncident(text, stored_items[iid], &old_format);
    ASSERT_TRUE(in.ok()) << in.status();
    EXPECT_FALSE(old_format);
    incidents.push_back(*in);
  }
  IncidentBook book(&testing::Rsit(), &clock, {}, &*restored);
  ASSERT_TRUE(book.Load(incidents).ok());
  EXPECT_EQ(book.Find(id)->state, State::kTriage);
  // The resend of a stored alert is recognised after the restart.
  EXPECT_EQ(book.Ingest(testing::SshAlert("a1", "203.0.113.7", "web01", clock.Now())).outcome,
            IngestResult::Outcome::kAlreadyLinked);
  ASSERT_TRUE(book.Transition(id, State::kInvestigating, "ayse").ok());
  IncidentBook::PendingWrite w = book.TakePendingWrite();
  ASSERT_EQ(w.audit.size(), 1u);
  EXPECT_EQ(w.audit[0].seq, 4u);  // continues the trail
  EXPECT_EQ(*book.Create({.title = "next"}, "ayse"), "INC-2026-0003");
  EXPECT_FALSE(IncidentFromJsonText("{not json").ok());
  EXPECT_FALSE(AuditRecordFromJsonText("[").ok());
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

TEST(WorkflowTest, KvkkDetailsAndManualObservables) {
  Incident in;
  in.id = "INC-2026-0001";
  const absl::Time now = testing::At("2026-11-28T10:00:00Z");
  KvkkBreach d;
  d.people_count = 10;
  d.record_count = -2;
  EXPECT_FALSE(UpdateKvkkDetails(in, d, "ayse", now).ok());
  d.record_count = 20;
  d.breach_started = now;
  d.breach_ended = now - absl::Hours(1);
  EXPECT_FALSE(UpdateKvkkDetails(in, d, "ayse", now).ok());
  d.breach_ended = now + absl::Hours(1);
  d.data_categories = {"Sağlık"};
  d.special_categories = true;
  ASSERT_TRUE(UpdateKvkkDetails(in, d, "ayse", now).ok());
  EXPECT_EQ(in.kvkk.record_count, 20);
  EXPECT_TRUE(in.kvkk.special_categories);
  EXPECT_FALSE(in.kvkk.personal_data_breach);  // the flag is set on its own
  EXPECT_EQ(in.timeline.back().kind, "kvkk");

  EXPECT_FALSE(AddObservable(in, ObservableKind::kIp, "999.1.1.1", "ayse", now).ok());
  EXPECT_FALSE(AddObservable(in, ObservableKind::kHash, "abc", "ayse", now).ok());
  ASSERT_TRUE(AddObservable(in, ObservableKind::kHash, std::string(40, 'F'), "ayse", now).ok());
  ASSERT_TRUE(AddObservable(in, ObservableKind::kIp, "2001:db8::7", "ayse", now).ok());
  ASSERT_EQ(in.observables.size(), 2u);
  EXPECT_EQ(in.observables[0].hash_algo, "sha1");
  EXPECT_EQ(in.observables[0].value, std::string(40, 'f'));
  // Analyst-added observables survive the detaching of alerts.
  RemoveAlertsFromObservables(in.observables, {"a1"});
  EXPECT_EQ(in.observables.size(), 2u);
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

TEST(GroupIndexTest, OutOfOrderAlertsAndDetachedAlertsNoLongerGroup) {
  FakeClock clock(testing::At("2026-11-28T10:00:00Z"));
  IncidentBook book(&testing::Rsit(), &clock);
  const absl::Time t = clock.Now();
  const std::string id =
      book.Ingest(testing::SshAlert("a1", "203.0.113.7", "web01", t)).incident_id;
  ASSERT_EQ(book.Ingest(testing::SshAlert("a2", "203.0.113.7", "web01", t + absl::Minutes(50)))
                .incident_id,
            id);
  // An alert that arrives late but happened near the first one joins too.
  ASSERT_EQ(book.Ingest(testing::SshAlert("a3", "203.0.113.7", "web01", t - absl::Minutes(30)))
                .incident_id,
            id);
  ASSERT_TRUE(book.Detach(id, "a2", "ayse").ok());
  // 105 minutes after a1: only a2 (now detached) was within the window.
  IngestResult r =
      book.Ingest(testing::SshAlert("a4", "203.0.113.7", "web01", t + absl::Minutes(105)));
  EXPECT_EQ(r.outcome, IngestResult::Outcome::kOpened);
  EXPECT_NE(r.incident_id, id);
  // A reopened incident groups again.
  ASSERT_TRUE(book.Transition(id, State::kClosed, "ayse", Resolution::kTruePositive).ok());
  EXPECT_NE(book.Ingest(testing::SshAlert("a5", "203.0.113.7", "web01", t)).incident_id, id);
  ASSERT_TRUE(book.Transition(id, State::kTriage, "ayse").ok());
  EXPECT_EQ(book.Ingest(testing::SshAlert("a6", "203.0.113.7", "web01", t + absl::Minutes(1)))
                .incident_id,
            id);
}

}  // namespace
}  // namespace siper::incidents

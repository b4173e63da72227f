// IOC lookup inside the engine: the threat.* fields a hit adds before the
// Sigma rules run, the default IOC rules (rules/ruleset/ioc) on them, and the
// live IOC set / rule set swap seen by a LiveMatcher.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "rules/engine.h"
#include "rules/ioc.h"
#include "rules/live_rules.h"
#include "tests/rules/test_util.h"

namespace siper::rules {
namespace {

constexpr char kEicarSha256[] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
constexpr char kEicarMd5[] = "44d88612fea8a8f36de82e1278abb02f";

IocFeedOptions Feed(std::string name, std::string category, int confidence) {
  IocFeedOptions o;
  o.name = std::move(name);
  o.category = std::move(category);
  o.confidence = confidence;
  return o;
}

std::shared_ptr<const IocSet> Feeds() {
  IocSetBuilder b;
  EXPECT_TRUE(b.ImportText(IocFeedFormat::kUsomList,
                           "login-e-devlet-giris.example.com\r\nbank-phish.example.net/giris\r\n"
                           "198.51.100.23\r\n",
                           Feed("usom", "phishing", 80))
                  .ok());
  EXPECT_TRUE(
      b.ImportText(IocFeedFormat::kHashList,
                   std::string(kEicarSha256) + ";EICAR test file\n" + kEicarMd5 + ";EICAR\n",
                   Feed("malware-hashes", "malware", 90))
          .ok());
  EXPECT_TRUE(b.ImportText(IocFeedFormat::kValueList,
                           "# cobalt strike\nc2.badcorp.example.org\n198.51.100.23\n",
                           Feed("c2-list", "command and control", 60))
                  .ok());
  auto set = b.Build();
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : nullptr;
}

std::shared_ptr<const RuleSet> IocRules() {
  auto rules = RuleSet::Load(testing::SourceDir() / "rules" / "ruleset" / "ioc");
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *rules : nullptr;
}

std::string Get(const FieldMap& f, const std::string& k) {
  auto it = f.find(k);
  return it == f.end() ? "<absent>" : it->second;
}

TEST(IocEnrichment, ThreatFieldsOrderMostConfidentFirstAndJoinFeeds) {
  std::vector<IocHit> hits(3);
  hits[0] = {"usom", "b.example.com", IocKind::kDomain, "phishing", "event.original", "", 80, 0,
             ""};
  hits[1] = {"c2-list", "198.51.100.23", IocKind::kIpv4, "c2", "destination.ip", "", 60, 0, ""};
  hits[2] = {"usom", "a.example.com", IocKind::kDomain, "phishing", "url.original", "", 80, 0, ""};
  FieldMap f = ThreatFields(&hits);
  EXPECT_EQ(Get(f, "threat.feed.name"), "c2-list,usom");
  // Same confidence: ties by feed, then by value.
  EXPECT_EQ(Get(f, "threat.indicator.value"), "a.example.com");
  EXPECT_EQ(Get(f, "threat.indicator.type"), "domain");
  EXPECT_EQ(Get(f, "threat.indicator.category"), "phishing");
  EXPECT_EQ(Get(f, "threat.indicator.matched_field"), "url.original");
  EXPECT_EQ(Get(f, "threat.indicator.confidence"), "80");
  EXPECT_EQ(Get(f, "threat.indicator.count"), "3");
  EXPECT_EQ(f.size(), 7u);
  std::vector<IocHit> none;
  EXPECT_TRUE(ThreatFields(&none).empty());
}

TEST(IocEnrichment, MatcherAddsThreatFieldsBeforeTheRules) {
  auto rules = IocRules();
  ASSERT_NE(rules, nullptr);
  auto m = Matcher::Create(rules, Feeds());
  ASSERT_TRUE(m.ok()) << m.status();
  // An access log line: the URL's host is listed (field lookup) and the line holds it.
  FieldMap fields;
  auto found = (*m)->Process(
      R"(192.0.2.10 - - [28/Nov/2026:10:00:00 +0300] "GET http://login-e-devlet-giris.example.com/giris HTTP/1.1" 200 10 "-" "curl/8")",
      "/var/log/squid/access.log", InputFormat::kAuto, &fields);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(Get(fields, "threat.feed.name"), "usom");
  EXPECT_EQ(Get(fields, "threat.indicator.value"), "login-e-devlet-giris.example.com");
  EXPECT_EQ(Get(fields, "threat.indicator.type"), "domain");
  EXPECT_EQ(Get(fields, "threat.indicator.category"), "phishing");
  EXPECT_EQ(Get(fields, "threat.indicator.confidence"), "80");
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "58844d2e-c11e-4997-b4a8-df0f7e086beb");  // USOM IOC hit
  EXPECT_EQ((*found)[0].level, "high");
  EXPECT_EQ(Get((*found)[0].fields.ToMap(), "threat.indicator.value"),
            "login-e-devlet-giris.example.com");

  // Free text only: a syslog line naming a listed domain.
  found = (*m)->Process(
      "Nov 28 10:00:01 pc12 dnsmasq[901]: query[A] login-e-devlet-giris.example.com from 10.1.2.3",
      "/var/log/syslog", InputFormat::kAuto, &fields);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(Get(fields, "threat.indicator.matched_field"), "event.original");
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].title, "USOM IOC hit");

  // Nothing listed: no threat fields, no alert.
  found = (*m)->Process("Nov 28 10:00:02 pc12 dnsmasq[901]: query[A] www.example.com from 10.1.2.3",
                        "/var/log/syslog", InputFormat::kAuto, &fields);
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->empty());
  EXPECT_EQ(fields.count("threat.feed.name"), 0u);
}

TEST(IocEnrichment, HashHitIsCriticalAndTwoFeedsAreBothNamed) {
  auto m = Matcher::Create(IocRules(), Feeds());
  ASSERT_TRUE(m.ok()) << m.status();
  FieldMap fields;
  auto found = (*m)->Process(
      std::string(
          R"({"event":{"action":"created"},"file":{"path":"C:\\Users\\x\\eicar.com","hash":{"sha256":")") +
          kEicarSha256 + R"("}}})",
      "agent.json", InputFormat::kJson, &fields);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(Get(fields, "threat.feed.name"), "malware-hashes");
  EXPECT_EQ(Get(fields, "threat.indicator.type"), "sha256");
  EXPECT_EQ(Get(fields, "threat.indicator.matched_field"), "file.hash.sha256");
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "1160a2f4-32a8-44b9-acc1-4ebc47cbf11c");
  EXPECT_EQ((*found)[0].level, "critical");

  // 198.51.100.23 is on USOM's list (confidence 80) and the C2 list (60).
  found = (*m)->Process(R"({"destination":{"ip":"198.51.100.23","port":443}})", "fw.json",
                        InputFormat::kJson, &fields);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(Get(fields, "threat.feed.name"), "c2-list,usom");
  EXPECT_EQ(Get(fields, "threat.indicator.value"), "198.51.100.23");
  EXPECT_EQ(Get(fields, "threat.indicator.category"), "phishing");  // USOM's: more confident
  EXPECT_EQ(Get(fields, "threat.indicator.count"), "2");  // addresses are not free-text literals
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].title, "USOM IOC hit");  // not the generic rule as well

  // Any other feed: the generic rule, medium.
  found = (*m)->Process("Nov 28 10:00:03 pc12 proxy[77]: CONNECT c2.badcorp.example.org:443",
                        "/var/log/syslog", InputFormat::kAuto, &fields);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(Get(fields, "threat.feed.name"), "c2-list");
  EXPECT_EQ(Get(fields, "threat.indicator.category"), "command and control");
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "d67061aa-e60e-45ef-a6cf-d1b9ca548a67");
  EXPECT_EQ((*found)[0].level, "medium");
}

// An agent's (or any) JSON event that carries threat.* fields of its own must
// not pass for an IOC hit: the Matcher drops them before enrichment and rules.
TEST(IocEnrichment, EventProvidedThreatFieldsAreDroppedAndTriggerNoIocRule) {
  const std::string nested =
      R"({"message":"hello","threat":{"feed":{"name":"usom"},"indicator":{"value":")" +
      std::string(kEicarSha256) +
      R"(","type":"sha256","category":"malware","confidence":"100","count":"1"}}})";
  const std::string flat =
      R"({"message":"hello","threat.feed.name":"malware-hashes,usom","threat.indicator.type":"md5",)"
      R"("threat.indicator.value":"x","threat.enrichments":"y","threatened":"kept"})";
  for (bool with_ioc : {true, false}) {
    SCOPED_TRACE(with_ioc ? "with an IOC set" : "without an IOC set");
    auto m = Matcher::Create(IocRules(), with_ioc ? Feeds() : nullptr);
    ASSERT_TRUE(m.ok()) << m.status();
    for (const std::string& line : {nested, flat}) {
      SCOPED_TRACE(line);
      FieldMap fields;
      auto found = (*m)->Process(line, "agent.json", InputFormat::kJson, &fields);
      ASSERT_TRUE(found.ok()) << found.status();
      EXPECT_TRUE(found->empty()) << (*found)[0].rule_id;
      EXPECT_TRUE((*m)->LastMatchedRuleIds().empty());
      for (const auto& [name, value] : fields) EXPECT_FALSE(name.starts_with("threat.")) << name;
      EXPECT_EQ(Get(fields, "message"), "hello");  // the rest of the event is kept
      if (line == flat) {
        EXPECT_EQ(Get(fields, "threatened"), "kept");
      }
    }
  }
  // A real hit on an event that also claims a hash hit: the fields are the real
  // hit's, and only the USOM rule fires (not the critical malware-hash rule).
  auto m = Matcher::Create(IocRules(), Feeds());
  ASSERT_TRUE(m.ok()) << m.status();
  FieldMap fields;
  auto found = (*m)->Process(
      R"({"url":{"original":"http://login-e-devlet-giris.example.com/"},)"
      R"("threat":{"indicator":{"type":"sha256","confidence":"100"},"feed":{"name":"usom,x"}}})",
      "agent.json", InputFormat::kJson, &fields);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(Get(fields, "threat.indicator.type"), "domain");
  EXPECT_EQ(Get(fields, "threat.indicator.confidence"), "80");
  EXPECT_EQ(Get(fields, "threat.feed.name"), "usom");
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "58844d2e-c11e-4997-b4a8-df0f7e086beb");
  EXPECT_EQ((*found)[0].fields.at("threat.indicator.type"), "domain");
}

TEST(IocEnrichment, LiveMatcherTakesANewIocSetBetweenEventsAndKeepsCorrelation) {
  auto rules = RuleSet::LoadFromString(R"(
title: three failures
id: corr
correlation: {type: event_count, rules: [fail], group-by: [source.ip], timespan: 10m,
              condition: {gte: 3}}
level: high
---
title: fail
id: fail
name: fail
logsource: {product: linux}
detection: {s: {event.outcome: failure}, condition: s}
level: low
---
title: listed
id: listed
logsource: {}
detection: {s: {threat.feed.name|exists: true}, condition: s}
level: high
)",
                                       "live.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  LiveRuleSet live_rules(*rules);
  LiveIocSet live_ioc(nullptr);
  LiveMatcher m(&live_rules, &live_ioc);
  auto failed = [](int sec) {
    return "Dec 10 07:07:" + std::to_string(10 + sec) +
           " LabSZ sshd[1]: Failed password for root from 203.0.113.45 port 22 ssh2";
  };
  auto ids = [](const std::vector<Detection>& d) {
    std::set<std::string> sorted;
    for (const Detection& x : d) sorted.insert(x.rule_id);
    std::string out;
    for (const std::string& x : sorted) out += x + " ";
    return out;
  };
  auto r = m.Process(failed(1), "", InputFormat::kAuto);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ids(*r), "");  // "fail" only feeds the correlation
  r = m.Process(failed(2), "", InputFormat::kAuto);
  EXPECT_EQ(m.ioc_generation(), 1u);

  IocSetBuilder b;
  IocEntry meta;
  meta.feed = "own";
  meta.category = "brute force";
  ASSERT_TRUE(b.Add("203.0.113.45", meta));
  auto set = b.Build();
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(live_ioc.Swap(*set), 2u);
  // The third failure: listed now, and the correlation still counts the first two.
  r = m.Process(failed(3), "", InputFormat::kAuto);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(m.ioc_generation(), 2u);
  EXPECT_EQ(m.generation(), 1u);
  EXPECT_EQ(ids(*r), "corr listed ");

  // A new rule set starts correlation afresh and is reported by generation.
  EXPECT_EQ(live_rules.Swap(*rules), 2u);
  r = m.Process(failed(4), "", InputFormat::kAuto);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(m.generation(), 2u);
  EXPECT_EQ(ids(*r), "listed ");
}

}  // namespace
}  // namespace siper::rules

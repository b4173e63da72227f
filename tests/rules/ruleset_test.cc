// The default rule set (rules/ruleset/): it loads, every rule's test cases
// hold, and the shipped attack sample raises the alerts rules/README.md lists.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "rules/engine.h"
#include "tests/rules/test_util.h"

namespace siper::rules {
namespace {

std::shared_ptr<const RuleSet> DefaultRules() {
  static std::shared_ptr<const RuleSet> rules = [] {
    auto r = RuleSet::Load(testing::SourceDir() / "rules/ruleset");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  }();
  return rules;
}

TEST(DefaultRuleSetTest, LoadsWithoutSkippingAnything) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  EXPECT_GE(rules->rule_count(), 14u);
  for (const auto& d : rules->skipped()) ADD_FAILURE() << d.message;
  std::set<std::string> ids;
  for (const RuleInfo& r : rules->rules()) {
    EXPECT_TRUE(ids.insert(r.id).second) << "duplicate id " << r.id;
    EXPECT_FALSE(r.rsit_class.empty()) << r.path << ": needs siper.rsit.class";
    EXPECT_FALSE(r.rsit_type.empty()) << r.path << ": needs siper.rsit.type";
    EXPECT_FALSE(r.level.empty()) << r.path;
    bool attack_tag = false;
    for (const auto& t : r.tags) attack_tag |= t.rfind("attack.t", 0) == 0;
    EXPECT_TRUE(attack_tag) << r.path << ": needs a MITRE ATT&CK technique tag";
    if (!r.correlation) {
      bool must_match = false, must_not = false;
      for (const auto& t : r.tests) (t.must_match ? must_match : must_not) = true;
      EXPECT_TRUE(must_match && must_not)
          << r.path << ": needs siper.tests.match and siper.tests.no_match cases";
    }
  }
}

// Every test case of every rule, each on a fresh matcher so that suppression
// and correlation state do not leak between cases.
TEST(DefaultRuleSetTest, EveryRuleTestCaseHolds) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  int cases = 0;
  for (const RuleInfo& r : rules->rules()) {
    for (const RuleTestCase& tc : r.tests) {
      ++cases;
      auto matcher = Matcher::Create(rules);
      ASSERT_TRUE(matcher.ok()) << matcher.status();
      FieldMap fields;
      auto found = (*matcher)->Process(tc.line, tc.source, tc.format, &fields);
      ASSERT_TRUE(found.ok()) << r.path << ":" << tc.yaml_line << ": " << found.status();
      // Rules that only feed correlations raise no alert of their own, so
      // the test asks which conditions held.
      std::vector<std::string> matched = (*matcher)->LastMatchedRuleIds();
      bool hit = std::find(matched.begin(), matched.end(), r.id) != matched.end();
      std::string where = r.path + ":" + std::to_string(tc.yaml_line) + ": " + tc.line;
      if (!tc.must_match) {
        EXPECT_FALSE(hit) << "must not match: " << where;
        continue;
      }
      ASSERT_TRUE(hit) << "must match: " << where;
      for (const auto& [k, v] : tc.expect_fields) {
        auto it = fields.find(k);
        if (it == fields.end()) {
          ADD_FAILURE() << where << ": field " << k << " absent";
        } else {
          EXPECT_EQ(it->second, v) << where << ": field " << k;
        }
      }
    }
  }
  EXPECT_GT(cases, 40);
}

struct Alert {
  uint64_t line;
  std::string rule_id;
};

std::vector<Alert> RunFile(const std::shared_ptr<const RuleSet>& rules,
                           const std::filesystem::path& path, std::map<std::string, int>* per_rule,
                           std::vector<Detection>* all = nullptr) {
  std::vector<Alert> out;
  auto matcher = Matcher::Create(rules);
  EXPECT_TRUE(matcher.ok());
  std::ifstream in(path);
  std::string line;
  uint64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto found = (*matcher)->Process(line, path.string(), InputFormat::kAuto);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok()) continue;
    for (const Detection& d : *found) {
      out.push_back({n, d.rule_id});
      ++(*per_rule)[d.rule_id];
      if (all != nullptr) all->push_back(d);
    }
  }
  return out;
}

// Keep in step with the table in rules/README.md.
TEST(DefaultRuleSetTest, AttackSampleRaisesTheDocumentedAlerts) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::map<std::string, int> per_rule;
  std::vector<Alert> alerts =
      RunFile(rules, testing::SourceDir() / "deploy/samples/attack.log", &per_rule);
  std::multiset<std::pair<uint64_t, std::string>> got;
  for (const Alert& a : alerts) got.insert({a.line, a.rule_id});
  const std::string kFailed = "7e623b43-6405-435c-a416-65a247983365";
  const std::string kInvalid = "33ab720f-564c-4c07-9821-cdb20a512542";
  std::multiset<std::pair<uint64_t, std::string>> want;
  for (uint64_t l : {6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22}) want.insert({l, kFailed});
  for (uint64_t l : {7, 10, 13, 16, 19}) want.insert({l, kInvalid});
  want.insert({20, "d5c5f79f-af7a-436d-bc49-a04d1840d3d2"});  // brute force
  want.insert({23, "73c83f74-94a5-43c4-9229-ce2b700b035a"});  // accepted after failures
  want.insert({28, "f42beadc-b7a6-4f36-a57a-b677ff5b0bc7"});  // not in sudoers
  want.insert({29, "89ac9d02-5227-4eb6-a183-0fc8f4d19833"});  // sudo auth failure (pam)
  want.insert({30, "89ac9d02-5227-4eb6-a183-0fc8f4d19833"});  // sudo 3 incorrect passwords
  want.insert({31, "18de471b-ed34-4ea8-9eed-3bab792d885b"});  // sudo to a shell
  want.insert({32, "80807271-7e27-4157-b4c3-f296b702ba92"});  // su failure
  want.insert({36, "560b9f86-8671-4c0c-aaaf-bd9ddcd1872a"});  // SQL injection
  want.insert({37, "962d87cc-fc43-4c9f-8483-01c6120507e9"});  // path traversal
  want.insert({38, "ac8b9e0c-4356-4745-9201-babb2a43a016"});  // XSS
  EXPECT_EQ(got, want);
}

TEST(DefaultRuleSetTest, OpenSshBruteForceIsOneAlertPerWindow) {
  SIPER_REQUIRE_SHARED("logs/loghub/OpenSSH_2k.log");
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::map<std::string, int> per_rule;
  std::vector<Detection> all;
  RunFile(rules, testing::SharedData() / "logs/loghub/OpenSSH_2k.log", &per_rule, &all);
  const std::string kBrute = "d5c5f79f-af7a-436d-bc49-a04d1840d3d2";
  int from_main = 0;
  uint32_t folded = 0;
  for (const Detection& d : all) {
    if (d.rule_id != kBrute) continue;
    if (d.fields.at("source.ip") == "183.62.140.253") ++from_main;
    folded += d.count;
  }
  // Hundreds of failures from 183.62.140.253, but a handful of windows.
  EXPECT_GE(from_main, 1);
  EXPECT_LE(from_main, 20);
  EXPECT_LE(per_rule[kBrute], 40);
  EXPECT_GT(per_rule["7e623b43-6405-435c-a416-65a247983365"], 400);
}

TEST(DefaultRuleSetTest, QuietOnBenignBackground) {
  SIPER_REQUIRE_SHARED("logs/windows/nxlog-WinEvents.jsonl");
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::map<std::string, int> per_rule;
  RunFile(rules, testing::SharedData() / "logs/windows/nxlog-WinEvents.jsonl", &per_rule);
  EXPECT_TRUE(per_rule.empty());
}

}  // namespace
}  // namespace siper::rules

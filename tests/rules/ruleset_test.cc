// The default rule set (rules/ruleset/): it loads, every rule's test cases
// hold, and the shipped attack sample raises the alerts rules/README.md lists.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "absl/time/time.h"
#include "rules/engine.h"
#include "tests/rules/test_util.h"
#include "yaml-cpp/yaml.h"

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

// RSIT class -> types, from the incident taxonomy the server uses.
std::map<std::string, std::set<std::string>> RsitTaxonomy() {
  std::map<std::string, std::set<std::string>> out;
  YAML::Node root = YAML::LoadFile(testing::SourceDir() / "server/incidents/data/rsit.yaml");
  for (const YAML::Node& c : root["classes"]) {
    auto& types = out[c["id"].as<std::string>()];
    for (const YAML::Node& t : c["types"]) types.insert(t["id"].as<std::string>());
  }
  return out;
}

TEST(DefaultRuleSetTest, LoadsWithoutSkippingAnything) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  EXPECT_GE(rules->rule_count(), 40u);
  for (const auto& d : rules->skipped()) ADD_FAILURE() << d.message;
  const auto taxonomy = RsitTaxonomy();
  ASSERT_GT(taxonomy.size(), 5u);
  const std::set<std::string> levels = {"informational", "low", "medium", "high", "critical"};
  std::set<std::string> ids;
  size_t linux_web_fim = 0;
  for (const RuleInfo& r : rules->rules()) {
    for (const char* folder : {"/linux/", "/windows/", "/web/", "/fim/"}) {
      linux_web_fim += r.path.find(folder) != std::string::npos;
    }
    EXPECT_TRUE(ids.insert(r.id).second) << "duplicate id " << r.id;
    EXPECT_FALSE(r.rsit_class.empty()) << r.path << ": needs siper.rsit.class";
    EXPECT_FALSE(r.rsit_type.empty()) << r.path << ": needs siper.rsit.type";
    auto cls = taxonomy.find(r.rsit_class);
    EXPECT_TRUE(cls != taxonomy.end() && cls->second.count(r.rsit_type) == 1)
        << r.path << ": RSIT " << r.rsit_class << "/" << r.rsit_type
        << " is not in server/incidents/data/rsit.yaml";
    EXPECT_EQ(levels.count(r.level), 1u) << r.path << ": level '" << r.level << "'";
    bool attack_tag = false;
    for (const auto& t : r.tags) attack_tag |= t.rfind("attack.t", 0) == 0;
    // The server's health rules (ruleset/siper/) watch the platform, not an attacker: they
    // carry a technique only where one fits (a stopped agent is T1562.001).
    const bool health = r.path.find("/ruleset/siper/") != std::string::npos;
    EXPECT_TRUE(attack_tag || health) << r.path << ": needs a MITRE ATT&CK technique tag";
    if (!r.correlation) {
      bool must_match = false, must_not = false;
      for (const auto& t : r.tests) (t.must_match ? must_match : must_not) = true;
      EXPECT_TRUE(must_match && must_not)
          << r.path << ": needs siper.tests.match and siper.tests.no_match cases";
    }
  }
  // Issue 3: at least 40 rules for Linux, the web and file integrity alone.
  EXPECT_GE(linux_web_fim, 40u);
}

// Every test case of every rule (RunRuleTests, the code behind
// `siperctl rules test --rules DIR` without --input).
TEST(DefaultRuleSetTest, EveryRuleTestCaseHolds) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::vector<RuleTestResult> results = RunRuleTests(rules);
  int fim_cases = 0;
  for (const RuleTestResult& r : results) {
    EXPECT_TRUE(r.passed) << r.path << ":" << r.yaml_line << ": " << r.input << ": " << r.message;
    fim_cases += r.input.rfind("fim ", 0) == 0;
  }
  EXPECT_GT(results.size(), 150u);
  EXPECT_GT(fim_cases, 15);
}

// docs/default-rules.md lists every Linux, Windows, web and FIM rule with its level
// (the IOC and server-health folders document their own rules).
TEST(DefaultRuleSetTest, DocsListEveryRule) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::ifstream in(testing::SourceDir() / "docs/default-rules.md");
  ASSERT_TRUE(in) << "docs/default-rules.md is missing";
  std::map<std::string, std::string> rows;  // id -> table row
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("| `", 0) == 0) rows[l.substr(3, l.find('`', 3) - 3)] = l;
  }
  for (const RuleInfo& r : rules->rules()) {
    bool documented_here = false;
    for (const char* folder : {"/linux/", "/windows/", "/web/", "/fim/"}) {
      documented_here |= r.path.find(folder) != std::string::npos;
    }
    if (!documented_here) continue;
    auto it = rows.find(r.id);
    if (it == rows.end()) {
      ADD_FAILURE() << r.path << ": rule " << r.id << " is not in docs/default-rules.md";
      continue;
    }
    EXPECT_NE(it->second.find("| " + r.level + " |"), std::string::npos)
        << r.path << ": docs/default-rules.md gives another level than " << r.level;
  }
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

// Counts the alerts of `rule_id` over `lines`, fed to one matcher in order.
int CountAlerts(const std::shared_ptr<const RuleSet>& rules, const std::vector<std::string>& lines,
                const std::string& rule_id) {
  auto matcher = Matcher::Create(rules);
  EXPECT_TRUE(matcher.ok());
  int n = 0;
  for (const std::string& l : lines) {
    auto found = (*matcher)->Process(l, "test", InputFormat::kAuto);
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok()) continue;
    for (const Detection& d : *found) n += d.rule_id == rule_id;
  }
  return n;
}

std::string Access(const std::string& ip, int second, const std::string& request, int status) {
  char t[64];
  std::snprintf(t, sizeof t, "28/Nov/2026:10:%02d:%02d +0300", 20 + second / 60, second % 60);
  return ip + " - - [" + t + "] \"" + request + " HTTP/1.1\" " + std::to_string(status) +
         " 512 \"-\" \"Mozilla/5.0\"";
}

// The correlations of the new rules: each fires at its threshold, once per
// address and window, and not below it.
TEST(DefaultRuleSetTest, CorrelationsFireOncePerWindowAtTheirThreshold) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  const std::string kWebBrute = "6d19a20e-5567-4cd9-a1ae-6ae2a46f29fe";
  const std::string k404Burst = "41c181f5-13bc-4961-955e-70067e2effc0";
  const std::string kSweep = "3dbbd96b-f325-4e1a-9762-543e6ef3b387";
  const std::string k404 = "3747a964-4ee3-41f3-b856-b69917a93665";  // web_not_found.yml

  std::vector<std::string> wp;
  for (int i = 0; i < 30; ++i)
    wp.push_back(Access("203.0.113.9", i * 5, "POST /wp-login.php", 200));
  EXPECT_EQ(CountAlerts(rules, wp, kWebBrute), 1);  // 30 failures in 2.5 minutes: one alert
  wp.resize(9);
  EXPECT_EQ(CountAlerts(rules, wp, kWebBrute), 0);
  // Two addresses, ten failures each, interleaved: one alert each.
  std::vector<std::string> two;
  for (int i = 0; i < 10; ++i) {
    two.push_back(Access("203.0.113.9", i, "POST /wp-login.php", 200));
    two.push_back(Access("198.51.100.4", i, "GET /manager/html", 401));
  }
  EXPECT_EQ(CountAlerts(rules, two, kWebBrute), 2);

  std::vector<std::string> scan;
  for (int i = 0; i < 120; ++i) {
    scan.push_back(Access("203.0.113.10", i / 2, "GET /w" + std::to_string(i), 404));
  }
  EXPECT_EQ(CountAlerts(rules, scan, k404Burst), 1);  // 120 404s in one minute: one alert
  EXPECT_EQ(CountAlerts(rules, scan, k404), 0);       // single 404s stay silent
  scan.resize(39);
  EXPECT_EQ(CountAlerts(rules, scan, k404Burst), 0);

  std::vector<std::string> sweep;
  for (const char* user : {"admin", "oracle", "test", "ubuntu", "postgres", "git", "pi"}) {
    sweep.push_back(std::string("Nov 28 10:02:09 web1 sshd[3301]: Invalid user ") + user +
                    " from 203.0.113.45 port 40101");
  }
  EXPECT_EQ(CountAlerts(rules, sweep, kSweep), 1);
  sweep.resize(4);
  EXPECT_EQ(CountAlerts(rules, sweep, kSweep), 0);
  // One user name tried again and again is brute force, not a sweep.
  std::vector<std::string> same(12,
                                "Nov 28 10:02:09 web1 sshd[3301]: Failed password for root "
                                "from 203.0.113.45 port 40101 ssh2");
  EXPECT_EQ(CountAlerts(rules, same, kSweep), 0);

  // Windows (NXLog JSON): failed logons from one address; many accounts is spraying.
  const std::string kWinBrute = "5a6d749f-3735-4720-a88d-c9a0c278feb3";
  const std::string kWinSpray = "0f6cf7bb-8c27-4776-a9d2-936fb86cf497";
  auto logon_failure = [](const std::string& ip, int second, const std::string& user) {
    char t[32];
    std::snprintf(t, sizeof t, "2026-11-28 10:%02d:%02d", second / 60, second % 60);
    return std::string(R"({"EventTime":")") + t +
           R"(","Hostname":"PC-MALI-01","EventID":4625,"Channel":"Security",)"
           R"("SourceName":"Microsoft-Windows-Security-Auditing","TargetUserName":")" +
           user + R"(","IpAddress":")" + ip + R"(","Status":"0xc000006d"})";
  };
  std::vector<std::string> rdp;
  for (int i = 0; i < 25; ++i) rdp.push_back(logon_failure("203.0.113.40", i * 10, "ahmet"));
  EXPECT_EQ(CountAlerts(rules, rdp, kWinBrute), 1);  // 25 in four minutes: one alert
  EXPECT_EQ(CountAlerts(rules, rdp, kWinSpray), 0);  // one account: not spraying
  rdp.resize(9);
  EXPECT_EQ(CountAlerts(rules, rdp, kWinBrute), 0);
  std::vector<std::string> spray;
  for (const char* user : {"ahmet", "ayse", "mehmet", "fatma", "ali", "zeynep"}) {
    spray.push_back(logon_failure("203.0.113.41", static_cast<int>(spray.size()), user));
  }
  EXPECT_EQ(CountAlerts(rules, spray, kWinSpray), 1);
  spray.resize(4);
  EXPECT_EQ(CountAlerts(rules, spray, kWinSpray), 0);
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
  // root, admin, oracle, test, then ubuntu: the fifth user name.
  want.insert({16, "3dbbd96b-f325-4e1a-9762-543e6ef3b387"});  // user-name sweep
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
  // One alert per address and window: two alerts for one address are at
  // least a window (5 minutes) apart in event time.
  std::map<std::string, std::vector<std::string>> times;
  for (const Detection& d : all) {
    if (d.rule_id == kBrute) {
      times[std::string(d.fields.at("source.ip"))].emplace_back(d.fields.at("@timestamp"));
    }
  }
  for (auto& [ip, ts] : times) {
    for (size_t i = 1; i < ts.size(); ++i) {
      absl::Time a, b;
      std::string err;
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, ts[i - 1], &a, &err)) << ts[i - 1];
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, ts[i], &b, &err)) << ts[i];
      EXPECT_GE(b - a, absl::Minutes(5)) << ip << ": " << ts[i - 1] << " then " << ts[i];
    }
  }
}

// The whole default set over every real log in ../shared/data/logs: no line
// fails, and the counts are those of a quiet day with the attacks the data
// README describes, not of a rule that matches everything.
TEST(DefaultRuleSetTest, RealLogsGiveSaneAlertCounts) {
  SIPER_REQUIRE_SHARED("logs/loghub/OpenSSH_2k.log");
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::map<std::string, std::string> level;
  for (const RuleInfo& r : rules->rules()) level[r.id] = r.level;
  std::map<std::string, std::map<std::string, int>> per_file;  // file -> rule -> alerts
  int files = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(testing::SharedData() / "logs")) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path());
    uint64_t lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    std::map<std::string, int>& per_rule = per_file[entry.path().filename().string()];
    RunFile(rules, entry.path(), &per_rule);  // fails the test on any line error
    for (const auto& [id, n] : per_rule) {
      // Low and informational rules are per-event raw material (a failed
      // login each); nothing may fire on most lines, and anything above low
      // stays rare.
      const bool raw = level[id] == "low" || level[id] == "informational";
      EXPECT_LE(static_cast<uint64_t>(n), raw ? lines / 2 : lines / 20)
          << entry.path() << ": rule " << id << " (" << level[id] << ") " << n << " alerts on "
          << lines << " lines";
    }
  }
  EXPECT_GE(files, 3);
  const auto& ssh = per_file["OpenSSH_2k.log"];
  EXPECT_GE(ssh.count("d5c5f79f-af7a-436d-bc49-a04d1840d3d2"), 1u);  // SSH brute force
  const auto& lnx = per_file["Linux_2k.log"];
  EXPECT_GT(lnx.count("82e927f4-b2c8-471c-b50f-2a9fe8b99851")
                ? lnx.at("82e927f4-b2c8-471c-b50f-2a9fe8b99851")
                : 0,
            300);                                                    // PAM failures
  EXPECT_GE(lnx.count("5e446a6c-b138-4d58-9024-8a441c6a983d"), 1u);  // PAM brute force
  // klogind "Authentication failed from IP" (23 lines).
  EXPECT_EQ(lnx.count("df1a5d44-d8e5-4514-9c38-e38624935206")
                ? lnx.at("df1a5d44-d8e5-4514-9c38-e38624935206")
                : 0,
            23);
  // No web or file-integrity rule fires on syslog; on the Windows events only the
  // one real failed logon (4625, administrator from 172.16.20.11).
  for (const RuleInfo& r : rules->rules()) {
    if (r.path.find("/web/") == std::string::npos && r.path.find("/fim/") == std::string::npos)
      continue;
    EXPECT_EQ(ssh.count(r.id) + lnx.count(r.id), 0u) << r.path;
  }
  EXPECT_EQ(per_file["nxlog-WinEvents.jsonl"],
            (std::map<std::string, int>{{"a971ddec-210b-4b66-8e83-ac3b00c5f087", 1}}));
  for (const auto& [file, per_rule] : per_file) {
    std::string summary;
    for (const auto& [id, n] : per_rule)
      summary += "\n  " + id + " (" + level[id] + "): " + std::to_string(n);
    std::cout << file << ":" << (summary.empty() ? " no alerts" : summary) << "\n";
  }
}

TEST(DefaultRuleSetTest, QuietOnBenignBackground) {
  SIPER_REQUIRE_SHARED("logs/windows/nxlog-WinEvents.jsonl");
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  std::map<std::string, int> per_rule;
  std::vector<Detection> all;
  RunFile(rules, testing::SharedData() / "logs/windows/nxlog-WinEvents.jsonl", &per_rule, &all);
  // A workstation's ordinary day: its one failed logon is the low raw-material
  // alert, with the peer and the account; nothing an analyst must look at now.
  EXPECT_EQ(per_rule, (std::map<std::string, int>{{"a971ddec-210b-4b66-8e83-ac3b00c5f087", 1}}));
  for (const Detection& d : all) {
    EXPECT_EQ(d.level, "low") << d.rule_id;
    const FieldMap fields = d.fields.ToMap();
    EXPECT_EQ(fields.count("source.ip") ? fields.at("source.ip") : "", "172.16.20.11");
    EXPECT_EQ(fields.count("user.name") ? fields.at("user.name") : "", "administrator");
  }
}

}  // namespace
}  // namespace siper::rules

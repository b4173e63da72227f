// siperctl rules test / lint, through the same CLI11 wiring siperctl uses.
#include "cli/rules_command.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/rules/test_util.h"

namespace siper::cli {
namespace {

using rules::testing::SourceDir;

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(RulesCommandTest, TestJsonOnAttackSample) {
  RulesTestOptions o;
  o.rules_dir = (SourceDir() / "rules/ruleset").string();
  o.input = (SourceDir() / "deploy/samples/attack.log").string();
  o.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  std::vector<nlohmann::json> alerts = JsonLines(out.str());
  ASSERT_FALSE(alerts.empty());
  bool sqli = false;
  for (const auto& a : alerts) {
    ASSERT_TRUE(a.contains("line") && a["line"].is_number_unsigned());
    ASSERT_TRUE(a["rule_id"].is_string());
    ASSERT_TRUE(a["title"].is_string());
    ASSERT_TRUE(a["level"].is_string());
    ASSERT_TRUE(a["fields"].is_object());
    if (a["rule_id"] == "560b9f86-8671-4c0c-aaaf-bd9ddcd1872a") {
      sqli = true;
      EXPECT_EQ(a["line"], 36);
      EXPECT_EQ(a["fields"]["source.ip"], "198.51.100.77");
    }
  }
  EXPECT_TRUE(sqli);
}

TEST(RulesCommandTest, HumanTableEscapesControlCharacters) {
  std::filesystem::path tmp = std::filesystem::temp_directory_path() / "siper_rules_cmd_test.log";
  {
    std::ofstream f(tmp);
    f << "203.0.113.5 - - [28/Nov/2026:10:00:00 +0000] \"GET /x?a=../../etc/passwd\x1b[2J "
         "HTTP/1.1\" 200 1 \"-\" \"-\"\n";
  }
  RulesTestOptions o;
  o.rules_dir = (SourceDir() / "rules/ruleset").string();
  o.input = tmp.string();
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  EXPECT_EQ(out.str().find('\x1b'), std::string::npos);
  EXPECT_NE(out.str().find("\\x1b"), std::string::npos) << out.str();
  std::filesystem::remove(tmp);
}

// Health events saved as JSON lines match the server's rules only when decoded as source
// siper:health, as the server does for its own events.
TEST(RulesCommandTest, SourceOptionTestsHealthRules) {
  std::filesystem::path tmp = std::filesystem::temp_directory_path() / "siper_rules_health.jsonl";
  {
    std::ofstream f(tmp);
    f << R"({"@timestamp":"2026-11-28T10:00:00.000Z","event":{"module":"siper",)"
      << R"("dataset":"siper.health","action":"disk_nearly_full"},"siper":{"disk":{"free_bytes":5}}})"
      << "\n";
  }
  RulesTestOptions o;
  o.rules_dir = (SourceDir() / "rules/ruleset").string();
  o.input = tmp.string();
  o.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  EXPECT_TRUE(JsonLines(out.str()).empty()) << out.str();
  o.source = "siper:health";
  std::ostringstream out2;
  EXPECT_EQ(RunRulesTest(o, out2, err), 0) << err.str();
  std::vector<nlohmann::json> alerts = JsonLines(out2.str());
  ASSERT_EQ(alerts.size(), 1u) << out2.str();
  EXPECT_EQ(alerts[0]["rule_id"], "4eeb3c0a-14bd-47f1-8821-98c7a3f5fa53");
  EXPECT_EQ(alerts[0]["level"], "high");
  std::filesystem::remove(tmp);
}

TEST(RulesCommandTest, ThroughCli11) {
  CLI::App app{"siperctl"};
  bool global_json = false;
  app.add_flag("--json", global_json);
  app.fallthrough();
  CLI::App* rules = app.add_subcommand("rules");
  rules->require_subcommand(1);
  AddRulesCommands(*rules);
  std::string dir = (SourceDir() / "rules/ruleset").string();
  std::vector<std::string> args = {"siperctl", "rules", "lint", "--rules", dir, "--json"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  testing::internal::CaptureStdout();
  EXPECT_NO_THROW(app.parse(static_cast<int>(argv.size()), argv.data()));
  std::string out = testing::internal::GetCapturedStdout();
  std::vector<nlohmann::json> recs = JsonLines(out);
  EXPECT_GE(recs.size(), 14u);
  for (const auto& r : recs) {
    EXPECT_EQ(r["status"], "ok") << r.dump();
    EXPECT_TRUE(r.contains("path") && r.contains("rule_id") && r.contains("message"));
  }
}

TEST(RulesCommandTest, ErrorsExitNonZero) {
  std::ostringstream out, err;
  RulesTestOptions o;
  o.rules_dir = "/nonexistent/rules";
  o.input = (SourceDir() / "deploy/samples/attack.log").string();
  EXPECT_NE(RunRulesTest(o, out, err), 0);
  EXPECT_NE(err.str().find("/nonexistent/rules"), std::string::npos);
  EXPECT_TRUE(out.str().empty());

  std::filesystem::path dir = std::filesystem::temp_directory_path() / "siper_lint_bad";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "bad.yml");
    f << "title: bad\nid: x\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a|nosuchmod: "
         "1\n  condition: sel\n";
    std::ofstream g(dir / "unsupported.yml");
    g << "title: u\nid: y\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a|expand: '%x%'\n "
         " condition: sel\n";
  }
  std::ostringstream lout, lerr;
  EXPECT_EQ(RunRulesLint(dir.string(), true, lout, lerr), 1);
  std::vector<nlohmann::json> recs = JsonLines(lout.str());
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["status"], "error");
  EXPECT_NE(recs[0]["message"].get<std::string>().find("bad.yml:7"), std::string::npos)
      << recs[0].dump();
  EXPECT_EQ(recs[1]["status"], "unsupported");
  std::filesystem::remove_all(dir);
}

// One rule with an error in a folder does not stop the others from matching the
// input (a large third-party set): it is named on stderr and left out. Testing the
// folder's own cases (no --input) fails instead.
TEST(RulesCommandTest, RuleWithAnErrorIsNamedAndLeftOut) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "siper_rules_one_bad";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::path input = dir / "input.log";
  {
    std::ofstream(dir / "bad.yml")
        << "title: bad\nid: x\nlogsource:\n  product: linux\ndetection:\n  sel:\n"
           "    a|nosuchmod: 1\n  condition: sel\n";
    std::ofstream(dir / "good.yml")
        << "title: good\nid: 6f1a2b3c-0000-4000-8000-000000000001\nlogsource:\n"
           "  product: linux\ndetection:\n  sel:\n    message|contains: probe-text\n"
           "  condition: sel\nlevel: low\n";
    std::ofstream(input) << "Nov 28 10:00:00 pc12 app[42]: probe-text here\n";
  }
  RulesTestOptions o;
  o.rules_dir = dir.string();
  o.input = input.string();
  o.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  std::vector<nlohmann::json> alerts = JsonLines(out.str());
  ASSERT_EQ(alerts.size(), 1u) << out.str();
  EXPECT_EQ(alerts[0]["rule_id"], "6f1a2b3c-0000-4000-8000-000000000001");
  EXPECT_NE(err.str().find("error, rule not loaded: "), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("bad.yml:7"), std::string::npos) << err.str();

  o.input.clear();
  std::ostringstream out2, err2;
  EXPECT_EQ(RunRulesTest(o, out2, err2), 2);
  EXPECT_NE(err2.str().find("1 rules with errors were not tested"), std::string::npos)
      << err2.str();
  std::filesystem::remove_all(dir);
}

// --format fim replays FIM observations: `events search --json` records of
// file events, or bare objects with the same keys.
TEST(RulesCommandTest, FimInput) {
  std::filesystem::path tmp = std::filesystem::temp_directory_path() / "siper_rules_fim.jsonl";
  {
    std::ofstream f(tmp);
    f << R"({"agent_id":"pc-17","seq":4,"time":"2026-11-28T10:00:01Z","agent_time":"2026-11-28T10:00:00Z","source":"fim","line":"/etc/sudoers","file":{"path":"/etc/sudoers","size":41,"mode":33056,"uid":0,"gid":0,"owner":"root","group":"root","mtime":"","sha256":")"
      << std::string(64, 'b') << R"(","change":"FILE_CHANGE_MODIFIED"},"fields":{}})"
      << "\n"
      << R"({"path":"/tmp/eicar.com","change":"added","size":68,"mode":"0644","sha256":"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"})"
      << "\n"
      << R"({"path":"/etc/shadow","change":"baseline","mode":"0640"})"
      << "\n";
  }
  RulesTestOptions o;
  o.rules_dir = (SourceDir() / "rules/ruleset").string();
  o.input = tmp.string();
  o.format = "fim";
  o.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  std::vector<nlohmann::json> alerts = JsonLines(out.str());
  ASSERT_EQ(alerts.size(), 2u) << out.str();
  EXPECT_EQ(alerts[0]["line"], 1);
  EXPECT_EQ(alerts[0]["title"], "sudo rules changed (/etc/sudoers, /etc/sudoers.d)");
  EXPECT_EQ(alerts[0]["fields"]["file.mode"], "0440");
  EXPECT_EQ(alerts[0]["fields"]["file.owner"], "root");
  EXPECT_EQ(alerts[0]["fields"]["event.action"], "modified");
  EXPECT_EQ(alerts[1]["line"], 2);
  EXPECT_EQ(alerts[1]["title"], "Anti-malware test file (EICAR) written to disk");

  // A line that is not an observation is an error naming the input and line.
  {
    std::ofstream f(tmp, std::ios::app);
    f << R"({"path":"/etc/passwd","change":"renamed"})"
      << "\n";
  }
  std::ostringstream out2, err2;
  EXPECT_EQ(RunRulesTest(o, out2, err2), 1);
  EXPECT_NE(err2.str().find(tmp.string() + ":4: unknown file change 'renamed'"), std::string::npos)
      << err2.str();
  std::filesystem::remove(tmp);
}

// Without --input, `rules test` runs the rules' own test cases.
TEST(RulesCommandTest, RunsTheRulesOwnTestCases) {
  RulesTestOptions o;
  o.rules_dir = (SourceDir() / "rules/ruleset").string();
  o.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunRulesTest(o, out, err), 0) << err.str();
  std::vector<nlohmann::json> recs = JsonLines(out.str());
  EXPECT_GT(recs.size(), 150u);
  bool fim = false;
  for (const auto& r : recs) {
    EXPECT_EQ(r["result"], "pass") << r.dump();
    fim |= r["input"].get<std::string>().rfind("fim ", 0) == 0;
  }
  EXPECT_TRUE(fim);

  // A rule whose test case is wrong fails the run and names the file and line.
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "siper_rules_selftest";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "passwd.yml");
    f << "title: passwd changed\nid: 11111111-2222-3333-4444-555555555555\n"
         "logsource:\n  product: siper\n  service: fim\n  category: file_change\n"
         "detection:\n  sel:\n    file.path: /etc/passwd\n  condition: sel\n"
         "siper:\n  tests:\n    match:\n"
         "      - fim: {path: /etc/passwd, change: modified}\n"
         "      - fim: {path: /etc/passwd, change: baseline}\n"
         "    no_match:\n"
         "      - fim: {path: /etc/group, change: modified}\n";
  }
  o.rules_dir = dir.string();
  o.json = false;
  std::ostringstream out2, err2;
  EXPECT_EQ(RunRulesTest(o, out2, err2), 1);
  EXPECT_NE(out2.str().find("3 test cases, 2 passed, 1 failed"), std::string::npos) << out2.str();
  EXPECT_NE(
      err2.str().find("passwd.yml:15: did not match, but must match: fim baseline /etc/passwd"),
      std::string::npos)
      << err2.str();

  // A malformed fim case is a rule error with its file and line.
  {
    std::ofstream f(dir / "passwd.yml");
    f << "title: passwd changed\nid: 11111111-2222-3333-4444-555555555555\n"
         "logsource:\n  product: siper\n  service: fim\n"
         "detection:\n  sel:\n    file.path: /etc/passwd\n  condition: sel\n"
         "siper:\n  tests:\n    match:\n"
         "      - fim: {path: /etc/passwd, change: modified, mode: '0999'}\n";
  }
  std::ostringstream out3, err3;
  EXPECT_EQ(RunRulesTest(o, out3, err3), 2);
  EXPECT_NE(err3.str().find("passwd.yml:13"), std::string::npos) << err3.str();
  EXPECT_NE(err3.str().find("fim.mode '0999'"), std::string::npos) << err3.str();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace siper::cli

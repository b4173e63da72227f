// Sigma constructs that other SigmaHQ snapshots and hand-written rules use, beyond
// the snapshot in ../shared/data: rule collections, Sigma 2 metric correlations,
// modifier chains, and every way a rule file can be broken. `rules lint` must say
// ok, unsupported (naming the construct) or error (file:line and what is wrong).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "rules/engine.h"

namespace siper::rules {
namespace {

namespace fs = std::filesystem;

class SigmaVariantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("siper-sigma-variants-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  // Lint diagnostics of one file, in order.
  std::vector<RuleDiagnostic> LintOf(const std::string& name) {
    std::vector<RuleDiagnostic> out;
    for (RuleDiagnostic& d : RuleSet::Lint(dir_)) {
      if (fs::path(d.path).filename() == name) out.push_back(std::move(d));
    }
    return out;
  }
  // True when the rules in `yaml` raise at least one alert on the JSON `event`.
  static bool Matches(const std::string& yaml, const std::string& event) {
    auto rs = RuleSet::LoadFromString(yaml, "test.yml");
    EXPECT_TRUE(rs.ok()) << rs.status();
    if (!rs.ok()) return false;
    auto m = Matcher::Create(*rs);
    EXPECT_TRUE(m.ok());
    auto found = (*m)->Process(event, "", InputFormat::kJson);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() && !found->empty();
  }
  fs::path dir_;
};

constexpr RuleDiagnostic::Status kOk = RuleDiagnostic::Status::kOk;
constexpr RuleDiagnostic::Status kUnsupported = RuleDiagnostic::Status::kUnsupported;
constexpr RuleDiagnostic::Status kError = RuleDiagnostic::Status::kError;

const char kBase[] =
    "title: base\nid: 20000000-0000-0000-0000-000000000001\nname: base_rule\n"
    "logsource: {product: linux, service: sshd}\n"
    "detection:\n  sel:\n    event.action: ssh_login\n  condition: sel\nlevel: low\n";

TEST_F(SigmaVariantsTest, MetricCorrelationsAreUnsupportedNamingTheType) {
  std::string text = kBase;
  int n = 2;
  for (const char* type : {"value_sum", "value_avg", "value_percentile", "value_median"}) {
    text += "---\ntitle: " + std::string(type) + "\nid: 20000000-0000-0000-0000-00000000000" +
            std::to_string(n++) + "\ncorrelation:\n  type: " + type +
            "\n  rules: [base_rule]\n  group-by: [source.ip]\n  timespan: 5m\n"
            "  condition: {gte: 100, field: source.port}\nlevel: high\n";
  }
  // By name and by id, as the specification allows both.
  text +=
      "---\ntitle: by id\nid: 20000000-0000-0000-0000-000000000010\ncorrelation:\n"
      "  type: event_count\n  rules: [20000000-0000-0000-0000-000000000001]\n"
      "  group-by: [source.ip]\n  timespan: 1h\n  condition: {gte: 3}\nlevel: high\n";
  Write("metrics.yml", text);
  std::vector<RuleDiagnostic> d = LintOf("metrics.yml");
  ASSERT_EQ(d.size(), 6u);
  std::map<std::string, RuleDiagnostic> by_id;
  for (const RuleDiagnostic& x : d) by_id[x.rule_id] = x;
  EXPECT_EQ(by_id["20000000-0000-0000-0000-000000000001"].status, kOk);
  EXPECT_EQ(by_id["20000000-0000-0000-0000-000000000010"].status, kOk);
  const std::map<std::string, std::string> want = {
      {"20000000-0000-0000-0000-000000000002", "metrics.yml:14: correlation type 'value_sum'"},
      {"20000000-0000-0000-0000-000000000003", "metrics.yml:24: correlation type 'value_avg'"},
      {"20000000-0000-0000-0000-000000000004",
       "metrics.yml:34: correlation type 'value_percentile'"},
      {"20000000-0000-0000-0000-000000000005", "metrics.yml:44: correlation type 'value_median'"}};
  for (const auto& [id, msg] : want) {
    EXPECT_EQ(by_id[id].status, kUnsupported) << id;
    EXPECT_NE(by_id[id].message.find(msg), std::string::npos) << by_id[id].message;
  }
  // An unknown type stays an error.
  Write("bogus.yml", std::string(kBase) +
                         "---\ntitle: t\nid: 20000000-0000-0000-0000-000000000011\ncorrelation:\n"
                         "  type: value_bogus\n  rules: [base_rule]\n  timespan: 5m\n");
  d = LintOf("bogus.yml");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1].status, kError);
  EXPECT_NE(d[1].message.find("bogus.yml:14: unknown correlation type 'value_bogus'"),
            std::string::npos)
      << d[1].message;
}

TEST_F(SigmaVariantsTest, RuleCollectionsGlobalRepeatReset) {
  const std::string collection =
      "action: global\ntitle: collection\nid: 20000000-0000-0000-0000-000000000020\n"
      "logsource: {product: windows}\ndetection:\n  sel:\n    Image|endswith: '\\evil.exe'\n"
      "  condition: sel\nlevel: high\n"
      "---\nlogsource: {category: process_creation}\n"
      "---\naction: repeat\nlogsource: {category: image_load}\ndetection:\n  sel2:\n"
      "    ImageLoaded|endswith: '\\evil.dll'\n  condition: sel or sel2\n"
      "---\naction: reset\n"
      "---\ntitle: after reset\nid: 20000000-0000-0000-0000-000000000021\n"
      "logsource: {product: linux}\ndetection:\n  sel:\n    message: x\n  condition: sel\n"
      "---\naction: frobnicate\ntitle: unknown action\n";
  Write("collection.yml", collection);
  std::vector<RuleDiagnostic> d = LintOf("collection.yml");
  ASSERT_EQ(d.size(), 4u);
  int ok = 0;
  for (const RuleDiagnostic& x : d) {
    if (x.status == kOk) {
      ++ok;
      continue;
    }
    EXPECT_EQ(x.status, kUnsupported);
    EXPECT_NE(x.message.find("collection.yml:30: rule collection action 'frobnicate'"),
              std::string::npos)
        << x.message;
  }
  EXPECT_EQ(ok, 3);
  // The merged documents match: the first on process creation, the repeated one
  // (its own log source and an extra selection) on image loads.
  const std::string sysmon1 =
      R"({"Event":{"System":{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS1"},"EventData":{"Image":"C:\\x\\evil.exe"}}})";
  const std::string sysmon7 =
      R"({"Event":{"System":{"EventID":7,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS1"},"EventData":{"Image":"C:\\x\\ok.exe","ImageLoaded":"C:\\x\\evil.dll"}}})";
  const std::string sysmon7_clean =
      R"({"Event":{"System":{"EventID":7,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS1"},"EventData":{"Image":"C:\\x\\ok.exe","ImageLoaded":"C:\\x\\ok.dll"}}})";
  const std::string without_unknown = collection.substr(0, collection.find("---\naction: frob"));
  EXPECT_TRUE(Matches(without_unknown, sysmon1));
  EXPECT_TRUE(Matches(without_unknown, sysmon7));
  EXPECT_FALSE(Matches(without_unknown, sysmon7_clean));
}

TEST_F(SigmaVariantsTest, ModifierChainsOfOtherSnapshots) {
  const std::string head =
      "title: t\nid: 20000000-0000-0000-0000-000000000030\n"
      "logsource: {product: windows, category: process_creation}\n"
      "detection:\n";
  auto ev = [](const std::string& image, const std::string& cmd, const std::string& ofn) {
    return R"({"Event":{"System":{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS1"},"EventData":{"Image":")" +
           image + R"(","CommandLine":")" + cmd + R"(","OriginalFileName":")" + ofn + R"("}}})";
  };
  const std::string windash = head +
                              "  sel:\n    CommandLine|contains|all|windash:\n"
                              "      - ' -enc '\n      - ' -nop '\n  condition: sel\n";
  EXPECT_TRUE(Matches(windash, ev("p.exe", "powershell /nop /enc AAAA", "p.exe")));
  EXPECT_TRUE(Matches(windash, ev("p.exe", "powershell \u2013nop -enc AAAA", "p.exe")));
  EXPECT_FALSE(Matches(windash, ev("p.exe", "powershell /nop", "p.exe")));
  const std::string re_i =
      head + "  sel:\n    CommandLine|re|i: 'invoke-(webrequest|expression)'\n  condition: sel\n";
  EXPECT_TRUE(Matches(re_i, ev("p.exe", "IEX (Invoke-WebRequest x)", "p.exe")));
  EXPECT_FALSE(Matches(re_i, ev("p.exe", "Invoke-Command x", "p.exe")));
  // A renamed binary: the image does not end with its original file name.
  const std::string fieldref =
      head + "  sel:\n    Image|fieldref|endswith: OriginalFileName\n  condition: not sel\n";
  EXPECT_TRUE(Matches(fieldref, ev("C:\\\\x\\\\notepad.exe", "x", "cmd.exe")));
  EXPECT_FALSE(Matches(fieldref, ev("C:\\\\x\\\\cmd.exe", "x", "cmd.exe")));
  Write("expand.yml", head + "  sel:\n    Image|expand: '%AppData%\\foo.exe'\n  condition: sel\n");
  std::vector<RuleDiagnostic> d = LintOf("expand.yml");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status, kUnsupported);
  EXPECT_NE(d[0].message.find("expand.yml:6: modifier 'expand'"), std::string::npos)
      << d[0].message;
}

TEST_F(SigmaVariantsTest, BrokenFilesNameTheFileTheLineAndTheProblem) {
  const std::string head = "title: t\nid: 20000000-0000-0000-0000-0000000000";
  const std::string mid = "\nlogsource: {product: linux}\ndetection:\n  sel:\n";
  Write("unknown_modifier.yml", head + "40" + mid + "    message|containz: x\n  condition: sel\n");
  Write("invalid_yaml.yml", head + "41\nlogsource: {product: linux\ndetection:\n");
  Write("empty.yml", "");
  Write("comments.yml", "# nothing here\n---\n");
  Write("tab.yml", head + "42" + mid + "\tmessage: x\n  condition: sel\n");
  Write("bad_regex.yml", head + "43" + mid + "    message|re: 'a(b'\n  condition: sel\n");
  Write("backref.yml", head + "44" + mid + "    message|re: '(a)\\1'\n  condition: sel\n");
  Write("a_first.yml", head + "45" + mid + "    message: x\n  condition: sel\n");
  Write("b_duplicate.yml", head + "45" + mid + "    message: y\n  condition: sel\n");
  Write("same_file_duplicate.yml", head + "46" + mid + "    message: x\n  condition: sel\n---\n" +
                                       head + "46" + mid + "    message: y\n  condition: sel\n");
  Write("tab_in_value.yml",
        head + "47" + mid + "    message|contains: \"a\\tb\"\n  condition: sel\n");
  Write("crlf_bom.yml",
        "\xEF\xBB\xBF"
        "title: t\r\nid: 20000000-0000-0000-0000-000000000048\r\n"
        "logsource: {product: linux}\r\ndetection:\r\n  sel:\r\n    message: x\r\n"
        "  condition: sel\r\n");
  const std::map<std::string, std::pair<RuleDiagnostic::Status, std::string>> want = {
      {"unknown_modifier.yml", {kError, "unknown_modifier.yml:6: unknown modifier 'containz'"}},
      {"invalid_yaml.yml", {kError, "invalid_yaml.yml:4: YAML: "}},
      {"empty.yml", {kError, "empty.yml:1: no rule in the file"}},
      {"comments.yml", {kError, "comments.yml:1: no rule in the file"}},
      {"tab.yml", {kError, "tab.yml:6: YAML: tab character in the indentation"}},
      {"bad_regex.yml", {kError, "bad_regex.yml:6: invalid regular expression"}},
      {"backref.yml",
       {kUnsupported, "backref.yml:6: regular expression not supported by Hyperscan"}},
      {"a_first.yml", {kOk, ""}},
      {"b_duplicate.yml",
       {kError,
        "b_duplicate.yml:1: duplicate rule id '20000000-0000-0000-0000-000000000045' (also in "}},
      {"tab_in_value.yml", {kOk, ""}},
      {"crlf_bom.yml", {kOk, ""}},
  };
  for (const auto& [file, expect] : want) {
    std::vector<RuleDiagnostic> d = LintOf(file);
    ASSERT_EQ(d.size(), 1u) << file;
    EXPECT_EQ(d[0].status, expect.first) << file << ": " << d[0].message;
    EXPECT_NE(d[0].message.find(expect.second), std::string::npos) << d[0].message;
  }
  std::vector<RuleDiagnostic> d = LintOf("same_file_duplicate.yml");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].status, kOk);
  EXPECT_EQ(d[1].status, kError);
  EXPECT_NE(d[1].message.find("same_file_duplicate.yml:9: duplicate rule id"), std::string::npos)
      << d[1].message;
  // A load without skip_errors fails and names the broken files.
  auto rs = RuleSet::Load(dir_);
  ASSERT_FALSE(rs.ok());
  EXPECT_NE(rs.status().message().find("b_duplicate.yml:1: duplicate rule id"), std::string::npos)
      << rs.status();
}

}  // namespace
}  // namespace siper::rules

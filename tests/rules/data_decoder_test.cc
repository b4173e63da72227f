// Decoders as data (rules/data_decoder.h): the shipped decoder files' own test lines hold
// through the real engine, bad decoder files are refused with file:line, and the logrotate
// decoder reads the real loghub log.
#include "rules/data_decoder.h"

#include <gtest/gtest.h>

#include <fstream>

#include "rules/decoder.h"
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

TEST(DataDecoderTest, ShippedDecodersPassTheirOwnTestLinesThroughTheEngine) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  ASSERT_NE(rules->decoders(), nullptr);
  EXPECT_GE(rules->decoders()->size(), 4u);
  ASSERT_FALSE(rules->decoders()->tests().empty());
  auto matcher = Matcher::Create(rules);
  ASSERT_TRUE(matcher.ok()) << matcher.status();
  for (const DecoderTestCase& t : rules->decoders()->tests()) {
    FieldMap fields;
    auto detections = (*matcher)->Process(t.line, "/var/log/syslog", InputFormat::kAuto, &fields);
    ASSERT_TRUE(detections.ok()) << detections.status();
    for (const auto& [name, want] : t.expect_fields) {
      auto got = fields.find(name);
      if (got == fields.end()) {
        ADD_FAILURE() << t.path << ":" << t.yaml_line << " (" << t.decoder << "): no field " << name
                      << " in the decoded event";
      } else {
        EXPECT_EQ(got->second, want) << t.path << ":" << t.yaml_line << " field " << name;
      }
    }
  }
}

TEST(DataDecoderTest, DecoderFilesAreNotRules) {
  for (const RuleDiagnostic& d : RuleSet::Lint(testing::SourceDir() / "rules/ruleset")) {
    EXPECT_EQ(d.path.find("/decoders/"), std::string::npos) << d.path << ": " << d.message;
  }
}

TEST(DataDecoderTest, SetsFieldsFromCapturesOnlyForItsProgram) {
  auto set = DataDecoderSet::LoadString(R"(decoder: demo
programs: [demo]
logsource: {service: [auth, demo], category: authentication}
patterns:
  - regex: 'login of (?P<user>\w+) from (?P<ip>\S+)(?: port (?P<port>\d+))?'
    fields: {user.name: '${user|lower}', source.ip: '${ip}', source.port: '${port}',
             event.action: 'demo_${user|lower}'}
)",
                                        "demo.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  Event ev;
  ASSERT_TRUE(DecodeLine("Nov 28 10:00:00 h1 demo[7]: login of Root from 192.0.2.1",
                         "/var/log/auth.log", InputFormat::kAuto, &ev)
                  .ok());
  ASSERT_TRUE((*set)->Apply(&ev));
  EXPECT_EQ(ev.fields.at("user.name"), "root");
  EXPECT_EQ(ev.fields.at("source.ip"), "192.0.2.1");
  EXPECT_EQ(ev.fields.at("event.action"), "demo_root");
  // The optional port took no part: no empty field.
  EXPECT_EQ(ev.fields.count("source.port"), 0u);
  EXPECT_NE(std::find(ev.services.begin(), ev.services.end(), "demo"), ev.services.end());
  EXPECT_NE(std::find(ev.categories.begin(), ev.categories.end(), "authentication"),
            ev.categories.end());

  Event other;
  ASSERT_TRUE(DecodeLine("Nov 28 10:00:00 h1 other[7]: login of Root from 192.0.2.1",
                         "/var/log/auth.log", InputFormat::kAuto, &other)
                  .ok());
  EXPECT_FALSE((*set)->Apply(&other));
  EXPECT_EQ(other.fields.count("user.name"), 0u);
}

TEST(DataDecoderTest, BadFilesAreRefusedWithFileLineAndWhat) {
  const std::pair<const char*, const char*> cases[] = {
      {"decoder: x\nprograms: [a]\npatterns:\n  - regex: '(unclosed'\n    fields: {a: b}\n",
       "bad.yaml:4: bad regex"},
      {"decoder: x\nprograms: [a]\npatterns:\n  - regex: 'a(?P<g>b)'\n    fields: {a: '${h}'}\n",
       "${h} names no group"},
      {"decoder: x\nprograms: [a]\npatterns:\n  - regex: 'a(?P<g>b)'\n    fields: {a: "
       "'${g|upper}'}\n",
       "unknown transform 'upper'"},
      {"decoder: x\nprogram: [a]\npatterns: []\n", "bad.yaml:2: unknown key 'program'"},
      {"decoder: x\npatterns:\n  - regex: a\n    fields: {a: b}\n", "'programs' must list"},
      {"decoder: x\nprograms: [a]\npatterns: [{fields: {a: b}}]\n", "a pattern needs 'regex'"},
      {"decoder: x\nprograms: [a\n", "bad.yaml:"},
  };
  for (const auto& [yaml, want] : cases) {
    auto set = DataDecoderSet::LoadString(yaml, "bad.yaml");
    ASSERT_FALSE(set.ok()) << yaml;
    EXPECT_NE(set.status().message().find(want), std::string::npos)
        << "got: " << set.status().message() << "\nwant: " << want;
  }
}

TEST(DataDecoderTest, ABrokenDecoderFileFailsTheRuleSetLoadAndLintSaysWhere) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("siper-decoders-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "decoders");
  std::ofstream(dir / "decoders" / "broken.yaml")
      << "decoder: broken\nprograms: [a]\npatterns:\n  - regex: '(x'\n    fields: {a: b}\n";
  auto loaded = RuleSet::Load(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("broken.yaml:4"), std::string::npos) << loaded.status();
  bool reported = false;
  for (const RuleDiagnostic& d : RuleSet::Lint(dir)) {
    reported |= d.status == RuleDiagnostic::Status::kError &&
                d.message.find("broken.yaml:4") != std::string::npos;
  }
  EXPECT_TRUE(reported);
  std::filesystem::remove_all(dir);
}

TEST(DataDecoderTest, RealLogrotateFailuresAreDecoded) {
  SIPER_REQUIRE_SHARED("logs/loghub/Linux_2k.log");
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  auto matcher = Matcher::Create(rules);
  ASSERT_TRUE(matcher.ok());
  std::ifstream in(testing::SharedData() / "logs/loghub/Linux_2k.log");
  std::string line;
  int failures = 0;
  while (std::getline(in, line)) {
    if (line.find(" logrotate: ALERT exited abnormally") == std::string::npos) continue;
    FieldMap fields;
    ASSERT_TRUE((*matcher)->Process(line, "/var/log/messages", InputFormat::kAuto, &fields).ok());
    ++failures;
    EXPECT_EQ(fields["event.action"], "logrotate_failed") << line;
    EXPECT_FALSE(fields["error.code"].empty()) << line;
  }
  EXPECT_GT(failures, 10);
}

}  // namespace
}  // namespace siper::rules

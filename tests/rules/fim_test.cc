// File-integrity observations as detection events (rules/fim.h): the field
// mapping, the log source, and the default FIM rules through the Matcher.
#include "rules/fim.h"

#include <gtest/gtest.h>

#include "rules/engine.h"
#include "tests/rules/test_util.h"

namespace siper::rules {
namespace {

TEST(FimFieldsTest, MapsEveryAttribute) {
  FileObservation f;
  f.path = "/usr/local/bin/find";
  f.change = FileChange::kAttributes;
  f.size = 204;
  f.mode = 0104755;  // regular file, setuid
  f.uid = 0;
  f.gid = 50;
  f.owner = "root";
  f.group = "staff";
  f.sha256 = "ABCDEF" + std::string(58, '0');
  f.mtime_ns = 1795856520123000000;
  FieldMap m;
  FileObservationFields(f, &m);
  EXPECT_EQ(m["file.path"], "/usr/local/bin/find");
  EXPECT_EQ(m["file.name"], "find");
  EXPECT_EQ(m["file.directory"], "/usr/local/bin");
  EXPECT_EQ(m.count("file.extension"), 0u);
  EXPECT_EQ(m["file.size"], "204");
  EXPECT_EQ(m["file.mode"], "4755");
  EXPECT_EQ(m["file.setuid"], "true");
  EXPECT_EQ(m["file.setgid"], "false");
  EXPECT_EQ(m["file.uid"], "0");
  EXPECT_EQ(m["file.gid"], "50");
  EXPECT_EQ(m["file.owner"], "root");
  EXPECT_EQ(m["file.group"], "staff");
  EXPECT_EQ(m["file.hash.sha256"], "abcdef" + std::string(58, '0'));
  EXPECT_EQ(m["file.mtime"], "2026-11-28T09:02:00.123+00:00");
  EXPECT_EQ(m["event.action"], "attributes");
  EXPECT_EQ(m["event.category"], "file");
  EXPECT_EQ(m["event.type"], "change");
  EXPECT_EQ(m["event.module"], "fim");
}

TEST(FimFieldsTest, PathsAndModes) {
  auto fields = [](std::string path, uint32_t mode, FileChange change) {
    FileObservation f;
    f.path = std::move(path);
    f.mode = mode;
    f.change = change;
    FieldMap m;
    FileObservationFields(f, &m);
    return m;
  };
  FieldMap root = fields("/vmlinuz", 0600, FileChange::kDeleted);
  EXPECT_EQ(root["file.directory"], "/");
  EXPECT_EQ(root["file.name"], "vmlinuz");
  EXPECT_EQ(root["file.mode"], "0600");
  EXPECT_EQ(root["event.type"], "deletion");
  EXPECT_EQ(root.count("file.hash.sha256"), 0u);
  FieldMap win = fields(R"(C:\Users\alice\Downloads\eicar.com)", 0644, FileChange::kAdded);
  EXPECT_EQ(win["file.directory"], R"(C:\Users\alice\Downloads)");
  EXPECT_EQ(win["file.name"], "eicar.com");
  EXPECT_EQ(win["file.extension"], "com");
  EXPECT_EQ(win["event.type"], "creation");
  FieldMap dot = fields("/root/.bashrc", 02644, FileChange::kBaseline);
  EXPECT_EQ(dot.count("file.extension"), 0u);  // a dot file has no extension
  EXPECT_EQ(dot["file.mode"], "2644");
  EXPECT_EQ(dot["file.setgid"], "true");
  EXPECT_EQ(dot["event.action"], "baseline");
  EXPECT_EQ(dot["event.type"], "info");
}

TEST(FimFieldsTest, ChangeNames) {
  for (FileChange c : {FileChange::kBaseline, FileChange::kAdded, FileChange::kModified,
                       FileChange::kDeleted, FileChange::kAttributes}) {
    auto parsed = ParseFileChange(FileChangeName(c));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, c);
  }
  // The wire names (siper.v1.FileChange) are read too, so stored events convert.
  EXPECT_EQ(*ParseFileChange("FILE_CHANGE_MODIFIED"), FileChange::kModified);
  EXPECT_EQ(*ParseFileChange("Deleted"), FileChange::kDeleted);
  EXPECT_FALSE(ParseFileChange("renamed").ok());
}

std::shared_ptr<const RuleSet> DefaultRules() {
  static std::shared_ptr<const RuleSet> rules = [] {
    auto r = RuleSet::Load(testing::SourceDir() / "rules/ruleset");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  }();
  return rules;
}

std::vector<std::string> Alerts(Matcher& m, const FileObservation& f) {
  auto found = m.ProcessFile(f);
  EXPECT_TRUE(found.ok()) << found.status();
  std::vector<std::string> ids;
  if (found.ok()) {
    for (const Detection& d : *found) ids.push_back(d.rule_id);
  }
  return ids;
}

// The first scan reports what is there: a baseline must never alert, even
// for the files every FIM rule watches, setuid binaries and the EICAR file.
TEST(FimRulesTest, BaselineNeverAlerts) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  auto matcher = Matcher::Create(rules);
  ASSERT_TRUE(matcher.ok());
  const char* paths[] = {"/etc/passwd",
                         "/etc/shadow",
                         "/etc/gshadow",
                         "/etc/group",
                         "/etc/sudoers",
                         "/etc/sudoers.d/90-cloud-init-users",
                         "/root/.ssh/authorized_keys",
                         "/home/alice/.ssh/authorized_keys",
                         "/etc/crontab",
                         "/etc/cron.d/php",
                         "/var/spool/cron/crontabs/root",
                         "/etc/ld.so.preload",
                         "/etc/pam.d/sshd",
                         "/etc/ssh/sshd_config",
                         "/etc/systemd/system/app.service",
                         "/var/www/html/index.php",
                         "/usr/bin/passwd",
                         "/tmp/eicar.com"};
  for (const char* p : paths) {
    FileObservation f;
    f.path = p;
    f.change = FileChange::kBaseline;
    f.mode = 04755;
    f.sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    EXPECT_TRUE(Alerts(**matcher, f).empty()) << p;
    // The same file appearing after the baseline is a change some rule watches
    // (by path; /usr/bin/passwd by its setuid bit, eicar.com by its hash).
    const std::string path = p;
    f.change = FileChange::kAdded;
    f.mode = path == "/usr/bin/passwd" ? 04755 : 0644;
    f.sha256 = path == "/tmp/eicar.com" ? f.sha256 : std::string(64, '1');
    EXPECT_FALSE(Alerts(**matcher, f).empty()) << p << " added should alert";
  }
}

TEST(FimRulesTest, EicarRaisesTheTestFileRule) {
  auto rules = DefaultRules();
  ASSERT_NE(rules, nullptr);
  auto matcher = Matcher::Create(rules);
  ASSERT_TRUE(matcher.ok());
  FileObservation f;
  f.path = "/home/alice/Downloads/eicar.com";
  f.change = FileChange::kAdded;
  f.size = 68;
  f.sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
  FieldMap fields;
  auto found = (*matcher)->ProcessFile(f, &fields);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  const Detection& d = found->front();
  EXPECT_EQ(d.level, "medium");
  EXPECT_EQ(d.fields.at("file.path"), f.path);
  EXPECT_EQ(d.fields.at("file.hash.sha256"), f.sha256);
  EXPECT_EQ(fields.at("event.action"), "added");
  // An ordinary file in the same place raises nothing.
  f.sha256 = std::string(64, 'a');
  f.path = "/home/alice/Downloads/report.pdf";
  EXPECT_TRUE(Alerts(**matcher, f).empty());
}

// FIM events go only to rules of their log source: a log rule keyed on
// file.path (the Apache error log decoder sets it) does not see them, and a
// FIM rule does not see log lines.
TEST(FimRulesTest, LogSourceKeepsFimAndLogRulesApart) {
  auto rules = RuleSet::LoadFromString(R"(
title: any fim change
id: 0a9e3b8c-5d0b-4f3e-9d0c-2a7f6f1c0e01
logsource: {product: siper, service: fim}
detection:
  sel: {file.path|startswith: /etc/}
  condition: sel
---
title: linux line about /etc
id: 0a9e3b8c-5d0b-4f3e-9d0c-2a7f6f1c0e02
logsource: {product: linux}
detection:
  sel: {file.path|startswith: /etc/}
  condition: sel
)",
                                       "inline.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  auto matcher = Matcher::Create(*rules);
  ASSERT_TRUE(matcher.ok());
  FileObservation f;
  f.path = "/etc/hosts";
  f.change = FileChange::kBaseline;
  // No category in the rule: a baseline observation matches service fim.
  EXPECT_EQ(Alerts(**matcher, f), std::vector<std::string>{"0a9e3b8c-5d0b-4f3e-9d0c-2a7f6f1c0e01"});
}

}  // namespace
}  // namespace siper::rules

#include "server/incidents/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace siper::incidents {
namespace {

TEST(ConfigTest, ExampleFileParses) {
  const std::string path = std::string(SIPER_INCIDENTS_DATA_DIR) + "/incidents.example.yaml";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = ParseIncidentsConfigString(ss.str(), path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->institution.institution, "Mersin Büyükşehir Belediyesi");
  EXPECT_EQ(c->institution.ip_ranges.size(), 2u);
  EXPECT_EQ(c->institution.contacts.size(), 2u);
  EXPECT_EQ(c->institution.contacts[0].role, "SOME yöneticisi");
  EXPECT_EQ(c->grouping.min_level, "high");
  EXPECT_EQ(c->grouping.window, absl::Hours(1));
  EXPECT_EQ(c->grouping.default_tlp, Tlp::kAmber);
  EXPECT_EQ(c->deadlines.usom_trigger_state, State::kInvestigating);
  EXPECT_EQ(c->deadlines.usom_min_severity, Severity::kHigh);
  EXPECT_EQ(c->deadlines.usom_delay, absl::ZeroDuration());
  EXPECT_EQ(c->deadlines.kvkk_window, absl::Hours(72));
  EXPECT_EQ(c->taxonomy_path, DefaultTaxonomyPath());
}

TEST(ConfigTest, EmptyGivesDefaults) {
  auto c = ParseIncidentsConfigString("server: 1\n", "s.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->deadlines.usom_enabled);
  EXPECT_EQ(c->grouping.default_asset_criticality, 3);
}

TEST(ConfigTest, OverridesAndErrorsNameTheKey) {
  auto c = ParseIncidentsConfigString(R"(
incidents:
  grouping:
    min_level: critical
    window: 30m
    default_rsit: test/test
    default_tlp: amber+strict
    asset_criticality: {db01: 5}
  deadlines:
    usom_delay: 8h
    usom_min_severity: critical
)",
                                      "s.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grouping.window, absl::Minutes(30));
  EXPECT_EQ(c->grouping.default_rsit_class, "test");
  EXPECT_EQ(c->grouping.default_tlp, Tlp::kAmberStrict);
  EXPECT_EQ(c->grouping.asset_criticality.at("db01"), 5);
  EXPECT_EQ(c->deadlines.usom_delay, absl::Hours(8));
  EXPECT_EQ(c->deadlines.usom_min_severity, Severity::kCritical);

  struct Bad {
    const char* yaml;
    const char* want;
  };
  for (const Bad& b :
       {Bad{"incidents: {grouping: {min_level: severe}}", "incidents.grouping.min_level"},
        Bad{"incidents: {grouping: {window: soon}}", "30m"},
        Bad{"incidents: {grouping: {asset_criticality: {db01: 9}}}", "asset_criticality.db01"},
        Bad{"incidents: {deadlines: {usom_trigger_state: closed}}", "open state"},
        Bad{"incidents: {deadlines: {usom_min_severity: huge}}", "critical"},
        Bad{"institution: {ip_ranges: [10.0.0.0/99]}", "10.0.0.0/99"},
        Bad{"institution: {contacts: [{email: a@b}]}", "needs a name"},
        Bad{"incidents: {grouping: {default_rsit: other}}", "class/type"},
        Bad{"[1, 2", "not valid YAML"}}) {
    auto r = ParseIncidentsConfigString(b.yaml, "s.yaml");
    ASSERT_FALSE(r.ok()) << b.yaml;
    EXPECT_NE(r.status().message().find(b.want), std::string::npos) << r.status();
    EXPECT_EQ(r.status().message().rfind("s.yaml", 0), 0u) << r.status();
  }
}

}  // namespace
}  // namespace siper::incidents

namespace siper::incidents {
namespace {

TEST(ConfigTest, PolicyIsCheckedAgainstTheTaxonomy) {
  auto tax = Taxonomy::LoadFromFile(std::string(SIPER_INCIDENTS_DATA_DIR) + "/rsit.yaml");
  ASSERT_TRUE(tax.ok());
  GroupingPolicy p;
  EXPECT_TRUE(ValidateGroupingPolicy(p, *tax).ok());
  p.default_rsit_type = "nope";
  absl::Status st = ValidateGroupingPolicy(p, *tax);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("undetermined"), std::string::npos) << st;
  p = GroupingPolicy{};
  p.asset_criticality["x"] = 0;
  EXPECT_FALSE(ValidateGroupingPolicy(p, *tax).ok());
}

}  // namespace
}  // namespace siper::incidents

// Sigma semantics: values, modifiers, conditions, errors.
#include "rules/sigma.h"

#include <gtest/gtest.h>

#include "rules/engine.h"

namespace siper::rules {
namespace {

TEST(SigmaValueTest, WildcardsAndEscapes) {
  EXPECT_EQ(SigmaValueToRegex("abc", "equals"), "^abc\\z");
  EXPECT_EQ(SigmaValueToRegex("abc", "contains"), "abc");
  EXPECT_EQ(SigmaValueToRegex("abc", "startswith"), "^abc");
  EXPECT_EQ(SigmaValueToRegex("abc", "endswith"), "abc\\z");
  EXPECT_EQ(SigmaValueToRegex("a*b?c", "equals"), "^a.*b.c\\z");
  EXPECT_EQ(SigmaValueToRegex("*abc*", "equals"), "abc");
  EXPECT_EQ(SigmaValueToRegex("a\\*b", "equals"), "^a\\x2ab\\z");
  EXPECT_EQ(SigmaValueToRegex("a\\?", "equals"), "^a\\x3f\\z");
  // A lone backslash is literal; a doubled one is one backslash.
  EXPECT_EQ(SigmaValueToRegex("C:\\Win", "equals"), "^C\\x3a\\x5cWin\\z");
  EXPECT_EQ(SigmaValueToRegex("a\\\\*", "equals"), "^a\\x5c");
}

std::string Rule(const std::string& detection, const std::string& logsource = "product: linux") {
  return "title: t\nid: r1\nlogsource:\n  " + logsource + "\ndetection:\n" + detection +
         "\nlevel: low\n";
}

class SigmaMatchTest : public ::testing::Test {
 protected:
  // True when `rule_yaml` matches the JSON event `json`.
  bool Matches(const std::string& rule_yaml, const std::string& json) {
    auto rs = RuleSet::LoadFromString(rule_yaml, "test.yml");
    EXPECT_TRUE(rs.ok()) << rs.status();
    if (!rs.ok()) return false;
    EXPECT_EQ((*rs)->skipped().size(), 0u) << (*rs)->skipped()[0].message;
    auto m = Matcher::Create(*rs);
    EXPECT_TRUE(m.ok());
    auto found = (*m)->Process(json, "", InputFormat::kJson);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() && !found->empty();
  }
};

TEST_F(SigmaMatchTest, EqualityIsCaseInsensitiveAndWhole) {
  std::string det = "  sel:\n    a: Hello\n  condition: sel";
  EXPECT_TRUE(Matches(Rule(det, "category: x"), R"({"a":"hello"})") == false);  // routed away
  std::string any = "title: t\nid: r\nlogsource: {}\ndetection:\n" + det + "\n";
  EXPECT_TRUE(Matches(any, R"({"a":"HELLO"})"));
  EXPECT_FALSE(Matches(any, R"({"a":"hello world"})"));
  EXPECT_FALSE(Matches(any, R"({"b":"hello"})"));
}

std::string Doc(const std::string& det) {
  return "title: t\nid: r\nlogsource: {}\ndetection:\n" + det + "\n";
}

TEST_F(SigmaMatchTest, ContainsStartsEndsAllAndLists) {
  EXPECT_TRUE(Matches(Doc("  s:\n    a|contains: ELL\n  condition: s"), R"({"a":"hello"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|startswith: he\n  condition: s"), R"({"a":"hello"})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    a|startswith: lo\n  condition: s"), R"({"a":"hello"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|endswith: LO\n  condition: s"), R"({"a":"hello"})"));
  std::string any_of = Doc("  s:\n    a|contains:\n      - xyz\n      - ell\n  condition: s");
  EXPECT_TRUE(Matches(any_of, R"({"a":"hello"})"));
  std::string all_of = Doc("  s:\n    a|contains|all:\n      - he\n      - lo\n  condition: s");
  EXPECT_TRUE(Matches(all_of, R"({"a":"hello"})"));
  EXPECT_FALSE(Matches(all_of, R"({"a":"help"})"));
  // Two fields in a map are both required.
  std::string map = Doc("  s:\n    a: x\n    b: y\n  condition: s");
  EXPECT_TRUE(Matches(map, R"({"a":"x","b":"y"})"));
  EXPECT_FALSE(Matches(map, R"({"a":"x","b":"z"})"));
  // A list of maps is any of them.
  std::string maps = Doc("  s:\n    - a: x\n    - b: y\n  condition: s");
  EXPECT_TRUE(Matches(maps, R"({"a":"q","b":"y"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    n: 4625\n  condition: s"), R"({"n":4625})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a: 'x*z'\n  condition: s"), R"({"a":"x\nyz"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a: ''\n  condition: s"), R"({"a":""})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    a: ''\n  condition: s"), R"({"a":"x"})"));
}

TEST_F(SigmaMatchTest, Keywords) {
  std::string kw = Doc("  keywords:\n    - 'rm -rf'\n    - 'wget http'\n  condition: keywords");
  EXPECT_TRUE(Matches(kw, R"({"cmd":"sudo RM -RF /"})"));
  EXPECT_FALSE(Matches(kw, R"({"cmd":"ls"})"));
  std::string kw_all =
      Doc("  keywords:\n    '|all':\n      - foo\n      - bar\n  condition: keywords");
  EXPECT_TRUE(Matches(kw_all, R"({"x":"bar foo"})"));
  EXPECT_FALSE(Matches(kw_all, R"({"x":"foo"})"));
}

TEST_F(SigmaMatchTest, Conditions) {
  std::string det =
      "  sel_a:\n    a: 1\n  sel_b:\n    b: 1\n  filter:\n    c: 1\n"
      "  condition: 1 of sel_* and not filter";
  EXPECT_TRUE(Matches(Doc(det), R"({"b":1})"));
  EXPECT_FALSE(Matches(Doc(det), R"({"b":1,"c":1})"));
  EXPECT_FALSE(Matches(Doc(det), R"({"d":1})"));
  std::string all =
      "  sel_a:\n    a: 1\n  sel_b:\n    b: 1\n  _hidden:\n    z: 1\n  condition: all of them";
  EXPECT_TRUE(Matches(Doc(all), R"({"a":1,"b":1})"));
  EXPECT_FALSE(Matches(Doc(all), R"({"a":1})"));
  std::string paren =
      "  a:\n    a: 1\n  b:\n    b: 1\n  c:\n    c: 1\n  condition: a and (b or c) and not (b and "
      "c)";
  EXPECT_TRUE(Matches(Doc(paren), R"({"a":1,"c":1})"));
  EXPECT_FALSE(Matches(Doc(paren), R"({"a":1,"b":1,"c":1})"));
  std::string only_not = "  f:\n    a: 1\n  condition: not f";
  EXPECT_TRUE(Matches(Doc(only_not), R"({"b":1})"));
  std::string all_of_x = "  s1:\n    a: 1\n  s2:\n    b: 1\n  condition: all of s*";
  EXPECT_FALSE(Matches(Doc(all_of_x), R"({"a":1})"));
  std::string cond_list = "  s1:\n    a: 1\n  s2:\n    b: 1\n  condition:\n    - s1\n    - s2";
  EXPECT_TRUE(Matches(Doc(cond_list), R"({"b":1})"));
}

TEST_F(SigmaMatchTest, RegularExpressions) {
  EXPECT_TRUE(Matches(Doc("  s:\n    a|re: 'ab+c'\n  condition: s"), R"({"a":"xabbbcx"})"));
  // Sigma's re is case-sensitive unless |i.
  EXPECT_FALSE(Matches(Doc("  s:\n    a|re: 'ABC'\n  condition: s"), R"({"a":"abc"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|re|i: 'ABC'\n  condition: s"), R"({"a":"abc"})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    a|re: '^b$'\n  condition: s"), R"({"a":"a\nb"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|re|m: '^b$'\n  condition: s"), R"({"a":"a\nb"})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    a|re: 'a.b'\n  condition: s"), R"({"a":"a\nb"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|re|s: 'a.b'\n  condition: s"), R"({"a":"a\nb"})"));
}

TEST_F(SigmaMatchTest, CasedCidrExistsNullNumbersFieldref) {
  EXPECT_FALSE(Matches(Doc("  s:\n    a|cased: Abc\n  condition: s"), R"({"a":"abc"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|cased: Abc\n  condition: s"), R"({"a":"Abc"})"));
  std::string cidr =
      Doc("  s:\n    ip|cidr:\n      - 10.0.0.0/8\n      - 'fd00::/8'\n  condition: s");
  EXPECT_TRUE(Matches(cidr, R"({"ip":"10.1.2.3"})"));
  EXPECT_TRUE(Matches(cidr, R"({"ip":"fd12::1"})"));
  EXPECT_FALSE(Matches(cidr, R"({"ip":"11.1.2.3"})"));
  EXPECT_FALSE(Matches(cidr, R"({"ip":"not an ip"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|exists: true\n  condition: s"), R"({"a":""})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    a|exists: true\n  condition: s"), R"({"b":""})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    a|exists: false\n  condition: s"), R"({"b":""})"));
  std::string null = Doc("  s:\n    a: null\n    b: 1\n  condition: s");
  EXPECT_TRUE(Matches(null, R"({"b":1})"));
  EXPECT_TRUE(Matches(null, R"({"a":null,"b":1})"));
  EXPECT_FALSE(Matches(null, R"({"a":"x","b":1})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    n|gt: 10\n  condition: s"), R"({"n":11})"));
  EXPECT_FALSE(Matches(Doc("  s:\n    n|gt: 10\n  condition: s"), R"({"n":10})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    n|gte: 10\n  condition: s"), R"({"n":10})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    n|lt: 10\n  condition: s"), R"({"n":"9.5"})"));
  EXPECT_TRUE(Matches(Doc("  s:\n    n|lte: 10\n  condition: s"), R"({"n":10})"));
  std::string ref = Doc("  s:\n    a|fieldref: b\n  condition: s");
  EXPECT_TRUE(Matches(ref, R"({"a":"X","b":"x"})"));
  EXPECT_FALSE(Matches(ref, R"({"a":"x","b":"y"})"));
  std::string ref_c = Doc("  s:\n    a|fieldref|contains: b\n  condition: s");
  EXPECT_TRUE(Matches(ref_c, R"({"a":"a user b","b":"USER"})"));
}

TEST_F(SigmaMatchTest, Encodings) {
  // "whoami" base64: d2hvYW1p
  EXPECT_TRUE(Matches(Doc("  s:\n    a|base64: whoami\n  condition: s"), R"({"a":"d2hvYW1p"})"));
  std::string off = Doc("  s:\n    a|base64offset|contains: whoami\n  condition: s");
  // base64 of "xwhoami", "xxwhoami", "whoami!"
  EXPECT_TRUE(Matches(off, R"({"a":"-enc eHdob2FtaQ=="})"));
  EXPECT_TRUE(Matches(off, R"({"a":"eHh3aG9hbWk="})"));
  EXPECT_TRUE(Matches(off, R"({"a":"d2hvYW1pIQ=="})"));
  EXPECT_FALSE(Matches(off, R"({"a":"aGVsbG8="})"));
  // UTF-16LE "ab" = 61 00 62 00, base64 YQBiAA==
  EXPECT_TRUE(Matches(Doc("  s:\n    a|wide|base64: ab\n  condition: s"), R"({"a":"YQBiAA=="})"));
  EXPECT_TRUE(
      Matches(Doc("  s:\n    a|utf16be|base64: ab\n  condition: s"), R"({"a":"AGEAYg=="})"));
  std::string dash = Doc("  s:\n    a|windash|contains: ' -enc '\n  condition: s");
  EXPECT_TRUE(Matches(dash, R"({"a":"powershell -enc AAA"})"));
  EXPECT_TRUE(Matches(dash, R"({"a":"powershell /enc AAA"})"));
  EXPECT_TRUE(Matches(dash, "{\"a\":\"powershell \u2013enc AAA\"}"));
  EXPECT_FALSE(Matches(dash, R"({"a":"powershell enc AAA"})"));
}

TEST(SigmaErrorTest, ErrorsNameFileAndLine) {
  auto unknown_sel = RuleSet::LoadFromString(
      "title: t\nid: x\nlogsource: {}\ndetection:\n  sel:\n    a: 1\n  condition: sel and other\n",
      "r.yml");
  ASSERT_FALSE(unknown_sel.ok());
  EXPECT_NE(unknown_sel.status().message().find("r.yml:7"), std::string::npos)
      << unknown_sel.status();
  EXPECT_NE(unknown_sel.status().message().find("'other'"), std::string::npos);
  auto bad_mod = RuleSet::LoadFromString(
      "title: t\nid: x\nlogsource: {}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n",
      "r.yml");
  ASSERT_FALSE(bad_mod.ok());
  EXPECT_NE(bad_mod.status().message().find("r.yml:6"), std::string::npos) << bad_mod.status();
  auto bad_yaml = RuleSet::LoadFromString("title: [\n", "r.yml");
  ASSERT_FALSE(bad_yaml.ok());
  EXPECT_NE(bad_yaml.status().message().find("r.yml:"), std::string::npos);
  // A regex Hyperscan cannot run is unsupported (skipped), with its line.
  auto backref = RuleSet::LoadFromString(
      "title: t\nid: x\nlogsource: {}\ndetection:\n  sel:\n    a|re: '(a)\\1'\n  condition: sel\n",
      "r.yml");
  ASSERT_TRUE(backref.ok()) << backref.status();
  ASSERT_EQ((*backref)->skipped().size(), 1u);
  EXPECT_EQ((*backref)->skipped()[0].status, RuleDiagnostic::Status::kUnsupported);
  EXPECT_NE((*backref)->skipped()[0].message.find("r.yml:6"), std::string::npos)
      << (*backref)->skipped()[0].message;
  EXPECT_EQ((*backref)->rule_count(), 0u);
}

}  // namespace
}  // namespace siper::rules

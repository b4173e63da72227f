// RunRuleTests: the rules' own test cases, for tests/rules and `siperctl rules test`.
#include <algorithm>

#include "rules/engine.h"
#include "rules/ioc.h"
#include "rules/strutil.h"

namespace siper::rules {

namespace {

// The IOC set of a test case's `ioc:` feeds; null when it has none.
absl::StatusOr<std::shared_ptr<const IocSet>> TestIocSet(const RuleTestCase& tc) {
  if (tc.iocs.empty()) return nullptr;
  IocSetBuilder builder;
  for (const RuleTestIoc& feed : tc.iocs) {
    IocEntry meta;
    meta.feed = feed.feed;
    meta.category = feed.category;
    meta.confidence = feed.confidence;
    for (const std::string& value : feed.values) {
      if (!builder.Add(value, meta)) {
        return absl::InvalidArgumentError(strutil::StrCat(
            "ioc feed '", feed.feed, "': '", value, "' is not a domain, URL, address or hash"));
      }
    }
  }
  return builder.Build();
}

}  // namespace

std::vector<RuleTestResult> RunRuleTests(const std::shared_ptr<const RuleSet>& rules) {
  std::vector<RuleTestResult> out;
  if (rules == nullptr) return out;
  for (const RuleInfo& r : rules->rules()) {
    for (const RuleTestCase& tc : r.tests) {
      RuleTestResult& res = out.emplace_back();
      res.path = r.path;
      res.yaml_line = tc.yaml_line;
      res.rule_id = r.id;
      res.title = r.title;
      res.input = tc.line;
      res.must_match = tc.must_match;
      absl::StatusOr<std::shared_ptr<const IocSet>> ioc = TestIocSet(tc);
      if (!ioc.ok()) {
        res.message = std::string(ioc.status().message());
        continue;
      }
      absl::StatusOr<std::unique_ptr<Matcher>> matcher = Matcher::Create(rules, *ioc);
      if (!matcher.ok()) {
        res.message = std::string(matcher.status().message());
        continue;
      }
      FieldMap fields;
      absl::StatusOr<std::vector<Detection>> found =
          tc.file.has_value() ? (*matcher)->ProcessFile(*tc.file, &fields)
                              : (*matcher)->Process(tc.line, tc.source, tc.format, &fields);
      if (!found.ok()) {
        res.message = strutil::StrCat("cannot process the input: ", found.status().message());
        continue;
      }
      // Rules that only feed correlations raise no alert of their own, so
      // the test asks which conditions held.
      std::vector<std::string> matched = (*matcher)->LastMatchedRuleIds();
      const bool hit = std::find(matched.begin(), matched.end(), r.id) != matched.end();
      if (!tc.must_match) {
        res.passed = !hit;
        if (hit) res.message = "matched, but must not match";
        continue;
      }
      if (!hit) {
        res.message = "did not match, but must match";
        continue;
      }
      for (const auto& [k, v] : tc.expect_fields) {
        auto it = fields.find(k);
        if (it == fields.end()) {
          strutil::StrAppend(&res.message, res.message.empty() ? "" : "; ", "field ", k,
                             " absent (expected '", v, "')");
        } else if (it->second != v) {
          strutil::StrAppend(&res.message, res.message.empty() ? "" : "; ", "field ", k, " is '",
                             it->second, "', expected '", v, "'");
        }
      }
      res.passed = res.message.empty();
    }
  }
  return out;
}

}  // namespace siper::rules

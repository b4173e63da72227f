// Sigma rule parser: YAML text into predicates over fields and a boolean
// condition tree. Patterns come out as Hyperscan expressions; the engine
// (engine.cc) compiles them.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rules/engine.h"

namespace siper::rules {

struct LogSourceKey {
  std::string product;
  std::string category;
  std::string service;
  auto operator<=>(const LogSourceKey&) const = default;
};

// One Hyperscan expression with its flags (HS_FLAG_*), without SINGLEMATCH.
struct Pattern {
  std::string expr;
  unsigned flags = 0;
  auto operator<=>(const Pattern&) const = default;
};

struct CidrRange {
  bool v6 = false;
  unsigned char addr[16] = {};
  int prefix = 0;
};

// A test on one field. kPatterns holds alternatives (any matches).
struct Predicate {
  enum class Kind { kPatterns, kExists, kAbsent, kEmpty, kCidr, kCompare, kFieldRef };
  enum class Compare { kLt, kLte, kGt, kGte };
  enum class RefMode { kEquals, kContains, kStartsWith, kEndsWith };
  Kind kind = Kind::kPatterns;
  std::string field;  // "" = keyword search over the whole line
  std::vector<Pattern> patterns;
  std::vector<CidrRange> cidrs;
  Compare compare = Compare::kLt;
  double number = 0;
  std::string ref_field;
  RefMode ref_mode = RefMode::kEquals;
  bool cased = false;
  int line = 0;
};

struct CondNode {
  enum class Op { kAnd, kOr, kNot, kPred, kTrue, kFalse };
  Op op = Op::kFalse;
  std::vector<CondNode> kids;
  uint32_t pred = 0;
};

// Sigma correlation rule (meta rule over other rules' matches).
struct CorrelationSpec {
  enum class Type { kEventCount, kValueCount, kTemporal, kTemporalOrdered };
  Type type = Type::kEventCount;
  std::vector<std::string> rules;  // referenced rule ids or names
  std::vector<std::string> group_by;
  int64_t timespan_ns = 0;
  std::string value_field;  // value_count: field whose distinct values are counted
  enum class Cmp { kGt, kGte, kLt, kLte, kEq } cmp = Cmp::kGte;
  int64_t threshold = 1;
  bool generate = false;  // also emit the referenced rules' own alerts
};

struct ParsedRule {
  std::string path;
  int line = 1;  // line of the document start
  std::string id;
  std::string name;  // Sigma `name`, for correlation references
  std::string title;
  std::string level;
  std::string status;
  std::vector<std::string> tags;
  LogSourceKey logsource;
  std::vector<Predicate> predicates;
  CondNode condition;
  bool is_correlation = false;
  CorrelationSpec correlation;
  std::string rsit_class;
  std::string rsit_type;
  // Suppression: one alert per rule and these field values per window.
  std::vector<std::string> suppress_by;
  int64_t suppress_ns = 0;
  std::vector<RuleTestCase> tests;
};

struct ParsedFile {
  std::vector<ParsedRule> rules;
  std::vector<RuleDiagnostic> diagnostics;  // one per document that failed
};

// Parses one rule file's text (one or more YAML documents).
ParsedFile ParseRuleText(std::string_view text, const std::string& path);

// Translates a Sigma value with wildcards into a Hyperscan expression
// (exposed for tests). `mode` is one of "equals", "contains", "startswith", "endswith".
std::string SigmaValueToRegex(std::string_view value, std::string_view mode);

}  // namespace siper::rules

#include "rules/engine.h"

#include <arpa/inet.h>
#include <hs/hs.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "rules/cache_file.h"
#include "rules/compiled.h"
#include "rules/correlation.h"
#include "rules/db_cache.h"
#include "rules/decoder.h"
#include "rules/ioc.h"
#include "rules/parse_cache.h"
#include "rules/sigma.h"
#include "rules/strutil.h"

namespace siper::rules {

absl::StatusOr<InputFormat> ParseInputFormat(std::string_view name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "syslog") return InputFormat::kSyslog;
  if (name == "json") return InputFormat::kJson;
  return absl::InvalidArgumentError(
      strutil::StrCat("unknown input format '", name, "' (use auto, syslog or json)"));
}

std::string_view RuleDiagnosticStatusName(RuleDiagnostic::Status status) {
  switch (status) {
    case RuleDiagnostic::Status::kOk:
      return "ok";
    case RuleDiagnostic::Status::kUnsupported:
      return "unsupported";
    case RuleDiagnostic::Status::kError:
      return "error";
  }
  return "error";
}

DetectionFields::DetectionFields(std::span<const value_type> entries) : size_(entries.size()) {
  if (entries.empty()) return;
  static_assert(alignof(value_type) <= alignof(uint64_t));
  size_t text = 0;
  for (const auto& [k, v] : entries) text += k.size() + v.size();
  const size_t head = entries.size() * sizeof(value_type);
  std::shared_ptr<uint64_t[]> buffer =
      std::make_shared_for_overwrite<uint64_t[]>((head + text + 7) / 8);
  char* base = reinterpret_cast<char*>(buffer.get());
  char* out = base + head;
  auto copy = [&out](std::string_view s) {
    if (s.empty()) return std::string_view();
    std::memcpy(out, s.data(), s.size());
    out += s.size();
    return std::string_view(out - s.size(), s.size());
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string_view k = copy(entries[i].first);
    const std::string_view v = copy(entries[i].second);
    new (base + i * sizeof(value_type)) value_type(k, v);
  }
  buffer_ = std::move(buffer);
}

DetectionFields::DetectionFields(const FieldMap& fields) {
  std::vector<value_type> views(fields.begin(), fields.end());
  *this = DetectionFields(std::span<const value_type>(views));
}

FieldMap DetectionFields::ToMap() const {
  FieldMap out;
  for (const auto& [k, v] : *this) out.emplace(std::string(k), std::string(v));
  return out;
}

bool DetectionFields::operator==(const FieldMap& other) const { return ToMap() == other; }

DetectionFields::const_iterator DetectionFields::find(std::string_view name) const {
  for (const_iterator it = begin(); it != end(); ++it) {
    if (it->first == name) return it;
  }
  return end();
}

std::string_view DetectionFields::at(std::string_view name) const {
  const_iterator it = find(name);
  if (it == end()) throw std::out_of_range(strutil::StrCat("no field ", name));
  return it->second;
}

namespace {

struct SourceFile {
  std::string path;
  std::string text;
};

absl::StatusOr<std::vector<SourceFile>> ReadRuleFiles(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return absl::NotFoundError(
        strutil::StrCat("rules directory ", dir.string(), " does not exist"));
  }
  std::vector<std::filesystem::path> paths;
  if (std::filesystem::is_regular_file(dir, ec)) {
    paths.push_back(dir);
  } else {
    for (auto it = std::filesystem::recursive_directory_iterator(
             dir, std::filesystem::directory_options::follow_directory_symlink, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      // A `decoders` folder holds decoder files (rules/data_decoder.h), not rules.
      if (it->is_directory() && it->path().filename() == "decoders") {
        it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file()) continue;
      std::string ext = it->path().extension().string();
      if (ext == ".yml" || ext == ".yaml") paths.push_back(it->path());
    }
    if (ec) {
      return absl::InternalError(strutil::StrCat("listing ", dir.string(), ": ", ec.message()));
    }
  }
  std::sort(paths.begin(), paths.end());
  std::vector<SourceFile> out;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return absl::NotFoundError(strutil::StrCat("cannot read rule file ", p.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    out.push_back({p.string(), ss.str()});
  }
  return out;
}

bool PredicateIsPattern(const Predicate& p) { return p.kind == Predicate::Kind::kPatterns; }

// Whether a rule can match an event on which none of its patterns hit, in
// three-valued logic: pattern predicates are false, the others (exists, null,
// cidr, comparisons) unknown. Only such rules are evaluated on every event of
// their log source; the rest only when one of their atoms hit.
enum class Tri { kFalse, kTrue, kUnknown };

Tri EvalWithoutHits(const ParsedRule& r, const CondNode& n) {
  switch (n.op) {
    case CondNode::Op::kAnd: {
      Tri out = Tri::kTrue;
      for (const CondNode& k : n.kids) {
        Tri t = EvalWithoutHits(r, k);
        if (t == Tri::kFalse) return Tri::kFalse;
        if (t == Tri::kUnknown) out = Tri::kUnknown;
      }
      return out;
    }
    case CondNode::Op::kOr: {
      Tri out = Tri::kFalse;
      for (const CondNode& k : n.kids) {
        Tri t = EvalWithoutHits(r, k);
        if (t == Tri::kTrue) return Tri::kTrue;
        if (t == Tri::kUnknown) out = Tri::kUnknown;
      }
      return out;
    }
    case CondNode::Op::kNot: {
      Tri t = EvalWithoutHits(r, n.kids[0]);
      return t == Tri::kUnknown ? t : (t == Tri::kTrue ? Tri::kFalse : Tri::kTrue);
    }
    case CondNode::Op::kTrue:
      return Tri::kTrue;
    case CondNode::Op::kFalse:
      return Tri::kFalse;
    case CondNode::Op::kPred:
      return PredicateIsPattern(r.predicates[n.pred]) ? Tri::kFalse : Tri::kUnknown;
  }
  return Tri::kUnknown;
}

bool NeedsAlwaysEval(const ParsedRule& r) { return EvalWithoutHits(r, r.condition) != Tri::kFalse; }

// The literal a pattern matches as a whole value, when it is one: `^` + the
// escaping of sigma.cc's AppendEscaped (alnum, '_', ' ', \xHH) + `\z`, with no
// flags but caseless and dot-all (no dots in it). Hyperscan's caseless is
// ASCII-only without HS_FLAG_UTF8, as the lookup's lower-casing is.
bool UnescapeLiteral(std::string_view e, std::string* out);

bool ExactLiteral(const Pattern& p, std::string* out) {
  if ((p.flags & ~(HS_FLAG_CASELESS | HS_FLAG_DOTALL)) != 0) return false;
  std::string_view e = p.expr;
  if (e.size() < 3 || e.front() != '^' || !e.ends_with("\\z")) return false;
  return UnescapeLiteral(e.substr(1, e.size() - 3), out);
}

// The text of an escaped literal (AppendEscaped's alphabet only); false for
// anything else or an empty one.
bool UnescapeLiteral(std::string_view e, std::string* out) {
  out->clear();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < e.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(e[i]);
    if (std::isalnum(c) || c == '_' || c == ' ') {
      out->push_back(static_cast<char>(c));
    } else if (c == '\\' && i + 3 < e.size() && e[i + 1] == 'x' && hex(e[i + 2]) >= 0 &&
               hex(e[i + 3]) >= 0) {
      out->push_back(static_cast<char>(hex(e[i + 2]) * 16 + hex(e[i + 3])));
      i += 3;
    } else {
      return false;
    }
  }
  return !out->empty();
}

// A Sigma `contains`, `startswith` or `endswith` of one plain literal (sigma.cc's
// `lit`, `^lit`, `lit\z`, flags caseless and dot-all at most): a few of these on
// a field are searched by hand (LiteralScan) instead of by an hs_scan call,
// whose fixed cost (≈500 instructions) dominates on a short line.
struct LiteralScan {
  enum class Mode : uint8_t { kContains, kPrefix, kSuffix };
  std::string text;  // lower-cased when caseless
  uint32_t atom = 0;
  Mode mode = Mode::kContains;
  bool caseless = false;
  // kContains: the offset in `text` of the byte memchr looks for (one whose
  // case does not matter when caseless, the rarest kind found), or npos to
  // step through every position.
  size_t anchor = std::string::npos;
};

bool ParseLiteralScan(const Pattern& p, uint32_t atom, LiteralScan* out) {
  if ((p.flags & ~(HS_FLAG_CASELESS | HS_FLAG_DOTALL)) != 0) return false;
  std::string_view e = p.expr;
  const bool prefix = e.starts_with('^');
  const bool suffix = e.ends_with("\\z");
  if (prefix && suffix) return false;  // whole values go to the exact tables
  if (prefix) e.remove_prefix(1);
  if (suffix) e.remove_suffix(2);
  if (!UnescapeLiteral(e, &out->text)) return false;
  out->caseless = (p.flags & HS_FLAG_CASELESS) != 0;
  if (out->caseless) {
    for (char& c : out->text) c = strutil::AsciiLower(c);
  }
  out->atom = atom;
  out->mode = prefix   ? LiteralScan::Mode::kPrefix
              : suffix ? LiteralScan::Mode::kSuffix
                       : LiteralScan::Mode::kContains;
  // memchr's byte: punctuation first (rare in log text), then digits, then a
  // space; a letter only when the search is cased.
  int best = 0;
  for (size_t i = 0; i < out->text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out->text[i]);
    const bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    const int rank = letter                   ? (out->caseless ? 0 : 1)
                     : c == ' '               ? 2
                     : (c >= '0' && c <= '9') ? 3
                                              : 4;
    if (rank > best) {
      best = rank;
      out->anchor = i;
    }
  }
  return true;
}

// Whether the n bytes at `a` equal `lit` (lower-case when caseless; ASCII
// case folding only, as Hyperscan's caseless without HS_FLAG_UTF8).
inline bool SameText(const char* a, const std::string& lit, bool caseless) {
  const size_t n = lit.size();
  if (!caseless) return std::memcmp(a, lit.data(), n) == 0;
  for (size_t i = 0; i < n; ++i) {
    if (strutil::AsciiLower(a[i]) != lit[i]) return false;
  }
  return true;
}

bool LiteralFound(const LiteralScan& l, std::string_view v) {
  const size_t n = l.text.size();
  if (v.size() < n) return false;
  switch (l.mode) {
    case LiteralScan::Mode::kPrefix:
      return SameText(v.data(), l.text, l.caseless);
    case LiteralScan::Mode::kSuffix:
      return SameText(v.data() + v.size() - n, l.text, l.caseless);
    case LiteralScan::Mode::kContains:
      break;
  }
  const char* const first = v.data();
  const char* const last = v.data() + (v.size() - n);  // the last possible start
  if (l.anchor != std::string::npos) {
    const char byte = l.text[l.anchor];
    const char* p = first + l.anchor;
    const char* const end = last + l.anchor + 1;
    while (p < end) {
      p = static_cast<const char*>(std::memchr(p, byte, static_cast<size_t>(end - p)));
      if (p == nullptr) return false;
      if (SameText(p - l.anchor, l.text, l.caseless)) return true;
      ++p;
    }
    return false;
  }
  const char c0 = l.text[0];  // a letter: caseless, any position may hold it
  for (const char* p = first; p <= last; ++p) {
    if (strutil::AsciiLower(*p) == c0 && SameText(p, l.text, true)) return true;
  }
  return false;
}

std::string DescribePattern(const std::string& field, const Pattern& p) {
  return strutil::StrCat("field '", field.empty() ? "<keywords>" : field, "' pattern /", p.expr,
                         "/");
}

// Compiles one (log source, field) database with ids 0..n-1 (the caller adds
// the database's first atom id). Patterns Hyperscan rejects are left out and
// reported, so the caller can drop their rules.
absl::Status CompileDatabase(const std::vector<Pattern>& patterns, CompiledDatabase* out) {
  std::vector<bool> rejected(patterns.size(), false);
  while (true) {
    std::vector<const char*> exprs;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    for (uint32_t i = 0; i < patterns.size(); ++i) {
      if (rejected[i]) continue;
      exprs.push_back(patterns[i].expr.c_str());
      flags.push_back(patterns[i].flags | HS_FLAG_SINGLEMATCH);
      ids.push_back(i);
    }
    if (exprs.empty()) {
      out->db = nullptr;
      return absl::OkStatus();
    }
    hs_compile_error_t* err = nullptr;
    hs_error_t rc = hs_compile_multi(exprs.data(), flags.data(), ids.data(),
                                     static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr,
                                     &out->db, &err);
    if (rc == HS_SUCCESS) return absl::OkStatus();
    std::string msg = err != nullptr ? err->message : "unknown";
    int index = err != nullptr ? err->expression : -1;
    hs_free_compile_error(err);
    if (index < 0 || index >= static_cast<int>(ids.size())) {
      return absl::InternalError(strutil::StrCat("Hyperscan compile failed: ", msg));
    }
    rejected[ids[index]] = true;
    out->rejected.push_back(ids[index]);
    out->messages.push_back(msg);
  }
}

}  // namespace

// Builds the compiled rule set from parsed rules.
absl::StatusOr<std::unique_ptr<RuleSetImpl>> BuildRuleSet(std::vector<ParsedRule> parsed,
                                                          std::vector<RuleDiagnostic> diagnostics,
                                                          const LoadOptions& options) {
  auto impl = std::make_unique<RuleSetImpl>();
  std::vector<ParsedRule> correlations;
  for (ParsedRule& r : parsed) {
    if (r.is_correlation) {
      correlations.push_back(std::move(r));
    } else {
      CompiledRule cr;
      cr.rule = std::move(r);
      cr.program = CompileCondition(cr.rule.condition);
      for (const Predicate& p : cr.rule.predicates) {
        cr.pred_field_hash.push_back(EventFields::Hash(p.field));
      }
      impl->rules.push_back(std::move(cr));
    }
  }
  // Group by log source; std::map keeps the order (and so the databases) deterministic.
  std::map<LogSourceKey, std::vector<uint32_t>> by_source;
  for (uint32_t i = 0; i < impl->rules.size(); ++i) {
    by_source[impl->rules[i].rule.logsource].push_back(i);
  }
  std::map<uint32_t, std::string> rule_errors;  // rule -> unsupported message
  for (auto& [ls, members] : by_source) {
    RuleGroup group;
    group.logsource = ls;
    group.rules = members;
    const int gi = static_cast<int>(impl->groups.size());
    // field -> pattern -> (rule, predicate) users
    std::map<std::string, std::map<Pattern, std::vector<std::pair<uint32_t, uint32_t>>>> fields;
    for (uint32_t ri : members) {
      CompiledRule& cr = impl->rules[ri];
      cr.group = gi;
      cr.pred_atoms.resize(cr.rule.predicates.size());
      for (uint32_t pi = 0; pi < cr.rule.predicates.size(); ++pi) {
        const Predicate& p = cr.rule.predicates[pi];
        if (!PredicateIsPattern(p)) continue;
        for (const Pattern& pat : p.patterns) fields[p.field][pat].emplace_back(ri, pi);
      }
    }
    for (auto& [field, patterns] : fields) {
      // Atoms of one database get consecutive ids starting at `base`.
      const uint32_t base = static_cast<uint32_t>(impl->atom_rules.size());
      std::vector<Pattern> atoms;
      for (auto& [pat, users] : patterns) {
        const uint32_t atom = static_cast<uint32_t>(impl->atom_rules.size());
        std::vector<uint32_t> rules;
        for (auto [ri, pi] : users) {
          impl->rules[ri].pred_atoms[pi].push_back(atom);
          rules.push_back(ri);
        }
        std::sort(rules.begin(), rules.end());
        rules.erase(std::unique(rules.begin(), rules.end()), rules.end());
        impl->atom_rules.push_back(std::move(rules));
        atoms.push_back(pat);
      }
      FieldDatabase fdb;
      fdb.field = field;
      // Whole-value literals go to the hash tables, the rest to Hyperscan.
      std::vector<Pattern> scanned;
      std::string literal;
      for (uint32_t i = 0; i < atoms.size(); ++i) {
        if (ExactLiteral(atoms[i], &literal)) {
          if ((atoms[i].flags & HS_FLAG_CASELESS) != 0) {
            fdb.exact_caseless.Add(literal, base + i);
          } else {
            fdb.exact_cased.Add(literal, base + i);
          }
          fdb.exact_max_size = std::max(fdb.exact_max_size, literal.size());
        } else {
          fdb.db_atoms.push_back(base + i);
          scanned.push_back(atoms[i]);
        }
      }
      fdb.exact_cased.Build();
      fdb.exact_caseless.Build();
      CompiledDatabase compiled;
      std::string why;
      const std::string key =
          options.cache_dir.empty() || scanned.empty() ? "" : DatabaseKey(scanned);
      if (scanned.empty()) {
        // Nothing for Hyperscan.
      } else if (key.empty() ||
                 LoadCachedDatabase(options.cache_dir, key, &compiled, &why) != CacheRead::kOk) {
        // A damaged file (truncated, corrupt) is reported and replaced.
        if (!why.empty()) impl->cache_messages.push_back(std::exchange(why, {}));
        SIPER_RETURN_IF_ERROR(CompileDatabase(scanned, &compiled));
        if (!key.empty()) StoreCachedDatabase(options.cache_dir, key, compiled);
      } else {
        ++impl->cache_hits;
      }
      fdb.db = compiled.db;
      for (size_t k = 0; k < compiled.rejected.size(); ++k) {
        const uint32_t atom = fdb.db_atoms[compiled.rejected[k]];
        for (uint32_t ri : impl->atom_rules[atom]) {
          const CompiledRule& cr = impl->rules[ri];
          int line = cr.rule.line;
          for (uint32_t pi = 0; pi < cr.pred_atoms.size(); ++pi) {
            const auto& v = cr.pred_atoms[pi];
            if (std::find(v.begin(), v.end(), atom) != v.end()) line = cr.rule.predicates[pi].line;
          }
          rule_errors.emplace(
              ri, strutil::StrCat(cr.rule.path, ":", line, ": Hyperscan cannot compile ",
                                  DescribePattern(field, atoms[atom - base]), ": ",
                                  compiled.messages[k]));
        }
      }
      fdb.pattern_count = atoms.size() - compiled.rejected.size();
      if (fdb.db != nullptr) {
        std::vector<bool> rejected(scanned.size(), false);
        for (uint32_t k : compiled.rejected) rejected[k] = true;
        for (size_t k = 0; k < scanned.size(); ++k) {
          if (rejected[k]) continue;
          fdb.scan_patterns.push_back(std::move(scanned[k]));
          fdb.scan_atoms.push_back(fdb.db_atoms[k]);
        }
      }
      if (fdb.db != nullptr || fdb.exact_max_size > 0) group.databases.push_back(std::move(fdb));
    }
    impl->groups.push_back(std::move(group));
  }
  for (const auto& [ri, msg] : rule_errors) {
    CompiledRule& cr = impl->rules[ri];
    cr.enabled = false;
    RuleDiagnostic d{cr.rule.path, cr.rule.id, RuleDiagnostic::Status::kUnsupported, msg};
    impl->skipped.push_back(d);
    diagnostics.push_back(d);
  }
  for (auto& a : impl->atom_rules) {
    a.erase(
        std::remove_if(a.begin(), a.end(), [&](uint32_t ri) { return !impl->rules[ri].enabled; }),
        a.end());
  }
  for (RuleGroup& g : impl->groups) {
    for (uint32_t ri : g.rules) {
      if (impl->rules[ri].enabled && NeedsAlwaysEval(impl->rules[ri].rule)) g.always.push_back(ri);
    }
  }
  // Correlations reference detection rules, or other correlations, by id or
  // name. Member ids: detection rule i is i, correlation j is rules.size() + j.
  const uint32_t num_rules = static_cast<uint32_t>(impl->rules.size());
  auto reject = [&](const ParsedRule& r, const std::string& problem) {
    RuleDiagnostic d{r.path, r.id, RuleDiagnostic::Status::kUnsupported, problem};
    impl->skipped.push_back(d);
    diagnostics.push_back(d);
  };
  for (ParsedRule& r : correlations) {
    const auto cmp = r.correlation.cmp;
    if (cmp == CorrelationSpec::Cmp::kLt || cmp == CorrelationSpec::Cmp::kLte) {
      reject(r, strutil::StrCat(r.path, ":", r.line,
                                ": correlation conditions lt/lte (absence within a window)"));
      continue;
    }
    CompiledCorrelation cc;
    cc.rule = std::move(r);
    impl->correlations.push_back(std::move(cc));
  }
  // A reference names every rule with that id or name: the documents of one rule
  // collection (action: global/repeat) share the collection's id, and a correlation
  // over it counts the matches of all of them as one referenced rule.
  std::map<std::string, std::vector<uint32_t>> by_ref;
  auto add_ref = [&by_ref](const std::string& ref, uint32_t index) {
    if (ref.empty()) return;
    std::vector<uint32_t>& v = by_ref[ref];
    if (std::find(v.begin(), v.end(), index) == v.end()) v.push_back(index);
  };
  for (uint32_t i = 0; i < num_rules; ++i) {
    if (!impl->rules[i].enabled) continue;
    add_ref(impl->rules[i].rule.id, i);
    add_ref(impl->rules[i].rule.name, i);
  }
  for (uint32_t j = 0; j < impl->correlations.size(); ++j) {
    const ParsedRule& r = impl->correlations[j].rule;
    add_ref(r.id, num_rules + j);
    add_ref(r.name, num_rules + j);
  }
  std::vector<std::string> problems(impl->correlations.size());
  for (uint32_t j = 0; j < impl->correlations.size(); ++j) {
    CompiledCorrelation& cc = impl->correlations[j];
    const std::vector<std::string>& refs = cc.rule.correlation.rules;
    for (uint32_t slot = 0; slot < refs.size(); ++slot) {
      auto it = by_ref.find(refs[slot]);
      if (it == by_ref.end()) {
        problems[j] = strutil::StrCat(cc.rule.path, ":", cc.rule.line,
                                      ": correlation references unknown rule '", refs[slot], "'");
        break;
      }
      if (std::find(it->second.begin(), it->second.end(), num_rules + j) != it->second.end()) {
        problems[j] =
            strutil::StrCat(cc.rule.path, ":", cc.rule.line, ": correlation references itself");
        break;
      }
      for (uint32_t index : it->second) {
        cc.members.push_back(index);
        cc.member_slots.push_back(slot);
      }
    }
  }
  // A correlation over a rejected one, or on a cycle, is rejected too.
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t j = 0; j < impl->correlations.size(); ++j) {
      if (!problems[j].empty()) continue;
      const CompiledCorrelation& cc = impl->correlations[j];
      for (uint32_t m : cc.members) {
        if (m >= num_rules && !problems[m - num_rules].empty()) {
          problems[j] = strutil::StrCat(cc.rule.path, ":", cc.rule.line,
                                        ": correlation references a rejected correlation");
          changed = true;
          break;
        }
      }
    }
  }
  {
    // Depth-first search for cycles among correlations.
    std::vector<int> state(impl->correlations.size(), 0);  // 0 new, 1 on stack, 2 done
    std::function<bool(uint32_t)> cyclic = [&](uint32_t j) {
      if (state[j] == 1) return true;
      if (state[j] == 2) return false;
      state[j] = 1;
      for (uint32_t m : impl->correlations[j].members) {
        if (m >= num_rules && cyclic(m - num_rules)) return true;
      }
      state[j] = 2;
      return false;
    };
    for (uint32_t j = 0; j < impl->correlations.size(); ++j) {
      std::fill(state.begin(), state.end(), 0);
      if (problems[j].empty() && cyclic(j)) {
        problems[j] =
            strutil::StrCat(impl->correlations[j].rule.path, ":", impl->correlations[j].rule.line,
                            ": correlation rules reference each other in a cycle");
      }
    }
  }
  for (uint32_t j = 0; j < impl->correlations.size(); ++j) {
    CompiledCorrelation& cc = impl->correlations[j];
    if (!problems[j].empty()) {
      cc.enabled = false;
      reject(cc.rule, problems[j]);
      continue;
    }
    for (uint32_t m : cc.members) {
      auto& v =
          m < num_rules ? impl->rules[m].correlations : impl->correlations[m - num_rules].parents;
      if (std::find(v.begin(), v.end(), j) == v.end()) v.push_back(j);
    }
  }
  // A rule referenced only by correlations that do not `generate` stays silent.
  for (CompiledRule& cr : impl->rules) {
    if (cr.correlations.empty()) continue;
    cr.emit = std::any_of(cr.correlations.begin(), cr.correlations.end(), [&](uint32_t ci) {
      return impl->correlations[ci].enabled && impl->correlations[ci].rule.correlation.generate;
    });
  }
  for (RuleGroup& g : impl->groups) {
    for (FieldDatabase& d : g.databases) {
      if (d.db == nullptr) continue;  // whole-value literals only
      if (hs_alloc_scratch(d.db, &impl->prototype_scratch) != HS_SUCCESS) {
        return absl::ResourceExhaustedError("cannot allocate Hyperscan scratch");
      }
    }
  }
  impl->diagnostics = std::move(diagnostics);
  impl->cache_dir = options.cache_dir;
  impl->on_cache_message = options.on_cache_message;
  // Whether any rule reads `@timestamp` (a predicate, a field reference,
  // suppression or correlation fields): the matcher then sets it before
  // matching instead of only for detections.
  auto is_ts = [](const std::string& f) { return f == "@timestamp"; };
  auto any_ts = [&](const std::vector<std::string>& v) {
    return std::any_of(v.begin(), v.end(), is_ts);
  };
  for (const CompiledRule& cr : impl->rules) {
    for (const Predicate& p : cr.rule.predicates) {
      if (is_ts(p.field) || is_ts(p.ref_field)) impl->reads_timestamp = true;
    }
    if (any_ts(cr.rule.suppress_by)) impl->reads_timestamp = true;
  }
  for (const CompiledCorrelation& cc : impl->correlations) {
    const ParsedRule& r = cc.rule;
    if (any_ts(r.suppress_by) || any_ts(r.correlation.group_by) || is_ts(r.correlation.value_field))
      impl->reads_timestamp = true;
  }
  return impl;
}

const MergedDatabase& RuleSetImpl::Merged(const std::vector<const FieldDatabase*>& parts) const {
  std::lock_guard<std::mutex> lock(merged_mu_);
  std::unique_ptr<MergedDatabase>& slot = merged_[parts];
  if (slot != nullptr) return *slot;
  slot = std::make_unique<MergedDatabase>();
  // The parts' patterns back to back, in route order: the same parts always
  // give the same database (and cache key).
  std::vector<Pattern> patterns;
  std::vector<uint32_t> atoms;
  for (const FieldDatabase* d : parts) {
    patterns.insert(patterns.end(), d->scan_patterns.begin(), d->scan_patterns.end());
    atoms.insert(atoms.end(), d->scan_atoms.begin(), d->scan_atoms.end());
  }
  if (patterns.size() > RuleSetImpl::kMaxMergedPatterns)
    return *slot;  // compile time: scan the parts
  CompiledDatabase compiled;
  std::string why;
  const std::string key = cache_dir.empty() ? "" : DatabaseKey(patterns);
  if (key.empty() || LoadCachedDatabase(cache_dir, key, &compiled, &why) != CacheRead::kOk) {
    // A damaged file (truncated, corrupt) is reported as at load time, then
    // compiled again and replaced.
    if (!why.empty()) {
      if (on_cache_message) on_cache_message(why);
      merged_cache_messages_.push_back(std::move(why));
    }
    // Every pattern compiled in its own database already; a failure here
    // (e.g. a resource limit) only means the parts are scanned one by one.
    if (!CompileDatabase(patterns, &compiled).ok() || !compiled.rejected.empty()) {
      hs_free_database(compiled.db);
      return *slot;
    }
    if (!key.empty()) StoreCachedDatabase(cache_dir, key, compiled);
  } else {
    ++merged_cache_hits_;
  }
  slot->db = compiled.db;
  slot->atoms = std::move(atoms);
  return *slot;
}

void RuleSetImpl::AddMergedStats(RuleSetStats* stats) const {
  std::lock_guard<std::mutex> lock(merged_mu_);
  for (const auto& [parts, m] : merged_) {
    if (m->db == nullptr) continue;  // not merged: its parts are scanned
    ++stats->merged_databases;
    size_t bytes = 0;
    if (hs_database_size(m->db, &bytes) == HS_SUCCESS) stats->merged_database_bytes += bytes;
  }
  stats->merged_cache_hits += merged_cache_hits_;
  stats->cache_messages.insert(stats->cache_messages.end(), merged_cache_messages_.begin(),
                               merged_cache_messages_.end());
}

namespace {

absl::StatusOr<std::unique_ptr<RuleSetImpl>> ParseAndBuild(const std::vector<SourceFile>& files,
                                                           const LoadOptions& options) {
  const bool skip_errors = options.skip_errors;
  std::vector<ParsedRule> parsed;
  std::vector<RuleDiagnostic> diagnostics;
  std::vector<RuleDiagnostic> skipped;
  std::vector<std::string> errors;
  // YAML parsing dominates a cached load: reuse the parsed form when every
  // file is unchanged, else parse the files on every core and merge them in
  // path order (the result does not depend on threads).
  std::vector<ParsedFile> parsed_files;
  std::string parse_key;
  if (!options.cache_dir.empty()) {
    std::vector<std::pair<std::string, std::string>> keyed;
    keyed.reserve(files.size());
    for (const SourceFile& f : files) keyed.emplace_back(f.path, f.text);
    parse_key = ParsedRulesKey(keyed);
  }
  std::string parse_cache_message;
  if (parse_key.empty() || LoadParsedRules(options.cache_dir, parse_key, &parsed_files,
                                           &parse_cache_message) != CacheRead::kOk) {
    parsed_files.assign(files.size(), ParsedFile{});
    const size_t workers = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()),
                                            (files.size() + 63) / 64);
    if (workers <= 1) {
      for (size_t i = 0; i < files.size(); ++i) {
        parsed_files[i] = ParseRuleText(files[i].text, files[i].path);
      }
    } else {
      std::atomic<size_t> next{0};
      std::vector<std::thread> threads;
      for (size_t w = 0; w < workers; ++w) {
        threads.emplace_back([&] {
          for (size_t i = next++; i < files.size(); i = next++) {
            parsed_files[i] = ParseRuleText(files[i].text, files[i].path);
          }
        });
      }
      for (std::thread& t : threads) t.join();
    }
    if (!parse_key.empty()) StoreParsedRules(options.cache_dir, parse_key, parsed_files);
  }
  // A rule id names one rule: a second file using it is an error (within one file,
  // ParseRuleText allows it only for the documents of a rule collection).
  std::map<std::string, std::pair<std::string, int>, std::less<>> first_by_id;
  for (ParsedFile& pf : parsed_files) {
    for (ParsedRule& r : pf.rules) {
      if (!r.id.empty()) {
        auto [it, fresh] = first_by_id.try_emplace(r.id, r.path, r.line);
        if (!fresh && it->second.first != r.path) {
          RuleDiagnostic d{
              r.path, r.id, RuleDiagnostic::Status::kError,
              strutil::StrCat(r.path, ":", r.line, ": duplicate rule id '", r.id, "' (also in ",
                              it->second.first, ":", it->second.second, ")")};
          errors.push_back(d.message);
          skipped.push_back(d);
          diagnostics.push_back(std::move(d));
          continue;
        }
      }
      diagnostics.push_back({r.path, r.id, RuleDiagnostic::Status::kOk, ""});
      parsed.push_back(std::move(r));
    }
    for (RuleDiagnostic& d : pf.diagnostics) {
      if (d.status == RuleDiagnostic::Status::kError) errors.push_back(d.message);
      skipped.push_back(d);
      diagnostics.push_back(std::move(d));
    }
  }
  if (!errors.empty() && !skip_errors) {
    std::string msg =
        absl::StrJoin(errors.begin(), errors.begin() + std::min<size_t>(errors.size(), 5), "\n");
    if (errors.size() > 5)
      strutil::StrAppend(&msg, "\n... and ", errors.size() - 5, " more errors");
    return absl::InvalidArgumentError(msg);
  }
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<RuleSetImpl> impl,
                         BuildRuleSet(std::move(parsed), std::move(diagnostics), options));
  // Compile-time problems replace the provisional "ok" of their rule.
  std::map<std::pair<std::string, std::string>, const RuleDiagnostic*> late;
  for (const RuleDiagnostic& d : impl->skipped) late[{d.path, d.rule_id}] = &d;
  std::vector<RuleDiagnostic> merged;
  for (RuleDiagnostic& d : impl->diagnostics) {
    if (d.status == RuleDiagnostic::Status::kOk) {
      auto it = late.find({d.path, d.rule_id});
      if (it != late.end()) continue;
    }
    merged.push_back(std::move(d));
  }
  impl->diagnostics = std::move(merged);
  impl->skipped.insert(impl->skipped.begin(), skipped.begin(), skipped.end());
  if (!parse_cache_message.empty()) {
    impl->cache_messages.insert(impl->cache_messages.begin(), std::move(parse_cache_message));
  }
  // Every file this rule set needs was just read (and so marked used) or written.
  if (!options.cache_dir.empty()) PruneCacheFiles(options.cache_dir);
  return impl;
}

}  // namespace

RuleSet::RuleSet(std::unique_ptr<RuleSetImpl> impl) : impl_(std::move(impl)) {}
RuleSet::~RuleSet() = default;

absl::StatusOr<std::shared_ptr<const RuleSet>> RuleSet::Load(const std::filesystem::path& dir) {
  return Load(dir, LoadOptions{});
}

absl::StatusOr<std::shared_ptr<const RuleSet>> RuleSet::Load(const std::filesystem::path& dir,
                                                             const LoadOptions& options) {
  SIPER_ASSIGN_OR_RETURN(std::vector<SourceFile> files, ReadRuleFiles(dir));
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<RuleSetImpl> impl, ParseAndBuild(files, options));
  SIPER_ASSIGN_OR_RETURN(impl->decoders, DataDecoderSet::LoadDir(dir / "decoders"));
  return std::shared_ptr<const RuleSet>(new RuleSet(std::move(impl)));
}

absl::StatusOr<std::shared_ptr<const RuleSet>> RuleSet::LoadFromString(std::string_view yaml,
                                                                       std::string_view name) {
  std::vector<SourceFile> files = {{std::string(name), std::string(yaml)}};
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<RuleSetImpl> impl, ParseAndBuild(files, LoadOptions{}));
  return std::shared_ptr<const RuleSet>(new RuleSet(std::move(impl)));
}

std::vector<RuleDiagnostic> RuleSet::Lint(const std::filesystem::path& dir) {
  absl::StatusOr<std::vector<SourceFile>> files = ReadRuleFiles(dir);
  if (!files.ok()) {
    return {
        {dir.string(), "", RuleDiagnostic::Status::kError, std::string(files.status().message())}};
  }
  LoadOptions options;
  options.skip_errors = true;
  absl::StatusOr<std::unique_ptr<RuleSetImpl>> impl = ParseAndBuild(*files, options);
  if (!impl.ok()) {
    return {
        {dir.string(), "", RuleDiagnostic::Status::kError, std::string(impl.status().message())}};
  }
  std::vector<RuleDiagnostic> diagnostics = (*impl)->diagnostics;
  absl::StatusOr<std::shared_ptr<const DataDecoderSet>> decoders =
      DataDecoderSet::LoadDir(dir / "decoders");
  if (!decoders.ok()) {
    diagnostics.push_back({(dir / "decoders").string(), "", RuleDiagnostic::Status::kError,
                           std::string(decoders.status().message())});
  }
  return diagnostics;
}

size_t RuleSet::rule_count() const {
  size_t n = 0;
  for (const auto& c : impl_->correlations) n += c.enabled ? 1 : 0;
  for (const auto& r : impl_->rules) n += r.enabled ? 1 : 0;
  return n;
}

RuleSetStats RuleSet::stats() const {
  RuleSetStats st;
  st.rules = rule_count();
  st.log_sources = impl_->groups.size();
  st.cache_hits = impl_->cache_hits;
  st.cache_messages = impl_->cache_messages;
  for (const RuleGroup& g : impl_->groups) {
    for (const FieldDatabase& d : g.databases) {
      st.patterns += d.pattern_count;
      if (d.db == nullptr) continue;  // only whole-value literals (hash tables)
      ++st.databases;
      size_t bytes = 0;
      if (hs_database_size(d.db, &bytes) == HS_SUCCESS) st.database_bytes += bytes;
    }
  }
  impl_->AddMergedStats(&st);
  return st;
}

const std::vector<RuleDiagnostic>& RuleSet::skipped() const { return impl_->skipped; }
const DataDecoderSet* RuleSet::decoders() const { return impl_->decoders.get(); }

std::vector<RuleInfo> RuleSet::rules() const {
  std::vector<RuleInfo> out;
  auto info = [](const ParsedRule& r, bool corr) {
    RuleInfo i;
    i.path = r.path;
    i.id = r.id;
    i.title = r.title;
    i.level = r.level;
    i.tags = r.tags;
    i.rsit_class = r.rsit_class;
    i.rsit_type = r.rsit_type;
    i.correlation = corr;
    i.tests = r.tests;
    return i;
  };
  for (const auto& r : impl_->rules) {
    if (r.enabled) out.push_back(info(r.rule, false));
  }
  for (const auto& c : impl_->correlations) {
    if (c.enabled) out.push_back(info(c.rule, true));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Matching.

class MatcherState {
 public:
  explicit MatcherState(const RuleSetImpl* rs)
      : rs_(rs),
        bits_((rs->atom_rules.size() + 63) / 64, 0),
        hits_(rs->atom_rules.size(), 0),
        rule_epoch_(rs->rules.size(), 0),
        correlation_(rs) {
    // Fields view the line being processed instead of copying it (it outlives Match()).
    event_.borrow_line = true;
    // `@timestamp` is formatted only when it is read (Match()).
    event_.defer_timestamp = true;
    candidates_.assign(rs->rules.size(), 0);
  }
  ~MatcherState() { hs_free_scratch(scratch_); }

  absl::Status Init() {
    if (rs_->prototype_scratch != nullptr &&
        hs_clone_scratch(rs_->prototype_scratch, &scratch_) != HS_SUCCESS) {
      return absl::ResourceExhaustedError("cannot clone Hyperscan scratch");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format, FieldMap* fields_out,
                                                 DetectionFields* snapshot_out = nullptr);
  absl::StatusOr<std::vector<Detection>> ProcessFile(const FileObservation& file,
                                                     FieldMap* fields_out,
                                                     DetectionFields* snapshot_out = nullptr) {
    DecodeFileObservation(file, &event_);
    return Match(fields_out, snapshot_out);
  }
  const std::vector<uint32_t>& last_matched() const { return last_matched_; }
  void set_ioc(std::unique_ptr<IocScanner> ioc) { ioc_ = std::move(ioc); }

 private:
  static int OnMatch(unsigned int id, unsigned long long, unsigned long long, unsigned int,
                     void* ctx) {
    auto* self = static_cast<MatcherState*>(ctx);
    self->Hit(self->scan_atoms_[id]);
    return 0;
  }
  void Hit(uint32_t id) {
    uint64_t& word = bits_[id >> 6];
    const uint64_t mask = uint64_t{1} << (id & 63);
    if ((word & mask) == 0) {
      word |= mask;
      hits_[num_hits_++] = id;
    }
  }
  // Out of line, so that Match() stays small enough for the compiler to
  // inline its per-field lookups (EventFields::find).
  [[gnu::noinline]] void HitLiterals(const std::vector<LiteralScan>& literals, std::string_view v) {
    for (const LiteralScan& l : literals) {
      if (LiteralFound(l, v)) Hit(l.atom);
    }
  }
  [[gnu::always_inline]] void HitAll(const ExactTable& table, std::string_view value) {
    for (uint32_t atom : table.Find(value)) Hit(atom);
  }

  // The groups whose log source the event belongs to, in group order. Events
  // come from a handful of decoders, so the answer is cached per distinct
  // (products, services, categories); the cache is cleared when it holds
  // kMaxRoutes (services include syslog program names, which are open-ended).
  // Nothing is built per event: the lists are hashed (EventFields::Hash of
  // each name) and compared in place with the cached entry's key, the last
  // entry first (consecutive lines mostly come from the same decoder).
  static constexpr size_t kMaxRoutes = 4096;
  // One field the route's groups look at, with every table and database of
  // those groups for it: the event's value is looked up once per route field
  // (it was once per group and field), and the whole-value literals of all the
  // groups are one probe of one table per case (merged when several groups
  // have literals for the field).
  struct ScanDb {
    const hs_database_t* db;
    const uint32_t* atoms;  // Hyperscan id i is atom atoms[i]
  };
  struct RouteField {
    const std::string* name = nullptr;  // "" = the raw line
    uint64_t hash = 0;                  // EventFields::Hash(*name)
    const ExactTable* cased = nullptr;  // null when no group has cased literals
    const ExactTable* caseless = nullptr;
    size_t exact_max_size = 0;  // longer values match no literal
    std::vector<ScanDb> scans;  // Hyperscan databases for the field (one when merged)
    // Instead of `scans`, when the groups' scanned patterns for the field are
    // at most kMaxLiteralScans plain literals (LiteralScan).
    std::vector<LiteralScan> literals;
  };
  static constexpr size_t kMaxLiteralScans = 4;
  struct RouteEntry {
    // The (products, services, categories) lists the route was made for
    // (SameRoute): each list's length, then its names. A name that is a
    // string literal (LogSourceList::AddLiteral, nearly all) is a view of the
    // literal itself, so that the event's name is recognised by its address
    // alone; other names (syslog program names) are views of `text`, a copy
    // no event name can point into, and are compared byte by byte.
    std::array<uint32_t, 3> counts{};
    std::vector<std::string_view> names;
    std::unique_ptr<char[]> text;
    std::vector<uint32_t> groups;
    std::vector<RouteField> fields;                   // in order of first use by the groups
    std::vector<uint32_t> always;                     // the groups' `always` rules
    std::vector<std::unique_ptr<ExactTable>> merged;  // tables the fields own
  };
  // Builds e->fields and e->always from e->groups. A field scanned by several
  // groups gets their merged database (RuleSetImpl::Merged), which may grow
  // the scratch.
  absl::Status PlanRoute(RouteEntry* e) {
    const RuleSetImpl& rs = *rs_;
    std::vector<std::vector<const ExactTable*>> cased, caseless;
    std::vector<std::vector<const FieldDatabase*>> scanned;
    for (const uint32_t gi : e->groups) {
      const RuleGroup& g = rs.groups[gi];
      e->always.insert(e->always.end(), g.always.begin(), g.always.end());
      for (const FieldDatabase& d : g.databases) {
        size_t fi = 0;
        while (fi < e->fields.size() && *e->fields[fi].name != d.field) ++fi;
        if (fi == e->fields.size()) {
          RouteField f;
          f.name = &d.field;
          f.hash = EventFields::Hash(d.field);
          e->fields.push_back(std::move(f));
          cased.emplace_back();
          caseless.emplace_back();
          scanned.emplace_back();
        }
        RouteField& f = e->fields[fi];
        if (!d.exact_cased.empty()) cased[fi].push_back(&d.exact_cased);
        if (!d.exact_caseless.empty()) caseless[fi].push_back(&d.exact_caseless);
        f.exact_max_size = std::max(f.exact_max_size, d.exact_max_size);
        if (d.db != nullptr) scanned[fi].push_back(&d);
      }
    }
    for (size_t fi = 0; fi < e->fields.size(); ++fi) {
      size_t total = 0;
      for (const FieldDatabase* d : scanned[fi]) total += d->scan_patterns.size();
      if (total > 0 && total <= kMaxLiteralScans) {
        std::vector<LiteralScan> literals;
        for (const FieldDatabase* d : scanned[fi]) {
          for (size_t k = 0; k < d->scan_patterns.size(); ++k) {
            LiteralScan l;
            if (!ParseLiteralScan(d->scan_patterns[k], d->scan_atoms[k], &l)) break;
            literals.push_back(std::move(l));
          }
        }
        if (literals.size() == total) {
          e->fields[fi].literals = std::move(literals);
          continue;
        }
      }
      if (scanned[fi].size() > 1) {
        const MergedDatabase& m = rs.Merged(scanned[fi]);
        if (m.db != nullptr) {
          if (hs_alloc_scratch(m.db, &scratch_) != HS_SUCCESS) {
            return absl::ResourceExhaustedError("cannot allocate Hyperscan scratch");
          }
          e->fields[fi].scans.push_back({m.db, m.atoms.data()});
          continue;
        }
      }
      for (const FieldDatabase* d : scanned[fi]) {
        e->fields[fi].scans.push_back({d->db, d->db_atoms.data()});
      }
    }
    std::sort(e->always.begin(), e->always.end());
    auto merge = [e](const std::vector<const ExactTable*>& tables) -> const ExactTable* {
      if (tables.empty()) return nullptr;
      if (tables.size() == 1) return tables[0];
      auto table = std::make_unique<ExactTable>(tables[0]->caseless());
      for (const ExactTable* t : tables) table->AddAll(*t);
      table->Build();
      e->merged.push_back(std::move(table));
      return e->merged.back().get();
    };
    for (size_t fi = 0; fi < e->fields.size(); ++fi) {
      e->fields[fi].cased = merge(cased[fi]);
      e->fields[fi].caseless = merge(caseless[fi]);
    }
    return absl::OkStatus();
  }
  std::array<const LogSourceList*, 3> RouteLists() const {
    return {&event_.products, &event_.services, &event_.categories};
  }
  // Fills e->counts and e->names from the event's lists (see RouteEntry).
  void SetRouteNames(RouteEntry* e) const {
    const auto lists = RouteLists();
    size_t copied = 0;
    for (const auto* v : lists) {
      for (size_t i = 0; i < v->size(); ++i) {
        if (!v->IsLiteral(i)) copied += v->begin()[i].size();
      }
    }
    e->text = std::make_unique_for_overwrite<char[]>(copied + 1);
    char* out = e->text.get();
    for (size_t l = 0; l < lists.size(); ++l) {
      e->counts[l] = static_cast<uint32_t>(lists[l]->size());
      for (size_t i = 0; i < lists[l]->size(); ++i) {
        const std::string_view x = lists[l]->begin()[i];
        if (lists[l]->IsLiteral(i)) {
          e->names.push_back(x);
        } else {
          std::memcpy(out, x.data(), x.size());
          e->names.emplace_back(out, x.size());
          out += x.size();
        }
      }
    }
  }
  // Whether n bytes at a and b are equal; names here are short, so without a
  // memcmp call up to 16 bytes (overlapping loads, as EventFields::Copy).
  static bool SmallEqual(const char* a, const char* b, size_t n) {
    if (n > 16) return std::memcmp(a, b, n) == 0;
    if (n >= 8) return EndsEqual<uint64_t>(a, b, n);
    if (n >= 4) return EndsEqual<uint32_t>(a, b, n);
    return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
  }
  // The first and the last sizeof(Word) bytes of a and b (n >= sizeof(Word),
  // n <= 2 * sizeof(Word): together they cover all n bytes).
  template <typename Word>
  static bool EndsEqual(const char* a, const char* b, size_t n) {
    Word x0, x1, y0, y1;
    std::memcpy(&x0, a, sizeof(Word));
    std::memcpy(&y0, b, sizeof(Word));
    std::memcpy(&x1, a + n - sizeof(Word), sizeof(Word));
    std::memcpy(&y1, b + n - sizeof(Word), sizeof(Word));
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
  }
  // Whether the event's lists are the ones route `r` was made for: a literal
  // name by its address (the same literal), any other by its bytes.
  // Out of line, so that Match() stays small enough for the compiler to
  // inline its per-field lookups (EventFields::find).
  [[gnu::noinline]] bool SameRoute(const RouteEntry& r) const {
    const std::string_view* n = r.names.data();
    const auto lists = RouteLists();
    for (size_t l = 0; l < lists.size(); ++l) {
      if (lists[l]->size() != r.counts[l]) return false;
      for (std::string_view x : *lists[l]) {
        if (x.size() != n->size() ||
            (x.data() != n->data() && !SmallEqual(x.data(), n->data(), x.size()))) {
          return false;
        }
        ++n;
      }
    }
    return true;
  }
  // The route of the event (the last one, compared in place, when it is the
  // same), else FindRoute().
  const RouteEntry* LastRoute() const {
    return last_route_ != nullptr && SameRoute(*last_route_) ? last_route_ : nullptr;
  }
  // Kept out of line so that Match() stays small enough for the compiler to
  // inline its per-field lookups and probes.
  [[gnu::noinline]] absl::StatusOr<const RouteEntry*> FindRoute() {
    constexpr uint64_t kMul = 0x9fb21c651e98df25ULL;
    uint64_t h = 0;
    for (const auto* v : RouteLists()) {
      for (std::string_view x : *v) h = (h ^ EventFields::Hash(x)) * kMul;
      h = (h ^ (v->size() + 1)) * kMul;
      h ^= h >> 29;
    }
    auto [first, last] = routes_.equal_range(h);
    for (auto it = first; it != last; ++it) {
      if (SameRoute(it->second)) {
        last_route_ = &it->second;
        return last_route_;
      }
    }
    if (routes_.size() >= kMaxRoutes) {
      routes_.clear();
      last_route_ = nullptr;
    }
    RouteEntry e;
    SetRouteNames(&e);
    for (uint32_t gi = 0; gi < rs_->groups.size(); ++gi) {
      if (SourceMatches(rs_->groups[gi].logsource)) e.groups.push_back(gi);
    }
    SIPER_RETURN_IF_ERROR(PlanRoute(&e));
    last_route_ = &routes_.emplace(h, std::move(e))->second;  // nodes never move
    return last_route_;
  }

  bool SourceMatches(const LogSourceKey& ls) const {
    auto has = [](const LogSourceList& v, const std::string& s) {
      return s.empty() || v.contains(s);
    };
    return has(event_.products, ls.product) && has(event_.categories, ls.category) &&
           has(event_.services, ls.service);
  }

  // The value of field `name` (the raw line for ""), null when absent; valid
  // until the next event.
  const std::string_view* Field(const std::string& name) const {
    if (name.empty()) return &event_.raw;
    auto it = event_.fields.find(name);
    return it == event_.fields.end() ? nullptr : &it->second;
  }
  // The same, with hash == EventFields::Hash(name) (precomputed per predicate).
  const std::string_view* Field(const std::string& name, uint64_t hash) const {
    if (name.empty()) return &event_.raw;
    auto it = event_.fields.find(name, hash);
    return it == event_.fields.end() ? nullptr : &it->second;
  }

  // Matches the decoded event_ against the rules of its log sources.
  absl::StatusOr<std::vector<Detection>> Match(FieldMap* fields_out,
                                               DetectionFields* snapshot_out = nullptr);
  bool Bit(uint32_t atom) const { return (bits_[atom >> 6] >> (atom & 63)) & 1; }
  bool EvalPredicate(const CompiledRule& r, uint32_t pi) const;
  bool Eval(const CompiledRule& r) const {
    return RunCondition(r.program, [&](uint32_t pi) {
      // A string predicate (the only kind with atoms; nearly all) inline: a
      // call and EvalPredicate's switch per predicate were ≈0.15k a line in (a).
      const std::vector<uint32_t>& atoms = r.pred_atoms[pi];
      if (!atoms.empty()) {
        for (uint32_t atom : atoms) {
          if (Bit(atom)) return true;
        }
        return false;
      }
      return EvalPredicate(r, pi);
    });
  }

  const RuleSetImpl* rs_;
  hs_scratch_t* scratch_ = nullptr;
  std::vector<uint64_t> bits_;
  // Atoms hit by this event (the first num_hits_), and candidate rules (the first
  // num_candidates_): sized once for every atom and rule, as each is added at most
  // once per event, so adding is a store (push_back was an out-of-line call).
  std::vector<uint32_t> hits_;
  size_t num_hits_ = 0;
  std::vector<uint32_t> rule_epoch_;
  uint32_t epoch_ = 0;
  const uint32_t* scan_atoms_ = nullptr;  // atoms of the database being scanned, by Hyperscan id
  Event event_;
  std::unordered_multimap<uint64_t, RouteEntry> routes_;  // hash of the lists -> route
  const RouteEntry* last_route_ = nullptr;                // in routes_; null after a clear
  std::vector<uint32_t> candidates_;
  size_t num_candidates_ = 0;
  std::vector<uint32_t> last_matched_;
  CorrelationState correlation_;
  std::unique_ptr<IocScanner> ioc_;  // null: no IOC set
  std::vector<IocHit> ioc_hits_;
};

namespace {

bool ParseIp(std::string_view text, bool* v6, unsigned char* out) {
  char s[64];  // inet_pton wants a NUL-terminated string; no address is this long
  if (text.size() >= sizeof s) return false;
  std::memcpy(s, text.data(), text.size());
  s[text.size()] = '\0';
  if (inet_pton(AF_INET, s, out) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s, out) == 1) {
    *v6 = true;
    return true;
  }
  return false;
}

bool InCidr(const CidrRange& r, bool v6, const unsigned char* addr) {
  if (r.v6 != v6) return false;
  int bits = r.prefix;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    unsigned char mask = bits >= 8 ? 0xFF : static_cast<unsigned char>(0xFF << (8 - bits));
    if ((addr[i] & mask) != (r.addr[i] & mask)) return false;
  }
  return true;
}

}  // namespace

bool MatcherState::EvalPredicate(const CompiledRule& r, uint32_t pi) const {
  const Predicate& p = r.rule.predicates[pi];
  switch (p.kind) {
    case Predicate::Kind::kPatterns:
      for (uint32_t atom : r.pred_atoms[pi]) {
        if (Bit(atom)) return true;
      }
      return false;
    case Predicate::Kind::kExists:
      return Field(p.field, r.pred_field_hash[pi]) != nullptr;
    case Predicate::Kind::kAbsent: {
      const std::string_view* v = Field(p.field, r.pred_field_hash[pi]);
      return v == nullptr || v->empty();
    }
    case Predicate::Kind::kEmpty: {
      const std::string_view* v = Field(p.field, r.pred_field_hash[pi]);
      return v != nullptr && v->empty();
    }
    case Predicate::Kind::kCidr: {
      const std::string_view* v = Field(p.field, r.pred_field_hash[pi]);
      if (v == nullptr) return false;
      unsigned char addr[16];
      bool v6;
      if (!ParseIp(*v, &v6, addr)) return false;
      for (const CidrRange& c : p.cidrs) {
        if (InCidr(c, v6, addr)) return true;
      }
      return false;
    }
    case Predicate::Kind::kCompare: {
      const std::string_view* v = Field(p.field, r.pred_field_hash[pi]);
      double d;
      if (v == nullptr || !strutil::SimpleAtod(*v, &d)) return false;
      switch (p.compare) {
        case Predicate::Compare::kLt:
          return d < p.number;
        case Predicate::Compare::kLte:
          return d <= p.number;
        case Predicate::Compare::kGt:
          return d > p.number;
        case Predicate::Compare::kGte:
          return d >= p.number;
      }
      return false;
    }
    case Predicate::Kind::kFieldRef: {
      const std::string_view* a = Field(p.field, r.pred_field_hash[pi]);
      const std::string_view* b = Field(p.ref_field);
      if (a == nullptr || b == nullptr) return false;
      std::string x = p.cased ? std::string(*a) : strutil::AsciiStrToLower(*a);
      std::string y = p.cased ? std::string(*b) : strutil::AsciiStrToLower(*b);
      switch (p.ref_mode) {
        case Predicate::RefMode::kEquals:
          return x == y;
        case Predicate::RefMode::kContains:
          return strutil::StrContains(x, y);
        case Predicate::RefMode::kStartsWith:
          return strutil::StartsWith(x, y);
        case Predicate::RefMode::kEndsWith:
          return strutil::EndsWith(x, y);
      }
      return false;
    }
  }
  return false;
}

absl::StatusOr<std::vector<Detection>> MatcherState::Process(std::string_view line,
                                                             std::string_view source,
                                                             InputFormat format,
                                                             FieldMap* fields_out,
                                                             DetectionFields* snapshot_out) {
  SIPER_RETURN_IF_ERROR(DecodeLine(line, source, format, &event_));
  if (rs_->decoders != nullptr) rs_->decoders->Apply(&event_);
  return Match(fields_out, snapshot_out);
}

absl::StatusOr<std::vector<Detection>> MatcherState::Match(FieldMap* fields_out,
                                                           DetectionFields* snapshot_out) {
  // The threat.* namespace belongs to IOC enrichment (below): an event that
  // brings such fields of its own (an agent's or another tool's JSON) must not
  // pass for an IOC hit and trigger IOC rules, so they are dropped before
  // anything looks at the event (the raw line still holds them).
  event_.fields.erase_prefix(kThreatPrefix);
  // Decoding left `@timestamp` pending: it is set here when the IOC lookup (all
  // fields) or a rule of the set may read it, else only when the event's fields
  // are copied for a detection or for the caller (LazySnapshot, fields_out).
  if (event_.timestamp_pending && (ioc_ != nullptr || rs_->reads_timestamp)) {
    ResolveTimestamp(&event_);
  }
  if (ioc_ != nullptr) {
    // IOC lookup on the decoded fields and the raw line (log lines and file
    // observations alike); hits become threat.* fields, so IOC alerts are
    // ordinary Sigma rules (rules/ruleset/ioc).
    SIPER_ASSIGN_OR_RETURN(ioc_hits_, ioc_->MatchEvent(event_.fields, event_.raw));
    if (!ioc_hits_.empty()) {
      for (const auto& [name, value] : ThreatFields(&ioc_hits_))
        event_.fields.insert_or_assign(name, value);
    }
  }
  if (++epoch_ == 0) {
    std::fill(rule_epoch_.begin(), rule_epoch_.end(), 0);
    epoch_ = 1;
  }
  num_candidates_ = 0;
  const RouteEntry* route_ptr = LastRoute();
  if (route_ptr == nullptr) {
    SIPER_ASSIGN_OR_RETURN(route_ptr, FindRoute());
  }
  const RouteEntry& route = *route_ptr;
  for (const RouteField& f : route.fields) {
    // The field's hash is computed once per route; keyword rules scan the raw line.
    std::string_view v = event_.raw;
    if (!f.name->empty()) {
      auto it = event_.fields.find(*f.name, f.hash);
      if (it == event_.fields.end()) continue;
      v = it->second;
    }
    if (v.size() <= f.exact_max_size) {
      if (f.cased != nullptr) HitAll(*f.cased, v);
      if (f.caseless != nullptr) HitAll(*f.caseless, v);
    }
    // An empty value may be a null view, which hs_scan refuses (HS_INVALID: the
    // whole event used to fail with "hs_scan failed").
    if (!f.literals.empty()) HitLiterals(f.literals, v);
    const char* const data = v.empty() ? "" : v.data();
    for (const ScanDb& d : f.scans) {
      scan_atoms_ = d.atoms;
      hs_error_t rc = hs_scan(d.db, data, static_cast<unsigned>(v.size()), 0, scratch_,
                              &MatcherState::OnMatch, this);
      if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) {
        return absl::InternalError(strutil::StrCat("hs_scan failed with code ", rc));
      }
    }
  }
  for (size_t i = 0; i < num_hits_; ++i) {
    for (uint32_t ri : rs_->atom_rules[hits_[i]]) {
      if (rule_epoch_[ri] != epoch_) {
        rule_epoch_[ri] = epoch_;
        candidates_[num_candidates_++] = ri;
      }
    }
  }
  for (uint32_t ri : route.always) {
    if (rule_epoch_[ri] != epoch_) {
      rule_epoch_[ri] = epoch_;
      candidates_[num_candidates_++] = ri;
    }
  }
  const std::span<uint32_t> candidates(candidates_.data(), num_candidates_);
  std::sort(candidates.begin(), candidates.end());
  std::vector<Detection> out;
  LazySnapshot fields(&event_);
  last_matched_.clear();
  for (uint32_t ri : candidates) {
    const CompiledRule& cr = rs_->rules[ri];
    if (!cr.enabled || !Eval(cr)) continue;
    last_matched_.push_back(ri);
    if (cr.emit && !correlation_.Suppressed(ri, event_)) {
      Detection d;
      d.rule_id = cr.rule.id;
      d.title = cr.rule.title;
      d.level = cr.rule.level;
      d.tags = cr.rule.tags;
      d.fields = fields.Get();
      out.push_back(std::move(d));
    }
    if (!cr.correlations.empty()) correlation_.OnMatch(ri, event_, &fields, &out);
  }
  for (size_t i = 0; i < num_hits_; ++i) bits_[hits_[i] >> 6] = 0;
  num_hits_ = 0;
  if (fields_out != nullptr) {
    ResolveTimestamp(&event_);
    *fields_out = event_.fields.ToMap();
  }
  if (snapshot_out != nullptr) *snapshot_out = fields.Get();
  return out;
}

absl::StatusOr<std::vector<Detection>> Matcher::ProcessFile(const FileObservation& file,
                                                            FieldMap* fields_out) {
  return state_->ProcessFile(file, fields_out);
}

absl::StatusOr<std::vector<Detection>> Matcher::ProcessFile(const FileObservation& file,
                                                            DetectionFields* fields_out) {
  return state_->ProcessFile(file, nullptr, fields_out);
}

absl::StatusOr<std::vector<Detection>> Matcher::Process(std::string_view line,
                                                        std::string_view source, InputFormat format,
                                                        DetectionFields* fields_out) {
  return state_->Process(line, source, format, nullptr, fields_out);
}

std::vector<std::string> Matcher::LastMatchedRuleIds() const {
  std::vector<std::string> out;
  for (uint32_t ri : state_->last_matched()) out.push_back(rules_->impl().rules[ri].rule.id);
  return out;
}

Matcher::Matcher(std::shared_ptr<const RuleSet> rules, std::unique_ptr<MatcherState> state)
    : rules_(std::move(rules)), state_(std::move(state)) {}
Matcher::~Matcher() = default;

absl::StatusOr<std::unique_ptr<Matcher>> Matcher::Create(std::shared_ptr<const RuleSet> rules,
                                                         std::shared_ptr<const IocSet> ioc) {
  if (rules == nullptr) return absl::InvalidArgumentError("Matcher needs a rule set");
  auto state = std::make_unique<MatcherState>(&rules->impl());
  SIPER_RETURN_IF_ERROR(state->Init());
  std::unique_ptr<Matcher> matcher(new Matcher(std::move(rules), std::move(state)));
  SIPER_RETURN_IF_ERROR(matcher->SetIocSet(std::move(ioc)));
  return matcher;
}

absl::Status Matcher::SetIocSet(std::shared_ptr<const IocSet> ioc) {
  if (ioc == nullptr) {
    state_->set_ioc(nullptr);
    return absl::OkStatus();
  }
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<IocScanner> scanner, IocScanner::Create(std::move(ioc)));
  state_->set_ioc(std::move(scanner));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Detection>> Matcher::Process(std::string_view line,
                                                        std::string_view source, InputFormat format,
                                                        FieldMap* fields_out) {
  return state_->Process(line, source, format, fields_out);
}

}  // namespace siper::rules

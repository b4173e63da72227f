#include "rules/sigma.h"

#include <arpa/inet.h>
#include <hs/hs.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "re2/re2.h"
#include "rules/strutil.h"
#include "yaml-cpp/yaml.h"

namespace siper::rules {
namespace {

// Error kinds while parsing one document. kUnimplemented marks valid Sigma
// that Siper does not support.
absl::Status Err(const std::string& path, int line, std::string_view what) {
  return absl::InvalidArgumentError(strutil::StrCat(path, ":", line, ": ", what));
}
absl::Status Unsupported(const std::string& path, int line, std::string_view what) {
  return absl::UnimplementedError(strutil::StrCat(path, ":", line, ": ", what));
}
int LineOf(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

// A Sigma string: literal runs and wildcards.
struct Piece {
  enum class Kind { kLit, kStar, kOne, kDash };
  Kind kind;
  std::string lit;
};
using SigmaString = std::vector<Piece>;

void AppendLit(SigmaString* s, std::string_view text) {
  if (text.empty()) return;
  if (!s->empty() && s->back().kind == Piece::Kind::kLit) {
    s->back().lit.append(text);
  } else {
    s->push_back({Piece::Kind::kLit, std::string(text)});
  }
}

SigmaString ParseWildcards(std::string_view v) {
  SigmaString out;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\') {
      if (i + 1 < v.size() && (v[i + 1] == '*' || v[i + 1] == '?' || v[i + 1] == '\\')) {
        AppendLit(&out, v.substr(i + 1, 1));
        ++i;
      } else {
        AppendLit(&out, "\\");
      }
    } else if (c == '*') {
      out.push_back({Piece::Kind::kStar, {}});
    } else if (c == '?') {
      out.push_back({Piece::Kind::kOne, {}});
    } else {
      AppendLit(&out, v.substr(i, 1));
    }
  }
  return out;
}

SigmaString Literal(std::string_view v) {
  SigmaString out;
  AppendLit(&out, v);
  return out;
}

bool HasWildcards(const SigmaString& s) {
  for (const auto& p : s) {
    if (p.kind != Piece::Kind::kLit) return true;
  }
  return false;
}

std::string Concat(const SigmaString& s) {
  std::string out;
  for (const auto& p : s) out += p.lit;
  return out;
}

// UTF-8 into UTF-16 code units.
std::string Utf16(std::string_view utf8, bool big_endian) {
  std::string out;
  size_t i = 0;
  while (i < utf8.size()) {
    unsigned char c = utf8[i];
    uint32_t cp = c;
    int extra = 0;
    if (c >= 0xF0) {
      cp = c & 0x07;
      extra = 3;
    } else if (c >= 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if (c >= 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    }
    ++i;
    for (int k = 0; k < extra && i < utf8.size(); ++k, ++i) {
      cp = (cp << 6) | (static_cast<unsigned char>(utf8[i]) & 0x3F);
    }
    auto put = [&](uint16_t u) {
      if (big_endian) {
        out.push_back(static_cast<char>(u >> 8));
        out.push_back(static_cast<char>(u & 0xFF));
      } else {
        out.push_back(static_cast<char>(u & 0xFF));
        out.push_back(static_cast<char>(u >> 8));
      }
    };
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put(static_cast<uint16_t>(0xD800 + (cp >> 10)));
      put(static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      put(static_cast<uint16_t>(cp));
    }
  }
  return out;
}

void AppendEscaped(std::string* out, std::string_view lit) {
  for (unsigned char c : lit) {
    if (std::isalnum(c) || c == '_' || c == ' ') {
      out->push_back(static_cast<char>(c));
    } else {
      strutil::StrAppend(out, "\\x", strutil::Hex2(c));
    }
  }
}

std::string ToRegex(const SigmaString& s, std::string_view mode) {
  SigmaString v = s;
  bool anchor_start = mode == "equals" || mode == "startswith";
  bool anchor_end = mode == "equals" || mode == "endswith";
  // Leading/trailing stars make anchors pointless.
  while (!v.empty() && v.front().kind == Piece::Kind::kStar) {
    anchor_start = false;
    v.erase(v.begin());
  }
  while (!v.empty() && v.back().kind == Piece::Kind::kStar) {
    anchor_end = false;
    v.pop_back();
  }
  std::string out;
  if (anchor_start) out += "^";
  for (const auto& p : v) {
    switch (p.kind) {
      case Piece::Kind::kLit:
        AppendEscaped(&out, p.lit);
        break;
      case Piece::Kind::kStar:
        out += ".*";
        break;
      case Piece::Kind::kOne:
        out += ".";
        break;
      case Piece::Kind::kDash:
        // -, /, en dash, em dash, horizontal bar
        out += "(?:\\x2d|\\x2f|\\xe2\\x80\\x93|\\xe2\\x80\\x94|\\xe2\\x80\\x95)";
        break;
    }
  }
  if (anchor_end) out += "\\z";
  return out;
}

bool IsEmptyPattern(const SigmaString& s) {
  for (const auto& p : s) {
    if (p.kind != Piece::Kind::kStar && !(p.kind == Piece::Kind::kLit && p.lit.empty())) {
      return false;
    }
  }
  return true;
}

// Windows command-line flags may start with -, /, or unicode dashes.
SigmaString WinDash(const SigmaString& s) {
  SigmaString out;
  for (const auto& p : s) {
    if (p.kind != Piece::Kind::kLit) {
      out.push_back(p);
      continue;
    }
    size_t start = 0;
    for (size_t i = 0; i < p.lit.size(); ++i) {
      if (p.lit[i] == '-' || p.lit[i] == '/') {
        AppendLit(&out, std::string_view(p.lit).substr(start, i - start));
        out.push_back({Piece::Kind::kDash, {}});
        start = i + 1;
      }
    }
    AppendLit(&out, std::string_view(p.lit).substr(start));
  }
  return out;
}

std::vector<std::string> Base64Offsets(std::string_view value) {
  static constexpr int kStart[] = {0, 2, 3};
  static constexpr int kEnd[] = {0, 3, 2};
  std::vector<std::string> out;
  for (int i = 0; i < 3; ++i) {
    std::string padded = std::string(i, ' ') + std::string(value);
    std::string b64 = absl::Base64Escape(padded);
    size_t end_cut = kEnd[(value.size() + i) % 3];
    size_t begin = kStart[i];
    if (b64.size() < begin + end_cut) continue;
    out.push_back(b64.substr(begin, b64.size() - begin - end_cut));
  }
  return out;
}

bool ParseCidr(std::string_view text, CidrRange* out) {
  std::string_view addr = text;
  int prefix = -1;
  size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    if (!strutil::SimpleAtoi(text.substr(slash + 1), &prefix)) return false;
  }
  std::string a(addr);
  if (inet_pton(AF_INET, a.c_str(), out->addr) == 1) {
    out->v6 = false;
    out->prefix = prefix < 0 ? 32 : prefix;
    return out->prefix <= 32;
  }
  if (inet_pton(AF_INET6, a.c_str(), out->addr) == 1) {
    out->v6 = true;
    out->prefix = prefix < 0 ? 128 : prefix;
    return out->prefix <= 128;
  }
  return false;
}

struct FieldSpec {
  std::string field;
  std::vector<std::string> mods;
};

class DocParser {
 public:
  DocParser(const std::string& path, ParsedRule* rule) : path_(path), rule_(rule) {}

  absl::Status Parse(const YAML::Node& doc);

 private:
  absl::Status ParseDetection(const YAML::Node& det);
  absl::Status ParseTestIocs(const YAML::Node& node, RuleTestCase* tc);
  absl::StatusOr<CondNode> ParseSelection(const YAML::Node& sel);
  absl::StatusOr<CondNode> ParseFieldItem(const std::string& key, const YAML::Node& value);
  absl::StatusOr<CondNode> ParseCondition(std::string_view text, int line);
  absl::Status ParseCorrelation(const YAML::Node& corr);
  absl::Status ParseSiper(const YAML::Node& siper);

  uint32_t AddPredicate(Predicate p) {
    rule_->predicates.push_back(std::move(p));
    return static_cast<uint32_t>(rule_->predicates.size() - 1);
  }
  static CondNode PredNode(uint32_t idx) {
    CondNode n;
    n.op = CondNode::Op::kPred;
    n.pred = idx;
    return n;
  }

  const std::string& path_;
  ParsedRule* rule_;
  std::map<std::string, CondNode> selections_;
  std::vector<std::string> selection_order_;
  friend class ConditionParser;
};

std::string ScalarOr(const YAML::Node& n, std::string_view def = "") {
  if (n && n.IsScalar()) return n.Scalar();
  return std::string(def);
}

absl::StatusOr<CondNode> DocParser::ParseFieldItem(const std::string& key,
                                                   const YAML::Node& value) {
  const int line = LineOf(value);
  std::vector<std::string_view> parts = strutil::StrSplit(key, '|');
  FieldSpec spec;
  spec.field = std::string(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    spec.mods.push_back(strutil::AsciiStrToLower(parts[i]));
  }

  std::string mode = "equals";
  bool all = false, cased = false, is_re = false, exists = false, cidr = false, fieldref = false;
  bool base64 = false, base64offset = false;
  unsigned re_flags = 0;
  std::optional<Predicate::Compare> compare;
  std::vector<std::string> encoders;  // applied in order
  for (const std::string& m : spec.mods) {
    if (m == "contains" || m == "startswith" || m == "endswith") {
      mode = m;
    } else if (m == "all") {
      all = true;
    } else if (m == "cased") {
      cased = true;
    } else if (m == "re") {
      is_re = true;
    } else if (m == "i") {
      re_flags |= HS_FLAG_CASELESS;
    } else if (m == "m") {
      re_flags |= HS_FLAG_MULTILINE;
    } else if (m == "s") {
      re_flags |= HS_FLAG_DOTALL;
    } else if (m == "exists") {
      exists = true;
    } else if (m == "cidr") {
      cidr = true;
    } else if (m == "fieldref") {
      fieldref = true;
    } else if (m == "lt") {
      compare = Predicate::Compare::kLt;
    } else if (m == "lte") {
      compare = Predicate::Compare::kLte;
    } else if (m == "gt") {
      compare = Predicate::Compare::kGt;
    } else if (m == "gte") {
      compare = Predicate::Compare::kGte;
    } else if (m == "base64") {
      base64 = true;
      encoders.push_back(m);
    } else if (m == "base64offset") {
      base64offset = true;
      encoders.push_back(m);
    } else if (m == "wide" || m == "utf16le" || m == "utf16be" || m == "utf16" || m == "windash") {
      encoders.push_back(m);
    } else if (m == "expand") {
      return Unsupported(path_, line, "modifier 'expand' (placeholders) is not supported");
    } else {
      return Err(path_, line,
                 strutil::StrCat("unknown modifier '", m, "' on field '", spec.field, "'"));
    }
  }
  // Keywords (no field name) search the whole event, so they match as "contains".
  if (spec.field.empty() && mode == "equals") mode = "contains";
  if (base64 && base64offset) {
    return Err(path_, line, "modifiers 'base64' and 'base64offset' exclude each other");
  }

  std::vector<YAML::Node> values;
  if (value.IsSequence()) {
    for (const auto& v : value) values.push_back(v);
    if (values.empty())
      return Err(path_, line, strutil::StrCat("field '", key, "' has an empty list"));
  } else {
    values.push_back(value);
  }

  std::vector<CondNode> nodes;  // one per value (for 'all') or per predicate
  Predicate merged;             // OR of pattern alternatives when not 'all'
  merged.kind = Predicate::Kind::kPatterns;
  merged.field = spec.field;
  merged.line = line;
  for (const YAML::Node& v : values) {
    const int vline = LineOf(v);
    if (v.IsMap() || v.IsSequence()) {
      return Err(path_, vline, strutil::StrCat("field '", key, "' needs scalar values"));
    }
    Predicate p;
    p.field = spec.field;
    p.line = vline;
    p.cased = cased;
    if (exists) {
      std::string s = strutil::AsciiStrToLower(ScalarOr(v));
      if (s != "true" && s != "false") {
        return Err(path_, vline, "modifier 'exists' needs true or false");
      }
      p.kind = s == "true" ? Predicate::Kind::kExists : Predicate::Kind::kAbsent;
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
      continue;
    }
    if (v.IsNull()) {
      if (!spec.mods.empty() && !(spec.mods.size() == 1 && spec.mods[0] == "all")) {
        return Err(path_, vline, strutil::StrCat("null value with modifiers on '", key, "'"));
      }
      p.kind = Predicate::Kind::kAbsent;
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
      continue;
    }
    std::string text = v.Scalar();
    if (cidr) {
      p.kind = Predicate::Kind::kCidr;
      CidrRange r;
      if (!ParseCidr(text, &r)) {
        return Err(path_, vline,
                   strutil::StrCat("modifier 'cidr' needs a network, got '", text, "'"));
      }
      p.cidrs.push_back(r);
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
      continue;
    }
    if (compare) {
      p.kind = Predicate::Kind::kCompare;
      p.compare = *compare;
      if (!strutil::SimpleAtod(text, &p.number)) {
        return Err(path_, vline,
                   strutil::StrCat("comparison modifier needs a number, got '", text, "'"));
      }
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
      continue;
    }
    if (fieldref) {
      p.kind = Predicate::Kind::kFieldRef;
      p.ref_field = text;
      p.ref_mode = mode == "contains"     ? Predicate::RefMode::kContains
                   : mode == "startswith" ? Predicate::RefMode::kStartsWith
                   : mode == "endswith"   ? Predicate::RefMode::kEndsWith
                                          : Predicate::RefMode::kEquals;
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
      continue;
    }
    std::vector<Pattern> pats;
    if (is_re) {
      if (mode != "equals")
        return Err(path_, vline, "modifier 're' cannot be combined with " + mode);
      hs_expr_info_t* info = nullptr;
      hs_compile_error_t* cerr = nullptr;
      unsigned flags = re_flags | HS_FLAG_ALLOWEMPTY;
      if (hs_expression_info(text.c_str(), flags, &info, &cerr) != HS_SUCCESS) {
        std::string msg = cerr != nullptr ? cerr->message : "unknown error";
        hs_free_compile_error(cerr);
        // A valid PCRE construct Hyperscan cannot run (back-references, look-arounds,
        // ...) makes the rule unsupported; a pattern no engine reads ("a(b") is an
        // error in the rule: Hyperscan did not call it unsupported and RE2 rejects it too.
        const bool hs_unsupported = strutil::StrContainsIgnoreCase(msg, "unsupported") ||
                                    strutil::StrContainsIgnoreCase(msg, "not supported");
        if (!hs_unsupported) {
          RE2::Options re2_options;
          re2_options.set_log_errors(false);
          RE2 re2(text, re2_options);
          if (!re2.ok()) {
            return Err(path_, vline,
                       strutil::StrCat("invalid regular expression (", msg, "): ", text));
          }
        }
        return Unsupported(
            path_, vline,
            strutil::StrCat("regular expression not supported by Hyperscan (", msg, "): ", text));
      }
      free(info);
      pats.push_back({text, flags});
    } else {
      // Encoders produce one or more byte strings; wildcards survive only
      // the text-preserving ones.
      std::vector<SigmaString> variants = {ParseWildcards(text)};
      bool encoded = false;
      for (const std::string& enc : encoders) {
        std::vector<SigmaString> next;
        for (const SigmaString& s : variants) {
          if (enc == "windash") {
            next.push_back(WinDash(s));
            continue;
          }
          if (enc == "wide" || enc == "utf16le" || enc == "utf16be" || enc == "utf16") {
            SigmaString o;
            if (enc == "utf16") AppendLit(&o, "\xFF\xFE");
            for (const auto& piece : s) {
              if (piece.kind == Piece::Kind::kLit) {
                AppendLit(&o, Utf16(piece.lit, enc == "utf16be"));
              } else {
                o.push_back(piece);
              }
            }
            next.push_back(std::move(o));
            continue;
          }
          if (HasWildcards(s)) {
            return Err(
                path_, vline,
                strutil::StrCat("modifier '", enc, "' cannot encode a value with wildcards"));
          }
          encoded = true;
          if (enc == "base64") {
            next.push_back(Literal(absl::Base64Escape(Concat(s))));
          } else {
            for (std::string& b : Base64Offsets(Concat(s))) next.push_back(Literal(b));
          }
        }
        variants = std::move(next);
      }
      bool case_sensitive = cased || encoded;
      for (const SigmaString& s : variants) {
        if (IsEmptyPattern(s)) {
          Predicate e;
          e.field = spec.field;
          e.line = vline;
          bool has_star = !s.empty();
          e.kind =
              (mode == "equals" && !has_star) ? Predicate::Kind::kEmpty : Predicate::Kind::kExists;
          nodes.push_back(PredNode(AddPredicate(std::move(e))));
          continue;
        }
        pats.push_back({ToRegex(s, mode), case_sensitive ? 0u : HS_FLAG_CASELESS});
      }
    }
    if (!is_re) {
      for (Pattern& pat : pats) pat.flags |= HS_FLAG_DOTALL;
    }
    if (pats.empty()) continue;
    if (all) {
      p.kind = Predicate::Kind::kPatterns;
      p.patterns = std::move(pats);
      nodes.push_back(PredNode(AddPredicate(std::move(p))));
    } else {
      for (Pattern& pat : pats) merged.patterns.push_back(std::move(pat));
    }
  }
  if (!merged.patterns.empty()) {
    std::sort(merged.patterns.begin(), merged.patterns.end());
    merged.patterns.erase(std::unique(merged.patterns.begin(), merged.patterns.end()),
                          merged.patterns.end());
    nodes.push_back(PredNode(AddPredicate(std::move(merged))));
  }
  if (nodes.size() == 1) return std::move(nodes[0]);
  CondNode n;
  n.op = all ? CondNode::Op::kAnd : CondNode::Op::kOr;
  n.kids = std::move(nodes);
  return n;
}

absl::StatusOr<CondNode> DocParser::ParseSelection(const YAML::Node& sel) {
  const int line = LineOf(sel);
  if (sel.IsMap()) {
    CondNode n;
    n.op = CondNode::Op::kAnd;
    for (auto it = sel.begin(); it != sel.end(); ++it) {
      std::string key = it->first.as<std::string>();
      absl::StatusOr<CondNode> item = ParseFieldItem(key, it->second);
      if (!item.ok()) return item.status();
      n.kids.push_back(*std::move(item));
    }
    if (n.kids.empty()) return Err(path_, line, "empty selection");
    if (n.kids.size() == 1) return std::move(n.kids[0]);
    return n;
  }
  if (sel.IsSequence()) {
    CondNode n;
    n.op = CondNode::Op::kOr;
    std::vector<YAML::Node> keywords;
    for (const auto& item : sel) {
      if (item.IsMap()) {
        absl::StatusOr<CondNode> sub = ParseSelection(item);
        if (!sub.ok()) return sub.status();
        n.kids.push_back(*std::move(sub));
      } else if (item.IsScalar()) {
        keywords.push_back(item);
      } else {
        return Err(path_, LineOf(item), "a selection list holds maps or keywords");
      }
    }
    if (!keywords.empty()) {
      YAML::Node list(YAML::NodeType::Sequence);
      for (auto& k : keywords) list.push_back(k);
      absl::StatusOr<CondNode> kw = ParseFieldItem("|contains", list);
      if (!kw.ok()) return kw.status();
      n.kids.push_back(*std::move(kw));
    }
    if (n.kids.empty()) return Err(path_, line, "empty selection");
    if (n.kids.size() == 1) return std::move(n.kids[0]);
    return n;
  }
  if (sel.IsScalar()) {
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(sel);
    return ParseFieldItem("|contains", list);
  }
  return Err(path_, line, "a selection must be a map, a list, or a keyword");
}

// Recursive-descent parser for Sigma conditions.
class ConditionParser {
 public:
  ConditionParser(DocParser* doc, std::string_view text, int line, const std::string& path)
      : doc_(doc), line_(line), path_(path) {
    size_t i = 0;
    while (i < text.size()) {
      char c = text[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
      } else if (c == '(' || c == ')' || c == '|') {
        tokens_.emplace_back(1, c);
        ++i;
      } else {
        size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) &&
               text[j] != '(' && text[j] != ')' && text[j] != '|') {
          ++j;
        }
        tokens_.emplace_back(text.substr(i, j - i));
        i = j;
      }
    }
  }

  absl::StatusOr<CondNode> Run() {
    for (const auto& t : tokens_) {
      if (t == "|")
        return Unsupported(path_, line_,
                           "aggregation in condition ('|') is deprecated and not supported");
      if (t == "near") return Unsupported(path_, line_, "'near' in condition is not supported");
    }
    absl::StatusOr<CondNode> n = ParseOr();
    if (!n.ok()) return n;
    if (pos_ != tokens_.size()) {
      return Err(path_, line_, strutil::StrCat("unexpected '", tokens_[pos_], "' in condition"));
    }
    return n;
  }

 private:
  bool Peek(std::string_view t) const {
    return pos_ < tokens_.size() && strutil::EqualsIgnoreCase(tokens_[pos_], t);
  }

  absl::StatusOr<CondNode> ParseOr() {
    absl::StatusOr<CondNode> left = ParseAnd();
    if (!left.ok()) return left;
    if (!Peek("or")) return left;
    CondNode n;
    n.op = CondNode::Op::kOr;
    n.kids.push_back(*std::move(left));
    while (Peek("or")) {
      ++pos_;
      absl::StatusOr<CondNode> r = ParseAnd();
      if (!r.ok()) return r;
      n.kids.push_back(*std::move(r));
    }
    return n;
  }
  absl::StatusOr<CondNode> ParseAnd() {
    absl::StatusOr<CondNode> left = ParseNot();
    if (!left.ok()) return left;
    if (!Peek("and")) return left;
    CondNode n;
    n.op = CondNode::Op::kAnd;
    n.kids.push_back(*std::move(left));
    while (Peek("and")) {
      ++pos_;
      absl::StatusOr<CondNode> r = ParseNot();
      if (!r.ok()) return r;
      n.kids.push_back(*std::move(r));
    }
    return n;
  }
  absl::StatusOr<CondNode> ParseNot() {
    if (Peek("not")) {
      ++pos_;
      absl::StatusOr<CondNode> inner = ParseNot();
      if (!inner.ok()) return inner;
      CondNode n;
      n.op = CondNode::Op::kNot;
      n.kids.push_back(*std::move(inner));
      return n;
    }
    return ParsePrimary();
  }
  absl::StatusOr<CondNode> ParsePrimary() {
    if (pos_ >= tokens_.size()) return Err(path_, line_, "condition ends too early");
    const std::string tok = tokens_[pos_];
    if (tok == "(") {
      ++pos_;
      absl::StatusOr<CondNode> inner = ParseOr();
      if (!inner.ok()) return inner;
      if (!Peek(")")) return Err(path_, line_, "missing ')' in condition");
      ++pos_;
      return inner;
    }
    if (tok == ")") return Err(path_, line_, "unexpected ')' in condition");
    if (pos_ + 1 < tokens_.size() && strutil::EqualsIgnoreCase(tokens_[pos_ + 1], "of")) {
      bool all;
      if (tok == "1" || strutil::EqualsIgnoreCase(tok, "any")) {
        all = false;
      } else if (strutil::EqualsIgnoreCase(tok, "all")) {
        all = true;
      } else {
        return Unsupported(path_, line_,
                           strutil::StrCat("'", tok, " of' (only '1 of' and 'all of')"));
      }
      pos_ += 2;
      if (pos_ >= tokens_.size()) return Err(path_, line_, "'of' needs a target");
      std::string target = tokens_[pos_++];
      CondNode n;
      n.op = all ? CondNode::Op::kAnd : CondNode::Op::kOr;
      bool them = strutil::EqualsIgnoreCase(target, "them");
      for (const std::string& name : doc_->selection_order_) {
        bool take = them ? !strutil::StartsWith(name, "_") : Glob(target, name);
        if (take) n.kids.push_back(doc_->selections_.at(name));
      }
      if (n.kids.empty()) {
        return Err(path_, line_, strutil::StrCat("'", target, "' names no selection"));
      }
      if (n.kids.size() == 1) return std::move(n.kids[0]);
      return n;
    }
    if (strutil::EqualsIgnoreCase(tok, "and") || strutil::EqualsIgnoreCase(tok, "or")) {
      return Err(path_, line_, strutil::StrCat("unexpected '", tok, "' in condition"));
    }
    ++pos_;
    auto it = doc_->selections_.find(tok);
    if (it == doc_->selections_.end()) {
      if (tok.find('*') != std::string::npos) {
        return Err(path_, line_, strutil::StrCat("wildcard '", tok, "' needs '1 of' or 'all of'"));
      }
      return Err(path_, line_, strutil::StrCat("condition names unknown selection '", tok, "'"));
    }
    return it->second;
  }

  static bool Glob(std::string_view pat, std::string_view s) {
    // '*' only, as Sigma identifiers use.
    size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
    while (i < s.size()) {
      if (p < pat.size() && pat[p] == '*') {
        star = p++;
        mark = i;
      } else if (p < pat.size() && pat[p] == s[i]) {
        ++p;
        ++i;
      } else if (star != std::string_view::npos) {
        p = star + 1;
        i = ++mark;
      } else {
        return false;
      }
    }
    while (p < pat.size() && pat[p] == '*') ++p;
    return p == pat.size();
  }

  DocParser* doc_;
  int line_;
  const std::string& path_;
  std::vector<std::string> tokens_;
  size_t pos_ = 0;
};

absl::StatusOr<CondNode> DocParser::ParseCondition(std::string_view text, int line) {
  ConditionParser p(this, text, line, path_);
  return p.Run();
}

absl::Status DocParser::ParseDetection(const YAML::Node& det) {
  if (!det.IsMap()) return Err(path_, LineOf(det), "'detection' must be a map");
  YAML::Node cond;
  for (auto it = det.begin(); it != det.end(); ++it) {
    std::string name = it->first.as<std::string>();
    if (name == "condition") {
      cond = it->second;
      continue;
    }
    if (name == "timeframe") {
      return Unsupported(path_, LineOf(it->first),
                         "'timeframe' in detection (use a correlation rule)");
    }
    absl::StatusOr<CondNode> sel = ParseSelection(it->second);
    if (!sel.ok()) return sel.status();
    selections_.emplace(name, *std::move(sel));
    selection_order_.push_back(name);
  }
  if (!cond) return Err(path_, LineOf(det), "detection has no 'condition'");
  if (cond.IsScalar()) {
    absl::StatusOr<CondNode> c = ParseCondition(cond.Scalar(), LineOf(cond));
    if (!c.ok()) return c.status();
    rule_->condition = *std::move(c);
    return absl::OkStatus();
  }
  if (cond.IsSequence()) {
    CondNode n;
    n.op = CondNode::Op::kOr;
    for (const auto& c : cond) {
      if (!c.IsScalar()) return Err(path_, LineOf(c), "condition must be text");
      absl::StatusOr<CondNode> sub = ParseCondition(c.Scalar(), LineOf(c));
      if (!sub.ok()) return sub.status();
      n.kids.push_back(*std::move(sub));
    }
    if (n.kids.empty()) return Err(path_, LineOf(cond), "empty condition list");
    rule_->condition = std::move(n);
    return absl::OkStatus();
  }
  return Err(path_, LineOf(cond), "condition must be text or a list");
}

absl::StatusOr<int64_t> ParseTimespan(std::string_view s) {
  if (s.empty()) return absl::InvalidArgumentError("empty timespan");
  char unit = s.back();
  int64_t n;
  if (!strutil::SimpleAtoi(s.substr(0, s.size() - 1), &n) || n <= 0) {
    return absl::InvalidArgumentError(strutil::StrCat("bad timespan '", s, "'"));
  }
  int64_t sec;
  switch (unit) {
    case 's':
      sec = 1;
      break;
    case 'm':
      sec = 60;
      break;
    case 'h':
      sec = 3600;
      break;
    case 'd':
      sec = 86400;
      break;
    case 'w':
      sec = 7 * 86400;
      break;
    default:
      return absl::InvalidArgumentError(strutil::StrCat("bad timespan unit in '", s, "'"));
  }
  return n * sec * 1000000000LL;
}

std::vector<std::string> StringList(const YAML::Node& n) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& v : n) {
      if (v.IsScalar()) out.push_back(v.Scalar());
    }
  }
  return out;
}

absl::Status DocParser::ParseCorrelation(const YAML::Node& corr) {
  const int line = LineOf(corr);
  if (!corr.IsMap()) return Err(path_, line, "'correlation' must be a map");
  rule_->is_correlation = true;
  CorrelationSpec& c = rule_->correlation;
  std::string type = ScalarOr(corr["type"]);
  const int type_line = corr["type"] ? LineOf(corr["type"]) : line;
  if (type == "event_count") {
    c.type = CorrelationSpec::Type::kEventCount;
  } else if (type == "value_count") {
    c.type = CorrelationSpec::Type::kValueCount;
  } else if (type == "temporal") {
    c.type = CorrelationSpec::Type::kTemporal;
  } else if (type == "temporal_ordered") {
    c.type = CorrelationSpec::Type::kTemporalOrdered;
  } else if (type == "value_sum" || type == "value_avg" || type == "value_percentile" ||
             type == "value_median") {
    // Sigma 2.x metric correlations: valid rules Siper cannot evaluate yet.
    return Unsupported(path_, type_line, strutil::StrCat("correlation type '", type, "'"));
  } else {
    return Err(path_, type_line, strutil::StrCat("unknown correlation type '", type, "'"));
  }
  c.rules = StringList(corr["rules"]);
  if (c.rules.empty()) return Err(path_, line, "correlation needs 'rules'");
  c.group_by = StringList(corr["group-by"]);
  std::string ts = ScalarOr(corr["timespan"]);
  if (ts.empty()) ts = ScalarOr(corr["timeframe"]);
  absl::StatusOr<int64_t> span = ParseTimespan(ts);
  if (!span.ok()) return Err(path_, line, strutil::StrCat("correlation ", span.status().message()));
  c.timespan_ns = *span;
  c.generate = ScalarOr(corr["generate"]) == "true";
  YAML::Node cond = corr["condition"];
  if (c.type == CorrelationSpec::Type::kEventCount ||
      c.type == CorrelationSpec::Type::kValueCount) {
    if (!cond || !cond.IsMap()) return Err(path_, line, "correlation needs a 'condition' map");
    bool have = false;
    for (auto it = cond.begin(); it != cond.end(); ++it) {
      std::string k = it->first.as<std::string>();
      if (k == "field") {
        c.value_field = ScalarOr(it->second);
        continue;
      }
      int64_t v;
      if (!strutil::SimpleAtoi(ScalarOr(it->second), &v)) {
        return Err(path_, LineOf(it->second), "correlation condition needs an integer");
      }
      c.threshold = v;
      have = true;
      if (k == "gt")
        c.cmp = CorrelationSpec::Cmp::kGt;
      else if (k == "gte")
        c.cmp = CorrelationSpec::Cmp::kGte;
      else if (k == "lt")
        c.cmp = CorrelationSpec::Cmp::kLt;
      else if (k == "lte")
        c.cmp = CorrelationSpec::Cmp::kLte;
      else if (k == "eq")
        c.cmp = CorrelationSpec::Cmp::kEq;
      else
        return Err(path_, LineOf(it->first),
                   strutil::StrCat("unknown correlation operator '", k, "'"));
    }
    if (!have) return Err(path_, line, "correlation condition needs gt/gte/lt/lte/eq");
    if (c.type == CorrelationSpec::Type::kValueCount && c.value_field.empty()) {
      return Err(path_, line, "value_count needs condition.field");
    }
  } else {
    c.threshold = static_cast<int64_t>(c.rules.size());
  }
  return absl::OkStatus();
}

// A `fim:` test case: {path, change, sha256, mode (octal text), size, uid,
// gid, owner, group}; `line` becomes a description for messages.
absl::Status ParseFimCase(const std::string& path, const YAML::Node& n, RuleTestCase* tc) {
  const int line = LineOf(n);
  if (!n.IsMap()) return Err(path, line, "'fim' must be a map with at least 'path' and 'change'");
  FileObservation f;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string value = ScalarOr(it->second);
    const int vline = LineOf(it->second);
    auto number = [&](uint64_t max, uint64_t* out, int base) -> absl::Status {
      errno = 0;
      char* end = nullptr;
      unsigned long long v = std::strtoull(value.c_str(), &end, base);
      if (value.empty() || *end != '\0' || errno != 0 || v > max || value[0] == '-') {
        return Err(path, vline,
                   strutil::StrCat("fim.", key, " '", value, "' is not a valid ",
                                   base == 8 ? "octal mode such as 0644" : "number"));
      }
      *out = v;
      return absl::OkStatus();
    };
    uint64_t v = 0;
    if (key == "path") {
      f.path = value;
    } else if (key == "change") {
      absl::StatusOr<FileChange> c = ParseFileChange(value);
      if (!c.ok()) return Err(path, vline, std::string(c.status().message()));
      f.change = *c;
    } else if (key == "sha256") {
      if (value.size() != 64 ||
          !std::all_of(value.begin(), value.end(), [](char ch) { return std::isxdigit(ch); })) {
        return Err(path, vline, "fim.sha256 must be 64 hex digits");
      }
      f.sha256 = value;
    } else if (key == "mode") {
      SIPER_RETURN_IF_ERROR(number(07777, &v, 8));
      f.mode = static_cast<uint32_t>(v);
    } else if (key == "size") {
      SIPER_RETURN_IF_ERROR(number(UINT64_MAX, &v, 10));
      f.size = v;
    } else if (key == "uid" || key == "gid") {
      SIPER_RETURN_IF_ERROR(number(UINT32_MAX, &v, 10));
      (key == "uid" ? f.uid : f.gid) = static_cast<uint32_t>(v);
    } else if (key == "owner") {
      f.owner = value;
    } else if (key == "group") {
      f.group = value;
    } else {
      return Err(path, vline,
                 strutil::StrCat("unknown fim key '", key,
                                 "' (path, change, sha256, mode, size, uid, gid, owner, group)"));
    }
  }
  if (f.path.empty()) return Err(path, line, "fim test case needs 'path'");
  if (f.change == FileChange::kUnknown) return Err(path, line, "fim test case needs 'change'");
  tc->line = strutil::StrCat("fim ", FileChangeName(f.change), " ", f.path);
  tc->file = std::move(f);
  return absl::OkStatus();
}

absl::Status DocParser::ParseSiper(const YAML::Node& s) {
  if (!s.IsMap()) return Err(path_, LineOf(s), "'siper' must be a map");
  if (YAML::Node rsit = s["rsit"]) {
    rule_->rsit_class = ScalarOr(rsit["class"]);
    rule_->rsit_type = ScalarOr(rsit["type"]);
  }
  if (YAML::Node sup = s["suppress"]) {
    rule_->suppress_by = StringList(sup["by"]);
    absl::StatusOr<int64_t> span = ParseTimespan(ScalarOr(sup["window"], "5m"));
    if (!span.ok()) return Err(path_, LineOf(sup), std::string(span.status().message()));
    rule_->suppress_ns = *span;
  }
  YAML::Node tests = s["tests"];
  if (!tests) return absl::OkStatus();
  for (const char* kind : {"match", "no_match"}) {
    YAML::Node list = tests[kind];
    if (!list) continue;
    if (!list.IsSequence())
      return Err(path_, LineOf(list), strutil::StrCat("tests.", kind, " must be a list"));
    for (const auto& t : list) {
      RuleTestCase tc;
      tc.must_match = std::string_view(kind) == "match";
      tc.yaml_line = LineOf(t);
      if (t.IsScalar()) {
        tc.line = t.Scalar();
      } else if (t.IsMap() && t["fim"]) {
        if (t["line"]) return Err(path_, tc.yaml_line, "a test case has 'line' or 'fim', not both");
        SIPER_RETURN_IF_ERROR(ParseFimCase(path_, t["fim"], &tc));
        if (YAML::Node f = t["fields"]; f && f.IsMap()) {
          for (auto it = f.begin(); it != f.end(); ++it) {
            tc.expect_fields[it->first.as<std::string>()] = ScalarOr(it->second);
          }
        }
      } else if (t.IsMap()) {
        tc.line = ScalarOr(t["line"]);
        tc.source = ScalarOr(t["source"]);
        SIPER_RETURN_IF_ERROR(ParseTestIocs(t["ioc"], &tc));
        std::string fmt = ScalarOr(t["format"], "auto");
        tc.format = fmt == "json"     ? InputFormat::kJson
                    : fmt == "syslog" ? InputFormat::kSyslog
                                      : InputFormat::kAuto;
        if (YAML::Node f = t["fields"]; f && f.IsMap()) {
          for (auto it = f.begin(); it != f.end(); ++it) {
            tc.expect_fields[it->first.as<std::string>()] = ScalarOr(it->second);
          }
        }
      } else {
        return Err(path_, tc.yaml_line, "a test case is a line or a map with 'line' or 'fim'");
      }
      if (tc.line.empty()) return Err(path_, tc.yaml_line, "empty test line");
      rule_->tests.push_back(std::move(tc));
    }
  }
  return absl::OkStatus();
}

// `ioc:` of a test case: one feed (a map) or a list of them, each
// {feed, category, confidence, values: [...]}.
absl::Status DocParser::ParseTestIocs(const YAML::Node& node, RuleTestCase* tc) {
  if (!node) return absl::OkStatus();
  std::vector<YAML::Node> feeds;
  if (node.IsMap()) {
    feeds.push_back(node);
  } else if (node.IsSequence()) {
    for (const auto& f : node) feeds.push_back(f);
  } else {
    return Err(path_, LineOf(node), "'ioc' must be a map or a list of maps");
  }
  for (const YAML::Node& f : feeds) {
    if (!f.IsMap()) return Err(path_, LineOf(f), "'ioc' must be a map or a list of maps");
    RuleTestIoc ioc;
    ioc.feed = ScalarOr(f["feed"]);
    if (ioc.feed.empty()) return Err(path_, LineOf(f), "'ioc' needs a 'feed' name");
    ioc.category = ScalarOr(f["category"]);
    if (YAML::Node c = f["confidence"]) {
      if (!c.IsScalar() || !strutil::SimpleAtoi(c.Scalar(), &ioc.confidence) ||
          ioc.confidence < 0 || ioc.confidence > 100) {
        return Err(path_, LineOf(c), "'ioc.confidence' must be a number within 0..100");
      }
    }
    ioc.values = StringList(f["values"]);
    if (ioc.values.empty()) return Err(path_, LineOf(f), "'ioc' needs a list of 'values'");
    tc->iocs.push_back(std::move(ioc));
  }
  return absl::OkStatus();
}

absl::Status DocParser::Parse(const YAML::Node& doc) {
  rule_->line = LineOf(doc);
  if (!doc.IsMap()) return Err(path_, rule_->line, "a rule must be a YAML map");
  rule_->id = ScalarOr(doc["id"]);
  rule_->name = ScalarOr(doc["name"]);
  rule_->title = ScalarOr(doc["title"]);
  rule_->level = ScalarOr(doc["level"]);
  rule_->status = ScalarOr(doc["status"]);
  rule_->tags = StringList(doc["tags"]);
  if (YAML::Node a = doc["action"]) {
    return Unsupported(path_, LineOf(a),
                       strutil::StrCat("rule collection action '", ScalarOr(a), "'"));
  }
  if (doc["filter"]) return Unsupported(path_, LineOf(doc["filter"]), "Sigma filter rules");
  if (rule_->title.empty()) return Err(path_, rule_->line, "rule has no 'title'");
  if (YAML::Node s = doc["siper"]) SIPER_RETURN_IF_ERROR(ParseSiper(s));
  if (YAML::Node corr = doc["correlation"]) return ParseCorrelation(corr);
  if (YAML::Node ls = doc["logsource"]) {
    if (!ls.IsMap()) return Err(path_, LineOf(ls), "'logsource' must be a map");
    rule_->logsource.product = strutil::AsciiStrToLower(ScalarOr(ls["product"]));
    rule_->logsource.category = strutil::AsciiStrToLower(ScalarOr(ls["category"]));
    rule_->logsource.service = strutil::AsciiStrToLower(ScalarOr(ls["service"]));
  } else {
    return Err(path_, rule_->line, "rule has no 'logsource'");
  }
  YAML::Node det = doc["detection"];
  if (!det) return Err(path_, rule_->line, "rule has no 'detection'");
  return ParseDetection(det);
}

}  // namespace

std::string SigmaValueToRegex(std::string_view value, std::string_view mode) {
  return ToRegex(ParseWildcards(value), mode);
}

namespace {

// The YAML parser's message for a tab in the indentation is only "end of map not
// found" or similar: name the tab when the failing line or the one before starts
// with white space holding one.
std::string YamlMessage(std::string_view text, int line0, const std::string& msg) {
  std::vector<std::string_view> lines = strutil::StrSplit(text, '\n');
  for (int l = line0; l >= 0 && l >= line0 - 1; --l) {
    if (l >= static_cast<int>(lines.size())) continue;
    std::string_view ln = lines[l];
    const size_t indent = ln.find_first_not_of(" \t");
    if (ln.substr(0, indent).find('\t') != std::string_view::npos) {
      return strutil::StrCat(l + 1,
                             ": YAML: tab character in the indentation (YAML indents with "
                             "spaces only; parser: ",
                             msg, ")");
    }
  }
  return strutil::StrCat(line0 + 1, ": YAML: ", msg);
}

// Sigma 1.x rule collections: `action: global` gives the keys every following
// document of the file shares, `action: reset` forgets them, `action: repeat`
// repeats the previous rule with the document's changes. Merging is deep: maps are
// merged key by key, anything else in the document replaces the shared value.
// `into` receives the missing keys as references to `from`'s nodes, so every node
// keeps its own line for messages; only `into`'s own maps are modified.
void MergeInto(YAML::Node into, const YAML::Node& from) {
  if (!into.IsMap() || !from.IsMap()) return;
  for (auto it = from.begin(); it != from.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (key == "action") continue;
    const YAML::Node& cinto = into;
    YAML::Node mine = cinto[key];
    if (!mine) {
      into[key] = it->second;
    } else if (mine.IsMap() && it->second.IsMap()) {
      MergeInto(mine, it->second);
    }
  }
}

}  // namespace

ParsedFile ParseRuleText(std::string_view text, const std::string& path) {
  ParsedFile out;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    out.diagnostics.push_back({path, "", RuleDiagnostic::Status::kError,
                               strutil::StrCat(path, ":", YamlMessage(text, e.mark.line, e.msg))});
    return out;
  }
  YAML::Node global;    // the collection's shared keys (action: global), if any
  YAML::Node previous;  // the last rule document as merged (action: repeat)
  bool any = false;
  std::map<std::string, int> ids;  // id -> line of its first rule in this file
  for (YAML::Node doc : docs) {
    if (!doc || doc.IsNull()) continue;
    any = true;
    ParsedRule rule;
    rule.path = path;
    absl::Status st;
    bool inherited_id = false;
    try {
      const YAML::Node& cdoc = doc;
      const std::string action = doc.IsMap() && cdoc["action"] ? ScalarOr(cdoc["action"]) : "";
      if (action == "global") {
        global = doc;
        continue;
      }
      if (action == "reset") {
        global = YAML::Node();
        continue;
      }
      if (!action.empty() && (action != "repeat" || !previous)) {
        out.diagnostics.push_back(
            {path, ScalarOr(cdoc["id"]), RuleDiagnostic::Status::kUnsupported,
             strutil::StrCat(path, ":", LineOf(cdoc["action"]), ": rule collection action '",
                             action, "'", action == "repeat" ? " with no rule before it" : "")});
        continue;
      }
      if (!action.empty()) doc.remove("action");
      const YAML::Node& base = action == "repeat" ? previous : global;
      inherited_id = doc.IsMap() && !cdoc["id"] && base && base.IsMap() && base["id"];
      if (base) MergeInto(doc, base);
      previous = doc;
      DocParser parser(path, &rule);
      st = parser.Parse(doc);
    } catch (const YAML::Exception& e) {
      st = Err(path, e.mark.line + 1, strutil::StrCat("YAML: ", e.msg));
    }
    if (st.ok() && !rule.id.empty()) {
      // The documents of one collection share the global part's id; any other
      // repeated id is an error (correlations and alerts name rules by id).
      auto [it, fresh] = ids.emplace(rule.id, rule.line);
      if (!fresh && !inherited_id) {
        st = Err(
            path, rule.line,
            strutil::StrCat("duplicate rule id '", rule.id, "' (also at line ", it->second, ")"));
      }
    }
    if (!st.ok()) {
      out.diagnostics.push_back({path, rule.id,
                                 st.code() == absl::StatusCode::kUnimplemented
                                     ? RuleDiagnostic::Status::kUnsupported
                                     : RuleDiagnostic::Status::kError,
                                 std::string(st.message())});
      continue;
    }
    out.rules.push_back(std::move(rule));
  }
  if (!any) {
    out.diagnostics.push_back(
        {path, "", RuleDiagnostic::Status::kError,
         strutil::StrCat(path, ":1: no rule in the file (empty, or only comments)")});
  }
  return out;
}

}  // namespace siper::rules

#include "rules/parse_cache.h"

#include <hs/hs.h>

#include <cstdio>
#include <cstring>

#include "rules/cache_file.h"

namespace siper::rules {
namespace {

// Version 5: the file is sealed with a checksum (rules/cache_file.h).
constexpr char kMagic[8] = {'S', 'I', 'P', 'R', 'U', 'L', 'E', '6'};

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { out_.append(reinterpret_cast<const char*>(&v), 4); }
  void I64(int64_t v) { out_.append(reinterpret_cast<const char*>(&v), 8); }
  void F64(double v) { out_.append(reinterpret_cast<const char*>(&v), 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Strs(const std::vector<std::string>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) Str(s);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  uint8_t U8() { return Raw<uint8_t>(); }
  uint32_t U32() { return Raw<uint32_t>(); }
  int64_t I64() { return Raw<int64_t>(); }
  double F64() { return Raw<double>(); }
  std::string Str() {
    uint32_t n = U32();
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  std::vector<std::string> Strs() {
    std::vector<std::string> v(Count());
    for (auto& s : v) s = Str();
    return v;
  }
  // An element count, refused when larger than the bytes left could hold.
  uint32_t Count() {
    uint32_t n = U32();
    if (n > in_.size()) {
      ok_ = false;
      return 0;
    }
    return n;
  }
  bool done() const { return in_.empty(); }

 private:
  template <typename T>
  T Raw() {
    T v{};
    if (in_.size() < sizeof(T)) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return v;
  }
  std::string_view in_;
  bool ok_ = true;
};

void PutCond(Writer& w, const CondNode& n) {
  w.U8(static_cast<uint8_t>(n.op));
  w.U32(n.pred);
  w.U32(static_cast<uint32_t>(n.kids.size()));
  for (const auto& k : n.kids) PutCond(w, k);
}

bool GetCond(Reader& r, CondNode* n, int depth) {
  if (depth > 1000) return false;
  n->op = static_cast<CondNode::Op>(r.U8());
  n->pred = r.U32();
  n->kids.resize(r.Count());
  for (auto& k : n->kids) {
    if (!GetCond(r, &k, depth + 1)) return false;
  }
  return r.ok();
}

void PutRule(Writer& w, const ParsedRule& p) {
  w.Str(p.path);
  w.U32(static_cast<uint32_t>(p.line));
  w.Str(p.id);
  w.Str(p.name);
  w.Str(p.title);
  w.Str(p.level);
  w.Str(p.status);
  w.Strs(p.tags);
  w.Str(p.logsource.product);
  w.Str(p.logsource.category);
  w.Str(p.logsource.service);
  w.U32(static_cast<uint32_t>(p.predicates.size()));
  for (const Predicate& pr : p.predicates) {
    w.U8(static_cast<uint8_t>(pr.kind));
    w.Str(pr.field);
    w.U32(static_cast<uint32_t>(pr.patterns.size()));
    for (const Pattern& pat : pr.patterns) {
      w.Str(pat.expr);
      w.U32(pat.flags);
    }
    w.U32(static_cast<uint32_t>(pr.cidrs.size()));
    for (const CidrRange& c : pr.cidrs) {
      w.U8(c.v6 ? 1 : 0);
      w.out().append(reinterpret_cast<const char*>(c.addr), 16);
      w.U32(static_cast<uint32_t>(c.prefix));
    }
    w.U8(static_cast<uint8_t>(pr.compare));
    w.F64(pr.number);
    w.Str(pr.ref_field);
    w.U8(static_cast<uint8_t>(pr.ref_mode));
    w.U8(pr.cased ? 1 : 0);
    w.U32(static_cast<uint32_t>(pr.line));
  }
  PutCond(w, p.condition);
  w.U8(p.is_correlation ? 1 : 0);
  const CorrelationSpec& c = p.correlation;
  w.U8(static_cast<uint8_t>(c.type));
  w.Strs(c.rules);
  w.Strs(c.group_by);
  w.I64(c.timespan_ns);
  w.Str(c.value_field);
  w.U8(static_cast<uint8_t>(c.cmp));
  w.I64(c.threshold);
  w.U8(c.generate ? 1 : 0);
  w.Str(p.rsit_class);
  w.Str(p.rsit_type);
  w.Strs(p.suppress_by);
  w.I64(p.suppress_ns);
  w.U32(static_cast<uint32_t>(p.tests.size()));
  for (const RuleTestCase& t : p.tests) {
    w.Str(t.line);
    w.U8(t.must_match ? 1 : 0);
    w.U8(static_cast<uint8_t>(t.format));
    w.Str(t.source);
    w.U32(static_cast<uint32_t>(t.expect_fields.size()));
    for (const auto& [k, v] : t.expect_fields) {
      w.Str(k);
      w.Str(v);
    }
    w.U32(static_cast<uint32_t>(t.yaml_line));
    w.U32(static_cast<uint32_t>(t.iocs.size()));
    for (const RuleTestIoc& ioc : t.iocs) {
      w.Str(ioc.feed);
      w.Str(ioc.category);
      w.I64(ioc.confidence);
      w.Strs(ioc.values);
    }
    w.U8(t.file.has_value() ? 1 : 0);
    if (t.file.has_value()) {
      const FileObservation& f = *t.file;
      w.Str(f.path);
      w.U8(static_cast<uint8_t>(f.change));
      w.I64(static_cast<int64_t>(f.size));
      w.U32(f.mode);
      w.U32(f.uid);
      w.U32(f.gid);
      w.Str(f.owner);
      w.Str(f.group);
      w.Str(f.sha256);
    }
  }
}

bool GetRule(Reader& r, ParsedRule* p) {
  p->path = r.Str();
  p->line = static_cast<int>(r.U32());
  p->id = r.Str();
  p->name = r.Str();
  p->title = r.Str();
  p->level = r.Str();
  p->status = r.Str();
  p->tags = r.Strs();
  p->logsource.product = r.Str();
  p->logsource.category = r.Str();
  p->logsource.service = r.Str();
  p->predicates.resize(r.Count());
  for (Predicate& pr : p->predicates) {
    pr.kind = static_cast<Predicate::Kind>(r.U8());
    pr.field = r.Str();
    pr.patterns.resize(r.Count());
    for (Pattern& pat : pr.patterns) {
      pat.expr = r.Str();
      pat.flags = r.U32();
    }
    pr.cidrs.resize(r.Count());
    for (CidrRange& c : pr.cidrs) {
      c.v6 = r.U8() != 0;
      for (unsigned char& b : c.addr) b = r.U8();
      c.prefix = static_cast<int>(r.U32());
    }
    pr.compare = static_cast<Predicate::Compare>(r.U8());
    pr.number = r.F64();
    pr.ref_field = r.Str();
    pr.ref_mode = static_cast<Predicate::RefMode>(r.U8());
    pr.cased = r.U8() != 0;
    pr.line = static_cast<int>(r.U32());
    if (!r.ok()) return false;
  }
  if (!GetCond(r, &p->condition, 0)) return false;
  p->is_correlation = r.U8() != 0;
  CorrelationSpec& c = p->correlation;
  c.type = static_cast<CorrelationSpec::Type>(r.U8());
  c.rules = r.Strs();
  c.group_by = r.Strs();
  c.timespan_ns = r.I64();
  c.value_field = r.Str();
  c.cmp = static_cast<CorrelationSpec::Cmp>(r.U8());
  c.threshold = r.I64();
  c.generate = r.U8() != 0;
  p->rsit_class = r.Str();
  p->rsit_type = r.Str();
  p->suppress_by = r.Strs();
  p->suppress_ns = r.I64();
  p->tests.resize(r.Count());
  for (RuleTestCase& t : p->tests) {
    t.line = r.Str();
    t.must_match = r.U8() != 0;
    t.format = static_cast<InputFormat>(r.U8());
    t.source = r.Str();
    uint32_t n = r.Count();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
      std::string k = r.Str();
      t.expect_fields[k] = r.Str();
    }
    t.yaml_line = static_cast<int>(r.U32());
    t.iocs.resize(r.Count());
    for (RuleTestIoc& ioc : t.iocs) {
      ioc.feed = r.Str();
      ioc.category = r.Str();
      ioc.confidence = static_cast<int>(r.I64());
      ioc.values = r.Strs();
    }
    if (r.U8() != 0) {
      FileObservation f;
      f.path = r.Str();
      f.change = static_cast<FileChange>(r.U8());
      f.size = static_cast<uint64_t>(r.I64());
      f.mode = r.U32();
      f.uid = r.U32();
      f.gid = r.U32();
      f.owner = r.Str();
      f.group = r.Str();
      f.sha256 = r.Str();
      t.file = std::move(f);
    }
  }
  // Predicate indexes in the condition must exist.
  struct Check {
    static bool Run(const CondNode& n, size_t preds) {
      if (n.op == CondNode::Op::kPred && n.pred >= preds) return false;
      for (const auto& k : n.kids) {
        if (!Run(k, preds)) return false;
      }
      return true;
    }
  };
  return r.ok() && Check::Run(p->condition, p->predicates.size());
}

}  // namespace

std::string ParsedRulesKey(const std::vector<std::pair<std::string, std::string>>& files) {
  // Every rule file's text is hashed at each start: word-wise (rules/hash128.h).
  internal::Hash128 h;
  h.Add(std::string_view(kMagic, sizeof kMagic));
  h.Add(std::string_view(hs_version()));
  for (const auto& [path, text] : files) {
    h.Add(path);
    h.Add(text);
  }
  const internal::Hash128::Digest d = h.Finish();
  char buf[40];
  std::snprintf(buf, sizeof buf, "rules-%016llx%016llx", static_cast<unsigned long long>(d.a),
                static_cast<unsigned long long>(d.b));
  return buf;
}

CacheRead LoadParsedRules(const std::filesystem::path& dir, const std::string& key,
                          std::vector<ParsedFile>* out, std::string* why) {
  const std::filesystem::path file = dir / (key + ".bin");
  std::string data;
  const CacheRead read = ReadCacheFile(file, std::string_view(kMagic, sizeof kMagic), &data, why);
  if (read != CacheRead::kOk) return read;
  auto damaged = [&] {
    *why = DamagedCacheMessage(file, "bad layout");
    return CacheRead::kDamaged;
  };
  Reader r{std::string_view(data)};
  std::vector<ParsedFile> files(r.Count());
  for (ParsedFile& f : files) {
    f.rules.resize(r.Count());
    for (ParsedRule& p : f.rules) {
      if (!GetRule(r, &p)) return damaged();
    }
    f.diagnostics.resize(r.Count());
    for (RuleDiagnostic& d : f.diagnostics) {
      d.path = r.Str();
      d.rule_id = r.Str();
      d.status = static_cast<RuleDiagnostic::Status>(r.U8());
      d.message = r.Str();
    }
    if (!r.ok()) return damaged();
  }
  if (!r.ok() || !r.done()) return damaged();
  *out = std::move(files);
  return CacheRead::kOk;
}

void StoreParsedRules(const std::filesystem::path& dir, const std::string& key,
                      const std::vector<ParsedFile>& files) {
  Writer w;
  w.U32(static_cast<uint32_t>(files.size()));
  for (const ParsedFile& f : files) {
    w.U32(static_cast<uint32_t>(f.rules.size()));
    for (const ParsedRule& p : f.rules) PutRule(w, p);
    w.U32(static_cast<uint32_t>(f.diagnostics.size()));
    for (const RuleDiagnostic& d : f.diagnostics) {
      w.Str(d.path);
      w.Str(d.rule_id);
      w.U8(static_cast<uint8_t>(d.status));
      w.Str(d.message);
    }
  }
  WriteCacheFile(dir / (key + ".bin"), std::string_view(kMagic, sizeof kMagic), w.out());
}

}  // namespace siper::rules

#include "rules/ioc.h"

#include <arpa/inet.h>
#include <hs/hs.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "nlohmann/json.hpp"
#include "rules/cache_file.h"
#include "rules/decoder.h"
#include "rules/hash128.h"
#include "rules/strutil.h"

namespace siper::rules {
namespace {

using strutil::AsciiLower;
using strutil::AsciiStrToLower;
using strutil::StrCat;

std::string_view Trim(std::string_view s) {
  auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  // A UTF-8 byte order mark at the start of a file.
  if (s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);
  return s;
}

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

bool HashKind(std::string_view s, IocKind* kind) {
  if (!IsHex(s)) return false;
  switch (s.size()) {
    case 32:
      *kind = IocKind::kMd5;
      return true;
    case 40:
      *kind = IocKind::kSha1;
      return true;
    case 64:
      *kind = IocKind::kSha256;
      return true;
    default:
      return false;
  }
}

// 16 bytes; IPv4 as IPv4-mapped IPv6 so one table holds both.
using Addr = std::array<unsigned char, 16>;

bool ParseIp(std::string_view s, Addr* out, bool* v6) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  if (s.empty() || s.size() > 45) return false;
  std::string str(s);
  out->fill(0);
  unsigned char v4[4];
  if (inet_pton(AF_INET, str.c_str(), v4) == 1) {
    (*out)[10] = 0xff;
    (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, v4, 4);
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, str.c_str(), out->data()) == 1) {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    *v6 = std::memcmp(out->data(), kMapped, 12) != 0;  // ::ffff:a.b.c.d is IPv4
    return true;
  }
  return false;
}

Addr Mask(const Addr& a, int bits) {  // bits of the 128-bit form
  Addr m{};
  for (int i = 0; i < 16; ++i) {
    int b = std::clamp(bits - i * 8, 0, 8);
    m[i] = static_cast<unsigned char>(a[i] & (b == 0 ? 0 : (0xff << (8 - b)) & 0xff));
  }
  return m;
}

std::string AddrText(const Addr& a, bool v6) {
  char buf[INET6_ADDRSTRLEN];
  if (!v6) {
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  }
  return buf;
}

// "a.b/24" or "x::/48" -> network and prefix length in the 128-bit form.
bool ParseCidr(std::string_view s, Addr* net, int* bits128, bool* v6, std::string* text) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  int bits = 0;
  if (!strutil::SimpleAtoi(s.substr(slash + 1), &bits)) return false;
  Addr a;
  if (!ParseIp(s.substr(0, slash), &a, v6)) return false;
  int max = *v6 ? 128 : 32;
  if (bits < 0 || bits > max) return false;
  *bits128 = *v6 ? bits : bits + 96;
  *net = Mask(a, *bits128);
  *text = StrCat(AddrText(*net, *v6), "/", bits);
  return true;
}

bool IsDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Lowercase, no trailing dot, at least two labels, a non-numeric last label.
bool NormalizeDomain(std::string_view s, std::string* out) {
  std::string d = AsciiStrToLower(s);
  while (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty() || d.size() > 253 || d.find('.') == std::string::npos) return false;
  size_t label = 0;
  bool tld_alpha = false;
  for (char c : d) {
    if (c == '.') {
      if (label == 0 || label > 63) return false;
      label = 0;
      tld_alpha = false;
      continue;
    }
    if (!IsDomainChar(c)) return false;
    if (c < '0' || c > '9') tld_alpha = true;
    ++label;
  }
  if (label == 0 || label > 63 || !tld_alpha) return false;
  *out = std::move(d);
  return true;
}

// Splits a URL (with or without scheme) into lowercase host[:port] and the
// rest (path, query). Drops user info, default ports and a trailing dot.
bool SplitUrl(std::string_view u, std::string* host, std::string* rest) {
  u = Trim(u);
  std::string_view scheme;
  if (size_t p = u.find("://"); p != std::string_view::npos && p > 0 && p < 16) {
    bool ok = true;
    for (char c : u.substr(0, p)) {
      ok = ok &&
           ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '-' || c == '.');
    }
    if (ok) {
      scheme = u.substr(0, p);
      u.remove_prefix(p + 3);
    }
  } else if (u.starts_with("//")) {
    u.remove_prefix(2);
  }
  size_t end = u.find_first_of("/?#");
  std::string_view authority = u.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : u.substr(end);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  if (authority.empty()) return false;
  std::string h = AsciiStrToLower(authority);
  // Port: after the last ':' unless it is inside an IPv6 literal.
  std::string port;
  size_t colon = h.rfind(':');
  if (colon != std::string::npos && h.find(']') == std::string::npos && h.find(':') == colon) {
    port = h.substr(colon + 1);
    h.resize(colon);
  } else if (colon != std::string::npos && !h.empty() && h.front() == '[' && colon > h.find(']')) {
    port = h.substr(colon + 1);
    h.resize(colon);
  }
  while (!h.empty() && h.back() == '.') h.pop_back();
  if (h.empty()) return false;
  std::string lscheme = AsciiStrToLower(scheme);
  if ((port == "80" && (lscheme == "http" || lscheme.empty())) ||
      (port == "443" && lscheme == "https")) {
    port.clear();
  }
  if (!port.empty()) {
    int n = 0;
    if (!strutil::SimpleAtoi(port, &n) || n <= 0 || n > 65535) return false;
    h = StrCat(h, ":", port);
  }
  std::string p(path);
  if (size_t hash = p.find('#'); hash != std::string::npos) p.resize(hash);
  if (p == "/") p.clear();
  *host = std::move(h);
  *rest = std::move(p);
  return true;
}

// The host part of "host[:port]".
std::string_view HostOnly(std::string_view host_port) {
  if (!host_port.empty() && host_port.front() == '[') {
    return host_port.substr(0, host_port.find(']') + 1);
  }
  return host_port.substr(0, host_port.find(':'));
}

bool ValidHost(std::string_view host_port) {
  std::string_view h = HostOnly(host_port);
  Addr a;
  bool v6;
  std::string d;
  return ParseIp(h, &a, &v6) || NormalizeDomain(h, &d);
}

struct Classified {
  IocKind kind = IocKind::kDomain;
  std::string value;
  Addr addr{};
  int bits128 = 128;
};

enum Allow : unsigned {
  kAllowDomain = 1,
  kAllowUrl = 2,
  kAllowIp = 4,
  kAllowCidr = 8,
  kAllowHash = 16,
  kAllowAll = 31,
};

// Infers the kind of one indicator. `why` says what is wrong when it fails.
bool Classify(std::string_view raw, unsigned allow, Classified* out, std::string* why) {
  std::string_view v = Trim(raw);
  if (v.empty()) {
    *why = "empty value";
    return false;
  }
  IocKind hk;
  if ((allow & kAllowHash) && HashKind(v, &hk)) {
    out->kind = hk;
    out->value = AsciiStrToLower(v);
    return true;
  }
  if (allow == kAllowHash) {
    *why = "not an MD5, SHA-1 or SHA-256 hex digest";
    return false;
  }
  bool v6 = false;
  if ((allow & kAllowIp) && ParseIp(v, &out->addr, &v6)) {
    out->kind = v6 ? IocKind::kIpv6 : IocKind::kIpv4;
    out->bits128 = 128;
    out->value = AddrText(out->addr, v6);
    return true;
  }
  if (allow & kAllowCidr) {
    std::string text;
    if (ParseCidr(v, &out->addr, &out->bits128, &v6, &text)) {
      out->kind = IocKind::kCidr;
      out->value = std::move(text);
      return true;
    }
  }
  if (v.find_first_of(" \t\"'<>\\") != std::string_view::npos) {
    *why = "contains spaces or quotes";
    return false;
  }
  std::string host, rest;
  if ((allow & (kAllowDomain | kAllowUrl)) && SplitUrl(v, &host, &rest)) {
    if (rest.empty() && host.find(':') == std::string::npos && (allow & kAllowDomain)) {
      std::string d;
      if (NormalizeDomain(host, &d)) {
        out->kind = IocKind::kDomain;
        out->value = std::move(d);
        return true;
      }
      // "http://1.2.3.4": an address written as a URL.
      if ((allow & kAllowIp) && ParseIp(host, &out->addr, &v6)) {
        out->kind = v6 ? IocKind::kIpv6 : IocKind::kIpv4;
        out->value = AddrText(out->addr, v6);
        return true;
      }
    }
    if ((allow & kAllowUrl) && ValidHost(host)) {
      out->kind = IocKind::kUrl;
      out->value = host + rest;
      return true;
    }
  }
  *why = allow == (kAllowDomain | kAllowIp | kAllowCidr) ? "not a domain or IP address"
                                                         : "not a domain, URL, IP address or hash";
  return false;
}

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x" + strutil::Hex2(u);
    } else {
      out += c;
    }
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}

}  // namespace

std::string_view IocKindName(IocKind kind) {
  switch (kind) {
    case IocKind::kDomain:
      return "domain";
    case IocKind::kUrl:
      return "url";
    case IocKind::kIpv4:
      return "ipv4";
    case IocKind::kIpv6:
      return "ipv6";
    case IocKind::kCidr:
      return "cidr";
    case IocKind::kMd5:
      return "md5";
    case IocKind::kSha1:
      return "sha1";
    case IocKind::kSha256:
      return "sha256";
  }
  return "unknown";
}

bool ParseIocKind(std::string_view name, IocKind* kind) {
  for (IocKind k : {IocKind::kDomain, IocKind::kUrl, IocKind::kIpv4, IocKind::kIpv6, IocKind::kCidr,
                    IocKind::kMd5, IocKind::kSha1, IocKind::kSha256}) {
    if (IocKindName(k) == name) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string UsomCategory(std::string_view code) {
  std::string c(Trim(code));
  for (char& ch : c) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
  if (c.empty()) return "";
  if (c == "PH") return "phishing";
  if (c == "BP") return "bank phishing";
  if (c == "MD" || c == "MI" || c == "MU") return "malware";
  if (c == "MC") return "command and control";
  return StrCat("other (", c, ")");
}

// ---------------------------------------------------------------------------
// Builder

struct IocSetBuilder::State {
  std::vector<IocEntry> entries;
  std::vector<Classified> classified;  // parallel to entries
  // feed + '\0' + kind + value, to count duplicates within a feed
  std::unordered_set<std::string> keys;
};

IocSetBuilder::IocSetBuilder() : state_(std::make_unique<State>()) {}
IocSetBuilder::~IocSetBuilder() = default;
size_t IocSetBuilder::size() const { return state_->entries.size(); }

namespace {

// Adds a classified entry; false when it duplicates one of the same feed.
bool AddClassified(std::vector<IocEntry>* entries, std::vector<Classified>* classified,
                   std::unordered_set<std::string>* keys, Classified c, IocEntry meta) {
  std::string key = StrCat(meta.feed, std::string(1, '\0'), static_cast<int>(c.kind), ":", c.value);
  if (!keys->insert(std::move(key)).second) return false;
  meta.value = c.value;
  meta.kind = c.kind;
  entries->push_back(std::move(meta));
  classified->push_back(std::move(c));
  return true;
}

}  // namespace

bool IocSetBuilder::Add(std::string_view value, const IocEntry& meta) {
  Classified c;
  std::string why;
  if (!Classify(value, kAllowAll, &c, &why)) return false;
  AddClassified(&state_->entries, &state_->classified, &state_->keys, std::move(c), meta);
  return true;
}

const std::vector<IocEntry>& IocSetBuilder::entries() const { return state_->entries; }

bool IocSetBuilder::AddEntry(const IocEntry& entry) {
  unsigned allow = kAllowAll;
  switch (entry.kind) {
    case IocKind::kDomain:
      allow = kAllowDomain;
      break;
    case IocKind::kUrl:
      allow = kAllowUrl;
      break;
    case IocKind::kIpv4:
    case IocKind::kIpv6:
      allow = kAllowIp;
      break;
    case IocKind::kCidr:
      allow = kAllowCidr;
      break;
    case IocKind::kMd5:
    case IocKind::kSha1:
    case IocKind::kSha256:
      allow = kAllowHash;
      break;
  }
  Classified c;
  std::string why;
  if (!Classify(entry.value, allow, &c, &why) || c.kind != entry.kind) return false;
  return AddClassified(&state_->entries, &state_->classified, &state_->keys, std::move(c), entry);
}

namespace {

class ImportSink {
 public:
  explicit ImportSink(IocImportStats* stats) : stats_(stats) {}
  void Invalid(std::string_view where, std::string_view why, std::string_view value) {
    ++stats_->invalid;
    if (stats_->invalid_samples.size() < IocImportStats::kMaxInvalidSamples) {
      stats_->invalid_samples.push_back(StrCat(where, ": ", why, ": ", Quote(value)));
    }
  }

 private:
  IocImportStats* stats_;
};

int JsonInt(const nlohmann::json& j, int fallback) {
  if (j.is_number_integer()) return j.get<int>();
  if (j.is_number()) return static_cast<int>(j.get<double>());
  if (j.is_string()) {
    int n = 0;
    if (strutil::SimpleAtoi(Trim(j.get_ref<const std::string&>()), &n)) return n;
  }
  return fallback;
}

std::string JsonText(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "";
  return j.dump();
}

}  // namespace

absl::StatusOr<IocImportStats> IocSetBuilder::ImportText(IocFeedFormat format,
                                                         std::string_view text,
                                                         const IocFeedOptions& options) {
  if (options.name.empty()) {
    return absl::InvalidArgumentError("IOC feed needs a name (IocFeedOptions::name)");
  }
  IocImportStats stats;
  ImportSink sink(&stats);
  State* st = state_.get();
  auto add = [&](Classified c, IocEntry meta) {
    IocKind kind = c.kind;
    if (AddClassified(&st->entries, &st->classified, &st->keys, std::move(c), std::move(meta))) {
      ++stats.added;
      ++stats.added_by_kind[kind];
    } else {
      ++stats.duplicate;
    }
  };
  IocEntry base;
  base.feed = options.name;
  base.category = options.category;
  // USOM's plain list says only that an address is harmful; name that rather than nothing.
  if (base.category.empty() && format == IocFeedFormat::kUsomList)
    base.category = kUsomListCategory;
  base.confidence = std::clamp(options.confidence, 0, 100);

  if (format == IocFeedFormat::kUsomJson) {
    nlohmann::json doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) {
      return absl::InvalidArgumentError(
          StrCat("IOC feed '", options.name,
                 "': not valid JSON (expected USOM's {\"models\": [...]} or an array of records)"));
    }
    const nlohmann::json* records = nullptr;
    if (doc.is_array()) {
      records = &doc;
    } else if (doc.is_object() && doc.contains("models") && doc["models"].is_array()) {
      records = &doc["models"];
    } else {
      return absl::InvalidArgumentError(
          StrCat("IOC feed '", options.name,
                 "': JSON has no \"models\" array and is not an array of records"));
    }
    size_t n = 0;
    for (const nlohmann::json& r : *records) {
      ++n;
      std::string where = StrCat("record ", n);
      if (!r.is_object() || !r.contains("url")) {
        sink.Invalid(where, "not a record with a \"url\"", r.dump());
        continue;
      }
      std::string value = JsonText(r["url"]);
      std::string type = r.contains("type") ? AsciiStrToLower(JsonText(r["type"])) : "";
      unsigned allow = kAllowDomain | kAllowUrl | kAllowIp;
      if (type == "domain")
        allow = kAllowDomain;
      else if (type == "url")
        allow = kAllowDomain | kAllowUrl | kAllowIp;
      else if (type == "ip" || type == "ip6")
        allow = kAllowIp;
      else if (type == "ip6net")
        allow = kAllowCidr | kAllowIp;
      else if (!type.empty()) {
        sink.Invalid(where, StrCat("unknown type '", type, "'"), value);
        continue;
      }
      Classified c;
      std::string why;
      if (!Classify(value, allow, &c, &why)) {
        // A "domain" record that carries a scheme or path is still usable as a URL.
        if (!(type == "domain" && Classify(value, kAllowDomain | kAllowUrl, &c, &why))) {
          sink.Invalid(where, StrCat(type.empty() ? "" : StrCat("type ", type, ": "), why), value);
          continue;
        }
      }
      IocEntry meta = base;
      std::string code = r.contains("desc") ? JsonText(r["desc"]) : "";
      meta.code = std::string(Trim(code));
      if (std::string cat = UsomCategory(code); !cat.empty()) meta.category = cat;
      meta.criticality = r.contains("criticality_level") ? JsonInt(r["criticality_level"], 0) : 0;
      std::string comment;
      for (const char* k : {"id", "source", "date", "connectiontype"}) {
        if (r.contains(k) && !r[k].is_null()) {
          if (!comment.empty()) comment += "; ";
          comment += StrCat(k, "=", JsonText(r[k]));
        }
      }
      meta.comment = std::move(comment);
      add(std::move(c), std::move(meta));
    }
    return stats;
  }

  unsigned allow = kAllowAll;
  bool split_comment = false;
  switch (format) {
    case IocFeedFormat::kUsomList:
      allow = kAllowDomain | kAllowUrl | kAllowIp;
      break;
    case IocFeedFormat::kHashList:
      allow = kAllowHash;
      split_comment = true;
      break;
    case IocFeedFormat::kValueList:
      allow = kAllowDomain | kAllowIp | kAllowCidr;
      split_comment = true;
      break;
    case IocFeedFormat::kPlainList:
      allow = kAllowAll;
      break;
    case IocFeedFormat::kUsomJson:
      break;
  }
  std::string section;  // the last '#' line before a block of values (C2 lists)
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    line = Trim(line);  // also drops the '\r' of CRLF files
    if (line.empty()) {
      section.clear();
      continue;
    }
    if (line.front() == '#') {
      if (format == IocFeedFormat::kValueList) section = std::string(Trim(line.substr(1)));
      continue;
    }
    std::string_view value = line;
    std::string_view comment;
    if (split_comment) {
      if (size_t semi = line.find(';'); semi != std::string_view::npos) {
        value = Trim(line.substr(0, semi));
        comment = Trim(line.substr(semi + 1));
      }
    }
    Classified c;
    std::string why;
    if (!Classify(value, allow, &c, &why)) {
      sink.Invalid(StrCat("line ", line_no), why, value);
      continue;
    }
    IocEntry meta = base;
    if (!comment.empty() && !section.empty()) {
      meta.comment = StrCat(section, "; ", comment);
    } else {
      meta.comment = std::string(comment.empty() ? std::string_view(section) : comment);
    }
    add(std::move(c), std::move(meta));
  }
  return stats;
}

absl::StatusOr<IocImportStats> IocSetBuilder::ImportFile(IocFeedFormat format,
                                                         const std::filesystem::path& path,
                                                         const IocFeedOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        StrCat("IOC feed '", options.name, "': cannot open ", path.string()));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        StrCat("IOC feed '", options.name, "': error reading ", path.string()));
  }
  auto stats = ImportText(format, buf.str(), options);
  if (!stats.ok()) {
    return absl::Status(stats.status().code(),
                        StrCat(path.string(), ": ", stats.status().message()));
  }
  return stats;
}

// ---------------------------------------------------------------------------
// On-disk cache of the literal database

namespace {

// A sealed cache file (rules/cache_file.h) holding hs_serialize_database's
// bytes. The name carries the key, the content is checked whole before
// Hyperscan sees it.
constexpr char kLiteralMagic[8] = {'S', 'I', 'P', 'I', 'O', 'C', 'D', '2'};

class LiteralCache {
 public:
  LiteralCache(const std::filesystem::path& dir, const std::vector<std::string>& patterns) {
    if (dir.empty()) return;
    internal::Hash128 h;
    h.Add(std::string_view(kLiteralMagic, sizeof kLiteralMagic));
    AddHyperscanBuild(&h);
    const unsigned flags = HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS;
    h.Add(&flags, sizeof flags);
    const uint64_t n = patterns.size();
    h.Add(&n, sizeof n);
    for (const std::string& p : patterns) h.Add(p);
    const internal::Hash128::Digest d = h.Finish();
    char name[64];
    std::snprintf(name, sizeof name, "ioc-%016llx%016llx.hsdb",
                  static_cast<unsigned long long>(d.a), static_cast<unsigned long long>(d.b));
    path_ = dir / name;
  }
  bool enabled() const { return !path_.empty(); }

  // Reads the cached database; false when absent or unusable (then `why`
  // says what was wrong with a file that was there).
  bool Load(hs_database_t** db, std::string* why) const {
    if (!enabled()) return false;
    std::string data;
    const std::string_view magic(kLiteralMagic, sizeof kLiteralMagic);
    switch (ReadCacheFile(path_, magic, &data, why, kKind)) {
      case CacheRead::kAbsent:
      case CacheRead::kDamaged:
        return false;
      case CacheRead::kOk:
        break;
    }
    if (hs_deserialize_database(data.data(), data.size(), db) != HS_SUCCESS) {
      *db = nullptr;
      *why = DamagedCacheMessage(path_, "Hyperscan rejects the database", kKind);
      return false;
    }
    PruneCacheFiles(path_.parent_path());  // this file was just marked used
    return true;
  }

  // Writes atomically; failures only cost the next start.
  void Store(const hs_database_t* db) const {
    if (!enabled() || db == nullptr) return;
    char* bytes = nullptr;
    size_t length = 0;
    if (hs_serialize_database(db, &bytes, &length) != HS_SUCCESS) return;
    WriteCacheFile(path_, std::string_view(kLiteralMagic, sizeof kLiteralMagic),
                   std::string_view(bytes, length));
    free(bytes);
    PruneCacheFiles(path_.parent_path());
  }

 private:
  static constexpr CacheKind kKind{"IOC literal database cache", "rebuilding it"};

  std::filesystem::path path_;
};

}  // namespace

// ---------------------------------------------------------------------------
// The set

struct AddrHash {
  size_t operator()(const Addr& a) const {
    return std::hash<std::string_view>()(
        std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
  }
};

struct IocSetImpl {
  std::vector<IocEntry> entries;
  std::unordered_map<std::string, std::vector<uint32_t>> domains;
  std::unordered_map<std::string, std::vector<uint32_t>> hashes;
  // host[:port] -> (path, entry)
  std::unordered_map<std::string, std::vector<std::pair<std::string, uint32_t>>> urls;
  // prefix length in the 128-bit form -> masked network -> entries; the
  // lengths are few (32+96 and 128 for single addresses, a handful of CIDRs).
  std::map<int, std::unordered_map<Addr, std::vector<uint32_t>, AddrHash>, std::greater<>> nets;
  // Free-text literal database.
  hs_database_t* db = nullptr;
  std::vector<std::string> patterns;  // sorted, id = index
  std::vector<std::vector<uint32_t>> pattern_entries;
  size_t db_bytes = 0;
  IocCacheOutcome cache = IocCacheOutcome::kNone;
  std::string cache_message;

  ~IocSetImpl() {
    if (db != nullptr) hs_free_database(db);
  }

  IocHit MakeHit(uint32_t i, std::string_view field, std::string_view matched) const {
    const IocEntry& e = entries[i];
    IocHit h;
    h.feed = e.feed;
    h.entry = e.value;
    h.kind = e.kind;
    h.category = e.category;
    h.field = std::string(field);
    h.matched = std::string(matched);
    h.confidence = e.confidence;
    h.criticality = e.criticality;
    h.comment = e.comment;
    return h;
  }
  void Emit(const std::vector<uint32_t>& ids, std::string_view field, std::string_view matched,
            std::vector<IocHit>* hits) const {
    for (uint32_t i : ids) hits->push_back(MakeHit(i, field, matched));
  }
};

IocSet::IocSet(std::unique_ptr<IocSetImpl> impl) : impl_(std::move(impl)) {}
IocSet::~IocSet() = default;
const std::vector<IocEntry>& IocSet::entries() const { return impl_->entries; }

IocSetStats IocSet::stats() const {
  IocSetStats s;
  s.entries = impl_->entries.size();
  for (const IocEntry& e : impl_->entries) ++s.by_kind[e.kind];
  s.literal_patterns = impl_->patterns.size();
  s.literal_database_bytes = impl_->db_bytes;
  s.literal_cache = impl_->cache;
  s.literal_cache_message = impl_->cache_message;
  return s;
}

std::vector<std::string> IocSet::literal_patterns() const { return impl_->patterns; }

absl::StatusOr<std::shared_ptr<const IocSet>> IocSetBuilder::Build(
    const IocSetOptions& options) const {
  auto impl = std::make_unique<IocSetImpl>();
  impl->entries = state_->entries;
  std::map<std::string, std::vector<uint32_t>> literals;  // sorted for a deterministic database
  for (uint32_t i = 0; i < impl->entries.size(); ++i) {
    const IocEntry& e = impl->entries[i];
    const Classified& c = state_->classified[i];
    switch (e.kind) {
      case IocKind::kDomain:
        impl->domains[e.value].push_back(i);
        break;
      case IocKind::kUrl: {
        size_t slash = e.value.find_first_of("/?");
        std::string host = e.value.substr(0, slash);
        std::string path = slash == std::string::npos ? "" : e.value.substr(slash);
        impl->urls[host].emplace_back(path, i);
        break;
      }
      case IocKind::kIpv4:
      case IocKind::kIpv6:
      case IocKind::kCidr:
        impl->nets[c.bits128][Mask(c.addr, c.bits128)].push_back(i);
        break;
      case IocKind::kMd5:
      case IocKind::kSha1:
      case IocKind::kSha256:
        impl->hashes[e.value].push_back(i);
        break;
    }
    if (options.build_literal_database && (e.kind == IocKind::kDomain || e.kind == IocKind::kUrl) &&
        e.value.size() >= options.min_literal_length) {
      literals[e.value].push_back(i);
    }
  }
  if (!literals.empty()) {
    std::vector<const char*> exprs;
    std::vector<size_t> lens;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    for (auto& [pattern, ids_of] : literals) {
      impl->patterns.push_back(pattern);
      impl->pattern_entries.push_back(std::move(ids_of));
    }
    for (size_t i = 0; i < impl->patterns.size(); ++i) {
      exprs.push_back(impl->patterns[i].c_str());
      lens.push_back(impl->patterns[i].size());
      flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS);
      ids.push_back(static_cast<unsigned>(i));
    }
    LiteralCache cache(options.cache_dir, impl->patterns);
    if (cache.Load(&impl->db, &impl->cache_message)) {
      impl->cache = IocCacheOutcome::kHit;
      hs_database_size(impl->db, &impl->db_bytes);
      return std::shared_ptr<const IocSet>(new IocSet(std::move(impl)));
    }
    hs_compile_error_t* err = nullptr;
    hs_error_t rc = hs_compile_lit_multi(exprs.data(), flags.data(), ids.data(), lens.data(),
                                         static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK,
                                         nullptr, &impl->db, &err);
    if (rc != HS_SUCCESS) {
      std::string msg = err != nullptr ? err->message : "unknown error";
      int at = err != nullptr ? err->expression : -1;
      if (err != nullptr) hs_free_compile_error(err);
      std::string which;
      if (at >= 0 && static_cast<size_t>(at) < impl->patterns.size()) {
        const IocEntry& e = impl->entries[impl->pattern_entries[at].front()];
        which = StrCat(" (feed '", e.feed, "', entry ", Quote(e.value), ")");
      }
      return absl::InternalError(
          StrCat("IOC literal database: Hyperscan compile failed: ", msg, which));
    }
    hs_database_size(impl->db, &impl->db_bytes);
    if (cache.enabled()) {
      impl->cache =
          impl->cache_message.empty() ? IocCacheOutcome::kStored : IocCacheOutcome::kRebuilt;
      cache.Store(impl->db);
    }
  }
  return std::shared_ptr<const IocSet>(new IocSet(std::move(impl)));
}

void IocSet::LookupDomain(std::string_view name, std::string_view field,
                          std::vector<IocHit>* hits) const {
  std::string d = AsciiStrToLower(Trim(name));
  while (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty()) return;
  std::string_view s = d;
  // a.b.evil.com -> b.evil.com -> evil.com -> com
  while (true) {
    if (auto it = impl_->domains.find(std::string(s)); it != impl_->domains.end()) {
      impl_->Emit(it->second, field, d, hits);
    }
    size_t dot = s.find('.');
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
}

void IocSet::LookupIp(std::string_view address, std::string_view field,
                      std::vector<IocHit>* hits) const {
  Addr a;
  bool v6 = false;
  std::string_view t = Trim(address);
  if (!ParseIp(t, &a, &v6)) return;
  for (const auto& [bits, table] : impl_->nets) {
    // IPv4 entries live at 96+ bits of the mapped form; an IPv6 address
    // never matches them, nor an IPv4 address an IPv6 network shorter than /96.
    if (auto it = table.find(Mask(a, bits)); it != table.end()) {
      impl_->Emit(it->second, field, AddrText(a, v6), hits);
    }
  }
}

void IocSet::LookupUrl(std::string_view url, std::string_view field,
                       std::vector<IocHit>* hits) const {
  std::string host, rest;
  if (!SplitUrl(url, &host, &rest)) return;
  std::string_view h = host;
  auto check = [&](std::string_view key) {
    auto it = impl_->urls.find(std::string(key));
    if (it == impl_->urls.end()) return;
    for (const auto& [path, id] : it->second) {
      if (std::string_view(rest).starts_with(path)) {
        impl_->Emit({id}, field, host + rest, hits);
      }
    }
  };
  check(h);
  if (h.starts_with("www.")) check(h.substr(4));
  // The URL's host is itself looked up as a domain or address.
  std::string_view bare = HostOnly(h);
  Addr a;
  bool v6;
  if (ParseIp(bare, &a, &v6)) {
    LookupIp(bare, field, hits);
  } else {
    LookupDomain(bare, field, hits);
  }
}

void IocSet::LookupHash(std::string_view hex, std::string_view field,
                        std::vector<IocHit>* hits) const {
  std::string_view t = Trim(hex);
  IocKind kind;
  if (!HashKind(t, &kind)) return;
  std::string h = AsciiStrToLower(t);
  if (auto it = impl_->hashes.find(h); it != impl_->hashes.end())
    impl_->Emit(it->second, field, h, hits);
}

namespace {

enum class FieldClass { kNone, kIp, kDomain, kUrl, kHash, kSysmonHashes };

FieldClass ClassifyField(std::string_view name) {
  auto ends = [&](std::string_view s) { return name.ends_with(s); };
  if (ends(".ip") || name == "SourceIp" || name == "DestinationIp" || name == "IpAddress") {
    return FieldClass::kIp;
  }
  if (ends(".domain") || name == "dns.question.name" || name == "QueryName" ||
      name == "DestinationHostname" || name == "SourceHostname") {
    return FieldClass::kDomain;
  }
  if (name == "url.original" || name == "url.full" || name == "http.request.referrer") {
    return FieldClass::kUrl;
  }
  if (ends(".hash.md5") || ends(".hash.sha1") || ends(".hash.sha256") || name == "md5" ||
      name == "sha1" || name == "sha256" || name == "MD5" || name == "SHA1" || name == "SHA256") {
    return FieldClass::kHash;
  }
  if (name == "Hashes" || ends(".Hashes")) return FieldClass::kSysmonHashes;
  return FieldClass::kNone;
}

void Dedup(std::vector<IocHit>* hits) {
  std::set<std::tuple<std::string, std::string, int, std::string>> seen;
  std::vector<IocHit> out;
  for (IocHit& h : *hits) {
    if (seen.emplace(h.feed, h.entry, static_cast<int>(h.kind), h.field).second)
      out.push_back(std::move(h));
  }
  *hits = std::move(out);
}

// Shared by the FieldMap and EventFields forms (both iterate as pairs and have find()).
template <typename Fields>
std::vector<IocHit> LookupFieldsIn(const IocSet& set, const Fields& fields) {
  std::vector<IocHit> hits;
  for (const auto& [name, value] : fields) {
    switch (ClassifyField(name)) {
      case FieldClass::kNone:
        break;
      case FieldClass::kIp:
        set.LookupIp(value, name, &hits);
        break;
      case FieldClass::kDomain: {
        Addr a;
        bool v6;
        if (ParseIp(Trim(value), &a, &v6)) {
          set.LookupIp(value, name, &hits);
        } else {
          set.LookupDomain(value, name, &hits);
        }
        break;
      }
      case FieldClass::kUrl: {
        std::string_view v = Trim(value);
        if (v.starts_with("/") && !v.starts_with("//")) {
          // An access log's request path: join it with the host when known.
          for (const char* host_field : {"url.domain", "destination.domain", "server.address"}) {
            if (auto it = fields.find(host_field); it != fields.end() && !it->second.empty()) {
              set.LookupUrl(StrCat(it->second, v), name, &hits);
              break;
            }
          }
        } else {
          set.LookupUrl(v, name, &hits);
        }
        break;
      }
      case FieldClass::kHash:
        set.LookupHash(value, name, &hits);
        break;
      case FieldClass::kSysmonHashes:
        // "SHA1=...,MD5=...,SHA256=...,IMPHASH=..." (IMPHASH is not a file hash).
        for (std::string_view part : strutil::StrSplit(value, ',')) {
          size_t eq = part.find('=');
          if (eq == std::string_view::npos) {
            set.LookupHash(part, name, &hits);
            continue;
          }
          std::string algo = AsciiStrToLower(Trim(part.substr(0, eq)));
          if (algo == "md5" || algo == "sha1" || algo == "sha256")
            set.LookupHash(part.substr(eq + 1), name, &hits);
        }
        break;
    }
  }
  Dedup(&hits);
  return hits;
}

}  // namespace

std::vector<IocHit> IocSet::LookupFields(const FieldMap& fields) const {
  return LookupFieldsIn(*this, fields);
}
std::vector<IocHit> IocSet::LookupEventFields(const EventFields& fields) const {
  return LookupFieldsIn(*this, fields);
}

// ---------------------------------------------------------------------------
// Scanner

IocScanner::IocScanner(std::shared_ptr<const IocSet> set, void* scratch)
    : set_(std::move(set)), scratch_(scratch) {}

IocScanner::~IocScanner() {
  if (scratch_ != nullptr) hs_free_scratch(static_cast<hs_scratch_t*>(scratch_));
}

absl::StatusOr<std::unique_ptr<IocScanner>> IocScanner::Create(std::shared_ptr<const IocSet> set) {
  if (set == nullptr) return absl::InvalidArgumentError("IocScanner::Create: no IOC set");
  hs_scratch_t* scratch = nullptr;
  if (set->impl().db != nullptr) {
    if (hs_error_t rc = hs_alloc_scratch(set->impl().db, &scratch); rc != HS_SUCCESS) {
      return absl::ResourceExhaustedError(
          StrCat("IOC literal database: hs_alloc_scratch failed (", rc, ")"));
    }
  }
  return std::unique_ptr<IocScanner>(new IocScanner(std::move(set), scratch));
}

absl::Status IocScanner::ScanText(std::string_view text, std::string_view field,
                                  std::vector<IocHit>* hits) {
  const IocSetImpl& impl = set_->impl();
  if (impl.db == nullptr || text.empty()) return absl::OkStatus();
  std::vector<std::pair<unsigned, size_t>> found;  // (pattern id, end offset)
  auto on_match = [](unsigned id, unsigned long long, unsigned long long to, unsigned,
                     void* ctx) -> int {
    static_cast<std::vector<std::pair<unsigned, size_t>>*>(ctx)->emplace_back(
        id, static_cast<size_t>(to));
    return 0;
  };
  hs_error_t rc = hs_scan(impl.db, text.data(), static_cast<unsigned>(text.size()), 0,
                          static_cast<hs_scratch_t*>(scratch_), on_match, &found);
  if (rc != HS_SUCCESS) {
    return absl::InternalError(
        StrCat("IOC literal database: hs_scan failed (", rc, ") on ", field));
  }
  std::sort(found.begin(), found.end());
  auto name_char = [&](size_t i) { return i < text.size() && IsDomainChar(AsciiLower(text[i])); };
  for (const auto& [id, to] : found) {
    const std::string& pattern = impl.patterns[id];
    // Whole host names only: "evil.com" is not in "notevil.com" nor in
    // "evil.com.tr" (a URL pattern may go on after its path). With
    // HS_FLAG_SINGLEMATCH only the first occurrence is seen, so a rejected
    // first occurrence hides a later good one; rare, and the price of one
    // report per pattern.
    size_t start = to - pattern.size();
    if (start > 0 && name_char(start - 1)) continue;
    if (pattern.find_first_of("/?") == std::string::npos &&
        (name_char(to) || (to < text.size() && text[to] == '.' && name_char(to + 1)))) {
      continue;
    }
    impl.Emit(impl.pattern_entries[id], field, pattern, hits);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<IocHit>> IocScanner::Match(const FieldMap& fields,
                                                      std::string_view raw_line) {
  std::vector<IocHit> hits = set_->LookupFields(fields);
  if (!raw_line.empty()) {
    if (absl::Status s = ScanText(raw_line, "event.original", &hits); !s.ok()) return s;
  }
  Dedup(&hits);
  return hits;
}

absl::StatusOr<std::vector<IocHit>> IocScanner::MatchEvent(const EventFields& fields,
                                                           std::string_view raw_line) {
  std::vector<IocHit> hits = set_->LookupEventFields(fields);
  if (!raw_line.empty()) {
    const size_t before = hits.size();
    if (absl::Status s = ScanText(raw_line, "event.original", &hits); !s.ok()) return s;
    if (hits.size() != before) Dedup(&hits);
  }
  return hits;
}

// ---------------------------------------------------------------------------
// Enrichment

FieldMap ThreatFields(std::vector<IocHit>* hits) {
  FieldMap out;
  if (hits->empty()) return out;
  auto rank = [](const IocHit& h) {
    return std::make_tuple(-h.confidence, std::cref(h.feed), std::cref(h.entry),
                           h.field == "event.original", std::cref(h.field));
  };
  std::stable_sort(hits->begin(), hits->end(),
                   [&](const IocHit& a, const IocHit& b) { return rank(a) < rank(b); });
  std::set<std::string> feeds;
  for (const IocHit& h : *hits) feeds.insert(h.feed);
  std::string feed_names;
  for (const std::string& f : feeds) {
    if (!feed_names.empty()) feed_names += ",";
    feed_names += f;
  }
  const IocHit& first = hits->front();
  out.emplace(kThreatFeedName, std::move(feed_names));
  out.emplace(kThreatIndicatorValue, first.entry);
  out.emplace(kThreatIndicatorType, IocKindName(first.kind));
  out.emplace(kThreatIndicatorCategory, first.category);
  out.emplace(kThreatIndicatorMatchedField, first.field);
  out.emplace(kThreatIndicatorConfidence, StrCat(first.confidence));
  out.emplace(kThreatIndicatorCount, StrCat(hits->size()));
  return out;
}

}  // namespace siper::rules

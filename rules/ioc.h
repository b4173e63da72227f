// IOC sets: indicator lists (USOM's address list, hash lists, C2 lists)
// imported into exact sets looked up per decoded field (domain with a
// parent-domain walk, URL prefix, IP and CIDR, MD5/SHA-1/SHA-256), plus one
// Hyperscan literal database for domains and URLs found anywhere in free text.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/engine.h"

namespace siper::rules {

class EventFields;  // rules/decoder.h

enum class IocKind { kDomain, kUrl, kIpv4, kIpv6, kCidr, kMd5, kSha1, kSha256 };
std::string_view IocKindName(IocKind kind);  // "domain", "url", "ipv4", ...
// The inverse of IocKindName; false for an unknown name.
bool ParseIocKind(std::string_view name, IocKind* kind);

// The shapes a feed comes in.
enum class IocFeedFormat {
  kUsomList,   // USOM's legacy url-list.txt: domains, host/path, IPs, one per line
  kUsomJson,   // USOM's JSON API: {"models":[{id,url,type,desc,...}]} pages or a bare array
  kHashList,   // "hash;comment" lines (MD5/SHA-1/SHA-256 by length), '#' comments
  kValueList,  // "value;comment" C2 lists: domains, IPs, CIDRs; a '#' line names what follows
  kPlainList,  // one indicator of any kind per line, '#' comments
};

// Maps USOM's `desc` code to a category ("PH" -> "phishing"); unknown codes
// come back as "other (CODE)", an empty code as "".
std::string UsomCategory(std::string_view code);
// The category of USOM's plain list entries when the import names none.
inline constexpr char kUsomListCategory[] = "harmful address";

struct IocEntry {
  std::string value;  // normalized: lowercase host, no scheme; hashes lowercase hex
  IocKind kind = IocKind::kDomain;
  std::string feed;      // feed name given at import ("usom", "signature-base-hash")
  std::string category;  // "phishing", "malware", "command and control", ...
  std::string code;      // the feed's own category code (USOM `desc`), if any
  int confidence = 50;   // 0..100, from the feed's options
  int criticality = 0;   // USOM criticality_level; 0 when the feed has none
  std::string comment;   // the line's comment, or USOM's source/date/id
};

struct IocHit {
  std::string feed;
  std::string entry;  // IocEntry::value
  IocKind kind = IocKind::kDomain;
  std::string category;
  std::string field;    // the event field that matched (free text: the name passed in)
  std::string matched;  // the part of the field's value that matched (host, address, hash)
  int confidence = 0;
  int criticality = 0;
  std::string comment;
};

struct IocFeedOptions {
  std::string name;      // required: names the feed in every hit
  std::string category;  // default category (USOM JSON uses `desc` instead; USOM's
                         // plain list defaults to kUsomListCategory)
  int confidence = 50;   // default: 50
};

struct IocImportStats {
  size_t added = 0;
  size_t duplicate = 0;  // same kind and value already imported from the same feed
  size_t invalid = 0;
  std::map<IocKind, size_t> added_by_kind;
  // "line 12: not a hash: 'xyz'" (JSON: "record 3: ..."), the first kMaxInvalidSamples.
  std::vector<std::string> invalid_samples;
  static constexpr size_t kMaxInvalidSamples = 10;
};

struct IocSetOptions {
  // Domains and URLs at least this long go into the free-text literal database;
  // shorter ones would match too much text by accident.
  size_t min_literal_length = 8;       // default: 8
  bool build_literal_database = true;  // default: true
  // Folder for the compiled literal database, reused while its patterns are
  // unchanged (`ioc-<hash>.hsdb`, the hash of the sorted literal patterns, the
  // Hyperscan version and the CPU features): a restart with an unchanged feed
  // skips the 3-9 s compile. Empty (the default) compiles every time.
  std::filesystem::path cache_dir;  // default: empty
};

// What Build() did with IocSetOptions::cache_dir.
enum class IocCacheOutcome {
  kNone,     // no cache folder, or no literal database to build
  kHit,      // the database was read from the cache
  kStored,   // compiled, and written to the cache (absent before)
  kRebuilt,  // a cache file was there but unusable (corrupt, truncated): compiled and replaced
};

struct IocSetStats {
  size_t entries = 0;
  std::map<IocKind, size_t> by_kind;
  size_t literal_patterns = 0;
  size_t literal_database_bytes = 0;
  IocCacheOutcome literal_cache = IocCacheOutcome::kNone;
  // For kRebuilt: the file and why it was rejected (worth a log line); else empty.
  std::string literal_cache_message;
};

struct IocSetImpl;

// Immutable once built; share as std::shared_ptr<const IocSet> across threads.
// Field lookups need no scratch; free-text scans go through an IocScanner.
class IocSet {
 public:
  ~IocSet();

  // Looks up every field whose name says what it holds: *.ip / SourceIp /
  // DestinationIp (IP and CIDR), *.domain / dns.question.name / QueryName /
  // DestinationHostname (domain walk), url.original / url.full /
  // http.request.referrer (URL prefix, plus the URL's host as domain or IP),
  // *.hash.md5|sha1|sha256 and Sysmon `Hashes` (hashes). A relative
  // url.original ("/a.php") is joined with url.domain or destination.domain
  // when the event has one. Hits are deduplicated per (entry, field).
  std::vector<IocHit> LookupFields(const FieldMap& fields) const;
  std::vector<IocHit> LookupEventFields(const EventFields& fields) const;

  // Single-value lookups; `field` is copied into the hits.
  void LookupDomain(std::string_view name, std::string_view field, std::vector<IocHit>* hits) const;
  void LookupIp(std::string_view address, std::string_view field, std::vector<IocHit>* hits) const;
  void LookupUrl(std::string_view url, std::string_view field, std::vector<IocHit>* hits) const;
  void LookupHash(std::string_view hex, std::string_view field, std::vector<IocHit>* hits) const;

  const std::vector<IocEntry>& entries() const;
  IocSetStats stats() const;
  // The sorted literal patterns of the free-text database (for tests and caches).
  std::vector<std::string> literal_patterns() const;

  const IocSetImpl& impl() const { return *impl_; }

 private:
  friend class IocSetBuilder;
  explicit IocSet(std::unique_ptr<IocSetImpl> impl);
  std::unique_ptr<IocSetImpl> impl_;
};

// Collects entries from feeds, then builds an IocSet (the builder stays usable).
class IocSetBuilder {
 public:
  IocSetBuilder();
  ~IocSetBuilder();
  IocSetBuilder(const IocSetBuilder&) = delete;
  IocSetBuilder& operator=(const IocSetBuilder&) = delete;

  // Imports a feed's text. Fails only when the feed as a whole is unusable
  // (no name, JSON that does not parse or has the wrong shape); bad lines are
  // counted and sampled in the stats.
  [[nodiscard]] absl::StatusOr<IocImportStats> ImportText(IocFeedFormat format,
                                                          std::string_view text,
                                                          const IocFeedOptions& options);
  [[nodiscard]] absl::StatusOr<IocImportStats> ImportFile(IocFeedFormat format,
                                                          const std::filesystem::path& path,
                                                          const IocFeedOptions& options);

  // Adds one indicator whose kind is inferred (domain, URL, IP, CIDR, hash).
  // Returns false (and adds nothing) when `value` is none of those.
  bool Add(std::string_view value, const IocEntry& meta);

  // Adds an entry as an import made it (value normalized, kind set), e.g. one
  // read back from storage. Returns false (and adds nothing) when the value is
  // not of that kind or duplicates an entry of the same feed.
  bool AddEntry(const IocEntry& entry);

  size_t size() const;
  // Every entry added so far, in the order added.
  const std::vector<IocEntry>& entries() const;

  [[nodiscard]] absl::StatusOr<std::shared_ptr<const IocSet>> Build(
      const IocSetOptions& options = {}) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Free-text scanning with the literal database: one per worker thread (owns
// Hyperscan scratch); not thread-safe.
class IocScanner {
 public:
  static absl::StatusOr<std::unique_ptr<IocScanner>> Create(std::shared_ptr<const IocSet> set);
  ~IocScanner();

  // Finds every literal IOC (domain or URL) anywhere in `text`, caseless;
  // `field` names the text in the hits ("event.original").
  [[nodiscard]] absl::Status ScanText(std::string_view text, std::string_view field,
                                      std::vector<IocHit>* hits);

  // LookupFields plus ScanText on `raw_line` (when non-empty) under the field
  // name "event.original", deduplicated per (entry, field).
  [[nodiscard]] absl::StatusOr<std::vector<IocHit>> Match(const FieldMap& fields,
                                                          std::string_view raw_line);
  // The same over a decoded event's fields (what Matcher uses: no copy into a map).
  [[nodiscard]] absl::StatusOr<std::vector<IocHit>> MatchEvent(const EventFields& fields,
                                                               std::string_view raw_line);

  const IocSet& set() const { return *set_; }

 private:
  IocScanner(std::shared_ptr<const IocSet> set, void* scratch);
  std::shared_ptr<const IocSet> set_;
  void* scratch_;  // hs_scratch_t*
};

// The fields an IOC hit adds to its event before the Sigma rules see it. A
// FIXED CONTRACT that rules are written against (rules/ruleset/ioc/): do not
// rename.
// Every field IOC enrichment sets starts with this; the Matcher drops fields
// under it that an event brings itself, so only real IOC hits produce them.
inline constexpr std::string_view kThreatPrefix = "threat.";
inline constexpr std::string_view kThreatFeedName = "threat.feed.name";  // "malware-hashes,usom"
inline constexpr std::string_view kThreatIndicatorValue = "threat.indicator.value";
inline constexpr std::string_view kThreatIndicatorType = "threat.indicator.type";  // IocKindName
inline constexpr std::string_view kThreatIndicatorCategory = "threat.indicator.category";
inline constexpr std::string_view kThreatIndicatorMatchedField = "threat.indicator.matched_field";
inline constexpr std::string_view kThreatIndicatorConfidence = "threat.indicator.confidence";
inline constexpr std::string_view kThreatIndicatorCount = "threat.indicator.count";

// Orders `hits` most confident first (ties: feed, then entry, then a decoded
// field before free text, then field name) and returns the threat.* fields:
// the distinct feed names sorted and joined with ",", the first hit's entry,
// kind, category, field and confidence, and the number of hits. Empty when
// there are no hits.
FieldMap ThreatFields(std::vector<IocHit>* hits);

}  // namespace siper::rules

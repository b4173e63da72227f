// Public API of the detection engine: a compiled, immutable rule set and a
// per-thread matcher that decodes raw lines and returns the rules they match.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rules/fim.h"

namespace siper::rules {

enum class InputFormat { kAuto, kSyslog, kJson };

// Parses "auto", "syslog" or "json".
[[nodiscard]] absl::StatusOr<InputFormat> ParseInputFormat(std::string_view name);

using FieldMap = std::map<std::string, std::string>;

// The decoded fields an alert carries: an immutable snapshot of its event's
// fields, taken once per event and shared by every detection of that event
// (copying one is a reference count, not a copy of the fields). Iterates as
// (name, value) views in the order the decoder set them, each name once; the
// views stay valid while any copy of the snapshot lives. Use ToMap() for a
// sorted map of strings.
// One allocation holds the entries and all names and values back to back
// (it was a vector of std::string pairs: ≈2.4k instructions per alerting
// event in the default rule set, now a few hundred). Names and values that
// are string literals (the names decoders set with
// EventFields::insert_or_assign_static) are views of the literals, not copies.
class DetectionFields {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;
  using const_iterator = const value_type*;
  using iterator = const_iterator;

  DetectionFields() = default;
  // Copies the names and values; names must be distinct.
  explicit DetectionFields(std::span<const value_type> entries);
  explicit DetectionFields(const FieldMap& fields);

  const_iterator begin() const { return entries(); }
  const_iterator end() const { return entries() + size_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const_iterator find(std::string_view name) const;
  size_t count(std::string_view name) const { return find(name) == end() ? 0 : 1; }
  // The value of `name`; std::out_of_range when absent (as std::map::at).
  std::string_view at(std::string_view name) const;
  FieldMap ToMap() const;
  bool operator==(const FieldMap& other) const;
  // Owns the memory the entries and their views live in (null when empty): a holder of it
  // may keep using the views without this object (server ingest hands them to the store).
  std::shared_ptr<const void> storage() const { return buffer_; }

 private:
  friend class EventFields;  // EventFields::Snapshot() fills the buffer itself
  DetectionFields(std::shared_ptr<const uint64_t[]> buffer, size_t size)
      : buffer_(std::move(buffer)), size_(size) {}
  const value_type* entries() const {
    return buffer_ == nullptr ? nullptr
                              : std::launder(reinterpret_cast<const value_type*>(buffer_.get()));
  }
  // size_ entries, then the text they view; in 8-byte words for alignment.
  std::shared_ptr<const uint64_t[]> buffer_;
  size_t size_ = 0;
};

struct Detection {
  std::string rule_id;
  std::string title;
  std::string level;  // Sigma level
  std::vector<std::string> tags;
  DetectionFields fields;  // the decoded fields of the event that matched (ECS names)
  uint32_t count = 1;      // correlation: events in the window when it fired
};

// Outcome of loading one rule file, for `rules lint` and load reports.
struct RuleDiagnostic {
  enum class Status { kOk, kUnsupported, kError };
  std::string path;
  std::string rule_id;
  Status status = Status::kOk;
  std::string message;  // empty when ok; "file:line: what" otherwise
};
std::string_view RuleDiagnosticStatusName(RuleDiagnostic::Status status);

struct LoadOptions {
  // When false (the default), a rule with an error fails the whole load; rules
  // using unsupported constructs are always skipped and reported.
  bool skip_errors = false;  // default: false
  // Folder for compiled Hyperscan databases and parsed rule files, reused
  // while their inputs are unchanged (a restart then skips YAML parsing and
  // Hyperscan compilation). Empty (the default) parses and compiles every time.
  std::filesystem::path cache_dir;  // default: empty
  // Called for each damaged cache file found after the load returned: those of
  // the merged databases, which are compiled (or read from cache_dir) the first
  // time an event's route needs one, on the thread matching that event. They
  // are also listed in stats().cache_messages. May be empty (the default).
  std::function<void(const std::string&)> on_cache_message;  // default: none
};

struct RuleSetStats {
  size_t rules = 0;           // loaded rules (detection and correlation)
  size_t log_sources = 0;     // groups of rules sharing a log source
  size_t databases = 0;       // Hyperscan databases, one per (log source, field)
  size_t patterns = 0;        // distinct patterns over all databases
  size_t database_bytes = 0;  // total size of the compiled databases
  size_t cache_hits = 0;      // databases read from LoadOptions::cache_dir
  // One message per damaged cache file found (truncated, overlong or failing
  // its checksum), naming the file; each was rebuilt. Those found while
  // loading come first, then those of merged databases (below) as they were built.
  std::vector<std::string> cache_messages;
  // Merged databases: one per field of a route whose rule groups scan that
  // field (e.g. the raw line for linux, linux/sshd and linux/syslog), built the
  // first time an event takes that route, so these grow as events arrive and
  // are 0 right after a load. Not included in `databases` and `database_bytes`.
  size_t merged_databases = 0;       // built so far
  size_t merged_database_bytes = 0;  // their total size
  size_t merged_cache_hits = 0;      // of them, read from LoadOptions::cache_dir
};

struct RuleSetImpl;    // compiled form, private to the engine
class DataDecoderSet;  // rules/data_decoder.h

// One test case from a rule's `siper.tests` block: a log line, or a FIM
// observation (`fim:`), in which case `line` is a short description of it.
// Indicators a test case's IOC set holds (`ioc:` in a test case): the case
// runs with an IOC set of these, so IOC rules are tested on real lookups.
struct RuleTestIoc {
  std::string feed;
  std::string category;
  int confidence = 50;
  std::vector<std::string> values;  // domains, URLs, addresses, CIDRs or hashes
};

struct RuleTestCase {
  std::string line;
  std::optional<FileObservation> file;
  bool must_match = true;
  InputFormat format = InputFormat::kAuto;
  std::string source;
  FieldMap expect_fields;         // fields the matching event must carry
  std::vector<RuleTestIoc> iocs;  // the case's IOC set; empty: none
  int yaml_line = 0;
};

struct RuleInfo {
  std::string path;
  std::string id;
  std::string title;
  std::string level;
  std::vector<std::string> tags;
  std::string rsit_class;
  std::string rsit_type;
  bool correlation = false;
  std::vector<RuleTestCase> tests;
};

// Immutable, shared across threads as shared_ptr<const RuleSet>.
class RuleSet {
 public:
  // Loads every *.yml/*.yaml under dir (recursively) and compiles Hyperscan databases.
  static absl::StatusOr<std::shared_ptr<const RuleSet>> Load(const std::filesystem::path& dir);
  static absl::StatusOr<std::shared_ptr<const RuleSet>> Load(const std::filesystem::path& dir,
                                                             const LoadOptions& options);
  // Loads rules given as YAML text (for tests); `name` stands in for the path.
  static absl::StatusOr<std::shared_ptr<const RuleSet>> LoadFromString(std::string_view yaml,
                                                                       std::string_view name);

  // Parses and compiles every rule file under dir and reports each rule
  // document as ok, unsupported or error (never fails as a whole).
  static std::vector<RuleDiagnostic> Lint(const std::filesystem::path& dir);

  size_t rule_count() const;
  RuleSetStats stats() const;
  // Rules that were skipped (unsupported, or errors with skip_errors).
  const std::vector<RuleDiagnostic>& skipped() const;
  std::vector<RuleInfo> rules() const;
  // Decoders loaded from the `decoders/` folder of the rule directory; null when none.
  const DataDecoderSet* decoders() const;

  ~RuleSet();
  const RuleSetImpl& impl() const { return *impl_; }

 private:
  explicit RuleSet(std::unique_ptr<RuleSetImpl> impl);
  std::unique_ptr<RuleSetImpl> impl_;
};

class MatcherState;
class IocSet;  // rules/ioc.h

// One per worker thread, owns Hyperscan scratch; not thread-safe.
class Matcher {
 public:
  // With an IOC set, every event is looked up in it after decoding and before
  // the rules run; a hit adds the threat.* fields (rules/ioc.h, ThreatFields)
  // that IOC rules match on.
  static absl::StatusOr<std::unique_ptr<Matcher>> Create(
      std::shared_ptr<const RuleSet> rules, std::shared_ptr<const IocSet> ioc = nullptr);
  ~Matcher();

  // Replaces the IOC set (null: none) for the next events; correlation and
  // suppression state are kept.
  [[nodiscard]] absl::Status SetIocSet(std::shared_ptr<const IocSet> ioc);

  // Decodes one raw line read from file `source` and returns the rules it matches.
  // If fields_out is non-null it receives the decoded fields (also when nothing matched).
  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format,
                                                 FieldMap* fields_out = nullptr);

  // Matches one file-integrity observation (log source product siper,
  // service fim, category file_change unless a baseline; rules/fim.h).
  absl::StatusOr<std::vector<Detection>> ProcessFile(const FileObservation& file,
                                                     FieldMap* fields_out = nullptr);
  // The same, with the decoded fields as one immutable snapshot instead of a map: the one
  // the detections share (no second copy when the event matched), for the server's ingest,
  // which stores the fields without building a map of strings.
  absl::StatusOr<std::vector<Detection>> Process(std::string_view line, std::string_view source,
                                                 InputFormat format, DetectionFields* fields_out);
  absl::StatusOr<std::vector<Detection>> ProcessFile(const FileObservation& file,
                                                     DetectionFields* fields_out);

  // Ids of every detection rule whose condition held for the last line,
  // including rules that stay silent (referenced only by correlations) or were
  // suppressed. For rule tests.
  std::vector<std::string> LastMatchedRuleIds() const;

  const RuleSet& rule_set() const { return *rules_; }

 private:
  Matcher(std::shared_ptr<const RuleSet> rules, std::unique_ptr<MatcherState> state);
  std::shared_ptr<const RuleSet> rules_;
  std::unique_ptr<MatcherState> state_;
};

// Outcome of one rule test case (RunRuleTests).
struct RuleTestResult {
  std::string path;  // rule file
  int yaml_line = 0;
  std::string rule_id;
  std::string title;
  std::string input;  // the line, or the FIM case's description
  bool must_match = true;
  bool passed = false;
  std::string message;  // why it failed; empty when passed
};

// Runs every rule's own test cases (`siper.tests`), each on a fresh matcher so
// that suppression and correlation state do not leak between cases. A case
// passes when the rule's condition held (or did not, for no_match), also for
// rules that stay silent because only correlations use them, and the event
// carries the expected fields.
std::vector<RuleTestResult> RunRuleTests(const std::shared_ptr<const RuleSet>& rules);

}  // namespace siper::rules

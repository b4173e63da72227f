#include "server/storage/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/key_codec.h"
#include "common/status.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "server/storage/chain.h"
#include "server/storage/event_codec.h"
#include "server/storage/field_counts.h"
#include "server/storage/keys.h"
#include "server/storage/memtable_hints.h"
#include "server/storage/store_impl.h"
#include "siper/v1/storage.pb.h"

namespace siper::storage {

namespace internal {
absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat("storage: ", Av(what), ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(msg);
    case rocksdb::Status::kIOError:
      if (s.subcode() == rocksdb::Status::kNoSpace) return absl::ResourceExhaustedError(msg);
      return absl::UnavailableError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kTimedOut:
      return absl::UnavailableError(msg);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }
}  // namespace internal

namespace {

using internal::AsSlice;
using internal::AsView;
using internal::Av;
using internal::Cf;
using internal::FromRocks;
using internal::kCfNames;
using internal::KeyRange;
using internal::NowNs;
using internal::ParseValue;
using internal::ScopedSnapshot;
using keycodec::ToHex;
using enum internal::Cf;

// Levels ordered by severity; -1 for a name that is not a level.
int LevelRank(std::string_view level) {
  static constexpr std::array<std::string_view, 5> kLevels = {"informational", "low", "medium",
                                                              "high", "critical"};
  for (size_t i = 0; i < kLevels.size(); ++i) {
    if (kLevels[i] == level) return static_cast<int>(i);
  }
  return -1;
}

// The rank a query's `min_level` asks for: 0 when it is empty (every level).
absl::StatusOr<int> MinLevelRank(std::string_view min_level) {
  if (min_level.empty()) return 0;
  const int rank = LevelRank(min_level);
  if (rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage: unknown alert level '", Av(min_level),
                     "' (expected informational, low, medium, high or critical)"));
  }
  return rank;
}

bool TextMatches(const siper::v1::Event& e, std::string_view text) {
  if (text.empty()) return true;
  if (e.has_log()) return std::string_view(e.log().line()).find(text) != std::string_view::npos;
  if (e.has_file()) return std::string_view(e.file().path()).find(text) != std::string_view::npos;
  return false;
}

bool Occurs(std::string_view haystack, std::string_view needle) {
  return needle.empty() ||
         memmem(haystack.data(), haystack.size(), needle.data(), needle.size()) != nullptr;
}

// False when a stored event value cannot pass TextMatches and FieldsMatch,
// decided on its bytes without parsing them: the raw line, the file path and
// the field names and values are protobuf strings, stored as they are, so each
// must occur in the value. True means only "parse and check". A scan that
// looks for a rare text then parses almost nothing.
bool ValueMayMatch(std::string_view value, const EventQuery& q) {
  if (!Occurs(value, q.text)) return false;
  for (const auto& [name, want] : q.fields) {
    if (!Occurs(value, want) || !Occurs(value, name)) return false;
  }
  return true;
}

// Range of keys `prefix | time...` for [since_ns, until_ns), 0 = unbounded.
KeyRange TimeRange(std::string_view prefix, int64_t since_ns, int64_t until_ns) {
  KeyRange r;
  r.lower = keys::TimeBound(prefix, since_ns != 0 ? since_ns : std::numeric_limits<int64_t>::min());
  if (until_ns != 0) {
    r.upper = keys::TimeBound(prefix, until_ns);
  } else {
    r.upper = keycodec::PrefixSuccessor(prefix);
  }
  return r;
}

// Narrows `r` to the keys after `at` in scan order, for paging. `at` is the
// index key of the last record returned. Keys are fixed-width per family, so
// every key greater than `at` is also greater than `at` followed by 0xff
// bytes, which covers the alert keys that extend an event key (the rule index).
void ResumeAfter(KeyRange* r, const std::string& at, bool newest_first) {
  if (newest_first) {
    if (!r->upper.has_value() || at < *r->upper) r->upper = at;
  } else {
    std::string past = at + std::string(8, '\xff');
    if (past > r->lower) r->lower = std::move(past);
  }
}

// Narrows `r` for paging in a posting index (events_by_agent, events_by_field): to the
// keys from the cursor's posting group `group` on (forward) or up to its end (backward);
// the PostingReader skips the group's events up to the cursor.
void ResumeInGroup(KeyRange* r, const std::string& group, bool newest_first) {
  if (newest_first) {
    std::optional<std::string> end = keycodec::PrefixSuccessor(group);
    if (end.has_value() && (!r->upper.has_value() || *end < *r->upper)) r->upper = std::move(end);
  } else {
    if (group > r->lower) r->lower = group;
  }
}

// Parses a hex position of `size` bytes (an event cursor or an alert id).
absl::StatusOr<std::string> ParsePosition(std::string_view hex, size_t size,
                                          std::string_view what) {
  std::optional<std::string> key = keycodec::FromHex(hex);
  keys::EventKeyParts parts;
  if (!key.has_value() || key->size() != size || !keys::ParseEventKey(*key, &parts)) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage: '", Av(hex), "' is not ", Av(what), " (", size * 2, " hex digits)"));
  }
  return *key;
}

bool FieldsMatch(const siper::v1::Event& e, const std::map<std::string, std::string>& want) {
  for (const auto& [name, value] : want) {
    auto it = e.fields().find(name);
    if (it == e.fields().end() || it->second != value) return false;
  }
  return true;
}

// Stops a scan after `limit` results (0 = no limit) or when the sink says so.
// Most decoded fields are not indexed; their length alone says so (one bit test),
// so the names are compared only for a field of an indexed name's length.
constexpr uint64_t IndexedLengths() {
  uint64_t mask = 0;
  for (std::string_view f : kIndexedFields) mask |= uint64_t{1} << f.size();
  return mask;
}
static_assert([] {
  for (std::string_view f : kIndexedFields) {
    if (f.size() >= 64) return false;
  }
  return true;
}());

bool IsIndexedField(std::string_view name) {
  if (name.size() >= 64 || ((IndexedLengths() >> name.size()) & 1) == 0) return false;
  for (std::string_view f : kIndexedFields) {
    if (f.size() == name.size() && f == name) return true;
  }
  return false;
}

// The value as the field index keys it: itself up to kMaxIndexedValueSize
// bytes; a longer one as its first kMaxIndexedValueSize bytes and its SHA-256,
// which keeps keys short and equality exact (no two values share a key form;
// a long form is longer than any short one).
absl::StatusOr<std::string> IndexedValue(std::string_view value) {
  if (value.size() <= kMaxIndexedValueSize) return std::string(value);
  Sha256 h;
  h.Bytes(value);
  SIPER_ASSIGN_OR_RETURN(std::string digest, h.Finish());
  return std::string(value.substr(0, kMaxIndexedValueSize)) + digest;
}

class Emitter {
 public:
  explicit Emitter(uint64_t limit) : limit_(limit) {}
  // Returns false when the scan must stop.
  template <typename Sink, typename T>
  bool Emit(const Sink& sink, const T& value) {
    if (!sink(value)) return false;
    ++count_;
    return limit_ == 0 || count_ < limit_;
  }
  bool Exhausted() const { return limit_ != 0 && count_ >= limit_; }

 private:
  uint64_t limit_;
  uint64_t count_ = 0;
};

// The elements of the event postings (events_by_agent, events_by_field; keys.h): seqs.
struct EventPostingElements {
  using Element = uint64_t;
  static bool Decode(uint64_t first, std::string_view value, std::vector<uint64_t>* out) {
    return keys::DecodePosting(first, value, out);
  }
  // True when `seq` is the cursor's `at` or comes before it in scan order.
  bool UpTo(uint64_t seq, uint64_t at, bool reverse) const {
    return reverse ? seq >= at : seq <= at;
  }
};

// The elements of the alert postings (alerts_by_agent, alerts_by_rule; keys.h): (seq,
// index). With `whole_event`, a cursor (an event) covers every alert of its event.
struct AlertPostingElements {
  using Element = keys::AlertRef;
  bool whole_event = false;
  static bool Decode(keys::AlertRef first, std::string_view value,
                     std::vector<keys::AlertRef>* out) {
    return keys::DecodeAlertPosting(first, value, out);
  }
  bool UpTo(keys::AlertRef ref, keys::AlertRef at, bool reverse) const {
    if (whole_event) return reverse ? ref.seq >= at.seq : ref.seq <= at.seq;
    return reverse ? ref >= at : ref <= at;
  }
};

// Where a paged scan resumes: the posting group (time, agent) and the element in it.
template <typename Element>
struct PostingCursor {
  int64_t time_ns = 0;
  uint32_t agent_num = 0;
  Element at{};
};

// Reads a posting index (keys.h: events_by_agent and events_by_field, whose elements are
// seqs; alerts_by_agent and alerts_by_rule, whose elements are (seq, index)) in scan
// order and emits the elements in their key order, forward or backward. Keys of one
// group (the key without its first element: prefix, time, agent) are adjacent; two
// writes of one agent with the same time give two keys whose elements may interleave, so
// a group's elements are collected and sorted before they are emitted. `after` (a
// cursor) skips the elements of its group up to and including it in scan order
// (Elements::UpTo); the caller starts the scan at the start (or end) of that group.
// `emit(time_ns, agent, element)` returns false to stop the scan.
template <typename Elements, typename EmitFn>
class PostingReader {
 public:
  using Element = typename Elements::Element;
  PostingReader(const char* family, bool reverse, std::optional<PostingCursor<Element>> after,
                Elements elements, EmitFn emit)
      : family_(family),
        reverse_(reverse),
        after_(after),
        elements_(elements),
        emit_(std::move(emit)) {}

  // One key: its group (the key up to its first element), its time, agent and first
  // element, and its value. Returns false when the scan must stop.
  absl::StatusOr<bool> Add(std::string_view key, std::string_view group, int64_t time_ns,
                           uint32_t agent, Element first, std::string_view value) {
    if (!elements_list_.empty() && group != group_) {
      SIPER_ASSIGN_OR_RETURN(bool more, Flush());
      if (!more) {
        stopped_ = true;
        return false;
      }
    }
    if (elements_list_.empty()) {
      group_.assign(group);
      time_ns_ = time_ns;
      agent_ = agent;
    } else {
      merged_ = true;
    }
    if (!Elements::Decode(first, value, &elements_list_)) {
      return absl::DataLossError(
          absl::StrCat("storage: malformed posting in ", family_, " at key ", ToHex(key)));
    }
    return true;
  }
  // Emits the last group, unless the scan was stopped; call once the scan ended.
  absl::Status Finish() {
    if (stopped_) return absl::OkStatus();
    return Flush().status();
  }

 private:
  absl::StatusOr<bool> Flush() {
    if (merged_) {
      std::sort(elements_list_.begin(), elements_list_.end());
      elements_list_.erase(std::unique(elements_list_.begin(), elements_list_.end()),
                           elements_list_.end());
    }
    if (reverse_) std::reverse(elements_list_.begin(), elements_list_.end());
    const bool cursor_group =
        after_.has_value() && after_->time_ns == time_ns_ && after_->agent_num == agent_;
    bool more = true;
    for (const Element& e : elements_list_) {
      if (cursor_group && elements_.UpTo(e, after_->at, reverse_)) continue;
      SIPER_ASSIGN_OR_RETURN(more, emit_(time_ns_, agent_, e));
      if (!more) break;
    }
    elements_list_.clear();
    merged_ = false;
    return more;
  }

  const char* family_;
  bool reverse_;
  std::optional<PostingCursor<Element>> after_;
  Elements elements_;
  EmitFn emit_;
  std::string group_;
  int64_t time_ns_ = 0;
  uint32_t agent_ = 0;
  std::vector<Element> elements_list_;
  bool merged_ = false;
  bool stopped_ = false;
};

// The event key parts of an index key `prefix | event key` (`size` = kEventKeySize) or
// `prefix | alert key` (kAlertKeySize); DataLoss naming the family and key otherwise.
absl::Status ParseIndexKey(std::string_view key, size_t prefix_size, size_t size,
                           std::string_view family, keys::EventKeyParts* parts) {
  const std::string_view rest = key.substr(std::min(prefix_size, key.size()));
  if (rest.size() != size || !keys::ParseEventKey(rest, parts)) {
    return absl::DataLossError(
        absl::StrCat("storage: malformed key in ", Av(family), ": ", ToHex(key)));
  }
  return absl::OkStatus();
}

// Scans an alert posting index (alerts_by_agent or alerts_by_rule) under `prefix` in
// [since_ns, until_ns) and emits every alert key, resuming after `after_key` (an alert
// key, or an event key with whole_event) when given. Keys of other agents than
// `only_agent` (when set) are skipped.
template <typename ScanFn, typename EmitFn>
absl::Status ScanAlertPostings(const ScanFn& scan, const char* family, const std::string& prefix,
                               int64_t since_ns, int64_t until_ns, bool newest_first,
                               const std::optional<std::string>& after_key, bool whole_event,
                               std::optional<uint32_t> only_agent, const EmitFn& emit) {
  KeyRange range = TimeRange(prefix, since_ns, until_ns);
  std::optional<PostingCursor<keys::AlertRef>> after;
  if (after_key.has_value()) {
    keys::EventKeyParts at;
    (void)keys::ParseEventKey(*after_key, &at);  // checked by ParsePosition
    const uint32_t index =
        whole_event ? 0 : keycodec::DecodeUint32(after_key->data() + keys::kEventKeySize);
    after = PostingCursor<keys::AlertRef>{at.time_ns, at.agent_num, {at.seq, index}};
    // The cursor's posting group (prefix | time | agent) is read whole.
    ResumeInGroup(&range, prefix + after_key->substr(0, 12), newest_first);
  }
  std::string alert_key;
  PostingReader reader(family, newest_first, after, AlertPostingElements{whole_event},
                       [&](int64_t t, uint32_t agent, keys::AlertRef ref) {
                         alert_key.clear();
                         keycodec::AppendInt64(&alert_key, t);
                         keycodec::AppendUint32(&alert_key, agent);
                         keycodec::AppendUint64(&alert_key, ref.seq);
                         keycodec::AppendUint32(&alert_key, ref.index);
                         return emit(std::string_view(alert_key));
                       });
  SIPER_RETURN_IF_ERROR(
      scan(range, [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        keys::EventKeyParts parts;
        SIPER_RETURN_IF_ERROR(
            ParseIndexKey(key, prefix.size(), keys::kAlertKeySize, family, &parts));
        if (only_agent.has_value() && parts.agent_num != *only_agent) return true;
        const uint32_t index =
            keycodec::DecodeUint32(key.data() + prefix.size() + keys::kEventKeySize);
        return reader.Add(key, key.substr(0, prefix.size() + 12), parts.time_ns, parts.agent_num,
                          {parts.seq, index}, value);
      }));
  return reader.Finish();
}

}  // namespace

std::span<const std::pair<std::string_view, std::string_view>> EventRecord::AlertFields(
    size_t i, std::vector<std::pair<std::string_view, std::string_view>>* scratch) const {
  scratch->clear();
  if (i < alert_fields.size() && !alert_fields[i].empty()) return alert_fields[i].entries;
  if (i < alerts.size()) {
    for (const auto& [name, value] : alerts[i].fields()) scratch->emplace_back(name, value);
  }
  return *scratch;
}

Store::Impl::~Impl() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    // Destroying a handle only fails for a handle of another DB.
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  for (rocksdb::ColumnFamilyHandle* h : extra_handles_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  // Nothing is lost if Close fails: the WAL holds every write, and there is
  // nobody left to report to.
  db_->Close().PermitUncheckedError();
  delete db_;
}

absl::Status Store::Impl::Open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("storage: cannot create data directory ", dir_.string(), ": ", ec.message()));
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  // Bounds the memtables of all families together.
  db_options.db_write_buffer_size = 256 << 20;

  // LZ4 for the upper levels (fast, for recent data), ZSTD for the bottom
  // level where most of the data rests; fall back when the RocksDB build lacks
  // one (Debian 12's librocksdb7.8 has both).
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  std::shared_ptr<rocksdb::Cache> block_cache = rocksdb::NewLRUCache(64 << 20);
  auto cf_options = [&](Cf which) {
    rocksdb::ColumnFamilyOptions o;
    o.level_compaction_dynamic_level_bytes = true;
    o.compression = has(rocksdb::kLZ4Compression)      ? rocksdb::kLZ4Compression
                    : has(rocksdb::kSnappyCompression) ? rocksdb::kSnappyCompression
                                                       : rocksdb::kNoCompression;
    if (has(rocksdb::kZSTD)) o.bottommost_compression = rocksdb::kZSTD;
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = block_cache;
    // event_seq needs no bloom filter since schema 4: it is read by SeekForPrev
    // (runs, keys.h), and only for seqs at or below an agent's high-water mark.
    if (which == kFieldCounts) {
      o.merge_operator = internal::NewCountAddOperator();
      // A busy hour's keys get one operand per commit group. Operands are folded by
      // the memtable's flush (and compactions), not on write: max_successive_merges
      // (64 before) made every operand's insert seek the memtable to count the key's
      // earlier ones, ≈95 µs of a small batch's CPU (docs/performance.md). A small
      // memtable for this family bounds what a count read adds up instead: 4 MiB
      // holds ≈70k operands in all, and each flush folds them.
      o.max_successive_merges = 0;
      o.write_buffer_size = 4 << 20;
    }
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    o.memtable_insert_with_hint_prefix_extractor = internal::InsertHintPrefix(which);
    return o;
  };

  // Open every family on disk, also ones a newer Siper added: RocksDB refuses
  // to open otherwise, and the schema check below gives the clearer message.
  std::vector<std::string> on_disk;
  if (std::filesystem::exists(dir_ / "CURRENT")) {
    SIPER_RETURN_IF_ERROR(
        FromRocks(rocksdb::DB::ListColumnFamilies(db_options, dir_.string(), &on_disk),
                  absl::StrCat("list column families in ", dir_.string())));
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (size_t i = 0; i < kNumCfs; ++i) {
    descriptors.emplace_back(kCfNames[i], cf_options(static_cast<Cf>(i)));
  }
  for (const std::string& name : on_disk) {
    bool known = name == rocksdb::kDefaultColumnFamilyName ||
                 std::find_if(kCfNames.begin(), kCfNames.end(),
                              [&](const char* n) { return name == n; }) != kCfNames.end();
    if (!known) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }

  std::vector<rocksdb::ColumnFamilyHandle*> opened;
  SIPER_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(db_options, dir_.string(), descriptors, &opened, &db_),
                absl::StrCat("open RocksDB in ", dir_.string())));
  // opened[0] is the default family, which Siper does not use.
  extra_handles_.push_back(opened[0]);
  handles_.assign(opened.begin() + 1, opened.begin() + 1 + kNumCfs);
  extra_handles_.insert(extra_handles_.end(), opened.begin() + 1 + kNumCfs, opened.end());

  // Schema version.
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> version,
                         Get(kMeta, keys::kSchemaVersionKey, nullptr));
  if (version.has_value()) {
    if (version->size() != 4) {
      return absl::DataLossError(absl::StrCat("storage: schema version record in ", dir_.string(),
                                              " is ", version->size(),
                                              " bytes, expected 4 (corrupt meta)"));
    }
    uint32_t v = keycodec::DecodeUint32(version->data());
    if (v > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "storage: data directory ", dir_.string(), " has schema version ", v,
          ", newer than this build's ", kSchemaVersion,
          "; it was written by a newer siper-server. Run that version, or restore a backup "
          "made by this one."));
    }
    if (v < kSchemaVersion) {
      // Version 1 lacks field_counts, which needs its merge operator: from now on an
      // older build must refuse this store (it would neither count new events nor be able
      // to compact the counts). The counts start after the newest event stored so far
      // (LoadFieldCountsStart); older hours are counted from the index.
      // Version 2 wrote one index key per event with an empty value, which version 3
      // reads as a posting of that event alone (keys.h): nothing to rewrite, but an
      // older build must not open the store once postings are in it.
      // Version 3 wrote one event_seq key per event with the time as its value, which
      // version 4 reads as a run of that one seq (keys.h): again nothing to rewrite, but
      // a version 3 build would miss the seqs inside runs (stored twice) and refuse their
      // values, so it must not open the store either.
      // Version 4 wrote one alerts_by_agent and alerts_by_rule key per alert with an empty
      // value, which version 5 reads as an alert posting of that alert alone (keys.h):
      // nothing to rewrite; a version 4 build would list only each posting's first alert.
      std::string now;
      keycodec::AppendUint32(&now, kSchemaVersion);
      SIPER_RETURN_IF_ERROR(
          FromRocks(db_->Put(SyncedWriteOpts(), cf(kMeta), AsSlice(keys::kSchemaVersionKey), now),
                    absl::StrCat("upgrade schema version from ", v, " to ", kSchemaVersion)));
    }
  } else {
    std::string v;
    keycodec::AppendUint32(&v, kSchemaVersion);
    SIPER_RETURN_IF_ERROR(
        FromRocks(db_->Put(SyncedWriteOpts(), cf(kMeta), AsSlice(keys::kSchemaVersionKey), v),
                  "write schema version"));
  }

  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> next,
                         Get(kMeta, keys::kNextAgentNumKey, nullptr));
  if (next.has_value()) {
    if (next->size() != 4) {
      return absl::DataLossError("storage: next_agent_num record is not 4 bytes (corrupt meta)");
    }
    next_agent_num_ = keycodec::DecodeUint32(next->data());
  }

  // Newest stored time, so times assigned after a restart never go back even
  // if the clock did.
  std::optional<std::string> newest;
  SIPER_RETURN_IF_ERROR(Scan(kEvents, KeyRange{}, /*reverse=*/true, nullptr,
                             [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                               newest = std::string(key);
                               return false;
                             }));
  keys::EventKeyParts parts;
  if (newest.has_value() && keys::ParseEventKey(*newest, &parts)) {
    last_server_time_ns_.store(parts.time_ns);
  }
  SIPER_ASSIGN_OR_RETURN(field_index_since_ns_,
                         LoadFieldIndexStart(keys::kFieldIndexSinceKey, newest.has_value()));
  SIPER_RETURN_IF_ERROR(LoadFieldCountsStart(newest.has_value()));
  return LoadChainState();
}

// Like the index start; a store opened without counts records that none are
// kept (int64 max), and one opened with them again starts after its newest event.
absl::Status Store::Impl::LoadFieldCountsStart(bool has_events) {
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  if (!options_.field_counts) {
    field_counts_since_ns_ = kNever;
    std::string v;
    keycodec::AppendInt64(&v, kNever);
    return FromRocks(db_->Put(SyncedWriteOpts(), cf(kMeta), AsSlice(keys::kFieldCountsSinceKey), v),
                     "write meta field_counts_since");
  }
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                         Get(kMeta, keys::kFieldCountsSinceKey, nullptr));
  if (stored.has_value() && stored->size() == 8 &&
      keycodec::DecodeInt64(stored->data()) == kNever) {
    SIPER_RETURN_IF_ERROR(
        FromRocks(db_->Delete(SyncedWriteOpts(), cf(kMeta), AsSlice(keys::kFieldCountsSinceKey)),
                  "reset meta field_counts_since"));
  }
  SIPER_ASSIGN_OR_RETURN(field_counts_since_ns_,
                         LoadFieldIndexStart(keys::kFieldCountsSinceKey, has_events));
  return absl::OkStatus();
}

// The field index and the field counts cover every event a build with them
// wrote. A store that had events before (an older build's) gets them from after
// its newest event: counts and field searches reaching back before that read
// the index or scan the events instead.
absl::StatusOr<int64_t> Store::Impl::LoadFieldIndexStart(std::string_view meta_key,
                                                         bool has_events) {
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> since, Get(kMeta, meta_key, nullptr));
  if (since.has_value()) {
    if (since->size() != 8) {
      return absl::DataLossError(
          absl::StrCat("storage: meta ", Av(meta_key), " is not 8 bytes (corrupt meta)"));
    }
    return keycodec::DecodeInt64(since->data());
  }
  const int64_t start =
      has_events ? last_server_time_ns_.load() + 1 : std::numeric_limits<int64_t>::min();
  std::string v;
  keycodec::AppendInt64(&v, start);
  SIPER_RETURN_IF_ERROR(FromRocks(db_->Put(SyncedWriteOpts(), cf(kMeta), AsSlice(meta_key), v),
                                  absl::StrCat("write meta ", Av(meta_key))));
  return start;
}

absl::Status Store::Impl::Scan(Cf which, const KeyRange& range, bool reverse,
                               const rocksdb::Snapshot* snapshot, const Visitor& visit) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  rocksdb::Slice lower(range.lower);
  rocksdb::Slice upper;
  if (!range.lower.empty()) ro.iterate_lower_bound = &lower;
  if (range.upper.has_value()) {
    upper = rocksdb::Slice(*range.upper);
    ro.iterate_upper_bound = &upper;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(which)));
  // Both seeks honour the bounds set above.
  if (reverse) {
    it->SeekToLast();
  } else {
    it->SeekToFirst();
  }
  for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
    SIPER_ASSIGN_OR_RETURN(bool more, visit(AsView(it->key()), AsView(it->value())));
    if (!more) return absl::OkStatus();
  }
  return FromRocks(it->status(), absl::StrCat("scan ", kCfNames[which]));
}

absl::StatusOr<std::optional<std::string>> Store::Impl::Get(
    Cf which, std::string_view key, const rocksdb::Snapshot* snapshot) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::string value;
  rocksdb::Status s = db_->Get(ro, cf(which), AsSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  SIPER_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("read ", kCfNames[which], " key ", ToHex(key))));
  return value;
}

absl::StatusOr<std::optional<uint32_t>> Store::Impl::FindAgentNum(std::string_view agent_id) const {
  std::lock_guard<std::mutex> lock(agent_num_mu_);
  if (auto it = agent_nums_.find(Av(agent_id)); it != agent_nums_.end()) return it->second;
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v,
                         Get(kMeta, keys::AgentNumKey(agent_id), nullptr));
  if (!v.has_value()) return std::nullopt;
  if (v->size() != 4) {
    return absl::DataLossError(absl::StrCat("storage: agent number of '", Av(agent_id),
                                            "' is not 4 bytes (corrupt meta)"));
  }
  uint32_t num = keycodec::DecodeUint32(v->data());
  agent_nums_.emplace(std::string(agent_id), num);
  return num;
}

absl::StatusOr<uint32_t> Store::Impl::AgentNum(std::string_view agent_id) {
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> found, FindAgentNum(agent_id));
  if (found.has_value()) return *found;
  std::lock_guard<std::mutex> lock(agent_num_mu_);
  if (auto it = agent_nums_.find(Av(agent_id)); it != agent_nums_.end()) return it->second;
  if (next_agent_num_ == std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError("storage: no agent numbers left");
  }
  uint32_t num = next_agent_num_;
  // Recorded on its own and synced before any event uses it, so a number in a
  // key always has its mapping on disk.
  rocksdb::WriteBatch batch;
  std::string num_bytes;
  keycodec::AppendUint32(&num_bytes, num);
  std::string next_bytes;
  keycodec::AppendUint32(&next_bytes, num + 1);
  SIPER_RETURN_IF_ERROR(FromRocks(batch.Put(cf(kMeta), keys::AgentNumKey(agent_id), num_bytes),
                                  "prepare agent number"));
  SIPER_RETURN_IF_ERROR(FromRocks(batch.Put(cf(kMeta), AsSlice(keys::kNextAgentNumKey), next_bytes),
                                  "prepare agent number"));
  SIPER_RETURN_IF_ERROR(FromRocks(db_->Write(SyncedWriteOpts(), &batch),
                                  absl::StrCat("record agent number of '", Av(agent_id), "'")));
  next_agent_num_ = num + 1;
  agent_nums_.emplace(std::string(agent_id), num);
  return num;
}

int64_t Store::Impl::NextServerTime() {
  int64_t now = NowNs();
  int64_t last = last_server_time_ns_.load();
  while (true) {
    int64_t t = std::max(now, last);
    if (last_server_time_ns_.compare_exchange_weak(last, t)) return t;
  }
}

absl::StatusOr<WriteResult> Store::Impl::Write(std::string_view agent_id,
                                               std::vector<EventRecord>& records) {
  if (agent_id.empty()) return absl::InvalidArgumentError("storage: write with an empty agent_id");
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].event.agent_id() != agent_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage: record ", i, " (seq ", records[i].event.seq(), ") has agent_id '",
                       records[i].event.agent_id(), "' in a batch of agent '", Av(agent_id),
                       "'; nothing written"));
    }
    const std::vector<FieldViews>& alert_fields = records[i].alert_fields;
    for (size_t a = 0; a < alert_fields.size() && a < records[i].alerts.size(); ++a) {
      if (!alert_fields[a].empty() && records[i].alerts[a].fields_size() > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("storage: record ", i, " (seq ", records[i].event.seq(), ") alert ", a,
                         " has fields both in its map and as views; nothing written"));
      }
    }
  }
  WriteResult result;
  if (records.empty()) return result;

  SIPER_ASSIGN_OR_RETURN(uint32_t agent_num, AgentNum(agent_id));
  std::lock_guard<std::mutex> lock(write_mu_[agent_num % internal::kWriteLockShards]);

  // Which (agent, seq) are stored already? Checked under the agent's lock, so
  // no other write of this agent is in flight. Seqs above the agent's high-water
  // mark are new without a lookup (an agent sends increasing seqs, so that is every
  // seq of a batch but a resend's); the others are looked up in event_seq's runs.
  auto& marks = seq_marks_[agent_num % internal::kWriteLockShards];
  uint64_t mark = 0;
  if (auto it = marks.find(agent_num); it != marks.end()) {
    mark = it->second;
  } else {
    SIPER_ASSIGN_OR_RETURN(mark, LastStoredSeq(agent_num, nullptr));
    marks.emplace(agent_num, mark);
  }
  bool ascending = true;  // strictly: then no seq repeats within the call
  bool below_mark = false;
  for (size_t i = 0; i < records.size(); ++i) {
    const uint64_t seq = records[i].event.seq();
    if (i > 0 && seq <= records[i - 1].event.seq()) ascending = false;
    if (seq <= mark) below_mark = true;
    records[i].duplicate = false;
  }
  if (below_mark) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kEventSeq)));
    for (EventRecord& r : records) {
      if (r.event.seq() > mark) continue;
      SIPER_ASSIGN_OR_RETURN(std::optional<keys::SeqRun> run,
                             FindSeqRun(it.get(), agent_num, r.event.seq()));
      r.duplicate = run.has_value();
    }
  }

  const int64_t batch_time = NextServerTime();
  absl::flat_hash_set<uint64_t> seen;
  internal::PendingCommit commit;
  commit.batch = rocksdb::WriteBatch(records.size() * 768);  // events, alerts, their keys
  // The writer builds its own RocksDB batch (the leader concatenates the group's
  // batches, WriteGroup): keys and values go straight into it, composite keys as
  // SliceParts, values serialized into one reused buffer. No per-key strings.
  std::string value;
  siper::v1::ChainSegment segment;
  segment.set_agent_id(std::string(agent_id));
  std::string event_keys;
  std::string alert_keys;
  event_keys.reserve(records.size() * keys::kEventKeySize);
  // The segment digest: every event, then every alert, as verify re-reads them;
  // events stream into it, alert values wait in alert_values (back to back, ending at
  // alert_ends). Item tags name the
  // one record that changed.
  Sha256 digest;
  Sha256 item;
  std::string tags;
  std::string alert_tags;
  std::string alert_values;
  std::vector<size_t> alert_ends;
  digest.Bytes(agent_id);
  auto put = [this, &commit](Cf which, rocksdb::Slice key, rocksdb::Slice v) -> absl::Status {
    return FromRocks(commit.batch.Put(cf(which), key, v), "prepare write batch");
  };
  // An index entry: the key from parts.
  auto put_index = [this, &commit](Cf which, std::initializer_list<rocksdb::Slice> key_parts,
                                   rocksdb::Slice v = rocksdb::Slice()) -> absl::Status {
    return FromRocks(
        commit.batch.Put(cf(which),
                         rocksdb::SliceParts(key_parts.begin(), static_cast<int>(key_parts.size())),
                         rocksdb::SliceParts(&v, 1)),
        "prepare write batch");
  };
  auto tag = [&item](std::string_view key, std::string_view v, std::string* out) -> absl::Status {
    item.Reset();
    item.Bytes(key);
    item.Bytes(v);
    char t[kItemTagSize];
    SIPER_RETURN_IF_ERROR(item.FinishTo(t, kItemTagSize));
    out->append(t, kItemTagSize);
    return absl::OkStatus();
  };
  std::string event_key;
  std::string alert_key;
  std::string time_bytes;
  std::string prefix;
  // Postings of this write: per time (events_by_agent), per hour | field | value | time
  // (events_by_field), the seqs of its new events.
  std::vector<std::pair<int64_t, std::vector<uint64_t>>> agent_postings;
  absl::flat_hash_map<std::string, std::vector<uint64_t>> field_postings;
  // Alert postings (schema 5): per time (alerts_by_agent), per rule | time
  // (alerts_by_rule), the (seq, index) of this write's alerts.
  std::vector<std::pair<int64_t, std::vector<keys::AlertRef>>> agent_alert_postings;
  absl::flat_hash_map<std::string, std::vector<keys::AlertRef>> rule_alert_postings;
  std::string agent_bytes;
  keycodec::AppendUint32(&agent_bytes, agent_num);
  const rocksdb::Slice agent_part = AsSlice(agent_bytes);
  std::vector<std::pair<std::string_view, std::string_view>> map_fields;
  // (seq, time) of the new events, for event_seq's runs.
  std::vector<std::pair<uint64_t, int64_t>> new_seqs;
  new_seqs.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EventRecord& r = records[i];
    siper::v1::Event& e = r.event;
    result.max_seq = std::max(result.max_seq, e.seq());
    if (!r.duplicate && !ascending) r.duplicate = !seen.insert(e.seq()).second;
    if (r.duplicate) {
      ++result.duplicates;
      continue;
    }
    if (e.server_time_ns() == 0) e.set_server_time_ns(batch_time);
    const int64_t t = e.server_time_ns();
    event_key.clear();
    keycodec::AppendInt64(&event_key, t);
    keycodec::AppendUint32(&event_key, agent_num);
    keycodec::AppendUint64(&event_key, e.seq());
    if (result.stored == 0) {
      segment.set_min_time_ns(t);
      segment.set_max_time_ns(t);
      segment.set_first_seq(e.seq());
      segment.set_last_seq(e.seq());
    } else {
      segment.set_min_time_ns(std::min(segment.min_time_ns(), t));
      segment.set_max_time_ns(std::max(segment.max_time_ns(), t));
      segment.set_first_seq(std::min(segment.first_seq(), e.seq()));
      segment.set_last_seq(std::max(segment.last_seq(), e.seq()));
    }
    ++result.stored;

    time_bytes.clear();
    keycodec::AppendInt64(&time_bytes, t);
    event_keys.append(event_key);
    if (r.fields.empty()) {
      internal::SerializeEvent(e, &value);
    } else {
      internal::SerializeEvent(e, r.fields.entries, &value);
    }
    digest.Bytes(event_key);
    digest.Bytes(value);
    SIPER_RETURN_IF_ERROR(tag(event_key, value, &tags));
    SIPER_RETURN_IF_ERROR(put(kEvents, event_key, value));
    new_seqs.emplace_back(e.seq(), t);
    // events_by_agent and events_by_field get one posting per time (and per indexed
    // value) of this write, written below: usually one key for the whole batch and one
    // per distinct value, instead of one key per event and per event's value.
    if (agent_postings.empty() || agent_postings.back().first != t) {
      auto it = std::find_if(agent_postings.begin(), agent_postings.end(),
                             [t](const auto& p) { return p.first == t; });
      if (it == agent_postings.end()) {
        agent_postings.emplace_back(t, std::vector<uint64_t>{});
      } else {
        std::rotate(it, it + 1, agent_postings.end());  // the time of this event goes last
      }
    }
    agent_postings.back().second.push_back(e.seq());
    // The decoded fields: as views (ingest) or in the event's map.
    map_fields.clear();
    if (r.fields.empty()) {
      for (const auto& [name, field_value] : e.fields()) map_fields.emplace_back(name, field_value);
    }
    const std::span<const std::pair<std::string_view, std::string_view>> fields =
        r.fields.empty()
            ? std::span<const std::pair<std::string_view, std::string_view>>(map_fields)
            : r.fields.entries;
    for (const auto& [name, field_value] : fields) {
      if (IsIndexedField(name)) {
        // hour | field | value | time: the posting's key without agent and seq.
        prefix.clear();
        keycodec::AppendUint32(&prefix, keys::HourOf(t));
        keycodec::AppendLengthPrefixed(&prefix, name);
        if (field_value.size() <= kMaxIndexedValueSize) {
          keycodec::AppendLengthPrefixed(&prefix, field_value);
        } else {
          SIPER_ASSIGN_OR_RETURN(std::string keyed, IndexedValue(field_value));
          keycodec::AppendLengthPrefixed(&prefix, keyed);
        }
        prefix.append(time_bytes);
        auto it = field_postings.find(prefix);
        if (it == field_postings.end())
          it = field_postings.emplace(prefix, std::vector<uint64_t>{}).first;
        it->second.push_back(e.seq());
      }
    }
    for (size_t a = 0; a < r.alerts.size(); ++a) {
      siper::v1::Alert& alert = r.alerts[a];
      alert_key = event_key;
      keycodec::AppendUint32(&alert_key, static_cast<uint32_t>(a));
      alert.set_id(ToHex(alert_key));
      alert.set_agent_id(std::string(agent_id));
      alert.set_seq(e.seq());
      alert.set_time_ns(t);
      if (e.has_log()) {
        if (alert.source().empty()) alert.set_source(e.log().source());
        if (alert.line().empty()) alert.set_line(e.log().line());
      } else if (e.has_file() && alert.source().empty()) {
        alert.set_source(e.file().path());
      }
      alert_keys.append(alert_key);
      const size_t start = alert_values.size();
      internal::AppendAlert(alert,
                            a < r.alert_fields.size()
                                ? r.alert_fields[a].entries
                                : std::span<const std::pair<std::string_view, std::string_view>>(),
                            &alert_values);
      alert_ends.push_back(alert_values.size());
      const std::string_view v = std::string_view(alert_values).substr(start);
      SIPER_RETURN_IF_ERROR(tag(alert_key, v, &alert_tags));
      SIPER_RETURN_IF_ERROR(put(kAlerts, alert_key, v));
      // alerts_by_agent and alerts_by_rule: one posting per time and per rule and time of
      // this write, written below, instead of one key per alert in each.
      const keys::AlertRef ref{e.seq(), static_cast<uint32_t>(a)};
      if (agent_alert_postings.empty() || agent_alert_postings.back().first != t) {
        auto it = std::find_if(agent_alert_postings.begin(), agent_alert_postings.end(),
                               [t](const auto& p) { return p.first == t; });
        if (it == agent_alert_postings.end()) {
          agent_alert_postings.emplace_back(t, std::vector<keys::AlertRef>{});
        } else {
          std::rotate(it, it + 1, agent_alert_postings.end());
        }
      }
      agent_alert_postings.back().second.push_back(ref);
      prefix.clear();
      keycodec::AppendLengthPrefixed(&prefix, alert.rule_id());
      prefix.append(time_bytes);
      auto it = rule_alert_postings.find(prefix);
      if (it == rule_alert_postings.end())
        it = rule_alert_postings.emplace(prefix, std::vector<keys::AlertRef>{}).first;
      it->second.push_back(ref);
    }
  }
  if (result.stored == 0) return result;
  // The postings (keys.h): seqs ascending, the key names the first. Only new events got
  // here (duplicates were skipped above), so a resent event is indexed and counted once,
  // like it is stored once.
  const bool count = options_.field_counts;
  std::string posting;
  auto encode = [&posting](std::vector<uint64_t>& seqs) {
    if (!std::is_sorted(seqs.begin(), seqs.end())) std::sort(seqs.begin(), seqs.end());
    posting.clear();
    for (size_t k = 1; k < seqs.size(); ++k) keys::AppendPosting(&posting, seqs[k - 1], seqs[k]);
  };
  std::string seq_bytes;
  // event_seq: one key per run of consecutive seqs with one time (keys.h), usually
  // one for the whole write.
  if (!std::is_sorted(new_seqs.begin(), new_seqs.end()))
    std::sort(new_seqs.begin(), new_seqs.end());
  std::string run_value;
  for (size_t k = 0; k < new_seqs.size();) {
    size_t end = k + 1;
    while (end < new_seqs.size() && new_seqs[end].first == new_seqs[end - 1].first + 1 &&
           new_seqs[end].second == new_seqs[k].second) {
      ++end;
    }
    seq_bytes.clear();
    keycodec::AppendUint64(&seq_bytes, new_seqs[k].first);
    run_value.clear();
    keycodec::AppendInt64(&run_value, new_seqs[k].second);
    keycodec::AppendUint64(&run_value, new_seqs[end - 1].first);
    SIPER_RETURN_IF_ERROR(put_index(kEventSeq, {agent_part, seq_bytes}, run_value));
    k = end;
  }
  for (auto& [t, seqs] : agent_postings) {
    encode(seqs);
    time_bytes.clear();
    keycodec::AppendInt64(&time_bytes, t);
    seq_bytes.clear();
    keycodec::AppendUint64(&seq_bytes, seqs.front());
    SIPER_RETURN_IF_ERROR(put_index(kEventsByAgent, {agent_part, time_bytes, seq_bytes}, posting));
    if (count) commit.counts[keys::HourEventsCountKey(keys::HourOf(t))] += seqs.size();
  }
  for (auto& [key, seqs] : field_postings) {
    encode(seqs);
    seq_bytes.clear();
    keycodec::AppendUint64(&seq_bytes, seqs.front());
    // key = hour | field | value | time; the index key adds agent | first seq.
    SIPER_RETURN_IF_ERROR(put_index(kEventsByField, {key, agent_part, seq_bytes}, posting));
    // The count key is the index key's prefix, hour | field | value.
    if (count) commit.counts[key.substr(0, key.size() - 8)] += seqs.size();
  }
  // The alert postings (keys.h): (seq, index) ascending, the key names the first.
  auto encode_alerts = [&posting](std::vector<keys::AlertRef>& refs) {
    if (!std::is_sorted(refs.begin(), refs.end())) std::sort(refs.begin(), refs.end());
    posting.clear();
    for (size_t k = 1; k < refs.size(); ++k)
      keys::AppendAlertPosting(&posting, refs[k - 1], refs[k]);
  };
  std::string index_bytes;
  auto first_ref = [&](const std::vector<keys::AlertRef>& refs) {
    seq_bytes.clear();
    keycodec::AppendUint64(&seq_bytes, refs.front().seq);
    index_bytes.clear();
    keycodec::AppendUint32(&index_bytes, refs.front().index);
  };
  for (auto& [t, refs] : agent_alert_postings) {
    encode_alerts(refs);
    first_ref(refs);
    time_bytes.clear();
    keycodec::AppendInt64(&time_bytes, t);
    SIPER_RETURN_IF_ERROR(put_index(
        kAlertsByAgent, {agent_part, time_bytes, agent_part, seq_bytes, index_bytes}, posting));
  }
  for (auto& [key, refs] : rule_alert_postings) {
    encode_alerts(refs);
    first_ref(refs);
    // key = len | rule | time; the index key adds agent | seq | index.
    SIPER_RETURN_IF_ERROR(
        put_index(kAlertsByRule, {key, agent_part, seq_bytes, index_bytes}, posting));
  }
  SIPER_RETURN_IF_ERROR(UpdateFileInventory(agent_num, records, &commit.batch));

  for (size_t a = 0; a < alert_ends.size(); ++a) {
    digest.Bytes(std::string_view(alert_keys).substr(a * keys::kAlertKeySize, keys::kAlertKeySize));
    const size_t start = a == 0 ? 0 : alert_ends[a - 1];
    digest.Bytes(std::string_view(alert_values).substr(start, alert_ends[a] - start));
  }
  tags.append(alert_tags);
  SIPER_ASSIGN_OR_RETURN(std::string d, digest.Finish());
  segment.set_digest(std::move(d));
  segment.set_item_tags(std::move(tags));
  segment.set_event_keys(std::move(event_keys));
  segment.set_alert_keys(std::move(alert_keys));
  {
    // For a retention run computing meanwhile (see ApplyRetention).
    std::lock_guard<std::mutex> written(written_mu_);
    auto [it, inserted] = lowest_written_.try_emplace(agent_num, segment.first_seq());
    if (!inserted) it->second = std::min(it->second, segment.first_seq());
  }
  const uint64_t new_mark = std::max(mark, segment.last_seq());
  commit.segment = std::move(segment);
  absl::Status st = Commit(&commit);
  if (st.ok()) {
    marks[agent_num] = new_mark;
  } else {
    marks.erase(agent_num);  // read again from what RocksDB holds
  }
  if (!st.ok()) {
    return absl::Status(st.code(),
                        absl::StrCat("write batch of ", result.stored, " events of agent '",
                                     Av(agent_id), "': ", st.message()));
  }
  return result;
}

absl::Status Store::Impl::UpdateFileInventory(uint32_t agent_num,
                                              const std::vector<EventRecord>& records,
                                              rocksdb::WriteBatch* batch) const {
  // The newest stored file event per path in this write (by seq: the agent's order).
  absl::flat_hash_map<std::string, const EventRecord*> newest;
  for (const EventRecord& r : records) {
    if (r.duplicate || !r.event.has_file()) continue;
    const EventRecord*& slot = newest[r.event.file().path()];
    if (slot == nullptr || slot->event.seq() < r.event.seq()) slot = &r;
  }
  // Called under the agent's write lock: no other write changes these keys.
  for (const auto& [path, record] : newest) {
    const siper::v1::Event* e = &record->event;
    const std::string file_key = keys::FileKey(agent_num, path);
    SIPER_ASSIGN_OR_RETURN(std::optional<std::string> old_value, Get(kFiles, file_key, nullptr));
    std::string old_hash;
    if (old_value.has_value()) {
      siper::v1::Event old;
      SIPER_RETURN_IF_ERROR(ParseValue(*old_value, kCfNames[kFiles], file_key, &old));
      if (old.seq() > e->seq()) continue;  // a resent older state
      old_hash = old.file().sha256();
    }
    std::string file_value;
    internal::SerializeEvent(*e, record->fields.entries, &file_value);  // as the events family
    SIPER_RETURN_IF_ERROR(
        FromRocks(batch->Put(cf(kFiles), file_key, file_value), "prepare write batch"));
    const std::string& new_hash = e->file().sha256();
    if (old_hash == new_hash) continue;
    if (!old_hash.empty()) {
      SIPER_RETURN_IF_ERROR(
          FromRocks(batch->Delete(cf(kFilesByHash), keys::FileByHashKey(old_hash, file_key)),
                    "prepare write batch"));
    }
    if (!new_hash.empty()) {
      SIPER_RETURN_IF_ERROR(
          FromRocks(batch->Put(cf(kFilesByHash), keys::FileByHashKey(new_hash, file_key), ""),
                    "prepare write batch"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<siper::v1::Event> Store::Impl::ReadEvent(std::string_view event_key,
                                                        const rocksdb::Snapshot* snapshot,
                                                        std::string_view index) const {
  static const EventQuery kEveryEvent;  // no filter: ReadEventMayMatch parses every value
  SIPER_ASSIGN_OR_RETURN(std::optional<siper::v1::Event> e,
                         ReadEventMayMatch(event_key, snapshot, index, kEveryEvent));
  return *std::move(e);
}

absl::StatusOr<std::optional<siper::v1::Event>> Store::Impl::ReadEventMayMatch(
    std::string_view event_key, const rocksdb::Snapshot* snapshot, std::string_view index,
    const EventQuery& q) const {
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, Get(kEvents, event_key, snapshot));
  if (!v.has_value()) {
    return absl::DataLossError(absl::StrCat("storage: index ", Av(index), " points to event ",
                                            ToHex(event_key), " which is not stored"));
  }
  if (!ValueMayMatch(*v, q)) return std::nullopt;
  siper::v1::Event e;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kEvents], event_key, &e));
  return e;
}

absl::Status Store::Impl::SearchEvents(
    const EventQuery& q, const std::function<bool(const siper::v1::Event&)>& sink) const {
  if (q.since_ns != 0 && q.until_ns != 0 && q.until_ns <= q.since_ns) return absl::OkStatus();
  std::optional<uint32_t> agent_num;
  if (!q.agent_id.empty()) {
    SIPER_ASSIGN_OR_RETURN(agent_num, FindAgentNum(q.agent_id));
    if (!agent_num.has_value()) return absl::OkStatus();  // never wrote anything
  }
  std::optional<std::string> cursor;
  if (!q.cursor.empty()) {
    SIPER_ASSIGN_OR_RETURN(cursor, ParsePosition(q.cursor, keys::kEventKeySize, "an event cursor"));
  }
  SIPER_ASSIGN_OR_RETURN(const int min_rank, MinLevelRank(q.min_level));
  ScopedSnapshot snapshot(db_);
  Emitter emitter(q.limit);

  // Emits one event if it passes the filters the scan did not apply.
  auto offer = [&](const siper::v1::Event& e) -> bool {
    if (!TextMatches(e, q.text) || !FieldsMatch(e, q.fields)) return true;
    return emitter.Emit(sink, e);
  };

  if (!q.rule_id.empty() || !q.min_level.empty()) {
    // Events that raised an alert (of the rule, of the level), through the
    // alerts: the rule index, else the alerts of the agent, else all alerts,
    // each in time order. Alerts of one event are adjacent in all three, so
    // one remembered key removes repeats.
    std::string prefix;
    internal::Cf index = kAlerts;
    if (!q.rule_id.empty()) {
      prefix = keys::RulePrefix(q.rule_id);
      index = kAlertsByRule;
    } else if (agent_num.has_value()) {
      prefix = keys::AgentPrefix(*agent_num);
      index = kAlertsByAgent;
    }
    std::string last_event_key;
    // Alerts may be kept longer than events: start where events remain.
    const int64_t since =
        std::max(q.since_ns != 0 ? q.since_ns : std::numeric_limits<int64_t>::min(),
                 events_cutoff_ns_.load());
    // One alert (its value when read from the alerts family itself).
    auto on_alert = [&](std::string_view alert_key,
                        std::optional<std::string_view> value) -> absl::StatusOr<bool> {
      std::string_view event_key = alert_key.substr(0, keys::kEventKeySize);
      if (event_key == last_event_key) return true;
      if (!q.min_level.empty()) {
        std::optional<std::string> stored;
        if (!value.has_value()) {
          SIPER_ASSIGN_OR_RETURN(stored, Get(kAlerts, alert_key, snapshot.get()));
          if (!stored.has_value()) {
            return absl::DataLossError(absl::StrCat("storage: index ", kCfNames[index],
                                                    " points to alert ", ToHex(alert_key),
                                                    " which is not stored"));
          }
          value = *stored;
        }
        siper::v1::Alert alert;
        SIPER_RETURN_IF_ERROR(ParseValue(*value, kCfNames[kAlerts], alert_key, &alert));
        // Another alert of the same event may still reach the level.
        if (LevelRank(alert.level()) < min_rank) return true;
      }
      last_event_key = std::string(event_key);
      SIPER_ASSIGN_OR_RETURN(std::optional<siper::v1::Event> e,
                             ReadEventMayMatch(event_key, snapshot.get(), kCfNames[index], q));
      return !e.has_value() || offer(*e);
    };
    if (index != kAlerts) {
      // Postings (keys.h); the cursor is an event: resume past all of its alerts.
      return ScanAlertPostings(
          [&](const KeyRange& range, const auto& visit) {
            return Scan(index, range, q.newest_first, snapshot.get(), visit);
          },
          kCfNames[index], prefix, since, q.until_ns, q.newest_first, cursor,
          /*whole_event=*/true, agent_num,
          [&](std::string_view alert_key) { return on_alert(alert_key, std::nullopt); });
    }
    KeyRange range = TimeRange(prefix, since, q.until_ns);
    if (cursor.has_value()) ResumeAfter(&range, prefix + *cursor, q.newest_first);
    return Scan(index, range, q.newest_first, snapshot.get(),
                [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                  keys::EventKeyParts parts;
                  if (key.size() != keys::kAlertKeySize || !keys::ParseEventKey(key, &parts)) {
                    return absl::DataLossError(absl::StrCat("storage: malformed key in ",
                                                            kCfNames[index], ": ", ToHex(key)));
                  }
                  if (agent_num.has_value() && parts.agent_num != *agent_num) return true;
                  return on_alert(key, value);
                });
  }

  if (auto indexed = IndexedFilter(q); indexed.has_value()) {
    return SearchFieldIndex(q, indexed->first, indexed->second, agent_num, cursor, snapshot.get(),
                            [&](const siper::v1::Event& e) { return offer(e); });
  }

  if (agent_num.has_value()) {
    const std::string prefix = keys::AgentPrefix(*agent_num);
    KeyRange range = TimeRange(prefix, q.since_ns, q.until_ns);
    std::optional<PostingCursor<uint64_t>> after;
    if (cursor.has_value()) {
      keys::EventKeyParts at;
      (void)keys::ParseEventKey(*cursor, &at);  // checked by ParsePosition
      after = PostingCursor<uint64_t>{at.time_ns, at.agent_num, at.seq};
      // The cursor's posting group (agent | time) is read whole; the reader skips up to it.
      std::string group = prefix;
      keycodec::AppendInt64(&group, at.time_ns);
      ResumeInGroup(&range, group, q.newest_first);
    }
    PostingReader reader(
        "events_by_agent", q.newest_first, after, EventPostingElements{},
        [&](int64_t t, uint32_t num, uint64_t seq) -> absl::StatusOr<bool> {
          SIPER_ASSIGN_OR_RETURN(
              std::optional<siper::v1::Event> e,
              ReadEventMayMatch(keys::EventKey(t, num, seq), snapshot.get(), "events_by_agent", q));
          return !e.has_value() || offer(*e);
        });
    SIPER_RETURN_IF_ERROR(
        Scan(kEventsByAgent, range, q.newest_first, snapshot.get(),
             [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
               keycodec::KeyReader r(key);
               uint32_t num = 0;
               int64_t t = 0;
               uint64_t seq = 0;
               if (!r.ReadUint32(&num) || !r.ReadInt64(&t) || !r.ReadUint64(&seq) || !r.done()) {
                 return absl::DataLossError(
                     absl::StrCat("storage: malformed key in events_by_agent: ", ToHex(key)));
               }
               return reader.Add(key, key.substr(0, 12), t, num, seq, value);
             }));
    return reader.Finish();
  }

  KeyRange range = TimeRange("", q.since_ns, q.until_ns);
  if (cursor.has_value()) ResumeAfter(&range, *cursor, q.newest_first);
  return Scan(kEvents, range, q.newest_first, snapshot.get(),
              [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                if (!ValueMayMatch(value, q)) return true;
                siper::v1::Event e;
                SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[kEvents], key, &e));
                return offer(e);
              });
}

std::optional<std::pair<std::string, std::string>> Store::Impl::IndexedFilter(
    const EventQuery& q) const {
  const int64_t since = q.since_ns != 0 ? q.since_ns : std::numeric_limits<int64_t>::min();
  if (std::max(since, events_cutoff_ns_.load()) < field_index_since_ns_) return std::nullopt;
  for (const auto& [field, value] : q.fields) {
    if (IsIndexedField(field)) return std::make_pair(field, value);
  }
  return std::nullopt;
}

absl::Status Store::Impl::SearchFieldIndex(
    const EventQuery& q, std::string_view field, std::string_view value,
    std::optional<uint32_t> agent_num, const std::optional<std::string>& cursor,
    const rocksdb::Snapshot* snapshot,
    const std::function<bool(const siper::v1::Event&)>& offer) const {
  // The hours to visit: those of the query's range, narrowed to the hours that
  // hold events.
  SIPER_ASSIGN_OR_RETURN(auto span, EventTimeSpan(snapshot));
  if (!span.has_value()) return absl::OkStatus();
  const auto [oldest, newest] = *span;
  const int64_t since =
      std::max({q.since_ns != 0 ? q.since_ns : oldest, oldest, events_cutoff_ns_.load()});
  const int64_t last = q.until_ns != 0 ? std::min(q.until_ns - 1, newest) : newest;
  if (last < since) return absl::OkStatus();
  uint32_t first_hour = keys::HourOf(since);
  uint32_t last_hour = keys::HourOf(last);
  keys::EventKeyParts at;
  if (cursor.has_value()) {
    (void)keys::ParseEventKey(*cursor, &at);  // checked by ParsePosition
    const uint32_t cursor_hour = keys::HourOf(at.time_ns);
    if (q.newest_first) {
      last_hour = std::min(last_hour, cursor_hour);
    } else {
      first_hour = std::max(first_hour, cursor_hour);
    }
  }
  SIPER_ASSIGN_OR_RETURN(const std::string keyed, IndexedValue(value));
  bool stopped = false;
  auto visit_hour = [&](uint32_t hour) -> absl::Status {
    const std::string prefix = keys::FieldIndexPrefix(hour, field, keyed);
    KeyRange range = TimeRange(prefix, since, q.until_ns);
    std::optional<PostingCursor<uint64_t>> after;
    if (cursor.has_value() && keys::HourOf(at.time_ns) == hour) {
      after = PostingCursor<uint64_t>{at.time_ns, at.agent_num, at.seq};
      // The cursor's posting group (prefix | time | agent) is read whole.
      ResumeInGroup(&range, prefix + cursor->substr(0, 12), q.newest_first);
    }
    PostingReader reader(
        "events_by_field", q.newest_first, after, EventPostingElements{},
        [&](int64_t t, uint32_t num, uint64_t seq) -> absl::StatusOr<bool> {
          SIPER_ASSIGN_OR_RETURN(
              std::optional<siper::v1::Event> e,
              ReadEventMayMatch(keys::EventKey(t, num, seq), snapshot, "events_by_field", q));
          if (!e.has_value()) return true;
          stopped = !offer(*e);
          return !stopped;
        });
    SIPER_RETURN_IF_ERROR(
        Scan(kEventsByField, range, q.newest_first, snapshot,
             [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
               keys::EventKeyParts parts;
               SIPER_RETURN_IF_ERROR(ParseIndexKey(key, prefix.size(), keys::kEventKeySize,
                                                   "events_by_field", &parts));
               if (agent_num.has_value() && parts.agent_num != *agent_num) return true;
               return reader.Add(key, key.substr(0, prefix.size() + 12), parts.time_ns,
                                 parts.agent_num, parts.seq, value);
             }));
    return reader.Finish();
  };
  if (q.newest_first) {
    for (int64_t hour = last_hour; hour >= first_hour && !stopped; --hour) {
      SIPER_RETURN_IF_ERROR(visit_hour(static_cast<uint32_t>(hour)));
    }
  } else {
    for (uint32_t hour = first_hour; hour <= last_hour && !stopped; ++hour) {
      SIPER_RETURN_IF_ERROR(visit_hour(hour));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> Store::Impl::AgentNums(
    const rocksdb::Snapshot* snapshot) const {
  std::vector<uint32_t> agents;
  const std::string prefix = keys::AgentNumKey("");
  SIPER_RETURN_IF_ERROR(
      Scan(kMeta, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)}, /*reverse=*/false, snapshot,
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             if (value.size() != 4) {
               return absl::DataLossError(absl::StrCat("storage: agent number at meta key ",
                                                       ToHex(key), " is not 4 bytes"));
             }
             agents.push_back(keycodec::DecodeUint32(value.data()));
             return true;
           }));
  return agents;
}

absl::StatusOr<std::optional<std::pair<int64_t, int64_t>>> Store::Impl::EventTimeSpan(
    const rocksdb::Snapshot* snapshot) const {
  std::optional<int64_t> ends[2];
  for (bool reverse : {false, true}) {
    SIPER_RETURN_IF_ERROR(Scan(kEvents, KeyRange{}, reverse, snapshot,
                               [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                                 keys::EventKeyParts parts;
                                 if (keys::ParseEventKey(key, &parts))
                                   ends[reverse] = parts.time_ns;
                                 return false;
                               }));
  }
  if (!ends[0].has_value() || !ends[1].has_value()) return std::nullopt;
  return std::make_pair(*ends[0], *ends[1]);
}

absl::StatusOr<std::optional<FieldCount>> Store::Impl::CountIndexedField(
    std::string_view field, int64_t since_ns, int64_t until_ns, std::string_view agent_id) const {
  constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
  // The range's lower bound as asked, and where events remain.
  const int64_t lower = std::max(since_ns != 0 ? since_ns : kMinTime, events_cutoff_ns_.load());
  if (!IsIndexedField(field) || lower < field_index_since_ns_) return std::nullopt;
  if (since_ns != 0 && until_ns != 0 && until_ns <= since_ns) return FieldCount{};
  std::optional<uint32_t> agent_num;
  if (!agent_id.empty()) {
    SIPER_ASSIGN_OR_RETURN(agent_num, FindAgentNum(agent_id));
    if (!agent_num.has_value()) return FieldCount{};
  }
  ScopedSnapshot snapshot(db_);
  FieldCount out;
  SIPER_ASSIGN_OR_RETURN(auto span, EventTimeSpan(snapshot.get()));
  if (!span.has_value()) return out;
  const int64_t since = std::max(lower, span->first);
  const int64_t last = until_ns != 0 ? std::min(until_ns - 1, span->second) : span->second;
  if (last < since) return out;

  // An hour the range holds whole is read from field_counts (one key per value
  // and one for the hour's events); the others (the range's ends, hours before
  // the counts began, any hour when one agent is asked for: the counts are of
  // all agents) from the keys of the index. The snapshot holds no event after
  // `last` when the range is open-ended, so an unbounded end takes the newest hour whole.
  auto whole = [&](uint32_t hour) {
    if (agent_num.has_value()) return false;
    const int64_t start = int64_t{hour} * keys::kNsPerHour;
    // Hour 0 also holds the events before 1970 (keys::HourOf).
    if (hour == 0 ? lower != kMinTime : start < lower) return false;
    if (start < field_counts_since_ns_) return false;
    return until_ns == 0 || start + keys::kNsPerHour <= until_ns;
  };
  const uint32_t first_hour = keys::HourOf(since);
  const uint32_t last_hour = keys::HourOf(last);
  // Time ranges [from, to] (inclusive) not covered by whole hours, merged.
  std::vector<std::pair<int64_t, int64_t>> partial;
  for (uint32_t hour = first_hour; hour <= last_hour; ++hour) {
    if (whole(hour)) continue;
    const int64_t from = hour == first_hour ? since : int64_t{hour} * keys::kNsPerHour;
    const int64_t to = hour == last_hour ? last : int64_t{hour + 1} * keys::kNsPerHour - 1;
    if (!partial.empty() && partial.back().second + 1 == from) {
      partial.back().second = to;
    } else {
      partial.emplace_back(from, to);
    }
  }

  // Events in the partial ranges: the keys of events_by_agent (empty values,
  // unlike events), of the named agent or of each agent in turn.
  std::vector<uint32_t> agents;
  if (agent_num.has_value()) {
    agents.push_back(*agent_num);
  } else if (!partial.empty()) {
    SIPER_ASSIGN_OR_RETURN(agents, AgentNums(snapshot.get()));
  }
  for (const auto& [from, to] : partial) {
    for (uint32_t agent : agents) {
      SIPER_RETURN_IF_ERROR(
          Scan(kEventsByAgent, TimeRange(keys::AgentPrefix(agent), from, to + 1),
               /*reverse=*/false, snapshot.get(),
               [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                 std::optional<uint64_t> n = keys::PostingSize(value);
                 if (!n.has_value()) {
                   return absl::DataLossError(absl::StrCat(
                       "storage: malformed posting in events_by_agent at key ", ToHex(key)));
                 }
                 out.events += *n;
                 return true;
               }));
    }
  }

  absl::flat_hash_map<std::string, uint64_t> counts;
  // Adds `n` to a value as the index keys it: a long value's key holds a
  // digest, so the value itself comes from an event that has it.
  absl::flat_hash_map<std::string, std::string> long_values;  // keyed -> value
  auto add = [&](std::string_view keyed, uint64_t n, uint32_t hour,
                 std::string_view event_key) -> absl::Status {
    if (keyed.size() <= kMaxIndexedValueSize) {
      // Most keys repeat a value already seen: look it up without a copy.
      if (auto it = counts.find(Av(keyed)); it != counts.end()) {
        it->second += n;
      } else {
        counts.emplace(std::string(keyed), n);
      }
      return absl::OkStatus();
    }
    auto known = long_values.find(Av(keyed));
    if (known == long_values.end()) {
      std::string found_key(event_key);
      if (found_key.empty()) {
        // From a count: the first index entry of this value in its hour.
        const std::string prefix = keys::FieldIndexPrefix(hour, field, keyed);
        SIPER_RETURN_IF_ERROR(
            Scan(kEventsByField, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)},
                 /*reverse=*/false, snapshot.get(),
                 [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                   found_key = std::string(key.substr(prefix.size()));
                   return false;
                 }));
        if (found_key.size() != keys::kEventKeySize) {
          return absl::DataLossError(
              absl::StrCat("storage: field_counts counts value ", ToHex(prefix),
                           " but events_by_field has no well-formed entry of it in that hour"));
        }
      }
      SIPER_ASSIGN_OR_RETURN(siper::v1::Event e,
                             ReadEvent(found_key, snapshot.get(), "events_by_field"));
      auto it = e.fields().find(std::string(field));
      if (it == e.fields().end()) {
        return absl::DataLossError(absl::StrCat("storage: index events_by_field points to event ",
                                                ToHex(found_key), " for field ", Av(field),
                                                ", which the event does not have"));
      }
      known = long_values.emplace(std::string(keyed), it->second).first;
    }
    counts[known->second] += n;
    return absl::OkStatus();
  };

  for (uint32_t hour = first_hour; hour <= last_hour; ++hour) {
    if (whole(hour)) {
      SIPER_ASSIGN_OR_RETURN(std::optional<std::string> hour_events,
                             Get(kFieldCounts, keys::HourEventsCountKey(hour), snapshot.get()));
      if (hour_events.has_value()) {
        if (hour_events->size() != 8) {
          return absl::DataLossError(absl::StrCat("storage: malformed count in field_counts at ",
                                                  ToHex(keys::HourEventsCountKey(hour))));
        }
        out.events += keycodec::DecodeUint64(hour_events->data());
      }
      const std::string prefix = keys::FieldCountsPrefix(hour, field);
      SIPER_RETURN_IF_ERROR(
          Scan(kFieldCounts, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)}, /*reverse=*/false,
               snapshot.get(),
               [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                 keycodec::KeyReader r(key.substr(prefix.size()));
                 std::string_view keyed;
                 if (!r.ReadLengthPrefixed(&keyed) || !r.done() || value.size() != 8) {
                   return absl::DataLossError(
                       absl::StrCat("storage: malformed entry in field_counts: ", ToHex(key)));
                 }
                 SIPER_RETURN_IF_ERROR(add(keyed, keycodec::DecodeUint64(value.data()), hour, ""));
                 return true;
               }));
      continue;
    }
    const std::string prefix = keys::FieldCountsPrefix(hour, field);  // as the index's
    SIPER_RETURN_IF_ERROR(Scan(
        kEventsByField, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)}, /*reverse=*/false,
        snapshot.get(), [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
          keycodec::KeyReader r(key.substr(prefix.size()));
          std::string_view keyed;
          keys::EventKeyParts parts;
          std::optional<uint64_t> n = keys::PostingSize(value);
          if (!r.ReadLengthPrefixed(&keyed) || r.rest().size() != keys::kEventKeySize ||
              !keys::ParseEventKey(r.rest(), &parts) || !n.has_value()) {
            return absl::DataLossError(
                absl::StrCat("storage: malformed entry in events_by_field: ", ToHex(key)));
          }
          // A posting's events share its time and agent.
          if (parts.time_ns < since || parts.time_ns > last) return true;
          if (agent_num.has_value() && parts.agent_num != *agent_num) return true;
          SIPER_RETURN_IF_ERROR(add(keyed, *n, hour, r.rest()));
          return true;
        }));
  }
  out.values.reserve(counts.size());
  for (auto& [value, count] : counts) out.values.emplace(value, count);
  return out;
}

absl::Status Store::Impl::ListAlerts(
    const AlertQuery& q, const std::function<bool(const siper::v1::Alert&)>& sink) const {
  SIPER_ASSIGN_OR_RETURN(const int min_rank, MinLevelRank(q.min_level));
  if (q.since_ns != 0 && q.until_ns != 0 && q.until_ns <= q.since_ns) return absl::OkStatus();
  std::optional<uint32_t> agent_num;
  if (!q.agent_id.empty()) {
    SIPER_ASSIGN_OR_RETURN(agent_num, FindAgentNum(q.agent_id));
    if (!agent_num.has_value()) return absl::OkStatus();
  }
  std::optional<std::string> after;
  if (!q.after_id.empty()) {
    SIPER_ASSIGN_OR_RETURN(after, ParsePosition(q.after_id, keys::kAlertKeySize, "an alert id"));
  }
  // The range of an index whose keys are `prefix | alert key`, resumed after `after`.
  auto range_of = [&](const std::string& prefix) {
    KeyRange range = TimeRange(prefix, q.since_ns, q.until_ns);
    if (after.has_value()) ResumeAfter(&range, prefix + *after, q.newest_first);
    return range;
  };
  ScopedSnapshot snapshot(db_);
  Emitter emitter(q.limit);

  auto offer = [&](std::string_view alert_key, std::string_view value) -> absl::StatusOr<bool> {
    siper::v1::Alert a;
    SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[kAlerts], alert_key, &a));
    // An alert with a level outside the scale passes only an empty filter.
    if (!q.min_level.empty() && LevelRank(a.level()) < min_rank) return true;
    return emitter.Emit(sink, a);
  };
  // Follows an index posting (keys.h) to its alerts.
  auto follow = [&](internal::Cf index, const std::string& prefix) {
    return ScanAlertPostings(
        [&](const KeyRange& range, const auto& visit) {
          return Scan(index, range, q.newest_first, snapshot.get(), visit);
        },
        kCfNames[index], prefix, q.since_ns, q.until_ns, q.newest_first, after,
        /*whole_event=*/false, agent_num,
        [&](std::string_view alert_key) -> absl::StatusOr<bool> {
          SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v,
                                 Get(kAlerts, alert_key, snapshot.get()));
          if (!v.has_value()) {
            return absl::DataLossError(absl::StrCat("storage: index ", kCfNames[index],
                                                    " points to alert ", ToHex(alert_key),
                                                    " which is not stored"));
          }
          return offer(alert_key, *v);
        });
  };

  if (!q.rule_id.empty()) return follow(kAlertsByRule, keys::RulePrefix(q.rule_id));
  if (agent_num.has_value()) return follow(kAlertsByAgent, keys::AgentPrefix(*agent_num));
  return Scan(kAlerts, range_of(""), q.newest_first, snapshot.get(), offer);
}

absl::StatusOr<uint64_t> Store::Impl::LastSeq(std::string_view agent_id) const {
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> agent_num, FindAgentNum(agent_id));
  if (!agent_num.has_value()) return 0;
  return LastStoredSeq(*agent_num, nullptr);
}

absl::StatusOr<uint64_t> Store::Impl::LastStoredSeq(uint32_t agent_num,
                                                    const rocksdb::Snapshot* snapshot) const {
  const std::string prefix = keys::AgentPrefix(agent_num);
  uint64_t last = 0;
  // Runs never overlap, so the last key's run ends at the highest seq.
  SIPER_RETURN_IF_ERROR(
      Scan(kEventSeq, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)},
           /*reverse=*/true, snapshot,
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             keys::SeqRun run;
             if (!keys::ParseSeqRun(key, value, &run)) {
               return absl::DataLossError(
                   absl::StrCat("storage: malformed entry in event_seq: ", ToHex(key)));
             }
             last = run.last;
             return false;
           }));
  return last;
}

absl::StatusOr<std::optional<keys::SeqRun>> Store::Impl::FindSeqRun(rocksdb::Iterator* it,
                                                                    uint32_t agent_num,
                                                                    uint64_t seq) const {
  const std::string key = keys::EventSeqKey(agent_num, seq);
  it->SeekForPrev(key);
  if (!it->Valid()) {
    SIPER_RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("seek event_seq at ", ToHex(key))));
    return std::nullopt;
  }
  const std::string_view found = AsView(it->key());
  if (found.size() < 4 || found.substr(0, 4) != std::string_view(key).substr(0, 4)) {
    return std::nullopt;  // another agent's key
  }
  keys::SeqRun run;
  if (!keys::ParseSeqRun(found, AsView(it->value()), &run)) {
    return absl::DataLossError(
        absl::StrCat("storage: malformed entry in event_seq: ", ToHex(found)));
  }
  if (run.last < seq) return std::nullopt;
  return run;
}

// ---------------------------------------------------------------------------
// Store: thin forwarding to Impl, plus the small record kinds.

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

namespace {

// Makes renames in `dir` durable.
void SyncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

std::filesystem::path Store::dir() const {
  const auto guard = Shared();
  return impl_->dir();
}

absl::Status Store::ReplaceWith(const std::filesystem::path& staged_dir,
                                const std::filesystem::path& keep_as, int64_t wait_ms) {
  namespace fs = std::filesystem;
  std::unique_lock<std::shared_timed_mutex> lock(swap_mu_, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(wait_ms))) {
    return absl::UnavailableError(
        absl::StrCat("storage: calls still running after ", wait_ms,
                     " ms (long searches or exports?); nothing was changed, try again"));
  }
  const fs::path dir = impl_->dir();
  const StoreOptions options = impl_->options();
  std::error_code ec;
  if (fs::exists(keep_as, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat("storage: ", keep_as.string(), " exists; nothing was changed"));
  }
  if (!fs::exists(staged_dir / "CURRENT", ec)) {
    return absl::NotFoundError(
        absl::StrCat("storage: ", staged_dir.string(), " holds no store; nothing was changed"));
  }
  // Reopens the store that was open; without it every later call would fail, so a
  // failure here ends the process (the WAL holds every acknowledged write, and a restart
  // opens the directory that is in place).
  auto reopen_old = [&] {
    auto old = std::make_unique<Impl>(dir, options);
    if (absl::Status st = old->Open(); !st.ok()) {
      std::fprintf(stderr, "storage: cannot reopen %s after a failed restore: %s\n", dir.c_str(),
                   st.ToString().c_str());
      std::abort();
    }
    impl_ = std::move(old);
  };
  impl_.reset();  // closes RocksDB; the WAL and memtables are flushed or kept on disk
  fs::rename(dir, keep_as, ec);
  if (ec) {
    reopen_old();
    return absl::UnavailableError(absl::StrCat("storage: cannot move ", dir.string(), " to ",
                                               keep_as.string(), ": ", ec.message(),
                                               "; nothing was changed"));
  }
  fs::rename(staged_dir, dir, ec);
  if (ec) {
    std::error_code back;
    fs::rename(keep_as, dir, back);
    reopen_old();
    return absl::UnavailableError(absl::StrCat("storage: cannot move ", staged_dir.string(), " to ",
                                               dir.string(), ": ", ec.message(),
                                               "; nothing was changed"));
  }
  SyncDirectory(dir.parent_path());
  auto next = std::make_unique<Impl>(dir, options);
  if (absl::Status st = next->Open(); !st.ok()) {
    next.reset();
    std::error_code back;
    fs::rename(dir, staged_dir, back);
    if (!back) fs::rename(keep_as, dir, back);
    SyncDirectory(dir.parent_path());
    reopen_old();
    return absl::Status(st.code(), absl::StrCat("storage: the restored store does not open (",
                                                st.message(), "); the previous one is back"));
  }
  impl_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::filesystem::path& dir,
                                                   const StoreOptions& options) {
  auto impl = std::make_unique<Impl>(dir, options);
  SIPER_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

absl::StatusOr<WriteResult> Store::Write(std::string_view agent_id,
                                         std::vector<EventRecord>& records) {
  const auto guard = Shared();
  return impl_->Write(agent_id, records);
}

absl::Status Store::SearchEvents(const EventQuery& q,
                                 const std::function<bool(const siper::v1::Event&)>& sink) const {
  const auto guard = Shared();
  return impl_->SearchEvents(q, sink);
}

absl::Status Store::ListAlerts(const AlertQuery& q,
                               const std::function<bool(const siper::v1::Alert&)>& sink) const {
  const auto guard = Shared();
  return impl_->ListAlerts(q, sink);
}

absl::StatusOr<std::optional<siper::v1::Event>> Store::GetEvent(std::string_view agent_id,
                                                                uint64_t seq) const {
  const auto guard = Shared();
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> agent_num, impl_->FindAgentNum(agent_id));
  if (!agent_num.has_value()) return std::nullopt;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db()->NewIterator(rocksdb::ReadOptions(), impl_->cf(kEventSeq)));
  SIPER_ASSIGN_OR_RETURN(std::optional<keys::SeqRun> run,
                         impl_->FindSeqRun(it.get(), *agent_num, seq));
  if (!run.has_value()) return std::nullopt;
  const std::string event_key = keys::EventKey(run->time_ns, *agent_num, seq);
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->Get(kEvents, event_key, nullptr));
  // Retention drops events before their dedup entries.
  if (!v.has_value()) return std::nullopt;
  siper::v1::Event e;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kEvents], event_key, &e));
  return e;
}

absl::StatusOr<std::optional<FieldCount>> Store::CountIndexedField(
    std::string_view field, int64_t since_ns, int64_t until_ns, std::string_view agent_id) const {
  const auto guard = Shared();
  return impl_->CountIndexedField(field, since_ns, until_ns, agent_id);
}

absl::StatusOr<std::string> Store::EventCursor(const siper::v1::Event& event) const {
  const auto guard = Shared();
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> agent_num, impl_->FindAgentNum(event.agent_id()));
  if (!agent_num.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("storage: no event of agent '", event.agent_id(), "' is stored"));
  }
  return ToHex(keys::EventKey(event.server_time_ns(), *agent_num, event.seq()));
}

absl::StatusOr<std::optional<siper::v1::Alert>> Store::GetAlert(std::string_view alert_id) const {
  const auto guard = Shared();
  std::optional<std::string> key = keycodec::FromHex(alert_id);
  if (!key.has_value() || key->size() != keys::kAlertKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage: '", Av(alert_id), "' is not an alert id (48 hex digits)"));
  }
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->Get(kAlerts, *key, nullptr));
  if (!v.has_value()) return std::nullopt;
  siper::v1::Alert a;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kAlerts], *key, &a));
  return a;
}

absl::Status Store::PutAgent(const siper::v1::AgentInfo& agent) {
  const auto guard = Shared();
  if (agent.agent_id().empty()) {
    return absl::InvalidArgumentError("storage: PutAgent needs an agent_id");
  }
  std::lock_guard<std::mutex> lock(impl_->agents_mu());
  return FromRocks(impl_->db()->Put(impl_->WriteOpts(), impl_->cf(kAgents), agent.agent_id(),
                                    agent.SerializeAsString()),
                   absl::StrCat("write agent '", agent.agent_id(), "'"));
}

absl::StatusOr<size_t> Store::UpdateAgents(const std::vector<siper::v1::AgentInfo>& agents,
                                           bool sync) {
  const auto guard = Shared();
  std::lock_guard<std::mutex> lock(impl_->agents_mu());
  rocksdb::WriteBatch batch;
  size_t written = 0;
  for (const siper::v1::AgentInfo& agent : agents) {
    if (agent.agent_id().empty()) {
      return absl::InvalidArgumentError("storage: UpdateAgents needs an agent_id");
    }
    SIPER_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                           impl_->Get(kAgents, agent.agent_id(), nullptr));
    if (!stored.has_value()) continue;  // removed (or a restored store without it)
    siper::v1::AgentInfo current;
    SIPER_RETURN_IF_ERROR(ParseValue(*stored, kCfNames[kAgents], agent.agent_id(), &current));
    std::string value;
    if (current.revoked() && !agent.revoked()) {
      siper::v1::AgentInfo copy = agent;
      copy.set_revoked(true);
      value = copy.SerializeAsString();
    } else {
      value = agent.SerializeAsString();
    }
    SIPER_RETURN_IF_ERROR(
        FromRocks(batch.Put(impl_->cf(kAgents), agent.agent_id(), value), "batch agent update"));
    ++written;
  }
  if (written == 0) return written;
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  SIPER_RETURN_IF_ERROR(FromRocks(impl_->db()->Write(wo, &batch), "write agent registry"));
  return written;
}

absl::StatusOr<std::optional<siper::v1::AgentInfo>> Store::GetAgent(
    std::string_view agent_id) const {
  const auto guard = Shared();
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->Get(kAgents, agent_id, nullptr));
  if (!v.has_value()) return std::nullopt;
  siper::v1::AgentInfo a;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kAgents], agent_id, &a));
  return a;
}

absl::Status Store::ListAgents(const std::function<bool(const siper::v1::AgentInfo&)>& sink) const {
  const auto guard = Shared();
  return impl_->Scan(kAgents, KeyRange{}, /*reverse=*/false, nullptr,
                     [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                       siper::v1::AgentInfo a;
                       SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[kAgents], key, &a));
                       return sink(a);
                     });
}

absl::Status Store::PutToken(std::string_view token_hash, int64_t expires_ns) {
  const auto guard = Shared();
  if (token_hash.empty()) return absl::InvalidArgumentError("storage: empty token hash");
  std::lock_guard<std::mutex> lock(impl_->token_mu());
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> existing,
                         impl_->Get(kTokens, token_hash, nullptr));
  if (existing.has_value()) {
    return absl::AlreadyExistsError("storage: a token with this hash is stored already");
  }
  siper::v1::TokenRecord t;
  t.set_created_ns(NowNs());
  t.set_expires_ns(expires_ns);
  return FromRocks(impl_->db()->Put(Impl::SyncedWriteOpts(), impl_->cf(kTokens),
                                    AsSlice(token_hash), t.SerializeAsString()),
                   "write enrollment token");
}

absl::Status Store::ConsumeToken(std::string_view token_hash, int64_t now_ns) {
  const auto guard = Shared();
  std::lock_guard<std::mutex> lock(impl_->token_mu());
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->Get(kTokens, token_hash, nullptr));
  if (!v.has_value()) return absl::NotFoundError("unknown token");
  siper::v1::TokenRecord t;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kTokens], token_hash, &t));
  if (t.used_ns() != 0) return absl::FailedPreconditionError("token already used");
  if (now_ns >= t.expires_ns()) return absl::FailedPreconditionError("token expired");
  t.set_used_ns(now_ns);
  return FromRocks(impl_->db()->Put(Impl::SyncedWriteOpts(), impl_->cf(kTokens),
                                    AsSlice(token_hash), t.SerializeAsString()),
                   "mark enrollment token used");
}

absl::Status Store::PutIncidents(const IncidentWrite& write) {
  const auto guard = Shared();
  // Through the group commit, outside the event chain: the incident rows share the batch
  // and the WAL sync of the event writes committing at the same time instead of a synced
  // write of their own (docs/performance.md, "Incidents in the group commit").
  internal::PendingCommit commit;
  commit.chained = false;
  commit.sync = true;
  rocksdb::WriteBatch& batch = commit.batch;
  // Held until the commit is durable, so that no other call stores the same audit seq in
  // between the check and the write.
  std::lock_guard<std::mutex> lock(impl_->incident_mu());
  for (const auto& [seq, json] : write.audit) {
    std::string key;
    keycodec::AppendUint64(&key, seq);
    SIPER_ASSIGN_OR_RETURN(std::optional<std::string> existing, impl_->Get(kAudit, key, nullptr));
    if (existing.has_value()) {
      return absl::AlreadyExistsError(absl::StrCat("storage: audit record ", seq,
                                                   " is stored already; the trail is append-only"));
    }
    SIPER_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->cf(kAudit), key, json), "prepare audit"));
  }
  for (const auto& [id, json] : write.incidents) {
    if (id.empty()) return absl::InvalidArgumentError("storage: incident without an id");
    SIPER_RETURN_IF_ERROR(
        FromRocks(batch.Put(impl_->cf(kIncidents), id, json), "prepare incident"));
  }
  // Deletes come first in the batch, so the puts below (later sequence numbers) survive them.
  for (const std::string& id : write.clear_items) {
    if (id.empty()) return absl::InvalidArgumentError("storage: incident items without an id");
    const std::string begin = keys::IncidentItemsPrefix(id);
    // The length prefix of an id starts with a zero byte, so the successor exists.
    const std::string end = keycodec::PrefixSuccessor(begin).value();
    SIPER_RETURN_IF_ERROR(FromRocks(batch.DeleteRange(impl_->cf(kIncidentItems), begin, end),
                                    "prepare incident items deletion"));
  }
  for (const IncidentItem& item : write.items) {
    if (item.incident_id.empty()) {
      return absl::InvalidArgumentError("storage: incident item without an incident id");
    }
    SIPER_RETURN_IF_ERROR(FromRocks(
        batch.Put(impl_->cf(kIncidentItems),
                  keys::IncidentItemKey(item.incident_id, item.kind, item.seq), item.json),
        "prepare incident item"));
  }
  absl::Status st = impl_->Commit(&commit);
  if (!st.ok()) {
    return absl::Status(
        st.code(),
        absl::StrCat("write ", write.incidents.size(), " incidents, ", write.items.size(),
                     " incident items and ", write.audit.size(), " audit records: ", st.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> Store::GetIncident(std::string_view id) const {
  const auto guard = Shared();
  return impl_->Get(kIncidents, id, nullptr);
}

absl::Status Store::ListIncidents(
    const std::function<bool(std::string_view id, std::string_view json)>& sink) const {
  const auto guard = Shared();
  return impl_->Scan(kIncidents, KeyRange{}, /*reverse=*/false, nullptr,
                     [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                       return sink(key, value);
                     });
}

absl::Status Store::ListIncidentItems(
    std::string_view incident_id,
    const std::function<bool(char kind, uint64_t seq, std::string_view json)>& sink) const {
  KeyRange range;
  range.lower = keys::IncidentItemsPrefix(incident_id);
  range.upper = keycodec::PrefixSuccessor(range.lower);
  const size_t prefix = range.lower.size();
  return impl_->Scan(kIncidentItems, range, /*reverse=*/false, nullptr,
                     [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                       if (key.size() != prefix + 1 + 8) {
                         return absl::DataLossError(
                             absl::StrCat("storage: malformed incident item key ", ToHex(key)));
                       }
                       return sink(key[prefix], keycodec::DecodeUint64(key.data() + prefix + 1),
                                   value);
                     });
}

absl::Status Store::ListAudit(
    uint64_t from_seq, const std::function<bool(uint64_t seq, std::string_view json)>& sink) const {
  const auto guard = Shared();
  KeyRange range;
  keycodec::AppendUint64(&range.lower, from_seq);
  return impl_->Scan(
      kAudit, range, /*reverse=*/false, nullptr,
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        if (key.size() != 8) {
          return absl::DataLossError(absl::StrCat("storage: malformed audit key ", ToHex(key)));
        }
        return sink(keycodec::DecodeUint64(key.data()), value);
      });
}

absl::StatusOr<std::optional<siper::v1::Event>> Store::GetFileState(std::string_view agent_id,
                                                                    std::string_view path) const {
  const auto guard = Shared();
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> agent_num, impl_->FindAgentNum(agent_id));
  if (!agent_num.has_value()) return std::nullopt;
  const std::string key = keys::FileKey(*agent_num, path);
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->Get(kFiles, key, nullptr));
  if (!v.has_value()) return std::nullopt;
  siper::v1::Event e;
  SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kFiles], key, &e));
  return e;
}

absl::Status Store::ListFiles(std::string_view agent_id,
                              const std::function<bool(const siper::v1::Event&)>& sink) const {
  const auto guard = Shared();
  SIPER_ASSIGN_OR_RETURN(std::optional<uint32_t> agent_num, impl_->FindAgentNum(agent_id));
  if (!agent_num.has_value()) return absl::OkStatus();
  const std::string prefix = keys::AgentPrefix(*agent_num);
  return impl_->Scan(kFiles, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)},
                     /*reverse=*/false, nullptr,
                     [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                       siper::v1::Event e;
                       SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[kFiles], key, &e));
                       return sink(e);
                     });
}

absl::Status Store::FindFilesByHash(
    std::string_view sha256, const std::function<bool(const siper::v1::Event&)>& sink) const {
  const auto guard = Shared();
  if (sha256.empty()) return absl::InvalidArgumentError("storage: empty file hash");
  const std::string prefix = keys::FileByHashKey(sha256, "");
  ScopedSnapshot snapshot(impl_->db());
  return impl_->Scan(
      kFilesByHash, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)}, /*reverse=*/false,
      snapshot.get(), [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        std::string_view file_key = key.substr(prefix.size());
        SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v,
                               impl_->Get(kFiles, file_key, snapshot.get()));
        if (!v.has_value()) {
          return absl::DataLossError(absl::StrCat("storage: index files_by_hash points to file ",
                                                  ToHex(file_key), " which is not stored"));
        }
        siper::v1::Event e;
        SIPER_RETURN_IF_ERROR(ParseValue(*v, kCfNames[kFiles], file_key, &e));
        return sink(e);
      });
}

absl::StatusOr<uint64_t> Store::LastSeq(std::string_view agent_id) const {
  const auto guard = Shared();
  return impl_->LastSeq(agent_id);
}

absl::StatusOr<RetentionResult> Store::ApplyRetention(const RetentionOptions& options,
                                                      int64_t now_ns) {
  const auto guard = Shared();
  return impl_->ApplyRetention(options, now_ns);
}

absl::Status Store::Backup(const std::filesystem::path& dir) const {
  const auto guard = Shared();
  return impl_->Backup(dir);
}

absl::Status Store::Compact() {
  const auto guard = Shared();
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (size_t cf = 0; cf < internal::kNumCfs; ++cf) {
    SIPER_RETURN_IF_ERROR(
        FromRocks(impl_->db()->CompactRange(options, impl_->cf(static_cast<internal::Cf>(cf)),
                                            nullptr, nullptr),
                  absl::StrCat("compact column family ", kCfNames[cf])));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChainHead> Store::GetChainHead() const {
  const auto guard = Shared();
  return impl_->GetChainHead();
}

absl::Status Store::PutChainSeal(const ChainSeal& seal) {
  const auto guard = Shared();
  return impl_->PutChainSeal(seal);
}

absl::Status Store::ListChainSeals(const std::function<bool(const ChainSeal&)>& sink) const {
  const auto guard = Shared();
  return impl_->ListChainSeals(sink);
}

absl::StatusOr<VerifyReport> Store::Verify(int64_t since_ns) const {
  const auto guard = Shared();
  return impl_->Verify(since_ns);
}

}  // namespace siper::storage

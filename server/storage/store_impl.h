// Store::Impl and helpers shared by the store's implementation files
// (store.cc: open, write, queries; chain_ops.cc: chain, verify, retention,
// backup). Private to server/storage; the only place RocksDB types appear.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/key_codec.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "server/storage/keys.h"
#include "server/storage/store.h"
#include "siper/v1/storage.pb.h"

namespace siper::storage::internal {

// Column families, one per record kind plus the indexes. The order is the
// handle order in Store::Impl; the names are on disk and must not change.
enum Cf : size_t {
  kEvents,
  kEventSeq,
  kEventsByAgent,
  kAlerts,
  kAlertsByAgent,
  kAlertsByRule,
  kAgents,
  kTokens,
  kMeta,
  kChain,
  kIncidents,
  kAudit,
  kFiles,
  kFilesByHash,
  kChainSeals,
  kIocFeeds,
  kIocEntries,
  kEventsByField,
  kIncidentItems,
  kFieldCounts,
  kNumCfs,
};
inline constexpr std::array<const char*, kNumCfs> kCfNames = {
    "events",         "event_seq",   "events_by_agent", "alerts",         "alerts_by_agent",
    "alerts_by_rule", "agents",      "tokens",          "meta",           "chain",
    "incidents",      "audit",       "files",           "files_by_hash",  "chain_seals",
    "ioc_feeds",      "ioc_entries", "events_by_field", "incident_items", "field_counts",
};
// Every family has a name (a missing one would be a null pointer).
static_assert(kCfNames[kNumCfs - 1] != nullptr);

// Writes spread over this many locks: a write holds the lock of its agent, so
// two writes of one agent never check duplicates at the same time, while
// writes of different agents prepare in parallel and commit as one group.
inline constexpr size_t kWriteLockShards = 16;
// At most this many writes share one chain record and one WAL sync.
inline constexpr size_t kMaxCommitGroup = 64;

// Debian's abseil keeps absl::string_view its own type (not std::string_view).
inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view AsView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
inline rocksdb::Slice AsSlice(std::string_view s) { return {s.data(), s.size()}; }

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what);

template <typename Message>
absl::Status ParseValue(std::string_view value, std::string_view cf, std::string_view key,
                        Message* out) {
  if (!out->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("storage: cannot parse stored value in column family '",
                                            Av(cf), "' at key ", keycodec::ToHex(key),
                                            " (corrupt record; run verify or restore a backup)"));
  }
  return absl::OkStatus();
}

int64_t NowNs();

// Key range [lower, upper) of a scan; an empty lower or no upper is unbounded.
struct KeyRange {
  std::string lower;
  std::optional<std::string> upper;
};

// Releases a snapshot when a query ends.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snapshot_); }
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

// One change in a commit.
struct Op {
  enum Kind { kPut, kDelete, kDeleteRange } kind = kPut;
  Cf cf = kEvents;
  std::string key;    // or the first key of the range
  std::string value;  // or the end of the range (exclusive)
};

// A write waiting to be committed with others in one RocksDB write batch that
// also holds their chain record.
struct PendingCommit {
  // A Write's records and index entries, built by the writer on its own thread; the
  // leader appends the group's batches (in queue order) to one RocksDB batch.
  rocksdb::WriteBatch batch;
  std::vector<Op> ops;  // applied after `batch` (retention's range deletes)
  std::optional<siper::v1::ChainSegment> segment;     // a Write's events and alerts
  std::optional<siper::v1::RetentionMark> retention;  // a retention run
  // Events to add to field_counts, by key (keys::FieldCountKey): the leader sums
  // them over its group and writes one merge operand per key.
  absl::flat_hash_map<std::string, uint64_t> counts;
  bool sync = false;  // this write wants a WAL sync whatever the options say
  // False for writes outside the event hash chain (incidents and their audit trail, which
  // has its own chain): they share the group's batch and WAL sync, and a group of only
  // such writes adds no chain record.
  bool chained = true;
  absl::Status status;
  bool done = false;
};

}  // namespace siper::storage::internal

namespace siper::storage {

class Store::Impl {
 public:
  using Cf = internal::Cf;
  using Visitor = std::function<absl::StatusOr<bool>(std::string_view key, std::string_view value)>;

  Impl(std::filesystem::path dir, StoreOptions options) : dir_(std::move(dir)), options_(options) {}
  ~Impl();

  absl::Status Open();

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return handles_[which]; }
  const std::filesystem::path& dir() const { return dir_; }
  const StoreOptions& options() const { return options_; }

  rocksdb::WriteOptions WriteOpts() const {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync_writes;
    return wo;
  }
  static rocksdb::WriteOptions SyncedWriteOpts() {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return wo;
  }

  // Calls visit(key, value) for every key of `which` in `range`, in key order
  // or reversed, until visit returns false or an error.
  absl::Status Scan(Cf which, const internal::KeyRange& range, bool reverse,
                    const rocksdb::Snapshot* snapshot, const Visitor& visit) const;

  // Reads one value; nullopt when absent.
  absl::StatusOr<std::optional<std::string>> Get(Cf which, std::string_view key,
                                                 const rocksdb::Snapshot* snapshot) const;

  // The agent's stable number, if it has one.
  absl::StatusOr<std::optional<uint32_t>> FindAgentNum(std::string_view agent_id) const;
  // The agent's number, given (and durably recorded) on first use.
  absl::StatusOr<uint32_t> AgentNum(std::string_view agent_id);

  // A server time for a new write batch, never earlier than the last one.
  int64_t NextServerTime();

  absl::StatusOr<WriteResult> Write(std::string_view agent_id, std::vector<EventRecord>& records);
  absl::Status SearchEvents(const EventQuery& q,
                            const std::function<bool(const siper::v1::Event&)>& sink) const;
  absl::Status ListAlerts(const AlertQuery& q,
                          const std::function<bool(const siper::v1::Alert&)>& sink) const;
  // The (field, value) of q.fields the field index can answer for q's whole
  // time range, if any.
  std::optional<std::pair<std::string, std::string>> IndexedFilter(const EventQuery& q) const;
  // Events with fields[field] == value in q's time range, hour by hour through
  // events_by_field; `offer` applies the other filters and returns false to stop.
  absl::Status SearchFieldIndex(const EventQuery& q, std::string_view field, std::string_view value,
                                std::optional<uint32_t> agent_num,
                                const std::optional<std::string>& cursor,
                                const rocksdb::Snapshot* snapshot,
                                const std::function<bool(const siper::v1::Event&)>& offer) const;
  // The start time kept in meta under `meta_key` (field_index_since,
  // field_counts_since), set on first open.
  absl::StatusOr<int64_t> LoadFieldIndexStart(std::string_view meta_key, bool has_events);
  absl::Status LoadFieldCountsStart(bool has_events);
  absl::StatusOr<std::optional<FieldCount>> CountIndexedField(std::string_view field,
                                                              int64_t since_ns, int64_t until_ns,
                                                              std::string_view agent_id) const;
  // The number of every agent that ever wrote (meta agent_num/ keys).
  absl::StatusOr<std::vector<uint32_t>> AgentNums(const rocksdb::Snapshot* snapshot) const;
  // Server times of the oldest and newest stored events; nullopt when none.
  absl::StatusOr<std::optional<std::pair<int64_t, int64_t>>> EventTimeSpan(
      const rocksdb::Snapshot* snapshot) const;
  absl::StatusOr<uint64_t> LastSeq(std::string_view agent_id) const;
  // The event_seq run (keys.h) that holds (agent, seq), if any: one SeekForPrev on `it`,
  // an iterator over event_seq (bounds: none, or the agent's prefix).
  absl::StatusOr<std::optional<keys::SeqRun>> FindSeqRun(rocksdb::Iterator* it, uint32_t agent_num,
                                                         uint64_t seq) const;
  // The highest seq in the agent's event_seq entries (0 if none), read from `snapshot`.
  absl::StatusOr<uint64_t> LastStoredSeq(uint32_t agent_num,
                                         const rocksdb::Snapshot* snapshot) const;
  // Adds to `ops` the file inventory changes for the file events of one write.
  absl::Status UpdateFileInventory(uint32_t agent_num, const std::vector<EventRecord>& records,
                                   rocksdb::WriteBatch* batch) const;

  // chain_ops.cc
  // Commits `w` with whatever else is waiting, in one write batch with one
  // chain record; returns when that batch is durable (or failed).
  absl::Status Commit(internal::PendingCommit* w);
  absl::Status LoadChainState();
  absl::StatusOr<ChainHead> GetChainHead() const;
  absl::Status PutChainSeal(const ChainSeal& seal);
  absl::Status ListChainSeals(const std::function<bool(const ChainSeal&)>& sink) const;
  absl::StatusOr<VerifyReport> Verify(int64_t since_ns) const;
  absl::StatusOr<RetentionResult> ApplyRetention(const RetentionOptions& options, int64_t now_ns);
  absl::Status Backup(const std::filesystem::path& dir) const;

  std::mutex& token_mu() { return token_mu_; }
  std::mutex& incident_mu() { return incident_mu_; }
  std::mutex& ioc_mu() { return ioc_mu_; }
  std::mutex& agents_mu() { return agents_mu_; }

 private:
  // Reads the event an index entry points at; DataLoss when it is missing.
  absl::StatusOr<siper::v1::Event> ReadEvent(std::string_view event_key,
                                             const rocksdb::Snapshot* snapshot,
                                             std::string_view index) const;
  // ReadEvent, but nullopt without parsing when the stored bytes cannot pass
  // the query's text and field filters (ValueMayMatch).
  absl::StatusOr<std::optional<siper::v1::Event>> ReadEventMayMatch(
      std::string_view event_key, const rocksdb::Snapshot* snapshot, std::string_view index,
      const EventQuery& q) const;
  // Writes one commit group; returns the new chain head.
  absl::StatusOr<ChainHead> WriteGroup(const std::vector<internal::PendingCommit*>& group);
  absl::StatusOr<std::optional<siper::v1::RetentionMark>> ReadAnchor(
      const rocksdb::Snapshot* snapshot) const;

  std::filesystem::path dir_;
  StoreOptions options_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;        // indexed by Cf
  std::vector<rocksdb::ColumnFamilyHandle*> extra_handles_;  // default and unknown families

  mutable std::mutex agent_num_mu_;
  mutable absl::flat_hash_map<std::string, uint32_t> agent_nums_;  // cache of meta agent_num/
  uint32_t next_agent_num_ = 1;

  std::array<std::mutex, internal::kWriteLockShards> write_mu_;
  // Per agent, the highest seq stored (the dedup high-water mark): a seq above it needs
  // no event_seq lookup. Read from event_seq on an agent's first write after Open, raised
  // after each successful commit, dropped when a commit fails (read again next time), so
  // it is never ahead of what RocksDB holds. Shard i is guarded by write_mu_[i].
  std::array<absl::flat_hash_map<uint32_t, uint64_t>, internal::kWriteLockShards> seq_marks_;
  std::mutex token_mu_;
  std::mutex incident_mu_;
  std::mutex ioc_mu_;     // one feed import or removal at a time
  std::mutex agents_mu_;  // PutAgent and UpdateAgents: a revocation is never overwritten
  std::mutex retention_mu_;
  // Lowest seq each agent stored since the running retention took its
  // snapshot (see ApplyRetention).
  std::mutex written_mu_;
  absl::flat_hash_map<uint32_t, uint64_t> lowest_written_;
  std::atomic<int64_t> last_server_time_ns_{0};
  // Events before this were dropped by retention (alerts may outlive them).
  std::atomic<int64_t> events_cutoff_ns_{std::numeric_limits<int64_t>::min()};
  // events_by_field holds every event with a server time at or after this
  // (older events were stored before the index existed); fixed at Open.
  int64_t field_index_since_ns_ = std::numeric_limits<int64_t>::min();
  // field_counts counts every event of each hour that starts at or after this;
  // fixed at Open.
  int64_t field_counts_since_ns_ = std::numeric_limits<int64_t>::min();

  // Group commit. The writer at the front of the queue is the leader: it
  // takes the queue's first writes, writes them with one chain record, and
  // wakes them. Only the leader touches the chain state between commits.
  mutable std::mutex commit_mu_;
  std::condition_variable commit_cv_;
  std::deque<internal::PendingCommit*> commit_queue_;
  ChainHead chain_head_;  // guarded by commit_mu_
};

}  // namespace siper::storage

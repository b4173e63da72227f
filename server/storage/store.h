// Siper's store in RocksDB: events and alerts (deduplicated, hash-chained,
// searchable, with retention and backup), agents, enrollment tokens, the file
// inventory, and the records of server/incidents.
//
// The only component that includes RocksDB. This header exposes no RocksDB
// type, so callers build without RocksDB's headers. Design and key layouts:
// server/storage/README.md.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "siper/v1/analyst_service.pb.h"
#include "siper/v1/events.pb.h"

namespace siper::storage {

struct StoreOptions {
  // Sync the write-ahead log for every write batch before Write() returns, so
  // an acknowledged event survives a power loss. Default: true. With false the
  // WAL is still written (a crash of the process loses nothing; a crash of the
  // machine may lose the last writes).
  bool sync_writes = true;
  // Keep per-hour counts of the indexed fields' values (field_counts), from
  // which `events count --by` reads the hours a range holds whole. Default:
  // true. false is for measuring what they cost (bench/server/search_bench):
  // the store then stops trusting its counts, and a later open with true counts
  // only the hours after the newest event stored by then.
  bool field_counts = true;
};

// Decoded fields as (name, value) views, which Write stores as the event's `fields` map
// without a protobuf map being built (the ingest path: the matcher's snapshot of the
// fields). Names must be distinct and names and values valid UTF-8; `owner` keeps the
// memory the views point into alive for as long as the record lives.
struct FieldViews {
  std::span<const std::pair<std::string_view, std::string_view>> entries;
  std::shared_ptr<const void> owner;
  bool empty() const { return entries.empty(); }
};

// One event and the alerts it raised, written together.
struct EventRecord {
  siper::v1::Event event;
  // The event's decoded fields when given as views (event.fields must then be empty):
  // stored exactly as if they were in event.fields, in this order.
  FieldViews fields;
  std::vector<siper::v1::Alert> alerts;
  // The fields of alerts[i] when given as views (ingest: the detection's snapshot of the
  // event's fields; alerts[i].fields() must then be empty): stored exactly as if they were
  // in alerts[i].fields, in this order, without a protobuf map being built. An alert
  // without an entry here (or with empty views) is stored with its own map.
  std::vector<FieldViews> alert_fields;
  // The fields of alerts[i], from wherever they are: its views when given (no copy), else
  // views of the alert's own map, put into `*scratch` (cleared first), which must then
  // outlive the result as the alert must.
  std::span<const std::pair<std::string_view, std::string_view>> AlertFields(
      size_t i, std::vector<std::pair<std::string_view, std::string_view>>* scratch) const;
  // Set by Store::Write: true when (agent_id, seq) was already stored (by an
  // earlier batch or earlier in the same batch); nothing of it was written.
  bool duplicate = false;
};

struct WriteResult {
  uint32_t stored = 0;
  uint32_t duplicates = 0;
  // Highest seq among all records of the call, stored or duplicate: every one
  // of them is durable when Write returns, so all can be acknowledged.
  uint64_t max_seq = 0;
};

// Time bounds are server time (Event.server_time_ns): since_ns inclusive,
// until_ns exclusive; 0 means unbounded on that side.
struct EventQuery {
  int64_t since_ns = 0;
  int64_t until_ns = 0;
  std::string agent_id;  // empty: all agents
  std::string rule_id;   // only events that raised an alert of this rule
  // Only events that raised an alert of at least this level (informational <
  // low < medium < high < critical; with rule_id: an alert of that rule).
  // Read through the alerts (by time, or by agent), never the events.
  std::string min_level;
  std::string text;    // case-sensitive substring of the raw line (or file path)
  uint64_t limit = 0;  // 0: no limit
  bool newest_first = false;
  // Decoded fields that must be equal (Event.fields), e.g. {"source.ip", "10.0.0.5"}.
  // One of kIndexedFields is answered from the field index (a seek per hour of the range); other
  // fields filter the events the time range, agent or rule selects.
  std::map<std::string, std::string> fields;
  // Paging: resume after the event this cursor names (Store::EventCursor of
  // the last event received), in the query's order. Empty: from the start.
  std::string cursor;
};

// The fields an analyst pivots on, indexed by (day, field, value, time) so
// that `events search --field source.ip=X` seeks instead of scanning. Part of
// the on-disk layout: changing the list needs a new index start (see
// Store::Impl::Open). Values longer than kMaxIndexedValueSize are keyed by
// their first kMaxIndexedValueSize bytes and their SHA-256.
inline constexpr std::array<std::string_view, 12> kIndexedFields = {
    "source.ip",  "destination.ip", "user.name",        "user.target.name",
    "host.name",  "host.hostname",  "process.name",     "event.action",
    "url.domain", "file.path",      "file.hash.sha256", "threat.indicator.value",
};
inline constexpr size_t kMaxIndexedValueSize = 256;

// One decoded field's values over a time range, for `events count --by`.
struct FieldCount {
  uint64_t events = 0;                               // events in the range
  std::unordered_map<std::string, uint64_t> values;  // value -> events that have it
};

struct AlertQuery {
  int64_t since_ns = 0;
  int64_t until_ns = 0;
  std::string agent_id;
  std::string rule_id;
  // Minimum level: informational < low < medium < high < critical. Empty: all.
  std::string min_level;
  uint64_t limit = 0;
  bool newest_first = false;
  // Paging: resume after the alert with this id, in the query's order.
  std::string after_id;
};

// Law 5651 asks for two years; 730 days is the default for every kind.
inline constexpr int64_t kDefaultRetentionNs = int64_t{730} * 24 * 3600 * 1'000'000'000;

struct RetentionOptions {
  // How long each kind of record is kept; 0 keeps it forever. Default: 730 days.
  int64_t events_ns = kDefaultRetentionNs;
  int64_t alerts_ns = kDefaultRetentionNs;
};

struct RetentionResult {
  int64_t events_cutoff_ns = 0;  // events with a server time before this are gone
  int64_t alerts_cutoff_ns = 0;
  uint64_t chain_records_dropped = 0;
};

// The newest link of the hash chain, for the server to sign or time-stamp.
struct ChainHead {
  uint64_t length = 0;  // records ever committed; the head's index is length - 1
  std::string hash;     // 32 bytes; all zero while length == 0
  int64_t time_ns = 0;  // commit time of the head
};

// A chain head signed by the server (storage does not sign or check
// signatures; it keeps seals and checks the chain against their hashes).
struct ChainSeal {
  uint64_t length = 0;  // ChainHead::length when sealed
  std::string hash;     // ChainHead::hash when sealed
  int64_t time_ns = 0;
  std::string key_id;
  std::string signature;
  std::string timestamp_token;  // RFC 3161, optional
};

struct VerifyReport {
  bool ok = true;
  uint64_t chain_records = 0;  // records checked
  uint64_t events = 0;         // events and alerts re-hashed
  uint64_t alerts = 0;
  // Records that straddle a retention cutoff: some of their events expired,
  // so their digest cannot be recomputed; links and remaining keys are checked.
  uint64_t partially_expired = 0;
  ChainHead head;  // the last record checked
  // The first broken range, when !ok.
  std::string problem;       // "changed", "removed" or "reordered"
  uint64_t chain_index = 0;  // the chain record (batch) it is in
  int64_t from_ns = 0;       // server-time range of the broken batch
  int64_t until_ns = 0;
  std::string agent_id;  // and the agent and seq range, when known
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::string message;  // one line for a human
};

// One item of an incident kept in its own record (server/incidents decides the kinds:
// linked alerts, timeline entries, observables), so a growing incident appends items
// instead of rewriting itself.
struct IncidentItem {
  std::string incident_id;
  char kind = 0;     // a byte naming the kind; items list by kind, then seq
  uint64_t seq = 0;  // position within the kind
  std::string json;
};

// Incidents and their audit trail. server/incidents owns their form (JSON);
// the store keeps the bytes as given, in one write batch per call.
struct IncidentWrite {
  std::vector<std::pair<std::string, std::string>> incidents;  // id -> JSON, replaces
  std::vector<std::pair<uint64_t, std::string>> audit;         // seq -> JSON, append-only
  // Incidents whose items are all deleted before `items` are put (a rewrite).
  std::vector<std::string> clear_items{};
  std::vector<IncidentItem> items{};  // put (replace) by (incident id, kind, seq)
};

// What replacing one IOC feed's entries changed (Store::ReplaceIocFeed).
struct IocFeedDiff {
  uint64_t added = 0;    // values the feed did not have
  uint64_t updated = 0;  // same kind and value, other metadata
  uint64_t removed = 0;  // values the new list no longer has
  uint64_t unchanged = 0;
};

class Store {
 public:
  // Bumped when the on-disk layout changes incompatibly. Open refuses a store
  // written by a newer schema and upgrades an older one. 2: field_counts (a
  // family with a merge operator that older builds lack and would not update).
  // 3: events_by_agent and events_by_field keys name postings, one key per write's
  // time (and value) whose value lists the further seqs (an older build would read
  // only each key's first event); a version 2 index, one key per event with an empty
  // value, is a valid version 3 index, so the upgrade rewrites nothing.
  // 4: event_seq keys name runs of consecutive seqs (agent | first seq -> time | last
  // seq) instead of one seq each; a version 3 entry (8-byte time) is a run of its one
  // seq, so again the upgrade only writes the version.
  // 5: alerts_by_agent and alerts_by_rule keys name alert postings, one key per write's
  // time (and rule) whose value lists the further alerts (an older build would read only
  // each key's first alert); a version 4 entry (empty value) is a posting of its one
  // alert, so the upgrade only writes the version.
  static constexpr uint32_t kSchemaVersion = 5;

  // Opens (creating if missing) the store in `dir`.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::filesystem::path& dir,
                                                     const StoreOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Thread-safe. In ONE RocksDB write batch, stores the records whose
  // (agent_id, event.seq) is not stored yet, with their alerts, and skips the
  // others as duplicates (EventRecord::duplicate). Every record's
  // event.agent_id must equal agent_id (else InvalidArgument, nothing written).
  // Fills in, on the stored records: event.server_time_ns when it is 0 (one
  // time per call, never earlier than a time this store assigned before, so
  // an agent's events keep their order); and on each alert: id, agent_id, seq,
  // time_ns (the event's server time), and source/line from the event when
  // empty. Returns after the batch is durable per StoreOptions::sync_writes.
  absl::StatusOr<WriteResult> Write(std::string_view agent_id, std::vector<EventRecord>& records);

  // Streams matching events in time order (oldest first unless newest_first).
  // The sink returns false to stop early; that is not an error.
  absl::Status SearchEvents(const EventQuery& q,
                            const std::function<bool(const siper::v1::Event&)>& sink) const;
  absl::Status ListAlerts(const AlertQuery& q,
                          const std::function<bool(const siper::v1::Alert&)>& sink) const;

  // Counts the values of `field` over [since_ns, until_ns) (0: unbounded) of
  // one agent (empty: all): the hours the range holds whole from the per-hour
  // counts (field_counts, all agents only), the rest from the field index keys
  // (reading an event only for a value longer than kMaxIndexedValueSize).
  // Exactly what a count of the events gives. nullopt when the field is not
  // indexed or the range starts before the index does; the caller then counts
  // from SearchEvents.
  absl::StatusOr<std::optional<FieldCount>> CountIndexedField(std::string_view field,
                                                              int64_t since_ns, int64_t until_ns,
                                                              std::string_view agent_id) const;

  // One event by its identity; nullopt when not stored.
  absl::StatusOr<std::optional<siper::v1::Event>> GetEvent(std::string_view agent_id,
                                                           uint64_t seq) const;
  // The paging cursor of a stored event (hex, opaque), for EventQuery::cursor.
  absl::StatusOr<std::string> EventCursor(const siper::v1::Event& event) const;

  // One alert by the id Write gave it; nullopt when not stored.
  absl::StatusOr<std::optional<siper::v1::Alert>> GetAlert(std::string_view alert_id) const;

  // Creates or replaces the agent's registry entry (keyed by agent.agent_id).
  absl::Status PutAgent(const siper::v1::AgentInfo& agent);
  absl::StatusOr<std::optional<siper::v1::AgentInfo>> GetAgent(std::string_view agent_id) const;
  // Updates existing registry entries in one write batch (WAL written; synced only when
  // `sync`): entries no longer stored are skipped (never re-created), and an entry stored
  // as revoked stays revoked. For the agent streams' coalesced last-seen updates; a
  // concurrent PutAgent (revocation) is never undone. Returns the number written.
  absl::StatusOr<size_t> UpdateAgents(const std::vector<siper::v1::AgentInfo>& agents, bool sync);
  // All agents, ordered by agent_id.
  absl::Status ListAgents(const std::function<bool(const siper::v1::AgentInfo&)>& sink) const;

  // Enrollment tokens are stored by their SHA-256 (the caller hashes), one use
  // only. AlreadyExists if the hash is stored already. Always synced.
  absl::Status PutToken(std::string_view token_hash, int64_t expires_ns);
  // OK the first time; then FailedPrecondition "token already used"; NotFound
  // "unknown token"; FailedPrecondition "token expired" once now_ns >=
  // expires_ns. Thread-safe: of concurrent calls with one token, one wins.
  absl::Status ConsumeToken(std::string_view token_hash, int64_t now_ns);

  // Writes incidents, their items and new audit records together, synced. AlreadyExists
  // (nothing written) if an audit seq is stored already: the trail is never
  // rewritten.
  absl::Status PutIncidents(const IncidentWrite& write);
  absl::StatusOr<std::optional<std::string>> GetIncident(std::string_view id) const;
  // All incidents, ordered by id.
  absl::Status ListIncidents(
      const std::function<bool(std::string_view id, std::string_view json)>& sink) const;
  // The items of one incident, by kind then seq.
  absl::Status ListIncidentItems(
      std::string_view incident_id,
      const std::function<bool(char kind, uint64_t seq, std::string_view json)>& sink) const;
  // Audit records with seq >= from_seq, in seq order.
  absl::Status ListAudit(
      uint64_t from_seq,
      const std::function<bool(uint64_t seq, std::string_view json)>& sink) const;

  // IOC feeds (server/ioc_feeds.h owns their meaning). Replaces every entry of
  // feed `info.name` with `entries` (keyed by kind and value; a repeat keeps the
  // last) and stores `info`, in one synced write batch; returns what changed.
  // One replacement or removal at a time.
  absl::StatusOr<IocFeedDiff> ReplaceIocFeed(const siper::v1::IocFeedInfo& info,
                                             const std::vector<siper::v1::IocEntry>& entries);
  // Drops a feed and its entries; NotFound when there is no such feed. Returns the
  // number of entries removed.
  absl::StatusOr<uint64_t> RemoveIocFeed(std::string_view name);
  // All feeds, ordered by name.
  absl::Status ListIocFeeds(const std::function<bool(const siper::v1::IocFeedInfo&)>& sink) const;
  // The entries of one feed (empty: of every feed), in key order: by feed, then kind
  // (length-prefixed), then value.
  absl::Status ListIocEntries(
      std::string_view feed,
      const std::function<bool(std::string_view feed, const siper::v1::IocEntry&)>& sink) const;

  // File inventory: for each (agent, path), the newest file-integrity event
  // (by seq) that Write stored, kept whatever its age (retention does not
  // apply); a deleted file stays with change FILE_CHANGE_DELETED.
  absl::StatusOr<std::optional<siper::v1::Event>> GetFileState(std::string_view agent_id,
                                                               std::string_view path) const;
  // One agent's files, ordered by path.
  absl::Status ListFiles(std::string_view agent_id,
                         const std::function<bool(const siper::v1::Event&)>& sink) const;
  // Every agent's file whose current SHA-256 (lowercase hex, as agents send
  // it) is `sha256`: IOC hash hunting over the fleet.
  absl::Status FindFilesByHash(std::string_view sha256,
                               const std::function<bool(const siper::v1::Event&)>& sink) const;

  // Highest seq stored for an agent (0 if none): lets the server tell a
  // reconnecting agent where it is.
  absl::StatusOr<uint64_t> LastSeq(std::string_view agent_id) const;

  // Drops events and alerts older than now_ns minus their retention, as whole
  // key ranges (DeleteRange, no key-by-key deletes), with their index entries
  // and the chain records that covered only them. The run is itself a chain
  // record. Cutoffs never move back. Safe while ingest runs.
  absl::StatusOr<RetentionResult> ApplyRetention(const RetentionOptions& options, int64_t now_ns);

  // Writes a consistent copy of the store into `dir`, which must not exist yet
  // (a RocksDB checkpoint: hard links on the same file system). Safe while
  // ingest runs. The copy is a store: Store::Open reads it, Restore installs it.
  absl::Status Backup(const std::filesystem::path& dir) const;
  // Copies a backup into `data_dir` (the directory Open takes), which must be
  // empty or missing, then opens the copy once to check it. For a stopped
  // server.
  static absl::Status Restore(const std::filesystem::path& backup_dir,
                              const std::filesystem::path& data_dir);

  // Online restore, the swap itself. `staged_dir` holds a store prepared by Restore (and
  // checked by the caller: opens, verifies) on the same file system as this store.
  // Waits up to `wait_ms` for every running call of this store to end (new calls wait),
  // closes RocksDB, renames this store's directory to `keep_as` (which must not exist:
  // nothing is deleted), renames `staged_dir` into its place and opens it. If the new
  // store does not open, the directories are renamed back and the old store reopened.
  // Calls that were waiting then run on the store that is open. Unavailable if the wait
  // times out (nothing changed).
  absl::Status ReplaceWith(const std::filesystem::path& staged_dir,
                           const std::filesystem::path& keep_as, int64_t wait_ms);
  // The directory this store was opened in.
  std::filesystem::path dir() const;

  // Compacts every column family down to the bottom level (forced), so that
  // range tombstones and overwritten values are gone and the bottom level's
  // compression applies: for measuring size on disk (bench/loadgen) and for
  // an operator after a large retention run. Slow on a big store; safe while
  // ingest runs.
  absl::Status Compact();

  absl::StatusOr<ChainHead> GetChainHead() const;
  // Keeps a seal of a chain head. InvalidArgument if its hash is not the hash
  // of chain record length-1 (a seal of a chain this store does not have).
  absl::Status PutChainSeal(const ChainSeal& seal);
  // All seals, oldest first.
  absl::Status ListChainSeals(const std::function<bool(const ChainSeal&)>& sink) const;
  // Walks the hash chain from the first record committed at or after since_ns
  // (0: from the start, or from the retention anchor) and re-hashes every
  // event and alert it covers; checks every seal against the record it names,
  // so records removed from the end, or a chain rewritten after a seal, are
  // found too. ok, or the first broken range. An error status only when the
  // walk itself fails (I/O).
  absl::StatusOr<VerifyReport> Verify(int64_t since_ns = 0) const;

  // Implementation, in store_impl.h, store.cc and chain_ops.cc (keeps RocksDB
  // out of this header).
  class Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  // Every call holds this shared; ReplaceWith holds it exclusively while it swaps impl_.
  std::shared_lock<std::shared_timed_mutex> Shared() const {
    return std::shared_lock<std::shared_timed_mutex>(swap_mu_);
  }
  mutable std::shared_timed_mutex swap_mu_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siper::storage

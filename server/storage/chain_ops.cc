// Group commit with the hash chain, verify, retention and backup.
#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/key_codec.h"
#include "common/status.h"
#include "rocksdb/utilities/checkpoint.h"
#include "server/storage/chain.h"
#include "server/storage/keys.h"
#include "server/storage/store_impl.h"

namespace siper::storage {
namespace {

namespace fs = std::filesystem;
using internal::Av;
using internal::Cf;
using internal::FromRocks;
using internal::kCfNames;
using internal::KeyRange;
using internal::NowNs;
using internal::Op;
using internal::PendingCommit;
using internal::ScopedSnapshot;
using keycodec::ToHex;
using siper::v1::ChainRecord;
using siper::v1::ChainSegment;
using siper::v1::RetentionMark;
using enum internal::Cf;

constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
// Retention keeps the dedup entries of the events it keeps. Seq order is not
// time order, so it looks at this many of an agent's oldest remaining events
// for the lowest seq still needed.
constexpr int kDedupLookahead = 1000;

std::string ZeroHash() { return std::string(kHashSize, '\0'); }

std::string ItemTag(std::string_view key, std::string_view value, Sha256* h, absl::Status* status) {
  h->Reset();
  h->Bytes(key);
  h->Bytes(value);
  absl::StatusOr<std::string> d = h->Finish();
  if (!d.ok()) {
    *status = d.status();
    return {};
  }
  return d->substr(0, kItemTagSize);
}

siper::v1::ChainSeal ToProto(const ChainSeal& s) {
  siper::v1::ChainSeal p;
  p.set_length(s.length);
  p.set_hash(s.hash);
  p.set_time_ns(s.time_ns);
  p.set_key_id(s.key_id);
  p.set_signature(s.signature);
  p.set_timestamp_token(s.timestamp_token);
  return p;
}

ChainSeal FromProto(const siper::v1::ChainSeal& p) {
  return ChainSeal{p.length(), p.hash(),      p.time_ns(),
                   p.key_id(), p.signature(), p.timestamp_token()};
}

std::string SealKey(uint64_t length) {
  std::string k;
  keycodec::AppendUint64(&k, length);
  return k;
}

}  // namespace

absl::Status Store::Impl::PutChainSeal(const ChainSeal& seal) {
  if (seal.length == 0 || seal.hash.size() != kHashSize) {
    return absl::InvalidArgumentError(
        "storage: a seal needs a chain length > 0 and a 32-byte hash (from GetChainHead)");
  }
  // Seals are of recent heads: look for the record from the end.
  const uint64_t index = seal.length - 1;
  std::optional<std::string> hash;
  SIPER_RETURN_IF_ERROR(
      Scan(kChain, KeyRange{}, /*reverse=*/true, nullptr,
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             ChainRecord rec;
             SIPER_RETURN_IF_ERROR(internal::ParseValue(value, kCfNames[kChain], key, &rec));
             if (rec.index() > index) return true;
             if (rec.index() == index) hash = rec.hash();
             return false;
           }));
  if (!hash.has_value()) {
    SIPER_ASSIGN_OR_RETURN(std::optional<RetentionMark> anchor, ReadAnchor(nullptr));
    if (anchor.has_value() && anchor->has_anchor() && anchor->anchor_index() == index) {
      hash = anchor->anchor_hash();
    }
  }
  if (!hash.has_value() || *hash != seal.hash) {
    return absl::InvalidArgumentError(
        absl::StrCat("storage: the seal of chain length ", seal.length,
                     hash.has_value() ? " has another hash than the chain's record there"
                                      : " names a chain record this store does not have"));
  }
  return FromRocks(db_->Put(SyncedWriteOpts(), cf(kChainSeals), SealKey(seal.length),
                            ToProto(seal).SerializeAsString()),
                   absl::StrCat("write the seal of chain length ", seal.length));
}

absl::Status Store::Impl::ListChainSeals(const std::function<bool(const ChainSeal&)>& sink) const {
  return Scan(kChainSeals, KeyRange{}, /*reverse=*/false, nullptr,
              [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                siper::v1::ChainSeal p;
                SIPER_RETURN_IF_ERROR(internal::ParseValue(value, kCfNames[kChainSeals], key, &p));
                return sink(FromProto(p));
              });
}

absl::StatusOr<std::optional<RetentionMark>> Store::Impl::ReadAnchor(
    const rocksdb::Snapshot* snapshot) const {
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> v, Get(kMeta, keys::kChainAnchorKey, snapshot));
  if (!v.has_value()) return std::nullopt;
  RetentionMark mark;
  SIPER_RETURN_IF_ERROR(internal::ParseValue(*v, kCfNames[kMeta], keys::kChainAnchorKey, &mark));
  return mark;
}

absl::Status Store::Impl::LoadChainState() {
  ChainHead head{0, ZeroHash(), 0};
  SIPER_ASSIGN_OR_RETURN(std::optional<RetentionMark> anchor, ReadAnchor(nullptr));
  if (anchor.has_value() && anchor->has_anchor()) {
    head.length = anchor->anchor_index() + 1;
    head.hash = anchor->anchor_hash();
  }
  if (anchor.has_value()) events_cutoff_ns_.store(anchor->events_cutoff_ns());
  // The chain must go on from its last record; without it, it cannot.
  SIPER_RETURN_IF_ERROR(
      Scan(kChain, KeyRange{}, /*reverse=*/true, nullptr,
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             ChainRecord rec;
             if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
                 rec.hash().size() != kHashSize) {
               return absl::DataLossError(absl::StrCat(
                   "storage: the newest hash chain record (key ", ToHex(key), ") in ",
                   dir_.string(), " is corrupt; the chain cannot be continued. Restore a backup."));
             }
             head = ChainHead{rec.index() + 1, rec.hash(), rec.time_ns()};
             return false;
           }));
  std::lock_guard<std::mutex> lock(commit_mu_);
  chain_head_ = head;
  return absl::OkStatus();
}

absl::StatusOr<ChainHead> Store::Impl::GetChainHead() const {
  std::lock_guard<std::mutex> lock(commit_mu_);
  return chain_head_;
}

absl::Status Store::Impl::Commit(PendingCommit* w) {
  std::unique_lock<std::mutex> lock(commit_mu_);
  commit_queue_.push_back(w);
  commit_cv_.wait(lock, [&] { return w->done || commit_queue_.front() == w; });
  if (w->done) return w->status;  // a leader committed it

  // Leader: commit the first writes of the queue as one batch. Writers that
  // arrive meanwhile queue up for the next leader.
  std::vector<PendingCommit*> group;
  for (PendingCommit* p : commit_queue_) {
    group.push_back(p);
    if (group.size() == internal::kMaxCommitGroup) break;
  }
  lock.unlock();
  absl::StatusOr<ChainHead> head = WriteGroup(group);
  lock.lock();
  if (head.ok()) chain_head_ = *std::move(head);
  for (PendingCommit* p : group) {
    p->status = head.status();
    p->done = true;
    commit_queue_.pop_front();
  }
  absl::Status status = w->status;
  // Woken after the lock is released: woken under it, every waiter would wake only to
  // block on commit_mu_ again (one futex wait more per write).
  lock.unlock();
  commit_cv_.notify_all();
  return status;
}

absl::StatusOr<ChainHead> Store::Impl::WriteGroup(const std::vector<PendingCommit*>& group) {
  // chain_head_ changes only under commit_mu_ by the leader after this
  // returns, and there is one leader at a time: reading it here is safe.
  ChainRecord rec;
  rec.set_index(chain_head_.length);
  rec.set_time_ns(std::max(NowNs(), chain_head_.time_ns));
  rec.set_prev_hash(chain_head_.hash);
  // The group's batch: field count merges, then each write's own batch and its ops in
  // queue order, then the chain record. The writers built their batches on their own
  // threads; here their records are appended whole (a RocksDB batch is a 12-byte header,
  // sequence and count, followed by its records, the format of the WAL, so records of
  // several batches concatenate; RocksDB's own write groups do the same).
  rocksdb::WriteBatch head;
  bool sync = options_.sync_writes;
  bool chained = false;
  // Field counts of the whole group: one merge operand per key, however many
  // writes (agents) of the group counted it.
  absl::flat_hash_map<std::string, uint64_t> counts;
  for (PendingCommit* p : group) {
    if (counts.empty()) {
      counts = std::move(p->counts);
    } else {
      for (auto& [key, n] : p->counts) counts[key] += n;
    }
  }
  std::string operand;
  for (const auto& [key, n] : counts) {
    operand.clear();
    keycodec::AppendUint64(&operand, n);
    SIPER_RETURN_IF_ERROR(
        FromRocks(head.Merge(cf(kFieldCounts), key, operand), "prepare field count"));
  }
  std::vector<rocksdb::WriteBatch> op_batches(group.size());
  for (size_t g = 0; g < group.size(); ++g) {
    PendingCommit* p = group[g];
    for (const Op& op : p->ops) {
      rocksdb::Status s;
      switch (op.kind) {
        case Op::kPut:
          s = op_batches[g].Put(cf(op.cf), op.key, op.value);
          break;
        case Op::kDelete:
          s = op_batches[g].Delete(cf(op.cf), op.key);
          break;
        case Op::kDeleteRange:
          s = op_batches[g].DeleteRange(cf(op.cf), op.key, op.value);
          break;
      }
      SIPER_RETURN_IF_ERROR(FromRocks(s, "prepare write batch"));
    }
    if (p->segment.has_value()) *rec.add_segments() = std::move(*p->segment);
    if (p->retention.has_value()) *rec.mutable_retention() = *p->retention;
    sync = sync || p->sync;
    chained = chained || p->chained;
  }
  // A group of only unchained writes (incidents) leaves the chain as it is: a record
  // without segments or retention would be an empty link.
  std::string hash;
  rocksdb::WriteBatch tail;
  if (chained) {
    SIPER_ASSIGN_OR_RETURN(hash, ChainRecordHash(rec));
    rec.set_hash(hash);
    SIPER_RETURN_IF_ERROR(FromRocks(
        tail.Put(cf(kChain), keys::ChainKey(rec.time_ns(), rec.index()), rec.SerializeAsString()),
        "prepare chain record"));
  }

  constexpr size_t kHeader = 12;  // sequence u64, count u32 (little-endian)
  size_t bytes = head.GetDataSize() + tail.GetDataSize();
  uint64_t records = uint64_t{head.Count()} + tail.Count();
  for (size_t g = 0; g < group.size(); ++g) {
    bytes += group[g]->batch.GetDataSize() + op_batches[g].GetDataSize();
    records += group[g]->batch.Count() + op_batches[g].Count();
  }
  if (records > std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("storage: a commit group of ", records, " records is too large"));
  }
  std::string rep;
  rep.reserve(bytes);
  rep.append(head.Data());
  auto append_records = [&rep](const rocksdb::WriteBatch& b) {
    if (b.Count() > 0) rep.append(b.Data(), kHeader, std::string::npos);
  };
  for (size_t g = 0; g < group.size(); ++g) {
    append_records(group[g]->batch);
    append_records(op_batches[g]);
  }
  append_records(tail);
  const uint32_t n = static_cast<uint32_t>(records);
  for (int i = 0; i < 4; ++i) rep[8 + i] = static_cast<char>((n >> (8 * i)) & 0xff);
  rocksdb::WriteBatch batch(std::move(rep));
  if (batch.Count() != n) {
    return absl::InternalError(absl::StrCat("storage: commit group batch holds ", batch.Count(),
                                            " records, expected ", n));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  SIPER_RETURN_IF_ERROR(
      FromRocks(db_->Write(wo, &batch), absl::StrCat("commit write batch (chain record ",
                                                     rec.index(), ", ", group.size(), " writes)")));
  if (!chained) return chain_head_;
  return ChainHead{rec.index() + 1, std::move(hash), rec.time_ns()};
}

absl::StatusOr<VerifyReport> Store::Impl::Verify(int64_t since_ns) const {
  ScopedSnapshot snapshot(db_);
  VerifyReport report;
  SIPER_ASSIGN_OR_RETURN(std::optional<RetentionMark> anchor, ReadAnchor(snapshot.get()));
  const int64_t events_cutoff = anchor.has_value() ? anchor->events_cutoff_ns() : kMinTime;
  const int64_t alerts_cutoff = anchor.has_value() ? anchor->alerts_cutoff_ns() : kMinTime;

  std::map<uint64_t, siper::v1::ChainSeal> seals;
  SIPER_RETURN_IF_ERROR(
      Scan(kChainSeals, KeyRange{}, /*reverse=*/false, snapshot.get(),
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             siper::v1::ChainSeal p;
             SIPER_RETURN_IF_ERROR(internal::ParseValue(value, kCfNames[kChainSeals], key, &p));
             seals.emplace(p.length(), std::move(p));
             return true;
           }));
  auto seal_time = [](const siper::v1::ChainSeal& seal) {
    return absl::FormatTime(absl::FromUnixNanos(seal.time_ns()));
  };

  // The link the next record must have; unknown when starting mid-chain.
  std::optional<uint64_t> expect_index;
  std::string expect_hash;
  if (since_ns == 0) {
    if (anchor.has_value() && anchor->has_anchor()) {
      expect_index = anchor->anchor_index() + 1;
      expect_hash = anchor->anchor_hash();
    } else {
      expect_index = 0;
      expect_hash = ZeroHash();
    }
  }

  // Records the first problem and stops the walk.
  auto fail = [&](std::string problem, const ChainRecord* rec, const ChainSegment* seg,
                  std::string message) -> bool {
    report.ok = false;
    report.problem = std::move(problem);
    report.message = std::move(message);
    if (rec != nullptr) {
      report.chain_index = rec->index();
      report.from_ns = rec->time_ns();
      report.until_ns = rec->time_ns();
      for (const ChainSegment& s : rec->segments()) {
        report.from_ns = std::min(report.from_ns, s.min_time_ns());
        report.until_ns = std::max(report.until_ns, s.max_time_ns());
      }
    }
    if (seg != nullptr) {
      report.agent_id = seg->agent_id();
      report.first_seq = seg->first_seq();
      report.last_seq = seg->last_seq();
      report.from_ns = seg->min_time_ns();
      report.until_ns = seg->max_time_ns();
    }
    return false;
  };
  // Narrows a finding to one record of a segment.
  auto one_item = [&](uint64_t seq, int64_t time_ns) {
    report.first_seq = seq;
    report.last_seq = seq;
    report.from_ns = time_ns;
    report.until_ns = time_ns;
  };

  Sha256 digest;
  Sha256 item;
  auto check_segment = [&](const ChainRecord& rec, const ChainSegment& seg,
                           bool* partial) -> absl::StatusOr<bool> {
    const std::string where =
        absl::StrCat("chain record ", rec.index(), ", agent '", seg.agent_id(), "' seq ",
                     seg.first_seq(), "..", seg.last_seq());
    const size_t n_events = seg.event_keys().size() / keys::kEventKeySize;
    const size_t n_alerts = seg.alert_keys().size() / keys::kAlertKeySize;
    if (seg.event_keys().size() % keys::kEventKeySize != 0 ||
        seg.alert_keys().size() % keys::kAlertKeySize != 0 ||
        seg.item_tags().size() != (n_events + n_alerts) * kItemTagSize) {
      return fail("changed", &rec, &seg, absl::StrCat(where, ": key lists are malformed"));
    }
    digest.Reset();
    digest.Bytes(seg.agent_id());
    size_t tag_index = 0;
    absl::Status hash_status;
    for (bool alerts : {false, true}) {
      const std::string& list = alerts ? seg.alert_keys() : seg.event_keys();
      const size_t size = alerts ? keys::kAlertKeySize : keys::kEventKeySize;
      const char* kind = alerts ? "alert" : "event";
      for (size_t off = 0; off < list.size(); off += size, ++tag_index) {
        std::string_view key(list.data() + off, size);
        keys::EventKeyParts parts;
        if (!keys::ParseEventKey(key, &parts)) {
          return fail("changed", &rec, &seg, absl::StrCat(where, ": malformed key"));
        }
        if (parts.time_ns < (alerts ? alerts_cutoff : events_cutoff)) {
          *partial = true;  // expired by retention
          continue;
        }
        SIPER_ASSIGN_OR_RETURN(std::optional<std::string> value,
                               Get(alerts ? kAlerts : kEvents, key, snapshot.get()));
        if (!value.has_value()) {
          fail("removed", &rec, &seg,
               absl::StrCat("the ", kind, " of agent '", seg.agent_id(), "' seq ", parts.seq, " (",
                            where, ") was removed"));
          one_item(parts.seq, parts.time_ns);
          return false;
        }
        // A record that parses but belongs under another key was moved.
        bool same_identity = false;
        if (alerts) {
          siper::v1::Alert a;
          same_identity = a.ParseFromString(*value) && a.agent_id() == seg.agent_id() &&
                          a.seq() == parts.seq && a.time_ns() == parts.time_ns &&
                          a.id() == ToHex(key);
        } else {
          siper::v1::Event e;
          same_identity = e.ParseFromString(*value) && e.agent_id() == seg.agent_id() &&
                          e.seq() == parts.seq && e.server_time_ns() == parts.time_ns;
        }
        const std::string tag = ItemTag(key, *value, &item, &hash_status);
        SIPER_RETURN_IF_ERROR(hash_status);
        if (tag !=
            std::string_view(seg.item_tags()).substr(tag_index * kItemTagSize, kItemTagSize)) {
          fail(same_identity ? "changed" : "reordered", &rec, &seg,
               absl::StrCat("the ", kind, " of agent '", seg.agent_id(), "' seq ", parts.seq, " (",
                            where, ") ",
                            same_identity ? "was changed"
                                          : "holds another record (records were moved or "
                                            "swapped)"));
          one_item(parts.seq, parts.time_ns);
          return false;
        }
        digest.Bytes(key);
        digest.Bytes(*value);
        ++(alerts ? report.alerts : report.events);
      }
    }
    if (*partial) return true;  // the digest needs the expired records too
    SIPER_ASSIGN_OR_RETURN(std::string d, digest.Finish());
    if (d != seg.digest()) {
      return fail("changed", &rec, &seg,
                  absl::StrCat(where, ": the records do not hash to the chain's digest"));
    }
    return true;
  };

  // The newest retention run in the chain; meta's anchor must be its mark.
  std::optional<RetentionMark> last_retention;
  KeyRange range;
  if (since_ns != 0) range.lower = keys::ChainKey(since_ns, 0);
  SIPER_RETURN_IF_ERROR(
      Scan(kChain, range, /*reverse=*/false, snapshot.get(),
           [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
             keycodec::KeyReader r(key);
             int64_t key_time = 0;
             uint64_t key_index = 0;
             if (!r.ReadInt64(&key_time) || !r.ReadUint64(&key_index) || !r.done()) {
               return fail("changed", nullptr, nullptr,
                           absl::StrCat("malformed chain key ", ToHex(key)));
             }
             ChainRecord rec;
             if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
               report.chain_index = key_index;
               report.from_ns = report.until_ns = key_time;
               return fail("changed", nullptr, nullptr,
                           absl::StrCat("chain record ", key_index, " does not parse"));
             }
             if (rec.index() != key_index || rec.time_ns() != key_time) {
               fail("reordered", &rec, nullptr,
                    absl::StrCat("the chain record stored as record ", key_index, " is record ",
                                 rec.index(), " (chain records were moved)"));
               report.chain_index = key_index;
               return false;
             }
             if (expect_index.has_value()) {
               if (rec.index() > *expect_index) {
                 fail("removed", nullptr, nullptr,
                      absl::StrCat("chain records ", *expect_index, "..", rec.index() - 1,
                                   " are missing: the batches committed between ",
                                   absl::FormatTime(absl::FromUnixNanos(report.head.time_ns)),
                                   " and ", absl::FormatTime(absl::FromUnixNanos(rec.time_ns())),
                                   " were removed"));
                 report.chain_index = *expect_index;
                 report.from_ns = report.head.time_ns;
                 report.until_ns = rec.time_ns();
                 return false;
               }
               if (rec.index() < *expect_index) {
                 return fail("reordered", &rec, nullptr,
                             absl::StrCat("chain record ", rec.index(), " comes after record ",
                                          *expect_index - 1));
               }
               if (rec.prev_hash() != expect_hash) {
                 return fail("changed", &rec, nullptr,
                             absl::StrCat("chain record ", rec.index(), " does not link to record ",
                                          rec.index() - 1, ": one of them was replaced"));
               }
             }
             SIPER_ASSIGN_OR_RETURN(std::string hash, ChainRecordHash(rec));
             if (hash != rec.hash()) {
               return fail("changed", &rec, nullptr,
                           absl::StrCat("chain record ", rec.index(),
                                        " was changed (it does not hash to its stored hash)"));
             }
             if (auto seal = seals.find(rec.index() + 1);
                 seal != seals.end() && seal->second.hash() != rec.hash()) {
               return fail("changed", &rec, nullptr,
                           absl::StrCat("chain record ", rec.index(), " is not the one sealed at ",
                                        seal_time(seal->second),
                                        ": the chain was rewritten from there or before"));
             }
             bool partial = false;
             for (const ChainSegment& seg : rec.segments()) {
               SIPER_ASSIGN_OR_RETURN(bool more, check_segment(rec, seg, &partial));
               if (!more) return false;
             }
             if (rec.has_retention()) last_retention = rec.retention();
             if (partial) ++report.partially_expired;
             ++report.chain_records;
             expect_index = rec.index() + 1;
             expect_hash = rec.hash();
             report.head = ChainHead{rec.index() + 1, rec.hash(), rec.time_ns()};
             return true;
           }));
  // A seal beyond the last record: records were removed from the end.
  if (report.ok && !seals.empty()) {
    uint64_t length = 0;
    if (anchor.has_value() && anchor->has_anchor()) length = anchor->anchor_index() + 1;
    SIPER_RETURN_IF_ERROR(Scan(kChain, KeyRange{}, /*reverse=*/true, snapshot.get(),
                               [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                                 keycodec::KeyReader r(key);
                                 uint64_t index = 0;
                                 if (r.Skip(8) && r.ReadUint64(&index)) length = index + 1;
                                 return false;
                               }));
    const siper::v1::ChainSeal& last = seals.rbegin()->second;
    if (last.length() > length) {
      fail("removed", nullptr, nullptr,
           absl::StrCat("chain records ", length, "..", last.length() - 1,
                        " were removed: the chain ends before the seal of ", seal_time(last)));
      report.chain_index = length;
      report.from_ns = report.head.time_ns;
      report.until_ns = last.time_ns();
    }
  }
  // Every retention run writes its mark both to meta and into the chain, and
  // no run drops the record of the newest run. A meta anchor without that
  // record means the start of the chain was cut off and the anchor forged.
  if (report.ok && since_ns == 0 && anchor.has_value() &&
      (!last_retention.has_value() ||
       last_retention->SerializeAsString() != anchor->SerializeAsString())) {
    fail("removed", nullptr, nullptr,
         "the retention anchor in meta matches no retention run in the chain: chain records "
         "before the first one left were removed outside retention");
    report.chain_index = anchor->anchor_index();
    report.until_ns = anchor->events_cutoff_ns();
  }
  if (report.ok) {
    report.message = absl::StrCat("OK: ", report.chain_records, " chain records, ", report.events,
                                  " events, ", report.alerts, " alerts verified");
  }
  return report;
}

absl::StatusOr<RetentionResult> Store::Impl::ApplyRetention(const RetentionOptions& options,
                                                            int64_t now_ns) {
  if (options.events_ns < 0 || options.alerts_ns < 0) {
    return absl::InvalidArgumentError("storage: a retention period cannot be negative");
  }
  std::lock_guard<std::mutex> lock(retention_mu_);
  SIPER_ASSIGN_OR_RETURN(std::optional<RetentionMark> anchor, ReadAnchor(nullptr));
  RetentionMark mark;
  if (anchor.has_value()) {
    mark = *anchor;
  } else {
    mark.set_events_cutoff_ns(kMinTime);
    mark.set_alerts_cutoff_ns(kMinTime);
  }
  // Cutoffs never move back: what is gone is gone, and verify relies on it.
  auto cutoff = [&](int64_t keep_ns, int64_t old) {
    if (keep_ns == 0) return old;
    return std::max(old, now_ns - keep_ns);
  };
  const int64_t ec = cutoff(options.events_ns, mark.events_cutoff_ns());
  const int64_t ac = cutoff(options.alerts_ns, mark.alerts_cutoff_ns());
  RetentionResult result{ec, ac, 0};
  const bool events_move = ec > mark.events_cutoff_ns();
  const bool alerts_move = ac > mark.alerts_cutoff_ns();
  if (!events_move && !alerts_move) return result;

  // Dedup entries of events written while this run computes must survive it.
  // Writes note their lowest seq per agent (under the agent's lock, before
  // committing); holding every agent lock, the run resets those notes as it
  // takes its snapshot, and reads them again as it commits.
  auto lock_all_writes = [this] {
    std::vector<std::unique_lock<std::mutex>> locks;
    for (std::mutex& m : write_mu_) locks.emplace_back(m);
    return locks;
  };
  std::optional<ScopedSnapshot> snapshot_holder;
  {
    auto locks = lock_all_writes();
    std::lock_guard<std::mutex> written(written_mu_);
    lowest_written_.clear();
    snapshot_holder.emplace(db_);
  }
  const ScopedSnapshot& snapshot = *snapshot_holder;
  PendingCommit commit;
  commit.sync = true;
  std::vector<std::pair<uint32_t, uint64_t>> dedup_ends;  // agent, first seq kept
  auto drop = [&](Cf which, std::string begin, std::string end) {
    commit.ops.push_back({Op::kDeleteRange, which, std::move(begin), std::move(end)});
  };

  SIPER_ASSIGN_OR_RETURN(const std::vector<uint32_t> agents, AgentNums(snapshot.get()));

  if (events_move) {
    drop(kEvents, keys::TimeBound("", kMinTime), keys::TimeBound("", ec));
    // The field index by whole hours: entries of the cutoff's own hour stay until
    // the next run, and searches skip them by time (events_cutoff_ns_).
    drop(kEventsByField, keys::HourPrefix(0), keys::HourPrefix(keys::HourOf(ec)));
    // Counts alike: the cutoff's own hour is counted from the index (it is not a
    // whole hour of any range that starts at the cutoff), so its stale count is never read.
    drop(kFieldCounts, keys::HourPrefix(0), keys::HourPrefix(keys::HourOf(ec)));
    for (uint32_t agent : agents) {
      const std::string prefix = keys::AgentPrefix(agent);
      drop(kEventsByAgent, keys::TimeBound(prefix, kMinTime), keys::TimeBound(prefix, ec));
      // Dedup entries: drop those below the lowest seq among the agent's
      // oldest remaining events, and always keep the newest (LastSeq).
      std::optional<uint64_t> keep_from;
      int looked = 0;
      SIPER_RETURN_IF_ERROR(Scan(
          kEventsByAgent, KeyRange{keys::TimeBound(prefix, ec), keycodec::PrefixSuccessor(prefix)},
          /*reverse=*/false, snapshot.get(),
          [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
            keycodec::KeyReader r(key);
            uint64_t seq = 0;
            // A posting's lowest seq is its key's (keys.h).
            std::optional<uint64_t> n = keys::PostingSize(value);
            if (!r.Skip(4 + 8) || !r.ReadUint64(&seq) || !n.has_value()) {
              return absl::DataLossError(
                  absl::StrCat("storage: malformed entry in events_by_agent: ", ToHex(key)));
            }
            keep_from = std::min(keep_from.value_or(seq), seq);
            looked += static_cast<int>(std::min<uint64_t>(*n, kDedupLookahead));
            return looked < kDedupLookahead;
          }));
      SIPER_ASSIGN_OR_RETURN(const uint64_t last, LastStoredSeq(agent, snapshot.get()));
      uint64_t end = std::min(keep_from.value_or(last), last);
      // event_seq holds runs (keys.h): a run that holds `end` starts below it and still
      // names kept events, so the range stops at that run's first seq instead.
      if (end > 0) {
        rocksdb::ReadOptions seq_ro;
        seq_ro.snapshot = snapshot.get();
        std::unique_ptr<rocksdb::Iterator> seq_it(db_->NewIterator(seq_ro, cf(kEventSeq)));
        SIPER_ASSIGN_OR_RETURN(std::optional<keys::SeqRun> run,
                               FindSeqRun(seq_it.get(), agent, end));
        if (run.has_value()) end = run->first;
      }
      if (end > 0) dedup_ends.emplace_back(agent, end);
    }
  }

  if (alerts_move) {
    drop(kAlerts, keys::TimeBound("", kMinTime), keys::TimeBound("", ac));
    for (uint32_t agent : agents) {
      const std::string prefix = keys::AgentPrefix(agent);
      drop(kAlertsByAgent, keys::TimeBound(prefix, kMinTime), keys::TimeBound(prefix, ac));
    }
    // One range per rule: hop from rule to rule with Seek.
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot.get();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(kAlertsByRule)));
    for (it->SeekToFirst(); it->Valid();) {
      keycodec::KeyReader r(internal::AsView(it->key()));
      std::string_view rule;
      if (!r.ReadLengthPrefixed(&rule)) {
        return absl::DataLossError(absl::StrCat("storage: malformed key in alerts_by_rule: ",
                                                ToHex(internal::AsView(it->key()))));
      }
      const std::string prefix = keys::RulePrefix(rule);
      drop(kAlertsByRule, keys::TimeBound(prefix, kMinTime), keys::TimeBound(prefix, ac));
      std::optional<std::string> next = keycodec::PrefixSuccessor(prefix);
      if (!next.has_value()) break;
      it->Seek(*next);
    }
    SIPER_RETURN_IF_ERROR(FromRocks(it->status(), "scan alerts_by_rule"));
  }

  // Chain records whose events and alerts are all gone, from the start of the
  // chain up to the first one that still covers something.
  std::optional<std::string> first_key;
  std::optional<ChainRecord> last_dropped;
  SIPER_RETURN_IF_ERROR(Scan(
      kChain, KeyRange{}, /*reverse=*/false, snapshot.get(),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        ChainRecord rec;
        SIPER_RETURN_IF_ERROR(internal::ParseValue(value, kCfNames[kChain], key, &rec));
        bool expired = true;
        if (rec.segments_size() == 0) expired = rec.time_ns() < std::min(ec, ac);
        for (const ChainSegment& s : rec.segments()) {
          expired =
              expired && s.max_time_ns() < ec && (s.alert_keys().empty() || s.max_time_ns() < ac);
        }
        if (!expired) return false;
        if (!first_key.has_value()) first_key = std::string(key);
        last_dropped = std::move(rec);
        ++result.chain_records_dropped;
        return true;
      }));
  if (last_dropped.has_value()) {
    drop(kChain, *first_key, keys::ChainKey(last_dropped->time_ns(), last_dropped->index() + 1));
    mark.set_has_anchor(true);
    mark.set_anchor_index(last_dropped->index());
    mark.set_anchor_hash(last_dropped->hash());
  }
  mark.set_events_cutoff_ns(ec);
  mark.set_alerts_cutoff_ns(ac);
  commit.ops.push_back(
      {Op::kPut, kMeta, std::string(keys::kChainAnchorKey), mark.SerializeAsString()});
  commit.retention = mark;
  {
    auto locks = lock_all_writes();
    {
      std::lock_guard<std::mutex> written(written_mu_);
      for (auto& [agent, end] : dedup_ends) {
        if (auto it = lowest_written_.find(agent); it != lowest_written_.end()) {
          end = std::min(end, it->second);
        }
      }
    }
    for (const auto& [agent, end] : dedup_ends) {
      if (end > 0) drop(kEventSeq, keys::EventSeqKey(agent, 0), keys::EventSeqKey(agent, end));
    }
    // No write can be in the queue now: this run commits alone.
    SIPER_RETURN_IF_ERROR(Commit(&commit));
  }
  events_cutoff_ns_.store(ec);
  return result;
}

absl::Status Store::Impl::Backup(const fs::path& dir) const {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("storage: backup directory ", dir.string(),
                                                 " exists already; give a new path"));
  }
  rocksdb::Checkpoint* raw = nullptr;
  SIPER_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_, &raw), "prepare checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(dir.string()),
                   absl::StrCat("create checkpoint in ", dir.string()));
}

absl::Status Store::Restore(const fs::path& backup_dir, const fs::path& data_dir) {
  std::error_code ec;
  if (!fs::exists(backup_dir / "CURRENT", ec)) {
    return absl::NotFoundError(
        absl::StrCat("storage: ", backup_dir.string(), " is not a Siper backup (no CURRENT file)"));
  }
  if (fs::exists(data_dir, ec) && !fs::is_empty(data_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "storage: ", data_dir.string(), " is not empty; restore into an empty or new directory"));
  }
  fs::create_directories(data_dir, ec);
  if (!ec) fs::copy(backup_dir, data_dir, fs::copy_options::recursive, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("storage: cannot copy ", backup_dir.string(), " to ",
                                               data_dir.string(), ": ", ec.message()));
  }
  // Proves the copy opens (schema, families) before a server relies on it.
  return Store::Open(data_dir).status();
}

}  // namespace siper::storage

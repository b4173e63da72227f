// Hash chain, verify, retention and backup, on a real RocksDB. Tampering is
// done directly in RocksDB, as an attacker with file access would.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "server/storage/store.h"
#include "siper/v1/storage.pb.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kDay = 24 * 3600 * kSecond;

class ChainTest : public StoreTest {
 protected:
  // Three batches of agent a1 (seq 1..3, 4..6, 7..9), each event with one
  // alert, then one batch of a2: four chain records.
  void WriteBatches() {
    for (uint64_t start = 1; start <= 7; start += 3) {
      std::vector<EventRecord> batch;
      for (uint64_t s = start; s < start + 3; ++s) {
        batch.push_back(LogRecord("a1", s, "line " + std::to_string(s)));
        batch.back().alerts.push_back(MakeAlert("r1", "high"));
      }
      MustWrite("a1", std::move(batch));
    }
    MustWrite("a2", {LogRecord("a2", 1, "other agent")});
  }

  VerifyReport MustVerify(int64_t since_ns = 0) {
    auto r = store_->Verify(since_ns);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : VerifyReport{};
  }

  // Finds the events-family key of (agent a1, seq).
  static std::string EventKeyOf(RawDb& raw, uint64_t seq) {
    for (const std::string& k : raw.Keys("events")) {
      std::string v;
      EXPECT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf("events"), k, &v).ok());
      Event e;
      EXPECT_TRUE(e.ParseFromString(v));
      if (e.agent_id() == "a1" && e.seq() == seq) return k;
    }
    ADD_FAILURE() << "no event a1/" << seq;
    return {};
  }
  static std::string Value(RawDb& raw, const std::string& cf, const std::string& key) {
    std::string v;
    EXPECT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf(cf), key, &v).ok());
    return v;
  }
  static void Put(RawDb& raw, const std::string& cf, const std::string& key,
                  const std::string& value) {
    ASSERT_TRUE(raw.db()->Put(rocksdb::WriteOptions(), raw.cf(cf), key, value).ok());
  }
};

TEST_F(ChainTest, OneRecordPerCommittedBatchAndVerifyOk) {
  auto empty = store_->GetChainHead();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->length, 0u);
  EXPECT_EQ(empty->hash, std::string(32, '\0'));
  WriteBatches();
  MustWrite("a1", {LogRecord("a1", 1, "duplicate only")});  // nothing committed
  auto head = store_->GetChainHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->length, 4u);
  EXPECT_EQ(head->hash.size(), 32u);

  VerifyReport report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_EQ(report.chain_records, 4u);
  EXPECT_EQ(report.events, 10u);
  EXPECT_EQ(report.alerts, 9u);
  EXPECT_EQ(report.head.hash, head->hash);

  // The chain goes on across a restart.
  Reopen();
  EXPECT_EQ(store_->GetChainHead()->hash, head->hash);
  MustWrite("a2", {LogRecord("a2", 2, "after restart")});
  report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_EQ(report.chain_records, 5u);
}

TEST_F(ChainTest, ConcurrentWritersCommitInGroupsAndVerify) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string agent = "agent-" + std::to_string(t);
      for (int b = 0; b < kBatches; ++b) {
        std::vector<EventRecord> batch;
        for (int i = 1; i <= 10; ++i) batch.push_back(LogRecord(agent, b * 10 + i, "x"));
        batch[0].alerts.push_back(MakeAlert("r", "low"));
        auto r = store_->Write(agent, batch);
        ASSERT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (auto& th : threads) th.join();
  VerifyReport report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_EQ(report.events, uint64_t{kThreads * kBatches * 10});
  EXPECT_EQ(report.alerts, uint64_t{kThreads * kBatches});
  EXPECT_LE(report.chain_records, uint64_t{kThreads * kBatches});
}

// Incident rows go through the group commit (sharing the batch and WAL sync of the event
// writes committing with them) but stay outside the event chain: a group of only incident
// writes adds no chain record, a mixed group's record covers only its event writes, and
// everything is durable across a restart.
TEST_F(ChainTest, IncidentWritesShareTheGroupCommitOutsideTheChain) {
  WriteBatches();
  const ChainHead before = *store_->GetChainHead();
  ASSERT_TRUE(store_
                  ->PutIncidents({.incidents = {{"INC-2026-0001", "{}"}},
                                  .audit = {{1, "a1"}},
                                  .items = {{"INC-2026-0001", 'a', 0, "item"}}})
                  .ok());
  const ChainHead after_alone = *store_->GetChainHead();
  EXPECT_EQ(after_alone.length, before.length);
  EXPECT_EQ(after_alone.hash, before.hash);

  // Event writers and incident writers at once: the groups mix them.
  constexpr int kEventThreads = 3;
  constexpr int kIncidentThreads = 2;
  constexpr int kBatches = 30;
  std::vector<std::thread> threads;
  for (int t = 0; t < kEventThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string agent = "agent-" + std::to_string(t);
      for (int b = 0; b < kBatches; ++b) {
        std::vector<EventRecord> batch;
        for (int i = 1; i <= 5; ++i) batch.push_back(LogRecord(agent, b * 5 + i, "x"));
        batch[0].alerts.push_back(MakeAlert("r", "low"));
        auto r = store_->Write(agent, batch);
        ASSERT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (int t = 0; t < kIncidentThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = absl::StrCat("INC-2026-01", t);
      for (int b = 0; b < kBatches; ++b) {
        IncidentWrite w;
        w.incidents = {{id, absl::StrCat("{\"alerts\":", b + 1, "}")}};
        w.audit = {{uint64_t(100 + t * kBatches + b), absl::StrCat("audit ", t, "/", b)}};
        w.items = {{id, 'a', uint64_t(b), absl::StrCat("alert ", b)}};
        ASSERT_TRUE(store_->PutIncidents(w).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  // The same audit seq from several threads at once: one write wins, the others are refused
  // whole (the check and the commit are one step).
  std::atomic<int> stored{0};
  std::atomic<int> refused{0};
  threads.clear();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      absl::Status st = store_->PutIncidents(
          {.incidents = {{absl::StrCat("INC-2026-02", t), "{}"}}, .audit = {{999, "same"}}});
      if (st.ok()) ++stored;
      if (st.code() == absl::StatusCode::kAlreadyExists) ++refused;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(refused.load(), 3);

  VerifyReport report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_EQ(report.events, uint64_t{10 + kEventThreads * kBatches * 5});
  const ChainHead head = *store_->GetChainHead();
  Reopen();
  EXPECT_EQ(store_->GetChainHead()->hash, head.hash);
  for (int t = 0; t < kIncidentThreads; ++t) {
    const std::string id = absl::StrCat("INC-2026-01", t);
    EXPECT_EQ(**store_->GetIncident(id), absl::StrCat("{\"alerts\":", kBatches, "}"));
    int items = 0;
    ASSERT_TRUE(store_
                    ->ListIncidentItems(id,
                                        [&](char, uint64_t seq, std::string_view json) {
                                          EXPECT_EQ(json, absl::StrCat("alert ", seq));
                                          ++items;
                                          return true;
                                        })
                    .ok());
    EXPECT_EQ(items, kBatches);
  }
  std::vector<uint64_t> seqs;
  ASSERT_TRUE(store_
                  ->ListAudit(1,
                              [&](uint64_t seq, std::string_view) {
                                seqs.push_back(seq);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(seqs.size(), size_t{1 + kIncidentThreads * kBatches + 1});
  // The chain goes on from the same head.
  MustWrite("a2", {LogRecord("a2", 2, "after restart")});
  EXPECT_EQ(store_->GetChainHead()->length, head.length + 1);
  report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_EQ(report.chain_records, head.length + 1);
  Close();
  // Every chain record covers event writes (or a retention run): none is an empty link left
  // by a group of incident writes alone.
  RawDb raw(dir_ / "db");
  size_t records = 0;
  for (const std::string& k : raw.Keys("chain")) {
    siper::v1::ChainRecord rec;
    ASSERT_TRUE(rec.ParseFromString(Value(raw, "chain", k)));
    EXPECT_GT(rec.segments_size(), 0) << "chain record " << rec.index();
    ++records;
  }
  EXPECT_EQ(records, head.length + 1);
}

TEST_F(ChainTest, VerifyNamesAChangedEvent) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    const std::string key = EventKeyOf(raw, 5);
    Event e;
    ASSERT_TRUE(e.ParseFromString(Value(raw, "events", key)));
    e.mutable_log()->set_line("line 5, edited to hide something");
    Put(raw, "events", key, e.SerializeAsString());
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "changed") << r.message;
  EXPECT_EQ(r.chain_index, 1u);
  EXPECT_EQ(r.agent_id, "a1");
  EXPECT_EQ(r.first_seq, 5u);
  EXPECT_EQ(r.last_seq, 5u);
  EXPECT_NE(r.message.find("seq 5"), std::string::npos) << r.message;
}

TEST_F(ChainTest, VerifyNamesAChangedAlert) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    const std::string key = raw.Keys("alerts")[7];  // a1 seq 8
    Alert a;
    ASSERT_TRUE(a.ParseFromString(Value(raw, "alerts", key)));
    a.set_level("low");
    Put(raw, "alerts", key, a.SerializeAsString());
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "changed") << r.message;
  EXPECT_EQ(r.chain_index, 2u);
  EXPECT_EQ(r.first_seq, 8u);
  EXPECT_NE(r.message.find("alert"), std::string::npos) << r.message;
}

TEST_F(ChainTest, VerifyNamesARemovedEvent) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    ASSERT_TRUE(
        raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("events"), EventKeyOf(raw, 2)).ok());
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "removed") << r.message;
  EXPECT_EQ(r.chain_index, 0u);
  EXPECT_EQ(r.agent_id, "a1");
  EXPECT_EQ(r.first_seq, 2u);
  EXPECT_EQ(r.last_seq, 2u);
}

TEST_F(ChainTest, VerifyNamesSwappedEvents) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    const std::string k3 = EventKeyOf(raw, 3);
    const std::string k4 = EventKeyOf(raw, 4);
    const std::string v3 = Value(raw, "events", k3);
    const std::string v4 = Value(raw, "events", k4);
    Put(raw, "events", k3, v4);
    Put(raw, "events", k4, v3);
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "reordered") << r.message;
  EXPECT_EQ(r.chain_index, 0u);
  EXPECT_EQ(r.first_seq, 3u);
}

TEST_F(ChainTest, VerifyNamesARemovedBatch) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    // Remove batch 1 entirely: its chain record and its events.
    std::vector<std::string> chain = raw.Keys("chain");
    ASSERT_EQ(chain.size(), 4u);
    ASSERT_TRUE(raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("chain"), chain[1]).ok());
    for (uint64_t s = 4; s <= 6; ++s) {
      ASSERT_TRUE(
          raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("events"), EventKeyOf(raw, s)).ok());
    }
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "removed") << r.message;
  EXPECT_EQ(r.chain_index, 1u);
  EXPECT_NE(r.message.find("chain records 1..1"), std::string::npos) << r.message;
}

TEST_F(ChainTest, VerifyNamesReorderedAndEditedChainRecords) {
  WriteBatches();
  Close();
  std::vector<std::string> chain;
  std::string v1, v2;
  {
    RawDb raw(dir_ / "db");
    chain = raw.Keys("chain");
    v1 = Value(raw, "chain", chain[1]);
    v2 = Value(raw, "chain", chain[2]);
    Put(raw, "chain", chain[1], v2);
    Put(raw, "chain", chain[2], v1);
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "reordered") << r.message;
  EXPECT_EQ(r.chain_index, 1u);

  Close();
  {
    RawDb raw(dir_ / "db");
    Put(raw, "chain", chain[1], v1);
    // Rewrite a record to claim fewer events, without a valid hash.
    siper::v1::ChainRecord rec;
    ASSERT_TRUE(rec.ParseFromString(v2));
    rec.mutable_segments(0)->set_last_seq(8);
    Put(raw, "chain", chain[2], rec.SerializeAsString());
  }
  Reopen();
  r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "changed") << r.message;
  EXPECT_EQ(r.chain_index, 2u);
}

TEST_F(ChainTest, SealsCatchRemovalFromTheEndAndRewrites) {
  WriteBatches();
  auto head = store_->GetChainHead();
  ASSERT_TRUE(head.ok());
  ChainSeal seal{head->length, head->hash, kT0, "server-key-1", "sig", ""};
  ASSERT_TRUE(store_->PutChainSeal(seal).ok());
  EXPECT_EQ(store_->PutChainSeal({head->length, std::string(32, 'x'), kT0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PutChainSeal({head->length + 5, head->hash, kT0}).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<ChainSeal> seals;
  ASSERT_TRUE(store_
                  ->ListChainSeals([&](const ChainSeal& s) {
                    seals.push_back(s);
                    return true;
                  })
                  .ok());
  ASSERT_EQ(seals.size(), 1u);
  EXPECT_EQ(seals[0].key_id, "server-key-1");
  EXPECT_TRUE(MustVerify().ok);

  // Remove the newest batch (a2's) with its chain record: without the seal
  // nothing would show it.
  Close();
  {
    RawDb raw(dir_ / "db");
    ASSERT_TRUE(
        raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("chain"), raw.Keys("chain").back()).ok());
    ASSERT_TRUE(raw.db()
                    ->Delete(rocksdb::WriteOptions(), raw.cf("events"), raw.Keys("events").back())
                    .ok());
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "removed") << r.message;
  EXPECT_EQ(r.chain_index, 3u);

  // The chain goes on from the cut: the new record 3 is not the sealed one.
  MustWrite("a1", {LogRecord("a1", 100, "after the cut")});
  r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "changed") << r.message;
  EXPECT_EQ(r.chain_index, 3u);
  EXPECT_NE(r.message.find("sealed"), std::string::npos) << r.message;
}

TEST_F(ChainTest, VerifySinceStartsMidChain) {
  WriteBatches();
  Close();
  std::string third_key;
  {
    RawDb raw(dir_ / "db");
    third_key = raw.Keys("chain")[2];
  }
  Reopen();
  const int64_t since = keycodec::DecodeInt64(third_key.data());
  VerifyReport r = MustVerify(since);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GE(r.chain_records, 2u);
  EXPECT_LE(r.chain_records, 3u);  // commit times can tie
}

TEST_F(ChainTest, RetentionDropsOldRangesKeepsNewAndChainVerifies) {
  const int64_t now = kT0 + 1000 * kDay;
  // Old: a1 seq 1..3 at 800 days ago, with alerts. New: a1 seq 4..5 now.
  std::vector<EventRecord> old_batch;
  for (uint64_t s = 1; s <= 3; ++s) {
    old_batch.push_back(LogRecord("a1", s, "old", now - 800 * kDay + static_cast<int64_t>(s)));
    old_batch.back().alerts.push_back(MakeAlert("r1", "high"));
  }
  MustWrite("a1", std::move(old_batch));
  std::vector<EventRecord> new_batch = {LogRecord("a1", 4, "new", now - kSecond),
                                        LogRecord("a1", 5, "new", now)};
  new_batch[1].alerts.push_back(MakeAlert("r1", "high"));
  MustWrite("a1", std::move(new_batch));
  MustWrite("a2", {LogRecord("a2", 7, "old only", now - 900 * kDay)});
  const uint64_t head_before = store_->GetChainHead()->length;

  auto result = store_->ApplyRetention(RetentionOptions{}, now);  // 730 days
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->events_cutoff_ns, now - kDefaultRetentionNs);
  EXPECT_EQ(result->chain_records_dropped, 1u);  // the old a1 batch; a2's comes after a new one
  EXPECT_EQ(store_->GetChainHead()->length, head_before + 1);  // the run is in the chain

  EXPECT_EQ(SearchIds({}), (Ids{{"a1", 4}, {"a1", 5}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1"}), (Ids{{"a1", 4}, {"a1", 5}}));
  EXPECT_TRUE(SearchIds({.agent_id = "a2"}).empty());
  EXPECT_EQ(SearchIds({.rule_id = "r1"}), (Ids{{"a1", 5}}));
  EXPECT_EQ(Alerts({}).size(), 1u);
  EXPECT_EQ(Alerts({.agent_id = "a1"}).size(), 1u);
  EXPECT_EQ(Alerts({.rule_id = "r1"}).size(), 1u);
  // Sequence state survives: the newest seq stays known, kept events stay deduplicated.
  EXPECT_EQ(*store_->LastSeq("a1"), 5u);
  EXPECT_EQ(*store_->LastSeq("a2"), 7u);
  EXPECT_EQ(MustWrite("a1", {LogRecord("a1", 4, "new")}).duplicates, 1u);

  VerifyReport r = MustVerify();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.partially_expired, 1u);  // a2's old batch: all of it expired, record kept
  EXPECT_EQ(r.events, 2u);

  // Running again with the same time changes nothing; the chain survives a restart.
  EXPECT_TRUE(store_->ApplyRetention(RetentionOptions{}, now).ok());
  Reopen();
  MustWrite("a1", {LogRecord("a1", 6, "later")});
  r = MustVerify();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.events, 3u);
}

TEST_F(ChainTest, VerifyCatchesAForgedRetentionAnchor) {
  WriteBatches();
  Close();
  {
    // Cut off the first batch and pretend retention did it.
    RawDb raw(dir_ / "db");
    std::vector<std::string> chain = raw.Keys("chain");
    siper::v1::ChainRecord first;
    ASSERT_TRUE(first.ParseFromString(Value(raw, "chain", chain[0])));
    siper::v1::RetentionMark mark;
    mark.set_events_cutoff_ns(std::numeric_limits<int64_t>::min());
    mark.set_alerts_cutoff_ns(std::numeric_limits<int64_t>::min());
    mark.set_has_anchor(true);
    mark.set_anchor_index(0);
    mark.set_anchor_hash(first.hash());
    Put(raw, "meta", "chain_anchor", mark.SerializeAsString());
    ASSERT_TRUE(raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("chain"), chain[0]).ok());
    for (uint64_t s = 1; s <= 3; ++s) {
      ASSERT_TRUE(
          raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("events"), EventKeyOf(raw, s)).ok());
    }
  }
  Reopen();
  VerifyReport r = MustVerify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "removed") << r.message;
  EXPECT_NE(r.message.find("retention anchor"), std::string::npos) << r.message;
}

// Retention runs while an agent fills gaps below every seq it has stored:
// the dedup entries of those new events must survive, so a resend of all of
// them afterwards stores nothing twice.
TEST_F(ChainTest, RetentionKeepsDedupOfEventsWrittenMeanwhile) {
  const int64_t now = absl::ToUnixNanos(absl::Now());
  std::vector<EventRecord> old;
  for (uint64_t s = 1000; s < 1100; ++s) old.push_back(LogRecord("a1", s, "old", now - 800 * kDay));
  MustWrite("a1", std::move(old));
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t s = 999; s >= 1; --s) {
      std::vector<EventRecord> one = {LogRecord("a1", s, "new")};
      auto r = store_->Write("a1", one);
      ASSERT_TRUE(r.ok()) << r.status();
    }
    done = true;
  });
  int runs = 0;
  while (!done) {
    // The cutoff moves with the clock, so every run has work.
    auto r = store_->ApplyRetention(RetentionOptions{}, absl::ToUnixNanos(absl::Now()));
    ASSERT_TRUE(r.ok()) << r.status();
    ++runs;
  }
  writer.join();
  EXPECT_GT(runs, 0);
  std::vector<EventRecord> resend;
  for (uint64_t s = 1; s <= 999; ++s) resend.push_back(LogRecord("a1", s, "new"));
  WriteResult again = MustWrite("a1", std::move(resend));
  EXPECT_EQ(again.stored, 0u);
  EXPECT_EQ(again.duplicates, 999u);
  EXPECT_EQ(*store_->LastSeq("a1"), 1099u);
  VerifyReport report = MustVerify();
  EXPECT_TRUE(report.ok) << report.message;
}

TEST_F(ChainTest, RetentionPerKindKeepsAlertsLonger) {
  const int64_t now = kT0 + 1000 * kDay;
  std::vector<EventRecord> batch = {LogRecord("a1", 1, "old", now - 100 * kDay),
                                    LogRecord("a1", 2, "new", now)};
  batch[0].alerts.push_back(MakeAlert("r1", "high"));
  batch[1].alerts.push_back(MakeAlert("r1", "high"));
  MustWrite("a1", std::move(batch));
  ASSERT_TRUE(store_->ApplyRetention({.events_ns = 30 * kDay, .alerts_ns = 0}, now).ok());
  EXPECT_EQ(SearchIds({}), (Ids{{"a1", 2}}));
  EXPECT_EQ(Alerts({}).size(), 2u);                           // 0 keeps alerts forever
  EXPECT_EQ(SearchIds({.rule_id = "r1"}), (Ids{{"a1", 2}}));  // no dangling event
  VerifyReport r = MustVerify();
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(store_->ApplyRetention({.events_ns = -1}, now).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ChainTest, BackupIsAConsistentStoreAndRestores) {
  WriteBatches();
  const fs::path backup = dir_ / "backup";
  ASSERT_TRUE(store_->Backup(backup).ok());
  MustWrite("a1", {LogRecord("a1", 10, "after backup")});
  EXPECT_EQ(store_->Backup(backup).code(), absl::StatusCode::kAlreadyExists);

  const fs::path restored = dir_ / "restored";
  ASSERT_TRUE(Store::Restore(backup, restored).ok());
  EXPECT_EQ(Store::Restore(backup, restored).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Store::Restore(dir_ / "nothing", dir_ / "x").code(), absl::StatusCode::kNotFound);

  auto copy = Store::Open(restored);
  ASSERT_TRUE(copy.ok()) << copy.status();
  uint64_t count = 0;
  ASSERT_TRUE((*copy)->SearchEvents({}, [&](const Event&) { return ++count > 0; }).ok());
  EXPECT_EQ(count, 10u);  // not the event written after the backup
  auto r = (*copy)->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->message;
  EXPECT_EQ(*(*copy)->LastSeq("a1"), 9u);
}

// The online swap: the store object stays, its directory is replaced by a staged restore,
// the old one is kept; a call that waits for the swap runs on the restored store, writes
// carry on after it and the chain verifies. A missing staging directory changes nothing.
TEST_F(ChainTest, ReplaceWithSwapsInARestoredStoreAndKeepsTheOldOne) {
  WriteBatches();
  const fs::path backup = dir_ / "backup";
  ASSERT_TRUE(store_->Backup(backup).ok());
  MustWrite("a1", {LogRecord("a1", 10, "after backup")});
  const fs::path db = store_->dir();
  const fs::path kept = dir_ / "db.before";

  EXPECT_EQ(store_->ReplaceWith(dir_ / "no-staging", kept, 1000).code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(kept));
  EXPECT_EQ(*store_->LastSeq("a1"), 10u);  // unchanged

  const fs::path staged = dir_ / "staged";
  ASSERT_TRUE(Store::Restore(backup, staged).ok());
  // A reader that holds the store makes the swap wait, and a short wait gives up.
  {
    std::atomic<bool> reading{true};
    std::thread reader([&] {
      ASSERT_TRUE(store_
                      ->SearchEvents({},
                                     [&](const Event&) {
                                       while (reading)
                                         std::this_thread::sleep_for(std::chrono::milliseconds(5));
                                       return false;
                                     })
                      .ok());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(store_->ReplaceWith(staged, kept, 50).code(), absl::StatusCode::kUnavailable);
    reading = false;
    reader.join();
  }
  EXPECT_TRUE(fs::exists(staged));
  ASSERT_TRUE(store_->ReplaceWith(staged, kept, 5000).ok());
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(store_->dir(), db);
  EXPECT_EQ(*store_->LastSeq("a1"), 9u);  // the backup's state
  MustWrite("a1", {LogRecord("a1", 11, "after restore")});
  auto r = store_->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->message;
  EXPECT_EQ(r->events, 11u);
  auto old = Store::Open(kept);  // nothing deleted: the replaced store has seq 10
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(*(*old)->LastSeq("a1"), 10u);
}

TEST_F(ChainTest, CorruptChainHeadRefusesToOpen) {
  WriteBatches();
  Close();
  {
    RawDb raw(dir_ / "db");
    Put(raw, "chain", raw.Keys("chain").back(), "not a record");
  }
  auto s = Store::Open(dir_ / "db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("Restore a backup"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace siper::storage::testutil

// event_seq runs (schema 4): one dedup key per run of consecutive seqs of a write
// that share a server time, and a per-agent high-water mark above which a seq needs
// no lookup. Dedup stays exact for resends, gaps, out-of-order seqs, repeats inside
// a batch and restarts; GetEvent and LastSeq read the runs; retention never drops the
// run of a kept event; a store in schema 3's layout (one key per seq) is upgraded and
// deduplicates every seq it holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/storage/keys.h"
#include "tests/storage/raw_db.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kDay = int64_t{24} * 3600 * kSecond;

class SeqRunsTest : public StoreTest {
 protected:
  std::vector<EventRecord> Batch(const std::string& agent, const std::vector<uint64_t>& seqs,
                                 int64_t time_ns = 0) {
    std::vector<EventRecord> records;
    for (uint64_t s : seqs) {
      records.push_back(LogRecord(agent, s, agent + " line " + std::to_string(s), time_ns));
    }
    return records;
  }
  static std::vector<uint64_t> Range(uint64_t from, uint64_t to) {  // inclusive
    std::vector<uint64_t> out;
    for (uint64_t s = from; s <= to; ++s) out.push_back(s);
    return out;
  }
  // event_seq as (first, last) per key, in key order.
  std::vector<std::pair<uint64_t, uint64_t>> RunsOnDisk() {
    Close();
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    {
      RawDb raw(dir_ / "db");
      for (const auto& [key, value] : raw.All("event_seq")) {
        keys::SeqRun run;
        EXPECT_TRUE(keys::ParseSeqRun(key, value, &run)) << "malformed entry";
        runs.emplace_back(run.first, run.last);
      }
    }
    Reopen();
    return runs;
  }
  // Every stored seq of `agent` must be a duplicate and readable by GetEvent.
  void ExpectAllStoredDeduplicated(const std::string& agent, const std::vector<uint64_t>& stored) {
    for (uint64_t s : stored) {
      auto e = store_->GetEvent(agent, s);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_TRUE(e->has_value()) << agent << " seq " << s;
      EXPECT_EQ((*e)->seq(), s);
      EXPECT_EQ((*e)->log().line(), agent + " line " + std::to_string(s));
    }
    std::vector<uint64_t> shuffled = stored;
    std::mt19937_64 rng(7);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    std::vector<EventRecord> resend = Batch(agent, shuffled);
    WriteResult r = MustWrite(agent, resend);
    EXPECT_EQ(r.stored, 0u);
    EXPECT_EQ(r.duplicates, stored.size());
  }
};

TEST_F(SeqRunsTest, OneKeyPerRunOfConsecutiveSeqsWithOneTime) {
  MustWrite("a1", Batch("a1", Range(1, 500), kT0));
  EXPECT_EQ(RunsOnDisk(), (std::vector<std::pair<uint64_t, uint64_t>>{{1, 500}}));
  // Gaps (an agent that skipped seqs) and seqs out of order split into runs.
  std::vector<uint64_t> seqs = {512, 503, 501, 502, 510, 511};
  MustWrite("a1", Batch("a1", seqs, kT0 + kSecond));
  EXPECT_EQ(RunsOnDisk(),
            (std::vector<std::pair<uint64_t, uint64_t>>{{1, 500}, {501, 503}, {510, 512}}));
  // Two times in one write (set by the caller): a run never spans two times.
  std::vector<EventRecord> two_times = Batch("a1", Range(600, 603), kT0 + 2 * kSecond);
  two_times[2].event.set_server_time_ns(kT0 + 3 * kSecond);
  two_times[3].event.set_server_time_ns(kT0 + 3 * kSecond);
  MustWrite("a1", two_times);
  EXPECT_EQ(RunsOnDisk(), (std::vector<std::pair<uint64_t, uint64_t>>{
                              {1, 500}, {501, 503}, {510, 512}, {600, 601}, {602, 603}}));
  for (uint64_t s : {1u, 250u, 500u, 502u, 511u, 601u, 602u}) {
    auto e = store_->GetEvent("a1", s);
    ASSERT_TRUE(e.ok() && e->has_value()) << s;
    EXPECT_EQ((*e)->seq(), s);
  }
  EXPECT_EQ((*store_->GetEvent("a1", 603))->server_time_ns(), kT0 + 3 * kSecond);
  for (uint64_t s : {0u, 505u, 509u, 513u, 599u, 604u}) {
    auto e = store_->GetEvent("a1", s);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_FALSE(e->has_value()) << s;
  }
  EXPECT_EQ(*store_->LastSeq("a1"), 603u);
}

// Seqs at or below the high-water mark are looked up: gaps filled later are new,
// the rest duplicates, in any order, also after a restart (the mark is read again).
TEST_F(SeqRunsTest, ResendsGapsAndOutOfOrderSeqsAreExactAcrossRestarts) {
  MustWrite("a1", Batch("a1", Range(10, 20)));
  MustWrite("a2", Batch("a2", Range(1, 30)));  // another agent's same seqs
  // Below the mark and never stored: new.
  EXPECT_EQ(MustWrite("a1", Batch("a1", Range(1, 5))).stored, 5u);
  // Overlapping resend, shuffled, with a repeat inside the batch and new seqs on both
  // sides of the mark.
  std::vector<uint64_t> seqs = {12, 3, 7, 25, 11, 6, 8, 9, 4, 10, 5, 7, 21};
  std::vector<EventRecord> resend = Batch("a1", seqs);
  auto written = store_->Write("a1", resend);  // sets each record's `duplicate`
  ASSERT_TRUE(written.ok()) << written.status();
  const WriteResult& r = *written;
  EXPECT_EQ(r.stored, 6u);  // 6, 7, 8, 9, 21, 25
  EXPECT_EQ(r.duplicates, 7u);
  EXPECT_EQ(r.max_seq, 25u);
  std::vector<bool> dup;
  for (const EventRecord& rec : resend) dup.push_back(rec.duplicate);
  EXPECT_EQ(dup, (std::vector<bool>{true, true, false, false, true, false, false, false, true, true,
                                    true, true, false}));
  std::vector<uint64_t> stored = Range(1, 21);
  stored.push_back(25);
  ExpectAllStoredDeduplicated("a1", stored);
  EXPECT_EQ(*store_->LastSeq("a1"), 25u);

  Reopen();
  ExpectAllStoredDeduplicated("a1", stored);
  ExpectAllStoredDeduplicated("a2", Range(1, 30));
  // The gap 22..24 is still free, and the mark was recovered: 26 is new.
  EXPECT_EQ(MustWrite("a1", Batch("a1", {24, 26, 22, 23})).stored, 4u);
  EXPECT_EQ(*store_->LastSeq("a1"), 26u);
  EXPECT_EQ(SearchIds({.agent_id = "a1"}).size(), 26u);
  EXPECT_EQ(SearchIds({.agent_id = "a2"}).size(), 30u);
}

// Many writers of a few agents with overlapping, shuffled seqs: each seq once.
TEST_F(SeqRunsTest, ConcurrentOverlappingResendsStoreEachSeqOnce) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([this, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      const std::string agent = "a" + std::to_string(t % 2);
      for (int b = 0; b < 30; ++b) {
        std::vector<uint64_t> seqs;
        const uint64_t from = rng() % 300 + 1;
        for (uint64_t s = from; s < from + 20; ++s) {
          if (rng() % 4 != 0) seqs.push_back(s);
        }
        std::shuffle(seqs.begin(), seqs.end(), rng);
        std::vector<EventRecord> records = Batch(agent, seqs);
        auto r = store_->Write(agent, records);
        ASSERT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string agent : {"a0", "a1"}) {
    Ids ids = SearchIds({.agent_id = agent});
    std::vector<uint64_t> seqs;
    for (const auto& [a, s] : ids) seqs.push_back(s);
    std::sort(seqs.begin(), seqs.end());
    EXPECT_TRUE(std::adjacent_find(seqs.begin(), seqs.end()) == seqs.end()) << agent;
    ExpectAllStoredDeduplicated(agent, seqs);
  }
}

// Retention drops dedup runs below the agent's oldest kept events, never the run of
// a kept event, and keeps the newest run whole (LastSeq, dedup of its events).
TEST_F(SeqRunsTest, RetentionKeepsTheRunsOfKeptEventsAndTheNewestRun) {
  const int64_t now = absl::ToUnixNanos(absl::Now());
  MustWrite("a1", Batch("a1", Range(1, 10), now - 800 * kDay));  // expires
  MustWrite("a1", Batch("a1", Range(11, 20), now - kDay));       // kept
  MustWrite("a2", Batch("a2", Range(5, 9), now - 900 * kDay));   // all of a2 expires
  auto result = store_->ApplyRetention(RetentionOptions{}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(RunsOnDisk(), (std::vector<std::pair<uint64_t, uint64_t>>{{11, 20}, {5, 9}}));
  ExpectAllStoredDeduplicated("a1", Range(11, 20));
  EXPECT_EQ(*store_->LastSeq("a1"), 20u);
  EXPECT_EQ(*store_->LastSeq("a2"), 9u);
  // a2's newest run is kept whole: its seqs stay known as stored.
  EXPECT_EQ(MustWrite("a2", Batch("a2", Range(5, 9))).duplicates, 5u);
  EXPECT_EQ(MustWrite("a2", Batch("a2", {10})).stored, 1u);
}

// A store written with schema 3's event_seq (one key per seq, the time as value) opens,
// is upgraded to 4 without a rewrite, deduplicates every seq it holds (also after new
// runs were added beside the old keys) and answers every read the same.
TEST_F(SeqRunsTest, Schema3StoreOpensUpgradedAndDeduplicatesEverySeq) {
  MustWrite("a1", Batch("a1", Range(1, 40), kT0));
  MustWrite("a1", Batch("a1", {45, 41, 47}, kT0 + kSecond));
  MustWrite("a2", Batch("a2", Range(100, 110), kT0 + 2 * kSecond));
  const Ids before = SearchIds({});
  const uint64_t a1_last = *store_->LastSeq("a1");
  Close();
  {
    // schema 3's layout: one key per seq, 8-byte time.
    RawDb raw(dir_ / "db");
    for (const auto& [key, value] : raw.All("event_seq")) {
      keys::SeqRun run;
      ASSERT_TRUE(keys::ParseSeqRun(key, value, &run));
      raw.Delete("event_seq", key);
      for (uint64_t s = run.first; s <= run.last; ++s) {
        std::string t;
        keycodec::AppendInt64(&t, run.time_ns);
        raw.Put("event_seq", keys::EventSeqKey(run.agent_num, s), t);
      }
    }
    EXPECT_EQ(raw.Keys("event_seq").size(), 54u);
    for (const auto& [key, value] : raw.All("event_seq")) ASSERT_EQ(value.size(), 8u);
    std::string v3;
    keycodec::AppendUint32(&v3, 3);
    raw.Put("meta", std::string(keys::kSchemaVersionKey), v3);
  }
  Reopen();
  {
    Close();
    RawDb raw(dir_ / "db");
    std::string v;
    ASSERT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf("meta"), "schema_version", &v).ok());
    EXPECT_EQ(keycodec::DecodeUint32(v.data()), Store::kSchemaVersion);
    EXPECT_GE(Store::kSchemaVersion, 4u);
  }
  Reopen();
  EXPECT_EQ(SearchIds({}), before);
  EXPECT_EQ(*store_->LastSeq("a1"), a1_last);
  std::vector<uint64_t> a1 = Range(1, 41);
  a1.insert(a1.end(), {45, 47});
  ExpectAllStoredDeduplicated("a1", a1);
  ExpectAllStoredDeduplicated("a2", Range(100, 110));
  // New writes put runs beside the old keys; both kinds deduplicate.
  EXPECT_EQ(MustWrite("a1", Batch("a1", {42, 43, 44, 46, 48, 49})).stored, 6u);
  ExpectAllStoredDeduplicated("a1", Range(1, 49));
  Reopen();
  ExpectAllStoredDeduplicated("a1", Range(1, 49));
}

TEST_F(SeqRunsTest, MalformedRunIsDataLoss) {
  MustWrite("a1", Batch("a1", Range(1, 5)));
  Close();
  {
    RawDb raw(dir_ / "db");
    const std::string key = raw.Keys("event_seq").front();
    raw.Put("event_seq", key, "short");
  }
  Reopen();
  auto e = store_->GetEvent("a1", 3);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kDataLoss) << e.status();
  std::vector<EventRecord> again = Batch("a1", {2});
  auto w = store_->Write("a1", again);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss) << w.status();
}

}  // namespace
}  // namespace siper::storage::testutil

// The per-hour field counts (field_counts): `events count --by` over whole
// hours reads them instead of the index, and answers exactly what a count of
// the events gives, on random data across hour boundaries, with duplicates,
// retention, long values, stores written before the counts, and concurrent
// writers.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/storage/chain.h"
#include "server/storage/keys.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kHour = keys::kNsPerHour;
// The first whole hour after kT0 (which is not on an hour boundary).
constexpr int64_t kH0 = (kT0 / kHour + 1) * kHour;
const std::string kLongA = std::string(kMaxIndexedValueSize, 'p') + "a";
const std::string kLongB = std::string(kMaxIndexedValueSize, 'p') + "b";

class FieldCountsTest : public StoreTest {
 protected:
  // Random events of three agents over `hours` hours from kH0, in batches of
  // random size; each field present or not at random, source.ip from a few
  // values, file.path sometimes longer than kMaxIndexedValueSize (two long
  // values with the same first bytes). Returns the stored events.
  std::vector<Event> WriteRandom(std::mt19937_64& rng, int hours, int events) {
    std::vector<Event> written;
    std::vector<int64_t> times;
    for (int i = 0; i < events; ++i) {
      times.push_back(kH0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hours * kHour)));
    }
    // Some events exactly on and just before hour boundaries.
    for (int h = 1; h < hours; ++h) {
      times.push_back(kH0 + h * kHour);
      times.push_back(kH0 + h * kHour - 1);
    }
    std::sort(times.begin(), times.end());
    std::map<std::string, uint64_t> seq;
    size_t i = 0;
    while (i < times.size()) {
      const std::string agent = "a" + std::to_string(rng() % 3);
      std::vector<EventRecord> batch;
      const size_t n = 1 + rng() % 40;
      for (size_t j = 0; j < n && i < times.size(); ++j, ++i) {
        const uint64_t s = ++seq[agent];
        EventRecord r = LogRecord(agent, s, "line " + std::to_string(i), times[i]);
        auto& f = *r.event.mutable_fields();
        if (rng() % 5 != 0) f["source.ip"] = "10.0.0." + std::to_string(rng() % 6);
        if (rng() % 2 != 0) f["user.name"] = rng() % 3 == 0 ? "root" : "bob";
        switch (rng() % 4) {
          case 0:
            f["file.path"] = kLongA;
            break;
          case 1:
            f["file.path"] = kLongB;
            break;
          case 2:
            f["file.path"] = "/etc/passwd";
            break;
          default:
            break;
        }
        f["http.request.method"] = "GET";  // not indexed
        written.push_back(r.event);
        batch.push_back(std::move(r));
      }
      MustWrite(agent, std::move(batch));
    }
    return written;
  }

  void ExpectCount(const std::vector<Event>& all, const std::string& field, int64_t since,
                   int64_t until, const std::string& agent) {
    SCOPED_TRACE(::testing::Message() << field << " [" << since - kH0 << ", " << until - kH0
                                      << ") from kH0, agent '" << agent << "'");
    ExpectCountLikeAScan(*store_, all, field, since, until, agent);
  }

  // Every field over many ranges: whole hours, ends inside hours, exactly on
  // boundaries, unbounded, inside one hour, one agent.
  void ExpectCountsLikeAScan(std::mt19937_64& rng, const std::vector<Event>& all, int hours) {
    std::vector<std::pair<int64_t, int64_t>> ranges = {
        {0, 0},
        {kH0, 0},
        {kH0 + kHour, kH0 + 3 * kHour},
        {kH0 + kHour - 1, kH0 + 3 * kHour + 1},
        {0, kH0 + 2 * kHour},
        {kH0 + kHour / 2, kH0 + kHour / 2 + kHour / 4},  // inside one hour
        {kH0 + hours * kHour, 0},                        // after all
    };
    for (int i = 0; i < 20; ++i) {
      int64_t a =
          kH0 - kHour + static_cast<int64_t>(rng() % static_cast<uint64_t>((hours + 2) * kHour));
      int64_t b =
          kH0 - kHour + static_cast<int64_t>(rng() % static_cast<uint64_t>((hours + 2) * kHour));
      if (rng() % 3 == 0) a = a / kHour * kHour;  // on a boundary
      if (rng() % 3 == 0) b = b / kHour * kHour;
      ranges.emplace_back(std::min(a, b), std::max(a, b) + 1);
    }
    for (const auto& [since, until] : ranges) {
      for (const char* field : {"source.ip", "user.name", "file.path", "host.name"}) {
        ExpectCount(all, field, since, until, "");
      }
      ExpectCount(all, "source.ip", since, until, "a1");
    }
  }

  // field_counts as stored: key -> count.
  std::map<std::string, uint64_t> RawCounts() {
    Close();
    std::map<std::string, uint64_t> out;
    {
      RawDb raw(dir_ / "db");
      for (const auto& [k, v] : raw.All("field_counts")) {
        EXPECT_EQ(v.size(), 8u);
        out[k] = keycodec::DecodeUint64(v.data());
      }
    }
    Reopen();
    return out;
  }

  // What field_counts must hold for `all`: per hour, all events and each indexed value.
  static std::map<std::string, uint64_t> ExpectedRawCounts(const std::vector<Event>& all) {
    std::map<std::string, uint64_t> out;
    for (const Event& e : all) {
      const uint32_t hour = keys::HourOf(e.server_time_ns());
      ++out[keys::HourEventsCountKey(hour)];
      for (const auto& [name, value] : e.fields()) {
        if (std::find(kIndexedFields.begin(), kIndexedFields.end(), name) == kIndexedFields.end()) {
          continue;
        }
        std::string keyed = value;
        if (value.size() > kMaxIndexedValueSize) {
          // As the field index keys it: the first bytes and the SHA-256.
          Sha256 h;
          h.Bytes(value);
          keyed = value.substr(0, kMaxIndexedValueSize) + h.Finish().value();
        }
        ++out[keys::FieldCountKey(hour, name, keyed)];
      }
    }
    return out;
  }

  void ExpectRawCounts(const std::vector<Event>& all) {
    EXPECT_EQ(RawCounts(), ExpectedRawCounts(all));
  }
};

TEST_F(FieldCountsTest, CountsEqualTheEventsOnRandomDataAcrossHours) {
  std::mt19937_64 rng(20261128);
  constexpr int kHours = 7;
  const std::vector<Event> all = WriteRandom(rng, kHours, 3000);
  ExpectCountsLikeAScan(rng, all, kHours);
  Reopen();
  ExpectCountsLikeAScan(rng, all, kHours);
}

TEST_F(FieldCountsTest, HoldsOneCountPerHourFieldAndValue) {
  std::mt19937_64 rng(7);
  const std::vector<Event> all = WriteRandom(rng, 3, 500);
  // file.path has two long values with the same first bytes: two keys (by digest)
  // in every hour that has both.
  ExpectRawCounts(all);
}

// The counts are what a whole hour is answered from: a count changed on disk
// shows in a range that holds the hour whole, not in one that cuts it.
TEST_F(FieldCountsTest, WholeHoursAreReadFromTheCounts) {
  std::vector<EventRecord> r;
  for (uint64_t s = 1; s <= 4; ++s) {
    r.push_back(LogRecord("a1", s, "x", kH0 + static_cast<int64_t>(s) * kSecond));
    (*r.back().event.mutable_fields())["source.ip"] = "10.0.0.1";
  }
  MustWrite("a1", r);
  Close();
  {
    RawDb raw(dir_ / "db");
    std::string v;
    keycodec::AppendUint64(&v, 40);
    raw.Put("field_counts", keys::FieldCountKey(keys::HourOf(kH0), "source.ip", "10.0.0.1"), v);
  }
  Reopen();
  auto whole = store_->CountIndexedField("source.ip", kH0, kH0 + kHour, "");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ((*whole)->values.at("10.0.0.1"), 40u);
  EXPECT_EQ((*whole)->events, 4u);
  auto cut = store_->CountIndexedField("source.ip", kH0, kH0 + kHour - 1, "");
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ((*cut)->values.at("10.0.0.1"), 4u);
  // One agent: the counts are of all agents, so the index answers.
  auto agent = store_->CountIndexedField("source.ip", kH0, kH0 + kHour, "a1");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ((*agent)->values.at("10.0.0.1"), 4u);
}

TEST_F(FieldCountsTest, ACorruptCountIsDataLoss) {
  std::vector<EventRecord> r = {LogRecord("a1", 1, "x", kH0 + kSecond)};
  (*r[0].event.mutable_fields())["source.ip"] = "10.0.0.1";
  MustWrite("a1", r);
  Close();
  {
    RawDb raw(dir_ / "db");
    raw.Put("field_counts", keys::FieldCountKey(keys::HourOf(kH0), "source.ip", "10.0.0.2"), "abc");
  }
  Reopen();
  auto got = store_->CountIndexedField("source.ip", kH0, 0, "");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_NE(got.status().message().find("field_counts"), std::string::npos) << got.status();
}

// Exactly once: a resent event (a later batch, or twice in one batch) is not
// counted again.
TEST_F(FieldCountsTest, DuplicatesAreNotCountedTwice) {
  auto record = [](uint64_t seq, const std::string& ip) {
    EventRecord r = LogRecord("a1", seq, "x", kH0 + static_cast<int64_t>(seq) * 60 * kSecond);
    (*r.event.mutable_fields())["source.ip"] = ip;
    return r;
  };
  std::vector<Event> all;
  std::vector<EventRecord> first = {record(1, "10.0.0.1"), record(2, "10.0.0.1"),
                                    record(3, "10.0.0.2")};
  for (const EventRecord& r : first) all.push_back(r.event);
  EXPECT_EQ(MustWrite("a1", first).stored, 3u);
  // The same batch again, then an overlapping one with a repeat inside it.
  EXPECT_EQ(MustWrite("a1", first).duplicates, 3u);
  std::vector<EventRecord> overlap = {record(3, "10.0.0.2"), record(4, "10.0.0.2"),
                                      record(4, "10.0.0.2"), record(5, "10.0.0.3")};
  WriteResult w = MustWrite("a1", overlap);
  EXPECT_EQ(w.stored, 2u);
  EXPECT_EQ(w.duplicates, 2u);
  all.push_back(overlap[1].event);
  all.push_back(overlap[3].event);
  for (int64_t until : {int64_t{0}, kH0 + kHour}) {
    auto got = store_->CountIndexedField("source.ip", kH0, until, "");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ((*got)->events, 5u);
    EXPECT_EQ((*got)->values, (std::unordered_map<std::string, uint64_t>{
                                  {"10.0.0.1", 2}, {"10.0.0.2", 2}, {"10.0.0.3", 1}}));
  }
  ExpectRawCounts(all);
}

// Many small writes to one hour: more merge operands per key than the memtable
// keeps before folding them into a value, before and after a reopen.
TEST_F(FieldCountsTest, ManySmallWritesToOneHourAddUp) {
  StoreOptions fast;
  fast.sync_writes = false;
  store_.reset();
  auto opened = Store::Open(dir_ / "db", fast);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(opened).value();
  std::vector<Event> all;
  for (uint64_t s = 1; s <= 300; ++s) {
    std::vector<EventRecord> one = {
        LogRecord("a1", s, "x", kH0 + static_cast<int64_t>(s) * kSecond)};
    (*one[0].event.mutable_fields())["source.ip"] = s % 10 == 0 ? "10.0.0.2" : "10.0.0.1";
    all.push_back(one[0].event);
    MustWrite("a1", std::move(one));
  }
  ExpectCount(all, "source.ip", kH0, 0, "");
  ExpectRawCounts(all);  // reopens
  ExpectCount(all, "source.ip", kH0, kH0 + kHour, "");
}

// Retention drops whole hours of counts; the cutoff's own hour is cut by the
// range, so it is counted from the index and its stale count never read.
TEST_F(FieldCountsTest, RetentionDropsWholeHoursAndCountsStayExact) {
  std::mt19937_64 rng(42);
  constexpr int kHours = 6;
  const std::vector<Event> all = WriteRandom(rng, kHours, 1500);
  const int64_t now = kH0 + 5 * kHour + kHour / 3;
  auto result = store_->ApplyRetention({.events_ns = 3 * kHour, .alerts_ns = 0}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  const int64_t cutoff = result->events_cutoff_ns;
  ASSERT_EQ(cutoff, kH0 + 2 * kHour + kHour / 3);
  std::vector<Event> kept;
  for (const Event& e : all) {
    if (e.server_time_ns() >= cutoff) kept.push_back(e);
  }
  ASSERT_LT(kept.size(), all.size());
  ExpectCountsLikeAScan(rng, kept, kHours);
  for (const auto& [key, count] : RawCounts()) {
    EXPECT_GE(keycodec::DecodeUint32(key.data()), keys::HourOf(cutoff))
        << "an hour before the cutoff";
  }
  // A later run on an hour boundary: that hour is kept whole and read from its count.
  result = store_->ApplyRetention({.events_ns = 2 * kHour, .alerts_ns = 0}, kH0 + 5 * kHour);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->events_cutoff_ns, kH0 + 3 * kHour);
  kept.erase(std::remove_if(kept.begin(), kept.end(),
                            [&](const Event& e) { return e.server_time_ns() < kH0 + 3 * kHour; }),
             kept.end());
  ExpectCountsLikeAScan(rng, kept, kHours);
}

// A store an older build wrote (schema 1: no counts) is upgraded; hours that
// began before the counts did are counted from the index, later ones from the counts.
TEST_F(FieldCountsTest, StoreWrittenBeforeTheCountsFallsBackToTheIndex) {
  std::mt19937_64 rng(5);
  std::vector<Event> all = WriteRandom(rng, 3, 600);
  Close();
  {
    RawDb raw(dir_ / "db");
    raw.Delete("meta", std::string(keys::kFieldCountsSinceKey));
    for (const std::string& k : raw.Keys("field_counts")) raw.Delete("field_counts", k);
    std::string v1;
    keycodec::AppendUint32(&v1, 1);
    raw.Put("meta", std::string(keys::kSchemaVersionKey), v1);
  }
  Reopen();
  ExpectCountsLikeAScan(rng, all, 3);
  // New events in later hours: counted from the counts, and the old hours still right.
  std::vector<EventRecord> later;
  for (uint64_t s = 1; s <= 30; ++s) {
    later.push_back(
        LogRecord("a9", s, "later", kH0 + 4 * kHour + static_cast<int64_t>(s) * kSecond));
    (*later.back().event.mutable_fields())["source.ip"] = "10.9.9.9";
    all.push_back(later.back().event);
  }
  MustWrite("a9", later);
  ExpectCountsLikeAScan(rng, all, 5);
  Close();
  {
    RawDb raw(dir_ / "db");
    std::string version;
    ASSERT_TRUE(
        raw.db()->Get(rocksdb::ReadOptions(), raw.cf("meta"), "schema_version", &version).ok());
    EXPECT_EQ(keycodec::DecodeUint32(version.data()), Store::kSchemaVersion) << "upgraded";
    std::string since;
    ASSERT_TRUE(raw.db()
                    ->Get(rocksdb::ReadOptions(), raw.cf("meta"),
                          std::string(keys::kFieldCountsSinceKey), &since)
                    .ok());
    EXPECT_EQ(keycodec::DecodeInt64(since.data()), all[all.size() - 31].server_time_ns() + 1)
        << "the counts begin after the newest event the old build stored";
    // Only the new hour has counts.
    for (const std::string& k : raw.Keys("field_counts")) {
      EXPECT_EQ(keycodec::DecodeUint32(k.data()), keys::HourOf(kH0 + 4 * kHour));
    }
  }
  Reopen();  // the start is kept, not moved to the newest event again
  ExpectCountsLikeAScan(rng, all, 5);
}

// Counts switched off (to measure their cost) and on again: the hours written
// meanwhile are counted from the index, never from counts that missed events.
TEST_F(FieldCountsTest, CountsOffAndOnAgainStayExact) {
  std::vector<Event> all;
  uint64_t seq = 0;
  auto write_hour = [&](int64_t hour_start) {
    std::vector<EventRecord> batch;
    for (int i = 0; i < 50; ++i) {
      batch.push_back(LogRecord("a1", ++seq, "x", hour_start + i * 60 * kSecond));
      (*batch.back().event.mutable_fields())["source.ip"] = "10.0.0." + std::to_string(i % 3);
      all.push_back(batch.back().event);
    }
    MustWrite("a1", std::move(batch));
  };
  auto reopen = [&](bool counts) {
    store_.reset();
    auto s = Store::Open(dir_ / "db", {.sync_writes = true, .field_counts = counts});
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
  };
  write_hour(kH0);  // counted
  ASSERT_NO_FATAL_FAILURE(reopen(false));
  write_hour(kH0 + kHour);  // not counted
  ExpectCount(all, "source.ip", 0, 0, "");
  ASSERT_NO_FATAL_FAILURE(reopen(true));
  write_hour(kH0 + kHour + kHour / 2);  // counted, but its hour began before the counts did
  write_hour(kH0 + 2 * kHour);          // counted
  for (int64_t since : {int64_t{0}, kH0, kH0 + kHour, kH0 + 2 * kHour}) {
    ExpectCount(all, "source.ip", since, 0, "");
    ExpectCount(all, "source.ip", since, kH0 + 3 * kHour, "");
  }
}

// Writers of many agents commit in groups: one merge operand per key and
// group, and every event counted once.
TEST_F(FieldCountsTest, ConcurrentWritersAreCountedExactly) {
  constexpr int kThreads = 6;
  constexpr uint64_t kBatches = 20;
  constexpr uint64_t kPerBatch = 25;
  std::vector<std::vector<Event>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string agent = "w" + std::to_string(t);
      uint64_t seq = 0;
      for (uint64_t b = 0; b < kBatches; ++b) {
        std::vector<EventRecord> batch;
        for (uint64_t i = 0; i < kPerBatch; ++i) {
          ++seq;
          EventRecord r =
              LogRecord(agent, seq, "x", kH0 + static_cast<int64_t>(seq * 7 % 120) * 60 * kSecond);
          (*r.event.mutable_fields())["user.name"] = "u" + std::to_string(seq % 4);
          per_thread[t].push_back(r.event);
          batch.push_back(std::move(r));
        }
        std::vector<EventRecord> again = batch;  // and a resend of the same batch
        auto w = store_->Write(agent, batch);
        ASSERT_TRUE(w.ok()) << w.status();
        ASSERT_TRUE(store_->Write(agent, again).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<Event> all;
  for (const auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  for (int64_t until : {int64_t{0}, kH0 + 2 * kHour, kH0 + kHour}) {
    ExpectCount(all, "user.name", kH0, until, "");
  }
  ExpectRawCounts(all);
}

}  // namespace
}  // namespace siper::storage::testutil

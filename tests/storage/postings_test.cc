// Postings (schema 3): events_by_agent and events_by_field hold one key per
// write's time (and indexed value) naming all its events. Searches, paging and
// counts answer exactly what a scan and filter would, also when two writes of
// one agent share a time and their seqs interleave, and a store written with
// schema 2's layout (one key per event, empty values) opens, is upgraded and
// answers the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "server/storage/keys.h"
#include "tests/storage/raw_db.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kHour = int64_t{3600} * kSecond;

class PostingsTest : public StoreTest {
 protected:
  // Batches of `per_batch` events per agent (a1..a3), each batch one server time,
  // over `hours` hours; source.ip takes 5 values, user.name 2, event.action 1. The
  // seqs of a batch arrive shuffled (and one batch repeats a seq: stored once).
  std::vector<Event> WriteBatches(std::mt19937_64& rng, int batches, int per_batch, int hours) {
    std::vector<Event> all;
    std::map<std::string, uint64_t> next_seq;
    for (int b = 0; b < batches; ++b) {
      const std::string agent = "a" + std::to_string(1 + b % 3);
      const int64_t t = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hours * kHour));
      std::vector<EventRecord> records;
      for (int i = 0; i < per_batch; ++i) {
        const uint64_t s = ++next_seq[agent];
        EventRecord r = LogRecord(agent, s, agent + " line " + std::to_string(s), t);
        auto& f = *r.event.mutable_fields();
        f["source.ip"] = "10.0.0." + std::to_string(rng() % 5);
        f["user.name"] = rng() % 2 ? "root" : "bob";
        f["event.action"] = "login";
        records.push_back(r);
      }
      std::shuffle(records.begin(), records.end(), rng);
      if (b == 1) records.push_back(records.front());  // a repeat in the batch
      auto w = store_->Write(agent, records);          // sets each record's `duplicate`
      EXPECT_TRUE(w.ok()) << w.status();
      EXPECT_EQ(w->stored, static_cast<uint32_t>(per_batch));
      for (const EventRecord& r : records) {
        if (!r.duplicate) all.push_back(r.event);
      }
    }
    // Event-key order: time, agent number (a1 < a2 < a3, numbered in order), seq.
    std::sort(all.begin(), all.end(), [](const Event& x, const Event& y) {
      return std::tuple(x.server_time_ns(), x.agent_id(), x.seq()) <
             std::tuple(y.server_time_ns(), y.agent_id(), y.seq());
    });
    return all;
  }

  // Searches (agent index, field index, both, cut time ranges) in both orders and
  // paged (PageThrough reads at most 100 pages), and counts, against a scan of `all`.
  void ExpectLikeAScan(const std::vector<Event>& all, int hours) {
    const int64_t mid = kT0 + hours * kHour / 3 + 12345;
    const int64_t late = kT0 + 2 * hours * kHour / 3 + 777;
    std::vector<EventQuery> queries = {
        {.agent_id = "a2"},
        {.since_ns = mid, .until_ns = late, .agent_id = "a1"},
        {.fields = {{"source.ip", "10.0.0.3"}}},
        {.since_ns = mid, .until_ns = late, .fields = {{"user.name", "root"}}},
        {.agent_id = "a3", .fields = {{"source.ip", "10.0.0.1"}}},
        {.fields = {{"event.action", "login"}, {"source.ip", "10.0.0.0"}}},
    };
    for (EventQuery q : queries) {
      for (bool newest : {false, true}) {
        q.newest_first = newest;
        SCOPED_TRACE(::testing::Message() << "agent=" << q.agent_id << " fields="
                                          << (q.fields.empty() ? "" : q.fields.begin()->second)
                                          << " since=" << q.since_ns << " newest=" << newest);
        const Ids expected = ExpectedIds(all, q);
        ASSERT_FALSE(expected.empty());
        const Ids got = SearchIds(q);
        EXPECT_EQ(got.size(), expected.size());
        for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
          if (got[i] != expected[i]) {
            ADD_FAILURE() << "first difference at " << i << ": " << got[i].first << "/"
                          << got[i].second << " instead of " << expected[i].first << "/"
                          << expected[i].second;
            break;
          }
        }
        for (uint64_t page : {5u, 7u}) EXPECT_EQ(PageThrough(*store_, q, page), expected);
      }
    }
    struct Case {
      std::string field;
      int64_t since, until;
      std::string agent;
    };
    for (const Case& c : std::vector<Case>{{"source.ip", 0, 0, ""},
                                           {"user.name", mid, late, ""},
                                           {"source.ip", mid, 0, "a2"},
                                           {"event.action", 0, late, ""}}) {
      SCOPED_TRACE(c.field + " since " + std::to_string(c.since) + " agent " + c.agent);
      ExpectCountLikeAScan(*store_, all, c.field, c.since, c.until, c.agent);
    }
  }

  // Rewrites the two indexes as schema 2 wrote them, one key per event with an empty
  // value, and sets the schema version to 2: a store main's build wrote.
  void RewriteAsSchema2() {
    Close();
    RawDb raw(dir_ / "db");
    for (const std::string family : {"events_by_agent", "events_by_field"}) {
      for (const auto& [key, value] : raw.All(family)) {
        if (value.empty()) continue;
        const size_t seq_at = key.size() - 8;
        std::vector<uint64_t> seqs;
        ASSERT_TRUE(keys::DecodePosting(keycodec::DecodeUint64(key.data() + seq_at), value, &seqs));
        raw.Delete(family, key);
        for (uint64_t s : seqs) {
          std::string old_key = key.substr(0, seq_at);
          keycodec::AppendUint64(&old_key, s);
          raw.Put(family, old_key, "");
        }
      }
      for (const auto& [key, value] : raw.All(family)) ASSERT_TRUE(value.empty());
    }
    std::string v2;
    keycodec::AppendUint32(&v2, 2);
    raw.Put("meta", std::string(keys::kSchemaVersionKey), v2);
  }

  uint32_t SchemaVersionOnDisk() {
    RawDb raw(dir_ / "db");
    std::string v;
    EXPECT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf("meta"), "schema_version", &v).ok());
    return v.size() == 4 ? keycodec::DecodeUint32(v.data()) : 0;
  }
};

TEST_F(PostingsTest, PostingEncodingRoundTripsAndRejectsMalformedValues) {
  const std::vector<uint64_t> seqs = {
      5, 6, 8, 200, 70'000, uint64_t{1} << 40, std::numeric_limits<uint64_t>::max()};
  std::string v;
  for (size_t i = 1; i < seqs.size(); ++i) keys::AppendPosting(&v, seqs[i - 1], seqs[i]);
  std::vector<uint64_t> got;
  ASSERT_TRUE(keys::DecodePosting(seqs[0], v, &got));
  EXPECT_EQ(got, seqs);
  EXPECT_EQ(keys::PostingSize(v), seqs.size());
  EXPECT_EQ(keys::PostingSize(""), 1u);
  got.clear();
  EXPECT_FALSE(keys::DecodePosting(1, std::string("\x85", 1), &got)) << "truncated";
  EXPECT_FALSE(keys::PostingSize(std::string("\x85", 1)).has_value());
  got.clear();
  EXPECT_FALSE(keys::DecodePosting(1, std::string("\x00", 1), &got)) << "a repeated seq";
  got.clear();
  std::string over;
  keys::AppendPosting(&over, 0, std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(keys::DecodePosting(2, over, &got)) << "past the largest seq";
}

TEST_F(PostingsTest, OneKeyPerWriteTimeAndValueAndAnswersLikeAScan) {
  std::mt19937_64 rng(11);
  const int hours = 6;
  const std::vector<Event> all = WriteBatches(rng, 24, 40, hours);
  ExpectLikeAScan(all, hours);
  Reopen();
  ExpectLikeAScan(all, hours);
  Close();
  RawDb raw(dir_ / "db");
  EXPECT_EQ(raw.Keys("events_by_agent").size(), 24u) << "one key per batch";
  // Per batch: 5 (or fewer) addresses, 2 (or fewer) users, one action.
  const size_t field_keys = raw.Keys("events_by_field").size();
  EXPECT_LE(field_keys, 24u * 8);
  EXPECT_GE(field_keys, 24u * 3);
  EXPECT_EQ(raw.Keys("events").size(), all.size());
}

// Two writes of one agent with the same server time (a time the caller set, or a
// clock that stepped back) whose seqs interleave: the index holds two keys of one
// group and reads them merged, in seq order, in both directions and across pages.
TEST_F(PostingsTest, InterleavedWritesOfOneTimeReadInSeqOrder) {
  std::vector<Event> all;
  auto write = [&](std::vector<uint64_t> seqs, int64_t t) {
    std::vector<EventRecord> records;
    for (uint64_t s : seqs) {
      records.push_back(LogRecord("a1", s, "line " + std::to_string(s), t));
      (*records.back().event.mutable_fields())["source.ip"] = "10.1.1.1";
      all.push_back(records.back().event);
    }
    MustWrite("a1", records);
  };
  write({1, 5, 9}, kT0);
  write({3, 4, 7}, kT0);
  write({2, 6}, kT0 + kSecond);
  write({8}, kT0);
  std::stable_sort(all.begin(), all.end(), [](const Event& x, const Event& y) {
    return std::pair(x.server_time_ns(), x.seq()) < std::pair(y.server_time_ns(), y.seq());
  });
  const Ids in_order = {{"a1", 1}, {"a1", 3}, {"a1", 4}, {"a1", 5}, {"a1", 7},
                        {"a1", 8}, {"a1", 9}, {"a1", 2}, {"a1", 6}};
  for (EventQuery q :
       std::vector<EventQuery>{{.agent_id = "a1"},
                               {.fields = {{"source.ip", "10.1.1.1"}}},
                               {.agent_id = "a1", .fields = {{"source.ip", "10.1.1.1"}}}}) {
    for (bool newest : {false, true}) {
      q.newest_first = newest;
      Ids want = in_order;
      if (newest) std::reverse(want.begin(), want.end());
      EXPECT_EQ(SearchIds(q), want);
      for (uint64_t page : {1u, 2u, 4u}) EXPECT_EQ(PageThrough(*store_, q, page), want);
    }
  }
  auto count = store_->CountIndexedField("source.ip", kT0, kT0 + 2 * kSecond, "a1");
  ASSERT_TRUE(count.ok()) << count.status();
  ASSERT_TRUE(count->has_value());
  EXPECT_EQ((*count)->events, 9u);
  EXPECT_EQ((*count)->values.at("10.1.1.1"), 9u);
}

// A store written by schema 2 (one index key per event, empty values) opens, is
// upgraded to 3 without rewriting, answers every query as before, and mixes with
// the postings new writes add; retention drops both.
TEST_F(PostingsTest, Schema2StoreOpensUpgradedAndAnswersTheSame) {
  std::mt19937_64 rng(12);
  const int hours = 6;
  std::vector<Event> all = WriteBatches(rng, 18, 30, hours);
  RewriteAsSchema2();
  EXPECT_EQ(SchemaVersionOnDisk(), 2u);
  Reopen();
  ExpectLikeAScan(all, hours);
  // New postings beside the old keys.
  std::vector<EventRecord> later;
  for (uint64_t s = 1000; s < 1040; ++s) {
    later.push_back(LogRecord("a2", s, "later " + std::to_string(s), kT0 + 2 * kHour + 5));
    auto& f = *later.back().event.mutable_fields();
    f["source.ip"] = "10.0.0.3";
    f["user.name"] = "root";
    f["event.action"] = "login";
    all.push_back(later.back().event);
  }
  MustWrite("a2", later);
  std::sort(all.begin(), all.end(), [](const Event& x, const Event& y) {
    return std::tuple(x.server_time_ns(), x.agent_id(), x.seq()) <
           std::tuple(y.server_time_ns(), y.agent_id(), y.seq());
  });
  ExpectLikeAScan(all, hours);
  Close();
  EXPECT_EQ(SchemaVersionOnDisk(), Store::kSchemaVersion);
  Reopen();
  auto result = store_->ApplyRetention({.events_ns = 3 * kHour, .alerts_ns = 0}, kT0 + 5 * kHour);
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<Event> kept;
  for (const Event& e : all) {
    if (e.server_time_ns() >= result->events_cutoff_ns) kept.push_back(e);
  }
  ASSERT_LT(kept.size(), all.size());
  const Ids want = ExpectedIds(kept, {.agent_id = "a2"});
  EXPECT_EQ(SearchIds({.agent_id = "a2"}), want);
  EXPECT_EQ(SearchIds({.fields = {{"source.ip", "10.0.0.3"}}}),
            ExpectedIds(kept, {.fields = {{"source.ip", "10.0.0.3"}}}));
}

TEST_F(PostingsTest, MalformedPostingIsDataLossNotACrash) {
  std::vector<EventRecord> records;
  for (uint64_t s = 1; s <= 3; ++s) {
    records.push_back(LogRecord("a1", s, "x", kT0));
    (*records.back().event.mutable_fields())["source.ip"] = "10.2.2.2";
  }
  MustWrite("a1", records);
  Close();
  {
    RawDb raw(dir_ / "db");
    for (const std::string family : {"events_by_agent", "events_by_field"}) {
      const std::vector<std::string> keys = raw.Keys(family);
      ASSERT_EQ(keys.size(), 1u);
      raw.Put(family, keys[0], std::string("\x81", 1));  // a varint cut short
    }
  }
  Reopen();
  for (const EventQuery& q :
       std::vector<EventQuery>{{.agent_id = "a1"}, {.fields = {{"source.ip", "10.2.2.2"}}}}) {
    absl::Status s = store_->SearchEvents(q, [](const Event&) { return true; });
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find("malformed"), std::string_view::npos) << s;
  }
  auto count = store_->CountIndexedField("source.ip", kT0, kT0 + kSecond, "a1");
  EXPECT_EQ(count.status().code(), absl::StatusCode::kDataLoss) << count.status();
}

}  // namespace
}  // namespace siper::storage::testutil

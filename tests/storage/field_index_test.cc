// The field index (events_by_field): a search by an indexed field answers
// exactly what a scan and filter would, over many days, in both orders, with
// paging, and stays right for stores written before it existed and across
// retention.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server/storage/keys.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kDay = int64_t{86400} * kSecond;

class FieldIndexTest : public StoreTest {
 protected:
  // Five days of events from two agents, every 5 hours; source.ip cycles
  // through three addresses, one line in four from a "noisy" path that no
  // index holds. Returns every written event in time order.
  std::vector<Event> WriteDays() {
    std::vector<Event> written;
    uint64_t seq[2] = {0, 0};
    int n = 0;
    for (int64_t t = kT0; t < kT0 + 5 * kDay; t += 5 * 3600 * kSecond) {
      const int a = n++ % 2;
      const std::string agent = a == 0 ? "a1" : "a2";
      const uint64_t s = ++seq[a];
      EventRecord r = LogRecord(agent, s, agent + " line " + std::to_string(s), t);
      auto& fields = *r.event.mutable_fields();
      fields["source.ip"] = "10.0.0." + std::to_string(s % 3);
      fields["user.name"] = s % 2 ? "root" : "bob";
      fields["http.request.method"] = "GET";  // not indexed
      // Long values share their first kMaxIndexedValueSize bytes.
      if (s % 4 == 0) fields["file.path"] = std::string(kMaxIndexedValueSize, 'p') + "p";
      if (s % 4 == 1) fields["file.path"] = std::string(kMaxIndexedValueSize, 'p') + "x";
      written.push_back(r.event);
      MustWrite(agent, {r});
    }
    return written;
  }

  std::vector<EventQuery> Queries() {
    return {
        {.fields = {{"source.ip", "10.0.0.1"}}},
        {.fields = {{"source.ip", "10.0.0.1"}}, .cursor = ""},
        {.since_ns = kT0 + kDay + kDay / 2,
         .until_ns = kT0 + 3 * kDay + 7,
         .fields = {{"source.ip", "10.0.0.2"}}},
        {.agent_id = "a2", .fields = {{"user.name", "root"}}},
        {.text = "line 1", .fields = {{"source.ip", "10.0.0.1"}}},
        {.fields = {{"source.ip", "10.0.0.0"}, {"user.name", "bob"}}},
        {.fields = {{"http.request.method", "GET"}}},                               // scan
        {.fields = {{"file.path", std::string(kMaxIndexedValueSize + 1, 'p')}}},    // long
        {.fields = {{"file.path", std::string(kMaxIndexedValueSize, 'p') + "x"}}},  // same start
        {.fields = {{"source.ip", "192.0.2.1"}}},                                   // no such value
        {.since_ns = kT0 + 10 * kDay, .fields = {{"source.ip", "10.0.0.1"}}},       // after all
        // Texts and values the stored bytes hold elsewhere (ValueMayMatch passes, the check
        // after parsing must refuse), and ones they hold where asked, on every path.
        {.text = "10.0.0.1",
         .fields = {{"http.request.method", "GET"}}},  // in a field, not the line
        {.agent_id = "a1", .text = "root", .fields = {{"http.request.method", "GET"}}},
        {.fields = {{"user.name", "10.0.0.1"}}},        // indexed: another field's value
        {.fields = {{"http.request.method", "root"}}},  // scan: another field's value
        {.text = "line 1", .fields = {{"http.request.method", "GET"}}},                  // scan
        {.agent_id = "a2", .text = "line", .fields = {{"http.request.method", "GET"}}},  // agent
        {.text = "a1 line", .fields = {{"user.name", "bob"}}},  // field index with text
    };
  }

  void ExpectLikeAScan(const std::vector<Event>& all) {
    for (EventQuery q : Queries()) {
      for (bool newest : {false, true}) {
        q.newest_first = newest;
        SCOPED_TRACE(::testing::Message()
                     << "query " << q.fields.begin()->first << "=" << q.fields.begin()->second
                     << " newest=" << newest << " since=" << q.since_ns << " agent=" << q.agent_id);
        const Ids expected = ExpectedIds(all, q);
        EXPECT_EQ(SearchIds(q), expected);
        for (uint64_t page : {1u, 3u}) EXPECT_EQ(PageThrough(*store_, q, page), expected);
      }
    }
  }
};

TEST_F(FieldIndexTest, AnswersLikeAScanAcrossDaysOrdersAndPages) {
  const std::vector<Event> all = WriteDays();
  ASSERT_GT(ExpectedIds(all, {.fields = {{"source.ip", "10.0.0.1"}}}).size(), 5u);
  ExpectLikeAScan(all);
  Reopen();
  ExpectLikeAScan(all);
}

TEST_F(FieldIndexTest, IndexHoldsOneEntryPerIndexedFieldUnderTheEventDay) {
  std::vector<EventRecord> r = {LogRecord("a1", 1, "x", kT0)};
  (*r[0].event.mutable_fields())["source.ip"] = "10.0.0.5";
  (*r[0].event.mutable_fields())["user.name"] = "root";
  (*r[0].event.mutable_fields())["http.request.method"] = "GET";
  MustWrite("a1", r);
  Close();
  RawDb raw(dir_ / "db");
  std::vector<std::string> keys = raw.Keys("events_by_field");
  ASSERT_EQ(keys.size(), 2u);
  std::sort(keys.begin(), keys.end());
  EXPECT_TRUE(
      keys[0].starts_with(keys::FieldIndexPrefix(keys::HourOf(kT0), "source.ip", "10.0.0.5")));
  EXPECT_TRUE(keys[1].starts_with(keys::FieldIndexPrefix(keys::HourOf(kT0), "user.name", "root")));
}

TEST_F(FieldIndexTest, CountsIndexedFieldsLikeAScan) {
  const std::vector<Event> all = WriteDays();
  struct Case {
    std::string field;
    int64_t since, until;
    std::string agent;
  };
  for (const Case& c : std::vector<Case>{
           {"source.ip", 0, 0, ""},
           {"source.ip", kT0 + kDay + 3, kT0 + 3 * kDay + kDay / 3, ""},
           {"user.name", 0, 0, "a2"},
           {"file.path", 0, 0, ""},  // long values: read from their events
           {"user.name", kT0 + 9 * kDay, 0, ""},
       }) {
    SCOPED_TRACE(c.field + " since " + std::to_string(c.since) + " agent " + c.agent);
    ExpectCountLikeAScan(*store_, all, c.field, c.since, c.until, c.agent);
  }
  // Not indexed: the caller counts from the events.
  auto other = store_->CountIndexedField("http.request.method", 0, 0, "");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

// A store an older build wrote has events but no index: field searches that
// reach back before the index began scan, so nothing old is missed.
TEST_F(FieldIndexTest, StoreWrittenBeforeTheIndexStillFindsOldEvents) {
  std::vector<Event> all = WriteDays();
  Close();
  {
    RawDb raw(dir_ / "db");
    raw.Delete("meta", std::string(keys::kFieldIndexSinceKey));
    for (const std::string& k : raw.Keys("events_by_field")) raw.Delete("events_by_field", k);
  }
  Reopen();
  EventQuery q{.fields = {{"source.ip", "10.0.0.1"}}};
  EXPECT_EQ(SearchIds(q), ExpectedIds(all, q));
  auto count = store_->CountIndexedField("source.ip", 0, 0, "");
  ASSERT_TRUE(count.ok());
  EXPECT_FALSE(count->has_value()) << "the index cannot count events stored before it";
  // New events are indexed, and a search that starts after the index did uses it.
  std::vector<EventRecord> later = {LogRecord("a1", 100, "later")};
  (*later[0].event.mutable_fields())["source.ip"] = "10.0.0.1";
  ASSERT_TRUE(store_->Write("a1", later).ok());  // sets the server time
  all.push_back(later[0].event);
  EXPECT_EQ(SearchIds(q), ExpectedIds(all, q));
  EventQuery recent{.since_ns = later[0].event.server_time_ns(), .fields = q.fields};
  EXPECT_EQ(SearchIds(recent), (Ids{{"a1", 100}}));
  Reopen();  // the index start is kept, not moved to the newest event again
  EXPECT_EQ(SearchIds(q), ExpectedIds(all, q));
}

TEST_F(FieldIndexTest, RetentionDropsWholeDaysAndSearchesSkipExpiredEntries) {
  const std::vector<Event> all = WriteDays();
  // Events older than 1.5 days after kT0 expire: the cutoff falls inside a day.
  const int64_t now = kT0 + 3 * kDay + kDay / 2;
  auto result = store_->ApplyRetention({.events_ns = 2 * kDay, .alerts_ns = 0}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  const int64_t cutoff = result->events_cutoff_ns;
  ASSERT_EQ(cutoff, kT0 + kDay + kDay / 2);
  std::vector<Event> kept;
  for (const Event& e : all) {
    if (e.server_time_ns() >= cutoff) kept.push_back(e);
  }
  ASSERT_LT(kept.size(), all.size());
  ExpectLikeAScan(kept);
  Close();
  RawDb raw(dir_ / "db");
  for (const std::string& k : raw.Keys("events_by_field")) {
    EXPECT_GE(keycodec::DecodeUint32(k.data()), keys::HourOf(cutoff)) << "a day before the cutoff";
  }
}

}  // namespace
}  // namespace siper::storage::testutil

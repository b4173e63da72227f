// Alert postings (schema 5): alerts_by_agent and alerts_by_rule hold one key per
// write's time (and rule) naming all its alerts. Alert listings by agent and by rule,
// event searches by rule and by level, in both orders and paged, answer exactly what a
// scan of the time-keyed `alerts` family and a filter would, also when two writes of one
// agent share a time and their alerts interleave; a store written with schema 4's layout
// (one index key per alert, empty values) opens, is upgraded and answers the same;
// retention drops whole postings; a malformed posting is DataLoss.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "server/storage/keys.h"
#include "tests/storage/raw_db.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kHour = int64_t{3600} * kSecond;
const std::vector<std::string> kRules = {"ssh-fail", "sudo", "ssh-brute"};
const std::vector<std::string> kLevels = {"informational", "low", "medium", "high", "critical"};

int Rank(const std::string& level) {
  auto it = std::find(kLevels.begin(), kLevels.end(), level);
  return it == kLevels.end() ? -1 : static_cast<int>(it - kLevels.begin());
}

std::vector<std::string> IdsOf(const std::vector<Alert>& alerts) {
  std::vector<std::string> ids;
  for (const Alert& a : alerts) ids.push_back(a.id());
  return ids;
}

class AlertPostingsTest : public StoreTest {
 protected:
  // Batches of `per_batch` events per agent (a1..a3), each batch one server time, over
  // `hours` hours; about half the events raise one to three alerts of random rules and
  // levels (an event may raise one rule twice). The events of a batch arrive shuffled.
  void WriteBatches(std::mt19937_64& rng, int batches, int per_batch, int hours) {
    for (int b = 0; b < batches; ++b) {
      const std::string agent = "a" + std::to_string(1 + b % 3);
      const int64_t t = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hours * kHour));
      std::vector<EventRecord> records;
      for (int i = 0; i < per_batch; ++i) {
        const uint64_t s = ++next_seq_[agent];
        EventRecord r = LogRecord(agent, s, agent + " line " + std::to_string(s), t);
        if (rng() % 2 == 0) {
          const int n = 1 + static_cast<int>(rng() % 3);
          for (int k = 0; k < n; ++k) {
            r.alerts.push_back(MakeAlert(kRules[rng() % kRules.size()], kLevels[rng() % 5]));
          }
        }
        records.push_back(r);
      }
      std::shuffle(records.begin(), records.end(), rng);
      MustWrite(agent, records);
    }
  }

  // Every stored alert, in alert-key order: the time-keyed family itself.
  std::vector<Alert> AllAlerts() { return Alerts({}); }

  // Alert listings and event searches through the alert indexes, against a filter of
  // the time-keyed `alerts` family (which this change does not touch).
  void ExpectLikeAScan(int hours) {
    const std::vector<Alert> all = AllAlerts();
    ASSERT_GT(all.size(), 20u);
    const int64_t mid = kT0 + hours * kHour / 3 + 12345;
    const int64_t late = kT0 + 2 * hours * kHour / 3 + 777;
    std::vector<AlertQuery> queries = {
        {.agent_id = "a2"},
        {.since_ns = mid, .until_ns = late, .agent_id = "a1"},
        {.rule_id = "sudo"},
        {.since_ns = mid, .until_ns = late, .rule_id = "ssh-fail"},
        {.agent_id = "a3", .rule_id = "ssh-brute"},
        {.agent_id = "a1", .min_level = "high"},
        {.rule_id = "ssh-fail", .min_level = "medium"},
    };
    for (AlertQuery q : queries) {
      for (bool newest : {false, true}) {
        q.newest_first = newest;
        SCOPED_TRACE(::testing::Message()
                     << "agent=" << q.agent_id << " rule=" << q.rule_id << " level=" << q.min_level
                     << " since=" << q.since_ns << " newest=" << newest);
        std::vector<std::string> want;
        for (const Alert& a : all) {
          if (q.since_ns != 0 && a.time_ns() < q.since_ns) continue;
          if (q.until_ns != 0 && a.time_ns() >= q.until_ns) continue;
          if (!q.agent_id.empty() && a.agent_id() != q.agent_id) continue;
          if (!q.rule_id.empty() && a.rule_id() != q.rule_id) continue;
          if (!q.min_level.empty() && Rank(a.level()) < Rank(q.min_level)) continue;
          want.push_back(a.id());
        }
        if (newest) std::reverse(want.begin(), want.end());
        ASSERT_FALSE(want.empty());
        EXPECT_EQ(IdsOf(Alerts(q)), want);
        for (uint64_t page : {1u, 3u, 7u}) EXPECT_EQ(PageAlerts(q, page), want);
      }
    }
    // Events that raised an alert of a rule (or of a level), through the same indexes.
    std::vector<EventQuery> event_queries = {
        {.rule_id = "sudo"},
        {.since_ns = mid, .until_ns = late, .rule_id = "ssh-brute"},
        {.agent_id = "a2", .rule_id = "ssh-fail"},
        {.agent_id = "a3", .min_level = "high"},
        {.rule_id = "ssh-fail", .min_level = "critical"},
    };
    for (EventQuery q : event_queries) {
      for (bool newest : {false, true}) {
        q.newest_first = newest;
        SCOPED_TRACE(::testing::Message() << "events: agent=" << q.agent_id << " rule=" << q.rule_id
                                          << " level=" << q.min_level << " newest=" << newest);
        Ids want;
        for (const Alert& a : all) {
          if (q.since_ns != 0 && a.time_ns() < q.since_ns) continue;
          if (q.until_ns != 0 && a.time_ns() >= q.until_ns) continue;
          if (!q.agent_id.empty() && a.agent_id() != q.agent_id) continue;
          if (!q.rule_id.empty() && a.rule_id() != q.rule_id) continue;
          if (!q.min_level.empty() && Rank(a.level()) < Rank(q.min_level)) continue;
          const std::pair<std::string, uint64_t> id(a.agent_id(), a.seq());
          if (want.empty() || want.back() != id) want.push_back(id);
        }
        if (newest) std::reverse(want.begin(), want.end());
        ASSERT_FALSE(want.empty());
        EXPECT_EQ(SearchIds(q), want);
        // PageThrough reads at most 100 pages.
        for (uint64_t page : {want.size() / 90 + 1, want.size() / 20 + 3}) {
          EXPECT_EQ(PageThrough(*store_, q, page), want) << "pages of " << page;
        }
      }
    }
    // GetAlert of every alert.
    for (const Alert& a : all) {
      auto got = store_->GetAlert(a.id());
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(got->has_value()) << a.id();
      EXPECT_EQ((*got)->SerializeAsString(), a.SerializeAsString());
    }
  }

  // Pages through an alert listing `page` alerts at a time with after_id.
  std::vector<std::string> PageAlerts(AlertQuery q, uint64_t page) {
    std::vector<std::string> ids;
    q.limit = page;
    for (int round = 0; round < 400; ++round) {
      const std::vector<Alert> got = Alerts(q);
      for (const Alert& a : got) ids.push_back(a.id());
      if (got.size() < page) break;
      q.after_id = got.back().id();
    }
    return ids;
  }

  // Rewrites the two alert indexes as schema 4 wrote them, one key per alert with an
  // empty value, and sets the schema version to 4: a store main's build wrote.
  void RewriteAsSchema4() {
    Close();
    RawDb raw(dir_ / "db");
    for (const std::string family : {"alerts_by_agent", "alerts_by_rule"}) {
      for (const auto& [key, value] : raw.All(family)) {
        if (value.empty()) continue;
        const size_t at = key.size() - keys::kAlertKeySize;
        const std::string_view alert_key = std::string_view(key).substr(at);
        std::vector<keys::AlertRef> refs;
        ASSERT_TRUE(keys::DecodeAlertPosting(
            {keycodec::DecodeUint64(alert_key.data() + 12),
             keycodec::DecodeUint32(alert_key.data() + keys::kEventKeySize)},
            value, &refs));
        raw.Delete(family, key);
        for (keys::AlertRef r : refs) {
          std::string old_key = key.substr(0, at + 12);
          keycodec::AppendUint64(&old_key, r.seq);
          keycodec::AppendUint32(&old_key, r.index);
          raw.Put(family, old_key, "");
        }
      }
      for (const auto& [key, value] : raw.All(family)) ASSERT_TRUE(value.empty());
    }
    std::string v4;
    keycodec::AppendUint32(&v4, 4);
    raw.Put("meta", std::string(keys::kSchemaVersionKey), v4);
  }

  uint32_t SchemaVersionOnDisk() {
    RawDb raw(dir_ / "db");
    std::string v;
    EXPECT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf("meta"), "schema_version", &v).ok());
    return v.size() == 4 ? keycodec::DecodeUint32(v.data()) : 0;
  }

  std::map<std::string, uint64_t> next_seq_;
};

TEST_F(AlertPostingsTest, EncodingRoundTripsAndRejectsMalformedValues) {
  const std::vector<keys::AlertRef> refs = {
      {5, 0},
      {5, 1},
      {5, 7},
      {6, 0},
      {200, 3},
      {70'000, 0},
      {uint64_t{1} << 40, 2},
      {std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint32_t>::max()}};
  std::string v;
  for (size_t i = 1; i < refs.size(); ++i) keys::AppendAlertPosting(&v, refs[i - 1], refs[i]);
  std::vector<keys::AlertRef> got;
  ASSERT_TRUE(keys::DecodeAlertPosting(refs[0], v, &got));
  EXPECT_EQ(got, refs);
  got.clear();
  ASSERT_TRUE(keys::DecodeAlertPosting({9, 4}, "", &got));
  EXPECT_EQ(got, (std::vector<keys::AlertRef>{{9, 4}})) << "schema 4: a posting of one";
  auto bad = [](keys::AlertRef first, const std::string& value) {
    std::vector<keys::AlertRef> out;
    return !keys::DecodeAlertPosting(first, value, &out);
  };
  EXPECT_TRUE(bad({1, 0}, std::string("\x85", 1))) << "truncated seq";
  EXPECT_TRUE(bad({1, 0}, std::string("\x01", 1))) << "index missing";
  EXPECT_TRUE(bad({1, 0}, std::string("\x01\x82", 2))) << "index truncated";
  EXPECT_TRUE(bad({1, 3}, std::string("\x00\x03", 2))) << "a repeated alert";
  EXPECT_TRUE(bad({1, 3}, std::string("\x00\x02", 2))) << "index going back in one event";
  std::string over;
  keys::AppendVarint(&over, std::numeric_limits<uint64_t>::max());
  over.push_back('\0');
  EXPECT_TRUE(bad({2, 0}, over)) << "past the largest seq";
  std::string big_index("\x01", 1);
  keys::AppendVarint(&big_index, uint64_t{1} << 32);
  EXPECT_TRUE(bad({2, 0}, big_index)) << "index past 32 bits";
  EXPECT_TRUE(bad({2, 0}, std::string("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11)))
      << "a varint past 64 bits";
}

TEST_F(AlertPostingsTest, OneKeyPerWriteTimeAndRuleAndAnswersLikeAScan) {
  std::mt19937_64 rng(21);
  const int hours = 6;
  WriteBatches(rng, 24, 40, hours);
  ExpectLikeAScan(hours);
  Reopen();
  ExpectLikeAScan(hours);
  const std::vector<Alert> all = AllAlerts();
  std::set<std::pair<int64_t, std::string>> times;  // (time, agent) of the batches
  std::set<std::tuple<int64_t, std::string, std::string>> rule_times;
  for (const Alert& a : all) {
    times.emplace(a.time_ns(), a.agent_id());
    rule_times.emplace(a.time_ns(), a.agent_id(), a.rule_id());
  }
  Close();
  RawDb raw(dir_ / "db");
  EXPECT_EQ(raw.Keys("alerts").size(), all.size());
  EXPECT_EQ(raw.Keys("alerts_by_agent").size(), times.size()) << "one key per batch";
  EXPECT_EQ(raw.Keys("alerts_by_rule").size(), rule_times.size()) << "one per rule and batch";
  EXPECT_LT(raw.Keys("alerts_by_rule").size() * 4, all.size());
}

// Two writes of one agent with the same server time whose alerts interleave: the
// indexes hold two keys of one group and read them merged, in key order, in both
// directions and across pages.
TEST_F(AlertPostingsTest, InterleavedWritesOfOneTimeReadInKeyOrder) {
  auto write = [&](std::vector<uint64_t> seqs, int64_t t) {
    std::vector<EventRecord> records;
    for (uint64_t s : seqs) {
      records.push_back(LogRecord("a1", s, "line " + std::to_string(s), t));
      records.back().alerts = {MakeAlert("ssh-fail", "low")};
      if (s % 2 == 0) records.back().alerts.push_back(MakeAlert("ssh-fail", "high"));
    }
    MustWrite("a1", records);
  };
  write({1, 5, 9}, kT0);
  write({3, 4, 7}, kT0);
  write({2, 6}, kT0 + kSecond);
  write({8}, kT0);
  std::vector<std::pair<uint64_t, uint32_t>> in_order;
  for (uint64_t s : {1, 3, 4, 5, 7, 8, 9, 2, 6}) {
    in_order.emplace_back(s, 0);
    if (s % 2 == 0) in_order.emplace_back(s, 1);
  }
  const std::vector<Alert> all = AllAlerts();
  ASSERT_EQ(all.size(), in_order.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq(), in_order[i].first) << i;
  }
  const std::vector<std::string> ids = IdsOf(all);
  for (AlertQuery q : std::vector<AlertQuery>{{.agent_id = "a1"}, {.rule_id = "ssh-fail"}}) {
    for (bool newest : {false, true}) {
      q.newest_first = newest;
      std::vector<std::string> want = ids;
      if (newest) std::reverse(want.begin(), want.end());
      EXPECT_EQ(IdsOf(Alerts(q)), want);
      for (uint64_t page : {1u, 2u, 4u}) EXPECT_EQ(PageAlerts(q, page), want);
    }
  }
  const Ids events = {{"a1", 1}, {"a1", 3}, {"a1", 4}, {"a1", 5}, {"a1", 7},
                      {"a1", 8}, {"a1", 9}, {"a1", 2}, {"a1", 6}};
  for (bool newest : {false, true}) {
    EventQuery q{.rule_id = "ssh-fail", .newest_first = newest};
    Ids want = events;
    if (newest) std::reverse(want.begin(), want.end());
    EXPECT_EQ(SearchIds(q), want);
    for (uint64_t page : {1u, 2u, 4u}) EXPECT_EQ(PageThrough(*store_, q, page), want);
    EventQuery high{.agent_id = "a1", .min_level = "high", .newest_first = newest};
    Ids want_high;
    for (const auto& id : want) {
      if (id.second % 2 == 0) want_high.push_back(id);
    }
    EXPECT_EQ(SearchIds(high), want_high);
  }
}

// A store written by schema 4 (one alert index key per alert, empty values) opens, is
// upgraded to 5 without rewriting, answers every query as before, and mixes with the
// postings new writes add; retention drops both.
TEST_F(AlertPostingsTest, Schema4StoreOpensUpgradedAndAnswersTheSame) {
  std::mt19937_64 rng(22);
  const int hours = 6;
  WriteBatches(rng, 18, 30, hours);
  const std::vector<Alert> before = AllAlerts();
  RewriteAsSchema4();
  EXPECT_EQ(SchemaVersionOnDisk(), 4u);
  {
    RawDb raw(dir_ / "db");
    EXPECT_EQ(raw.Keys("alerts_by_agent").size(), before.size()) << "one key per alert";
  }
  Reopen();
  ExpectLikeAScan(hours);
  // New postings beside the old keys, one of them in a batch's (time, agent) group.
  std::vector<EventRecord> later;
  const int64_t t = before[before.size() / 2].time_ns();
  const std::string agent = before[before.size() / 2].agent_id();
  for (uint64_t s = 1000; s < 1040; ++s) {
    later.push_back(LogRecord(agent, s, "later " + std::to_string(s), t));
    later.back().alerts = {MakeAlert(kRules[s % 3], kLevels[s % 5])};
  }
  MustWrite(agent, later);
  ExpectLikeAScan(hours);
  Close();
  EXPECT_EQ(SchemaVersionOnDisk(), Store::kSchemaVersion);
  EXPECT_EQ(Store::kSchemaVersion, 5u);
  Reopen();
  auto result = store_->ApplyRetention({.events_ns = 0, .alerts_ns = 3 * kHour}, kT0 + 5 * kHour);
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<std::string> kept_a1, kept_sudo;
  size_t kept = 0;
  for (const Alert& a : AllAlerts()) {
    EXPECT_GE(a.time_ns(), result->alerts_cutoff_ns);
    ++kept;
    if (a.agent_id() == "a1") kept_a1.push_back(a.id());
    if (a.rule_id() == "sudo") kept_sudo.push_back(a.id());
  }
  ASSERT_GT(kept, 0u);
  ASSERT_LT(kept, before.size());
  EXPECT_EQ(IdsOf(Alerts({.agent_id = "a1"})), kept_a1);
  EXPECT_EQ(IdsOf(Alerts({.rule_id = "sudo"})), kept_sudo);
  Close();
  // Every index key left is at or after the cutoff: whole postings were dropped.
  RawDb raw(dir_ / "db");
  for (const std::string family : {"alerts_by_agent", "alerts_by_rule"}) {
    for (const std::string& key : raw.Keys(family)) {
      const std::string_view alert_key =
          std::string_view(key).substr(key.size() - keys::kAlertKeySize);
      keys::EventKeyParts parts;
      ASSERT_TRUE(keys::ParseEventKey(alert_key, &parts));
      EXPECT_GE(parts.time_ns, result->alerts_cutoff_ns) << family;
    }
  }
}

TEST_F(AlertPostingsTest, MalformedPostingIsDataLossNotACrash) {
  std::vector<EventRecord> records;
  for (uint64_t s = 1; s <= 3; ++s) {
    records.push_back(LogRecord("a1", s, "x", kT0));
    records.back().alerts = {MakeAlert("ssh-fail", "high")};
  }
  MustWrite("a1", records);
  Close();
  {
    RawDb raw(dir_ / "db");
    for (const std::string family : {"alerts_by_agent", "alerts_by_rule"}) {
      const std::vector<std::string> keys = raw.Keys(family);
      ASSERT_EQ(keys.size(), 1u);
      raw.Put(family, keys[0], std::string("\x01", 1));  // an index missing
    }
  }
  Reopen();
  for (const AlertQuery& q : std::vector<AlertQuery>{{.agent_id = "a1"}, {.rule_id = "ssh-fail"}}) {
    absl::Status s = store_->ListAlerts(q, [](const Alert&) { return true; });
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find("malformed posting"), std::string_view::npos) << s;
  }
  for (const EventQuery& q :
       std::vector<EventQuery>{{.rule_id = "ssh-fail"}, {.agent_id = "a1", .min_level = "low"}}) {
    absl::Status s = store_->SearchEvents(q, [](const Event&) { return true; });
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
  // The stored alerts themselves are intact and still listed by time.
  EXPECT_EQ(Alerts({}).size(), 3u);
}

}  // namespace
}  // namespace siper::storage::testutil

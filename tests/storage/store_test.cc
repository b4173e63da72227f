#include "server/storage/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "common/key_codec.h"
#include "rocksdb/db.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

TEST_F(StoreTest, WriteThenReadRoundTrip) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "Failed password for root"),
                                      LogRecord("a1", 2, "Accepted password for bob")};
  records[0].event.mutable_fields()->insert({"source.ip", "10.0.0.5"});
  records[0].alerts.push_back(MakeAlert("ssh-fail", "low"));
  EventRecord file;
  file.event.set_agent_id("a1");
  file.event.set_seq(3);
  file.event.mutable_file()->set_path("/etc/passwd");
  file.event.mutable_file()->set_sha256(std::string(64, 'a'));
  records.push_back(file);

  auto r = store_->Write("a1", records);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stored, 3u);
  EXPECT_EQ(r->duplicates, 0u);
  EXPECT_EQ(r->max_seq, 3u);
  // The store gave the batch one server time and filled in the alert.
  const int64_t t = records[0].event.server_time_ns();
  EXPECT_GT(t, 0);
  EXPECT_EQ(records[2].event.server_time_ns(), t);
  const Alert& alert = records[0].alerts[0];
  EXPECT_EQ(alert.id().size(), 48u);
  EXPECT_EQ(alert.agent_id(), "a1");
  EXPECT_EQ(alert.seq(), 1u);
  EXPECT_EQ(alert.time_ns(), t);
  EXPECT_EQ(alert.source(), "/var/log/auth.log");
  EXPECT_EQ(alert.line(), "Failed password for root");

  std::vector<Event> events = Search({});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].SerializeAsString(), records[0].event.SerializeAsString());
  EXPECT_EQ(events[0].fields().at("source.ip"), "10.0.0.5");
  EXPECT_EQ(events[2].file().path(), "/etc/passwd");

  std::vector<Alert> alerts = Alerts({});
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].SerializeAsString(), alert.SerializeAsString());

  auto got = store_->GetAlert(alert.id());
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->rule_id(), "ssh-fail");
  auto ev = store_->GetEvent("a1", 2);
  ASSERT_TRUE(ev.ok()) << ev.status();
  ASSERT_TRUE(ev->has_value());
  EXPECT_EQ((*ev)->log().line(), "Accepted password for bob");
  EXPECT_FALSE(store_->GetEvent("a1", 99)->has_value());
  EXPECT_FALSE(store_->GetEvent("nobody", 1)->has_value());
  EXPECT_EQ(store_->GetAlert("nothex").status().code(), absl::StatusCode::kInvalidArgument);

  // Everything survives a reopen.
  Reopen();
  EXPECT_EQ(Search({}).size(), 3u);
  EXPECT_EQ(Alerts({}).size(), 1u);
}

TEST_F(StoreTest, DuplicatesWithinOneBatch) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "first"), LogRecord("a1", 2, "x"),
                                      LogRecord("a1", 1, "first again")};
  auto r = store_->Write("a1", records);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stored, 2u);
  EXPECT_EQ(r->duplicates, 1u);
  EXPECT_EQ(r->max_seq, 2u);
  EXPECT_FALSE(records[0].duplicate);
  EXPECT_TRUE(records[2].duplicate);
  std::vector<Event> events = Search({});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].log().line(), "first");
}

TEST_F(StoreTest, DuplicatesAcrossBatchesAndReopen) {
  EXPECT_EQ(MustWrite("a1", {LogRecord("a1", 1, "l1"), LogRecord("a1", 2, "l2")}).stored, 2u);
  // A resend overlapping the first batch, with a new event.
  std::vector<EventRecord> resend = {LogRecord("a1", 2, "l2"), LogRecord("a1", 3, "l3")};
  resend[0].alerts.push_back(MakeAlert("r", "high"));  // a duplicate's alerts are not stored
  auto r = store_->Write("a1", resend);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stored, 1u);
  EXPECT_EQ(r->duplicates, 1u);
  EXPECT_EQ(r->max_seq, 3u);
  EXPECT_TRUE(resend[0].duplicate);
  EXPECT_TRUE(Alerts({}).empty());
  // The same seq of another agent is not a duplicate.
  EXPECT_EQ(MustWrite("a2", {LogRecord("a2", 1, "other")}).stored, 1u);

  Reopen();
  WriteResult again = MustWrite(
      "a1", {LogRecord("a1", 1, "l1"), LogRecord("a1", 3, "l3"), LogRecord("a1", 4, "l4")});
  EXPECT_EQ(again.stored, 1u);
  EXPECT_EQ(again.duplicates, 2u);
  EXPECT_EQ(SearchIds({}).size(), 5u);
}

TEST_F(StoreTest, AllDuplicatesWritesNothing) {
  MustWrite("a1", {LogRecord("a1", 5, "x")});
  WriteResult r = MustWrite("a1", {LogRecord("a1", 5, "x")});
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.duplicates, 1u);
  EXPECT_EQ(r.max_seq, 5u);
  EXPECT_EQ(MustWrite("a1", {}).stored, 0u);
}

TEST_F(StoreTest, RefusesRecordOfAnotherAgent) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "ok"), LogRecord("intruder", 2, "bad")};
  auto r = store_->Write("a1", records);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("intruder"), std::string::npos);
  EXPECT_TRUE(Search({}).empty());  // nothing of the batch was written
  std::vector<EventRecord> none;
  EXPECT_EQ(store_->Write("", none).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, ServerTimeAssignedAndKeptInOrder) {
  std::vector<EventRecord> first = {LogRecord("a1", 1, "x")};
  ASSERT_TRUE(store_->Write("a1", first).ok());
  std::vector<EventRecord> second = {LogRecord("a1", 2, "y"), LogRecord("a1", 3, "z")};
  ASSERT_TRUE(store_->Write("a1", second).ok());
  EXPECT_GE(second[0].event.server_time_ns(), first[0].event.server_time_ns());
  EXPECT_EQ(second[0].event.server_time_ns(), second[1].event.server_time_ns());
  // A time the caller set is kept.
  std::vector<EventRecord> given = {LogRecord("a1", 4, "w", kT0)};
  ASSERT_TRUE(store_->Write("a1", given).ok());
  EXPECT_EQ(given[0].event.server_time_ns(), kT0);
  // One agent's events come out in seq order within a batch time.
  EXPECT_EQ(SearchIds({.agent_id = "a1"}), (Ids{{"a1", 4}, {"a1", 1}, {"a1", 2}, {"a1", 3}}));
}

TEST_F(StoreTest, SearchAllInTimeOrder) {
  WriteFixture();
  EXPECT_EQ(SearchIds({}), (Ids{{"a1", 1}, {"a1", 2}, {"a2", 1}, {"a1", 3}, {"a1", 4}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.newest_first = true}),
            (Ids{{"a2", 2}, {"a1", 4}, {"a1", 3}, {"a2", 1}, {"a1", 2}, {"a1", 1}}));
}

TEST_F(StoreTest, SearchTimeRange) {
  WriteFixture();
  // since inclusive, until exclusive.
  EXPECT_EQ(SearchIds({.since_ns = kT0 + 2 * kSecond, .until_ns = kT0 + 4 * kSecond}),
            (Ids{{"a1", 2}, {"a2", 1}, {"a1", 3}}));
  EXPECT_EQ(SearchIds({.since_ns = kT0 + 4 * kSecond}), (Ids{{"a1", 4}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.until_ns = kT0 + 2 * kSecond}), (Ids{{"a1", 1}}));
  EXPECT_EQ(
      SearchIds(
          {.since_ns = kT0 + 2 * kSecond, .until_ns = kT0 + 4 * kSecond, .newest_first = true}),
      (Ids{{"a1", 3}, {"a2", 1}, {"a1", 2}}));
  EXPECT_TRUE(SearchIds({.since_ns = kT0 + 9 * kSecond}).empty());
  EXPECT_TRUE(SearchIds({.since_ns = kT0 + 3 * kSecond, .until_ns = kT0 + 3 * kSecond}).empty());
}

TEST_F(StoreTest, SearchByAgent) {
  WriteFixture();
  EXPECT_EQ(SearchIds({.agent_id = "a2"}), (Ids{{"a2", 1}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .newest_first = true}),
            (Ids{{"a1", 4}, {"a1", 3}, {"a1", 2}, {"a1", 1}}));
  EXPECT_EQ(
      SearchIds({.since_ns = kT0 + 2 * kSecond, .until_ns = kT0 + 4 * kSecond, .agent_id = "a1"}),
      (Ids{{"a1", 2}, {"a1", 3}}));
  EXPECT_TRUE(SearchIds({.agent_id = "unknown"}).empty());
}

TEST_F(StoreTest, SearchByRule) {
  WriteFixture();
  // a1/2 raised ssh-brute once and sudo once: it appears once.
  EXPECT_EQ(SearchIds({.rule_id = "ssh-brute"}), (Ids{{"a1", 2}, {"a1", 4}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.rule_id = "ssh-brute", .newest_first = true}),
            (Ids{{"a2", 2}, {"a1", 4}, {"a1", 2}}));
  EXPECT_EQ(SearchIds({.rule_id = "sudo"}), (Ids{{"a1", 2}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .rule_id = "ssh-brute"}), (Ids{{"a1", 2}, {"a1", 4}}));
  EXPECT_EQ(SearchIds({.since_ns = kT0 + 3 * kSecond, .rule_id = "ssh-brute"}),
            (Ids{{"a1", 4}, {"a2", 2}}));
  // A rule id that is a prefix of another matches only itself.
  EXPECT_TRUE(SearchIds({.rule_id = "ssh"}).empty());
}

TEST_F(StoreTest, SearchText) {
  WriteFixture();
  EXPECT_EQ(SearchIds({.text = "odd"}), (Ids{{"a1", 1}, {"a1", 3}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .text = "odd"}), (Ids{{"a1", 1}, {"a1", 3}}));
  EXPECT_EQ(SearchIds({.rule_id = "ssh-brute", .text = "odd"}), (Ids{{"a2", 2}}));
  EXPECT_TRUE(SearchIds({.text = "ODD"}).empty());  // case-sensitive
}

TEST_F(StoreTest, SearchLimitAndEarlyStop) {
  WriteFixture();
  EXPECT_EQ(SearchIds({.limit = 2}), (Ids{{"a1", 1}, {"a1", 2}}));
  EXPECT_EQ(SearchIds({.limit = 2, .newest_first = true}), (Ids{{"a2", 2}, {"a1", 4}}));
  // Limit counts matches, not scanned events.
  EXPECT_EQ(SearchIds({.text = "odd", .limit = 2, .newest_first = true}),
            (Ids{{"a2", 2}, {"a1", 3}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .limit = 1, .newest_first = true}), (Ids{{"a1", 4}}));
  EXPECT_EQ(SearchIds({.rule_id = "ssh-brute", .limit = 1}), (Ids{{"a1", 2}}));
  EXPECT_EQ(SearchIds({.limit = 0}).size(), 6u);  // 0: no limit
  int seen = 0;
  ASSERT_TRUE(store_->SearchEvents({}, [&](const Event&) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);
}

TEST_F(StoreTest, SearchPagesWithCursorInEveryIndexAndOrder) {
  WriteFixture();
  for (bool newest : {false, true}) {
    for (uint64_t page : {1u, 2u, 4u}) {
      SCOPED_TRACE(::testing::Message() << "newest_first=" << newest << " page=" << page);
      EXPECT_EQ(PageThrough(*store_, {.newest_first = newest}, page),
                SearchIds({.newest_first = newest}));
      EXPECT_EQ(PageThrough(*store_, {.agent_id = "a1", .newest_first = newest}, page),
                SearchIds({.agent_id = "a1", .newest_first = newest}));
      // Through the rule index, where one event may have several index entries.
      EXPECT_EQ(PageThrough(*store_, {.rule_id = "ssh-brute", .newest_first = newest}, page),
                SearchIds({.rule_id = "ssh-brute", .newest_first = newest}));
      EXPECT_EQ(PageThrough(*store_, {.since_ns = kT0 + 2 * kSecond, .newest_first = newest}, page),
                SearchIds({.since_ns = kT0 + 2 * kSecond, .newest_first = newest}));
    }
  }
  absl::Status bad = store_->SearchEvents({.cursor = "zz"}, [](const Event&) { return true; });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, SearchByMinimumLevel) {
  WriteFixture();
  // a1/2: high ssh-brute + medium sudo; a1/4: low; a2/2: critical.
  EXPECT_EQ(SearchIds({.min_level = "informational"}), (Ids{{"a1", 2}, {"a1", 4}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.min_level = "medium"}), (Ids{{"a1", 2}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.min_level = "high", .newest_first = true}), (Ids{{"a2", 2}, {"a1", 2}}));
  EXPECT_EQ(SearchIds({.min_level = "critical"}), (Ids{{"a2", 2}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .min_level = "high"}), (Ids{{"a1", 2}}));
  EXPECT_TRUE(SearchIds({.agent_id = "a1", .min_level = "critical"}).empty());
  // With a rule: an alert of that rule must reach the level (sudo on a1/2 is medium).
  EXPECT_EQ(SearchIds({.rule_id = "sudo", .min_level = "medium"}), (Ids{{"a1", 2}}));
  EXPECT_TRUE(SearchIds({.rule_id = "sudo", .min_level = "high"}).empty());
  EXPECT_EQ(SearchIds({.rule_id = "ssh-brute", .min_level = "high"}), (Ids{{"a1", 2}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.since_ns = kT0 + 3 * kSecond, .min_level = "low"}),
            (Ids{{"a1", 4}, {"a2", 2}}));
  EXPECT_EQ(SearchIds({.min_level = "low", .text = "odd"}), (Ids{{"a2", 2}}));
  for (bool newest : {false, true}) {
    EXPECT_EQ(PageThrough(*store_, {.min_level = "low", .newest_first = newest}, 1),
              SearchIds({.min_level = "low", .newest_first = newest}));
    EXPECT_EQ(
        PageThrough(*store_, {.agent_id = "a1", .min_level = "low", .newest_first = newest}, 1),
        SearchIds({.agent_id = "a1", .min_level = "low", .newest_first = newest}));
  }
  absl::Status bad =
      store_->SearchEvents({.min_level = "severe"}, [](const Event&) { return true; });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("severe"), std::string_view::npos);
}

// One event with a low and then a high alert of the same rule is found by level (the
// second alert of the event counts), once.
TEST_F(StoreTest, SearchByLevelLooksAtEveryAlertOfAnEvent) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "x", kT0), LogRecord("a1", 2, "y", kT0)};
  records[0].alerts = {MakeAlert("r", "low"), MakeAlert("r", "high"), MakeAlert("q", "high")};
  records[1].alerts = {MakeAlert("r", "low")};
  MustWrite("a1", std::move(records));
  EXPECT_EQ(SearchIds({.min_level = "high"}), (Ids{{"a1", 1}}));
  EXPECT_EQ(SearchIds({.rule_id = "r", .min_level = "high"}), (Ids{{"a1", 1}}));
  EXPECT_EQ(SearchIds({.agent_id = "a1", .min_level = "high"}), (Ids{{"a1", 1}}));
  EXPECT_EQ(SearchIds({.min_level = "low"}), (Ids{{"a1", 1}, {"a1", 2}}));
}

TEST_F(StoreTest, PagingSkipsAllAlertsOfTheCursorEvent) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "x", kT0), LogRecord("a1", 2, "y", kT0)};
  records[0].alerts = {MakeAlert("r", "low"), MakeAlert("r", "high")};
  records[1].alerts = {MakeAlert("r", "low")};
  MustWrite("a1", std::move(records));
  EXPECT_EQ(PageThrough(*store_, {.rule_id = "r"}, 1), (Ids{{"a1", 1}, {"a1", 2}}));
  EXPECT_EQ(PageThrough(*store_, {.rule_id = "r", .newest_first = true}, 1),
            (Ids{{"a1", 2}, {"a1", 1}}));
}

TEST_F(StoreTest, SearchByDecodedFields) {
  std::vector<EventRecord> records = {LogRecord("a1", 1, "x"), LogRecord("a1", 2, "y"),
                                      LogRecord("a1", 3, "z")};
  (*records[0].event.mutable_fields())["source.ip"] = "10.0.0.5";
  (*records[0].event.mutable_fields())["user.name"] = "root";
  (*records[1].event.mutable_fields())["source.ip"] = "10.0.0.5";
  (*records[1].event.mutable_fields())["user.name"] = "bob";
  MustWrite("a1", std::move(records));
  EXPECT_EQ(SearchIds({.fields = {{"source.ip", "10.0.0.5"}}}), (Ids{{"a1", 1}, {"a1", 2}}));
  EXPECT_EQ(SearchIds({.fields = {{"source.ip", "10.0.0.5"}, {"user.name", "bob"}}}),
            (Ids{{"a1", 2}}));
  EXPECT_TRUE(SearchIds({.fields = {{"source.ip", "10.0.0.6"}}}).empty());
}

TEST_F(StoreTest, ListAlertsPagesAfterId) {
  WriteFixture();
  for (bool newest : {false, true}) {
    for (AlertQuery base :
         {AlertQuery{}, AlertQuery{.agent_id = "a1"}, AlertQuery{.rule_id = "ssh-brute"}}) {
      base.newest_first = newest;
      std::vector<std::string> expected;
      for (const Alert& a : Alerts(base)) expected.push_back(a.id());
      std::vector<std::string> paged;
      AlertQuery q = base;
      q.limit = 1;
      for (int i = 0; i < 10; ++i) {
        std::vector<Alert> got = Alerts(q);
        if (got.empty()) break;
        paged.push_back(got[0].id());
        q.after_id = got[0].id();
      }
      EXPECT_EQ(paged, expected);
    }
  }
}

TEST_F(StoreTest, ListAlertsFilters) {
  WriteFixture();
  auto rules = [](const std::vector<Alert>& alerts) {
    std::vector<std::string> out;
    for (const Alert& a : alerts) out.push_back(a.agent_id() + "/" + a.rule_id() + "/" + a.level());
    return out;
  };
  using Strs = std::vector<std::string>;
  EXPECT_EQ(rules(Alerts({})), (Strs{"a1/ssh-brute/high", "a1/sudo/medium", "a1/ssh-brute/low",
                                     "a2/ssh-brute/critical"}));
  EXPECT_EQ(
      rules(Alerts({.newest_first = true})),
      (Strs{"a2/ssh-brute/critical", "a1/ssh-brute/low", "a1/sudo/medium", "a1/ssh-brute/high"}));
  EXPECT_EQ(rules(Alerts({.agent_id = "a2"})), (Strs{"a2/ssh-brute/critical"}));
  EXPECT_EQ(rules(Alerts({.agent_id = "a1", .newest_first = true})),
            (Strs{"a1/ssh-brute/low", "a1/sudo/medium", "a1/ssh-brute/high"}));
  EXPECT_EQ(rules(Alerts({.rule_id = "ssh-brute"})),
            (Strs{"a1/ssh-brute/high", "a1/ssh-brute/low", "a2/ssh-brute/critical"}));
  EXPECT_EQ(rules(Alerts({.agent_id = "a1", .rule_id = "ssh-brute"})),
            (Strs{"a1/ssh-brute/high", "a1/ssh-brute/low"}));
  EXPECT_EQ(rules(Alerts({.min_level = "high"})),
            (Strs{"a1/ssh-brute/high", "a2/ssh-brute/critical"}));
  EXPECT_EQ(rules(Alerts({.min_level = "medium", .limit = 2, .newest_first = true})),
            (Strs{"a2/ssh-brute/critical", "a1/sudo/medium"}));
  EXPECT_EQ(rules(Alerts({.since_ns = kT0 + 3 * kSecond, .until_ns = kT0 + 5 * kSecond})),
            (Strs{"a1/ssh-brute/low"}));
  EXPECT_EQ(rules(Alerts({.since_ns = kT0 + 3 * kSecond, .rule_id = "ssh-brute", .limit = 1})),
            (Strs{"a1/ssh-brute/low"}));
  EXPECT_TRUE(Alerts({.agent_id = "nobody"}).empty());
  absl::Status bad = store_->ListAlerts({.min_level = "severe"}, [](const Alert&) { return true; });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, TokenLifecycle) {
  const std::string hash(32, '\x11');
  ASSERT_TRUE(store_->PutToken(hash, kT0 + 60 * kSecond).ok());
  EXPECT_EQ(store_->PutToken(hash, kT0).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(store_->ConsumeToken(hash, kT0).ok());
  absl::Status reuse = store_->ConsumeToken(hash, kT0 + kSecond);
  EXPECT_EQ(reuse.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reuse.message(), "token already used");
  absl::Status unknown = store_->ConsumeToken(std::string(32, '\x22'), kT0);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "unknown token");

  const std::string old(32, '\x33');
  ASSERT_TRUE(store_->PutToken(old, kT0).ok());
  absl::Status expired = store_->ConsumeToken(old, kT0);  // expiry is exclusive
  EXPECT_EQ(expired.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(expired.message(), "token expired");

  // Use is durable.
  Reopen();
  EXPECT_EQ(store_->ConsumeToken(hash, kT0).message(), "token already used");
}

TEST_F(StoreTest, TokenConsumedOnceUnderConcurrency) {
  const std::string hash(32, '\x44');
  ASSERT_TRUE(store_->PutToken(hash, kT0 + 60 * kSecond).ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (store_->ConsumeToken(hash, kT0).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
}

TEST_F(StoreTest, AgentsPutGetList) {
  EXPECT_FALSE(store_->GetAgent("a1")->has_value());
  AgentInfo a1;
  a1.set_agent_id("a1");
  a1.set_hostname("pc-1");
  a1.set_version("0.1.0");
  AgentInfo a0;
  a0.set_agent_id("a0");
  a0.set_hostname("pc-0");
  ASSERT_TRUE(store_->PutAgent(a1).ok());
  ASSERT_TRUE(store_->PutAgent(a0).ok());
  a1.set_last_seen_ns(kT0);
  ASSERT_TRUE(store_->PutAgent(a1).ok());  // replaces
  auto got = store_->GetAgent("a1");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->hostname(), "pc-1");
  EXPECT_EQ((*got)->last_seen_ns(), kT0);
  std::vector<std::string> ids;
  ASSERT_TRUE(store_
                  ->ListAgents([&](const AgentInfo& a) {
                    ids.push_back(a.agent_id());
                    return true;
                  })
                  .ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"a0", "a1"}));
  EXPECT_EQ(store_->PutAgent(AgentInfo()).code(), absl::StatusCode::kInvalidArgument);
}

// The streams' coalesced registry writes: only existing entries, a revocation stays.
TEST_F(StoreTest, UpdateAgentsKeepsRevocationAndNeverRecreates) {
  AgentInfo a1;
  a1.set_agent_id("a1");
  a1.set_revoked(true);
  ASSERT_TRUE(store_->PutAgent(a1).ok());
  AgentInfo a2;
  a2.set_agent_id("a2");
  ASSERT_TRUE(store_->PutAgent(a2).ok());

  AgentInfo stale1 = a1;  // a stream's copy from before the revocation
  stale1.set_revoked(false);
  stale1.set_events(500);
  AgentInfo seen2 = a2;
  seen2.set_last_seen_ns(kT0);
  AgentInfo gone;  // not (or no longer) in the registry
  gone.set_agent_id("a3");
  gone.set_events(7);
  auto written = store_->UpdateAgents({stale1, seen2, gone}, /*sync=*/false);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 2u);
  auto got1 = store_->GetAgent("a1");
  ASSERT_TRUE(got1.ok() && got1->has_value());
  EXPECT_TRUE((*got1)->revoked());
  EXPECT_EQ((*got1)->events(), 500u);
  EXPECT_EQ((*store_->GetAgent("a2"))->last_seen_ns(), kT0);
  EXPECT_FALSE(store_->GetAgent("a3")->has_value());
  EXPECT_EQ(store_->UpdateAgents({AgentInfo()}, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, IncidentsAndAppendOnlyAudit) {
  EXPECT_FALSE(store_->GetIncident("INC-2026-0001")->has_value());
  ASSERT_TRUE(store_
                  ->PutIncidents({.incidents = {{"INC-2026-0002", R"({"state":"new"})"},
                                                {"INC-2026-0001", R"({"state":"triage"})"}},
                                  .audit = {{1, R"({"action":"a"})"}, {2, R"({"action":"b"})"}}})
                  .ok());
  ASSERT_TRUE(store_
                  ->PutIncidents({.incidents = {{"INC-2026-0001", R"({"state":"closed"})"}},
                                  .audit = {{3, R"({"action":"c"})"}}})
                  .ok());
  // An existing seq refuses the whole write.
  absl::Status again = store_->PutIncidents(
      {.incidents = {{"INC-2026-0003", "{}"}}, .audit = {{2, R"({"action":"forged"})"}}});
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(store_->GetIncident("INC-2026-0003")->has_value());

  Reopen();
  EXPECT_EQ(**store_->GetIncident("INC-2026-0001"), R"({"state":"closed"})");
  std::vector<std::string> ids;
  ASSERT_TRUE(store_
                  ->ListIncidents([&](std::string_view id, std::string_view) {
                    ids.emplace_back(id);
                    return true;
                  })
                  .ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"INC-2026-0001", "INC-2026-0002"}));
  std::vector<std::pair<uint64_t, std::string>> audit;
  ASSERT_TRUE(store_
                  ->ListAudit(2,
                              [&](uint64_t seq, std::string_view json) {
                                audit.emplace_back(seq, json);
                                return true;
                              })
                  .ok());
  EXPECT_EQ(audit, (std::vector<std::pair<uint64_t, std::string>>{{2, R"({"action":"b"})"},
                                                                  {3, R"({"action":"c"})"}}));
}

TEST_F(StoreTest, IncidentItemsAppendRewriteAndListInOrder) {
  using Item = std::tuple<char, uint64_t, std::string>;
  auto list = [&](const std::string& id) {
    std::vector<Item> out;
    EXPECT_TRUE(store_
                    ->ListIncidentItems(id,
                                        [&](char kind, uint64_t seq, std::string_view json) {
                                          out.emplace_back(kind, seq, std::string(json));
                                          return true;
                                        })
                    .ok());
    return out;
  };
  // Ids that are prefixes of each other keep apart (length-prefixed keys).
  IncidentWrite first;
  first.incidents = {{"INC-2026-0001", "{}"}, {"INC-2026-00011", "{}"}};
  first.items = {{"INC-2026-0001", 't', 0, "t0"},
                 {"INC-2026-0001", 'a', 1, "a1"},
                 {"INC-2026-0001", 'a', 0, "a0"},
                 {"INC-2026-00011", 'a', 0, "other"},
                 {"INC-2026-0001", 'a', 256, "a256"}};
  ASSERT_TRUE(store_->PutIncidents(first).ok());
  EXPECT_EQ(
      list("INC-2026-0001"),
      (std::vector<Item>{{'a', 0, "a0"}, {'a', 1, "a1"}, {'a', 256, "a256"}, {'t', 0, "t0"}}));
  // A rewrite: the clear runs before the puts of the same write, and only for that id.
  IncidentWrite rewrite;
  rewrite.incidents = {{"INC-2026-0001", R"({"v":2})"}};
  rewrite.clear_items = {"INC-2026-0001"};
  rewrite.items = {{"INC-2026-0001", 'a', 0, "new a0"}};
  ASSERT_TRUE(store_->PutIncidents(rewrite).ok());
  Reopen();
  EXPECT_EQ(list("INC-2026-0001"), (std::vector<Item>{{'a', 0, "new a0"}}));
  EXPECT_EQ(list("INC-2026-00011"), (std::vector<Item>{{'a', 0, "other"}}));
  EXPECT_TRUE(list("INC-2026-0002").empty());
  EXPECT_EQ(**store_->GetIncident("INC-2026-0001"), R"({"v":2})");
  // A refused write (audit seq taken) writes no item either.
  ASSERT_TRUE(store_->PutIncidents({.incidents = {}, .audit = {{1, "{}"}}}).ok());
  IncidentWrite refused;
  refused.audit = {{1, "{}"}};
  refused.clear_items = {"INC-2026-00011"};
  refused.items = {{"INC-2026-0001", 'a', 1, "x"}};
  EXPECT_EQ(store_->PutIncidents(refused).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(list("INC-2026-0001").size(), 1u);
  EXPECT_EQ(list("INC-2026-00011").size(), 1u);
  IncidentWrite no_id;
  no_id.items = {{"", 'a', 0, "x"}};
  EXPECT_EQ(store_->PutIncidents(no_id).code(), absl::StatusCode::kInvalidArgument);
}

EventRecord FileRecord(const std::string& agent, uint64_t seq, const std::string& path,
                       const std::string& sha256, siper::v1::FileChange change) {
  EventRecord r;
  r.event.set_agent_id(agent);
  r.event.set_seq(seq);
  r.event.mutable_file()->set_path(path);
  r.event.mutable_file()->set_sha256(sha256);
  r.event.mutable_file()->set_change(change);
  return r;
}

TEST_F(StoreTest, FileInventoryKeepsTheNewestStatePerPathAndIndexesHashes) {
  const std::string h1(64, '1'), h2(64, '2'), h3(64, '3');
  using siper::v1::FILE_CHANGE_BASELINE;
  using siper::v1::FILE_CHANGE_DELETED;
  using siper::v1::FILE_CHANGE_MODIFIED;
  MustWrite("a1", {FileRecord("a1", 1, "/etc/passwd", h1, FILE_CHANGE_BASELINE),
                   FileRecord("a1", 2, "/etc/shadow", h2, FILE_CHANGE_BASELINE),
                   FileRecord("a1", 3, "/etc/passwd", h3, FILE_CHANGE_MODIFIED)});
  MustWrite("a2", {FileRecord("a2", 1, "/usr/bin/evil", h3, FILE_CHANGE_BASELINE)});
  auto state = store_->GetFileState("a1", "/etc/passwd");
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_TRUE(state->has_value());
  EXPECT_EQ((*state)->seq(), 3u);
  EXPECT_EQ((*state)->file().sha256(), h3);

  auto by_hash = [&](const std::string& h) {
    std::vector<std::string> out;
    EXPECT_TRUE(store_
                    ->FindFilesByHash(h,
                                      [&](const Event& e) {
                                        out.push_back(e.agent_id() + ":" + e.file().path());
                                        return true;
                                      })
                    .ok());
    return out;
  };
  using Strs = std::vector<std::string>;
  EXPECT_TRUE(by_hash(h1).empty());  // replaced within the same batch
  EXPECT_EQ(by_hash(h3), (Strs{"a1:/etc/passwd", "a2:/usr/bin/evil"}));

  // A resent older state does not go back; a deletion leaves the hash index.
  MustWrite("a1", {FileRecord("a1", 4, "/etc/shadow", "", FILE_CHANGE_DELETED)});
  std::vector<EventRecord> late = {FileRecord("a1", 0, "/etc/passwd", h1, FILE_CHANGE_BASELINE)};
  ASSERT_TRUE(store_->Write("a1", late).ok());
  EXPECT_EQ((*store_->GetFileState("a1", "/etc/passwd"))->file().sha256(), h3);
  EXPECT_TRUE(by_hash(h2).empty());
  Strs files;
  ASSERT_TRUE(store_
                  ->ListFiles("a1",
                              [&](const Event& e) {
                                files.push_back(e.file().path() + ":" +
                                                siper::v1::FileChange_Name(e.file().change()));
                                return true;
                              })
                  .ok());
  EXPECT_EQ(files, (Strs{"/etc/passwd:FILE_CHANGE_MODIFIED", "/etc/shadow:FILE_CHANGE_DELETED"}));
  EXPECT_FALSE(store_->GetFileState("a1", "/nope")->has_value());
  EXPECT_FALSE(store_->GetFileState("nobody", "/etc/passwd")->has_value());
}

TEST_F(StoreTest, LastSeq) {
  EXPECT_EQ(*store_->LastSeq("a1"), 0u);
  MustWrite("a1", {LogRecord("a1", 7, "x"), LogRecord("a1", 3, "y")});
  MustWrite("a1", {LogRecord("a1", 5, "z")});
  MustWrite("a2", {LogRecord("a2", 100, "z")});
  EXPECT_EQ(*store_->LastSeq("a1"), 7u);
  EXPECT_EQ(*store_->LastSeq("a2"), 100u);
  Reopen();
  EXPECT_EQ(*store_->LastSeq("a1"), 7u);
  EXPECT_EQ(*store_->LastSeq("nobody"), 0u);
}

// Many writers, one agent, overlapping resends: each seq is stored exactly once.
TEST_F(StoreTest, ConcurrentWritersStoreEachSeqOnce) {
  constexpr int kThreads = 4;
  constexpr uint64_t kSeqs = 200;
  std::atomic<uint32_t> stored{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t start = 1; start <= kSeqs; start += 10) {
        std::vector<EventRecord> batch;
        for (uint64_t s = start; s < start + 10; ++s) {
          batch.push_back(LogRecord(t % 2 ? "a1" : "a2", s, "line"));
        }
        auto r = store_->Write(t % 2 ? "a1" : "a2", batch);
        ASSERT_TRUE(r.ok()) << r.status();
        stored += r->stored;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stored.load(), 2 * kSeqs);
  EXPECT_EQ(Search({}).size(), 2 * kSeqs);
}

TEST_F(StoreTest, RefusesNewerSchema) {
  Close();
  {
    RawDb raw(dir_ / "db");
    std::string v;
    keycodec::AppendUint32(&v, Store::kSchemaVersion + 1);
    ASSERT_TRUE(raw.db()->Put(rocksdb::WriteOptions(), raw.cf("meta"), "schema_version", v).ok());
  }
  auto s = Store::Open(dir_ / "db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(
      s.status().message().find("schema version " + std::to_string(Store::kSchemaVersion + 1)),
      std::string::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("newer"), std::string::npos);
}

// A family added by a newer version does not stop the schema check from
// giving its clear message.
TEST_F(StoreTest, OpensStoreWithUnknownColumnFamily) {
  Close();
  {
    RawDb raw(dir_ / "db");
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(raw.db()->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future", &h).ok());
    ASSERT_TRUE(raw.db()->DestroyColumnFamilyHandle(h).ok());
  }
  Reopen();
  MustWrite("a1", {LogRecord("a1", 1, "x")});
  EXPECT_EQ(Search({}).size(), 1u);
}

TEST_F(StoreTest, CorruptValueIsAnErrorNotACrash) {
  WriteFixture();
  AgentInfo a;
  a.set_agent_id("a1");
  ASSERT_TRUE(store_->PutAgent(a).ok());
  Close();
  {
    RawDb raw(dir_ / "db");
    std::vector<std::string> event_keys = raw.Keys("events");
    ASSERT_EQ(event_keys.size(), 6u);
    std::vector<std::string> alert_keys = raw.Keys("alerts");
    ASSERT_EQ(alert_keys.size(), 4u);
    const std::string garbage("\xff\xff\xff\xff\x0f garbage", 13);
    ASSERT_TRUE(
        raw.db()->Put(rocksdb::WriteOptions(), raw.cf("events"), event_keys[2], garbage).ok());
    ASSERT_TRUE(
        raw.db()->Put(rocksdb::WriteOptions(), raw.cf("alerts"), alert_keys[0], garbage).ok());
    ASSERT_TRUE(raw.db()->Put(rocksdb::WriteOptions(), raw.cf("agents"), "a1", garbage).ok());
    // An index entry whose event is gone.
    ASSERT_TRUE(raw.db()->Delete(rocksdb::WriteOptions(), raw.cf("events"), event_keys[5]).ok());
  }
  Reopen();
  auto noop_event = [](const Event&) { return true; };
  absl::Status s = store_->SearchEvents({}, noop_event);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("events"), std::string::npos) << s;
  // Reading up to the damaged record works.
  EXPECT_EQ(SearchIds({.limit = 2}).size(), 2u);
  s = store_->ListAlerts({}, [](const Alert&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(store_->GetAgent("a1").status().code(), absl::StatusCode::kDataLoss);
  s = store_->SearchEvents({.agent_id = "a2", .newest_first = true}, noop_event);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("not stored"), std::string::npos) << s;
}

// An alert's fields come from one accessor: its views themselves when given (no copy), else
// views of its own protobuf map in the caller's scratch vector (cleared first).
TEST(EventRecordTest, AlertFieldsAreTheViewsOrTheAlertsOwnMap) {
  using Entry = std::pair<std::string_view, std::string_view>;
  const std::vector<Entry> entries = {{"source.ip", "10.0.0.5"}, {"host.hostname", "web1"}};
  EventRecord r;
  r.alerts.resize(3);
  r.alerts[1].mutable_fields()->insert({"user.name", "root"});
  r.alerts[2].mutable_fields()->insert({"process.name", "sshd"});
  r.alert_fields.push_back({entries, nullptr});  // alert 0: views
  r.alert_fields.push_back({});                  // alert 1: empty views, its own map
  // alert 2: no entry in alert_fields, its own map

  std::vector<Entry> scratch = {{"stale", "entry"}};
  std::span<const Entry> views = r.AlertFields(0, &scratch);
  EXPECT_EQ(views.data(), entries.data());
  EXPECT_EQ(views.size(), entries.size());
  EXPECT_TRUE(scratch.empty());

  for (size_t i : {size_t{1}, size_t{2}}) {
    SCOPED_TRACE(i);
    std::span<const Entry> own = r.AlertFields(i, &scratch);
    ASSERT_EQ(own.size(), 1u);
    EXPECT_EQ(own.data(), scratch.data());
    const auto& [name, value] = *r.alerts[i].fields().begin();
    // Views of the map's own strings, not copies.
    EXPECT_EQ(own[0].first.data(), name.data());
    EXPECT_EQ(own[0].second.data(), value.data());
    EXPECT_EQ(own[0].second, i == 1 ? "root" : "sshd");
  }

  scratch = {{"stale", "entry"}};
  EXPECT_TRUE(r.AlertFields(3, &scratch).empty());  // no such alert
  EXPECT_TRUE(scratch.empty());
  r.alerts[1].clear_fields();
  EXPECT_TRUE(r.AlertFields(1, &scratch).empty());
}

}  // namespace
}  // namespace siper::storage::testutil

// Shared fixture of storage_test: a Store in a fresh temporary directory, and
// raw RocksDB access to damage it the way a bad disk or an attacker would.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/key_codec.h"
#include "rocksdb/db.h"
#include "server/storage/store.h"
#include "tests/storage/raw_db.h"

namespace siper::storage::testutil {

namespace fs = std::filesystem;
using siper::v1::AgentInfo;
using siper::v1::Alert;
using siper::v1::Event;

inline constexpr int64_t kSecond = 1'000'000'000;
inline constexpr int64_t kT0 = 1'700'000'000 * kSecond;

inline EventRecord LogRecord(const std::string& agent, uint64_t seq, const std::string& line,
                             int64_t server_time_ns = 0) {
  EventRecord r;
  r.event.set_agent_id(agent);
  r.event.set_seq(seq);
  r.event.set_agent_time_ns(kT0);
  r.event.set_server_time_ns(server_time_ns);
  r.event.mutable_log()->set_source("/var/log/auth.log");
  r.event.mutable_log()->set_line(line);
  return r;
}

inline Alert MakeAlert(const std::string& rule, const std::string& level) {
  Alert a;
  a.set_rule_id(rule);
  a.set_title("title of " + rule);
  a.set_level(level);
  return a;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "siper_storage_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(dir_ / "db");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
  }
  void Close() { store_.reset(); }

  WriteResult MustWrite(const std::string& agent, std::vector<EventRecord> records) {
    auto r = store_->Write(agent, records);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : WriteResult{};
  }

  std::vector<Event> Search(const EventQuery& q) {
    std::vector<Event> out;
    absl::Status s = store_->SearchEvents(q, [&](const Event& e) {
      out.push_back(e);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }
  // (agent_id, seq) of the events a query returns, in order.
  std::vector<std::pair<std::string, uint64_t>> SearchIds(const EventQuery& q) {
    std::vector<std::pair<std::string, uint64_t>> ids;
    for (const Event& e : Search(q)) ids.emplace_back(e.agent_id(), e.seq());
    return ids;
  }
  std::vector<Alert> Alerts(const AlertQuery& q) {
    std::vector<Alert> out;
    absl::Status s = store_->ListAlerts(q, [&](const Alert& a) {
      out.push_back(a);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // Three agents' events at known times, with alerts:
  //   a1 seq 1..4 at t0+1s..t0+4s, a2 seq 1..2 at t0+2.5s, t0+5s.
  //   a1/2 raised ssh-brute (high) and sudo (medium); a1/4 ssh-brute (low);
  //   a2/2 ssh-brute (critical).
  void WriteFixture() {
    std::vector<EventRecord> a1;
    for (uint64_t s = 1; s <= 4; ++s) {
      a1.push_back(LogRecord("a1", s, "a1 line " + std::to_string(s) + (s % 2 ? " odd" : " even"),
                             kT0 + static_cast<int64_t>(s) * kSecond));
    }
    a1[1].alerts = {MakeAlert("ssh-brute", "high"), MakeAlert("sudo", "medium")};
    a1[3].alerts = {MakeAlert("ssh-brute", "low")};
    MustWrite("a1", std::move(a1));
    std::vector<EventRecord> a2 = {LogRecord("a2", 1, "a2 first", kT0 + 2 * kSecond + kSecond / 2),
                                   LogRecord("a2", 2, "a2 second odd", kT0 + 5 * kSecond)};
    a2[1].alerts = {MakeAlert("ssh-brute", "critical")};
    MustWrite("a2", std::move(a2));
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
};

using Ids = std::vector<std::pair<std::string, uint64_t>>;

// What a scan and filter of `all` (in event-key order) returns for `q`: time range,
// agent, text and field equality; no limit, no cursor. The reference for searches.
inline Ids ExpectedIds(const std::vector<Event>& all, const EventQuery& q) {
  Ids ids;
  for (const Event& e : all) {
    if (q.since_ns != 0 && e.server_time_ns() < q.since_ns) continue;
    if (q.until_ns != 0 && e.server_time_ns() >= q.until_ns) continue;
    if (!q.agent_id.empty() && e.agent_id() != q.agent_id) continue;
    if (e.log().line().find(q.text) == std::string::npos) continue;
    bool match = true;
    for (const auto& [k, v] : q.fields) {
      auto it = e.fields().find(k);
      match = match && it != e.fields().end() && it->second == v;
    }
    if (match) ids.emplace_back(e.agent_id(), e.seq());
  }
  if (q.newest_first) std::reverse(ids.begin(), ids.end());
  return ids;
}

// Pages through a query `page` events at a time with cursors.
inline Ids PageThrough(Store& store, EventQuery q, uint64_t page) {
  Ids all;
  q.limit = page;
  for (int round = 0; round < 100; ++round) {
    std::vector<Event> got;
    EXPECT_TRUE(store
                    .SearchEvents(q,
                                  [&](const Event& e) {
                                    got.push_back(e);
                                    return true;
                                  })
                    .ok());
    for (const Event& e : got) all.emplace_back(e.agent_id(), e.seq());
    if (got.size() < page) break;
    auto cursor = store.EventCursor(got.back());
    EXPECT_TRUE(cursor.ok()) << cursor.status();
    q.cursor = *cursor;
  }
  return all;
}

// What `events count --by` reports, counted from the events themselves.
inline FieldCount CountByScan(const std::vector<siper::v1::Event>& all, const std::string& field,
                              int64_t since, int64_t until, const std::string& agent) {
  FieldCount c;
  for (const siper::v1::Event& e : all) {
    if (since != 0 && e.server_time_ns() < since) continue;
    if (until != 0 && e.server_time_ns() >= until) continue;
    if (!agent.empty() && e.agent_id() != agent) continue;
    ++c.events;
    auto it = e.fields().find(field);
    if (it != e.fields().end()) ++c.values[it->second];
  }
  return c;
}

// Store::CountIndexedField answers exactly what CountByScan counts.
inline void ExpectCountLikeAScan(Store& store, const std::vector<siper::v1::Event>& all,
                                 const std::string& field, int64_t since, int64_t until,
                                 const std::string& agent) {
  auto got = store.CountIndexedField(field, since, until, agent);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  const FieldCount want = CountByScan(all, field, since, until, agent);
  EXPECT_EQ((*got)->events, want.events);
  EXPECT_EQ((*got)->values, want.values);
}

}  // namespace siper::storage::testutil

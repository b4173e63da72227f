// Memtable insert hints (server/storage/memtable_hints.h): RocksDB 7.8 shares one
// hint per prefix between a memtable's point keys and its range tombstones and
// aborts when a DeleteRange starts at a key in the hint's domain. These tests
// keep every retention range outside the domains, and run retention and writes
// of every hinted family through one memtable (and its WAL replay).
#include "server/storage/memtable_hints.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "server/storage/keys.h"
#include "server/storage/store.h"
#include "server/storage/store_impl.h"
#include "tests/storage/store_fixture.h"

namespace siper::storage::testutil {
namespace {

constexpr int64_t kDay = 24 * 3600 * kSecond;
constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();

std::string Prefix(size_t cf, const std::string& key) {
  auto hint = internal::InsertHintPrefix(cf);
  return hint == nullptr ? "<none>" : hint->Transform(key).ToString();
}
bool InDomain(size_t cf, const std::string& key) {
  auto hint = internal::InsertHintPrefix(cf);
  return hint != nullptr && hint->InDomain(key);
}

TEST(MemtableHintsTest, CompleteKeysAreHintedUnderTheirPrefix) {
  const std::string event = keys::EventKey(kT0, 7, 42);
  const std::string alert = keys::AlertKey(event, 1);
  EXPECT_TRUE(InDomain(internal::kEvents, event));
  EXPECT_EQ(Prefix(internal::kEvents, event), "");
  EXPECT_TRUE(InDomain(internal::kAlerts, alert));
  EXPECT_TRUE(InDomain(internal::kEventSeq, keys::EventSeqKey(7, 42)));
  EXPECT_EQ(Prefix(internal::kEventSeq, keys::EventSeqKey(7, 42)), keys::AgentPrefix(7));
  EXPECT_TRUE(InDomain(internal::kEventsByAgent, keys::EventByAgentKey(7, kT0, 42)));
  EXPECT_EQ(Prefix(internal::kEventsByAgent, keys::EventByAgentKey(7, kT0, 42)),
            keys::AgentPrefix(7));
  EXPECT_TRUE(InDomain(internal::kAlertsByAgent, keys::AlertByAgentKey(7, alert)));
  const std::string field_prefix =
      keys::FieldIndexPrefix(keys::HourOf(kT0), "source.ip", "10.0.0.1");
  EXPECT_TRUE(InDomain(internal::kEventsByField, field_prefix + event));
  EXPECT_EQ(Prefix(internal::kEventsByField, field_prefix + event), field_prefix);
  EXPECT_TRUE(InDomain(internal::kAlertsByRule, keys::RulePrefix("ssh-brute") + alert));
  EXPECT_EQ(Prefix(internal::kAlertsByRule, keys::RulePrefix("ssh-brute") + alert),
            keys::RulePrefix("ssh-brute"));
  // The chain gets range deletes from a complete key: no hint.
  EXPECT_EQ(internal::InsertHintPrefix(internal::kChain), nullptr);
}

TEST(MemtableHintsTest, RetentionRangesStartOutsideTheDomains) {
  // The begin keys ApplyRetention (chain_ops.cc) gives DeleteRange.
  EXPECT_FALSE(InDomain(internal::kEvents, keys::TimeBound("", kMinTime)));
  EXPECT_FALSE(InDomain(internal::kAlerts, keys::TimeBound("", kMinTime)));
  EXPECT_FALSE(InDomain(internal::kEventsByField, keys::HourPrefix(0)));
  EXPECT_FALSE(InDomain(internal::kEventsByAgent, keys::TimeBound(keys::AgentPrefix(7), kMinTime)));
  EXPECT_FALSE(InDomain(internal::kAlertsByAgent, keys::TimeBound(keys::AgentPrefix(7), kMinTime)));
  EXPECT_FALSE(InDomain(internal::kEventSeq, keys::EventSeqKey(7, 0)));
  EXPECT_FALSE(
      InDomain(internal::kAlertsByRule, keys::TimeBound(keys::RulePrefix("ssh-brute"), kMinTime)));
  // Truncated or malformed keys are not hinted either (no out-of-range reads).
  EXPECT_FALSE(InDomain(internal::kEventsByField, std::string("\0\0\0\1\0\0\0\xff", 8)));
  EXPECT_FALSE(InDomain(internal::kAlertsByRule, std::string("\0\0", 2)));
}

class MemtableHintsStoreTest : public StoreTest {
 protected:
  // A batch of `agent` with an indexed field and an alert of rule r1 per event.
  void WriteBatch(const std::string& agent, uint64_t first, int n, int64_t time) {
    std::vector<EventRecord> batch;
    for (int i = 0; i < n; ++i) {
      const uint64_t seq = first + static_cast<uint64_t>(i);
      batch.push_back(LogRecord(agent, seq, "line " + std::to_string(seq), time));
      (*batch.back().event.mutable_fields())["source.ip"] = "10.0.0." + std::to_string(i % 3);
      batch.back().alerts.push_back(MakeAlert("r1", "high"));
    }
    MustWrite(agent, std::move(batch));
  }
};

// Range tombstones and point keys of the same prefixes in one memtable, then
// the same again from the WAL on reopen: with a hint domain that took a
// tombstone's begin key, RocksDB aborts here.
TEST_F(MemtableHintsStoreTest, RetentionAndWritesShareAMemtable) {
  const int64_t now = kT0 + 1000 * kDay;
  WriteBatch("a1", 1, 5, now - 800 * kDay);
  WriteBatch("a2", 1, 5, now - 800 * kDay);
  WriteBatch("a1", 6, 5, now - kSecond);
  auto r = store_->ApplyRetention(RetentionOptions{}, now);
  ASSERT_TRUE(r.ok()) << r.status();
  WriteBatch("a1", 11, 5, now);
  WriteBatch("a2", 6, 5, now);
  r = store_->ApplyRetention(RetentionOptions{}, now + kSecond);
  ASSERT_TRUE(r.ok()) << r.status();
  WriteBatch("a2", 11, 5, now + kSecond);
  Reopen();  // replays the WAL: tombstones and puts into one new memtable
  WriteBatch("a1", 16, 5, now + 2 * kSecond);
  WriteBatch("a2", 16, 5, now + 2 * kSecond);

  EXPECT_EQ(SearchIds({.agent_id = "a1"}).size(), 15u);  // 6..20
  EXPECT_EQ(SearchIds({.agent_id = "a2"}).size(), 15u);  // 6..20
  EXPECT_EQ(SearchIds({.rule_id = "r1"}).size(), 30u);
  EXPECT_EQ(SearchIds({.fields = {{"source.ip", "10.0.0.1"}}}).size(),
            12u);  // two per batch, six batches kept
  EXPECT_EQ(Alerts({.agent_id = "a2"}).size(), 15u);
  EXPECT_EQ(*store_->LastSeq("a1"), 20u);
  EXPECT_EQ(MustWrite("a1", {LogRecord("a1", 7, "again")}).duplicates, 1u);
  auto report = store_->Verify(0);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok) << report->message;
}

}  // namespace
}  // namespace siper::storage::testutil

// Engine behaviour: log-source routing, correlation windows, suppression,
// matchers on several threads.
#include "rules/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "rules/decoder.h"

namespace siper::rules {
namespace {

constexpr char kBase[] = R"(
title: failed
id: base-1
name: failed_login
logsource: {product: linux, service: sshd}
detection:
  s:
    event.action: ssh_login
    event.outcome: failure
  condition: s
level: low
)";

std::string Failed(int minute, int second, const std::string& ip,
                   const std::string& user = "root") {
  char ts[32];
  std::snprintf(ts, sizeof ts, "Nov 28 10:%02d:%02d", minute, second);
  return std::string(ts) + " h sshd[1]: Failed password for " + user + " from " + ip +
         " port 22 ssh2";
}

std::shared_ptr<const RuleSet> Load(const std::string& yaml) {
  auto rs = RuleSet::LoadFromString(yaml, "t.yml");
  EXPECT_TRUE(rs.ok()) << rs.status();
  return rs.ok() ? *rs : nullptr;
}

int CountRule(Matcher* m, const std::vector<std::string>& lines, const std::string& id,
              std::vector<uint32_t>* counts = nullptr) {
  int n = 0;
  for (const auto& l : lines) {
    auto found = m->Process(l, "", InputFormat::kAuto);
    EXPECT_TRUE(found.ok());
    for (const auto& d : *found) {
      if (d.rule_id == id) {
        ++n;
        if (counts) counts->push_back(d.count);
      }
    }
  }
  return n;
}

TEST(EngineTest, LogSourceRouting) {
  auto rs = Load(std::string(kBase) + R"(---
title: windows only
id: win-1
logsource: {product: windows}
detection:
  s:
    event.action: ssh_login
  condition: s
---
title: web only
id: web-1
logsource: {category: webserver}
detection:
  keywords: ['Failed password']
  condition: keywords
)");
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->rule_count(), 3u);
  auto m = Matcher::Create(rs);
  auto found = (*m)->Process(Failed(0, 0, "192.0.2.1"), "", InputFormat::kSyslog);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "base-1");
  EXPECT_EQ((*found)[0].fields.at("source.ip"), "192.0.2.1");
}

TEST(EngineTest, EventCountFiresOncePerWindowAndGroup) {
  auto rs = Load(std::string(kBase) + R"(---
title: brute
id: corr-1
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 5m
  condition: {gte: 3}
level: high
)");
  ASSERT_NE(rs, nullptr);
  auto m = Matcher::Create(rs);
  std::vector<std::string> lines;
  for (int i = 0; i < 10; ++i) lines.push_back(Failed(0, i, "192.0.2.1"));  // window 1
  lines.push_back(Failed(0, 30, "192.0.2.2"));                              // other group
  lines.push_back(Failed(0, 31, "192.0.2.2"));
  for (int i = 0; i < 3; ++i) lines.push_back(Failed(6, i, "192.0.2.1"));  // window 2
  std::vector<uint32_t> counts;
  EXPECT_EQ(CountRule(m->get(), lines, "corr-1", &counts), 2);
  EXPECT_EQ(counts, (std::vector<uint32_t>{3, 3}));
  // Without generate: true the base rule is silent.
  auto again = Matcher::Create(rs);
  EXPECT_EQ(CountRule(again->get(), lines, "base-1"), 0);
}

TEST(EngineTest, ValueCountCountsDistinctUsers) {
  auto rs = Load(std::string(kBase) + R"(---
title: sweep
id: corr-2
correlation:
  type: value_count
  rules: [base-1]
  group-by: [source.ip]
  timespan: 10m
  condition: {gte: 3, field: user.name}
  generate: true
level: high
)");
  ASSERT_NE(rs, nullptr);
  auto m = Matcher::Create(rs);
  std::vector<std::string> lines = {Failed(0, 1, "192.0.2.9", "a"), Failed(0, 2, "192.0.2.9", "a"),
                                    Failed(0, 3, "192.0.2.9", "b"), Failed(0, 4, "192.0.2.9", "c"),
                                    Failed(0, 5, "192.0.2.9", "d")};
  EXPECT_EQ(CountRule(m->get(), lines, "corr-2"), 1);
  auto again = Matcher::Create(rs);
  EXPECT_EQ(CountRule(again->get(), lines, "base-1"), 5);  // generate: true
}

TEST(EngineTest, TemporalOrderedNeedsTheOrder) {
  auto rs = Load(std::string(kBase) + R"(---
title: ok
id: base-2
name: accepted
logsource: {product: linux, service: sshd}
detection:
  s:
    event.outcome: success
  condition: s
---
title: success after failure
id: corr-3
correlation:
  type: temporal_ordered
  rules: [failed_login, accepted]
  group-by: [source.ip]
  timespan: 10m
level: high
)");
  ASSERT_NE(rs, nullptr);
  std::string ok =
      "Nov 28 10:03:00 h sshd[1]: Accepted password for root from 192.0.2.1 port 22 ssh2";
  std::string ok_early =
      "Nov 28 09:59:00 h sshd[1]: Accepted password for root from 192.0.2.1 port 22 ssh2";
  auto m = Matcher::Create(rs);
  EXPECT_EQ(CountRule(m->get(), {Failed(0, 0, "192.0.2.1"), ok}, "corr-3"), 1);
  auto m2 = Matcher::Create(rs);
  EXPECT_EQ(CountRule(m2->get(), {ok_early, Failed(0, 0, "192.0.2.1")}, "corr-3"), 0);
  auto m3 = Matcher::Create(rs);
  std::string other =
      "Nov 28 10:03:00 h sshd[1]: Accepted password for root from 192.0.2.7 port 22 ssh2";
  EXPECT_EQ(CountRule(m3->get(), {Failed(0, 0, "192.0.2.1"), other}, "corr-3"), 0);
}

// The documents of a rule collection share its id: a correlation naming the id
// counts the matches of every document (before, only the first document's).
TEST(EngineTest, CorrelationOverARuleCollectionCountsEveryDocument) {
  auto rs = Load(R"(
action: global
title: failed sshd logins
id: coll-1
logsource: {product: linux, service: sshd}
level: low
---
detection:
  k:
    - 'Failed password'
  condition: k
---
detection:
  k:
    - 'Invalid user'
  condition: k
---
action: reset
---
title: accepted
id: acc-1
logsource: {product: linux, service: sshd}
detection:
  s:
    event.outcome: success
  condition: s
level: low
---
title: four failures of either kind
id: corr-count
correlation:
  type: event_count
  rules: [coll-1]
  group-by: [source.ip]
  timespan: 10m
  condition: {gte: 4}
level: high
---
title: a failure of either kind, then a success
id: corr-then
correlation:
  type: temporal_ordered
  rules: [coll-1, acc-1]
  group-by: [source.ip]
  timespan: 10m
level: high
)");
  ASSERT_NE(rs, nullptr);
  const std::string invalid1 =
      "Nov 28 10:00:03 h sshd[1]: Invalid user admin from 192.0.2.9 port 22";
  const std::string invalid2 =
      "Nov 28 10:00:04 h sshd[1]: Invalid user test from 192.0.2.9 port 22";
  const std::string ok =
      "Nov 28 10:00:09 h sshd[1]: Accepted password for root from 192.0.2.9 port 22 ssh2";
  auto m = Matcher::Create(rs);
  EXPECT_EQ(CountRule(m->get(),
                      {Failed(0, 1, "192.0.2.9"), Failed(0, 2, "192.0.2.9"), invalid1, invalid2},
                      "corr-count"),
            1);
  auto m2 = Matcher::Create(rs);
  EXPECT_EQ(CountRule(m2->get(), {invalid1, ok}, "corr-then"), 1);
  auto m3 = Matcher::Create(rs);
  EXPECT_EQ(CountRule(m3->get(), {ok, invalid1}, "corr-then"), 0);
}

TEST(EngineTest, SuppressionKeepsOneAlertPerWindow) {
  auto rs = Load(R"(
title: failed
id: sup-1
logsource: {product: linux, service: sshd}
detection:
  s:
    event.outcome: failure
  condition: s
level: low
siper:
  rsit: {class: intrusion-attempts, type: brute-force}
  suppress: {by: [source.ip], window: 1m}
)");
  ASSERT_NE(rs, nullptr);
  auto m = Matcher::Create(rs);
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) lines.push_back(Failed(0, i, "192.0.2.1"));
  lines.push_back(Failed(0, 21, "192.0.2.2"));
  lines.push_back(Failed(2, 0, "192.0.2.1"));
  EXPECT_EQ(CountRule(m->get(), lines, "sup-1"), 3);
}

TEST(EngineTest, CorrelationErrors) {
  auto missing = RuleSet::LoadFromString(R"(
title: c
id: c
correlation: {type: event_count, rules: [nope], group-by: [a], timespan: 1m, condition: {gte: 2}}
)",
                                         "c.yml");
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ((*missing)->skipped().size(), 1u);
  EXPECT_NE((*missing)->skipped()[0].message.find("unknown rule 'nope'"), std::string::npos);
  auto bad_span = RuleSet::LoadFromString(R"(
title: c
id: c
correlation: {type: event_count, rules: [x], timespan: 5 minutes, condition: {gte: 2}}
)",
                                          "c.yml");
  EXPECT_FALSE(bad_span.ok());
}

TEST(EngineTest, MatchersOnSeveralThreadsShareOneRuleSet) {
  auto rs = Load(kBase);
  ASSERT_NE(rs, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto m = Matcher::Create(rs);
      for (int i = 0; i < 500; ++i) {
        auto found = (*m)->Process(Failed(1, i % 60, "192.0.2.3"), "", InputFormat::kAuto);
        if (found.ok()) hits[t] += static_cast<int>(found->size());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 500);
}

TEST(EngineTest, FieldsOutEvenWithoutMatch) {
  auto rs = Load(kBase);
  auto m = Matcher::Create(rs);
  FieldMap fields;
  auto found = (*m)->Process("Nov 28 10:00:00 h cron[2]: hello", "/var/log/syslog",
                             InputFormat::kAuto, &fields);
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->empty());
  EXPECT_EQ(fields.at("process.name"), "cron");
  EXPECT_EQ(fields.at("log.file.path"), "/var/log/syslog");
}

// The Matcher formats `@timestamp` only when something reads it (an alert's
// fields, the caller's fields, a rule that tests it); each time it is the text
// DecodeLine sets at once, and a value a decoder set itself is kept.
TEST(EngineTest, TimestampFormattedWhenReadAsDecodeLineSetsIt) {
  const std::string rfc5424 =
      "<165>1 2026-11-28T10:00:00.25Z host1 sshd 4242 - - Failed password for root from "
      "192.0.2.7 port 22 ssh2";
  const std::string bsd = Failed(1, 2, "192.0.2.8");
  const std::string cron = "Nov 28 10:00:00 h cron[2]: hello";
  auto eager = [](const std::string& line) {
    Event ev;
    EXPECT_TRUE(DecodeLine(line, "", InputFormat::kAuto, &ev).ok());
    EXPECT_FALSE(ev.timestamp_pending);
    return std::string(ev.fields.at("@timestamp"));
  };
  ASSERT_EQ(eager(rfc5424), "2026-11-28T10:00:00.25Z");
  ASSERT_FALSE(eager(bsd).empty());

  auto m = Matcher::Create(Load(kBase));
  ASSERT_TRUE(m.ok());
  for (const std::string& line : {rfc5424, bsd}) {
    DetectionFields snapshot;
    auto found = (*m)->Process(line, "", InputFormat::kAuto, &snapshot);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u) << line;
    EXPECT_EQ((*found)[0].fields.at("@timestamp"), eager(line)) << line;
    EXPECT_EQ(snapshot.at("@timestamp"), eager(line)) << line;
    EXPECT_EQ(std::count_if(snapshot.begin(), snapshot.end(),
                            [](const auto& f) { return f.first == "@timestamp"; }),
              1);
  }
  // Without an alert, for the caller: the map and the snapshot.
  FieldMap map;
  ASSERT_TRUE((*m)->Process(cron, "", InputFormat::kAuto, &map).ok());
  EXPECT_EQ(map.at("@timestamp"), eager(cron));
  DetectionFields snapshot;
  ASSERT_TRUE((*m)->Process(cron, "", InputFormat::kAuto, &snapshot).ok());
  EXPECT_EQ(snapshot.at("@timestamp"), eager(cron));

  // A rule that reads it sees it before matching.
  auto by_time = Matcher::Create(Load(R"(
title: at ten
id: ten
logsource: {product: linux}
detection: {s: {'@timestamp|startswith': '2026-11-28T10:00:00.2'}, condition: s}
level: low
)"));
  ASSERT_TRUE(by_time.ok());
  auto found = (*by_time)->Process(rfc5424, "", InputFormat::kAuto);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].rule_id, "ten");
  found = (*by_time)->Process(bsd, "", InputFormat::kAuto);
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->empty());

  // A field set after the time wins, as when it was formatted at once.
  Event ev;
  ev.defer_timestamp = true;
  ASSERT_TRUE(DecodeLine(rfc5424, "", InputFormat::kAuto, &ev).ok());
  EXPECT_TRUE(ev.timestamp_pending);
  EXPECT_EQ(ev.fields.count("@timestamp"), 0u);
  ev.fields.insert_or_assign("@timestamp", "set by a decoder");
  ResolveTimestamp(&ev);
  EXPECT_FALSE(ev.timestamp_pending);
  EXPECT_EQ(ev.fields.at("@timestamp"), "set by a decoder");
  ev.Clear();
  EXPECT_FALSE(ev.timestamp_pending);
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

TEST(DatabaseCacheTest, SecondLoadReadsEveryDatabaseAndMatchesTheSame) {
  std::filesystem::path cache =
      std::filesystem::temp_directory_path() / ("siper_hs_cache_" + std::to_string(::getpid()));
  std::filesystem::remove_all(cache);
  LoadOptions options;
  options.cache_dir = cache;
  const std::filesystem::path dir = std::filesystem::path(SIPER_SOURCE_DIR) / "rules/ruleset";
  auto first = RuleSet::Load(dir, options);
  ASSERT_TRUE(first.ok()) << first.status();
  // Two log sources may need the very same database; the second then comes from the cache.
  EXPECT_LT((*first)->stats().cache_hits, (*first)->stats().databases);
  auto second = RuleSet::Load(dir, options);
  ASSERT_TRUE(second.ok()) << second.status();
  RuleSetStats s1 = (*first)->stats(), s2 = (*second)->stats();
  EXPECT_GT(s2.databases, 0u);
  EXPECT_EQ(s2.cache_hits, s2.databases);
  EXPECT_EQ(s1.patterns, s2.patterns);
  EXPECT_EQ(s1.database_bytes, s2.database_bytes);
  // The second load also took the parsed rules from the cache: same rules, same tests.
  std::vector<RuleInfo> r1 = (*first)->rules(), r2 = (*second)->rules();
  ASSERT_EQ(r1.size(), r2.size());
  for (size_t i = 0; i < r1.size(); ++i) {
    EXPECT_EQ(r1[i].id, r2[i].id);
    EXPECT_EQ(r1[i].tags, r2[i].tags);
    EXPECT_EQ(r1[i].rsit_class, r2[i].rsit_class);
    ASSERT_EQ(r1[i].tests.size(), r2[i].tests.size());
    for (size_t t = 0; t < r1[i].tests.size(); ++t) {
      EXPECT_EQ(r1[i].tests[t].line, r2[i].tests[t].line);
      EXPECT_EQ(r1[i].tests[t].expect_fields, r2[i].tests[t].expect_fields);
    }
  }
  bool parsed_cache = false;
  for (const auto& f : std::filesystem::directory_iterator(cache)) {
    parsed_cache |= f.path().extension() == ".bin";
  }
  EXPECT_TRUE(parsed_cache);
  auto m1 = Matcher::Create(*first);
  auto m2 = Matcher::Create(*second);
  std::ifstream in(std::filesystem::path(SIPER_SOURCE_DIR) / "deploy/samples/attack.log");
  std::string line;
  while (std::getline(in, line)) {
    auto a = (*m1)->Process(line, "", InputFormat::kAuto);
    auto b = (*m2)->Process(line, "", InputFormat::kAuto);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size()) << line;
    for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].rule_id, (*b)[i].rule_id);
  }
  // A corrupt cache file is recompiled, not trusted.
  for (const auto& f : std::filesystem::directory_iterator(cache)) {
    std::ofstream(f.path(), std::ios::trunc) << "garbage";
  }
  auto third = RuleSet::Load(dir, options);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_LT((*third)->stats().cache_hits, (*third)->stats().databases);
  EXPECT_EQ((*third)->stats().database_bytes, s1.database_bytes);
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

TEST(CorrelationChainTest, SuccessAfterBruteForce) {
  auto rs = RuleSet::LoadFromString(R"(
title: failed
id: f
name: failed
logsource: {product: linux, service: sshd}
detection: {s: {event.outcome: failure}, condition: s}
---
title: ok
id: ok
name: accepted
logsource: {product: linux, service: sshd}
detection: {s: {event.outcome: success}, condition: s}
---
title: brute
id: brute
name: brute
correlation: {type: event_count, rules: [failed], group-by: [source.ip], timespan: 5m, condition: {gte: 3}, generate: true}
---
title: success after brute force
id: chain
correlation: {type: temporal_ordered, rules: [brute, accepted], group-by: [source.ip], timespan: 10m}
)",
                                    "c.yml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ((*rs)->rule_count(), 4u);
  auto ok = [](int m, const char* ip) {
    char ts[16];
    std::snprintf(ts, sizeof ts, "10:%02d:00", m % 60);
    return std::string("Nov 28 ") + ts + " h sshd[1]: Accepted password for root from " + ip +
           " port 22 ssh2";
  };
  // Two failures then success: no brute force, no chain.
  auto m1 = Matcher::Create(*rs);
  EXPECT_EQ(CountRule(m1->get(),
                      {Failed(0, 1, "192.0.2.1"), Failed(0, 2, "192.0.2.1"), ok(1, "192.0.2.1")},
                      "chain"),
            0);
  // Three failures (brute force) then success from the same address.
  auto m2 = Matcher::Create(*rs);
  std::vector<std::string> lines = {Failed(0, 1, "192.0.2.1"), Failed(0, 2, "192.0.2.1"),
                                    Failed(0, 3, "192.0.2.1"), ok(1, "192.0.2.9"),
                                    ok(2, "192.0.2.1")};
  EXPECT_EQ(CountRule(m2->get(), lines, "chain"), 1);
  auto m3 = Matcher::Create(*rs);
  EXPECT_EQ(CountRule(m3->get(), lines, "brute"), 1);
  // Success long after the brute force does not count.
  auto m4 = Matcher::Create(*rs);
  EXPECT_EQ(CountRule(m4->get(),
                      {Failed(0, 1, "192.0.2.1"), Failed(0, 2, "192.0.2.1"),
                       Failed(0, 3, "192.0.2.1"), ok(30, "192.0.2.1")},
                      "chain"),
            0);
}

TEST(CorrelationChainTest, CyclesAreRejected) {
  auto rs = RuleSet::LoadFromString(R"(
title: a
id: a
correlation: {type: event_count, rules: [b], timespan: 5m, condition: {gte: 1}}
---
title: b
id: b
correlation: {type: event_count, rules: [a], timespan: 5m, condition: {gte: 1}}
)",
                                    "c.yml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ((*rs)->rule_count(), 0u);
  ASSERT_EQ((*rs)->skipped().size(), 2u);
  EXPECT_NE((*rs)->skipped()[0].message.find("cycle"), std::string::npos)
      << (*rs)->skipped()[0].message;
}

}  // namespace
}  // namespace siper::rules

#include "rules/live_rules.h"

namespace siper::rules {
namespace {

TEST(LiveRuleSetTest, WorkersMoveToTheNewGenerationBetweenEvents) {
  auto v1 = RuleSet::LoadFromString(R"(
title: one
id: v1
logsource: {product: linux}
detection: {s: {event.outcome: failure}, condition: s}
)",
                                    "v1.yml");
  auto v2 = RuleSet::LoadFromString(R"(
title: two
id: v2
logsource: {product: linux}
detection: {s: {event.outcome: failure}, condition: s}
)",
                                    "v2.yml");
  ASSERT_TRUE(v1.ok() && v2.ok());
  LiveRuleSet live(*v1);
  std::atomic<bool> stop{false};
  std::atomic<int> matched_v1{0}, matched_v2{0}, events{0}, other{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&] {
      LiveMatcher m(&live);
      while (!stop) {
        auto found = m.Process(Failed(0, 1, "192.0.2.1"), "", InputFormat::kAuto);
        ++events;
        if (!found.ok() || found->size() != 1) {
          ++other;  // an event must match exactly one generation's rule
          continue;
        }
        ((*found)[0].rule_id == "v1" ? matched_v1 : matched_v2)++;
      }
    });
  }
  while (matched_v1 < 100) std::this_thread::yield();
  live.Swap(*v2);
  EXPECT_EQ(live.generation(), 2u);
  const int at_swap = events;
  while (events < at_swap + 200) std::this_thread::yield();
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_EQ(other, 0);
  EXPECT_EQ(matched_v1 + matched_v2, events);
  EXPECT_GT(matched_v2, 0);
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

std::vector<std::string> AlertIds(const std::shared_ptr<const RuleSet>& rules) {
  auto m = Matcher::Create(rules);
  EXPECT_TRUE(m.ok());
  std::vector<std::string> ids;
  std::ifstream in(std::filesystem::path(SIPER_SOURCE_DIR) / "deploy/samples/attack.log");
  std::string line;
  while (std::getline(in, line)) {
    auto found = (*m)->Process(line, "", InputFormat::kAuto);
    EXPECT_TRUE(found.ok());
    for (const Detection& d : *found) ids.push_back(d.rule_id);
  }
  return ids;
}

bool Mentions(const std::vector<std::string>& messages, const std::string& file,
              const std::string& what) {
  for (const std::string& m : messages) {
    if (m.find(file) != std::string::npos && m.find(what) != std::string::npos) return true;
  }
  return false;
}

// Each cache file carries its length and a checksum, checked before Hyperscan
// or the rule reader sees it: a truncated or corrupted file is named in
// stats().cache_messages (the server logs them), recompiled and replaced.
// Files of rule sets no longer loaded (and of older formats) go once unread for a month;
// the files this rule set reads are marked used, so an old but used cache stays.
TEST(DatabaseCacheTest, LoadPrunesFilesUnreadForAMonthAndKeepsTheOnesItReads) {
  namespace fs = std::filesystem;
  const fs::path cache = fs::temp_directory_path() / ("siper_prune_" + std::to_string(::getpid()));
  fs::remove_all(cache);
  LoadOptions options;
  options.cache_dir = cache;
  const fs::path dir = fs::path(SIPER_SOURCE_DIR) / "rules/ruleset";
  ASSERT_TRUE(RuleSet::Load(dir, options).ok());
  const auto long_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 40);
  std::vector<fs::path> used;
  for (const auto& f : fs::directory_iterator(cache)) used.push_back(f.path());
  ASSERT_FALSE(used.empty());
  for (const fs::path& f : used) fs::last_write_time(f, long_ago);  // old, but this set reads them
  auto stale = [&](const std::string& name) {
    std::ofstream(cache / name) << "x";
    fs::last_write_time(cache / name, long_ago);
    return cache / name;
  };
  const fs::path old_db = stale("0123456789abcdef.hsdb");
  const fs::path old_rules = stale("rules-0123456789abcdef.bin");
  const fs::path crash_tmp = stale("feed.hsdb.tmp.4242");
  const fs::path not_ours = stale("README.txt");
  std::ofstream(cache / "recent.hsdb") << "x";  // unread, but written this month

  auto again = RuleSet::Load(dir, options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->stats().cache_hits, (*again)->stats().databases);
  for (const fs::path& f : used) EXPECT_TRUE(fs::exists(f)) << f;
  EXPECT_FALSE(fs::exists(old_db));
  EXPECT_FALSE(fs::exists(old_rules));
  EXPECT_FALSE(fs::exists(crash_tmp));
  EXPECT_TRUE(fs::exists(not_ours));
  EXPECT_TRUE(fs::exists(cache / "recent.hsdb"));
  fs::remove_all(cache);
}

TEST(DatabaseCacheTest, DamagedFilesAreReportedRecompiledAndReplaced) {
  namespace fs = std::filesystem;
  const fs::path cache =
      fs::temp_directory_path() / ("siper_hs_damage_" + std::to_string(::getpid()));
  fs::remove_all(cache);
  LoadOptions options;
  options.cache_dir = cache;
  const fs::path dir = fs::path(SIPER_SOURCE_DIR) / "rules/ruleset";
  auto fresh = RuleSet::Load(dir, options);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE((*fresh)->stats().cache_messages.empty());
  const std::vector<std::string> want = AlertIds(*fresh);
  ASSERT_FALSE(want.empty());

  std::vector<fs::path> hsdb, bin;
  for (const auto& f : fs::directory_iterator(cache)) {
    if (f.path().extension() == ".hsdb") hsdb.push_back(f.path());
    if (f.path().extension() == ".bin") bin.push_back(f.path());
  }
  std::sort(hsdb.begin(), hsdb.end());
  ASSERT_GE(hsdb.size(), 3u);
  ASSERT_EQ(bin.size(), 1u);
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto write = [](const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
  };
  // 1: truncated (a crash while copying, a full disk).
  std::string data = read(hsdb[0]);
  write(hsdb[0], data.substr(0, data.size() / 2));
  // 2: one bit flipped inside the serialized Hyperscan database.
  data = read(hsdb[1]);
  data[data.size() - 100] ^= 0x10;
  write(hsdb[1], data);
  // 3: bytes appended.
  write(hsdb[2], read(hsdb[2]) + "trailing");
  // 4: one bit flipped in the parsed rules (a pattern or a rule id would change silently).
  data = read(bin[0]);
  data[data.size() / 2] ^= 0x01;
  write(bin[0], data);

  auto damaged = RuleSet::Load(dir, options);
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  const RuleSetStats s = (*damaged)->stats();
  EXPECT_EQ(s.cache_messages.size(), 4u);
  EXPECT_TRUE(Mentions(s.cache_messages, hsdb[0].string(), "truncated"));
  EXPECT_TRUE(Mentions(s.cache_messages, hsdb[1].string(), "checksum mismatch"));
  EXPECT_TRUE(Mentions(s.cache_messages, hsdb[2].string(), "overlong"));
  EXPECT_TRUE(Mentions(s.cache_messages, bin[0].string(), "checksum mismatch"));
  EXPECT_EQ(s.cache_hits + 3, s.databases);
  EXPECT_EQ(AlertIds(*damaged), want);

  // The damaged files were replaced: the next load reads every one of them.
  auto again = RuleSet::Load(dir, options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->stats().cache_messages.empty());
  EXPECT_EQ((*again)->stats().cache_hits, (*again)->stats().databases);
  EXPECT_EQ(AlertIds(*again), want);

  // Not a cache file at all, and an empty one.
  write(hsdb[0], "");
  write(hsdb[1], "garbage");
  auto junk = RuleSet::Load(dir, options);
  ASSERT_TRUE(junk.ok()) << junk.status();
  EXPECT_TRUE(Mentions((*junk)->stats().cache_messages, hsdb[0].string(), "bad header"));
  EXPECT_TRUE(Mentions((*junk)->stats().cache_messages, hsdb[1].string(), "bad header"));
  EXPECT_EQ(AlertIds(*junk), want);
  fs::remove_all(cache);
}

}  // namespace
}  // namespace siper::rules

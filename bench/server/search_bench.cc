// search_bench: how fast `siperctl events search` answers over a day of a
// busy server. Fills a real Store with one day of events (the loghub lines,
// decoded and matched by the default rule set as the server does, spread
// over 100 agents and 24 hours ending now), then times the searches an
// analyst runs, each the median of several runs, through Store::SearchEvents
// (what the analyst RPC streams from). Beside the indexed field search, the
// same question asked as a substring of the raw line, which must scan the day;
// and `events count --by source.ip` from the per-hour counts, from the index
// alone, and by a scan of the events. The day is written twice, batch by batch
// into two stores, one keeping the per-hour field counts and one not
// (StoreOptions::field_counts), timing Store::Write on each: what the counts
// cost per event, and the index-only count on the same data. Then alert listings by
// rule, agent and level, and event searches through the alerts, for one agent.
//
// Each batch of 500 events of one agent gets one server time, as the server's
// agent stream stamps a batch on arrival (--time-per-event: one time per event, the
// layout this bench wrote before the index postings of schema 3).
//
//   search_bench [--events N] [--runs R] [--dir DIR] [--time-per-event]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rules/engine.h"
#include "server/storage/store.h"

namespace fs = std::filesystem;
using siper::storage::EventQuery;
using siper::storage::EventRecord;
using siper::storage::Store;

namespace {

const fs::path kSource = SIPER_SOURCE_DIR;
const fs::path kShared = SIPER_SHARED_DATA_DIR;
constexpr int64_t kHour = int64_t{3600} * 1'000'000'000;
constexpr int kAgents = 100;

std::vector<std::string> LoghubLines() {
  std::vector<std::string> lines;
  for (const char* f : {"logs/loghub/OpenSSH_2k.log", "logs/loghub/Linux_2k.log"}) {
    std::ifstream in(kShared / f);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  return lines;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Runs `query` (which counts its results into its argument) `runs` times, once only
// when it takes over 5 s (a scan of the day), and prints the results and the median
// time; false, with the error on stderr, when it fails.
bool TimeQuery(const std::string& name, int runs,
               const std::function<absl::Status(uint64_t*)>& query) {
  std::vector<double> times;
  uint64_t results = 0;
  for (int r = 0; r < runs; ++r) {
    results = 0;
    auto t0 = std::chrono::steady_clock::now();
    absl::Status st = query(&results);
    times.push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1000);
    if (!st.ok()) {
      std::cerr << name << ": " << st << "\n";
      return false;
    }
    if (times.back() > 5000) break;
  }
  std::sort(times.begin(), times.end());
  std::printf("%-52s %10llu %12.2f\n", name.c_str(), static_cast<unsigned long long>(results),
              times[times.size() / 2]);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times event searches over one day of stored events."};
  uint64_t total = 2'000'000;
  int runs = 5;
  fs::path dir = fs::temp_directory_path() / "siper_search_bench";
  app.add_option("--events", total, "events in the day")->capture_default_str();
  app.add_option("--runs", runs, "runs per query (the median is reported)")->capture_default_str();
  app.add_option("--dir", dir, "store directory (emptied first)")->capture_default_str();
  uint64_t batch = 500;
  app.add_option("--batch", batch,
                 "events per Store::Write (smaller: more writes, so more field-count merge "
                 "operands per key)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  bool no_compact = false;
  app.add_flag("--no-compact", no_compact,
               "query the stores as written, without compacting them first (field-count merge "
               "operands still in the memtable are folded by each count read)");
  bool time_per_event = false;
  app.add_flag("--time-per-event", time_per_event,
               "give every event its own server time (before: one per batch, as the server's "
               "agent stream stamps a batch when it arrives)");
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> lines = LoghubLines();
  if (lines.empty()) {
    std::cerr << "search_bench: ../shared/data/logs/loghub is absent\n";
    return 1;
  }
  siper::rules::LoadOptions load;
  load.cache_dir = fs::temp_directory_path() / "siper_search_bench_rules";
  auto rules = siper::rules::RuleSet::Load(kSource / "rules/ruleset", load);
  if (!rules.ok()) {
    std::cerr << rules.status() << "\n";
    return 1;
  }
  auto matcher = siper::rules::Matcher::Create(*rules);
  if (!matcher.ok()) {
    std::cerr << matcher.status() << "\n";
    return 1;
  }

  // Decode and match each loghub line once; the day replays them.
  std::vector<EventRecord> templates;
  for (const std::string& line : lines) {
    EventRecord& r = templates.emplace_back();
    siper::rules::FieldMap fields;
    auto detections =
        (*matcher)->Process(line, "/var/log/auth.log", siper::rules::InputFormat::kAuto, &fields);
    r.event.mutable_log()->set_source("/var/log/auth.log");
    r.event.mutable_log()->set_line(line);
    for (const auto& [k, v] : fields) (*r.event.mutable_fields())[k] = v;
    if (!detections.ok()) continue;
    for (const siper::rules::Detection& d : *detections) {
      siper::v1::Alert& a = r.alerts.emplace_back();
      a.set_rule_id(d.rule_id);
      a.set_title(d.title);
      a.set_level(d.level);
    }
  }

  const fs::path plain_dir = dir.string() + "_without_counts";
  fs::remove_all(dir);
  fs::remove_all(plain_dir);
  auto store = Store::Open(dir, {.sync_writes = false, .field_counts = true});
  auto plain = Store::Open(plain_dir, {.sync_writes = false, .field_counts = false});
  if (!store.ok() || !plain.ok()) {
    std::cerr << store.status() << " " << plain.status() << "\n";
    return 1;
  }
  const int64_t end = absl::ToUnixNanos(absl::Now());
  const int64_t start = end - 24 * kHour;
  const int64_t step = 24 * kHour / static_cast<int64_t>(total);
  const uint64_t kBatch = batch;
  std::vector<uint64_t> seq(kAgents, 0);
  auto fill_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration write_time[2] = {};  // with counts, without
  uint64_t alerts = 0;
  for (uint64_t i = 0; i < total; i += kBatch * kAgents) {
    for (int a = 0; a < kAgents; ++a) {
      const std::string agent = "agent-" + std::to_string(a);
      std::vector<EventRecord> batch;
      for (uint64_t j = 0; j < kBatch && i + static_cast<uint64_t>(a) * kBatch + j < total; ++j) {
        const uint64_t n = i + static_cast<uint64_t>(a) * kBatch + j;
        EventRecord r = templates[n % templates.size()];
        r.event.set_agent_id(agent);
        r.event.set_seq(++seq[a]);
        const uint64_t stamp = time_per_event ? n : i + static_cast<uint64_t>(a) * kBatch;
        r.event.set_server_time_ns(start + static_cast<int64_t>(stamp) * step);
        alerts += r.alerts.size();
        batch.push_back(std::move(r));
      }
      if (batch.empty()) continue;
      // The same batch into both stores, alternating which goes first.
      std::vector<EventRecord> copy = batch;
      for (int k = 0; k < 2; ++k) {
        const int which = (k + a) % 2;
        auto t0 = std::chrono::steady_clock::now();
        auto w = (which == 0 ? *store : *plain)->Write(agent, which == 0 ? batch : copy);
        write_time[which] += std::chrono::steady_clock::now() - t0;
        if (!w.ok()) {
          std::cerr << w.status() << "\n";
          return 1;
        }
      }
    }
  }
  const double fill_s = Seconds(std::chrono::steady_clock::now() - fill_start);
  std::printf("filled %llu events (%llu alerts) over 24 h into two stores in %.1f s (no sync)\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(alerts),
              fill_s);
  for (int which : {0, 1}) {
    const double s = Seconds(write_time[which]);
    std::printf("  Store::Write %s field counts: %.1f s, %.0f events/s, %.2f us/event\n",
                which == 0 ? "with   " : "without", s, static_cast<double>(total) / s,
                s * 1e6 / static_cast<double>(total));
  }
  auto compact_start = std::chrono::steady_clock::now();
  for (auto* s : {&*store, &*plain}) {
    if (no_compact) break;
    if (auto c = (*s)->Compact(); !c.ok()) {
      std::cerr << c << "\n";
      return 1;
    }
  }
  if (no_compact) {
    std::printf("not compacted (--no-compact): sizes below are of the SST files written so far\n");
  } else {
    std::printf("compacted in %.1f s\n", Seconds(std::chrono::steady_clock::now() - compact_start));
  }
  for (const fs::path& d : {dir, plain_dir}) {
    uintmax_t bytes = 0;
    for (const auto& f : fs::recursive_directory_iterator(d)) {
      if (f.is_regular_file() && f.path().extension() == ".sst") bytes += f.file_size();
    }
    std::printf("  %s: %.1f bytes per event in SST files\n", d.filename().c_str(),
                static_cast<double>(bytes) / static_cast<double>(total));
  }
  std::printf("\n");

  struct Case {
    std::string name;
    EventQuery query;
  };
  const std::string attacker = "183.62.140.253";  // the brute force of OpenSSH_2k
  const std::string rare = "1.237.174.253";       // 3 of the 4,000 loghub lines
  std::vector<Case> cases = {
      {"newest 100, whole day", {.limit = 100, .newest_first = true}},
      {"newest 100, one agent, whole day",
       {.agent_id = "agent-42", .limit = 100, .newest_first = true}},
      {"last hour, one agent, all", {.since_ns = end - kHour, .agent_id = "agent-42"}},
      {"rule SSH failed login, newest 100",
       {.rule_id = "7e623b43-6405-435c-a416-65a247983365", .limit = 100, .newest_first = true}},
      {"level high+, newest 100", {.min_level = "high", .limit = 100, .newest_first = true}},
      {"source.ip=attacker, newest 100 (index)",
       {.limit = 100, .newest_first = true, .fields = {{"source.ip", attacker}}}},
      {"source.ip=rare, whole day, all (index)", {.fields = {{"source.ip", rare}}}},
      {"raw line contains rare ip, whole day, all (scan)", {.text = rare}},
      {"user.name=root, one agent, all (index)",
       {.agent_id = "agent-42", .fields = {{"user.name", "root"}}}},
      {"source.ip=rare, last hour (index)",
       {.since_ns = end - kHour, .fields = {{"source.ip", rare}}}},
  };
  std::printf("%-52s %10s %12s\n", "query (one day, events search)", "results", "median ms");
  auto search = [&](const Case& c) {
    return TimeQuery(c.name, runs, [&](uint64_t* n) {
      return (*store)->SearchEvents(c.query, [n](const siper::v1::Event&) {
        ++*n;
        return true;
      });
    });
  };
  for (const Case& c : cases) {
    if (!search(c)) return 1;
  }

  // Alert listings (`siperctl alerts list`), through the alert indexes (rule, agent) or
  // the time-keyed alerts; and event searches by rule and level for one agent.
  struct AlertCase {
    std::string name;
    siper::storage::AlertQuery query;
  };
  const std::string ssh_failed = "7e623b43-6405-435c-a416-65a247983365";
  std::vector<AlertCase> alert_cases = {
      {"alerts: newest 100, whole day", {.limit = 100, .newest_first = true}},
      {"alerts: rule SSH failed login, newest 100",
       {.rule_id = ssh_failed, .limit = 100, .newest_first = true}},
      {"alerts: rule SSH failed login, last hour, all",
       {.since_ns = end - kHour, .rule_id = ssh_failed}},
      {"alerts: rule SSH failed login, whole day, all", {.rule_id = ssh_failed}},
      {"alerts: one agent, whole day, all", {.agent_id = "agent-42"}},
      {"alerts: one agent, level high+, whole day", {.agent_id = "agent-42", .min_level = "high"}},
  };
  std::printf("\n%-52s %10s %12s\n", "query (one day, alerts list)", "results", "median ms");
  for (const AlertCase& c : alert_cases) {
    const bool ok = TimeQuery(c.name, runs, [&](uint64_t* n) {
      return (*store)->ListAlerts(c.query, [n](const siper::v1::Alert&) {
        ++*n;
        return true;
      });
    });
    if (!ok) return 1;
  }
  std::vector<Case> event_by_alert_cases = {
      {"events: rule SSH failed login, whole day, all", {.rule_id = ssh_failed}},
      {"events: rule SSH failed login, one agent, all",
       {.agent_id = "agent-42", .rule_id = ssh_failed}},
      {"events: level high+, one agent, all", {.agent_id = "agent-42", .min_level = "high"}},
  };
  for (const Case& c : event_by_alert_cases) {
    if (!search(c)) return 1;
  }

  // events count --by: from the per-hour counts (whole hours) and the index
  // (the range's first, cut hour); from the index alone (the store without
  // counts, same data); and the scan the server does for a field without an
  // index, on the same field.
  std::printf("\n%-52s %10s %12s\n", "count --by source.ip (top values)", "distinct", "median ms");
  enum Way { kCounts, kIndexOnly, kScan };
  std::map<std::string, uint64_t> reference;  // the scan's answer, to check the others
  for (Way way : {kScan, kCounts, kIndexOnly}) {
    for (int64_t span : {kHour, 24 * kHour}) {
      std::vector<double> times;
      size_t distinct = 0;
      for (int r = 0; r < runs; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        std::map<std::string, uint64_t> counts;
        if (way != kScan) {
          auto c =
              (way == kCounts ? *store : *plain)->CountIndexedField("source.ip", end - span, 0, "");
          if (!c.ok() || !c->has_value()) {
            std::cerr << "count from the index failed\n";
            return 1;
          }
          distinct = (*c)->values.size();
          counts.insert((*c)->values.begin(), (*c)->values.end());
        } else {
          absl::Status st =
              (*store)->SearchEvents({.since_ns = end - span}, [&](const siper::v1::Event& e) {
                auto it = e.fields().find("source.ip");
                if (it != e.fields().end()) ++counts[it->second];
                return true;
              });
          if (!st.ok()) {
            std::cerr << st << "\n";
            return 1;
          }
          distinct = counts.size();
        }
        times.push_back(Seconds(std::chrono::steady_clock::now() - t0) * 1000);
        if (span == 24 * kHour) {
          if (way == kScan) reference = counts;
          if (counts != reference) {
            std::cerr << "the whole-day count differs from the scan's\n";
            return 1;
          }
        }
        if (times.back() > 5000) break;  // a scan of the day: once is enough
      }
      std::sort(times.begin(), times.end());
      static constexpr const char* kWays[] = {", per-hour counts + index", ", field index only",
                                              ", scan of the events"};
      std::printf("%-52s %10zu %12.2f\n",
                  (std::string(span == kHour ? "last hour" : "whole day") + kWays[way]).c_str(),
                  distinct, times[times.size() / 2]);
    }
  }
  store->reset();
  plain->reset();
  fs::remove_all(dir);
  fs::remove_all(plain_dir);
  return 0;
}

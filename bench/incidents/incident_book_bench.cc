// What one more alert costs an incident that already has N alerts (N = 1,000 .. 100,000):
//   BM_AppendAlert: IncidentBook::Ingest (join, index, audit delta), TakePendingWrite and
//     Serialize: everything the server does per alert, under its lock and in the writer,
//     except the RocksDB write. Bytes: what goes to storage per alert.
//   BM_WholeRecord: IncidentToJson(incident).dump(), which the form before incident items
//     did after every batch (plus a whole before/after in the audit record per alert).
// The first stays flat as N grows; the second grows with N.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/incidents/audit.h"
#include "server/incidents/clock.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/json.h"
#include "server/incidents/stored.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents {
namespace {

const Taxonomy& Rsit() {
  static const Taxonomy* t = [] {
    auto loaded = Taxonomy::LoadFromFile(std::string(SIPER_INCIDENTS_DATA_DIR) + "/rsit.yaml");
    if (!loaded.ok()) std::abort();
    return new Taxonomy(*std::move(loaded));
  }();
  return *t;
}

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// Alert n of one SSH brute force: same attacker and host, a new user name every 7th alert.
AlertInput Attack(int64_t n) {
  AlertInput a;
  a.id = absl::StrCat("alert-", n);
  a.rule_id = "siper-ssh-failed-login";
  a.title = "SSH failed login";
  a.level = n == 0 ? "high" : "medium";
  a.time = kStart + absl::Milliseconds(n);  // all within the grouping window
  a.agent_id = "agent-1";
  a.seq = static_cast<uint64_t>(n + 1);
  a.host = "web01";
  a.fields = {{"source.ip", "203.0.113.7"},
              {"host.hostname", "web01"},
              {"user.name", absl::StrCat("user", n / 7)}};
  a.rsit_class = "intrusion-attempts";
  a.rsit_type = "brute-force";
  return a;
}

struct Grown {
  FakeClock clock{kStart};
  AuditLog audit;
  std::unique_ptr<IncidentBook> book;
  std::string id;
  int64_t next = 0;
};

// Google Benchmark calls a benchmark several times while it sizes the run: grow each
// incident once (per benchmark, so BM_WholeRecord sees exactly N alerts).
Grown* Cached(std::map<int64_t, std::unique_ptr<Grown>>& cache, int64_t n);

std::unique_ptr<Grown> Grow(int64_t n) {
  auto g = std::make_unique<Grown>();
  g->book = std::make_unique<IncidentBook>(&Rsit(), &g->clock, GroupingPolicy{}, &g->audit);
  for (; g->next < n; ++g->next) {
    IngestResult r = g->book->Ingest(Attack(g->next));
    if (g->next == 0) g->id = r.incident_id;
  }
  (void)Serialize(g->book->TakePendingWrite());
  return g;
}

Grown* Cached(std::map<int64_t, std::unique_ptr<Grown>>& cache, int64_t n) {
  std::unique_ptr<Grown>& g = cache[n];
  if (g == nullptr) g = Grow(n);
  return g.get();
}

void BM_AppendAlert(benchmark::State& state) {
  static std::map<int64_t, std::unique_ptr<Grown>> cache;
  Grown* g = Cached(cache, state.range(0));
  size_t bytes = 0;
  for (auto _ : state) {
    IngestResult r = g->book->Ingest(Attack(g->next++));
    if (r.outcome != IngestResult::Outcome::kAttached) state.SkipWithError("did not join");
    StoredWrite w = Serialize(g->book->TakePendingWrite());
    for (const auto& [id, text] : w.incidents) bytes += text.size();
    for (const StoredItem& i : w.items) bytes += i.json.size();
    for (const auto& [seq, text] : w.audit) bytes += text.size();
    benchmark::DoNotOptimize(w);
  }
  state.counters["bytes_per_alert"] =
      benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(state.iterations()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendAlert)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond);

void BM_WholeRecord(benchmark::State& state) {
  static std::map<int64_t, std::unique_ptr<Grown>> cache;
  Grown* g = Cached(cache, state.range(0));
  const Incident* in = g->book->Find(g->id);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = IncidentToJson(*in).dump();
    bytes += text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["bytes_per_write"] =
      benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_WholeRecord)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace siper::incidents

BENCHMARK_MAIN();

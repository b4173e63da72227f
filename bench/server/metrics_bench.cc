// The cost of what ingest adds per event and per batch for metrics: a counter bump, a
// histogram observation, the two clock reads around matching, and a full scrape.
#include <benchmark/benchmark.h>

#include <thread>

#include "absl/time/clock.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

void BM_CounterAdd(benchmark::State& state) {
  static Counter counter;
  for (auto _ : state) counter.Add();
  benchmark::DoNotOptimize(counter.Value());
}
BENCHMARK(BM_CounterAdd)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  static Histogram histogram(
      {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
  int64_t ns = 3'000;
  for (auto _ : state) {
    histogram.ObserveNanos(ns);
    ns = (ns * 7) % 2'000'000;
  }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

// What ingest does around each event's match: two clock reads and one observation.
void BM_TimedMatchOverhead(benchmark::State& state) {
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    Metrics().match_seconds.ObserveNanos(absl::ToInt64Nanoseconds(absl::Now() - start));
  }
}
BENCHMARK(BM_TimedMatchOverhead);

void BM_Render(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Metrics().registry.Render());
}
BENCHMARK(BM_Render);

}  // namespace
}  // namespace siper::server

BENCHMARK_MAIN();

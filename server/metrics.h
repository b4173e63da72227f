// A small Prometheus metrics registry: counters, gauges and histograms made of atomics, so
// the hot path (ingest, agent streams) bumps them without a lock. Metrics are registered
// once at start-up; a scrape renders the text exposition format (version 0.0.4). Values
// that are cheaper to read at scrape time than to keep up to date (per-agent last seen,
// disk free) come from collectors, functions run on each scrape.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace siper::server {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Cumulative buckets in seconds, as Prometheus expects; the sum is kept in nanoseconds so it
// stays an integer atomic.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds_s);
  void ObserveNanos(int64_t ns);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    uint64_t count = 0;
    double sum_s = 0;
  };
  Snapshot Take() const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bounds_ns_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds + 1 (+Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_ns_{0};
};

// Text a collector appends to a scrape: `# HELP`/`# TYPE` lines and samples.
class ScrapeWriter {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // `labels` as name/value pairs; values are escaped.
  void Sample(std::string_view name, const std::vector<std::pair<std::string, std::string>>& labels,
              double value);
  std::string& text() { return out_; }

 private:
  std::string out_;
};

class MetricsRegistry {
 public:
  // Registration: at start-up. Each returns a metric that lives as long as the registry.
  // Several calls with one name and different label values make one family.
  Counter& AddCounter(const std::string& name, const std::string& help,
                      std::vector<std::pair<std::string, std::string>> labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help,
                  std::vector<std::pair<std::string, std::string>> labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> upper_bounds_s);
  // Returns an id for RemoveCollector (a collector must go before what it reads).
  int AddCollector(std::function<void(ScrapeWriter&)> collector);
  void RemoveCollector(int id);

  // The text exposition format of everything registered.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Entry {
    Kind kind;
    std::string name;
    std::string help;
    std::vector<std::pair<std::string, std::string>> labels;
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
    Histogram* histogram = nullptr;
  };
  mutable std::mutex mu_;  // registration and rendering, never the hot path
  std::deque<Counter> counters_;
  std::deque<Gauge> gauges_;
  std::deque<std::unique_ptr<Histogram>> histograms_;
  std::vector<Entry> entries_;
  std::vector<std::pair<int, std::function<void(ScrapeWriter&)>>> collectors_;
  int next_collector_ = 1;
};

// Why a batch (or a message of an agent stream) was refused
// (siper_batches_rejected_total{reason}, siper_events_rejected_total{reason}).
enum class RejectReason {
  kTooLarge,        // too many events, or too many bytes (refused unparsed: 0 events)
  kForeignAgentId,  // an event or hello claiming another agent's id
  kNoSeq,           // an event without a sequence number
  kMalformed,       // not a siper.v1.AgentMessage, or an empty one (0 events)
  kDiskLow,         // ingest paused: disk nearly full
  kRestoring,       // ingest paused: a backup is being restored
  kStoreFailed,     // the store could not write it
  kCount
};
std::string_view RejectReasonName(RejectReason reason);

// Why an agent stream was refused before any batch (siper_streams_rejected_total{reason}).
enum class StreamRejectReason {
  kNotAgent,       // no agent certificate (another role)
  kReservedId,     // the server's own agent id
  kNotRegistered,  // a certificate of our CA for an agent the registry does not have
  kRevoked,        // a revoked agent
  kRegistryError,  // the registry could not be read
  kCount
};
std::string_view StreamRejectReasonName(StreamRejectReason reason);

// The server's metrics, one set per process (Metrics()). Everything is registered on first
// use; code anywhere in the server bumps the members directly.
struct ServerMetrics {
  MetricsRegistry registry;
  Counter& batches_received;
  Counter& events_received;
  Counter& events_stored;
  Counter& events_duplicate;
  Counter& alerts_stored;
  Counter& health_events;
  Gauge& ingest_queue_depth;
  Gauge& ingest_paused;
  Histogram& match_seconds;
  Histogram& write_seconds;
  Counter* batches_rejected[static_cast<int>(RejectReason::kCount)];
  Counter* events_rejected[static_cast<int>(RejectReason::kCount)];
  Counter* streams_rejected[static_cast<int>(StreamRejectReason::kCount)];

  ServerMetrics();
  void Reject(RejectReason reason, uint64_t events) {
    batches_rejected[static_cast<int>(reason)]->Add();
    events_rejected[static_cast<int>(reason)]->Add(events);
  }
  void RejectStream(StreamRejectReason reason) {
    streams_rejected[static_cast<int>(reason)]->Add();
  }
};
ServerMetrics& Metrics();

}  // namespace siper::server

#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace siper::server {
namespace {

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

// Label values: backslash, double quote and line feed are escaped (exposition format).
std::string EscapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += EscapeLabel(labels[i].second);
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds_s)
    : bounds_(std::move(upper_bounds_s)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (double b : bounds_) bounds_ns_.push_back(static_cast<int64_t>(b * 1e9));
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::ObserveNanos(int64_t ns) {
  size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  // Observations racing the scrape may leave count a little off the buckets; Prometheus
  // wants the +Inf bucket to equal the count, so the buckets decide.
  s.count = running;
  s.sum_s = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void ScrapeWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += EscapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void ScrapeWriter::Sample(std::string_view name,
                          const std::vector<std::pair<std::string, std::string>>& labels,
                          double value) {
  out_ += name;
  out_ += Labels(labels);
  out_ += ' ';
  out_ += FormatValue(value);
  out_ += '\n';
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     std::vector<std::pair<std::string, std::string>> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Counter& c = counters_.emplace_back();
  entries_.push_back(Entry{Kind::kCounter, name, help, std::move(labels), &c, nullptr, nullptr});
  return c;
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 std::vector<std::pair<std::string, std::string>> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Gauge& g = gauges_.emplace_back();
  entries_.push_back(Entry{Kind::kGauge, name, help, std::move(labels), nullptr, &g, nullptr});
  return g;
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> upper_bounds_s) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = *histograms_.emplace_back(std::make_unique<Histogram>(std::move(upper_bounds_s)));
  entries_.push_back(Entry{Kind::kHistogram, name, help, {}, nullptr, nullptr, &h});
  return h;
}

int MetricsRegistry::AddCollector(std::function<void(ScrapeWriter&)> collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.emplace_back(next_collector_, std::move(collector));
  return next_collector_++;
}

void MetricsRegistry::RemoveCollector(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(collectors_, [id](const auto& c) { return c.first == id; });
}

std::string MetricsRegistry::Render() const {
  std::vector<std::pair<int, std::function<void(ScrapeWriter&)>>> collectors;
  ScrapeWriter w;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Families keep the order of their first registration; samples of one family together.
    std::vector<std::string> order;
    std::map<std::string, std::vector<const Entry*>> families;
    for (const Entry& e : entries_) {
      auto [it, inserted] = families.try_emplace(e.name);
      if (inserted) order.push_back(e.name);
      it->second.push_back(&e);
    }
    for (const std::string& name : order) {
      const std::vector<const Entry*>& family = families[name];
      const Entry& first = *family.front();
      w.Family(name,
               first.kind == Kind::kCounter ? "counter"
               : first.kind == Kind::kGauge ? "gauge"
                                            : "histogram",
               first.help);
      for (const Entry* e : family) {
        switch (e->kind) {
          case Kind::kCounter:
            w.Sample(name, e->labels, static_cast<double>(e->counter->Value()));
            break;
          case Kind::kGauge:
            w.Sample(name, e->labels, static_cast<double>(e->gauge->Value()));
            break;
          case Kind::kHistogram: {
            Histogram::Snapshot s = e->histogram->Take();
            for (size_t i = 0; i <= s.bounds.size(); ++i) {
              auto labels = e->labels;
              labels.emplace_back(
                  "le", i < s.bounds.size() ? FormatValue(s.bounds[i]) : std::string("+Inf"));
              w.Sample(name + "_bucket", labels, static_cast<double>(s.cumulative[i]));
            }
            w.Sample(name + "_sum", e->labels, s.sum_s);
            w.Sample(name + "_count", e->labels, static_cast<double>(s.count));
            break;
          }
        }
      }
    }
    collectors = collectors_;
  }
  // Collectors may read storage: run them outside the registry's lock.
  for (const auto& [id, collect] : collectors) collect(w);
  return std::move(w.text());
}

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kTooLarge:
      return "too_large";
    case RejectReason::kForeignAgentId:
      return "foreign_agent_id";
    case RejectReason::kNoSeq:
      return "no_seq";
    case RejectReason::kDiskLow:
      return "disk_low";
    case RejectReason::kMalformed:
      return "malformed";
    case RejectReason::kRestoring:
      return "restoring";
    case RejectReason::kStoreFailed:
      return "store_failed";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

std::string_view StreamRejectReasonName(StreamRejectReason reason) {
  switch (reason) {
    case StreamRejectReason::kNotAgent:
      return "not_agent";
    case StreamRejectReason::kReservedId:
      return "reserved_agent_id";
    case StreamRejectReason::kNotRegistered:
      return "not_registered";
    case StreamRejectReason::kRevoked:
      return "revoked";
    case StreamRejectReason::kRegistryError:
      return "registry_error";
    case StreamRejectReason::kCount:
      break;
  }
  return "unknown";
}

namespace {
const std::vector<double> kLatencyBounds = {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005,
                                            0.01,    0.05,    0.1,    0.5,    1,     5};
}  // namespace

ServerMetrics::ServerMetrics()
    : batches_received(registry.AddCounter("siper_batches_received_total",
                                           "Event batches received from agents.")),
      events_received(registry.AddCounter("siper_events_received_total",
                                          "Events received from agents (before storing).")),
      events_stored(registry.AddCounter("siper_events_stored_total",
                                        "Events durably stored (duplicates not counted).")),
      events_duplicate(registry.AddCounter("siper_events_duplicate_total",
                                           "Resent events recognised as already stored.")),
      alerts_stored(
          registry.AddCounter("siper_alerts_stored_total", "Alerts stored with their events.")),
      health_events(registry.AddCounter(
          "siper_health_events_total",
          "Events the server raised about its agents and itself (agent siper-server).")),
      ingest_queue_depth(
          registry.AddGauge("siper_ingest_queue_depth", "Batches queued for the ingest workers.")),
      ingest_paused(registry.AddGauge(
          "siper_ingest_paused", "1 while new batches are refused because disk space is low.")),
      match_seconds(registry.AddHistogram("siper_match_seconds",
                                          "Time to decode and match one event.", kLatencyBounds)),
      write_seconds(registry.AddHistogram(
          "siper_write_seconds", "Time of one durable Store::Write (one batch).", kLatencyBounds)) {
  for (int i = 0; i < static_cast<int>(RejectReason::kCount); ++i) {
    std::string reason(RejectReasonName(static_cast<RejectReason>(i)));
    batches_rejected[i] = &registry.AddCounter("siper_batches_rejected_total",
                                               "Batches refused, by reason.", {{"reason", reason}});
  }
  for (int i = 0; i < static_cast<int>(RejectReason::kCount); ++i) {
    std::string reason(RejectReasonName(static_cast<RejectReason>(i)));
    events_rejected[i] = &registry.AddCounter(
        "siper_events_rejected_total",
        "Events in refused batches, by reason (the agent keeps them and resends).",
        {{"reason", reason}});
  }
  for (int i = 0; i < static_cast<int>(StreamRejectReason::kCount); ++i) {
    std::string reason(StreamRejectReasonName(static_cast<StreamRejectReason>(i)));
    streams_rejected[i] = &registry.AddCounter("siper_streams_rejected_total",
                                               "Agent streams refused before any batch, by reason.",
                                               {{"reason", reason}});
  }
}

ServerMetrics& Metrics() {
  static ServerMetrics* metrics = new ServerMetrics();  // never destroyed: threads may bump late
  return *metrics;
}

}  // namespace siper::server

#include "server/server_health.h"

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status.h"
#include "server/incidents/model.h"

namespace siper::server {

absl::StatusOr<std::unique_ptr<ServerHealth>> ServerHealth::Start(const ServerConfig& config,
                                                                  storage::Store* store,
                                                                  IngestPipeline* ingest,
                                                                  IncidentServiceImpl* incidents) {
  std::unique_ptr<ServerHealth> h(new ServerHealth());
  h->reporter_ = std::make_unique<HealthReporter>(store, ingest);
  SIPER_RETURN_IF_ERROR(h->reporter_->Init());
  HealthReporter* reporter = h->reporter_.get();
  const incidents::Clock* clock = &h->clock_;

  incidents->SetDeadlineHook([reporter, clock](const incidents::DeadlineNotification& n) {
    HealthEvent e;
    e.action = "deadline_missed";
    e.message = n.message;
    e.strings = {{"incident.id", n.incident_id},
                 {"siper.deadline", std::string(incidents::ToString(n.kind))},
                 {"siper.due", incidents::FormatRfc3339(n.due)}};
    return reporter->Emit(e, clock->Now());
  });

  DiskProbe probe = config.health.disk_probe_file.empty()
                        ? StatvfsProbe(config.data_dir)
                        : FileProbe(config.health.disk_probe_file);
  h->monitor_ = std::make_unique<HealthMonitor>(
      store, [reporter](const HealthEvent& e, absl::Time now) { return reporter->Emit(e, now); },
      &h->gate_, config.health, std::move(probe), clock);
  SIPER_RETURN_IF_ERROR(h->monitor_->Init());
  h->monitor_->Start();

  HealthMonitor* monitor = h->monitor_.get();
  h->collector_id_ = Metrics().registry.AddCollector([store, monitor](ScrapeWriter& w) {
    if (int64_t free = monitor->disk_free_bytes(); free >= 0) {
      w.Family("siper_disk_free_bytes", "gauge",
               "Free bytes in the data directory's file system at the last check.");
      w.Sample("siper_disk_free_bytes", {}, static_cast<double>(free));
    }
    std::vector<siper::v1::AgentInfo> agents;
    (void)store->ListAgents([&](const siper::v1::AgentInfo& a) {
      agents.push_back(a);
      return true;
    });
    w.Family("siper_agent_last_seen_seconds", "gauge",
             "Unix time an agent was last heard from (heartbeat or batch).");
    for (const auto& a : agents) {
      if (a.last_seen_ns() > 0)
        w.Sample("siper_agent_last_seen_seconds", {{"agent_id", a.agent_id()}},
                 static_cast<double>(a.last_seen_ns() / 1'000'000) / 1e3);
    }
    w.Family("siper_agent_spool_bytes", "gauge", "Agent spool bytes at its last heartbeat.");
    for (const auto& a : agents) {
      if (a.heartbeat_ns() > 0)
        w.Sample("siper_agent_spool_bytes", {{"agent_id", a.agent_id()}},
                 static_cast<double>(a.spool_bytes()));
    }
    w.Family("siper_agent_dropped_events", "gauge",
             "Events an agent dropped since it started, at its last heartbeat.");
    for (const auto& a : agents) {
      if (a.heartbeat_ns() > 0)
        w.Sample("siper_agent_dropped_events", {{"agent_id", a.agent_id()}},
                 static_cast<double>(a.drops()));
    }
  });

  if (!config.metrics.listen.empty()) {
    SIPER_ASSIGN_OR_RETURN(h->metrics_http_, MetricsHttpServer::Start(config.metrics.listen,
                                                                      config.metrics.allow_remote,
                                                                      &Metrics().registry));
    SIPER_RETURN_IF_ERROR(WriteFileAtomic(config.data_dir / "metrics.port",
                                          absl::StrCat(h->metrics_http_->port(), "\n")));
  }
  return h;
}

ServerHealth::~ServerHealth() { Stop(); }

void ServerHealth::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (metrics_http_) metrics_http_->Stop();
  if (collector_id_ != 0) Metrics().registry.RemoveCollector(collector_id_);
  if (monitor_) monitor_->Stop();
}

}  // namespace siper::server

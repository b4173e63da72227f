// The health side of siper-server, started and stopped as one: the reporter of health
// events, the detectors' thread (health_monitor.h), deadline_missed events from the incident
// service, the ingest gate for the disk floor, and the metrics port (metrics_http.h).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/health_events.h"
#include "server/health_monitor.h"
#include "server/incident_service.h"
#include "server/ingest.h"
#include "server/metrics_http.h"
#include "server/storage/store.h"

namespace siper::server {

class ServerHealth {
 public:
  // Call after ingest started and before the incident service's deadline timer starts.
  // Runs the detectors once before returning. Everything given must outlive this object.
  static absl::StatusOr<std::unique_ptr<ServerHealth>> Start(const ServerConfig& config,
                                                             storage::Store* store,
                                                             IngestPipeline* ingest,
                                                             IncidentServiceImpl* incidents);
  ~ServerHealth();  // Stop()
  // Stops the metrics port and the detectors (before ingest stops).
  void Stop();

  const IngestGate* gate() const { return &gate_; }
  int metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }

 private:
  ServerHealth() = default;
  incidents::SystemClock clock_;
  IngestGate gate_;
  std::unique_ptr<HealthReporter> reporter_;
  std::unique_ptr<HealthMonitor> monitor_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  int collector_id_ = 0;
  bool stopped_ = false;
};

}  // namespace siper::server

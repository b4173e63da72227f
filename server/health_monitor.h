// Watches the agents and the server itself on a thread and raises health events
// (health_events.h) once per episode:
// - agent_silent after `agent_silent_after_s` without a heartbeat or batch, agent_back when
//   it is heard again;
// - spool_filling when a heartbeat's spool bytes reach `spool_warn_percent` of its cap, and
//   spool_dropping whenever its drop counter grew;
// - clock_skew when a heartbeat's clock differs from the server's by `clock_skew_max_s`;
// - disk_nearly_full when the data directory's free space falls below the floor: new
//   batches are then refused (IngestGate) until it is back above it (disk_ok).
// The clock and the free-space probe are injectable, so each detector is unit-tested.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/health_events.h"
#include "server/incidents/clock.h"
#include "server/storage/store.h"
#include "siper/v1/agent_service.pb.h"

namespace siper::server {

struct HealthOptions {
  int64_t check_interval_s = 10;           // how often the detectors run. Default: 10 s
  int64_t agent_silent_after_s = 600;      // default: 10 minutes
  double spool_warn_percent = 80;          // default: 80 % of the agent's spool cap
  int64_t clock_skew_max_s = 300;          // default: 5 minutes
  uint64_t disk_min_free_bytes = 1 << 30;  // default: 1 GiB; 0: no byte floor
  double disk_min_free_percent = 0;        // default: 0 (no percentage floor)
  // Testing only: read "FREE_BYTES [TOTAL_BYTES]" from this file instead of statvfs.
  std::filesystem::path disk_probe_file;
};

struct DiskSpace {
  uint64_t free_bytes = 0;   // available to the server (f_bavail)
  uint64_t total_bytes = 0;  // 0: unknown
};
using DiskProbe = std::function<absl::StatusOr<DiskSpace>()>;
// statvfs of `dir`.
DiskProbe StatvfsProbe(std::filesystem::path dir);
// Reads "FREE [TOTAL]" (decimal bytes) from `file` (HealthOptions::disk_probe_file).
DiskProbe FileProbe(std::filesystem::path file);

// Whether the agent service takes new batches. Lock-free; set by the disk detector.
class IngestGate {
 public:
  bool paused() const { return paused_.load(std::memory_order_relaxed); }
  void SetPaused(bool paused) { paused_.store(paused, std::memory_order_relaxed); }

 private:
  std::atomic<bool> paused_{false};
};

// Copies what the detectors need from a heartbeat that arrived at `now` into the registry
// entry (the agent service then stores it).
void RecordHeartbeat(const siper::v1::Heartbeat& heartbeat, absl::Time now,
                     siper::v1::AgentInfo* info);

class HealthMonitor {
 public:
  // `emit` stores a health event (HealthReporter::Emit in the server). All pointers must
  // outlive the monitor.
  using Emit = std::function<absl::Status(const HealthEvent&, absl::Time)>;
  HealthMonitor(storage::Store* store, Emit emit, IngestGate* gate, HealthOptions options,
                DiskProbe probe, const incidents::Clock* clock);
  ~HealthMonitor();  // Stop()
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Seeds the per-agent state from the newest stored health events (so a restart does not
  // raise an episode again), then runs one round of Check.
  [[nodiscard]] absl::Status Init();
  void Start();  // the thread: Check every check_interval_s
  void Stop();

  // One round of every detector at the clock's now; returns the events raised.
  int Check();

  // Last probe result, for the metrics (-1: not probed yet).
  int64_t disk_free_bytes() const { return disk_free_.load(); }

 private:
  struct AgentState {
    bool silent = false;
    int64_t silent_last_seen_ns = 0;  // last_seen_ns when the silence was raised
    int64_t heartbeat_ns = 0;         // newest heartbeat looked at
    bool filling = false;
    bool drops_known = false;
    uint64_t drops = 0;
    bool skewed = false;
  };
  int CheckDisk(absl::Time now);
  int CheckAgents(absl::Time now);
  bool Raise(const HealthEvent& event, absl::Time now);

  storage::Store* store_;
  Emit emit_;
  IngestGate* gate_;
  HealthOptions options_;
  DiskProbe probe_;
  const incidents::Clock* clock_;
  absl::Time started_;
  std::map<std::string, AgentState> agents_;
  bool disk_low_ = false;
  std::atomic<int64_t> disk_free_{-1};

  std::mutex check_mu_;  // one Check at a time
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace siper::server

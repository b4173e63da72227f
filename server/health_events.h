// The server's own observations (an agent went silent, a spool is filling, the disk is nearly
// full, a deadline passed) as events of a reserved internal agent, `siper-server`, stored
// through the same ingest pipeline as every agent's events: once, hash-chained, matched by
// the Sigma rules of rules/ruleset/siper/ (logsource product siper, service health) and able
// to open incidents. Each is one JSON line with source `siper:health`.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/ingest.h"
#include "server/storage/store.h"

namespace siper::server {

// No enrolled agent can have this id: enrolled ids are "agt-" + hex (agent_service.cc), and
// a stream from a certificate with this CN is refused.
inline constexpr char kInternalAgentId[] = "siper-server";
// LogEvent.source of health events; the decoder routes it to product siper, service health
// only for events of kInternalAgentId (see MatchSource).
inline constexpr char kHealthSource[] = "siper:health";

// One observation. `action` is one of agent_silent, agent_back, spool_filling,
// spool_dropping, clock_skew, disk_nearly_full, disk_ok, deadline_missed.
struct HealthEvent {
  std::string action;
  std::string agent_id;    // agent.id: the agent it is about; empty for the server itself
  std::string agent_name;  // agent.name and host.name, where known
  std::string message;     // one line for a human
  // Numbers under siper.* (and other ECS fields), e.g. {"siper.silent_seconds", 700}.
  std::vector<std::pair<std::string, int64_t>> numbers;
  std::vector<std::pair<std::string, std::string>> strings;  // e.g. {"incident.id", "INC-..."}
};

// The JSON line of an event observed at `now` (nested ECS objects: event.*, agent.*, ...).
std::string HealthEventJson(const HealthEvent& event, absl::Time now);

// The source to decode a line with: the reserved health source is only honoured for the
// internal agent, so an agent cannot forge server alerts by naming a file "siper:health".
std::string_view MatchSource(std::string_view agent_id, std::string_view source);

// Numbers the agent registry does not keep but the health detectors need at start-up: the
// newest stored health event per (agent, action), read back from the store.
struct StoredHealth {
  // agent id -> action -> decoded fields of its newest event of that action.
  std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> newest;
};
[[nodiscard]] absl::StatusOr<StoredHealth> LoadStoredHealth(const storage::Store& store,
                                                            uint64_t max_events = 20000);

// Submits health events to the ingest pipeline as agent kInternalAgentId, with sequence
// numbers continuing after the highest one stored (so they survive restarts).
class HealthReporter {
 public:
  HealthReporter(storage::Store* store, IngestPipeline* ingest);
  // Reads the last stored seq of the internal agent.
  [[nodiscard]] absl::Status Init();
  // Stores the event and waits until it is durable (or failed). Thread-safe.
  [[nodiscard]] absl::Status Emit(const HealthEvent& event, absl::Time now);

 private:
  storage::Store* store_;
  IngestPipeline* ingest_;
  std::mutex mu_;
  uint64_t last_seq_ = 0;
};

}  // namespace siper::server

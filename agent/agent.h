// The running agent: log tailer -> pending events -> shipper, each collector
// and the shipper on its own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/fim.h"
#include "agent/identity.h"
#include "agent/journald.h"
#include "agent/log_tailer.h"
#include "agent/pending_events.h"
#include "agent/rate_limit.h"
#include "agent/renewal.h"
#include "agent/shipper.h"
#include "agent/syslog_udp.h"

namespace siper::agent {

class Agent {
 public:
  // Loads the identity from the state directory and recovers what was
  // pending before the last stop. Nothing runs yet.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Agent>> Create(const AgentConfig& config);
  ~Agent();

  void Start();

  // Stops reading, gives the shipper up to `flush_timeout` to get what was
  // read acknowledged, stops it and persists the offsets.
  [[nodiscard]] absl::Status Stop(absl::Duration flush_timeout);

  // Not OK when a thread ended on an error the agent cannot work past.
  absl::Status health() const;
  // When the log tailer last finished a round (for the systemd watchdog).
  absl::Time last_tail_round() const { return absl::FromUnixNanos(last_tail_round_ns_.load()); }
  const std::string& agent_id() const { return identity_.agent_id; }

 private:
  Agent(const AgentConfig& config, AgentIdentity identity, std::unique_ptr<PendingEvents> pending);
  void TailLoop();
  void FimLoop();
  // Numbers and appends what FIM found (tail thread).
  void DrainFimOutbox();
  // Numbers and appends up to `max` queued UDP datagrams (tail thread);
  // returns how many.
  size_t DrainSyslog(size_t max);
  // Wakes the tail thread (FIM events, datagrams queued, stop).
  void WakeTailer();
  void Fail(absl::Status status);

  const AgentConfig config_;
  const AgentIdentity identity_;
  std::unique_ptr<PendingEvents> pending_;
  std::unique_ptr<LogTailer> tailer_;
  std::unique_ptr<JournalReader> journal_;     // journald.enabled only
  std::unique_ptr<SyslogUdpListener> syslog_;  // syslog_udp.enabled only
  std::thread syslog_thread_;
  int wake_fd_ = -1;          // eventfd the tail thread waits on besides inotify and the journal
  EventRateLimiter limiter_;  // limits.events_per_s (tail thread)
  const MemoryBudget memory_;
  std::unique_ptr<Shipper> shipper_;
  std::unique_ptr<FileIntegrityMonitor> fim_;
  std::thread tail_thread_;
  std::thread fim_thread_;
  // FIM events on their way from the FIM thread to the tail thread, which owns
  // the numbering. The baseline is saved once they are durably spooled.
  struct FimOutbox {
    std::mutex mu;
    std::vector<v1::Event> events;
    size_t in_flight = 0;   // taken by the tail thread, not yet numbered
    uint64_t last_seq = 0;  // highest seq given to a FIM event
  } fim_outbox_;
  std::thread ship_thread_;
  std::unique_ptr<CertificateRenewer> renewer_;
  std::thread renew_thread_;

  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> last_tail_round_ns_{absl::ToUnixNanos(absl::Now())};
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  absl::Status health_;
};

}  // namespace siper::agent

// Sends pending events to the server over AgentService.Stream (mTLS, gzip,
// keepalive; agent/grpc_client.h) and releases them when acknowledged. After any failure it
// reconnects with exponential backoff and jitter and resends everything not
// acknowledged; the server deduplicates by (agent_id, seq).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/pending_events.h"

namespace siper::agent::grpcwire {
class Call;
}

namespace siper::agent {

struct ShipperOptions {
  std::string server;  // HOST:PORT
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  std::string agent_id;
  std::string hostname;
  size_t batch_max_events = 500;
  // Below the server's gRPC receive limit (4 MiB by default), also uncompressed.
  size_t batch_max_bytes = 1 << 20;
  absl::Duration batch_max_delay = absl::Milliseconds(200);
  absl::Duration backoff_initial = absl::Milliseconds(500);
  absl::Duration backoff_max = absl::Seconds(30);
  // Sent events with no acknowledgement for this long: the stream is taken as dead.
  absl::Duration ack_timeout = absl::Seconds(60);
  absl::Duration heartbeat_interval = absl::Seconds(30);
  // HTTP/2 keepalive pings. siper-server accepts pings every 10 s; a gRPC
  // server with default settings would want at least 5 minutes.
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Events lost since the agent started (sources that cannot pause: syslog
  // over UDP), for the heartbeat; unset: 0.
  std::function<uint64_t()> drops;
};

class Shipper {
 public:
  // `pending` must outlive the shipper.
  Shipper(ShipperOptions options, PendingEvents* pending);
  ~Shipper();
  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  // Connects, sends and reconnects until Stop(). Blocks: run it on its own thread.
  void Run();

  // Waits until nothing is pending or `timeout` passes; true when nothing is pending.
  bool WaitAllAcked(absl::Duration timeout);

  // Ends Run(): cancels the stream and the backoff wait. Thread-safe.
  void Stop();

  // Use this certificate and key from the next connection on, and reconnect
  // now (after a renewal). Thread-safe.
  void SetCredentials(std::string cert_pem, std::string key_pem);

  // A stream is open (its Hello went out) and has not failed yet.
  bool connected() const { return connected_.load(); }

 private:
  // One stream, from connect to failure or Stop. True when it made progress
  // (an acknowledgement arrived), which resets the backoff.
  bool RunSession();
  void SleepBackoff(absl::Duration delay);

  const ShipperOptions options_;
  PendingEvents* const pending_;
  const absl::Time started_ = absl::Now();
  // events/s in heartbeats: seqs given out since the last heartbeat.
  uint64_t rate_seq_ = 0;
  absl::Time rate_since_ = absl::Now();

  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<bool> reconnect_{false};  // new credentials: end the session, connect at once
  std::mutex mu_;
  std::string cert_pem_;  // guarded by mu_; starts as options_.cert_pem
  std::string key_pem_;
  std::condition_variable stop_cv_;
  grpcwire::Call* call_ = nullptr;  // the live stream, guarded by mu_
};

}  // namespace siper::agent

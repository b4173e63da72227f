#include "agent/shipper.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "agent/grpc_client.h"
#include "siper/v1/agent_service.pb.h"

namespace siper::agent {
namespace {}  // namespace

Shipper::Shipper(ShipperOptions options, PendingEvents* pending)
    : options_(std::move(options)),
      pending_(pending),
      rate_seq_(pending->LastSeq()),
      cert_pem_(options_.cert_pem),
      key_pem_(options_.key_pem) {}

void Shipper::SetCredentials(std::string cert_pem, std::string key_pem) {
  {
    std::lock_guard lock(mu_);
    cert_pem_ = std::move(cert_pem);
    key_pem_ = std::move(key_pem);
  }
  reconnect_ = true;
  pending_->Wake();
}

Shipper::~Shipper() { Stop(); }

void Shipper::Stop() {
  stopping_ = true;
  {
    std::lock_guard lock(mu_);
    if (call_ != nullptr) call_->Cancel();
  }
  stop_cv_.notify_all();
  pending_->Wake();
}

bool Shipper::WaitAllAcked(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pending_->Size() > 0) {
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void Shipper::SleepBackoff(absl::Duration delay) {
  std::unique_lock lock(mu_);
  stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(delay), [this] { return stopping_.load(); });
}

void Shipper::Run() {
  std::mt19937_64 random(std::random_device{}());
  absl::Duration backoff = options_.backoff_initial;
  while (!stopping_) {
    const bool progressed = RunSession();
    if (stopping_) break;
    if (reconnect_.exchange(false)) {
      spdlog::info("reconnecting with the renewed certificate");
      backoff = options_.backoff_initial;
      continue;
    }
    if (progressed) backoff = options_.backoff_initial;
    // Full jitter in [backoff/2, backoff] keeps a fleet from reconnecting in step.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    const absl::Duration delay = backoff * jitter(random);
    spdlog::info("reconnecting in {} ms", absl::ToInt64Milliseconds(delay));
    SleepBackoff(delay);
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
  spdlog::info("shipper stopped");
}

bool Shipper::RunSession() {
  grpcwire::ClientOptions client;
  client.target = options_.server;
  client.ca_pem = options_.ca_pem;
  {
    std::lock_guard lock(mu_);
    client.key_pem = key_pem_;
    client.cert_pem = cert_pem_;
  }
  client.keepalive_time = options_.keepalive_time;
  client.keepalive_timeout = options_.keepalive_timeout;
  // A batch may take up to batch_max_bytes; one more batch may wait to go out.
  client.max_buffered_bytes = options_.batch_max_bytes;
  client.thread_name = "siper-ship-io";

  std::atomic<bool> progressed{false};
  bool acked_once = false;  // I/O thread only until the call ended
  std::atomic<bool> reader_done{false};
  std::atomic<int64_t> last_ack_ns{absl::ToUnixNanos(absl::Now())};
  grpcwire::Call::Handlers handlers;
  // Acknowledgements are handled on the connection's I/O thread: no reader thread.
  handlers.on_message = [&](std::string_view bytes) {
    v1::ServerMessage message;
    if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::InternalError("cannot parse a message from the server");
    }
    if (message.has_ack()) {
      if (!acked_once) spdlog::info("connected to {}", options_.server);
      acked_once = true;
      last_ack_ns = absl::ToUnixNanos(absl::Now());
      if (message.ack().acked_seq() > pending_->AckedSeq()) progressed = true;
      pending_->Ack(message.ack().acked_seq());
      spdlog::debug("ack {} (stored {}, duplicates {})", message.ack().acked_seq(),
                    message.ack().stored(), message.ack().duplicates());
    } else if (message.has_command()) {
      spdlog::warn("server command '{}' is not supported by this agent", message.command().name());
    }
    return absl::OkStatus();
  };
  handlers.on_ready = [&] {
    if (!stopping_) connected_ = true;
  };
  handlers.on_end = [&] {
    reader_done = true;
    connected_ = false;
    pending_->Wake();
  };

  std::unique_ptr<grpcwire::Call> stream;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    stream = grpcwire::Call::Start(std::move(client), "/siper.v1.AgentService/Stream",
                                   std::move(handlers));
    call_ = stream.get();
  }

  bool ok = true;
  {
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(options_.agent_id);
    hello.mutable_hello()->set_version(SIPER_VERSION);
    hello.mutable_hello()->set_hostname(options_.hostname);
    ok = stream->Write(hello);  // queued; goes out once connected
  }
  uint64_t sent_seq = pending_->AckedSeq();
  // The first heartbeat goes out right after Hello (the server learns the version and clock at
  // once).
  absl::Time last_heartbeat = absl::InfinitePast();
  const int64_t batch_linger_ns = absl::ToInt64Nanoseconds(options_.batch_max_delay);
  while (ok && !stopping_ && !reader_done && !reconnect_) {
    // Acknowledged beyond what this session sent (a resend of older records).
    sent_seq = std::max(sent_seq, pending_->AckedSeq());
    std::vector<v1::Event> events =
        pending_->Next(sent_seq, options_.batch_max_events, options_.batch_max_bytes,
                       absl::Nanoseconds(batch_linger_ns), absl::Now() + absl::Seconds(1));
    if (stopping_ || reader_done || reconnect_) break;
    const absl::Time now = absl::Now();
    // Heartbeats go out under load too, between batches.
    if (now - last_heartbeat >= options_.heartbeat_interval) {
      const uint64_t last_seq = pending_->LastSeq();
      const double seconds = absl::ToDoubleSeconds(now - rate_since_);
      v1::AgentMessage message;
      v1::Heartbeat* heartbeat = message.mutable_heartbeat();
      heartbeat->set_version(SIPER_VERSION);
      heartbeat->set_uptime_s(static_cast<uint64_t>(absl::ToInt64Seconds(now - started_)));
      heartbeat->set_events_per_s(seconds > 0 && last_seq >= rate_seq_
                                      ? static_cast<double>(last_seq - rate_seq_) / seconds
                                      : 0.0);
      heartbeat->set_spool_records(pending_->Size());
      heartbeat->set_spool_bytes(pending_->Bytes());
      heartbeat->set_spool_cap_bytes(pending_->CapBytes());
      // Only syslog over UDP drops (spool full); every other collector pauses.
      heartbeat->set_drops(options_.drops ? options_.drops() : 0);
      heartbeat->set_agent_time_ns(absl::ToUnixNanos(now));
      rate_seq_ = last_seq;
      rate_since_ = now;
      ok = stream->Write(message);
      last_heartbeat = now;
      if (!ok) break;
    }
    if (!events.empty()) {
      v1::AgentMessage message;
      const uint64_t last = events.back().seq();
      const size_t count = events.size();
      auto* batch = message.mutable_batch();
      batch->mutable_events()->Reserve(static_cast<int>(events.size()));
      for (v1::Event& event : events) *batch->add_events() = std::move(event);
      if (sent_seq <= pending_->AckedSeq()) last_ack_ns = absl::ToUnixNanos(now);
      ok = stream->Write(message);
      if (ok) {
        spdlog::debug("sent {} events up to seq {}", count, last);
        sent_seq = last;
      }
      continue;
    }
    if (sent_seq > pending_->AckedSeq() &&
        now - absl::FromUnixNanos(last_ack_ns.load()) > options_.ack_timeout) {
      spdlog::warn("no acknowledgement for {} s with events outstanding; reconnecting",
                   absl::ToInt64Seconds(options_.ack_timeout));
      break;
    }
  }
  // When the server ended the stream, Finish() tells why; otherwise end it here.
  if (!reader_done) stream->Cancel();
  const absl::Status status = stream->Finish();
  {
    std::lock_guard lock(mu_);
    call_ = nullptr;
  }
  connected_ = false;
  if (status.code() == absl::StatusCode::kPermissionDenied &&
      absl::StrContains(status.message(), "revoked")) {
    // One line per attempt; attempts back off to backoff_max, so no flood.
    spdlog::error(
        "the server refused this agent: {}; events keep being spooled; enroll again with a new "
        "token to resume",
        std::string(status.message()));
  } else if (!stopping_ && !reconnect_) {
    spdlog::warn("stream to {} ended{}: {} ({})", options_.server,
                 acked_once ? "" : " before any acknowledgement", std::string(status.message()),
                 static_cast<int>(status.code()));
  }
  return progressed;
}

}  // namespace siper::agent

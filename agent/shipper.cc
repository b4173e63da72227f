#include "agent/shipper.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "siper/v1/agent_service.grpc.pb.h"

namespace siper::agent {
namespace {

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

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
    if (context_ != nullptr) context_->TryCancel();
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
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = options_.ca_pem;
  {
    std::lock_guard lock(mu_);
    tls.pem_private_key = key_pem_;
    tls.pem_cert_chain = cert_pem_;
  }
  grpc::ChannelArguments args;
  args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options_.keepalive_time));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options_.keepalive_timeout));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // A fresh channel per session: our own backoff decides when to try again,
  // not the channel's (which grows to two minutes).
  auto channel = grpc::CreateCustomChannel(options_.server, grpc::SslCredentials(tls), args);
  auto stub = v1::AgentService::NewStub(channel);

  grpc::ClientContext context;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    context_ = &context;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>> stream =
      stub->Stream(&context);

  std::atomic<bool> progressed{false};
  bool acked_once = false;  // reader thread only
  std::atomic<bool> reader_done{false};
  std::atomic<int64_t> last_ack_ns{absl::ToUnixNanos(absl::Now())};
  std::thread reader([&] {
    pthread_setname_np(pthread_self(), "siper-ship-ack");
    v1::ServerMessage message;
    while (stream->Read(&message)) {
      if (message.has_ack()) {
        if (!acked_once) spdlog::info("connected to {}", options_.server);
        acked_once = true;
        last_ack_ns = absl::ToUnixNanos(absl::Now());
        if (message.ack().acked_seq() > pending_->AckedSeq()) progressed = true;
        pending_->Ack(message.ack().acked_seq());
        spdlog::debug("ack {} (stored {}, duplicates {})", message.ack().acked_seq(),
                      message.ack().stored(), message.ack().duplicates());
      } else if (message.has_command()) {
        spdlog::warn("server command '{}' is not supported by this agent",
                     message.command().name());
      }
    }
    reader_done = true;
    connected_ = false;
    pending_->Wake();
  });

  bool ok = true;
  {
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(options_.agent_id);
    hello.mutable_hello()->set_version(SIPER_VERSION);
    hello.mutable_hello()->set_hostname(options_.hostname);
    ok = stream->Write(hello);
    if (ok) connected_ = true;
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
  {
    std::lock_guard lock(mu_);
    context_ = nullptr;
  }
  // When the server ended the stream, Finish() tells why; otherwise end it here.
  if (!reader_done) context.TryCancel();
  reader.join();
  const grpc::Status status = stream->Finish();
  connected_ = false;
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED &&
      status.error_message().find("revoked") != std::string::npos) {
    // One line per attempt; attempts back off to backoff_max, so no flood.
    spdlog::error(
        "the server refused this agent: {}; events keep being spooled; enroll again with a new "
        "token to resume",
        status.error_message());
  } else if (!stopping_ && !reconnect_) {
    spdlog::warn("stream to {} ended{}: {} ({})", options_.server,
                 acked_once ? "" : " before any acknowledgement", status.error_message(),
                 static_cast<int>(status.error_code()));
  }
  return progressed;
}

}  // namespace siper::agent

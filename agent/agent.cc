#include "agent/agent.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/disk_spool.h"
#include "agent/enroll.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(const AgentConfig& config) {
  SIPER_ASSIGN_OR_RETURN(AgentIdentity identity, LoadIdentity(config.state_dir));
  SpoolOptions spool_options;
  switch (config.spool_fsync) {
    case SpoolFsyncPolicy::kAlways:
      spool_options.fsync = SpoolFsync::kAlways;
      break;
    case SpoolFsyncPolicy::kInterval:
      spool_options.fsync = SpoolFsync::kInterval;
      break;
    case SpoolFsyncPolicy::kNever:
      spool_options.fsync = SpoolFsync::kNever;
      break;
  }
  spool_options.fsync_interval = absl::Milliseconds(config.spool_fsync_interval_ms);
  spool_options.max_bytes = config.spool_max_bytes;
  spool_options.segment_bytes = config.spool_segment_bytes;
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<DiskSpool> spool,
                         DiskSpool::Open(config.state_dir / "spool", spool_options));
  std::unique_ptr<Agent> agent(new Agent(config, std::move(identity), std::move(spool)));
  SIPER_RETURN_IF_ERROR(agent->tailer_->Recover());
  return agent;
}

Agent::Agent(const AgentConfig& config, AgentIdentity identity,
             std::unique_ptr<PendingEvents> pending)
    : config_(config), identity_(std::move(identity)), pending_(std::move(pending)) {
  tailer_ = std::make_unique<LogTailer>(config_.logs, StateFiles(config_.state_dir).offsets,
                                        identity_.agent_id, pending_.get());
  ShipperOptions options;
  options.server = config_.server;
  options.ca_pem = identity_.ca_pem;
  options.cert_pem = identity_.cert_pem;
  options.key_pem = identity_.key_pem;
  options.agent_id = identity_.agent_id;
  options.hostname = LocalHostname();
  options.batch_max_events = config_.batch_max_events;
  options.batch_max_delay = absl::Milliseconds(config_.batch_max_delay_ms);
  shipper_ = std::make_unique<Shipper>(std::move(options), pending_.get());
}

Agent::~Agent() {
  if (tail_thread_.joinable() || ship_thread_.joinable()) {
    (void)Stop(absl::ZeroDuration());
  }
}

void Agent::Fail(absl::Status status) {
  spdlog::critical("{}", std::string(status.message()));
  std::lock_guard lock(mu_);
  if (health_.ok()) health_ = std::move(status);
}

absl::Status Agent::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

void Agent::Start() {
  spdlog::info("siper-agent {} starting as {}; server {}, {} log inputs", SIPER_VERSION,
               identity_.agent_id, config_.server, config_.logs.size());
  if (!config_.fim.empty()) {
    spdlog::warn("fim: {} paths configured; file integrity monitoring is not implemented yet",
                 config_.fim.size());
  }
  ship_thread_ = std::thread([this] {
    try {
      shipper_->Run();
    } catch (const std::exception& e) {
      Fail(absl::InternalError(absl::StrCat("shipper: ", e.what())));
    }
  });
  tail_thread_ = std::thread([this] {
    try {
      TailLoop();
    } catch (const std::exception& e) {
      Fail(absl::InternalError(absl::StrCat("log tailer: ", e.what())));
    }
  });
}

void Agent::TailLoop() {
  const auto interval = std::chrono::milliseconds(config_.poll_interval_ms);
  absl::Time last_error_log = absl::InfinitePast();
  while (!stopping_) {
    if (absl::Status status = tailer_->Poll(); !status.ok()) {
      // Typically offsets.json cannot be written (disk full): nothing new is
      // sent until it can, so nothing is lost; say so now and then.
      if (absl::Now() - last_error_log > absl::Minutes(1)) {
        spdlog::error("log tailer: {}", std::string(status.message()));
        last_error_log = absl::Now();
      }
    }
    last_tail_round_ns_ = absl::ToUnixNanos(absl::Now());
    std::unique_lock lock(mu_);
    stop_cv_.wait_for(lock, interval, [this] { return stopping_.load(); });
  }
}

absl::Status Agent::Stop(absl::Duration flush_timeout) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (tail_thread_.joinable()) tail_thread_.join();
  // Waiting makes sense only with a live stream; otherwise the next start resends.
  if (pending_->Size() > 0 && flush_timeout > absl::ZeroDuration() && shipper_->connected()) {
    spdlog::info("stopping: waiting up to {} ms for {} events to be acknowledged",
                 absl::ToInt64Milliseconds(flush_timeout), pending_->Size());
    if (!shipper_->WaitAllAcked(flush_timeout)) {
      spdlog::warn("stopping with {} events unacknowledged; they are sent again at next start",
                   pending_->Size());
    }
  }
  shipper_->Stop();
  if (ship_thread_.joinable()) ship_thread_.join();
  absl::Status status = tailer_->Checkpoint();
  if (status.ok()) {
    spdlog::info("stopped; offsets saved, next seq {}, acknowledged up to {}", tailer_->next_seq(),
                 pending_->AckedSeq());
  } else {
    spdlog::error("stopped, but offsets could not be saved: {}", std::string(status.message()));
  }
  return status;
}

}  // namespace siper::agent

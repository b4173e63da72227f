#include "server/maintenance.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "absl/time/clock.h"
#include "common/time_util.h"

namespace siper::server {

MaintenanceThread::MaintenanceThread(storage::Store* store, storage::RetentionOptions retention,
                                     int64_t period_s)
    : store_(store), retention_(retention), period_s_(period_s > 0 ? period_s : 24 * 3600) {}

MaintenanceThread::~MaintenanceThread() { Stop(); }

absl::StatusOr<storage::RetentionResult> MaintenanceThread::RunRetention(int64_t now_ns) {
  absl::StatusOr<storage::RetentionResult> r = store_->ApplyRetention(retention_, now_ns);
  if (!r.ok()) {
    spdlog::error("retention failed: {}", std::string(r.status().message()));
  } else {
    spdlog::info("retention: events before {}, alerts before {} dropped ({} chain records)",
                 r->events_cutoff_ns ? FormatTimeNs(r->events_cutoff_ns) : std::string("-"),
                 r->alerts_cutoff_ns ? FormatTimeNs(r->alerts_cutoff_ns) : std::string("-"),
                 r->chain_records_dropped);
  }
  return r;
}

void MaintenanceThread::Start() {
  (void)RunRetention(absl::ToUnixNanos(absl::Now()));  // logged inside
  thread_ = std::thread([this] { Run(); });
}

void MaintenanceThread::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MaintenanceThread::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(period_s_), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    (void)RunRetention(absl::ToUnixNanos(absl::Now()));
    lock.lock();
  }
}

}  // namespace siper::server

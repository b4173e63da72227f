// Daily housekeeping on a thread: retention (Store::ApplyRetention), run once
// at start and then every `period`.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "server/storage/store.h"

namespace siper::server {

class MaintenanceThread {
 public:
  MaintenanceThread(storage::Store* store, storage::RetentionOptions retention,
                    int64_t period_s = 24 * 3600);
  ~MaintenanceThread();  // Stop()
  MaintenanceThread(const MaintenanceThread&) = delete;
  MaintenanceThread& operator=(const MaintenanceThread&) = delete;

  // Runs retention once now (synchronously), then starts the thread.
  void Start();
  void Stop();

  // One retention run at `now_ns`.
  absl::StatusOr<storage::RetentionResult> RunRetention(int64_t now_ns);

 private:
  void Run();

  storage::Store* store_;
  storage::RetentionOptions retention_;
  int64_t period_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace siper::server

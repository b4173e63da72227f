// File integrity monitoring: a baseline of the configured paths (size, mode,
// owner, mtime, SHA-256), changes seen in real time through inotify plus a
// periodic full rescan that catches what inotify missed, and the baseline kept
// in STATE_DIR/fim.json so a restart reports only what changed meanwhile.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/scan_budget.h"
#include "siper/v1/events.pb.h"

namespace siper::agent {

struct FimOptions {
  absl::Duration rescan_interval = absl::Hours(1);  // fim_rescan_s; default 3600 s
  uint64_t large_file_bytes = 64 << 20;  // fim_large_file_bytes: hashed in the low-priority pass
  size_t read_buffer_bytes = 1 << 20;    // hashing reads this much at a time
  bool use_inotify = true;               // off: rescans only (tests, filesystems without it)
  bool report_baseline = true;           // the very first scan sends FILE_CHANGE_BASELINE events
  // fim_cpu_percent / fim_io_bytes_per_s: scanning and hashing sleep to stay
  // within them (default 5 % of one core, 32 MiB/s).
  ScanBudgetOptions budget;
};

// SHA-256 of the file at `path` as lowercase hex (OpenSSL EVP, `buffer_bytes`
// reads), each read charged to `budget` when given.
[[nodiscard]] absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path,
                                                     size_t buffer_bytes = 1 << 20,
                                                     ScanBudget* budget = nullptr);

class FileIntegrityMonitor {
 public:
  // Not thread-safe: one thread calls Start, Poll, TakeEvents and SaveBaseline.
  FileIntegrityMonitor(std::vector<FimInput> inputs, std::filesystem::path state_file,
                       FimOptions options = {});
  ~FileIntegrityMonitor();
  FileIntegrityMonitor(const FileIntegrityMonitor&) = delete;
  FileIntegrityMonitor& operator=(const FileIntegrityMonitor&) = delete;

  // Loads fim.json, starts watching, and scans everything: without fim.json the
  // scan is the baseline (BASELINE events if report_baseline); with it, the
  // differences are reported (what changed while the agent was down).
  [[nodiscard]] absl::Status Start();

  // One round: waits up to `wait` for inotify events (when nothing else is to
  // do), checks the paths they name, rescans when due, and hashes at most one
  // large file.
  [[nodiscard]] absl::Status Poll(absl::Duration wait);

  // Events found since the last call (no seq, agent id or time yet).
  std::vector<v1::FileEvent> TakeEvents();

  // Writes fim.json (atomically). Call once the events taken are safely
  // spooled: a crash before then reports those changes again.
  [[nodiscard]] absl::Status SaveBaseline();
  bool baseline_dirty() const { return dirty_; }

  size_t files() const { return baseline_.size(); }
  size_t large_files_waiting() const { return deferred_.size(); }
  // Time spent sleeping to keep within the CPU and I/O budget.
  absl::Duration throttled() const { return budget_.slept(); }

 private:
  struct Entry {
    uint64_t size = 0;
    uint32_t mode = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    uint64_t ino = 0;
    std::string sha256;
  };

  bool Ignored(const std::string& path, const FimInput& input) const;
  // The configured input that covers `path` (nullptr: none).
  const FimInput* Covering(const std::string& path) const;
  void FullScan();
  void ScanInput(const FimInput& input, std::set<std::string>* seen);
  // Compares `path` with its baseline entry and reports a difference.
  void CheckPath(const std::string& path, bool allow_defer);
  void Report(const std::string& path, const Entry& entry, v1::FileChange change);
  void Watch(const std::string& dir);
  void WatchTree(const std::string& dir, const FimInput& input);
  void DrainInotify();

  const std::vector<FimInput> inputs_;
  const std::filesystem::path state_file_;
  const FimOptions options_;
  ScanBudget budget_;

  std::map<std::string, Entry> baseline_;
  bool first_run_ = false;  // no fim.json yet: the first scan is the baseline
  bool dirty_ = false;
  std::vector<v1::FileEvent> events_;
  std::set<std::string> changed_;  // paths inotify named, to check
  // Large files waiting for the low-priority pass -> whether found by the first scan.
  std::map<std::string, bool> deferred_;
  absl::Time next_rescan_ = absl::InfiniteFuture();
  int inotify_fd_ = -1;
  std::map<int, std::string> watches_;  // watch descriptor -> directory
  std::set<std::string> watched_dirs_;
};

}  // namespace siper::agent

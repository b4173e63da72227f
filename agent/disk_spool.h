// Durable PendingEvents: every event is appended to a segment file in
// STATE_DIR/spool before it is shipped, and stays there until the server
// acknowledged it. After a restart or crash the unacknowledged records are
// replayed with their seqs. See agent/README.md (Spool) for the format.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/pending_events.h"

namespace siper::agent {

enum class SpoolFsync {
  kAlways,    // fdatasync after every Append: nothing appended is lost, even on power loss
  kInterval,  // fdatasync every `fsync_interval`: a power loss loses at most that much
  kNever,     // the OS decides: a process crash loses nothing, a power loss may
};

struct SpoolOptions {
  SpoolFsync fsync = SpoolFsync::kInterval;          // default interval
  absl::Duration fsync_interval = absl::Seconds(1);  // default 1 s
  uint64_t max_bytes = uint64_t{1} << 30;            // default 1 GiB; Room() is 0 beyond
  uint64_t segment_bytes = 16 << 20;                 // default 16 MiB; a segment rolls beyond
  // When set (not with kNever), this directory is fsynced just before each
  // fdatasync of a segment, under the spool's lock: a file renamed into it
  // before an Append (the tailer's offsets.json) is then durably named before
  // the records appended after it are durable, so its writer can skip the
  // directory's fsync on every write.
  std::filesystem::path sync_directory_first;
};

class DiskSpool final : public PendingEvents {
 public:
  // Opens (creating when missing) the spool in `dir`: reads the ack position,
  // checks every record's CRC, truncates a torn or corrupt tail (logged), and
  // deletes segments that are fully acknowledged.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DiskSpool>> Open(std::filesystem::path dir,
                                                                       SpoolOptions options = {});
  ~DiskSpool() override;
  DiskSpool(const DiskSpool&) = delete;
  DiskSpool& operator=(const DiskSpool&) = delete;

  size_t Room() const override;
  // Events with seq at or below the highest seq already held (or acknowledged)
  // are skipped: a recovery that re-reads lines the spool has is a no-op.
  void Append(std::vector<v1::Event> events) override;
  std::vector<v1::Event> Next(uint64_t after_seq, size_t max, size_t max_bytes,
                              absl::Duration linger, absl::Time deadline) override;
  void Ack(uint64_t acked_seq) override;
  uint64_t AckedSeq() const override;
  size_t Size() const override;
  void Wake() override;
  uint64_t DurableSeq() const override;

  // Bytes of segment files on disk.
  uint64_t Bytes() const override;
  uint64_t CapBytes() const override { return options_.max_bytes; }
  // The highest seq held or acknowledged (0: none).
  uint64_t LastSeq() const override;
  // Segment files on disk (for tests).
  size_t Segments() const;
  // The last write error, if any (the events are retried, Room() is 0 meanwhile).
  absl::Status WriteStatus() const override;

 private:
  struct Segment {
    std::filesystem::path path;
    uint64_t first_seq = 0;  // of the first record (0: empty)
    uint64_t last_seq = 0;
    uint64_t bytes = 0;
    uint64_t records = 0;
  };

  DiskSpool(std::filesystem::path dir, SpoolOptions options);
  absl::Status Recover();
  absl::Status RecoverSegment(Segment& segment, bool last);
  absl::Status OpenActive(uint64_t first_seq);  // needs mu_
  absl::Status SyncLocked();                    // needs mu_
  int SyncActiveLocked();                       // dir, then segment; fdatasync's result
  void WriteUnwrittenLocked();                  // needs mu_
  void PersistAckLocked(bool sync);             // needs mu_
  void DropAckedSegmentsLocked();               // needs mu_
  void CloseReadLocked();                       // needs mu_
  size_t FirstAfter(uint64_t after_seq) const;  // segment index; needs mu_
  void FlushLoop();

  const std::filesystem::path dir_;
  const SpoolOptions options_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Segment> segments_;  // ascending seq; the back one is active
  int active_fd_ = -1;            // open for append on segments_.back()
  int sync_dir_fd_ = -1;          // options_.sync_directory_first, open
  uint64_t bytes_ = 0;
  uint64_t acked_seq_ = 0;
  uint64_t persisted_ack_ = 0;
  uint64_t last_seq_ = 0;
  uint64_t durable_seq_ = 0;
  bool unsynced_ = false;
  absl::Status write_status_;
  std::vector<v1::Event> unwritten_;  // appended, not yet written (write error)
  uint64_t wake_generation_ = 0;
  // A waiting Next() is woken by Append once last_seq_ reaches this (0: always).
  uint64_t wake_at_seq_ = 0;
  // Where the last Next() stopped, to continue without rescanning a segment.
  struct Cursor {
    uint64_t seq = 0;
    std::string segment;
    uint64_t offset = 0;
  } cursor_;
  int read_fd_ = -1;       // the segment Next() last read, kept open
  std::string read_path_;  // its path

  bool stopping_ = false;
  std::condition_variable stop_cv_;
  std::thread flusher_;
};

}  // namespace siper::agent

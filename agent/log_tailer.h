// Follows log files and turns each complete line into an Event with the
// agent's next sequence number.
//
// Losslessness: before any event is handed to PendingEvents, offsets.json
// records which byte range of which file carries which seqs ("runs"). Runs are
// released when the server acknowledges them, or as soon as PendingEvents
// keeps them durably (DurableSeq(): the disk spool after its fsync).
// After a restart the unacknowledged runs are read again from the files and get
// exactly the seqs they had, so the server, which deduplicates by
// (agent_id, seq), stores every line once. Files are known by inode plus a
// fingerprint of their first bytes, so a reused inode is not taken for the old
// file.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/pending_events.h"

namespace siper::agent {

struct TailerOptions {
  size_t max_line_bytes = 64 * 1024;             // longer lines are cut and marked truncated
  size_t fingerprint_bytes = 1024;               // first bytes that identify a file with its inode
  size_t max_bytes_per_file_per_poll = 4 << 20;  // fairness between busy files
  size_t max_bytes_per_poll = 16 << 20;          // all files together (memory bound)
  int rotated_idle_polls = 5;  // polls without data before a moved-away file is closed
  absl::Duration ack_persist_interval = absl::Seconds(1);  // acks only; runs persist at once
  // fsync offsets.json's directory after each rename. False only when the
  // spool fsyncs that directory before each of its own syncs
  // (SpoolOptions::sync_directory_first): offsets.json is then durably
  // renamed before the records appended after it are durable.
  bool sync_directory = true;
};

class LogTailer {
 public:
  // `pending` must outlive the tailer. The tailer is not thread-safe: one
  // thread calls Recover, Poll and Checkpoint.
  LogTailer(std::vector<LogInput> inputs, std::filesystem::path offsets_path, std::string agent_id,
            PendingEvents* pending, TailerOptions options = {});
  ~LogTailer();
  LogTailer(const LogTailer&) = delete;
  LogTailer& operator=(const LogTailer&) = delete;

  // Loads offsets.json (if any), tells `pending` what was acknowledged, reads
  // the unacknowledged runs again and appends them with their original seqs.
  // `also`: events other collectors re-read with their seqs (journald), merged
  // in seq order. Call once, before the first Poll.
  [[nodiscard]] absl::Status Recover(std::vector<v1::Event> also = {});

  // One round: releases acknowledged runs, re-evaluates the globs, follows
  // rotation and truncation, reads new complete lines while `pending` has
  // room (and at most `max_lines`), persists the new runs, then appends their
  // events.
  [[nodiscard]] absl::Status Poll(size_t max_lines = SIZE_MAX);
  // True when the last Poll stopped at its byte caps (max_bytes_per_poll,
  // max_bytes_per_file_per_poll) with more complete data waiting in a file
  // (a catch-up after a restart or a burst), and this round read some: call
  // Poll again at once rather than wait for the next change. False when
  // nothing could be read (no room in the spool, a line still being written)
  // or the round failed. (The events/s cap has its own wait, taken first.)
  bool backlog() const { return backlog_; }

  // Numbers events of a collector that cannot re-read them (FIM): next_seq is
  // persisted first, then they are appended. Returns the last seq given (0:
  // none). On error nothing was appended; call again with the same events.
  [[nodiscard]] absl::StatusOr<uint64_t> AppendNumbered(std::vector<v1::Event> events);

  // Gives out `count` seqs for a collector that appends them itself
  // (journald): lines read before go out first, then next_seq is persisted.
  // Returns the first seq. On error no seq was given out.
  [[nodiscard]] absl::StatusOr<uint64_t> ReserveSeqs(uint64_t count);

  // Releases acknowledged runs and writes offsets.json now.
  [[nodiscard]] absl::Status Checkpoint();

  // The seq the next line will get.
  uint64_t next_seq() const { return next_seq_; }
  // Files followed now (open), for tests and logging.
  size_t open_files() const;

 private:
  struct Run {
    uint64_t first_seq = 0;
    uint64_t count = 0;
    uint64_t start = 0;  // byte offset of the first line
    uint64_t end = 0;    // byte offset after the last line
  };
  struct TrackedFile;
  struct Line {
    std::string bytes;
    bool truncated = false;
  };

  bool ReleaseAcked();
  // Whether `path` matches one of the configured patterns.
  bool IsConfigured(const std::string& path) const;
  absl::Status ScanGlobs();
  absl::Status ReadNewLines(TrackedFile& file, size_t* room, uint64_t* bytes_left,
                            std::vector<v1::Event>* out);
  absl::Status ReadLines(TrackedFile& file, uint64_t limit, size_t max_lines, uint64_t max_bytes,
                         bool flush_partial, std::vector<Line>* out);
  absl::StatusOr<uint64_t> EndOffset(int fd, uint64_t size);
  absl::StatusOr<bool> FingerprintMatches(int fd, uint64_t fp_len, uint64_t fp_hash);
  void UpdateFingerprint(TrackedFile& file, uint64_t size);
  void ResetForNewContent(TrackedFile& file, const char* why);
  absl::Status RecoverFile(TrackedFile& file, std::vector<v1::Event>* out);
  absl::Status Persist();
  v1::Event MakeEvent(const TrackedFile& file, uint64_t seq, Line line, int64_t now_ns) const;

  const std::vector<LogInput> inputs_;
  const std::filesystem::path offsets_path_;
  const std::string agent_id_;
  PendingEvents* const pending_;
  const TailerOptions options_;

  std::vector<std::unique_ptr<TrackedFile>> files_;
  std::set<std::string> known_paths_;  // paths followed before the restart
  std::set<std::string> unreadable_;   // paths that failed to open (warned once)
  uint64_t next_seq_ = 1;
  uint64_t acked_seq_ = 0;     // acknowledged by the server
  uint64_t released_seq_ = 0;  // acknowledged, or durably in `pending_`: runs up to it released
  bool first_scan_ = true;
  bool dirty_ = false;    // acknowledged progress not yet persisted
  bool paused_ = false;   // the spool had no room at the last poll
  bool backlog_ = false;  // see backlog()
  absl::Time last_persist_ = absl::InfinitePast();
  std::vector<v1::Event> unpersisted_;  // read, numbered, waiting for offsets.json to be written
  std::vector<char> buffer_;
};

}  // namespace siper::agent

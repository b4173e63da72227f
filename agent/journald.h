// Reads the systemd journal (sd_journal, libsystemd) and turns each entry into
// a LogEvent whose line is a syslog line rebuilt from the entry, so the
// server's decoders (sshd, sudo, ...) apply as they do to /var/log files.
//
// Losslessness follows the log tailer's rule (log_tailer.h): before entries
// are handed to PendingEvents, STATE_DIR/journald.json records the cursor of
// the last released entry and the "runs" read after it ({seq, count, cursor of
// the run's last entry}). A run is released (the cursor advances past it)
// once the server acknowledged it or the spool holds it durably. After a
// restart the journal is read again from the saved cursor and the runs get
// the seqs they had, so the server (deduplicating by agent id and seq) stores
// every entry once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/pending_events.h"

typedef struct sd_journal sd_journal;

namespace siper::agent {

struct JournalOptions {
  size_t max_line_bytes = 64 * 1024;                   // longer lines are cut and marked truncated
  absl::Duration persist_interval = absl::Seconds(1);  // cursor progress; runs persist at once
  std::string hostname;  // for entries without _HOSTNAME (default: this host's name)
};

// Gives out `count` consecutive seqs (persisted before it returns) and returns
// the first; the log tailer's ReserveSeqs.
using SeqReserver = std::function<absl::StatusOr<uint64_t>(uint64_t count)>;

// The syslog line for one journal entry: "TIME HOST IDENT[PID]: MESSAGE", TIME
// as RFC 3339 in UTC with microseconds (rsyslog's high-precision format, which
// keeps the year). `fields` are the entry's FIELD=value pairs.
std::string JournalEntryLine(int64_t realtime_us,
                             const std::vector<std::pair<std::string, std::string>>& fields,
                             const std::string& default_host);
// "journald:" + _SYSTEMD_UNIT, else SYSLOG_IDENTIFIER, else _COMM.
std::string JournalEntrySource(const std::vector<std::pair<std::string, std::string>>& fields);

class JournalReader {
 public:
  // `pending` must outlive the reader. Not thread-safe: the tail thread calls
  // Recover, Poll and Checkpoint.
  JournalReader(JournaldInput input, std::filesystem::path state_path, std::string agent_id,
                PendingEvents* pending, JournalOptions options = {});
  ~JournalReader();
  JournalReader(const JournalReader&) = delete;
  JournalReader& operator=(const JournalReader&) = delete;

  // Opens the journal (when it cannot, says so once in the log and stays
  // inactive: the agent carries on without it), loads journald.json and puts
  // the entries of unreleased runs into `out` with their seqs. Call once.
  // An error only for a journald.json that cannot be read or parsed.
  [[nodiscard]] absl::Status Recover(std::vector<v1::Event>* out);

  // One round: releases acknowledged runs, reads up to `max_events` new
  // entries (about `max_bytes`), numbers them through `reserve`, persists the
  // run, then appends them. Returns how many were appended.
  [[nodiscard]] absl::StatusOr<size_t> Poll(size_t max_events, size_t max_bytes,
                                            const SeqReserver& reserve);

  // Releases acknowledged runs and writes journald.json now.
  [[nodiscard]] absl::Status Checkpoint();

  // The journal is open and being read.
  bool active() const { return journal_ != nullptr; }
  // Becomes readable when the journal changed (poll it with POLLIN); -1: none.
  int fd() const { return fd_; }

 private:
  struct Run {
    uint64_t first_seq = 0;
    uint64_t count = 0;
    std::string last_cursor;  // of the run's last entry
  };

  absl::Status Open();
  // Positions the journal so the next entry read follows `cursor` (empty:
  // where `start` says).
  void SeekAfter(const std::string& cursor);
  // Moves to the next entry; false at the end of the journal.
  bool Next();
  // The current entry as an event (seq not set).
  v1::Event CurrentEvent(int64_t now_ns);
  std::string CurrentCursor();
  bool ReleaseAcked();
  absl::Status Persist();

  const JournaldInput input_;
  const std::filesystem::path state_path_;
  const std::string agent_id_;
  PendingEvents* const pending_;
  const JournalOptions options_;

  sd_journal* journal_ = nullptr;
  int fd_ = -1;
  bool current_unread_ = false;  // positioned on an entry Next() must return first
  std::string cursor_;           // last released entry ("": none yet)
  std::string read_cursor_;      // last entry handed on ("": none)
  std::deque<Run> runs_;         // numbered, not released, in journal order
  uint64_t released_seq_ = 0;
  bool dirty_ = false;
  absl::Time last_persist_ = absl::InfinitePast();
};

}  // namespace siper::agent

// The agent's configuration file (YAML), as DESIGN.md shows it, checked strictly:
// an error names the file, the key and what is wrong, and the agent refuses to
// start rather than run half-configured.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace siper::agent {

// Where reading a log file starts when the agent sees it for the first time.
// Files created after the agent started are always read from their beginning.
enum class StartAt { kEnd, kBeginning };

struct LogInput {
  std::string path;  // a path or a glob(7) pattern
  StartAt start = StartAt::kEnd;
};

// A path watched by file integrity monitoring (a directory or one file).
struct FimInput {
  std::string path;                 // absolute, no trailing slash
  bool recursive = false;           // a directory's subdirectories too
  std::vector<std::string> ignore;  // fnmatch(3) globs, against the full path or the file name
};

// The systemd journal as a source (journald.h).
struct JournaldInput {
  bool enabled = false;
  // sd_journal_add_match(3) terms, "FIELD=value": the same field twice means
  // either value, different fields must all match. Empty: every entry.
  std::vector<std::string> matches;
  std::filesystem::path directory;  // empty: the local system journal
  StartAt start = StartAt::kEnd;    // when there is no saved cursor yet
};

// A UDP syslog listener (syslog_udp.h), for network devices (switches,
// firewalls) that send syslog to the nearest agent. A source that cannot
// pause: with the spool full, datagrams are dropped and counted.
struct SyslogUdpInput {
  bool enabled = false;
  std::string listen;                 // "ADDRESS:PORT" or "[IPV6]:PORT", numeric; port 0: any
  std::string host;                   // parsed from `listen`
  int port = 0;                       // parsed from `listen`
  size_t max_message_bytes = 8192;    // longer datagrams are cut and marked truncated
  uint64_t receive_buffer_bytes = 0;  // SO_RCVBUF; 0: the kernel's default
};

// When the disk spool calls fdatasync (see disk_spool.h).
enum class SpoolFsyncPolicy { kAlways, kInterval, kNever };

struct AgentConfig {
  std::filesystem::path source;  // the file this was loaded from, for messages
  std::string server;            // HOST:PORT, required
  std::filesystem::path state_dir = "/var/lib/siper-agent";
  std::vector<LogInput> logs;
  std::vector<FimInput> fim;
  std::filesystem::path log_file;       // default: state_dir/log/agent.log
  std::string log_level = "info";       // trace, debug, info, warn, error
  size_t batch_max_events = 500;        // events per batch sent (siper-server takes up to 10000)
  int batch_max_delay_ms = 200;         // how long a batch waits to fill
  size_t max_pending_events = 10000;    // only for an in-memory store; the agent uses the spool
  size_t max_pending_bytes = 32 << 20;  // the same, in bytes
  SpoolFsyncPolicy spool_fsync = SpoolFsyncPolicy::kInterval;  // spool.fsync
  int spool_fsync_interval_ms = 1000;                          // spool.fsync_interval_ms
  uint64_t spool_max_bytes = uint64_t{1} << 30;  // spool.max_bytes: reading pauses beyond
  uint64_t spool_segment_bytes = 16 << 20;       // spool.segment_bytes
  int poll_interval_ms = 200;                    // how often log files are checked without inotify
  // After a wake-up (a file changed, the journal, FIM, UDP) the tail thread
  // waits this long before reading, so a burst is read, persisted
  // (offsets.json: one fsync) and spooled in one round.
  int read_delay_ms = 500;
  int fim_rescan_s = 3600;                   // full FIM rescan, catching what inotify missed
  uint64_t fim_large_file_bytes = 64 << 20;  // larger files are hashed in a low-priority pass
  int heartbeat_s = 30;                      // heartbeat interval
  // fim_cpu_percent: FIM's scanning and hashing use at most this share of one
  // core (measured as the FIM thread's CPU time); 0: no limit.
  double fim_cpu_percent = 5;
  uint64_t fim_io_bytes_per_s = 32 << 20;  // fim_io_bytes_per_s: hashing reads; 0: no limit
  JournaldInput journald;                  // journald.*
  SyslogUdpInput syslog_udp;               // syslog_udp.*
  // limits.events_per_s: events read per second over every source; above it
  // files and the journal are read more slowly. 0: no cap.
  uint64_t max_events_per_s = 0;
  uint64_t events_burst = 0;  // limits.events_burst: default events_per_s (one second's worth)
  // limits.memory_bytes: bound on what the agent itself buffers (a round's
  // lines, the batch being sent, FIM events waiting); 0: the built-in sizes.
  uint64_t max_memory_bytes = 0;
  // cert_renew_fraction: the certificate is renewed once less than this
  // fraction of its lifetime is left.
  double cert_renew_fraction = 1.0 / 3;
};

// Sizes of the agent's own buffers under `limits.memory_bytes` (0: defaults).
struct MemoryBudget {
  size_t read_bytes_per_round = 16 << 20;  // log lines read in one tailer round, all files
  size_t read_bytes_per_file = 4 << 20;    // of which one file
  size_t batch_bytes = 1 << 20;            // one batch sent to the server
  size_t fim_outbox_events = 10000;        // FIM events waiting to be numbered
  size_t syslog_queue_bytes = 1 << 20;     // UDP datagrams waiting to be numbered
};
MemoryBudget MemoryBudgetFor(uint64_t max_memory_bytes);

// Parses `text` as the content of `source` (used in messages only).
[[nodiscard]] absl::StatusOr<AgentConfig> ParseConfig(const std::string& text,
                                                      const std::filesystem::path& source);

// Reads and parses the file at `path`.
[[nodiscard]] absl::StatusOr<AgentConfig> LoadConfig(const std::filesystem::path& path);

}  // namespace siper::agent

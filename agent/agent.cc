#include "agent/agent.h"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/disk_spool.h"
#include "agent/enroll.h"
#include "agent/resident_pages.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(const AgentConfig& config) {
  SIPER_RETURN_IF_ERROR(FinishInterruptedRenewal(config.state_dir));
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
  // offsets.json's rename becomes durable with the spool's next sync instead of
  // with a directory fsync of its own each round (see TailerOptions::sync_directory).
  if (spool_options.fsync != SpoolFsync::kNever)
    spool_options.sync_directory_first = config.state_dir;
  SIPER_ASSIGN_OR_RETURN(std::unique_ptr<DiskSpool> spool,
                         DiskSpool::Open(config.state_dir / "spool", spool_options));
  std::unique_ptr<Agent> agent(new Agent(config, std::move(identity), std::move(spool)));
  if (agent->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  if (agent->syslog_) {
    // Bound before anything runs: a port we cannot have stops the start.
    if (absl::Status status = agent->syslog_->Open(); !status.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(config.source.string(), ": key 'syslog_udp.listen': ", status.message()));
    }
  }
  std::vector<v1::Event> journal_events;
  if (agent->journal_) SIPER_RETURN_IF_ERROR(agent->journal_->Recover(&journal_events));
  SIPER_RETURN_IF_ERROR(agent->tailer_->Recover(std::move(journal_events)));
  return agent;
}

Agent::Agent(const AgentConfig& config, AgentIdentity identity,
             std::unique_ptr<PendingEvents> pending)
    : config_(config),
      identity_(std::move(identity)),
      pending_(std::move(pending)),
      limiter_(config.max_events_per_s, config.events_burst),
      memory_(MemoryBudgetFor(config.max_memory_bytes)) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  TailerOptions tailer_options;
  tailer_options.max_bytes_per_poll = memory_.read_bytes_per_round;
  tailer_options.max_bytes_per_file_per_poll = memory_.read_bytes_per_file;
  tailer_options.sync_directory = config_.spool_fsync == SpoolFsyncPolicy::kNever;
  tailer_ = std::make_unique<LogTailer>(config_.logs, StateFiles(config_.state_dir).offsets,
                                        identity_.agent_id, pending_.get(), tailer_options);
  if (config_.journald.enabled) {
    JournalOptions journal_options;
    journal_options.hostname = LocalHostname();
    journal_ =
        std::make_unique<JournalReader>(config_.journald, config_.state_dir / "journald.json",
                                        identity_.agent_id, pending_.get(), journal_options);
  }
  if (config_.syslog_udp.enabled) {
    syslog_ = std::make_unique<SyslogUdpListener>(
        config_.syslog_udp, pending_.get(), memory_.syslog_queue_bytes, [this] {
          WakeTailer();
          if (syslog_->urgent()) {  // cut the read delay short
            std::lock_guard lock(mu_);
            stop_cv_.notify_all();
          }
        });
  }
  ShipperOptions options;
  options.drops = [this] { return syslog_ ? syslog_->drops() : 0; };
  options.server = config_.server;
  options.ca_pem = identity_.ca_pem;
  options.cert_pem = identity_.cert_pem;
  options.key_pem = identity_.key_pem;
  options.agent_id = identity_.agent_id;
  options.hostname = LocalHostname();
  options.batch_max_events = config_.batch_max_events;
  options.batch_max_bytes = memory_.batch_bytes;
  options.batch_max_delay = absl::Milliseconds(config_.batch_max_delay_ms);
  options.heartbeat_interval = absl::Seconds(config_.heartbeat_s);
  shipper_ = std::make_unique<Shipper>(std::move(options), pending_.get());
  RenewalOptions renewal;
  renewal.server = config_.server;
  renewal.agent_id = identity_.agent_id;
  renewal.state_dir = config_.state_dir;
  renewal.renew_fraction = config_.cert_renew_fraction;
  renewer_ = std::make_unique<CertificateRenewer>(
      std::move(renewal), identity_.ca_pem, identity_.cert_pem, identity_.key_pem,
      [this](const std::string& cert, const std::string& key) {
        shipper_->SetCredentials(cert, key);
      });
}

Agent::~Agent() {
  if (tail_thread_.joinable() || ship_thread_.joinable() || fim_thread_.joinable() ||
      renew_thread_.joinable() || syslog_thread_.joinable()) {
    (void)Stop(absl::ZeroDuration());
  }
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Agent::WakeTailer() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
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
  if (config_.max_events_per_s > 0 || config_.max_memory_bytes > 0) {
    spdlog::info("limits: {} events/s (burst {}), {} bytes of buffers (0: built-in sizes)",
                 config_.max_events_per_s, config_.events_burst, config_.max_memory_bytes);
  }
  if (!config_.fim.empty()) {
    FimOptions fim_options;
    fim_options.rescan_interval = absl::Seconds(config_.fim_rescan_s);
    fim_options.large_file_bytes = config_.fim_large_file_bytes;
    fim_options.budget.cpu_fraction = config_.fim_cpu_percent / 100;
    fim_options.budget.io_bytes_per_s = config_.fim_io_bytes_per_s;
    fim_ = std::make_unique<FileIntegrityMonitor>(config_.fim, config_.state_dir / "fim.json",
                                                  fim_options);
    fim_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "siper-fim");
      try {
        FimLoop();
      } catch (const std::exception& e) {
        Fail(absl::InternalError(absl::StrCat("fim: ", e.what())));
      }
    });
  }
  if (syslog_) {
    syslog_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "siper-udp");
      try {
        syslog_->Run();
      } catch (const std::exception& e) {
        Fail(absl::InternalError(absl::StrCat("syslog_udp: ", e.what())));
      }
    });
  }
  ship_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "siper-ship");
    try {
      shipper_->Run();
    } catch (const std::exception& e) {
      Fail(absl::InternalError(absl::StrCat("shipper: ", e.what())));
    }
  });
  renew_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "siper-renew");
    try {
      renewer_->Run();
    } catch (const std::exception& e) {
      // Renewal failing is not a reason to stop collecting: say so and carry on.
      spdlog::error("certificate renewal stopped: {}", e.what());
    }
  });
  tail_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "siper-tail");
    try {
      TailLoop();
    } catch (const std::exception& e) {
      Fail(absl::InternalError(absl::StrCat("log tailer: ", e.what())));
    }
  });
}

void Agent::FimLoop() {
  // Below normal priority: hashing must not compete with the PC's user.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  if (absl::Status status = fim_->Start(); !status.ok()) {
    Fail(absl::InternalError(absl::StrCat("fim: ", status.message())));
    return;
  }
  while (!stopping_) {
    {
      // Paused while its events wait (a full spool, the events/s cap): the
      // next rescan or inotify catches up, so memory stays bounded.
      std::unique_lock lock(fim_outbox_.mu);
      if (fim_outbox_.events.size() >= memory_.fim_outbox_events) {
        lock.unlock();
        std::unique_lock stop_lock(mu_);
        stop_cv_.wait_for(stop_lock, std::chrono::milliseconds(200),
                          [this] { return stopping_.load(); });
        continue;
      }
    }
    (void)fim_->Poll(absl::Milliseconds(500));
    std::vector<v1::FileEvent> found = fim_->TakeEvents();
    bool save = false;
    {
      std::lock_guard lock(fim_outbox_.mu);
      const int64_t now = absl::ToUnixNanos(absl::Now());
      for (v1::FileEvent& file : found) {
        v1::Event event;
        event.set_agent_time_ns(now);
        *event.mutable_file() = std::move(file);
        fim_outbox_.events.push_back(std::move(event));
      }
      // Save only what is safely spooled: a crash before re-reports, never loses.
      save = fim_->baseline_dirty() && fim_outbox_.events.empty() && fim_outbox_.in_flight == 0 &&
             pending_->DurableSeq() >= fim_outbox_.last_seq;
    }
    if (!found.empty()) WakeTailer();
    if (save) {
      if (absl::Status status = fim_->SaveBaseline(); !status.ok()) {
        spdlog::error("fim: {}", std::string(status.message()));
      }
    }
  }
}

void Agent::DrainFimOutbox() {
  std::vector<v1::Event> events;
  {
    std::lock_guard lock(fim_outbox_.mu);
    if (fim_outbox_.events.empty()) return;
    events.swap(fim_outbox_.events);
    ++fim_outbox_.in_flight;
  }
  absl::StatusOr<uint64_t> last = tailer_->AppendNumbered(events);
  std::lock_guard lock(fim_outbox_.mu);
  --fim_outbox_.in_flight;
  if (last.ok()) {
    fim_outbox_.last_seq = std::max(fim_outbox_.last_seq, *last);
  } else {
    // Put them back in front; the next round tries again.
    for (v1::Event& event : fim_outbox_.events) events.push_back(std::move(event));
    fim_outbox_.events = std::move(events);
    spdlog::error("fim: {}", std::string(last.status().message()));
  }
}

size_t Agent::DrainSyslog(size_t max) {
  if (!syslog_ || max == 0) return 0;
  std::vector<v1::Event> events = syslog_->Take(max);
  if (events.empty()) return 0;
  const size_t count = events.size();
  absl::StatusOr<uint64_t> last = tailer_->AppendNumbered(events);
  if (!last.ok()) {
    // offsets.json cannot be written: keep them queued (the queue's bound drops beyond).
    syslog_->PutBack(std::move(events));
    spdlog::error("syslog_udp: {}", std::string(last.status().message()));
    return 0;
  }
  return count;
}

void Agent::TailLoop() {
  // inotify on the directories of the configured paths wakes the tailer at
  // once; the timed poll stays as the fallback (globbed directories, NFS ...).
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  size_t watched = 0;
  if (inotify_fd >= 0) {
    std::set<std::string> dirs;
    for (const LogInput& input : config_.logs) {
      const std::string dir = std::filesystem::path(input.path).parent_path().string();
      if (dir.find_first_of("*?[") != std::string::npos || !dirs.insert(dir).second) continue;
      if (inotify_add_watch(inotify_fd, dir.c_str(),
                            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_ATTRIB | IN_CLOSE_WRITE) >= 0) {
        ++watched;
      } else {
        spdlog::warn("cannot watch {} with inotify ({}); polling it", dir, std::strerror(errno));
      }
    }
  }
  const auto poll_interval = std::chrono::milliseconds(config_.poll_interval_ms);
  // With every directory watched, the timed poll is only a safety net.
  const auto interval =
      watched > 0 ? std::max(poll_interval, std::chrono::milliseconds(1000)) : poll_interval;
  spdlog::info("log tailer: {} directories watched by inotify, polling every {} ms", watched,
               interval.count());
  const int journal_fd = journal_ ? journal_->fd() : -1;
  if (journal_ && journal_->active()) spdlog::info("journald: collecting");
  absl::Time last_error_log = absl::InfinitePast();
  absl::Time last_journal_error_log = absl::InfinitePast();
  // Memory freed after a burst goes back to the system once things are quiet
  // (glibc keeps freed heap otherwise): at most every 10 s, after a round
  // that read nothing following rounds that did.
  // True at start too: the first quiet round 10 s after start returns what
  // start-up used (heap, the executable's start-up code pages).
  bool busy_since_trim = true;
  absl::Time last_trim = absl::Now();
  while (!stopping_) {
    const uint64_t seq_before = tailer_->next_seq();
    // Over the events/s cap, files and the journal are read more slowly: what
    // is not read now stays where it is (offsets, cursor) for the next round.
    // FIM events wait in the outbox (FIM pauses once it is full).
    if (limiter_.Available(absl::Now()) > 0) DrainFimOutbox();
    // Datagrams over the events/s cap wait in their bounded queue (beyond it
    // they are dropped and counted: UDP cannot be told to wait).
    {
      const size_t used = tailer_->next_seq() - seq_before;
      const size_t available = limiter_.Available(absl::Now());
      (void)DrainSyslog(available > used ? available - used : 0);
    }
    const size_t fim_numbered = tailer_->next_seq() - seq_before;
    const size_t available = limiter_.Available(absl::Now());
    const size_t allowed = available > fim_numbered ? available - fim_numbered : 0;
    if (absl::Status status = tailer_->Poll(allowed); !status.ok()) {
      // Typically offsets.json cannot be written (disk full): nothing new is
      // sent until it can, so nothing is lost; say so now and then.
      if (absl::Now() - last_error_log > absl::Minutes(1)) {
        spdlog::error("log tailer: {}", std::string(status.message()));
        last_error_log = absl::Now();
      }
    }
    if (journal_) {
      const uint64_t used = tailer_->next_seq() - seq_before;
      const size_t room = std::min(pending_->Room(), allowed > used ? allowed - used : 0);
      absl::StatusOr<size_t> read =
          journal_->Poll(room, memory_.read_bytes_per_round,
                         [this](uint64_t count) { return tailer_->ReserveSeqs(count); });
      if (!read.ok() && absl::Now() - last_journal_error_log > absl::Minutes(1)) {
        spdlog::error("journald: {}", std::string(read.status().message()));
        last_journal_error_log = absl::Now();
      }
    }
    limiter_.Take(tailer_->next_seq() - seq_before, absl::Now());
    last_tail_round_ns_ = absl::ToUnixNanos(absl::Now());
    if (tailer_->next_seq() != seq_before) {
      busy_since_trim = true;
    } else if (busy_since_trim && absl::Now() - last_trim >= absl::Seconds(10)) {
      malloc_trim(0);
      const size_t released_kib = ReleaseExecutableFilePages();
      spdlog::debug("quiet: heap trimmed, {} KiB of the executable's pages unmapped", released_kib);
      busy_since_trim = false;
      last_trim = absl::Now();
    }
    if (limiter_.enabled() && limiter_.WaitFor(absl::Now()) > absl::ZeroDuration()) {
      // Held back by the cap: come back when it allows more, not at the next change.
      std::unique_lock lock(mu_);
      stop_cv_.wait_for(
          lock,
          std::chrono::microseconds(std::clamp<int64_t>(
              absl::ToInt64Microseconds(limiter_.WaitFor(absl::Now())), 1000, 200000)),
          [this] { return stopping_.load(); });
      continue;
    }
    // Sleep until a file changes (inotify), the journal has entries, FIM or
    // the UDP listener queued events, a stop, or the fallback interval: no
    // polling loop in between.
    {
      struct pollfd pfds[3] = {
          {inotify_fd, POLLIN, 0}, {journal_fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      bool pending_work = syslog_ && syslog_->has_queued();
      {
        std::lock_guard lock(fim_outbox_.mu);
        pending_work = pending_work || !fim_outbox_.events.empty();
      }
      // A file with more than one round's bytes waiting (a catch-up): read on
      // at once, without the read delay below (its rounds are full anyway).
      const bool backlog = tailer_->backlog();
      const int woke =
          stopping_
              ? 0
              : poll(pfds, 3, pending_work || backlog ? 0 : static_cast<int>(interval.count()));
      alignas(struct inotify_event) char buf[16 * 1024];
      if (inotify_fd >= 0) {
        while (read(inotify_fd, buf, sizeof(buf)) > 0) {
        }
      }
      uint64_t wakes = 0;
      (void)!read(wake_fd_, &wakes, sizeof(wakes));
      if ((woke > 0 || pending_work) && !backlog) {
        // Let a burst of writes settle for read_delay_ms: each round persists
        // offsets.json (an fsync) and wakes the shipper, so a file written line
        // by line is read in a few rounds a second rather than dozens.
        std::unique_lock lock(mu_);
        stop_cv_.wait_for(lock, std::chrono::milliseconds(config_.read_delay_ms),
                          [this] { return stopping_.load() || (syslog_ && syslog_->urgent()); });
      }
    }
  }
  DrainFimOutbox();
  while (DrainSyslog(SIZE_MAX) > 0) {
  }
  if (inotify_fd >= 0) close(inotify_fd);
}

absl::Status Agent::Stop(absl::Duration flush_timeout) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  WakeTailer();
  // No datagram is taken after this; what is queued is spooled by the tail thread's last round.
  if (syslog_) syslog_->Stop();
  if (syslog_thread_.joinable()) syslog_thread_.join();
  renewer_->Stop();
  if (renew_thread_.joinable()) renew_thread_.join();
  if (fim_thread_.joinable()) fim_thread_.join();
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
  if (journal_) {
    if (absl::Status journal_status = journal_->Checkpoint(); !journal_status.ok()) {
      spdlog::error("journald: cursor not saved: {}", std::string(journal_status.message()));
      if (status.ok()) status = journal_status;
    }
  }
  if (status.ok()) {
    spdlog::info("stopped; offsets saved, next seq {}, acknowledged up to {}", tailer_->next_seq(),
                 pending_->AckedSeq());
  } else {
    spdlog::error("stopped, but offsets could not be saved: {}", std::string(status.message()));
  }
  return status;
}

}  // namespace siper::agent

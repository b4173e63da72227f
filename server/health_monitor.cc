#include "server/health_monitor.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

constexpr int64_t kNsPerS = 1'000'000'000;

std::string Rfc3339(int64_t ns) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixNanos(ns), absl::UTCTimeZone());
}

int64_t FieldInt(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  int64_t v = 0;
  if (it == fields.end() || !absl::SimpleAtoi(it->second, &v)) return 0;
  return v;
}

std::string FieldStr(const std::map<std::string, std::string>& fields, const std::string& key) {
  auto it = fields.find(key);
  return it == fields.end() ? "" : it->second;
}

// Which of two actions of one agent was raised last (by @timestamp); "" when neither.
std::string Newer(const std::map<std::string, std::map<std::string, std::string>>& newest,
                  const std::string& a, const std::string& b) {
  auto ia = newest.find(a), ib = newest.find(b);
  if (ia == newest.end()) return ib == newest.end() ? "" : b;
  if (ib == newest.end()) return a;
  return FieldStr(ia->second, "@timestamp") >= FieldStr(ib->second, "@timestamp") ? a : b;
}

}  // namespace

void RecordHeartbeat(const siper::v1::Heartbeat& heartbeat, absl::Time now,
                     siper::v1::AgentInfo* info) {
  const int64_t now_ns = absl::ToUnixNanos(now);
  info->set_heartbeat_ns(now_ns);
  info->set_spool_bytes(heartbeat.spool_bytes());
  info->set_spool_cap_bytes(heartbeat.spool_cap_bytes());
  info->set_drops(heartbeat.drops());
  info->set_uptime_s(heartbeat.uptime_s());
  info->set_events_per_s(heartbeat.events_per_s());
  // Network delay makes the agent look a little behind; that is far below any threshold.
  info->set_clock_offset_ms(
      heartbeat.agent_time_ns() == 0 ? 0 : (heartbeat.agent_time_ns() - now_ns) / 1'000'000);
}

DiskProbe StatvfsProbe(std::filesystem::path dir) {
  return [dir = std::move(dir)]() -> absl::StatusOr<DiskSpace> {
    struct statvfs st;
    if (statvfs(dir.c_str(), &st) != 0) {
      return absl::UnavailableError(
          absl::StrCat("statvfs ", dir.string(), ": ", std::strerror(errno)));
    }
    DiskSpace d;
    d.free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    d.total_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    return d;
  };
}

DiskProbe FileProbe(std::filesystem::path file) {
  return [file = std::move(file)]() -> absl::StatusOr<DiskSpace> {
    absl::StatusOr<std::string> text = ReadFile(file);
    if (!text.ok()) return text.status();
    std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(*text),
                                                    absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
    DiskSpace d;
    if (parts.empty() || parts.size() > 2 || !absl::SimpleAtoi(parts[0], &d.free_bytes) ||
        (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &d.total_bytes))) {
      return absl::InvalidArgumentError(
          absl::StrCat("disk_probe_file ", file.string(), ": expected 'FREE_BYTES [TOTAL_BYTES]'"));
    }
    return d;
  };
}

HealthMonitor::HealthMonitor(storage::Store* store, Emit emit, IngestGate* gate,
                             HealthOptions options, DiskProbe probe, const incidents::Clock* clock)
    : store_(store),
      emit_(std::move(emit)),
      gate_(gate),
      options_(std::move(options)),
      probe_(std::move(probe)),
      clock_(clock),
      started_(clock->Now()) {}

HealthMonitor::~HealthMonitor() { Stop(); }

absl::Status HealthMonitor::Init() {
  absl::StatusOr<StoredHealth> stored = LoadStoredHealth(*store_);
  if (!stored.ok()) return stored.status();
  for (const auto& [agent_id, newest] : stored->newest) {
    if (agent_id.empty()) {
      disk_low_ = Newer(newest, "disk_nearly_full", "disk_ok") == "disk_nearly_full";
      continue;
    }
    AgentState& st = agents_[agent_id];
    if (Newer(newest, "agent_silent", "agent_back") == "agent_silent") {
      st.silent = true;
      st.silent_last_seen_ns = FieldInt(newest.at("agent_silent"), "siper.last_seen_ns");
    }
    if (auto it = newest.find("spool_dropping"); it != newest.end()) {
      st.drops_known = true;
      st.drops = static_cast<uint64_t>(FieldInt(it->second, "siper.drops"));
    }
    if (auto it = newest.find("spool_filling"); it != newest.end()) {
      st.filling = true;
      st.heartbeat_ns = std::max(st.heartbeat_ns, FieldInt(it->second, "siper.heartbeat_ns"));
    }
    if (auto it = newest.find("clock_skew"); it != newest.end()) {
      st.skewed = true;
      st.heartbeat_ns = std::max(st.heartbeat_ns, FieldInt(it->second, "siper.heartbeat_ns"));
    }
  }
  Check();
  return absl::OkStatus();
}

void HealthMonitor::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(options_.check_interval_s),
                         [this] { return stopping_; })) {
      lock.unlock();
      try {
        Check();
      } catch (const std::exception& e) {
        spdlog::error("health check failed: {}", e.what());
      }
      lock.lock();
    }
  });
}

void HealthMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int HealthMonitor::Check() {
  std::lock_guard<std::mutex> lock(check_mu_);
  const absl::Time now = clock_->Now();
  return CheckDisk(now) + CheckAgents(now);
}

bool HealthMonitor::Raise(const HealthEvent& event, absl::Time now) {
  absl::Status st = emit_(event, now);
  // Not stored: the detector's state stays as it was, so the next round tries again.
  if (!st.ok()) spdlog::error("health: cannot store {}: {}", event.action, st.ToString());
  return st.ok();
}

int HealthMonitor::CheckDisk(absl::Time now) {
  absl::StatusOr<DiskSpace> space = probe_();
  if (!space.ok()) {
    spdlog::warn("health: cannot check free disk space: {}", space.status().ToString());
    return 0;
  }
  disk_free_ = static_cast<int64_t>(space->free_bytes);
  const double percent = space->total_bytes > 0 ? 100.0 * static_cast<double>(space->free_bytes) /
                                                      static_cast<double>(space->total_bytes)
                                                : 100.0;
  // Below the floor pauses; resuming needs 5 % more than the floor, so a disk hovering at the
  // floor does not flap.
  auto below = [&](double factor) {
    return (options_.disk_min_free_bytes > 0 &&
            static_cast<double>(space->free_bytes) <
                factor * static_cast<double>(options_.disk_min_free_bytes)) ||
           (options_.disk_min_free_percent > 0 &&
            percent < factor * options_.disk_min_free_percent);
  };
  const bool low = gate_->paused() ? below(1.05) : below(1.0);
  HealthEvent e;
  e.numbers = {{"siper.disk.free_bytes", static_cast<int64_t>(space->free_bytes)},
               {"siper.disk.total_bytes", static_cast<int64_t>(space->total_bytes)},
               {"siper.disk.min_free_bytes", static_cast<int64_t>(options_.disk_min_free_bytes)},
               {"siper.disk.free_percent", static_cast<int64_t>(std::floor(percent))}};
  if (low != gate_->paused()) {
    gate_->SetPaused(low);
    Metrics().ingest_paused.Set(low ? 1 : 0);
    if (low) {
      spdlog::error("disk nearly full ({} bytes free): refusing new batches until space returns",
                    space->free_bytes);
    } else {
      spdlog::warn("disk space is back ({} bytes free): taking batches again", space->free_bytes);
    }
  }
  if (low && !disk_low_) {
    e.action = "disk_nearly_full";
    e.message = absl::StrCat("server data directory has ", space->free_bytes,
                             " bytes free, below the floor; new batches are refused, agents "
                             "keep spooling");
    if (Raise(e, now)) disk_low_ = true;
    return disk_low_ ? 1 : 0;
  }
  if (!low && disk_low_) {
    e.action = "disk_ok";
    e.message = absl::StrCat("server data directory has ", space->free_bytes,
                             " bytes free again; batches are taken again");
    if (Raise(e, now)) disk_low_ = false;
    return disk_low_ ? 0 : 1;
  }
  return 0;
}

int HealthMonitor::CheckAgents(absl::Time now) {
  std::vector<siper::v1::AgentInfo> agents;
  absl::Status st = store_->ListAgents([&](const siper::v1::AgentInfo& a) {
    agents.push_back(a);
    return true;
  });
  if (!st.ok()) {
    spdlog::warn("health: cannot list agents: {}", st.ToString());
    return 0;
  }
  const int64_t now_ns = absl::ToUnixNanos(now);
  // Nobody can be heard while the server is down: silence counts from start-up at the earliest.
  const int64_t started_ns = absl::ToUnixNanos(started_);
  int raised = 0;
  for (const siper::v1::AgentInfo& info : agents) {
    if (info.revoked() || info.last_seen_ns() == 0 || info.agent_id() == kInternalAgentId) continue;
    AgentState& s = agents_[info.agent_id()];
    auto event = [&](std::string action) {
      HealthEvent e;
      e.action = std::move(action);
      e.agent_id = info.agent_id();
      e.agent_name = info.hostname();
      return e;
    };

    // Silence.
    const int64_t heard_ns = std::max(info.last_seen_ns(), started_ns);
    if (!s.silent && now_ns - heard_ns >= options_.agent_silent_after_s * kNsPerS) {
      HealthEvent e = event("agent_silent");
      const int64_t silent_s = (now_ns - info.last_seen_ns()) / kNsPerS;
      e.numbers = {{"siper.silent_seconds", silent_s},
                   {"siper.silent_after_s", options_.agent_silent_after_s},
                   {"siper.last_seen_ns", info.last_seen_ns()}};
      e.strings = {{"siper.last_seen", Rfc3339(info.last_seen_ns())}};
      e.message =
          absl::StrCat("agent ", info.agent_id(), " has not been heard from for ", silent_s, " s");
      if (Raise(e, now)) {
        s.silent = true;
        s.silent_last_seen_ns = info.last_seen_ns();
        ++raised;
      }
    } else if (s.silent && info.last_seen_ns() > s.silent_last_seen_ns) {
      HealthEvent e = event("agent_back");
      const int64_t silent_s = (info.last_seen_ns() - s.silent_last_seen_ns) / kNsPerS;
      e.numbers = {{"siper.silent_seconds", silent_s}};
      e.strings = {{"siper.last_seen", Rfc3339(info.last_seen_ns())}};
      e.message = absl::StrCat("agent ", info.agent_id(), " is back after ", silent_s, " s");
      if (Raise(e, now)) {
        s.silent = false;
        ++raised;
      }
    }

    // Heartbeat numbers: each heartbeat is looked at once.
    if (info.heartbeat_ns() <= s.heartbeat_ns) continue;
    bool done = true;  // every event of this heartbeat stored
    if (info.spool_cap_bytes() > 0) {
      const double percent = 100.0 * static_cast<double>(info.spool_bytes()) /
                             static_cast<double>(info.spool_cap_bytes());
      if (percent < options_.spool_warn_percent) {
        s.filling = false;
      } else if (!s.filling) {
        HealthEvent e = event("spool_filling");
        e.numbers = {{"siper.spool.bytes", static_cast<int64_t>(info.spool_bytes())},
                     {"siper.spool.cap_bytes", static_cast<int64_t>(info.spool_cap_bytes())},
                     {"siper.spool.percent", static_cast<int64_t>(std::floor(percent))},
                     {"siper.heartbeat_ns", info.heartbeat_ns()}};
        e.message = absl::StrCat("agent ", info.agent_id(), " spool is ",
                                 static_cast<int64_t>(percent), "% full");
        if (Raise(e, now)) {
          s.filling = true;
          ++raised;
        } else {
          done = false;
        }
      }
    }
    if (s.drops_known && info.drops() < s.drops) s.drops = 0;  // the agent restarted
    if (info.drops() > (s.drops_known ? s.drops : 0)) {
      HealthEvent e = event("spool_dropping");
      const uint64_t fresh = info.drops() - (s.drops_known ? s.drops : 0);
      e.numbers = {{"siper.drops", static_cast<int64_t>(info.drops())},
                   {"siper.drops_new", static_cast<int64_t>(fresh)},
                   {"siper.heartbeat_ns", info.heartbeat_ns()}};
      e.message = absl::StrCat("agent ", info.agent_id(), " dropped ", fresh, " events");
      if (Raise(e, now)) {
        ++raised;
        s.drops_known = true;
        s.drops = info.drops();
      } else {
        done = false;
      }
    } else {
      s.drops_known = true;
      s.drops = info.drops();
    }
    if (std::llabs(info.clock_offset_ms()) < options_.clock_skew_max_s * 1000) {
      s.skewed = false;
    } else if (!s.skewed) {
      HealthEvent e = event("clock_skew");
      e.numbers = {{"siper.clock_offset_ms", info.clock_offset_ms()},
                   {"siper.clock_skew_max_s", options_.clock_skew_max_s},
                   {"siper.heartbeat_ns", info.heartbeat_ns()}};
      e.message = absl::StrCat("agent ", info.agent_id(), " clock is off by ",
                               info.clock_offset_ms(), " ms");
      if (Raise(e, now)) {
        s.skewed = true;
        ++raised;
      } else {
        done = false;
      }
    }
    if (done) s.heartbeat_ns = info.heartbeat_ns();
  }
  return raised;
}

}  // namespace siper::server

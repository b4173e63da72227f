// siper_loadgen: N simulated agents against a real siper-server on loopback.
//
// Starts siper-server (the default rule set, WAL on and synced) in a fresh
// data directory, creates one enrollment token per agent through the analyst
// API with the server's admin certificate, enrolls every agent with a CSR
// exactly as siper-agent does (agent/enroll), and opens one mutual-TLS
// bidirectional stream per agent (its own channel and certificate, gzip as
// the agent). Then it sends real log lines as fast as the server takes them
// (a window of batches in flight per agent) or at a fixed total rate, and
// measures, over a window after a warm-up: events/s stored (from the acks),
// send-to-ack latency p50/p99 per event, and the server's CPU per event. At
// the end it checks that nothing was lost or duplicated (per agent: acks, the
// server's event count and the newest stored seq), stops the server, forces a
// compaction and reports bytes on disk per event; last, the same records go
// through raw RocksDB and through storage::Store for comparison.
// See bench/loadgen/README.md.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/enroll.h"
#include "agent/identity.h"
#include "bench/loadgen/raw_write.h"
#include "common/files.h"
#include "server/storage/store.h"
#include "siper/v1/agent_service.grpc.pb.h"
#include "siper/v1/analyst_service.grpc.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"

namespace siper::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Options {
  int agents = 100;
  double rate = 0;  // total events/s; 0: as fast as the server takes them
  double warmup_s = 5;
  double duration_s = 30;
  size_t batch = 500;      // the agent's batch_max_events
  double linger_ms = 200;  // the agent's batch_max_delay (fixed-rate batches)
  int window = 4;          // batches in flight per agent (max mode)
  bool gzip = true;        // as siper-agent
  int server_workers = 0;  // 0: the server's default
  size_t raw_records = 300000;
  int raw_threads = 4;
  std::string server_bin = SIPER_SERVER_BIN;
  std::string rules_dir = SIPER_RULES_DIR;
  std::string data = SIPER_SHARED_DATA_DIR;
  std::string work_dir;  // empty: a new directory under /tmp
  bool keep = false;
  bool json = false;
  std::string perf;  // when set: `perf record -g` the server during the window into this file
  std::string server_yaml;  // appended to the server's config (e.g. an incidents: block)
};

// Real log lines (loghub) when the shared data is there, else a built-in sample.
std::vector<std::string> LoadLines(const std::filesystem::path& data, std::string* origin) {
  std::vector<std::string> lines;
  for (const char* name : {"OpenSSH_2k.log", "Linux_2k.log"}) {
    std::ifstream in(data / "logs/loghub" / name);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  if (!lines.empty()) {
    *origin = absl::StrCat((data / "logs/loghub").string(), " (", lines.size(), " lines)");
    return lines;
  }
  *origin = "built-in sample (../shared/data/logs/loghub absent)";
  return {
      "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for "
      "ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
      "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
      "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= "
      "uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186",
      "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from "
      "173.234.31.186 port 38926 ssh2",
      "Dec 10 07:02:47 LabSZ sshd[24203]: Connection closed by 212.47.254.145 [preauth]",
      "Dec 10 07:07:38 LabSZ sshd[24206]: Accepted password for fztu from 119.137.62.142 port "
      "49116 ssh2",
      "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 "
      "euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
      "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)",
      "Jun 15 12:12:34 combo ftpd[24085]: connection from 206.196.21.129 () at Wed Jun 15 "
      "12:12:34 2005",
      "Jun 16 04:10:27 combo logrotate: ALERT exited abnormally with [1]",
  };
}

// Weighted latency samples: one per batch, weighted by its events.
struct LatencySample {
  int64_t ns;
  uint32_t events;
};

struct Shared {
  const Options* options = nullptr;
  const std::vector<std::string>* lines = nullptr;
  std::atomic<uint64_t> stored{0};  // sum of Ack.stored
  std::atomic<uint64_t> sent{0};
  std::atomic<int64_t> window_start_ns{INT64_MAX};
  std::atomic<int64_t> window_end_ns{INT64_MAX};
};

// One simulated agent: its own channel (its certificate), one stream.
class AgentStream final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  AgentStream(Shared* shared, int index, agent::AgentIdentity id, const std::string& server)
      : shared_(shared), index_(index), id_(std::move(id)) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = id_.ca_pem;
    tls.pem_private_key = id_.key_pem;
    tls.pem_cert_chain = id_.cert_pem;
    grpc::ChannelArguments args;
    if (shared_->options->gzip) args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    // Keep every agent on its own connection, as separate hosts would be.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(server, grpc::SslCredentials(tls), args);
    stub_ = v1::AgentService::NewStub(channel_);
  }

  void Begin() {
    stub_->async()->Stream(&context_, this);
    out_.mutable_hello()->set_agent_id(id_.agent_id);
    out_.mutable_hello()->set_version("loadgen");
    out_.mutable_hello()->set_hostname(absl::StrCat("loadgen-", index_));
    writing_ = true;
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
  }

  // Fixed-rate mode: a batch is due at `due_ns` (latency counts from then).
  void Offer(int64_t due_ns) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      backlog_.push_back(due_ns);
    }
    Pump();
  }

  // No new batches; the stream closes once every sent batch is acknowledged.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      backlog_.clear();
    }
    Pump();
  }

  // Ends the stream now (server gone or too slow); OnDone follows.
  void Cancel() { context_.TryCancel(); }

  bool WaitDone(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return done_cv_.wait_for(lock, timeout, [this] { return done_; });
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) write_failed_ = true;
    }
    if (ok) Pump();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (in_.has_ack()) {
      const v1::Ack& ack = in_.ack();
      const int64_t now = NowNs();
      std::lock_guard lock(mu_);
      acked_seq_ = std::max(acked_seq_, ack.acked_seq());
      stored_ += ack.stored();
      duplicates_ += ack.duplicates();
      shared_->stored += ack.stored();
      while (!in_flight_.empty() && in_flight_.front().last_seq <= ack.acked_seq()) {
        const InFlight& f = in_flight_.front();
        if (f.due_ns >= shared_->window_start_ns && f.due_ns < shared_->window_end_ns) {
          latencies_.push_back({now - f.due_ns, f.events});
        }
        in_flight_.pop_front();
      }
    }
    StartRead(&in_);
    Pump();
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard lock(mu_);
    status_ = status;
    done_ = true;
    done_cv_.notify_all();
  }

  const std::string& agent_id() const { return id_.agent_id; }
  uint64_t last_sent_seq() const { return next_seq_ - 1; }
  uint64_t acked_seq() const { return acked_seq_; }
  uint64_t stored() const { return stored_; }
  uint64_t duplicates() const { return duplicates_; }
  const grpc::Status& status() const { return status_; }
  const std::vector<LatencySample>& latencies() const { return latencies_; }
  bool write_failed() const { return write_failed_; }

 private:
  struct InFlight {
    uint64_t last_seq;
    int64_t due_ns;
    uint32_t events;
  };

  // Starts the next write if one is due and none is running. The write is
  // started outside the lock: gRPC may run OnWriteDone on any thread. Nothing
  // is started once the stream is done: its call object is gone (a write
  // then would call through freed memory).
  void Pump() {
    int64_t due = 0;
    size_t events = 0;
    bool writes_done = false;
    {
      std::lock_guard lock(mu_);
      if (done_ || writing_ || closed_ || write_failed_) return;
      if (stopping_) {
        if (!in_flight_.empty()) return;
        closed_ = true;
        writes_done = true;
      } else if (shared_->options->rate > 0) {
        if (backlog_.empty()) return;
        due = backlog_.front();
        backlog_.pop_front();
        events = rate_batch_;
      } else {
        if (in_flight_.size() >= static_cast<size_t>(shared_->options->window)) return;
        due = NowNs();
        events = shared_->options->batch;
      }
      if (!writes_done) {
        writing_ = true;
        Build(events, due);
        in_flight_.push_back({next_seq_ - 1, due, static_cast<uint32_t>(events)});
      }
    }
    if (writes_done) {
      StartWritesDone();
    } else {
      shared_->sent += events;
      StartWrite(&out_);
    }
  }

  void Build(size_t events, int64_t due_ns) {
    out_.Clear();
    v1::EventBatch* batch = out_.mutable_batch();
    batch->mutable_events()->Reserve(static_cast<int>(events));
    const std::vector<std::string>& lines = *shared_->lines;
    const int64_t wall = absl::ToUnixNanos(absl::Now());
    (void)due_ns;
    for (size_t i = 0; i < events; ++i) {
      v1::Event* e = batch->add_events();
      const uint64_t seq = next_seq_++;
      e->set_seq(seq);
      e->set_agent_time_ns(wall);
      v1::LogEvent* log = e->mutable_log();
      log->set_source("/var/log/auth.log");
      log->set_line(lines[(seq * 7919 + static_cast<uint64_t>(index_) * 104729) % lines.size()]);
    }
  }

 public:
  size_t rate_batch_ = 0;  // fixed-rate mode: events per batch, set before Begin

 private:
  Shared* shared_;
  const int index_;
  agent::AgentIdentity id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  v1::AgentMessage out_;
  v1::ServerMessage in_;

  std::mutex mu_;
  std::condition_variable done_cv_;
  bool writing_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  bool write_failed_ = false;
  bool done_ = false;
  grpc::Status status_;
  uint64_t next_seq_ = 1;
  uint64_t acked_seq_ = 0;
  uint64_t stored_ = 0;
  uint64_t duplicates_ = 0;
  std::deque<int64_t> backlog_;
  std::deque<InFlight> in_flight_;
  std::vector<LatencySample> latencies_;
};

// Context switches (voluntary + involuntary) of every live thread of a process, from
// /proc/PID/task/*/status. Threads that exited in between are not counted.
uint64_t ProcessContextSwitches(pid_t pid) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with("voluntary_ctxt_switches:") ||
          line.starts_with("nonvoluntary_ctxt_switches:")) {
        total += std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
      }
    }
  }
  return total;
}

// Fields of /proc/PID/stat, numbered as proc(5) numbers them (3 is the state, after
// the command name in parentheses); fields[0] is field 3.
std::vector<std::string> ProcStatFields(const std::filesystem::path& stat) {
  std::ifstream in(stat);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  size_t close = text.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream fields(text.substr(close + 2));
  for (std::string field; fields >> field;) out.push_back(std::move(field));
  return out;
}
std::vector<std::string> ProcStatFields(pid_t pid) {
  return ProcStatFields(absl::StrCat("/proc/", pid, "/stat"));
}
uint64_t ProcStatField(const std::vector<std::string>& fields, size_t number) {
  return number >= 3 && number - 3 < fields.size()
             ? std::strtoull(fields[number - 3].c_str(), nullptr, 10)
             : 0;
}

// Minor page faults of a process (field 10 of /proc/PID/stat): every page the kernel
// had to hand it afresh (e.g. heap the allocator returned and touched again).
uint64_t ProcessMinorFaults(pid_t pid) { return ProcStatField(ProcStatFields(pid), 10); }

// A line of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: its peak).
uint64_t ProcessStatusKib(pid_t pid, std::string_view key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':') {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return 0;
}

// utime + stime of a process (fields 14 and 15), in seconds.
double ProcessCpuSeconds(pid_t pid) {
  const std::vector<std::string> fields = ProcStatFields(pid);
  return static_cast<double>(ProcStatField(fields, 14) + ProcStatField(fields, 15)) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds of a process's threads, summed by the kind of thread: the server names
// its own (siper-match, siper-write), RocksDB its background pools (rocksdb:low for
// compactions, rocksdb:high for flushes); the rest are gRPC's and the main thread.
// Threads that end inside the window are not counted.
std::map<std::string, double> ThreadCpuSecondsByKind(pid_t pid) {
  std::map<std::string, double> out;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream comm_in(task.path() / "comm");
    std::string comm;
    std::getline(comm_in, comm);
    std::string kind = "grpc and other";
    for (const char* known : {"siper-match", "siper-write", "rocksdb:low", "rocksdb:high"}) {
      if (comm.starts_with(known)) kind = known;
    }
    const std::vector<std::string> fields = ProcStatFields(task.path() / "stat");
    out[kind] += static_cast<double>(ProcStatField(fields, 14) + ProcStatField(fields, 15)) /
                 static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return out;
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return sec(usage.ru_utime) + sec(usage.ru_stime);
}

double Percentile(std::vector<LatencySample>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end(),
            [](const LatencySample& a, const LatencySample& b) { return a.ns < b.ns; });
  uint64_t total = 0;
  for (const LatencySample& s : samples) total += s.events;
  const double target = p * static_cast<double>(total);
  uint64_t seen = 0;
  for (const LatencySample& s : samples) {
    seen += s.events;
    if (static_cast<double>(seen) >= target) return static_cast<double>(s.ns) / 1e6;
  }
  return static_cast<double>(samples.back().ns) / 1e6;
}

std::string Fmt(double v, int decimals = 0) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// "siper-match 3.1, siper-write 14.2, ..." in us/event, from the report.
std::string ThreadBreakdown(const nlohmann::json& j) {
  std::string out;
  if (!j.contains("server_cpu_us_per_event_by_thread")) return "(not read)";
  for (const auto& [kind, us] : j["server_cpu_us_per_event_by_thread"].items()) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", kind, " ", Fmt(us.get<double>(), 2));
  }
  return out + " us/event";
}

int Fail(const std::string& message) {
  std::cerr << "siper_loadgen: " << message << "\n";
  return 1;
}

int Run(const Options& o) {
  std::string origin;
  const std::vector<std::string> lines = LoadLines(o.data, &origin);

  std::filesystem::path work = o.work_dir;
  if (work.empty()) {
    char tmpl[] = "/tmp/siper-loadgen-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
    work = tmpl;
  }
  const std::filesystem::path data_dir = work / "server";
  std::filesystem::create_directories(data_dir);
  {
    std::ofstream config(work / "server.yaml");
    config << "data_dir: " << data_dir.string() << "\n"
           << "listen: 127.0.0.1:0\n"
           << "rules_dir: " << o.rules_dir << "\n"
           << "sync_writes: true\n"
           << "log_level: warn\n"
           << "log_to_stderr: false\n";
    if (o.server_workers > 0) config << "workers: " << o.server_workers << "\n";
    if (!o.server_yaml.empty()) {
      absl::StatusOr<std::string> extra = ReadFile(o.server_yaml);
      if (!extra.ok()) return Fail(extra.status().ToString());
      config << *extra;
    }
  }
  testing::ChildProcess server({o.server_bin, "--config", (work / "server.yaml").string()},
                               work / "server.out");
  absl::StatusOr<std::string> address = testing::WaitForServerAddress(server, data_dir);
  if (!address.ok()) return Fail(absl::StrCat("server: ", address.status().ToString()));
  std::cerr << "server " << *address << " pid " << server.pid() << ", data " << data_dir << "\n";

  // Admin channel: tokens, then the loss check.
  const std::filesystem::path pki = data_dir / "pki";
  grpc::SslCredentialsOptions admin_tls;
  admin_tls.pem_root_certs = ReadFile(pki / "ca.pem").value_or("");
  admin_tls.pem_cert_chain = ReadFile(pki / "admin.pem").value_or("");
  admin_tls.pem_private_key = ReadFile(pki / "admin.key").value_or("");
  auto admin =
      v1::AnalystService::NewStub(grpc::CreateChannel(*address, grpc::SslCredentials(admin_tls)));

  std::vector<agent::AgentIdentity> identities;
  const auto enroll_start = Clock::now();
  for (int i = 0; i < o.agents; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::CreateTokenRequest request;
    v1::CreateTokenResponse token;
    grpc::Status st = admin->CreateToken(&context, request, &token);
    if (!st.ok()) return Fail(absl::StrCat("create token: ", st.error_message()));
    agent::EnrollOptions enroll;
    enroll.server = *address;
    enroll.token = token.token();
    enroll.ca_file = pki / "ca.pem";
    enroll.state_dir = work / "agents" / std::to_string(i);
    enroll.hostname = absl::StrCat("loadgen-", i);
    absl::StatusOr<std::string> agent_id = agent::Enroll(enroll);
    if (!agent_id.ok()) return Fail(absl::StrCat("enroll: ", agent_id.status().ToString()));
    absl::StatusOr<agent::AgentIdentity> id = agent::LoadIdentity(enroll.state_dir);
    if (!id.ok()) return Fail(absl::StrCat("identity: ", id.status().ToString()));
    identities.push_back(*std::move(id));
  }
  std::cerr << "enrolled " << o.agents << " agents in "
            << Fmt(std::chrono::duration<double>(Clock::now() - enroll_start).count(), 1) << " s\n";

  Shared shared;
  shared.options = &o;
  shared.lines = &lines;
  std::vector<std::unique_ptr<AgentStream>> streams;
  const double per_agent_rate = o.rate / o.agents;
  const size_t rate_batch = std::clamp<size_t>(
      static_cast<size_t>(std::ceil(per_agent_rate * o.linger_ms / 1000.0)), 1, o.batch);
  for (int i = 0; i < o.agents; ++i) {
    streams.push_back(std::make_unique<AgentStream>(&shared, i, identities[i], *address));
    streams.back()->rate_batch_ = rate_batch;
  }
  for (auto& s : streams) s->Begin();

  const int64_t start_ns = NowNs();
  const int64_t window_start = start_ns + static_cast<int64_t>(o.warmup_s * 1e9);
  const int64_t window_end = window_start + static_cast<int64_t>(o.duration_s * 1e9);
  shared.window_start_ns = window_start;
  shared.window_end_ns = window_end;

  std::atomic<bool> pacing{o.rate > 0};
  std::thread pacer;
  if (o.rate > 0) {
    pacer = std::thread([&] {
      const int64_t interval =
          static_cast<int64_t>(1e9 * static_cast<double>(rate_batch) / per_agent_rate);
      std::vector<int64_t> next(streams.size());
      for (size_t i = 0; i < next.size(); ++i) {
        next[i] = start_ns + interval * static_cast<int64_t>(i) / static_cast<int64_t>(next.size());
      }
      while (pacing) {
        const int64_t now = NowNs();
        for (size_t i = 0; i < streams.size(); ++i) {
          while (next[i] <= now) {
            streams[i]->Offer(next[i]);
            next[i] += interval;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }

  // Warm-up, then the measured window.
  std::this_thread::sleep_until(Clock::time_point(std::chrono::nanoseconds(window_start)));
  const uint64_t stored0 = shared.stored;
  const double server_cpu0 = ProcessCpuSeconds(server.pid());
  const double self_cpu0 = SelfCpuSeconds();
  const uint64_t server_switches0 = ProcessContextSwitches(server.pid());
  const uint64_t server_faults0 = ProcessMinorFaults(server.pid());
  const std::map<std::string, double> threads_cpu0 = ThreadCpuSecondsByKind(server.pid());
  std::unique_ptr<testing::ChildProcess> perf;
  if (!o.perf.empty()) {
    perf = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{"/usr/bin/perf", "record", "-e", "cpu-clock", "-g", "-F", "499",
                                 "-o", o.perf, "-p", std::to_string(server.pid())},
        work / "perf.out");
  }
  // Every stream is ended and finished before `streams` may be destroyed:
  // gRPC still calls into a reactor until its OnDone.
  auto abandon = [&](const std::string& why) {
    pacing = false;
    if (pacer.joinable()) pacer.join();
    for (auto& s : streams) s->Cancel();
    for (auto& s : streams) {
      if (!s->WaitDone(std::chrono::seconds(30))) {
        std::cerr << "siper_loadgen: " << why << "; a stream did not end after cancel\n";
        std::_Exit(1);  // destroying a live reactor would crash the report
      }
    }
    return Fail(why);
  };
  for (int64_t now = NowNs(); now < window_end; now = NowNs()) {
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(std::min<int64_t>(window_end - now, 5'000'000'000)));
    if (!server.Running()) {
      const int code = server.Wait(0);
      return abandon(absl::StrCat("siper-server exited during the run (",
                                  code == -1 ? "killed by a signal" : absl::StrCat("exit ", code),
                                  "); its output is in ", (work / "server.out.err").string()));
    }
    std::cerr << "  " << Fmt((NowNs() - window_start) / 1e9, 0) << " s: "
              << Fmt((shared.stored - stored0) / std::max(1e-9, (NowNs() - window_start) / 1e9))
              << " events/s stored\n";
  }
  const uint64_t stored1 = shared.stored;
  const double server_cpu1 = ProcessCpuSeconds(server.pid());
  const double self_cpu1 = SelfCpuSeconds();
  const uint64_t server_switches1 = ProcessContextSwitches(server.pid());
  const uint64_t server_faults1 = ProcessMinorFaults(server.pid());
  std::map<std::string, double> threads_cpu = ThreadCpuSecondsByKind(server.pid());
  for (auto& [kind, seconds] : threads_cpu) {
    auto before = threads_cpu0.find(kind);
    if (before != threads_cpu0.end()) seconds -= std::min(seconds, before->second);
  }
  const uint64_t server_rss_kib = ProcessStatusKib(server.pid(), "VmRSS");
  const uint64_t server_peak_rss_kib = ProcessStatusKib(server.pid(), "VmHWM");
  const double window_s = (NowNs() - window_start) / 1e9;
  if (perf) {
    perf->Signal(SIGINT);
    perf->Wait(30000);
  }

  pacing = false;
  if (pacer.joinable()) pacer.join();
  for (auto& s : streams) s->Stop();
  const auto drain_deadline = Clock::now() + std::chrono::seconds(120);
  for (auto& s : streams) {
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(drain_deadline - Clock::now());
    if (!s->WaitDone(std::max(left, std::chrono::seconds(0)))) {
      return abandon(server.Running()
                         ? "the streams did not finish within two minutes of the end (server too "
                           "slow?)"
                         : "siper-server exited before every batch was acknowledged");
    }
  }

  // Exactly once: per agent, acks, the server's own count and its newest seq.
  uint64_t total_sent = 0, total_stored = 0, problems = 0;
  std::vector<LatencySample> latencies;
  for (auto& s : streams) {
    total_sent += s->last_sent_seq();
    total_stored += s->stored();
    latencies.insert(latencies.end(), s->latencies().begin(), s->latencies().end());
    std::string problem;
    if (!s->status().ok())
      problem = absl::StrCat("stream ended with ", s->status().error_message());
    if (s->acked_seq() != s->last_sent_seq() || s->stored() != s->last_sent_seq() ||
        s->duplicates() != 0) {
      problem = absl::StrCat("sent 1..", s->last_sent_seq(), ", acked ", s->acked_seq(),
                             ", stored ", s->stored(), ", duplicates ", s->duplicates());
    }
    grpc::ClientContext count_context;
    v1::CountEventsRequest count_request;
    count_request.set_field("source.ip");
    count_request.set_agent_id(s->agent_id());
    v1::CountEventsResponse count;
    grpc::Status st = admin->CountEvents(&count_context, count_request, &count);
    if (!st.ok()) return Fail(absl::StrCat("count events: ", st.error_message()));
    grpc::ClientContext search_context;
    v1::SearchEventsRequest newest;
    newest.set_agent_id(s->agent_id());
    newest.set_newest_first(true);
    newest.set_limit(1);
    auto reader = admin->SearchEvents(&search_context, newest);
    v1::Event last;
    uint64_t newest_seq = 0;
    while (reader->Read(&last)) newest_seq = last.seq();
    if (grpc::Status rs = reader->Finish(); !rs.ok())
      return Fail(absl::StrCat("search: ", rs.error_message()));
    if (count.events() != s->last_sent_seq() || newest_seq != s->last_sent_seq()) {
      problem = absl::StrCat(problem, problem.empty() ? "" : "; ", "server holds ", count.events(),
                             " events, newest seq ", newest_seq, ", sent 1..", s->last_sent_seq());
    }
    if (!problem.empty()) {
      ++problems;
      std::cerr << "  agent " << s->agent_id() << ": " << problem << "\n";
    }
  }
  const double p50 = Percentile(latencies, 0.50);
  const double p99 = Percentile(latencies, 0.99);
  const double rate = static_cast<double>(stored1 - stored0) / window_s;
  const double server_cpu = server_cpu1 - server_cpu0;
  const double self_cpu = self_cpu1 - self_cpu0;
  const double events_in_window = static_cast<double>(stored1 - stored0);
  // Batches stored in the window (every batch holds batch_events, as sent).
  const double batch_events = static_cast<double>(o.rate > 0 ? rate_batch : o.batch);
  const double batches_in_window = events_in_window / batch_events;
  const double server_switches =
      static_cast<double>(server_switches1 - std::min(server_switches0, server_switches1));

  server.Signal(SIGTERM);
  if (server.Wait(60000) != 0) std::cerr << "siper_loadgen: server did not exit cleanly\n";
  streams.clear();

  // Size on disk after a forced compaction, and the records for the baselines.
  const uint64_t before_compaction = DirectoryBytes(data_dir / "db");
  std::vector<RawRecord> raw;
  std::vector<v1::Event> events;
  uint64_t after_compaction = 0;
  {
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(data_dir / "db");
    if (!store.ok()) return Fail(store.status().ToString());
    if (absl::Status st = (*store)->Compact(); !st.ok()) return Fail(st.ToString());
    store->reset();
    after_compaction = DirectoryBytes(data_dir / "db");
    store = storage::Store::Open(data_dir / "db");
    if (!store.ok()) return Fail(store.status().ToString());
    storage::EventQuery all;
    all.limit = o.raw_records;
    std::map<std::string, uint32_t> agent_nums;
    absl::Status st = (*store)->SearchEvents(all, [&](const v1::Event& e) {
      auto [it, added] = agent_nums.emplace(e.agent_id(), agent_nums.size());
      RawRecord& r = raw.emplace_back();
      // The events family's key: time i64 (sign flipped) | agent u32 | seq u64, big-endian.
      auto put = [&](uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i) r.key.push_back(static_cast<char>(v >> (8 * i)));
      };
      put(static_cast<uint64_t>(e.server_time_ns()) ^ (uint64_t{1} << 63), 8);
      put(it->second, 4);
      put(e.seq(), 8);
      r.value = e.SerializeAsString();
      events.push_back(e);
      return true;
    });
    if (!st.ok()) return Fail(st.ToString());
  }
  absl::StatusOr<WriteRate> raw_rate =
      RawRocksDbWrite(work / "raw-rocksdb", raw, o.rate > 0 ? rate_batch : o.batch, o.raw_threads);
  if (!raw_rate.ok()) return Fail(raw_rate.status().ToString());
  absl::StatusOr<WriteRate> store_rate =
      StoreWrite(work / "raw-store", events, o.rate > 0 ? rate_batch : o.batch, o.raw_threads);
  if (!store_rate.ok()) return Fail(store_rate.status().ToString());

  const double total = static_cast<double>(total_stored);
  nlohmann::json j = {
      {"mode", o.rate > 0 ? "fixed-rate" : "max"},
      {"agents", o.agents},
      {"target_rate", o.rate},
      {"batch_events", o.rate > 0 ? rate_batch : o.batch},
      {"window_s", window_s},
      {"events_per_s_stored", rate},
      {"ack_p50_ms", p50},
      {"ack_p99_ms", p99},
      {"server_cpu_us_per_event", events_in_window > 0 ? 1e6 * server_cpu / events_in_window : 0},
      {"server_cores_busy", server_cpu / window_s},
      {"generator_cores_busy", self_cpu / window_s},
      {"generator_cpu_us_per_event", events_in_window > 0 ? 1e6 * self_cpu / events_in_window : 0},
      {"server_cpu_us_per_batch", batches_in_window > 0 ? 1e6 * server_cpu / batches_in_window : 0},
      {"server_context_switches_per_batch",
       batches_in_window > 0 ? server_switches / batches_in_window : 0},
      {"server_minor_faults_per_batch",
       batches_in_window > 0
           ? static_cast<double>(server_faults1 - std::min(server_faults0, server_faults1)) /
                 batches_in_window
           : 0},
      {"server_rss_mib", server_rss_kib / 1024.0},
      {"server_peak_rss_mib", server_peak_rss_kib / 1024.0},
      {"events_total", total_stored},
      {"events_sent", total_sent},
      {"agents_with_problems", problems},
      {"db_bytes_before_compaction", before_compaction},
      {"db_bytes_after_compaction", after_compaction},
      {"bytes_per_event", total > 0 ? static_cast<double>(after_compaction) / total : 0},
      {"baseline_records", raw.size()},
      {"raw_rocksdb_records_per_s", raw_rate->per_second()},
      {"raw_rocksdb_bytes_per_record",
       raw.empty() ? 0 : static_cast<double>(raw_rate->bytes_on_disk) / raw.size()},
      {"raw_rocksdb_cpu_us_per_record", raw_rate->cpu_us_per_record()},
      {"store_write_records_per_s", store_rate->per_second()},
      {"store_write_cpu_us_per_record", store_rate->cpu_us_per_record()},
      {"store_bytes_per_record",
       raw.empty() ? 0 : static_cast<double>(store_rate->bytes_on_disk) / raw.size()},
      {"lines", origin},
  };
  for (const auto& [kind, seconds] : threads_cpu) {
    j["server_cpu_us_per_event_by_thread"][kind] =
        events_in_window > 0 ? 1e6 * seconds / events_in_window : 0;
  }
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "siper_loadgen: " << o.agents << " agents, "
              << (o.rate > 0 ? absl::StrCat("fixed rate ", Fmt(o.rate), " ev/s")
                             : std::string("max throughput"))
              << ", " << (o.rate > 0 ? rate_batch : o.batch) << " events per batch, lines from "
              << origin << "\n"
              << "  stored:        " << Fmt(rate) << " events/s over " << Fmt(window_s, 1)
              << " s (after " << Fmt(o.warmup_s, 0) << " s warm-up)\n"
              << "  ack latency:   p50 " << Fmt(p50, 1) << " ms, p99 " << Fmt(p99, 1) << " ms\n"
              << "  server CPU:    " << Fmt(j["server_cpu_us_per_event"].get<double>(), 2)
              << " us/event (" << Fmt(server_cpu / window_s, 2) << " cores); generator "
              << Fmt(self_cpu / window_s, 2) << " cores ("
              << Fmt(j["generator_cpu_us_per_event"].get<double>(), 2) << " us/event)\n"
              << "  by thread:     " << ThreadBreakdown(j) << "\n"
              << "  per batch:     server CPU "
              << Fmt(j["server_cpu_us_per_batch"].get<double>(), 0) << " us, "
              << Fmt(j["server_context_switches_per_batch"].get<double>(), 1)
              << " context switches of the server's threads, "
              << Fmt(j["server_minor_faults_per_batch"].get<double>(), 1) << " minor faults\n"
              << "  server memory: " << Fmt(j["server_rss_mib"].get<double>(), 0)
              << " MiB resident at the end of the window (peak "
              << Fmt(j["server_peak_rss_mib"].get<double>(), 0) << " MiB)\n"
              << "  exactly once:  " << (problems == 0 ? "OK" : "FAILED") << " (" << total_stored
              << " events from " << o.agents
              << " agents: acks, server count and newest seq per agent)\n"
              << "  on disk:       " << Fmt(j["bytes_per_event"].get<double>(), 1)
              << " bytes/event after compaction (" << after_compaction << " B; "
              << before_compaction << " B before)\n"
              << "  baselines on " << raw.size() << " of the stored events, " << o.raw_threads
              << " threads, synced batches:\n"
              << "    raw RocksDB (events family only): " << Fmt(raw_rate->per_second())
              << " records/s, " << Fmt(raw_rate->cpu_us_per_record(), 2) << " us CPU/record, "
              << Fmt(j["raw_rocksdb_bytes_per_record"].get<double>(), 1) << " B/record\n"
              << "    storage::Store::Write:            " << Fmt(store_rate->per_second())
              << " records/s, " << Fmt(store_rate->cpu_us_per_record(), 2) << " us CPU/record, "
              << Fmt(j["store_bytes_per_record"].get<double>(), 1) << " B/record\n";
  }
  if (!o.keep && o.work_dir.empty()) std::filesystem::remove_all(work);
  return problems == 0 ? 0 : 2;
}

}  // namespace
}  // namespace siper::bench

int main(int argc, char** argv) {
  // The generator shares the cores with the server, so its own cost per batch counts.
  // gzip (gRPC's message compression) allocates zlib's deflate state, about 260 KiB, for
  // every message and frees it after; glibc gave freed heap back to the kernel (trim
  // threshold 128 KiB) and faulted fresh zeroed pages in again: about 20 minor faults a
  // batch, none with up to 64 MiB of free heap kept. And Debian's abseil checks every
  // absl::Mutex acquisition (all of gRPC's locks) for lock-order cycles: off, as in the
  // server (server/main.cc).
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  siper::bench::Options o;
  CLI::App app{"siper_loadgen: simulated agents against a real siper-server (bench/loadgen)"};
  app.add_option("--agents", o.agents, "simulated agents (default 100)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--rate", o.rate, "total events/s; 0 (default): as fast as the server takes them");
  app.add_option("--warmup", o.warmup_s, "seconds before measuring (default 5)");
  app.add_option("--duration", o.duration_s, "seconds measured (default 30)");
  app.add_option("--batch", o.batch, "events per batch at most (default 500, as the agent)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--linger-ms", o.linger_ms,
                 "fixed rate: a batch holds what an agent reads in this time (default 200)");
  app.add_option("--window", o.window, "max mode: batches in flight per agent (default 4)")
      ->check(CLI::Range(1, 64));
  app.add_flag("!--no-gzip", o.gzip, "send uncompressed (siper-agent uses gzip)");
  app.add_option("--server-workers", o.server_workers, "ingest workers (default: the server's)");
  app.add_option("--raw-records", o.raw_records, "records for the baselines (default 300000)");
  app.add_option("--raw-threads", o.raw_threads, "writer threads of the baselines (default 4)");
  app.add_option("--server-bin", o.server_bin, "siper-server binary");
  app.add_option("--rules", o.rules_dir, "rule set (default: rules/ruleset)");
  app.add_option("--data", o.data, "shared data directory (default ../shared/data)");
  app.add_option("--work-dir", o.work_dir, "directory for the server and agents (kept)");
  app.add_flag("--keep", o.keep, "keep the temporary directory");
  app.add_flag("--json", o.json, "one JSON object on stdout");
  app.add_option("--perf", o.perf, "perf record -g the server during the window into FILE");
  app.add_option("--server-yaml", o.server_yaml, "YAML appended to the server's config");
  CLI11_PARSE(app, argc, argv);
  try {
    return siper::bench::Run(o);
  } catch (const std::exception& e) {
    std::cerr << "siper_loadgen: " << e.what() << "\n";
    return 1;
  }
}

// Fault injection end to end: the real siper-server, siper-agent and siperctl
// on loopback with real TLS and a temporary RocksDB, while a thread keeps
// appending lines. Log rotation, agent and server restarts and SIGKILLs, a
// server down for a minute, a full spool, and FIM changes; every test asserts
// through `siperctl --json events search` that each line is stored exactly
// once, in order per file, with agent seqs 1..N without gaps.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/files.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"
#include "tests/udp_sender.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Appends "TAG line N PADDING" lines to `file` at `lines_per_s` from a thread,
// each line in one write(2). The file is opened for each tick (10 ms), as a
// logger that reopens after rotation would, so a renamed file is replaced by a
// new one at the next tick.
class LineWriter {
 public:
  LineWriter(fs::path file, std::string tag, int lines_per_s, size_t padding = 40)
      : file_(std::move(file)),
        tag_(std::move(tag)),
        lines_per_s_(lines_per_s),
        padding_(padding, 'x') {
    thread_ = std::thread([this] { Loop(); });
  }
  ~LineWriter() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int written() const { return written_.load(); }
  const std::string& tag() const { return tag_; }
  void set_lines_per_s(int lines_per_s) {
    std::lock_guard lock(mu_);
    since_ = Clock::now();
    written_before_ = written_;
    lines_per_s_ = lines_per_s;
  }
  std::string Line(int n) const { return tag_ + " line " + std::to_string(n) + " " + padding_; }

  // Runs `fn` between two writes (for rotations); the writer waits meanwhile.
  void Between(const std::function<void()>& fn) {
    std::lock_guard lock(mu_);
    fn();
  }

 private:
  void Loop() {
    while (!stop_) {
      {
        std::lock_guard lock(mu_);
        const double elapsed = std::chrono::duration<double>(Clock::now() - since_).count();
        const int due = written_before_ + static_cast<int>(elapsed * lines_per_s_);
        if (due > written_) {
          std::ofstream out(file_, std::ios::app | std::ios::binary);
          for (int n = written_ + 1; n <= due; ++n) {
            const std::string line = Line(n) + "\n";
            out.write(line.data(), static_cast<std::streamsize>(line.size()));
            out.flush();  // one write per line: the agent never sees half a line
          }
          written_ = due;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  const fs::path file_;
  const std::string tag_;
  int lines_per_s_;  // since `since_`, when `written_before_` were written
  const std::string padding_;
  std::mutex mu_;
  Clock::time_point since_ = Clock::now();
  int written_before_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> written_{0};
  std::thread thread_;
};

void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

class AgentFaultTest : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ServerTest::SetUp());
    state_dir_ = root_ / "agent";
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  void StartServer() { ServerTest::StartServer(server_config_, 1); }

  std::string AgentLog() { return ReadFile(state_dir_ / "log" / "agent.log").value_or(""); }

  // Enrolls the agent and writes its configuration: `logs` read from their
  // beginning, plus `extra` YAML.
  void SetUpAgent(const std::vector<fs::path>& logs, const std::string& extra = "") {
    CommandResult enroll = Enroll(state_dir_, CreateToken());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.out << enroll.err;
    config_ = root_ / "agent.yaml";
    std::ofstream out(config_);
    out << "server: " << address_ << "\n"
        << "state_dir: " << state_dir_.string() << "\n"
        << "batch_max_delay_ms: 50\n"
        << extra;
    if (!logs.empty()) out << "logs:\n";
    for (const fs::path& log : logs)
      out << "  - path: " << log.string() << "\n    start: beginning\n";
  }

  void StartAgent() {
    ++agent_runs_;
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", config_.string()},
        root_ / ("agent" + std::to_string(agent_runs_) + ".out"));
  }

  void StopAgent(int sig) {
    agent_->Signal(sig);
    const int code = agent_->Wait(20000);
    if (sig == SIGTERM) {
      EXPECT_EQ(code, 0) << AgentLog();
    } else {
      EXPECT_EQ(code, -1);
    }
    agent_.reset();
  }

  std::vector<json> Events() {
    CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return AgentEventLines(r.out);
  }

  // The highest seq the server stored for the one agent (0 before any).
  uint64_t StoredSeq() {
    CommandResult r = Ctl({"agents", "list", "--json"});
    if (r.exit_code != 0) return 0;
    std::vector<json> agents = ParseJsonLines(r.out);
    return agents.empty() ? 0 : agents[0].value("last_seq", uint64_t{0});
  }

  // Waits until seq `count` is stored, then a moment more for late duplicates.
  void WaitForStored(uint64_t count, int seconds = 90) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (StoredSeq() < count) {
      ASSERT_LT(Clock::now(), deadline)
          << "stored up to seq " << StoredSeq() << " of " << count << "\n"
          << AgentLog();
      Sleep(250);
    }
    Sleep(500);
  }

  // The expected lines of each file are stored exactly once, in order per
  // file, and nothing else; seqs are 1..N without gaps or repeats.
  void ExpectEachLineOnceInOrder(const std::map<fs::path, std::vector<std::string>>& files) {
    size_t total = 0;
    for (const auto& [path, lines] : files) total += lines.size();
    ASSERT_NO_FATAL_FAILURE(WaitForStored(total));
    std::vector<json> events = Events();
    ASSERT_EQ(events.size(), total) << "stored " << events.size() << ", written " << total;
    std::map<std::string, std::vector<std::string>> per_source;
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i]["seq"].get<uint64_t>(), i + 1) << "seqs not 1..N at " << i;
      per_source[events[i]["source"].get<std::string>()].push_back(
          events[i]["line"].get<std::string>());
    }
    for (const auto& [path, expected] : files) {
      const std::vector<std::string>& lines = per_source[path.string()];
      ASSERT_EQ(lines.size(), expected.size()) << path;
      for (size_t i = 0; i < lines.size(); ++i) {
        ASSERT_EQ(lines[i], expected[i]) << path << " at line " << i + 1;
      }
    }
  }
  void ExpectEachLineOnceInOrder(const std::map<fs::path, const LineWriter*>& writers) {
    std::map<fs::path, std::vector<std::string>> files;
    for (const auto& [path, writer] : writers) {
      for (int n = 1; n <= writer->written(); ++n) files[path].push_back(writer->Line(n));
    }
    ExpectEachLineOnceInOrder(files);
  }

  // Waits until STATE_DIR/fim.json has `present` and not `absent`.
  void WaitForBaseline(const fs::path& present, const fs::path& absent) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      const json baseline =
          json::parse(ReadFile(state_dir_ / "fim.json").value_or("{}"), nullptr, false);
      if (baseline.is_object() && baseline.contains("files") &&
          baseline["files"].contains(present.string()) &&
          !baseline["files"].contains(absent.string())) {
        return;
      }
      ASSERT_LT(Clock::now(), deadline) << "fim.json does not have the changes\n" << AgentLog();
      Sleep(100);
    }
  }

  fs::path state_dir_;
  fs::path config_;
  std::string server_config_;  // YAML for --config (StartServer), when set
  int agent_runs_ = 0;
};

// Rename rotation every 2 s while lines keep coming: the old file is read to
// its end before the new one, so the per-file order holds across rotations.
TEST_F(AgentFaultTest, RotationByRenameUnderContinuousWriting) {
  const fs::path log = root_ / "app.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({log}));
  StartAgent();
  LineWriter writer(log, "app", 500);
  for (int rotation = 1; rotation <= 4; ++rotation) {
    Sleep(2000);
    writer.Between([&] { fs::rename(log, root_ / ("app.log." + std::to_string(rotation))); });
  }
  Sleep(2000);
  writer.Stop();
  ExpectEachLineOnceInOrder({{log, &writer}});
}

// Copy-truncate rotation every 2 s while lines keep coming. Lines written
// between the agent's last read and the truncation exist only in the copy,
// which the agent does not follow: that is copytruncate's own race (logrotate
// documents it). So the rotation happens once the agent has read what was
// written (the writer waits meanwhile, as logrotate's copy would stall it).
TEST_F(AgentFaultTest, RotationByCopyTruncateUnderContinuousWriting) {
  const fs::path log = root_ / "app.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({log}));
  StartAgent();
  LineWriter writer(log, "app", 500);
  for (int rotation = 1; rotation <= 4; ++rotation) {
    Sleep(2000);
    writer.Between([&] {
      ASSERT_NO_FATAL_FAILURE(WaitForStored(static_cast<uint64_t>(writer.written())));
      fs::copy_file(log, root_ / ("app.log." + std::to_string(rotation)));
      fs::resize_file(log, 0);
    });
    ASSERT_FALSE(HasFatalFailure());
  }
  Sleep(2000);
  writer.Stop();
  ExpectEachLineOnceInOrder({{log, &writer}});
  EXPECT_NE(AgentLog().find("reading it again from the beginning"), std::string::npos);
}

// SIGTERM and start again, three times, while two files keep growing.
TEST_F(AgentFaultTest, AgentRestartedMidStream) {
  const fs::path a = root_ / "a.log", b = root_ / "b.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({a, b}));
  StartAgent();
  LineWriter writer_a(a, "a", 400), writer_b(b, "b", 300);
  for (int restart = 0; restart < 3; ++restart) {
    Sleep(2500);
    StopAgent(SIGTERM);
    Sleep(700);
    StartAgent();
  }
  Sleep(2000);
  writer_a.Stop();
  writer_b.Stop();
  ExpectEachLineOnceInOrder({{a, &writer_a}, {b, &writer_b}});
  StopAgent(SIGTERM);
  // A service writes nothing to its stdout or stderr.
  for (int run = 1; run <= agent_runs_; ++run) {
    EXPECT_EQ(ReadFile(root_ / ("agent" + std::to_string(run) + ".out")).value_or("x"), "");
    EXPECT_EQ(ReadFile(root_ / ("agent" + std::to_string(run) + ".out.err")).value_or("x"), "");
  }
}

// SIGKILL of the agent while batches of 200 are in flight (1,000 lines/s),
// three times: whatever was spooled or read but not acknowledged is sent
// again with the same seqs and the server keeps one copy.
TEST_F(AgentFaultTest, AgentKilledMidBatch) {
  const fs::path log = root_ / "app.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({log}, "batch_max_events: 200\n"));
  StartAgent();
  LineWriter writer(log, "app", 1000);
  for (int kill = 0; kill < 3; ++kill) {
    Sleep(2000 + 300 * kill);
    StopAgent(SIGKILL);
    Sleep(500);
    StartAgent();
  }
  Sleep(2000);
  writer.Stop();
  ExpectEachLineOnceInOrder({{log, &writer}});
}

// SIGKILL of the server while batches are in flight, then the server again on
// the same data directory and port, three times.
TEST_F(AgentFaultTest, ServerKilledMidBatch) {
  const fs::path log = root_ / "app.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({log}, "batch_max_events: 200\n"));
  StartAgent();
  LineWriter writer(log, "app", 1000);
  for (int kill = 0; kill < 3; ++kill) {
    Sleep(2000 + 300 * kill);
    StopServer(SIGKILL);
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }
  Sleep(2000);
  writer.Stop();
  ExpectEachLineOnceInOrder({{log, &writer}});
}

// The server is stopped for a whole minute while two files keep growing; the
// agent spools, backs off, reconnects when it is back and catches up.
TEST_F(AgentFaultTest, ServerDownForAMinute) {
  const fs::path a = root_ / "a.log", b = root_ / "b.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({a, b}));
  StartAgent();
  LineWriter writer_a(a, "a", 100), writer_b(b, "b", 50);
  Sleep(2000);
  StopServer(SIGTERM);
  const int written_when_down = writer_a.written() + writer_b.written();
  Sleep(60000);
  // The agent kept reading into its spool meanwhile.
  EXPECT_NE(AgentLog().find("reconnecting in"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Sleep(2000);
  writer_a.Stop();
  writer_b.Stop();
  EXPECT_GT(writer_a.written() + writer_b.written(), written_when_down + 8000);
  ExpectEachLineOnceInOrder({{a, &writer_a}, {b, &writer_b}});
}

// Appends "NAME line FIRST" .. "NAME line LAST" to `file` and to `expected`.
void AppendLines(const fs::path& file, int first, int last, std::vector<std::string>* expected) {
  std::ofstream out(file, std::ios::app | std::ios::binary);
  for (int n = first; n <= last; ++n) {
    const std::string line = file.filename().string() + " line " + std::to_string(n);
    out << line << "\n";
    expected->push_back(line);
  }
}

// With the fallback poll at a minute, new lines still arrive at once: inotify
// on the files' directory wakes the tailer.
TEST_F(AgentFaultTest, InotifyWakesTheTailerWithoutWaitingForThePoll) {
  const fs::path a = root_ / "a.log", b = root_ / "b.log";
  std::map<fs::path, std::vector<std::string>> expected;
  AppendLines(a, 1, 5, &expected[a]);
  AppendLines(b, 1, 5, &expected[b]);
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({a, b}, "poll_interval_ms: 60000\n"));
  StartAgent();
  ASSERT_NO_FATAL_FAILURE(WaitForStored(10, 30));
  AppendLines(a, 6, 10, &expected[a]);
  AppendLines(b, 6, 10, &expected[b]);
  // Well within the minute the timed poll would take (the wait is not a speed assertion).
  ASSERT_NO_FATAL_FAILURE(WaitForStored(20, 30));
  ExpectEachLineOnceInOrder(expected);
}

// Lines spooled while the server was down are sent after a restart of the
// agent even though their files were deleted meanwhile; the new files that
// replaced them are read from their beginning.
TEST_F(AgentFaultTest, SpooledLinesAreSentAfterTheirFilesAreGone) {
  const fs::path a = root_ / "a.log", b = root_ / "b.log";
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({a, b}));
  StopServer(SIGTERM);
  StartAgent();
  std::map<fs::path, std::vector<std::string>> expected;
  AppendLines(a, 1, 30, &expected[a]);
  AppendLines(b, 1, 30, &expected[b]);
  // Numbered (next_seq 61) and released to the spool once it synced.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    const json offsets =
        json::parse(ReadFile(state_dir_ / "offsets.json").value_or("{}"), nullptr, false);
    if (offsets.is_object() && offsets.value("released_seq", uint64_t{0}) == 60) break;
    ASSERT_LT(Clock::now(), deadline) << AgentLog();
    Sleep(100);
  }
  StopAgent(SIGTERM);
  fs::remove(a);
  fs::remove(b);
  AppendLines(a, 31, 40, &expected[a]);
  AppendLines(b, 31, 40, &expected[b]);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  StartAgent();
  ExpectEachLineOnceInOrder(expected);
}

uint64_t SpoolBytes(const fs::path& spool) {
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(spool)) {
    if (entry.path().extension() == ".seg") bytes += entry.file_size();
  }
  return bytes;
}

// A 1 MiB spool (the smallest allowed) with the server down: at 600 lines
// of ~940 bytes/s it fills in about two seconds, reading pauses (the spool
// stops growing while the file does), the agent says so in its log, and once
// the server is back every line arrives, none dropped. (The rate is high only
// while the server is down: reading 10 MB back through siperctl --json takes
// a minute in a Debug build.)
TEST_F(AgentFaultTest, FullSpoolPausesReadingAndLosesNothing) {
  const fs::path log = root_ / "app.log";
  constexpr uint64_t kCap = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(SetUpAgent(
      {log}, "spool:\n  max_bytes: " + std::to_string(kCap) + "\n  segment_bytes: 65536\n"));
  StartAgent();
  LineWriter writer(log, "app", 100, 900);
  Sleep(1000);
  StopServer(SIGTERM);
  writer.set_lines_per_s(600);
  // Full: the spool stays near its cap (passed by at most one round of reading)...
  Sleep(4000);
  const uint64_t full = SpoolBytes(state_dir_ / "spool");
  const int written_at_full = writer.written();
  EXPECT_GE(full, kCap - 64 * 1024);
  EXPECT_LE(full, 3 * kCap);
  // ... and stops growing while the file keeps growing.
  Sleep(2000);
  EXPECT_EQ(SpoolBytes(state_dir_ / "spool"), full);
  EXPECT_GT(writer.written(), written_at_full + 600);
  EXPECT_NE(AgentLog().find("spool full"), std::string::npos) << AgentLog();
  writer.set_lines_per_s(50);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Sleep(2000);
  writer.Stop();
  ExpectEachLineOnceInOrder({{log, &writer}});
  EXPECT_NE(AgentLog().find("spool has room again"), std::string::npos) << AgentLog();
}

// FIM through the real server: a baseline, then add, modify, chmod and
// delete while running, and changes made while the agent was stopped; each
// reported once with its change kind, in one gapless seq space.
TEST_F(AgentFaultTest, FimChangesReportedOnceEachAlsoWhileStopped) {
  const fs::path etc = root_ / "etc";
  fs::create_directories(etc / "sub");
  std::ofstream(etc / "passwd") << "root:x:0:0\n";
  std::ofstream(etc / "hosts") << "127.0.0.1 localhost\n";
  std::ofstream(etc / "sub" / "app.conf") << "a=1\n";
  ASSERT_NO_FATAL_FAILURE(
      SetUpAgent({}, "fim:\n  - path: " + etc.string() + "\n    recursive: true\n"));
  // New files are written beside and renamed in, as package managers do, so
  // that each is one change rather than "created empty, then written".
  auto add = [&](const fs::path& path, const std::string& content) {
    std::ofstream(root_ / "staging") << content;
    fs::rename(root_ / "staging", path);
  };
  auto append = [](const fs::path& path, const std::string& content) {
    std::ofstream(path, std::ios::app) << content;  // one write(2)
  };
  using Changes = std::multiset<std::pair<std::string, std::string>>;
  auto changes = [&](const std::vector<json>& events) {
    Changes out;
    for (const json& e : events) {
      EXPECT_EQ(e["source"], "fim");
      out.emplace(fs::path(e["file"]["path"].get<std::string>()).lexically_relative(etc).string(),
                  e["file"]["change"].get<std::string>());
    }
    return out;
  };
  auto wait_for = [&](size_t count) {
    WaitForStored(count, 60);
    std::vector<json> events = Events();
    EXPECT_EQ(events.size(), count);
    return events;
  };

  StartAgent();
  std::vector<json> events;
  ASSERT_NO_FATAL_FAILURE(events = wait_for(3));
  EXPECT_EQ(changes(events), (Changes{{"passwd", "FILE_CHANGE_BASELINE"},
                                      {"hosts", "FILE_CHANGE_BASELINE"},
                                      {"sub/app.conf", "FILE_CHANGE_BASELINE"}}));
  std::string passwd_hash;
  for (const json& e : events) {
    if (e["line"].get<std::string>() == (etc / "passwd").string()) {
      passwd_hash = e["file"]["sha256"];
    }
  }
  EXPECT_EQ(passwd_hash.size(), 64u);

  add(etc / "sub" / "new.conf", "n=1\n");
  append(etc / "passwd", "eve:x:0:0\n");
  ASSERT_EQ(chmod((etc / "hosts").c_str(), 0600), 0);
  fs::remove(etc / "sub" / "app.conf");
  ASSERT_NO_FATAL_FAILURE(events = wait_for(7));
  Changes expected = {
      {"passwd", "FILE_CHANGE_BASELINE"},       {"hosts", "FILE_CHANGE_BASELINE"},
      {"sub/app.conf", "FILE_CHANGE_BASELINE"}, {"sub/new.conf", "FILE_CHANGE_ADDED"},
      {"passwd", "FILE_CHANGE_MODIFIED"},       {"hosts", "FILE_CHANGE_ATTRIBUTES"},
      {"sub/app.conf", "FILE_CHANGE_DELETED"}};
  EXPECT_EQ(changes(events), expected);
  for (const json& e : events) {
    const std::string change = e["file"]["change"];
    const std::string path = e["file"]["path"];
    if (change == "FILE_CHANGE_MODIFIED") {
      EXPECT_EQ(e["file"]["size"], 21) << path;
      EXPECT_NE(e["file"]["sha256"], passwd_hash);
    }
    if (change == "FILE_CHANGE_ATTRIBUTES") {
      EXPECT_EQ(e["file"]["mode"].get<int>() & 0777, 0600);
    }
    if (change == "FILE_CHANGE_ADDED") {
      EXPECT_EQ(e["file"]["size"], 4) << path;
    }
    if (change == "FILE_CHANGE_DELETED") {
      EXPECT_EQ(e["file"]["sha256"], "") << path;
    }
  }

  // Stop once the baseline with these changes is saved (it is saved only
  // after the events are durably spooled), then change things while down.
  ASSERT_NO_FATAL_FAILURE(WaitForBaseline(etc / "sub" / "new.conf", etc / "sub" / "app.conf"));
  StopAgent(SIGTERM);
  append(etc / "sub" / "new.conf", "n=2\n");
  fs::remove(etc / "passwd");
  add(etc / "shadow", "root:*:1:0\n");
  ASSERT_EQ(chmod((etc / "hosts").c_str(), 0640), 0);
  StartAgent();
  ASSERT_NO_FATAL_FAILURE(events = wait_for(11));
  expected.insert({{"sub/new.conf", "FILE_CHANGE_MODIFIED"},
                   {"passwd", "FILE_CHANGE_DELETED"},
                   {"shadow", "FILE_CHANGE_ADDED"},
                   {"hosts", "FILE_CHANGE_ATTRIBUTES"}});
  EXPECT_EQ(changes(events), expected);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["seq"], i + 1);
  // Nothing re-reported after a further restart.
  ASSERT_NO_FATAL_FAILURE(WaitForBaseline(etc / "shadow", etc / "passwd"));
  StopAgent(SIGTERM);
  StartAgent();
  Sleep(3000);
  EXPECT_EQ(StoredSeq(), 11u);
  EXPECT_EQ(Events().size(), 11u);
}

// The message names another host (fw01): the stored sender is the socket's peer.
std::string FirewallLine(int n, size_t padding = 0) {
  return "<38>Nov 28 10:00:00 fw01 sshd[42]: Failed password for root from 198.51.100." +
         std::to_string(n % 250) + " port 22 ssh2 n=" + std::to_string(n) +
         std::string(padding, 'p');
}

class SyslogUdpFaultTest : public AgentFaultTest {
 protected:
  static constexpr char kUdp[] = "syslog_udp:\n  enabled: true\n  listen: 127.0.0.1:0\n";

  void SetUp() override {
    server_config_ = "health_check_interval_s: 1\n";  // heartbeats become alerts quickly
    AgentFaultTest::SetUp();
  }

  // The port the agent's `run`-th start bound (it logs it; port 0 lets each
  // start take a free one).
  int AgentUdpPort(int run) {
    const std::string marker = "syslog_udp: listening on 127.0.0.1:";
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      const std::string log = AgentLog();
      size_t at = std::string::npos;
      int seen = 0;
      for (size_t pos = log.find(marker); pos != std::string::npos;
           pos = log.find(marker, pos + 1)) {
        if (++seen == run) at = pos;
      }
      if (at != std::string::npos) return std::stoi(log.substr(at + marker.size()));
      EXPECT_LT(Clock::now(), deadline) << "the agent did not say its UDP port\n" << log;
      if (Clock::now() >= deadline) return 0;
      Sleep(100);
    }
  }

  json Agent() {
    CommandResult r = Ctl({"agents", "list", "--json"});
    std::vector<json> agents = ParseJsonLines(r.out);
    return agents.empty() ? json::object() : agents[0];
  }
};

// Datagrams arrive once each, in order, with the sender's address in
// log.source.address; numbering goes on across a restart of the agent.
TEST_F(SyslogUdpFaultTest, DatagramsAreStoredOnceWithTheirSender) {
  ASSERT_NO_FATAL_FAILURE(SetUpAgent({}, std::string("heartbeat_s: 1\n") + kUdp));
  StartAgent();
  int port = AgentUdpPort(1);
  ASSERT_GT(port, 0);
  std::vector<std::string> sent;
  {
    UdpSender sender(port);
    for (int n = 1; n <= 100; ++n) {
      sent.push_back(FirewallLine(n));
      sender.Send(sent.back());
      if (n % 10 == 0) Sleep(5);
    }
    ASSERT_NO_FATAL_FAILURE(WaitForStored(100));
    StopAgent(SIGTERM);
    StartAgent();
  }
  // A restarted agent binds again (a new port, as port 0 was asked for).
  port = AgentUdpPort(2);
  ASSERT_GT(port, 0);
  UdpSender sender(port);
  for (int n = 101; n <= 110; ++n) {
    sent.push_back(FirewallLine(n));
    sender.Send(sent.back());
  }
  ASSERT_NO_FATAL_FAILURE(WaitForStored(110));
  std::vector<json> events = Events();
  ASSERT_EQ(events.size(), sent.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["seq"].get<uint64_t>(), i + 1);
    EXPECT_EQ(events[i]["line"].get<std::string>(), sent[i]);
    EXPECT_EQ(events[i]["source"].get<std::string>(), "syslog-udp:127.0.0.1:0");
    ASSERT_TRUE(events[i]["fields"].contains("log.source.address")) << events[i].dump();
    EXPECT_TRUE(
        events[i]["fields"]["log.source.address"].get<std::string>().starts_with("127.0.0.1:"));
  }
  EXPECT_EQ(events.back()["fields"]["log.source.address"],
            "127.0.0.1:" + std::to_string(sender.port()));
  // Decoded by the server as syslog (the message text is not trusted for the sender).
  EXPECT_EQ(events.back()["fields"]["log.syslog.priority"], "38");
  StopAgent(SIGTERM);
  EXPECT_EQ(Agent().value("drops", uint64_t{1}), 0u);
}

// A 1 MiB spool with the server down: datagrams fill it, then are dropped
// and counted (UDP cannot wait). Once the server is back every datagram is
// either stored (once, in the order sent) or counted in the heartbeat's
// drops, and the server raises its "agent dropping events" alert.
TEST_F(SyslogUdpFaultTest, FullSpoolDropsAreCountedAndAlerted) {
  constexpr uint64_t kCap = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(
      SetUpAgent({}, "heartbeat_s: 1\nspool:\n  max_bytes: " + std::to_string(kCap) +
                         "\n  segment_bytes: 65536\n" + kUdp));
  StartAgent();
  const int port = AgentUdpPort(1);
  ASSERT_GT(port, 0);
  UdpSender sender(port);
  std::vector<std::string> sent;
  for (int n = 1; n <= 5; ++n) {
    sent.push_back(FirewallLine(n, 900));
    sender.Send(sent.back());
  }
  ASSERT_NO_FATAL_FAILURE(WaitForStored(5));
  StopServer(SIGTERM);
  // ~1.5 MB into a 1 MiB spool, paced so the kernel's buffer keeps up.
  for (int n = 6; n <= 1600; ++n) {
    sent.push_back(FirewallLine(n, 900));
    sender.Send(sent.back());
    if (n % 20 == 0) Sleep(10);
  }
  Sleep(1500);
  EXPECT_NE(AgentLog().find("dropping datagrams"), std::string::npos) << AgentLog();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // Everything spooled is sent; the heartbeat after that carries the drops.
  json agent;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  for (;;) {
    agent = Agent();
    if (agent.value("drops", uint64_t{0}) > 0 && agent.value("spool_bytes", uint64_t{1}) == 0 &&
        agent.value("last_seq", uint64_t{0}) + agent.value("drops", uint64_t{0}) >= sent.size()) {
      break;
    }
    ASSERT_LT(Clock::now(), deadline) << agent.dump() << "\n" << AgentLog();
    Sleep(500);
  }
  const uint64_t drops = agent["drops"].get<uint64_t>();
  std::vector<json> events = Events();
  // Each datagram stored once or counted as dropped: nothing unaccounted for.
  EXPECT_EQ(events.size() + drops, sent.size()) << agent.dump();
  EXPECT_GT(events.size(), 500u);
  ASSERT_LT(events.size(), sent.size());
  // Seqs 1..N, and the stored datagrams are sent ones, in the order sent.
  size_t next_sent = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i]["seq"].get<uint64_t>(), i + 1);
    const std::string line = events[i]["line"].get<std::string>();
    while (next_sent < sent.size() && sent[next_sent] != line) ++next_sent;
    ASSERT_LT(next_sent, sent.size()) << "stored out of order or never sent: " << line;
    ++next_sent;
  }
  // The server's health monitor turns the heartbeat's drops into an alert.
  std::vector<json> alerts;
  const auto alert_deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    CommandResult r = Ctl({"alerts", "list", "--rule", "07d96d04-46b4-448f-846d-59505a9914b0",
                           "--limit", "0", "--json"});
    alerts = ParseJsonLines(r.out);
    if (!alerts.empty()) break;
    ASSERT_LT(Clock::now(), alert_deadline) << r.err << ServerOutput();
    Sleep(500);
  }
  EXPECT_EQ(alerts[0]["fields"]["event.action"], "spool_dropping");
  EXPECT_EQ(alerts[0]["fields"]["agent.id"], agent["agent_id"]);
  EXPECT_EQ(alerts[0]["fields"]["siper.drops"], std::to_string(drops));
}

}  // namespace
}  // namespace siper::testing

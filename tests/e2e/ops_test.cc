// End to end for operations: the real server, agent and siperctl; records are
// damaged directly in RocksDB while the server is stopped, and `siperctl
// verify` must name them. Also backup, offline restore and agent revocation.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "rocksdb/db.h"
#include "siper/v1/events.pb.h"
#include "siper/v1/storage.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"
#include "tests/storage/raw_db.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using storage::testutil::RawDb;

// The events-family key and value of one seq.
std::pair<std::string, std::string> StoredEvent(RawDb& raw, uint64_t seq) {
  for (auto& [k, v] : raw.All("events")) {
    siper::v1::Event e;
    EXPECT_TRUE(e.ParseFromString(v));
    if (e.seq() == seq) return {k, v};
  }
  ADD_FAILURE() << "no event with seq " << seq;
  return {};
}

class OpsTest : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ServerTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  void StartServer() { ServerTest::StartServer("", 1); }

  void StoreEvents(int count) {
    std::vector<std::string> lines;
    for (int i = 0; i < count; ++i) {
      lines.push_back("Nov 28 10:00:00 web01 CRON[" + std::to_string(1000 + i) +
                      "]: pam_unix(cron:session): session opened for user root by (uid=0) #" +
                      std::to_string(i));
    }
    StoreLines(lines);
  }

  // Enrolls an agent watching a log of these lines and waits until all are stored.
  void StoreLines(const std::vector<std::string>& log_lines, bool keep_agent = false) {
    const int lines = static_cast<int>(log_lines.size());
    fs::path log = root_ / "auth.log";
    {
      std::ofstream out(log);
      for (const std::string& l : log_lines) out << l << "\n";
    }
    fs::path state = root_ / "agent";
    CommandResult enroll = Enroll(state, CreateToken());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.out << enroll.err;
    agent_config_ = root_ / "agent.yaml";
    std::ofstream(agent_config_) << "server: " << address_ << "\n"
                                 << "state_dir: " << state.string() << "\n"
                                 << "batch_max_delay_ms: 50\n"
                                 << "logs:\n"
                                 << "  - path: " << log.string() << "\n"
                                 << "    start: beginning\n";
    StartAgent();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::vector<json> events;
    while (std::chrono::steady_clock::now() < deadline) {
      CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      events = AgentEventLines(r.out);
      if (static_cast<int>(events.size()) >= lines) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ASSERT_EQ(static_cast<int>(events.size()), lines) << ServerOutput();
    agent_id_ = events[0]["agent_id"].get<std::string>();
    if (keep_agent) return;
    agent_->Signal(SIGTERM);
    EXPECT_EQ(agent_->Wait(20000), 0);
    agent_.reset();
  }

  void StartAgent() {
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", agent_config_.string()},
        root_ / "agent.out");
  }

  json Verify(int expected_exit) {
    CommandResult r = Ctl({"verify", "--json"});
    EXPECT_EQ(r.exit_code, expected_exit) << r.out << r.err;
    std::vector<json> lines = ParseJsonLines(r.out);
    EXPECT_EQ(lines.size(), 1u) << r.out << r.err;
    return lines.empty() ? json() : lines[0];
  }

  // Stops the server, puts the backup back with `siper-server --restore-from`,
  // lets `damage` edit the raw store, and starts the server again.
  void RestoreAndDamage(const fs::path& backup, const std::function<void(RawDb&)>& damage) {
    StopServer();
    fs::remove_all(data_dir_ / "db");
    CommandResult r = RunCommand(
        {SIPER_SERVER_BIN, "--restore-from", backup.string(), "--data-dir", data_dir_.string()});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    {
      RawDb raw(data_dir_ / "db");
      damage(raw);
    }
    StartServer();
  }

  fs::path agent_config_;
  std::string agent_id_;
};

void ExpectNamesSeq(const json& report, const std::string& problem, const std::string& agent,
                    uint64_t seq) {
  EXPECT_FALSE(report.value("ok", true)) << report.dump();
  EXPECT_EQ(report.value("problem", ""), problem) << report.dump();
  EXPECT_EQ(report.value("agent_id", ""), agent) << report.dump();
  EXPECT_LE(report.value("first_seq", uint64_t{0}), seq) << report.dump();
  EXPECT_GE(report.value("last_seq", uint64_t{0}), seq) << report.dump();
  EXPECT_NE(report.value("from", "-"), "-") << report.dump();
}

// A clean store verifies; the signing key exists with mode 0600; a backup
// taken while the server runs restores offline and verifies; then each kind
// of tampering, done in RocksDB while the server is down, is named.
TEST_F(OpsTest, VerifyNamesChangedRemovedAndReorderedRecords) {
  ASSERT_NO_FATAL_FAILURE(StoreEvents(20));
  json ok = Verify(0);
  EXPECT_TRUE(ok.value("ok", false)) << ok.dump();
  EXPECT_EQ(ok.value("events", 0), 20) << ok.dump();
  EXPECT_GE(ok.value("seals", 0), 1) << ok.dump();
  CommandResult text = Ctl({"verify"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_EQ(text.out.rfind("OK: ", 0), 0u) << text.out;

  fs::path key = Pki("chain.key");
  ASSERT_TRUE(fs::exists(key));
  EXPECT_EQ(fs::status(key).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  fs::path backup = root_ / "backup";
  CommandResult b = Ctl({"backup", backup.string()});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_TRUE(fs::exists(backup));

  // Restored as it was: OK, with the same 20 events.
  ASSERT_NO_FATAL_FAILURE(RestoreAndDamage(backup, [](RawDb&) {}));
  json restored = Verify(0);
  EXPECT_TRUE(restored.value("ok", false)) << restored.dump();
  EXPECT_EQ(restored.value("events", 0), 20);

  // Changed: one event's raw line edited.
  ASSERT_NO_FATAL_FAILURE(RestoreAndDamage(backup, [](RawDb& raw) {
    auto [k, v] = StoredEvent(raw, 5);
    siper::v1::Event e;
    ASSERT_TRUE(e.ParseFromString(v));
    e.mutable_log()->set_line("Nov 28 10:00:00 web01 CRON[1]: nothing happened");
    raw.Put("events", k, e.SerializeAsString());
  }));
  ExpectNamesSeq(Verify(1), "changed", agent_id_, 5);
  CommandResult human = Ctl({"verify"});
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_NE(human.out.find("TAMPERED: changed"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find(agent_id_), std::string::npos) << human.out;

  // Removed: one event deleted.
  ASSERT_NO_FATAL_FAILURE(RestoreAndDamage(
      backup, [](RawDb& raw) { raw.Delete("events", StoredEvent(raw, 7).first); }));
  ExpectNamesSeq(Verify(1), "removed", agent_id_, 7);

  // Reordered: two events' values swapped.
  ASSERT_NO_FATAL_FAILURE(RestoreAndDamage(backup, [](RawDb& raw) {
    auto a = StoredEvent(raw, 3);
    auto b = StoredEvent(raw, 4);
    raw.Put("events", a.first, b.second);
    raw.Put("events", b.first, a.second);
  }));
  ExpectNamesSeq(Verify(1), "reordered", agent_id_, 3);

  // A forged seal signature is found even though the chain itself is intact.
  ASSERT_NO_FATAL_FAILURE(RestoreAndDamage(backup, [](RawDb& raw) {
    auto seals = raw.All("chain_seals");
    ASSERT_FALSE(seals.empty());
    siper::v1::ChainSeal seal;
    ASSERT_TRUE(seal.ParseFromString(seals.back().second));
    std::string sig = seal.signature();
    ASSERT_FALSE(sig.empty());
    sig[0] = static_cast<char>(sig[0] ^ 1);
    seal.set_signature(sig);
    raw.Put("chain_seals", seals.back().first, seal.SerializeAsString());
  }));
  json forged = Verify(1);
  EXPECT_EQ(forged.value("problem", ""), "bad seal") << forged.dump();
}

// Online restore with real processes: a backup, more events, then `siperctl restore` while
// the agent keeps running. Bad backups (missing, not a store, tampered) are refused with a
// clear error and change nothing; the good one is swapped in, the replaced database is kept
// beside it with every event, the chain verifies, and the agent's later events are stored.
TEST_F(OpsTest, OnlineRestoreSwapsTheStoreAndAgentsCarryOn) {
  auto line = [](int i) {
    return "Nov 28 10:00:00 web01 CRON[" + std::to_string(1000 + i) +
           "]: pam_unix(cron:session): session opened for user root by (uid=0) #" +
           std::to_string(i);
  };
  std::vector<std::string> first;
  for (int i = 1; i <= 10; ++i) first.push_back(line(i));
  ASSERT_NO_FATAL_FAILURE(StoreLines(first, /*keep_agent=*/true));
  auto events = [&] {
    CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseJsonLines(r.out);
  };
  auto append_and_wait = [&](int from, int to, size_t expect_total) {
    {
      std::ofstream out(root_ / "auth.log", std::ios::app);
      for (int i = from; i <= to; ++i) out << line(i) << "\n";
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (events().size() < expect_total) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ServerOutput();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  };
  auto kept_dirs = [&] {
    std::vector<fs::path> kept;
    for (const auto& entry : fs::directory_iterator(data_dir_)) {
      if (entry.path().filename().string().rfind("db.", 0) == 0) kept.push_back(entry.path());
    }
    return kept;
  };

  fs::path backup = root_ / "backup";
  ASSERT_EQ(Ctl({"backup", backup.string()}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(append_and_wait(11, 20, 20));

  // Refused, nothing changed: a missing directory, one that is not a store, a tampered
  // backup (one event's line edited in a copy), and a relative path.
  CommandResult missing = Ctl({"restore", (root_ / "no-such-backup").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no-such-backup"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("nothing was changed"), std::string::npos) << missing.err;
  fs::create_directories(root_ / "not-a-backup");
  std::ofstream(root_ / "not-a-backup" / "notes.txt") << "hello\n";
  CommandResult not_store = Ctl({"restore", (root_ / "not-a-backup").string()});
  EXPECT_NE(not_store.exit_code, 0);
  EXPECT_NE(not_store.err.find("not a Siper backup"), std::string::npos) << not_store.err;
  fs::path tampered = root_ / "tampered";
  fs::copy(backup, tampered, fs::copy_options::recursive);
  {
    RawDb raw(tampered);
    auto [k, v] = StoredEvent(raw, 5);
    siper::v1::Event e;
    ASSERT_TRUE(e.ParseFromString(v));
    e.mutable_log()->set_line("Nov 28 10:00:00 web01 CRON[1]: nothing happened");
    raw.Put("events", k, e.SerializeAsString());
  }
  CommandResult bad = Ctl({"restore", tampered.string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("does not verify"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("nothing was changed"), std::string::npos) << bad.err;
  EXPECT_EQ(events().size(), 20u);
  for (const fs::path& left : kept_dirs()) {  // no staging copy or kept database left behind
    ADD_FAILURE() << "left behind: " << left;
  }
  ASSERT_TRUE(server_->Running()) << ServerOutput();

  // The real restore, with the agent still connected.
  CommandResult restored = Ctl({"restore", backup.string(), "--json"});
  ASSERT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  std::vector<json> report = ParseJsonLines(restored.out);
  ASSERT_EQ(report.size(), 1u) << restored.out;
  const fs::path previous = report[0].value("previous_dir", "");
  EXPECT_EQ(previous.parent_path(), data_dir_) << restored.out;
  EXPECT_GE(report[0].value("verified_records", uint64_t{0}), 1u) << restored.out;
  EXPECT_EQ(report[0].value("events", uint64_t{0}), 10u) << restored.out;

  // The store is the backup's: ten events; the chain verifies, seals included.
  std::vector<json> now = events();
  EXPECT_EQ(now.size(), 10u);
  json ok = Verify(0);
  EXPECT_TRUE(ok.value("ok", false)) << ok.dump();
  EXPECT_EQ(ok.value("events", 0), 10) << ok.dump();

  // The agent's later events arrive in the restored store, each once.
  ASSERT_NO_FATAL_FAILURE(append_and_wait(21, 30, 20));
  std::multiset<uint64_t> seqs;
  for (const json& e : events()) seqs.insert(e["seq"].get<uint64_t>());
  EXPECT_EQ(seqs.size(), 20u);
  for (uint64_t seq = 1; seq <= 10; ++seq) EXPECT_EQ(seqs.count(seq), 1u) << seq;
  for (uint64_t seq = 21; seq <= 30; ++seq) EXPECT_EQ(seqs.count(seq), 1u) << seq;
  json after = Verify(0);
  EXPECT_TRUE(after.value("ok", false)) << after.dump();
  EXPECT_EQ(after.value("events", 0), 20) << after.dump();

  // The restore is in the audit trail, in the restored store.
  CommandResult audit = Ctl({"audit", "list", "--json"});
  EXPECT_NE(audit.out.find("store.restore"), std::string::npos) << audit.out << audit.err;

  // Nothing was deleted: the replaced database, with all twenty events of before, is kept.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  agent_.reset();
  StopServer();
  {
    RawDb raw(previous);
    EXPECT_EQ(raw.All("events").size(), 20u);
  }
  StartServer();
  json restarted = Verify(0);
  EXPECT_TRUE(restarted.value("ok", false)) << restarted.dump();
  EXPECT_EQ(restarted.value("events", 0), 20) << restarted.dump();
}

// A revoked agent's open stream ends at its next message, which is not stored; its next
// stream is refused; nothing writes the flag back.
TEST_F(OpsTest, RevokedAgentIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StoreLines({"Nov 28 10:00:00 web01 CRON[1]: one"}, true));
  CommandResult r = Ctl({"agents", "revoke", agent_id_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The running agent's open stream is not trusted any longer: its next batch is refused
  // (not stored, not acknowledged: it stays in the agent's spool) and the stream ends.
  std::ofstream(root_ / "auth.log", std::ios::app) << "Nov 28 10:00:01 web01 CRON[2]: two\n";
  auto cut = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ServerOutput().find("has been revoked: ending its open stream") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), cut) << ServerOutput();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(AgentEventLines(Ctl({"events", "search", "--json"}).out).size(), 1u);
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(20000), 0);
  CommandResult list = Ctl({"agents", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0);
  EXPECT_TRUE(ParseJsonLines(list.out).at(0).value("revoked", false)) << list.out;
  EXPECT_NE(Ctl({"agents", "revoke", "no-such-agent"}).exit_code, 0);

  StartAgent();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ServerOutput().find("refused stream of revoked agent") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ServerOutput();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Field equality, cursor paging and the server-side top-N count.
TEST_F(OpsTest, SearchByFieldPagesAndCounts) {
  std::vector<std::string> lines;
  auto failed = [&](const std::string& ip, int n) {
    for (int i = 0; i < n; ++i) {
      lines.push_back("Nov 28 10:00:0" + std::to_string(i) + " web01 sshd[" +
                      std::to_string(200 + lines.size()) + "]: Failed password for alice from " +
                      ip + " port " + std::to_string(40000 + lines.size()) + " ssh2");
    }
  };
  failed("203.0.113.7", 5);
  failed("198.51.100.10", 3);
  failed("192.0.2.1", 1);
  ASSERT_NO_FATAL_FAILURE(StoreLines(lines));

  CommandResult count = Ctl({"events", "count", "--by", "source.ip", "--top", "2", "--json"});
  ASSERT_EQ(count.exit_code, 0) << count.err;
  std::vector<json> top = ParseJsonLines(count.out);
  ASSERT_EQ(top.size(), 2u) << count.out;
  EXPECT_EQ(top[0]["source.ip"], "203.0.113.7");
  EXPECT_EQ(top[0]["count"], 5);
  EXPECT_EQ(top[1]["source.ip"], "198.51.100.10");
  EXPECT_EQ(top[1]["count"], 3);

  // Ranges of several hours: hours a range holds whole are counted from the
  // server's per-hour counts, hours it cuts from the field index; the answer is
  // the same. The events are stored by now, so every range below holds them all.
  const absl::Time hour = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) / 3600 * 3600);
  auto iso = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  };
  const std::vector<std::vector<std::string>> ranges = {
      {"--since", iso(hour - absl::Hours(3))},                           // whole hours
      {"--since", "5h", "--until", iso(hour + absl::Hours(2))},          // first hour cut
      {"--since", iso(hour - absl::Hours(4)), "--until", "2030-01-01"},  // whole, bounded
  };
  for (const std::vector<std::string>& range : ranges) {
    SCOPED_TRACE(range[1]);
    std::vector<std::string> args = {"events", "count", "--by", "source.ip"};
    args.insert(args.end(), range.begin(), range.end());
    CommandResult table = Ctl(args);
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_NE(table.err.find("9 events, 0 without source.ip, 3 distinct values"), std::string::npos)
        << table.err;
    args.push_back("--json");
    std::vector<json> values = ParseJsonLines(Ctl(args).out);
    ASSERT_EQ(values.size(), 3u);
    EXPECT_EQ(values[0]["count"], 5);
    EXPECT_EQ(values[1]["count"], 3);
    EXPECT_EQ(values[2]["source.ip"], "192.0.2.1");
    EXPECT_EQ(values[2]["count"], 1);
  }
  CommandResult before = Ctl({"events", "count", "--by", "source.ip", "--since",
                              iso(hour - absl::Hours(6)), "--until", iso(hour - absl::Hours(2))});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_NE(before.err.find("0 events"), std::string::npos) << before.err;

  CommandResult by_field =
      Ctl({"events", "search", "--field", "source.ip=198.51.100.10", "--limit", "0", "--json"});
  ASSERT_EQ(by_field.exit_code, 0) << by_field.err;
  EXPECT_EQ(ParseJsonLines(by_field.out).size(), 3u) << by_field.out;
  EXPECT_NE(Ctl({"events", "search", "--field", "no-equals-sign"}).exit_code, 0);

  // Pages of 4: 4, 4, 1; every event once, in order.
  std::vector<uint64_t> seqs;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    std::vector<std::string> args = {"events", "search", "--limit", "4", "--json"};
    if (!cursor.empty()) {
      args.push_back("--cursor");
      args.push_back(cursor);
    }
    CommandResult r = Ctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const json& e : ParseJsonLines(r.out)) seqs.push_back(e["seq"].get<uint64_t>());
    size_t at = r.err.find("next cursor: ");
    if (at == std::string::npos) break;
    cursor = r.err.substr(at + 13, r.err.find('\n', at) - at - 13);
  }
  ASSERT_EQ(seqs.size(), lines.size());
  for (size_t i = 1; i < seqs.size(); ++i) EXPECT_LT(seqs[i - 1], seqs[i]);
}

// `count` failed SSH logins of root from one address, seconds apart.
std::vector<std::string> FailedRootLogins(int count) {
  std::vector<std::string> lines;
  for (int i = 0; i < count; ++i) {
    lines.push_back("Nov 28 10:00:0" + std::to_string(i) + " web01 sshd[" +
                    std::to_string(300 + i) + "]: Failed password for root from 203.0.113.9 port " +
                    std::to_string(41000 + i) + " ssh2");
  }
  return lines;
}

// Odd input to the search commands: each is refused with exit 2 (bad usage) or 1 (refused
// by the server) and a message naming the flag and the value; nothing stored is lost.
TEST_F(OpsTest, OddSearchInputIsRefusedNamingTheInput) {
  const std::vector<std::string> lines = FailedRootLogins(5);
  ASSERT_NO_FATAL_FAILURE(StoreLines(lines));
  auto expect_refused = [&](const std::vector<std::string>& args, int code,
                            const std::string& message) {
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, code) << absl::StrJoin(args, " ") << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_EQ(r.out, "") << absl::StrJoin(args, " ");
  };
  // An empty range is a mistake (durations count back), not "nothing found".
  expect_refused({"events", "search", "--since", "1h", "--until", "2h", "--json"}, 2, "--until 2h");
  expect_refused(
      {"alerts", "list", "--since", "2026-11-28T10:00:00Z", "--until", "2026-11-28", "--json"}, 2,
      "is not after --since 2026-11-28T10:00:00Z");
  expect_refused({"events", "count", "--by", "source.ip", "--since", "1d", "--until", "1d"}, 2,
                 "--until 1d");
  // The flag named is the one that is wrong.
  expect_refused({"events", "count", "--by", "source.ip", "--until", "garbage"}, 2,
                 "--until: invalid time 'garbage'");
  // "-1" is not read as the largest unsigned number (no limit).
  expect_refused({"events", "search", "--limit", "-1", "--json"}, 2, "--limit");
  expect_refused({"alerts", "list", "--limit", "-1", "--json"}, 2, "--limit");
  expect_refused({"events", "search", "--field", "=203.0.113.9"}, 2, "--field '=203.0.113.9'");
  // A verify range after the newest record checks nothing, and still names the head.
  CommandResult later = Ctl({"verify", "--since", "2099-01-01", "--json"});
  ASSERT_EQ(later.exit_code, 0) << later.err;
  const json report = ParseJsonLines(later.out).at(0);
  EXPECT_EQ(report.value("chain_records", -1), 0) << later.out;
  EXPECT_GT(report.value("head_length", 0), 0) << later.out;

  CommandResult after = Ctl({"events", "search", "--limit", "0", "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(AgentEventLines(after.out).size(), lines.size());
}

// A page of 2 prints a cursor; the same search resumes with it, also with another range
// or limit; a cursor given to another search (other filters, other direction), which
// would skip or repeat events without a word, is refused naming it.
TEST_F(OpsTest, CursorOfAnotherSearchIsRefused) {
  const std::vector<std::string> lines = FailedRootLogins(5);
  ASSERT_NO_FATAL_FAILURE(StoreLines(lines));
  auto expect_refused = [&](const std::vector<std::string>& args, const std::string& message) {
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(args, " ") << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_EQ(r.out, "") << absl::StrJoin(args, " ");
  };
  CommandResult all = Ctl({"events", "search", "--limit", "0", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const size_t stored = ParseJsonLines(all.out).size();
  ASSERT_GE(stored, lines.size());
  CommandResult first = Ctl({"events", "search", "--limit", "2", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const size_t at = first.err.find("next cursor: ");
  ASSERT_NE(at, std::string::npos) << first.err;
  const std::string cursor = first.err.substr(at + 13, first.err.find('\n', at) - at - 13);
  CommandResult next =
      Ctl({"events", "search", "--limit", "10", "--since", "1d", "--cursor", cursor, "--json"});
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(ParseJsonLines(next.out).size(), stored - 2) << next.out;
  expect_refused({"events", "search", "--newest-first", "--cursor", cursor, "--json"},
                 "belongs to another search");
  expect_refused({"events", "search", "--query", "root", "--cursor", cursor, "--json"},
                 "belongs to another search");
  expect_refused({"events", "search", "--field", "source.ip=203.0.113.9", "--cursor", cursor},
                 "belongs to another search");
  expect_refused({"events", "search", "--cursor", "zzzz"}, "cursor 'zzzz' is not");

  CommandResult after = Ctl({"events", "search", "--limit", "0", "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(AgentEventLines(after.out).size(), lines.size());
}

// A backup that cannot be written says why, as an answer of the server (exit 1), not as
// "the server is unavailable" (exit 3); an empty DIR is bad usage. A good one still works.
TEST_F(OpsTest, BackupToABadDirectorySaysWhy) {
  ASSERT_NO_FATAL_FAILURE(StoreLines(FailedRootLogins(2)));
  for (const char* verb : {"backup", "restore"}) {
    CommandResult empty = Ctl({verb, ""});
    EXPECT_EQ(empty.exit_code, 2) << empty.err;
    EXPECT_NE(empty.err.find(std::string(verb) + ": DIR is empty"), std::string::npos) << empty.err;
  }
  const fs::path orphan = root_ / "no-such-parent" / "backup";
  CommandResult no_parent = Ctl({"backup", orphan.string()});
  EXPECT_EQ(no_parent.exit_code, 1) << no_parent.err;
  EXPECT_NE(no_parent.err.find((root_ / "no-such-parent").string() +
                               " is not a directory on the server host"),
            std::string::npos)
      << no_parent.err;
  // A directory nobody can make (mkdir in /proc fails, also for root).
  CommandResult unwritable = Ctl({"backup", "/proc/siper-backup"});
  EXPECT_EQ(unwritable.exit_code, 1) << unwritable.err;
  EXPECT_NE(unwritable.err.find("backup to /proc/siper-backup failed on the server host"),
            std::string::npos)
      << unwritable.err;
  EXPECT_EQ(unwritable.err.find("unavailable"), std::string::npos) << unwritable.err;
  EXPECT_FALSE(fs::exists(orphan));

  CommandResult good = Ctl({"backup", (root_ / "backup").string()});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_TRUE(Verify(0).value("ok", false));
}

}  // namespace
}  // namespace siper::testing

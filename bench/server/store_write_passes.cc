// store_write_passes: a fixed amount of Store::Write work, for counting the
// writer's instructions per event under valgrind (docs/performance.md, "Fifth
// round"). Writes BATCHES batches of 500 sshd-like events (12 decoded fields,
// 5 of them indexed, an alert on every other event) for 10 agents, one thread
// per agent (batch i goes to agent i % 10), through Store::Write with
// sync_writes off, as the server's writers do; each event's server time is
// set once per batch, as the server's agent stream does. Instructions per
// event = (Ir at 24 batches - Ir at 4 batches) / 10,000:
//
//   valgrind --tool=callgrind --callgrind-out-file=cg.4 store_write_passes 4
//   valgrind --tool=callgrind --callgrind-out-file=cg.24 store_write_passes 24
//   callgrind_annotate cg.24 | head; callgrind_annotate cg.4 | head
//
// The data is deterministic (no clock, no random seed), so two builds count
// the same work. --dir names the store directory (emptied first).
//
// --disorder N stamps batch b with the time of batch b - (a hash of b mod N), as
// if it had been stamped on arrival and waited up to N batch steps in a queue
// before its write: keys then reach the memtables out of time order, as they
// did when the server stamped batches on receipt (docs/performance.md, "Eighth
// round"). 0 (the default): every write is later than the one before.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/storage/store.h"

namespace fs = std::filesystem;
using siper::storage::EventRecord;
using siper::storage::Store;

namespace {

constexpr int kAgents = 10;
constexpr int kBatchSize = 500;
constexpr int64_t kStart = int64_t{1'790'000'000} * 1'000'000'000;  // 2026-09
constexpr int64_t kBatchStep = int64_t{20} * 1'000'000;             // 20 ms apart

std::vector<EventRecord> MakeBatch(int agent, int batch_of_agent, uint64_t first_seq,
                                   int64_t time_ns) {
  static const char* const kUsers[] = {"root",   "admin", "oracle", "test",  "guest",
                                       "ubuntu", "pi",    "git",    "mysql", "postgres"};
  static const char* const kActions[] = {"ssh_login_failed", "ssh_login", "ssh_disconnect",
                                         "ssh_invalid_user"};
  std::vector<EventRecord> records(kBatchSize);
  const std::string agent_id = absl::StrCat("agent-", agent);
  for (int i = 0; i < kBatchSize; ++i) {
    const uint64_t n = first_seq + static_cast<uint64_t>(i);
    EventRecord& r = records[static_cast<size_t>(i)];
    siper::v1::Event& e = r.event;
    e.set_agent_id(agent_id);
    e.set_seq(n);
    e.set_agent_time_ns(time_ns - 1'000'000);
    e.set_server_time_ns(time_ns);
    const uint64_t mix = (n * 2654435761u) ^ static_cast<uint64_t>(batch_of_agent);
    const std::string ip = absl::StrCat("203.0.", (mix >> 3) % 8, ".", (mix >> 7) % 25);
    const char* user = kUsers[(mix >> 11) % 10];
    const char* action = kActions[n % 4];
    const std::string port = absl::StrCat(1024 + (mix % 60000));
    const std::string pid = absl::StrCat(1000 + (n % 9000));
    e.mutable_log()->set_source("/var/log/auth.log");
    e.mutable_log()->set_line(absl::StrCat("Nov 28 10:00:00 host-", agent, " sshd[", pid,
                                           "]: Failed password for ", user, " from ", ip, " port ",
                                           port, " ssh2"));
    auto& f = *e.mutable_fields();
    f["source.ip"] = ip;
    f["user.name"] = user;
    f["host.name"] = absl::StrCat("host-", agent);
    f["process.name"] = "sshd";
    f["event.action"] = action;
    f["source.port"] = port;
    f["process.pid"] = pid;
    f["event.outcome"] = n % 2 == 0 ? "failure" : "success";
    f["event.kind"] = "event";
    f["event.category"] = "authentication";
    f["log.level"] = "info";
    f["ssh.method"] = "password";
    if (n % 2 == 0) {
      siper::v1::Alert& a = r.alerts.emplace_back();
      a.set_rule_id("ssh_failed_password");
      a.set_title("SSH failed password");
      a.set_level("medium");
      (*a.mutable_fields())["source.ip"] = ip;
      (*a.mutable_fields())["user.name"] = user;
      a.add_tags("attack.credential_access");
    }
  }
  return records;
}

}  // namespace

int main(int argc, char** argv) {
  int batches = -1;
  int disorder = 0;
  fs::path dir = fs::temp_directory_path() / "siper_store_write_passes";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--disorder" && i + 1 < argc) {
      disorder = std::stoi(argv[++i]);
    } else if (batches < 0 && !arg.empty() && arg.find_first_not_of("0123456789") == arg.npos) {
      batches = std::stoi(arg);
    } else {
      std::cerr << "usage: store_write_passes BATCHES [--dir DIR] [--disorder N]\n";
      return 2;
    }
  }
  if (batches < 0) {
    std::cerr << "usage: store_write_passes BATCHES [--dir DIR] [--disorder N]\n";
    return 2;
  }
  fs::remove_all(dir);
  siper::storage::StoreOptions options;
  options.sync_writes = false;
  auto store = Store::Open(dir, options);
  if (!store.ok()) {
    std::cerr << "store_write_passes: " << store.status() << "\n";
    return 1;
  }
  std::vector<std::thread> threads;
  std::vector<uint64_t> stored(kAgents, 0);
  std::vector<std::string> errors(kAgents);
  for (int agent = 0; agent < kAgents; ++agent) {
    threads.emplace_back([&, agent] {
      uint64_t seq = 1;
      for (int b = agent, k = 0; b < batches; b += kAgents, ++k) {
        const int64_t late =
            disorder > 0 ? static_cast<int64_t>((uint64_t(b) * 2654435761u) % uint64_t(disorder))
                         : 0;
        std::vector<EventRecord> records =
            MakeBatch(agent, k, seq, kStart + (int64_t{b} - late) * kBatchStep);
        seq += kBatchSize;
        auto result = (*store)->Write(absl::StrCat("agent-", agent), records);
        if (!result.ok()) {
          errors[static_cast<size_t>(agent)] = std::string(result.status().message());
          return;
        }
        stored[static_cast<size_t>(agent)] += result->stored;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  uint64_t total = 0;
  for (int agent = 0; agent < kAgents; ++agent) {
    if (!errors[static_cast<size_t>(agent)].empty()) {
      std::cerr << "store_write_passes: agent " << agent << ": "
                << errors[static_cast<size_t>(agent)] << "\n";
      return 1;
    }
    total += stored[static_cast<size_t>(agent)];
  }
  std::printf("stored %llu events in %d batches\n", static_cast<unsigned long long>(total),
              batches);
  return total == static_cast<uint64_t>(batches) * kBatchSize ? 0 : 1;
}

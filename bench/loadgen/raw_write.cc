#include "bench/loadgen/raw_write.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/storage/store.h"

namespace siper::bench {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds (user + system) of this process so far. The server has stopped and
// the agents' streams are closed when the baselines run, so it is theirs.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

}  // namespace

uint64_t DirectoryBytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

absl::StatusOr<WriteRate> RawRocksDbWrite(const std::filesystem::path& dir,
                                          const std::vector<RawRecord>& records, size_t batch,
                                          int threads) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kLZ4Compression;
  options.bottommost_compression = rocksdb::kZSTD;
  options.level_compaction_dynamic_level_bytes = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir.string(), &raw);
  if (!s.ok()) return absl::InternalError(absl::StrCat("raw RocksDB open: ", s.ToString()));
  std::unique_ptr<rocksdb::DB> db(raw);

  std::atomic<bool> failed{false};
  std::string error;
  const size_t n = records.size();
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      // Each thread writes whole batches, interleaved: thread t takes batches t, t+T, ...
      for (size_t b = static_cast<size_t>(t) * batch; b < n && !failed;
           b += static_cast<size_t>(threads) * batch) {
        rocksdb::WriteBatch wb;
        for (size_t i = b; i < std::min(n, b + batch); ++i) {
          wb.Put(records[i].key, records[i].value);
        }
        rocksdb::Status ws = db->Write(wo, &wb);
        if (!ws.ok() && !failed.exchange(true)) error = ws.ToString();
      }
    });
  }
  for (std::thread& w : workers) w.join();
  WriteRate rate;
  rate.seconds = SecondsSince(start);
  rate.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  rate.records = n;
  if (failed) return absl::InternalError(absl::StrCat("raw RocksDB write: ", error));
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  s = db->CompactRange(compact, nullptr, nullptr);
  if (!s.ok()) return absl::InternalError(absl::StrCat("raw RocksDB compact: ", s.ToString()));
  s = db->Close();
  if (!s.ok()) return absl::InternalError(absl::StrCat("raw RocksDB close: ", s.ToString()));
  db.reset();
  rate.bytes_on_disk = DirectoryBytes(dir);
  return rate;
}

absl::StatusOr<WriteRate> StoreWrite(const std::filesystem::path& dir,
                                     const std::vector<siper::v1::Event>& events, size_t batch,
                                     int threads) {
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir);
  if (!store.ok()) return store.status();
  // Per agent, in seq order as they were read.
  std::map<std::string, std::vector<const siper::v1::Event*>> by_agent;
  for (const siper::v1::Event& e : events) by_agent[e.agent_id()].push_back(&e);
  std::vector<const std::vector<const siper::v1::Event*>*> agents;
  for (const auto& [id, list] : by_agent) agents.push_back(&list);

  std::atomic<bool> failed{false};
  absl::Status error;
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      // Round robin over this thread's agents, one batch each, as streams interleave.
      std::vector<size_t> pos(agents.size(), 0);
      bool more = true;
      while (more && !failed) {
        more = false;
        for (size_t a = static_cast<size_t>(t); a < agents.size();
             a += static_cast<size_t>(threads)) {
          const auto& list = *agents[a];
          if (pos[a] >= list.size()) continue;
          std::vector<storage::EventRecord> records;
          const size_t end = std::min(list.size(), pos[a] + batch);
          records.reserve(end - pos[a]);
          for (size_t i = pos[a]; i < end; ++i) records.emplace_back().event = *list[i];
          pos[a] = end;
          more = more || end < list.size();
          absl::StatusOr<storage::WriteResult> r =
              (*store)->Write(records.front().event.agent_id(), records);
          if (!r.ok() && !failed.exchange(true)) error = r.status();
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  WriteRate rate;
  rate.seconds = SecondsSince(start);
  rate.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  rate.records = events.size();
  if (failed) return error;
  if (absl::Status st = (*store)->Compact(); !st.ok()) return st;
  store->reset();
  rate.bytes_on_disk = DirectoryBytes(dir);
  return rate;
}

}  // namespace siper::bench

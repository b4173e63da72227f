// Baselines for the load generator: the same records written by raw RocksDB
// (one column family, WAL on, synced per batch) and by server/storage's Store
// (dedup, indexes, hash chain, group commit), so the cost of each layer shows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "siper/v1/events.pb.h"

namespace siper::bench {

struct RawRecord {
  std::string key;    // 20 bytes: time i64 | agent u32 | seq u64, as the store's events family
  std::string value;  // the stored siper.v1.Event, serialized
};

struct WriteRate {
  uint64_t records = 0;
  double seconds = 0;
  uint64_t bytes_on_disk = 0;  // after a forced compaction
  double cpu_seconds = 0;      // CPU (user + system) of this process while writing
  double per_second() const { return seconds > 0 ? static_cast<double>(records) / seconds : 0; }
  double cpu_us_per_record() const {
    return records > 0 ? 1e6 * cpu_seconds / static_cast<double>(records) : 0;
  }
};

// Writes `records` into a new RocksDB in `dir` (LZ4, WAL on, sync per write
// batch of `batch` records) from `threads` threads. The only code of the
// project outside server/storage that includes RocksDB: it is the baseline.
[[nodiscard]] absl::StatusOr<WriteRate> RawRocksDbWrite(const std::filesystem::path& dir,
                                                        const std::vector<RawRecord>& records,
                                                        size_t batch, int threads);

// Writes `events` through storage::Store::Write into a new store in `dir`,
// `batch` events per call, agents spread over `threads` threads.
[[nodiscard]] absl::StatusOr<WriteRate> StoreWrite(const std::filesystem::path& dir,
                                                   const std::vector<siper::v1::Event>& events,
                                                   size_t batch, int threads);

// Bytes of all files under `dir`.
uint64_t DirectoryBytes(const std::filesystem::path& dir);

}  // namespace siper::bench

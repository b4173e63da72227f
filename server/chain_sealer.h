// Signs the storage hash chain's head with the server's Ed25519 key at an
// interval (and at shutdown), and checks those signatures for `verify`.
// Storage keeps the seals and checks the chain against them; this class owns
// the key and the signature format. See server/README.md, "Tamper evidence".
#pragma once

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/storage/store.h"
#include "server/timestamp.h"

namespace siper::server {

struct SealReport {
  uint64_t seals = 0;  // seals checked
  bool ok = true;
  uint64_t bad_length = 0;  // the first seal that failed, when !ok
  std::string problem;      // "bad seal" or "bad timestamp", when !ok
  std::string message;
  // RFC 3161 tokens: checked against the configured TSA, or kept unchecked
  // because no TSA is configured now.
  uint64_t timestamps = 0;
  uint64_t timestamps_unchecked = 0;
  int64_t newest_timestamp_ns = 0;  // genTime of the newest token checked
  uint64_t newest_timestamp_length = 0;
};

class ChainSealer {
 public:
  // Loads the key from `key_file` (PEM, PKCS#8), or creates it (mode 0600)
  // when the file does not exist.
  // With a `tsa`, every seal made by this process is also time-stamped
  // (RFC 3161) by the sealing thread; failures are logged and retried.
  static absl::StatusOr<std::unique_ptr<ChainSealer>> Create(
      storage::Store* store, const std::filesystem::path& key_file, int64_t interval_s,
      std::unique_ptr<TimestampClient> tsa = nullptr);
  ~ChainSealer();  // Stop()
  ChainSealer(const ChainSealer&) = delete;
  ChainSealer& operator=(const ChainSealer&) = delete;

  // Starts the background thread (seals every interval_s seconds).
  void Start();
  // Stops the thread and seals one last time.
  void Stop();

  // Seals the current head unless it is empty or sealed already.
  absl::Status SealNow();
  // Re-reads the newest seal from the store (after an online restore replaced it), so the
  // restored head is sealed even if its length equals the last one sealed before.
  absl::Status Reload();

  // Time-stamps the seals this process made that have no token yet (oldest
  // first); the first failure is returned and the rest wait for the next try.
  // Never called on the ingest path.
  absl::Status StampPending();

  // Checks every stored seal's signature with this server's key, and every
  // time-stamp token against the configured TSA (imprint and signature).
  absl::StatusOr<SealReport> CheckSeals() const;

  // What a seal's time-stamp covers: SHA-256 over the signed message and the signature.
  static std::string TimestampImprint(const storage::ChainSeal& seal);

  // Lowercase hex SHA-256 of the raw 32-byte public key.
  const std::string& key_id() const { return key_id_; }

  // The bytes a seal's signature covers.
  static std::string SignedMessage(uint64_t length, const std::string& hash, int64_t time_ns);

  struct Key;  // the OpenSSL key, in chain_sealer.cc

 private:
  ChainSealer(storage::Store* store, std::unique_ptr<Key> key, int64_t interval_s);
  void Run();

  std::unique_ptr<TimestampClient> tsa_;  // null: no time-stamping
  int64_t started_ns_ = 0;                // seals from before this start are not stamped
  std::mutex stamp_mu_;

  storage::Store* store_;
  std::unique_ptr<Key> key_;
  std::string key_id_;
  int64_t interval_s_;
  std::mutex seal_mu_;  // one seal at a time
  uint64_t last_sealed_length_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace siper::server

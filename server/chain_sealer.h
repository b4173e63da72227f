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

namespace siper::server {

struct SealReport {
  uint64_t seals = 0;  // seals checked
  bool ok = true;
  uint64_t bad_length = 0;  // the first seal that failed, when !ok
  std::string message;
};

class ChainSealer {
 public:
  // Loads the key from `key_file` (PEM, PKCS#8), or creates it (mode 0600)
  // when the file does not exist.
  static absl::StatusOr<std::unique_ptr<ChainSealer>> Create(storage::Store* store,
                                                             const std::filesystem::path& key_file,
                                                             int64_t interval_s);
  ~ChainSealer();  // Stop()
  ChainSealer(const ChainSealer&) = delete;
  ChainSealer& operator=(const ChainSealer&) = delete;

  // Starts the background thread (seals every interval_s seconds).
  void Start();
  // Stops the thread and seals one last time.
  void Stop();

  // Seals the current head unless it is empty or sealed already.
  absl::Status SealNow();

  // Checks every stored seal's signature with this server's key.
  absl::StatusOr<SealReport> CheckSeals() const;

  // Lowercase hex SHA-256 of the raw 32-byte public key.
  const std::string& key_id() const { return key_id_; }

  // The bytes a seal's signature covers.
  static std::string SignedMessage(uint64_t length, const std::string& hash, int64_t time_ns);

  struct Key;  // the OpenSSL key, in chain_sealer.cc

 private:
  ChainSealer(storage::Store* store, std::unique_ptr<Key> key, int64_t interval_s);
  void Run();

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

// SHA-256 hash chain over committed write batches (private to server/storage).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "siper/v1/storage.pb.h"

struct evp_md_ctx_st;

namespace siper::storage {

inline constexpr size_t kHashSize = 32;

// Streaming SHA-256 on OpenSSL's EVP interface. Every field is fed with a
// fixed width or a length prefix, so two different field lists never hash the
// same byte stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Starts a new digest, so one object can hash many small items.
  void Reset();
  void Bytes(std::string_view data);  // length-prefixed
  void Uint64(uint64_t v);
  void Int64(int64_t v);
  // The 32-byte digest; an error only if OpenSSL failed (out of memory).
  absl::StatusOr<std::string> Finish();
  // The digest's first n (<= 32) bytes into out, without a string (item tags).
  absl::Status FinishTo(char* out, size_t n);

 private:
  void Raw(std::string_view data);
  evp_md_ctx_st* ctx_;
  bool ok_;
};

// Bytes of the per-item tag: the start of SHA-256(key, value) of each event
// and alert, kept in the segment so verify can name the exact record that
// changed. The segment digest, over the full values, is what proves integrity.
inline constexpr size_t kItemTagSize = 8;

// The hash of a chain record: over its index, time, prev_hash, every segment
// (agent, key lists, digest, ranges) and the retention mark; not over `hash`.
absl::StatusOr<std::string> ChainRecordHash(const siper::v1::ChainRecord& record);

}  // namespace siper::storage

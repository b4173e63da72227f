#include "server/storage/chain.h"

#include <openssl/evp.h>

#include <cstring>

#include "absl/status/status.h"
#include "common/key_codec.h"
#include "common/status.h"

namespace siper::storage {

namespace {
// SHA-256 fetched from OpenSSL's provider once per process: EVP_sha256() makes every
// EVP_DigestInit_ex look the algorithm up again (OpenSSL 3's implicit fetch), which cost
// more than hashing a small item (docs/performance.md, fifth round). Never freed.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()), ok_(ctx_ != nullptr) {
  if (ok_) ok_ = EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) == 1;
}

void Sha256::Reset() { ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) == 1; }

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Raw(std::string_view data) {
  if (ok_ && !data.empty()) ok_ = EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1;
}

void Sha256::Bytes(std::string_view data) {
  Uint64(data.size());
  Raw(data);
}

void Sha256::Uint64(uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));  // big-endian
  Raw(std::string_view(b, sizeof b));
}

void Sha256::Int64(int64_t v) {
  std::string b;
  keycodec::AppendInt64(&b, v);
  Raw(b);
}

absl::StatusOr<std::string> Sha256::Finish() {
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned int n = 0;
  if (ok_) ok_ = EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &n) == 1;
  if (!ok_ || n != kHashSize) return absl::InternalError("storage: SHA-256 failed in OpenSSL");
  out.resize(n);
  return out;
}

absl::Status Sha256::FinishTo(char* out, size_t n) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (ok_) ok_ = EVP_DigestFinal_ex(ctx_, digest, &size) == 1;
  if (!ok_ || size != kHashSize || n > kHashSize) {
    return absl::InternalError("storage: SHA-256 failed in OpenSSL");
  }
  std::memcpy(out, digest, n);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ChainRecordHash(const siper::v1::ChainRecord& r) {
  Sha256 h;
  h.Bytes("siper.chain.v1");
  h.Uint64(r.index());
  h.Int64(r.time_ns());
  h.Bytes(r.prev_hash());
  h.Uint64(static_cast<uint64_t>(r.segments_size()));
  for (const siper::v1::ChainSegment& s : r.segments()) {
    h.Bytes(s.agent_id());
    h.Bytes(s.event_keys());
    h.Bytes(s.alert_keys());
    h.Bytes(s.digest());
    h.Bytes(s.item_tags());
    h.Int64(s.min_time_ns());
    h.Int64(s.max_time_ns());
    h.Uint64(s.first_seq());
    h.Uint64(s.last_seq());
  }
  h.Uint64(r.has_retention() ? 1 : 0);
  if (r.has_retention()) {
    const siper::v1::RetentionMark& m = r.retention();
    h.Int64(m.events_cutoff_ns());
    h.Int64(m.alerts_cutoff_ns());
    h.Uint64(m.has_anchor() ? 1 : 0);
    h.Uint64(m.anchor_index());
    h.Bytes(m.anchor_hash());
  }
  return h.Finish();
}

}  // namespace siper::storage

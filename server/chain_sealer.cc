#include "server/chain_sealer.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::server {

struct ChainSealer::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

std::string BigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

absl::StatusOr<std::string> RawPublicKey(EVP_PKEY* pkey) {
  size_t len = 0;
  if (EVP_PKEY_get_raw_public_key(pkey, nullptr, &len) != 1)
    return absl::InternalError("cannot read the chain key's public key");
  std::string raw(len, '\0');
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1)
    return absl::InternalError("cannot read the chain key's public key");
  raw.resize(len);
  return raw;
}

absl::StatusOr<std::unique_ptr<ChainSealer::Key>> LoadOrCreateKey(
    const std::filesystem::path& file) {
  auto key = std::make_unique<ChainSealer::Key>();
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    absl::StatusOr<std::string> pem = ReadFile(file);
    if (!pem.ok()) return pem.status();
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    key->pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key->pkey == nullptr || EVP_PKEY_get_id(key->pkey) != EVP_PKEY_ED25519) {
      return absl::DataLossError(
          absl::StrCat(file.string(),
                       " is not an Ed25519 private key in PEM; restore it from a backup (seals "
                       "made with it cannot be checked without it)"));
    }
    return key;
  }
  key->pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key->pkey == nullptr) return absl::InternalError("cannot generate an Ed25519 key");
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(bio, key->pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    return absl::InternalError("cannot encode the chain key");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  if (absl::Status st = WriteFileAtomic(file, pem, 0600); !st.ok()) return st;
  spdlog::info("created the chain signing key {}", file.string());
  return key;
}

}  // namespace

std::string ChainSealer::SignedMessage(uint64_t length, const std::string& hash, int64_t time_ns) {
  return absl::StrCat("siper-chain-seal-v1\n", BigEndian64(length),
                      BigEndian64(static_cast<uint64_t>(time_ns)), hash);
}

absl::StatusOr<std::unique_ptr<ChainSealer>> ChainSealer::Create(
    storage::Store* store, const std::filesystem::path& key_file, int64_t interval_s,
    std::unique_ptr<TimestampClient> tsa) {
  absl::StatusOr<std::unique_ptr<Key>> key = LoadOrCreateKey(key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> pub = RawPublicKey((*key)->pkey);
  if (!pub.ok()) return pub.status();
  std::unique_ptr<ChainSealer> sealer(
      new ChainSealer(store, std::move(*key), interval_s > 0 ? interval_s : 60));
  sealer->key_id_ = Sha256Hex(*pub);
  sealer->tsa_ = std::move(tsa);
  sealer->started_ns_ = absl::ToUnixNanos(absl::Now());
  // Resume after the newest seal, so a restart does not seal the same head twice.
  absl::Status st = store->ListChainSeals([&](const storage::ChainSeal& s) {
    sealer->last_sealed_length_ = std::max(sealer->last_sealed_length_, s.length);
    return true;
  });
  if (!st.ok()) return st;
  return sealer;
}

ChainSealer::ChainSealer(storage::Store* store, std::unique_ptr<Key> key, int64_t interval_s)
    : store_(store), key_(std::move(key)), interval_s_(interval_s) {}

ChainSealer::~ChainSealer() { Stop(); }

void ChainSealer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ChainSealer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (absl::Status st = SealNow(); !st.ok())
    spdlog::error("cannot seal the chain at shutdown: {}", std::string(st.message()));
}

void ChainSealer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  bool stamp_failed = false;
  while (!stopping_) {
    // A failed time-stamp is retried sooner than the next seal.
    const int64_t wait_s = stamp_failed ? std::min<int64_t>(interval_s_, 30) : interval_s_;
    cv_.wait_for(lock, std::chrono::seconds(wait_s), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (absl::Status st = SealNow(); !st.ok())
      spdlog::error("cannot seal the chain: {}", std::string(st.message()));
    if (tsa_ != nullptr) {
      absl::Status st = StampPending();
      stamp_failed = !st.ok();
      if (stamp_failed)
        spdlog::warn("cannot time-stamp the chain seal (will retry): {}",
                     std::string(st.message()));
    }
    lock.lock();
  }
}

std::string ChainSealer::TimestampImprint(const storage::ChainSeal& seal) {
  const std::string data =
      absl::StrCat(SignedMessage(seal.length, seal.hash, seal.time_ns), seal.signature);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

absl::Status ChainSealer::StampPending() {
  if (tsa_ == nullptr) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(stamp_mu_);
  std::vector<storage::ChainSeal> pending;
  absl::Status st = store_->ListChainSeals([&](const storage::ChainSeal& seal) {
    if (seal.timestamp_token.empty() && seal.key_id == key_id_ && seal.time_ns >= started_ns_)
      pending.push_back(seal);
    return true;
  });
  if (!st.ok()) return st;
  for (storage::ChainSeal& seal : pending) {
    absl::StatusOr<std::string> token = tsa_->Stamp(TimestampImprint(seal));
    if (!token.ok()) return token.status();
    seal.timestamp_token = *std::move(token);
    if (absl::Status put = store_->PutChainSeal(seal); !put.ok()) return put;
    spdlog::info("time-stamped the chain seal of length {} ({})", seal.length, tsa_->options().url);
  }
  return absl::OkStatus();
}

absl::Status ChainSealer::Reload() {
  std::lock_guard<std::mutex> lock(seal_mu_);
  uint64_t newest = 0;
  SIPER_RETURN_IF_ERROR(store_->ListChainSeals([&](const storage::ChainSeal& s) {
    newest = std::max(newest, s.length);
    return true;
  }));
  last_sealed_length_ = newest;
  return absl::OkStatus();
}

absl::Status ChainSealer::SealNow() {
  std::lock_guard<std::mutex> lock(seal_mu_);
  absl::StatusOr<storage::ChainHead> head = store_->GetChainHead();
  if (!head.ok()) return head.status();
  if (head->length == 0 || head->length == last_sealed_length_) return absl::OkStatus();
  storage::ChainSeal seal;
  seal.length = head->length;
  seal.hash = head->hash;
  seal.time_ns = absl::ToUnixNanos(absl::Now());
  seal.key_id = key_id_;
  std::string message = SignedMessage(seal.length, seal.hash, seal.time_ns);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t sig_len = 0;
  bool ok =
      ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_->pkey) == 1 &&
      EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) == 1;
  if (ok) {
    seal.signature.resize(sig_len);
    ok =
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(seal.signature.data()), &sig_len,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    seal.signature.resize(sig_len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::InternalError("Ed25519 signing of the chain head failed");
  if (absl::Status st = store_->PutChainSeal(seal); !st.ok()) return st;
  last_sealed_length_ = seal.length;
  spdlog::debug("sealed the chain at length {}", seal.length);
  return absl::OkStatus();
}

absl::StatusOr<SealReport> ChainSealer::CheckSeals() const {
  SealReport report;
  absl::Status st = store_->ListChainSeals([&](const storage::ChainSeal& seal) {
    ++report.seals;
    std::string problem;
    if (seal.key_id != key_id_) {
      problem = absl::StrCat("was signed by an unknown key ", seal.key_id);
    } else {
      std::string message = SignedMessage(seal.length, seal.hash, seal.time_ns);
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      bool valid =
          ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key_->pkey) == 1 &&
          EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(seal.signature.data()),
                           seal.signature.size(),
                           reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()) == 1;
      EVP_MD_CTX_free(ctx);
      if (!valid) problem = "has a signature that does not match its length, hash and time";
    }
    if (!problem.empty()) {
      report.ok = false;
      report.bad_length = seal.length;
      report.problem = "bad seal";
      report.message = absl::StrCat("the seal of chain length ", seal.length, " ", problem);
      return false;
    }
    if (seal.timestamp_token.empty()) return true;
    if (tsa_ == nullptr) {
      ++report.timestamps_unchecked;
      return true;
    }
    absl::StatusOr<TimestampInfo> info = tsa_->Check(seal.timestamp_token, TimestampImprint(seal));
    if (!info.ok()) {
      report.ok = false;
      report.bad_length = seal.length;
      report.problem = "bad timestamp";
      report.message = absl::StrCat("the RFC 3161 time-stamp of the seal of chain length ",
                                    seal.length, ": ", info.status().message());
      return false;
    }
    ++report.timestamps;
    report.newest_timestamp_ns = absl::ToUnixNanos(info->gen_time);
    report.newest_timestamp_length = seal.length;
    return true;
  });
  if (!st.ok()) return st;
  return report;
}

}  // namespace siper::server

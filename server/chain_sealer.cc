#include "server/chain_sealer.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/files.h"

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
    storage::Store* store, const std::filesystem::path& key_file, int64_t interval_s) {
  absl::StatusOr<std::unique_ptr<Key>> key = LoadOrCreateKey(key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> pub = RawPublicKey((*key)->pkey);
  if (!pub.ok()) return pub.status();
  std::unique_ptr<ChainSealer> sealer(
      new ChainSealer(store, std::move(*key), interval_s > 0 ? interval_s : 60));
  sealer->key_id_ = Sha256Hex(*pub);
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
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(interval_s_), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (absl::Status st = SealNow(); !st.ok())
      spdlog::error("cannot seal the chain: {}", std::string(st.message()));
    lock.lock();
  }
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
      report.message = absl::StrCat("the seal of chain length ", seal.length, " ", problem);
      return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  return report;
}

}  // namespace siper::server

#include "server/incidents/hash.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace siper::incidents::internal {
namespace {

// Digest failures mean a broken OpenSSL installation: there is no sensible way to go on.
void Digest(const EVP_MD* md, std::string_view data, unsigned char* out) {
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) {
    (void)std::fputs("siper_incidents: OpenSSL EVP_Digest failed\n", stderr);
    std::abort();
  }
}

// Fetched from OpenSSL's provider once per process: EVP_sha256() makes every EVP_Digest
// look the algorithm up again (OpenSSL 3's implicit fetch), which costs more than hashing
// a small audit record (as storage's chain.cc). Never freed.
const EVP_MD* Fetched(const char* name, const EVP_MD* fallback) {
  const EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  return md != nullptr ? md : fallback;
}

const EVP_MD* Sha256Md() {
  static const EVP_MD* md = Fetched("SHA256", EVP_sha256());
  return md;
}

const EVP_MD* Sha1Md() {
  static const EVP_MD* md = Fetched("SHA1", EVP_sha1());
  return md;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, 32> out{};
  Digest(Sha256Md(), data, out.data());
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string hex;
  hex.reserve(64);
  for (unsigned char b : out) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex;
}

std::array<unsigned char, 20> Sha1(std::string_view data) {
  std::array<unsigned char, 20> out{};
  Digest(Sha1Md(), data, out.data());
  return out;
}

}  // namespace siper::incidents::internal

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

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, 32> out{};
  Digest(EVP_sha256(), data, out.data());
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
  Digest(EVP_sha1(), data, out.data());
  return out;
}

}  // namespace siper::incidents::internal

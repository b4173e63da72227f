#include "common/crypto.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"

namespace siper {
namespace {

std::vector<unsigned char> RandomBytes(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  // A failing CSPRNG leaves no safe way to continue.
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) std::abort();
  return buf;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) std::abort();
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(len)));
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> buf = RandomBytes(bytes);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

std::string RandomToken(size_t bytes) {
  std::vector<unsigned char> buf = RandomBytes(bytes);
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

}  // namespace siper

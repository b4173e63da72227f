// Hashes and random values (OpenSSL EVP and RAND).
#pragma once

#include <string>
#include <string_view>

namespace siper {

// SHA-256 of `data` as lowercase hex.
[[nodiscard]] std::string Sha256Hex(std::string_view data);

// `bytes` random bytes from the OpenSSL CSPRNG, as lowercase hex.
[[nodiscard]] std::string RandomHex(size_t bytes);

// A random URL-safe token carrying `bytes` bytes of entropy (base64url, no padding).
[[nodiscard]] std::string RandomToken(size_t bytes = 24);

}  // namespace siper

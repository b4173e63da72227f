// Digests used by the incident library (OpenSSL EVP). Internal to server/incidents.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace siper::incidents::internal {

std::string Sha256Hex(std::string_view data);
std::array<unsigned char, 20> Sha1(std::string_view data);

}  // namespace siper::incidents::internal

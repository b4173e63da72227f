// A 128-bit content hash for cache file names and checksums: two independent
// 64-bit hashes (FNV-1a and a multiply-rotate). Not cryptographic: it tells a
// changed rule set or feed from an unchanged one and catches a damaged file;
// Hyperscan checks what it deserializes again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace siper::rules::internal {

struct Hash128 {
  uint64_t a = 0xcbf29ce484222325ULL;
  uint64_t b = 0x9e3779b97f4a7c15ULL;
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      a = (a ^ p[i]) * 0x100000001b3ULL;
      b = (b ^ p[i]) * 0xff51afd7ed558ccdULL;
      b = (b << 29) | (b >> 35);
    }
  }
  // Length-prefixed, so two different lists never hash the same byte stream.
  void Add(std::string_view s) {
    const uint64_t n = s.size();
    Add(&n, sizeof n);
    Add(s.data(), s.size());
  }
};

}  // namespace siper::rules::internal

// A 128-bit content hash for cache file names and checksums: two independent
// 64-bit multiply-rotate lanes over the bytes taken eight at a time, with the
// total length and a final avalanche mixed in. Not cryptographic: it tells a
// changed rule set or feed from an unchanged one and catches a damaged file;
// Hyperscan checks what it deserializes again.
//
// The digest depends only on the byte stream, not on how Add() splits it.
// About one instruction a byte (the byte-wise FNV pair it replaced took ten,
// ≈0.2G instructions to check the full SigmaHQ set's cache at a cached start).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace siper::rules::internal {

class Hash128 {
 public:
  struct Digest {
    uint64_t a = 0;
    uint64_t b = 0;
    bool operator==(const Digest&) const = default;
  };

  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (pending_bytes_ > 0) {
      while (pending_bytes_ < 8 && n > 0) {
        pending_ |= uint64_t{*p++} << (8 * pending_bytes_++);
        --n;
      }
      if (pending_bytes_ < 8) return;
      Word(pending_);
      pending_ = 0;
      pending_bytes_ = 0;
    }
    for (; n >= 16; p += 16, n -= 16) {
      Word(Load(p));
      Word(Load(p + 8));
    }
    if (n >= 8) {
      Word(Load(p));
      p += 8;
      n -= 8;
    }
    while (n > 0) {
      pending_ |= uint64_t{*p++} << (8 * pending_bytes_++);
      --n;
    }
  }
  // Length-prefixed, so two different lists never hash the same byte stream.
  void Add(std::string_view s) {
    const uint64_t n = s.size();
    Add(&n, sizeof n);
    Add(s.data(), s.size());
  }

  // The hash of everything added so far (Add may continue afterwards).
  Digest Finish() const {
    uint64_t a = a_;
    uint64_t b = b_;
    if (pending_bytes_ > 0) {  // the last partial word, zero-padded; the length tells it apart
      a = std::rotl((a ^ pending_) * kMulA, 31);
      b = std::rotl((b ^ pending_) * kMulB, 29);
    }
    return {Mix(a ^ total_), Mix(b ^ std::rotl(total_ * kMulA, 32))};
  }

 private:
  static constexpr uint64_t kMulA = 0x9fb21c651e98df25ULL;
  static constexpr uint64_t kMulB = 0xff51afd7ed558ccdULL;

  static uint64_t Load(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    return w;  // little-endian, as the byte-at-a-time path builds it
  }
  void Word(uint64_t w) {
    a_ = std::rotl((a_ ^ w) * kMulA, 31);
    b_ = std::rotl((b_ ^ w) * kMulB, 29);
  }
  // MurmurHash3's 64-bit finalizer: every input bit reaches every output bit.
  static uint64_t Mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
  }

  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x9e3779b97f4a7c15ULL;
  uint64_t total_ = 0;    // bytes added
  uint64_t pending_ = 0;  // the last pending_bytes_ (< 8) bytes, little-endian
  unsigned pending_bytes_ = 0;
};

}  // namespace siper::rules::internal

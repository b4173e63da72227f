// Fixed-width big-endian key encoding for ordered key-value stores.
//
// Every integer is written most significant byte first, so comparing two
// encoded keys byte by byte (memcmp, RocksDB's default comparator) gives the
// same order as comparing the integers. Signed integers have their sign bit
// flipped first, so negative values sort before positive ones. Header-only on
// purpose: the agent spool, the server's storage and tests share it without a
// library dependency.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace siper::keycodec {

inline constexpr uint64_t kInt64SignBit = uint64_t{1} << 63;

inline void AppendUint32(std::string* out, uint32_t v) {
  char buf[4];
  for (int i = 3; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(buf, sizeof(buf));
}

inline void AppendUint64(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(buf, sizeof(buf));
}

// Signed values: flipping the sign bit maps INT64_MIN..INT64_MAX onto
// 0..UINT64_MAX in order.
inline void AppendInt64(std::string* out, int64_t v) {
  AppendUint64(out, static_cast<uint64_t>(v) ^ kInt64SignBit);
}

// A byte string preceded by its 32-bit length. Keys that share such a field
// and everything before it share a prefix; no other string can extend it.
inline void AppendLengthPrefixed(std::string* out, std::string_view s) {
  AppendUint32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Decoders take exactly the bytes of one field. Callers check sizes first
// (KeyReader does).
inline uint32_t DecodeUint32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline uint64_t DecodeUint64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline int64_t DecodeInt64(const char* p) {
  return static_cast<int64_t>(DecodeUint64(p) ^ kInt64SignBit);
}

// Reads fields from the front of a key, with bounds checks: a short or
// malformed key makes the reader fail instead of reading past its end.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : rest_(key) {}

  [[nodiscard]] bool ReadUint32(uint32_t* v) {
    if (rest_.size() < 4) return false;
    *v = DecodeUint32(rest_.data());
    rest_.remove_prefix(4);
    return true;
  }
  [[nodiscard]] bool ReadUint64(uint64_t* v) {
    if (rest_.size() < 8) return false;
    *v = DecodeUint64(rest_.data());
    rest_.remove_prefix(8);
    return true;
  }
  [[nodiscard]] bool ReadInt64(int64_t* v) {
    if (rest_.size() < 8) return false;
    *v = DecodeInt64(rest_.data());
    rest_.remove_prefix(8);
    return true;
  }
  [[nodiscard]] bool ReadLengthPrefixed(std::string_view* s) {
    uint32_t n = 0;
    if (rest_.size() < 4) return false;
    n = DecodeUint32(rest_.data());
    if (rest_.size() - 4 < n) return false;
    *s = rest_.substr(4, n);
    rest_.remove_prefix(4 + static_cast<size_t>(n));
    return true;
  }
  [[nodiscard]] bool Skip(size_t n) {
    if (rest_.size() < n) return false;
    rest_.remove_prefix(n);
    return true;
  }

  std::string_view rest() const { return rest_; }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// The smallest key that is greater than every key starting with `prefix`,
// for use as an exclusive upper bound. nullopt when no such key exists
// (the prefix is empty or all 0xff bytes): the scan is then unbounded above.
inline std::optional<std::string> PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto last = static_cast<unsigned char>(s.back());
    if (last != 0xff) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return std::nullopt;
}

// Lowercase hex, for showing keys in messages and for ids derived from keys.
inline std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0x0f]);
  }
  return out;
}

// Inverse of ToHex; nullopt on odd length or a non-hex digit.
inline std::optional<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

}  // namespace siper::keycodec

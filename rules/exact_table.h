// Whole-value literal lookup for the matcher: Sigma's plain `field: value`
// patterns (`^literal\z`) answered by one hash probe of the event's value
// instead of a Hyperscan scan. A flat open-addressing table (keys in one
// buffer, atoms in one array) with a hash taken eight bytes at a time; for the
// caseless table the value is ASCII-lower-cased inside the hash (eight bytes
// at a time, no copy), and compared caselessly on a hash hit. The std::
// unordered_map with a byte-wise FNV it replaced, plus a lower-cased copy of
// each value, cost ≈30 instructions a byte of every looked-up value.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace siper::rules {

class ExactTable {
 public:
  // caseless: keys and looked-up values compare ASCII-case-insensitively.
  explicit ExactTable(bool caseless = false) : caseless_(caseless) {}

  // Building: adds `atom` to the atoms of `key` (kept in the order added).
  // Build() must follow the last Add() and precede any Find().
  void Add(std::string_view key, uint32_t atom) { pending_.emplace_back(std::string(key), atom); }
  void Build();

  // Adds every key of the built table `other` with its atoms (to merge tables).
  void AddAll(const ExactTable& other) {
    for (const Entry& e : other.entries_) {
      const std::string_view key(other.keys_.data() + e.key_begin, e.key_size);
      for (uint32_t i = 0; i < e.atoms_size; ++i) Add(key, other.atoms_[e.atoms_begin + i]);
    }
  }

  bool caseless() const { return caseless_; }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }  // distinct keys
  size_t max_key_size() const { return max_key_size_; }

  // The atoms of the key equal to `value` (caselessly for a caseless table);
  // empty when none.
  [[gnu::always_inline]] std::span<const uint32_t> Find(std::string_view value) const {
    // Most values looked up have no key of their length: no hash then.
    if (((length_mask_ >> std::min<size_t>(value.size(), 63)) & 1) == 0) return {};
    const uint64_t h = caseless_ ? Hash<true>(value) : Hash<false>(value);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t s = slots_[i];
      if (s == 0) return {};
      const Entry& e = entries_[s - 1];
      if (e.hash == h && e.key_size == value.size() && KeyEquals(e, value)) {
        return {atoms_.data() + e.atoms_begin, e.atoms_size};
      }
    }
  }

  // ASCII upper case to lower case in each of eight bytes (other bytes,
  // including non-ASCII, unchanged).
  static uint64_t LowerWord(uint64_t w) {
    constexpr uint64_t kHigh = 0x8080808080808080ULL;
    const uint64_t low7 = w & ~kHigh;
    const uint64_t ge_a = low7 + 0x3f3f3f3f3f3f3f3fULL;  // high bit: byte >= 'A'
    const uint64_t gt_z = low7 + 0x2525252525252525ULL;  // high bit: byte > 'Z'
    const uint64_t upper = (ge_a ^ gt_z) & ~w & kHigh;
    return w | (upper >> 2);
  }

  // The hash of `s` (of its lower-cased form when kLower): eight bytes a step,
  // the tail by overlapping loads, never reading outside `s`.
  template <bool kLower>
  static uint64_t Hash(std::string_view s) {
    constexpr uint64_t kMul = 0x9fb21c651e98df25ULL;
    const char* p = s.data();
    size_t n = s.size();
    uint64_t h = 0x452821e638d01377ULL ^ (n * kMul);
    auto mix = [&](uint64_t w) {
      if constexpr (kLower) w = LowerWord(w);
      h = (h ^ w) * kMul;
      h ^= h >> 28;
    };
    if (n >= 8) {
      for (; n > 8; p += 8, n -= 8) mix(Load8(p));
      mix(Load8(p + n - 8));  // the last eight bytes (overlapping the previous word)
    } else if (n >= 4) {
      uint32_t lo, hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + n - 4, 4);
      mix((uint64_t{hi} << 32) | lo);
    } else if (n > 0) {
      mix(static_cast<unsigned char>(p[0]) | (uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
          (uint64_t{static_cast<unsigned char>(p[n - 1])} << 16));
    }
    h ^= h >> 32;
    h *= kMul;
    return h ^ (h >> 29);
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint32_t key_begin = 0;  // in keys_
    uint32_t key_size = 0;
    uint32_t atoms_begin = 0;  // in atoms_
    uint32_t atoms_size = 0;
  };
  static uint64_t Load8(const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  // The first and the last four of n (4 to 8) bytes at p, as one word.
  static uint64_t Load4Pair(const char* p, size_t n) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return (uint64_t{hi} << 32) | lo;
  }
  bool KeyEquals(const Entry& e, std::string_view v) const {
    const char* k = keys_.data() + e.key_begin;
    if (!caseless_) return std::memcmp(k, v.data(), v.size()) == 0;
    // Eight bytes at a time, the value lower-cased as in Hash<true> (the byte
    // loop was ≈10 instructions a byte on every hit of a caseless table).
    const char* p = v.data();
    size_t n = v.size();
    if (n >= 8) {
      for (; n > 8; p += 8, k += 8, n -= 8) {
        if (LowerWord(Load8(p)) != Load8(k)) return false;
      }
      return LowerWord(Load8(p + n - 8)) == Load8(k + n - 8);  // the last eight, overlapping
    }
    if (n >= 4) return LowerWord(Load4Pair(p, n)) == Load4Pair(k, n);
    for (size_t i = 0; i < n; ++i) {
      const char c = p[i];
      if (k[i] != ((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c)) return false;
    }
    return true;
  }

  bool caseless_;
  std::vector<std::pair<std::string, uint32_t>> pending_;  // Add()ed, until Build()
  std::vector<Entry> entries_;
  std::vector<uint32_t> slots_;  // entry index + 1; 0 empty; a power of two, at most half full
  std::string keys_;             // every key (lower-cased when caseless), back to back
  std::vector<uint32_t> atoms_;
  size_t max_key_size_ = 0;
  uint64_t length_mask_ = 0;  // bit min(n, 63) set when some key has n bytes
};

inline void ExactTable::Build() {
  // Keys in sorted order, atoms of a key in the order added: deterministic.
  if (caseless_) {
    for (auto& [k, atom] : pending_) {
      for (char& c : k) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    }
  }
  std::stable_sort(pending_.begin(), pending_.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  for (size_t i = 0; i < pending_.size();) {
    Entry e;
    const std::string& key = pending_[i].first;
    e.hash = caseless_ ? Hash<true>(key) : Hash<false>(key);
    e.key_begin = static_cast<uint32_t>(keys_.size());
    e.key_size = static_cast<uint32_t>(key.size());
    e.atoms_begin = static_cast<uint32_t>(atoms_.size());
    keys_ += key;
    max_key_size_ = std::max(max_key_size_, key.size());
    length_mask_ |= uint64_t{1} << std::min<size_t>(key.size(), 63);
    for (; i < pending_.size() && pending_[i].first == key; ++i) {
      if (std::find(atoms_.begin() + e.atoms_begin, atoms_.end(), pending_[i].second) ==
          atoms_.end()) {
        atoms_.push_back(pending_[i].second);
      }
    }
    e.atoms_size = static_cast<uint32_t>(atoms_.size() - e.atoms_begin);
    entries_.push_back(e);
  }
  pending_.clear();
  pending_.shrink_to_fit();
  size_t slots = 16;
  while (slots < entries_.size() * 2) slots *= 2;
  slots_.assign(slots, 0);
  for (size_t e = 0; e < entries_.size(); ++e) {
    size_t i = entries_[e].hash & (slots - 1);
    while (slots_[i] != 0) i = (i + 1) & (slots - 1);
    slots_[i] = static_cast<uint32_t>(e + 1);
  }
}

}  // namespace siper::rules

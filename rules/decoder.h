// Decoders: raw log lines into ECS-named fields plus the Sigma log source
// attributes (product, service, category) used to route rules.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rules/engine.h"

namespace siper::rules {

// Decoded fields of one event: a flat list that keeps its string buffers
// across Clear(), so decoding a steady stream allocates next to nothing.
// An open-addressing table of key hashes (indexes into the list, at most half
// full) finds a key in about one probe; the matcher asks for every field a rule
// group looks at and decoders set ~20 fields a line, so a scan of the list per
// lookup was a visible share of the work.
class EventFields {
 public:
  using value_type = std::pair<std::string, std::string>;
  using const_iterator = const value_type*;

  const_iterator begin() const { return entries_.data(); }
  const_iterator end() const { return entries_.data() + size_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator find(std::string_view key) const { return find(key, Hash(key)); }
  // With `hash` == Hash(key), computed once by a caller that asks often.
  const_iterator find(std::string_view key, uint64_t hash) const {
    const size_t i = Slot(key, hash);
    return slots_[i] == 0 ? end() : &entries_[slots_[i] - 1];
  }
  size_t count(std::string_view key) const { return find(key) == end() ? 0 : 1; }
  const std::string& at(std::string_view key) const;

  void insert_or_assign(std::string_view key, std::string_view value) {
    const uint64_t h = Hash(key);
    const size_t i = Slot(key, h);
    if (slots_[i] != 0) {
      entries_[slots_[i] - 1].second.assign(value);
      return;
    }
    Append(i, h, key, value);
  }
  // Adds the field only when absent; returns whether it was added.
  bool try_emplace(std::string_view key, std::string_view value) {
    const uint64_t h = Hash(key);
    const size_t i = Slot(key, h);
    if (slots_[i] != 0) return false;
    Append(i, h, key, value);
    return true;
  }
  void erase(std::string_view key);
  // Removes every field whose name starts with `prefix` (non-empty); returns how many.
  size_t erase_prefix(std::string_view prefix);
  void clear() {
    if (size_ > 0) std::fill(slots_.begin(), slots_.end(), 0);
    size_ = 0;
    first_bytes_ = 0;
  }
  FieldMap ToMap() const { return FieldMap(begin(), end()); }
  // An immutable copy for the detections of this event (engine.h).
  DetectionFields Snapshot() const {
    return DetectionFields(std::vector<value_type>(begin(), end()));
  }

  static uint64_t Hash(std::string_view key) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ULL;
    return h ^ (h >> 32);
  }

 private:
  static constexpr size_t kMinSlots = 64;
  static uint64_t FirstByteBit(std::string_view key) {
    return key.empty() ? 0 : uint64_t{1} << (static_cast<unsigned char>(key[0]) & 63);
  }
  // The slot holding `key`, or the empty slot where it would go.
  size_t Slot(std::string_view key, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t e = slots_[i];
      if (e == 0 || (hashes_[e - 1] == h && entries_[e - 1].first == key)) return i;
    }
  }
  void Append(size_t slot, uint64_t h, std::string_view key, std::string_view value) {
    first_bytes_ |= FirstByteBit(key);
    if (size_ == entries_.size()) {
      // `key` or `value` may point into a short string stored inline in
      // entries_, which growing the vector moves: copy them first.
      value_type entry{std::string(key), std::string(value)};
      entries_.push_back(std::move(entry));
      hashes_.push_back(h);
    } else {
      entries_[size_].first.assign(key);
      entries_[size_].second.assign(value);
      hashes_[size_] = h;
    }
    ++size_;
    slots_[slot] = static_cast<uint32_t>(size_);
    if (size_ * 2 > slots_.size()) Reindex(slots_.size() * 2);
  }
  // Rebuilds the table for the first size_ entries with `slots` slots (a power of two).
  void Reindex(size_t slots);

  std::vector<value_type> entries_;  // the first size_ are live
  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> slots_ = std::vector<uint32_t>(kMinSlots, 0);  // entry index + 1; 0 empty
  size_t size_ = 0;
  uint64_t first_bytes_ = 0;  // bit (first byte & 63) of every key added since clear()
};

struct Event {
  EventFields fields;
  std::string_view raw;
  // Sigma logsource attributes this event belongs to (an event can have several
  // services, e.g. an sshd line is service sshd, auth and syslog).
  std::vector<std::string> products;
  std::vector<std::string> services;
  std::vector<std::string> categories;
  int64_t time_unix_ns = 0;  // event time; 0 when the line carries none

  void Clear() {
    fields.clear();
    raw = {};
    products.clear();
    services.clear();
    categories.clear();
    time_unix_ns = 0;
  }
};

// Decodes one line. Never fails on text input (unknown lines keep `message`);
// fails on malformed JSON when `format` is kJson.
[[nodiscard]] absl::Status DecodeLine(std::string_view line, std::string_view source,
                                      InputFormat format, Event* event);

// Program-level decoders, exposed for tests. Each adds fields to `event`
// and returns false when the message is not one it knows.
bool DecodeSshd(std::string_view msg, Event* event);
bool DecodeSudo(std::string_view msg, Event* event);
bool DecodeSu(std::string_view msg, Event* event);
bool DecodePam(std::string_view service, std::string_view msg, Event* event);
bool DecodeAccountChange(std::string_view msg, Event* event);
bool DecodeCron(std::string_view msg, Event* event);
bool DecodeFtp(std::string_view msg, Event* event);
bool DecodeWebAccess(std::string_view line, Event* event);
bool DecodeWebError(std::string_view line, Event* event);
bool DecodeSyslog(std::string_view line, Event* event);
bool DecodeJson(std::string_view line, Event* event);

}  // namespace siper::rules

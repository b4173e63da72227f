// Decoders: raw log lines into ECS-named fields plus the Sigma log source
// attributes (product, service, category) used to route rules.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rules/engine.h"

namespace siper::rules {

// Decoded fields of one event: a flat list of (name, value) views into an
// arena owned by the fields. The arena is a list of fixed blocks that never
// move (a view stays valid until clear()), kept across clear(), so decoding a
// steady stream allocates nothing and setting a field is a bump-pointer copy
// of its name and value (it used to be two std::string assignments, each with
// its own capacity checks and, for long values, allocations).
// An open-addressing table of key hashes (indexes into the list, at most half
// full) finds a key in about one probe; the matcher asks for every field a rule
// group looks at and decoders set ~20 fields a line, so a scan of the list per
// lookup was a visible share of the work.
class EventFields {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;
  using const_iterator = const value_type*;

  EventFields() = default;
  // Copies re-point the views into the copy's own arena.
  EventFields(const EventFields& other);
  EventFields& operator=(const EventFields& other);
  // A moved-from object is empty and usable.
  EventFields(EventFields&& other) noexcept { *this = std::move(other); }
  EventFields& operator=(EventFields&& other) noexcept;

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
  // The value of `key`, empty when absent.
  std::string_view at(std::string_view key) const {
    auto it = find(key);
    return it == end() ? std::string_view() : it->second;
  }

  // `key` and `value` may be views of this object's own fields.
  void insert_or_assign(std::string_view key, std::string_view value) {
    Put(key, Hash(key), value, /*copy_key=*/true, /*copy_value=*/true);
  }
  // The same for a name with static storage duration (a string literal) whose
  // hash the caller computed at compile time (`hash` == Hash(key)): the name is
  // neither hashed nor copied into the arena; nor is the value when
  // `static_value` says it has static storage duration too. Snapshot() keeps
  // such names and values as views too, so they must outlive every snapshot.
  void insert_or_assign_static(std::string_view key, uint64_t hash, std::string_view value,
                               bool static_value = false) {
    Put(key, hash, value, /*copy_key=*/false, /*copy_value=*/!static_value);
  }
  // Adds the field only when absent; returns whether it was added.
  bool try_emplace(std::string_view key, std::string_view value) {
    const uint64_t h = Hash(key);
    const size_t i = Slot(key, h);
    if (slots_[i] != 0) return false;
    Append(i, h, key, value, /*copy_key=*/true, /*copy_value=*/true);
    return true;
  }
  void erase(std::string_view key);
  // Removes every field whose name starts with `prefix` (non-empty); returns how many.
  size_t erase_prefix(std::string_view prefix);
  // Removes every field; keeps the arena and the borrowed text (BorrowFrom).
  void clear() {
    if (size_ > 0) {
      // A few fields in a large table: clear their slots only.
      if (size_ * 8 < slots_.size()) {
        ClearSlots();
      } else {
        std::fill(slots_.begin(), slots_.end(), 0);
      }
    }
    size_ = 0;
    first_bytes_ = 0;
    block_ = 0;
    used_ = 0;
  }
  // Names and values that lie inside `text` are kept as views of it instead of
  // being copied (a decoded value is mostly a slice of its line), until the
  // next BorrowFrom; the caller keeps `text` alive and unchanged that long.
  // BorrowFrom({}) turns it off (the default).
  void BorrowFrom(std::string_view text) {
    borrow_begin_ = reinterpret_cast<uintptr_t>(text.data());
    borrow_end_ = borrow_begin_ + text.size();
  }
  // Whether `s` lies inside the text given to BorrowFrom (false when not borrowing).
  bool IsBorrowed(std::string_view s) const {
    const uintptr_t p = reinterpret_cast<uintptr_t>(s.data());
    return p >= borrow_begin_ && p + s.size() <= borrow_end_ && borrow_end_ != 0;
  }
  FieldMap ToMap() const;
  // An immutable copy for the detections of this event (engine.h).
  DetectionFields Snapshot() const;

  // A 64-bit hash of a field name, eight bytes at a time (names are short and
  // hashed on every set and every lookup). constexpr, so that decoders hash
  // their literal names at compile time (insert_or_assign_static).
  static constexpr uint64_t Hash(std::string_view key) {
    constexpr uint64_t kMul = 0x9fb21c651e98df25ULL;
    const char* p = key.data();
    size_t n = key.size();
    uint64_t h = 0x243f6a8885a308d3ULL ^ (n * kMul);
    for (; n >= 8; p += 8, n -= 8) {
      const uint64_t w = Load(p, 8);
      h = (h ^ w) * kMul;
      h ^= h >> 28;
    }
    if (n > 0) {
      uint64_t w = 0;
      if (n >= 4) {
        w = (Load(p + n - 4, 4) << 32) | Load(p, 4);
      } else {
        w = static_cast<unsigned char>(p[0]) |
            (uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
            (uint64_t{static_cast<unsigned char>(p[n - 1])} << 16);
      }
      h = (h ^ w) * kMul;
    }
    h ^= h >> 32;
    h *= kMul;
    return h ^ (h >> 29);
  }

 private:
  // `n` (4 or 8) bytes at `p` as a little-endian number, also in constant evaluation.
  static constexpr uint64_t Load(const char* p, size_t n) {
    if (std::is_constant_evaluated()) {
      uint64_t w = 0;
      for (size_t i = 0; i < n; ++i) w |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
      return w;
    }
    if (n == 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      return w;
    }
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  }
  static constexpr size_t kMinSlots = 64;
  static constexpr size_t kBlockSize = 4096;
  static uint64_t FirstByteBit(std::string_view key) {
    return key.empty() ? 0 : uint64_t{1} << (static_cast<unsigned char>(key[0]) & 63);
  }
  // a == b, without a memcmp call for names up to 16 bytes (nearly all; the
  // matcher looks up ~13 present fields a line): overlapping loads as in Copy().
  static bool SameKey(std::string_view a, std::string_view b) {
    const size_t n = a.size();
    if (n != b.size()) return false;
    const char* x = a.data();
    const char* y = b.data();
    if (n > 16) return std::memcmp(x, y, n) == 0;
    if (n >= 8) return EndsEqual<uint64_t>(x, y, n);
    if (n >= 4) return EndsEqual<uint32_t>(x, y, n);
    return n == 0 || (x[0] == y[0] && x[n / 2] == y[n / 2] && x[n - 1] == y[n - 1]);
  }
  // The first and the last sizeof(Word) bytes of x and y (sizeof(Word) <= n <=
  // 2 * sizeof(Word): together they cover all n bytes).
  template <typename Word>
  static bool EndsEqual(const char* x, const char* y, size_t n) {
    Word x0, x1, y0, y1;
    std::memcpy(&x0, x, sizeof(Word));
    std::memcpy(&y0, y, sizeof(Word));
    std::memcpy(&x1, x + n - sizeof(Word), sizeof(Word));
    std::memcpy(&y1, y + n - sizeof(Word), sizeof(Word));
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
  }
  // The slot holding `key`, or the empty slot where it would go.
  size_t Slot(std::string_view key, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t e = slots_[i];
      if (e == 0 || (hashes_[e - 1] == h && SameKey(entries_[e - 1].first, key))) return i;
    }
  }
  // Copies `s` into the arena and returns the copy (an empty view for "").
  std::string_view Store(std::string_view s) {
    if (s.empty()) return {};
    const uintptr_t p = reinterpret_cast<uintptr_t>(s.data());
    if (p >= borrow_begin_ && p + s.size() <= borrow_end_) return s;
    if (block_ < blocks_.size() && blocks_[block_].size - used_ >= s.size()) {
      char* dst = blocks_[block_].data.get() + used_;
      Copy(dst, s.data(), s.size());
      used_ += s.size();
      return {dst, s.size()};
    }
    return StoreSlow(s);
  }
  std::string_view StoreSlow(std::string_view s);
  // Whether `s` points into blocks_[0..block_] (text Store() copied).
  bool InArena(const char* s) const;
  // memcpy for n > 0, without a call for the short names and values that are
  // nearly all of them (two overlapping loads and stores).
  static void Copy(char* dst, const char* src, size_t n) {
    if (n >= 8) {
      if (n > 16) {
        std::memcpy(dst, src, n);
        return;
      }
      uint64_t a, b;
      std::memcpy(&a, src, 8);
      std::memcpy(&b, src + n - 8, 8);
      std::memcpy(dst, &a, 8);
      std::memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, src, 4);
      std::memcpy(&b, src + n - 4, 4);
      std::memcpy(dst, &a, 4);
      std::memcpy(dst + n - 4, &b, 4);
    } else {
      dst[0] = src[0];
      dst[n / 2] = src[n / 2];
      dst[n - 1] = src[n - 1];
    }
  }
  // Sets `key` (hash `h`): one probe of the table, then either the value of the
  // field found or a new entry. Everything on the common path is inline and
  // without calls (it was ≈80 instructions a field, with two std::vector
  // size checks, a stack-passed entry and a call per field).
  void Put(std::string_view key, uint64_t h, std::string_view value, bool copy_key,
           bool copy_value) {
    const size_t i = Slot(key, h);
    if (slots_[i] != 0) {
      entries_[slots_[i] - 1].second = copy_value ? Store(value) : value;
      return;
    }
    Append(i, h, key, value, copy_key, copy_value);
  }
  void Append(size_t slot, uint64_t h, std::string_view key, std::string_view value, bool copy_key,
              bool copy_value) {
    if (size_ == limit_) [[unlikely]]
      slot = Grow(slot, h, key);
    first_bytes_ |= FirstByteBit(key);
    value_type& e = entries_[size_];
    e.first = copy_key ? Store(key) : key;
    e.second = copy_value ? Store(value) : value;
    hashes_[size_] = h;
    slots_[slot] = static_cast<uint32_t>(++size_);
  }
  // Makes room for one more entry (entries_ and hashes_ longer, or the table
  // twice as large when it would be over half full) and returns the empty slot
  // for `key` in the table as it is now (`slot` when it was not rebuilt).
  size_t Grow(size_t slot, uint64_t h, std::string_view key);
  // Zeroes the slots of the first size_ entries (found by their hashes).
  void ClearSlots();
  // Rebuilds the table for the first size_ entries with `slots` slots (a power of two).
  void Reindex(size_t slots);

  struct Block {
    std::unique_ptr<char[]> data;
    size_t size = 0;
  };
  // entries_ and hashes_ are kept at their full length (their size is the
  // capacity), so an append is two stores, not two push_backs.
  std::vector<value_type> entries_;  // the first size_ are live; views into blocks_
  std::vector<uint64_t> hashes_;     // Hash() of each entry's key
  std::vector<uint32_t> slots_ = std::vector<uint32_t>(kMinSlots, 0);  // entry index + 1; 0 empty
  size_t size_ = 0;
  // Append calls Grow() when size_ reaches this: min(entries_.size(), slots_.size() / 2).
  size_t limit_ = 0;
  uint64_t first_bytes_ = 0;    // bit (first byte & 63) of every key added since clear()
  std::vector<Block> blocks_;   // kept across clear(); a value longer than a block gets its own
  size_t block_ = 0;            // the block being filled
  size_t used_ = 0;             // bytes used in blocks_[block_]
  uintptr_t borrow_begin_ = 0;  // BorrowFrom's text, as addresses; empty: copy everything
  uintptr_t borrow_end_ = 0;
};

// One of an event's Sigma log-source lists (products, services or
// categories): unique names in the order added, iterated as string_views.
// Names from literals (nearly all: "linux", "syslog", "auth" ...) are kept as
// views, not copied; other names (a syslog program name) are copied into
// strings kept across clear(). It was a std::vector<std::string> built per
// line (≈0.4k instructions a line for the four names of a syslog line).
class LogSourceList {
 public:
  // A string literal (static storage, checked at compile time).
  struct Literal {
    template <size_t N>
    consteval Literal(const char (&s)[N]) : text(s, N - 1) {}  // NOLINT: implicit
    std::string_view text;
  };

  LogSourceList() = default;
  // Copies own their names.
  LogSourceList(const LogSourceList& other) { *this = other; }
  LogSourceList& operator=(const LogSourceList& other) {
    if (this == &other) return *this;
    clear();
    for (std::string_view s : other) Add(s);
    return *this;
  }
  LogSourceList(LogSourceList&&) noexcept = default;  // std::string bodies do not move in a deque
  LogSourceList& operator=(LogSourceList&&) noexcept = default;

  using const_iterator = const std::string_view*;
  const_iterator begin() const { return items_.data(); }
  const_iterator end() const { return items_.data() + items_.size(); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  bool contains(std::string_view s) const {
    for (std::string_view x : items_) {
      if (x.size() == s.size() && std::memcmp(x.data(), s.data(), s.size()) == 0) return true;
    }
    return false;
  }
  // Adds `s` (copied) unless present.
  void Add(std::string_view s) {
    if (contains(s)) return;
    if (owned_used_ == owned_.size()) owned_.emplace_back();
    std::string& o = owned_[owned_used_++];
    o.assign(s.data(), s.size());
    MarkOther();
    items_.emplace_back(o);
  }
  // Adds `s` as a view, not copied, unless present: the caller keeps the text
  // alive and unchanged until clear() (a program name in a line the Matcher
  // borrows, Event::borrow_line).
  void AddView(std::string_view s) {
    if (contains(s)) return;
    MarkOther();
    items_.push_back(s);
  }
  // Adds a literal (kept as a view) unless present.
  void AddLiteral(Literal s) {
    if (!contains(s.text)) items_.push_back(s.text);
  }
  // Whether the i-th name was added by AddLiteral (a view of a string literal,
  // valid for ever; the matcher's route cache recognises it by its address).
  bool IsLiteral(size_t i) const { return i < 64 && ((others_ >> i) & 1) == 0; }
  void clear() {
    items_.clear();
    owned_used_ = 0;
    others_ = 0;
  }
  std::vector<std::string> ToVector() const { return {begin(), end()}; }

 private:
  std::vector<std::string_view> items_;
  std::deque<std::string> owned_;  // the first owned_used_ back copied names
  // Marks the next item as not a literal (Add, AddView; the rarer calls).
  void MarkOther() {
    if (items_.size() < 64) others_ |= uint64_t{1} << items_.size();
  }

  size_t owned_used_ = 0;
  uint64_t others_ = 0;  // bit i: items_[i] did not come from AddLiteral
};

struct Event {
  EventFields fields;
  std::string_view raw;
  // When true, DecodeLine lets `fields` view the line instead of copying from
  // it (EventFields::BorrowFrom): the caller then keeps the line alive while it
  // reads the fields. The Matcher does; the default copies.
  bool borrow_line = false;
  // Sigma logsource attributes this event belongs to (an event can have several
  // services, e.g. an sshd line is service sshd, auth and syslog).
  LogSourceList products;
  LogSourceList services;
  LogSourceList categories;
  int64_t time_unix_ns = 0;  // event time; 0 when the line carries none
  // When true, decoding sets time_unix_ns but leaves `@timestamp` (its RFC 3339
  // text) to ResolveTimestamp, marking it pending: the Matcher does, and
  // formats it only for an event that is stored with an alert, read by a rule
  // or looked up for IOCs (formatting it for every line was ≈0.2k instructions).
  // The default formats it at once.
  bool defer_timestamp = false;
  bool timestamp_pending = false;  // `@timestamp` not yet set (defer_timestamp)

  void Clear() {
    fields.clear();
    fields.BorrowFrom({});
    raw = {};
    products.clear();
    services.clear();
    categories.clear();
    time_unix_ns = 0;
    timestamp_pending = false;
  }
};

// Sets the `@timestamp` field that decoding left pending (Event::
// defer_timestamp) from time_unix_ns, unless a later decoding step set the
// field itself; does nothing when none is pending.
void ResolveTimestamp(Event* event);

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

#include "rules/decoder.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"
#include "rules/strutil.h"

namespace siper::rules {

EventFields::EventFields(const EventFields& other) { *this = other; }

EventFields& EventFields::operator=(const EventFields& other) {
  if (this == &other) return *this;
  clear();
  for (const auto& [k, v] : other) insert_or_assign(k, v);
  return *this;
}

EventFields& EventFields::operator=(EventFields&& other) noexcept {
  if (this == &other) return *this;
  // Swapped with this object's cleared state, so `other` stays a valid, empty
  // object (with this object's buffers, for reuse).
  clear();
  entries_.swap(other.entries_);
  hashes_.swap(other.hashes_);
  slots_.swap(other.slots_);
  std::swap(size_, other.size_);
  std::swap(limit_, other.limit_);
  std::swap(first_bytes_, other.first_bytes_);
  blocks_.swap(other.blocks_);
  std::swap(block_, other.block_);
  std::swap(used_, other.used_);
  std::swap(borrow_begin_, other.borrow_begin_);
  std::swap(borrow_end_, other.borrow_end_);
  return *this;
}

size_t EventFields::Grow(size_t slot, uint64_t h, std::string_view key) {
  if (size_ == entries_.size()) {
    const size_t n = std::max<size_t>(32, entries_.size() * 2);
    entries_.resize(n);
    hashes_.resize(n);
  }
  if ((size_ + 1) * 2 > slots_.size()) {
    Reindex(slots_.size() * 2);
    slot = Slot(key, h);
  }
  limit_ = std::min(entries_.size(), slots_.size() / 2);
  return slot;
}

void EventFields::ClearSlots() {
  const size_t mask = slots_.size() - 1;
  for (size_t e = 0; e < size_; ++e) {
    size_t i = hashes_[e] & mask;
    while (slots_[i] != e + 1) i = (i + 1) & mask;
    slots_[i] = 0;
  }
}

std::string_view EventFields::StoreSlow(std::string_view s) {
  // The current block is full: the next kept block that fits, or a new one.
  while (block_ < blocks_.size()) {
    if (used_ > 0 || blocks_[block_].size < s.size()) {
      ++block_;
      used_ = 0;
      continue;
    }
    break;
  }
  if (block_ == blocks_.size()) {
    Block b;
    b.size = std::max(kBlockSize, s.size());
    b.data = std::make_unique_for_overwrite<char[]>(b.size);
    blocks_.push_back(std::move(b));
    used_ = 0;
  }
  char* dst = blocks_[block_].data.get() + used_;
  Copy(dst, s.data(), s.size());
  used_ += s.size();
  return {dst, s.size()};
}

FieldMap EventFields::ToMap() const {
  FieldMap out;
  for (const auto& [k, v] : *this) out.emplace(std::string(k), std::string(v));
  return out;
}

// Each view lies in one of three places: the borrowed line (BorrowFrom; most
// values are slices of it), this object's arena (Store), or static storage
// (string literals given to insert_or_assign_static, which never copies them).
// The borrowed line and the used part of the arena are each copied in one
// piece and the views re-pointed into the copies; literals stay views. (It was
// a memcpy call per name and per value: ≈1.1k instructions a snapshot, and the
// server takes one of every event.) Stale arena bytes (values overwritten
// since clear()) come along; an event whose text spans several arena blocks
// (rare: more than 4 KiB of copied text) is copied view by view instead.
DetectionFields EventFields::Snapshot() const {
  if (size_ == 0) return {};
  static_assert(alignof(value_type) <= alignof(uint64_t));
  const size_t head = size_ * sizeof(value_type);
  const size_t line_bytes = borrow_end_ - borrow_begin_;
  const bool one_block = block_ == 0;
  size_t arena_bytes = 0;
  if (one_block) {
    arena_bytes = blocks_.empty() ? 0 : used_;
  } else {
    for (size_t i = 0; i < size_; ++i) {
      for (std::string_view s : {entries_[i].first, entries_[i].second}) {
        if (!s.empty() && !IsBorrowed(s) && InArena(s.data())) arena_bytes += s.size();
      }
    }
  }
  std::shared_ptr<uint64_t[]> buffer =
      std::make_shared_for_overwrite<uint64_t[]>((head + line_bytes + arena_bytes + 7) / 8);
  char* const base = reinterpret_cast<char*>(buffer.get());
  char* const line = base + head;
  char* const arena = line + line_bytes;
  if (line_bytes > 0) std::memcpy(line, reinterpret_cast<const char*>(borrow_begin_), line_bytes);
  const uintptr_t arena_begin =
      blocks_.empty() ? 0 : reinterpret_cast<uintptr_t>(blocks_[0].data.get());
  if (one_block && arena_bytes > 0) {
    std::memcpy(arena, reinterpret_cast<const char*>(arena_begin), arena_bytes);
  }
  char* out = arena;  // several blocks: the next free byte of the copy
  auto place = [&](std::string_view s) -> std::string_view {
    if (s.empty()) return {};
    const uintptr_t p = reinterpret_cast<uintptr_t>(s.data());
    if (p >= borrow_begin_ && p + s.size() <= borrow_end_) {
      return {line + (p - borrow_begin_), s.size()};
    }
    if (one_block) {
      if (p >= arena_begin && p < arena_begin + arena_bytes) {
        return {arena + (p - arena_begin), s.size()};
      }
      return s;  // a literal
    }
    if (!InArena(s.data())) return s;
    Copy(out, s.data(), s.size());
    out += s.size();
    return {out - s.size(), s.size()};
  };
  for (size_t i = 0; i < size_; ++i) {
    const std::string_view k = place(entries_[i].first);
    const std::string_view v = place(entries_[i].second);
    new (base + i * sizeof(value_type)) value_type(k, v);
  }
  return DetectionFields(std::move(buffer), size_);
}

bool EventFields::InArena(const char* s) const {
  const uintptr_t p = reinterpret_cast<uintptr_t>(s);
  for (size_t b = 0; b <= block_ && b < blocks_.size(); ++b) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(blocks_[b].data.get());
    if (p >= begin && p < begin + blocks_[b].size) return true;
  }
  return false;
}

void EventFields::Reindex(size_t slots) {
  slots_.assign(std::max(slots, kMinSlots), 0);
  const size_t mask = slots_.size() - 1;
  for (size_t e = 0; e < size_; ++e) {
    size_t i = hashes_[e] & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = static_cast<uint32_t>(e + 1);
  }
  limit_ = std::min(entries_.size(), slots_.size() / 2);
}

void EventFields::erase(std::string_view key) {
  auto it = find(key);
  if (it == end()) return;
  const size_t i = static_cast<size_t>(it - begin());
  --size_;
  if (i != size_) {
    std::swap(entries_[i], entries_[size_]);
    std::swap(hashes_[i], hashes_[size_]);
  }
  Reindex(slots_.size());  // rare (decoders drop a field now and then)
}

size_t EventFields::erase_prefix(std::string_view prefix) {
  if ((first_bytes_ & FirstByteBit(prefix)) == 0) return 0;  // no key starts like it
  size_t removed = 0;
  for (size_t i = 0; i < size_;) {
    const std::string_view key = entries_[i].first;
    if (key.empty() || key[0] != prefix[0] || !strutil::StartsWith(key, prefix)) {
      ++i;
      continue;
    }
    // Keep the others in their order (a removal is rare: only crafted or foreign events).
    std::rotate(entries_.begin() + static_cast<ptrdiff_t>(i),
                entries_.begin() + static_cast<ptrdiff_t>(i) + 1,
                entries_.begin() + static_cast<ptrdiff_t>(size_));
    std::rotate(hashes_.begin() + static_cast<ptrdiff_t>(i),
                hashes_.begin() + static_cast<ptrdiff_t>(i) + 1,
                hashes_.begin() + static_cast<ptrdiff_t>(size_));
    --size_;
    ++removed;
  }
  if (removed > 0) Reindex(slots_.size());
  return removed;
}

namespace {

// A field name written as a string literal, hashed at compile time: decoders
// set ~20 fields a line, and hashing and copying each name was ≈40 instructions.
struct FieldKey {
  template <size_t N>
  consteval FieldKey(const char (&s)[N])  // NOLINT: implicit, from a literal only
      : name(s, N - 1), hash(EventFields::Hash(name)) {}
  std::string_view name;
  uint64_t hash;
};

// A value that is not a literal (a view, a string, a pointer): copied unless it
// lies in a borrowed line. Literal arrays take the StaticText overload below.
template <typename V>
requires(!std::is_array_v<V>) void Set(Event* ev, FieldKey key, const V& value) {
  ev->fields.insert_or_assign_static(key.name, key.hash, std::string_view(value));
}

// A value written as a string literal: stored as a view, not copied.
struct StaticText {
  template <size_t N>
  consteval StaticText(const char (&s)[N]) : text(s, N - 1) {}  // NOLINT: implicit
  std::string_view text;
};

void Set(Event* ev, FieldKey key, StaticText value) {
  ev->fields.insert_or_assign_static(key.name, key.hash, value.text, /*static_value=*/true);
}

// A field whose name is only known at run time (auditd's key=value pairs).
void SetDynamic(Event* ev, std::string_view key, std::string_view value) {
  ev->fields.insert_or_assign(key, value);
}

// A log-source name written as a literal (kept as a view) ...
void AddUnique(LogSourceList* v, LogSourceList::Literal s) { v->AddLiteral(s); }
// ... and one computed at run time (copied).
void AddName(LogSourceList* v, std::string_view s) { v->Add(s); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHexLetter(char c) {
  const char l = static_cast<char>(c | 0x20);
  return l >= 'a' && l <= 'f';
}

// Only accepts text that looks like an IPv4 or IPv6 address: hex digits,
// ':' and '.' only, and then any ':' (IPv6), or four '.'-separated decimal
// parts of 1 to 3 digits, each at most 255. One pass, no library calls (it
// runs for nearly every authentication line).
// The common case, a dotted quad (1-3 digits, at most 255, per part): true
// only when LooksLikeIp's general loop below would say true too; anything
// else (IPv6, names, odd text) goes to that loop.
bool IsDottedQuad(std::string_view s) {
  const char* p = s.data();
  const char* const end = p + s.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (p == end || *p != '.') return false;
      ++p;
    }
    unsigned value = 0;
    int digits = 0;
    while (p != end && digits < 4) {
      const unsigned d = static_cast<unsigned>(static_cast<unsigned char>(*p)) - '0';
      if (d > 9) break;
      value = value * 10 + d;
      ++digits;
      ++p;
    }
    if (digits == 0 || digits > 3 || value > 255) return false;
  }
  return p == end;
}

bool LooksLikeIp(std::string_view s) {
  if (IsDottedQuad(s)) return true;
  if (s.empty() || s.size() > 45) return false;
  bool colon = false, dot = false, v4 = true;
  int parts = 0, len = 0, value = 0;
  for (char c : s) {
    if (IsDigit(c)) {
      if (++len > 3) {
        v4 = false;
      } else {
        value = value * 10 + (c - '0');
        if (value > 255) v4 = false;
      }
    } else if (c == '.') {
      dot = true;
      if (len == 0) v4 = false;
      ++parts;
      len = value = 0;
    } else if (c == ':') {
      colon = true;
    } else if (IsHexLetter(c)) {
      v4 = false;
    } else {
      return false;
    }
  }
  if (colon) return true;
  if (!dot) return false;
  return v4 && len > 0 && parts == 3;
}

void SetSourceIp(Event* ev, std::string_view addr) {
  if (addr.empty()) return;
  Set(ev, "source.address", addr);
  if (LooksLikeIp(addr)) {
    Set(ev, "source.ip", addr);
  } else {
    Set(ev, "source.domain", addr);
  }
}

void SetOutcome(Event* ev, StaticText action, StaticText outcome,
                StaticText category = "authentication") {
  Set(ev, "event.action", action);
  if (!outcome.text.empty()) Set(ev, "event.outcome", outcome);
  if (!category.text.empty()) Set(ev, "event.category", category);
}

int MonthIndex(std::string_view m) {
  // The three letters as one number: 12 integer compares, not 12 string compares.
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (m.size() != 3) return 0;
  auto pack = [](const char* p) {
    return static_cast<uint32_t>(static_cast<unsigned char>(p[0])) << 16 |
           static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 8 |
           static_cast<uint32_t>(static_cast<unsigned char>(p[2]));
  };
  const uint32_t v = pack(m.data());
  for (int i = 0; i < 12; ++i) {
    if (v == pack(kMonths + 3 * i)) return i + 1;
  }
  return 0;
}

bool ParseHms(std::string_view s, int* h, int* mi, int* sec) {
  if (s.size() < 8 || s[2] != ':' || s[5] != ':') return false;
  for (int i : {0, 1, 3, 4, 6, 7}) {
    if (!IsDigit(s[i])) return false;
  }
  *h = (s[0] - '0') * 10 + (s[1] - '0');
  *mi = (s[3] - '0') * 10 + (s[4] - '0');
  *sec = (s[6] - '0') * 10 + (s[7] - '0');
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's
// algorithms). Linear in the day, so day 0 or 31 Feb roll over as
// absl::CivilSecond does; UTC needs no time zone lookup.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Syslog without a year: take the current year, or the previous one when the
// date would otherwise lie more than two days in the future (the slack covers
// local times east of UTC and clocks a little ahead). A file read in late
// November with lines of December is last year's, as a "Jan" line read on 1
// January is this year's and a "Dec 31" line is last year's. The clock is read
// once a minute per thread.
int GuessYear(int month, int day) {
  thread_local int64_t checked_at = 0;
  thread_local int year = 1970;
  thread_local int64_t today = 0;
  thread_local int last_month = 0, last_day = 0, last_guess = 0;  // the last answer
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (now - checked_at > 60 || now < checked_at) {
    absl::CivilSecond c = absl::ToCivilSecond(absl::FromUnixSeconds(now), absl::UTCTimeZone());
    year = static_cast<int>(c.year());
    today = DaysFromCivil(year, c.month(), c.day());
    checked_at = now;
    last_month = 0;
  }
  if (month != last_month || day != last_day) {
    last_month = month;
    last_day = day;
    last_guess = DaysFromCivil(year, month, day) > today + 2 ? year - 1 : year;
  }
  return last_guess;
}

// Days since 1970-01-01 of a syslog date, the year guessed (GuessYear) when
// 0. Consecutive lines mostly share their date, so the last answer is kept
// per thread, keyed by the date and the guess's year and today (which change
// when GuessYear re-reads the clock): two DaysFromCivil a line were ≈70
// instructions.
int64_t SyslogDays(int year, int month, int day) {
  struct Last {
    int year = -1, month = 0, day = 0, guessed_year = 0;
    int64_t days = 0;
  };
  thread_local Last last;
  const int y = year != 0 ? year : GuessYear(month, day);
  if (year == last.year && month == last.month && day == last.day && y == last.guessed_year) {
    return last.days;
  }
  last = {year, month, day, y, DaysFromCivil(y, month, day)};
  return last.days;
}

struct UtcCivil {
  int64_t year;
  int month, day, hour, minute, second;
};

UtcCivil CivilFromUnixSeconds(int64_t secs) {
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  UtcCivil c;
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2);
  c.hour = static_cast<int>(rem / 3600);
  c.minute = static_cast<int>(rem / 60 % 60);
  c.second = static_cast<int>(rem % 60);
  return c;
}

// Two decimal digits of 0..99.
void Put2(char* out, int v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

// `@timestamp`'s text (RFC 3339 in UTC, with the fraction only when there is
// one, written by hand) for `secs` seconds and `ns` (0 <= ns < 1e9)
// nanoseconds since 1970, in the range SetUnixTime accepts; returns its
// length (at most 30). The date part ("YYYY-MM-DDT") is kept per thread for
// the last day seen, since a log's lines mostly share it: the civil date is
// computed once a day, not once a line.
size_t FormatUnixTime(int64_t secs, int64_t ns, char* buf) {
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  thread_local int64_t cached_days = INT64_MIN;
  thread_local char date[11];
  if (days != cached_days) {
    const UtcCivil c = CivilFromUnixSeconds(days * 86400);
    int64_t y = c.year;
    for (int i = 3; i >= 0; --i) {
      date[i] = static_cast<char>('0' + y % 10);
      y /= 10;
    }
    date[4] = '-';
    Put2(date + 5, c.month);
    date[7] = '-';
    Put2(date + 8, c.day);
    date[10] = 'T';
    cached_days = days;
  }
  std::memcpy(buf, date, 11);
  const int sec_of_day = static_cast<int>(rem);
  Put2(buf + 11, sec_of_day / 3600);
  buf[13] = ':';
  Put2(buf + 14, sec_of_day / 60 % 60);
  buf[16] = ':';
  Put2(buf + 17, sec_of_day % 60);
  size_t n = 19;
  if (ns > 0) {
    buf[n++] = '.';
    int digits = 9;
    while (ns % 10 == 0) {
      ns /= 10;
      --digits;
    }
    for (int i = digits - 1; i >= 0; --i) {
      buf[n + i] = static_cast<char>('0' + ns % 10);
      ns /= 10;
    }
    n += digits;
  }
  buf[n++] = 'Z';
  return n;
}

// Sets time_unix_ns and `@timestamp` for `secs` seconds and `ns` (0 <= ns <
// 1e9) nanoseconds since 1970; with Event::defer_timestamp, `@timestamp` is
// only marked pending (ResolveTimestamp formats it when something reads it).
void SetUnixTime(Event* ev, int64_t secs, int64_t ns) {
  // Nanoseconds since 1970 cover 1678-2262; other dates (garbage) are dropped.
  // (The bound also keeps the civil arithmetic far from overflow.)
  constexpr int64_t kFirst = -8520336000;  // 1700-01-01T00:00:00Z
  constexpr int64_t kEnd = 8867491200;     // 2251-01-01T00:00:00Z
  if (secs < kFirst || secs >= kEnd) return;
  ev->time_unix_ns = secs * 1000000000 + ns;
  if (ev->defer_timestamp) {
    ev->timestamp_pending = true;
    return;
  }
  char buf[40];
  Set(ev, "@timestamp", std::string_view(buf, FormatUnixTime(secs, ns, buf)));
}

void SetTime(Event* ev, absl::Time t) {
  const int64_t secs = absl::ToUnixSeconds(t);  // floor
  SetUnixTime(ev, secs, absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(secs)));
}

std::string_view NextToken(std::string_view* s) {
  size_t sp = s->find(' ');
  std::string_view tok = s->substr(0, sp);
  s->remove_prefix(sp == std::string_view::npos ? s->size() : sp + 1);
  return tok;
}

// Parses RFC 3339 (with optional fraction and zone), as in RFC 5424 and rsyslog.
bool ParseRfc3339(std::string_view s, absl::Time* t) {
  std::string err;
  std::string str(s);
  if (absl::ParseTime(absl::RFC3339_full, str, t, &err)) return true;
  return absl::ParseTime("%Y-%m-%dT%H:%M:%E*S", str, absl::UTCTimeZone(), t, &err);
}

// "key=value key2=value2" as pam writes it; values may be empty.
void ParseKeyValues(std::string_view s,
                    std::vector<std::pair<std::string_view, std::string_view>>* out) {
  while (!s.empty()) {
    s = strutil::StripLeadingAsciiWhitespace(s);
    size_t eq = s.find('=');
    if (eq == std::string_view::npos) return;
    std::string_view key = s.substr(0, eq);
    if (size_t sp = key.rfind(' '); sp != std::string_view::npos) key = key.substr(sp + 1);
    s.remove_prefix(eq + 1);
    size_t sp = s.find(' ');
    std::string_view value = s.substr(0, sp);
    out->emplace_back(key, value);
    s.remove_prefix(sp == std::string_view::npos ? s.size() : sp);
  }
}

bool DecodeAuditRecord(std::string_view text, Event* ev);  // below, with audit.log lines

// "pam_unix(", and any other PAM module's prefix ("pam_sss(" on RHEL with SSSD,
// "pam_ldap(", "pam_krb5(", "pam_winbind("): its length, 0 when `m` has none.
size_t PamModulePrefix(std::string_view m) {
  if (!strutil::StartsWith(m, "pam_")) return 0;
  size_t i = 4;
  while (i < m.size() && i < 40 && ((m[i] >= 'a' && m[i] <= 'z') || IsDigit(m[i]) || m[i] == '_')) {
    ++i;
  }
  return i > 4 && i < m.size() && m[i] == '(' ? i + 1 : 0;
}

// A JSON object as a syslog message (an application logging JSON through syslog,
// rsyslog's "@cee: {...}", NXLog's to_json() over syslog): its fields are added as
// from a JSON line. A Windows event keeps only its own log source (not linux/syslog).
// Parsed aside first, so that a message that is not valid JSON adds nothing.
// Cold for the same reason as DecodeSshdRare below.
[[gnu::cold]] void DecodeSyslogJson(std::string_view msg, Event* ev) {
  if (strutil::ConsumePrefix(&msg, "@cee:")) {
    while (!msg.empty() && msg[0] == ' ') msg.remove_prefix(1);
  }
  if (msg.empty() || msg[0] != '{') return;
  Event json;
  if (!DecodeJson(msg, &json)) return;
  for (const auto& [k, v] : json.fields) ev->fields.insert_or_assign(k, v);
  if (!json.products.empty()) {
    ev->products.clear();
    ev->services.clear();
    ev->categories.clear();
    for (std::string_view p : json.products) ev->products.Add(p);
    for (std::string_view p : json.services) ev->services.Add(p);
    for (std::string_view p : json.categories) ev->categories.Add(p);
  }
  if (json.time_unix_ns != 0) ev->time_unix_ns = json.time_unix_ns;
}

[[gnu::always_inline]] inline void DecodeProgramMessage(std::string_view program,
                                                        std::string_view module,
                                                        std::string_view msg, Event* ev) {
  if (!module.empty() && strutil::StartsWith(module, "pam")) {
    // "sshd(pam_unix)[1]: authentication failure; ..."
    DecodePam(program, msg, ev);
    return;
  }
  if (strutil::Equals(program, "sshd")) {
    DecodeSshd(msg, ev);
  } else if (strutil::Equals(program, "sudo")) {
    DecodeSudo(msg, ev);
  } else if (strutil::Equals(program, "su")) {
    DecodeSu(msg, ev);
  } else if (strutil::Equals(program, "useradd") || strutil::Equals(program, "usermod") ||
             strutil::Equals(program, "userdel") || strutil::Equals(program, "groupadd") ||
             strutil::Equals(program, "groupdel") || strutil::Equals(program, "groupmod") ||
             strutil::Equals(program, "gpasswd") || strutil::Equals(program, "passwd") ||
             strutil::Equals(program, "chpasswd") || strutil::Equals(program, "chage")) {
    DecodeAccountChange(msg, ev);
  } else if (strutil::Equals(program, "cron") || strutil::Equals(program, "CRON") ||
             strutil::Equals(program, "crond") || strutil::Equals(program, "CROND") ||
             strutil::Equals(program, "crontab")) {
    DecodeCron(msg, ev);
  } else if (strutil::Equals(program, "klogind") || strutil::Equals(program, "kshd")) {
    // Kerberos rlogin/rsh: "Authentication failed from 163.27.187.39 (163.27.187.39): ..."
    static const RE2* kKerberosFailed =
        new RE2(R"(Authentication failed from ([0-9A-Fa-f:.]+)(?: \(([^)]*)\))?: ?(.*?)\s*)");
    std::string ip, host, reason;
    if (strutil::StartsWith(msg, "Authentication failed from ") &&
        RE2::FullMatch(msg, *kKerberosFailed, &ip, &host, &reason)) {
      SetOutcome(ev, "kerberos_login", "failure");
      SetSourceIp(ev, ip);
      if (!host.empty() && host != ip) Set(ev, "source.domain", host);
      if (!reason.empty()) Set(ev, "event.reason", reason);
    }
  } else if (strutil::Equals(program, "vsftpd") || strutil::Equals(program, "ftpd") ||
             strutil::Equals(program, "proftpd") || strutil::Equals(program, "pure-ftpd")) {
    DecodeFtp(msg, ev);
  } else if (program == "audispd" || program == "audisp-syslog" || program == "auditd") {
    // Audit records forwarded to syslog: the same fields as in audit.log, and the
    // record's own time (with its year, in UTC) instead of the syslog header's.
    DecodeAuditRecord(msg, ev);
  } else if (const size_t pam = PamModulePrefix(msg); pam != 0) {
    std::string_view rest = msg.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) {
      std::string_view svc = rest.substr(0, rest.find(':'));
      DecodePam(svc, rest.substr(close + 3), ev);
    }
  } else if (!msg.empty() && (msg[0] == '{' || msg[0] == '@')) {
    DecodeSyslogJson(msg, ev);
  } else if (strutil::Equals(program, "nginx") || strutil::Equals(program, "apache2") ||
             strutil::Equals(program, "httpd") || strutil::Equals(program, "apache")) {
    // Web servers logging through syslog (nginx "access_log syslog:server=...",
    // Apache "ErrorLog syslog:" or a piped logger): the same fields as from their files.
    if (!DecodeWebAccess(msg, ev)) DecodeWebError(msg, ev);
  }
}

// Programs whose lines are Sigma service `auth`: sshd, sudo, su, login, passwd,
// useradd, usermod, userdel, groupadd, groupdel, gpasswd, chpasswd, chage,
// systemd-logind, polkitd, pkexec, vsftpd, ftpd, klogind, gdm, cron, CRON, dbus,
// unix_chkpwd. Picked by length, then compared (a loop over the 24 names with a
// first-byte check was ≈55 instructions a line).
bool IsAuthProgram(std::string_view app) {
  using strutil::Equals;
  switch (app.size()) {
    case 2:
      return Equals(app, "su");
    case 3:
      return Equals(app, "gdm");
    case 4:
      return Equals(app, "sshd") || Equals(app, "sudo") || Equals(app, "ftpd") ||
             Equals(app, "cron") || Equals(app, "CRON") || Equals(app, "dbus");
    case 5:
      return Equals(app, "login") || Equals(app, "chage");
    case 6:
      return Equals(app, "passwd") || Equals(app, "pkexec") || Equals(app, "vsftpd");
    case 7:
      return Equals(app, "useradd") || Equals(app, "usermod") || Equals(app, "userdel") ||
             Equals(app, "gpasswd") || Equals(app, "polkitd") || Equals(app, "klogind");
    case 8:
      return Equals(app, "groupadd") || Equals(app, "groupdel") || Equals(app, "chpasswd");
    case 11:
      return Equals(app, "unix_chkpwd");
    case 14:
      return Equals(app, "systemd-logind");
    default:
      return false;
  }
}

}  // namespace

namespace {

// The index of the first ':' or ' ' in s (s.size() when none), eight bytes at a
// time (a byte loop was ≈10 instructions a byte of every syslog tag): a byte
// equal to c is a zero byte of w ^ c, and the lowest bit the classic zero-byte
// test sets is exact (its false positives lie only above a true zero byte).
size_t ColonOrSpace(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    const uint64_t colon = w ^ (kOnes * ':');
    const uint64_t space = w ^ (kOnes * ' ');
    const uint64_t found = (((colon - kOnes) & ~colon) | ((space - kOnes) & ~space)) & kHigh;
    if (found != 0) return i + static_cast<size_t>(std::countr_zero(found)) / 8;
  }
  while (i < s.size() && s[i] != ':' && s[i] != ' ') ++i;
  return i;
}

}  // namespace

bool DecodeSyslog(std::string_view line, Event* ev) {
  std::string_view s = line;
  int pri = -1;
  if (strutil::StartsWith(s, "<")) {
    size_t close = s.find('>');
    if (close == std::string_view::npos || close > 4 ||
        !strutil::SimpleAtoi(s.substr(1, close - 1), &pri)) {
      return false;
    }
    s.remove_prefix(close + 1);
    Set(ev, "log.syslog.priority", strutil::StrCat(pri));
    Set(ev, "log.syslog.facility.code", strutil::StrCat(pri / 8));
    Set(ev, "log.syslog.severity.code", strutil::StrCat(pri % 8));
  }
  std::string_view host, app, procid, module, msg;
  if (pri >= 0 && strutil::StartsWith(s, "1 ")) {
    // RFC 5424: VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
    s.remove_prefix(2);
    std::string_view ts = NextToken(&s);
    absl::Time t;
    if (ts != "-" && ParseRfc3339(ts, &t)) SetTime(ev, t);
    host = NextToken(&s);
    app = NextToken(&s);
    procid = NextToken(&s);
    std::string_view msgid = NextToken(&s);
    if (msgid != "-" && !msgid.empty()) Set(ev, "event.code", msgid);
    if (strutil::StartsWith(s, "-")) {
      s.remove_prefix(1);
    } else if (strutil::StartsWith(s, "[")) {
      // Structured data: [id k="v" ...][id2 ...]; values may hold escaped ] and ".
      while (strutil::StartsWith(s, "[")) {
        size_t i = 1;
        size_t id_end = s.find_first_of(" ]", 1);
        if (id_end == std::string_view::npos) return false;
        std::string sd_id(s.substr(1, id_end - 1));
        i = id_end;
        while (i < s.size() && s[i] != ']') {
          while (i < s.size() && s[i] == ' ') ++i;
          size_t eq = s.find('=', i);
          if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return false;
          std::string name(s.substr(i, eq - i));
          std::string value;
          size_t j = eq + 2;
          for (; j < s.size() && s[j] != '"'; ++j) {
            if (s[j] == '\\' && j + 1 < s.size()) ++j;
            value.push_back(s[j]);
          }
          ev->fields.insert_or_assign(
              strutil::StrCat("log.syslog.structured_data.", sd_id, ".", name), value);
          i = j + 1;
        }
        s.remove_prefix(std::min(s.size(), i + 1));
      }
    }
    if (strutil::StartsWith(s, " ")) s.remove_prefix(1);
    if (strutil::StartsWith(s, "\xEF\xBB\xBF")) s.remove_prefix(3);  // BOM
    msg = s;
    if (host == "-") host = {};
    if (app == "-") app = {};
    if (procid == "-") procid = {};
    size_t paren = app.find('(');
    if (paren != std::string_view::npos && strutil::EndsWith(app, ")")) {
      module = app.substr(paren + 1, app.size() - paren - 2);
      app = app.substr(0, paren);
    }
  } else {
    // RFC 3164 and its common variants.
    absl::Time t;
    bool have_time = false;
    if (s.size() >= 19 && IsDigit(s[0]) && s[4] == '-' && s[10] == 'T') {
      std::string_view ts = NextToken(&s);
      have_time = ParseRfc3339(ts, &t);
      if (!have_time) return false;
    } else {
      int year = 0;
      if (s.size() > 5 && IsDigit(s[0]) && IsDigit(s[3]) && s[4] == ' ') {
        if (!strutil::SimpleAtoi(s.substr(0, 4), &year)) return false;
        s.remove_prefix(5);
      }
      if (s.size() < 15) return false;
      int month = MonthIndex(s.substr(0, 3));
      if (month == 0 || s[3] != ' ') return false;
      s.remove_prefix(4);
      if (s[0] == ' ') s.remove_prefix(1);
      int day = 0;
      size_t i = 0;
      while (i < s.size() && IsDigit(s[i])) day = day * 10 + (s[i++] - '0');
      if (i == 0 || i > 2 || i >= s.size() || s[i] != ' ') return false;
      s.remove_prefix(i + 1);
      if (s.size() > 5 && IsDigit(s[0]) && IsDigit(s[3]) && s[4] == ' ') {
        if (!strutil::SimpleAtoi(s.substr(0, 4), &year)) return false;
        s.remove_prefix(5);
      }
      int h, mi, sec;
      if (!ParseHms(s, &h, &mi, &sec)) return false;
      s.remove_prefix(8);
      int64_t frac_ns = 0;
      if (!s.empty() && s[0] == '.') {
        size_t j = 1;
        int64_t scale = 100000000;
        while (j < s.size() && IsDigit(s[j])) {
          frac_ns += (s[j] - '0') * scale;
          scale /= 10;
          ++j;
        }
        s.remove_prefix(j);
      }
      if (s.empty() || s[0] != ' ') return false;
      s.remove_prefix(1);
      SetUnixTime(ev, SyslogDays(year, month, day) * 86400 + h * 3600 + mi * 60 + sec, frac_ns);
    }
    if (have_time) SetTime(ev, t);
    host = NextToken(&s);
    // TAG: program, program[pid], program(module)[pid], program(module); ends at ':'.
    const size_t tag_end = ColonOrSpace(s);
    std::string_view tag = s.substr(0, tag_end);
    if (tag_end < s.size() && s[tag_end] == ':') {
      s.remove_prefix(tag_end + 1);
    } else {
      s.remove_prefix(tag_end);  // "syslogd 1.4.1: restart." has no colon after the program
    }
    if (strutil::StartsWith(s, " ")) s.remove_prefix(1);
    msg = s;
    if (strutil::EndsWith(tag, "]")) {
      size_t open = tag.rfind('[');
      if (open != std::string_view::npos) {
        procid = tag.substr(open + 1, tag.size() - open - 2);
        tag = tag.substr(0, open);
      }
    }
    if (strutil::EndsWith(tag, ")")) {
      size_t open = tag.find('(');
      if (open != std::string_view::npos) {
        module = tag.substr(open + 1, tag.size() - open - 2);
        tag = tag.substr(0, open);
      }
    }
    app = tag;
  }
  if (!host.empty()) Set(ev, "host.hostname", host);
  if (!app.empty()) {
    Set(ev, "process.name", app);
    Set(ev, "log.syslog.appname", app);
  }
  if (!procid.empty()) Set(ev, "process.pid", procid);
  if (!module.empty()) Set(ev, "log.syslog.module", module);
  Set(ev, "message", msg);
  AddUnique(&ev->products, "linux");
  AddUnique(&ev->services, "syslog");
  if (!app.empty()) {
    std::string lowered;  // only when the program name has capitals ("CRON")
    std::string_view svc = app;
    if (std::any_of(app.begin(), app.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      lowered = strutil::AsciiStrToLower(app);
      svc = lowered;
    }
    if (ev->fields.IsBorrowed(svc)) {
      ev->services.AddView(svc);  // a slice of the borrowed line
    } else {
      AddName(&ev->services, svc);
    }
    if (!module.empty() || IsAuthProgram(app)) {
      AddUnique(&ev->services, "auth");
    }
    if (svc == "vsftpd") AddUnique(&ev->services, "vsftpd");
  }
  DecodeProgramMessage(app, module, msg, ev);
  return true;
}

namespace {

bool IsIpChar(char c) { return IsDigit(c) || IsHexLetter(c) || c == ':' || c == '.'; }
bool IsRe2Space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

// Plain ASCII without line breaks: the text on which a hand parser can give
// exactly what an RE2 pattern (UTF-8 mode, '.' not matching '\n') gives.
// Eight bytes at a time (it was a byte loop, ≈0.25k instructions a line, as
// every sshd and PAM message is checked once or twice): a byte >= 0x80 sets
// its top bit; a '\n' becomes zero after XOR with 0x0a, and a zero byte is
// found by the classic (x - 0x01..) & ~x & 0x80.. test (exact for "any zero").
bool IsPlainAscii(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  constexpr uint64_t kNewlines = 0x0a0a0a0a0a0a0a0aULL;
  auto clean = [&](const char* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);
    const uint64_t x = w ^ kNewlines;
    return ((w | ((x - kOnes) & ~x)) & kHigh) == 0;
  };
  const char* p = s.data();
  size_t n = s.size();
  if (n >= 8) {
    for (; n >= 8; p += 8, n -= 8) {
      if (!clean(p)) return false;
    }
    return n == 0 || clean(s.data() + s.size() - 8);  // the last 8 bytes, overlapping
  }
  for (; n > 0; ++p, --n) {
    if (static_cast<unsigned char>(*p) >= 0x80 || *p == '\n') return false;
  }
  return true;
}

enum class Parse { kMatch, kNoMatch, kUnsure };

// The ftpd connection line, as
//   connection from ([0-9A-Fa-f:.]+)(?: \(([^)]*)\))?(?: at .*)?\s*
// matches it in full (the address cannot end early: what follows it is a space
// or the end). One in four loghub Linux lines is one of these.
size_t IpRun(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && IsIpChar(s[n])) ++n;
  return n;
}

size_t DigitRun(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && IsDigit(s[n])) ++n;
  return n;
}

bool IsRe2NonSpace(char c) { return !IsRe2Space(c); }

struct SshLogin {
  std::string_view result, method, invalid, user, ip, port, key;
};

// After the user: ([0-9A-Fa-f:.]+) port (\d+)(?: (ssh\d?))?(?:: (.*))?
// The address and port cannot end early (a space follows them), so the only
// choices are the optional protocol and key, tried in RE2's order.
bool ParseSshLoginPeer(std::string_view s, SshLogin* out) {
  const size_t ip = IpRun(s);
  if (ip == 0) return false;
  out->ip = s.substr(0, ip);
  s.remove_prefix(ip);
  if (!strutil::ConsumePrefix(&s, " port ")) return false;
  const size_t port = DigitRun(s);
  if (port == 0) return false;
  out->port = s.substr(0, port);
  s.remove_prefix(port);
  auto key_matches = [out](std::string_view rest) {
    out->key = {};
    if (rest.empty()) return true;
    if (!strutil::StartsWith(rest, ": ")) return false;
    out->key = rest.substr(2);
    return true;
  };
  if (strutil::StartsWith(s, " ssh")) {
    std::string_view rest = s.substr(4);
    if (!rest.empty() && IsDigit(rest[0]) && key_matches(rest.substr(1))) return true;
    if (key_matches(rest)) return true;
  }
  return key_matches(s);
}

// What RE2 gives for sshd's kLogin pattern
//   ((?:Failed|Accepted)) (\S+) for (invalid user )?(.*) from <peer>
// on plain ASCII text: "invalid user " is taken when the rest still matches,
// and the greedy user reaches the last " from " after which a peer parses.
Parse ParseSshLogin(std::string_view m, SshLogin* out) {
  if (strutil::StartsWith(m, "Failed ")) {
    out->result = m.substr(0, 6);
  } else if (strutil::StartsWith(m, "Accepted ")) {
    out->result = m.substr(0, 8);
  } else {
    return Parse::kNoMatch;
  }
  if (!IsPlainAscii(m)) return Parse::kUnsure;
  m.remove_prefix(out->result.size() + 1);
  size_t method = 0;
  while (method < m.size() && IsRe2NonSpace(m[method])) ++method;
  if (method == 0) return Parse::kNoMatch;
  out->method = m.substr(0, method);
  m.remove_prefix(method);
  if (!strutil::ConsumePrefix(&m, " for ")) return Parse::kNoMatch;
  auto user_and_peer = [out](std::string_view t) {
    for (size_t at = t.rfind(" from "); at != std::string_view::npos;
         at = at == 0 ? std::string_view::npos : t.rfind(" from ", at - 1)) {
      if (ParseSshLoginPeer(t.substr(at + 6), out)) {
        out->user = t.substr(0, at);
        return true;
      }
    }
    return false;
  };
  constexpr std::string_view kInvalidUser = "invalid user ";
  if (strutil::StartsWith(m, kInvalidUser) && user_and_peer(m.substr(kInvalidUser.size()))) {
    out->invalid = m.substr(0, kInvalidUser.size());
    return Parse::kMatch;
  }
  out->invalid = {};
  return user_and_peer(m) ? Parse::kMatch : Parse::kNoMatch;
}

struct SshDisconnect {
  std::string_view ip, port, code, reason;
};

// After the address: (?: port (\d+))?: ?(\d+): (.*?)(?: \[preauth\])?
bool ParseSshDisconnectTail(std::string_view s, SshDisconnect* out) {
  out->port = {};
  if (strutil::ConsumePrefix(&s, " port ")) {
    const size_t port = DigitRun(s);
    if (port == 0) return false;
    out->port = s.substr(0, port);
    s.remove_prefix(port);
  }
  if (!strutil::ConsumePrefix(&s, ":")) return false;
  if (strutil::StartsWith(s, " ")) s.remove_prefix(1);  // a digit must follow either way
  const size_t code = DigitRun(s);
  if (code == 0) return false;
  out->code = s.substr(0, code);
  s.remove_prefix(code);
  if (!strutil::ConsumePrefix(&s, ": ")) return false;
  // The lazy reason stops before a final " [preauth]".
  if (strutil::EndsWith(s, " [preauth]")) s.remove_suffix(10);
  out->reason = s;
  return true;
}

// What RE2 gives for sshd's kDisconnect pattern
//   (?:error: )?Received disconnect from ([0-9A-Fa-f:.]+)<tail>
// on plain ASCII text. The address class holds ':', so like RE2 this tries the
// longest address first and gives back characters until the tail parses.
Parse ParseSshDisconnect(std::string_view m, SshDisconnect* out) {
  const std::string_view whole = m;
  strutil::ConsumePrefix(&m, "error: ");
  if (!strutil::ConsumePrefix(&m, "Received disconnect from ")) return Parse::kNoMatch;
  if (!IsPlainAscii(whole)) return Parse::kUnsure;
  for (size_t ip = IpRun(m); ip > 0; --ip) {
    if (ParseSshDisconnectTail(m.substr(ip), out)) {
      out->ip = m.substr(0, ip);
      return Parse::kMatch;
    }
  }
  return Parse::kNoMatch;
}

// What RE2 gives for sshd's kInvalid pattern
//   Invalid user (.*) from ([0-9A-Fa-f:.]+)(?: port (\d+))?
// on plain ASCII text: the greedy user reaches the last " from " after which
// an address (a whole run of address characters: only " port" or the end may
// follow it) and an optional port end the message.
struct SshInvalidUser {
  std::string_view user, ip, port;
};

Parse ParseSshInvalidUser(std::string_view m, SshInvalidUser* out) {
  if (!strutil::ConsumePrefix(&m, "Invalid user ")) return Parse::kNoMatch;
  if (!IsPlainAscii(m)) return Parse::kUnsure;
  auto peer = [out](std::string_view t) {
    const size_t ip = IpRun(t);
    if (ip == 0) return false;
    std::string_view rest = t.substr(ip);
    std::string_view port;
    if (!rest.empty()) {
      if (!strutil::ConsumePrefix(&rest, " port ")) return false;
      const size_t digits = DigitRun(rest);
      if (digits == 0 || digits != rest.size()) return false;
      port = rest;
    }
    out->ip = t.substr(0, ip);
    out->port = port;
    return true;
  };
  for (size_t at = m.rfind(" from "); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : m.rfind(" from ", at - 1)) {
    if (peer(m.substr(at + 6))) {
      out->user = m.substr(0, at);
      return Parse::kMatch;
    }
  }
  return Parse::kNoMatch;
}

// kInvalidPreauth: input_userauth_request: invalid user (.*) \[preauth\]
// The user is everything between the prefix and a final " [preauth]".
Parse ParseSshInvalidPreauth(std::string_view m, std::string_view* user) {
  if (!strutil::ConsumePrefix(&m, "input_userauth_request: invalid user ")) return Parse::kNoMatch;
  if (!IsPlainAscii(m)) return Parse::kUnsure;
  if (!strutil::EndsWith(m, " [preauth]")) return Parse::kNoMatch;
  *user = m.substr(0, m.size() - 10);
  return Parse::kMatch;
}

// kReverse:
//   reverse mapping checking getaddrinfo for (\S+) \[([0-9A-Fa-f:.]+)\] failed(?: - POSSIBLE
//   BREAK-IN ATTEMPT!)?
// The host runs to the first white space (which must be a space), the address
// to the first character outside its class (which must be ']').
Parse ParseSshReverse(std::string_view m, std::string_view* host, std::string_view* ip) {
  if (!strutil::ConsumePrefix(&m, "reverse mapping checking getaddrinfo for ")) {
    return Parse::kNoMatch;
  }
  if (!IsPlainAscii(m)) return Parse::kUnsure;
  size_t h = 0;
  while (h < m.size() && IsRe2NonSpace(m[h])) ++h;
  if (h == 0) return Parse::kNoMatch;
  *host = m.substr(0, h);
  m.remove_prefix(h);
  if (!strutil::ConsumePrefix(&m, " [")) return Parse::kNoMatch;
  const size_t a = IpRun(m);
  if (a == 0) return Parse::kNoMatch;
  *ip = m.substr(0, a);
  m.remove_prefix(a);
  if (!strutil::ConsumePrefix(&m, "] failed")) return Parse::kNoMatch;
  return m.empty() || m == " - POSSIBLE BREAK-IN ATTEMPT!" ? Parse::kMatch : Parse::kNoMatch;
}

// kClosed:
//   Connection (?:closed|reset) by (?:(?:authenticating|invalid) user (.*) )?
//   ([0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*)(?: port (\d+))?(?: \[preauth\])?
// The address is a whole run of address characters holding a '.' or ':' (a
// space or the end follows it). RE2 prefers the user group, and in it the
// longest user: the last space after which the address and tail parse.
struct SshClosed {
  std::string_view user, ip, port;
};

bool ParseSshClosedPeer(std::string_view t, SshClosed* out) {
  const size_t ip = IpRun(t);
  const std::string_view addr = t.substr(0, ip);
  if (addr.find_first_of(".:") == std::string_view::npos) return false;
  t.remove_prefix(ip);
  std::string_view port;
  if (strutil::ConsumePrefix(&t, " port ")) {
    const size_t digits = DigitRun(t);
    if (digits == 0) return false;
    port = t.substr(0, digits);
    t.remove_prefix(digits);
  }
  if (!t.empty() && t != " [preauth]") return false;
  out->ip = addr;
  out->port = port;
  return true;
}

Parse ParseSshClosed(std::string_view m, SshClosed* out) {
  if (!strutil::ConsumePrefix(&m, "Connection closed by ") &&
      !strutil::ConsumePrefix(&m, "Connection reset by ")) {
    return Parse::kNoMatch;
  }
  if (!IsPlainAscii(m)) return Parse::kUnsure;
  std::string_view t = m;
  if (strutil::ConsumePrefix(&t, "authenticating user ") ||
      strutil::ConsumePrefix(&t, "invalid user ")) {
    for (size_t sp = t.rfind(' '); sp != std::string_view::npos;
         sp = sp == 0 ? std::string_view::npos : t.rfind(' ', sp - 1)) {
      if (ParseSshClosedPeer(t.substr(sp + 1), out)) {
        out->user = t.substr(0, sp);
        return Parse::kMatch;
      }
    }
  }
  out->user = {};
  return ParseSshClosedPeer(m, out) ? Parse::kMatch : Parse::kNoMatch;
}

// sshd messages rarer than the ones above (none in the loghub logs), each gated by
// its fixed leading text: OpenSSH 7-9's "Disconnecting ... user", its PAM failure,
// pre-authentication timeouts and protocol failures (scanners), AllowUsers/DenyUsers
// refusals and PermitRootLogin refusals. Returns whether one of them took `m`.
// Cold: GCC then keeps it small and does not inline the field setters into it,
// which otherwise pushed decoder.cc past its inlining budget and took
// EventFields::Store out of line on every line's path (+137 instructions a line).
[[gnu::cold]] bool DecodeSshdRare(std::string_view m, char c0, Event* ev) {
  if (c0 != 'D' && c0 != 'e' && c0 != 'f' && c0 != 'T' && c0 != 'b' && c0 != 'U' && c0 != 'R') {
    return false;
  }
  auto starts = [&m](std::string_view p) { return strutil::StartsWith(m, p); };
  std::string a, b, c, d;
  // "Disconnecting authenticating user root 1.2.3.4 port 22: Too many authentication
  // failures [preauth]" (OpenSSH 8+); the user may hold spaces, the peer is last.
  static const RE2* kDisconnecting = new RE2(
      R"(Disconnecting (?:(authenticating|invalid) )?user (.*) ([0-9A-Fa-f:.]+) port (\d+): (.*?)(?: \[preauth\])?)");
  std::string reason;
  if (starts("Disconnecting ") && RE2::FullMatch(m, *kDisconnecting, &a, &b, &c, &d, &reason)) {
    const bool too_many = strutil::StartsWith(reason, "Too many authentication failures");
    if (too_many) {
      SetOutcome(ev, "ssh_max_auth_exceeded", "failure");
    } else {
      SetOutcome(ev, "ssh_disconnect", "", "network");
    }
    Set(ev, "user.name", b);
    if (a == "invalid") Set(ev, "user.invalid", "true");
    SetSourceIp(ev, c);
    Set(ev, "source.port", d);
    if (!reason.empty()) Set(ev, "event.reason", reason);
    return true;
  }
  // OpenSSH 6-7: "Disconnecting: Too many authentication failures for root [preauth]"
  // (the loghub log has it), no peer in the line.
  static const RE2* kTooMany = new RE2(
      R"(Disconnecting: Too many authentication failures(?: for (invalid user )?(.*?))?(?: \[preauth\])?)");
  if (starts("Disconnecting: ") && RE2::FullMatch(m, *kTooMany, &a, &b)) {
    SetOutcome(ev, "ssh_max_auth_exceeded", "failure");
    if (!b.empty()) Set(ev, "user.name", b);
    if (!a.empty()) Set(ev, "user.invalid", "true");
    Set(ev, "event.reason", "Too many authentication failures");
    return true;
  }
  // "error: PAM: Authentication failure for [illegal user ]root from HOST": sshd's
  // own line beside "Failed keyboard-interactive/pam" (which the SSH rules count).
  static const RE2* kPamFailure =
      new RE2(R"(error: PAM: (.*?) for (illegal user |invalid user )?(.*) from (\S+))");
  if (starts("error: PAM: ") && RE2::FullMatch(m, *kPamFailure, &a, &b, &c, &d)) {
    SetOutcome(ev, "ssh_pam_failure", "failure");
    Set(ev, "user.name", c);
    if (!b.empty()) Set(ev, "user.invalid", "true");
    SetSourceIp(ev, d);
    Set(ev, "event.reason", a);
    return true;
  }
  // "fatal: Timeout before authentication for 1.2.3.4 port 22" (the port since 7.x).
  static const RE2* kTimeout =
      new RE2(R"((?:fatal: )?Timeout before authentication for ([0-9A-Fa-f:.]+)(?: port (\d+))?)");
  if ((starts("fatal: Timeout ") || starts("Timeout before ")) &&
      RE2::FullMatch(m, *kTimeout, &a, &b)) {
    SetOutcome(ev, "ssh_auth_timeout", "failure", "network");
    SetSourceIp(ev, a);
    if (!b.empty()) Set(ev, "source.port", b);
    return true;
  }
  // Protocol-level failures, mostly scanners: "banner exchange: Connection from IP port
  // P: invalid format", "Unable to negotiate with IP port P: no matching ...".
  static const RE2* kBanner =
      new RE2(R"((?:error: )?banner exchange: Connection from ([0-9A-Fa-f:.]+) port (\d+): (.*))");
  static const RE2* kNegotiate = new RE2(
      R"((?:error: )?Unable to negotiate with ([0-9A-Fa-f:.]+) port (\d+): (.*?)(?: \[preauth\])?)");
  if (((starts("banner exchange: ") || starts("error: banner exchange: ")) &&
       RE2::FullMatch(m, *kBanner, &a, &b, &c)) ||
      ((starts("Unable to negotiate ") || starts("error: Unable to negotiate ")) &&
       RE2::FullMatch(m, *kNegotiate, &a, &b, &c))) {
    SetOutcome(ev, "ssh_protocol_failure", "failure", "network");
    SetSourceIp(ev, a);
    Set(ev, "source.port", b);
    Set(ev, "event.reason", c);
    return true;
  }
  // "User root from 1.2.3.4 not allowed because not listed in AllowUsers" (the host
  // is a name with UseDNS), "User bob not allowed because account is locked".
  static const RE2* kNotAllowed = new RE2(R"(User (\S+) (?:from (\S+) )?not allowed because (.*))");
  if (starts("User ") && RE2::FullMatch(m, *kNotAllowed, &a, &b, &c)) {
    SetOutcome(ev, "ssh_user_not_allowed", "failure");
    Set(ev, "user.name", a);
    SetSourceIp(ev, b);
    Set(ev, "event.reason", c);
    return true;
  }
  // PermitRootLogin no on old sshd: "ROOT LOGIN REFUSED FROM 1.2.3.4 port 22".
  static const RE2* kRootRefused =
      new RE2(R"(ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?(?: \[preauth\])?)");
  if (starts("ROOT LOGIN REFUSED FROM ") && RE2::FullMatch(m, *kRootRefused, &a, &b)) {
    SetOutcome(ev, "ssh_root_login_refused", "failure");
    Set(ev, "user.name", "root");
    SetSourceIp(ev, a);
    if (!b.empty()) Set(ev, "source.port", b);
    return true;
  }
  return false;
}

}  // namespace

bool DecodeSshd(std::string_view msg, Event* ev) {
  static const RE2* kLogin = new RE2(
      R"(((?:Failed|Accepted)) (\S+) for (invalid user )?(.*) from ([0-9A-Fa-f:.]+) port (\d+)(?: (ssh\d?))?(?:: (.*))?)");
  static const RE2* kInvalid =
      new RE2(R"(Invalid user (.*) from ([0-9A-Fa-f:.]+)(?: port (\d+))?)");
  static const RE2* kInvalidPreauth =
      new RE2(R"(input_userauth_request: invalid user (.*) \[preauth\])");
  static const RE2* kReverse = new RE2(
      R"(reverse mapping checking getaddrinfo for (\S+) \[([0-9A-Fa-f:.]+)\] failed(?: - POSSIBLE BREAK-IN ATTEMPT!)?)");
  static const RE2* kAddrMap = new RE2(
      R"(Address ([0-9A-Fa-f:.]+) maps to (\S+), but this does not map back to the address(?: - POSSIBLE BREAK-IN ATTEMPT!)?)");
  static const RE2* kDisconnect = new RE2(
      R"((?:error: )?Received disconnect from ([0-9A-Fa-f:.]+)(?: port (\d+))?: ?(\d+): (.*?)(?: \[preauth\])?)");
  // The address must hold a '.' or ':', so that with the optional port a
  // greedy user name cannot leave only the port number ("40022") as the peer.
  static const RE2* kClosed = new RE2(
      R"(Connection (?:closed|reset) by (?:(?:authenticating|invalid) user (.*) )?([0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*)(?: port (\d+))?(?: \[preauth\])?)");
  static const RE2* kDisconnected = new RE2(
      R"(Disconnected from (?:(?:authenticating|invalid) user (.*) |user (.*) )?([0-9A-Fa-f:.]+) port (\d+)(?: \[preauth\])?)");
  static const RE2* kNoIdent =
      new RE2(R"(Did not receive identification string from ([0-9A-Fa-f:.]+)(?: port (\d+))?)");
  // OpenSSH 7.x writes it with "error: ", some builds without.
  static const RE2* kMaxAuth = new RE2(
      R"((?:error: )?maximum authentication attempts exceeded for (invalid user )?(.*) from ([0-9A-Fa-f:.]+) port (\d+)(?: ssh\d)?(?: \[preauth\])?)");
  static const RE2* kPamMore = new RE2(R"(PAM (\d+) more authentication failures?; (.*))");
  static const RE2* kConnFrom =
      new RE2(R"(Connection from ([0-9A-Fa-f:.]+) port (\d+) on ([0-9A-Fa-f:.]+) port (\d+).*)");

  std::string_view m = msg;
  // "message repeated 3 times: [ Failed password for ... ]"
  if (strutil::StartsWith(m, "message repeated ")) {
    size_t open = m.find("[ ");
    if (open != std::string_view::npos && strutil::EndsWith(m, "]")) {
      std::string_view times = m.substr(17, m.find(' ', 17) - 17);
      Set(ev, "event.repeat_count", times);
      m = m.substr(open + 2, m.size() - open - 3);
      while (!m.empty() && m.back() == ' ') m.remove_suffix(1);
    }
  }
  // Every pattern starts with a fixed text: checking it first skips the RE2
  // calls that cannot match (a failed RE2 call still costs a DFA walk).
  auto starts = [&m](std::string_view p) { return strutil::StartsWith(m, p); };
  // The common forms are parsed by hand (same result as their RE2 pattern,
  // tested on both); RE2 takes what the hand parser is unsure of (non-ASCII or
  // multi-line text).
  std::string a, b, c, d, e, f, g, h;
  // Each pattern's fixed text starts with its own letter: the first byte skips
  // the parsers that cannot match (pam_unix lines, a third of sshd's, try none).
  const char c0 = m.empty() ? '\0' : m[0];
  SshLogin login;
  Parse parsed = c0 == 'F' || c0 == 'A' ? ParseSshLogin(m, &login) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kLogin, &a, &b, &c, &d, &e, &f, &g, &h)) {
    login = {a, b, c, d, e, f, h};
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    const bool ok = login.result == "Accepted";
    SetOutcome(ev, "ssh_login", ok ? StaticText("success") : StaticText("failure"));
    Set(ev, "ssh.method", login.method);
    Set(ev, "user.name", login.user);
    if (!login.invalid.empty()) Set(ev, "user.invalid", "true");
    SetSourceIp(ev, login.ip);
    Set(ev, "source.port", login.port);
    if (!login.key.empty()) Set(ev, "ssh.key", login.key);
    return true;
  }
  SshInvalidUser inv;
  parsed = c0 == 'I' ? ParseSshInvalidUser(m, &inv) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kInvalid, &a, &b, &c)) {
    inv = {a, b, c};
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    SetOutcome(ev, "ssh_invalid_user", "failure");
    Set(ev, "user.name", inv.user);
    Set(ev, "user.invalid", "true");
    SetSourceIp(ev, inv.ip);
    if (!inv.port.empty()) Set(ev, "source.port", inv.port);
    return true;
  }
  std::string_view user;
  parsed = c0 == 'i' ? ParseSshInvalidPreauth(m, &user) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kInvalidPreauth, &a)) {
    user = a;
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    SetOutcome(ev, "ssh_invalid_user_request", "failure");
    Set(ev, "user.name", user);
    Set(ev, "user.invalid", "true");
    return true;
  }
  std::string_view host, ip;
  parsed = c0 == 'r' ? ParseSshReverse(m, &host, &ip) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kReverse, &a, &b)) {
    host = a;
    ip = b;
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    SetOutcome(ev, "ssh_reverse_mapping_failed", "unknown", "network");
    Set(ev, "source.domain", host);
    Set(ev, "source.ip", ip);
    Set(ev, "source.address", ip);
    return true;
  }
  if (starts("Address ") && RE2::FullMatch(m, *kAddrMap, &a, &b)) {
    SetOutcome(ev, "ssh_reverse_mapping_failed", "unknown", "network");
    Set(ev, "source.ip", a);
    Set(ev, "source.address", a);
    Set(ev, "source.domain", b);
    return true;
  }
  if ((starts("error: maximum authentication attempts exceeded for ") ||
       starts("maximum authentication attempts exceeded for ")) &&
      RE2::FullMatch(m, *kMaxAuth, &a, &b, &c, &d)) {
    SetOutcome(ev, "ssh_max_auth_exceeded", "failure");
    Set(ev, "user.name", b);
    if (!a.empty()) Set(ev, "user.invalid", "true");
    SetSourceIp(ev, c);
    Set(ev, "source.port", d);
    return true;
  }
  SshDisconnect disc;
  parsed = c0 == 'R' || c0 == 'e' ? ParseSshDisconnect(m, &disc) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kDisconnect, &a, &b, &c, &d)) {
    disc = {a, b, c, d};
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    SetOutcome(ev, "ssh_disconnect", "", "network");
    SetSourceIp(ev, disc.ip);
    if (!disc.port.empty()) Set(ev, "source.port", disc.port);
    Set(ev, "ssh.disconnect_code", disc.code);
    Set(ev, "event.reason", disc.reason);
    return true;
  }
  SshClosed closed;
  parsed = c0 == 'C' ? ParseSshClosed(m, &closed) : Parse::kNoMatch;
  if (parsed == Parse::kUnsure && RE2::FullMatch(m, *kClosed, &a, &b, &c)) {
    closed = {a, b, c};
    parsed = Parse::kMatch;
  }
  if (parsed == Parse::kMatch) {
    SetOutcome(ev, "ssh_connection_closed", "", "network");
    if (!closed.user.empty()) Set(ev, "user.name", closed.user);
    SetSourceIp(ev, closed.ip);
    if (!closed.port.empty()) Set(ev, "source.port", closed.port);
    return true;
  }
  if (starts("Disconnected from ") && RE2::FullMatch(m, *kDisconnected, &a, &b, &c, &d)) {
    SetOutcome(ev, "ssh_disconnect", "", "network");
    if (!a.empty()) Set(ev, "user.name", a);
    if (!b.empty()) Set(ev, "user.name", b);
    SetSourceIp(ev, c);
    Set(ev, "source.port", d);
    return true;
  }
  if (starts("Did not receive identification string from ") &&
      RE2::FullMatch(m, *kNoIdent, &a, &b)) {
    SetOutcome(ev, "ssh_no_identification", "failure", "network");
    SetSourceIp(ev, a);
    if (!b.empty()) Set(ev, "source.port", b);
    return true;
  }
  if (starts("Connection from ") && RE2::FullMatch(m, *kConnFrom, &a, &b, &c, &d)) {
    SetOutcome(ev, "ssh_connection", "", "network");
    SetSourceIp(ev, a);
    Set(ev, "source.port", b);
    Set(ev, "destination.ip", c);
    Set(ev, "destination.port", d);
    return true;
  }
  if (DecodeSshdRare(m, c0, ev)) return true;
  if (starts("PAM ") && RE2::FullMatch(m, *kPamMore, &a, &b)) {
    Set(ev, "event.repeat_count", a);
    DecodePam("sshd", strutil::StrCat("authentication failure; ", b), ev);
    return true;
  }
  if (const size_t pam = PamModulePrefix(m); pam != 0) {
    std::string_view rest = m.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) {
      return DecodePam(rest.substr(0, rest.find(':')), rest.substr(close + 3), ev);
    }
  }
  return false;
}

bool DecodeSudo(std::string_view msg, Event* ev) {
  // "alice : [reason ; ]TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash"
  std::string_view m = strutil::StripLeadingAsciiWhitespace(msg);
  size_t sep = m.find(" : ");
  if (sep == std::string_view::npos) {
    if (const size_t pam = PamModulePrefix(m); pam != 0) {
      std::string_view rest = m.substr(pam);
      size_t close = rest.find("): ");
      if (close != std::string_view::npos) return DecodePam("sudo", rest.substr(close + 3), ev);
    }
    return false;
  }
  std::string_view user = m.substr(0, sep);
  if (user.find(' ') != std::string_view::npos) return false;
  m.remove_prefix(sep + 3);
  std::string reason;
  bool any = false;
  while (!m.empty()) {
    std::string_view part;
    if (strutil::StartsWith(m, "COMMAND=")) {
      part = m;
      m = {};
    } else {
      size_t semi = m.find(" ; ");
      part = m.substr(0, semi);
      m.remove_prefix(semi == std::string_view::npos ? m.size() : semi + 3);
    }
    size_t eq = part.find('=');
    std::string_view key = eq == std::string_view::npos ? std::string_view() : part.substr(0, eq);
    bool is_kv = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
      return std::isupper(static_cast<unsigned char>(ch)) || ch == '_';
    });
    if (!is_kv) {
      if (!reason.empty()) reason += "; ";
      reason.append(part);
      continue;
    }
    std::string_view value = part.substr(eq + 1);
    any = true;
    if (key == "TTY") {
      Set(ev, "process.tty.name", value);
    } else if (key == "PWD") {
      Set(ev, "process.working_directory", value);
    } else if (key == "USER") {
      Set(ev, "user.target.name", value);
    } else if (key == "GROUP") {
      Set(ev, "group.target.name", value);
    } else if (key == "COMMAND") {
      Set(ev, "process.command_line", value);
      std::string_view exe = value.substr(0, value.find(' '));
      Set(ev, "process.executable", exe);
    } else if (key == "ENV") {
      Set(ev, "process.env", value);
    }
  }
  if (!any) return false;
  Set(ev, "user.name", user);
  if (reason.empty()) {
    SetOutcome(ev, "sudo_command", "success", "process");
  } else {
    Set(ev, "event.reason", reason);
    if (strutil::StrContains(reason, "incorrect password")) {
      SetOutcome(ev, "sudo_auth_failure", "failure");
    } else {
      SetOutcome(ev, "sudo_command", "failure", "process");
    }
  }
  return true;
}

bool DecodeSu(std::string_view msg, Event* ev) {
  static const RE2* kFailedTo = new RE2(R"(FAILED SU \(to (\S+)\) (\S+) on (\S+))");
  static const RE2* kOkTo = new RE2(R"(\(to (\S+)\) (\S+) on (\S+))");
  static const RE2* kBy = new RE2(R"((Successful|FAILED) su for (\S+) by (\S+))");
  static const RE2* kShort = new RE2(R"(([+-]) (\S+) (\S+):(\S+))");
  std::string a, b, c, d;
  if (RE2::FullMatch(msg, *kFailedTo, &a, &b, &c)) {
    SetOutcome(ev, "su", "failure");
    Set(ev, "user.target.name", a);
    Set(ev, "user.name", b);
    Set(ev, "process.tty.name", c);
    return true;
  }
  if (RE2::FullMatch(msg, *kOkTo, &a, &b, &c)) {
    SetOutcome(ev, "su", "success");
    Set(ev, "user.target.name", a);
    Set(ev, "user.name", b);
    Set(ev, "process.tty.name", c);
    return true;
  }
  if (RE2::FullMatch(msg, *kBy, &a, &b, &c)) {
    SetOutcome(ev, "su", a == "FAILED" ? StaticText("failure") : StaticText("success"));
    Set(ev, "user.target.name", b);
    Set(ev, "user.name", c);
    return true;
  }
  if (RE2::FullMatch(msg, *kShort, &a, &b, &c, &d)) {
    SetOutcome(ev, "su", a == "-" ? StaticText("failure") : StaticText("success"));
    Set(ev, "process.tty.name", b);
    Set(ev, "user.name", c);
    Set(ev, "user.target.name", d);
    return true;
  }
  if (const size_t pam = PamModulePrefix(msg); pam != 0) {
    std::string_view rest = msg.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) return DecodePam("su", rest.substr(close + 3), ev);
  }
  return false;
}

namespace {

// `s` ends in "(uid=<digits>)" after `min_prefix` or more bytes: returns where
// that suffix starts and sets *uid to the digits; npos otherwise.
size_t UidSuffix(std::string_view s, size_t min_prefix, std::string_view* uid) {
  if (s.empty() || s.back() != ')') return std::string_view::npos;
  size_t i = s.size() - 1;
  while (i > 0 && IsDigit(s[i - 1])) --i;
  const size_t digits = s.size() - 1 - i;
  if (digits == 0 || i < 5 + min_prefix || s.substr(i - 5, 5) != "(uid=") {
    return std::string_view::npos;
  }
  *uid = s.substr(i, digits);
  return i - 5;
}

// pam_unix's session lines, by hand with exactly the result of
//   session opened for user (\S+?)(?:\(uid=\d+\))?(?: by (\S*?)(?:\(uid=(\d+)\))?)?
//   session closed for user (\S+?)(?:\(uid=\d+\))?
// (full match; RE2's \s is [\t\n\f\r ]). `rest` is what follows "for user ";
// non-ASCII text is left to RE2 (kUnsure).
Parse ParsePamSession(std::string_view rest, bool opened, std::string_view* user,
                      std::string_view* by, std::string_view* by_uid) {
  *user = *by = *by_uid = {};
  if (!IsPlainAscii(rest)) return Parse::kUnsure;
  size_t space = 0;
  while (space < rest.size() && !IsRe2Space(rest[space])) ++space;
  std::string_view left = rest.substr(0, space);
  if (left.empty()) return Parse::kNoMatch;
  if (space < rest.size()) {
    // Only " by B" may follow, B without white space (possibly empty).
    if (!opened || rest.substr(space, 4) != " by ") return Parse::kNoMatch;
    std::string_view right = rest.substr(space + 4);
    for (char c : right) {
      if (IsRe2Space(c)) return Parse::kNoMatch;
    }
    std::string_view uid;
    const size_t cut = UidSuffix(right, 0, &uid);  // lazy B: shortest, the suffix is the uid
    *by = cut == std::string_view::npos ? right : right.substr(0, cut);
    if (cut != std::string_view::npos) *by_uid = uid;
  }
  std::string_view uid;
  const size_t cut = UidSuffix(left, 1, &uid);  // lazy user, at least one byte
  *user = cut == std::string_view::npos ? left : left.substr(0, cut);
  return Parse::kMatch;
}

}  // namespace

bool DecodePam(std::string_view service, std::string_view msg, Event* ev) {
  static const RE2* kSessionOpen =
      new RE2(R"(session opened for user (\S+?)(?:\(uid=\d+\))?(?: by (\S*?)(?:\(uid=(\d+)\))?)?)");
  static const RE2* kSessionClose = new RE2(R"(session closed for user (\S+?)(?:\(uid=\d+\))?)");
  static const RE2* kPasswdChanged = new RE2(R"(password changed for (\S+))");
  Set(ev, "pam.service", service);
  std::string a, b, c;
  if (strutil::StartsWith(msg, "authentication failure;")) {
    // Reused: one allocation per thread instead of one per line.
    thread_local std::vector<std::pair<std::string_view, std::string_view>> kv;
    kv.clear();
    ParseKeyValues(msg.substr(23), &kv);
    // pam_unix writes "... ruser=%s rhost=%s  user=%s": user is last and may
    // come from the network (FTP, web logins), so it is the rest of the line
    // and nothing after it (a "rhost=10.0.0.1" typed into a user name) is a key.
    std::string_view user, ruser, rhost, tty;
    const std::string_view text = msg.substr(23);
    for (const auto& [k, v] : kv) {
      if (strutil::Equals(k, "user")) {
        user = text.substr(static_cast<size_t>(v.data() - text.data()));
        while (!user.empty() && user.back() == ' ') user.remove_suffix(1);
        break;
      }
      if (strutil::Equals(k, "ruser")) ruser = v;
      if (strutil::Equals(k, "rhost")) rhost = v;
      if (strutil::Equals(k, "tty")) tty = v;
      if (strutil::Equals(k, "logname") && !v.empty()) Set(ev, "pam.logname", v);
    }
    SetOutcome(ev,
               strutil::Equals(service, "su")     ? StaticText("su")
               : strutil::Equals(service, "sudo") ? StaticText("sudo_auth_failure")
                                                  : StaticText("pam_auth_failure"),
               "failure");
    if (strutil::Equals(service, "su") || strutil::Equals(service, "sudo")) {
      if (!ruser.empty()) Set(ev, "user.name", ruser);
      if (!user.empty()) Set(ev, "user.target.name", user);
      if (ruser.empty() && !user.empty()) Set(ev, "user.name", user);
    } else {
      if (!user.empty()) Set(ev, "user.name", user);
      if (!ruser.empty()) Set(ev, "source.user.name", ruser);
    }
    if (!tty.empty()) Set(ev, "process.tty.name", tty);
    SetSourceIp(ev, rhost);
    return true;
  }
  if (strutil::StartsWith(msg, "check pass; user unknown")) {
    SetOutcome(ev, "pam_user_unknown", "failure");
    return true;
  }
  // The commonest PAM lines after failures: parsed by hand, RE2 when unsure.
  for (const bool opened : {true, false}) {
    const std::string_view prefix =
        opened ? "session opened for user " : "session closed for user ";
    if (!strutil::StartsWith(msg, prefix)) continue;
    std::string_view user, by, by_uid;
    Parse parsed = ParsePamSession(msg.substr(prefix.size()), opened, &user, &by, &by_uid);
    if (parsed == Parse::kUnsure) {
      const bool re2 = opened ? RE2::FullMatch(msg, *kSessionOpen, &a, &b, &c)
                              : RE2::FullMatch(msg, *kSessionClose, &a);
      parsed = re2 ? Parse::kMatch : Parse::kNoMatch;
      user = a;
      by = b;
      by_uid = c;
    }
    if (parsed != Parse::kMatch) return false;
    SetOutcome(ev, opened ? StaticText("session_opened") : StaticText("session_closed"), "success",
               "session");
    Set(ev, "user.name", user);
    if (!by.empty()) Set(ev, "source.user.name", by);
    if (!by_uid.empty()) Set(ev, "source.user.id", by_uid);
    return true;
  }
  if (strutil::StartsWith(msg, "password changed for ") &&
      RE2::FullMatch(msg, *kPasswdChanged, &a)) {
    SetOutcome(ev, "password_changed", "success", "iam");
    Set(ev, "user.name", a);
    return true;
  }
  return false;
}

bool DecodeAccountChange(std::string_view msg, Event* ev) {
  static const RE2* kNewUser = new RE2(
      R"(new user: name=([^,]+), UID=(\d+), GID=(\d+), home=([^,]*), shell=([^,]*)(?:, from=(.*))?)");
  static const RE2* kNewGroup = new RE2(R"(new group: name=([^,]+), GID=(\d+))");
  static const RE2* kGroupAdded =
      new RE2(R"(group added to (\S+): name=([^,]+)(?:, GID=(\d+))?.*)");
  static const RE2* kAddToGroup = new RE2(R"(add '([^']+)' to (?:shadow )?group '([^']+)')");
  static const RE2* kMembers = new RE2(R"(change user '([^']+)' (?:password|shell|home)?.*)");
  static const RE2* kDeleteUser = new RE2(R"(delete user '([^']+)')");
  static const RE2* kRemovedGroup = new RE2(R"(removed group '([^']+)'.*)");
  static const RE2* kGroupDeleted = new RE2(R"(group '([^']+)' removed.*)");
  static const RE2* kGpasswdAdd = new RE2(R"(user (\S+) added by (\S+) to group (\S+))");
  // userdel/usermod/gpasswd: "remove user 'x' from group 'sudo'" (also "shadow group"),
  // gpasswd -d: "user x removed by root from group sudo".
  static const RE2* kRemoveFromGroup =
      new RE2(R"(remove user '([^']+)' from (?:shadow )?group '([^']+)')");
  static const RE2* kGpasswdRemove = new RE2(R"(user (\S+) removed by (\S+) from group (\S+))");
  // usermod -L/-U: "lock user 'x' password", "unlock user 'x' password".
  static const RE2* kLock = new RE2(R"((lock|unlock) user '([^']+)' password)");
  // shadow's passwd: "password for 'x' changed by 'root'"; chage: "changed password
  // expiry for x".
  static const RE2* kPasswdBy = new RE2(R"(password for '([^']+)' changed by '([^']+)')");
  static const RE2* kExpiry = new RE2(R"(changed password expiry for (\S+))");
  std::string a, b, c, d, e, f;
  if (RE2::FullMatch(msg, *kNewUser, &a, &b, &c, &d, &e, &f)) {
    SetOutcome(ev, "user_created", "success", "iam");
    Set(ev, "user.target.name", a);
    Set(ev, "user.target.id", b);
    Set(ev, "group.id", c);
    Set(ev, "user.target.home", d);
    Set(ev, "user.target.shell", e);
    if (!f.empty()) Set(ev, "process.tty.name", f);
    return true;
  }
  if (RE2::FullMatch(msg, *kNewGroup, &a, &b)) {
    SetOutcome(ev, "group_created", "success", "iam");
    Set(ev, "group.name", a);
    Set(ev, "group.id", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kGroupAdded, &a, &b, &c)) {
    SetOutcome(ev, "group_created", "success", "iam");
    Set(ev, "group.name", b);
    if (!c.empty()) Set(ev, "group.id", c);
    Set(ev, "file.path", a);
    return true;
  }
  if (RE2::FullMatch(msg, *kAddToGroup, &a, &b)) {
    SetOutcome(ev, "user_added_to_group", "success", "iam");
    Set(ev, "user.target.name", a);
    Set(ev, "group.name", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kGpasswdAdd, &a, &b, &c)) {
    SetOutcome(ev, "user_added_to_group", "success", "iam");
    Set(ev, "user.target.name", a);
    Set(ev, "user.name", b);
    Set(ev, "group.name", c);
    return true;
  }
  if (RE2::FullMatch(msg, *kRemoveFromGroup, &a, &b)) {
    SetOutcome(ev, "user_removed_from_group", "success", "iam");
    Set(ev, "user.target.name", a);
    Set(ev, "group.name", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kGpasswdRemove, &a, &b, &c)) {
    SetOutcome(ev, "user_removed_from_group", "success", "iam");
    Set(ev, "user.target.name", a);
    Set(ev, "user.name", b);
    Set(ev, "group.name", c);
    return true;
  }
  if (RE2::FullMatch(msg, *kLock, &a, &b)) {
    SetOutcome(ev, a == "lock" ? StaticText("user_locked") : StaticText("user_unlocked"), "success",
               "iam");
    Set(ev, "user.target.name", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kPasswdBy, &a, &b)) {
    // As pam_unix's "password changed for x": user.name is the account changed (the
    // root password rule reads it), the one who changed it is source.user.name.
    SetOutcome(ev, "password_changed", "success", "iam");
    Set(ev, "user.name", a);
    Set(ev, "user.target.name", a);
    Set(ev, "source.user.name", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kExpiry, &a)) {
    SetOutcome(ev, "password_expiry_changed", "success", "iam");
    Set(ev, "user.target.name", a);
    return true;
  }
  if (RE2::FullMatch(msg, *kDeleteUser, &a)) {
    SetOutcome(ev, "user_deleted", "success", "iam");
    Set(ev, "user.target.name", a);
    return true;
  }
  if (RE2::FullMatch(msg, *kRemovedGroup, &a) || RE2::FullMatch(msg, *kGroupDeleted, &a)) {
    SetOutcome(ev, "group_deleted", "success", "iam");
    Set(ev, "group.name", a);
    return true;
  }
  if (RE2::FullMatch(msg, *kMembers, &a)) {
    SetOutcome(ev, "user_changed", "success", "iam");
    Set(ev, "user.target.name", a);
    return true;
  }
  if (const size_t pam = PamModulePrefix(msg); pam != 0) {
    std::string_view rest = msg.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) {
      return DecodePam(rest.substr(0, rest.find(':')), rest.substr(close + 3), ev);
    }
  }
  return false;
}

bool DecodeCron(std::string_view msg, Event* ev) {
  static const RE2* kCmd = new RE2(R"(\((\S+)\) CMD \((.*)\))");
  static const RE2* kCrontab =
      new RE2(R"(\((\S+)\) (REPLACE|BEGIN EDIT|END EDIT|LIST|DELETE) \((\S+)\))");
  std::string a, b, c;
  if (RE2::FullMatch(msg, *kCmd, &a, &b)) {
    SetOutcome(ev, "cron_command", "success", "process");
    Set(ev, "user.name", a);
    Set(ev, "process.command_line", b);
    return true;
  }
  if (RE2::FullMatch(msg, *kCrontab, &a, &b, &c)) {
    SetOutcome(ev, "", "success", "configuration");
    // crontab_replaced, crontab_begin_edit, crontab_end_edit, crontab_list, crontab_delete
    std::string action =
        b == "REPLACE" ? std::string("crontab_replaced") : "crontab_" + strutil::AsciiStrToLower(b);
    std::replace(action.begin(), action.end(), ' ', '_');
    Set(ev, "event.action", action);
    Set(ev, "user.name", a);
    Set(ev, "user.target.name", c);
    return true;
  }
  if (const size_t pam = PamModulePrefix(msg); pam != 0) {
    std::string_view rest = msg.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) {
      return DecodePam(rest.substr(0, rest.find(':')), rest.substr(close + 3), ev);
    }
  }
  return false;
}

namespace {

Parse ParseFtpConnection(std::string_view msg, std::string_view* ip, std::string_view* host) {
  if (!strutil::ConsumePrefix(&msg, "connection from ")) return Parse::kNoMatch;
  if (!IsPlainAscii(msg)) return Parse::kUnsure;
  size_t n = 0;
  while (n < msg.size() && IsIpChar(msg[n])) ++n;
  if (n == 0) return Parse::kNoMatch;
  *ip = msg.substr(0, n);
  msg.remove_prefix(n);
  auto tail_matches = [](std::string_view t) {
    return strutil::StartsWith(t, " at ") ||
           std::all_of(t.begin(), t.end(), [](char c) { return IsRe2Space(c); });
  };
  if (strutil::StartsWith(msg, " (")) {
    size_t close = msg.find(')', 2);
    if (close != std::string_view::npos && tail_matches(msg.substr(close + 1))) {
      *host = msg.substr(2, close - 2);
      return Parse::kMatch;
    }
  }
  *host = {};
  return tail_matches(msg) ? Parse::kMatch : Parse::kNoMatch;
}

}  // namespace

namespace {

// ProFTPD: `SERVER (HOST[IP]) - USER bob (Login failed): Incorrect password`,
// `... - USER bob: no such user found from HOST [IP] to ...`,
// `... - USER bob: Login successful.`,
// `... - Maximum login attempts (3) exceeded, connection refused`.
// The peer is taken from the prefix the server wrote, before the first
// "]) - ", so text in the user name cannot move it.
bool DecodeProftpd(std::string_view msg, Event* ev) {
  const size_t open = msg.find(" (");
  const size_t end = msg.find("]) - ");
  if (open == std::string_view::npos || end == std::string_view::npos || end < open) return false;
  const std::string_view peer = msg.substr(open + 2, end - open - 2);  // HOST[IP
  const size_t lb = peer.rfind('[');
  if (lb == std::string_view::npos) return false;
  std::string_view ip = peer.substr(lb + 1);
  std::string_view host = peer.substr(0, lb);
  // IPv4 clients of an IPv6 socket: ::ffff:1.2.3.4 is 1.2.3.4, as vsftpd's lines are read.
  if (strutil::StartsWith(ip, "::ffff:") && ip.find('.') != std::string_view::npos) {
    if (host == ip) host = ip.substr(7);
    ip.remove_prefix(7);
  }
  std::string_view text = msg.substr(end + 5);
  std::string_view user, reason;
  StaticText outcome = "";
  if (strutil::StartsWith(text, "USER ")) {
    text.remove_prefix(5);
    constexpr std::string_view kFailed = " (Login failed): ";
    constexpr std::string_view kNoSuchUser = ": no such user found";
    constexpr std::string_view kSuccess = ": Login successful.";
    if (size_t f = text.rfind(kFailed); f != std::string_view::npos) {
      user = text.substr(0, f);
      outcome = "failure";
      reason = text.substr(f + kFailed.size());
    } else if (size_t n = text.rfind(kNoSuchUser); n != std::string_view::npos) {
      user = text.substr(0, n);
      outcome = "failure";
      reason = "no such user";
    } else if (strutil::EndsWith(text, kSuccess)) {
      user = text.substr(0, text.size() - kSuccess.size());
      outcome = "success";
    } else {
      return false;
    }
  } else if (strutil::StartsWith(text, "Maximum login attempts")) {
    outcome = "failure";
    reason = text;
  } else if (strutil::StartsWith(text, "SECURITY VIOLATION: Root login attempted")) {
    // RootLogin off; proftpd also writes a "USER root (Login failed)" line, which
    // the FTP rules count, so this one has its own action.
    SetOutcome(ev, "ftp_root_login_refused", "failure");
    Set(ev, "user.name", "root");
    SetSourceIp(ev, ip);
    if (!host.empty() && host != ip) Set(ev, "source.domain", host);
    return true;
  } else {
    return false;
  }
  SetOutcome(ev, "ftp_login", outcome);
  if (!user.empty()) Set(ev, "user.name", user);
  SetSourceIp(ev, ip);
  if (!host.empty() && host != ip) Set(ev, "source.domain", host);
  if (!reason.empty()) Set(ev, "event.reason", reason);
  return true;
}

// Pure-FTPd: `(?@HOST) [WARNING] Authentication failed for user [bob]`,
// `(?@HOST) [INFO] bob is now logged in`.
bool DecodePureFtpd(std::string_view msg, Event* ev) {
  if (!strutil::StartsWith(msg, "(")) return false;
  const size_t close = msg.find(") [");
  if (close == std::string_view::npos) return false;
  const std::string_view who = msg.substr(1, close - 1);
  const size_t at = who.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view host = who.substr(at + 1);
  if (strutil::StartsWith(host, "::ffff:") && host.find('.') != std::string_view::npos) {
    host.remove_prefix(7);
  }
  std::string_view text = msg.substr(close + 2);
  const size_t level_end = text.find("] ");
  if (level_end == std::string_view::npos) return false;
  text.remove_prefix(level_end + 2);
  constexpr std::string_view kFailed = "Authentication failed for user [";
  constexpr std::string_view kLoggedIn = " is now logged in";
  if (strutil::StartsWith(text, kFailed) && strutil::EndsWith(text, "]")) {
    SetOutcome(ev, "ftp_login", "failure");
    const std::string_view user = text.substr(kFailed.size(), text.size() - kFailed.size() - 1);
    if (!user.empty()) Set(ev, "user.name", user);
  } else if (strutil::EndsWith(text, kLoggedIn)) {
    SetOutcome(ev, "ftp_login", "success");
    Set(ev, "user.name", text.substr(0, text.size() - kLoggedIn.size()));
  } else {
    return false;
  }
  SetSourceIp(ev, host);
  return true;
}

}  // namespace

bool DecodeFtp(std::string_view msg, Event* ev) {
  // vsftpd: [bob] FAIL LOGIN: Client "::ffff:1.2.3.4"; old ftpd: connection from IP (host) at ...
  static const RE2* kVsftpd = new RE2(
      R"re((?:\[pid \d+\] )?(?:\[([^\]]*)\] )?(OK|FAIL) (LOGIN|UPLOAD|DOWNLOAD|MKDIR|DELETE|RENAME|RMDIR): Client "(?:::ffff:)?([^"]+)"(?:, (.*))?)re");
  static const RE2* kConnection =
      new RE2(R"(connection from ([0-9A-Fa-f:.]+)(?: \(([^)]*)\))?(?: at .*)?\s*)");
  static const RE2* kFailedLogin = new RE2(
      R"((?:FTP )?LOGIN FAILED FROM ([0-9A-Fa-f:.]+)(?:, (\S+))?|failed login from ([0-9A-Fa-f:.]+).*)");
  // A user name holding ']' ("x] FAIL LOGIN: Client \"10.0.0.1\"") defeats the
  // first form; the second takes the user up to the last "] OK|FAIL ...: Client"
  // so the failure is still seen, from the real client.
  static const RE2* kVsftpdUserWithBracket = new RE2(
      R"re((?:\[pid \d+\] )?\[(.*)\] (OK|FAIL) (LOGIN|UPLOAD|DOWNLOAD|MKDIR|DELETE|RENAME|RMDIR): Client "(?:::ffff:)?([^"]+)"(?:, (.*))?)re");
  std::string a, b, c, d, e, f;
  // Both vsftpd forms hold `: Client "` and start with '[', "OK " or "FAIL ";
  // the others start with fixed text (old ftpd's "connection from " is a
  // quarter of the loghub Linux lines: it skips the search).
  const bool vsftpd = (strutil::StartsWith(msg, "[") || strutil::StartsWith(msg, "OK ") ||
                       strutil::StartsWith(msg, "FAIL ")) &&
                      strutil::StrContains(msg, ": Client \"");
  if (vsftpd && (RE2::FullMatch(msg, *kVsftpd, &a, &b, &c, &d, &e) ||
                 RE2::FullMatch(msg, *kVsftpdUserWithBracket, &a, &b, &c, &d, &e))) {
    const std::string action = "ftp_" + strutil::AsciiStrToLower(c);
    SetOutcome(ev, "", b == "OK" ? StaticText("success") : StaticText("failure"),
               c == "LOGIN" ? StaticText("authentication") : StaticText("file"));
    Set(ev, "event.action", action);
    if (!a.empty()) Set(ev, "user.name", a);
    SetSourceIp(ev, d);
    if (!e.empty()) Set(ev, "event.reason", e);
    return true;
  }
  // vsftpd's "[pid 2001] CONNECT: Client \"::ffff:1.2.3.4\"" (log_ftp_protocol or
  // syslog_enable), before any login.
  static const RE2* kVsftpdConnect =
      new RE2(R"re((?:\[pid \d+\] )?CONNECT: Client "(?:::ffff:)?([^"]+)")re");
  if ((strutil::StartsWith(msg, "[pid ") || strutil::StartsWith(msg, "CONNECT: ")) &&
      RE2::FullMatch(msg, *kVsftpdConnect, &a)) {
    SetOutcome(ev, "ftp_connection", "", "network");
    SetSourceIp(ev, a);
    return true;
  }
  std::string_view ip, host;
  Parse conn = ParseFtpConnection(msg, &ip, &host);
  if (conn == Parse::kUnsure && RE2::FullMatch(msg, *kConnection, &a, &b)) {
    ip = a;
    host = b;
    conn = Parse::kMatch;
  }
  if (conn == Parse::kMatch) {
    SetOutcome(ev, "ftp_connection", "", "network");
    SetSourceIp(ev, ip);
    if (!host.empty()) Set(ev, "source.domain", host);
    return true;
  }
  if ((strutil::StartsWith(msg, "FTP LOGIN FAILED FROM ") ||
       strutil::StartsWith(msg, "LOGIN FAILED FROM ") ||
       strutil::StartsWith(msg, "failed login from ")) &&
      RE2::FullMatch(msg, *kFailedLogin, &a, &b, &c)) {
    SetOutcome(ev, "ftp_login", "failure");
    SetSourceIp(ev, a.empty() ? c : a);
    if (!b.empty()) Set(ev, "user.name", b);
    return true;
  }
  if (const size_t pam = PamModulePrefix(msg); pam != 0) {
    std::string_view rest = msg.substr(pam);
    size_t close = rest.find("): ");
    if (close != std::string_view::npos) {
      return DecodePam(rest.substr(0, rest.find(':')), rest.substr(close + 3), ev);
    }
  }
  return DecodeProftpd(msg, ev) || DecodePureFtpd(msg, ev);
}

namespace {

// HTTP authentication failures in web server error logs (mod_auth_basic /
// mod_authn_file, nginx auth_basic): the user name tried and the protected path.
// Apache: `user NAME: authentication failure for "/path": Password Mismatch`,
// `user NAME not found: /path`; nginx: `user "NAME": password mismatch`,
// `user "NAME" was not found in "/etc/nginx/.htpasswd"`. The client address
// comes from the line's own [client ...] / `client:` part, never from here.
void DecodeHttpAuthFailure(std::string_view msg, Event* ev) {
  if (!strutil::StartsWith(msg, "user ")) return;
  std::string_view rest = msg.substr(5);
  std::string_view user, path;
  if (strutil::StartsWith(rest, "\"")) {  // nginx
    const size_t q = rest.find('"', 1);
    if (q == std::string_view::npos) return;
    std::string_view after = rest.substr(q + 1);
    if (!strutil::StartsWith(after, ": password mismatch") &&
        !strutil::StartsWith(after, " was not found in ")) {
      return;
    }
    user = rest.substr(1, q - 1);
  } else {  // Apache
    constexpr std::string_view kMismatch = ": authentication failure for \"";
    constexpr std::string_view kNotFound = " not found: ";
    if (size_t m = rest.find(kMismatch); m != std::string_view::npos) {
      user = rest.substr(0, m);
      path = rest.substr(m + kMismatch.size());
      path = path.substr(0, path.find('"'));
    } else if (size_t n = rest.find(kNotFound); n != std::string_view::npos) {
      user = rest.substr(0, n);
      path = rest.substr(n + kNotFound.size());
      path = path.substr(0, path.find(' '));
    } else {
      return;
    }
  }
  if (user.empty()) return;
  Set(ev, "user.name", user);
  if (!path.empty() && ev->fields.count("url.path") == 0) Set(ev, "url.path", path);
  SetOutcome(ev, "http_auth", "failure");
}

// --- auditd (/var/log/audit/audit.log, or its records through audisp-syslog) ---
// `type=SYSCALL msg=audit(1764324000.123:456): arch=c000003e syscall=59 ... comm="id"
// exe="/usr/bin/id" key="exec"` then, with `log_format = ENRICHED` (Debian's
// default), a 0x1d byte and the interpreted names: `ARCH=x86_64 SYSCALL=execve
// AUID="alice" UID="root"`. User-space records nest their own list in
// `msg='op=PAM:authentication acct="root" exe="/usr/sbin/sshd" addr=1.2.3.4 res=failed'`.
// Fields keep audit's own names (Sigma's auditd rules use them: `type`, `SYSCALL`,
// `a0`, `exe`, `comm`, `key`, `name` ...); a few are also given their ECS names.

// Audit writes an untrusted string that holds a space, a quote or a control byte
// as bare hex (`name=2F746D702F6120622E7368`); these keys hold such strings.
bool AuditHexEncodedKey(std::string_view key, bool execve) {
  if (execve && key.size() >= 2 && key[0] == 'a' && IsDigit(key[1])) return true;
  static constexpr std::string_view kKeys[] = {"name", "cwd",  "exe",  "comm",     "proctitle",
                                               "path", "data", "acct", "old-name", "new-name",
                                               "key",  "cmd",  "dir",  "file",     "ocomm"};
  for (std::string_view k : kKeys) {
    if (key == k) return true;
  }
  return false;
}

bool DecodeAuditHex(std::string_view hex, std::string* out) {
  if (hex.size() < 2 || hex.size() % 2 != 0) return false;
  out->clear();
  out->reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;  // audit writes upper case; lower case is a plain value
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi << 4 | lo);
    out->push_back(c == '\0' ? ' ' : c);  // proctitle separates arguments with NUL
  }
  while (!out->empty() && out->back() == ' ') out->pop_back();
  return true;
}

void DecodeAuditList(std::string_view s, bool execve, bool nested, Event* ev) {
  std::string decoded;
  while (!s.empty()) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\x1d')) s.remove_prefix(1);
    const size_t eq = s.find('=');
    const size_t sp = s.find(' ');
    if (eq == std::string_view::npos) break;
    if (sp != std::string_view::npos && sp < eq) {  // a word without a value
      s.remove_prefix(sp + 1);
      continue;
    }
    const std::string_view key = s.substr(0, eq);
    s.remove_prefix(eq + 1);
    std::string_view value;
    bool quoted = false;
    if (!s.empty() && (s.front() == '"' || s.front() == '\'')) {
      const char q = s.front();
      const size_t close = s.find(q, 1);
      value = s.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
      s.remove_prefix(close == std::string_view::npos ? s.size() : close + 1);
      quoted = true;
      if (q == '\'' && key == "msg" && !nested) {
        DecodeAuditList(value, execve, true, ev);
        continue;
      }
    } else {
      const size_t end = s.find_first_of(" \x1d");
      value = s.substr(0, end);
      s.remove_prefix(end == std::string_view::npos ? s.size() : end);
    }
    if (key.empty()) continue;
    if (!quoted && AuditHexEncodedKey(key, execve) && value != "(null)" &&
        DecodeAuditHex(value, &decoded)) {
      SetDynamic(ev, key, decoded);
    } else {
      SetDynamic(ev, key, value);
    }
  }
}

// `type=T msg=audit(SECONDS.MILLIS:SERIAL): fields`; false when `text` is not one.
bool DecodeAuditRecord(std::string_view text, Event* ev) {
  std::string_view node;  // `node=NAME ` first when the record names its host
  if (strutil::StartsWith(text, "node=")) {
    const size_t end = text.find(' ');
    if (end == std::string_view::npos) return false;
    node = text.substr(5, end - 5);
    text.remove_prefix(end + 1);
  }
  if (!strutil::StartsWith(text, "type=")) return false;
  const size_t sp = text.find(' ');
  if (sp == std::string_view::npos) return false;
  const std::string_view type = text.substr(5, sp - 5);
  std::string_view rest = text.substr(sp + 1);
  if (type.empty() || !strutil::ConsumePrefix(&rest, "msg=audit(")) return false;
  const size_t close = rest.find("):");
  if (close == std::string_view::npos) return false;
  const std::string_view stamp = rest.substr(0, close);  // 1764324000.123:456
  const size_t colon = stamp.find(':');
  const size_t dot = stamp.find('.');
  int64_t secs = 0, millis = 0;
  if (colon == std::string_view::npos || dot == std::string_view::npos || dot > colon ||
      !strutil::SimpleAtoi(stamp.substr(0, dot), &secs) ||
      !strutil::SimpleAtoi(stamp.substr(dot + 1, colon - dot - 1), &millis)) {
    return false;
  }
  SetTime(ev, absl::FromUnixSeconds(secs) + absl::Milliseconds(millis));
  Set(ev, "type", type);
  if (!node.empty()) Set(ev, "node", node);
  Set(ev, "auditd.log.sequence", stamp.substr(colon + 1));
  Set(ev, "message", text);
  const bool execve = type == "EXECVE";
  DecodeAuditList(rest.substr(close + 2), execve, false, ev);
  // ECS names beside audit's own, for search and the IOC lookup.
  auto copy = [&](std::string_view from, std::string_view to) {
    auto it = ev->fields.find(from);
    if (it == ev->fields.end() || it->second == "?" || it->second == "(null)") return;
    const std::string value(it->second);
    SetDynamic(ev, to, value);
  };
  copy("exe", "process.executable");
  copy("comm", "process.name");
  copy("pid", "process.pid");
  copy("acct", "user.name");
  copy("hostname", "source.domain");
  if (auto addr = ev->fields.find("addr"); addr != ev->fields.end() && LooksLikeIp(addr->second)) {
    const std::string ip(addr->second);
    Set(ev, "source.ip", ip);
  }
  if (auto res = ev->fields.find("res"); res != ev->fields.end()) {
    const bool ok = res->second == "success" || res->second == "yes" || res->second == "1";
    Set(ev, "event.outcome", ok ? StaticText("success") : StaticText("failure"));
  }
  AddUnique(&ev->products, "linux");
  AddUnique(&ev->services, "auditd");
  return true;
}

// vsftpd's own log (vsftpd.log, `xferlog_std_format=NO`, not syslog):
// `Sat Nov 28 10:00:00 2026 [pid 1234] [bob] FAIL LOGIN: Client "1.2.3.4"`.
// Read as the same program's syslog lines are, so the FTP rules see it.
bool DecodeVsftpdLog(std::string_view line, Event* ev) {
  if (line.size() < 31 || line[3] != ' ' || line[7] != ' ' || line[24] != ' ' ||
      !strutil::StartsWith(line.substr(25), "[pid ")) {
    return false;
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%a %b %e %H:%M:%S %Y", std::string(line.substr(0, 24)), absl::UTCTimeZone(),
                       &t, &err)) {
    return false;
  }
  SetTime(ev, t);
  const std::string_view msg = line.substr(25);
  const size_t pid_end = msg.find(']');
  if (pid_end != std::string_view::npos) Set(ev, "process.pid", msg.substr(5, pid_end - 5));
  Set(ev, "process.name", "vsftpd");
  Set(ev, "message", msg);
  AddUnique(&ev->products, "linux");
  AddUnique(&ev->services, "vsftpd");
  AddUnique(&ev->services, "auth");
  DecodeFtp(msg, ev);
  return true;
}

}  // namespace

bool DecodeWebError(std::string_view line, Event* ev) {
  // Apache 2.4: [Sat Nov 28 10:00:00.123456 2026] [core:error] [pid 1:tid 2] [client 1.2.3.4:5]
  // AH00126: msg Apache 2.2: [Sat Nov 28 10:00:00 2026] [error] [client 1.2.3.4] msg nginx:
  // 2026/11/28 10:00:00 [error] 1234#1234: *5 msg, client: 1.2.3.4, server: x, request: "GET /
  // HTTP/1.1"
  static const RE2* kApache = new RE2(
      R"(\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d(?:\.\d+)? \d{4})\] \[(?:([\w-]+):)?(\w+)\](?: \[pid (\d+)(?::tid \d+)?\])?(?: \[client ([0-9A-Fa-f:.]+?)(?::(\d+))?\])? (.*))");
  static const RE2* kNginx = new RE2(
      R"re((\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#\d+: (?:\*\d+ )?(.*?)(?:, client: ([0-9A-Fa-f:.]+))?(?:, server: ([^,]*))?(?:, request: "([^"]*)")?(?:, .*)?)re");
  std::string a, b, c, d, e, f, g;
  std::string request;
  if (RE2::FullMatch(line, *kApache, &a, &b, &c, &d, &e, &f, &g)) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime("%a %b %d %H:%M:%E*S %Y", a, absl::UTCTimeZone(), &t, &err)) SetTime(ev, t);
    if (!b.empty()) Set(ev, "log.logger", b);
    Set(ev, "log.level", c);
    if (!d.empty()) Set(ev, "process.pid", d);
    if (!e.empty()) {
      Set(ev, "source.ip", e);
      Set(ev, "source.address", e);
      Set(ev, "c-ip", e);
    }
    if (!f.empty()) Set(ev, "source.port", f);
    std::string_view msg = g;
    if (msg.size() > 9 && strutil::StartsWith(msg, "AH") && msg[7] == ':') {
      Set(ev, "error.code", msg.substr(0, 7));
      msg.remove_prefix(9);
    }
    Set(ev, "message", msg);
    // Apache 2.2/2.4 (PHP errors, mod_* messages) end with ", referer: URL".
    if (size_t ref = msg.rfind(", referer: "); ref != std::string_view::npos) {
      const std::string_view referrer = msg.substr(ref + 11);
      if (!referrer.empty() && referrer.find(' ') == std::string_view::npos) {
        Set(ev, "http.request.referrer", referrer);
        Set(ev, "cs-referer", referrer);
      }
    }
    static const RE2* kRequest = new RE2(
        R"(.*?((?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) \S+(?: HTTP/\d\.\d)?).*)");
    static const RE2* kPath = new RE2(
        R"(.*?(?:File does not exist|script not found or unable to stat|client denied by server configuration|Cannot serve directory|AH01276|AH01630)[^/]*(/\S*).*)");
    std::string path;
    if (RE2::FullMatch(msg, *kRequest, &request)) {
      // handled below
    } else if (RE2::FullMatch(msg, *kPath, &path)) {
      Set(ev, "file.path", path);
    }
    DecodeHttpAuthFailure(msg, ev);
    AddUnique(&ev->products, "apache");
  } else if (RE2::FullMatch(line, *kNginx, &a, &b, &c, &d, &e, &f, &g)) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime("%Y/%m/%d %H:%M:%S", a, absl::UTCTimeZone(), &t, &err)) SetTime(ev, t);
    Set(ev, "log.level", b);
    Set(ev, "process.pid", c);
    Set(ev, "message", d);
    if (!e.empty()) {
      Set(ev, "source.ip", e);
      Set(ev, "source.address", e);
      Set(ev, "c-ip", e);
    }
    if (!f.empty()) Set(ev, "server.address", f);
    request = g;
    static const RE2* kOpen = new RE2(R"re(.*?open\(\) "([^"]+)" failed.*)re");
    std::string path;
    if (RE2::FullMatch(d, *kOpen, &path)) Set(ev, "file.path", path);
    // nginx ends the line with `, host: "H"` and, when the client sent one,
    // `, referrer: "R"` (after the request, so the last ones are nginx's own).
    auto quoted = [line](std::string_view key) -> std::string_view {
      const size_t k = line.rfind(key);
      if (k == std::string_view::npos) return {};
      std::string_view rest = line.substr(k + key.size());
      const size_t q = rest.find('"');
      return q == std::string_view::npos ? std::string_view() : rest.substr(0, q);
    };
    if (std::string_view host = quoted(", host: \""); !host.empty()) Set(ev, "url.domain", host);
    if (std::string_view ref = quoted(", referrer: \""); !ref.empty()) {
      Set(ev, "http.request.referrer", ref);
      Set(ev, "cs-referer", ref);
    }
    DecodeHttpAuthFailure(d, ev);
    AddUnique(&ev->products, "nginx");
  } else {
    return false;
  }
  if (!request.empty()) {
    std::string_view r = request;
    size_t sp1 = r.find(' ');
    if (sp1 != std::string_view::npos) {
      std::string_view method = r.substr(0, sp1);
      std::string_view uri = r.substr(sp1 + 1);
      size_t sp2 = uri.rfind(" HTTP/");
      if (sp2 != std::string_view::npos) uri = uri.substr(0, sp2);
      Set(ev, "http.request.method", method);
      Set(ev, "cs-method", method);
      Set(ev, "url.original", uri);
      Set(ev, "c-uri", uri);
      Set(ev, "cs-uri-query", uri);
      Set(ev, "url.path", uri.substr(0, uri.find('?')));
    }
  }
  Set(ev, "event.category", "web");
  AddUnique(&ev->categories, "webserver");
  AddUnique(&ev->services, "error");
  return true;
}

bool DecodeWebAccess(std::string_view line, Event* ev) {
  // IP ident user [10/Oct/2000:13:55:36 -0700] "GET /p HTTP/1.1" 200 2326 "ref" "ua"
  std::string_view s = line;
  std::string_view ip = NextToken(&s);
  if (!LooksLikeIp(ip) && ip.find('.') == std::string_view::npos) return false;
  // Apache's vhost_combined (and nginx formats that start with $host) put the
  // virtual host, "www.example.org:443", before the client: then the second token
  // is the address and two more (ident, user) come before the time.
  std::string_view vhost;
  {
    std::string_view t = s;
    std::string_view second = NextToken(&t);
    const size_t lb = t.find(" [");
    if (!second.empty() && second != "-" && LooksLikeIp(second) && lb != std::string_view::npos &&
        t.substr(0, lb).find(' ') != std::string_view::npos) {
      vhost = ip;
      ip = second;
      s = t;
    }
  }
  std::string_view ident = NextToken(&s);
  // The user may be quoted or contain spaces in odd logs; take up to " [".
  size_t lb = s.find(" [");
  if (ident.empty() || lb == std::string_view::npos) return false;
  std::string_view user = s.substr(0, lb);
  s.remove_prefix(lb + 2);
  size_t rb = s.find("] \"");
  if (rb == std::string_view::npos) return false;
  std::string_view ts = s.substr(0, rb);
  s.remove_prefix(rb + 3);
  // Request: up to the closing quote followed by " status".
  size_t rq_end = std::string_view::npos;
  for (size_t i = 0; i + 5 < s.size() + 1; ++i) {
    if (s[i] == '"' && (i + 1 == s.size() || s[i + 1] == ' ') && (i == 0 || s[i - 1] != '\\')) {
      if (i + 4 < s.size() && IsDigit(s[i + 2]) && IsDigit(s[i + 3]) && IsDigit(s[i + 4])) {
        rq_end = i;
        break;
      }
    }
  }
  if (rq_end == std::string_view::npos) return false;
  std::string_view request = s.substr(0, rq_end);
  s.remove_prefix(rq_end + 2);
  std::string_view status = NextToken(&s);
  std::string_view bytes = NextToken(&s);
  std::string_view referrer, agent;
  if (strutil::StartsWith(s, "\"")) {
    size_t q = s.find("\" \"", 1);
    if (q != std::string_view::npos) {
      referrer = s.substr(1, q - 1);
      std::string_view rest = s.substr(q + 3);
      // The agent ends at its first unescaped quote (Apache writes \" inside it);
      // nginx formats may add fields after it ($request_time, "$http_x_forwarded_for").
      size_t endq = 0;
      while (endq < rest.size() && rest[endq] != '"') endq += rest[endq] == '\\' ? 2 : 1;
      agent = rest.substr(0, std::min(endq, rest.size()));
    } else if (s.size() >= 2 && strutil::EndsWith(s, "\"")) {
      referrer = s.substr(1, s.size() - 2);
    }
  }
  Set(ev, "source.ip", ip);
  Set(ev, "source.address", ip);
  Set(ev, "c-ip", ip);
  if (!vhost.empty()) {
    const size_t colon = vhost.rfind(':');
    if (colon != std::string_view::npos && colon + 1 < vhost.size() &&
        vhost.find(':') == colon) {  // "host:port"; an IPv6 vhost keeps its colons
      Set(ev, "url.domain", vhost.substr(0, colon));
      Set(ev, "url.port", vhost.substr(colon + 1));
    } else {
      Set(ev, "url.domain", vhost);
    }
  }
  if (user != "-") Set(ev, "user.name", user);
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%d/%b/%Y:%H:%M:%S %z", std::string(ts), &t, &err)) SetTime(ev, t);
  std::string_view method, uri, proto;
  {
    std::string_view r = request;
    size_t sp1 = r.find(' ');
    size_t sp2 = r.rfind(' ');
    if (sp1 != std::string_view::npos && sp2 > sp1 &&
        strutil::StartsWith(r.substr(sp2 + 1), "HTTP/")) {
      method = r.substr(0, sp1);
      uri = r.substr(sp1 + 1, sp2 - sp1 - 1);
      proto = r.substr(sp2 + 1);
    } else if (sp1 != std::string_view::npos) {
      method = r.substr(0, sp1);
      uri = r.substr(sp1 + 1);
    } else {
      uri = r;
    }
  }
  Set(ev, "http.request.line", request);
  if (!method.empty()) {
    Set(ev, "http.request.method", method);
    Set(ev, "cs-method", method);
  }
  // "-": no request line at all (a connection closed before it, status 408).
  if (uri != "-" && !uri.empty()) {
    Set(ev, "url.original", uri);
    Set(ev, "c-uri", uri);
    Set(ev, "cs-uri-query", uri);
    size_t qm = uri.find('?');
    Set(ev, "url.path", uri.substr(0, qm));
    Set(ev, "cs-uri-stem", uri.substr(0, qm));
    if (qm != std::string_view::npos) Set(ev, "url.query", uri.substr(qm + 1));
  }
  if (strutil::StartsWith(proto, "HTTP/")) {
    Set(ev, "http.version", proto.substr(5));
    Set(ev, "cs-version", proto);
  }
  Set(ev, "http.response.status_code", status);
  Set(ev, "sc-status", status);
  if (bytes != "-") Set(ev, "http.response.body.bytes", bytes);
  if (!referrer.empty() && referrer != "-") {
    Set(ev, "http.request.referrer", referrer);
    Set(ev, "cs-referer", referrer);
  }
  if (!agent.empty() && agent != "-") {
    Set(ev, "user_agent.original", agent);
    Set(ev, "cs-user-agent", agent);
  }
  Set(ev, "event.category", "web");
  int code = 0;
  if (strutil::SimpleAtoi(status, &code))
    Set(ev, "event.outcome", code >= 400 ? StaticText("failure") : StaticText("success"));
  AddUnique(&ev->categories, "webserver");
  AddUnique(&ev->products, "apache");
  AddUnique(&ev->products, "nginx");
  AddUnique(&ev->services, "access");
  return true;
}

namespace {

// Sysmon event ids to Sigma categories.
std::string_view SysmonCategory(int id) {
  switch (id) {
    case 1:
      return "process_creation";
    case 2:
      return "file_change";
    case 3:
      return "network_connection";
    case 4:
      return "sysmon_status";
    case 5:
      return "process_termination";
    case 6:
      return "driver_load";
    case 7:
      return "image_load";
    case 8:
      return "create_remote_thread";
    case 9:
      return "raw_access_thread";
    case 10:
      return "process_access";
    case 11:
      return "file_event";
    case 12:
    case 13:
    case 14:
      return "registry_event";
    case 15:
      return "create_stream_hash";
    case 16:
      return "sysmon_status";
    case 17:
    case 18:
      return "pipe_created";
    case 19:
    case 20:
    case 21:
      return "wmi_event";
    case 22:
      return "dns_query";
    case 23:
      return "file_delete";
    case 24:
      return "clipboard_change";
    case 25:
      return "process_tampering";
    case 26:
      return "file_delete_detected";
    case 27:
      return "file_block_executable";
    case 28:
      return "file_block_shredding";
    case 29:
      return "file_executable_detected";
    case 255:
      return "sysmon_error";
    default:
      return "";
  }
}

std::string_view ChannelService(std::string_view channel) {
  static const auto* kMap = new std::vector<std::pair<std::string_view, std::string_view>>{
      {"Security", "security"},
      {"System", "system"},
      {"Application", "application"},
      {"Microsoft-Windows-Sysmon/Operational", "sysmon"},
      {"Microsoft-Windows-PowerShell/Operational", "powershell"},
      {"Windows PowerShell", "powershell-classic"},
      {"Microsoft-Windows-Windows Defender/Operational", "windefend"},
      {"Microsoft-Windows-TaskScheduler/Operational", "taskscheduler"},
      {"Microsoft-Windows-WMI-Activity/Operational", "wmi"},
      {"Microsoft-Windows-DNS-Client/Operational", "dns-client"},
      {"DNS Server", "dns-server"},
      {"Microsoft-Windows-CodeIntegrity/Operational", "codeintegrity-operational"},
      {"Microsoft-Windows-Bits-Client/Operational", "bits-client"},
      {"Microsoft-Windows-AppLocker/EXE and DLL", "applocker"},
      {"Microsoft-Windows-AppLocker/MSI and Script", "applocker"},
      {"Microsoft-Windows-AppXDeploymentServer/Operational", "appxdeployment-server"},
      {"Microsoft-Windows-Windows Firewall With Advanced Security/Firewall", "firewall-as"},
      {"Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
       "terminalservices-localsessionmanager"},
      {"Microsoft-Windows-NTLM/Operational", "ntlm"},
      {"Microsoft-Windows-SMBClient/Security", "smbclient-security"},
      {"Microsoft-Windows-LSA/Operational", "lsa-server"},
      {"OpenSSH/Operational", "openssh"},
      {"Microsoft-Windows-Shell-Core/Operational", "shell-core"},
      {"Microsoft-Windows-DriverFrameworks-UserMode/Operational", "driver-framework"},
      {"Microsoft-Windows-Security-Mitigations/KernelMode", "security-mitigations"},
      {"Microsoft-Windows-Security-Mitigations/UserMode", "security-mitigations"},
      {"Microsoft-Windows-Diagnosis-Scripted/Operational", "diagnosis-scripted"},
      {"Microsoft-Windows-Kernel-ShimEngine/Operational", "shim-engine"},
      {"Microsoft-Windows-CAPI2/Operational", "capi2"},
      {"Microsoft-Windows-Ldap-Client/Debug", "ldap"},
      {"Microsoft-Windows-PrintService/Admin", "printservice-admin"},
      {"Microsoft-Windows-PrintService/Operational", "printservice-operational"},
      {"Microsoft-Windows-SmbClient/Connectivity", "smbclient-connectivity"},
      {"Microsoft-Windows-Windows Defender/WHC", "windefend"},
  };
  for (const auto& [ch, svc] : *kMap) {
    if (strutil::EqualsIgnoreCase(ch, channel)) return svc;
  }
  return "";
}

void ClassifyWindows(Event* ev) {
  AddUnique(&ev->products, "windows");
  auto find = [&](std::string_view k) -> const std::string_view* {
    auto it = ev->fields.find(k);
    return it == ev->fields.end() ? nullptr : &it->second;
  };
  const std::string_view* channel = find("Channel");
  const std::string_view* provider = find("Provider_Name");
  if (provider == nullptr) provider = find("SourceName");
  int eid = 0;
  if (const std::string_view* id = find("EventID")) (void)strutil::SimpleAtoi(*id, &eid);
  if (channel != nullptr) {
    std::string_view svc = ChannelService(*channel);
    if (!svc.empty()) AddName(&ev->services, svc);
  }
  bool sysmon = (channel != nullptr && strutil::StrContainsIgnoreCase(*channel, "Sysmon")) ||
                (provider != nullptr && strutil::StrContainsIgnoreCase(*provider, "Sysmon"));
  if (sysmon) {
    AddUnique(&ev->services, "sysmon");
    std::string_view cat = SysmonCategory(eid);
    if (!cat.empty()) AddName(&ev->categories, cat);
    if (eid == 12 || eid == 13 || eid == 14) {
      const std::string_view* type = find("EventType");
      AddName(&ev->categories, eid == 13   ? "registry_set"
                               : eid == 14 ? "registry_rename"
                                           : "registry_add");
      if (eid == 12 && type != nullptr && strutil::StrContains(*type, "Delete")) {
        AddUnique(&ev->categories, "registry_delete");
      }
    }
    if (eid == 26) AddUnique(&ev->categories, "file_delete");
    if (eid == 23 || eid == 26 || eid == 11 || eid == 2) AddUnique(&ev->categories, "file_access");
  } else if (channel != nullptr) {
    if (*channel == "Security" && eid == 4688) AddUnique(&ev->categories, "process_creation");
    if (strutil::StrContains(*channel, "PowerShell")) {
      if (eid == 4104) AddUnique(&ev->categories, "ps_script");
      if (eid == 4103) AddUnique(&ev->categories, "ps_module");
      if (eid == 400 || eid == 600) AddUnique(&ev->categories, "ps_classic_start");
      if (eid == 800) AddUnique(&ev->categories, "ps_classic_provider_start");
    }
  }
  if (channel != nullptr && *channel == "Security" && eid == 4688) {
    // Sigma's process_creation names, as pySigma's Windows audit mapping does.
    if (const std::string_view* v = find("NewProcessName")) ev->fields.try_emplace("Image", *v);
    if (const std::string_view* v = find("ParentProcessName")) {
      ev->fields.try_emplace("ParentImage", *v);
    }
  }
  if (const std::string_view* h = find("Computer")) Set(ev, "host.hostname", *h);
  if (const std::string_view* h = find("Hostname")) Set(ev, "host.hostname", *h);
  if (const std::string_view* v = find("IpAddress")) {
    std::string_view ip = *v;
    // Kerberos events write IPv4 clients as ::ffff:1.2.3.4; one address, one name.
    if (strutil::StartsWith(ip, "::ffff:") && ip.find('.') != std::string_view::npos) {
      ip.remove_prefix(7);
    }
    if (LooksLikeIp(ip)) Set(ev, "source.ip", std::string(ip));
  }
  if (const std::string_view* v = find("TargetUserName")) Set(ev, "user.name", *v);
  if (const std::string_view* v = find("Image")) Set(ev, "process.executable", *v);
  if (const std::string_view* v = find("CommandLine")) Set(ev, "process.command_line", *v);
  if (eid != 0) Set(ev, "event.code", strutil::StrCat(eid));
}

}  // namespace

namespace {

// Flattens JSON straight from the parser's events into dotted field names,
// without building a document (about twice as fast as parse-then-walk).
class FlattenSax {
 public:
  explicit FlattenSax(Event* ev) : ev_(ev) {}

  bool null() {
    EnterValue();  // Sigma's null means "absent"
    return true;
  }
  bool boolean(bool v) { return Emit(v ? "true" : "false"); }
  bool number_integer(int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return Emit(std::string_view(buf, r.ptr - buf));
  }
  bool number_unsigned(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return Emit(std::string_view(buf, r.ptr - buf));
  }
  bool number_float(double, const std::string& raw) { return Emit(raw); }
  bool string(std::string& v) { return Emit(v); }
  bool binary(std::vector<std::uint8_t>&) {
    EnterValue();
    return true;
  }
  bool start_object(std::size_t) {
    if (frames_.empty() && seen_root_) return false;
    seen_root_ = true;
    EnterValue();
    frames_.push_back({false, path_.size(), 0});
    return true;
  }
  bool end_object() {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    if (frames_.empty()) return false;  // the event must be an object
    EnterValue();
    frames_.push_back({true, path_.size(), 0});
    return true;
  }
  bool end_array() {
    frames_.pop_back();
    return true;
  }
  bool key(std::string& k) {
    path_.resize(frames_.back().base);
    if (!path_.empty()) path_.push_back('.');
    path_.append(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  struct Frame {
    bool array;
    size_t base;   // path length of the container
    size_t index;  // next element index (arrays)
  };
  // Inside an array, a value's path is the array's path plus its index.
  void EnterValue() {
    if (frames_.empty() || !frames_.back().array) return;
    Frame& f = frames_.back();
    path_.resize(f.base);
    if (!path_.empty()) path_.push_back('.');
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, f.index++);
    path_.append(buf, r.ptr - buf);
  }
  bool Emit(std::string_view v) {
    if (frames_.empty()) return false;  // a bare scalar is not an event
    EnterValue();
    ev_->fields.insert_or_assign(path_, v);
    return true;
  }

  Event* ev_;
  std::string path_;
  std::vector<Frame> frames_;
  bool seen_root_ = false;
};

}  // namespace

bool DecodeJson(std::string_view line, Event* ev) {
  FlattenSax sax(ev);
  if (!nlohmann::json::sax_parse(line.begin(), line.end(), &sax)) return false;
  // Windows XML-shaped events ({"Event":{"System":...,"EventData":...}}) and
  // Winlogbeat's ({"winlog":{"event_id":...,"event_data":{...}}}): Sigma rules
  // name their fields bare, so alias them.
  bool windows = false;
  std::vector<std::pair<std::string, std::string>> aliases;
  for (const auto& [k, v] : ev->fields) {
    std::string_view key = k;
    if (strutil::ConsumePrefix(&key, "Event.EventData.") ||
        strutil::ConsumePrefix(&key, "Event.UserData.")) {
      windows = true;
      if (strutil::ConsumePrefix(&key, "Data.") || key.find('.') == std::string_view::npos) {
        aliases.emplace_back(std::string(key), v);
      } else {
        // UserData.<Element>.<Field>
        size_t dot = key.rfind('.');
        aliases.emplace_back(std::string(key.substr(dot + 1)), v);
      }
    } else if (strutil::ConsumePrefix(&key, "winlog.event_data.") ||
               strutil::ConsumePrefix(&key, "winlog.user_data.")) {
      // Winlogbeat / Elastic Agent: the event's data under its own names.
      windows = true;
      aliases.emplace_back(std::string(key.substr(key.rfind('.') + 1)), v);
    } else if (strutil::StartsWith(key, "winlog.")) {
      // ... and the System part under ECS-style names.
      static constexpr std::pair<std::string_view, std::string_view> kSystem[] = {
          {"winlog.event_id", "EventID"},
          {"winlog.channel", "Channel"},
          {"winlog.provider_name", "Provider_Name"},
          {"winlog.computer_name", "Computer"},
          {"winlog.record_id", "EventRecordID"},
          {"winlog.task", "Task"},
          {"winlog.opcode", "Opcode"},
          {"winlog.process.pid", "ProcessID"},
          {"winlog.process.thread.id", "ThreadID"},
          {"winlog.user.identifier", "UserID"},
      };
      for (const auto& [from, to] : kSystem) {
        if (key == from) {
          windows = true;
          aliases.emplace_back(std::string(to), v);
        }
      }
    } else if (strutil::ConsumePrefix(&key, "Event.System.")) {
      windows = true;
      std::string name;
      for (std::string_view part : strutil::StrSplit(key, '.')) {
        if (part == "#attributes") continue;
        if (!name.empty()) name.push_back('_');
        name.append(part);
      }
      aliases.emplace_back(std::move(name), v);
    }
  }
  for (auto& [k, v] : aliases) {
    // Defender and others name fields "Threat Name"; Sigma rules say ThreatName.
    if (k.find(' ') != std::string::npos) {
      std::string compact;
      for (char c : k) {
        if (c != ' ') compact.push_back(c);
      }
      ev->fields.try_emplace(compact, v);
    }
    ev->fields.try_emplace(k, v);
  }
  if (!windows) {
    // NXLog flat Windows JSON.
    auto has = [&](const char* k) { return ev->fields.count(k) > 0; };
    windows = has("EventID") && (has("Channel") || has("SourceName")) &&
              (has("Hostname") || has("Computer"));
  }
  if (windows) ClassifyWindows(ev);
  // Event time: common JSON time keys.
  for (const char* key :
       {"@timestamp", "timestamp", "EventTime", "TimeCreated_SystemTime", "time", "UtcTime"}) {
    auto it = ev->fields.find(key);
    if (it == ev->fields.end()) continue;
    absl::Time t;
    std::string err;
    const std::string text(it->second);
    if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
        absl::ParseTime("%Y-%m-%d %H:%M:%E*S", text, absl::UTCTimeZone(), &t, &err)) {
      ev->time_unix_ns = absl::ToUnixNanos(t);
      break;
    }
  }
  return true;
}

void ResolveTimestamp(Event* ev) {
  if (!ev->timestamp_pending) return;
  ev->timestamp_pending = false;
  int64_t secs = ev->time_unix_ns / 1000000000;
  int64_t ns = ev->time_unix_ns % 1000000000;
  if (ns < 0) {
    ns += 1000000000;
    --secs;
  }
  static constexpr uint64_t kHash = EventFields::Hash("@timestamp");
  // A value set after the time (a data decoder's `@timestamp` field) stays, as
  // it did when the time was formatted at once.
  if (ev->fields.find("@timestamp", kHash) != ev->fields.end()) return;
  char buf[40];
  ev->fields.insert_or_assign_static("@timestamp", kHash,
                                     std::string_view(buf, FormatUnixTime(secs, ns, buf)));
}

absl::Status DecodeLine(std::string_view line, std::string_view source, InputFormat format,
                        Event* ev) {
  ev->Clear();
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  ev->raw = line;
  if (ev->borrow_line) ev->fields.BorrowFrom(line);
  if (!source.empty()) ev->fields.insert_or_assign("log.file.path", source);
  bool json = format == InputFormat::kJson ||
              (format == InputFormat::kAuto &&
               strutil::StartsWith(strutil::StripLeadingAsciiWhitespace(line), "{"));
  if (json) {
    if (DecodeJson(line, ev)) {
      // The server's own health events (server/health_events.h): the server honours this
      // source only for its internal agent, so agents cannot raise these rules.
      if (source == "siper:health") {
        auto dataset = ev->fields.find("event.dataset");
        if (dataset != ev->fields.end() && dataset->second == "siper.health") {
          AddUnique(&ev->products, "siper");
          AddUnique(&ev->services, "health");
        }
      }
      return absl::OkStatus();
    }
    ev->fields.clear();
    ev->products.clear();
    ev->services.clear();
    ev->categories.clear();
    if (!source.empty()) ev->fields.insert_or_assign("log.file.path", source);
    if (format == InputFormat::kJson) {
      return absl::InvalidArgumentError(strutil::StrCat("not a JSON object: ", line.substr(0, 80),
                                                        line.size() > 80 ? "..." : ""));
    }
  }
  // Each text decoder either takes the line or leaves nothing behind.
  auto reset = [&] {
    ev->fields.clear();
    if (!source.empty()) ev->fields.insert_or_assign("log.file.path", source);
  };
  if (DecodeSyslog(line, ev)) return absl::OkStatus();
  reset();
  if (DecodeWebAccess(line, ev)) return absl::OkStatus();
  reset();
  if (DecodeWebError(line, ev)) return absl::OkStatus();
  reset();
  if (DecodeVsftpdLog(line, ev)) return absl::OkStatus();
  reset();
  if (DecodeAuditRecord(line, ev)) return absl::OkStatus();
  reset();
  Set(ev, "message", line);
  return absl::OkStatus();
}

}  // namespace siper::rules

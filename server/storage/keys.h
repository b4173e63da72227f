// Key layouts of the store's column families (private to server/storage).
// All integers big-endian via common/key_codec.h, so byte order is time order.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_codec.h"

namespace siper::storage::keys {

// events:           server_time_ns i64 | agent_num u32 | seq u64        (20 bytes)
inline constexpr size_t kEventKeySize = 8 + 4 + 8;
// alerts:           event key | alert index within the event u32        (24 bytes)
inline constexpr size_t kAlertKeySize = kEventKeySize + 4;

inline std::string EventKey(int64_t time_ns, uint32_t agent_num, uint64_t seq) {
  std::string k;
  k.reserve(kEventKeySize);
  keycodec::AppendInt64(&k, time_ns);
  keycodec::AppendUint32(&k, agent_num);
  keycodec::AppendUint64(&k, seq);
  return k;
}

struct EventKeyParts {
  int64_t time_ns = 0;
  uint32_t agent_num = 0;
  uint64_t seq = 0;
};

// Parses the event key at the front of `key` (an event or alert key).
inline bool ParseEventKey(std::string_view key, EventKeyParts* out) {
  keycodec::KeyReader r(key);
  return r.ReadInt64(&out->time_ns) && r.ReadUint32(&out->agent_num) && r.ReadUint64(&out->seq);
}

inline std::string AlertKey(std::string_view event_key, uint32_t index) {
  std::string k(event_key);
  keycodec::AppendUint32(&k, index);
  return k;
}

// Time-range bound for keys that start with a time: prefix | i64.
inline std::string TimeBound(std::string_view prefix, int64_t time_ns) {
  std::string k(prefix);
  keycodec::AppendInt64(&k, time_ns);
  return k;
}

// event_seq (dedup, LastSeq, GetEvent), schema 4: one key per run of consecutive seqs
// of one write that share a server time,
//   agent_num u32 | first seq u64 -> server_time_ns i64 | last seq u64
// naming the events first..last (every seq in between) of that time. An 8-byte value
// (schema 3 wrote one key per event) names the key's seq alone. Each (agent, seq) is
// stored once, so runs never overlap: the run holding a seq is the last key at or
// before agent | seq (one SeekForPrev), if its last seq reaches it.
inline std::string EventSeqKey(uint32_t agent_num, uint64_t seq) {
  std::string k;
  keycodec::AppendUint32(&k, agent_num);
  keycodec::AppendUint64(&k, seq);
  return k;
}

struct SeqRun {
  uint32_t agent_num = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  int64_t time_ns = 0;
};

// Parses an event_seq entry of either layout; false when malformed.
inline bool ParseSeqRun(std::string_view key, std::string_view value, SeqRun* out) {
  keycodec::KeyReader r(key);
  if (!r.ReadUint32(&out->agent_num) || !r.ReadUint64(&out->first) || !r.done()) return false;
  if (value.size() == 8) {
    out->time_ns = keycodec::DecodeInt64(value.data());
    out->last = out->first;
    return true;
  }
  if (value.size() != 16) return false;
  out->time_ns = keycodec::DecodeInt64(value.data());
  out->last = keycodec::DecodeUint64(value.data() + 8);
  return out->last >= out->first;
}

inline std::string AgentPrefix(uint32_t agent_num) {
  std::string k;
  keycodec::AppendUint32(&k, agent_num);
  return k;
}

// events_by_agent: agent_num u32 | server_time_ns i64 | first seq u64 -> posting (below):
// one key per time of a write (the events of one Write call share one server time), the
// seqs of that agent's events of that time that the write stored.
inline std::string EventByAgentKey(uint32_t agent_num, int64_t time_ns, uint64_t seq) {
  std::string k;
  keycodec::AppendUint32(&k, agent_num);
  keycodec::AppendInt64(&k, time_ns);
  keycodec::AppendUint64(&k, seq);
  return k;
}

// alerts_by_agent: agent_num u32 | alert key of the first alert -> alert posting (below):
// one key per time of a write, the alerts of that agent's events of that time.
inline std::string AlertByAgentKey(uint32_t agent_num, std::string_view alert_key) {
  std::string k = AgentPrefix(agent_num);
  k.append(alert_key);
  return k;
}

// alerts_by_rule: len u32 | rule_id | alert key of the first alert -> alert posting (below):
// one key per rule and time of a write.
inline std::string RulePrefix(std::string_view rule_id) {
  std::string k;
  keycodec::AppendLengthPrefixed(&k, rule_id);
  return k;
}

// chain: commit time i64 | index u64 -> ChainRecord. Commit times never
// decrease, so key order is chain order, and a verify can start at a time.
inline std::string ChainKey(int64_t time_ns, uint64_t index) {
  std::string k;
  keycodec::AppendInt64(&k, time_ns);
  keycodec::AppendUint64(&k, index);
  return k;
}

// files: agent_num u32 | len u32 | path -> Event (the newest file event)
inline std::string FileKey(uint32_t agent_num, std::string_view path) {
  std::string k = AgentPrefix(agent_num);
  keycodec::AppendLengthPrefixed(&k, path);
  return k;
}
// files_by_hash: len u32 | sha256 | file key -> empty
inline std::string FileByHashKey(std::string_view sha256, std::string_view file_key) {
  std::string k;
  keycodec::AppendLengthPrefixed(&k, sha256);
  k.append(file_key);
  return k;
}

// ioc_feeds:   feed name -> IocFeedInfo
// ioc_entries: len u32 | feed | kind name len u32 | kind | value -> IocEntry. A feed's
// entries are one key range, so an import diffs and replaces them with one scan.
inline std::string IocFeedPrefix(std::string_view feed) {
  std::string k;
  keycodec::AppendLengthPrefixed(&k, feed);
  return k;
}
inline std::string IocEntryKey(std::string_view feed, std::string_view kind,
                               std::string_view value) {
  std::string k = IocFeedPrefix(feed);
  keycodec::AppendLengthPrefixed(&k, kind);
  k.append(value);
  return k;
}

// events_by_field: hour u32 | len u32 | field | len u32 | value | event key of the first
// event -> posting (below): one key per (field, value, time) of a write, the seqs of that
// agent's events of that time that have the value. hour = server time in whole hours
// since the epoch (UTC), first so that retention drops whole hours with one range delete;
// within an hour, one (field, value) is a contiguous run in time order.
inline constexpr int64_t kNsPerHour = int64_t{3600} * 1'000'000'000;
inline uint32_t HourOf(int64_t time_ns) {
  if (time_ns < 0) return 0;  // before 1970: no real server time, all in hour 0
  return static_cast<uint32_t>(time_ns / kNsPerHour);
}
inline std::string HourPrefix(uint32_t hour) {
  std::string k;
  keycodec::AppendUint32(&k, hour);
  return k;
}
inline std::string FieldIndexPrefix(uint32_t hour, std::string_view field, std::string_view value) {
  std::string k = HourPrefix(hour);
  keycodec::AppendLengthPrefixed(&k, field);
  keycodec::AppendLengthPrefixed(&k, value);
  return k;
}

// LEB128 varints, as the postings below store them.
inline void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
// Reads one varint at value[*i]; false when truncated or longer than 64 bits.
inline bool ReadVarint(std::string_view value, size_t* i, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (*i == value.size()) return false;
    const auto b = static_cast<uint8_t>(value[(*i)++]);
    if (shift == 63 && (b & 0x7e) != 0) return false;  // past 64 bits
    v |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Postings (schema 3). An index key of events_by_agent or events_by_field ends in the
// time, agent and seq of the first (lowest-seq) event it names; its value holds the seqs
// of the further events of the same time and agent, ascending, as LEB128 varints of the
// difference to the previous seq (never 0). An empty value names the key's event alone,
// which is what schema 2 wrote for every event, so a schema 2 index reads as is. Keys of
// one (prefix, time, agent) written by different writes are adjacent and their seqs may
// interleave: readers merge such a run (store.cc, PostingReader).
inline void AppendPosting(std::string* out, uint64_t prev_seq, uint64_t seq) {
  AppendVarint(out, seq - prev_seq);
}
// Appends `first` and the posting's seqs to `out`; false if the value is malformed
// (truncated, a zero or overflowing difference).
inline bool DecodePosting(uint64_t first, std::string_view value, std::vector<uint64_t>* out) {
  out->push_back(first);
  uint64_t prev = first;
  size_t i = 0;
  while (i < value.size()) {
    uint64_t d = 0;
    if (!ReadVarint(value, &i, &d)) return false;
    if (d == 0 || prev > std::numeric_limits<uint64_t>::max() - d) return false;
    prev += d;
    out->push_back(prev);
  }
  return true;
}
// How many events a posting names (the key's and the value's), or nullopt if malformed.
inline std::optional<uint64_t> PostingSize(std::string_view value) {
  uint64_t n = 1;
  for (char c : value) {
    if ((static_cast<uint8_t>(c) & 0x80) == 0) ++n;
  }
  if (!value.empty() && (static_cast<uint8_t>(value.back()) & 0x80) != 0) return std::nullopt;
  return n;
}

// Alert postings (schema 5). An alerts_by_agent or alerts_by_rule key ends in the alert
// key (time, agent, seq, index) of the first alert it names, the lowest (seq, index) of
// its time and agent in the write; its value holds the further alerts of the same time
// and agent, ascending by (seq, index), each as the LEB128 varint of its seq's difference
// to the previous alert's seq (0: the same event) and the varint of its index, which must
// then be greater than the previous index. An empty value names the key's alert alone,
// which is what schema 4 wrote for every alert, so a schema 4 index reads as is.
struct AlertRef {
  uint64_t seq = 0;
  uint32_t index = 0;
  friend bool operator==(const AlertRef&, const AlertRef&) = default;
  friend auto operator<=>(const AlertRef&, const AlertRef&) = default;
};
inline void AppendAlertPosting(std::string* out, AlertRef prev, AlertRef ref) {
  AppendVarint(out, ref.seq - prev.seq);
  AppendVarint(out, ref.index);
}
// Appends `first` and the posting's alerts to `out`; false if the value is malformed
// (truncated, an overflowing seq or index, alerts not strictly ascending).
inline bool DecodeAlertPosting(AlertRef first, std::string_view value, std::vector<AlertRef>* out) {
  out->push_back(first);
  AlertRef prev = first;
  size_t i = 0;
  while (i < value.size()) {
    uint64_t d = 0;
    uint64_t index = 0;
    if (!ReadVarint(value, &i, &d) || !ReadVarint(value, &i, &index)) return false;
    if (index > std::numeric_limits<uint32_t>::max() ||
        prev.seq > std::numeric_limits<uint64_t>::max() - d) {
      return false;
    }
    const AlertRef ref{prev.seq + d, static_cast<uint32_t>(index)};
    if (!(prev < ref)) return false;
    out->push_back(ref);
    prev = ref;
  }
  return true;
}

// field_counts: hour u32 | len u32 | field | len u32 | value -> count u64 (merge operands
// add, field_counts.h). The same prefix as events_by_field, so a value is keyed the same
// way (a long one by its first bytes and its SHA-256), and one field's values of an hour
// are one contiguous run. Field "" with value "" counts all events of the hour.
inline std::string FieldCountKey(uint32_t hour, std::string_view field, std::string_view value) {
  return FieldIndexPrefix(hour, field, value);
}
inline std::string HourEventsCountKey(uint32_t hour) { return FieldCountKey(hour, "", ""); }
inline std::string FieldCountsPrefix(uint32_t hour, std::string_view field) {
  std::string k = HourPrefix(hour);
  keycodec::AppendLengthPrefixed(&k, field);
  return k;
}

// incident_items: len u32 | incident id | kind u8 | seq u64 -> JSON. An incident's items
// (linked alerts, timeline entries, observables) are one key range, each kind in order.
inline std::string IncidentItemsPrefix(std::string_view incident_id) {
  std::string k;
  keycodec::AppendLengthPrefixed(&k, incident_id);
  return k;
}
inline std::string IncidentItemKey(std::string_view incident_id, char kind, uint64_t seq) {
  std::string k = IncidentItemsPrefix(incident_id);
  k.push_back(kind);
  keycodec::AppendUint64(&k, seq);
  return k;
}

// meta keys.
inline constexpr std::string_view kFieldIndexSinceKey = "field_index_since";
inline constexpr std::string_view kFieldCountsSinceKey = "field_counts_since";
inline constexpr std::string_view kChainAnchorKey = "chain_anchor";
inline constexpr std::string_view kSchemaVersionKey = "schema_version";
inline constexpr std::string_view kNextAgentNumKey = "next_agent_num";
inline std::string AgentNumKey(std::string_view agent_id) {
  return std::string("agent_num/").append(agent_id);
}

}  // namespace siper::storage::keys

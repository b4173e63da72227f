// Append-only, hash-chained audit log of analyst actions (who, when, what, before, after).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace siper::incidents {

struct AuditRecord {
  uint64_t seq = 0;  // 1, 2, 3 ... without gaps
  absl::Time time;
  std::string actor;      // certificate subject of the analyst, or "system"
  std::string action;     // e.g. "incident.transition"
  std::string target;     // e.g. "INC-2026-0001"
  nlohmann::json before;  // null when there was nothing before
  nlohmann::json after;   // null when nothing is left after
  std::string prev_hash;  // hash of the previous record; 64 zeros for the first
  std::string hash;       // SHA-256 hex over prev_hash and the canonical record
  // The stored JSON, AuditRecordToJson(record).dump(), made with the hash by
  // AuditLog::Append and moved out by TakeForWrite; empty for records built otherwise.
  // When set, it is what storage gets (`before`/`after` may then be left out).
  std::string text;
};

// 64 zeros: the prev_hash of record 1.
const std::string& AuditGenesisHash();

// SHA-256 hex of prev_hash, a newline and the canonical JSON (sorted keys, no spaces) of
// {seq, time (RFC 3339 ms), actor, action, target, before, after}.
std::string ComputeAuditHash(const AuditRecord& record);

nlohmann::json AuditRecordToJson(const AuditRecord& record);
absl::StatusOr<AuditRecord> AuditRecordFromJson(const nlohmann::json& j);
// From stored text (what storage returns).
absl::StatusOr<AuditRecord> AuditRecordFromJsonText(const std::string& text);

// Checks that seq runs 1..n without gaps, each prev_hash is the previous hash and each hash
// matches the record. That finds an edited, removed or reordered record; removing the tail
// is only found when `expected_head` (the last hash, kept or signed elsewhere) is given.
// The error names the first bad record.
[[nodiscard]] absl::Status VerifyAuditChain(const std::vector<AuditRecord>& records,
                                            const std::string& expected_head = "");

// In-memory log. Storage persists each appended record (key: seq) and reloads with Restore.
class AuditLog {
 public:
  AuditLog() = default;
  // Rebuilds from stored records after verifying them.
  static absl::StatusOr<AuditLog> Restore(std::vector<AuditRecord> records);

  const AuditRecord& Append(absl::Time time, const std::string& actor, const std::string& action,
                            const std::string& target, nlohmann::json before, nlohmann::json after);
  const std::vector<AuditRecord>& records() const { return records_; }
  // records()[index] to be stored. A record made by Append comes with its stored text
  // moved out of the log (it is written once; the log keeps what verifying and listing
  // need) and without `before` and `after`, which the text holds; others are copied whole.
  AuditRecord TakeForWrite(size_t index);
  const std::string& head() const;

 private:
  std::vector<AuditRecord> records_;
};

}  // namespace siper::incidents

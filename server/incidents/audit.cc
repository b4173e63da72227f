#include "server/incidents/audit.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/incidents/hash.h"
#include "server/incidents/json.h"
#include "server/incidents/model.h"

namespace siper::incidents {

const std::string& AuditGenesisHash() {
  static const auto* zeros = new std::string(64, '0');
  return *zeros;
}

namespace {

// The canonical JSON of the hashed fields is {"action","actor","after","before","seq",
// "target","time"} in nlohmann's sorted key order; the stored form (AuditRecordToJson's
// dump) adds "hash" and "prev_hash" between "before" and "seq". Both are built from the
// same two parts, so `before` and `after` are dumped once and never copied into a
// temporary object (an alert joining an incident appends one record per alert).
std::string Head(const AuditRecord& r, const std::string& after, const std::string& before) {
  std::string s = "{\"action\":";
  AppendJsonString(r.action, &s);
  s.append(",\"actor\":");
  AppendJsonString(r.actor, &s);
  s.append(",\"after\":").append(after);
  s.append(",\"before\":").append(before);
  return s;
}

std::string Tail(const AuditRecord& r) {
  std::string s = absl::StrCat(",\"seq\":", r.seq, ",\"target\":");
  AppendJsonString(r.target, &s);
  s.append(",\"time\":");
  AppendJsonString(FormatRfc3339(r.time), &s);
  s.push_back('}');
  return s;
}

std::string HashOf(const std::string& prev_hash, std::string_view canonical) {
  std::string text;
  text.reserve(prev_hash.size() + 1 + canonical.size());
  text.append(prev_hash).append("\n").append(canonical);
  return internal::Sha256Hex(text);
}

}  // namespace

std::string ComputeAuditHash(const AuditRecord& r) {
  return HashOf(r.prev_hash, absl::StrCat(Head(r, Dump(r.after), Dump(r.before)), Tail(r)));
}

nlohmann::json AuditRecordToJson(const AuditRecord& r) {
  return {{"seq", r.seq},       {"time", FormatRfc3339(r.time)},
          {"actor", r.actor},   {"action", r.action},
          {"target", r.target}, {"before", r.before},
          {"after", r.after},   {"prev_hash", r.prev_hash},
          {"hash", r.hash}};
}

absl::StatusOr<AuditRecord> AuditRecordFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
      !j.contains("hash") || !j.contains("prev_hash") || !j.contains("time")) {
    return absl::InvalidArgumentError(
        "audit record JSON needs seq, time, actor, action, target, before, after, prev_hash, hash");
  }
  AuditRecord r;
  try {
    r.seq = j.at("seq").get<uint64_t>();
    auto t = ParseRfc3339(j.at("time").get<std::string>());
    if (!t.ok()) return t.status();
    r.time = *t;
    r.actor = j.value("actor", "");
    r.action = j.value("action", "");
    r.target = j.value("target", "");
    r.before = j.value("before", nlohmann::json());
    r.after = j.value("after", nlohmann::json());
    r.prev_hash = j.at("prev_hash").get<std::string>();
    r.hash = j.at("hash").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("audit record JSON has a field of the wrong type: ", std::string(e.what())));
  }
  return r;
}

absl::Status VerifyAuditChain(const std::vector<AuditRecord>& records,
                              const std::string& expected_head) {
  std::string prev = AuditGenesisHash();
  for (size_t i = 0; i < records.size(); ++i) {
    const AuditRecord& r = records[i];
    const uint64_t want = i + 1;
    if (r.seq != want) {
      return absl::DataLossError(absl::StrCat(
          "audit record at position ", want, " has seq ", r.seq,
          ": a record was removed or the records were reordered; restore the log from backup"));
    }
    if (r.prev_hash != prev) {
      return absl::DataLossError(
          absl::StrCat("audit record ", r.seq, " does not follow the hash of record ", r.seq - 1,
                       ": a record before it was changed, removed or reordered"));
    }
    if (ComputeAuditHash(r) != r.hash) {
      return absl::DataLossError(absl::StrCat("audit record ", r.seq, " (", r.action, " on ",
                                              r.target, ") was edited: its hash does not match"));
    }
    prev = r.hash;
  }
  if (!expected_head.empty() && prev != expected_head) {
    return absl::DataLossError(absl::StrCat("audit log ends at hash ", prev,
                                            " but the recorded head is ", expected_head,
                                            ": records were removed from the end"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AuditLog> AuditLog::Restore(std::vector<AuditRecord> records) {
  if (absl::Status st = VerifyAuditChain(records); !st.ok()) return st;
  AuditLog log;
  log.records_ = std::move(records);
  return log;
}

const AuditRecord& AuditLog::Append(absl::Time time, const std::string& actor,
                                    const std::string& action, const std::string& target,
                                    nlohmann::json before, nlohmann::json after) {
  AuditRecord r;
  r.seq = records_.size() + 1;
  // Kept at millisecond precision, the precision the record is hashed and stored with.
  r.time = absl::FromUnixMillis(absl::ToUnixMillis(time));
  r.actor = actor;
  r.action = action;
  r.target = target;
  r.before = std::move(before);
  r.after = std::move(after);
  r.prev_hash = head();
  const std::string head_part = Head(r, Dump(r.after), Dump(r.before));
  const std::string tail_part = Tail(r);
  r.hash = HashOf(r.prev_hash, absl::StrCat(head_part, tail_part));
  r.text = head_part;
  r.text.append(",\"hash\":");
  AppendJsonString(r.hash, &r.text);
  r.text.append(",\"prev_hash\":");
  AppendJsonString(r.prev_hash, &r.text);
  r.text.append(tail_part);
  records_.push_back(std::move(r));
  return records_.back();
}

AuditRecord AuditLog::TakeForWrite(size_t index) {
  AuditRecord& r = records_.at(index);
  if (r.text.empty()) return r;  // not made by Append: the writer builds the text
  // The text holds everything the write needs: no copy of `before` and `after` (a JSON tree
  // each, copied and freed under the book's lock for every alert that joins an incident).
  AuditRecord out;
  out.seq = r.seq;
  out.time = r.time;
  out.actor = r.actor;
  out.action = r.action;
  out.target = r.target;
  out.prev_hash = r.prev_hash;
  out.hash = r.hash;
  out.text = std::move(r.text);
  r.text.clear();
  return out;
}

const std::string& AuditLog::head() const {
  return records_.empty() ? AuditGenesisHash() : records_.back().hash;
}

absl::StatusOr<AuditRecord> AuditRecordFromJsonText(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::DataLossError("a stored audit record is not valid JSON; the trail was damaged");
  }
  return AuditRecordFromJson(j);
}

}  // namespace siper::incidents

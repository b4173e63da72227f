#include "server/storage/event_codec.h"

#include <cstdint>
#include <string_view>

namespace siper::storage::internal {
namespace {

// Writes v as a protobuf varint at p; returns the byte after it.
char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

constexpr uint32_t kFieldsNumber = siper::v1::Event::kFieldsFieldNumber;
constexpr uint32_t kLengthDelimited = 2;
// Map entry: key = 1, value = 2, both length-delimited.
constexpr char kEntryKeyTag = (1 << 3) | kLengthDelimited;
constexpr char kEntryValueTag = (2 << 3) | kLengthDelimited;

// Appends the map entries (key, value) as protobuf's entries of map field kNumber.
template <uint32_t kNumber = kFieldsNumber, typename Entries>
void AppendFields(const Entries& entries, std::string* out) {
  // Per entry: field tag, entry length, key tag and length (one buffer, one append),
  // the key, value tag and length, the value.
  char head[2 + 10 + 1 + 10];
  char mid[1 + 10];
  for (const auto& [key, value] : entries) {
    const size_t entry =
        2 + VarintSize(key.size()) + key.size() + VarintSize(value.size()) + value.size();
    char* p = PutVarint(head, (kNumber << 3) | kLengthDelimited);
    p = PutVarint(p, entry);
    *p++ = kEntryKeyTag;
    p = PutVarint(p, key.size());
    out->append(head, static_cast<size_t>(p - head));
    out->append(key.data(), key.size());
    p = mid;
    *p++ = kEntryValueTag;
    p = PutVarint(p, value.size());
    out->append(mid, static_cast<size_t>(p - mid));
    out->append(value.data(), value.size());
  }
}

// A length-delimited field (string, bytes); proto3 omits an empty one.
void AppendString(uint32_t number, std::string_view v, std::string* out) {
  if (v.empty()) return;
  char head[5 + 10];
  char* p = PutVarint(head, (number << 3) | kLengthDelimited);
  p = PutVarint(p, v.size());
  out->append(head, static_cast<size_t>(p - head));
  out->append(v.data(), v.size());
}

// A varint field (uint64, int64 as its two's complement, uint32); proto3 omits a zero.
void AppendVarintField(uint32_t number, uint64_t v, std::string* out) {
  if (v == 0) return;
  char buf[5 + 10];
  char* p = PutVarint(buf, number << 3);
  p = PutVarint(p, v);
  out->append(buf, static_cast<size_t>(p - buf));
}

}  // namespace

void AppendAlert(const siper::v1::Alert& a,
                 std::span<const std::pair<std::string_view, std::string_view>> fields,
                 std::string* out) {
  if (fields.empty()) {
    a.AppendToString(out);
    return;
  }
  using A = siper::v1::Alert;
  static_assert(
      A::kIdFieldNumber == 1 && A::kRuleIdFieldNumber == 2 && A::kTitleFieldNumber == 3 &&
          A::kLevelFieldNumber == 4 && A::kAgentIdFieldNumber == 5 && A::kSeqFieldNumber == 6 &&
          A::kTimeNsFieldNumber == 7 && A::kFieldsFieldNumber == 8 && A::kTagsFieldNumber == 9 &&
          A::kSourceFieldNumber == 10 && A::kLineFieldNumber == 11 && A::kCountFieldNumber == 12,
      "AppendAlert writes siper.v1.Alert's fields by number: keep them in step");
  size_t bytes = out->size() + a.id().size() + a.rule_id().size() + a.title().size() +
                 a.level().size() + a.agent_id().size() + a.source().size() + a.line().size() + 64;
  for (const auto& [key, value] : fields) bytes += 2 * 5 + 2 + key.size() + value.size();
  for (const std::string& tag : a.tags()) bytes += 6 + tag.size();
  out->reserve(bytes);
  // In field-number order, as protobuf writes them.
  AppendString(1, a.id(), out);
  AppendString(2, a.rule_id(), out);
  AppendString(3, a.title(), out);
  AppendString(4, a.level(), out);
  AppendString(5, a.agent_id(), out);
  AppendVarintField(6, a.seq(), out);
  AppendVarintField(7, static_cast<uint64_t>(a.time_ns()), out);
  AppendFields<A::kFieldsFieldNumber>(fields, out);
  for (const std::string& tag : a.tags()) {
    // A repeated element is written even when empty.
    char head[1 + 10];
    char* p = head;
    *p++ = static_cast<char>((9 << 3) | kLengthDelimited);
    p = PutVarint(p, tag.size());
    out->append(head, static_cast<size_t>(p - head));
    out->append(tag);
  }
  AppendString(10, a.source(), out);
  AppendString(11, a.line(), out);
  AppendVarintField(12, a.count(), out);
}

void SerializeEvent(siper::v1::Event& e, std::string* out) {
  static_assert(kFieldsNumber == 20, "fields must stay the highest field number of Event");
  // Everything but the map, by protobuf; the map is moved out and back (O(1) swaps).
  google::protobuf::Map<std::string, std::string> fields;
  fields.swap(*e.mutable_fields());
  e.SerializeToString(out);
  fields.swap(*e.mutable_fields());
  AppendFields(e.fields(), out);
}

void SerializeEvent(const siper::v1::Event& e,
                    std::span<const std::pair<std::string_view, std::string_view>> fields,
                    std::string* out) {
  e.SerializeToString(out);
  if (fields.empty()) return;
  size_t bytes = out->size();
  for (const auto& [key, value] : fields) bytes += 2 * 5 + 2 + key.size() + value.size();
  out->reserve(bytes);
  AppendFields(fields, out);
}

}  // namespace siper::storage::internal

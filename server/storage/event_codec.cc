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

// Appends the map entries (key, value) as protobuf's field 20 entries.
template <typename Entries>
void AppendFields(const Entries& entries, std::string* out) {
  // Per entry: field tag, entry length, key tag and length (one buffer, one append),
  // the key, value tag and length, the value.
  char head[2 + 10 + 1 + 10];
  char mid[1 + 10];
  for (const auto& [key, value] : entries) {
    const size_t entry =
        2 + VarintSize(key.size()) + key.size() + VarintSize(value.size()) + value.size();
    char* p = PutVarint(head, (kFieldsNumber << 3) | kLengthDelimited);
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

}  // namespace

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

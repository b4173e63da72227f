#include "server/storage/event_codec.h"

#include <cstdint>
#include <string_view>

namespace siper::storage::internal {
namespace {

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
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

}  // namespace

void SerializeEvent(siper::v1::Event& e, std::string* out) {
  static_assert(kFieldsNumber == 20, "fields must stay the highest field number of Event");
  // Everything but the map, by protobuf; the map is moved out and back (O(1) swaps).
  google::protobuf::Map<std::string, std::string> fields;
  fields.swap(*e.mutable_fields());
  e.SerializeToString(out);
  fields.swap(*e.mutable_fields());
  const auto& map = e.fields();
  for (const auto& [key, value] : map) {
    const size_t entry =
        2 + VarintSize(key.size()) + key.size() + VarintSize(value.size()) + value.size();
    AppendVarint(out, (kFieldsNumber << 3) | kLengthDelimited);
    AppendVarint(out, entry);
    out->push_back(kEntryKeyTag);
    AppendVarint(out, key.size());
    out->append(key);
    out->push_back(kEntryValueTag);
    AppendVarint(out, value.size());
    out->append(value);
  }
}

}  // namespace siper::storage::internal

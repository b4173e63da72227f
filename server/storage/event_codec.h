// The stored form of an event (private to server/storage).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "siper/v1/events.pb.h"

namespace siper::storage::internal {

// Writes the protobuf wire form of `e` to *out (replacing its contents): the same
// bytes as e.SerializeToString(out) for an event without unknown fields, and
// parsed by ParseFromString as always. The map `fields` (number 20, the highest,
// so protobuf writes it last) is encoded here: protobuf's generic map code sizes
// every entry in a first pass, serializes it through the map-entry helpers and
// checks keys and values for UTF-8 once more, which was a tenth of the writer
// thread's time (the server has made every field valid UTF-8 already; a field
// that is not stays as it is, as protobuf's serializer leaves it, and reads
// back as DataLoss). `e` is unchanged afterwards; it is non-const because its
// map is moved out and back while the other fields are serialized.
void SerializeEvent(siper::v1::Event& e, std::string* out);

// The same for an event whose fields are given as views instead (EventRecord::fields;
// e.fields() must be empty): the bytes protobuf writes for `e` with these entries in its
// map, in this order. Nothing is checked: the views must be valid UTF-8 (ingest makes them
// so). With no views, protobuf's own serialization of `e`.
void SerializeEvent(const siper::v1::Event& e,
                    std::span<const std::pair<std::string_view, std::string_view>> fields,
                    std::string* out);

// Appends the protobuf wire form of alert `a` with `fields` as the entries of its map
// `fields` (number 8), in this order, to *out: the bytes protobuf writes for `a` with these
// entries in its map. Every field is encoded here (the map lies between other fields, so
// protobuf cannot write a part of it), for an alert without unknown fields and with an
// empty a.fields(); nothing is checked (the views must be valid UTF-8, as ingest makes
// them). With no views, protobuf's own serialization of `a` (a.AppendToString).
void AppendAlert(const siper::v1::Alert& a,
                 std::span<const std::pair<std::string_view, std::string_view>> fields,
                 std::string* out);

}  // namespace siper::storage::internal

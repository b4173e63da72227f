#include "server/storage/event_codec.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/util/message_differencer.h"

namespace siper::storage::internal {
namespace {

// SerializeEvent must write exactly protobuf's bytes (the chain digests and every
// reader see the same values as before) and leave the event as it was.
void ExpectSameAsProtobuf(siper::v1::Event e) {
  const siper::v1::Event before = e;
  const std::string want = e.SerializeAsString();
  std::string got = "left over from the previous event";
  SerializeEvent(e, &got);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, before));
  siper::v1::Event back;
  ASSERT_TRUE(back.ParseFromString(got));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, before));
}

TEST(EventCodecTest, WritesProtobufsBytes) {
  siper::v1::Event e;
  ExpectSameAsProtobuf(e);  // empty: no bytes at all

  e.set_agent_id("agent-7");
  e.set_seq(123456789012);
  e.set_agent_time_ns(-5);
  e.set_server_time_ns(1'764'000'000'000'000'000);
  e.mutable_log()->set_source("/var/log/auth.log");
  e.mutable_log()->set_line(std::string("Failed password for root\xff\x00 from", 30));
  ExpectSameAsProtobuf(e);  // no fields

  (*e.mutable_fields())["source.ip"] = "192.0.2.7";
  (*e.mutable_fields())["user.name"] = "r\xc3\xb6t";  // two-byte UTF-8
  (*e.mutable_fields())[""] = "";                     // empty key and value
  (*e.mutable_fields())["empty"] = "";
  (*e.mutable_fields())["long.127"] = std::string(127, 'a');    // one-byte lengths at the edge
  (*e.mutable_fields())["long.128"] = std::string(128, 'b');    // two-byte value length
  (*e.mutable_fields())["long.entry"] = std::string(120, 'c');  // two-byte entry length only
  (*e.mutable_fields())["huge"] = std::string(20'000, 'd');     // three-byte lengths
  (*e.mutable_fields())[std::string(200, 'k')] = "long key";
  ExpectSameAsProtobuf(e);

  siper::v1::Event file;
  file.set_agent_id("agent-8");
  file.set_seq(1);
  file.mutable_file()->set_path("/etc/passwd");
  file.mutable_file()->set_size(4096);
  (*file.mutable_fields())["file.path"] = "/etc/passwd";
  ExpectSameAsProtobuf(file);

  // Many fields: the map's own iteration order, which protobuf follows too.
  for (int i = 0; i < 200; ++i) {
    std::string name = std::to_string(i);
    name.insert(name.begin(), 'f');  // not "f" + ...: GCC 12 -O3 warns (-Wrestrict) on that
    (*e.mutable_fields())[name] = std::to_string(i);
  }
  ExpectSameAsProtobuf(e);
}

// The views form (EventRecord::fields): protobuf's bytes for the event with these entries
// in its map, in the order given. Protobuf writes the map last (field 20) and one entry as
// an Event holding only that entry serializes it, so the expected bytes are the event
// without fields followed by each entry's own serialization.
// Fields at the encoder's edges: non-ASCII, empty names and values, lengths at the
// varint boundaries, a huge value, a long key, and an order protobuf's map would not keep.
std::vector<std::pair<std::string, std::string>> EdgeFields() {
  return {{"source.ip", "192.0.2.7"},
          {"user.name", "r\xc3\xb6t"},
          {"", ""},
          {"empty", ""},
          {"long.127", std::string(127, 'a')},
          {"long.128", std::string(128, 'b')},
          {"long.entry", std::string(120, 'c')},
          {"huge", std::string(20'000, 'd')},
          {std::string(200, 'k'), "long key"},
          {"a.first.after.the.rest", "order as given"}};
}

void ExpectViewsAsProtobuf(const siper::v1::Event& e,
                           const std::vector<std::pair<std::string, std::string>>& fields) {
  ASSERT_TRUE(e.fields().empty());
  std::string want = e.SerializeAsString();
  siper::v1::Event all = e;
  std::vector<std::pair<std::string_view, std::string_view>> views;
  for (const auto& [k, v] : fields) {
    siper::v1::Event one;
    (*one.mutable_fields())[k] = v;
    want += one.SerializeAsString();
    (*all.mutable_fields())[k] = v;
    views.emplace_back(k, v);
  }
  std::string got = "left over";
  SerializeEvent(e, views, &got);
  EXPECT_EQ(got, want);
  siper::v1::Event back;
  ASSERT_TRUE(back.ParseFromString(got));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, all));
  // In the map's own order it is exactly what protobuf writes for the whole event.
  if (all.fields_size() > 0) {
    std::vector<std::pair<std::string_view, std::string_view>> in_map_order(all.fields().begin(),
                                                                            all.fields().end());
    SerializeEvent(e, in_map_order, &got);
    EXPECT_EQ(got, all.SerializeAsString());
  }
}

TEST(EventCodecTest, ViewsWriteProtobufsBytes) {
  siper::v1::Event e;
  ExpectViewsAsProtobuf(e, {});
  e.set_agent_id("agent-7");
  e.set_seq(42);
  e.set_server_time_ns(1'764'000'000'000'000'000);
  e.mutable_log()->set_source("/var/log/auth.log");
  // Not UTF-8, with a NUL inside: protobuf bytes either way.
  constexpr char kLine[] = "Failed password\xff\x00 for root";
  e.mutable_log()->set_line(std::string(kLine, sizeof(kLine) - 1));
  ExpectViewsAsProtobuf(e, {});
  ExpectViewsAsProtobuf(e, EdgeFields());
  siper::v1::Event file;
  file.set_agent_id("agent-8");
  file.set_seq(1);
  file.mutable_file()->set_path("/etc/passwd");
  ExpectViewsAsProtobuf(file, {{"file.path", "/etc/passwd"}, {"event.action", "modified"}});
}

// AppendAlert: protobuf's bytes for the alert with these entries in its map, in the
// order given. The map (field 8) lies between the other fields, and protobuf writes by
// field number, so the expected bytes are the alert's fields 1..7, each entry's own
// serialization, then fields 9..12, each part serialized by protobuf.
void ExpectAlertAsProtobuf(const siper::v1::Alert& a,
                           const std::vector<std::pair<std::string, std::string>>& fields) {
  ASSERT_TRUE(a.fields().empty());
  siper::v1::Alert head = a;
  head.clear_tags();
  head.clear_source();
  head.clear_line();
  head.clear_count();
  siper::v1::Alert tail;
  *tail.mutable_tags() = a.tags();
  tail.set_source(a.source());
  tail.set_line(a.line());
  tail.set_count(a.count());
  std::string want = head.SerializeAsString();
  siper::v1::Alert all = a;
  std::vector<std::pair<std::string_view, std::string_view>> views;
  for (const auto& [k, v] : fields) {
    siper::v1::Alert one;
    (*one.mutable_fields())[k] = v;
    want += one.SerializeAsString();
    (*all.mutable_fields())[k] = v;
    views.emplace_back(k, v);
  }
  want += tail.SerializeAsString();
  std::string got = "kept before";
  AppendAlert(a, views, &got);
  EXPECT_EQ(got, "kept before" + want);
  siper::v1::Alert back;
  ASSERT_TRUE(back.ParseFromString(got.substr(11)));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, all));
  // In the map's own order it is exactly what protobuf writes for the whole alert.
  std::vector<std::pair<std::string_view, std::string_view>> in_map_order(all.fields().begin(),
                                                                          all.fields().end());
  got.clear();
  AppendAlert(fields.empty() ? all : a, in_map_order, &got);
  EXPECT_EQ(got, all.SerializeAsString());
}

TEST(EventCodecTest, AlertViewsWriteProtobufsBytes) {
  siper::v1::Alert a;
  ExpectAlertAsProtobuf(a, {});  // empty: no bytes at all
  ExpectAlertAsProtobuf(a, {{"source.ip", "192.0.2.7"}});
  a.set_rule_id("ssh_failed_password");
  a.set_title("SSH failed password");
  a.set_level("medium");
  ExpectAlertAsProtobuf(a, {{"source.ip", "192.0.2.7"}, {"user.name", "root"}});
  a.set_id(std::string(48, 'f'));
  a.set_agent_id("agent-7");
  a.set_seq(123456789012);
  a.set_time_ns(1'764'000'000'000'000'000);
  a.add_tags("attack.credential_access");
  a.add_tags("");  // an empty element is written
  a.add_tags(std::string(300, 't'));
  a.set_source("/var/log/auth.log");
  constexpr char kLine[] = "Failed password\xff\x00 for root";  // not UTF-8, a NUL inside
  a.set_line(std::string(kLine, sizeof(kLine) - 1));
  a.set_count(7);
  ExpectAlertAsProtobuf(a, EdgeFields());
  a.set_time_ns(-5);  // a negative int64: ten bytes
  a.set_seq(1);
  a.set_count(std::numeric_limits<uint32_t>::max());
  a.clear_id();
  ExpectAlertAsProtobuf(a, {{"file.path", "/etc/passwd"}});
  // Without views: protobuf's own serialization, appended.
  siper::v1::Alert with_map = a;
  (*with_map.mutable_fields())["k"] = "v";
  std::string got = "x";
  AppendAlert(with_map, {}, &got);
  EXPECT_EQ(got, "x" + with_map.SerializeAsString());
}

}  // namespace
}  // namespace siper::storage::internal

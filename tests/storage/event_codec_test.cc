#include "server/storage/event_codec.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace siper::storage::internal

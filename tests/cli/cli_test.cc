#include <gtest/gtest.h>

#include <sstream>

#include "cli/output.h"

namespace siper::cli {
namespace {

TEST(TableTest, CellsAreEscapedSoLogLinesCannotDriveTheTerminal) {
  Table table({"A", "LINE"});
  table.AddRow({"1", "evil\x1b]0;title\x07 and\nnewline"});
  std::ostringstream out;
  table.Print(out);
  std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x07'), std::string::npos);
  EXPECT_NE(text.find("evil\\x1b]0;title\\x07 and\\nnewline"), std::string::npos) << text;
  // Header plus one row: the embedded newline did not make a line of its own.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

TEST(JsonTest, EventsWithInvalidUtf8StillGiveValidJson) {
  siper::v1::Event event;
  event.set_agent_id("agt-1");
  event.set_seq(7);
  event.set_server_time_ns(1'800'000'000'000'000'000);
  event.mutable_log()->set_source("/var/log/auth.log");
  event.mutable_log()->set_line("bad \xff byte");
  (*event.mutable_fields())["user.name"] = "r\xc3\xb6ot";
  std::ostringstream out;
  PrintJsonLine(out, EventToJson(event));
  nlohmann::json back = nlohmann::json::parse(out.str());
  EXPECT_EQ(back["seq"], 7);
  EXPECT_EQ(back["line"], "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(back["source"], "/var/log/auth.log");
  EXPECT_EQ(back["time"], "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(back["fields"]["user.name"], "r\xc3\xb6ot");
  EXPECT_EQ(out.str().back(), '\n');
  EXPECT_EQ(out.str().find('\n'), out.str().size() - 1);
}

}  // namespace
}  // namespace siper::cli

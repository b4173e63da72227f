#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/args.h"
#include "cli/completion.h"
#include "cli/connection.h"
#include "cli/output.h"
#include "cli/progress.h"

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

TEST(ArgsTest, TimeRangesAndFieldFiltersAreCheckedNamingTheFlag) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  auto range = ParseTimeRange("2h", "1h", now);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->first, absl::ToUnixNanos(now - absl::Hours(2)));
  EXPECT_EQ(range->second, absl::ToUnixNanos(now - absl::Hours(1)));
  EXPECT_EQ(ParseTimeRange("", "", now)->first, 0);
  EXPECT_TRUE(ParseTimeRange("1h", "", now).ok());
  absl::Status empty = ParseTimeRange("1h", "2h", now).status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.message().find("--until 2h"), std::string_view::npos) << empty;
  EXPECT_NE(empty.message().find("--since 1h"), std::string_view::npos) << empty;
  EXPECT_FALSE(ParseTimeRange("1h", "1h", now).ok());
  absl::Status bad_until = ParseTimeRange("1h", "yesterday\x1b", now).status();
  EXPECT_NE(bad_until.message().find("--until: "), std::string_view::npos) << bad_until;
  EXPECT_EQ(bad_until.message().find('\x1b'), std::string_view::npos) << bad_until;

  auto field = ParseFieldFilter("source.ip=a=b");
  ASSERT_TRUE(field.ok());
  EXPECT_EQ(field->first, "source.ip");
  EXPECT_EQ(field->second, "a=b");
  EXPECT_NE(ParseFieldFilter("=x").status().message().find("--field '=x'"), std::string_view::npos);
  EXPECT_FALSE(ParseFieldFilter("no-equals").ok());
}

// The server's message quotes what it was given: escaped for the terminal, line breaks
// kept; UNAVAILABLE names the address used.
TEST(FailureMessageTest, ServerMessagesAreEscapedAndNameTheAddress) {
  ConnectionFlags flags{.server = "192.0.2.1:7443", .ca = "ca", .cert = "c", .key = "k"};
  const std::string message = FailureMessage(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "no agent '\x1b]0;x\x07'\nsecond line"), flags);
  EXPECT_EQ(message, "no agent '\\x1b]0;x\\x07'\nsecond line");
  EXPECT_EQ(FailureMessage(grpc::Status(grpc::StatusCode::UNAVAILABLE, "restoring"), flags),
            "the server at 192.0.2.1:7443 is unavailable: restoring");
}

// Every heartbeat statistic the registry keeps reaches `agents list --json`.
TEST(JsonTest, AgentsCarryTheirHeartbeatStatistics) {
  siper::v1::AgentInfo agent;
  agent.set_agent_id("agt-1");
  agent.set_address("ipv4:192.0.2.5:40000");
  agent.set_version("0.1.0");
  agent.set_heartbeat_ns(1'800'000'000'000'000'000);
  agent.set_spool_bytes(4096);
  agent.set_spool_cap_bytes(1 << 20);
  agent.set_drops(3);
  agent.set_clock_offset_ms(-250);
  agent.set_uptime_s(86400);
  agent.set_events_per_s(12.5);
  const nlohmann::json j = AgentToJson(agent);
  EXPECT_EQ(j["address"], "ipv4:192.0.2.5:40000");
  EXPECT_EQ(j["version"], "0.1.0");
  EXPECT_EQ(j["last_heartbeat"], "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(j["spool_bytes"], 4096);
  EXPECT_EQ(j["drops"], 3);
  EXPECT_EQ(j["clock_offset_ms"], -250);
  EXPECT_EQ(j["uptime_s"], 86400);
  EXPECT_EQ(j["events_per_s"], 12.5);
}

// Runs the generated script in a real bash with COMP_WORDS set as bash would
// set them, and returns COMPREPLY joined by spaces.
std::string Complete(const std::string& script, const std::string& words, int cword) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("siperctl-completion-" + std::to_string(getpid()));
  std::ofstream(file) << script;
  const std::string command = "bash -c 'source " + file.string() + "; COMP_WORDS=(" + words +
                              "); COMP_CWORD=" + std::to_string(cword) +
                              "; _prog; echo \"${COMPREPLY[*]}\"'";
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
    pclose(pipe);
  }
  std::filesystem::remove(file);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(CompletionTest, BashCompletesNounsVerbsAndOptionsOfTheCommandTyped) {
  CLI::App app{"prog"};
  app.fallthrough();
  std::string server;
  bool json = false;
  app.add_option("--server", server, "server");
  app.add_flag("--json", json, "json");
  CLI::App* incidents = app.add_subcommand("incidents", "incidents");
  CLI::App* list = incidents->add_subcommand("list", "list");
  bool overdue = false;
  std::string state;
  list->add_flag("--overdue", overdue, "overdue");
  list->add_option("--state", state, "state");
  incidents->add_subcommand("show", "show");
  app.add_subcommand("agents", "agents")->add_subcommand("revoke", "revoke");
  const std::string script = BashCompletion(app, "prog");

  EXPECT_EQ(Complete(script, "prog ''", 1), "incidents agents");
  EXPECT_EQ(Complete(script, "prog in", 1), "incidents");
  EXPECT_EQ(Complete(script, "prog incidents ''", 2), "list show");
  // A global option with its value before the noun does not confuse the path.
  EXPECT_EQ(Complete(script, "prog --server h:1 incidents ''", 4), "list show");
  EXPECT_EQ(Complete(script, "prog incidents list --", 3),
            "--help --server --json --overdue --state");
  EXPECT_EQ(Complete(script, "prog incidents list --st", 3), "--state");
  // An option's value is left to file-name completion.
  EXPECT_EQ(Complete(script, "prog incidents list --state ''", 4), "");
  EXPECT_EQ(Complete(script, "prog agents ''", 2), "revoke");
}

TEST(ProgressTest, RedrawsOneLineInPlaceAndClearsIt) {
  ::testing::internal::CaptureStderr();
  {
    Progress progress("importing", /*enabled=*/true);
    progress.Update(5, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
  }
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("\rimporting "), std::string::npos) << out;
  EXPECT_NE(out.find("5/10 (50%)"), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), std::string::npos) << "a progress line never scrolls";
  EXPECT_TRUE(out.ends_with("\r\x1b[K")) << "the line is cleared when done";
}

TEST(ProgressTest, SaysNothingWhenStderrIsNotATerminal) {
  ::testing::internal::CaptureStderr();
  {
    Progress progress("importing", /*enabled=*/false);
    progress.Update(1, 2);
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace siper::cli

#include "cli/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <ostream>

#include "common/text.h"
#include "common/time_util.h"

namespace siper::cli {
namespace {

// Display width of UTF-8 text, counting code points (good enough for tables).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Cuts UTF-8 text to `width` code points, with an ellipsis when cut.
std::string Cut(const std::string& s, size_t width) {
  if (Width(s) <= width) return s;
  if (width == 0) return "";
  size_t points = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (points == width - 1) break;
      ++points;
    }
  }
  return s.substr(0, i) + "\xE2\x80\xA6";
}

size_t TerminalWidth() {
  if (!isatty(STDOUT_FILENO)) return 0;
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
  return ws.ws_col;
}

std::string TimeOrEmpty(int64_t ns) { return ns == 0 ? "" : FormatTimeNs(ns); }

nlohmann::json FieldsToJson(const google::protobuf::Map<std::string, std::string>& fields) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : fields) out[ToValidUtf8(k)] = ToValidUtf8(v);
  return out;
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  for (std::string& cell : cells) cell = EscapeForTerminal(cell);
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) widths[c] = Width(headers_[c]);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], Width(row[c]));
  }
  if (size_t term = TerminalWidth(); term > 0 && !widths.empty()) {
    size_t fixed = 0;
    for (size_t c = 0; c + 1 < widths.size(); ++c) fixed += widths[c] + 2;
    widths.back() = term > fixed + 10 ? std::min(widths.back(), term - fixed) : widths.back();
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string cell = Cut(row[c], widths[c]);
      line += cell;
      if (c + 1 < row.size()) line += std::string(widths[c] - Width(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print_row(headers_);
  for (const auto& row : rows_) print_row(row);
}

void PrintJsonLine(std::ostream& out, const nlohmann::json& value) {
  out << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

nlohmann::json EventToJson(const siper::v1::Event& event) {
  nlohmann::json j;
  j["agent_id"] = event.agent_id();
  j["seq"] = event.seq();
  j["time"] = TimeOrEmpty(event.server_time_ns());
  j["agent_time"] = TimeOrEmpty(event.agent_time_ns());
  if (event.has_log()) {
    j["source"] = ToValidUtf8(event.log().source());
    j["line"] = ToValidUtf8(event.log().line());
    if (event.log().truncated()) j["truncated"] = true;
  } else if (event.has_file()) {
    const siper::v1::FileEvent& f = event.file();
    j["source"] = "fim";
    j["line"] = ToValidUtf8(f.path());
    j["file"] = {{"path", ToValidUtf8(f.path())},
                 {"size", f.size()},
                 {"mode", f.mode()},
                 {"uid", f.uid()},
                 {"gid", f.gid()},
                 {"owner", ToValidUtf8(f.owner())},
                 {"group", ToValidUtf8(f.group())},
                 {"mtime", TimeOrEmpty(f.mtime_ns())},
                 {"sha256", f.sha256()},
                 {"change", siper::v1::FileChange_Name(f.change())}};
  }
  j["fields"] = FieldsToJson(event.fields());
  return j;
}

nlohmann::json AlertToJson(const siper::v1::Alert& alert) {
  nlohmann::json j;
  j["id"] = alert.id();
  j["rule_id"] = alert.rule_id();
  j["title"] = ToValidUtf8(alert.title());
  j["level"] = alert.level();
  j["agent_id"] = alert.agent_id();
  j["seq"] = alert.seq();
  j["time"] = TimeOrEmpty(alert.time_ns());
  j["source"] = ToValidUtf8(alert.source());
  j["line"] = ToValidUtf8(alert.line());
  j["count"] = alert.count() == 0 ? 1 : alert.count();
  j["tags"] = nlohmann::json::array();
  for (const std::string& tag : alert.tags()) j["tags"].push_back(ToValidUtf8(tag));
  j["fields"] = FieldsToJson(alert.fields());
  return j;
}

nlohmann::json AgentToJson(const siper::v1::AgentInfo& agent) {
  return {{"agent_id", agent.agent_id()},
          {"hostname", ToValidUtf8(agent.hostname())},
          {"version", ToValidUtf8(agent.version())},
          {"address", ToValidUtf8(agent.address())},
          {"enrolled", TimeOrEmpty(agent.enrolled_ns())},
          {"first_seen", TimeOrEmpty(agent.first_seen_ns())},
          {"last_seen", TimeOrEmpty(agent.last_seen_ns())},
          {"last_seq", agent.last_seq()},
          {"events", agent.events()},
          {"revoked", agent.revoked()},
          // From the latest heartbeat (what the server's health detectors watch).
          {"last_heartbeat", TimeOrEmpty(agent.heartbeat_ns())},
          {"spool_bytes", agent.spool_bytes()},
          {"spool_cap_bytes", agent.spool_cap_bytes()},
          {"drops", agent.drops()},
          {"clock_offset_ms", agent.clock_offset_ms()},
          {"uptime_s", agent.uptime_s()},
          {"events_per_s", agent.events_per_s()}};
}

}  // namespace siper::cli

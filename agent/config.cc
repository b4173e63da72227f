#include "agent/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

// Builds messages of the form "FILE:LINE: key 'logs[0].start': what is wrong".
class ConfigErrors {
 public:
  explicit ConfigErrors(const std::filesystem::path& source) : source_(source.string()) {}

  absl::Status Error(const YAML::Node& node, const std::string& key,
                     const std::string& what) const {
    std::string where = source_;
    if (node.IsDefined() && node.Mark().line >= 0) {
      absl::StrAppend(&where, ":", node.Mark().line + 1);
    }
    return absl::InvalidArgumentError(absl::StrCat(where, ": key '", key, "': ", what));
  }

 private:
  std::string source_;
};

absl::Status CheckKeys(const ConfigErrors& errors, const YAML::Node& map, const std::string& prefix,
                       const std::set<std::string>& allowed) {
  for (const auto& item : map) {
    const std::string key = item.first.Scalar();
    if (!allowed.contains(key)) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      return errors.Error(
          item.first, prefix + key,
          absl::StrCat("unknown key; expected one of: ", absl::StrJoin(names, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const ConfigErrors& errors, const YAML::Node& node,
                                      const std::string& key) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return errors.Error(node, key, "must be a non-empty string");
  }
  return node.Scalar();
}

absl::StatusOr<int64_t> GetInt(const ConfigErrors& errors, const YAML::Node& node,
                               const std::string& key, int64_t min, int64_t max) {
  int64_t value = 0;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &value)) {
    return errors.Error(node, key, "must be an integer");
  }
  if (value < min || value > max) {
    return errors.Error(node, key,
                        absl::StrCat("must be between ", min, " and ", max, ", got ", value));
  }
  return value;
}

absl::StatusOr<double> GetDouble(const ConfigErrors& errors, const YAML::Node& node,
                                 const std::string& key, double min, double max) {
  double value = 0;
  if (!node.IsScalar() || !absl::SimpleAtod(node.Scalar(), &value) || !std::isfinite(value)) {
    return errors.Error(node, key, "must be a number");
  }
  if (value < min || value > max) {
    return errors.Error(node, key,
                        absl::StrCat("must be between ", min, " and ", max, ", got ", value));
  }
  return value;
}

absl::StatusOr<bool> GetBool(const ConfigErrors& errors, const YAML::Node& node,
                             const std::string& key) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  return errors.Error(node, key, "must be true or false");
}

absl::Status CheckServer(const ConfigErrors& errors, const YAML::Node& node,
                         const std::string& server) {
  const size_t colon = server.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(server.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return errors.Error(
        node, "server",
        absl::StrCat("must be HOST:PORT (e.g. 127.0.0.1:7443), got '", server, "'"));
  }
  return absl::OkStatus();
}

// "ADDRESS:PORT" / "[IPV6]:PORT" with a numeric address (a listener binds to
// one of this host's addresses; a name could resolve differently each start).
absl::Status ParseListen(const ConfigErrors& errors, const YAML::Node& node, const std::string& key,
                         SyslogUdpInput* out) {
  const std::string& text = out->listen;
  const std::string example = "(e.g. 0.0.0.0:5514, 127.0.0.1:514 or [::]:5514)";
  std::string host;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return errors.Error(node, key,
                          absl::StrCat("must be [IPV6]:PORT ", example, ", got '", text, "'"));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      return errors.Error(node, key,
                          absl::StrCat("must be ADDRESS:PORT ", example, ", got '", text, "'"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  in6_addr v6{};
  in_addr v4{};
  if (host.empty() ||
      (inet_pton(AF_INET, host.c_str(), &v4) != 1 && inet_pton(AF_INET6, host.c_str(), &v6) != 1)) {
    return errors.Error(node, key,
                        absl::StrCat("the address must be a numeric IPv4 or IPv6 address ", example,
                                     ", got '", host, "'"));
  }
  int port = -1;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return errors.Error(
        node, key, absl::StrCat("the port must be 0..65535 ", example, ", got '", port_text, "'"));
  }
  out->host = host;
  out->port = port;
  return absl::OkStatus();
}

absl::Status ParseSyslogUdp(const ConfigErrors& errors, const YAML::Node& udp,
                            SyslogUdpInput* out) {
  if (!udp.IsMap()) {
    return errors.Error(udp, "syslog_udp",
                        "must be a mapping (enabled, listen, max_message_bytes, "
                        "receive_buffer_bytes)");
  }
  SIPER_RETURN_IF_ERROR(
      CheckKeys(errors, udp, "syslog_udp.",
                {"enabled", "listen", "max_message_bytes", "receive_buffer_bytes"}));
  if (!udp["enabled"]) {
    return errors.Error(udp, "syslog_udp.enabled",
                        "is required when the syslog_udp section is present (true or false)");
  }
  SIPER_ASSIGN_OR_RETURN(out->enabled, GetBool(errors, udp["enabled"], "syslog_udp.enabled"));
  if (udp["listen"]) {
    SIPER_ASSIGN_OR_RETURN(out->listen, GetString(errors, udp["listen"], "syslog_udp.listen"));
    SIPER_RETURN_IF_ERROR(ParseListen(errors, udp["listen"], "syslog_udp.listen", out));
  } else if (out->enabled) {
    return errors.Error(udp, "syslog_udp.listen",
                        "is required when syslog_udp.enabled is true (ADDRESS:PORT to bind, "
                        "e.g. 0.0.0.0:5514)");
  }
  if (udp["max_message_bytes"]) {
    // 480 is the least RFC 5426 lets a receiver take; 65507 the most UDP carries over IPv4.
    SIPER_ASSIGN_OR_RETURN(
        out->max_message_bytes,
        GetInt(errors, udp["max_message_bytes"], "syslog_udp.max_message_bytes", 480, 65507));
  }
  if (udp["receive_buffer_bytes"]) {
    SIPER_ASSIGN_OR_RETURN(out->receive_buffer_bytes,
                           GetInt(errors, udp["receive_buffer_bytes"],
                                  "syslog_udp.receive_buffer_bytes", 0, int64_t{1} << 30));
  }
  return absl::OkStatus();
}

absl::StatusOr<AgentConfig> ParseRoot(const YAML::Node& root, const std::filesystem::path& source) {
  const ConfigErrors errors(source);
  AgentConfig config;
  config.source = source;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.string(), ": the configuration must be a YAML mapping of keys"));
  }
  static const std::set<std::string> kKeys = {"server",
                                              "state_dir",
                                              "logs",
                                              "fim",
                                              "log_file",
                                              "log_level",
                                              "batch_max_events",
                                              "batch_max_delay_ms",
                                              "max_pending_events",
                                              "max_pending_bytes",
                                              "poll_interval_ms",
                                              "read_delay_ms",
                                              "spool",
                                              "fim_rescan_s",
                                              "fim_large_file_bytes",
                                              "fim_cpu_percent",
                                              "fim_io_bytes_per_s",
                                              "heartbeat_s",
                                              "journald",
                                              "syslog_udp",
                                              "limits",
                                              "cert_renew_fraction"};
  SIPER_RETURN_IF_ERROR(CheckKeys(errors, root, "", kKeys));

  if (!root["server"]) {
    return errors.Error(root, "server", "is required (HOST:PORT of siper-server)");
  }
  SIPER_ASSIGN_OR_RETURN(config.server, GetString(errors, root["server"], "server"));
  SIPER_RETURN_IF_ERROR(CheckServer(errors, root["server"], config.server));

  if (root["state_dir"]) {
    SIPER_ASSIGN_OR_RETURN(std::string dir, GetString(errors, root["state_dir"], "state_dir"));
    config.state_dir = dir;
  }
  if (root["log_file"]) {
    SIPER_ASSIGN_OR_RETURN(std::string file, GetString(errors, root["log_file"], "log_file"));
    config.log_file = file;
  } else {
    config.log_file = config.state_dir / "log" / "agent.log";
  }
  if (root["log_level"]) {
    SIPER_ASSIGN_OR_RETURN(config.log_level, GetString(errors, root["log_level"], "log_level"));
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
    if (!kLevels.contains(config.log_level)) {
      return errors.Error(root["log_level"], "log_level",
                          absl::StrCat("must be one of trace, debug, info, warn, error; got '",
                                       config.log_level, "'"));
    }
  }
  if (root["batch_max_events"]) {
    SIPER_ASSIGN_OR_RETURN(config.batch_max_events,
                           GetInt(errors, root["batch_max_events"], "batch_max_events", 1, 10000));
  }
  if (root["batch_max_delay_ms"]) {
    SIPER_ASSIGN_OR_RETURN(config.batch_max_delay_ms, GetInt(errors, root["batch_max_delay_ms"],
                                                             "batch_max_delay_ms", 0, 60000));
  }
  if (root["max_pending_events"]) {
    SIPER_ASSIGN_OR_RETURN(config.max_pending_events, GetInt(errors, root["max_pending_events"],
                                                             "max_pending_events", 1, 10000000));
  }
  if (root["max_pending_bytes"]) {
    SIPER_ASSIGN_OR_RETURN(
        config.max_pending_bytes,
        GetInt(errors, root["max_pending_bytes"], "max_pending_bytes", 1 << 20, int64_t{1} << 34));
  }
  if (root["read_delay_ms"]) {
    SIPER_ASSIGN_OR_RETURN(config.read_delay_ms,
                           GetInt(errors, root["read_delay_ms"], "read_delay_ms", 0, 5000));
  }
  if (root["poll_interval_ms"]) {
    SIPER_ASSIGN_OR_RETURN(config.poll_interval_ms,
                           GetInt(errors, root["poll_interval_ms"], "poll_interval_ms", 10, 60000));
  }
  if (config.max_pending_events < config.batch_max_events) {
    return errors.Error(
        root["max_pending_events"], "max_pending_events",
        absl::StrCat("must be at least batch_max_events (", config.batch_max_events, ")"));
  }

  if (root["fim_rescan_s"]) {
    SIPER_ASSIGN_OR_RETURN(config.fim_rescan_s,
                           GetInt(errors, root["fim_rescan_s"], "fim_rescan_s", 1, 7 * 86400));
  }
  if (root["fim_large_file_bytes"]) {
    SIPER_ASSIGN_OR_RETURN(
        config.fim_large_file_bytes,
        GetInt(errors, root["fim_large_file_bytes"], "fim_large_file_bytes", 0, int64_t{1} << 50));
  }
  if (root["fim_cpu_percent"]) {
    SIPER_ASSIGN_OR_RETURN(config.fim_cpu_percent,
                           GetDouble(errors, root["fim_cpu_percent"], "fim_cpu_percent", 0, 100));
  }
  if (root["fim_io_bytes_per_s"]) {
    SIPER_ASSIGN_OR_RETURN(
        config.fim_io_bytes_per_s,
        GetInt(errors, root["fim_io_bytes_per_s"], "fim_io_bytes_per_s", 0, int64_t{1} << 40));
    if (config.fim_io_bytes_per_s > 0 && config.fim_io_bytes_per_s < 64 * 1024) {
      return errors.Error(
          root["fim_io_bytes_per_s"], "fim_io_bytes_per_s",
          absl::StrCat("must be 0 (no limit) or at least 65536, got ", config.fim_io_bytes_per_s));
    }
  }
  if (root["cert_renew_fraction"]) {
    SIPER_ASSIGN_OR_RETURN(
        config.cert_renew_fraction,
        GetDouble(errors, root["cert_renew_fraction"], "cert_renew_fraction", 0.01, 0.9));
  }
  if (const YAML::Node limits = root["limits"]; limits && !limits.IsNull()) {
    if (!limits.IsMap()) {
      return errors.Error(limits, "limits",
                          "must be a mapping (events_per_s, events_burst, memory_bytes)");
    }
    SIPER_RETURN_IF_ERROR(
        CheckKeys(errors, limits, "limits.", {"events_per_s", "events_burst", "memory_bytes"}));
    if (limits["events_per_s"]) {
      SIPER_ASSIGN_OR_RETURN(config.max_events_per_s, GetInt(errors, limits["events_per_s"],
                                                             "limits.events_per_s", 0, 10000000));
    }
    if (limits["events_burst"]) {
      // A burst without a rate would be a cap that is not there: refuse it.
      if (config.max_events_per_s == 0) {
        return errors.Error(limits["events_burst"], "limits.events_burst",
                            "needs limits.events_per_s (a positive rate) to be set as well");
      }
      SIPER_ASSIGN_OR_RETURN(config.events_burst, GetInt(errors, limits["events_burst"],
                                                         "limits.events_burst", 1, 100000000));
    }
    if (limits["memory_bytes"]) {
      SIPER_ASSIGN_OR_RETURN(
          config.max_memory_bytes,
          GetInt(errors, limits["memory_bytes"], "limits.memory_bytes", 0, int64_t{1} << 40));
      if (config.max_memory_bytes > 0 && config.max_memory_bytes < (4 << 20)) {
        return errors.Error(limits["memory_bytes"], "limits.memory_bytes",
                            absl::StrCat("must be 0 (built-in sizes) or at least 4194304 (4 MiB), "
                                         "got ",
                                         config.max_memory_bytes));
      }
    }
  }
  if (config.max_events_per_s > 0 && config.events_burst == 0) {
    config.events_burst = config.max_events_per_s;
  }
  if (root["heartbeat_s"]) {
    SIPER_ASSIGN_OR_RETURN(config.heartbeat_s,
                           GetInt(errors, root["heartbeat_s"], "heartbeat_s", 1, 3600));
  }
  if (const YAML::Node spool = root["spool"]; spool && !spool.IsNull()) {
    if (!spool.IsMap()) {
      return errors.Error(spool, "spool",
                          "must be a mapping (fsync, fsync_interval_ms, max_bytes)");
    }
    SIPER_RETURN_IF_ERROR(CheckKeys(errors, spool, "spool.",
                                    {"fsync", "fsync_interval_ms", "max_bytes", "segment_bytes"}));
    if (spool["fsync"]) {
      SIPER_ASSIGN_OR_RETURN(std::string fsync, GetString(errors, spool["fsync"], "spool.fsync"));
      if (fsync == "always") {
        config.spool_fsync = SpoolFsyncPolicy::kAlways;
      } else if (fsync == "interval") {
        config.spool_fsync = SpoolFsyncPolicy::kInterval;
      } else if (fsync == "never") {
        config.spool_fsync = SpoolFsyncPolicy::kNever;
      } else {
        return errors.Error(spool["fsync"], "spool.fsync",
                            absl::StrCat("must be always, interval or never; got '", fsync, "'"));
      }
    }
    if (spool["fsync_interval_ms"]) {
      SIPER_ASSIGN_OR_RETURN(
          config.spool_fsync_interval_ms,
          GetInt(errors, spool["fsync_interval_ms"], "spool.fsync_interval_ms", 10, 600000));
    }
    if (spool["max_bytes"]) {
      SIPER_ASSIGN_OR_RETURN(
          config.spool_max_bytes,
          GetInt(errors, spool["max_bytes"], "spool.max_bytes", 1 << 20, int64_t{1} << 40));
    }
    if (spool["segment_bytes"]) {
      SIPER_ASSIGN_OR_RETURN(
          config.spool_segment_bytes,
          GetInt(errors, spool["segment_bytes"], "spool.segment_bytes", 4096, int64_t{1} << 30));
    }
  }

  if (const YAML::Node logs = root["logs"]; logs && !logs.IsNull()) {
    if (!logs.IsSequence()) {
      return errors.Error(logs, "logs", "must be a list of {path, start}");
    }
    for (size_t i = 0; i < logs.size(); ++i) {
      const YAML::Node item = logs[i];
      const std::string prefix = absl::StrCat("logs[", i, "]");
      if (!item.IsMap()) {
        return errors.Error(item, prefix, "must be a mapping with 'path' and optional 'start'");
      }
      SIPER_RETURN_IF_ERROR(CheckKeys(errors, item, prefix + ".", {"path", "start"}));
      LogInput input;
      if (!item["path"]) {
        return errors.Error(item, prefix + ".path", "is required");
      }
      SIPER_ASSIGN_OR_RETURN(input.path, GetString(errors, item["path"], prefix + ".path"));
      if (input.path.front() != '/') {
        return errors.Error(item["path"], prefix + ".path",
                            absl::StrCat("must be an absolute path, got '", input.path, "'"));
      }
      if (item["start"]) {
        SIPER_ASSIGN_OR_RETURN(std::string start,
                               GetString(errors, item["start"], prefix + ".start"));
        if (start == "beginning") {
          input.start = StartAt::kBeginning;
        } else if (start == "end") {
          input.start = StartAt::kEnd;
        } else {
          return errors.Error(item["start"], prefix + ".start",
                              absl::StrCat("must be 'beginning' or 'end', got '", start, "'"));
        }
      }
      config.logs.push_back(std::move(input));
    }
  }

  if (const YAML::Node journald = root["journald"]; journald && !journald.IsNull()) {
    if (!journald.IsMap()) {
      return errors.Error(journald, "journald",
                          "must be a mapping (enabled, matches, directory, start)");
    }
    SIPER_RETURN_IF_ERROR(
        CheckKeys(errors, journald, "journald.", {"enabled", "matches", "directory", "start"}));
    if (!journald["enabled"]) {
      // Settings without `enabled` are half a configuration: say which way.
      return errors.Error(journald, "journald.enabled",
                          "is required when the journald section is present (true or false)");
    }
    SIPER_ASSIGN_OR_RETURN(config.journald.enabled,
                           GetBool(errors, journald["enabled"], "journald.enabled"));
    if (const YAML::Node matches = journald["matches"]; matches && !matches.IsNull()) {
      if (!matches.IsSequence()) {
        return errors.Error(matches, "journald.matches",
                            "must be a list of FIELD=value (e.g. _SYSTEMD_UNIT=ssh.service)");
      }
      for (size_t i = 0; i < matches.size(); ++i) {
        const std::string key = absl::StrCat("journald.matches[", i, "]");
        SIPER_ASSIGN_OR_RETURN(std::string match, GetString(errors, matches[i], key));
        const size_t eq = match.find('=');
        const std::string field = match.substr(0, eq);
        const bool field_ok =
            eq != std::string::npos && eq > 0 &&
            std::all_of(field.begin(), field.end(),
                        [](char c) {
                          return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
                        }) &&
            !(field[0] >= '0' && field[0] <= '9');
        if (!field_ok) {
          return errors.Error(matches[i], key,
                              absl::StrCat("must be FIELD=value with FIELD in upper case letters, "
                                           "digits and '_' (e.g. _SYSTEMD_UNIT=ssh.service), got '",
                                           match, "'"));
        }
        config.journald.matches.push_back(std::move(match));
      }
    }
    if (journald["directory"]) {
      SIPER_ASSIGN_OR_RETURN(std::string dir,
                             GetString(errors, journald["directory"], "journald.directory"));
      if (dir.front() != '/') {
        return errors.Error(journald["directory"], "journald.directory",
                            absl::StrCat("must be an absolute path, got '", dir, "'"));
      }
      config.journald.directory = dir;
    }
    if (journald["start"]) {
      SIPER_ASSIGN_OR_RETURN(std::string start,
                             GetString(errors, journald["start"], "journald.start"));
      if (start == "beginning") {
        config.journald.start = StartAt::kBeginning;
      } else if (start == "end") {
        config.journald.start = StartAt::kEnd;
      } else {
        return errors.Error(journald["start"], "journald.start",
                            absl::StrCat("must be 'beginning' or 'end', got '", start, "'"));
      }
    }
  }

  if (const YAML::Node udp = root["syslog_udp"]; udp && !udp.IsNull()) {
    SIPER_RETURN_IF_ERROR(ParseSyslogUdp(errors, udp, &config.syslog_udp));
  }

  if (const YAML::Node fim = root["fim"]; fim && !fim.IsNull()) {
    if (!fim.IsSequence()) {
      return errors.Error(fim, "fim", "must be a list of {path, recursive}");
    }
    for (size_t i = 0; i < fim.size(); ++i) {
      const YAML::Node item = fim[i];
      const std::string prefix = absl::StrCat("fim[", i, "]");
      if (!item.IsMap()) {
        return errors.Error(item, prefix, "must be a mapping with 'path' and optional 'recursive'");
      }
      SIPER_RETURN_IF_ERROR(CheckKeys(errors, item, prefix + ".", {"path", "recursive", "ignore"}));
      FimInput input;
      if (!item["path"]) {
        return errors.Error(item, prefix + ".path", "is required");
      }
      SIPER_ASSIGN_OR_RETURN(input.path, GetString(errors, item["path"], prefix + ".path"));
      if (item["recursive"]) {
        SIPER_ASSIGN_OR_RETURN(input.recursive,
                               GetBool(errors, item["recursive"], prefix + ".recursive"));
      }
      if (input.path.empty() || input.path.front() != '/') {
        return errors.Error(item["path"], prefix + ".path",
                            absl::StrCat("must be an absolute path, got '", input.path, "'"));
      }
      while (input.path.size() > 1 && input.path.back() == '/') input.path.pop_back();
      if (const YAML::Node ignore = item["ignore"]; ignore && !ignore.IsNull()) {
        if (!ignore.IsSequence()) {
          return errors.Error(ignore, prefix + ".ignore", "must be a list of glob patterns");
        }
        for (size_t j = 0; j < ignore.size(); ++j) {
          SIPER_ASSIGN_OR_RETURN(
              std::string glob,
              GetString(errors, ignore[j], absl::StrCat(prefix, ".ignore[", j, "]")));
          input.ignore.push_back(std::move(glob));
        }
      }
      config.fim.push_back(std::move(input));
    }
  }
  return config;
}

}  // namespace

MemoryBudget MemoryBudgetFor(uint64_t max_memory_bytes) {
  MemoryBudget budget;
  if (max_memory_bytes == 0) return budget;
  // A quarter for lines read in a round, an eighth for the batch on its way,
  // an eighth for FIM events (about 512 bytes each); the rest is headroom for
  // the copies made while encoding.
  const uint64_t cap = max_memory_bytes;
  budget.read_bytes_per_round = static_cast<size_t>(std::min<uint64_t>(cap / 4, 16 << 20));
  budget.read_bytes_per_file = std::min(budget.read_bytes_per_round, static_cast<size_t>(4 << 20));
  budget.batch_bytes = static_cast<size_t>(std::min<uint64_t>(cap / 8, 1 << 20));
  budget.fim_outbox_events = static_cast<size_t>(std::min<uint64_t>(cap / 8 / 512, 10000));
  budget.syslog_queue_bytes = static_cast<size_t>(std::min<uint64_t>(cap / 8, 1 << 20));
  return budget;
}

absl::StatusOr<AgentConfig> ParseConfig(const std::string& text,
                                        const std::filesystem::path& source) {
  try {
    return ParseRoot(YAML::Load(text), source);
  } catch (const YAML::Exception& e) {
    std::string where = source.string();
    if (e.mark.line >= 0) absl::StrAppend(&where, ":", e.mark.line + 1);
    return absl::InvalidArgumentError(absl::StrCat(where, ": invalid YAML: ", e.msg));
  }
}

absl::StatusOr<AgentConfig> LoadConfig(const std::filesystem::path& path) {
  SIPER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseConfig(text, path);
}

}  // namespace siper::agent

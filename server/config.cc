#include "server/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace siper::server {
namespace {

template <typename T>
absl::Status Read(const YAML::Node& root, const std::string& key, const std::string& file, T* out) {
  const YAML::Node node = root[key];
  if (!node) return absl::OkStatus();
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", node.Mark().line + 1, ": key '", key,
                                                   "' has the wrong type: ", e.what()));
  }
  return absl::OkStatus();
}

// At most a century: a day count is turned into nanoseconds (int64 holds some 292 years).
constexpr int64_t kMaxRetentionDays = 36500;

// `file:line: key 'KEY' must be WANT (got VALUE)`, the line that of the key in `parent`.
absl::Status BadValue(const std::string& file, const YAML::Node& parent, const std::string& key,
                      const std::string& shown_key, std::string_view want, int64_t got) {
  const YAML::Node node = parent[key];
  const int line = node ? node.Mark().line + 1 : parent.Mark().line + 1;
  return absl::InvalidArgumentError(
      absl::StrCat(file, ":", line, ": key '", shown_key, "' must be ",
                   absl::string_view(want.data(), want.size()), " (got ", got, ")"));
}

}  // namespace

absl::StatusOr<ServerConfig> LoadServerConfig(const std::filesystem::path& file) {
  YAML::Node root;
  const std::string name = file.string();
  try {
    root = YAML::LoadFile(name);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", name));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ":", e.mark.line + 1, ": ", e.msg));
  }
  ServerConfig config;
  if (root.IsNull()) return config;
  if (!root.IsMap())
    return absl::InvalidArgumentError(absl::StrCat(name, ": expected a map of keys"));
  static const std::set<std::string> kKnown = {
      "data_dir",    "listen",          "rules_dir",       "server_names",
      "token_ttl_s", "max_token_ttl_s", "workers",         "sync_writes",
      "log_level",   "log_to_stderr",   "seal_interval_s", "retention_days",
      "retention",   "institution",     "incidents",       "agent_cert_validity_s",
      "tsa"};
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    if (!kKnown.contains(key) && !HealthConfigKeys().contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", entry.first.Mark().line + 1, ": unknown key '", key, "'"));
    }
  }
  std::string data_dir = config.data_dir.string();
  std::string rules_dir;
  absl::Status st;
  for (absl::Status s :
       {Read(root, "data_dir", name, &data_dir), Read(root, "listen", name, &config.listen),
        Read(root, "rules_dir", name, &rules_dir),
        Read(root, "server_names", name, &config.server_names),
        Read(root, "token_ttl_s", name, &config.token_ttl_s),
        Read(root, "max_token_ttl_s", name, &config.max_token_ttl_s),
        Read(root, "agent_cert_validity_s", name, &config.agent_cert_validity_s),
        Read(root, "workers", name, &config.workers),
        Read(root, "sync_writes", name, &config.sync_writes),
        Read(root, "log_level", name, &config.log_level),
        Read(root, "log_to_stderr", name, &config.log_to_stderr),
        Read(root, "seal_interval_s", name, &config.seal_interval_s),
        Read(root, "retention_days", name, &config.retention_days)}) {
    if (!s.ok()) return s;
  }
  if (const YAML::Node retention = root["retention"]; retention) {
    if (!retention.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ":", retention.Mark().line + 1,
                                                     ": 'retention' must be a map with events_days "
                                                     "and/or alerts_days"));
    }
    for (const auto& entry : retention) {
      const std::string key = entry.first.as<std::string>();
      if (key != "events_days" && key != "alerts_days") {
        return absl::InvalidArgumentError(absl::StrCat(name, ":", entry.first.Mark().line + 1,
                                                       ": unknown key 'retention.", key, "'"));
      }
    }
    for (absl::Status s : {Read(retention, "events_days", name, &config.retention_events_days),
                           Read(retention, "alerts_days", name, &config.retention_alerts_days)}) {
      if (!s.ok()) return s;
    }
  }
  if (const YAML::Node tsa = root["tsa"]; tsa) {
    if (!tsa.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", tsa.Mark().line + 1,
                       ": 'tsa' must be a map with url and cert_file or ca_file"));
    }
    static const std::set<std::string> kTsaKeys = {"url", "cert_file", "ca_file", "timeout_s",
                                                   "policy"};
    for (const auto& entry : tsa) {
      const std::string key = entry.first.as<std::string>();
      if (!kTsaKeys.contains(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ":", entry.first.Mark().line + 1, ": unknown key 'tsa.", key, "'"));
      }
    }
    std::string cert_file, ca_file;
    for (absl::Status s :
         {Read(tsa, "url", name, &config.tsa.url), Read(tsa, "cert_file", name, &cert_file),
          Read(tsa, "ca_file", name, &ca_file), Read(tsa, "timeout_s", name, &config.tsa.timeout_s),
          Read(tsa, "policy", name, &config.tsa.policy)}) {
      if (!s.ok()) return s;
    }
    config.tsa.cert_file = cert_file;
    config.tsa.ca_file = ca_file;
    if (config.tsa.url.empty() || (cert_file.empty() && ca_file.empty()) ||
        config.tsa.timeout_s <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", tsa.Mark().line + 1,
                       ": tsa needs url, cert_file or ca_file, and a positive timeout_s"));
    }
  }
  if (config.seal_interval_s <= 0) {
    return BadValue(name, root, "seal_interval_s", "seal_interval_s", "positive (seconds)",
                    config.seal_interval_s);
  }
  constexpr std::string_view kDaysWant = "0 (keep forever) or a number of days up to 36500";
  if (config.retention_days < 0 || config.retention_days > kMaxRetentionDays) {
    return BadValue(name, root, "retention_days", "retention_days", kDaysWant,
                    config.retention_days);
  }
  // -1, the default, means "as retention_days".
  for (const auto& [key, days] : {std::pair{"events_days", config.retention_events_days},
                                  std::pair{"alerts_days", config.retention_alerts_days}}) {
    if (days < -1 || days > kMaxRetentionDays) {
      return BadValue(name, root["retention"], key, absl::StrCat("retention.", key), kDaysWant,
                      days);
    }
  }
  config.data_dir = data_dir;
  config.rules_dir = rules_dir;
  if (absl::Status s = ParseHealthConfig(root, name, &config.health, &config.metrics); !s.ok())
    return s;
  absl::StatusOr<incidents::IncidentsConfig> incidents =
      incidents::ParseIncidentsConfig(root, name);
  if (!incidents.ok()) return incidents.status();
  config.incidents = *std::move(incidents);
  if (config.agent_cert_validity_s < 60 || config.agent_cert_validity_s > 3 * 365 * 86400) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": agent_cert_validity_s must be between 60 and ", 3 * 365 * 86400,
                     ", got ", config.agent_cert_validity_s));
  }
  if (config.token_ttl_s <= 0 || config.max_token_ttl_s < config.token_ttl_s) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": token_ttl_s must be positive and at most max_token_ttl_s"));
  }
  return config;
}

std::filesystem::path DefaultRulesDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path installed = exe.parent_path().parent_path() / "share/siper/ruleset";
    if (std::filesystem::is_directory(installed, ec)) return installed;
  }
  return SIPER_SOURCE_RULES_DIR;
}

}  // namespace siper::server

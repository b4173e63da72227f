// The agent's state directory and the identity stored in it.
//
//   STATE_DIR/            0700
//     agent.key           0600  EC P-256 private key, generated here, never sent
//     agent.pem                 certificate issued by the server's CA (CN = agent id)
//     ca.pem                    the CA that the server's certificate must chain to
//     offsets.json        0600  per-file offsets and unacknowledged runs (log tailer)
//     log/agent.log             the agent's own rotating log (unless log_file is set)
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace siper::agent {

struct StatePaths {
  std::filesystem::path key;
  std::filesystem::path cert;
  std::filesystem::path ca;
  std::filesystem::path offsets;
};

StatePaths StateFiles(const std::filesystem::path& state_dir);

struct AgentIdentity {
  std::string agent_id;  // CN of agent.pem
  std::string key_pem;
  std::string cert_pem;
  std::string ca_pem;
};

// Loads and checks the enrolled identity: the files exist, the certificate
// parses, has the agent role and matches the key.
[[nodiscard]] absl::StatusOr<AgentIdentity> LoadIdentity(const std::filesystem::path& state_dir);

// OK when `cert_pem` certifies the public half of `key_pem`.
[[nodiscard]] absl::Status CheckKeyMatchesCertificate(const std::string& key_pem,
                                                      const std::string& cert_pem);

}  // namespace siper::agent

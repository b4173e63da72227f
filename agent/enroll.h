// Enrollment: a key made here, a CSR sent with a one-time token, the issued
// certificate stored in the state directory.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::agent {

struct EnrollOptions {
  std::string server;               // HOST:PORT
  std::string token;                // one-time enrollment token
  std::filesystem::path ca_file;    // CA the server's certificate must chain to
  std::filesystem::path state_dir;  // where agent.key, agent.pem, ca.pem go
  std::string hostname;             // empty: this host's name
  absl::Duration timeout = absl::Seconds(30);
};

// Enrolls and returns the agent id. Files are replaced only when the server
// issued a certificate, each atomically, so a refused enrollment leaves the
// old identity as it was. A refusal keeps the server's message.
[[nodiscard]] absl::StatusOr<std::string> Enroll(const EnrollOptions& options);

// This host's name (gethostname), "localhost" when it has none.
std::string LocalHostname();

}  // namespace siper::agent

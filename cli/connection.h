// Where siperctl connects and with which certificate.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace siper::cli {

struct ConnectionFlags {
  std::string server;  // HOST:PORT
  std::string ca;      // CA certificate file
  std::string cert;    // client certificate file
  std::string key;     // client key file
};

// Settings in order of precedence: flags, SIPER_SERVER/SIPER_CA/SIPER_CERT/
// SIPER_KEY, ~/.config/siper/siperctl.yaml (keys server, ca, cert, key), and
// last a local development server's PKI in ./var/siper/pki.
[[nodiscard]] absl::StatusOr<ConnectionFlags> ResolveConnection(ConnectionFlags flags);

// A mutual-TLS channel to the server.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const ConnectionFlags& flags);

// Exit code for a failed call: 3 server unreachable, 4 not allowed, 1 otherwise.
int ExitCodeFor(const grpc::Status& status);

// What siperctl prints for a failed call: the server's message; for UNAVAILABLE (no
// connection, or the server said so, e.g. while it restores a backup) prefixed with the
// address resolved from `flags` as for the call (flag, environment or config file).
std::string FailureMessage(const grpc::Status& status, const ConnectionFlags& flags);

}  // namespace siper::cli

#include "agent/enroll.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/grpc_client.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/status.h"
#include "common/text.h"
#include "siper/v1/agent_service.pb.h"

namespace siper::agent {

std::string LocalHostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

absl::StatusOr<std::string> Enroll(const EnrollOptions& options) {
  SIPER_ASSIGN_OR_RETURN(std::string ca_pem, ReadFile(options.ca_file));
  if (ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.ca_file.string(), ": not a PEM certificate (the server's DATA_DIR/pki/ca.pem)"));
  }
  const std::string hostname = options.hostname.empty() ? LocalHostname() : options.hostname;

  SIPER_ASSIGN_OR_RETURN(std::string key_pem, pki::GenerateKeyPem());
  SIPER_ASSIGN_OR_RETURN(std::string csr_pem, pki::CreateCsrPem(key_pem, hostname));
  spdlog::debug("generated an EC P-256 key and a request for host name '{}'",
                EscapeForTerminal(hostname));

  grpcwire::ClientOptions client;
  client.target = options.server;
  client.ca_pem = ca_pem;  // server authentication only: no client certificate yet
  client.connect_timeout = options.timeout;
  client.thread_name = "siper-enroll";
  v1::EnrollRequest request;
  request.set_token(options.token);
  request.set_csr_pem(csr_pem);
  request.set_hostname(hostname);
  request.set_version(SIPER_VERSION);
  v1::EnrollResponse response;
  spdlog::debug("sending the request to {} (server certificate checked against {})",
                EscapeForTerminal(options.server), EscapeForTerminal(options.ca_file.string()));
  const absl::Status status = grpcwire::UnaryCall(client, "/siper.v1.AgentService/Enroll", request,
                                                  &response, options.timeout);
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::Status(status.code(), absl::StrCat("cannot reach ", options.server, ": ",
                                                      std::string(status.message())));
    }
    // The server's message says what was refused.
    return absl::Status(status.code(),
                        absl::StrCat(options.server, ": ", std::string(status.message())));
  }

  if (response.agent_id().empty() || response.certificate_pem().empty()) {
    return absl::InternalError("the server answered without an agent id or certificate");
  }
  SIPER_ASSIGN_OR_RETURN(pki::Identity identity, pki::ParseIdentity(response.certificate_pem()));
  if (identity.common_name != response.agent_id()) {
    return absl::InternalError(absl::StrCat("the issued certificate names '", identity.common_name,
                                            "', not agent '", response.agent_id(), "'"));
  }
  SIPER_RETURN_IF_ERROR(CheckKeyMatchesCertificate(key_pem, response.certificate_pem()));
  spdlog::debug("the server issued a certificate for agent '{}', role '{}'",
                EscapeForTerminal(identity.common_name), EscapeForTerminal(identity.role));

  const StatePaths paths = StateFiles(options.state_dir);
  SIPER_RETURN_IF_ERROR(EnsureDirectory(options.state_dir, 0700));
  if (chmod(options.state_dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot chmod 0700 ", options.state_dir.string()));
  }
  // The key first: a certificate is useless without it, the reverse is harmless.
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(paths.key, key_pem, 0600));
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(paths.cert, response.certificate_pem(), 0644));
  SIPER_RETURN_IF_ERROR(
      WriteFileAtomic(paths.ca, response.ca_pem().empty() ? ca_pem : response.ca_pem(), 0644));
  spdlog::debug("stored the key ({}, mode 0600), the certificate ({}) and the CA ({})",
                EscapeForTerminal(paths.key.string()), EscapeForTerminal(paths.cert.string()),
                EscapeForTerminal(paths.ca.string()));
  return response.agent_id();
}

}  // namespace siper::agent

#include "agent/enroll.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/status.h"
#include "siper/v1/agent_service.grpc.pb.h"

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

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  auto channel = grpc::CreateChannel(options.server, grpc::SslCredentials(tls));
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoNanoseconds(options.timeout));
  v1::EnrollRequest request;
  request.set_token(options.token);
  request.set_csr_pem(csr_pem);
  request.set_hostname(hostname);
  request.set_version(SIPER_VERSION);
  v1::EnrollResponse response;
  const grpc::Status status = stub->Enroll(&context, request, &response);
  if (!status.ok()) {
    const auto code = static_cast<absl::StatusCode>(status.error_code());
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::Status(
          code, absl::StrCat("cannot reach ", options.server, ": ", status.error_message()));
    }
    return absl::Status(
        code, absl::StrCat(options.server, ": ", status.error_message()));  // says what was refused
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
  return response.agent_id();
}

}  // namespace siper::agent

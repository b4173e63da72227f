#include "server/auth.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace siper::server {

absl::StatusOr<pki::Identity> PeerIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError(
        "a client certificate issued by this server's CA is required");
  }
  std::vector<grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return absl::UnauthenticatedError("no client certificate presented");
  return pki::ParseIdentity(std::string(pems.front().data(), pems.front().size()));
}

absl::StatusOr<pki::Identity> RequireRole(const grpc::ServerContextBase& context,
                                          std::initializer_list<std::string_view> roles) {
  absl::StatusOr<pki::Identity> id = PeerIdentity(context);
  if (!id.ok()) return id.status();
  for (std::string_view role : roles) {
    if (id->role == role) return id;
  }
  std::vector<std::string> names(roles.begin(), roles.end());
  return absl::PermissionDeniedError(
      absl::StrCat("role '", id->role, "' of ", id->common_name,
                   " may not do this; needs one of: ", absl::StrJoin(names, ", ")));
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace siper::server

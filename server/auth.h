// Who is calling: the identity bound in the verified client certificate.
#pragma once

#include <grpcpp/grpcpp.h>

#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "common/pki.h"

namespace siper::server {

// The caller's identity, or UNAUTHENTICATED when it presented no certificate.
// The TLS layer has already checked the certificate against our CA.
[[nodiscard]] absl::StatusOr<pki::Identity> PeerIdentity(const grpc::ServerContextBase& context);

// The caller's identity when its role is one of `roles`, else PERMISSION_DENIED.
[[nodiscard]] absl::StatusOr<pki::Identity> RequireRole(
    const grpc::ServerContextBase& context, std::initializer_list<std::string_view> roles);

// absl::Status to grpc::Status, keeping code and message.
[[nodiscard]] grpc::Status ToGrpc(const absl::Status& status);

}  // namespace siper::server

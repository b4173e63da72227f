#include "server/user_service.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/auth.h"

namespace siper::server {

grpc::Status UserServiceImpl::CreateUser(grpc::ServerContext* context,
                                         const siper::v1::CreateUserRequest* request,
                                         siper::v1::CreateUserResponse* response) {
  absl::StatusOr<pki::Identity> who = RequireRole(*context, {pki::kRoleAdmin});
  if (!who.ok()) return ToGrpc(who.status());
  const std::string& name = request->name();
  bool name_ok = !name.empty() && name.size() <= 64;
  for (char c : name) {
    name_ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == '_' || c == '@';
  }
  if (!name_ok) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("user name '", name, "' must be 1-64 letters, digits, '.', '-', '_' or '@'"));
  }
  const std::string& role = request->role();
  if (role != pki::kRoleViewer && role != pki::kRoleAnalyst && role != pki::kRoleAdmin) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("role '", role, "': viewer, analyst or admin"));
  }
  int64_t days = request->validity_days() > 0 ? request->validity_days() : 365;
  if (days > 3 * 365) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "validity is at most 1095 days");
  }
  absl::StatusOr<std::string> cert =
      pki::SignCsr(*ca_, request->csr_pem(), name, role, absl::Hours(24 * days));
  if (!cert.ok()) return ToGrpc(cert.status());
  absl::StatusOr<absl::Time> not_after = pki::NotAfter(*cert);
  response->set_cert_pem(*cert);
  response->set_ca_pem(ca_->cert_pem);
  if (not_after.ok()) response->set_not_after_ns(absl::ToUnixNanos(*not_after));
  spdlog::info("user certificate issued: {} as {} by {}", name, role, who->common_name);
  return grpc::Status::OK;
}

}  // namespace siper::server

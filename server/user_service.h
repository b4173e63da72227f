// UserService: signs CSRs of people as viewer, analyst or admin (admin callers only).
#pragma once

#include "common/pki.h"
#include "siper/v1/user_service.grpc.pb.h"

namespace siper::server {

class UserServiceImpl final : public siper::v1::UserService::Service {
 public:
  // `ca` must outlive the service.
  explicit UserServiceImpl(const pki::KeyAndCert* ca) : ca_(ca) {}

  grpc::Status CreateUser(grpc::ServerContext* context, const siper::v1::CreateUserRequest* request,
                          siper::v1::CreateUserResponse* response) override;

 private:
  const pki::KeyAndCert* ca_;
};

}  // namespace siper::server

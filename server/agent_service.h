// AgentService: enrollment with one-time tokens, and the event stream.
#pragma once

#include <memory>

#include "server/dev_pki.h"
#include "server/health_monitor.h"
#include "server/ingest.h"
#include "server/storage/store.h"
#include "siper/v1/agent_service.grpc.pb.h"

namespace siper::server {

struct AgentServiceOptions {
  absl::Duration agent_cert_validity = absl::Hours(24 * 365);
  size_t max_batch_events = 10000;  // a larger batch is refused
  // While paused (disk nearly full), batches are refused with UNAVAILABLE. Null: never.
  const IngestGate* gate = nullptr;
};

class AgentServiceImpl final : public siper::v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(storage::Store* store, IngestPipeline* ingest, const ServerPki* pki,
                   AgentServiceOptions options = {});

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const siper::v1::EnrollRequest* request,
                                   siper::v1::EnrollResponse* response) override;

  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* context,
                                  const siper::v1::RenewRequest* request,
                                  siper::v1::RenewResponse* response) override;

  grpc::ServerBidiReactor<siper::v1::AgentMessage, siper::v1::ServerMessage>* Stream(
      grpc::CallbackServerContext* context) override;

 private:
  absl::Status DoEnroll(const grpc::CallbackServerContext& context,
                        const siper::v1::EnrollRequest& request,
                        siper::v1::EnrollResponse* response);
  absl::Status DoRenew(const grpc::CallbackServerContext& context,
                       const siper::v1::RenewRequest& request, siper::v1::RenewResponse* response);

  storage::Store* store_;
  IngestPipeline* ingest_;
  const ServerPki* pki_;
  AgentServiceOptions options_;
};

}  // namespace siper::server

#include "server/analyst_service.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "server/auth.h"

namespace siper::server {
namespace {

// Any human role may read; writing calls check their own roles.
absl::StatusOr<pki::Identity> RequireReader(const grpc::ServerContext& context) {
  return RequireRole(context, {pki::kRoleViewer, pki::kRoleAnalyst, pki::kRoleAdmin});
}

// Streams `sink`-fed messages; stops when the client goes away.
template <typename T>
std::function<bool(const T&)> WriterSink(grpc::ServerContext* context,
                                         grpc::ServerWriter<T>* writer) {
  return [context, writer](const T& message) {
    return !context->IsCancelled() && writer->Write(message);
  };
}

}  // namespace

AnalystServiceImpl::AnalystServiceImpl(storage::Store* store, AnalystServiceOptions options)
    : store_(store), options_(options) {}

grpc::Status AnalystServiceImpl::ListAgents(grpc::ServerContext* context,
                                            const siper::v1::ListAgentsRequest*,
                                            grpc::ServerWriter<siper::v1::AgentInfo>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  return ToGrpc(store_->ListAgents(WriterSink(context, writer)));
}

grpc::Status AnalystServiceImpl::SearchEvents(grpc::ServerContext* context,
                                              const siper::v1::SearchEventsRequest* request,
                                              grpc::ServerWriter<siper::v1::Event>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  storage::EventQuery q;
  q.since_ns = request->since_ns();
  q.until_ns = request->until_ns();
  q.agent_id = request->agent_id();
  q.rule_id = request->rule_id();
  q.text = request->query();
  q.limit = request->limit();
  q.newest_first = request->newest_first();
  return ToGrpc(store_->SearchEvents(q, WriterSink(context, writer)));
}

grpc::Status AnalystServiceImpl::ListAlerts(grpc::ServerContext* context,
                                            const siper::v1::ListAlertsRequest* request,
                                            grpc::ServerWriter<siper::v1::Alert>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  storage::AlertQuery q;
  q.since_ns = request->since_ns();
  q.until_ns = request->until_ns();
  q.agent_id = request->agent_id();
  q.rule_id = request->rule_id();
  q.min_level = request->level();
  q.limit = request->limit();
  q.newest_first = request->newest_first();
  return ToGrpc(store_->ListAlerts(q, WriterSink(context, writer)));
}

grpc::Status AnalystServiceImpl::CreateToken(grpc::ServerContext* context,
                                             const siper::v1::CreateTokenRequest* request,
                                             siper::v1::CreateTokenResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  int64_t ttl_s = request->ttl_s() > 0 ? request->ttl_s() : options_.token_ttl_s;
  if (ttl_s > options_.max_token_ttl_s) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("token lifetime ", ttl_s, "s is longer than the allowed ",
                                     options_.max_token_ttl_s, "s"));
  }
  std::string token = RandomToken();
  int64_t expires = absl::ToUnixNanos(absl::Now() + absl::Seconds(ttl_s));
  if (absl::Status st = store_->PutToken(Sha256Hex(token), expires); !st.ok()) return ToGrpc(st);
  // The token itself is a secret: it is never logged, only its owner is.
  spdlog::info("{} created an enrollment token valid for {}s", id->common_name, ttl_s);
  response->set_token(token);
  response->set_expires_ns(expires);
  return grpc::Status::OK;
}

}  // namespace siper::server

#include "server/agent_service.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/status.h"
#include "common/text.h"
#include "server/auth.h"
#include "server/health_events.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

using siper::v1::AgentMessage;
using siper::v1::ServerMessage;

// One reactor per agent stream. A batch is read, handed to the ingest
// pipeline, acknowledged once stored, and only then is the next message
// read: HTTP/2 flow control holds the agent back while we work, so memory
// does not grow with a fast agent.
class StreamReactor final : public grpc::ServerBidiReactor<AgentMessage, ServerMessage> {
 public:
  StreamReactor(grpc::CallbackServerContext* context, storage::Store* store, IngestPipeline* ingest,
                const AgentServiceOptions& options)
      : context_(context), store_(store), ingest_(ingest), options_(options) {
    absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAgent});
    if (!id.ok()) {
      FinishOnce(ToGrpc(id.status()));
      return;
    }
    agent_id_ = id->common_name;
    if (agent_id_ == kInternalAgentId) {  // reserved for the server's own health events
      FinishOnce(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                              absl::StrCat("agent id ", agent_id_, " is reserved")));
      return;
    }
    absl::StatusOr<std::optional<siper::v1::AgentInfo>> info = store_->GetAgent(agent_id_);
    if (!info.ok()) {
      FinishOnce(ToGrpc(info.status()));
      return;
    }
    if (!info->has_value()) {
      FinishOnce(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                              absl::StrCat("agent ", agent_id_, " is not registered")));
      return;
    }
    if ((*info)->revoked()) {
      spdlog::warn("refused stream of revoked agent {}", agent_id_);
      FinishOnce(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                              absl::StrCat("agent ", agent_id_, " has been revoked")));
      return;
    }
    info_ = **info;
    info_.set_address(context->peer());
    spdlog::info("agent {} connected from {}", agent_id_, context->peer());
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or went away; nothing is in flight here.
      FinishOnce(grpc::Status::OK);
      return;
    }
    switch (in_.kind_case()) {
      case AgentMessage::kHello:
        if (!in_.hello().agent_id().empty() && in_.hello().agent_id() != agent_id_) {
          FinishOnce(grpc::Status(
              grpc::StatusCode::PERMISSION_DENIED,
              absl::StrCat("hello claims agent id '", EscapeForTerminal(in_.hello().agent_id()),
                           "' but the certificate is for ", agent_id_)));
          return;
        }
        info_.set_version(in_.hello().version());
        if (!in_.hello().hostname().empty()) info_.set_hostname(in_.hello().hostname());
        Touch(0, 0);
        StartRead(&in_);
        return;
      case AgentMessage::kHeartbeat:
        info_.set_version(in_.heartbeat().version());
        RecordHeartbeat(in_.heartbeat(), absl::Now(), &info_);
        Touch(0, 0);
        StartRead(&in_);
        return;
      case AgentMessage::kBatch:
        HandleBatch();
        return;
      default:
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty agent message"));
        return;
    }
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot send acknowledgement"));
      return;
    }
    StartRead(&in_);
  }

  void OnDone() override { delete this; }

 private:
  void HandleBatch() {
    siper::v1::EventBatch batch = std::move(*in_.mutable_batch());
    const int count = batch.events_size();
    Metrics().batches_received.Add();
    Metrics().events_received.Add(count);
    if (options_.gate != nullptr && options_.gate->paused()) {
      // Not taken, so not acknowledged: the agent keeps it spooled and resends it.
      Metrics().Reject(RejectReason::kDiskLow, count);
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "server disk nearly full: batch not taken, keep it and retry later"));
      return;
    }
    if (static_cast<size_t>(count) > options_.max_batch_events) {
      Metrics().Reject(RejectReason::kTooLarge, count);
      FinishOnce(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("batch of ", batch.events_size(), " events is larger than the limit of ",
                       options_.max_batch_events)));
      return;
    }
    for (siper::v1::Event& event : *batch.mutable_events()) {
      if (event.agent_id().empty()) event.set_agent_id(agent_id_);
      if (event.agent_id() != agent_id_) {
        spdlog::warn("agent {} sent an event claiming agent id {}", agent_id_,
                     EscapeForTerminal(event.agent_id()));
        Metrics().Reject(RejectReason::kForeignAgentId, count);
        FinishOnce(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                absl::StrCat("event seq ", event.seq(), " claims agent id '",
                                             EscapeForTerminal(event.agent_id()),
                                             "' but the certificate is for ", agent_id_)));
        return;
      }
      if (event.seq() == 0) {
        Metrics().Reject(RejectReason::kNoSeq, count);
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "event without a sequence number (seq starts at 1)"));
        return;
      }
      event.clear_fields();         // fields are the server's to decode
      event.set_server_time_ns(0);  // and the time of receipt is the store's to set
    }
    ingest_->Submit(agent_id_, std::move(batch),
                    [this, count](absl::StatusOr<storage::WriteResult> result) {
                      OnStored(count, std::move(result));
                    });
  }

  // Runs on an ingest worker.
  void OnStored(int count, absl::StatusOr<storage::WriteResult> result) {
    if (!result.ok()) {
      spdlog::error("agent {}: batch of {} events not stored: {}", agent_id_, count,
                    result.status().ToString());
      Metrics().Reject(RejectReason::kStoreFailed, static_cast<uint64_t>(count));
      FinishOnce(ToGrpc(result.status()));
      return;
    }
    Touch(result->max_seq, result->stored);
    out_.Clear();
    siper::v1::Ack* ack = out_.mutable_ack();
    ack->set_acked_seq(result->max_seq);
    ack->set_stored(result->stored);
    ack->set_duplicates(result->duplicates);
    StartWrite(&out_);
  }

  // Records that the agent was seen; registry errors are logged, not fatal.
  void Touch(uint64_t last_seq, uint32_t stored) {
    int64_t now = absl::ToUnixNanos(absl::Now());
    if (info_.first_seen_ns() == 0) info_.set_first_seen_ns(now);
    info_.set_last_seen_ns(now);
    if (last_seq > info_.last_seq()) info_.set_last_seq(last_seq);
    info_.set_events(info_.events() + stored);
    // An admin may have revoked the agent since this stream began: never write that back.
    if (auto current = store_->GetAgent(agent_id_);
        current.ok() && current->has_value() && (*current)->revoked()) {
      info_.set_revoked(true);
    }
    if (absl::Status st = store_->PutAgent(info_); !st.ok()) {
      spdlog::warn("agent {}: cannot update registry: {}", agent_id_, st.ToString());
    }
  }

  void FinishOnce(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    if (!status.ok()) {
      spdlog::info("agent {} stream ends: {}", agent_id_, status.error_message());
    }
    Finish(status);
  }

  grpc::CallbackServerContext* context_;
  storage::Store* store_;
  IngestPipeline* ingest_;
  const AgentServiceOptions& options_;
  std::string agent_id_;
  siper::v1::AgentInfo info_;
  AgentMessage in_;
  ServerMessage out_;
  std::mutex mu_;
  bool finished_ = false;
};

}  // namespace

AgentServiceImpl::AgentServiceImpl(storage::Store* store, IngestPipeline* ingest,
                                   const ServerPki* pki, AgentServiceOptions options)
    : store_(store), ingest_(ingest), pki_(pki), options_(options) {}

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const siper::v1::EnrollRequest* request,
                                                   siper::v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status st = DoEnroll(*context, *request, response);
  if (!st.ok())
    spdlog::warn("enrollment from {} refused: {}", context->peer(), std::string(st.message()));
  reactor->Finish(ToGrpc(st));
  return reactor;
}

absl::Status AgentServiceImpl::DoEnroll(const grpc::CallbackServerContext& context,
                                        const siper::v1::EnrollRequest& request,
                                        siper::v1::EnrollResponse* response) {
  if (request.token().empty()) return absl::InvalidArgumentError("enrollment token is missing");
  if (request.token().size() > 256) return absl::InvalidArgumentError("enrollment token too long");
  absl::Status token =
      store_->ConsumeToken(Sha256Hex(request.token()), absl::ToUnixNanos(absl::Now()));
  if (!token.ok()) {
    return absl::Status(token.code(), absl::StrCat("enrollment refused: ", token.message()));
  }
  // Never kInternalAgentId ("siper-server"): enrolled ids always start with "agt-".
  std::string agent_id = absl::StrCat("agt-", RandomHex(8));
  SIPER_ASSIGN_OR_RETURN(std::string cert,
                         pki::SignCsr(pki_->ca, request.csr_pem(), agent_id, pki::kRoleAgent,
                                      options_.agent_cert_validity));
  siper::v1::AgentInfo info;
  info.set_agent_id(agent_id);
  info.set_hostname(request.hostname().substr(0, 255));
  info.set_version(request.version().substr(0, 64));
  info.set_address(context.peer());
  info.set_enrolled_ns(absl::ToUnixNanos(absl::Now()));
  SIPER_RETURN_IF_ERROR(store_->PutAgent(info));
  spdlog::info("enrolled agent {} ({}) from {}", agent_id, EscapeForTerminal(info.hostname()),
               context.peer());
  response->set_agent_id(agent_id);
  response->set_certificate_pem(cert);
  response->set_ca_pem(pki_->ca.cert_pem);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentServiceImpl::Renew(grpc::CallbackServerContext* context,
                                                  const siper::v1::RenewRequest* request,
                                                  siper::v1::RenewResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status st = DoRenew(*context, *request, response);
  if (!st.ok()) {
    spdlog::warn("certificate renewal from {} refused: {}", context->peer(),
                 std::string(st.message()));
  }
  reactor->Finish(ToGrpc(st));
  return reactor;
}

absl::Status AgentServiceImpl::DoRenew(const grpc::CallbackServerContext& context,
                                       const siper::v1::RenewRequest& request,
                                       siper::v1::RenewResponse* response) {
  // The current certificate (checked against our CA by TLS) says who asks.
  SIPER_ASSIGN_OR_RETURN(pki::Identity id, RequireRole(context, {pki::kRoleAgent}));
  SIPER_ASSIGN_OR_RETURN(std::optional<siper::v1::AgentInfo> info,
                         store_->GetAgent(id.common_name));
  if (!info.has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", id.common_name, " is not registered"));
  }
  if (info->revoked()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "agent ", id.common_name, " has been revoked; it must be enrolled again with a new token"));
  }
  SIPER_ASSIGN_OR_RETURN(std::string csr_cn, pki::CsrCommonName(request.csr_pem()));
  if (csr_cn != id.common_name) {
    return absl::PermissionDeniedError(absl::StrCat("the CSR is for '", EscapeForTerminal(csr_cn),
                                                    "' but the calling certificate is for ",
                                                    id.common_name));
  }
  SIPER_ASSIGN_OR_RETURN(std::string cert,
                         pki::SignCsr(pki_->ca, request.csr_pem(), id.common_name, pki::kRoleAgent,
                                      options_.agent_cert_validity));
  spdlog::info("renewed the certificate of agent {} (valid {} s)", id.common_name,
               absl::ToInt64Seconds(options_.agent_cert_validity));
  response->set_certificate_pem(std::move(cert));
  response->set_ca_pem(pki_->ca.cert_pem);
  return absl::OkStatus();
}

grpc::ServerBidiReactor<AgentMessage, ServerMessage>* AgentServiceImpl::Stream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(context, store_, ingest_, options_);
}

}  // namespace siper::server

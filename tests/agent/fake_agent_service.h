// An in-process stand-in for siper-server's AgentService, speaking the wire
// contract over real gRPC with real TLS (a CA and server certificate made with
// common/pki). Kept only where the real server cannot produce the fault or
// show what is checked: acknowledgements that never arrive after a store
// (set_ack(false)), heartbeat contents, and unit tests of Enroll and Shipper
// as classes, in-process. The whole agent against the real server (delivery,
// restarts, SIGKILLs, server down, full spool, FIM, enrollment refusals) is
// tested in tests/e2e.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_context.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/pki.h"
#include "siper/v1/agent_service.grpc.pb.h"

namespace siper::agent::testing {

class FakeAgentService final : public v1::AgentService::Service {
 public:
  // Stored events by (agent_id, seq), and how often each was received.
  struct Stored {
    std::string source;
    std::string line;
    int received = 0;
    std::string file_path;  // FIM events
    v1::FileChange file_change = v1::FILE_CHANGE_UNSPECIFIED;
  };

  explicit FakeAgentService(pki::KeyAndCert ca) : ca_(std::move(ca)) {}

  void AllowToken(const std::string& token) {
    std::lock_guard lock(mu_);
    tokens_.insert(token);
  }
  // When false, batches are stored but never acknowledged (a server that
  // crashes between its write and its ack).
  void set_ack(bool ack) { ack_ = ack; }

  std::vector<v1::Heartbeat> heartbeats() const {
    std::lock_guard lock(mu_);
    return heartbeats_;
  }
  std::map<std::pair<std::string, uint64_t>, Stored> stored() const {
    std::lock_guard lock(mu_);
    return stored_;
  }
  size_t stored_count() const {
    std::lock_guard lock(mu_);
    return stored_.size();
  }
  std::string last_peer_cn() const {
    std::lock_guard lock(mu_);
    return last_peer_cn_;
  }
  int hellos() const { return hellos_; }

  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override {
    std::string agent_id;
    {
      std::lock_guard lock(mu_);
      if (tokens_.erase(request->token()) == 0) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "enrollment token is unknown, used or expired");
      }
      agent_id = absl::StrCat("agt-", ++enrolled_);
    }
    auto cert = pki::SignCsr(ca_, request->csr_pem(), agent_id, pki::kRoleAgent, absl::Hours(1));
    if (!cert.ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad CSR");
    response->set_agent_id(agent_id);
    response->set_certificate_pem(*cert);
    response->set_ca_pem(ca_.cert_pem);
    return grpc::Status::OK;
  }

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerMessage, v1::AgentMessage>* stream) override {
    std::string peer_cn;
    for (const auto& value : context->auth_context()->FindPropertyValues("x509_common_name")) {
      peer_cn.assign(value.data(), value.size());
    }
    if (peer_cn.empty()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "a client certificate is required");
    }
    {
      std::lock_guard lock(mu_);
      last_peer_cn_ = peer_cn;
    }
    v1::AgentMessage message;
    while (stream->Read(&message)) {
      if (message.has_hello()) {
        ++hellos_;
        continue;
      }
      if (message.has_heartbeat()) {
        std::lock_guard lock(mu_);
        heartbeats_.push_back(message.heartbeat());
      }
      if (!message.has_batch()) continue;
      uint64_t max_seq = 0;
      uint32_t stored = 0;
      uint32_t duplicates = 0;
      {
        std::lock_guard lock(mu_);
        for (const v1::Event& event : message.batch().events()) {
          if (event.agent_id() != peer_cn) {
            return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "agent id mismatch");
          }
          Stored& entry = stored_[{event.agent_id(), event.seq()}];
          if (entry.received++ == 0) {
            entry.source = event.log().source();
            entry.line = event.log().line();
            entry.file_path = event.file().path();
            entry.file_change = event.file().change();
            ++stored;
          } else {
            ++duplicates;
          }
          max_seq = std::max(max_seq, event.seq());
        }
      }
      if (!ack_) continue;
      v1::ServerMessage reply;
      reply.mutable_ack()->set_acked_seq(max_seq);
      reply.mutable_ack()->set_stored(stored);
      reply.mutable_ack()->set_duplicates(duplicates);
      if (!stream->Write(reply)) break;
    }
    return grpc::Status::OK;
  }

 private:
  const pki::KeyAndCert ca_;
  mutable std::mutex mu_;
  std::set<std::string> tokens_;
  int enrolled_ = 0;
  std::map<std::pair<std::string, uint64_t>, Stored> stored_;
  std::vector<v1::Heartbeat> heartbeats_;
  std::string last_peer_cn_;
  std::atomic<bool> ack_{true};
  std::atomic<int> hellos_{0};
};

// The service above on 127.0.0.1 with TLS; client certificates are verified
// when presented (Stream insists on one).
class FakeServer {
 public:
  FakeServer() {
    ca_ = *pki::CreateCa("Test CA", absl::Hours(1));
    server_cert_ = *pki::IssueWithNewKey(ca_, "localhost", pki::kRoleServer, absl::Hours(1),
                                         {"localhost", "127.0.0.1"});
    service_ = std::make_unique<FakeAgentService>(ca_);
  }
  ~FakeServer() { Stop(); }

  // Starts listening; on the same port as before after a Stop().
  void Start() {
    grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = ca_.cert_pem;
    tls.pem_key_cert_pairs.push_back({server_cert_.key_pem, server_cert_.cert_pem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port_), grpc::SslServerCredentials(tls),
                             &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  void Stop() {
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      server_->Wait();
      server_.reset();
    }
  }

  // Reserves a port without serving (the server is "down" until Start()).
  void PickPort() {
    Start();
    Stop();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  const std::string& ca_pem() const { return ca_.cert_pem; }
  const pki::KeyAndCert& ca() const { return ca_; }
  FakeAgentService& service() { return *service_; }

 private:
  pki::KeyAndCert ca_;
  pki::KeyAndCert server_cert_;
  std::unique_ptr<FakeAgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace siper::agent::testing

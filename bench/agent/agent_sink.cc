// agent_sink: a minimal local SINK for siper-agent's events, to measure how
// many events/s one agent can ship when the receiving side is not the limit.
// It is NOT siper-server: it stores nothing, decodes nothing, runs no rules.
//
// A real gRPC C++ server with real mutual TLS (its own CA and a server
// certificate for 127.0.0.1 made with common/pki, client certificates
// required on Stream and verified against that CA) implementing
// siper.v1.AgentService: Enroll (one one-time token, so the real agent enrolls
// through its real code path) and Stream, which parses each batch (gRPC C++
// decompresses and parses the protobuf), checks that every event carries the
// caller's agent id (the certificate's CN) and that seqs grow, and
// acknowledges the batch's highest seq at once. Nothing is kept.
//
// Usage: agent_sink --dir DIR [--listen 127.0.0.1:0]
// Writes DIR/ca.pem, DIR/token (one-time enrollment token), DIR/sink.port,
// and every 100 ms DIR/sink.stats (atomically replaced), one line:
//   events batches acked_seq first_batch_unix_ns last_ack_unix_ns errors
// Runs until SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/pki.h"
#include "openssl/rand.h"
#include "siper/v1/agent_service.grpc.pb.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

class SinkService final : public siper::v1::AgentService::Service {
 public:
  SinkService(siper::pki::KeyAndCert ca, std::string token)
      : ca_(std::move(ca)), token_(std::move(token)) {}

  grpc::Status Enroll(grpc::ServerContext*, const siper::v1::EnrollRequest* request,
                      siper::v1::EnrollResponse* response) override {
    {
      std::lock_guard lock(mu_);
      if (token_.empty() || request->token() != token_) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "enrollment token is unknown or used (agent_sink: one token)");
      }
      token_.clear();
    }
    const std::string agent_id = "agt-sink-1";
    auto cert = siper::pki::SignCsr(ca_, request->csr_pem(), agent_id, siper::pki::kRoleAgent,
                                    absl::Hours(24));
    if (!cert.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("bad CSR: ", cert.status().message()));
    }
    response->set_agent_id(agent_id);
    response->set_certificate_pem(*cert);
    response->set_ca_pem(ca_.cert_pem);
    return grpc::Status::OK;
  }

  grpc::Status Renew(grpc::ServerContext*, const siper::v1::RenewRequest*,
                     siper::v1::RenewResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "agent_sink does not renew");
  }

  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<siper::v1::ServerMessage, siper::v1::AgentMessage>*
                          stream) override {
    std::string peer_cn;
    for (const auto& value : context->auth_context()->FindPropertyValues("x509_common_name")) {
      peer_cn.assign(value.data(), value.size());
    }
    if (peer_cn.empty()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "a client certificate is required");
    }
    siper::v1::AgentMessage message;
    siper::v1::ServerMessage reply;
    uint64_t last_seq = 0;
    while (stream->Read(&message)) {
      if (!message.has_batch()) continue;  // hello, heartbeat
      uint64_t max_seq = 0;
      for (const siper::v1::Event& event : message.batch().events()) {
        if (event.agent_id() != peer_cn) {
          ++errors_;
          return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                              "event agent id is not the certificate's");
        }
        if (event.seq() <= last_seq) ++errors_;  // a resend after a reconnect would also land here
        last_seq = std::max(last_seq, event.seq());
        max_seq = std::max(max_seq, event.seq());
      }
      const int64_t now = NowNs();
      int64_t zero = 0;
      first_batch_ns_.compare_exchange_strong(zero, now);
      events_ += static_cast<uint64_t>(message.batch().events_size());
      ++batches_;
      reply.mutable_ack()->set_acked_seq(max_seq);
      reply.mutable_ack()->set_stored(static_cast<uint32_t>(message.batch().events_size()));
      reply.mutable_ack()->set_duplicates(0);
      if (!stream->Write(reply)) break;
      uint64_t seen = acked_seq_.load();
      while (seen < max_seq && !acked_seq_.compare_exchange_weak(seen, max_seq)) {
      }
      last_ack_ns_ = NowNs();
    }
    return grpc::Status::OK;
  }

  std::string Stats() const {
    return absl::StrCat(events_.load(), " ", batches_.load(), " ", acked_seq_.load(), " ",
                        first_batch_ns_.load(), " ", last_ack_ns_.load(), " ", errors_.load(),
                        "\n");
  }

 private:
  const siper::pki::KeyAndCert ca_;
  std::mutex mu_;
  std::string token_;
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> acked_seq_{0};
  std::atomic<int64_t> first_batch_ns_{0};
  std::atomic<int64_t> last_ack_ns_{0};
  std::atomic<uint64_t> errors_{0};
};

bool WriteFile(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.good()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int Fail(const std::string& what) {
  std::cerr << "agent_sink: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir_arg;
  std::string listen = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir_arg = argv[++i];
    } else if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else {
      std::cerr << "usage: agent_sink --dir DIR [--listen 127.0.0.1:0]\n"
                   "A sink for siper-agent's events: acknowledges every batch, stores nothing.\n";
      return 2;
    }
  }
  if (dir_arg.empty()) return Fail("--dir is required");
  const std::filesystem::path dir(dir_arg);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(absl::StrCat(dir_arg, ": ", ec.message()));

  auto ca = siper::pki::CreateCa("siper agent_sink CA", absl::Hours(24));
  if (!ca.ok()) return Fail(absl::StrCat("CA: ", ca.status().message()));
  auto server_cert = siper::pki::IssueWithNewKey(*ca, "agent-sink", siper::pki::kRoleServer,
                                                 absl::Hours(24), {"127.0.0.1", "localhost"});
  if (!server_cert.ok()) {
    return Fail(absl::StrCat("server certificate: ", server_cert.status().message()));
  }
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) return Fail("RAND_bytes failed");
  std::string token;
  for (unsigned char c : random) absl::StrAppend(&token, absl::Hex(c, absl::kZeroPad2));

  if (!WriteFile(dir / "ca.pem", ca->cert_pem) || !WriteFile(dir / "token", token + "\n")) {
    return Fail(absl::StrCat(dir_arg, ": cannot write ca.pem or token"));
  }

  SinkService service(*ca, token);
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = ca->cert_pem;
  tls.pem_key_cert_pairs.push_back({server_cert->key_pem, server_cert->cert_pem});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::SslServerCredentials(tls), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(absl::StrCat("cannot listen on ", listen));
  if (!WriteFile(dir / "sink.port", absl::StrCat(port, "\n"))) {
    return Fail("cannot write sink.port");
  }
  std::cerr << "agent_sink: a sink (acknowledges, stores nothing) on 127.0.0.1:" << port << "\n";

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    WriteFile(dir / "sink.stats", service.Stats());
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  WriteFile(dir / "sink.stats", service.Stats());
  return 0;
}

// agent/grpc_client.h against a REAL gRPC C++ server in this process, on
// loopback, with real TLS (certificates from common/pki): unary and
// bidirectional calls, messages larger than the HTTP/2 window both ways,
// gzip both ways, error statuses in trailers and trailers-only responses,
// deadlines, a server going away, a connection reset, a silent peer caught
// by keepalive, TLS refusals (wrong CA, wrong name or address), back-pressure
// and cancellation from another thread.
#include "agent/grpc_client.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_context.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/pki.h"
#include "siper/v1/agent_service.grpc.pb.h"
#include "tests/agent/grpc_test_log.h"

namespace siper::agent::grpcwire {
namespace {

constexpr char kStream[] = "/siper.v1.AgentService/Stream";
constexpr char kEnroll[] = "/siper.v1.AgentService/Enroll";
constexpr char kRenew[] = "/siper.v1.AgentService/Renew";

// Random text (6 bits per byte: gzip cannot shrink it much; valid UTF-8 for string fields).
std::string RandomBytes(size_t size, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::mt19937_64 random(seed);
  std::string out(size, '\0');
  for (char& c : out) c = kAlphabet[random() & 63];
  return out;
}

// What the test service does with a Stream, chosen by the Hello's hostname.
class TestService final : public v1::AgentService::Service {
 public:
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override {
    if (request->token() == "deny") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "token 'deny' is used: 100% refused, \xc3\xa9t\xc3\xa9\nsecond line");
    }
    if (request->token() == "slow") std::this_thread::sleep_for(std::chrono::seconds(3));
    response->set_agent_id(absl::StrCat("agt-", request->token()));
    response->set_certificate_pem(request->csr_pem());
    return grpc::Status::OK;
  }

  grpc::Status Renew(grpc::ServerContext* context, const v1::RenewRequest* request,
                     v1::RenewResponse* response) override {
    std::string cn;
    for (const auto& value : context->auth_context()->FindPropertyValues("x509_common_name")) {
      cn.assign(value.data(), value.size());
    }
    if (cn.empty()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "a client certificate is required");
    }
    response->set_certificate_pem(absl::StrCat(cn, "|", request->csr_pem()));
    return grpc::Status::OK;
  }

  grpc::Status Stream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerMessage, v1::AgentMessage>* stream) override {
    ++streams_;
    v1::AgentMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    const std::string mode = message.hello().hostname();
    if (mode == "unauthenticated") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no, not you");
    }
    if (mode == "gzip") context->set_compression_algorithm(GRPC_COMPRESS_GZIP);
    if (mode == "stall") {
      // Reads nothing more: the client's writes must block, not pile up.
      while (!context->IsCancelled() && !stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      return grpc::Status::CANCELLED;
    }
    if (mode == "big-reply") {
      v1::ServerMessage reply;
      (*reply.mutable_command()->mutable_args())["blob"] = RandomBytes(1 << 20, 9);
      stream->Write(reply);
    }
    uint64_t received = 0;
    while (stream->Read(&message)) {
      if (!message.has_batch()) continue;
      ++received;
      // Echo: an ack with the batch's byte count and a command carrying the
      // first event's line back (as large as it came).
      v1::ServerMessage reply;
      size_t bytes = 0;
      for (const v1::Event& event : message.batch().events()) bytes += event.log().line().size();
      reply.mutable_ack()->set_acked_seq(message.batch().events(0).seq());
      reply.mutable_ack()->set_stored(static_cast<uint32_t>(bytes));
      if (!stream->Write(reply)) break;
      v1::ServerMessage echo;
      (*echo.mutable_command()->mutable_args())["line"] = message.batch().events(0).log().line();
      echo.mutable_command()->set_name(absl::StrCat("echo-", message.batch().events(0).seq()));
      if (!stream->Write(echo)) break;
      if (mode == "revoke" && received == 1) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "agent agt-1 has been revoked");
      }
    }
    return grpc::Status::OK;
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> streams_{0};
};

class TestServer {
 public:
  explicit TestServer(std::vector<std::string> names = {"localhost", "127.0.0.1"}) {
    ca_ = *pki::CreateCa("Test CA", absl::Hours(1));
    server_cert_ = *pki::IssueWithNewKey(ca_, "server", pki::kRoleServer, absl::Hours(1), names);
    client_cert_ = *pki::IssueWithNewKey(ca_, "agt-7", pki::kRoleAgent, absl::Hours(1));
    grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    tls.pem_root_certs = ca_.cert_pem;
    tls.pem_key_cert_pairs.push_back({server_cert_.key_pem, server_cert_.cert_pem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { Shutdown(); }

  void Shutdown() {
    if (!server_) return;
    service_.stop_ = true;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server_->Wait();
    server_.reset();
  }

  ClientOptions Options(bool client_cert = true) const {
    ClientOptions options;
    options.target = absl::StrCat("127.0.0.1:", port_);
    options.ca_pem = ca_.cert_pem;
    if (client_cert) {
      options.cert_pem = client_cert_.cert_pem;
      options.key_pem = client_cert_.key_pem;
    }
    options.connect_timeout = absl::Seconds(5);
    return options;
  }

  int port() const { return port_; }
  TestService& service() { return service_; }

 private:
  pki::KeyAndCert ca_;
  pki::KeyAndCert server_cert_;
  pki::KeyAndCert client_cert_;
  TestService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

int Listen(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return -1;
  }
  socklen_t size = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  *port = ntohs(address.sin_port);
  return fd;
}

// A TCP proxy on loopback in front of the server, for one connection: it
// forwards bytes both ways until told to freeze (a silent peer: sockets open,
// nothing forwarded) or to reset (RST to the client).
class Proxy {
 public:
  explicit Proxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = Listen(&port_);
    thread_ = std::thread([this] { Run(); });
  }
  ~Proxy() {
    done_ = true;
    thread_.join();
    close(listen_fd_);
  }
  void Freeze() { frozen_ = true; }
  void Reset() { reset_ = true; }
  int port() const { return port_; }
  bool forwarded() const { return forwarded_ > 0; }

 private:
  void Run() {
    pollfd accept_fd{listen_fd_, POLLIN, 0};
    while (!done_ && poll(&accept_fd, 1, 50) == 0) {
    }
    if (done_) return;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      close(client);
      close(upstream);
      return;
    }
    char buffer[65536];
    while (!done_) {
      if (reset_) {
        linger hard{1, 0};
        setsockopt(client, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        setsockopt(upstream, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        break;
      }
      if (frozen_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
      if (poll(fds, 2, 20) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if (fds[i].revents == 0) continue;
        const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
        if (n <= 0) {
          closed = true;
          break;
        }
        if (send(fds[1 - i].fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) closed = true;
        ++forwarded_;
      }
      if (closed) break;
    }
    close(client);
    close(upstream);
  }

  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<bool> reset_{false};
  std::atomic<int> forwarded_{0};
};

v1::AgentMessage HelloMessage(const std::string& mode) {
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id("agt-7");
  hello.mutable_hello()->set_hostname(mode);
  return hello;
}

v1::AgentMessage Batch(uint64_t seq, std::string line) {
  v1::AgentMessage message;
  v1::Event* event = message.mutable_batch()->add_events();
  event->set_seq(seq);
  event->mutable_log()->set_line(std::move(line));
  return message;
}

// Collects what a stream receives.
struct Received {
  std::mutex mu;
  std::vector<v1::ServerMessage> messages;
  std::atomic<bool> ended{false};

  Call::Handlers Handlers() {
    Call::Handlers handlers;
    handlers.on_message = [this](std::string_view bytes) {
      v1::ServerMessage message;
      if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::InternalError("unparsable");
      }
      std::lock_guard lock(mu);
      messages.push_back(std::move(message));
      return absl::OkStatus();
    };
    handlers.on_end = [this] { ended = true; };
    return handlers;
  }
  size_t size() {
    std::lock_guard lock(mu);
    return messages.size();
  }
};

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class GrpcClientTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::SilenceGrpcLogs(); }
};

TEST_F(GrpcClientTest, UnaryWithoutClientCertificate) {
  TestServer server;
  v1::EnrollRequest request;
  request.set_token("t1");
  request.set_csr_pem(std::string(200000, 'c'));  // larger than one HTTP/2 frame and window
  v1::EnrollResponse response;
  const absl::Status status =
      UnaryCall(server.Options(false), kEnroll, request, &response, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.agent_id(), "agt-t1");
  EXPECT_EQ(response.certificate_pem(), request.csr_pem());
}

TEST_F(GrpcClientTest, RefusalKeepsCodeAndPercentDecodedMessage) {
  TestServer server;
  v1::EnrollRequest request;
  request.set_token("deny");
  v1::EnrollResponse response;
  const absl::Status status =
      UnaryCall(server.Options(false), kEnroll, request, &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::string(status.message()),
            "token 'deny' is used: 100% refused, \xc3\xa9t\xc3\xa9\nsecond line");
}

TEST_F(GrpcClientTest, UnaryDeadline) {
  TestServer server;
  v1::EnrollRequest request;
  request.set_token("slow");
  v1::EnrollResponse response;
  const absl::Time start = absl::Now();
  const absl::Status status =
      UnaryCall(server.Options(false), kEnroll, request, &response, absl::Milliseconds(700));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2.5));
}

TEST_F(GrpcClientTest, MutualTlsPresentsTheClientCertificate) {
  TestServer server;
  v1::RenewRequest request;
  request.set_csr_pem("csr");
  v1::RenewResponse response;
  absl::Status status = UnaryCall(server.Options(), kRenew, request, &response, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.certificate_pem(), "agt-7|csr");
  status = UnaryCall(server.Options(false), kRenew, request, &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
}

void StreamBothWaysLarge(const std::string& mode, bool gzip) {
  TestServer server;
  Received received;
  ClientOptions options = server.Options();
  options.gzip = gzip;
  auto call = Call::Start(options, kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage(mode)));
  // Incompressible lines of 1 MiB (the shipper's batch_max_bytes), far above
  // the 64 KiB initial HTTP/2 window, and small ones in between.
  constexpr int kBatches = 6;
  std::vector<std::string> lines;
  for (int i = 0; i < kBatches; ++i) {
    lines.push_back(i % 2 == 0 ? RandomBytes(1 << 20, 100 + i) : absl::StrCat("small ", i));
    ASSERT_TRUE(call->Write(Batch(static_cast<uint64_t>(i + 1), lines.back())));
  }
  ASSERT_TRUE(WaitUntil([&] { return received.size() >= 2 * kBatches; }, absl::Seconds(30)))
      << received.size();
  call->WritesDone();
  const absl::Status status = call->Finish();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(received.ended);
  std::lock_guard lock(received.mu);
  ASSERT_EQ(received.messages.size(), 2u * kBatches);
  for (int i = 0; i < kBatches; ++i) {
    const v1::ServerMessage& ack = received.messages[2 * i];
    const v1::ServerMessage& echo = received.messages[2 * i + 1];
    EXPECT_EQ(ack.ack().acked_seq(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(ack.ack().stored(), lines[i].size());
    EXPECT_EQ(echo.command().name(), absl::StrCat("echo-", i + 1));
    EXPECT_TRUE(echo.command().args().at("line") == lines[i]) << "batch " << i;
  }
}

TEST_F(GrpcClientTest, StreamsLargeMessagesBothWaysGzipUp) { StreamBothWaysLarge("echo", true); }

TEST_F(GrpcClientTest, StreamsLargeMessagesBothWaysGzipDown) { StreamBothWaysLarge("gzip", false); }

TEST_F(GrpcClientTest, ErrorStatusInTrailersAfterMessages) {
  TestServer server;
  Received received;
  auto call = Call::Start(server.Options(), kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("revoke")));
  ASSERT_TRUE(call->Write(Batch(1, "one line")));
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_EQ(std::string(status.message()), "agent agt-1 has been revoked");
  EXPECT_EQ(received.size(), 2u);  // the ack and the echo came before the trailers
  EXPECT_FALSE(call->Write(Batch(2, "after the end")));
}

TEST_F(GrpcClientTest, TrailersOnlyResponse) {
  TestServer server;
  Received received;
  auto call = Call::Start(server.Options(), kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("unauthenticated")));
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_EQ(std::string(status.message()), "no, not you");
  EXPECT_EQ(received.size(), 0u);
}

TEST_F(GrpcClientTest, UnknownMethodIsUnimplemented) {
  TestServer server;
  v1::EnrollRequest request;
  v1::EnrollResponse response;
  const absl::Status status = UnaryCall(server.Options(), "/siper.v1.AgentService/Nope", request,
                                        &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
}

TEST_F(GrpcClientTest, MessageAboveTheReceiveLimitFailsTheCall) {
  TestServer server;
  Received received;
  ClientOptions options = server.Options();
  options.max_receive_message_bytes = 64 << 10;
  auto call = Call::Start(options, kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("big-reply")));
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(received.size(), 0u);
}

TEST_F(GrpcClientTest, WritesBlockWhenTheServerDoesNotReadAndCancelEndsThem) {
  TestServer server;
  Received received;
  ClientOptions options = server.Options();
  options.gzip = false;
  options.max_buffered_bytes = 256 << 10;
  auto call = Call::Start(options, kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("stall")));
  constexpr int kWrites = 40;  // 40 MiB: more than any HTTP/2 window and socket buffer
  std::atomic<int> written{0};
  std::atomic<bool> writer_failed{false};
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      if (!call->Write(Batch(static_cast<uint64_t>(i + 1), RandomBytes(1 << 20, i)))) {
        writer_failed = true;
        return;
      }
      ++written;
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_LT(written.load(), kWrites) << "Write() buffered without bound";
  const absl::Time cancelled = absl::Now();
  call->Cancel();  // from this thread while the writer is blocked in Write()
  writer.join();
  EXPECT_TRUE(writer_failed);
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_LT(absl::Now() - cancelled, absl::Seconds(2));
}

TEST_F(GrpcClientTest, CancelWhileIdle) {
  TestServer server;
  Received received;
  auto call = Call::Start(server.Options(), kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("echo")));
  ASSERT_TRUE(call->Write(Batch(1, "x")));
  ASSERT_TRUE(WaitUntil([&] { return received.size() >= 2; }, absl::Seconds(10)));
  std::thread canceller([&] { call->Cancel(); });
  canceller.join();
  EXPECT_EQ(call->Finish().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(received.ended);
}

TEST_F(GrpcClientTest, ServerGoingAwayEndsTheCallWithAnError) {
  auto server = std::make_unique<TestServer>();
  Received received;
  auto call = Call::Start(server->Options(), kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("echo")));
  ASSERT_TRUE(call->Write(Batch(1, "x")));
  ASSERT_TRUE(WaitUntil([&] { return received.size() >= 2; }, absl::Seconds(10)));
  const absl::Time start = absl::Now();
  server->Shutdown();
  const absl::Status status = call->Finish();
  EXPECT_FALSE(status.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(GrpcClientTest, ConnectionResetIsUnavailable) {
  TestServer server;
  Proxy proxy(server.port());
  Received received;
  ClientOptions options = server.Options();
  options.target = absl::StrCat("127.0.0.1:", proxy.port());
  auto call = Call::Start(options, kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("echo")));
  ASSERT_TRUE(call->Write(Batch(1, "x")));
  ASSERT_TRUE(WaitUntil([&] { return received.size() >= 2; }, absl::Seconds(10)));
  proxy.Reset();
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST_F(GrpcClientTest, KeepaliveDetectsASilentPeer) {
  TestServer server;
  Proxy proxy(server.port());
  Received received;
  ClientOptions options = server.Options();
  options.target = absl::StrCat("127.0.0.1:", proxy.port());
  options.keepalive_time = absl::Milliseconds(500);
  options.keepalive_timeout = absl::Milliseconds(500);
  auto call = Call::Start(options, kStream, received.Handlers());
  ASSERT_TRUE(call->Write(HelloMessage("echo")));
  ASSERT_TRUE(call->Write(Batch(1, "x")));
  ASSERT_TRUE(WaitUntil([&] { return received.size() >= 2; }, absl::Seconds(10)));
  proxy.Freeze();  // the connection stays open, nothing comes back
  const absl::Time start = absl::Now();
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "keepalive")) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(GrpcClientTest, SilentListenerTimesOutTheHandshake) {
  int port = 0;
  const int listener = Listen(&port);  // accepts (backlog), never answers
  ASSERT_GE(listener, 0);
  TestServer server;
  Received received;
  ClientOptions options = server.Options();
  options.target = absl::StrCat("127.0.0.1:", port);
  options.connect_timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  auto call = Call::Start(options, kStream, received.Handlers());
  const absl::Status status = call->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  close(listener);
}

TEST_F(GrpcClientTest, RefusedConnectionIsUnavailable) {
  int port = 0;
  close(Listen(&port));  // a port nobody listens on
  TestServer server;
  ClientOptions options = server.Options();
  options.target = absl::StrCat("127.0.0.1:", port);
  v1::EnrollRequest request;
  v1::EnrollResponse response;
  const absl::Status status = UnaryCall(options, kEnroll, request, &response, absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST_F(GrpcClientTest, WrongCaIsRefused) {
  TestServer server;
  ClientOptions options = server.Options(false);
  options.ca_pem = pki::CreateCa("Other CA", absl::Hours(1))->cert_pem;
  v1::EnrollRequest request;
  request.set_token("t");
  v1::EnrollResponse response;
  const absl::Status status = UnaryCall(options, kEnroll, request, &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "certificate verify failed")) << status;
}

TEST_F(GrpcClientTest, NameOrAddressNotInTheCertificateIsRefused) {
  TestServer server({"other.example", "10.9.9.9"});
  v1::EnrollRequest request;
  request.set_token("t");
  v1::EnrollResponse response;
  // By address: 127.0.0.1 is not among the certificate's IP SANs.
  absl::Status status =
      UnaryCall(server.Options(false), kEnroll, request, &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "certificate verify failed")) << status;
  // By name: "localhost" is not among its DNS SANs.
  ClientOptions options = server.Options(false);
  options.target = absl::StrCat("localhost:", server.port());
  status = UnaryCall(options, kEnroll, request, &response, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "certificate verify failed")) << status;
  // The same server by a name it has: accepted (so the refusals above were the name's).
  TestServer good({"localhost"});
  options = good.Options(false);
  options.target = absl::StrCat("localhost:", good.port());
  status = UnaryCall(options, kEnroll, request, &response, absl::Seconds(10));
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(GrpcClientTest, BadTargetAndKey) {
  TestServer server;
  ClientOptions options = server.Options();
  options.target = "no-port";
  v1::EnrollRequest request;
  v1::EnrollResponse response;
  EXPECT_EQ(UnaryCall(options, kEnroll, request, &response, absl::Seconds(5)).code(),
            absl::StatusCode::kInvalidArgument);
  options = server.Options();
  options.key_pem = *pki::GenerateKeyPem();  // not the certificate's key
  const absl::Status status = UnaryCall(options, kEnroll, request, &response, absl::Seconds(5));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(status.message(), "PRIVATE KEY")) << status;
}

TEST(GrpcWireTest, HttpStatusMapping) {
  EXPECT_EQ(CodeForHttpStatus(400), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeForHttpStatus(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CodeForHttpStatus(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForHttpStatus(404), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(CodeForHttpStatus(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(500), absl::StatusCode::kUnknown);
}

TEST(GrpcWireTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b%25c%C3%A9"), "a b%c\xc3\xa9");
  EXPECT_EQ(PercentDecode("100%"), "100%");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
}

// A TCP connect to a local port nobody listens on can connect the socket to
// itself when the kernel picks that same port as the source port. Made here on
// purpose (bind, then connect to the bound address); a normal connection is not
// taken for one.
TEST(GrpcWireTest, SelfConnectedSocketIsRecognised) {
  const int self = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(self, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(self, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t size = sizeof(address);
  ASSERT_EQ(getsockname(self, reinterpret_cast<sockaddr*>(&address), &size), 0);
  ASSERT_EQ(connect(self, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
      << strerror(errno);
  EXPECT_TRUE(IsConnectedToItself(self));
  close(self);

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  address.sin_port = 0;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  size = sizeof(address);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size), 0);
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_FALSE(IsConnectedToItself(client));
  EXPECT_FALSE(IsConnectedToItself(listener));  // not connected at all
  close(client);
  close(listener);
}

}  // namespace
}  // namespace siper::agent::grpcwire

// A small gRPC client (gRPC over HTTP/2 over TLS) on libnghttp2 and OpenSSL,
// for what siper-agent calls on the unchanged gRPC C++ server:
// AgentService/Stream (bidirectional) and Enroll/Renew (unary). It replaces
// gRPC C++ in the agent, whose static initialisers, event engine and threads
// kept ~6 MiB resident (docs/performance.md, "Agent footprint").
//
// One call = one TCP connection, one TLS session (TLS 1.2 minimum, ALPN h2
// required, the server's name or IP address verified against the CA given;
// a client certificate when one is given), one HTTP/2 stream, and one I/O
// thread that polls the socket and an eventfd. Messages are framed as gRPC
// does (5-byte prefix), sent gzip-compressed, received gzip or identity. The
// call's status comes from `grpc-status` / `grpc-message` (trailers or a
// trailers-only response), from the HTTP status, from RST_STREAM / GOAWAY, or
// from the transport, in gRPC's codes (absl::StatusCode has the same numbers).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace google::protobuf {
class MessageLite;
}

namespace siper::agent::grpcwire {

struct ClientOptions {
  std::string target;  // HOST:PORT or [IPV6]:PORT; HOST is verified against the certificate
  std::string ca_pem;  // the CA(s) the server's certificate must chain to
  // The client certificate (chain) and key; both empty: none (enrollment).
  std::string cert_pem;
  std::string key_pem;
  absl::Duration connect_timeout = absl::Seconds(20);  // TCP + TLS handshake
  // An HTTP/2 PING after this long without anything received; the connection
  // fails when it is not answered within keepalive_timeout. Zero: no pings.
  absl::Duration keepalive_time = absl::ZeroDuration();
  absl::Duration keepalive_timeout = absl::Seconds(20);
  size_t max_receive_message_bytes = 4 << 20;  // after decompression
  bool gzip = true;                            // compress what is sent
  // Write() blocks while more than this is waiting to go out (back-pressure).
  size_t max_buffered_bytes = 256 << 10;
  std::string thread_name = "siper-grpc";  // the I/O thread's name (15 chars at most)
};

// One call, started at once; its I/O thread connects and runs it.
class Call {
 public:
  struct Handlers {
    // Each message received, on the I/O thread. An error status ends the call with it.
    std::function<absl::Status(std::string_view message)> on_message;
    // Once, on the I/O thread, when TLS and HTTP/2 are up and the request went out.
    std::function<void()> on_ready;
    // Once, on the I/O thread, as the call ends; Finish() returns only after it.
    // It must not call Finish() or Write() itself.
    std::function<void()> on_end;
  };

  // `method` is the HTTP/2 path, e.g. "/siper.v1.AgentService/Stream".
  // `deadline`: the call fails with DEADLINE_EXCEEDED after it (sent as grpc-timeout).
  static std::unique_ptr<Call> Start(ClientOptions options, std::string method, Handlers handlers,
                                     absl::Time deadline = absl::InfiniteFuture());
  ~Call();  // cancels the call if it is still running
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Queues one serialized message. Blocks while too much is queued (flow
  // control, a slow network). False once the call has ended or writes are done.
  bool Write(std::string_view serialized);
  bool Write(const google::protobuf::MessageLite& message);
  // Half-closes: the server sees the end of the request stream.
  void WritesDone();
  // Ends the call with CANCELLED (RST_STREAM to the server). Thread-safe.
  void Cancel();
  // Waits until the call ended and returns its status.
  absl::Status Finish();

  class Impl;

 private:
  explicit Call(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A unary call: one request, one response, `timeout` for the whole of it.
absl::Status UnaryCall(const ClientOptions& options, std::string method,
                       const google::protobuf::MessageLite& request,
                       google::protobuf::MessageLite* response, absl::Duration timeout);

// gRPC's mapping of an HTTP status without grpc-status to a code.
absl::StatusCode CodeForHttpStatus(int http_status);
// grpc-message is percent-encoded on the wire.
std::string PercentDecode(std::string_view text);

// True when connected socket `fd` is connected to itself: a TCP "simultaneous
// open" that happens when a connect to a local port with no listener is given
// that same port as its ephemeral source port. Such a socket would hold the
// port the server is about to listen on, so a connect that ends this way is
// treated as refused.
bool IsConnectedToItself(int fd);

}  // namespace siper::agent::grpcwire

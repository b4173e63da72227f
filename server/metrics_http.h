// Serves a MetricsRegistry at GET /metrics on its own plain-HTTP port (cpp-httplib), for
// Prometheus. No TLS and no authentication: keep it on loopback (the default refuses other
// addresses unless allow_remote is set).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace siper::server {

class MetricsHttpServer {
 public:
  // Binds `listen` (HOST:PORT, port 0 picks one) and serves on a thread. A host that is not
  // a loopback address is refused unless `allow_remote`.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  bool allow_remote,
                                                                  const MetricsRegistry* registry);
  ~MetricsHttpServer();  // Stop()
  void Stop();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

// Whether `host` is a loopback address or "localhost".
bool IsLoopbackHost(const std::string& host);

}  // namespace siper::server

#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace siper::server {

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, bool allow_remote, const MetricsRegistry* registry) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (!allow_remote && !IsLoopbackHost(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics_listen '", listen,
        "' is not a loopback address: the metrics port has no TLS and no authentication; "
        "set metrics_allow_remote: true to expose it anyway"));
  }
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer());
  s->http_ = std::make_unique<httplib::Server>();
  s->http_->set_read_timeout(5, 0);
  s->http_->set_write_timeout(5, 0);
  s->http_->set_payload_max_length(4096);
  s->http_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (port == 0) {
    s->port_ = s->http_->bind_to_any_port(host);
    if (s->port_ <= 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  } else {
    if (!s->http_->bind_to_port(host, port))
      return absl::UnavailableError(
          absl::StrCat("cannot listen on metrics_listen ", listen, " (address in use?)"));
    s->port_ = port;
  }
  s->thread_ = std::thread([http = s->http_.get()] { http->listen_after_bind(); });
  // httplib's stop() does nothing before the loop runs: wait for it, so Stop() never hangs.
  for (int i = 0; i < 500 && !s->http_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  spdlog::info("metrics on http://{}:{}/metrics (plain HTTP: keep it local)", host, s->port_);
  return s;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace siper::server

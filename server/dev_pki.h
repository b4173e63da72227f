// The development PKI a server makes for itself on first start.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pki.h"

namespace siper::server {

struct ServerPki {
  pki::KeyAndCert ca;      // signs agent and user certificates
  pki::KeyAndCert server;  // the TLS identity of this server
};

// Loads DIR/{ca,server}.{pem,key}; when DIR has no CA yet, creates a CA, a
// server certificate for `names` (plus localhost and 127.0.0.1) and an
// admin client certificate DIR/admin.{pem,key} for siperctl. Keys are 0600.
[[nodiscard]] absl::StatusOr<ServerPki> EnsureDevPki(const std::filesystem::path& dir,
                                                     const std::vector<std::string>& names);

}  // namespace siper::server

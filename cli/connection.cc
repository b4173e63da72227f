#include "cli/connection.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status.h"
#include "common/text.h"

namespace siper::cli {
namespace {

void FromEnv(std::string* value, const char* name) {
  if (!value->empty()) return;
  if (const char* env = std::getenv(name); env != nullptr) *value = env;
}

absl::Status FromConfigFile(ConnectionFlags* flags) {
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::filesystem::path file;
  if (xdg != nullptr && *xdg != '\0') {
    file = std::filesystem::path(xdg) / "siper/siperctl.yaml";
  } else if (home != nullptr) {
    file = std::filesystem::path(home) / ".config/siper/siperctl.yaml";
  }
  std::error_code ec;
  if (file.empty() || !std::filesystem::exists(file, ec)) return absl::OkStatus();
  try {
    YAML::Node root = YAML::LoadFile(file.string());
    auto take = [&](std::string* value, const char* key) {
      if (value->empty() && root[key]) *value = root[key].as<std::string>();
    };
    take(&flags->server, "server");
    take(&flags->ca, "ca");
    take(&flags->cert, "cert");
    take(&flags->key, "key");
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.string(), ":", e.mark.line + 1, ": ", e.msg));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ConnectionFlags> ResolveConnection(ConnectionFlags flags) {
  FromEnv(&flags.server, "SIPER_SERVER");
  FromEnv(&flags.ca, "SIPER_CA");
  FromEnv(&flags.cert, "SIPER_CERT");
  FromEnv(&flags.key, "SIPER_KEY");
  SIPER_RETURN_IF_ERROR(FromConfigFile(&flags));
  const std::filesystem::path dev = "var/siper/pki";
  std::error_code ec;
  if (flags.ca.empty() && flags.cert.empty() && flags.key.empty() &&
      std::filesystem::exists(dev / "admin.pem", ec)) {
    flags.ca = (dev / "ca.pem").string();
    flags.cert = (dev / "admin.pem").string();
    flags.key = (dev / "admin.key").string();
  }
  if (flags.server.empty()) flags.server = "127.0.0.1:7443";
  if (flags.ca.empty() || flags.cert.empty() || flags.key.empty()) {
    return absl::InvalidArgumentError(
        "no client certificate: give --ca, --cert and --key (or SIPER_CA, SIPER_CERT, "
        "SIPER_KEY, or ~/.config/siper/siperctl.yaml)");
  }
  return flags;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const ConnectionFlags& flags) {
  grpc::SslCredentialsOptions tls;
  SIPER_ASSIGN_OR_RETURN(tls.pem_root_certs, ReadFile(flags.ca));
  SIPER_ASSIGN_OR_RETURN(tls.pem_cert_chain, ReadFile(flags.cert));
  SIPER_ASSIGN_OR_RETURN(tls.pem_private_key, ReadFile(flags.key));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(flags.server, grpc::SslCredentials(tls), args);
}

int ExitCodeFor(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 3;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return 4;
    default:
      return 1;
  }
}

std::string FailureMessage(const grpc::Status& status, const ConnectionFlags& flags) {
  // The server's message may quote what it was given (an agent id, a path, a cursor):
  // escaped line by line, so it cannot drive the terminal but keeps its line breaks.
  std::string message;
  for (absl::string_view line : absl::StrSplit(status.error_message(), '\n')) {
    if (!message.empty()) message += '\n';
    message += EscapeForTerminal(std::string_view(line.data(), line.size()));
  }
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return message;
  absl::StatusOr<ConnectionFlags> resolved = ResolveConnection(flags);
  const std::string& server = resolved.ok() ? resolved->server : flags.server;
  return absl::StrCat("the server at ", server.empty() ? "(no address)" : server,
                      " is unavailable: ", message);
}

}  // namespace siper::cli

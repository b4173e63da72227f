#include "server/dev_pki.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::server {
namespace {

constexpr absl::Duration kCaValidity = absl::Hours(24 * 365 * 10);
constexpr absl::Duration kServerValidity = absl::Hours(24 * 825);
constexpr absl::Duration kAdminValidity = absl::Hours(24 * 365);

absl::Status WritePair(const std::filesystem::path& dir, const std::string& stem,
                       const pki::KeyAndCert& pair) {
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(dir / (stem + ".key"), pair.key_pem, 0600));
  return WriteFileAtomic(dir / (stem + ".pem"), pair.cert_pem, 0644);
}

absl::StatusOr<pki::KeyAndCert> ReadPair(const std::filesystem::path& dir,
                                         const std::string& stem) {
  pki::KeyAndCert pair;
  SIPER_ASSIGN_OR_RETURN(pair.key_pem, ReadFile(dir / (stem + ".key")));
  SIPER_ASSIGN_OR_RETURN(pair.cert_pem, ReadFile(dir / (stem + ".pem")));
  return pair;
}

}  // namespace

absl::StatusOr<ServerPki> EnsureDevPki(const std::filesystem::path& dir,
                                       const std::vector<std::string>& names) {
  SIPER_RETURN_IF_ERROR(EnsureDirectory(dir, 0700));
  ServerPki out;
  std::error_code ec;
  if (std::filesystem::exists(dir / "ca.pem", ec)) {
    SIPER_ASSIGN_OR_RETURN(out.ca, ReadPair(dir, "ca"));
    SIPER_ASSIGN_OR_RETURN(out.server, ReadPair(dir, "server"));
    return out;
  }
  spdlog::info("no CA in {}: creating the development PKI", dir.string());
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  SIPER_ASSIGN_OR_RETURN(out.ca, pki::CreateCa(absl::StrCat("Siper CA ", host), kCaValidity));
  std::vector<std::string> sans = {"localhost", "127.0.0.1", "::1"};
  if (host[0] != '\0') sans.emplace_back(host);
  sans.insert(sans.end(), names.begin(), names.end());
  SIPER_ASSIGN_OR_RETURN(out.server, pki::IssueWithNewKey(out.ca, "siper-server", pki::kRoleServer,
                                                          kServerValidity, sans));
  SIPER_ASSIGN_OR_RETURN(pki::KeyAndCert admin,
                         pki::IssueWithNewKey(out.ca, "admin", pki::kRoleAdmin, kAdminValidity));
  // The CA goes last: its presence is what marks the PKI as complete.
  SIPER_RETURN_IF_ERROR(WritePair(dir, "server", out.server));
  SIPER_RETURN_IF_ERROR(WritePair(dir, "admin", admin));
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(dir / "ca.key", out.ca.key_pem, 0600));
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(dir / "ca.pem", out.ca.cert_pem, 0644));
  return out;
}

}  // namespace siper::server

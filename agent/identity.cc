#include "agent/identity.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/status.h"

namespace siper::agent {

StatePaths StateFiles(const std::filesystem::path& state_dir) {
  return {state_dir / "agent.key", state_dir / "agent.pem", state_dir / "ca.pem",
          state_dir / "offsets.json"};
}

absl::Status CheckKeyMatchesCertificate(const std::string& key_pem, const std::string& cert_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
  if (!key_bio || !cert_bio) return absl::ResourceExhaustedError("out of memory");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return absl::InvalidArgumentError("the private key is not valid PEM");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return absl::InvalidArgumentError("the certificate is not valid PEM");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError("the certificate does not belong to the private key");
  }
  return absl::OkStatus();
}

absl::StatusOr<AgentIdentity> LoadIdentity(const std::filesystem::path& state_dir) {
  const StatePaths paths = StateFiles(state_dir);
  std::error_code ec;
  if (!std::filesystem::exists(paths.cert, ec) || !std::filesystem::exists(paths.key, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("not enrolled: ", paths.cert.string(), " or ", paths.key.string(),
                     " is missing; run 'siper-agent enroll --server HOST:PORT --token TOKEN "
                     "--ca FILE --state-dir ",
                     state_dir.string(), "' first"));
  }
  AgentIdentity identity;
  SIPER_ASSIGN_OR_RETURN(identity.key_pem, ReadFile(paths.key));
  SIPER_ASSIGN_OR_RETURN(identity.cert_pem, ReadFile(paths.cert));
  SIPER_ASSIGN_OR_RETURN(identity.ca_pem, ReadFile(paths.ca));
  auto parsed = pki::ParseIdentity(identity.cert_pem);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(paths.cert.string(), ": ", parsed.status().message()));
  }
  if (parsed->role != pki::kRoleAgent || parsed->common_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(paths.cert.string(),
                                                   ": not an agent certificate (role '",
                                                   parsed->role, "'); enroll again"));
  }
  if (absl::Status st = CheckKeyMatchesCertificate(identity.key_pem, identity.cert_pem); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(paths.cert.string(), " and ", paths.key.string(),
                                                   ": ", st.message(), "; enroll again"));
  }
  identity.agent_id = parsed->common_name;
  return identity;
}

}  // namespace siper::agent

// X.509 for Siper's own PKI: EC P-256 keys, CSRs, a CA that signs them, and
// the identity (name and role) bound in a certificate. OpenSSL 3 underneath.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::pki {

// Roles bound in a certificate's organizational unit (OU).
inline constexpr char kRoleAgent[] = "agent";
inline constexpr char kRoleViewer[] = "viewer";
inline constexpr char kRoleAnalyst[] = "analyst";
inline constexpr char kRoleAdmin[] = "admin";
inline constexpr char kRoleServer[] = "server";

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

// Who a certificate says its holder is.
struct Identity {
  std::string common_name;  // agent id, user name or server name
  std::string role;         // one of the kRole* values
};

// A new EC P-256 private key, PEM (PKCS#8).
[[nodiscard]] absl::StatusOr<std::string> GenerateKeyPem();

// A PKCS#10 request signed by `key_pem` for subject CN=`common_name`.
[[nodiscard]] absl::StatusOr<std::string> CreateCsrPem(const std::string& key_pem,
                                                       const std::string& common_name);

// A self-signed CA certificate with a new key.
[[nodiscard]] absl::StatusOr<KeyAndCert> CreateCa(const std::string& common_name,
                                                  absl::Duration validity);

// Signs the public key of `csr_pem` (after checking its self-signature) as
// CN=`common_name`, OU=`role`. The CSR's own subject is ignored: the CA
// decides the identity. Servers get serverAuth and `dns_names`/IP SANs
// ("127.0.0.1" is an IP SAN); the others get clientAuth.
[[nodiscard]] absl::StatusOr<std::string> SignCsr(const KeyAndCert& ca, const std::string& csr_pem,
                                                  const std::string& common_name,
                                                  const std::string& role, absl::Duration validity,
                                                  const std::vector<std::string>& dns_names = {});

// A new key and a certificate signed by `ca` in one step (server and admin certs).
[[nodiscard]] absl::StatusOr<KeyAndCert> IssueWithNewKey(
    const KeyAndCert& ca, const std::string& common_name, const std::string& role,
    absl::Duration validity, const std::vector<std::string>& dns_names = {});

// The CN and OU of a PEM certificate.
[[nodiscard]] absl::StatusOr<Identity> ParseIdentity(const std::string& cert_pem);

// When a PEM certificate starts being valid.
[[nodiscard]] absl::StatusOr<absl::Time> NotBefore(const std::string& cert_pem);

// The subject CN of a PEM CSR ("" when it has none); the signature is not checked here.
[[nodiscard]] absl::StatusOr<std::string> CsrCommonName(const std::string& csr_pem);

// When a PEM certificate stops being valid.
[[nodiscard]] absl::StatusOr<absl::Time> NotAfter(const std::string& cert_pem);

}  // namespace siper::pki

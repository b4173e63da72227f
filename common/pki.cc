#include "common/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace siper::pki {
namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

// The OpenSSL error queue as text, emptied.
std::string OpensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status SslError(std::string_view what) {
  return absl::InternalError(absl::StrCat(std::string(what), ": ", OpensslErrors()));
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<PkeyPtr> ParseKey(const std::string& key_pem) {
  BioPtr bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return absl::InvalidArgumentError(absl::StrCat("not a PEM private key: ", OpensslErrors()));
  return key;
}

absl::StatusOr<X509Ptr> ParseCert(const std::string& cert_pem) {
  BioPtr bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return absl::InvalidArgumentError(absl::StrCat("not a PEM certificate: ", OpensslErrors()));
  return cert;
}

absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("cannot encode private key");
  }
  return BioToString(bio.get());
}

absl::StatusOr<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return SslError("cannot encode certificate");
  return BioToString(bio.get());
}

absl::StatusOr<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return SslError("cannot generate EC P-256 key");
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext) return SslError(absl::StrCat("cannot build extension ", OBJ_nid2sn(nid), "=", value));
  if (X509_add_ext(cert, ext.get(), -1) != 1) return SslError("cannot add extension");
  return absl::OkStatus();
}

absl::Status SetName(X509_NAME* name, const std::string& cn, const std::string& ou) {
  auto add = [&](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0) == 1;
  };
  if (!add("O", "Siper") || (!ou.empty() && !add("OU", ou)) || !add("CN", cn)) {
    return SslError(absl::StrCat("cannot set subject CN=", cn));
  }
  return absl::OkStatus();
}

absl::Status SetRandomSerial(X509* cert) {
  BnPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return SslError("cannot set serial number");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, absl::Duration validity) {
  // Backdate a little so that small clock differences between hosts do not
  // matter; a tenth of the validity at most, so that a short-lived
  // certificate's lifetime (which renewal divides) is mostly in the future.
  const long backdate =
      static_cast<long>(std::min<int64_t>(300, absl::ToInt64Seconds(validity) / 10));
  if (!X509_gmtime_adj(X509_getm_notBefore(cert), -backdate) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert), absl::ToInt64Seconds(validity))) {
    return SslError("cannot set validity");
  }
  return absl::OkStatus();
}

// Builds and signs a certificate for `pubkey`.
absl::StatusOr<std::string> BuildCert(EVP_PKEY* pubkey, X509* issuer_cert, EVP_PKEY* issuer_key,
                                      const std::string& cn, const std::string& role,
                                      absl::Duration validity, bool is_ca,
                                      const std::vector<std::string>& dns_names) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return SslError("cannot create certificate");
  SIPER_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  SIPER_RETURN_IF_ERROR(SetValidity(cert.get(), validity));
  SIPER_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert.get()), cn, role));
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_set_pubkey(cert.get(), pubkey) != 1) {
    return SslError("cannot set issuer or public key");
  }
  SIPER_RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  if (is_ca) {
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"));
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"));
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyAgreement"));
    bool server = role == kRoleServer;
    SIPER_RETURN_IF_ERROR(
        AddExtension(cert.get(), issuer, NID_ext_key_usage, server ? "serverAuth" : "clientAuth"));
    if (server) {
      std::string san;
      for (const std::string& name : dns_names) {
        if (!san.empty()) san += ",";
        bool is_ip = name.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos &&
                     (name.find('.') != std::string::npos || name.find(':') != std::string::npos);
        absl::StrAppend(&san, is_ip ? "IP:" : "DNS:", name);
      }
      if (!san.empty()) {
        SIPER_RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_alt_name, san));
      }
    }
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return SslError("cannot sign certificate");
  return CertToPem(cert.get());
}

// First entry of `nid` in `name`, as UTF-8.
std::string NameEntry(X509_NAME* name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

absl::StatusOr<std::string> GenerateKeyPem() {
  SIPER_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  return KeyToPem(key.get());
}

absl::StatusOr<std::string> CreateCsrPem(const std::string& key_pem,
                                         const std::string& common_name) {
  SIPER_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(key_pem));
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) return SslError("cannot create CSR");
  SIPER_RETURN_IF_ERROR(SetName(X509_REQ_get_subject_name(req.get()), common_name, ""));
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) == 0) {
    return SslError("cannot sign CSR");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return SslError("cannot encode CSR");
  return BioToString(bio.get());
}

absl::StatusOr<KeyAndCert> CreateCa(const std::string& common_name, absl::Duration validity) {
  SIPER_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  KeyAndCert out;
  SIPER_ASSIGN_OR_RETURN(out.key_pem, KeyToPem(key.get()));
  SIPER_ASSIGN_OR_RETURN(out.cert_pem, BuildCert(key.get(), nullptr, key.get(), common_name, "ca",
                                                 validity, /*is_ca=*/true, {}));
  return out;
}

absl::StatusOr<std::string> SignCsr(const KeyAndCert& ca, const std::string& csr_pem,
                                    const std::string& common_name, const std::string& role,
                                    absl::Duration validity,
                                    const std::vector<std::string>& dns_names) {
  if (csr_pem.size() > 64 * 1024) return absl::InvalidArgumentError("CSR larger than 64 KiB");
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return absl::InvalidArgumentError(absl::StrCat("not a PEM CSR: ", OpensslErrors()));
  EVP_PKEY* pubkey = X509_REQ_get0_pubkey(req.get());
  if (pubkey == nullptr || X509_REQ_verify(req.get(), pubkey) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CSR signature does not verify: ", OpensslErrors()));
  }
  if (EVP_PKEY_get_base_id(pubkey) != EVP_PKEY_EC || EVP_PKEY_get_bits(pubkey) < 256) {
    return absl::InvalidArgumentError("CSR key must be an EC key of at least 256 bits");
  }
  SIPER_ASSIGN_OR_RETURN(PkeyPtr ca_key, ParseKey(ca.key_pem));
  SIPER_ASSIGN_OR_RETURN(X509Ptr ca_cert, ParseCert(ca.cert_pem));
  return BuildCert(pubkey, ca_cert.get(), ca_key.get(), common_name, role, validity,
                   /*is_ca=*/false, dns_names);
}

absl::StatusOr<KeyAndCert> IssueWithNewKey(const KeyAndCert& ca, const std::string& common_name,
                                           const std::string& role, absl::Duration validity,
                                           const std::vector<std::string>& dns_names) {
  SIPER_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  SIPER_ASSIGN_OR_RETURN(PkeyPtr ca_key, ParseKey(ca.key_pem));
  SIPER_ASSIGN_OR_RETURN(X509Ptr ca_cert, ParseCert(ca.cert_pem));
  KeyAndCert out;
  SIPER_ASSIGN_OR_RETURN(out.key_pem, KeyToPem(key.get()));
  SIPER_ASSIGN_OR_RETURN(out.cert_pem, BuildCert(key.get(), ca_cert.get(), ca_key.get(),
                                                 common_name, role, validity, false, dns_names));
  return out;
}

absl::StatusOr<Identity> ParseIdentity(const std::string& cert_pem) {
  SIPER_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  X509_NAME* subject = X509_get_subject_name(cert.get());
  Identity id{NameEntry(subject, NID_commonName), NameEntry(subject, NID_organizationalUnitName)};
  if (id.common_name.empty()) return absl::InvalidArgumentError("certificate has no common name");
  return id;
}

absl::StatusOr<absl::Time> NotBefore(const std::string& cert_pem) {
  SIPER_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notBefore(cert.get()), &tm) != 1) {
    return SslError("cannot read notBefore");
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

absl::StatusOr<std::string> CsrCommonName(const std::string& csr_pem) {
  if (csr_pem.size() > 64 * 1024) return absl::InvalidArgumentError("CSR larger than 64 KiB");
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return absl::InvalidArgumentError(absl::StrCat("not a PEM CSR: ", OpensslErrors()));
  return NameEntry(X509_REQ_get_subject_name(req.get()), NID_commonName);
}

absl::StatusOr<absl::Time> NotAfter(const std::string& cert_pem) {
  SIPER_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    return SslError("cannot read notAfter");
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

}  // namespace siper::pki

#include "server/timestamp.h"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace siper::server {

struct TimestampClient::Trust {
  X509_STORE* store = nullptr;       // trust anchors: the TSA certificate and/or its CA
  STACK_OF(X509) * certs = nullptr;  // the TSA certificate, for tokens that do not carry it
  ~Trust() {
    X509_STORE_free(store);
    sk_X509_pop_free(certs, X509_free);
  }
};

namespace {

// OpenSSL's error queue as one line (and emptied).
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

absl::StatusOr<std::vector<X509*>> ReadCertificates(const std::filesystem::path& file) {
  absl::StatusOr<std::string> pem = ReadFile(file);
  if (!pem.ok()) return pem.status();
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  std::vector<X509*> certs;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) certs.push_back(cert);
  BIO_free(bio);
  ERR_clear_error();  // the end of the file reads as an error
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.string(), ": no PEM certificate (tsa.cert_file / tsa.ca_file)"));
  }
  return certs;
}

// A verify context with our trust anchors; the context owns its references.
TS_VERIFY_CTX* NewVerifyContext(TS_VERIFY_CTX* ctx, const TimestampClient::Trust& trust) {
  X509_STORE_up_ref(trust.store);
  TS_VERIFY_CTX_set_store(ctx, trust.store);
  TS_VERIFY_CTX_set_certs(ctx, X509_chain_up_ref(trust.certs));
  return ctx;
}

absl::StatusOr<TimestampInfo> InfoOf(TS_TST_INFO* tst) {
  TimestampInfo info;
  const ASN1_GENERALIZEDTIME* t = TS_TST_INFO_get_time(tst);
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return absl::InvalidArgumentError("time-stamp token without a readable genTime");
  }
  info.gen_time = absl::FromTM(tm, absl::UTCTimeZone());
  if (const ASN1_INTEGER* serial = TS_TST_INFO_get_serial(tst); serial != nullptr) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    if (bn != nullptr) {
      char* hex = BN_bn2hex(bn);
      info.serial = hex;
      OPENSSL_free(hex);
      BN_free(bn);
    }
  }
  if (ASN1_OBJECT* policy = TS_TST_INFO_get_policy_id(tst); policy != nullptr) {
    char buf[128];
    OBJ_obj2txt(buf, sizeof(buf), policy, 1);
    info.policy = buf;
  }
  return info;
}

}  // namespace

TimestampClient::TimestampClient(TsaOptions options, std::unique_ptr<Trust> trust)
    : options_(std::move(options)), trust_(std::move(trust)) {}

TimestampClient::~TimestampClient() = default;

absl::StatusOr<std::unique_ptr<TimestampClient>> TimestampClient::Create(
    const TsaOptions& options) {
  if (options.url.rfind("http://", 0) != 0 && options.url.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tsa.url '", options.url, "' must start with http:// or https://"));
  }
  if (options.cert_file.empty() && options.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "tsa needs cert_file (the TSA's certificate) or ca_file (its CA) to check replies");
  }
  auto trust = std::make_unique<Trust>();
  trust->store = X509_STORE_new();
  trust->certs = sk_X509_new_null();
  // The TSA certificate may be issued by a CA we are not given: accept it as an anchor itself.
  X509_STORE_set_flags(trust->store, X509_V_FLAG_PARTIAL_CHAIN);
  for (const std::filesystem::path& file : {options.cert_file, options.ca_file}) {
    if (file.empty()) continue;
    absl::StatusOr<std::vector<X509*>> certs = ReadCertificates(file);
    if (!certs.ok()) return certs.status();
    for (X509* cert : *certs) {
      X509_STORE_add_cert(trust->store, cert);
      if (file == options.cert_file) {
        sk_X509_push(trust->certs, cert);  // the stack keeps this reference
      } else {
        X509_free(cert);
      }
    }
  }
  return std::unique_ptr<TimestampClient>(new TimestampClient(options, std::move(trust)));
}

absl::StatusOr<std::string> TimestampClient::Stamp(const std::string& sha256) const {
  if (sha256.size() != 32) return absl::InvalidArgumentError("time-stamp: digest is not SHA-256");
  // The request: version 1, SHA-256 imprint, a random nonce, and the TSA's certificate please.
  TS_REQ* req = TS_REQ_new();
  TS_MSG_IMPRINT* imprint = TS_MSG_IMPRINT_new();
  X509_ALGOR* algo = X509_ALGOR_new();
  ASN1_INTEGER* nonce = ASN1_INTEGER_new();
  uint64_t nonce_value = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&nonce_value), sizeof(nonce_value));
  nonce_value >>= 1;  // positive
  ASN1_OBJECT* policy = options_.policy.empty() ? nullptr : OBJ_txt2obj(options_.policy.c_str(), 1);
  bool ok = req != nullptr && imprint != nullptr && algo != nullptr && nonce != nullptr &&
            (options_.policy.empty() || policy != nullptr) && TS_REQ_set_version(req, 1) == 1 &&
            X509_ALGOR_set0(algo, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, nullptr) == 1 &&
            TS_MSG_IMPRINT_set_algo(imprint, algo) == 1 &&
            TS_MSG_IMPRINT_set_msg(
                imprint, reinterpret_cast<unsigned char*>(const_cast<char*>(sha256.data())),
                static_cast<int>(sha256.size())) == 1 &&
            TS_REQ_set_msg_imprint(req, imprint) == 1 &&
            ASN1_INTEGER_set_uint64(nonce, nonce_value) == 1 && TS_REQ_set_nonce(req, nonce) == 1 &&
            TS_REQ_set_cert_req(req, 1) == 1 &&
            (policy == nullptr || TS_REQ_set_policy_id(req, policy) == 1);
  X509_ALGOR_free(algo);
  TS_MSG_IMPRINT_free(imprint);
  ASN1_INTEGER_free(nonce);
  ASN1_OBJECT_free(policy);
  std::string body;
  if (ok) {
    unsigned char* der = nullptr;
    int len = i2d_TS_REQ(req, &der);
    ok = len > 0;
    if (ok) body.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  if (!ok) {
    TS_REQ_free(req);
    return absl::InternalError(absl::StrCat("time-stamp request: ", OpenSslErrors()));
  }

  // POST it.
  const size_t scheme_end = options_.url.find("://") + 3;
  const size_t path_start = options_.url.find('/', scheme_end);
  const std::string base = options_.url.substr(0, path_start);
  const std::string path = path_start == std::string::npos ? "/" : options_.url.substr(path_start);
  httplib::Client client(base);
  client.set_connection_timeout(static_cast<time_t>(options_.timeout_s), 0);
  client.set_read_timeout(static_cast<time_t>(options_.timeout_s), 0);
  client.set_write_timeout(static_cast<time_t>(options_.timeout_s), 0);
  httplib::Result res = client.Post(path, body, "application/timestamp-query");
  if (!res) {
    TS_REQ_free(req);
    return absl::UnavailableError(
        absl::StrCat("time-stamp authority ", options_.url, ": ", httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    TS_REQ_free(req);
    return absl::UnavailableError(
        absl::StrCat("time-stamp authority ", options_.url, " answered HTTP ", res->status));
  }

  // The reply: granted, signed by the TSA we trust, for our imprint and nonce.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(res->body.data());
  TS_RESP* resp = d2i_TS_RESP(nullptr, &p, static_cast<long>(res->body.size()));
  if (resp == nullptr) {
    TS_REQ_free(req);
    return absl::InvalidArgumentError(absl::StrCat("time-stamp authority ", options_.url,
                                                   ": the reply is not a TimeStampResp (",
                                                   res->body.size(), " bytes)"));
  }
  TS_VERIFY_CTX* ctx = NewVerifyContext(TS_REQ_to_TS_VERIFY_CTX(req, nullptr), *trust_);
  // TS_REQ_to_TS_VERIFY_CTX leaves the signature check out (as `openssl ts -verify`
  // adds it itself): without it any reply with our imprint and nonce would pass.
  TS_VERIFY_CTX_add_flags(ctx, TS_VFY_SIGNATURE);
  TS_REQ_free(req);
  const bool verified = TS_RESP_verify_response(ctx, resp) == 1;
  TS_VERIFY_CTX_free(ctx);
  if (!verified) {
    std::string why = OpenSslErrors();
    TS_RESP_free(resp);
    return absl::InvalidArgumentError(
        absl::StrCat("time-stamp authority ", options_.url, ": reply refused: ", why));
  }
  std::string token;
  unsigned char* der = nullptr;
  int len = i2d_PKCS7(TS_RESP_get_token(resp), &der);
  if (len > 0) token.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  TS_RESP_free(resp);
  if (token.empty()) return absl::InternalError("time-stamp: cannot encode the token");
  return token;
}

absl::StatusOr<TimestampInfo> TimestampClient::Check(const std::string& token_der,
                                                     const std::string& sha256) const {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(token_der.data());
  PKCS7* token = d2i_PKCS7(nullptr, &p, static_cast<long>(token_der.size()));
  if (token == nullptr ||
      p != reinterpret_cast<const unsigned char*>(token_der.data()) + token_der.size()) {
    PKCS7_free(token);
    ERR_clear_error();
    return absl::InvalidArgumentError("the time-stamp token is not a DER TimeStampToken");
  }
  TS_VERIFY_CTX* ctx = NewVerifyContext(TS_VERIFY_CTX_new(), *trust_);
  TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_IMPRINT);
  auto* imprint = static_cast<unsigned char*>(OPENSSL_malloc(sha256.size()));
  memcpy(imprint, sha256.data(), sha256.size());
  TS_VERIFY_CTX_set_imprint(ctx, imprint, static_cast<long>(sha256.size()));  // ctx owns it
  const bool verified = TS_RESP_verify_token(ctx, token) == 1;
  TS_VERIFY_CTX_free(ctx);
  if (!verified) {
    std::string why = OpenSslErrors();
    PKCS7_free(token);
    return absl::InvalidArgumentError(absl::StrCat("the time-stamp token does not verify: ", why));
  }
  TS_TST_INFO* tst = PKCS7_to_TS_TST_INFO(token);
  PKCS7_free(token);
  if (tst == nullptr) return absl::InvalidArgumentError("the time-stamp token has no TSTInfo");
  absl::StatusOr<TimestampInfo> info = InfoOf(tst);
  TS_TST_INFO_free(tst);
  return info;
}

}  // namespace siper::server

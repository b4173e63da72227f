// RFC 3161 time-stamping: a TimeStampReq for a SHA-256 digest sent to a
// time-stamping authority (TSA) over HTTP POST (application/timestamp-query),
// the reply verified against the configured TSA certificate, and stored
// tokens checked again later (siperctl verify). OpenSSL's TS_* API underneath;
// cpp-httplib is the HTTP client.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::server {

struct TsaOptions {
  std::string url;                  // http(s)://host[:port]/path; empty: no time-stamping
  std::filesystem::path cert_file;  // the TSA's signing certificate (PEM): a trust anchor
  std::filesystem::path ca_file;    // and/or the CA(s) that issued it (PEM)
  int64_t timeout_s = 10;           // per request
  std::string policy;               // TSA policy OID to ask for; empty: the TSA's default
  bool enabled() const { return !url.empty(); }
};

// What a verified token says.
struct TimestampInfo {
  absl::Time gen_time;
  std::string serial;  // hex
  std::string policy;  // OID, dotted
};

class TimestampClient {
 public:
  // Loads the certificates; InvalidArgument naming the file when one is not PEM.
  static absl::StatusOr<std::unique_ptr<TimestampClient>> Create(const TsaOptions& options);
  ~TimestampClient();
  TimestampClient(const TimestampClient&) = delete;
  TimestampClient& operator=(const TimestampClient&) = delete;

  // Asks the TSA to time-stamp `sha256` (32 bytes) and returns the token
  // (DER TimeStampToken, a CMS SignedData) after checking the reply: status
  // granted, signature by a certificate that chains to the configured ones
  // with timeStamping usage, our imprint and our nonce.
  absl::StatusOr<std::string> Stamp(const std::string& sha256) const;

  // Checks a stored token: signature as above, and its imprint is `sha256`.
  absl::StatusOr<TimestampInfo> Check(const std::string& token_der,
                                      const std::string& sha256) const;

  const TsaOptions& options() const { return options_; }

  struct Trust;  // OpenSSL objects, in timestamp.cc

 private:
  TimestampClient(TsaOptions options, std::unique_ptr<Trust> trust);
  TsaOptions options_;
  std::unique_ptr<Trust> trust_;
};

}  // namespace siper::server

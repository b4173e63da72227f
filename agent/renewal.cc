#include "agent/renewal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/grpc_client.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/status.h"
#include "siper/v1/agent_service.pb.h"

namespace siper::agent {
namespace {

std::filesystem::path Next(const std::filesystem::path& path) { return path.string() + ".next"; }

absl::Status Rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", from.string(), " to ", to.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FinishInterruptedRenewal(const std::filesystem::path& state_dir) {
  const StatePaths paths = StateFiles(state_dir);
  std::error_code ec;
  const bool key_next = std::filesystem::exists(Next(paths.key), ec);
  const bool cert_next = std::filesystem::exists(Next(paths.cert), ec);
  if (cert_next && !key_next) {
    // The new key is in place already: its certificate must follow it.
    spdlog::warn("completing a certificate renewal interrupted by a stop");
    return Rename(Next(paths.cert), paths.cert);
  }
  if (key_next) {
    // Nothing was renamed yet: the old pair is intact; the next renewal starts afresh.
    std::filesystem::remove(Next(paths.key), ec);
    std::filesystem::remove(Next(paths.cert), ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> RenewalDue(const std::string& cert_pem, double fraction) {
  SIPER_ASSIGN_OR_RETURN(absl::Time not_before, pki::NotBefore(cert_pem));
  SIPER_ASSIGN_OR_RETURN(absl::Time not_after, pki::NotAfter(cert_pem));
  return not_after - (not_after - not_before) * fraction;
}

CertificateRenewer::CertificateRenewer(RenewalOptions options, std::string ca_pem,
                                       std::string cert_pem, std::string key_pem,
                                       OnRenewed on_renewed)
    : options_(std::move(options)),
      ca_pem_(std::move(ca_pem)),
      on_renewed_(std::move(on_renewed)),
      cert_pem_(std::move(cert_pem)),
      key_pem_(std::move(key_pem)) {}

std::string CertificateRenewer::cert_pem() const {
  std::lock_guard lock(mu_);
  return cert_pem_;
}

void CertificateRenewer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

void CertificateRenewer::Sleep(absl::Duration duration) {
  std::unique_lock lock(mu_);
  stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(duration, absl::ZeroDuration())),
                    [this] { return stopping_; });
}

absl::Status CertificateRenewer::RenewNow() {
  std::string cert;
  std::string key;
  {
    std::lock_guard lock(mu_);
    cert = cert_pem_;
    key = key_pem_;
  }
  // A new key each time: a renewal never extends the life of a key.
  SIPER_ASSIGN_OR_RETURN(std::string new_key, pki::GenerateKeyPem());
  SIPER_ASSIGN_OR_RETURN(std::string csr, pki::CreateCsrPem(new_key, options_.agent_id));

  grpcwire::ClientOptions client;
  client.target = options_.server;
  client.ca_pem = ca_pem_;
  client.key_pem = key;
  client.cert_pem = cert;
  client.connect_timeout = options_.rpc_timeout;
  client.thread_name = "siper-renew-io";
  v1::RenewRequest request;
  request.set_csr_pem(csr);
  v1::RenewResponse response;
  SIPER_RETURN_IF_ERROR(grpcwire::UnaryCall(client, "/siper.v1.AgentService/Renew", request,
                                            &response, options_.rpc_timeout));
  // Trust nothing the server sent without checking it fits.
  SIPER_ASSIGN_OR_RETURN(pki::Identity id, pki::ParseIdentity(response.certificate_pem()));
  if (id.common_name != options_.agent_id || id.role != pki::kRoleAgent) {
    return absl::InternalError(absl::StrCat("the renewed certificate is for '", id.common_name,
                                            "' (", id.role, "), not for ", options_.agent_id));
  }
  SIPER_RETURN_IF_ERROR(CheckKeyMatchesCertificate(new_key, response.certificate_pem()));

  // Both files complete on disk first, then renamed key first: a crash in
  // between is finished by FinishInterruptedRenewal at the next start.
  const StatePaths paths = StateFiles(options_.state_dir);
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(Next(paths.key), new_key, 0600));
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(Next(paths.cert), response.certificate_pem(), 0600));
  SIPER_RETURN_IF_ERROR(Rename(Next(paths.key), paths.key));
  SIPER_RETURN_IF_ERROR(Rename(Next(paths.cert), paths.cert));
  {
    std::lock_guard lock(mu_);
    cert_pem_ = response.certificate_pem();
    key_pem_ = new_key;
  }
  absl::StatusOr<absl::Time> not_after = pki::NotAfter(response.certificate_pem());
  spdlog::info("certificate renewed with a new key; valid until {}",
               not_after.ok() ? absl::FormatTime(*not_after, absl::UTCTimeZone()) : "?");
  if (on_renewed_) on_renewed_(response.certificate_pem(), new_key);
  return absl::OkStatus();
}

void CertificateRenewer::Run() {
  std::mt19937_64 random(std::random_device{}());
  absl::Duration retry = options_.retry_initial;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    absl::StatusOr<absl::Time> due = RenewalDue(cert_pem(), options_.renew_fraction);
    if (!due.ok()) {
      spdlog::error("certificate: {}; not renewing it", std::string(due.status().message()));
      return;
    }
    const absl::Time now = absl::Now();
    if (now < *due) {
      Sleep(*due - now);
      continue;
    }
    absl::Status status = RenewNow();
    if (status.ok()) {
      retry = options_.retry_initial;
      continue;
    }
    // One line per attempt; attempts back off to retry_max, so no flood.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    const absl::Duration delay = retry * jitter(random);
    if (status.code() == absl::StatusCode::kPermissionDenied &&
        absl::StrContains(status.message(), "revoked")) {
      spdlog::error(
          "certificate renewal refused: this agent has been revoked by the server ({}); events "
          "keep being spooled; enroll again with a new token to resume; next try in {} s",
          std::string(status.message()), absl::ToInt64Seconds(delay));
    } else {
      spdlog::warn("certificate renewal failed: {}; next try in {} s",
                   std::string(status.message()), absl::ToInt64Seconds(delay));
    }
    Sleep(delay);
    retry = std::min(retry * 2, options_.retry_max);
  }
}

}  // namespace siper::agent

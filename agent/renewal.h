// Certificate renewal without re-enrollment: once less than
// `cert_renew_fraction` of the certificate's lifetime is left, the agent makes
// a new key, sends a CSR for it over AgentService.Renew (authenticated by the
// current certificate), stores the new key and certificate and reconnects
// with them. A revoked agent is refused; that is logged as such, once per
// retry, and the agent keeps spooling.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace siper::agent {

struct RenewalOptions {
  std::string server;  // HOST:PORT
  std::string agent_id;
  std::filesystem::path state_dir;
  double renew_fraction = 1.0 / 3;  // cert_renew_fraction
  absl::Duration retry_initial = absl::Seconds(5);
  absl::Duration retry_max = absl::Minutes(10);
  absl::Duration rpc_timeout = absl::Seconds(30);
};

// Completes a renewal a crash interrupted between renaming the new key and
// the new certificate into place (agent.key.next, agent.pem.next), so the key
// and certificate on disk always belong together. Call before LoadIdentity.
[[nodiscard]] absl::Status FinishInterruptedRenewal(const std::filesystem::path& state_dir);

// When `cert_pem` is due for renewal: less than `fraction` of its lifetime left.
[[nodiscard]] absl::StatusOr<absl::Time> RenewalDue(const std::string& cert_pem, double fraction);

class CertificateRenewer {
 public:
  // Called after a new key and certificate are on disk (from Run's thread).
  using OnRenewed = std::function<void(const std::string& cert_pem, const std::string& key_pem)>;

  CertificateRenewer(RenewalOptions options, std::string ca_pem, std::string cert_pem,
                     std::string key_pem, OnRenewed on_renewed);

  // Sleeps until renewal is due, renews, and so on until Stop(). Blocks.
  void Run();
  void Stop();

  // One renewal now: new key, CSR, Renew, files written, `on_renewed` called.
  [[nodiscard]] absl::Status RenewNow();

  // The certificate in use now.
  std::string cert_pem() const;

 private:
  void Sleep(absl::Duration duration);

  const RenewalOptions options_;
  const std::string ca_pem_;
  OnRenewed on_renewed_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::string cert_pem_;
  std::string key_pem_;
};

}  // namespace siper::agent

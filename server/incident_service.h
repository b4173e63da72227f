// IncidentService: the incident workflow of server/incidents behind gRPC. Owns the one
// IncidentBook (under one mutex), loads it and its audit trail from storage at start,
// persists every change with Store::PutIncidents before answering, takes stored alerts from
// ingest (OnStored) and checks deadlines on a timer thread.
//
// Persisting: a change takes its rows from the book under the mutex (values, O(what
// changed)) and queues them; each caller makes the JSON of its own rows without any lock,
// then the first caller to reach the writer writes everything queued as one batch through
// the store's group commit (Store::PutIncidents), so ingest threads that changed incidents
// at the same time share one write, and that write shares its WAL sync with the event
// writes committing with it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/incidents/audit.h"
#include "server/incidents/clock.h"
#include "server/incidents/config.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/stored.h"
#include "server/incidents/taxonomy.h"
#include "server/storage/store.h"
#include "siper/v1/incident_service.grpc.pb.h"

namespace siper::server {

struct IncidentServiceOptions {
  incidents::IncidentsConfig config;
  // rule id -> RSIT (class, type) from the loaded rule set, for incidents opened by alerts.
  std::map<std::string, std::pair<std::string, std::string>> rule_rsit;
  // How often the deadline thread looks for passed deadlines. Default: 30 s (the server
  // sets health_check_interval_s).
  absl::Duration deadline_check_period = absl::Seconds(30);
};

// How the ingest hook sees a stored alert (public for its tests). `fields` are the alert's
// fields as views: the snapshot ingest hands over (EventRecord::alert_fields), or views of
// the alert's own map; the first of equal names counts, as in a std::map built from them.
using AlertFieldViews = std::span<const std::pair<std::string_view, std::string_view>>;
// What the grouping policy decides on (IncidentBook::WouldChange), without a copy.
incidents::AlertTriage TriageStoredAlert(const siper::v1::Alert& alert, AlertFieldViews fields);
// The book's input for the alert, reading `fields` as views (AlertInput::field_views: the
// caller keeps them alive while it is used); `triage` is TriageStoredAlert(alert, fields).
incidents::AlertInput StoredAlertInput(
    const siper::v1::Alert& alert, AlertFieldViews fields, const incidents::AlertTriage& triage,
    const std::map<std::string, std::pair<std::string, std::string>>& rule_rsit);
// The same with the alert's own map copied into AlertInput::fields (owned).
incidents::AlertInput OwnedAlertInput(
    const siper::v1::Alert& alert,
    const std::map<std::string, std::pair<std::string, std::string>>& rule_rsit);

class IncidentServiceImpl final : public siper::v1::IncidentService::Service {
 public:
  // Loads the taxonomy, the audit trail and the incidents from `store` (which must outlive
  // the service) and verifies the audit chain.
  static absl::StatusOr<std::unique_ptr<IncidentServiceImpl>> Create(
      storage::Store* store, IncidentServiceOptions options);
  ~IncidentServiceImpl() override;

  // The ingest hook: applies the grouping policy to the alerts of stored (non-duplicate)
  // records. When an alert opens an incident, earlier stored alerts of the same agent within
  // the grouping window are offered too, so the failed logins before a brute-force alert
  // join its incident.
  void OnStored(const std::string& agent_id, const std::vector<storage::EventRecord>& records);

  // Rule id -> RSIT (class, type) for alerts from now on (after a rule reload).
  void SetRuleRsit(std::map<std::string, std::pair<std::string, std::string>> rule_rsit);

  // Appends a record of an action outside incidents (an IOC import, a rule reload) to the
  // audit trail and persists it before returning.
  [[nodiscard]] absl::Status RecordAudit(const std::string& actor, const std::string& action,
                                         const std::string& target, nlohmann::json after);

  // Starts / stops the deadline thread (it logs a warning and adds a "deadline-passed"
  // timeline entry, audited, once per passed deadline).
  void StartDeadlineTimer();
  // Rebuilds the audit trail and the incident book from the store (after an online restore
  // replaced it).
  absl::Status ReloadFromStore();
  void Stop();
  // One round of the deadline check (what the thread runs); returns notifications raised.
  int CheckDeadlines();
  // Runs for each passed deadline before it is noted as raised, outside the service's lock
  // (the server stores a `deadline_missed` health event through ingest). When it fails, the
  // deadline is not noted and the next round tries again. Set before StartDeadlineTimer.
  using DeadlineHook = std::function<absl::Status(const incidents::DeadlineNotification&)>;
  void SetDeadlineHook(DeadlineHook hook) { deadline_hook_ = std::move(hook); }

  grpc::Status ListIncidents(grpc::ServerContext* context,
                             const siper::v1::ListIncidentsRequest* request,
                             grpc::ServerWriter<siper::v1::IncidentJson>* writer) override;
  grpc::Status GetIncident(grpc::ServerContext* context, const siper::v1::IncidentId* request,
                           siper::v1::IncidentJson* response) override;
  grpc::Status CreateIncident(grpc::ServerContext* context,
                              const siper::v1::CreateIncidentRequest* request,
                              siper::v1::IncidentJson* response) override;
  grpc::Status Transition(grpc::ServerContext* context, const siper::v1::TransitionRequest* request,
                          siper::v1::IncidentJson* response) override;
  grpc::Status Assign(grpc::ServerContext* context, const siper::v1::AssignRequest* request,
                      siper::v1::IncidentJson* response) override;
  grpc::Status AddNote(grpc::ServerContext* context, const siper::v1::NoteRequest* request,
                       siper::v1::IncidentJson* response) override;
  grpc::Status Attach(grpc::ServerContext* context, const siper::v1::AlertsRequest* request,
                      siper::v1::IncidentJson* response) override;
  grpc::Status Detach(grpc::ServerContext* context, const siper::v1::AlertsRequest* request,
                      siper::v1::IncidentJson* response) override;
  grpc::Status Merge(grpc::ServerContext* context, const siper::v1::MergeRequest* request,
                     siper::v1::IncidentJson* response) override;
  grpc::Status Split(grpc::ServerContext* context, const siper::v1::SplitRequest* request,
                     siper::v1::SplitResponse* response) override;
  grpc::Status Update(grpc::ServerContext* context, const siper::v1::UpdateRequest* request,
                      siper::v1::IncidentJson* response) override;
  grpc::Status UpdateKvkk(grpc::ServerContext* context, const siper::v1::KvkkRequest* request,
                          siper::v1::IncidentJson* response) override;
  grpc::Status Report(grpc::ServerContext* context, const siper::v1::ReportRequest* request,
                      siper::v1::ReportResponse* response) override;
  grpc::Status ListAudit(grpc::ServerContext* context, const siper::v1::ListAuditRequest* request,
                         grpc::ServerWriter<siper::v1::AuditRecordJson>* writer) override;
  grpc::Status VerifyAudit(grpc::ServerContext* context,
                           const siper::v1::VerifyAuditRequest* request,
                           siper::v1::VerifyAuditResponse* response) override;

 private:
  IncidentServiceImpl(storage::Store* store, IncidentServiceOptions options,
                      incidents::Taxonomy taxonomy);
  // Changes taken from the book, waiting for the writer. Their JSON (`rows`) is made by the
  // thread that took them, before it waits for the writer, or by the writer when it takes
  // them first: whoever sets `serializing`.
  struct Queued {
    incidents::IncidentChanges changes;
    incidents::StoredWrite rows;
    bool serializing = false;       // guarded by queue_mu_
    bool serialized = false;        // guarded by queue_mu_
    absl::Status serialize_status;  // guarded by queue_mu_
    bool done = false;              // guarded by queue_mu_
    absl::Status status;
  };
  absl::Status LoadLocked();     // (re)builds audit log and book from storage
  absl::Status PersistLocked();  // EnqueueLocked + Flush; reloads on failure
  // Takes the book's pending changes into the queue (null when there are none). Under mu_,
  // so the queue is in the order the changes were made.
  std::shared_ptr<Queued> EnqueueLocked();
  // Returns once `q` is stored (or failed): makes its JSON, then writes everything queued,
  // unless another thread already did. Takes write_mu_ and queue_mu_, never mu_.
  absl::Status Flush(const std::shared_ptr<Queued>& q);
  // Makes q.rows from q.changes; the caller set q.serializing.
  void SerializeQueued(Queued& q);
  // After a failed write: drops the queue and reloads the book from storage (once).
  void RecoverLocked();
  // Incident `id` as JSON with its deadlines; `limit` as IncidentToJsonView (0: all).
  std::string IncidentJsonLocked(const std::string& id, size_t limit = 0) const;
  // Runs `op` under the lock, persists, and answers with incident `id` as JSON.
  grpc::Status Mutate(const std::string& id, const std::function<absl::Status()>& op,
                      siper::v1::IncidentJson* response);
  // Mutate with one audited edit of incident `id` (`action` by `actor`).
  grpc::Status Edit(const std::string& id, const std::string& actor, const std::string& action,
                    const std::function<absl::Status(incidents::Incident&, absl::Time)>& edit,
                    siper::v1::IncidentJson* response);
  incidents::InstitutionProfile ReportProfile() const;

  storage::Store* store_;
  IncidentServiceOptions options_;
  incidents::Taxonomy taxonomy_;
  incidents::SystemClock clock_;

  mutable std::mutex mu_;
  incidents::AuditLog audit_;
  std::unique_ptr<incidents::IncidentBook> book_;
  std::set<std::string> deadline_keys_sent_;
  DeadlineHook deadline_hook_;
  std::mutex deadline_check_mu_;  // one CheckDeadlines at a time

  // Lock order: mu_, then write_mu_, then queue_mu_.
  std::mutex write_mu_;  // held by the one thread writing queued changes
  std::mutex queue_mu_;
  std::condition_variable serialized_cv_;  // a queued change set got its rows
  std::deque<std::shared_ptr<Queued>> queue_;
  bool broken_ = false;  // a write failed; nothing is written until the book is reloaded

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  std::thread timer_;
};

}  // namespace siper::server

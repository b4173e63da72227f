#include "server/incident_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pki.h"
#include "common/status.h"
#include "server/auth.h"
#include "server/health_events.h"
#include "server/incidents/deadlines.h"
#include "server/incidents/json.h"
#include "server/incidents/report.h"
#include "server/incidents/stored.h"
#include "server/incidents/workflow.h"

namespace siper::server {
namespace {

using incidents::Incident;
using nlohmann::json;

constexpr char kDeadlineKind[] = "deadline-passed";
constexpr char kUnset[] = "(unset: institution.";

absl::StatusOr<pki::Identity> Reader(const grpc::ServerContext& context) {
  return RequireRole(context, {pki::kRoleViewer, pki::kRoleAnalyst, pki::kRoleAdmin});
}
absl::StatusOr<pki::Identity> Writer(const grpc::ServerContext& context) {
  return RequireRole(context, {pki::kRoleAnalyst, pki::kRoleAdmin});
}

using FieldSpan = AlertFieldViews;

// The value of the first field named `name` in `fields` ("" when none), as a std::map built
// from them would hold it.
std::string_view FieldOf(FieldSpan fields, std::string_view name) {
  for (const auto& [n, v] : fields) {
    if (n == name) return v;
  }
  return {};
}

// Views of an alert's own protobuf map (an alert read back from the store), appended to
// `out`.
void AppendMapViews(const siper::v1::Alert& alert,
                    std::vector<std::pair<std::string_view, std::string_view>>* out) {
  for (const auto& [name, value] : alert.fields()) out->emplace_back(name, value);
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

std::string Unset(const std::string& value, const std::string& key) {
  return value.empty() ? absl::StrCat(kUnset, key, " in the server config)") : value;
}

}  // namespace

incidents::AlertTriage TriageStoredAlert(const siper::v1::Alert& alert, FieldSpan fields) {
  incidents::AlertTriage t;
  t.id = alert.id();
  t.rule_id = alert.rule_id();
  t.level = alert.level();
  t.time = absl::FromUnixNanos(alert.time_ns());
  t.source_ip = FieldOf(fields, "source.ip");
  t.host = FieldOf(fields, "host.hostname");
  if (t.host.empty()) t.host = alert.agent_id();
  for (const std::string& tag : alert.tags()) {
    if (tag.starts_with("ioc")) t.ioc_hit = true;
  }
  // The threat.* fields the IOC lookup added (rules/ioc.h): an IOC notice, which the
  // policy's ioc_hit_opens / min_ioc_confidence decide on.
  if (!FieldOf(fields, "threat.indicator.value").empty()) {
    t.ioc_hit = true;
    int confidence = 0;
    const std::string_view text = FieldOf(fields, "threat.indicator.confidence");
    if (absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &confidence)) {
      t.ioc_confidence = confidence;
    }
  }
  return t;
}

incidents::AlertInput StoredAlertInput(
    const siper::v1::Alert& alert, FieldSpan fields, const incidents::AlertTriage& triage,
    const std::map<std::string, std::pair<std::string, std::string>>& rule_rsit) {
  incidents::AlertInput in;
  in.field_views = fields;
  in.id = alert.id();
  in.rule_id = alert.rule_id();
  in.title = alert.title();
  in.level = alert.level();
  in.time = triage.time;
  // An empty @timestamp parses as unset, which `occurred` already is.
  if (std::string_view ts = FieldOf(fields, "@timestamp"); !ts.empty()) {
    absl::StatusOr<absl::Time> t = incidents::ParseRfc3339(ts);
    if (t.ok()) in.occurred = *t;
  }
  in.agent_id = alert.agent_id();
  in.seq = alert.seq();
  in.host = std::string(triage.host);
  auto rsit = rule_rsit.find(alert.rule_id());
  if (rsit != rule_rsit.end()) {
    in.rsit_class = rsit->second.first;
    in.rsit_type = rsit->second.second;
  }
  in.ioc_hit = triage.ioc_hit;
  in.ioc_confidence = triage.ioc_confidence;
  if (std::string_view v = FieldOf(fields, "threat.indicator.value"); !v.empty()) {
    in.ioc_value = std::string(v);
    in.ioc_feed = std::string(FieldOf(fields, "threat.feed.name"));
  }
  return in;
}

incidents::AlertInput OwnedAlertInput(
    const siper::v1::Alert& alert,
    const std::map<std::string, std::pair<std::string, std::string>>& rule_rsit) {
  std::vector<std::pair<std::string_view, std::string_view>> views;
  AppendMapViews(alert, &views);
  incidents::AlertInput in =
      StoredAlertInput(alert, views, TriageStoredAlert(alert, views), rule_rsit);
  for (const auto& [name, value] : views) in.fields.emplace(name, value);
  in.field_views = {};
  return in;
}

absl::StatusOr<std::unique_ptr<IncidentServiceImpl>> IncidentServiceImpl::Create(
    storage::Store* store, IncidentServiceOptions options) {
  absl::StatusOr<incidents::Taxonomy> taxonomy =
      incidents::Taxonomy::LoadFromFile(options.config.taxonomy_path);
  if (!taxonomy.ok()) return taxonomy.status();
  SIPER_RETURN_IF_ERROR(incidents::ValidateGroupingPolicy(options.config.grouping, *taxonomy));
  std::unique_ptr<IncidentServiceImpl> s(
      new IncidentServiceImpl(store, std::move(options), *std::move(taxonomy)));
  std::lock_guard<std::mutex> lock(s->mu_);
  SIPER_RETURN_IF_ERROR(s->LoadLocked());
  // Incidents stored whole by an older version move to the item form now.
  if (absl::Status st = s->PersistLocked(); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("incidents: cannot store the incidents in the "
                                                "item form: ",
                                                st.message()));
  }
  // Deadline notifications already raised are remembered in the incidents' timelines.
  for (const Incident* incident : s->book_->View()) {
    for (const incidents::TimelineEntry& e : incident->timeline) {
      if (e.kind == kDeadlineKind)
        s->deadline_keys_sent_.insert(e.text.substr(0, e.text.find(' ')));
    }
  }
  spdlog::info("incidents: {} loaded, {} audit records", s->book_->View().size(),
               s->audit_.records().size());
  return s;
}

IncidentServiceImpl::IncidentServiceImpl(storage::Store* store, IncidentServiceOptions options,
                                         incidents::Taxonomy taxonomy)
    : store_(store), options_(std::move(options)), taxonomy_(std::move(taxonomy)) {}

IncidentServiceImpl::~IncidentServiceImpl() { Stop(); }

absl::Status IncidentServiceImpl::ReloadFromStore() {
  std::lock_guard<std::mutex> lock(mu_);
  return LoadLocked();
}

absl::Status IncidentServiceImpl::LoadLocked() {
  std::vector<incidents::AuditRecord> records;
  absl::Status parse_error;
  SIPER_RETURN_IF_ERROR(store_->ListAudit(1, [&](uint64_t, std::string_view text) {
    absl::StatusOr<incidents::AuditRecord> r =
        incidents::AuditRecordFromJsonText(std::string(text));
    if (!r.ok()) {
      parse_error = r.status();
      return false;
    }
    records.push_back(*std::move(r));
    return true;
  }));
  SIPER_RETURN_IF_ERROR(parse_error);
  absl::StatusOr<incidents::AuditLog> audit = incidents::AuditLog::Restore(std::move(records));
  if (!audit.ok()) {
    return absl::DataLossError(absl::StrCat("the stored incident audit trail does not verify: ",
                                            audit.status().message()));
  }
  audit_ = *std::move(audit);
  std::vector<std::pair<std::string, std::string>> records_by_id;
  SIPER_RETURN_IF_ERROR(store_->ListIncidents([&](std::string_view id, std::string_view text) {
    records_by_id.emplace_back(std::string(id), std::string(text));
    return true;
  }));
  std::vector<Incident> stored;
  std::set<std::string> old_format;
  for (const auto& [id, text] : records_by_id) {
    std::vector<incidents::ReadItem> items;
    SIPER_RETURN_IF_ERROR(
        store_->ListIncidentItems(id, [&](char kind, uint64_t seq, std::string_view json) {
          items.push_back({kind, seq, std::string(json)});
          return true;
        }));
    bool old = false;
    absl::StatusOr<Incident> incident = incidents::AssembleIncident(text, items, &old);
    if (!incident.ok()) return incident.status();
    if (old) old_format.insert(incident->id);
    stored.push_back(*std::move(incident));
  }
  book_ = std::make_unique<incidents::IncidentBook>(&taxonomy_, &clock_, options_.config.grouping,
                                                    &audit_);
  // Incidents of the older whole-record form are rewritten by the next persist.
  SIPER_RETURN_IF_ERROR(book_->Load(std::move(stored), old_format));
  return absl::OkStatus();
}

std::shared_ptr<IncidentServiceImpl::Queued> IncidentServiceImpl::EnqueueLocked() {
  incidents::IncidentChanges changes = book_->TakePendingWrite();
  if (changes.empty()) return nullptr;
  auto q = std::make_shared<Queued>();
  q->changes = std::move(changes);
  std::lock_guard<std::mutex> lock(queue_mu_);
  queue_.push_back(q);
  return q;
}

void IncidentServiceImpl::SerializeQueued(Queued& q) {
  incidents::StoredWrite rows;
  absl::Status st;
  try {
    rows = incidents::Serialize(q.changes);
  } catch (const std::exception& e) {  // nlohmann's dump refuses text that is not UTF-8
    st = absl::InternalError(absl::StrCat("cannot serialize an incident change: ", e.what()));
  }
  q.changes = {};
  std::lock_guard<std::mutex> lock(queue_mu_);
  q.rows = std::move(rows);
  q.serialize_status = std::move(st);
  q.serialized = true;
  serialized_cv_.notify_all();
}

absl::Status IncidentServiceImpl::Flush(const std::shared_ptr<Queued>& q) {
  if (q == nullptr) return absl::OkStatus();
  // The JSON of this thread's own changes, made before it queues for the writer: the ingest
  // threads serialize in parallel, and the writer only combines their rows.
  bool mine = false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    mine = !q->serializing;
    q->serializing = true;
  }
  if (mine) SerializeQueued(*q);
  std::lock_guard<std::mutex> writer(write_mu_);
  std::vector<std::shared_ptr<Queued>> group;
  std::vector<Queued*> to_serialize;  // taken before their threads got to them
  bool broken = false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (q->done) return q->status;  // written by the thread before us, with its own
    group.assign(queue_.begin(), queue_.end());
    queue_.clear();
    broken = broken_;
    for (const std::shared_ptr<Queued>& g : group) {
      if (!g->serializing) {
        g->serializing = true;
        to_serialize.push_back(g.get());
      }
    }
  }
  for (Queued* g : to_serialize) SerializeQueued(*g);
  absl::Status st;
  std::vector<incidents::StoredWrite> writes;
  if (broken) {
    st = absl::UnavailableError("an earlier incident change was not stored; reloading");
  } else {
    writes.reserve(group.size());
    {
      // Sets whose threads are making their JSON right now: they finish without a lock.
      std::unique_lock<std::mutex> lock(queue_mu_);
      serialized_cv_.wait(lock, [&] {
        return std::all_of(group.begin(), group.end(),
                           [](const std::shared_ptr<Queued>& g) { return g->serialized; });
      });
      for (const std::shared_ptr<Queued>& g : group) {
        writes.push_back(std::move(g->rows));
        if (st.ok()) st = g->serialize_status;
      }
    }
  }
  if (st.ok() && !broken) {
    incidents::StoredWrite rows = incidents::Combine(std::move(writes));
    storage::IncidentWrite write;
    write.incidents = std::move(rows.incidents);
    write.audit = std::move(rows.audit);
    write.clear_items = std::move(rows.clear_items);
    write.items.reserve(rows.items.size());
    for (incidents::StoredItem& item : rows.items) {
      write.items.push_back(
          {std::move(item.incident_id), item.kind, item.seq, std::move(item.json)});
    }
    st = store_->PutIncidents(write);
  }
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (!st.ok()) broken_ = true;
  for (const std::shared_ptr<Queued>& g : group) {
    g->done = true;
    g->status = st;
  }
  return q->status;
}

void IncidentServiceImpl::RecoverLocked() {
  std::lock_guard<std::mutex> writer(write_mu_);  // no write in flight
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!broken_) return;  // another thread reloaded already
    for (const std::shared_ptr<Queued>& g : queue_) {
      g->done = true;
      g->status = absl::UnavailableError("an earlier incident change was not stored");
    }
    queue_.clear();
  }
  absl::Status reload = LoadLocked();
  if (!reload.ok()) {
    spdlog::error("incidents: reload failed: {}", reload.ToString());
    return;  // still broken: the next failure tries again
  }
  std::lock_guard<std::mutex> lock(queue_mu_);
  broken_ = false;
}

absl::Status IncidentServiceImpl::PersistLocked() {
  absl::Status st = Flush(EnqueueLocked());
  if (!st.ok()) {
    spdlog::error("incidents: cannot store a change ({}); reloading from storage", st.ToString());
    RecoverLocked();
    return absl::Status(st.code(), absl::StrCat("the change was not stored: ", st.message()));
  }
  return absl::OkStatus();
}

std::string IncidentServiceImpl::IncidentJsonLocked(const std::string& id, size_t limit) const {
  const Incident* incident = book_->Find(id);
  if (incident == nullptr) return "";
  json j = limit == 0 ? incidents::IncidentToJson(*incident)
                      : incidents::IncidentToJsonView(*incident, limit);
  json deadlines = json::array();
  for (const incidents::Deadline& d :
       incidents::ComputeDeadlines(*incident, options_.config.deadlines, clock_.Now())) {
    json dj = {{"kind", std::string(incidents::ToString(d.kind))},
               {"due", incidents::FormatRfc3339(d.due)},
               {"status", std::string(incidents::ToString(d.status))}};
    if (incidents::IsSet(d.done)) dj["done"] = incidents::FormatRfc3339(d.done);
    deadlines.push_back(std::move(dj));
  }
  j["deadlines"] = std::move(deadlines);
  return j.dump();
}

void IncidentServiceImpl::SetRuleRsit(
    std::map<std::string, std::pair<std::string, std::string>> rule_rsit) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.rule_rsit = std::move(rule_rsit);
}

absl::Status IncidentServiceImpl::RecordAudit(const std::string& actor, const std::string& action,
                                              const std::string& target, nlohmann::json after) {
  std::lock_guard<std::mutex> lock(mu_);
  audit_.Append(clock_.Now(), actor, action, target, nullptr, std::move(after));
  return PersistLocked();
}

void IncidentServiceImpl::OnStored(const std::string& agent_id,
                                   const std::vector<storage::EventRecord>& records) {
  // Without the lock: each stored alert as the grouping policy sees it (views, no copy),
  // and the alerts no book under this policy takes dropped (most of them: below min_level,
  // and nothing joins when attach_below_threshold is off). The policy does not change
  // after Create, so it is read without the lock.
  const incidents::GroupingPolicy& policy = options_.config.grouping;
  const bool internal = agent_id == kInternalAgentId;
  struct Candidate {
    const siper::v1::Alert* alert;
    FieldSpan fields;
    incidents::AlertTriage triage;
    std::string_view named_incident;  // a server health alert's incident.id
  };
  std::vector<Candidate> candidates;
  // Views of the candidates' alerts that carry their own protobuf map (not ingest's: tests,
  // or alerts read back), one vector each, moved out of `scratch`: a vector's buffer stays
  // put when it is moved, also when the outer vector grows.
  std::vector<std::vector<std::pair<std::string_view, std::string_view>>> map_views;
  std::vector<std::pair<std::string_view, std::string_view>> scratch;
  for (const storage::EventRecord& record : records) {
    if (record.duplicate) continue;
    for (size_t i = 0; i < record.alerts.size(); ++i) {
      const siper::v1::Alert& alert = record.alerts[i];
      const FieldSpan fields = record.AlertFields(i, &scratch);
      Candidate c{&alert, fields, TriageStoredAlert(alert, fields), {}};
      // A server health alert about an incident (deadline_missed) joins that incident.
      if (internal) c.named_incident = FieldOf(fields, "incident.id");
      if (c.named_incident.empty() && !incidents::MayOpenOrJoin(policy, c.triage)) continue;
      if (!scratch.empty()) map_views.push_back(std::move(scratch));
      candidates.push_back(c);
    }
  }
  if (candidates.empty()) return;

  std::unique_lock<std::mutex> lock(mu_);
  bool changed = false;
  for (const Candidate& c : candidates) {
    const siper::v1::Alert& alert = *c.alert;
    if (!c.named_incident.empty()) {
      const std::string named(c.named_incident);
      if (book_->Find(named) != nullptr &&
          book_
              ->Attach(named, StoredAlertInput(alert, c.fields, c.triage, options_.rule_rsit),
                       "system")
              .ok()) {
        changed = true;
        continue;
      }
    }
    // What Ingest would decide, asked first: an alert it ignores costs no AlertInput.
    if (!book_->WouldChange(c.triage)) continue;
    const incidents::AlertInput input =
        StoredAlertInput(alert, c.fields, c.triage, options_.rule_rsit);
    incidents::IngestResult r = book_->Ingest(input);
    if (r.outcome == incidents::IngestResult::Outcome::kIgnored) continue;
    changed = true;
    if (r.outcome != incidents::IngestResult::Outcome::kOpened) continue;
    spdlog::info("incident {} opened by alert {} ({})", r.incident_id, alert.id(), alert.title());
    // Earlier alerts of this agent within the window may belong to the new incident.
    storage::AlertQuery q;
    q.agent_id = agent_id;
    q.since_ns = absl::ToUnixNanos(input.time - options_.config.grouping.window);
    q.until_ns = absl::ToUnixNanos(input.time) + 1;
    std::vector<siper::v1::Alert> earlier;
    absl::Status st = store_->ListAlerts(q, [&](const siper::v1::Alert& a) {
      if (a.id() != alert.id()) earlier.push_back(a);
      return true;
    });
    if (!st.ok()) spdlog::warn("incidents: cannot read earlier alerts: {}", st.ToString());
    std::vector<std::pair<std::string_view, std::string_view>> views;
    for (const siper::v1::Alert& a : earlier) {
      views.clear();
      AppendMapViews(a, &views);
      const incidents::AlertTriage triage = TriageStoredAlert(a, views);
      if (!book_->WouldChange(triage)) continue;
      (void)book_->Ingest(StoredAlertInput(a, views, triage, options_.rule_rsit));
    }
  }
  if (!changed) return;
  // Stored without the lock: other ingest threads go on matching incidents meanwhile, and
  // whoever writes first takes the others' changes along in the same batch.
  std::shared_ptr<Queued> queued = EnqueueLocked();
  lock.unlock();
  absl::Status st = Flush(queued);
  if (!st.ok()) {
    spdlog::error("incidents: cannot store a change ({}); reloading from storage", st.ToString());
    lock.lock();
    RecoverLocked();
  }
}

void IncidentServiceImpl::StartDeadlineTimer() {
  timer_ = std::thread([this] {
    // The first round runs at once: a deadline that passed while the server was down is
    // raised at start-up.
    std::unique_lock<std::mutex> lock(timer_mu_);
    while (!stopping_) {
      lock.unlock();
      try {
        CheckDeadlines();
      } catch (const std::exception& e) {
        spdlog::error("incidents: deadline check failed: {}", e.what());
      }
      lock.lock();
      timer_cv_.wait_for(lock, absl::ToChronoSeconds(options_.deadline_check_period),
                         [this] { return stopping_; });
    }
  });
}

void IncidentServiceImpl::Stop() {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

int IncidentServiceImpl::CheckDeadlines() {
  std::lock_guard<std::mutex> check_lock(deadline_check_mu_);
  std::vector<incidents::DeadlineNotification> notes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notes = incidents::DeadlinePassedNotifications(book_->View(), options_.config.deadlines,
                                                   clock_.Now(), deadline_keys_sent_);
  }
  // The hook runs without the lock: it stores an event through ingest, whose stored hook
  // (OnStored) takes it.
  std::vector<incidents::DeadlineNotification> raised;
  for (const incidents::DeadlineNotification& n : notes) {
    if (deadline_hook_) {
      if (absl::Status st = deadline_hook_(n); !st.ok()) {
        spdlog::warn("incidents: deadline {} not raised yet: {}", n.key, st.ToString());
        continue;
      }
    }
    raised.push_back(n);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const incidents::DeadlineNotification& n : raised) {
    spdlog::warn("ALERT {} [{}] {}: {}", n.rule_id, n.level, n.incident_id, n.message);
    deadline_keys_sent_.insert(n.key);
    absl::Status st = book_->Update(n.incident_id, "system", "incident.deadline_passed",
                                    [&n](Incident& incident, absl::Time now) {
                                      incidents::AddTimeline(incident, now, "system", kDeadlineKind,
                                                             absl::StrCat(n.key, " ", n.message));
                                      return absl::OkStatus();
                                    });
    if (!st.ok()) spdlog::warn("incidents: {}", st.ToString());
  }
  if (!raised.empty()) {
    absl::Status st = PersistLocked();
    if (!st.ok()) spdlog::error("incidents: {}", st.ToString());
  }
  return static_cast<int>(raised.size());
}

grpc::Status IncidentServiceImpl::Mutate(const std::string& id,
                                         const std::function<absl::Status()>& op,
                                         siper::v1::IncidentJson* response) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status st = op();
  absl::Status persisted = PersistLocked();
  if (!st.ok()) return ToGrpc(st);
  if (!persisted.ok()) return ToGrpc(persisted);
  response->set_json(IncidentJsonLocked(id));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::ListIncidents(
    grpc::ServerContext* context, const siper::v1::ListIncidentsRequest* request,
    grpc::ServerWriter<siper::v1::IncidentJson>* writer) {
  absl::StatusOr<pki::Identity> who = Reader(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::optional<incidents::State> state;
  if (!request->state().empty()) {
    absl::StatusOr<incidents::State> s = incidents::ParseState(request->state());
    if (!s.ok()) return ToGrpc(s.status());
    state = *s;
  }
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> overdue;
    if (request->overdue()) {
      for (const incidents::Deadline& d : book_->Overdue(options_.config.deadlines)) {
        overdue.insert(d.incident_id);
      }
    }
    for (const Incident* incident : book_->View()) {
      if (state && incident->state != *state) continue;
      if (request->open_only() && !incident->open()) continue;
      if (request->overdue() && !overdue.contains(incident->id)) continue;
      out.push_back(IncidentJsonLocked(incident->id, request->limit()));
    }
  }
  for (std::string& j : out) {
    siper::v1::IncidentJson m;
    m.set_json(std::move(j));
    if (!writer->Write(m)) break;
  }
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::GetIncident(grpc::ServerContext* context,
                                              const siper::v1::IncidentId* request,
                                              siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Reader(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::lock_guard<std::mutex> lock(mu_);
  std::string j = IncidentJsonLocked(request->id(), request->limit());
  if (j.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no incident ", request->id()));
  }
  response->set_json(std::move(j));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::CreateIncident(grpc::ServerContext* context,
                                                 const siper::v1::CreateIncidentRequest* request,
                                                 siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  if (request->title().empty()) return Invalid("an incident needs a title (--title)");
  incidents::NewIncident spec;
  spec.title = request->title();
  spec.description = request->description();
  if (!request->rsit_class().empty()) spec.rsit_class = request->rsit_class();
  if (!request->rsit_type().empty()) spec.rsit_type = request->rsit_type();
  if (!request->severity().empty()) {
    absl::StatusOr<incidents::Severity> s = incidents::ParseSeverity(request->severity());
    if (!s.ok()) return ToGrpc(s.status());
    spec.severity = *s;
  }
  if (!request->tlp().empty()) {
    absl::StatusOr<incidents::Tlp> t = incidents::ParseTlp(request->tlp());
    if (!t.ok()) return ToGrpc(t.status());
    spec.tlp = *t;
  }
  spec.assignee = request->assignee();
  spec.personal_data_breach = request->personal_data_breach();
  std::string id;
  grpc::Status st = Mutate(
      "",
      [&]() -> absl::Status {
        absl::StatusOr<std::string> created = book_->Create(spec, who->common_name);
        if (!created.ok()) return created.status();
        id = *created;
        return absl::OkStatus();
      },
      response);
  if (!st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  response->set_json(IncidentJsonLocked(id));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::Transition(grpc::ServerContext* context,
                                             const siper::v1::TransitionRequest* request,
                                             siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  absl::StatusOr<incidents::State> to = incidents::ParseState(request->to());
  if (!to.ok()) return ToGrpc(to.status());
  incidents::Resolution resolution = incidents::Resolution::kNone;
  if (!request->resolution().empty()) {
    absl::StatusOr<incidents::Resolution> r = incidents::ParseResolution(request->resolution());
    if (!r.ok()) return ToGrpc(r.status());
    resolution = *r;
  }
  return Mutate(
      request->id(),
      [&] {
        return book_->Transition(request->id(), *to, who->common_name, resolution,
                                 request->reason());
      },
      response);
}

grpc::Status IncidentServiceImpl::Edit(
    const std::string& id, const std::string& actor, const std::string& action,
    const std::function<absl::Status(Incident&, absl::Time)>& edit,
    siper::v1::IncidentJson* response) {
  return Mutate(
      id, [&] { return book_->Update(id, actor, action, edit); }, response);
}

grpc::Status IncidentServiceImpl::Assign(grpc::ServerContext* context,
                                         const siper::v1::AssignRequest* request,
                                         siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  return Edit(
      request->id(), who->common_name, "incident.assign",
      [&](Incident& incident, absl::Time now) {
        incidents::Assign(incident, request->assignee(), who->common_name, now);
        return absl::OkStatus();
      },
      response);
}

grpc::Status IncidentServiceImpl::AddNote(grpc::ServerContext* context,
                                          const siper::v1::NoteRequest* request,
                                          siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  return Edit(
      request->id(), who->common_name, "incident.note",
      [&](Incident& incident, absl::Time now) {
        return incidents::AddNote(incident, request->text(), who->common_name, now);
      },
      response);
}

grpc::Status IncidentServiceImpl::Attach(grpc::ServerContext* context,
                                         const siper::v1::AlertsRequest* request,
                                         siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  if (request->alert_ids().empty()) return Invalid("no alert ids given");
  std::vector<incidents::AlertInput> alerts;
  for (const std::string& alert_id : request->alert_ids()) {
    absl::StatusOr<std::optional<siper::v1::Alert>> alert = store_->GetAlert(alert_id);
    if (!alert.ok()) return ToGrpc(alert.status());
    if (!alert->has_value()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no stored alert ", alert_id));
    }
    alerts.push_back(OwnedAlertInput(**alert, options_.rule_rsit));
  }
  return Mutate(
      request->id(),
      [&] {
        for (const incidents::AlertInput& a : alerts) {
          SIPER_RETURN_IF_ERROR(book_->Attach(request->id(), a, who->common_name));
        }
        return absl::OkStatus();
      },
      response);
}

grpc::Status IncidentServiceImpl::Detach(grpc::ServerContext* context,
                                         const siper::v1::AlertsRequest* request,
                                         siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  if (request->alert_ids().empty()) return Invalid("no alert ids given");
  return Mutate(
      request->id(),
      [&] {
        for (const std::string& alert_id : request->alert_ids()) {
          SIPER_RETURN_IF_ERROR(book_->Detach(request->id(), alert_id, who->common_name));
        }
        return absl::OkStatus();
      },
      response);
}

grpc::Status IncidentServiceImpl::Merge(grpc::ServerContext* context,
                                        const siper::v1::MergeRequest* request,
                                        siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::vector<std::string> sources(request->sources().begin(), request->sources().end());
  if (sources.empty()) return Invalid("no incidents to merge given");
  return Mutate(
      request->target(), [&] { return book_->Merge(request->target(), sources, who->common_name); },
      response);
}

grpc::Status IncidentServiceImpl::Split(grpc::ServerContext* context,
                                        const siper::v1::SplitRequest* request,
                                        siper::v1::SplitResponse* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::set<std::string> ids(request->alert_ids().begin(), request->alert_ids().end());
  if (ids.empty()) return Invalid("no alert ids given");
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string> created =
      book_->Split(request->id(), ids, request->title(), who->common_name);
  absl::Status persisted = PersistLocked();
  if (!created.ok()) return ToGrpc(created.status());
  if (!persisted.ok()) return ToGrpc(persisted);
  response->set_new_id(*created);
  response->set_json(IncidentJsonLocked(*created));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::Update(grpc::ServerContext* context,
                                         const siper::v1::UpdateRequest* request,
                                         siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::optional<incidents::Severity> severity;
  if (!request->severity().empty()) {
    absl::StatusOr<incidents::Severity> s = incidents::ParseSeverity(request->severity());
    if (!s.ok()) return ToGrpc(s.status());
    severity = *s;
  }
  std::optional<incidents::Tlp> tlp;
  if (!request->tlp().empty()) {
    absl::StatusOr<incidents::Tlp> t = incidents::ParseTlp(request->tlp());
    if (!t.ok()) return ToGrpc(t.status());
    tlp = *t;
  }
  std::optional<bool> breach;
  if (!request->personal_data_breach().empty()) {
    if (request->personal_data_breach() != "yes" && request->personal_data_breach() != "no") {
      return Invalid("--personal-data-breach takes yes or no");
    }
    breach = request->personal_data_breach() == "yes";
  }
  if (request->rsit_class().empty() != request->rsit_type().empty()) {
    return Invalid("--rsit-class and --rsit-type go together");
  }
  const std::string& actor = who->common_name;
  return Edit(
      request->id(), actor, "incident.update",
      [&](Incident& incident, absl::Time now) -> absl::Status {
        if (severity)
          SIPER_RETURN_IF_ERROR(incidents::SetSeverity(incident, *severity, actor, now));
        if (!request->rsit_class().empty()) {
          SIPER_RETURN_IF_ERROR(incidents::SetClassification(
              incident, taxonomy_, request->rsit_class(), request->rsit_type(), actor, now));
        }
        if (tlp) incidents::SetTlp(incident, *tlp, actor, now);
        if (!request->impact().empty())
          incidents::SetImpact(incident, request->impact(), actor, now);
        if (!request->action().empty())
          incidents::AddAction(incident, request->action(), actor, now);
        if (request->asset_criticality() != 0) {
          SIPER_RETURN_IF_ERROR(
              incidents::SetAssetCriticality(incident, request->asset_criticality(), actor, now));
        }
        if (!request->usom_reference().empty()) {
          SIPER_RETURN_IF_ERROR(
              incidents::RecordUsomReport(incident, now, request->usom_reference(), actor, now));
        }
        if (breach) incidents::SetPersonalDataBreach(incident, *breach, actor, now);
        return absl::OkStatus();
      },
      response);
}

namespace {

void SetList(const siper::v1::StringList& from, std::vector<std::string>* to) {
  to->assign(from.values().begin(), from.values().end());
}

// The stored KVKK details with the request's set fields applied.
incidents::KvkkBreach MergeKvkk(const incidents::KvkkBreach& stored,
                                const siper::v1::KvkkRequest& r) {
  incidents::KvkkBreach k = stored;
  if (r.has_breach_started_ns()) k.breach_started = absl::FromUnixNanos(r.breach_started_ns());
  if (r.has_breach_ended_ns()) k.breach_ended = absl::FromUnixNanos(r.breach_ended_ns());
  if (r.has_source()) k.source = r.source();
  if (r.has_description()) k.description = r.description();
  if (r.has_data_categories()) SetList(r.data_categories(), &k.data_categories);
  if (r.has_special_categories()) k.special_categories = r.special_categories();
  if (r.has_subject_groups()) SetList(r.subject_groups(), &k.subject_groups);
  if (r.has_people_count()) k.people_count = r.people_count();
  if (r.has_record_count()) k.record_count = r.record_count();
  if (r.has_consequences()) k.consequences = r.consequences();
  if (r.has_measures_taken()) SetList(r.measures_taken(), &k.measures_taken);
  if (r.has_measures_planned()) SetList(r.measures_planned(), &k.measures_planned);
  if (r.has_subjects_informed()) k.subjects_informed = r.subjects_informed();
  return k;
}

bool HasKvkkDetails(const siper::v1::KvkkRequest& r) {
  return r.has_breach_started_ns() || r.has_breach_ended_ns() || r.has_source() ||
         r.has_description() || r.has_data_categories() || r.has_special_categories() ||
         r.has_subject_groups() || r.has_people_count() || r.has_record_count() ||
         r.has_consequences() || r.has_measures_taken() || r.has_measures_planned() ||
         r.has_subjects_informed();
}

}  // namespace

grpc::Status IncidentServiceImpl::UpdateKvkk(grpc::ServerContext* context,
                                             const siper::v1::KvkkRequest* request,
                                             siper::v1::IncidentJson* response) {
  absl::StatusOr<pki::Identity> who = Writer(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::optional<incidents::NoticeKind> notice;
  if (!request->notice().empty()) {
    absl::StatusOr<incidents::NoticeKind> kind = incidents::ParseNoticeKind(request->notice());
    if (!kind.ok()) return Invalid("--notice takes first or follow-up");
    notice = *kind;
  } else if (!request->notice_reference().empty() || request->notice_sent_ns() != 0) {
    return Invalid("--notice-reference and --notice-sent describe a notice: give --notice too");
  }
  if (!HasKvkkDetails(*request) && !notice && request->delay_reasons().empty()) {
    return Invalid("nothing to change: give at least one KVKK field or a notice");
  }
  const std::string& actor = who->common_name;
  const incidents::DeadlinePolicy& policy = options_.config.deadlines;
  return Edit(
      request->id(), actor, "incident.kvkk",
      [&](Incident& incident, absl::Time now) -> absl::Status {
        if (HasKvkkDetails(*request)) {
          SIPER_RETURN_IF_ERROR(incidents::UpdateKvkkDetails(
              incident, MergeKvkk(incident.kvkk, *request), actor, now));
        }
        const std::vector<std::string> reasons(request->delay_reasons().begin(),
                                               request->delay_reasons().end());
        if (notice) {
          if (!incident.kvkk.personal_data_breach) {
            return absl::FailedPreconditionError(
                absl::StrCat(incident.id,
                             " is not flagged as a personal-data breach: run `siperctl incidents "
                             "update ",
                             incident.id, " --personal-data-breach yes` first"));
          }
          const absl::Time sent =
              request->notice_sent_ns() != 0 ? absl::FromUnixNanos(request->notice_sent_ns()) : now;
          const absl::Time due =
              incidents::KvkkDue(incident, policy).value_or(absl::InfiniteFuture());
          SIPER_RETURN_IF_ERROR(incidents::RecordKvkkNotice(
              incident, *notice, sent, request->notice_reference(), reasons, due, actor, now));
        } else if (!reasons.empty()) {
          for (const std::string& r : reasons) incident.kvkk.delay_reasons.push_back(r);
          incidents::AddTimeline(incident, now, actor, "kvkk", "delay reasons recorded");
        }
        return absl::OkStatus();
      },
      response);
}

incidents::InstitutionProfile IncidentServiceImpl::ReportProfile() const {
  incidents::InstitutionProfile p = options_.config.institution;
  // A server without an institution profile (the quick start) still reports, with the
  // missing registration data marked rather than left blank.
  p.institution = Unset(p.institution, "name");
  p.some_name = Unset(p.some_name, "some_name");
  p.some_mailbox = Unset(p.some_mailbox, "some_mailbox");
  p.isp = Unset(p.isp, "isp");
  p.phone = Unset(p.phone, "phone");
  p.address = Unset(p.address, "address");
  if (p.kvkk_controller.empty()) p.kvkk_controller = p.institution;
  return p;
}

grpc::Status IncidentServiceImpl::Report(grpc::ServerContext* context,
                                         const siper::v1::ReportRequest* request,
                                         siper::v1::ReportResponse* response) {
  absl::StatusOr<pki::Identity> who = Reader(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::string format_text = request->format().empty() ? "md" : request->format();
  absl::StatusOr<incidents::ReportFormat> format = incidents::ParseReportFormat(format_text);
  if (!format.ok()) return ToGrpc(format.status());
  incidents::ReportOptions options;
  options.lang = request->lang().empty() ? "tr" : request->lang();
  if (options.lang != "tr" && options.lang != "en") return Invalid("--lang takes tr or en");
  options.now = clock_.Now();
  incidents::InstitutionProfile profile = ReportProfile();
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::string> text;
  if (request->kind() == "summary") {
    incidents::SummaryInput input;
    input.incidents = book_->View();
    input.until = options.now;
    input.since = request->since_ns() != 0 ? absl::FromUnixNanos(request->since_ns())
                                           : options.now - absl::Hours(24 * 30);
    input.deadlines = options_.config.deadlines;
    input.ip_ranges = profile.ip_ranges;
    text = incidents::SummaryReport(input, taxonomy_, *format, options);
  } else if (request->kind() == "usom" || request->kind() == "kvkk") {
    const Incident* incident = book_->Find(request->id());
    if (incident == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no incident ", request->id()));
    }
    text = request->kind() == "usom"
               ? incidents::UsomReport(*incident, profile, taxonomy_, *format, options)
               : incidents::KvkkReport(*incident, profile, taxonomy_, *format, options,
                                       options_.config.deadlines);
  } else {
    return Invalid(absl::StrCat("unknown report '", request->kind(), "': usom, kvkk or summary"));
  }
  if (!text.ok()) return ToGrpc(text.status());
  response->set_text(*std::move(text));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::ListAudit(
    grpc::ServerContext* context, const siper::v1::ListAuditRequest* request,
    grpc::ServerWriter<siper::v1::AuditRecordJson>* writer) {
  absl::StatusOr<pki::Identity> who = Reader(*context);
  if (!who.ok()) return ToGrpc(who.status());
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const incidents::AuditRecord& r : audit_.records()) {
      if (r.seq < request->from_seq()) continue;
      if (!request->target().empty() && r.target != request->target()) continue;
      out.push_back(incidents::AuditRecordToJson(r).dump());
    }
  }
  for (std::string& j : out) {
    siper::v1::AuditRecordJson m;
    m.set_json(std::move(j));
    if (!writer->Write(m)) break;
  }
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::VerifyAudit(grpc::ServerContext* context,
                                              const siper::v1::VerifyAuditRequest*,
                                              siper::v1::VerifyAuditResponse* response) {
  absl::StatusOr<pki::Identity> who = Reader(*context);
  if (!who.ok()) return ToGrpc(who.status());
  // Under the lock, so no record is appended between reading the head and the trail.
  std::lock_guard<std::mutex> lock(mu_);
  std::string head = audit_.records().empty() ? "" : audit_.head();
  // The stored trail, checked link by link and against the head the running server holds.
  std::vector<incidents::AuditRecord> records;
  std::string problem;
  absl::Status st = store_->ListAudit(1, [&](uint64_t seq, std::string_view text) {
    absl::StatusOr<incidents::AuditRecord> r =
        incidents::AuditRecordFromJsonText(std::string(text));
    if (!r.ok()) {
      problem = absl::StrCat("audit record ", seq, ": ", r.status().message());
      return false;
    }
    records.push_back(*std::move(r));
    return true;
  });
  if (!st.ok()) return ToGrpc(st);
  if (problem.empty()) {
    absl::Status verified = incidents::VerifyAuditChain(records, head);
    if (!verified.ok()) problem = std::string(verified.message());
  }
  response->set_ok(problem.empty());
  response->set_records(records.size());
  response->set_head(records.empty() ? "" : records.back().hash);
  response->set_problem(problem);
  return grpc::Status::OK;
}

}  // namespace siper::server

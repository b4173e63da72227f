#include "server/server.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

storage::RetentionOptions RetentionFromConfig(const ServerConfig& config) {
  constexpr int64_t kDayNs = int64_t{24} * 3600 * 1'000'000'000;
  auto days = [&](int64_t kind_days) {
    return (kind_days >= 0 ? kind_days : config.retention_days) * kDayNs;
  };
  storage::RetentionOptions r;
  r.events_ns = days(config.retention_events_days);
  r.alerts_ns = days(config.retention_alerts_days);
  return r;
}

// Compiled Hyperscan databases and parsed rules are cached under the data
// directory, so a restart or a reload with unchanged rules skips compiling.
rules::LoadOptions RuleLoadOptions(const ServerConfig& config) {
  rules::LoadOptions options;
  options.cache_dir = config.data_dir / "cache" / "rules";
  // Damaged cache files found at load are logged from stats(); those of merged
  // databases (built when an ingest thread first needs one) as they are found.
  options.on_cache_message = [](const std::string& m) { spdlog::warn("rules: {}", m); };
  return options;
}

std::map<std::string, std::pair<std::string, std::string>> RuleRsit(const rules::RuleSet& set) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const rules::RuleInfo& rule : set.rules()) {
    if (!rule.rsit_class.empty()) out[rule.id] = {rule.rsit_class, rule.rsit_type};
  }
  return out;
}

}  // namespace

absl::StatusOr<siper::v1::ReloadRulesResponse> SiperServer::ReloadRules(const std::string& actor) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  const absl::Time start = absl::Now();
  rules::LoadOptions options = RuleLoadOptions(config_);
  // Load everything so every error can be named; refuse below if there is any.
  options.skip_errors = true;
  absl::StatusOr<std::shared_ptr<const rules::RuleSet>> next =
      rules::RuleSet::Load(rules_dir_, options);
  if (!next.ok()) {
    return absl::Status(next.status().code(),
                        absl::StrCat("rules not reloaded (the running set is kept): ",
                                     rules_dir_.string(), ": ", next.status().message()));
  }
  std::vector<std::string> errors;
  uint64_t unsupported = 0;
  for (const rules::RuleDiagnostic& d : (*next)->skipped()) {
    if (d.status == rules::RuleDiagnostic::Status::kError) {
      errors.push_back(d.message.empty() ? d.path : d.message);
    } else {
      ++unsupported;
    }
  }
  if (!errors.empty()) {
    spdlog::warn("rules: reload from {} refused, {} errors", rules_dir_.string(), errors.size());
    return absl::InvalidArgumentError(
        absl::StrCat("rules not reloaded (the running set is kept): ", errors.size(), " errors in ",
                     rules_dir_.string(), ":\n", absl::StrJoin(errors, "\n")));
  }
  const rules::RuleSetStats stats = (*next)->stats();
  for (const std::string& m : stats.cache_messages) spdlog::warn("rules: {}", m);
  // RSIT classes first, so the first alert of a new rule already has its class.
  incident_service_->SetRuleRsit(RuleRsit(**next));
  const uint64_t generation = live_rules_->Swap(*next);
  const int64_t took_ms = absl::ToInt64Milliseconds(absl::Now() - start);
  spdlog::info(
      "rules: generation {} live: {} rules from {} ({} databases, {} from the cache) in "
      "{} ms",
      generation, stats.rules, rules_dir_.string(), stats.databases, stats.cache_hits, took_ms);
  siper::v1::ReloadRulesResponse r;
  r.set_generation(generation);
  r.set_rules(stats.rules);
  r.set_log_sources(stats.log_sources);
  r.set_databases(stats.databases);
  r.set_cache_hits(stats.cache_hits);
  r.set_unsupported(unsupported);
  r.set_took_ms(took_ms);
  r.set_rules_dir(rules_dir_.string());
  absl::Status audited = incident_service_->RecordAudit(
      actor, "rules.reload", rules_dir_.string(),
      {{"generation", generation}, {"rules", stats.rules}, {"unsupported", unsupported}});
  if (!audited.ok()) spdlog::error("rules: reload not audited: {}", audited.ToString());
  return r;
}

absl::StatusOr<siper::v1::RestoreResponse> SiperServer::RestoreBackup(
    const std::string& actor, const std::filesystem::path& backup_dir) {
  namespace fs = std::filesystem;
  std::lock_guard<std::mutex> lock(reload_mu_);
  const absl::Time start = absl::Now();
  std::error_code ec;
  if (!fs::is_directory(backup_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("restore: ", backup_dir.string(),
                                            " is not a directory on the server host; nothing "
                                            "was changed"));
  }
  const fs::path db_dir = store_->dir();
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", start, absl::UTCTimeZone());
  const fs::path staged = db_dir.parent_path() / absl::StrCat("db.restoring-", stamp);
  const fs::path keep_as = db_dir.parent_path() / absl::StrCat("db.before-restore-", stamp);
  if (fs::exists(staged, ec) || fs::exists(keep_as, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat("restore: ", staged.string(), " or ", keep_as.string(),
                     " exists (a restore in the same second?); nothing was changed"));
  }
  // 1. A private copy beside the database (same file system, so the swap is a rename),
  // checked before anything running is touched. The copy is ours: it is removed when the
  // backup is refused, and the backup itself is never written to.
  auto refuse = [&](const absl::Status& st) {
    std::error_code ignored;
    fs::remove_all(staged, ignored);
    return absl::Status(st.code(), absl::StrCat("restore of ", backup_dir.string(),
                                                " refused, nothing was changed: ", st.message()));
  };
  if (absl::Status st = storage::Store::Restore(backup_dir, staged); !st.ok()) return refuse(st);
  siper::v1::RestoreResponse response;
  // The copy is checked with its own Store, closed before it is swapped in or removed.
  absl::Status checked = [&]() -> absl::Status {
    storage::StoreOptions options;
    options.sync_writes = config_.sync_writes;
    SIPER_ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> check,
                           storage::Store::Open(staged, options));
    SIPER_ASSIGN_OR_RETURN(storage::VerifyReport report, check->Verify());
    if (!report.ok) {
      return absl::FailedPreconditionError(
          absl::StrCat("its hash chain does not verify: ", report.message));
    }
    SIPER_ASSIGN_OR_RETURN(storage::ChainHead head, check->GetChainHead());
    response.set_head_length(head.length);
    response.set_verified_records(report.chain_records);
    response.set_events(report.events);
    return absl::OkStatus();
  }();
  if (!checked.ok()) return refuse(checked);
  // 2. Seal what the running store has, so the database kept aside ends on a seal.
  if (absl::Status st = sealer_->SealNow(); !st.ok()) {
    spdlog::warn("restore: the running chain could not be sealed first: {}", st.ToString());
  }
  // 3. Pause: agents' new batches are refused (they keep them and resend). Batches
  // already taken are written before the swap or, if they wait for it, into the restored
  // store, and acknowledged only once durable there: nothing taken is lost.
  const absl::Time pause_start = absl::Now();
  agent_service_->SetRestoring(true);
  Metrics().ingest_paused.Set(1);
  (void)agent_service_->registry().Flush();
  absl::Status swapped = store_->ReplaceWith(staged, keep_as, /*wait_ms=*/60000);
  agent_service_->registry().Discard();  // entries of the replaced registry
  if (!swapped.ok()) {
    agent_service_->SetRestoring(false);
    Metrics().ingest_paused.Set(health_->gate()->paused() ? 1 : 0);
    return refuse(swapped);
  }
  // 4. Everything that holds store state reloads from the restored store.
  std::vector<std::string> reload_errors;
  if (absl::Status st = incident_service_->ReloadFromStore(); !st.ok())
    reload_errors.push_back(absl::StrCat("incidents: ", st.message()));
  if (absl::Status st = ioc_feeds_->Load(); !st.ok())
    reload_errors.push_back(absl::StrCat("ioc feeds: ", st.message()));
  if (absl::Status st = sealer_->Reload(); !st.ok())
    reload_errors.push_back(absl::StrCat("seals: ", st.message()));
  agent_service_->SetRestoring(false);
  Metrics().ingest_paused.Set(health_->gate()->paused() ? 1 : 0);
  response.set_paused_ms(absl::ToInt64Milliseconds(absl::Now() - pause_start));
  if (absl::Status st = sealer_->SealNow(); !st.ok())
    reload_errors.push_back(absl::StrCat("seal: ", st.message()));
  response.set_dir(backup_dir.string());
  response.set_previous_dir(keep_as.string());
  response.set_took_ms(absl::ToInt64Milliseconds(absl::Now() - start));
  absl::Status audited = incident_service_->RecordAudit(actor, "store.restore", backup_dir.string(),
                                                        {{"previous_dir", keep_as.string()},
                                                         {"head_length", response.head_length()},
                                                         {"paused_ms", response.paused_ms()}});
  if (!audited.ok()) reload_errors.push_back(absl::StrCat("audit: ", audited.message()));
  spdlog::warn(
      "{} restored the store from {} (chain length {}); the previous database is kept in "
      "{}; ingest paused {} ms",
      actor, backup_dir.string(), response.head_length(), keep_as.string(), response.paused_ms());
  if (!reload_errors.empty()) {
    const std::string joined = absl::StrJoin(reload_errors, "; ");
    spdlog::error("restore: the store is restored but reloading failed: {}", joined);
    return absl::InternalError(
        absl::StrCat("the store was restored from ", backup_dir.string(), " (previous database in ",
                     keep_as.string(), ") but reloading failed: ", joined, "; restart the server"));
  }
  return response;
}

absl::StatusOr<std::unique_ptr<SiperServer>> SiperServer::Start(const ServerConfig& config) {
  std::unique_ptr<SiperServer> s(new SiperServer());
  s->config_ = config;
  SIPER_RETURN_IF_ERROR(EnsureDirectory(config.data_dir, 0750));
  SIPER_ASSIGN_OR_RETURN(s->pki_, EnsureDevPki(config.data_dir / "pki", config.server_names));

  storage::StoreOptions store_options;
  store_options.sync_writes = config.sync_writes;
  SIPER_ASSIGN_OR_RETURN(s->store_, storage::Store::Open(config.data_dir / "db", store_options));
  std::unique_ptr<TimestampClient> tsa;
  if (config.tsa.enabled()) {
    SIPER_ASSIGN_OR_RETURN(tsa, TimestampClient::Create(config.tsa));
    spdlog::info("chain seals are time-stamped by {}", config.tsa.url);
  }
  SIPER_ASSIGN_OR_RETURN(s->sealer_,
                         ChainSealer::Create(s->store_.get(), config.data_dir / "pki" / "chain.key",
                                             config.seal_interval_s, std::move(tsa)));
  s->maintenance_ =
      std::make_unique<MaintenanceThread>(s->store_.get(), RetentionFromConfig(config));
  s->maintenance_->Start();  // retention once now, then daily

  s->rules_dir_ = config.rules_dir.empty() ? DefaultRulesDir() : config.rules_dir;
  absl::Time compile_start = absl::Now();
  // A rule with an error is skipped and logged as an error, as Suricata does
  // by default: one bad file must not leave the municipality without detection.
  // A reload (below) refuses instead, because it has a running set to keep.
  rules::LoadOptions load_options = RuleLoadOptions(config);
  load_options.skip_errors = true;
  absl::StatusOr<std::shared_ptr<const rules::RuleSet>> rules =
      rules::RuleSet::Load(s->rules_dir_, load_options);
  if (!rules.ok()) {
    return absl::Status(rules.status().code(),
                        absl::StrCat("cannot load rules from ", s->rules_dir_.string(), ": ",
                                     rules.status().message()));
  }
  spdlog::info("loaded {} rules from {} in {}", (*rules)->rule_count(), s->rules_dir_.string(),
               absl::FormatDuration(absl::Now() - compile_start));
  for (const rules::RuleDiagnostic& skipped : (*rules)->skipped()) {
    if (skipped.status == rules::RuleDiagnostic::Status::kError) {
      spdlog::error("rule error, rule not loaded: {}", skipped.message);
    } else {
      spdlog::warn("rule skipped: {}: {}", skipped.path, skipped.message);
    }
  }
  for (const std::string& m : (*rules)->stats().cache_messages) spdlog::warn("rules: {}", m);
  s->live_rules_ = std::make_unique<rules::LiveRuleSet>(*rules);
  s->live_ioc_ = std::make_unique<rules::LiveIocSet>(nullptr);
  s->ioc_feeds_ = std::make_unique<IocFeeds>(s->store_.get(), s->live_ioc_.get(),
                                             config.data_dir / "cache" / "ioc");
  SIPER_RETURN_IF_ERROR(s->ioc_feeds_->Load());

  int workers = config.workers > 0
                    ? config.workers
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  IncidentServiceOptions incident_options;
  incident_options.config = config.incidents;
  // Passed deadlines are looked for as often as the health detectors run.
  incident_options.deadline_check_period = absl::Seconds(config.health.check_interval_s);
  incident_options.rule_rsit = RuleRsit(**rules);
  SIPER_ASSIGN_OR_RETURN(s->incident_service_,
                         IncidentServiceImpl::Create(s->store_.get(), std::move(incident_options)));

  s->ioc_feeds_->SetAuditHook(
      [incidents = s->incident_service_.get()](const std::string& actor, const std::string& action,
                                               const std::string& target, nlohmann::json after) {
        return incidents->RecordAudit(actor, action, target, std::move(after));
      });
  s->ingest_ = std::make_unique<IngestPipeline>(s->store_.get(), s->live_rules_.get(),
                                                s->live_ioc_.get(), workers);
  s->ingest_->SetStoredHook(
      [incidents = s->incident_service_.get()](const std::string& agent_id,
                                               const std::vector<storage::EventRecord>& records) {
        incidents->OnStored(agent_id, records);
      });
  SIPER_RETURN_IF_ERROR(s->ingest_->Start());
  SIPER_ASSIGN_OR_RETURN(s->health_, ServerHealth::Start(config, s->store_.get(), s->ingest_.get(),
                                                         s->incident_service_.get()));
  s->incident_service_->StartDeadlineTimer();

  AgentServiceOptions agent_options;
  agent_options.agent_cert_validity = absl::Seconds(config.agent_cert_validity_s);
  agent_options.gate = s->health_->gate();
  s->agent_service_ = std::make_unique<AgentServiceImpl>(s->store_.get(), s->ingest_.get(),
                                                         &s->pki_, agent_options);
  s->analyst_service_ = std::make_unique<AnalystServiceImpl>(
      s->store_.get(), AnalystServiceOptions{config.token_ttl_s, config.max_token_ttl_s});
  s->analyst_service_->SetChainSealer(s->sealer_.get());
  s->analyst_service_->SetIocFeeds(s->ioc_feeds_.get());
  s->analyst_service_->SetRulesReloader(
      [server = s.get()](const std::string& actor) { return server->ReloadRules(actor); });
  s->analyst_service_->SetRevokeHook(
      [agents = s->agent_service_.get()] { agents->AgentRevoked(); });
  s->analyst_service_->SetRestorer(
      [server = s.get()](const std::string& actor, const std::filesystem::path& dir) {
        return server->RestoreBackup(actor, dir);
      });

  // One TLS port. Client certificates are requested and, when presented,
  // verified against our CA (a certificate from any other CA fails the
  // handshake); calls other than Enroll then require one.
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = s->pki_.ca.cert_pem;
  tls.pem_key_cert_pairs.push_back({s->pki_.server.key_pem, s->pki_.server.cert_pem});

  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::SslServerCredentials(tls), &s->port_);
  builder.RegisterService(s->agent_service_.get());
  builder.RegisterService(s->analyst_service_.get());
  builder.RegisterService(s->incident_service_.get());
  s->user_service_ = std::make_unique<UserServiceImpl>(&s->pki_.ca);
  builder.RegisterService(s->user_service_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  // A second server on the same port must fail, not silently share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  s->grpc_server_ = builder.BuildAndStart();
  if (!s->grpc_server_ || s->port_ == 0) {
    s->ingest_->Stop();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen, " (address in use or not valid)"));
  }
  s->sealer_->Start();
  spdlog::info("siper-server {} listening on {} (port {}), data in {}", SIPER_VERSION,
               config.listen, s->port_, config.data_dir.string());
  return s;
}

absl::Status RestoreStore(const std::filesystem::path& backup_dir,
                          const std::filesystem::path& data_dir) {
  SIPER_RETURN_IF_ERROR(EnsureDirectory(data_dir, 0750));
  return storage::Store::Restore(backup_dir, data_dir / "db");
}

SiperServer::~SiperServer() { Shutdown(); }

void SiperServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_server_)
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (health_) health_->Stop();
  if (ingest_) ingest_->Stop();
  if (agent_service_) agent_service_->registry().Stop();  // writes the last last-seen updates
  if (incident_service_) incident_service_->Stop();
  if (maintenance_) maintenance_->Stop();
  if (sealer_) sealer_->Stop();  // seals the final head
  spdlog::info("siper-server stopped");
}

}  // namespace siper::server

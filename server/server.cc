#include "server/server.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status.h"

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
  absl::StatusOr<std::shared_ptr<const rules::RuleSet>> rules =
      rules::RuleSet::Load(s->rules_dir_, RuleLoadOptions(config));
  if (!rules.ok()) {
    return absl::Status(rules.status().code(),
                        absl::StrCat("cannot load rules from ", s->rules_dir_.string(), ": ",
                                     rules.status().message()));
  }
  spdlog::info("loaded {} rules from {} in {}", (*rules)->rule_count(), s->rules_dir_.string(),
               absl::FormatDuration(absl::Now() - compile_start));
  for (const rules::RuleDiagnostic& skipped : (*rules)->skipped()) {
    spdlog::warn("rule skipped: {}: {}", skipped.path, skipped.message);
  }
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
  if (incident_service_) incident_service_->Stop();
  if (maintenance_) maintenance_->Stop();
  if (sealer_) sealer_->Stop();  // seals the final head
  spdlog::info("siper-server stopped");
}

}  // namespace siper::server

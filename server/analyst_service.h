// AnalystService: what siperctl calls. It uses gRPC's synchronous API on
// purpose: each call streams straight out of a storage scan, and a blocking
// Write() is the simplest correct back-pressure for a reply that can be
// millions of events long.
#pragma once

#include <filesystem>
#include <functional>

#include "server/chain_sealer.h"
#include "server/ioc_feeds.h"
#include "server/storage/store.h"
#include "siper/v1/analyst_service.grpc.pb.h"

namespace siper::server {

struct AnalystServiceOptions {
  int64_t token_ttl_s = 3600;
  int64_t max_token_ttl_s = 7 * 24 * 3600;
};

class AnalystServiceImpl final : public siper::v1::AnalystService::Service {
 public:
  AnalystServiceImpl(storage::Store* store, AnalystServiceOptions options);

  grpc::Status ListAgents(grpc::ServerContext* context, const siper::v1::ListAgentsRequest* request,
                          grpc::ServerWriter<siper::v1::AgentInfo>* writer) override;
  grpc::Status SearchEvents(grpc::ServerContext* context,
                            const siper::v1::SearchEventsRequest* request,
                            grpc::ServerWriter<siper::v1::Event>* writer) override;
  grpc::Status ListAlerts(grpc::ServerContext* context, const siper::v1::ListAlertsRequest* request,
                          grpc::ServerWriter<siper::v1::Alert>* writer) override;
  grpc::Status CreateToken(grpc::ServerContext* context,
                           const siper::v1::CreateTokenRequest* request,
                           siper::v1::CreateTokenResponse* response) override;
  grpc::Status Verify(grpc::ServerContext* context, const siper::v1::VerifyRequest* request,
                      siper::v1::VerifyResponse* response) override;
  grpc::Status Backup(grpc::ServerContext* context, const siper::v1::BackupRequest* request,
                      siper::v1::BackupResponse* response) override;
  grpc::Status Restore(grpc::ServerContext* context, const siper::v1::RestoreRequest* request,
                       siper::v1::RestoreResponse* response) override;
  grpc::Status CountEvents(grpc::ServerContext* context,
                           const siper::v1::CountEventsRequest* request,
                           siper::v1::CountEventsResponse* response) override;
  grpc::Status RevokeAgent(grpc::ServerContext* context,
                           const siper::v1::RevokeAgentRequest* request,
                           siper::v1::RevokeAgentResponse* response) override;

  // IOC feeds and rule reload (analyst_ioc.cc).
  grpc::Status ImportIocFeed(grpc::ServerContext* context,
                             grpc::ServerReader<siper::v1::IocImportChunk>* reader,
                             siper::v1::IocImportResponse* response) override;
  grpc::Status ListIocFeeds(grpc::ServerContext* context,
                            const siper::v1::ListIocFeedsRequest* request,
                            grpc::ServerWriter<siper::v1::IocFeedInfo>* writer) override;
  grpc::Status RemoveIocFeed(grpc::ServerContext* context,
                             const siper::v1::RemoveIocFeedRequest* request,
                             siper::v1::RemoveIocFeedResponse* response) override;
  grpc::Status CheckIoc(grpc::ServerContext* context, const siper::v1::CheckIocRequest* request,
                        siper::v1::CheckIocResponse* response) override;
  grpc::Status ReloadRules(grpc::ServerContext* context,
                           const siper::v1::ReloadRulesRequest* request,
                           siper::v1::ReloadRulesResponse* response) override;

  // Verify checks seal signatures with this key; without one it reports seals unchecked.
  void SetChainSealer(ChainSealer* sealer) { sealer_ = sealer; }
  // Without these the IOC and reload calls answer UNIMPLEMENTED.
  void SetIocFeeds(IocFeeds* feeds) { ioc_feeds_ = feeds; }
  // Called with the admin's name.
  using RulesReloader =
      std::function<absl::StatusOr<siper::v1::ReloadRulesResponse>(const std::string& actor)>;
  void SetRulesReloader(RulesReloader reloader) { reload_rules_ = std::move(reloader); }
  // Online restore (SiperServer::RestoreBackup), called with the admin's name and the
  // backup directory. Without it Restore answers UNIMPLEMENTED.
  using Restorer = std::function<absl::StatusOr<siper::v1::RestoreResponse>(
      const std::string& actor, const std::filesystem::path& dir)>;
  void SetRestorer(Restorer restorer) { restore_ = std::move(restorer); }
  // Told after RevokeAgent stored a revocation, so the agent's open stream ends.
  void SetRevokeHook(std::function<void()> hook) { on_revoke_ = std::move(hook); }

 private:
  storage::Store* store_;
  AnalystServiceOptions options_;
  ChainSealer* sealer_ = nullptr;
  IocFeeds* ioc_feeds_ = nullptr;
  RulesReloader reload_rules_;
  Restorer restore_;
  std::function<void()> on_revoke_;
};

}  // namespace siper::server

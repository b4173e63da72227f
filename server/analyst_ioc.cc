// AnalystService: IOC feed calls and rule reload (the rest is analyst_service.cc).
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "server/analyst_service.h"
#include "server/auth.h"

namespace siper::server {
namespace {

// The largest feed file an import takes (USOM's list is about 2 MB; the JSON API's
// full dump about 60 MB).
constexpr size_t kMaxImportBytes = size_t{512} << 20;

grpc::Status Unimplemented(const char* what) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat(what, " is not available on this server"));
}

}  // namespace

grpc::Status AnalystServiceImpl::ImportIocFeed(
    grpc::ServerContext* context, grpc::ServerReader<siper::v1::IocImportChunk>* reader,
    siper::v1::IocImportResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAnalyst, pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (ioc_feeds_ == nullptr) return Unimplemented("IOC import");
  siper::v1::IocImportChunk chunk;
  siper::v1::IocImportHeader header;
  bool have_header = false;
  std::string text;
  while (reader->Read(&chunk)) {
    if (chunk.has_header()) {
      if (have_header) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "IOC import: the header came twice");
      }
      header = chunk.header();
      have_header = true;
    } else if (!have_header) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "IOC import: the first message must carry the header");
    }
    if (text.size() + chunk.data().size() > kMaxImportBytes) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("IOC import: the file is larger than ", kMaxImportBytes >> 20, " MiB"));
    }
    text.append(chunk.data());
  }
  if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  if (!have_header) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "IOC import: no header was sent");
  }
  absl::StatusOr<siper::v1::IocImportResponse> r =
      ioc_feeds_->Import(header, text, id->common_name);
  if (!r.ok()) return ToGrpc(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::ListIocFeeds(grpc::ServerContext* context,
                                              const siper::v1::ListIocFeedsRequest*,
                                              grpc::ServerWriter<siper::v1::IocFeedInfo>* writer) {
  absl::StatusOr<pki::Identity> id =
      RequireRole(*context, {pki::kRoleViewer, pki::kRoleAnalyst, pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (ioc_feeds_ == nullptr) return Unimplemented("IOC feeds");
  return ToGrpc(ioc_feeds_->List([context, writer](const siper::v1::IocFeedInfo& info) {
    return !context->IsCancelled() && writer->Write(info);
  }));
}

grpc::Status AnalystServiceImpl::RemoveIocFeed(grpc::ServerContext* context,
                                               const siper::v1::RemoveIocFeedRequest* request,
                                               siper::v1::RemoveIocFeedResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (ioc_feeds_ == nullptr) return Unimplemented("IOC feeds");
  absl::StatusOr<siper::v1::RemoveIocFeedResponse> r =
      ioc_feeds_->Remove(request->feed(), id->common_name);
  if (!r.ok()) return ToGrpc(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::CheckIoc(grpc::ServerContext* context,
                                          const siper::v1::CheckIocRequest* request,
                                          siper::v1::CheckIocResponse* response) {
  absl::StatusOr<pki::Identity> id =
      RequireRole(*context, {pki::kRoleViewer, pki::kRoleAnalyst, pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (ioc_feeds_ == nullptr) return Unimplemented("IOC check");
  if (request->value().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "IOC check: empty value");
  }
  *response = ioc_feeds_->Check(request->value());
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::ReloadRules(grpc::ServerContext* context,
                                             const siper::v1::ReloadRulesRequest*,
                                             siper::v1::ReloadRulesResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (!reload_rules_) return Unimplemented("rule reload");
  spdlog::info("rules: reload asked by {}", id->common_name);
  absl::StatusOr<siper::v1::ReloadRulesResponse> r = reload_rules_(id->common_name);
  if (!r.ok()) return ToGrpc(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

}  // namespace siper::server

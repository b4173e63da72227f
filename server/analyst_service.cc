#include "server/analyst_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/text.h"
#include "server/auth.h"

namespace siper::server {
namespace {

// Any human role may read; writing calls check their own roles.
absl::StatusOr<pki::Identity> RequireReader(const grpc::ServerContext& context) {
  return RequireRole(context, {pki::kRoleViewer, pki::kRoleAnalyst, pki::kRoleAdmin});
}

// Streams `sink`-fed messages; stops when the client goes away.
template <typename T>
std::function<bool(const T&)> WriterSink(grpc::ServerContext* context,
                                         grpc::ServerWriter<T>* writer) {
  return [context, writer](const T& message) {
    return !context->IsCancelled() && writer->Write(message);
  };
}

// A search cursor is the position of the page's last event (the store's), a '.', and a
// tag of the search's filters: agent, rule, level, text, fields and direction, not the
// times (a relative --since moves between pages, and narrowing the range while paging
// is fine). A position resumed under other filters or the other direction would skip
// or repeat events without a word; with the tag such a cursor is refused.
std::string SearchTag(const siper::v1::SearchEventsRequest& r) {
  std::vector<std::string> fields(r.field().begin(), r.field().end());
  std::sort(fields.begin(), fields.end());
  std::string text;
  for (std::string_view part :
       {std::string_view(r.agent_id()), std::string_view(r.rule_id()), std::string_view(r.level()),
        std::string_view(r.query()), std::string_view(r.newest_first() ? "newest" : "oldest")}) {
    absl::StrAppend(&text, part.size(), ":", absl::string_view(part.data(), part.size()), ";");
  }
  for (const std::string& f : fields) absl::StrAppend(&text, f.size(), ":", f, ";");
  return Sha256Hex(text).substr(0, 8);
}

// The store position of `cursor`, if it was printed by a search with these filters.
absl::StatusOr<std::string> CursorPosition(const siper::v1::SearchEventsRequest& r) {
  const std::string& cursor = r.cursor();
  const size_t dot = cursor.rfind('.');
  if (dot == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("cursor '", EscapeForTerminal(cursor),
                     "' is not a search cursor (POSITION.TAG, as printed after 'next cursor:')"));
  }
  if (cursor.substr(dot + 1) != SearchTag(r)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cursor '", EscapeForTerminal(cursor),
        "' belongs to another search: resume with the --agent, --rule, --level, --query, "
        "--field and --newest-first of the search that printed it (only --since, --until "
        "and --limit may change)"));
  }
  return cursor.substr(0, dot);
}

}  // namespace

AnalystServiceImpl::AnalystServiceImpl(storage::Store* store, AnalystServiceOptions options)
    : store_(store), options_(options) {}

grpc::Status AnalystServiceImpl::ListAgents(grpc::ServerContext* context,
                                            const siper::v1::ListAgentsRequest*,
                                            grpc::ServerWriter<siper::v1::AgentInfo>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  return ToGrpc(store_->ListAgents(WriterSink(context, writer)));
}

grpc::Status AnalystServiceImpl::SearchEvents(grpc::ServerContext* context,
                                              const siper::v1::SearchEventsRequest* request,
                                              grpc::ServerWriter<siper::v1::Event>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  storage::EventQuery q;
  q.since_ns = request->since_ns();
  q.until_ns = request->until_ns();
  q.agent_id = request->agent_id();
  q.rule_id = request->rule_id();
  q.text = request->query();
  q.limit = request->limit();
  q.newest_first = request->newest_first();
  if (!request->cursor().empty()) {
    absl::StatusOr<std::string> position = CursorPosition(*request);
    if (!position.ok()) return ToGrpc(position.status());
    q.cursor = *std::move(position);
  }
  q.min_level = request->level();
  for (const std::string& f : request->field()) {
    size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("field filter '", f, "' must be NAME=VALUE"));
    }
    q.fields[f.substr(0, eq)] = f.substr(eq + 1);
  }
  uint64_t sent = 0;
  siper::v1::Event last;
  auto sink = WriterSink(context, writer);
  absl::Status st = store_->SearchEvents(q, [&](const siper::v1::Event& e) {
    if (!sink(e)) return false;
    ++sent;
    if (q.limit > 0 && sent == q.limit) last = e;
    return true;
  });
  if (!st.ok()) return ToGrpc(st);
  // A full page: tell the client where the next one starts.
  if (q.limit > 0 && sent == q.limit) {
    absl::StatusOr<std::string> cursor = store_->EventCursor(last);
    if (cursor.ok()) {
      context->AddTrailingMetadata("siper-next-cursor",
                                   absl::StrCat(*cursor, ".", SearchTag(*request)));
    }
  }
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::CountEvents(grpc::ServerContext* context,
                                             const siper::v1::CountEventsRequest* request,
                                             siper::v1::CountEventsResponse* response) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  if (request->field().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "count needs a field name (--by)");
  }
  absl::flat_hash_map<std::string, uint64_t> counts;
  uint64_t events = 0;
  uint64_t missing = 0;
  // An indexed field is counted from the index keys; any other from the events.
  absl::StatusOr<std::optional<storage::FieldCount>> indexed = store_->CountIndexedField(
      request->field(), request->since_ns(), request->until_ns(), request->agent_id());
  if (!indexed.ok()) return ToGrpc(indexed.status());
  if (indexed->has_value()) {
    uint64_t with_field = 0;
    for (auto& [value, count] : (*indexed)->values) {
      with_field += count;
      counts.emplace(value, count);
    }
    events = (*indexed)->events;
    missing = events >= with_field ? events - with_field : 0;
  } else {
    storage::EventQuery q;
    q.since_ns = request->since_ns();
    q.until_ns = request->until_ns();
    q.agent_id = request->agent_id();
    absl::Status st = store_->SearchEvents(q, [&](const siper::v1::Event& e) {
      ++events;
      auto it = e.fields().find(request->field());
      if (it == e.fields().end()) {
        ++missing;
      } else {
        ++counts[it->second];
      }
      return !context->IsCancelled();
    });
    if (!st.ok()) return ToGrpc(st);
  }
  std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
  size_t top = request->top() > 0 ? request->top() : 10;
  auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  if (sorted.size() > top) {
    std::partial_sort(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(top), sorted.end(),
                      by_count);
    sorted.resize(top);
  } else {
    std::sort(sorted.begin(), sorted.end(), by_count);
  }
  for (const auto& [value, count] : sorted) {
    siper::v1::CountEventsResponse::Bucket* b = response->add_buckets();
    b->set_value(value);
    b->set_count(count);
  }
  response->set_events(events);
  response->set_missing(missing);
  response->set_distinct(counts.size());
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::ListAlerts(grpc::ServerContext* context,
                                            const siper::v1::ListAlertsRequest* request,
                                            grpc::ServerWriter<siper::v1::Alert>* writer) {
  if (auto id = RequireReader(*context); !id.ok()) return ToGrpc(id.status());
  storage::AlertQuery q;
  q.since_ns = request->since_ns();
  q.until_ns = request->until_ns();
  q.agent_id = request->agent_id();
  q.rule_id = request->rule_id();
  q.min_level = request->level();
  q.limit = request->limit();
  q.newest_first = request->newest_first();
  return ToGrpc(store_->ListAlerts(q, WriterSink(context, writer)));
}

grpc::Status AnalystServiceImpl::CreateToken(grpc::ServerContext* context,
                                             const siper::v1::CreateTokenRequest* request,
                                             siper::v1::CreateTokenResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  int64_t ttl_s = request->ttl_s() > 0 ? request->ttl_s() : options_.token_ttl_s;
  if (ttl_s > options_.max_token_ttl_s) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("token lifetime ", ttl_s, "s is longer than the allowed ",
                                     options_.max_token_ttl_s, "s"));
  }
  std::string token = RandomToken();
  int64_t expires = absl::ToUnixNanos(absl::Now() + absl::Seconds(ttl_s));
  if (absl::Status st = store_->PutToken(Sha256Hex(token), expires); !st.ok()) return ToGrpc(st);
  // The token itself is a secret: it is never logged, only its owner is.
  spdlog::info("{} created an enrollment token valid for {}s", id->common_name, ttl_s);
  response->set_token(token);
  response->set_expires_ns(expires);
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::Verify(grpc::ServerContext* context,
                                        const siper::v1::VerifyRequest* request,
                                        siper::v1::VerifyResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAnalyst, pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  // Seal first, so what was written up to now is covered by a signature too.
  if (sealer_ != nullptr) {
    if (absl::Status st = sealer_->SealNow(); !st.ok()) {
      spdlog::warn("verify: cannot seal the head first: {}", std::string(st.message()));
    }
  }
  absl::StatusOr<storage::VerifyReport> report = store_->Verify(request->since_ns());
  if (!report.ok()) return ToGrpc(report.status());
  response->set_ok(report->ok);
  response->set_chain_records(report->chain_records);
  response->set_events(report->events);
  response->set_alerts(report->alerts);
  response->set_partially_expired(report->partially_expired);
  // A --since after the newest record checks nothing; the head is still the chain's.
  storage::ChainHead head = report->head;
  if (report->ok && report->chain_records == 0) {
    absl::StatusOr<storage::ChainHead> current = store_->GetChainHead();
    if (current.ok()) head = *current;
  }
  response->set_head_length(head.length);
  response->set_head_hash(head.hash);
  response->set_head_time_ns(head.time_ns);
  if (!report->ok) {
    response->set_problem(report->problem);
    response->set_chain_index(report->chain_index);
    response->set_from_ns(report->from_ns);
    response->set_until_ns(report->until_ns);
    response->set_agent_id(report->agent_id);
    response->set_first_seq(report->first_seq);
    response->set_last_seq(report->last_seq);
    response->set_message(report->message);
  }
  if (sealer_ != nullptr) {
    absl::StatusOr<SealReport> seals = sealer_->CheckSeals();
    if (!seals.ok()) return ToGrpc(seals.status());
    response->set_seals(seals->seals);
    response->set_timestamps(seals->timestamps);
    response->set_timestamps_unchecked(seals->timestamps_unchecked);
    response->set_newest_timestamp_ns(seals->newest_timestamp_ns);
    response->set_newest_timestamp_length(seals->newest_timestamp_length);
    if (!seals->ok && report->ok) {
      response->set_ok(false);
      response->set_problem(seals->problem);
      response->set_chain_index(seals->bad_length > 0 ? seals->bad_length - 1 : 0);
      response->set_message(seals->message);
    }
  }
  spdlog::info("{} verified the chain: {}", id->common_name,
               response->ok() ? std::string("ok") : response->message());
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::Backup(grpc::ServerContext* context,
                                        const siper::v1::BackupRequest* request,
                                        siper::v1::BackupResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  std::filesystem::path dir(request->dir());
  if (!dir.is_absolute()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("backup directory '", request->dir(),
                                     "' must be an absolute path on the server host"));
  }
  // Checked here so the answer names the problem: RocksDB's checkpoint reports a missing
  // parent as an I/O error, which became UNAVAILABLE ("cannot reach the server").
  std::error_code ec;
  const std::filesystem::path parent = dir.lexically_normal().parent_path();
  if (!std::filesystem::is_directory(parent, ec)) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("backup: ", EscapeForTerminal(parent.string()),
                                     " is not a directory on the server host; create it first "
                                     "(the backup directory itself must not exist)"));
  }
  if (sealer_ != nullptr) {
    if (absl::Status st = sealer_->SealNow(); !st.ok()) return ToGrpc(st);
  }
  if (absl::Status st = store_->Backup(dir); !st.ok()) {
    spdlog::warn("{}: backup to {} failed: {}", id->common_name, EscapeForTerminal(dir.string()),
                 st.ToString());
    // The server is up and answered: an I/O error of the target is not "unavailable".
    if (absl::IsUnavailable(st)) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("backup to ", EscapeForTerminal(dir.string()),
                                       " failed on the server host: ", st.message()));
    }
    return ToGrpc(st);
  }
  absl::StatusOr<storage::ChainHead> head = store_->GetChainHead();
  if (head.ok()) response->set_head_length(head->length);
  response->set_dir(dir.string());
  spdlog::info("{} backed up the store to {}", id->common_name, dir.string());
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::Restore(grpc::ServerContext* context,
                                         const siper::v1::RestoreRequest* request,
                                         siper::v1::RestoreResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  if (!restore_) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "restore is not available");
  std::filesystem::path dir(request->dir());
  if (!dir.is_absolute()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("backup directory '", EscapeForTerminal(request->dir()),
                                     "' must be an absolute path on the server host"));
  }
  absl::StatusOr<siper::v1::RestoreResponse> r = restore_(id->common_name, dir.lexically_normal());
  if (!r.ok()) {
    spdlog::warn("{}: restore of {} refused: {}", id->common_name, EscapeForTerminal(dir.string()),
                 r.status().ToString());
    return ToGrpc(r.status());
  }
  *response = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AnalystServiceImpl::RevokeAgent(grpc::ServerContext* context,
                                             const siper::v1::RevokeAgentRequest* request,
                                             siper::v1::RevokeAgentResponse* response) {
  absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAdmin});
  if (!id.ok()) return ToGrpc(id.status());
  absl::StatusOr<std::optional<siper::v1::AgentInfo>> agent = store_->GetAgent(request->agent_id());
  if (!agent.ok()) return ToGrpc(agent.status());
  if (!agent->has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no agent '", request->agent_id(), "' (see agents list)"));
  }
  response->set_already_revoked((*agent)->revoked());
  (*agent)->set_revoked(true);
  if (absl::Status st = store_->PutAgent(**agent); !st.ok()) return ToGrpc(st);
  if (on_revoke_) on_revoke_();
  spdlog::warn("{} revoked agent {}", id->common_name, request->agent_id());
  return grpc::Status::OK;
}

}  // namespace siper::server

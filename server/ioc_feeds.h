// IOC feeds on the server: imports replace one feed's entries in the store
// (Store::ReplaceIocFeed) and report what changed; the IOC set that ingest
// matches with is rebuilt from every stored feed at start and after each
// import or removal, and published through rules::LiveIocSet, so each ingest
// worker re-creates its IOC scanner between two events.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "rules/ioc.h"
#include "rules/live_rules.h"
#include "server/storage/store.h"
#include "siper/v1/analyst_service.pb.h"

namespace siper::server {

// "usom", "usom-json", "hash", "value", "plain" (what `siperctl ioc import --format` takes).
[[nodiscard]] absl::StatusOr<rules::IocFeedFormat> ParseIocFeedFormat(std::string_view name);
std::string_view IocFeedFormatName(rules::IocFeedFormat format);
// USOM's two shapes told apart by content: a JSON document or the plain list.
rules::IocFeedFormat GuessUsomFormat(std::string_view text);

class IocFeeds {
 public:
  // `store` and `live` must outlive this object. With `cache_dir`, the compiled
  // free-text literal database is kept there (rules/ioc.h, IocSetOptions::cache_dir),
  // so a restart with unchanged feeds does not recompile it.
  IocFeeds(storage::Store* store, rules::LiveIocSet* live, std::filesystem::path cache_dir = {});

  // Reads every stored feed and publishes the IOC set built from them.
  [[nodiscard]] absl::Status Load();

  // Records an import or removal (who, what, counts) in the audit trail. The
  // import has happened when it is called; a failure is reported to the caller.
  using AuditHook = std::function<absl::Status(const std::string& actor, const std::string& action,
                                               const std::string& target, nlohmann::json after)>;
  void SetAuditHook(AuditHook hook) { audit_ = std::move(hook); }

  // Parses `text` as the header says, replaces the feed's stored entries, then
  // rebuilds and publishes the IOC set. A file with no valid indicator is
  // refused (the stored feed is kept): use Remove to empty a feed.
  [[nodiscard]] absl::StatusOr<siper::v1::IocImportResponse> Import(
      const siper::v1::IocImportHeader& header, std::string_view text, const std::string& actor);
  [[nodiscard]] absl::StatusOr<siper::v1::RemoveIocFeedResponse> Remove(const std::string& feed,
                                                                        const std::string& actor);
  [[nodiscard]] absl::Status List(
      const std::function<bool(const siper::v1::IocFeedInfo&)>& sink) const;
  siper::v1::CheckIocResponse Check(std::string_view value) const;

 private:
  // Builds the IOC set from entries_ and publishes it; returns its generation.
  absl::StatusOr<uint64_t> PublishLocked();

  storage::Store* store_;
  rules::LiveIocSet* live_;
  std::filesystem::path cache_dir_;
  AuditHook audit_;
  std::mutex mu_;  // one import or removal at a time
  // Every stored feed's entries, as last stored (guarded by mu_).
  std::map<std::string, std::vector<rules::IocEntry>> entries_;
};

}  // namespace siper::server

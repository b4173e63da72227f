#include "server/ioc_feeds.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace siper::server {
namespace {

constexpr size_t kMaxFeedName = 64;

absl::Status CheckFeedName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("an IOC feed needs a name (--feed)");
  if (name.size() > kMaxFeedName) {
    return absl::InvalidArgumentError(
        absl::StrCat("IOC feed name is longer than ", kMaxFeedName, " characters"));
  }
  for (char c : name) {
    // Feed names are joined with "," in threat.feed.name, so no commas (or anything odd).
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' || c == '_' || c == '.')) {
      return absl::InvalidArgumentError(absl::StrCat(
          "IOC feed name '", std::string(name),
          "' may hold only lower-case letters, digits, '-', '_' and '.' (e.g. usom, c2-list)"));
    }
  }
  return absl::OkStatus();
}

siper::v1::IocEntry ToProto(const rules::IocEntry& e) {
  siper::v1::IocEntry p;
  p.set_value(e.value);
  p.set_kind(std::string(rules::IocKindName(e.kind)));
  p.set_category(e.category);
  p.set_code(e.code);
  p.set_confidence(e.confidence);
  p.set_criticality(e.criticality);
  p.set_comment(e.comment);
  return p;
}

bool FromProto(std::string_view feed, const siper::v1::IocEntry& p, rules::IocEntry* e) {
  if (!rules::ParseIocKind(p.kind(), &e->kind)) return false;
  e->value = p.value();
  e->feed = std::string(feed);
  e->category = p.category();
  e->code = p.code();
  e->confidence = p.confidence();
  e->criticality = p.criticality();
  e->comment = p.comment();
  return true;
}

siper::v1::IocHitInfo HitToProto(const rules::IocHit& h) {
  siper::v1::IocHitInfo p;
  p.set_feed(h.feed);
  p.set_entry(h.entry);
  p.set_kind(std::string(rules::IocKindName(h.kind)));
  p.set_category(h.category);
  p.set_confidence(h.confidence);
  p.set_criticality(h.criticality);
  p.set_comment(h.comment);
  p.set_matched(h.matched);
  return p;
}

}  // namespace

absl::StatusOr<rules::IocFeedFormat> ParseIocFeedFormat(std::string_view name) {
  if (name == "usom") return rules::IocFeedFormat::kUsomList;
  if (name == "usom-json") return rules::IocFeedFormat::kUsomJson;
  if (name == "hash") return rules::IocFeedFormat::kHashList;
  if (name == "value") return rules::IocFeedFormat::kValueList;
  if (name == "plain") return rules::IocFeedFormat::kPlainList;
  return absl::InvalidArgumentError(absl::StrCat("unknown IOC feed format '", std::string(name),
                                                 "' (usom, usom-json, hash, value or plain)"));
}

std::string_view IocFeedFormatName(rules::IocFeedFormat format) {
  switch (format) {
    case rules::IocFeedFormat::kUsomList:
      return "usom";
    case rules::IocFeedFormat::kUsomJson:
      return "usom-json";
    case rules::IocFeedFormat::kHashList:
      return "hash";
    case rules::IocFeedFormat::kValueList:
      return "value";
    case rules::IocFeedFormat::kPlainList:
      return "plain";
  }
  return "?";
}

rules::IocFeedFormat GuessUsomFormat(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' || c == '[' ? rules::IocFeedFormat::kUsomJson : rules::IocFeedFormat::kUsomList;
  }
  return rules::IocFeedFormat::kUsomList;
}

IocFeeds::IocFeeds(storage::Store* store, rules::LiveIocSet* live, std::filesystem::path cache_dir)
    : store_(store), live_(live), cache_dir_(std::move(cache_dir)) {}

absl::Status IocFeeds::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
  uint64_t bad = 0;
  SIPER_RETURN_IF_ERROR(
      store_->ListIocEntries("", [&](std::string_view feed, const siper::v1::IocEntry& p) {
        rules::IocEntry e;
        if (FromProto(feed, p, &e)) {
          entries_[std::string(feed)].push_back(std::move(e));
        } else {
          ++bad;
        }
        return true;
      }));
  if (bad > 0) spdlog::warn("ioc: {} stored entries have an unknown kind and are ignored", bad);
  absl::StatusOr<uint64_t> gen = PublishLocked();
  return gen.status();
}

absl::StatusOr<uint64_t> IocFeeds::PublishLocked() {
  const absl::Time start = absl::Now();
  rules::IocSetBuilder builder;
  size_t rejected = 0;
  for (const auto& [feed, entries] : entries_) {
    for (const rules::IocEntry& e : entries) {
      if (!builder.AddEntry(e)) ++rejected;
    }
  }
  if (rejected > 0) spdlog::warn("ioc: {} stored entries were not valid and are ignored", rejected);
  std::shared_ptr<const rules::IocSet> set;
  if (builder.size() > 0) {
    rules::IocSetOptions options;
    options.cache_dir = cache_dir_;
    absl::StatusOr<std::shared_ptr<const rules::IocSet>> built = builder.Build(options);
    if (!built.ok()) return built.status();
    set = *std::move(built);
    const rules::IocSetStats stats = set->stats();
    if (!stats.literal_cache_message.empty()) spdlog::warn("ioc: {}", stats.literal_cache_message);
    if (stats.literal_cache == rules::IocCacheOutcome::kHit) {
      spdlog::info("ioc: literal database ({} patterns) read from the cache",
                   stats.literal_patterns);
    }
  }
  const uint64_t gen = live_->Swap(std::move(set));
  spdlog::info("ioc: {} entries from {} feeds live as generation {} (built in {})", builder.size(),
               entries_.size(), gen, absl::FormatDuration(absl::Now() - start));
  return gen;
}

absl::StatusOr<siper::v1::IocImportResponse> IocFeeds::Import(
    const siper::v1::IocImportHeader& header, std::string_view text, const std::string& actor) {
  SIPER_RETURN_IF_ERROR(CheckFeedName(header.feed()));
  const std::string file = header.file_name().empty() ? "(input)" : header.file_name();
  rules::IocFeedFormat format;
  if (header.format().empty()) {
    if (header.feed() != "usom") {
      return absl::InvalidArgumentError(
          "the feed format is required (usom, usom-json, hash, value or plain); only the feed "
          "'usom' has its format guessed");
    }
    format = GuessUsomFormat(text);
  } else {
    SIPER_ASSIGN_OR_RETURN(format, ParseIocFeedFormat(header.format()));
  }
  rules::IocFeedOptions options;
  options.name = header.feed();
  options.category = header.category();
  if (header.has_confidence()) {
    if (header.confidence() < 0 || header.confidence() > 100) {
      return absl::InvalidArgumentError(
          absl::StrCat("confidence ", header.confidence(), " is not within 0..100"));
    }
    options.confidence = header.confidence();
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": the file is empty; nothing imported (to empty a feed, remove it)"));
  }
  rules::IocSetBuilder builder;
  absl::StatusOr<rules::IocImportStats> stats = builder.ImportText(format, text, options);
  if (!stats.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", stats.status().message()));
  }
  if (builder.size() == 0) {
    std::string samples;
    for (const std::string& s : stats->invalid_samples) absl::StrAppend(&samples, "\n  ", s);
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": no valid indicator in ", stats->invalid, " lines or records as format '",
        std::string(IocFeedFormatName(format)), "'; the stored feed is unchanged", samples));
  }
  std::vector<siper::v1::IocEntry> protos;
  protos.reserve(builder.size());
  siper::v1::IocFeedInfo info;
  info.set_name(header.feed());
  info.set_format(std::string(IocFeedFormatName(format)));
  info.set_category(header.category());
  info.set_confidence(options.confidence);
  info.set_imported_ns(absl::ToUnixNanos(absl::Now()));
  info.set_imported_by(actor);
  info.set_entries(builder.size());
  info.set_file_name(header.file_name());
  info.set_file_bytes(text.size());
  for (const rules::IocEntry& e : builder.entries()) {
    protos.push_back(ToProto(e));
    ++(*info.mutable_entries_by_kind())[std::string(rules::IocKindName(e.kind))];
  }

  std::lock_guard<std::mutex> lock(mu_);
  SIPER_ASSIGN_OR_RETURN(storage::IocFeedDiff diff, store_->ReplaceIocFeed(info, protos));
  entries_[header.feed()] = builder.entries();
  siper::v1::IocImportResponse r;
  r.set_feed(header.feed());
  r.set_format(info.format());
  r.set_new_entries(diff.added);
  r.set_updated(diff.updated);
  r.set_removed(diff.removed);
  r.set_unchanged(diff.unchanged);
  r.set_invalid(stats->invalid);
  r.set_duplicate(stats->duplicate);
  for (const std::string& s : stats->invalid_samples) r.add_invalid_samples(s);
  *r.mutable_entries_by_kind() = info.entries_by_kind();
  r.set_entries(builder.size());
  uint64_t total = 0;
  for (const auto& [feed, entries] : entries_) total += entries.size();
  r.set_total_entries(total);
  spdlog::info(
      "ioc: {} imported feed '{}' ({}, {}): {} new, {} updated, {} removed, {} "
      "unchanged, {} invalid",
      actor, header.feed(), info.format(), file, diff.added, diff.updated, diff.removed,
      diff.unchanged, stats->invalid);
  absl::StatusOr<uint64_t> gen = PublishLocked();
  if (!gen.ok()) {
    return absl::Status(
        gen.status().code(),
        absl::StrCat("feed '", header.feed(), "' is stored, but the IOC set could not be rebuilt: ",
                     gen.status().message()));
  }
  r.set_ioc_generation(*gen);
  if (audit_) {
    nlohmann::json after = {{"format", info.format()},   {"file", header.file_name()},
                            {"bytes", text.size()},      {"entries", builder.size()},
                            {"new", diff.added},         {"updated", diff.updated},
                            {"removed", diff.removed},   {"unchanged", diff.unchanged},
                            {"invalid", stats->invalid}, {"duplicate", stats->duplicate}};
    SIPER_RETURN_IF_ERROR(audit_(actor, "ioc.import", header.feed(), std::move(after)));
  }
  return r;
}

absl::StatusOr<siper::v1::RemoveIocFeedResponse> IocFeeds::Remove(const std::string& feed,
                                                                  const std::string& actor) {
  SIPER_RETURN_IF_ERROR(CheckFeedName(feed));
  std::lock_guard<std::mutex> lock(mu_);
  SIPER_ASSIGN_OR_RETURN(uint64_t removed, store_->RemoveIocFeed(feed));
  entries_.erase(feed);
  siper::v1::RemoveIocFeedResponse r;
  r.set_removed(removed);
  SIPER_ASSIGN_OR_RETURN(uint64_t gen, PublishLocked());
  r.set_ioc_generation(gen);
  if (audit_) {
    SIPER_RETURN_IF_ERROR(audit_(actor, "ioc.remove", feed, {{"removed", removed}}));
  }
  return r;
}

absl::Status IocFeeds::List(const std::function<bool(const siper::v1::IocFeedInfo&)>& sink) const {
  return store_->ListIocFeeds(sink);
}

siper::v1::CheckIocResponse IocFeeds::Check(std::string_view raw) const {
  std::string value(raw);
  while (!value.empty() && absl::ascii_isspace(static_cast<unsigned char>(value.back())))
    value.pop_back();
  while (!value.empty() && absl::ascii_isspace(static_cast<unsigned char>(value.front())))
    value.erase(value.begin());
  siper::v1::CheckIocResponse r;
  r.set_value(value);
  auto [set, gen] = live_->Snapshot();
  r.set_ioc_generation(gen);
  const bool hex = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return absl::ascii_isxdigit(static_cast<unsigned char>(c));
  });
  unsigned char addr[16];
  std::string_view how;
  if (hex && (value.size() == 32 || value.size() == 40 || value.size() == 64)) {
    how = "hash";
  } else if (inet_pton(AF_INET, value.c_str(), addr) == 1 ||
             inet_pton(AF_INET6, value.c_str(), addr) == 1) {
    how = "ip";
  } else if (value.find('/') != std::string::npos || value.find('?') != std::string::npos) {
    how = "url";
  } else {
    how = "domain";
  }
  r.set_looked_up_as(std::string(how));
  if (set == nullptr || value.empty()) return r;
  std::vector<rules::IocHit> hits;
  if (how == "hash") {
    set->LookupHash(value, "value", &hits);
  } else if (how == "ip") {
    set->LookupIp(value, "value", &hits);
  } else if (how == "url") {
    set->LookupUrl(value, "value", &hits);
  } else {
    set->LookupDomain(value, "value", &hits);
  }
  rules::ThreatFields(&hits);  // orders them: most confident first
  for (const rules::IocHit& h : hits) *r.add_hits() = HitToProto(h);
  return r;
}

}  // namespace siper::server

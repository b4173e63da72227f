// IOC feeds in the store: feed descriptions in `ioc_feeds`, entries in
// `ioc_entries` keyed by feed, kind and value (keys.h). Not part of the event
// hash chain: imports are recorded in the incident audit trail instead.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/key_codec.h"
#include "common/status.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "server/storage/keys.h"
#include "server/storage/store.h"
#include "server/storage/store_impl.h"

namespace siper::storage {

using internal::AsSlice;
using internal::Av;
using internal::FromRocks;
using internal::kCfNames;
using internal::KeyRange;
using internal::ParseValue;
using keycodec::ToHex;

namespace {

// Deterministic bytes, so an unchanged entry compares equal to what is stored.
std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::Status CheckFeedName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("storage: IOC feed without a name");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<IocFeedDiff> Store::ReplaceIocFeed(const siper::v1::IocFeedInfo& info,
                                                  const std::vector<siper::v1::IocEntry>& entries) {
  const auto guard = Shared();
  SIPER_RETURN_IF_ERROR(CheckFeedName(info.name()));
  std::lock_guard<std::mutex> lock(impl_->ioc_mu());
  // The new list by key (a repeat keeps the last).
  std::map<std::string, std::string> next;
  for (const siper::v1::IocEntry& e : entries) {
    if (e.kind().empty() || e.value().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage: IOC entry of feed '", Av(info.name()), "' without kind or value"));
    }
    next[keys::IocEntryKey(info.name(), e.kind(), e.value())] = Serialize(e);
  }
  IocFeedDiff diff;
  rocksdb::WriteBatch batch;
  const std::string prefix = keys::IocFeedPrefix(info.name());
  SIPER_RETURN_IF_ERROR(
      impl_->Scan(internal::kIocEntries, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)},
                  /*reverse=*/false, nullptr,
                  [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                    auto it = next.find(std::string(key));
                    if (it == next.end()) {
                      ++diff.removed;
                      SIPER_RETURN_IF_ERROR(
                          FromRocks(batch.Delete(impl_->cf(internal::kIocEntries), AsSlice(key)),
                                    "prepare IOC entry delete"));
                      return true;
                    }
                    if (it->second == value) {
                      ++diff.unchanged;
                    } else {
                      ++diff.updated;
                      SIPER_RETURN_IF_ERROR(FromRocks(
                          batch.Put(impl_->cf(internal::kIocEntries), AsSlice(key), it->second),
                          "prepare IOC entry update"));
                    }
                    next.erase(it);
                    return true;
                  }));
  for (const auto& [key, value] : next) {
    ++diff.added;
    SIPER_RETURN_IF_ERROR(
        FromRocks(batch.Put(impl_->cf(internal::kIocEntries), key, value), "prepare IOC entry"));
  }
  SIPER_RETURN_IF_ERROR(
      FromRocks(batch.Put(impl_->cf(internal::kIocFeeds), AsSlice(info.name()), Serialize(info)),
                "prepare IOC feed"));
  SIPER_RETURN_IF_ERROR(FromRocks(
      impl_->db()->Write(Impl::SyncedWriteOpts(), &batch),
      absl::StrCat("replace IOC feed '", Av(info.name()), "' (", entries.size(), " entries)")));
  return diff;
}

absl::StatusOr<uint64_t> Store::RemoveIocFeed(std::string_view name) {
  const auto guard = Shared();
  SIPER_RETURN_IF_ERROR(CheckFeedName(name));
  std::lock_guard<std::mutex> lock(impl_->ioc_mu());
  SIPER_ASSIGN_OR_RETURN(std::optional<std::string> feed,
                         impl_->Get(internal::kIocFeeds, name, nullptr));
  if (!feed.has_value()) {
    return absl::NotFoundError(absl::StrCat("no IOC feed named '", Av(name), "'"));
  }
  uint64_t removed = 0;
  rocksdb::WriteBatch batch;
  const std::string prefix = keys::IocFeedPrefix(name);
  SIPER_RETURN_IF_ERROR(impl_->Scan(
      internal::kIocEntries, KeyRange{prefix, keycodec::PrefixSuccessor(prefix)},
      /*reverse=*/false, nullptr,
      [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        ++removed;
        SIPER_RETURN_IF_ERROR(FromRocks(
            batch.Delete(impl_->cf(internal::kIocEntries), AsSlice(key)), "prepare IOC delete"));
        return true;
      }));
  SIPER_RETURN_IF_ERROR(FromRocks(batch.Delete(impl_->cf(internal::kIocFeeds), AsSlice(name)),
                                  "prepare IOC feed delete"));
  SIPER_RETURN_IF_ERROR(FromRocks(impl_->db()->Write(Impl::SyncedWriteOpts(), &batch),
                                  absl::StrCat("remove IOC feed '", Av(name), "'")));
  return removed;
}

absl::Status Store::ListIocFeeds(
    const std::function<bool(const siper::v1::IocFeedInfo&)>& sink) const {
  const auto guard = Shared();
  return impl_->Scan(
      internal::kIocFeeds, KeyRange{}, /*reverse=*/false, nullptr,
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        siper::v1::IocFeedInfo info;
        SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[internal::kIocFeeds], key, &info));
        return sink(info);
      });
}

absl::Status Store::ListIocEntries(
    std::string_view feed,
    const std::function<bool(std::string_view feed, const siper::v1::IocEntry&)>& sink) const {
  const auto guard = Shared();
  KeyRange range;
  if (!feed.empty()) {
    range.lower = keys::IocFeedPrefix(feed);
    range.upper = keycodec::PrefixSuccessor(range.lower);
  }
  return impl_->Scan(
      internal::kIocEntries, range, /*reverse=*/false, nullptr,
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        keycodec::KeyReader r(key);
        std::string_view name;
        if (!r.ReadLengthPrefixed(&name)) {
          return absl::DataLossError(absl::StrCat("storage: malformed key ", ToHex(key),
                                                  " in column family '",
                                                  kCfNames[internal::kIocEntries], "'"));
        }
        siper::v1::IocEntry e;
        SIPER_RETURN_IF_ERROR(ParseValue(value, kCfNames[internal::kIocEntries], key, &e));
        return sink(name, e);
      });
}

}  // namespace siper::storage

// IOC feeds in the store: an import replaces one feed's entries and reports
// what changed (new, updated, removed, unchanged); other feeds are untouched;
// everything survives a reopen; removal drops the feed and its entries.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/storage/store_fixture.h"

namespace siper::storage {
namespace {

using testutil::StoreTest;

siper::v1::IocEntry Entry(const std::string& value, const std::string& kind,
                          const std::string& category = "phishing", int confidence = 50) {
  siper::v1::IocEntry e;
  e.set_value(value);
  e.set_kind(kind);
  e.set_category(category);
  e.set_confidence(confidence);
  return e;
}

siper::v1::IocFeedInfo Info(const std::string& name, uint64_t entries) {
  siper::v1::IocFeedInfo info;
  info.set_name(name);
  info.set_format("usom");
  info.set_entries(entries);
  info.set_imported_by("admin");
  return info;
}

class IocFeedStoreTest : public StoreTest {
 protected:
  // feed -> "kind:value:category:confidence" of every stored entry, in key order.
  std::map<std::string, std::vector<std::string>> Entries(const std::string& feed = "") {
    std::map<std::string, std::vector<std::string>> out;
    absl::Status s =
        store_->ListIocEntries(feed, [&](std::string_view name, const siper::v1::IocEntry& e) {
          out[std::string(name)].push_back(e.kind() + ":" + e.value() + ":" + e.category() + ":" +
                                           std::to_string(e.confidence()));
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }
  std::vector<std::string> Feeds() {
    std::vector<std::string> out;
    EXPECT_TRUE(store_
                    ->ListIocFeeds([&](const siper::v1::IocFeedInfo& f) {
                      out.push_back(f.name() + "/" + std::to_string(f.entries()));
                      return true;
                    })
                    .ok());
    return out;
  }
};

TEST_F(IocFeedStoreTest, ReplaceCountsNewUpdatedRemovedUnchanged) {
  auto d = store_->ReplaceIocFeed(
      Info("usom", 3), {Entry("evil.example.com", "domain"), Entry("bad.example.net/x", "url"),
                        Entry("192.0.2.1", "ipv4")});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->added, 3u);
  EXPECT_EQ(d->updated + d->removed + d->unchanged, 0u);
  ASSERT_TRUE(
      store_->ReplaceIocFeed(Info("c2", 1), {Entry("evil.example.com", "domain", "c2")}).ok());

  // Second import of usom: one kept, one changed category, one gone, two new.
  d = store_->ReplaceIocFeed(
      Info("usom", 4), {Entry("evil.example.com", "domain"), Entry("192.0.2.1", "ipv4", "malware"),
                        Entry("new.example.org", "domain"), Entry("203.0.113.0/24", "cidr")});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->added, 2u);
  EXPECT_EQ(d->updated, 1u);
  EXPECT_EQ(d->removed, 1u);
  EXPECT_EQ(d->unchanged, 1u);

  // The same list again: nothing changes.
  d = store_->ReplaceIocFeed(
      Info("usom", 4),
      {Entry("203.0.113.0/24", "cidr"), Entry("new.example.org", "domain"),
       Entry("192.0.2.1", "ipv4", "malware"), Entry("evil.example.com", "domain")});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->unchanged, 4u);
  EXPECT_EQ(d->added + d->updated + d->removed, 0u);

  Reopen();
  auto all = Entries();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all["c2"], std::vector<std::string>{"domain:evil.example.com:c2:50"});
  // Key order: the kind is length-prefixed, so four-letter kinds come first.
  EXPECT_EQ(all["usom"],
            (std::vector<std::string>{
                "cidr:203.0.113.0/24:phishing:50", "ipv4:192.0.2.1:malware:50",
                "domain:evil.example.com:phishing:50", "domain:new.example.org:phishing:50"}));
  // One feed's range only; "usom" is not a prefix match for "usom2".
  ASSERT_TRUE(store_->ReplaceIocFeed(Info("usom2", 1), {Entry("x.example.com", "domain")}).ok());
  EXPECT_EQ(Entries("usom").size(), 1u);
  EXPECT_EQ(Entries("usom")["usom"].size(), 4u);
  EXPECT_EQ(Feeds(), (std::vector<std::string>{"c2/1", "usom/4", "usom2/1"}));
}

TEST_F(IocFeedStoreTest, RemoveDropsTheFeedAndOnlyIt) {
  ASSERT_TRUE(store_
                  ->ReplaceIocFeed(Info("a", 2), {Entry("a.example.com", "domain"),
                                                  Entry("b.example.com", "domain")})
                  .ok());
  ASSERT_TRUE(store_->ReplaceIocFeed(Info("b", 1), {Entry("a.example.com", "domain")}).ok());
  auto removed = store_->RemoveIocFeed("a");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ(Feeds(), std::vector<std::string>{"b/1"});
  EXPECT_EQ(Entries().count("a"), 0u);
  EXPECT_EQ(store_->RemoveIocFeed("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->RemoveIocFeed("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IocFeedStoreTest, BadEntriesAreRefusedAndNothingIsWritten) {
  ASSERT_TRUE(store_->ReplaceIocFeed(Info("a", 1), {Entry("a.example.com", "domain")}).ok());
  auto d = store_->ReplaceIocFeed(Info("a", 1), {Entry("", "domain")});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Entries()["a"], std::vector<std::string>{"domain:a.example.com:phishing:50"});
}

}  // namespace
}  // namespace siper::storage

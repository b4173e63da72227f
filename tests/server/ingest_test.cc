// The ingest pipeline with the default rule set and a real store: FIM events
// are matched by the same engine as log lines (rules/fim.h), and a baseline
// observation is stored without an alert.
#include "server/ingest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <map>

#include "server/storage/store.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

constexpr char kEicar[] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
constexpr char kSudoersChanged[] = "sudo rules changed (/etc/sudoers, /etc/sudoers.d)";
constexpr char kMalwareTest[] = "Anti-malware test file (EICAR) written to disk";

class IngestFimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/siper-ingest-unit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto store = storage::Store::Open(dir_ / "db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto rules = rules::RuleSet::Load(fs::path(SIPER_SOURCE_DIR) / "rules/ruleset");
    ASSERT_TRUE(rules.ok()) << rules.status();
    rules_ = *rules;
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
  std::shared_ptr<const rules::RuleSet> rules_;
};

siper::v1::Event FileEvent(uint64_t seq, const std::string& path, siper::v1::FileChange change,
                           uint32_t mode, const std::string& sha256) {
  siper::v1::Event e;
  e.set_agent_id("pc-17");
  e.set_seq(seq);
  e.set_agent_time_ns(1'795'856'520'000'000'000 + static_cast<int64_t>(seq) * 1'000'000'000);
  siper::v1::FileEvent* f = e.mutable_file();
  f->set_path(path);
  f->set_change(change);
  f->set_mode(0100000 | mode);
  f->set_size(68);
  f->set_owner("root");
  f->set_group("root");
  f->set_sha256(sha256);
  return e;
}

TEST_F(IngestFimTest, FimEventsRaiseTheDefaultRulesButNotOnBaseline) {
  rules::LiveRuleSet live(rules_);
  IngestPipeline pipeline(store_.get(), &live, nullptr, 1);
  std::vector<storage::EventRecord> stored;
  pipeline.SetStoredHook(
      [&](const std::string&, const std::vector<storage::EventRecord>& r) { stored = r; });
  ASSERT_TRUE(pipeline.Start().ok());
  siper::v1::EventBatch batch;
  *batch.add_events() =
      FileEvent(1, "/etc/sudoers", siper::v1::FILE_CHANGE_BASELINE, 0440, std::string(64, 'a'));
  *batch.add_events() =
      FileEvent(2, "/etc/sudoers", siper::v1::FILE_CHANGE_MODIFIED, 0440, std::string(64, 'b'));
  *batch.add_events() = FileEvent(3, "/tmp/eicar.com", siper::v1::FILE_CHANGE_ADDED, 0644, kEicar);
  std::promise<absl::StatusOr<storage::WriteResult>> done;
  pipeline.Submit("pc-17", std::move(batch),
                  [&](absl::StatusOr<storage::WriteResult> r) { done.set_value(std::move(r)); });
  absl::StatusOr<storage::WriteResult> result = done.get_future().get();
  pipeline.Stop();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(stored.size(), 3u);

  const auto& baseline = stored[0];
  EXPECT_TRUE(baseline.alerts.empty());
  EXPECT_EQ(baseline.event.fields().at("event.action"), "baseline");
  EXPECT_EQ(baseline.event.fields().at("file.mode"), "0440");

  const auto& modified = stored[1];
  ASSERT_EQ(modified.alerts.size(), 1u);
  EXPECT_EQ(modified.alerts[0].title(), kSudoersChanged);
  EXPECT_EQ(modified.alerts[0].level(), "high");
  EXPECT_EQ(modified.alerts[0].fields().at("file.path"), "/etc/sudoers");
  EXPECT_EQ(modified.event.fields().at("event.action"), "modified");
  EXPECT_EQ(modified.event.fields().at("file.name"), "sudoers");
  EXPECT_EQ(modified.event.fields().at("file.owner"), "root");

  const auto& eicar = stored[2];
  ASSERT_EQ(eicar.alerts.size(), 1u);
  EXPECT_EQ(eicar.alerts[0].title(), kMalwareTest);
  EXPECT_EQ(eicar.alerts[0].fields().at("file.hash.sha256"), kEicar);
  EXPECT_EQ(eicar.event.fields().at("event.action"), "added");
}

// Without rules the server still stores the FIM fields.
TEST_F(IngestFimTest, WithoutRulesFieldsAreStillSet) {
  IngestPipeline pipeline(store_.get(), nullptr, nullptr, 1);
  std::vector<storage::EventRecord> stored;
  pipeline.SetStoredHook(
      [&](const std::string&, const std::vector<storage::EventRecord>& r) { stored = r; });
  ASSERT_TRUE(pipeline.Start().ok());
  siper::v1::EventBatch batch;
  *batch.add_events() =
      FileEvent(1, "/etc/shadow", siper::v1::FILE_CHANGE_ATTRIBUTES, 0644, std::string(64, 'c'));
  std::promise<absl::StatusOr<storage::WriteResult>> done;
  pipeline.Submit("pc-17", std::move(batch),
                  [&](absl::StatusOr<storage::WriteResult> r) { done.set_value(std::move(r)); });
  ASSERT_TRUE(done.get_future().get().ok());
  pipeline.Stop();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_TRUE(stored[0].alerts.empty());
  EXPECT_EQ(stored[0].event.fields().at("event.action"), "attributes");
  EXPECT_EQ(stored[0].event.fields().at("file.directory"), "/etc");
  EXPECT_EQ(stored[0].event.fields().at("file.hash.sha256"), std::string(64, 'c'));
}

}  // namespace
}  // namespace siper::server

// The ingest pipeline with the default rule set and a real store: FIM events
// are matched by the same engine as log lines (rules/fim.h), and a baseline
// observation is stored without an alert.
#include "server/ingest.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/text.h"
#include "server/agent_service.h"
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

  // The decoded fields of the stored event (read back from the store).
  std::map<std::string, std::string> StoredFields(const storage::EventRecord& record) {
    absl::StatusOr<std::optional<siper::v1::Event>> e =
        store_->GetEvent(record.event.agent_id(), record.event.seq());
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok() || !e->has_value()) {
      ADD_FAILURE() << "seq " << record.event.seq() << " not stored";
      return {};
    }
    return std::map<std::string, std::string>((*e)->fields().begin(), (*e)->fields().end());
  }

  // The fields of the record's alert `i` as stored (read back with GetAlert), which must
  // be the fields the stored hook (the incident book) sees.
  std::map<std::string, std::string> StoredAlertFields(const storage::EventRecord& record,
                                                       size_t i) {
    std::map<std::string, std::string> hook;
    std::vector<std::pair<std::string_view, std::string_view>> scratch;
    for (const auto& [name, value] : record.AlertFields(i, &scratch)) hook.emplace(name, value);
    auto a = store_->GetAlert(record.alerts.at(i).id());
    EXPECT_TRUE(a.ok()) << a.status();
    if (!a.ok() || !a->has_value()) {
      ADD_FAILURE() << "alert " << record.alerts.at(i).id() << " not stored";
      return {};
    }
    EXPECT_EQ((*a)->rule_id(), record.alerts[i].rule_id());
    std::map<std::string, std::string> stored((*a)->fields().begin(), (*a)->fields().end());
    EXPECT_EQ(stored, hook) << "what the hook sees is what was stored";
    return stored;
  }

  // Submits `batch` as `agent` and waits until it is stored; returns the stored records.
  std::vector<storage::EventRecord> Ingest(IngestPipeline& pipeline, const std::string& agent,
                                           siper::v1::EventBatch batch) {
    std::promise<absl::StatusOr<storage::WriteResult>> done;
    pipeline.Submit(agent, std::move(batch),
                    [&](absl::StatusOr<storage::WriteResult> r) { done.set_value(std::move(r)); });
    absl::StatusOr<storage::WriteResult> result = done.get_future().get();
    EXPECT_TRUE(result.ok()) << result.status();
    std::lock_guard<std::mutex> lock(stored_mu_);
    return std::move(stored_);
  }
  void KeepStored(IngestPipeline& pipeline) {
    pipeline.SetStoredHook([this](const std::string&, const std::vector<storage::EventRecord>& r) {
      std::lock_guard<std::mutex> lock(stored_mu_);
      stored_ = r;
    });
  }

  fs::path dir_;
  std::unique_ptr<storage::Store> store_;
  std::shared_ptr<const rules::RuleSet> rules_;
  std::mutex stored_mu_;
  std::vector<storage::EventRecord> stored_;
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
  EXPECT_EQ(StoredFields(baseline).at("event.action"), "baseline");
  EXPECT_EQ(StoredFields(baseline).at("file.mode"), "0440");

  const auto& modified = stored[1];
  ASSERT_EQ(modified.alerts.size(), 1u);
  EXPECT_EQ(modified.alerts[0].title(), kSudoersChanged);
  EXPECT_EQ(modified.alerts[0].level(), "high");
  EXPECT_EQ(StoredAlertFields(modified, 0).at("file.path"), "/etc/sudoers");
  EXPECT_EQ(StoredFields(modified).at("event.action"), "modified");
  EXPECT_EQ(StoredFields(modified).at("file.name"), "sudoers");
  EXPECT_EQ(StoredFields(modified).at("file.owner"), "root");

  const auto& eicar = stored[2];
  ASSERT_EQ(eicar.alerts.size(), 1u);
  EXPECT_EQ(eicar.alerts[0].title(), kMalwareTest);
  EXPECT_EQ(StoredAlertFields(eicar, 0).at("file.hash.sha256"), kEicar);
  EXPECT_EQ(StoredFields(eicar).at("event.action"), "added");
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
  EXPECT_EQ(StoredFields(stored[0]).at("event.action"), "attributes");
  EXPECT_EQ(StoredFields(stored[0]).at("file.directory"), "/etc");
  EXPECT_EQ(StoredFields(stored[0]).at("file.hash.sha256"), std::string(64, 'c'));
}

std::string Dump(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) out += k + "=" + v + "\n";
  return out;
}

siper::v1::Event LogEvent(uint64_t seq, const std::string& line,
                          const std::string& source_address = "") {
  siper::v1::Event e;
  e.set_agent_id("pc-17");
  e.set_seq(seq);
  e.mutable_log()->set_source("/var/log/auth.log");
  e.mutable_log()->set_line(line);
  if (!source_address.empty()) e.mutable_log()->set_source_address(source_address);
  return e;
}

// Log lines: the stored fields are exactly what the engine decodes from the line (the
// worker hands the matcher's snapshot to the store as views, no map in between), and the
// alerts carry them too.
TEST_F(IngestFimTest, LogLinesStoreEveryDecodedField) {
  rules::LiveRuleSet live(rules_);
  IngestPipeline pipeline(store_.get(), &live, nullptr, 1);
  KeepStored(pipeline);
  ASSERT_TRUE(pipeline.Start().ok());
  const std::vector<std::string> lines = {
      "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for invalid user test9 from "
      "52.80.34.196 port 36060 ssh2",
      "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for "
      "ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
      "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 "
      "euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
      "not a syslog line at all"};
  siper::v1::EventBatch batch;
  for (size_t i = 0; i < lines.size(); ++i) *batch.add_events() = LogEvent(i + 1, lines[i]);
  std::vector<storage::EventRecord> stored = Ingest(pipeline, "pc-17", std::move(batch));
  pipeline.Stop();
  ASSERT_EQ(stored.size(), lines.size());
  auto matcher = rules::Matcher::Create(rules_);
  ASSERT_TRUE(matcher.ok()) << matcher.status();
  for (size_t i = 0; i < lines.size(); ++i) {
    rules::FieldMap want;
    auto detections =
        (*matcher)->Process(lines[i], "/var/log/auth.log", rules::InputFormat::kAuto, &want);
    ASSERT_TRUE(detections.ok()) << detections.status();
    EXPECT_EQ(StoredFields(stored[i]), want) << lines[i];
    ASSERT_EQ(stored[i].alerts.size(), detections->size()) << lines[i];
    for (size_t k = 0; k < stored[i].alerts.size(); ++k) {
      EXPECT_EQ(StoredAlertFields(stored[i], k), want);
    }
  }
  EXPECT_EQ(StoredFields(stored[0]).at("source.ip"), "52.80.34.196");
  EXPECT_FALSE(stored[0].alerts.empty());
  // The matcher formats `@timestamp` only when read; every syslog line's stored
  // event still has it, alert or not.
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(StoredFields(stored[i]).count("@timestamp"), 1u) << lines[i];
  }
  EXPECT_EQ(StoredFields(stored[1]).at("@timestamp").substr(4), "-12-10T06:55:46Z");
}

// Stored fields are valid UTF-8 (invalid bytes become U+FFFD, in the event and its
// alerts), the raw line is stored untouched, and a line received over the network gets
// the sender's address as log.source.address, over anything the decoder set.
TEST_F(IngestFimTest, InvalidUtf8IsReplacedInFieldsAndTheLineIsKept) {
  rules::LiveRuleSet live(rules_);
  IngestPipeline pipeline(store_.get(), &live, nullptr, 1);
  KeepStored(pipeline);
  ASSERT_TRUE(pipeline.Start().ok());
  const std::string invalid =
      "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for invalid user b\xff\xfe"
      "d from 52.80.34.196 port 36060 ssh2";
  const std::string valid_non_ascii =
      "Dec 10 07:07:39 LabSZ sshd[24207]: Failed password for invalid user g\xc3\xbcl "
      "from 52.80.34.197 port 36061 ssh2";
  siper::v1::EventBatch batch;
  *batch.add_events() = LogEvent(1, invalid);
  *batch.add_events() = LogEvent(2, valid_non_ascii);
  *batch.add_events() = LogEvent(3, "<38>Dec 10 07:07:40 gw1 sshd[1]: hello", "192.0.2.9:514");
  // Invalid bytes in a line that raises alerts: the alerts' stored fields are valid too.
  const std::string invalid_alerting =
      "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 "
      "euid=0 tty=NODEVssh ruser=b\xff\xfe rhost=218.188.2.4 user=r\xffot";
  *batch.add_events() = LogEvent(4, invalid_alerting);
  std::vector<storage::EventRecord> stored = Ingest(pipeline, "pc-17", std::move(batch));
  pipeline.Stop();
  ASSERT_EQ(stored.size(), 4u);

  const std::map<std::string, std::string> bad = StoredFields(stored[0]);
  ASSERT_TRUE(bad.contains("message")) << Dump(bad);
  EXPECT_EQ(bad.at("message"),
            "Failed password for invalid user b\xEF\xBF\xBD\xEF\xBF\xBD"
            "d from 52.80.34.196 port 36060 ssh2");
  for (const auto& [name, value] : bad) EXPECT_TRUE(IsValidUtf8(name) && IsValidUtf8(value));
  for (size_t k = 0; k < stored[0].alerts.size(); ++k) {
    EXPECT_EQ(StoredAlertFields(stored[0], k), bad);
  }
  const std::map<std::string, std::string> bad_alerting = StoredFields(stored[3]);
  ASSERT_TRUE(bad_alerting.contains("message")) << Dump(bad_alerting);
  EXPECT_NE(bad_alerting.at("message").find("ruser=b\xEF\xBF\xBD\xEF\xBF\xBD rhost"),
            std::string::npos)
      << bad_alerting.at("message");
  ASSERT_FALSE(stored[3].alerts.empty()) << "the line must raise an alert for this test";
  for (size_t k = 0; k < stored[3].alerts.size(); ++k) {
    const std::map<std::string, std::string> alert_fields = StoredAlertFields(stored[3], k);
    EXPECT_EQ(alert_fields, bad_alerting);
    for (const auto& [name, value] : alert_fields) {
      EXPECT_TRUE(IsValidUtf8(name) && IsValidUtf8(value)) << name;
    }
  }
  auto raw = store_->GetEvent("pc-17", 1);
  ASSERT_TRUE(raw.ok() && raw->has_value());
  EXPECT_EQ((*raw)->log().line(), invalid);  // the raw bytes, as received

  const std::map<std::string, std::string> good = StoredFields(stored[1]);
  ASSERT_TRUE(good.contains("message")) << Dump(good);
  EXPECT_EQ(good.at("message"),  // valid: kept as it is
            "Failed password for invalid user g\xc3\xbcl from 52.80.34.197 port 36061 ssh2");

  const std::map<std::string, std::string> udp = StoredFields(stored[2]);
  ASSERT_TRUE(udp.contains("log.source.address") && udp.contains("log.syslog.priority"))
      << Dump(udp);
  EXPECT_EQ(udp.at("log.source.address"), "192.0.2.9:514");
  EXPECT_EQ(udp.at("log.syslog.priority"), "38");
}

// An agent's batches complete in the order they were submitted and each is stored once,
// both when the worker hands them to a writer (a burst: a queue behind each batch) and
// when it writes them itself (one at a time: nothing queued, nothing at a writer). The
// thread that ran each completion is told by its name (siper-match / siper-write).
TEST_F(IngestFimTest, BatchesCompleteInOrderWhetherTheWorkerOrAWriterWritesThem) {
  IngestPipeline pipeline(store_.get(), nullptr, nullptr, /*workers=*/1, /*writers=*/4);
  ASSERT_TRUE(pipeline.Start().ok());
  const std::vector<std::string> agents = {"pc-1", "pc-2", "pc-3"};
  std::mutex mu;
  std::map<std::string, std::vector<uint64_t>> completed;  // max_seq per agent, in order
  std::map<std::string, int> threads;                      // completions per thread name
  int failed = 0;
  std::map<std::string, uint64_t> next_seq;
  auto make_batch = [&](const std::string& agent) {
    siper::v1::EventBatch batch;
    for (int i = 0; i < 10; ++i) {
      siper::v1::Event* e = batch.add_events();
      e->set_agent_id(agent);
      e->set_seq(++next_seq[agent]);
      e->mutable_log()->set_source("/var/log/auth.log");
      e->mutable_log()->set_line(absl::StrCat("line ", e->seq(), " of ", agent));
    }
    return batch;
  };
  std::atomic<int> outstanding{0};
  auto submit = [&](const std::string& agent, siper::v1::EventBatch batch) {
    ++outstanding;
    pipeline.Submit(agent, std::move(batch), [&, agent](absl::StatusOr<storage::WriteResult> r) {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof(name));
      std::lock_guard<std::mutex> lock(mu);
      ++threads[name];
      if (!r.ok() || r->stored != 10) {
        ++failed;
      } else {
        completed[agent].push_back(r->max_seq);
      }
      --outstanding;
    });
  };
  auto wait_all = [&] {
    for (int i = 0; i < 3000 && outstanding.load() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(outstanding.load(), 0) << "batches not completed after 30 s";
  };

  // A burst: 3 x 100 batches built first, then submitted back to back.
  std::vector<std::pair<std::string, siper::v1::EventBatch>> burst;
  for (int i = 0; i < 100; ++i) {
    for (const std::string& agent : agents) burst.emplace_back(agent, make_batch(agent));
  }
  for (auto& [agent, batch] : burst) submit(agent, std::move(batch));
  wait_all();
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_GT(threads["siper-write"], 0) << "no batch of the burst went to a writer";
  }
  // One at a time, with a pause after each completion: the worker writes them itself.
  const int by_writers = threads["siper-write"];
  for (int i = 0; i < 20; ++i) {
    submit(agents[i % agents.size()], make_batch(agents[i % agents.size()]));
    wait_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pipeline.Stop();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(failed, 0);
  EXPECT_GT(threads["siper-match"], 0) << "no batch was written by the worker";
  EXPECT_EQ(threads["siper-write"] + threads["siper-match"], 320);
  EXPECT_LT(threads["siper-write"] - by_writers, 20) << "every lone batch went to a writer";
  for (const std::string& agent : agents) {
    const std::vector<uint64_t>& seqs = completed[agent];
    ASSERT_FALSE(seqs.empty()) << agent;
    for (size_t i = 0; i < seqs.size(); ++i) {
      EXPECT_EQ(seqs[i], 10 * (i + 1)) << agent << ": completion " << i << " out of order";
    }
    EXPECT_EQ(seqs.size(), next_seq[agent] / 10) << agent;
    absl::StatusOr<uint64_t> last = store_->LastSeq(agent);
    ASSERT_TRUE(last.ok()) << last.status();
    EXPECT_EQ(*last, next_seq[agent]) << agent;
    // The store stamps each write (PrepareBatch leaves no time): an agent's batches
    // are written in the order they came, so its times never go back as seqs go up.
    int64_t previous_time = 0;
    for (uint64_t seq = 1; seq <= next_seq[agent]; ++seq) {
      absl::StatusOr<std::optional<siper::v1::Event>> e = store_->GetEvent(agent, seq);
      ASSERT_TRUE(e.ok() && e->has_value()) << agent << " seq " << seq << " not stored";
      EXPECT_GE((*e)->server_time_ns(), previous_time) << agent << " seq " << seq;
      previous_time = (*e)->server_time_ns();
    }
  }
}

// What an agent claims as server time or decoded fields is dropped before the batch is
// queued; the store stamps the time when it writes the batch, not the stream on receipt
// (so the events and alerts families get their keys in time order, storage README).
TEST(PrepareBatchTest, ClearsTheAgentsServerTimeAndFieldsForTheStoreToSet) {
  siper::v1::EventBatch batch;
  siper::v1::Event* e = batch.add_events();
  e->set_seq(7);
  e->set_server_time_ns(946'684'800'000'000'000);  // the agent claims 2000-01-01
  (*e->mutable_fields())["user.name"] = "root";
  e->mutable_log()->set_line("Nov 28 10:00:00 host sshd[1]: x");
  RejectReason reason{};
  ASSERT_TRUE(PrepareBatch("pc-1", &batch, &reason).ok());
  EXPECT_EQ(batch.events(0).agent_id(), "pc-1");
  EXPECT_EQ(batch.events(0).server_time_ns(), 0);
  EXPECT_TRUE(batch.events(0).fields().empty());
}

TEST_F(IngestFimTest, TheStoreStampsTheServerTimeWhenItWritesTheBatch) {
  IngestPipeline pipeline(store_.get(), nullptr, nullptr, /*workers=*/1, /*writers=*/1);
  ASSERT_TRUE(pipeline.Start().ok());
  KeepStored(pipeline);
  siper::v1::EventBatch batch;
  siper::v1::Event* e = batch.add_events();
  e->set_agent_id("pc-1");
  e->set_seq(1);
  e->mutable_log()->set_line("Nov 28 10:00:00 host sshd[1]: x");
  RejectReason reason{};
  ASSERT_TRUE(PrepareBatch("pc-1", &batch, &reason).ok());
  const int64_t before = absl::ToUnixNanos(absl::Now());
  std::vector<storage::EventRecord> stored = Ingest(pipeline, "pc-1", std::move(batch));
  const int64_t after = absl::ToUnixNanos(absl::Now());
  pipeline.Stop();
  ASSERT_EQ(stored.size(), 1u);
  absl::StatusOr<std::optional<siper::v1::Event>> read = store_->GetEvent("pc-1", 1);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_GE((*read)->server_time_ns(), before);
  EXPECT_LE((*read)->server_time_ns(), after);
}

}  // namespace
}  // namespace siper::server

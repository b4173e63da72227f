#include "agent/journald.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "agent/disk_spool.h"
#include "common/files.h"
#include "tests/agent/journal_files.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::HaveJournalRemote;
using ::siper::agent::testing::JournalEntry;
using ::siper::agent::testing::SyslogEntry;
using ::siper::agent::testing::TestDir;
using ::siper::agent::testing::WriteJournal;

constexpr int64_t kT0 = 1700000000000000;  // 2023-11-14T22:13:20Z

#define SKIP_WITHOUT_JOURNAL_REMOTE()                                          \
  if (!HaveJournalRemote()) {                                                  \
    GTEST_SKIP() << ::siper::agent::testing::kJournalRemote                    \
                 << " is missing (Debian package systemd-journal-remote, see " \
                    "deploy/install-deps.sh)";                                 \
  }

TEST(JournalLineTest, RebuildsASyslogLine) {
  JournalEntry entry = SyslogEntry(kT0 + 123456, "sshd", 42, "ssh.service",
                                   "Failed password for root from 10.0.0.1 port 22 ssh2");
  EXPECT_EQ(JournalEntryLine(entry.realtime_us, entry.fields, "here"),
            "2023-11-14T22:13:20.123456+00:00 pc1 sshd[42]: Failed password for root from "
            "10.0.0.1 port 22 ssh2");
  EXPECT_EQ(JournalEntrySource(entry.fields), "journald:ssh.service");

  // SYSLOG_PID wins over _PID; no host: ours; no identifier: _COMM; a
  // multi-line message keeps its lines, escaped as rsyslog does.
  std::vector<std::pair<std::string, std::string>> fields = {
      {"_COMM", "my prog"}, {"_PID", "7"}, {"SYSLOG_PID", "8"}, {"MESSAGE", "a\nb\n"}};
  EXPECT_EQ(JournalEntryLine(kT0, fields, "host1"),
            "2023-11-14T22:13:20.000000+00:00 host1 my_prog[8]: a#012b");
  EXPECT_EQ(JournalEntrySource(fields), "journald:my prog");
  EXPECT_EQ(JournalEntryLine(kT0, {}, ""), "2023-11-14T22:13:20.000000+00:00 localhost journal: ");
  EXPECT_EQ(JournalEntrySource({}), "journald:unknown");
}

class JournalReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    journal_dir_ = dir_ / "journal";
    std::filesystem::create_directories(journal_dir_);
    input_.enabled = true;
    input_.directory = journal_dir_;
    input_.start = StartAt::kBeginning;
  }

  std::unique_ptr<JournalReader> Reader(PendingEvents* pending) {
    return std::make_unique<JournalReader>(input_, dir_ / "journald.json", "agt-test", pending);
  }

  // Gives out seqs from next_seq_ as the log tailer would.
  SeqReserver Reserver() {
    return [this](uint64_t count) -> absl::StatusOr<uint64_t> {
      const uint64_t first = next_seq_;
      next_seq_ += count;
      return first;
    };
  }

  static std::vector<std::string> Lines(const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const v1::Event& e : events) out.push_back(e.log().line());
    return out;
  }

  static std::vector<v1::Event> All(PendingEvents& pending) {
    return pending.Next(0, 100000, 1 << 30, absl::ZeroDuration(), absl::Now());
  }

  TestDir dir_;
  std::filesystem::path journal_dir_;
  JournaldInput input_;
  uint64_t next_seq_ = 1;
};

TEST_F(JournalReaderTest, ReadsEntriesInOrderWithMatches) {
  SKIP_WITHOUT_JOURNAL_REMOTE();
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal",
                           {SyslogEntry(kT0, "sshd", 1, "ssh.service", "one"),
                            SyslogEntry(kT0 + 1, "cron", 2, "cron.service", "other"),
                            SyslogEntry(kT0 + 2, "sshd", 3, "ssh.service", "two")}));
  input_.matches = {"_SYSTEMD_UNIT=ssh.service"};
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  ASSERT_TRUE(reader->Recover(&recovered).ok());
  EXPECT_TRUE(recovered.empty());
  ASSERT_TRUE(reader->active());
  auto read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 2u);
  std::vector<v1::Event> events = All(pending);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].seq(), 1u);
  EXPECT_EQ(events[1].seq(), 2u);
  EXPECT_EQ(events[0].agent_id(), "agt-test");
  EXPECT_EQ(events[0].log().source(), "journald:ssh.service");
  EXPECT_EQ(Lines(events),
            (std::vector<std::string>{"2023-11-14T22:13:20.000000+00:00 pc1 sshd[1]: one",
                                      "2023-11-14T22:13:20.000002+00:00 pc1 sshd[3]: two"}));

  // New entries appended to the journal come next.
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal",
                           {SyslogEntry(kT0 + 3, "sshd", 4, "ssh.service", "three")}));
  read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 1u);
  events = All(pending);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].seq(), 3u);
  EXPECT_EQ(events[2].log().line(), "2023-11-14T22:13:20.000003+00:00 pc1 sshd[4]: three");
}

TEST_F(JournalReaderTest, StartAtEndSkipsWhatIsThereAndReadsWhatComes) {
  SKIP_WITHOUT_JOURNAL_REMOTE();
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal",
                           {SyslogEntry(kT0, "sshd", 1, "ssh.service", "old")}));
  input_.start = StartAt::kEnd;
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  {
    auto reader = Reader(&pending);
    std::vector<v1::Event> recovered;
    ASSERT_TRUE(reader->Recover(&recovered).ok());
    auto read = reader->Poll(100, 1 << 20, Reserver());
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(*read, 0u);
    ASSERT_TRUE(reader->Checkpoint().ok());
  }
  // Written while the agent was stopped: read after the restart, since the
  // end was remembered at the first start.
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal",
                           {SyslogEntry(kT0 + 1, "sshd", 2, "ssh.service", "new")}));
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  ASSERT_TRUE(reader->Recover(&recovered).ok());
  auto read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 1u);
  std::vector<v1::Event> events = All(pending);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].log().line(), "2023-11-14T22:13:20.000001+00:00 pc1 sshd[2]: new");
}

TEST_F(JournalReaderTest, PausesWhenThereIsNoRoom) {
  SKIP_WITHOUT_JOURNAL_REMOTE();
  std::vector<JournalEntry> entries;
  for (int i = 0; i < 10; ++i) {
    entries.push_back(SyslogEntry(kT0 + i, "sshd", i, "ssh.service", absl::StrCat("m", i)));
  }
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal", entries));
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  ASSERT_TRUE(reader->Recover(&recovered).ok());
  auto read = reader->Poll(0, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 0u);
  EXPECT_EQ(next_seq_, 1u);
  read = reader->Poll(4, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 4u);
  read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 6u);
  std::vector<v1::Event> events = All(pending);
  ASSERT_EQ(events.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<uint64_t>(i + 1));
    EXPECT_TRUE(events[i].log().line().ends_with(": m" + std::to_string(i)));
  }
}

// The cursor advances only past what the server acknowledged (or the spool
// keeps durably): after a restart the rest is read again with the same seqs.
TEST_F(JournalReaderTest, RestartRereadsUnacknowledgedEntriesWithTheirSeqs) {
  SKIP_WITHOUT_JOURNAL_REMOTE();
  std::vector<JournalEntry> entries;
  for (int i = 0; i < 6; ++i) {
    entries.push_back(SyslogEntry(kT0 + i, "sshd", i, "ssh.service", absl::StrCat("m", i)));
  }
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal", entries));
  next_seq_ = 10;  // other collectors' seqs come in between
  {
    MemoryPendingEvents pending(1000, 1 << 20, 0);
    auto reader = Reader(&pending);
    std::vector<v1::Event> recovered;
    ASSERT_TRUE(reader->Recover(&recovered).ok());
    ASSERT_TRUE(reader->Poll(3, 1 << 20, Reserver()).ok());  // seqs 10..12
    next_seq_ = 20;
    ASSERT_TRUE(reader->Poll(3, 1 << 20, Reserver()).ok());  // seqs 20..22
    pending.Ack(11);
    ASSERT_TRUE(reader->Checkpoint().ok());
    struct stat st {};
    ASSERT_EQ(stat((dir_ / "journald.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  MemoryPendingEvents pending(1000, 1 << 20, 11);
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  ASSERT_TRUE(reader->Recover(&recovered).ok());
  ASSERT_EQ(recovered.size(), 4u);
  EXPECT_EQ(recovered[0].seq(), 12u);
  EXPECT_TRUE(recovered[0].log().line().ends_with(": m2"));
  EXPECT_EQ(recovered[1].seq(), 20u);
  EXPECT_TRUE(recovered[1].log().line().ends_with(": m3"));
  EXPECT_EQ(recovered[3].seq(), 22u);
  EXPECT_TRUE(recovered[3].log().line().ends_with(": m5"));
  // Nothing more until the journal grows.
  next_seq_ = 30;
  auto read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 0u);

  // Once all is acknowledged, a restart re-reads nothing.
  pending.Append(std::move(recovered));
  pending.Ack(22);
  ASSERT_TRUE(reader->Checkpoint().ok());
  reader.reset();
  auto again = Reader(&pending);
  std::vector<v1::Event> none;
  ASSERT_TRUE(again->Recover(&none).ok());
  EXPECT_TRUE(none.empty());
}

// With the disk spool, entries are released as soon as they are durably
// spooled: a restart finds them in the spool and reads nothing twice.
TEST_F(JournalReaderTest, DurablySpooledEntriesAreNotReadAgain) {
  SKIP_WITHOUT_JOURNAL_REMOTE();
  ASSERT_TRUE(WriteJournal(journal_dir_ / "x.journal",
                           {SyslogEntry(kT0, "sshd", 1, "ssh.service", "a"),
                            SyslogEntry(kT0 + 1, "sshd", 2, "ssh.service", "b")}));
  SpoolOptions options;
  options.fsync = SpoolFsync::kAlways;
  {
    auto spool = DiskSpool::Open(dir_ / "spool", options);
    ASSERT_TRUE(spool.ok()) << spool.status();
    auto reader = Reader(spool->get());
    std::vector<v1::Event> recovered;
    ASSERT_TRUE(reader->Recover(&recovered).ok());
    auto read = reader->Poll(100, 1 << 20, Reserver());
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(*read, 2u);
    ASSERT_TRUE(reader->Checkpoint().ok());
  }
  auto state = nlohmann::json::parse(ReadFile(dir_ / "journald.json").value());
  EXPECT_TRUE(state["runs"].empty()) << state.dump();
  EXPECT_FALSE(state["cursor"].get<std::string>().empty());

  auto spool = DiskSpool::Open(dir_ / "spool", options);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ((*spool)->Size(), 2u);
  auto reader = Reader(spool->get());
  std::vector<v1::Event> recovered;
  ASSERT_TRUE(reader->Recover(&recovered).ok());
  EXPECT_TRUE(recovered.empty());
  auto read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 0u);
}

TEST_F(JournalReaderTest, NoJournalMeansInactiveNotAnError) {
  input_.directory = dir_ / "not-there";
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  absl::Status status = reader->Recover(&recovered);
  // sd_journal_open_directory fails on a missing directory: logged, collection off.
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(reader->active());
  auto read = reader->Poll(100, 1 << 20, Reserver());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, 0u);
}

TEST_F(JournalReaderTest, CorruptStateStopsWithAClearError) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "journald.json", "{not json", 0600).ok());
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  auto reader = Reader(&pending);
  std::vector<v1::Event> recovered;
  absl::Status status = reader->Recover(&recovered);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("journald.json"), std::string::npos) << status;
  EXPECT_NE(status.message().find("move the file away"), std::string::npos) << status;
}

}  // namespace
}  // namespace siper::agent

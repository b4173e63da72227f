#include "agent/log_tailer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::Append;
using ::siper::agent::testing::Overwrite;
using ::siper::agent::testing::TestDir;

struct Seen {
  uint64_t seq;
  std::string source;
  std::string line;
  bool truncated;
};

// One agent "process": a pending queue and a tailer over the same state files.
class Instance {
 public:
  Instance(const TestDir& dir, std::vector<LogInput> inputs, size_t capacity = 1000,
           TailerOptions options = Quick())
      : pending_(capacity, size_t{1} << 30, 0),
        tailer_(std::move(inputs), dir / "offsets.json", "agt-test", &pending_, options) {}

  static TailerOptions Quick() {
    TailerOptions options;
    options.rotated_idle_polls = 2;
    options.ack_persist_interval = absl::ZeroDuration();
    return options;
  }

  LogTailer& tailer() { return tailer_; }
  MemoryPendingEvents& pending() { return pending_; }

  void Recover() { ASSERT_TRUE(tailer_.Recover().ok()); }
  void Poll() {
    absl::Status status = tailer_.Poll();
    ASSERT_TRUE(status.ok()) << status;
  }

  // Everything pending that was not returned by an earlier call.
  std::vector<Seen> Take() {
    std::vector<Seen> out;
    for (const v1::Event& event :
         pending_.Next(taken_, 1 << 20, size_t{1} << 30, absl::ZeroDuration(), absl::Now())) {
      EXPECT_EQ(event.agent_id(), "agt-test");
      EXPECT_GT(event.agent_time_ns(), 0);
      out.push_back(
          {event.seq(), event.log().source(), event.log().line(), event.log().truncated()});
      taken_ = event.seq();
    }
    return out;
  }

  std::vector<std::string> TakeLines() {
    std::vector<std::string> lines;
    for (const Seen& seen : Take()) lines.push_back(seen.line);
    return lines;
  }

 private:
  MemoryPendingEvents pending_;
  LogTailer tailer_;
  uint64_t taken_ = 0;
};

using Lines = std::vector<std::string>;

TEST(LogTailerTest, StartEndSkipsExistingLines) {
  TestDir dir;
  Append(dir / "a.log", "old 1\nold 2\n");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kEnd}});
  agent.Recover();
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());
  Append(dir / "a.log", "new 1\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, 1u);
  EXPECT_EQ(seen[0].line, "new 1");
  EXPECT_EQ(seen[0].source, (dir / "a.log").string());
}

// limits.memory_bytes: one round reads at most max_bytes_per_poll over all
// files and at most max_lines lines; the rest waits in the files.
TEST(LogTailerTest, OneRoundReadsAtMostItsByteAndLineBudget) {
  TestDir dir;
  const std::string line(99, 'x');  // 100 bytes with its newline
  std::string data;
  for (int i = 0; i < 3000; ++i) data += line + "\n";
  Append(dir / "a.log", data);
  Append(dir / "b.log", data);
  TailerOptions options = Instance::Quick();
  options.max_bytes_per_poll = 256 * 1024;
  options.max_bytes_per_file_per_poll = 160 * 1024;
  Instance agent(dir, {{(dir / "*.log").string(), StartAt::kBeginning}}, 100000, options);
  agent.Recover();
  agent.Poll();
  size_t bytes = 0;
  std::map<std::string, size_t> per_file;
  for (const Seen& seen : agent.Take()) {
    bytes += seen.line.size() + 1;
    per_file[seen.source] += seen.line.size() + 1;
  }
  EXPECT_LE(bytes, 256u * 1024);
  EXPECT_GE(bytes, 240u * 1024);  // not starved either
  EXPECT_LE(per_file[(dir / "a.log").string()], 160u * 1024);
  ASSERT_TRUE(agent.tailer().Poll(10).ok());
  EXPECT_EQ(agent.Take().size(), 10u);
  // The rest comes in later rounds, every line once.
  size_t total = bytes / 100 + 10;
  for (int round = 0; round < 10; ++round) {
    agent.Poll();
    total += agent.Take().size();
  }
  EXPECT_EQ(total, 6000u);
}

// backlog(): a round that stopped at its byte caps with more waiting says so
// (the tail thread then reads on at once); a file read to its end, or to a
// line still being written, does not; neither does a round the pending store
// had no room for.
TEST(LogTailerTest, BacklogWhileARoundStopsAtItsByteCaps) {
  TestDir dir;
  const std::string line(99, 'x');  // 100 bytes with its newline
  std::string data;
  for (int i = 0; i < 1000; ++i) data += line + "\n";
  Append(dir / "a.log", data);
  TailerOptions options = Instance::Quick();
  options.max_bytes_per_poll = 64 * 1024;
  options.max_bytes_per_file_per_poll = 40 * 1024;
  options.max_line_bytes = 1024;  // a round's first read takes at least this much
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}}, 100000, options);
  agent.Recover();
  size_t total = 0;
  int rounds = 0;
  do {
    agent.Poll();
    total += agent.Take().size();
    ++rounds;
  } while (agent.tailer().backlog() && rounds < 100);
  EXPECT_EQ(total, 1000u);  // every line, in rounds of at most 40 KiB
  EXPECT_GE(rounds, 3);
  EXPECT_FALSE(agent.tailer().backlog());
  // A line being written (no newline yet), longer than a round may read, is
  // no backlog: nothing can be read until it is complete (no busy loop).
  TestDir dir3;
  Append(dir3 / "c.log", "done\n" + std::string(600, 'y'));
  TailerOptions small = options;
  small.max_bytes_per_file_per_poll = 500;
  Instance partial(dir3, {{(dir3 / "c.log").string(), StartAt::kBeginning}}, 100000, small);
  partial.Recover();
  partial.Poll();
  EXPECT_EQ(partial.TakeLines(), Lines{"done"});
  partial.Poll();
  EXPECT_TRUE(partial.Take().empty());
  EXPECT_FALSE(partial.tailer().backlog());

  // No room in the pending store: no backlog (reading is paused, not behind).
  TestDir dir2;
  Append(dir2 / "b.log", data);
  Instance full(dir2, {{(dir2 / "b.log").string(), StartAt::kBeginning}}, 5, options);
  full.Recover();
  full.Poll();  // takes 5 lines; the store is full now
  full.Poll();
  EXPECT_FALSE(full.tailer().backlog());
}

TEST(LogTailerTest, StartEndSendsTheLineBeingWrittenWhole) {
  TestDir dir;
  Append(dir / "a.log", "old\nhalf of a ");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kEnd}});
  agent.Recover();
  agent.Poll();
  Append(dir / "a.log", "line\n");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"half of a line"}));
}

TEST(LogTailerTest, StartBeginningReadsExistingAndAppendedLines) {
  TestDir dir;
  Append(dir / "a.log", "one\ntwo\n");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  Append(dir / "a.log", "three\r\n\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].line, "one");
  EXPECT_EQ(seen[1].line, "two");
  EXPECT_EQ(seen[2].line, "three");  // CRLF line end removed
  EXPECT_EQ(seen[3].line, "");       // an empty line is still a line
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].seq, i + 1);
}

TEST(LogTailerTest, PartialLineHeldBackUntilCompleted) {
  TestDir dir;
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  Append(dir / "a.log", "complete\npart");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"complete"}));
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());
  Append(dir / "a.log", "ial\n");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"partial"}));
}

TEST(LogTailerTest, BytesCarriedAsIs) {
  TestDir dir;
  const std::string invalid_utf8 = std::string("bad \xff\xfe\xc3 utf8 \x01\x00 nul", 20);
  Append(dir / "a.log", invalid_utf8 + "\n");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({invalid_utf8}));
}

TEST(LogTailerTest, LongLineCappedAndMarkedTruncated) {
  TestDir dir;
  // Longer than the 256 KiB read chunk, so the end is found in later reads.
  const std::string long_line(300 * 1024, 'x');
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  Append(dir / "a.log", "before\n" + long_line);
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"before"}));  // not complete yet
  Append(dir / "a.log", "yyy\nafter\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].truncated);
  EXPECT_EQ(seen[0].line, std::string(64 * 1024, 'x'));
  EXPECT_EQ(seen[1].line, "after");
  EXPECT_FALSE(seen[1].truncated);
}

TEST(LogTailerTest, NewFileMatchingGlobIsReadFromBeginning) {
  TestDir dir;
  Append(dir / "a.log", "existing\n");
  Instance agent(dir, {{(dir / "*.log").string(), StartAt::kEnd}});
  agent.Recover();
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());
  Append(dir / "b.log", "first of b\nsecond of b\n");
  Append(dir / "b.txt", "not matched\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].line, "first of b");
  EXPECT_EQ(seen[0].source, (dir / "b.log").string());
}

TEST(LogTailerTest, RotationByRenameReadsOldFileToItsEndFirst) {
  TestDir dir;
  const auto path = dir / "app.log";
  Append(path, "a\n");
  Instance agent(dir, {{path.string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"a"}));

  Append(path, "b\n");  // written before the rotation, not read yet
  std::filesystem::rename(path, dir / "app.log.1");
  Append(path, "c\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].line, "b");
  EXPECT_EQ(seen[0].seq, 2u);
  EXPECT_EQ(seen[1].line, "c");
  EXPECT_EQ(seen[1].seq, 3u);

  // A writer that still holds the old file open is followed until it is quiet,
  // and its last line is sent even without a newline.
  Append(dir / "app.log.1", "late\nlast words");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"late"}));
  for (int i = 0; i < 3; ++i) agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"last words"}));
  EXPECT_EQ(agent.tailer().open_files(), 1u);
}

TEST(LogTailerTest, CopyTruncateStartsOver) {
  TestDir dir;
  const auto path = dir / "app.log";
  Append(path, "one\ntwo\n");
  Instance agent(dir, {{path.string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"one", "two"}));
  ASSERT_EQ(truncate(path.c_str(), 0), 0);
  Append(path, "three\n");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"three"}));
}

TEST(LogTailerTest, RewrittenFileWithNewFirstBytesStartsOver) {
  TestDir dir;
  const auto path = dir / "app.log";
  Append(path, "aaaa\n");
  Instance agent(dir, {{path.string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"aaaa"}));
  // Truncated and refilled past the old offset between two polls.
  Overwrite(path, "zzzzzzzzzz\nyy\n");
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"zzzzzzzzzz", "yy"}));
}

TEST(LogTailerTest, ReadingPausesWhenPendingIsFullAndLosesNothing) {
  TestDir dir;
  std::string data;
  for (int i = 1; i <= 10; ++i) data += "line " + std::to_string(i) + "\n";
  Append(dir / "a.log", data);
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}}, /*capacity=*/4);
  agent.Recover();
  agent.Poll();
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"line 1", "line 2", "line 3", "line 4"}));
  agent.pending().Ack(3);
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].seq, 5u);
  EXPECT_EQ(seen[0].line, "line 5");
  agent.pending().Ack(7);
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"line 8", "line 9", "line 10"}));
}

// A pending store that cannot write (the disk spool after a write error): no room, and why.
class UnwritablePending final : public PendingEvents {
 public:
  size_t Room() const override { return 0; }
  void Append(std::vector<v1::Event> events) override { inner_.Append(std::move(events)); }
  std::vector<v1::Event> Next(uint64_t after_seq, size_t max, size_t max_bytes,
                              absl::Duration linger, absl::Time deadline) override {
    return inner_.Next(after_seq, max, max_bytes, linger, deadline);
  }
  void Ack(uint64_t acked_seq) override { inner_.Ack(acked_seq); }
  uint64_t AckedSeq() const override { return inner_.AckedSeq(); }
  size_t Size() const override { return inner_.Size(); }
  void Wake() override { inner_.Wake(); }
  uint64_t LastSeq() const override { return inner_.LastSeq(); }
  uint64_t Bytes() const override { return inner_.Bytes(); }
  absl::Status WriteStatus() const override {
    return absl::UnavailableError("write spool/00000001.seg: No space left on device");
  }

 private:
  MemoryPendingEvents inner_{1000, size_t{1} << 30, 0};
};

// What the tailer logs while the test body runs.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string Text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(LogTailerTest, PauseNamesAWriteErrorNotAFullSpool) {
  TestDir dir;
  Append(dir / "a.log", "line 1\n");
  UnwritablePending pending;
  LogTailer tailer({{(dir / "a.log").string(), StartAt::kBeginning}}, dir / "offsets.json",
                   "agt-test", &pending, Instance::Quick());
  ASSERT_TRUE(tailer.Recover().ok());
  LogCapture log;
  ASSERT_TRUE(tailer.Poll().ok());
  const std::string text = log.Text();
  EXPECT_NE(text.find("spool not writable (write spool/00000001.seg: No space left on device)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("spool full"), std::string::npos) << text;
  EXPECT_EQ(pending.Size(), 0u);  // nothing read while paused; the line waits in its file
}

TEST(LogTailerTest, RestartResumesAtAcknowledgedPointWithSameSeqs) {
  TestDir dir;
  const auto a = dir / "a.log";
  const auto b = dir / "b.log";
  Append(a, "a1\na2\n");
  Append(b, "b1\nb2\n");
  std::vector<LogInput> inputs = {{a.string(), StartAt::kBeginning},
                                  {b.string(), StartAt::kBeginning}};
  std::vector<Seen> before;
  {
    Instance agent(dir, inputs);
    agent.Recover();
    agent.Poll();
    Append(a, "a3\n");
    Append(b, "b3\n");
    agent.Poll();
    before = agent.Take();
    ASSERT_EQ(before.size(), 6u);  // a1 a2 b1 b2 a3 b3, interleaved across files
    agent.pending().Ack(3);
    ASSERT_TRUE(agent.tailer().Checkpoint().ok());
  }  // the process ends without the rest being acknowledged

  Instance agent(dir, inputs);
  agent.Recover();
  EXPECT_EQ(agent.pending().AckedSeq(), 3u);
  auto resent = agent.Take();
  ASSERT_EQ(resent.size(), 3u);
  for (size_t i = 0; i < resent.size(); ++i) {
    EXPECT_EQ(resent[i].seq, before[i + 3].seq);
    EXPECT_EQ(resent[i].line, before[i + 3].line);
    EXPECT_EQ(resent[i].source, before[i + 3].source);
  }
  Append(b, "b4\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, 7u);
  EXPECT_EQ(seen[0].line, "b4");
}

TEST(LogTailerTest, RestartWithoutCheckpointResendsWhatWasNumbered) {
  TestDir dir;
  const auto a = dir / "a.log";
  Append(a, "1\n2\n");
  {
    Instance agent(dir, {{a.string(), StartAt::kEnd}});
    agent.Recover();
    agent.Poll();
    Append(a, "3\n4\n");
    agent.Poll();
    EXPECT_EQ(agent.TakeLines(), Lines({"3", "4"}));
    // Crash: no ack, no checkpoint. offsets.json was written before the events
    // were handed on, so the numbering survives.
  }
  Instance agent(dir, {{a.string(), StartAt::kEnd}});
  agent.Recover();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].seq, 1u);
  EXPECT_EQ(seen[0].line, "3");
  EXPECT_EQ(seen[1].seq, 2u);
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());  // not read a second time
}

TEST(LogTailerTest, RestartAfterEverythingAcknowledgedSendsOnlyNewLines) {
  TestDir dir;
  const auto a = dir / "a.log";
  {
    Instance agent(dir, {{a.string(), StartAt::kBeginning}});
    Append(a, "1\n2\n");
    agent.Recover();
    agent.Poll();
    agent.pending().Ack(2);
    ASSERT_TRUE(agent.tailer().Checkpoint().ok());
  }
  Append(a, "3\n");
  Instance agent(dir, {{a.string(), StartAt::kBeginning}});
  agent.Recover();
  EXPECT_TRUE(agent.Take().empty());
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, 3u);
  EXPECT_EQ(seen[0].line, "3");
}

TEST(LogTailerTest, RestartFindsFileRotatedWhileDown) {
  TestDir dir;
  const auto path = dir / "app.log";
  Append(path, "old 1\n");
  std::vector<LogInput> inputs = {{path.string(), StartAt::kEnd}};
  {
    Instance agent(dir, inputs);
    agent.Recover();
    agent.Poll();
    Append(path, "old 2\nold 3\n");
    agent.Poll();
    EXPECT_EQ(agent.TakeLines(), Lines({"old 2", "old 3"}));
  }
  // While the agent is down: rotated by rename, then more lines in both files.
  std::filesystem::rename(path, dir / "app.log.1");
  Append(dir / "app.log.1", "old 4\n");
  Append(path, "new 1\n");

  Instance agent(dir, inputs);
  agent.Recover();
  auto resent = agent.Take();
  ASSERT_EQ(resent.size(), 2u);
  EXPECT_EQ(resent[0].seq, 1u);
  EXPECT_EQ(resent[0].line, "old 2");
  EXPECT_EQ(resent[1].seq, 2u);
  agent.Poll();
  // The rest of the old file, then the new file from its beginning (it replaced
  // a file the agent followed, so start: end does not apply to it).
  EXPECT_EQ(agent.TakeLines(), Lines({"old 4", "new 1"}));
}

TEST(LogTailerTest, OffsetsFileIsPrivate) {
  TestDir dir;
  Append(dir / "a.log", "x\n");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  struct stat st {};
  ASSERT_EQ(stat((dir / "offsets.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(LogTailerTest, CorruptOffsetsFileRefusesToGuess) {
  TestDir dir;
  Append(dir / "offsets.json", "{\"version\": 1, \"next_seq\": ");
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  absl::Status status = agent.tailer().Recover();
  ASSERT_FALSE(status.ok());
  // Starting again at seq 1 would make the server drop new lines as duplicates.
  EXPECT_NE(status.message().find((dir / "offsets.json").string()), std::string::npos) << status;
}

TEST(LogTailerTest, AckBeyondOwnSeqsMovesNumberingPastIt) {
  TestDir dir;
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  agent.pending().Ack(41);  // the server knows seqs this state directory forgot
  agent.Poll();
  Append(dir / "a.log", "x\n");
  agent.Poll();
  auto seen = agent.Take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, 42u);
}

TEST(LogTailerTest, FileRemovedFromConfigIsNotReadAfterRestart) {
  TestDir dir;
  Append(dir / "a.log", "a1\n");
  Append(dir / "b.log", "b1\n");
  {
    Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning},
                         {(dir / "b.log").string(), StartAt::kBeginning}});
    agent.Recover();
    agent.Poll();
    EXPECT_EQ(agent.TakeLines(), Lines({"a1", "b1"}));
  }
  Append(dir / "a.log", "a2\n");
  Instance agent(dir, {{(dir / "b.log").string(), StartAt::kBeginning}});
  agent.Recover();
  EXPECT_EQ(agent.TakeLines(), Lines({"a1", "b1"}));  // numbered before: still sent
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());  // but a.log is not followed any more
  agent.pending().Ack(2);
  agent.Poll();
  EXPECT_EQ(agent.tailer().open_files(), 1u);
}

TEST(LogTailerTest, UnreadableFileIsPickedUpOnceReadable) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TestDir dir;
  Append(dir / "a.log", "secret\n");
  ASSERT_EQ(chmod((dir / "a.log").c_str(), 0), 0);
  Instance agent(dir, {{(dir / "a.log").string(), StartAt::kBeginning}});
  agent.Recover();
  agent.Poll();
  agent.Poll();
  EXPECT_TRUE(agent.Take().empty());
  ASSERT_EQ(chmod((dir / "a.log").c_str(), 0600), 0);
  agent.Poll();
  EXPECT_EQ(agent.TakeLines(), Lines({"secret"}));
}

}  // namespace
}  // namespace siper::agent

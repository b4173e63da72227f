#include "agent/disk_spool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "agent/log_tailer.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::Append;
using ::siper::agent::testing::TestDir;

constexpr size_t kBig = size_t{1} << 30;

std::vector<v1::Event> Events(uint64_t first, uint64_t last, size_t line_bytes = 20) {
  std::vector<v1::Event> events;
  for (uint64_t seq = first; seq <= last; ++seq) {
    v1::Event event;
    event.set_seq(seq);
    event.set_agent_id("agt-test");
    std::string line = "line " + std::to_string(seq) + " ";
    line.resize(std::max(line.size(), line_bytes), 'x');
    event.mutable_log()->set_line(line);
    event.mutable_log()->set_source("/var/log/test.log");
    events.push_back(event);
  }
  return events;
}

std::unique_ptr<DiskSpool> OpenSpool(const std::filesystem::path& dir, SpoolOptions options = {}) {
  auto spool = DiskSpool::Open(dir, options);
  EXPECT_TRUE(spool.ok()) << spool.status();
  return spool.ok() ? std::move(*spool) : nullptr;
}

std::vector<uint64_t> AllSeqs(DiskSpool& spool, uint64_t after = 0) {
  std::vector<uint64_t> seqs;
  for (const v1::Event& event : spool.Next(after, 1 << 20, kBig, absl::ZeroDuration(), absl::Now()))
    seqs.push_back(event.seq());
  return seqs;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t seq = first; seq <= last; ++seq) out.push_back(seq);
  return out;
}

std::vector<std::filesystem::path> SegmentFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& item : std::filesystem::directory_iterator(dir)) {
    if (item.path().extension() == ".seg") out.push_back(item.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DiskSpoolTest, WriteAckAndReplayAfterReopen) {
  TestDir dir;
  {
    auto spool = OpenSpool(dir / "spool");
    spool->Append(Events(1, 10));
    EXPECT_EQ(spool->Size(), 10u);
    EXPECT_EQ(AllSeqs(*spool, 3), Range(4, 10));
    spool->Ack(4);
    EXPECT_EQ(spool->Size(), 6u);
  }
  auto spool = OpenSpool(dir / "spool");
  EXPECT_EQ(spool->AckedSeq(), 4u);
  EXPECT_EQ(spool->LastSeq(), 10u);
  EXPECT_EQ(spool->Size(), 6u);
  auto events = spool->Next(0, 100, kBig, absl::ZeroDuration(), absl::Now());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].seq(), 5u);
  EXPECT_EQ(events[0].log().line(), Events(5, 5)[0].log().line());
  EXPECT_EQ(events[0].log().source(), "/var/log/test.log");
  EXPECT_EQ(events[0].agent_id(), "agt-test");
  // Replayed records keep their seqs; new ones continue after them.
  spool->Append(Events(11, 12));
  EXPECT_EQ(AllSeqs(*spool, 4), Range(5, 12));
}

TEST(DiskSpoolTest, AppendSkipsSeqsAlreadyHeld) {
  TestDir dir;
  auto spool = OpenSpool(dir / "spool");
  spool->Append(Events(1, 5));
  spool->Append(Events(3, 7));
  spool->Ack(2);
  spool->Append(Events(1, 2));
  EXPECT_EQ(AllSeqs(*spool), Range(3, 7));
}

TEST(DiskSpoolTest, NextHonoursMaxBytesAndCrossesSegments) {
  TestDir dir;
  SpoolOptions options;
  options.segment_bytes = 300;
  auto spool = OpenSpool(dir / "spool", options);
  for (uint64_t seq = 1; seq <= 20; seq += 2) spool->Append(Events(seq, seq + 1, 100));
  EXPECT_GT(SegmentFiles(dir / "spool").size(), 3u);
  auto batch = spool->Next(0, 100, 300, absl::ZeroDuration(), absl::Now());
  EXPECT_EQ(batch.size(), 2u);
  batch = spool->Next(0, 100, 1, absl::ZeroDuration(), absl::Now());
  EXPECT_EQ(batch.size(), 1u);  // at least one, however large
  EXPECT_EQ(AllSeqs(*spool, 7), Range(8, 20));
  EXPECT_EQ(AllSeqs(*spool, 2), Range(3, 20));  // backwards (a resend after reconnect)
}

TEST(DiskSpoolTest, TornTailIsTruncatedAndWritingGoesOn) {
  TestDir dir;
  {
    auto spool = OpenSpool(dir / "spool");
    spool->Append(Events(1, 5));
  }
  auto segments = SegmentFiles(dir / "spool");
  ASSERT_EQ(segments.size(), 1u);
  const auto size = std::filesystem::file_size(segments[0]);
  std::filesystem::resize_file(segments[0], size - 7);  // a crash in the middle of record 5
  {
    auto spool = OpenSpool(dir / "spool");
    EXPECT_EQ(spool->LastSeq(), 4u);
    EXPECT_EQ(AllSeqs(*spool), Range(1, 4));
    EXPECT_LT(std::filesystem::file_size(segments[0]), size - 7);  // the torn bytes are gone
    spool->Append(Events(5, 6));
  }
  auto spool = OpenSpool(dir / "spool");
  EXPECT_EQ(AllSeqs(*spool), Range(1, 6));
}

TEST(DiskSpoolTest, CorruptRecordIsDetectedByCrc) {
  TestDir dir;
  {
    auto spool = OpenSpool(dir / "spool");
    spool->Append(Events(1, 5, 100));
  }
  auto segments = SegmentFiles(dir / "spool");
  ASSERT_EQ(segments.size(), 1u);
  {
    // Flip one byte inside record 3's payload (records are 16 + ~110 bytes).
    std::fstream file(segments[0], std::ios::in | std::ios::out | std::ios::binary);
    const auto record = std::filesystem::file_size(segments[0]) / 5;
    file.seekp(static_cast<std::streamoff>(record * 2 + 40));
    file.put('\xff');
  }
  auto spool = OpenSpool(dir / "spool");
  EXPECT_EQ(AllSeqs(*spool), Range(1, 2));
}

TEST(DiskSpoolTest, GarbageAfterLastRecordIsTruncated) {
  TestDir dir;
  {
    auto spool = OpenSpool(dir / "spool");
    spool->Append(Events(1, 3));
  }
  auto segments = SegmentFiles(dir / "spool");
  Append(segments[0], std::string("\x10\x00\x00\x00garbage-garbage-garbage", 27));
  auto spool = OpenSpool(dir / "spool");
  EXPECT_EQ(AllSeqs(*spool), Range(1, 3));
  spool->Append(Events(4, 4));
  EXPECT_EQ(AllSeqs(*spool), Range(1, 4));
}

TEST(DiskSpoolTest, FullSpoolHasNoRoomUntilAcknowledged) {
  TestDir dir;
  SpoolOptions options;
  options.max_bytes = 2000;
  options.segment_bytes = 600;
  auto spool = OpenSpool(dir / "spool", options);
  EXPECT_GT(spool->Room(), 0u);
  spool->Append(Events(1, 20, 100));
  EXPECT_EQ(spool->Room(), 0u);
  spool->Ack(10);
  EXPECT_GT(spool->Room(), 0u);
  EXPECT_LT(spool->Bytes(), 2000u);
}

TEST(DiskSpoolTest, FullyAcknowledgedSegmentsAreDeleted) {
  TestDir dir;
  SpoolOptions options;
  options.segment_bytes = 500;
  {
    auto spool = OpenSpool(dir / "spool", options);
    for (uint64_t seq = 1; seq <= 20; ++seq) spool->Append(Events(seq, seq, 100));
    const size_t before = SegmentFiles(dir / "spool").size();
    ASSERT_GE(before, 4u);
    EXPECT_EQ(spool->Segments(), before);
    spool->Ack(10);
    const auto after = SegmentFiles(dir / "spool");
    EXPECT_LT(after.size(), before);
    // The oldest remaining segment still holds seq 11 (partly acknowledged at most).
    EXPECT_EQ(AllSeqs(*spool, 10), Range(11, 20));
    spool->Ack(20);
    EXPECT_TRUE(SegmentFiles(dir / "spool").empty());
    EXPECT_EQ(spool->Size(), 0u);
    EXPECT_EQ(spool->Bytes(), 0u);
  }
  auto spool = OpenSpool(dir / "spool", options);
  EXPECT_EQ(spool->AckedSeq(), 20u);
  EXPECT_EQ(spool->LastSeq(), 20u);
  EXPECT_TRUE(AllSeqs(*spool).empty());
  spool->Append(Events(21, 21));
  EXPECT_EQ(AllSeqs(*spool), Range(21, 21));
}

TEST(DiskSpoolTest, DurableSeqFollowsTheFsyncPolicy) {
  TestDir dir;
  {
    SpoolOptions options;
    options.fsync = SpoolFsync::kAlways;
    auto spool = OpenSpool(dir / "always", options);
    spool->Append(Events(1, 3));
    EXPECT_EQ(spool->DurableSeq(), 3u);
  }
  {
    SpoolOptions options;
    options.fsync = SpoolFsync::kInterval;
    options.fsync_interval = absl::Milliseconds(20);
    auto spool = OpenSpool(dir / "interval", options);
    spool->Append(Events(1, 3));
    for (int i = 0; i < 500 && spool->DurableSeq() < 3; ++i) usleep(10000);
    EXPECT_EQ(spool->DurableSeq(), 3u);
  }
  {
    SpoolOptions options;
    options.fsync = SpoolFsync::kInterval;
    options.fsync_interval = absl::Hours(1);
    auto spool = OpenSpool(dir / "slow", options);
    spool->Append(Events(1, 3));
    EXPECT_EQ(spool->DurableSeq(), 0u);  // not synced yet
  }
}

TEST(DiskSpoolTest, NextWaitsForAppendAndWakes) {
  TestDir dir;
  auto spool = OpenSpool(dir / "spool");
  std::thread writer([&] {
    usleep(50000);
    spool->Append(Events(1, 2));
  });
  auto batch = spool->Next(0, 2, kBig, absl::Seconds(5), absl::Now() + absl::Seconds(10));
  writer.join();
  EXPECT_EQ(batch.size(), 2u);
  std::thread waker([&] {
    usleep(50000);
    spool->Wake();
  });
  EXPECT_TRUE(
      spool->Next(2, 1, kBig, absl::ZeroDuration(), absl::Now() + absl::Seconds(30)).empty());
  waker.join();
}

// The log tailer over a disk spool: offsets advance once lines are durably
// spooled, and restarts stay exactly-once.
class SpooledAgent {
 public:
  SpooledAgent(const TestDir& dir, std::vector<LogInput> inputs, SpoolOptions options) {
    spool_ = OpenSpool(dir / "spool", options);
    TailerOptions tailer_options;
    tailer_options.ack_persist_interval = absl::ZeroDuration();
    tailer_ = std::make_unique<LogTailer>(std::move(inputs), dir / "offsets.json", "agt-test",
                                          spool_.get(), tailer_options);
    EXPECT_TRUE(tailer_->Recover().ok());
  }
  void Poll() {
    absl::Status status = tailer_->Poll();
    ASSERT_TRUE(status.ok()) << status;
  }
  std::vector<std::pair<uint64_t, std::string>> All(uint64_t after = 0) {
    std::vector<std::pair<uint64_t, std::string>> out;
    for (const v1::Event& event :
         spool_->Next(after, 1 << 20, kBig, absl::ZeroDuration(), absl::Now())) {
      out.emplace_back(event.seq(), event.log().line());
    }
    return out;
  }
  DiskSpool& spool() { return *spool_; }
  LogTailer& tailer() { return *tailer_; }

 private:
  std::unique_ptr<DiskSpool> spool_;
  std::unique_ptr<LogTailer> tailer_;
};

using SeqLines = std::vector<std::pair<uint64_t, std::string>>;

std::string OffsetsText(const TestDir& dir) {
  std::ifstream in(dir / "offsets.json");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(SpooledTailerTest, OffsetsAdvanceOnceSpooledAndRestartReplaysFromSpool) {
  TestDir dir;
  const auto log = dir / "a.log";
  Append(log, "a1\na2\na3\n");
  SpoolOptions options;
  options.fsync = SpoolFsync::kAlways;
  std::vector<LogInput> inputs = {{log.string(), StartAt::kBeginning}};
  {
    SpooledAgent agent(dir, inputs, options);
    agent.Poll();
    agent.Poll();  // releases the runs: they are durably in the spool
    ASSERT_TRUE(agent.tailer().Checkpoint().ok());
    const std::string offsets = OffsetsText(dir);
    EXPECT_NE(offsets.find("\"released_seq\": 3"), std::string::npos) << offsets;
    EXPECT_NE(offsets.find("\"acked_offset\": 9"), std::string::npos) << offsets;
    agent.spool().Ack(1);
  }  // nothing more acknowledged
  // The log file loses its old lines (say, rotated away and deleted): the
  // spool still has them.
  std::filesystem::remove(log);
  Append(log, "b1\n");
  SpooledAgent agent(dir, inputs, options);
  agent.Poll();
  EXPECT_EQ(agent.All(), SeqLines({{2, "a2"}, {3, "a3"}, {4, "b1"}}));
}

TEST(SpooledTailerTest, CrashBeforeSpoolSyncReReadsWhatTheSpoolLost) {
  TestDir dir;
  const auto log = dir / "a.log";
  Append(log, "l1\nl2\nl3\nl4\nl5\n");
  SpoolOptions options;
  options.fsync = SpoolFsync::kInterval;
  options.fsync_interval = absl::Hours(1);  // nothing durable before the "crash"
  std::vector<LogInput> inputs = {{log.string(), StartAt::kBeginning}};
  {
    SpooledAgent agent(dir, inputs, options);
    agent.Poll();
    agent.Poll();
    EXPECT_EQ(agent.spool().LastSeq(), 5u);
    EXPECT_EQ(OffsetsText(dir).find("\"released_seq\": 5"), std::string::npos);
  }
  // The power went: the spool segment lost its tail in the middle of record 4.
  auto segments = SegmentFiles(dir / "spool");
  ASSERT_EQ(segments.size(), 1u);
  std::filesystem::resize_file(segments[0], std::filesystem::file_size(segments[0]) * 7 / 10);
  SpooledAgent agent(dir, inputs, options);
  Append(log, "l6\n");
  agent.Poll();
  EXPECT_EQ(agent.All(),
            SeqLines({{1, "l1"}, {2, "l2"}, {3, "l3"}, {4, "l4"}, {5, "l5"}, {6, "l6"}}));
}

TEST(SpooledTailerTest, FullSpoolPausesReadingAndOffsetsStayPut) {
  TestDir dir;
  const auto log = dir / "a.log";
  std::string data;
  for (int i = 1; i <= 200; ++i) data += "line " + std::to_string(i) + "\n";
  Append(log, data);
  SpoolOptions options;
  options.fsync = SpoolFsync::kNever;
  options.max_bytes = 600;  // a few records; Room() lets one poll pass the cap
  options.segment_bytes = 200;
  std::vector<LogInput> inputs = {{log.string(), StartAt::kBeginning}};
  SpooledAgent agent(dir, inputs, options);
  for (int i = 0; i < 100 && agent.spool().Room() > 0; ++i) agent.Poll();
  EXPECT_EQ(agent.spool().Room(), 0u);
  const uint64_t held = agent.spool().LastSeq();
  EXPECT_LT(held, 200u);
  agent.Poll();
  agent.Poll();
  EXPECT_EQ(agent.spool().LastSeq(), held);
  EXPECT_EQ(agent.tailer().next_seq(), held + 1);  // nothing read beyond the spool
  // Acknowledge as a server would, until everything went through.
  uint64_t acked = 0;
  std::vector<std::string> lines;
  for (int round = 0; round < 1000 && acked < 200; ++round) {
    for (const auto& [seq, line] : agent.All(acked)) lines.push_back(line);
    acked = agent.spool().LastSeq();
    agent.spool().Ack(acked);
    agent.Poll();
  }
  ASSERT_EQ(lines.size(), 200u);
  for (int i = 1; i <= 200; ++i) EXPECT_EQ(lines[i - 1], "line " + std::to_string(i));
}

}  // namespace
}  // namespace siper::agent

#include "agent/pending_events.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace siper::agent {
namespace {

constexpr size_t kBig = size_t{1} << 30;

std::vector<v1::Event> Events(uint64_t first, uint64_t last) {
  std::vector<v1::Event> events;
  for (uint64_t seq = first; seq <= last; ++seq) {
    v1::Event event;
    event.set_seq(seq);
    events.push_back(event);
  }
  return events;
}

TEST(MemoryPendingEventsTest, RoomShrinksAndAckReleases) {
  MemoryPendingEvents pending(5, kBig, 0);
  EXPECT_EQ(pending.Room(), 5u);
  pending.Append(Events(1, 5));
  EXPECT_EQ(pending.Room(), 0u);
  pending.Ack(3);
  EXPECT_EQ(pending.AckedSeq(), 3u);
  EXPECT_EQ(pending.Size(), 2u);
  EXPECT_EQ(pending.Room(), 3u);
  pending.Ack(2);  // older acks change nothing
  EXPECT_EQ(pending.AckedSeq(), 3u);
}

TEST(MemoryPendingEventsTest, NextReturnsAfterSeqUpToMax) {
  MemoryPendingEvents pending(100, kBig, 0);
  pending.Append(Events(1, 10));
  auto batch = pending.Next(4, 3, kBig, absl::ZeroDuration(), absl::Now());
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].seq(), 5u);
  EXPECT_EQ(batch[2].seq(), 7u);
  EXPECT_TRUE(pending.Next(10, 3, kBig, absl::ZeroDuration(), absl::Now()).empty());
}

TEST(MemoryPendingEventsTest, BytesBoundRoomAndBatches) {
  MemoryPendingEvents pending(100, 250, 0);
  std::vector<v1::Event> events = Events(1, 3);
  for (v1::Event& event : events) event.mutable_log()->set_line(std::string(100, 'x'));
  pending.Append(std::move(events));
  EXPECT_EQ(pending.Room(), 0u);  // over 250 bytes held
  auto batch = pending.Next(0, 10, 250, absl::ZeroDuration(), absl::Now());
  EXPECT_EQ(batch.size(), 2u);
  batch = pending.Next(0, 10, 1, absl::ZeroDuration(), absl::Now());
  EXPECT_EQ(batch.size(), 1u);  // at least one, however large
  pending.Ack(2);
  EXPECT_GT(pending.Room(), 0u);
}

TEST(MemoryPendingEventsTest, AppendSkipsAcknowledged) {
  MemoryPendingEvents pending(100, kBig, 5);
  pending.Append(Events(3, 7));
  EXPECT_EQ(pending.Size(), 2u);
}

TEST(MemoryPendingEventsTest, NextWaitsForEventsAndLingers) {
  MemoryPendingEvents pending(100, kBig, 0);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pending.Append(Events(1, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pending.Append(Events(2, 2));
  });
  // Lingers long enough for the second event (no wall-clock assertion on speed).
  auto batch = pending.Next(0, 2, kBig, absl::Seconds(10), absl::Now() + absl::Seconds(10));
  producer.join();
  EXPECT_EQ(batch.size(), 2u);
}

TEST(MemoryPendingEventsTest, WakeEndsWaiting) {
  MemoryPendingEvents pending(100, kBig, 0);
  std::atomic<bool> returned{false};
  std::thread waker([&] {
    while (!returned) {
      pending.Wake();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  auto batch = pending.Next(0, 2, kBig, absl::Hours(1), absl::Now() + absl::Hours(1));
  returned = true;
  waker.join();
  EXPECT_TRUE(batch.empty());
}

}  // namespace
}  // namespace siper::agent

// The UDP syslog listener on real sockets (loopback): what a datagram becomes,
// and that every datagram lost is counted (spool full, queue full, kernel
// receive buffer full).
#include "agent/syslog_udp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/pending_events.h"
#include "tests/udp_sender.h"

namespace siper::agent {
namespace {

using siper::testing::UdpSender;

SyslogUdpInput Loopback(uint64_t receive_buffer_bytes = 0, size_t max_message_bytes = 8192) {
  SyslogUdpInput input;
  input.enabled = true;
  input.listen = "127.0.0.1:0";
  input.host = "127.0.0.1";
  input.port = 0;
  input.receive_buffer_bytes = receive_buffer_bytes;
  input.max_message_bytes = max_message_bytes;
  return input;
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::vector<v1::Event> TakeAll(SyslogUdpListener& listener, size_t count) {
  std::vector<v1::Event> out;
  WaitFor([&] {
    for (v1::Event& e : listener.Take(SIZE_MAX)) out.push_back(std::move(e));
    return out.size() >= count;
  });
  return out;
}

class Running {
 public:
  explicit Running(SyslogUdpListener& listener)
      : listener_(listener), thread_([&listener] { listener.Run(); }) {}
  ~Running() {
    listener_.Stop();
    thread_.join();
  }

 private:
  SyslogUdpListener& listener_;
  std::thread thread_;
};

TEST(SyslogUdpTest, EachDatagramIsOneLineWithItsPeerAddress) {
  MemoryPendingEvents pending(100, 1 << 20, 0);
  int woken = 0;
  SyslogUdpListener listener(Loopback(0, 480), &pending, 1 << 20, [&] { ++woken; });
  ASSERT_TRUE(listener.Open().ok());
  ASSERT_TRUE(listener.bound().starts_with("127.0.0.1:")) << listener.bound();
  EXPECT_NE(listener.bound(), "127.0.0.1:0");  // the port the kernel chose
  Running running(listener);
  UdpSender sender(listener.bound());
  // The message claims another host; the address stored is the socket's peer.
  sender.Send("<34>Oct 11 22:14:15 10.9.9.9 su: 'su root' failed for lonvick on /dev/pts/8\n");
  sender.Send("<165>1 2026-11-28T10:00:00.003Z sw-core-1 ssh - ID47 - login ok\r\n");
  sender.Send("");                     // carries nothing: ignored
  sender.Send(std::string(600, 'x'));  // over max_message_bytes: cut and marked
  sender.Send(std::string("bin\0\xff\xfe", 6) + "ary");
  const std::vector<v1::Event> events = TakeAll(listener, 4);
  ASSERT_EQ(events.size(), 4u);
  const std::string peer = absl::StrCat("127.0.0.1:", sender.port());
  for (const v1::Event& e : events) {
    EXPECT_EQ(e.log().source(), "syslog-udp:127.0.0.1:0");
    EXPECT_EQ(e.log().source_address(), peer);
    EXPECT_GT(e.agent_time_ns(), 0);
    EXPECT_EQ(e.seq(), 0u);  // numbered by the tail thread, not here
  }
  EXPECT_EQ(events[0].log().line(),
            "<34>Oct 11 22:14:15 10.9.9.9 su: 'su root' failed for lonvick on /dev/pts/8");
  EXPECT_FALSE(events[0].log().truncated());
  EXPECT_EQ(events[1].log().line(),
            "<165>1 2026-11-28T10:00:00.003Z sw-core-1 ssh - ID47 - login ok");
  EXPECT_EQ(events[2].log().line(), std::string(480, 'x'));
  EXPECT_TRUE(events[2].log().truncated());
  EXPECT_EQ(events[3].log().line(), std::string("bin\0\xff\xfe", 6) + "ary");
  EXPECT_EQ(listener.drops(), 0u);
  EXPECT_GT(woken, 0);
}

TEST(SyslogUdpTest, SpoolFullDropsAndCountsThenReceivesAgain) {
  MemoryPendingEvents pending(1, 1 << 20, 0);
  std::vector<v1::Event> one(1);
  one[0].set_seq(1);
  pending.Append(std::move(one));
  ASSERT_EQ(pending.Room(), 0u);
  SyslogUdpListener listener(Loopback(), &pending, 1 << 20, nullptr);
  ASSERT_TRUE(listener.Open().ok());
  Running running(listener);
  UdpSender sender(listener.bound());
  for (int i = 0; i < 10; ++i) sender.Send(absl::StrCat("<13>dropped ", i));
  ASSERT_TRUE(WaitFor([&] { return listener.received() == 10; })) << listener.received();
  EXPECT_EQ(listener.drops(), 10u);
  EXPECT_TRUE(listener.Take(SIZE_MAX).empty());
  pending.Ack(1);  // room again
  sender.Send("<13>kept");
  const std::vector<v1::Event> events = TakeAll(listener, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].log().line(), "<13>kept");
  EXPECT_EQ(listener.drops(), 10u);
}

TEST(SyslogUdpTest, FullQueueDropsAndCounts) {
  MemoryPendingEvents pending(1000, 1 << 20, 0);
  SyslogUdpListener listener(Loopback(), &pending, 1000, nullptr);  // two 400-byte datagrams fit
  ASSERT_TRUE(listener.Open().ok());
  Running running(listener);
  UdpSender sender(listener.bound());
  for (int i = 0; i < 5; ++i) sender.Send(std::string(400, static_cast<char>('a' + i)));
  ASSERT_TRUE(WaitFor([&] { return listener.received() == 5; }));
  EXPECT_EQ(listener.drops(), 3u);
  const std::vector<v1::Event> events = listener.Take(SIZE_MAX);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].log().line(), std::string(400, 'a'));
  EXPECT_EQ(events[1].log().line(), std::string(400, 'b'));
}

// Nobody reads while 300 datagrams arrive at a tiny receive buffer: the kernel
// drops most of them, and its count (SO_RXQ_OVFL) makes up the difference.
TEST(SyslogUdpTest, KernelReceiveBufferDropsAreCounted) {
  MemoryPendingEvents pending(100000, 64 << 20, 0);
  SyslogUdpListener listener(Loopback(4096), &pending, 16 << 20, nullptr);
  ASSERT_TRUE(listener.Open().ok());
  UdpSender sender(listener.bound());
  constexpr int kSent = 300;
  for (int i = 0; i < kSent; ++i) sender.Send(absl::StrCat("<13>", std::string(1000, 'k'), i));
  Running running(listener);
  // The kernel's count comes with the next datagram received after the drops:
  // one more once what was buffered has been read.
  ASSERT_TRUE(WaitFor([&] { return listener.received() > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  sender.Send("<13>last");
  ASSERT_TRUE(WaitFor([&] { return listener.received() + listener.drops() == kSent + 1; }))
      << "received " << listener.received() << ", drops " << listener.drops();
  EXPECT_GT(listener.drops(), 0u);
  EXPECT_LT(listener.received(), static_cast<uint64_t>(kSent));
  const std::vector<v1::Event> events = listener.Take(SIZE_MAX);
  EXPECT_EQ(events.size(), listener.received());
  EXPECT_EQ(events.back().log().line(), "<13>last");
}

TEST(SyslogUdpTest, BindErrorsNameTheAddress) {
  MemoryPendingEvents pending(10, 1 << 20, 0);
  SyslogUdpListener first(Loopback(), &pending, 1 << 20, nullptr);
  ASSERT_TRUE(first.Open().ok());
  SyslogUdpInput same = Loopback();
  same.port = std::stoi(first.bound().substr(first.bound().rfind(':') + 1));
  same.listen = first.bound();
  SyslogUdpListener second(same, &pending, 1 << 20, nullptr);
  const absl::Status status = second.Open();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(first.bound()), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("in use"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace siper::agent

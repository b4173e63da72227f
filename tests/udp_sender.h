// For tests of the agent's syslog_udp source: a UDP socket bound to
// 127.0.0.1 (an ephemeral port, so the receiver sees a known peer) that sends
// datagrams to one IPv4 address, as a switch or firewall sends syslog.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace siper::testing {

class UdpSender {
 public:
  // `to` is "IPV4:PORT".
  explicit UdpSender(const std::string& to) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in self{};
    self.sin_family = AF_INET;
    self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&self), sizeof(self)), 0);
    socklen_t len = sizeof(self);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&self), &len);
    port_ = ntohs(self.sin_port);
    const size_t colon = to.rfind(':');
    to_.sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, to.substr(0, colon).c_str(), &to_.sin_addr), 1) << to;
    to_.sin_port = htons(static_cast<uint16_t>(std::stoi(to.substr(colon + 1))));
  }
  explicit UdpSender(int to_port) : UdpSender("127.0.0.1:" + std::to_string(to_port)) {}
  ~UdpSender() { close(fd_); }
  UdpSender(const UdpSender&) = delete;
  UdpSender& operator=(const UdpSender&) = delete;

  void Send(const std::string& datagram) {
    ASSERT_EQ(sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to_),
                     sizeof(to_)),
              static_cast<ssize_t>(datagram.size()));
  }
  int port() const { return port_; }  // the sender's own port

 private:
  int fd_ = -1;
  int port_ = 0;
  sockaddr_in to_{};
};

}  // namespace siper::testing

#include "agent/syslog_udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace siper::agent {
namespace {

constexpr unsigned kBatch = 8;  // datagrams per recvmmsg

// "IP:PORT", "[IPV6]:PORT"; an IPv4-mapped IPv6 peer is shown as IPv4.
std::string PeerText(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(v4->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], text, sizeof(text));
      return absl::StrCat(text, ":", ntohs(v6->sin6_port));
    }
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", ntohs(v6->sin6_port));
  }
  return "unknown";
}

}  // namespace

SyslogUdpListener::SyslogUdpListener(SyslogUdpInput input, PendingEvents* pending,
                                     size_t queue_bytes, std::function<void()> on_queued)
    : input_(std::move(input)),
      source_(absl::StrCat("syslog-udp:", input_.listen)),
      pending_(pending),
      queue_bytes_(queue_bytes),
      on_queued_(std::move(on_queued)) {}

SyslogUdpListener::~SyslogUdpListener() {
  if (fd_ >= 0) close(fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

absl::Status SyslogUdpListener::Open() {
  auto fail = [&](const char* what) {
    const std::string message = absl::StrCat(input_.listen, ": ", what, ": ", std::strerror(errno));
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return absl::FailedPreconditionError(message);
  };
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
      inet_pton(AF_INET, input_.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(input_.port));
    len = sizeof(sockaddr_in);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
             inet_pton(AF_INET6, input_.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(input_.port));
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(input_.listen, ": not a numeric address"));
  }
  fd_ = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return fail("cannot create a UDP socket");
  if (input_.receive_buffer_bytes > 0) {
    const int size = static_cast<int>(input_.receive_buffer_bytes);
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0) {
      return fail("cannot set SO_RCVBUF");
    }
  }
  // The kernel's count of datagrams dropped for want of buffer space comes
  // with every datagram received.
  const int one = 1;
  if (setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0) {
    return fail("cannot set SO_RXQ_OVFL");
  }
  if (bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    return fail(errno == EACCES ? "cannot bind (a port below 1024 needs CAP_NET_BIND_SERVICE)"
                                : "cannot bind");
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return fail("getsockname");
  }
  bound_ = PeerText(bound);
  int rcvbuf = 0;
  socklen_t rcvbuf_len = sizeof(rcvbuf);
  (void)getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rcvbuf_len);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return fail("eventfd");
  spdlog::info("syslog_udp: listening on {} (receive buffer {} bytes, messages up to {} bytes)",
               bound_, rcvbuf, input_.max_message_bytes);
  return absl::OkStatus();
}

void SyslogUdpListener::Stop() {
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
}

void SyslogUdpListener::Drop(uint64_t count) {
  dropped_here_ += count;
  const absl::Time now = absl::Now();
  // One line when dropping starts, then at most one a minute with the count.
  if (!dropping_ || now - last_drop_log_ >= absl::Minutes(1)) {
    spdlog::warn(
        "syslog_udp: spool full or queue full: dropping datagrams ({} dropped here so far, {} by "
        "the kernel)",
        dropped_here_.load(), kernel_drops_.load());
    last_drop_log_ = now;
    logged_drops_ = dropped_here_.load();
  }
  dropping_ = true;
}

void SyslogUdpListener::Run() {
  const size_t cap = input_.max_message_bytes;
  // One byte more than the cap tells a cut datagram from one exactly at it.
  std::vector<char> buffers(kBatch * (cap + 1));
  sockaddr_storage peers[kBatch];
  iovec iov[kBatch];
  alignas(cmsghdr) char controls[kBatch][CMSG_SPACE(sizeof(uint32_t))];
  mmsghdr msgs[kBatch];
  while (true) {
    pollfd pfds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("syslog_udp: poll: {}", std::strerror(errno));
      return;
    }
    if (pfds[1].revents != 0) return;
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {buffers.data() + i * (cap + 1), cap + 1};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_name = &peers[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = controls[i];
      msgs[i].msg_hdr.msg_controllen = sizeof(controls[i]);
      msgs[i].msg_len = 0;
    }
    const int n = recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        spdlog::error("syslog_udp: receive: {}", std::strerror(errno));
      }
      continue;
    }
    received_ += static_cast<uint64_t>(n);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    // Room in the spool, asked once per batch of datagrams.
    const bool spool_room = pending_->Room() > 0;
    uint64_t dropped = 0;
    size_t queued = 0;
    {
      std::lock_guard lock(mu_);
      for (int i = 0; i < n; ++i) {
        msghdr& h = msgs[i].msg_hdr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t overflows = 0;
            std::memcpy(&overflows, CMSG_DATA(c), sizeof(overflows));
            if (overflows > kernel_drops_) kernel_drops_ = overflows;
          }
        }
        size_t size = msgs[i].msg_len;
        const bool truncated = size > cap || (h.msg_flags & MSG_TRUNC) != 0;
        if (size > cap) size = cap;
        const char* data = static_cast<const char*>(iov[i].iov_base);
        while (size > 0 &&
               (data[size - 1] == '\n' || data[size - 1] == '\r' || data[size - 1] == '\0')) {
          --size;
        }
        if (size == 0 && !truncated) continue;  // an empty datagram carries nothing
        if (!spool_room || queued_bytes_ + size > queue_bytes_) {
          ++dropped;
          continue;
        }
        v1::Event event;
        event.set_agent_time_ns(now);
        v1::LogEvent* log = event.mutable_log();
        log->set_source(source_);
        log->set_line(data, size);
        log->set_truncated(truncated);
        log->set_source_address(PeerText(peers[i]));
        queued_bytes_ += size;
        queue_.push_back(std::move(event));
        ++queued;
      }
    }
    if (dropped > 0) {
      Drop(dropped);
    } else if (dropping_ && queued > 0) {
      spdlog::info("syslog_udp: receiving again ({} datagrams dropped here, {} by the kernel)",
                   dropped_here_.load(), kernel_drops_.load());
      dropping_ = false;
    }
    if (queued > 0 && on_queued_) on_queued_();
  }
}

std::vector<v1::Event> SyslogUdpListener::Take(size_t max) {
  std::vector<v1::Event> out;
  std::lock_guard lock(mu_);
  while (!queue_.empty() && out.size() < max) {
    queued_bytes_ -= queue_.front().log().line().size();
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return out;
}

void SyslogUdpListener::PutBack(std::vector<v1::Event> events) {
  std::lock_guard lock(mu_);
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    queued_bytes_ += it->log().line().size();
    queue_.push_front(std::move(*it));
  }
}

bool SyslogUdpListener::urgent() const {
  std::lock_guard lock(mu_);
  return queued_bytes_ >= queue_bytes_ / 4;
}

bool SyslogUdpListener::has_queued() const {
  std::lock_guard lock(mu_);
  return !queue_.empty();
}

}  // namespace siper::agent

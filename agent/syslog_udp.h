// Syslog over UDP (RFC 5426; RFC 3164 and RFC 5424 messages alike): network
// devices that cannot run an agent (switches, firewalls, printers) send their
// syslog to the nearest one. Each datagram becomes one LogEvent: the line is
// the datagram's bytes (trailing newlines and NULs removed), the source is
// "syslog-udp:LISTEN", and `source_address` is the datagram's peer as the
// kernel reports it (IP:PORT), never text taken from the message.
//
// UDP cannot pause. Datagrams wait in a bounded queue for the tail thread to
// number and spool them; when the spool has no room or the queue is full
// they are dropped and counted, and so are the datagrams the kernel dropped
// because the socket's receive buffer was full (SO_RXQ_OVFL). drops() is
// what the heartbeat reports.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/pending_events.h"
#include "siper/v1/events.pb.h"

namespace siper::agent {

class SyslogUdpListener {
 public:
  // `pending` is asked for Room() before a datagram is queued; `on_queued` is
  // called (receiver thread) after datagrams were queued, to wake the tail
  // thread. `queue_bytes` bounds the datagrams waiting to be numbered.
  SyslogUdpListener(SyslogUdpInput input, PendingEvents* pending, size_t queue_bytes,
                    std::function<void()> on_queued);
  ~SyslogUdpListener();
  SyslogUdpListener(const SyslogUdpListener&) = delete;
  SyslogUdpListener& operator=(const SyslogUdpListener&) = delete;

  // Creates and binds the socket. The error names the address and why
  // (address in use, permission denied for a port below 1024, ...).
  [[nodiscard]] absl::Status Open();
  // "ADDRESS:PORT" actually bound (the port the kernel chose for port 0).
  const std::string& bound() const { return bound_; }

  // Receives until Stop() (its own thread).
  void Run();
  void Stop();

  // Up to `max` queued datagrams as events (no agent_id or seq yet), oldest
  // first. Put back what could not be numbered with PutBack (in front).
  std::vector<v1::Event> Take(size_t max);
  void PutBack(std::vector<v1::Event> events);
  bool has_queued() const;
  // A quarter of the queue's bound is used: the tail thread should not wait
  // out its read delay (the queue must not fill while the spool has room).
  bool urgent() const;

  // Datagrams lost: dropped here (spool full, queue full) plus dropped by
  // the kernel (receive buffer full). Only grows.
  uint64_t drops() const { return dropped_here_.load() + kernel_drops_.load(); }
  uint64_t received() const { return received_.load(); }

 private:
  void Drop(uint64_t count);

  const SyslogUdpInput input_;
  const std::string source_;
  PendingEvents* const pending_;
  const size_t queue_bytes_;
  const std::function<void()> on_queued_;
  int fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::string bound_;

  mutable std::mutex mu_;
  std::deque<v1::Event> queue_;
  size_t queued_bytes_ = 0;

  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> dropped_here_{0};
  std::atomic<uint64_t> kernel_drops_{0};
  bool dropping_ = false;  // receiver thread: for one log line per episode
  absl::Time last_drop_log_ = absl::InfinitePast();
  uint64_t logged_drops_ = 0;
};

}  // namespace siper::agent

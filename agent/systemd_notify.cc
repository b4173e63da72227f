#include "agent/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"

namespace siper::agent {

void NotifySystemd(std::string_view state) {
  // getenv is called from the main thread only, and nothing here sets variables.
  const char* socket_path = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe)
  if (socket_path == nullptr || socket_path[0] == '\0') return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const size_t length = std::strlen(socket_path);
  if (length >= sizeof(address.sun_path)) return;
  std::memcpy(address.sun_path, socket_path, length);
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // abstract namespace
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  // Best effort: a lost notice shows up in systemd's status, not as lost data.
  (void)sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&address), size);
  close(fd);
}

std::optional<absl::Duration> SystemdWatchdogInterval() {
  const char* usec = std::getenv("WATCHDOG_USEC");  // NOLINT(concurrency-mt-unsafe)
  uint64_t value = 0;
  if (usec == nullptr || !absl::SimpleAtoi(usec, &value) || value == 0) return std::nullopt;
  if (const char* pid = std::getenv("WATCHDOG_PID");  // NOLINT(concurrency-mt-unsafe)
      pid != nullptr) {
    int64_t owner = 0;
    if (absl::SimpleAtoi(pid, &owner) && owner != getpid()) return std::nullopt;
  }
  return absl::Microseconds(static_cast<int64_t>(value));
}

}  // namespace siper::agent

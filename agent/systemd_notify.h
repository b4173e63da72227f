// sd_notify(3) without linking libsystemd: readiness, watchdog and stopping
// notices as datagrams to $NOTIFY_SOCKET. Does nothing outside systemd.
#pragma once

#include <optional>
#include <string_view>

#include "absl/time/time.h"

namespace siper::agent {

// Sends `state` (e.g. "READY=1") when the service manager asked for notices.
void NotifySystemd(std::string_view state);

// The watchdog interval systemd expects pings within (WatchdogSec=), if any.
std::optional<absl::Duration> SystemdWatchdogInterval();

}  // namespace siper::agent

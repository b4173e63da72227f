// The agent's events-per-second cap (limits.events_per_s): a token bucket the
// tail thread asks before reading. Sources that can pause (log files, the
// journal, FIM's scanner) read only what it allows and go on later, so being
// over the cap slows them down without losing anything.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace siper::agent {

class EventRateLimiter {
 public:
  // `per_second` 0: no cap (Available() is SIZE_MAX). `burst`: the bucket's
  // size, what may be read at once after a quiet time (at least 1).
  EventRateLimiter(uint64_t per_second, uint64_t burst);

  // How many events may be read now.
  size_t Available(absl::Time now);
  // `count` events were read (may exceed Available(): the bucket goes into
  // debt and the next reads wait for it).
  void Take(size_t count, absl::Time now);
  // How long until at least one event may be read (zero: now).
  absl::Duration WaitFor(absl::Time now);

  bool enabled() const { return per_second_ > 0; }

 private:
  void Refill(absl::Time now);

  const uint64_t per_second_;
  const double burst_;
  double tokens_;
  absl::Time last_ = absl::InfinitePast();
};

}  // namespace siper::agent

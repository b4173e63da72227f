#include "agent/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace siper::agent {

EventRateLimiter::EventRateLimiter(uint64_t per_second, uint64_t burst)
    : per_second_(per_second),
      burst_(static_cast<double>(std::max<uint64_t>(burst, 1))),
      tokens_(burst_) {}

void EventRateLimiter::Refill(absl::Time now) {
  if (last_ == absl::InfinitePast() || now < last_) {
    last_ = now;
    return;
  }
  tokens_ = std::min(
      burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * static_cast<double>(per_second_));
  last_ = now;
}

size_t EventRateLimiter::Available(absl::Time now) {
  if (per_second_ == 0) return SIZE_MAX;
  Refill(now);
  return tokens_ < 1 ? 0 : static_cast<size_t>(std::floor(tokens_));
}

void EventRateLimiter::Take(size_t count, absl::Time now) {
  if (per_second_ == 0 || count == 0) return;
  Refill(now);
  tokens_ -= static_cast<double>(count);
}

absl::Duration EventRateLimiter::WaitFor(absl::Time now) {
  if (per_second_ == 0) return absl::ZeroDuration();
  Refill(now);
  if (tokens_ >= 1) return absl::ZeroDuration();
  return absl::Seconds((1 - tokens_) / static_cast<double>(per_second_));
}

}  // namespace siper::agent

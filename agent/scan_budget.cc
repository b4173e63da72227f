#include "agent/scan_budget.h"

#include <time.h>

#include <algorithm>

#include "absl/time/clock.h"

namespace siper::agent {

ScanBudget::ScanBudget(ScanBudgetOptions options) : options_(options) {}

absl::Duration ScanBudget::ThreadCpu() {
  struct timespec ts {};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

void ScanBudget::Charge(uint64_t bytes) {
  if (!enabled()) return;
  const absl::Time now = absl::Now();
  const absl::Duration cpu = ThreadCpu();
  if (!started_) {
    // The first charge opens the account; what it reports counts from here.
    started_ = true;
    base_wall_ = now;
    base_cpu_ = cpu;
    bytes_ = bytes;
    return;
  }
  bytes_ += bytes;
  // The wall time the work done since the base may take at the least.
  absl::Duration needed;
  if (options_.cpu_fraction > 0) {
    needed = std::max(needed, (cpu - base_cpu_) / options_.cpu_fraction);
  }
  if (options_.io_bytes_per_s > 0) {
    needed = std::max(needed, absl::Seconds(static_cast<double>(bytes_) /
                                            static_cast<double>(options_.io_bytes_per_s)));
  }
  const absl::Duration elapsed = now - base_wall_;
  if (needed > elapsed) {
    const absl::Duration sleep = needed - elapsed;
    absl::SleepFor(sleep);
    slept_ += sleep;
  } else if (elapsed - needed > options_.max_credit) {
    // Under budget for a while (idle): keep at most max_credit of head start.
    base_wall_ = now - options_.max_credit;
    base_cpu_ = cpu;
    bytes_ = 0;
  }
}

}  // namespace siper::agent

// FIM's CPU and I/O budget (fim_cpu_percent, fim_io_bytes_per_s): the FIM
// thread charges what it read and the CPU time it used (CLOCK_THREAD_CPUTIME_ID)
// and sleeps whenever it got ahead of what the budget allows for the wall
// time passed. Quiet periods earn at most `max_credit` of head start, so the
// budget holds in steady state and a burst after a long pause stays short.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/time/time.h"

namespace siper::agent {

struct ScanBudgetOptions {
  double cpu_fraction = 0.05;          // of one core; 0: no CPU limit
  uint64_t io_bytes_per_s = 32 << 20;  // 0: no I/O limit
  absl::Duration max_credit = absl::Seconds(1);
};

class ScanBudget {
 public:
  explicit ScanBudget(ScanBudgetOptions options = {});

  // Called on the scanning thread after reading `bytes` (0: after other work,
  // such as a directory listing): sleeps as long as the budget requires.
  void Charge(uint64_t bytes);

  bool enabled() const { return options_.cpu_fraction > 0 || options_.io_bytes_per_s > 0; }
  // Time spent sleeping so far (for tests and the log).
  absl::Duration slept() const { return slept_; }

 private:
  static absl::Duration ThreadCpu();

  const ScanBudgetOptions options_;
  bool started_ = false;
  absl::Time base_wall_;
  absl::Duration base_cpu_;
  uint64_t bytes_ = 0;  // since base_wall_
  absl::Duration slept_;
};

}  // namespace siper::agent

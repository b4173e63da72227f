// The events/s cap and FIM's CPU and I/O budget. Behaviour, not speed: a
// throttled scan must take at least the time its budget implies (with a
// generous margin), and a budget that is off must not sleep at all.
#include <gtest/gtest.h>
#include <time.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "agent/fim.h"
#include "agent/rate_limit.h"
#include "agent/scan_budget.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::TestDir;

absl::Duration ThreadCpu() {
  struct timespec ts {};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

void WriteBytes(const std::filesystem::path& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::string chunk(1 << 20, '\0');
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 131 % 251);
  for (size_t done = 0; done < bytes; done += chunk.size()) out.write(chunk.data(), chunk.size());
}

TEST(EventRateLimiterTest, OffAllowsEverything) {
  EventRateLimiter limiter(0, 0);
  EXPECT_FALSE(limiter.enabled());
  const absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Available(t), SIZE_MAX);
  limiter.Take(1000000, t);
  EXPECT_EQ(limiter.Available(t), SIZE_MAX);
  EXPECT_EQ(limiter.WaitFor(t), absl::ZeroDuration());
}

TEST(EventRateLimiterTest, BurstThenTheRate) {
  EventRateLimiter limiter(100, 50);
  const absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Available(t), 50u);
  limiter.Take(50, t);
  EXPECT_EQ(limiter.Available(t), 0u);
  EXPECT_EQ(limiter.WaitFor(t), absl::Milliseconds(10));
  EXPECT_EQ(limiter.Available(t + absl::Milliseconds(100)), 10u);
  // Never more than the burst after a quiet time.
  EXPECT_EQ(limiter.Available(t + absl::Hours(1)), 50u);
  // Taking more than allowed is a debt the next reads wait for.
  limiter.Take(150, t + absl::Hours(1));
  EXPECT_EQ(limiter.Available(t + absl::Hours(1) + absl::Milliseconds(500)), 0u);
  EXPECT_EQ(limiter.Available(t + absl::Hours(1) + absl::Milliseconds(1010)), 1u);
}

TEST(ScanBudgetTest, IoCapMakesAScanTakeAtLeastItsShare) {
  TestDir dir;
  const size_t kBytes = 24 << 20;
  WriteBytes(dir / "big", kBytes);
  ScanBudgetOptions options;
  options.cpu_fraction = 0;
  options.io_bytes_per_s = 16 << 20;
  ScanBudget budget(options);
  const absl::Time start = absl::Now();
  auto hash = Sha256File(dir / "big", 1 << 20, &budget);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(hash.ok()) << hash.status();
  // 24 MiB at 16 MiB/s: 1.5 s, less the first 1 MiB read, which opens the account.
  EXPECT_GE(took, absl::Milliseconds(1300)) << took;
  EXPECT_GE(budget.slept(), absl::Milliseconds(1000)) << budget.slept();
}

TEST(ScanBudgetTest, CpuBudgetSleepsInProportionToTheCpuUsed) {
  TestDir dir;
  WriteBytes(dir / "big", 32 << 20);
  ScanBudgetOptions options;
  options.cpu_fraction = 0.05;
  options.io_bytes_per_s = 0;
  ScanBudget budget(options);
  const absl::Duration cpu_before = ThreadCpu();
  const absl::Time start = absl::Now();
  auto hash = Sha256File(dir / "big", 1 << 20, &budget);
  const absl::Duration took = absl::Now() - start;
  const absl::Duration cpu = ThreadCpu() - cpu_before;
  ASSERT_TRUE(hash.ok()) << hash.status();
  // At 5 % of a core, the wall time is at least 20x the CPU time used (less the
  // first chunk, which opens the account; half of it as margin).
  EXPECT_GE(took, cpu * 20 / 2) << "wall " << took << ", cpu " << cpu;
  EXPECT_GT(budget.slept(), absl::ZeroDuration());
}

TEST(ScanBudgetTest, BudgetOffNeverSleeps) {
  TestDir dir;
  WriteBytes(dir / "big", 8 << 20);
  ScanBudgetOptions options;
  options.cpu_fraction = 0;
  options.io_bytes_per_s = 0;
  ScanBudget budget(options);
  EXPECT_FALSE(budget.enabled());
  auto hash = Sha256File(dir / "big", 1 << 20, &budget);
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(budget.slept(), absl::ZeroDuration());
}

TEST(ScanBudgetTest, FimScanUsesTheBudget) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched");
  WriteBytes(dir / "watched" / "a", 4 << 20);
  WriteBytes(dir / "watched" / "b", 4 << 20);
  FimOptions options;
  options.use_inotify = false;
  options.budget.cpu_fraction = 0;
  options.budget.io_bytes_per_s = 4 << 20;
  FileIntegrityMonitor fim({{(dir / "watched").string(), false, {}}}, dir / "fim.json", options);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(fim.Start().ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(fim.TakeEvents().size(), 2u);
  // 8 MiB at 4 MiB/s: 2 s, less the first 1 MiB.
  EXPECT_GE(took, absl::Milliseconds(1500)) << took;
  EXPECT_GE(fim.throttled(), absl::Milliseconds(1000));

  options.budget.io_bytes_per_s = 0;
  FileIntegrityMonitor unthrottled({{(dir / "watched").string(), false, {}}}, dir / "fim2.json",
                                   options);
  ASSERT_TRUE(unthrottled.Start().ok());
  EXPECT_EQ(unthrottled.TakeEvents().size(), 2u);
  EXPECT_EQ(unthrottled.throttled(), absl::ZeroDuration());
}

}  // namespace
}  // namespace siper::agent

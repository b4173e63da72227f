#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace siper::cli {

bool Progress::StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {
  if (enabled_) thread_ = std::thread([this] { Run(); });
}

Progress::~Progress() { Finish(); }

void Progress::Update(uint64_t done, uint64_t total) {
  done_.store(done, std::memory_order_relaxed);
  total_.store(total, std::memory_order_relaxed);
}

std::string Progress::Line(int tick) const {
  static constexpr char kSpinner[] = {'|', '/', '-', '\\'};
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const uint64_t done = done_.load(std::memory_order_relaxed);
  const uint64_t total = total_.load(std::memory_order_relaxed);
  std::string line = absl::StrCat(label_, " ", std::string(1, kSpinner[tick % 4]));
  if (total > 0) {
    absl::StrAppend(&line, absl::StrFormat(" %d/%d (%.0f%%)", done, total,
                                           100.0 * static_cast<double>(done) / total));
  } else if (done > 0) {
    absl::StrAppend(&line, " ", done);
  }
  absl::StrAppend(&line, absl::StrFormat(" %.0fs", seconds));
  return line;
}

void Progress::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (int tick = 0; !stop_; ++tick) {
    // \r and "erase to end of line": the line is redrawn in place.
    std::fprintf(stderr, "\r%s\x1b[K", Line(tick).c_str());
    std::fflush(stderr);
    cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
  }
  std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
}

void Progress::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace siper::cli

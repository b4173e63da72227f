// A progress line on stderr for long operations (rule compile, backup, IOC import), shown
// only when stderr is a terminal so scripts and --json output never see it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace siper::cli {

class Progress {
 public:
  // Starts redrawing `label` with a spinner and the elapsed time, or with
  // "done/total (percent)" once Update is called with a total. Does nothing at all when
  // `enabled` is false (default: stderr is a terminal).
  explicit Progress(std::string label, bool enabled = StderrIsTerminal());
  ~Progress();  // Finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void Update(uint64_t done, uint64_t total = 0);
  // Stops redrawing and clears the line.
  void Finish();

  static bool StderrIsTerminal();

 private:
  void Run();
  std::string Line(int tick) const;

  const std::string label_;
  const bool enabled_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace siper::cli

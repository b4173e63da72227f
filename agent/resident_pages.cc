#include "agent/resident_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace siper::agent {

size_t ReleaseExecutableFilePages() {
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || exe.empty()) return 0;
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return 0;
  struct Range {
    uintptr_t start = 0;
    uintptr_t end = 0;
    bool candidate = false;  // our executable, not writable
    size_t rss_kib = 0;
    size_t anonymous_kib = 1;  // unknown until read: not released
  };
  std::vector<Range> ranges;
  std::string line;
  while (std::getline(smaps, line)) {
    unsigned long start = 0;
    unsigned long end = 0;
    char perms[8] = {};
    unsigned long long offset = 0;
    char dev[16] = {};
    unsigned long inode = 0;
    int path_at = 0;
    // A mapping's header: "start-end perms offset dev inode [path]".
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %llx %15s %lu %n", &start, &end, perms, &offset, dev,
                    &inode, &path_at) >= 6 &&
        path_at > 0) {
      Range range;
      range.start = start;
      range.end = end;
      range.candidate = perms[1] != 'w' &&
                        line.compare(static_cast<size_t>(path_at), std::string::npos, exe) == 0;
      ranges.push_back(range);
      continue;
    }
    if (ranges.empty()) continue;
    size_t kib = 0;
    if (std::sscanf(line.c_str(), "Rss: %zu kB", &kib) == 1) {
      ranges.back().rss_kib = kib;
    } else if (std::sscanf(line.c_str(), "Anonymous: %zu kB", &kib) == 1) {
      ranges.back().anonymous_kib = kib;
    }
  }
  size_t released = 0;
  for (const Range& range : ranges) {
    if (!range.candidate || range.anonymous_kib != 0 || range.rss_kib == 0) continue;
    if (madvise(reinterpret_cast<void*>(range.start), range.end - range.start, MADV_DONTNEED) ==
        0) {
      released += range.rss_kib;
    }
  }
  return released;
}

}  // namespace siper::agent

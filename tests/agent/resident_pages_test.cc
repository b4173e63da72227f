// ReleaseExecutableFilePages on this test binary: the executable's code and
// constants stop being resident, and what must stay (data, relocated
// read-only data such as vtables) still works afterwards.
#include "agent/resident_pages.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace siper::agent {
namespace {

// Resident KiB of this executable's mappings: {not writable, writable}.
std::pair<size_t, size_t> ExecutableRssKib() {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool ours = false;
  bool writable = false;
  size_t readonly_kib = 0;
  size_t writable_kib = 0;
  while (std::getline(smaps, line)) {
    unsigned long start = 0;
    unsigned long end = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) ==
            3 &&
        path_at > 0) {
      ours = line.substr(static_cast<size_t>(path_at)) == exe;
      writable = perms[1] == 'w';
      continue;
    }
    size_t kib = 0;
    if (ours && std::sscanf(line.c_str(), "Rss: %zu kB", &kib) == 1) {
      (writable ? writable_kib : readonly_kib) += kib;
    }
  }
  return {readonly_kib, writable_kib};
}

struct Shape {
  virtual ~Shape() = default;
  virtual int Sides() const = 0;
};
struct Triangle : Shape {
  int Sides() const override { return 3; }
};
struct Square : Shape {
  int Sides() const override { return 4; }
};

// A table of pointers: relocated at load time (RELRO in a PIE).
const char* const kNames[] = {"zero", "one", "two", "three", "four"};

TEST(ResidentPagesTest, UnmapsTheExecutablesCodeAndKeepsWhatWasRelocated) {
  const auto [readonly_before, writable_before] = ExecutableRssKib();
  ASSERT_GT(readonly_before, 0u) << "no resident code of "
                                 << "/proc/self/exe"
                                 << " found";
  const size_t released = ReleaseExecutableFilePages();
  const auto [readonly_after, writable_after] = ExecutableRssKib();
  EXPECT_GT(released, 0u);
  // Some pages come straight back (this test's own code and what it calls,
  // with their fault-around neighbours), most do not.
  EXPECT_LT(readonly_after, readonly_before) << "released " << released << " KiB";
  EXPECT_EQ(writable_after, writable_before) << "writable mappings must not be touched";

  // Virtual calls go through vtables and kNames through pointers relocated at
  // load time: had their pages been dropped, these would crash or be wrong.
  std::unique_ptr<Shape> shapes[] = {std::make_unique<Triangle>(), std::make_unique<Square>()};
  int sides = 0;
  for (const auto& shape : shapes) sides += shape->Sides();
  EXPECT_EQ(sides, 7);
  EXPECT_EQ(std::string(kNames[sides - 4]), "three");

  // A second call finds far less to release.
  EXPECT_LT(ReleaseExecutableFilePages(), released);
}

}  // namespace
}  // namespace siper::agent

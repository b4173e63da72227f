// SHA-256 throughput of the FIM hasher (agent/fim.h Sha256File) beside
// `sha256sum` on the same files in the same run, on cached files: a few large
// files (MB/s) and many small ones (files/s). Prints a Markdown table.
//
//   fim_hash_bench [--dir DIR] [--large-mib N] [--large-files N] [--small-files N]
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "agent/fim.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void WriteRandom(const std::filesystem::path& path, size_t bytes, std::mt19937_64& rng) {
  std::ofstream out(path, std::ios::binary);
  std::vector<uint64_t> block(1 << 17);
  while (bytes > 0) {
    for (uint64_t& word : block) word = rng();
    const size_t n = std::min(bytes, block.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    bytes -= n;
  }
}

// Best of `reps` runs of `fn`, in seconds.
template <typename Fn>
double Best(int reps, Fn fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    if (!fn()) {
      std::fprintf(stderr, "run failed\n");
      exit(1);
    }
    best = std::min(best, Seconds(start));
  }
  return best;
}

bool HashAll(const std::vector<std::filesystem::path>& files) {
  for (const auto& file : files) {
    if (!siper::agent::Sha256File(file).ok()) return false;
  }
  return true;
}

bool Sha256sum(const std::string& args) {
  return std::system(("sha256sum " + args + " > /dev/null").c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path dir;
  size_t large_mib = 64;
  int large_files = 4;
  int small_files = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir")
      dir = argv[i + 1];
    else if (flag == "--large-mib")
      large_mib = std::stoul(argv[i + 1]);
    else if (flag == "--large-files")
      large_files = std::stoi(argv[i + 1]);
    else if (flag == "--small-files")
      small_files = std::stoi(argv[i + 1]);
  }
  bool remove = false;
  if (dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "fim-bench-XXXXXX").string();
    dir = mkdtemp(pattern.data());
    remove = true;
  }
  std::mt19937_64 rng(42);
  std::vector<std::filesystem::path> large;
  std::vector<std::filesystem::path> small;
  std::filesystem::create_directories(dir / "small");
  for (int i = 0; i < large_files; ++i) {
    large.push_back(dir / ("large-" + std::to_string(i)));
    WriteRandom(large.back(), large_mib << 20, rng);
  }
  for (int i = 0; i < small_files; ++i) {
    small.push_back(dir / "small" / std::to_string(i));
    WriteRandom(small.back(), 512 + (rng() % 7680), rng);  // 0.5 to 8 KiB, like /etc
  }
  std::string large_args;
  for (const auto& file : large) {
    // Two appends rather than " " + path: GCC 12 at -O3 warns falsely (-Wrestrict) on the latter.
    large_args += ' ';
    large_args += file.string();
  }
  const std::string small_args = (dir / "small").string() + "/*";

  // Warm the page cache, then measure both in turns.
  HashAll(large);
  HashAll(small);
  const int reps = 3;
  const double ours_large = Best(reps, [&] { return HashAll(large); });
  const double sum_large = Best(reps, [&] { return Sha256sum(large_args); });
  const double ours_small = Best(reps, [&] { return HashAll(small); });
  const double sum_small = Best(reps, [&] { return Sha256sum(small_args); });

  const double mb = static_cast<double>(large_mib) * large_files * 1048576.0 / 1e6;
  std::printf("| case | siper-agent (Sha256File) | sha256sum | ratio |\n|---|---|---|---|\n");
  std::printf("| %d x %zu MiB cached | %.0f MB/s | %.0f MB/s | %.2f |\n", large_files, large_mib,
              mb / ours_large, mb / sum_large, sum_large / ours_large);
  std::printf("| %d files of 0.5-8 KiB cached | %.0f files/s | %.0f files/s | %.2f |\n",
              small_files, small_files / ours_small, small_files / sum_small,
              sum_small / ours_small);
  if (remove) std::filesystem::remove_all(dir);
  return 0;
}

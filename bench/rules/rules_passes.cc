// Fixed-work driver for `perf stat` / `perf record`: loads one rule set (from
// the on-disk cache when warm) and runs the same lines through
// Matcher::Process a given number of passes. Wall-clock figures on a shared
// machine are noisy; instructions are not, so instructions per line is
//   (instructions at P passes - instructions at 1 pass) / ((P - 1) * lines).
//
//   rules_passes default|sigma PASSES
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "rules/engine.h"

namespace fs = std::filesystem;
using siper::rules::InputFormat;
using siper::rules::LoadOptions;
using siper::rules::Matcher;
using siper::rules::RuleSet;

namespace {

const fs::path kSource = SIPER_SOURCE_DIR;
const fs::path kShared = SIPER_SHARED_DATA_DIR;

void AppendLines(const fs::path& p, std::vector<std::string>* out) {
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out->push_back(line);
}

// The rule folders of case (b), copied into one folder (as rules_bench does).
fs::path SigmaLinuxWeb() {
  const fs::path out = fs::temp_directory_path() / "siper_passes_sigma_linux_web";
  fs::remove_all(out);
  fs::create_directories(out);
  int n = 0;
  for (const char* d : {"sigma/rules/linux", "sigma/rules/web"}) {
    for (const auto& e : fs::recursive_directory_iterator(kShared / d)) {
      if (e.path().extension() != ".yml") continue;
      fs::copy_file(e.path(), out / (std::to_string(n++) + "_" + e.path().filename().string()));
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: rules_passes default|sigma PASSES\n";
    return 2;
  }
  const std::string which = argv[1];
  const int passes = std::stoi(argv[2]);
  std::vector<std::string> lines;
  AppendLines(kShared / "logs/loghub/OpenSSH_2k.log", &lines);
  AppendLines(kShared / "logs/loghub/Linux_2k.log", &lines);
  if (lines.empty()) {
    std::cerr << "../shared/data/logs/loghub absent\n";
    return 1;
  }
  LoadOptions opts;
  opts.cache_dir = fs::temp_directory_path() / ("siper_passes_cache_" + which);
  opts.skip_errors = true;
  const fs::path dir = which == "sigma" ? SigmaLinuxWeb() : kSource / "rules/ruleset";
  auto rules = RuleSet::Load(dir, opts);
  if (!rules.ok()) {
    std::cerr << rules.status() << "\n";
    return 1;
  }
  auto m = Matcher::Create(*rules);
  if (!m.ok()) {
    std::cerr << m.status() << "\n";
    return 1;
  }
  size_t alerts = 0;
  for (int p = 0; p < passes; ++p) {
    for (const std::string& l : lines) {
      auto found = (*m)->Process(l, "bench", InputFormat::kAuto);
      if (found.ok()) alerts += found->size();
    }
  }
  std::cout << lines.size() << " lines x " << passes << " passes, " << alerts << " alerts\n";
  return 0;
}

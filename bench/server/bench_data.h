// What the server benches feed through ingest: the loghub lines and the default rule set.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/engine.h"

namespace siper::bench {

// OpenSSH and Linux syslog from ../shared/data/logs/loghub, empty lines skipped; empty
// when the data is absent.
inline std::vector<std::string> LoadLoghubLines(const std::filesystem::path& shared_data) {
  std::vector<std::string> lines;
  for (const char* name : {"OpenSSH_2k.log", "Linux_2k.log"}) {
    std::ifstream in(shared_data / "logs/loghub" / name);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  return lines;
}

// The default rule set (rules/ruleset of the source tree), its compiled database cached
// in the temporary directory between runs.
inline absl::StatusOr<std::shared_ptr<const rules::RuleSet>> LoadDefaultRules(
    const std::filesystem::path& source_dir) {
  rules::LoadOptions opts;
  opts.cache_dir = std::filesystem::temp_directory_path() / "siper_ingest_bench_cache";
  return rules::RuleSet::Load(source_dir / "rules/ruleset", opts);
}

}  // namespace siper::bench

// The loghub lines the server benches feed through ingest (OpenSSH and Linux syslog
// from ../shared/data/logs/loghub, empty lines skipped); empty when the data is absent.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace siper::bench {

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

}  // namespace siper::bench

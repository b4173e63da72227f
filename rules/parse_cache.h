// On-disk cache of parsed rule files, so a restart with unchanged rules skips
// YAML parsing (the slowest step of a load once databases are cached). The key
// hashes every file's path and text and this format's version.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "rules/cache_file.h"
#include "rules/sigma.h"

namespace siper::rules {

// `files` are (path, text) in load order.
std::string ParsedRulesKey(const std::vector<std::pair<std::string, std::string>>& files);

// kDamaged (with *why naming the file) when the file is there but truncated or corrupt.
CacheRead LoadParsedRules(const std::filesystem::path& dir, const std::string& key,
                          std::vector<ParsedFile>* out, std::string* why);

// Best effort: the cache only saves time.
void StoreParsedRules(const std::filesystem::path& dir, const std::string& key,
                      const std::vector<ParsedFile>& files);

}  // namespace siper::rules

// On-disk cache of compiled Hyperscan databases. Each (log source, field)
// database is stored under a key that hashes exactly what goes into it (its
// sorted expressions and flags, the Hyperscan version and this format), so an
// unchanged database is never recompiled and a changed one never reused.
#pragma once

#include <hs/hs.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "rules/cache_file.h"
#include "rules/sigma.h"

namespace siper::rules {

struct CompiledDatabase {
  hs_database_t* db = nullptr;        // null when every pattern was rejected
  std::vector<uint32_t> rejected;     // indexes of patterns Hyperscan refused
  std::vector<std::string> messages;  // Hyperscan's message for each
};

// 32 hex digits naming the database built from `patterns` (in order).
std::string DatabaseKey(const std::vector<Pattern>& patterns);

// Reads a cached database. kDamaged (with *why naming the file) when the file
// is there but truncated, corrupt or refused by Hyperscan: the caller compiles
// and stores it again.
CacheRead LoadCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                             CompiledDatabase* out, std::string* why);

// Writes a database atomically (temporary file and rename); failures are
// ignored because the cache is only an optimisation.
void StoreCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                         const CompiledDatabase& db);

}  // namespace siper::rules

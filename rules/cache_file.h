// Sealed cache files, shared by the rule caches (`*.hsdb` compiled Hyperscan
// databases, `rules-*.bin` parsed rule files): an 8-byte magic, the payload's
// length and a 128-bit checksum of it (rules/hash128.h), then the payload. A
// file is checked whole before anything reads the payload, so a truncated,
// overlong or corrupted file is reported and rebuilt, never deserialized.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "rules/hash128.h"

namespace siper::rules {

// How messages name a cache and what is done about a damaged file.
struct CacheKind {
  std::string_view name;  // "rule cache file"
  std::string_view redo;  // "recompiling it"
};
inline constexpr CacheKind kRuleCache{"rule cache file", "recompiling it"};

enum class CacheRead {
  kAbsent,   // no such file (or unreadable): compile, nothing to report
  kOk,       // *payload holds the checked payload
  kDamaged,  // the file is there but unusable; *why names the file and the fault
};

CacheRead ReadCacheFile(const std::filesystem::path& file, std::string_view magic,
                        std::string* payload, std::string* why, CacheKind kind = kRuleCache);

// Writes atomically (temporary file in the same folder, then rename), creating
// the folder; failures are ignored (the cache only saves time).
void WriteCacheFile(const std::filesystem::path& file, std::string_view magic,
                    std::string_view payload);

// The message for a file whose payload passed the checksum but was refused by
// its reader (e.g. Hyperscan rejects the database).
std::string DamagedCacheMessage(const std::filesystem::path& file, std::string_view what,
                                CacheKind kind = kRuleCache);

// How long a cache file may go unread before PruneCacheFiles removes it.
inline constexpr std::chrono::hours kCacheUnusedFor{24 * 30};

// Removes from `dir` (not its subfolders) the cache files nobody read for
// `unused_for`: ReadCacheFile marks a file it accepts as used (its mtime), so
// these are the databases and parsed rules of rule sets and feeds no longer
// loaded, and files of an older format, which are never read. Only regular
// files named as the caches name theirs are considered (`*.hsdb`, `*.bin`);
// temporary files left by a crash during WriteCacheFile go after an hour.
// Returns how many were removed; errors are ignored (another process may
// prune or write at the same time, and a missing file is only recompiled).
size_t PruneCacheFiles(const std::filesystem::path& dir,
                       std::chrono::hours unused_for = kCacheUnusedFor);

// Adds what makes a serialized Hyperscan database usable here (the library's
// version, the CPU tuning and features it was built for) to a cache key.
void AddHyperscanBuild(internal::Hash128* h);

}  // namespace siper::rules

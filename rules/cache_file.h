// Sealed cache files, shared by the rule caches (`*.hsdb` compiled Hyperscan
// databases, `rules-*.bin` parsed rule files): an 8-byte magic, the payload's
// length and a 128-bit checksum of it (rules/hash128.h), then the payload. A
// file is checked whole before anything reads the payload, so a truncated,
// overlong or corrupted file is reported and rebuilt, never deserialized.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace siper::rules {

enum class CacheRead {
  kAbsent,   // no such file (or unreadable): compile, nothing to report
  kOk,       // *payload holds the checked payload
  kDamaged,  // the file is there but unusable; *why names the file and the fault
};

CacheRead ReadCacheFile(const std::filesystem::path& file, std::string_view magic,
                        std::string* payload, std::string* why);

// Writes atomically (temporary file in the same folder, then rename), creating
// the folder; failures are ignored (the cache only saves time).
void WriteCacheFile(const std::filesystem::path& file, std::string_view magic,
                    std::string_view payload);

// The message for a file whose payload passed the checksum but was refused by
// its reader (e.g. Hyperscan rejects the database).
std::string DamagedCacheMessage(const std::filesystem::path& file, std::string_view what);

}  // namespace siper::rules

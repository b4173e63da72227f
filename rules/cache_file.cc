#include "rules/cache_file.h"

#include <hs/hs.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "rules/hash128.h"

namespace siper::rules {

namespace {
constexpr size_t kMagicSize = 8;
constexpr size_t kHeader = kMagicSize + 3 * sizeof(uint64_t);
}  // namespace

std::string DamagedCacheMessage(const std::filesystem::path& file, std::string_view what,
                                CacheKind kind) {
  return std::string(kind.name) + " " + file.string() + ": " + std::string(what) + "; " +
         std::string(kind.redo);
}

void AddHyperscanBuild(internal::Hash128* h) {
  h->Add(std::string_view(hs_version()));
  hs_platform_info_t platform;
  if (hs_populate_platform(&platform) == HS_SUCCESS) {
    h->Add(&platform.tune, sizeof platform.tune);
    h->Add(&platform.cpu_features, sizeof platform.cpu_features);
  }
}

CacheRead ReadCacheFile(const std::filesystem::path& file, std::string_view magic,
                        std::string* payload, std::string* why, CacheKind kind) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return CacheRead::kAbsent;
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string data = std::move(buf).str();
  auto damaged = [&](std::string_view what) {
    *why = DamagedCacheMessage(file, what, kind);
    return CacheRead::kDamaged;
  };
  if (magic.size() != kMagicSize || data.size() < kHeader ||
      std::memcmp(data.data(), magic.data(), kMagicSize) != 0) {
    return damaged("not a cache file of this version (bad header)");
  }
  uint64_t size, a, b;
  std::memcpy(&size, data.data() + kMagicSize, 8);
  std::memcpy(&a, data.data() + kMagicSize + 8, 8);
  std::memcpy(&b, data.data() + kMagicSize + 16, 8);
  if (size != data.size() - kHeader) return damaged("truncated or overlong");
  internal::Hash128 h;
  h.Add(data.data() + kHeader, size);
  if (h.Finish() != internal::Hash128::Digest{a, b}) return damaged("checksum mismatch (corrupt)");
  data.erase(0, kHeader);
  *payload = std::move(data);
  // Used now: PruneCacheFiles keeps it. Not possible on a read-only folder, which
  // is then never pruned either.
  std::error_code ec;
  std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now(), ec);
  return CacheRead::kOk;
}

size_t PruneCacheFiles(const std::filesystem::path& dir, std::chrono::hours unused_for) {
  namespace fs = std::filesystem;
  const fs::file_time_type now = fs::file_time_type::clock::now();
  size_t removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (!it->is_regular_file(entry_ec) || it->is_symlink(entry_ec)) continue;
    const std::string name = it->path().filename().string();
    const bool temporary = name.find(".tmp.") != std::string::npos;
    const bool cache = name.ends_with(".hsdb") || name.ends_with(".bin");
    if (!temporary && !cache) continue;
    const fs::file_time_type written = it->last_write_time(entry_ec);
    if (entry_ec) continue;
    const auto limit = temporary ? std::chrono::hours(1) : unused_for;
    if (now - written < limit) continue;
    if (fs::remove(it->path(), entry_ec)) ++removed;
  }
  return removed;
}

void WriteCacheFile(const std::filesystem::path& file, std::string_view magic,
                    std::string_view payload) {
  if (magic.size() != kMagicSize) return;
  internal::Hash128 h;
  h.Add(payload.data(), payload.size());
  const internal::Hash128::Digest sum = h.Finish();
  std::string data(magic);
  const uint64_t header[3] = {payload.size(), sum.a, sum.b};
  data.append(reinterpret_cast<const char*>(header), sizeof header);
  data.append(payload);
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  const std::filesystem::path tmp = file.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace siper::rules

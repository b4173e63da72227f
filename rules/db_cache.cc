#include "rules/db_cache.h"

#include <cstdio>
#include <cstring>

#include "rules/cache_file.h"
#include "rules/hash128.h"

namespace siper::rules {
namespace {

// Version 2: the file is sealed with a checksum (rules/cache_file.h).
constexpr char kMagic[8] = {'S', 'I', 'P', 'H', 'S', 'D', 'B', '3'};

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }

bool GetU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  std::memcpy(v, in->data(), 4);
  in->remove_prefix(4);
  return true;
}
bool GetU64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  std::memcpy(v, in->data(), 8);
  in->remove_prefix(8);
  return true;
}

}  // namespace

std::string DatabaseKey(const std::vector<Pattern>& patterns) {
  internal::Hash128 h;
  h.Add(std::string_view(kMagic, sizeof kMagic));
  AddHyperscanBuild(&h);
  uint64_t n = patterns.size();
  h.Add(&n, sizeof n);
  for (const Pattern& p : patterns) {
    h.Add(p.expr);
    h.Add(&p.flags, sizeof p.flags);
  }
  const internal::Hash128::Digest d = h.Finish();
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(d.a),
                static_cast<unsigned long long>(d.b));
  return buf;
}

CacheRead LoadCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                             CompiledDatabase* out, std::string* why) {
  const std::filesystem::path file = dir / (key + ".hsdb");
  std::string data;
  const CacheRead read = ReadCacheFile(file, std::string_view(kMagic, sizeof kMagic), &data, why);
  if (read != CacheRead::kOk) return read;
  std::string_view s = data;
  auto damaged = [&](std::string_view what) {
    *why = DamagedCacheMessage(file, what);
    return CacheRead::kDamaged;
  };
  uint32_t rejected;
  if (!GetU32(&s, &rejected)) return damaged("bad layout");
  CompiledDatabase db;
  for (uint32_t i = 0; i < rejected; ++i) {
    uint32_t index, len;
    if (!GetU32(&s, &index) || !GetU32(&s, &len) || s.size() < len) return damaged("bad layout");
    db.rejected.push_back(index);
    db.messages.emplace_back(s.substr(0, len));
    s.remove_prefix(len);
  }
  uint64_t size;
  if (!GetU64(&s, &size) || s.size() != size) return damaged("bad layout");
  if (size > 0 && hs_deserialize_database(s.data(), s.size(), &db.db) != HS_SUCCESS) {
    db.db = nullptr;
    return damaged("Hyperscan rejects the database");
  }
  *out = std::move(db);
  return CacheRead::kOk;
}

void StoreCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                         const CompiledDatabase& db) {
  std::string data;
  PutU32(&data, static_cast<uint32_t>(db.rejected.size()));
  for (size_t i = 0; i < db.rejected.size(); ++i) {
    PutU32(&data, db.rejected[i]);
    PutU32(&data, static_cast<uint32_t>(db.messages[i].size()));
    data += db.messages[i];
  }
  char* bytes = nullptr;
  size_t length = 0;
  if (db.db != nullptr && hs_serialize_database(db.db, &bytes, &length) != HS_SUCCESS) return;
  PutU64(&data, length);
  if (bytes != nullptr) {
    data.append(bytes, length);
    free(bytes);
  }
  WriteCacheFile(dir / (key + ".hsdb"), std::string_view(kMagic, sizeof kMagic), data);
}

}  // namespace siper::rules

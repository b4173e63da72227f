#include "rules/db_cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "rules/hash128.h"

namespace siper::rules {
namespace {

constexpr char kMagic[8] = {'S', 'I', 'P', 'H', 'S', 'D', 'B', '1'};

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
  h.Add(std::string_view(hs_version()));
  hs_platform_info_t platform;
  if (hs_populate_platform(&platform) == HS_SUCCESS) {
    h.Add(&platform.tune, sizeof platform.tune);
    h.Add(&platform.cpu_features, sizeof platform.cpu_features);
  }
  uint64_t n = patterns.size();
  h.Add(&n, sizeof n);
  for (const Pattern& p : patterns) {
    h.Add(p.expr);
    h.Add(&p.flags, sizeof p.flags);
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.a),
                static_cast<unsigned long long>(h.b));
  return buf;
}

bool LoadCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                        CompiledDatabase* out) {
  std::ifstream in(dir / (key + ".hsdb"), std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  std::string_view s = data;
  if (s.size() < sizeof kMagic || std::memcmp(s.data(), kMagic, sizeof kMagic) != 0) return false;
  s.remove_prefix(sizeof kMagic);
  uint32_t rejected;
  if (!GetU32(&s, &rejected)) return false;
  CompiledDatabase db;
  for (uint32_t i = 0; i < rejected; ++i) {
    uint32_t index, len;
    if (!GetU32(&s, &index) || !GetU32(&s, &len) || s.size() < len) return false;
    db.rejected.push_back(index);
    db.messages.emplace_back(s.substr(0, len));
    s.remove_prefix(len);
  }
  uint64_t size;
  if (!GetU64(&s, &size) || s.size() != size) return false;
  if (size > 0 && hs_deserialize_database(s.data(), s.size(), &db.db) != HS_SUCCESS) return false;
  *out = std::move(db);
  return true;
}

void StoreCachedDatabase(const std::filesystem::path& dir, const std::string& key,
                         const CompiledDatabase& db) {
  std::string data(kMagic, sizeof kMagic);
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
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::filesystem::path final_path = dir / (key + ".hsdb");
  const std::filesystem::path tmp = dir / (key + ".tmp." + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, final_path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace siper::rules

// The engine's small data structures: the word-wise content hash of the cache
// files (rules/hash128.h) and the sealed cache file format (rules/cache_file.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "rules/cache_file.h"
#include "rules/hash128.h"

namespace siper::rules {
namespace {

using internal::Hash128;

Hash128::Digest HashOf(std::string_view s) {
  Hash128 h;
  h.Add(s.data(), s.size());
  return h.Finish();
}

std::string Bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 17 + 7) & 0xFF);
  return s;
}

// The digest is a function of the byte stream: however Add() splits it
// (word-aligned or not, byte by byte, empty pieces), the result is the same.
TEST(Hash128Test, SameDigestForEverySplitOfTheStream) {
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 64u, 100u}) {
    const std::string s = Bytes(n, 3);
    const Hash128::Digest whole = HashOf(s);
    for (size_t cut = 0; cut <= n; ++cut) {
      Hash128 h;
      h.Add(s.data(), cut);
      h.Add(s.data(), 0);
      h.Add(s.data() + cut, n - cut);
      EXPECT_EQ(h.Finish(), whole) << "n=" << n << " cut=" << cut;
    }
    Hash128 bytewise;
    for (char c : s) bytewise.Add(&c, 1);
    EXPECT_EQ(bytewise.Finish(), whole) << "n=" << n;
  }
}

// Every single-bit change anywhere, and every change of length (trailing zero
// bytes, which the last partial word is padded with), changes both halves.
TEST(Hash128Test, EveryBitFlipAndEveryLengthGivesAnotherDigest) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  size_t hashed = 0;
  for (size_t n = 0; n <= 40; ++n) {
    const std::string zeros(n, '\0');
    const Hash128::Digest z = HashOf(zeros);
    seen.insert({z.a, z.b});
    ++hashed;
    const std::string s = Bytes(n, 5);
    const Hash128::Digest base = HashOf(s);
    for (size_t i = 0; i < n; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string t = s;
        t[i] = static_cast<char>(t[i] ^ (1 << bit));
        const Hash128::Digest d = HashOf(t);
        EXPECT_NE(d.a, base.a) << "n=" << n << " byte " << i << " bit " << bit;
        EXPECT_NE(d.b, base.b) << "n=" << n << " byte " << i << " bit " << bit;
      }
    }
  }
  EXPECT_EQ(seen.size(), hashed);  // n zero bytes for n = 0..40: all distinct
}

// Add(string_view) is length-prefixed: ("ab", "c") and ("a", "bc") differ.
TEST(Hash128Test, StringsAreLengthPrefixed) {
  Hash128 x, y;
  x.Add(std::string_view("ab"));
  x.Add(std::string_view("c"));
  y.Add(std::string_view("a"));
  y.Add(std::string_view("bc"));
  EXPECT_NE(x.Finish(), y.Finish());
}

class CacheFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("siper_cache_file_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string ReadRaw(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void WriteRaw(const std::filesystem::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
  }
  std::filesystem::path dir_;
};

// A file reads back whole; one flipped bit anywhere in the payload (first
// byte, inside a word, the last partial word) or the checksum is reported,
// and so is a file of an earlier format version (another magic).
TEST_F(CacheFileTest, CorruptionAnywhereIsDetected) {
  const std::filesystem::path file = dir_ / "x.bin";
  for (size_t n : {0u, 1u, 13u, 4096u + 5}) {
    const std::string payload = Bytes(n, 9);
    WriteCacheFile(file, "SIPTEST1", payload);
    std::string got, why;
    ASSERT_EQ(ReadCacheFile(file, "SIPTEST1", &got, &why), CacheRead::kOk) << why;
    EXPECT_EQ(got, payload);
    EXPECT_EQ(ReadCacheFile(file, "SIPTEST0", &got, &why), CacheRead::kDamaged);
    EXPECT_NE(why.find("bad header"), std::string::npos) << why;
    const std::string good = ReadRaw(file);
    const size_t header = good.size() - n;
    std::set<size_t> spots = {header - 1, header - 9};  // the checksum's two halves
    if (n > 0) spots.insert({header, header + n / 2, good.size() - 1});
    for (size_t at : spots) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ 0x04);
      WriteRaw(file, bad);
      why.clear();
      EXPECT_EQ(ReadCacheFile(file, "SIPTEST1", &got, &why), CacheRead::kDamaged)
          << "n=" << n << " at " << at;
      EXPECT_NE(why.find("checksum mismatch"), std::string::npos) << why;
      EXPECT_NE(why.find(file.string()), std::string::npos) << why;
    }
  }
}

}  // namespace
}  // namespace siper::rules

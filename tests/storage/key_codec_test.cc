#include "common/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace siper::keycodec {
namespace {

std::string U32(uint32_t v) {
  std::string s;
  AppendUint32(&s, v);
  return s;
}
std::string U64(uint64_t v) {
  std::string s;
  AppendUint64(&s, v);
  return s;
}
std::string I64(int64_t v) {
  std::string s;
  AppendInt64(&s, v);
  return s;
}

// Byte order (std::string compares like memcmp) must equal logical order.
template <typename T, typename Encode>
void ExpectOrderPreserved(std::vector<T> values, Encode encode) {
  std::sort(values.begin(), values.end());
  for (size_t i = 1; i < values.size(); ++i) {
    const std::string a = encode(values[i - 1]);
    const std::string b = encode(values[i]);
    if (values[i - 1] == values[i]) {
      EXPECT_EQ(a, b);
    } else {
      EXPECT_LT(a, b) << values[i - 1] << " < " << values[i];
    }
  }
}

TEST(KeyCodecTest, BigEndianBytes) {
  EXPECT_EQ(U32(0x01020304), std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(U64(0x0102030405060708ULL), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(I64(0), std::string("\x80\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(I64(-1), std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8));
}

TEST(KeyCodecTest, ByteOrderEqualsLogicalOrder) {
  std::mt19937_64 rng(42);
  std::vector<uint32_t> u32 = {0, 1, 255, 256, 65535, 65536, std::numeric_limits<uint32_t>::max()};
  std::vector<uint64_t> u64 = {
      0, 1, 255, 256, uint64_t{1} << 32, uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()};
  std::vector<int64_t> i64 = {
      std::numeric_limits<int64_t>::min(), -(int64_t{1} << 32), -256, -1, 0, 1, 255, 256,
      std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 2000; ++i) {
    uint64_t r = rng();
    u32.push_back(static_cast<uint32_t>(r));
    u64.push_back(r >> (r % 64));
    i64.push_back(static_cast<int64_t>(r) >> (rng() % 64));
  }
  ExpectOrderPreserved(u32, U32);
  ExpectOrderPreserved(u64, U64);
  ExpectOrderPreserved(i64, I64);
}

// A composite key (time | agent | seq) sorts like the tuple.
TEST(KeyCodecTest, CompositeKeysSortLikeTuples) {
  std::mt19937_64 rng(7);
  using Tuple = std::tuple<int64_t, uint32_t, uint64_t>;
  std::vector<Tuple> tuples;
  for (int i = 0; i < 2000; ++i) {
    // Small ranges so ties in the first fields are common.
    tuples.emplace_back(static_cast<int64_t>(rng() % 7) - 3, static_cast<uint32_t>(rng() % 5),
                        rng() % 300);
  }
  auto encode = [](const Tuple& t) {
    std::string s;
    AppendInt64(&s, std::get<0>(t));
    AppendUint32(&s, std::get<1>(t));
    AppendUint64(&s, std::get<2>(t));
    return s;
  };
  std::sort(tuples.begin(), tuples.end());
  for (size_t i = 1; i < tuples.size(); ++i) {
    if (tuples[i - 1] == tuples[i]) continue;
    EXPECT_LT(encode(tuples[i - 1]), encode(tuples[i]));
  }
}

TEST(KeyCodecTest, RoundTrip) {
  std::string key;
  AppendInt64(&key, -12345);
  AppendUint32(&key, 0xdeadbeef);
  AppendUint64(&key, 0x0123456789abcdefULL);
  AppendLengthPrefixed(&key, "sigma-rule");
  KeyReader r(key);
  int64_t a = 0;
  uint32_t b = 0;
  uint64_t c = 0;
  std::string_view d;
  ASSERT_TRUE(r.ReadInt64(&a));
  ASSERT_TRUE(r.ReadUint32(&b));
  ASSERT_TRUE(r.ReadUint64(&c));
  ASSERT_TRUE(r.ReadLengthPrefixed(&d));
  EXPECT_TRUE(r.done());
  EXPECT_EQ(a, -12345);
  EXPECT_EQ(b, 0xdeadbeef);
  EXPECT_EQ(c, 0x0123456789abcdefULL);
  EXPECT_EQ(d, "sigma-rule");
}

TEST(KeyCodecTest, ReaderRefusesShortInput) {
  KeyReader r(std::string_view("\x01\x02\x03", 3));
  uint32_t v = 0;
  EXPECT_FALSE(r.ReadUint32(&v));
  uint64_t w = 0;
  EXPECT_FALSE(r.ReadUint64(&w));
  // A length field larger than what follows.
  std::string lp;
  AppendUint32(&lp, 100);
  lp += "abc";
  KeyReader r2(lp);
  std::string_view s;
  EXPECT_FALSE(r2.ReadLengthPrefixed(&s));
}

// Length prefixes keep one rule's keys apart from another rule's whose id
// starts the same way.
TEST(KeyCodecTest, LengthPrefixSeparatesPrefixes) {
  std::string a;
  AppendLengthPrefixed(&a, "ssh");
  std::string b;
  AppendLengthPrefixed(&b, "ssh-brute");
  EXPECT_NE(b.compare(0, a.size(), a), 0);
}

TEST(KeyCodecTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("abc"), std::optional<std::string>("abd"));
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), std::optional<std::string>("b"));
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), std::nullopt);
  EXPECT_EQ(PrefixSuccessor(""), std::nullopt);
  // Every key with the prefix sorts below the successor.
  std::string p = U32(7);
  std::string k = p + U64(std::numeric_limits<uint64_t>::max());
  EXPECT_LT(k, *PrefixSuccessor(p));
}

TEST(KeyCodecTest, HexRoundTrip) {
  std::string bytes("\x00\x01\xab\xff", 4);
  EXPECT_EQ(ToHex(bytes), "0001abff");
  EXPECT_EQ(FromHex("0001ABff"), std::optional<std::string>(bytes));
  EXPECT_EQ(FromHex("abc"), std::nullopt);
  EXPECT_EQ(FromHex("zz"), std::nullopt);
}

}  // namespace
}  // namespace siper::keycodec

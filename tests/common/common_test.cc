#include <gtest/gtest.h>
#include <sys/stat.h>

#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/text.h"
#include "common/time_util.h"

namespace siper {
namespace {

TEST(PkiTest, CaSignsCsrWithTheIdentityItChooses) {
  absl::StatusOr<pki::KeyAndCert> ca = pki::CreateCa("Test CA", absl::Hours(24));
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<std::string> key = pki::GenerateKeyPem();
  ASSERT_TRUE(key.ok());
  absl::StatusOr<std::string> csr = pki::CreateCsrPem(*key, "laptop-17");
  ASSERT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<std::string> cert =
      pki::SignCsr(*ca, *csr, "agt-0001", pki::kRoleAgent, absl::Hours(1));
  ASSERT_TRUE(cert.ok()) << cert.status();
  absl::StatusOr<pki::Identity> id = pki::ParseIdentity(*cert);
  ASSERT_TRUE(id.ok());
  // The CA, not the requester, names the holder.
  EXPECT_EQ(id->common_name, "agt-0001");
  EXPECT_EQ(id->role, "agent");
  absl::StatusOr<absl::Time> not_after = pki::NotAfter(*cert);
  ASSERT_TRUE(not_after.ok());
  EXPECT_GT(*not_after, absl::Now() + absl::Minutes(50));
  EXPECT_LT(*not_after, absl::Now() + absl::Minutes(70));
}

TEST(PkiTest, TamperedOrGarbageCsrIsRefused) {
  absl::StatusOr<pki::KeyAndCert> ca = pki::CreateCa("Test CA", absl::Hours(24));
  ASSERT_TRUE(ca.ok());
  EXPECT_FALSE(pki::SignCsr(*ca, "garbage", "x", pki::kRoleAgent, absl::Hours(1)).ok());
  std::string key = pki::GenerateKeyPem().value();
  std::string csr = pki::CreateCsrPem(key, "host").value();
  // Flip one base64 character inside the body: the signature no longer verifies
  // (or the DER no longer parses); either way it must be refused.
  size_t pos = csr.find('\n', csr.find("BEGIN")) + 40;
  csr[pos] = csr[pos] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(pki::SignCsr(*ca, csr, "x", pki::kRoleAgent, absl::Hours(1)).ok());
}

TEST(PkiTest, ServerCertificateHasRoleServer) {
  absl::StatusOr<pki::KeyAndCert> ca = pki::CreateCa("Test CA", absl::Hours(24));
  ASSERT_TRUE(ca.ok());
  absl::StatusOr<pki::KeyAndCert> server = pki::IssueWithNewKey(
      *ca, "siper-server", pki::kRoleServer, absl::Hours(1), {"localhost", "127.0.0.1"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(pki::ParseIdentity(server->cert_pem)->role, "server");
}

TEST(TimeTest, DurationsAndTimes) {
  EXPECT_EQ(ParseDurationArg("90s").value(), absl::Seconds(90));
  EXPECT_EQ(ParseDurationArg("1h30m").value(), absl::Minutes(90));
  EXPECT_EQ(ParseDurationArg("7d").value(), absl::Hours(168));
  EXPECT_FALSE(ParseDurationArg("7").ok());
  EXPECT_FALSE(ParseDurationArg("7y").ok());
  EXPECT_FALSE(ParseDurationArg("").ok());
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_EQ(ParseTimeArg("2h", now).value(), now - absl::Hours(2));
  EXPECT_EQ(ParseTimeArg("now", now).value(), now);
  EXPECT_EQ(ParseTimeArg("2026-11-28T10:00:00Z", now).value(),
            absl::FromCivil(absl::CivilSecond(2026, 11, 28, 10, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(ParseTimeArg("2026-11-28T13:00:00+03:00", now).value(),
            absl::FromCivil(absl::CivilSecond(2026, 11, 28, 10, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(ParseTimeArg("2026-11-28", now).value(),
            absl::FromCivil(absl::CivilDay(2026, 11, 28), absl::UTCTimeZone()));
  absl::StatusOr<absl::Time> bad = ParseTimeArg("yesterday-ish", now);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("yesterday-ish"), std::string::npos);
  EXPECT_EQ(FormatTimeNs(1'800'000'000'123'000'000), "2027-01-15T08:00:00.123Z");
}

TEST(TextTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(EscapeForTerminal("a\x1b[31mred\n"), "a\\x1b[31mred\\n");
  EXPECT_EQ(EscapeForTerminal("tab\there\x7f"), "tab\\there\\x7f");
  EXPECT_EQ(EscapeForTerminal("\xff\xfe ok"), "\\xff\\xfe ok");
  EXPECT_EQ(EscapeForTerminal("Türkçe ğüşiöç"), "Türkçe ğüşiöç");
  EXPECT_EQ(EscapeForTerminal("c1:\xc2\x9b"), "c1:\\u009b");
  EXPECT_EQ(ToValidUtf8("ok\xff"), "ok\xEF\xBF\xBD");
  EXPECT_EQ(ToValidUtf8("İstanbul"), "İstanbul");
}

// The eight-byte ASCII fast path must not skip an invalid byte at any offset.
TEST(TextTest, ValidUtf8CheckAtEveryOffset) {
  for (size_t at = 0; at < 20; ++at) {
    std::string text(20, 'a');
    EXPECT_TRUE(IsValidUtf8(text));
    text[at] = '\xff';
    EXPECT_FALSE(IsValidUtf8(text)) << at;
    std::string fixed = text;
    MakeValidUtf8(&fixed);
    EXPECT_EQ(fixed, ToValidUtf8(text));
    EXPECT_EQ(fixed.substr(at, 3), "\xEF\xBF\xBD") << at;
    EXPECT_TRUE(IsValidUtf8(fixed));
  }
  EXPECT_TRUE(IsValidUtf8("0123456789 Türkçe ğüşiöç 0123456789"));
  EXPECT_FALSE(IsValidUtf8("01234567\xc0\xaf"));        // overlong '/'
  EXPECT_FALSE(IsValidUtf8("0123456789\xed\xa0\x80"));  // surrogate
  std::string valid = "already valid İstanbul";
  const char* data = valid.data();
  MakeValidUtf8(&valid);
  EXPECT_EQ(valid.data(), data);  // not copied
}

TEST(FilesTest, AtomicWriteSetsModeAndReplaces) {
  char tmpl[] = "/tmp/siper-files-XXXXXX";
  std::filesystem::path dir = mkdtemp(tmpl);
  std::filesystem::path file = dir / "key";
  ASSERT_TRUE(WriteFileAtomic(file, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(file, "two", 0600).ok());
  EXPECT_EQ(ReadFile(file).value(), "two");
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> missing = ReadFile(dir / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CryptoTest, Sha256AndTokens) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(RandomHex(8).size(), 16u);
  EXPECT_NE(RandomToken(), RandomToken());
}

}  // namespace
}  // namespace siper

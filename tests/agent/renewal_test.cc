#include "agent/renewal.h"

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/pki.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::TestDir;

TEST(RenewalTest, DueWhenTheConfiguredFractionOfTheLifetimeIsLeft) {
  auto ca = pki::CreateCa("Test CA", absl::Hours(1));
  ASSERT_TRUE(ca.ok());
  const absl::Time issued = absl::Now();
  auto cert = pki::IssueWithNewKey(*ca, "agt-1", pki::kRoleAgent, absl::Seconds(90));
  ASSERT_TRUE(cert.ok());
  auto not_before = pki::NotBefore(cert->cert_pem);
  auto not_after = pki::NotAfter(cert->cert_pem);
  ASSERT_TRUE(not_before.ok() && not_after.ok());
  // Backdated by a tenth of the validity: 9 s, so the lifetime is 99 s.
  EXPECT_LE(absl::AbsDuration(*not_before - (issued - absl::Seconds(9))), absl::Seconds(2));
  auto due = RenewalDue(cert->cert_pem, 1.0 / 3);
  ASSERT_TRUE(due.ok());
  EXPECT_LE(absl::AbsDuration(*due - (*not_after - absl::Seconds(33))), absl::Milliseconds(1));
  EXPECT_GT(*due, issued);
  auto later = RenewalDue(cert->cert_pem, 0.1);
  ASSERT_TRUE(later.ok());
  EXPECT_GT(*later, *due);
  EXPECT_FALSE(RenewalDue("not a certificate", 0.3).ok());
}

TEST(RenewalTest, AnInterruptedRenewalIsFinishedOrUndone) {
  TestDir dir;
  const StatePaths paths = StateFiles(dir.path());
  // Key renamed, certificate not yet: the certificate must follow.
  ASSERT_TRUE(WriteFileAtomic(paths.key, "new key", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(paths.cert, "old cert", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(paths.cert.string() + ".next", "new cert", 0600).ok());
  ASSERT_TRUE(FinishInterruptedRenewal(dir.path()).ok());
  EXPECT_EQ(ReadFile(paths.cert).value(), "new cert");
  EXPECT_EQ(ReadFile(paths.key).value(), "new key");
  EXPECT_FALSE(std::filesystem::exists(paths.cert.string() + ".next"));

  // Neither renamed: the old pair stays, the new files go.
  ASSERT_TRUE(WriteFileAtomic(paths.key.string() + ".next", "newer key", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(paths.cert.string() + ".next", "newer cert", 0600).ok());
  ASSERT_TRUE(FinishInterruptedRenewal(dir.path()).ok());
  EXPECT_EQ(ReadFile(paths.cert).value(), "new cert");
  EXPECT_EQ(ReadFile(paths.key).value(), "new key");
  EXPECT_FALSE(std::filesystem::exists(paths.key.string() + ".next"));
  EXPECT_FALSE(std::filesystem::exists(paths.cert.string() + ".next"));

  // Nothing pending: nothing changes.
  ASSERT_TRUE(FinishInterruptedRenewal(dir.path()).ok());
  EXPECT_EQ(ReadFile(paths.cert).value(), "new cert");
}

}  // namespace
}  // namespace siper::agent

#include "agent/enroll.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "absl/strings/match.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/pki.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/grpc_test_log.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::FakeServer;
using ::siper::agent::testing::TestDir;

class EnrollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::SilenceGrpcLogs();
    server_.Start();
    ASSERT_TRUE(WriteFileAtomic(dir_ / "server-ca.pem", server_.ca_pem()).ok());
  }

  EnrollOptions Options(const std::string& token) {
    EnrollOptions options;
    options.server = server_.address();
    options.token = token;
    options.ca_file = dir_ / "server-ca.pem";
    options.state_dir = dir_ / "state";
    options.timeout = absl::Seconds(10);
    return options;
  }

  static mode_t Mode(const std::filesystem::path& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  FakeServer server_;
  TestDir dir_;
};

TEST_F(EnrollTest, StoresKeyAndCertificate) {
  server_.service().AllowToken("tok-1");
  auto agent_id = Enroll(Options("tok-1"));
  ASSERT_TRUE(agent_id.ok()) << agent_id.status();
  EXPECT_EQ(*agent_id, "agt-1");

  const StatePaths paths = StateFiles(dir_ / "state");
  EXPECT_EQ(Mode(dir_ / "state"), 0700u);
  EXPECT_EQ(Mode(paths.key), 0600u);
  auto identity = LoadIdentity(dir_ / "state");
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_EQ(identity->agent_id, "agt-1");
  EXPECT_EQ(identity->ca_pem, server_.ca_pem());
  auto parsed = pki::ParseIdentity(identity->cert_pem);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->role, pki::kRoleAgent);
}

TEST_F(EnrollTest, RefusedTokenReportsServerMessageAndKeepsIdentity) {
  server_.service().AllowToken("tok-1");
  ASSERT_TRUE(Enroll(Options("tok-1")).ok());
  const std::string key_before = *ReadFile(StateFiles(dir_ / "state").key);

  auto again = Enroll(Options("tok-1"));  // one-time: used now
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(absl::StrContains(again.status().message(), "unknown, used or expired"))
      << again.status();
  EXPECT_EQ(*ReadFile(StateFiles(dir_ / "state").key), key_before);
  auto identity = LoadIdentity(dir_ / "state");
  ASSERT_TRUE(identity.ok());
  EXPECT_EQ(identity->agent_id, "agt-1");
}

TEST_F(EnrollTest, ReEnrollReplacesIdentity) {
  server_.service().AllowToken("tok-1");
  server_.service().AllowToken("tok-2");
  ASSERT_TRUE(Enroll(Options("tok-1")).ok());
  const std::string key_before = *ReadFile(StateFiles(dir_ / "state").key);
  auto agent_id = Enroll(Options("tok-2"));
  ASSERT_TRUE(agent_id.ok()) << agent_id.status();
  EXPECT_EQ(*agent_id, "agt-2");
  EXPECT_NE(*ReadFile(StateFiles(dir_ / "state").key), key_before);
  auto identity = LoadIdentity(dir_ / "state");
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_EQ(identity->agent_id, "agt-2");
}

TEST_F(EnrollTest, WrongCaIsRefusedBeforeSendingTheToken) {
  auto other_ca = pki::CreateCa("Other CA", absl::Hours(1));
  ASSERT_TRUE(other_ca.ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "server-ca.pem", other_ca->cert_pem).ok());
  server_.service().AllowToken("tok-1");
  EnrollOptions options = Options("tok-1");
  options.timeout = absl::Seconds(3);
  auto agent_id = Enroll(options);
  ASSERT_FALSE(agent_id.ok());
  EXPECT_FALSE(std::filesystem::exists(StateFiles(dir_ / "state").key));
}

TEST_F(EnrollTest, NotEnrolledIsExplained) {
  auto identity = LoadIdentity(dir_ / "state");
  ASSERT_FALSE(identity.ok());
  EXPECT_TRUE(absl::StrContains(identity.status().message(), "not enrolled"));
  EXPECT_TRUE(absl::StrContains(identity.status().message(), "siper-agent enroll"));
}

}  // namespace
}  // namespace siper::agent

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/files.h"
#include "server/config.h"
#include "server/dev_pki.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/siper-server-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

mode_t Mode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST(DevPkiTest, CreatedOnceWithPrivateKeysAndReusedAfter) {
  TempDir dir;
  fs::path pki_dir = dir.path() / "pki";
  absl::StatusOr<ServerPki> first = EnsureDevPki(pki_dir, {"siper.example"});
  ASSERT_TRUE(first.ok()) << first.status();
  for (const char* key : {"ca.key", "server.key", "admin.key"}) {
    EXPECT_EQ(Mode(pki_dir / key), 0600u) << key;
  }
  EXPECT_EQ(Mode(pki_dir), 0700u);
  absl::StatusOr<pki::Identity> admin = pki::ParseIdentity(ReadFile(pki_dir / "admin.pem").value());
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->role, pki::kRoleAdmin);
  EXPECT_EQ(pki::ParseIdentity(first->server.cert_pem)->role, pki::kRoleServer);
  // A second start loads the same CA rather than making a new one.
  absl::StatusOr<ServerPki> second = EnsureDevPki(pki_dir, {});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->ca.cert_pem, first->ca.cert_pem);
  EXPECT_EQ(second->server.key_pem, first->server.key_pem);
}

TEST(ConfigTest, ReadsKeysAndNamesErrors) {
  TempDir dir;
  fs::path file = dir.path() / "server.yaml";
  std::ofstream(file) << "data_dir: /srv/siper\nlisten: 0.0.0.0:9443\nworkers: 3\n"
                         "server_names: [a.example, 10.0.0.5]\n";
  absl::StatusOr<ServerConfig> config = LoadServerConfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->data_dir, "/srv/siper");
  EXPECT_EQ(config->listen, "0.0.0.0:9443");
  EXPECT_EQ(config->workers, 3);
  EXPECT_EQ(config->server_names.size(), 2u);

  std::ofstream(file) << "listen: 0.0.0.0:9443\nlisen: typo\n";
  absl::Status unknown = LoadServerConfig(file).status();
  EXPECT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("server.yaml:2"), std::string::npos) << unknown;
  EXPECT_NE(unknown.message().find("lisen"), std::string::npos) << unknown;

  std::ofstream(file) << "workers: many\n";
  absl::Status type = LoadServerConfig(file).status();
  EXPECT_FALSE(type.ok());
  EXPECT_NE(type.message().find("workers"), std::string::npos) << type;

  std::ofstream(file) << "workers: 2\n";
  absl::StatusOr<ServerConfig> defaults = LoadServerConfig(file);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->agent_cert_validity_s, 365 * 86400);
  std::ofstream(file) << "agent_cert_validity_s: 600\n";
  absl::StatusOr<ServerConfig> short_lived = LoadServerConfig(file);
  ASSERT_TRUE(short_lived.ok()) << short_lived.status();
  EXPECT_EQ(short_lived->agent_cert_validity_s, 600);
  std::ofstream(file) << "agent_cert_validity_s: 10\n";
  absl::Status validity = LoadServerConfig(file).status();
  EXPECT_NE(validity.message().find("agent_cert_validity_s must be between 60"), std::string::npos)
      << validity;

  std::ofstream(file) << "listen: [unclosed\n";
  EXPECT_FALSE(LoadServerConfig(file).ok());
  EXPECT_EQ(LoadServerConfig(dir.path() / "missing.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace siper::server

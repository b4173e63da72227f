// RFC 3161 time-stamps of chain seals against a local `openssl ts` authority:
// the test makes a TSA key and certificate (extendedKeyUsage critical
// timeStamping) and an `openssl ts` config in a temporary directory, and
// serves POSTed queries over HTTP (httplib::Server) by piping each through
// `openssl ts -reply`. Skips when the openssl binary is missing.
#include "server/timestamp.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common/files.h"
#include "server/chain_sealer.h"
#include "server/config.h"
#include "server/storage/store.h"

namespace siper::server {
namespace {

namespace fs = std::filesystem;

int Sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

class TimestampTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Sh("openssl version") != 0) GTEST_SKIP() << "the openssl binary is not installed";
    char tmpl[] = "/tmp/siper-tsa-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string d = dir_.string();
    ASSERT_EQ(Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
                 d + "/tsa.key -out " + d + "/tsa.pem -days 2 -subj '/CN=Siper Test TSA' " +
                 "-addext 'extendedKeyUsage=critical,timeStamping' " +
                 "-addext 'basicConstraints=critical,CA:FALSE'"),
              0);
    std::ofstream(dir_ / "serial") << "01\n";
    std::ofstream(dir_ / "tsa.cnf") << "[ tsa ]\n"
                                    << "default_tsa = tsa_config\n"
                                    << "[ tsa_config ]\n"
                                    << "serial = " << d << "/serial\n"
                                    << "crypto_device = builtin\n"
                                    << "signer_cert = " << d << "/tsa.pem\n"
                                    << "signer_key = " << d << "/tsa.key\n"
                                    << "signer_digest = sha256\n"
                                    << "default_policy = 1.3.6.1.4.1.4146.2.3\n"
                                    << "digests = sha256\n"
                                    << "accuracy = secs:1\n"
                                    << "ordering = no\n"
                                    << "tsa_name = no\n"
                                    << "ess_cert_id_chain = no\n"
                                    << "ess_cert_id_alg = sha256\n";
    // The authority: each query through `openssl ts -reply`, one at a time.
    server_.Post("/tsr", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(tsa_mu_);
      ++queries_;
      const std::string d = dir_.string();
      std::ofstream(dir_ / "query.tsq", std::ios::binary) << req.body;
      if (req.get_header_value("Content-Type") != "application/timestamp-query" ||
          Sh("openssl ts -reply -config " + d + "/tsa.cnf -queryfile " + d + "/query.tsq -out " +
             d + "/reply.tsr") != 0) {
        res.status = 400;
        return;
      }
      res.set_content(ReadFile(dir_ / "reply.tsr").value_or(""), "application/timestamp-reply");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket listens once bound; queries wait in its backlog until the loop runs.
    auto store = storage::Store::Open(dir_ / "db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  TsaOptions Options() const {
    TsaOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port_) + "/tsr";
    o.cert_file = dir_ / "tsa.pem";
    o.timeout_s = 10;
    return o;
  }

  void Write(uint64_t seq) {
    std::vector<storage::EventRecord> records(1);
    records[0].event.set_agent_id("a1");
    records[0].event.set_seq(seq);
    records[0].event.mutable_log()->set_line("line " + std::to_string(seq));
    ASSERT_TRUE(store_->Write("a1", records).ok());
  }

  std::vector<storage::ChainSeal> Seals() {
    std::vector<storage::ChainSeal> seals;
    EXPECT_TRUE(store_
                    ->ListChainSeals([&](const storage::ChainSeal& s) {
                      seals.push_back(s);
                      return true;
                    })
                    .ok());
    return seals;
  }

  std::unique_ptr<ChainSealer> Sealer(const TsaOptions& options) {
    auto tsa = TimestampClient::Create(options);
    EXPECT_TRUE(tsa.ok()) << tsa.status();
    if (!tsa.ok()) return nullptr;
    auto sealer = ChainSealer::Create(store_.get(), dir_ / "chain.key", 60, std::move(*tsa));
    EXPECT_TRUE(sealer.ok()) << sealer.status();
    return sealer.ok() ? std::move(*sealer) : nullptr;
  }

  fs::path dir_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex tsa_mu_;
  int queries_ = 0;
  std::unique_ptr<storage::Store> store_;
};

TEST_F(TimestampTest, SealsGetVerifiedTokensAndTamperingIsReported) {
  std::unique_ptr<ChainSealer> sealer = Sealer(Options());
  ASSERT_NE(sealer, nullptr);
  Write(1);
  ASSERT_TRUE(sealer->SealNow().ok());
  ASSERT_TRUE(sealer->StampPending().ok());
  Write(2);
  ASSERT_TRUE(sealer->SealNow().ok());
  ASSERT_TRUE(sealer->StampPending().ok());
  ASSERT_TRUE(sealer->StampPending().ok());  // nothing left: no query
  EXPECT_EQ(queries_, 2);

  std::vector<storage::ChainSeal> seals = Seals();
  ASSERT_EQ(seals.size(), 2u);
  for (const storage::ChainSeal& seal : seals) EXPECT_FALSE(seal.timestamp_token.empty());
  absl::StatusOr<SealReport> report = sealer->CheckSeals();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok) << report->message;
  EXPECT_EQ(report->timestamps, 2u);
  EXPECT_EQ(report->newest_timestamp_length, seals[1].length);
  EXPECT_LE(std::abs(report->newest_timestamp_ns - seals[1].time_ns), int64_t{120} * 1'000'000'000);

  // The token of one seal on another: the imprint does not match.
  storage::ChainSeal swapped = seals[1];
  swapped.timestamp_token = seals[0].timestamp_token;
  ASSERT_TRUE(store_->PutChainSeal(swapped).ok());
  report = sealer->CheckSeals();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  EXPECT_EQ(report->problem, "bad timestamp");
  EXPECT_EQ(report->bad_length, seals[1].length);
  EXPECT_NE(report->message.find("does not verify"), std::string::npos) << report->message;

  // The last byte of the token changed (it is in the TSA's signature): the signature fails.
  storage::ChainSeal tampered = seals[1];
  tampered.timestamp_token.back() ^= 0x01;
  ASSERT_TRUE(store_->PutChainSeal(tampered).ok());
  report = sealer->CheckSeals();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  EXPECT_EQ(report->problem, "bad timestamp");
  EXPECT_EQ(report->bad_length, seals[1].length);

  // A server without a TSA configured keeps the tokens, unchecked.
  ASSERT_TRUE(store_->PutChainSeal(seals[1]).ok());
  auto plain = ChainSealer::Create(store_.get(), dir_ / "chain.key", 60);
  ASSERT_TRUE(plain.ok());
  report = (*plain)->CheckSeals();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->message;
  EXPECT_EQ(report->timestamps_unchecked, 2u);
}

TEST_F(TimestampTest, RepliesFromAnotherAuthorityAreRefusedAndRetried) {
  // Trust another certificate: the genuine reply does not verify against it.
  const std::string d = dir_.string();
  ASSERT_EQ(Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + d +
               "/other.key -out " + d + "/other.pem -days 2 -subj '/CN=Other TSA' " +
               "-addext 'extendedKeyUsage=critical,timeStamping'"),
            0);
  TsaOptions other = Options();
  other.cert_file = dir_ / "other.pem";
  std::unique_ptr<ChainSealer> sealer = Sealer(other);
  ASSERT_NE(sealer, nullptr);
  Write(1);
  ASSERT_TRUE(sealer->SealNow().ok());  // the seal itself never waits for the TSA
  absl::Status refused = sealer->StampPending();
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("reply refused"), std::string::npos) << refused;
  ASSERT_EQ(Seals().size(), 1u);
  EXPECT_TRUE(Seals()[0].timestamp_token.empty());

  // An authority that is down: a clear error, and the seal stays unstamped for a retry.
  TsaOptions down = Options();
  down.url = "http://127.0.0.1:1/tsr";
  down.timeout_s = 2;
  sealer.reset();
  sealer = Sealer(down);
  ASSERT_NE(sealer, nullptr);
  Write(2);
  ASSERT_TRUE(sealer->SealNow().ok());
  absl::Status unreachable = sealer->StampPending();
  EXPECT_EQ(unreachable.code(), absl::StatusCode::kUnavailable) << unreachable;
  EXPECT_NE(unreachable.message().find("127.0.0.1:1"), std::string::npos) << unreachable;

  // The right authority again: the pending seal gets its token.
  sealer.reset();
  sealer = Sealer(Options());
  ASSERT_NE(sealer, nullptr);
  Write(3);
  ASSERT_TRUE(sealer->SealNow().ok());
  ASSERT_TRUE(sealer->StampPending().ok());
  std::vector<storage::ChainSeal> seals = Seals();
  ASSERT_EQ(seals.size(), 3u);
  EXPECT_FALSE(seals.back().timestamp_token.empty());
  EXPECT_TRUE(sealer->CheckSeals()->ok);
}

TEST(TsaOptionsTest, BadSettingsAreRefusedWithTheirName) {
  TsaOptions o;
  o.url = "ftp://tsa.example";
  o.cert_file = "/nonexistent";
  EXPECT_NE(TimestampClient::Create(o).status().message().find("http"), std::string::npos);
  o.url = "http://tsa.example/";
  o.cert_file.clear();
  EXPECT_FALSE(TimestampClient::Create(o).ok());
  o.cert_file = "/nonexistent/tsa.pem";
  EXPECT_NE(TimestampClient::Create(o).status().message().find("/nonexistent/tsa.pem"),
            std::string::npos);
}

TEST(TsaOptionsTest, ConfigKeys) {
  char tmpl[] = "/tmp/siper-tsa-config-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  fs::path file = dir / "server.yaml";
  std::ofstream(file) << "tsa:\n  url: http://127.0.0.1:8318/tsr\n  cert_file: /etc/siper/tsa.pem\n"
                         "  timeout_s: 5\n  policy: 1.2.3.4\n";
  absl::StatusOr<ServerConfig> config = LoadServerConfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tsa.enabled());
  EXPECT_EQ(config->tsa.url, "http://127.0.0.1:8318/tsr");
  EXPECT_EQ(config->tsa.cert_file, "/etc/siper/tsa.pem");
  EXPECT_EQ(config->tsa.timeout_s, 5);
  EXPECT_EQ(config->tsa.policy, "1.2.3.4");
  std::ofstream(file) << "tsa:\n  url: http://127.0.0.1:8318/tsr\n  certfile: x\n";
  absl::Status unknown = LoadServerConfig(file).status();
  EXPECT_NE(unknown.message().find("tsa.certfile"), std::string::npos) << unknown;
  std::ofstream(file) << "tsa:\n  url: http://127.0.0.1:8318/tsr\n";
  EXPECT_NE(LoadServerConfig(file).status().message().find("cert_file"), std::string::npos);
  std::ofstream(file) << "listen: 127.0.0.1:0\n";
  EXPECT_FALSE(LoadServerConfig(file)->tsa.enabled());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace siper::server

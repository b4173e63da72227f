#include "agent/config.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/files.h"
#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::TestDir;

absl::Status ErrorOf(const std::string& yaml) {
  return ParseConfig(yaml, "/etc/siper/agent.yaml").status();
}

void ExpectError(const std::string& yaml, const std::string& fragment) {
  absl::Status status = ErrorOf(yaml);
  ASSERT_FALSE(status.ok()) << yaml;
  EXPECT_TRUE(absl::StrContains(status.message(), "/etc/siper/agent.yaml")) << status.message();
  EXPECT_TRUE(absl::StrContains(status.message(), fragment)) << status.message();
}

TEST(ConfigTest, ParsesTheDesignExample) {
  auto config = ParseConfig(R"(
server: 127.0.0.1:7443
state_dir: /var/lib/siper-agent   # key, certificate, spool, offsets
logs:
  - path: /var/log/auth.log       # globs allowed
    start: beginning              # or end (the default)
  - path: /var/log/nginx/*.log
fim:
  - path: /etc
    recursive: true
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "127.0.0.1:7443");
  EXPECT_EQ(config->state_dir, "/var/lib/siper-agent");
  ASSERT_EQ(config->logs.size(), 2u);
  EXPECT_EQ(config->logs[0].path, "/var/log/auth.log");
  EXPECT_EQ(config->logs[0].start, StartAt::kBeginning);
  EXPECT_EQ(config->logs[1].path, "/var/log/nginx/*.log");
  EXPECT_EQ(config->logs[1].start, StartAt::kEnd);
  ASSERT_EQ(config->fim.size(), 1u);
  EXPECT_TRUE(config->fim[0].recursive);
  EXPECT_EQ(config->log_file, "/var/lib/siper-agent/log/agent.log");
  EXPECT_EQ(config->batch_max_events, 500u);
  EXPECT_EQ(config->batch_max_delay_ms, 200);
}

TEST(ConfigTest, OptionalKeys) {
  auto config = ParseConfig(R"(
server: "[::1]:7443"
state_dir: /tmp/a
log_file: /tmp/agent.log
log_level: debug
batch_max_events: 50
batch_max_delay_ms: 0
max_pending_events: 100
poll_interval_ms: 50
read_delay_ms: 20
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_file, "/tmp/agent.log");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->batch_max_events, 50u);
  EXPECT_EQ(config->batch_max_delay_ms, 0);
  EXPECT_EQ(config->max_pending_events, 100u);
  EXPECT_EQ(config->poll_interval_ms, 50);
  EXPECT_EQ(config->read_delay_ms, 20);
  EXPECT_TRUE(config->logs.empty());
}

TEST(ConfigTest, SpoolKeys) {
  auto defaults = ParseConfig("server: 127.0.0.1:7443\n", "agent.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->spool_fsync, SpoolFsyncPolicy::kInterval);
  EXPECT_EQ(defaults->spool_fsync_interval_ms, 1000);
  EXPECT_EQ(defaults->spool_max_bytes, uint64_t{1} << 30);
  auto config = ParseConfig(R"(
server: 127.0.0.1:7443
spool:
  fsync: always
  fsync_interval_ms: 250
  max_bytes: 2097152
  segment_bytes: 65536
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->spool_fsync, SpoolFsyncPolicy::kAlways);
  EXPECT_EQ(config->spool_fsync_interval_ms, 250);
  EXPECT_EQ(config->spool_max_bytes, 2097152u);
  EXPECT_EQ(config->spool_segment_bytes, 65536u);
}

TEST(ConfigTest, FimKeys) {
  auto config = ParseConfig(R"(
server: 127.0.0.1:7443
fim:
  - path: /etc/
    recursive: true
    ignore: ["*.swp", /etc/mtab]
fim_rescan_s: 600
fim_large_file_bytes: 1048576
heartbeat_s: 10
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->fim.size(), 1u);
  EXPECT_EQ(config->fim[0].path, "/etc");
  EXPECT_EQ(config->fim[0].ignore, (std::vector<std::string>{"*.swp", "/etc/mtab"}));
  EXPECT_EQ(config->fim_rescan_s, 600);
  EXPECT_EQ(config->fim_large_file_bytes, 1048576u);
  EXPECT_EQ(config->heartbeat_s, 10);
  ExpectError("server: 127.0.0.1:7443\nfim:\n  - path: etc\n",
              "fim[0].path': must be an absolute path");
  ExpectError("server: 127.0.0.1:7443\nfim:\n  - path: /etc\n    ignore: x\n",
              "fim[0].ignore': must be a list");
}

TEST(ConfigTest, BadSpoolFsync) {
  ExpectError("server: 127.0.0.1:7443\nspool:\n  fsync: sometimes\n",
              "agent.yaml:3: key 'spool.fsync': must be always, interval or never");
  ExpectError("server: 127.0.0.1:7443\nspool:\n  size: 1\n", "spool.size");
}

TEST(ConfigTest, MissingServer) { ExpectError("state_dir: /x\n", "key 'server': is required"); }

TEST(ConfigTest, BadServer) {
  ExpectError("server: localhost\n", "key 'server': must be HOST:PORT");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  ExpectError("server: h:1\nsate_dir: /x\n", "agent.yaml:2: key 'sate_dir': unknown key");
}

TEST(ConfigTest, BadStartNamesListEntryAndLine) {
  ExpectError(R"(server: h:1
logs:
  - path: /var/log/a
  - path: /var/log/b
    start: middle
)",
              "agent.yaml:5: key 'logs[1].start': must be 'beginning' or 'end', got 'middle'");
}

TEST(ConfigTest, LogWithoutPath) {
  ExpectError("server: h:1\nlogs:\n  - start: end\n", "key 'logs[0].path': is required");
}

TEST(ConfigTest, RelativeLogPath) {
  ExpectError("server: h:1\nlogs:\n  - path: auth.log\n",
              "key 'logs[0].path': must be an absolute path");
}

TEST(ConfigTest, UnknownKeyInLogEntry) {
  ExpectError("server: h:1\nlogs:\n  - path: /a\n    begin: yes\n", "key 'logs[0].begin'");
}

TEST(ConfigTest, BatchSizeOutOfRange) {
  ExpectError("server: h:1\nbatch_max_events: 0\n",
              "key 'batch_max_events': must be between 1 and");
  ExpectError("server: h:1\nbatch_max_delay_ms: soon\n",
              "key 'batch_max_delay_ms': must be an integer");
}

TEST(ConfigTest, LogsMustBeAList) {
  ExpectError("server: h:1\nlogs: /var/log/syslog\n", "key 'logs': must be a list");
}

TEST(ConfigTest, FimRecursiveMustBeBool) {
  ExpectError("server: h:1\nfim:\n  - path: /etc\n    recursive: maybe\n",
              "key 'fim[0].recursive': must be true or false");
}

TEST(ConfigTest, InvalidYamlNamesFile) { ExpectError("server: [unclosed\n", "invalid YAML"); }

TEST(ConfigTest, LoadConfigNamesMissingFile) {
  TestDir dir;
  auto config = LoadConfig(dir / "missing.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(absl::StrContains(config.status().message(), "missing.yaml"));
}

TEST(ConfigTest, LoadConfigReadsFile) {
  TestDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir / "agent.yaml", "server: 127.0.0.1:1\n").ok());
  auto config = LoadConfig(dir / "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source, dir / "agent.yaml");
}

TEST(ConfigTest, JournaldLimitsFimBudgetAndRenewalKeys) {
  auto defaults = ParseConfig("server: 127.0.0.1:7443\n", "agent.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_FALSE(defaults->journald.enabled);
  EXPECT_EQ(defaults->fim_cpu_percent, 5);
  EXPECT_EQ(defaults->fim_io_bytes_per_s, uint64_t{32} << 20);
  EXPECT_EQ(defaults->max_events_per_s, 0u);
  EXPECT_EQ(defaults->max_memory_bytes, 0u);
  EXPECT_DOUBLE_EQ(defaults->cert_renew_fraction, 1.0 / 3);

  auto config = ParseConfig(R"(
server: 127.0.0.1:7443
journald:
  enabled: true
  matches: [_SYSTEMD_UNIT=ssh.service, SYSLOG_IDENTIFIER=sudo]
  directory: /var/log/journal/remote
  start: beginning
limits:
  events_per_s: 2000
  memory_bytes: 16777216
fim_cpu_percent: 2.5
fim_io_bytes_per_s: 0
cert_renew_fraction: 0.5
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->journald.enabled);
  EXPECT_EQ(config->journald.matches,
            (std::vector<std::string>{"_SYSTEMD_UNIT=ssh.service", "SYSLOG_IDENTIFIER=sudo"}));
  EXPECT_EQ(config->journald.directory, "/var/log/journal/remote");
  EXPECT_EQ(config->journald.start, StartAt::kBeginning);
  EXPECT_EQ(config->max_events_per_s, 2000u);
  EXPECT_EQ(config->events_burst, 2000u);  // one second's worth unless set
  EXPECT_EQ(config->max_memory_bytes, 16u << 20);
  EXPECT_DOUBLE_EQ(config->fim_cpu_percent, 2.5);
  EXPECT_EQ(config->fim_io_bytes_per_s, 0u);
  EXPECT_DOUBLE_EQ(config->cert_renew_fraction, 0.5);

  const MemoryBudget budget = MemoryBudgetFor(config->max_memory_bytes);
  EXPECT_EQ(budget.read_bytes_per_round, 4u << 20);
  EXPECT_EQ(budget.batch_bytes, 1u << 20);
  EXPECT_LE(budget.read_bytes_per_round + budget.batch_bytes + budget.fim_outbox_events * 512,
            config->max_memory_bytes);
  const MemoryBudget small = MemoryBudgetFor(4 << 20);
  EXPECT_EQ(small.read_bytes_per_round, 1u << 20);
  EXPECT_EQ(small.batch_bytes, 512u << 10);
}

TEST(ConfigTest, HalfConfiguredSectionsAreRefused) {
  const std::string head = "server: 127.0.0.1:7443\n";
  ExpectError(head + "journald:\n  matches: [_SYSTEMD_UNIT=ssh.service]\n",
              "agent.yaml:3: key 'journald.enabled': is required");
  ExpectError(head + "journald:\n  enabled: maybe\n",
              "key 'journald.enabled': must be true or false");
  ExpectError(head + "journald:\n  enabled: true\n  matches: [ssh.service]\n",
              "key 'journald.matches[0]': must be FIELD=value");
  ExpectError(head + "journald:\n  enabled: true\n  matches: [_unit=x]\n",
              "key 'journald.matches[0]'");
  ExpectError(head + "journald:\n  enabled: true\n  directory: journal\n",
              "key 'journald.directory': must be an absolute path");
  ExpectError(head + "journald:\n  enabled: true\n  start: middle\n",
              "key 'journald.start': must be 'beginning' or 'end', got 'middle'");
  ExpectError(head + "journald:\n  enabled: true\n  cursor: x\n",
              "key 'journald.cursor': unknown key");
  ExpectError(head + "limits:\n  events_burst: 100\n",
              "agent.yaml:3: key 'limits.events_burst': needs limits.events_per_s");
  ExpectError(head + "limits:\n  events_per_s: -1\n", "key 'limits.events_per_s': must be between");
  ExpectError(head + "limits:\n  memory_bytes: 1000\n",
              "key 'limits.memory_bytes': must be 0 (built-in sizes) or at least 4194304");
  ExpectError(head + "limits: 5\n", "key 'limits': must be a mapping");
  ExpectError(head + "fim_cpu_percent: 150\n", "key 'fim_cpu_percent': must be between 0 and 100");
  ExpectError(head + "fim_cpu_percent: lots\n", "key 'fim_cpu_percent': must be a number");
  ExpectError(head + "fim_io_bytes_per_s: 100\n",
              "key 'fim_io_bytes_per_s': must be 0 (no limit) or at least 65536");
  ExpectError(head + "cert_renew_fraction: 1.5\n", "key 'cert_renew_fraction': must be between");
}

TEST(ConfigTest, SyslogUdpSection) {
  auto config = ParseConfig(R"(
server: 127.0.0.1:7443
syslog_udp:
  enabled: true
  listen: "[::]:5514"
  max_message_bytes: 2048
  receive_buffer_bytes: 1048576
)",
                            "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->syslog_udp.enabled);
  EXPECT_EQ(config->syslog_udp.host, "::");
  EXPECT_EQ(config->syslog_udp.port, 5514);
  EXPECT_EQ(config->syslog_udp.max_message_bytes, 2048u);
  EXPECT_EQ(config->syslog_udp.receive_buffer_bytes, 1048576u);

  auto v4 =
      ParseConfig("server: a:1\nsyslog_udp: {enabled: true, listen: 127.0.0.1:0}\n", "a.yaml");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->syslog_udp.host, "127.0.0.1");
  EXPECT_EQ(v4->syslog_udp.port, 0);
  EXPECT_EQ(v4->syslog_udp.max_message_bytes, 8192u);  // default

  // Off by default, and off when said so (listen then optional).
  auto off = ParseConfig("server: a:1\n", "a.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->syslog_udp.enabled);
  auto disabled = ParseConfig("server: a:1\nsyslog_udp: {enabled: false}\n", "a.yaml");
  ASSERT_TRUE(disabled.ok()) << disabled.status();
  EXPECT_FALSE(disabled->syslog_udp.enabled);
}

TEST(ConfigTest, SyslogUdpErrorsNameTheKey) {
  ExpectError("server: a:1\nsyslog_udp:\n  listen: 0.0.0.0:514\n",
              "key 'syslog_udp.enabled': is required");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n",
              "key 'syslog_udp.listen': is required");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n  listen: syslog.local:514\n",
              ":4: key 'syslog_udp.listen': the address must be a numeric");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n  listen: 0.0.0.0:70000\n",
              "key 'syslog_udp.listen': the port must be 0..65535");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n  listen: 0.0.0.0\n",
              "key 'syslog_udp.listen': must be ADDRESS:PORT");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n  listen: \"[::1:514\"\n",
              "key 'syslog_udp.listen': must be [IPV6]:PORT");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: true\n  listen: 0.0.0.0:514\n  port: 5\n",
              "key 'syslog_udp.port': unknown key");
  ExpectError(
      "server: a:1\nsyslog_udp:\n  enabled: true\n  listen: 0.0.0.0:514\n  max_message_bytes: "
      "100\n",
      "key 'syslog_udp.max_message_bytes': must be between 480 and 65507");
  ExpectError("server: a:1\nsyslog_udp: 514\n", "key 'syslog_udp': must be a mapping");
  ExpectError("server: a:1\nsyslog_udp:\n  enabled: maybe\n",
              "key 'syslog_udp.enabled': must be true or false");
}

}  // namespace
}  // namespace siper::agent

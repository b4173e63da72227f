// Decoders on log variants from other servers than the ones in ../shared/data:
// Debian 11/12, Ubuntu, RHEL and Windows collectors write the same events with
// other headers, OpenSSH 7-9 words, other web log formats and JSON shapes. Each
// case is one realistic line and the fields it must (or must not) give.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "rules/decoder.h"

namespace siper::rules {
namespace {

constexpr const char* kAbsent = "<absent>";

struct Case {
  std::string line;
  std::map<std::string, std::string> fields;  // kAbsent: the field must not be set
};

void ExpectCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    Event ev;
    absl::Status st = DecodeLine(c.line, "/var/log/test.log", InputFormat::kAuto, &ev);
    ASSERT_TRUE(st.ok()) << st << "\n" << c.line;
    for (const auto& [k, want] : c.fields) {
      auto it = ev.fields.find(k);
      const std::string got = it == ev.fields.end() ? kAbsent : std::string(it->second);
      EXPECT_EQ(got, want) << k << " of\n  " << c.line;
    }
  }
}

bool Has(const LogSourceList& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(DecoderVariantsTest, SyslogHeaders) {
  ExpectCases({
      // rsyslog's RFC 3339 timestamps (Debian 12 when journald forwards), with a zone.
      {"2026-11-28T10:00:00.123456+03:00 deb12 sshd[1234]: Failed password for root from "
       "192.0.2.1 port 22 ssh2",
       {{"@timestamp", "2026-11-28T07:00:00.123456Z"},
        {"host.hostname", "deb12"},
        {"process.pid", "1234"},
        {"source.ip", "192.0.2.1"}}},
      // journalctl -o short-iso(-precise): the zone without a colon.
      {"2026-11-28T10:00:00.123456+0300 deb12 sshd[12]: Invalid user x from 192.0.2.1 port 22",
       {{"@timestamp", "2026-11-28T07:00:00.123456Z"}, {"user.name", "x"}}},
      // RFC 3164 with an IP or an FQDN as host, with a year, without a pid.
      {"Nov 28 10:00:00 192.168.1.10 sshd[12]: Invalid user admin from 192.0.2.2 port 4444",
       {{"host.hostname", "192.168.1.10"}, {"user.name", "admin"}, {"source.port", "4444"}}},
      {"Nov 28 2026 10:00:00 web01.example.gov.tr sshd: Invalid user admin from 192.0.2.2",
       {{"host.hostname", "web01.example.gov.tr"},
        {"process.name", "sshd"},
        {"process.pid", kAbsent},
        {"source.ip", "192.0.2.2"}}},
      // Priority before an RFC 3164 header.
      {"<34>Nov 28 10:00:00 host sshd[12]: Invalid user admin from 192.0.2.2 port 4444",
       {{"log.syslog.priority", "34"},
        {"log.syslog.facility.code", "4"},
        {"log.syslog.severity.code", "2"},
        {"user.name", "admin"}}},
      // RFC 5424: NILVALUE fields, several SD elements with escapes, a BOM before MSG.
      {"<165>1 2026-11-28T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 "
       "iut=\"3\" eventSource=\"App\\]lic\" eventID=\"10\\\"11\"][examplePriority@32473 "
       "class=\"high\"] \xEF\xBB\xBF"
       "BOM message here",
       {{"message", "BOM message here"},
        {"process.pid", kAbsent},
        {"event.code", "ID47"},
        {"log.syslog.structured_data.exampleSDID@32473.eventSource", "App]lic"},
        {"log.syslog.structured_data.exampleSDID@32473.eventID", "10\"11"},
        {"log.syslog.structured_data.examplePriority@32473.class", "high"}}},
      {"<13>1 - - - - - - just a message",
       {{"message", "just a message"}, {"host.hostname", kAbsent}, {"@timestamp", kAbsent}}},
  });
}

TEST(DecoderVariantsTest, SshdOpenSsh7To9) {
  const std::string h = "Nov 28 10:00:00 host sshd[12]: ";
  ExpectCases({
      // Without "error: " (some builds) and with it.
      {h + "maximum authentication attempts exceeded for root from 192.0.2.5 port 5555 ssh2 "
           "[preauth]",
       {{"event.action", "ssh_max_auth_exceeded"},
        {"event.outcome", "failure"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.5"},
        {"source.port", "5555"}}},
      // OpenSSH 8+: the disconnect that ends a guessing session.
      {h + "Disconnecting authenticating user root 192.0.2.5 port 5555: Too many "
           "authentication failures [preauth]",
       {{"event.action", "ssh_max_auth_exceeded"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.5"},
        {"source.port", "5555"},
        {"event.reason", "Too many authentication failures"}}},
      {h + "Disconnecting invalid user a 10.0.0.1 port 22 192.0.2.5 port 5555: Too many "
           "authentication failures [preauth]",
       {{"user.name", "a 10.0.0.1 port 22"}, {"user.invalid", "true"}, {"source.ip", "192.0.2.5"}}},
      // OpenSSH 6-7's form (as in the loghub log), without the peer.
      {h + "Disconnecting: Too many authentication failures for admin [preauth]",
       {{"event.action", "ssh_max_auth_exceeded"}, {"user.name", "admin"}, {"source.ip", kAbsent}}},
      // sshd's PAM line, with an address or a name (UseDNS), and old sshd's "illegal user".
      {h + "error: PAM: Authentication failure for root from 192.0.2.6",
       {{"event.action", "ssh_pam_failure"},
        {"event.outcome", "failure"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.6"}}},
      {h + "error: PAM: Authentication failure for illegal user admin from host.example.com",
       {{"user.name", "admin"},
        {"user.invalid", "true"},
        {"source.domain", "host.example.com"},
        {"source.ip", kAbsent}}},
      {h + "fatal: Timeout before authentication for 192.0.2.7 port 40000",
       {{"event.action", "ssh_auth_timeout"},
        {"source.ip", "192.0.2.7"},
        {"source.port", "40000"}}},
      {h + "banner exchange: Connection from 192.0.2.8 port 40001: invalid format",
       {{"event.action", "ssh_protocol_failure"},
        {"source.ip", "192.0.2.8"},
        {"event.reason", "invalid format"}}},
      {h + "Unable to negotiate with 2001:db8::8 port 40002: no matching key exchange method "
           "found. Their offer: diffie-hellman-group1-sha1 [preauth]",
       {{"event.action", "ssh_protocol_failure"},
        {"source.ip", "2001:db8::8"},
        {"source.port", "40002"}}},
      {h + "User root from 192.0.2.9 not allowed because not listed in AllowUsers",
       {{"event.action", "ssh_user_not_allowed"},
        {"event.outcome", "failure"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.9"},
        {"event.reason", "not listed in AllowUsers"}}},
      {h + "User bob not allowed because account is locked",
       {{"event.action", "ssh_user_not_allowed"}, {"user.name", "bob"}, {"source.ip", kAbsent}}},
      {h + "ROOT LOGIN REFUSED FROM 192.0.2.10 port 5000",
       {{"event.action", "ssh_root_login_refused"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.10"}}},
      // Already decoded before this branch; kept here as the variant list of the audit.
      {h + "Failed none for invalid user admin from 192.0.2.11 port 5555 ssh2",
       {{"event.action", "ssh_login"}, {"ssh.method", "none"}, {"user.invalid", "true"}}},
      {h + "Failed keyboard-interactive/pam for root from ::ffff:192.0.2.12 port 5555 ssh2",
       {{"ssh.method", "keyboard-interactive/pam"}, {"source.ip", "::ffff:192.0.2.12"}}},
      {h + "Accepted publickey for bob from 2001:db8::1 port 5555 ssh2: RSA SHA256:AbC/def+123",
       {{"event.outcome", "success"},
        {"source.ip", "2001:db8::1"},
        {"ssh.key", "RSA SHA256:AbC/def+123"}}},
      {h + "Connection closed by invalid user X 192.0.2.13 port 5555 [preauth]",
       {{"user.name", "X"}, {"source.ip", "192.0.2.13"}}},
      {h + "Disconnected from invalid user a 10.0.0.1 port 22 192.0.2.14 port 5555 [preauth]",
       {{"user.name", "a 10.0.0.1 port 22"}, {"source.ip", "192.0.2.14"}}},
      {h + "Received disconnect from 192.0.2.15 port 5555:11: Bye Bye [preauth]",
       {{"source.ip", "192.0.2.15"}, {"ssh.disconnect_code", "11"}, {"event.reason", "Bye Bye"}}},
  });
}

TEST(DecoderVariantsTest, OtherPamModulesAndRhelCron) {
  const std::string h = "Nov 28 10:00:00 rhel9 ";
  ExpectCases({
      // RHEL with SSSD (Active Directory, FreeIPA): pam_sss instead of pam_unix.
      {h + "sshd[12]: pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 "
           "tty=ssh ruser= rhost=192.0.2.60 user=bob",
       {{"event.action", "pam_auth_failure"},
        {"pam.service", "sshd"},
        {"user.name", "bob"},
        {"source.ip", "192.0.2.60"}}},
      {h + "su[20]: pam_sss(su-l:auth): authentication failure; logname=alice uid=1000 euid=0 "
           "tty=pts/0 ruser=alice rhost= user=root",
       {{"event.action", "su"},
        {"event.outcome", "failure"},
        {"user.name", "alice"},
        {"user.target.name", "root"}}},
      {h + "login[30]: pam_ldap(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 "
           "tty=tty1 ruser= rhost=  user=carol",
       {{"event.action", "pam_auth_failure"}, {"user.name", "carol"}}},
      // Not a PAM module prefix.
      {h + "myapp[40]: pam_(x): authentication failure; user=bob", {{"event.action", kAbsent}}},
      // cronie on RHEL 7 writes CROND.
      {h + "CROND[50]: (root) CMD (run-parts /etc/cron.hourly)",
       {{"event.action", "cron_command"},
        {"user.name", "root"},
        {"process.command_line", "run-parts /etc/cron.hourly"}}},
  });
}

TEST(DecoderVariantsTest, AccountsCronAndFtp) {
  const std::string h = "Nov 28 10:00:00 host ";
  ExpectCases({
      // crontab -e: the action is one word.
      {h + "crontab[13]: (alice) BEGIN EDIT (alice)",
       {{"event.action", "crontab_begin_edit"}, {"user.name", "alice"}}},
      {h + "crontab[13]: (alice) END EDIT (alice)", {{"event.action", "crontab_end_edit"}}},
      {h + "userdel[129]: remove user 'x' from group 'sudo'",
       {{"event.action", "user_removed_from_group"},
        {"user.target.name", "x"},
        {"group.name", "sudo"}}},
      {h + "gpasswd[126]: user x removed by root from group sudo",
       {{"event.action", "user_removed_from_group"},
        {"user.name", "root"},
        {"user.target.name", "x"},
        {"group.name", "sudo"}}},
      {h + "usermod[125]: lock user 'x' password",
       {{"event.action", "user_locked"}, {"user.target.name", "x"}}},
      // shadow's passwd: the account changed is user.name, as in pam_unix's line.
      {h + "passwd[127]: password for 'x' changed by 'root'",
       {{"event.action", "password_changed"}, {"user.name", "x"}, {"source.user.name", "root"}}},
      {h + "chage[131]: changed password expiry for x",
       {{"event.action", "password_expiry_changed"}, {"user.target.name", "x"}}},
      {h + "vsftpd[2000]: [pid 2001] CONNECT: Client \"::ffff:192.0.2.20\"",
       {{"event.action", "ftp_connection"}, {"source.ip", "192.0.2.20"}}},
      {h + "proftpd[3000]: srv.example.com (192.0.2.21[192.0.2.21]) - SECURITY VIOLATION: Root "
           "login attempted",
       {{"event.action", "ftp_root_login_refused"},
        {"event.outcome", "failure"},
        {"user.name", "root"},
        {"source.ip", "192.0.2.21"}}},
  });
}

TEST(DecoderVariantsTest, WebAccessFormats) {
  ExpectCases({
      // Apache vhost_combined: "host:port " before the client.
      {"www.example.gov.tr:443 192.0.2.30 - - [28/Nov/2026:10:00:00 +0300] \"GET /wp-login.php "
       "HTTP/1.1\" 404 490 \"-\" \"Mozilla/5.0\"",
       {{"source.ip", "192.0.2.30"},
        {"url.domain", "www.example.gov.tr"},
        {"url.port", "443"},
        {"user.name", kAbsent},
        {"url.original", "/wp-login.php"},
        {"http.response.status_code", "404"}}},
      {"www.example.gov.tr 2001:db8::30 - bob [28/Nov/2026:10:00:00 +0300] \"GET / HTTP/1.1\" "
       "200 10 \"-\" \"-\"",
       {{"source.ip", "2001:db8::30"}, {"url.domain", "www.example.gov.tr"}, {"user.name", "bob"}}},
      // A host name as client (HostnameLookups On) is not a virtual host.
      {"client.example.org - frank [28/Nov/2026:10:00:00 +0300] \"GET / HTTP/1.1\" 200 10",
       {{"source.ip", "client.example.org"}, {"url.domain", kAbsent}, {"user.name", "frank"}}},
      // nginx formats with fields after the user agent.
      {"192.0.2.31 - - [28/Nov/2026:10:00:00 +0300] \"GET /api HTTP/1.1\" 200 15 \"-\" "
       "\"okhttp/4.9\" \"-\"",
       {{"user_agent.original", "okhttp/4.9"}}},
      {"192.0.2.31 - - [28/Nov/2026:10:00:00 +0300] \"GET /api HTTP/2.0\" 200 15 \"-\" "
       "\"okhttp/4.9\" 0.012",
       {{"user_agent.original", "okhttp/4.9"}, {"http.version", "2.0"}}},
      // Escaped quotes stay inside the agent.
      {"192.0.2.32 - - [28/Nov/2026:10:00:00 +0300] \"GET / HTTP/1.1\" 304 - \"-\" "
       "\"Mozilla/5.0 \\\"quoted\\\" agent\" rt=0.1",
       {{"user_agent.original", "Mozilla/5.0 \\\"quoted\\\" agent"},
        {"http.response.body.bytes", kAbsent}}},
      // An agent ending in a backslash (Apache writes it doubled).
      {"192.0.2.32 - - [28/Nov/2026:10:00:00 +0300] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\\\\\" "
       "0.1",
       {{"user_agent.original", "x\\\\"}}},
      // No request line at all.
      {"192.0.2.33 - - [28/Nov/2026:10:00:00 +0300] \"-\" 408 - \"-\" \"-\"",
       {{"http.response.status_code", "408"}, {"url.original", kAbsent}}},
      // A TLS handshake sent to the plain port.
      {"192.0.2.34 - - [28/Nov/2026:10:00:00 +0300] \"\\x16\\x03\\x01\\x00\\xa5\" 400 226 \"-\" "
       "\"-\"",
       {{"http.response.status_code", "400"}, {"http.request.method", kAbsent}}},
  });
}

TEST(DecoderVariantsTest, WebErrorAndSyslogWrappedWebLogs) {
  ExpectCases({
      {"[Sat Nov 28 10:00:00 2026] [error] [client 192.0.2.40] PHP Warning:  include(/x.php): "
       "failed to open stream: No such file or directory in /var/www/html/index.php on line 3, "
       "referer: http://example.com/",
       {{"source.ip", "192.0.2.40"}, {"http.request.referrer", "http://example.com/"}}},
      {"[Sat Nov 28 10:00:00.123456 2026] [authz_core:error] [pid 1234:tid 140000] [client "
       "192.0.2.41:5555] AH01630: client denied by server configuration: /var/www/html/secret",
       {{"source.ip", "192.0.2.41"},
        {"source.port", "5555"},
        {"file.path", "/var/www/html/secret"},
        {"http.request.referrer", kAbsent}}},
      {"2026/11/28 10:00:00 [error] 1234#1234: *12 open() \"/usr/share/nginx/html/x\" failed (2: "
       "No such file or directory), client: 2001:db8::44, server: s, request: \"GET /x HTTP/1.1\", "
       "host: \"www.example.gov.tr\", referrer: \"http://h/\"",
       {{"source.ip", "2001:db8::44"},
        {"file.path", "/usr/share/nginx/html/x"},
        {"url.original", "/x"},
        {"url.domain", "www.example.gov.tr"},
        {"http.request.referrer", "http://h/"}}},
      {"2026/11/28 10:00:00 [notice] 1234#1234: signal process started",
       {{"log.level", "notice"}, {"url.domain", kAbsent}, {"source.ip", kAbsent}}},
      // nginx "access_log syslog:server=..." and Apache "ErrorLog syslog:".
      {"Nov 28 10:00:00 web1 nginx: 192.0.2.42 - - [28/Nov/2026:10:00:00 +0300] \"GET /x "
       "HTTP/1.1\" 404 153 \"-\" \"curl/8\"",
       {{"host.hostname", "web1"},
        {"source.ip", "192.0.2.42"},
        {"url.original", "/x"},
        {"http.response.status_code", "404"},
        {"user_agent.original", "curl/8"}}},
      {"Nov 28 10:00:00 web1 apache2[800]: [Sat Nov 28 10:00:00.1 2026] [auth_basic:error] [pid "
       "800] [client 192.0.2.43:5000] AH01618: user bob not found: /admin",
       {{"source.ip", "192.0.2.43"},
        {"event.action", "http_auth"},
        {"event.outcome", "failure"},
        {"user.name", "bob"}}},
  });
  Event ev;
  ASSERT_TRUE(DecodeLine("Nov 28 10:00:00 web1 nginx: 192.0.2.42 - - [28/Nov/2026:10:00:00 +0300] "
                         "\"GET /x HTTP/1.1\" 404 153 \"-\" \"curl/8\"",
                         "", InputFormat::kAuto, &ev)
                  .ok());
  EXPECT_TRUE(Has(ev.categories, "webserver"));
  EXPECT_TRUE(Has(ev.services, "nginx"));
}

TEST(DecoderVariantsTest, JsonAfterASyslogHeader) {
  ExpectCases({
      {"Nov 28 10:00:00 host myapp[12]: {\"event\":\"login_failed\",\"user\":{\"name\":\"bob\"},"
       "\"ip\":\"192.0.2.50\",\"n\":[1,true,null]}",
       {{"host.hostname", "host"},
        {"process.name", "myapp"},
        {"event", "login_failed"},
        {"user.name", "bob"},
        {"ip", "192.0.2.50"},
        {"n.1", "true"}}},
      {"Nov 28 10:00:00 host myapp[12]: @cee: {\"msg\":\"hello\"}", {{"msg", "hello"}}},
      // Not JSON after all: only the syslog fields.
      {"Nov 28 10:00:00 host myapp[12]: {\"broken\": ",
       {{"broken", kAbsent}, {"process.pid", "12"}}},
  });
  // A Windows event forwarded by NXLog over syslog is routed as Windows.
  Event ev;
  ASSERT_TRUE(DecodeLine("<14>Nov 28 10:00:00 WS01 nxlog: {\"EventTime\":\"2026-11-28 10:00:00\","
                         "\"Hostname\":\"WS01\",\"EventID\":1,\"SourceName\":\"Microsoft-Windows-"
                         "Sysmon\",\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Image\":"
                         "\"C:\\\\Windows\\\\System32\\\\cmd.exe\"}",
                         "", InputFormat::kAuto, &ev)
                  .ok());
  EXPECT_TRUE(Has(ev.products, "windows"));
  EXPECT_FALSE(Has(ev.products, "linux"));
  EXPECT_TRUE(Has(ev.categories, "process_creation"));
  EXPECT_EQ(ev.fields.at("Image"), "C:\\Windows\\System32\\cmd.exe");
}

TEST(DecoderVariantsTest, WindowsJsonShapes) {
  ExpectCases({
      // Winlogbeat 8 / Elastic Agent: ids as strings, ECS event.code beside winlog.*.
      {R"({"@timestamp":"2026-11-28T10:00:00.000Z","event":{"code":"4625","action":"logon-failed"},"winlog":{"channel":"Security","event_id":"4625","provider_name":"Microsoft-Windows-Security-Auditing","computer_name":"DC01.example.local","event_data":{"TargetUserName":"administrator","IpAddress":"203.0.113.5","IpPort":"51234","LogonType":"3"}}})",
       {{"EventID", "4625"},
        {"TargetUserName", "administrator"},
        {"IpAddress", "203.0.113.5"},
        {"source.ip", "203.0.113.5"},
        {"user.name", "administrator"},
        {"host.hostname", "DC01.example.local"}}},
      // IPv4-mapped address of a 4624 is the IPv4 address.
      {R"({"winlog":{"channel":"Security","event_id":4624,"event_data":{"TargetUserName":"bob","IpAddress":"::ffff:10.0.0.5","LogonType":"10"}}})",
       {{"EventID", "4624"}, {"source.ip", "10.0.0.5"}}},
      // NXLog with an RFC 3339 EventTime.
      {R"({"EventTime":"2026-11-28T10:00:00.5+03:00","Hostname":"DC01","EventID":4625,"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","TargetUserName":"admin","IpAddress":"198.51.100.7"})",
       {{"user.name", "admin"}, {"source.ip", "198.51.100.7"}, {"event.code", "4625"}}},
  });
}

TEST(DecoderVariantsTest, InvalidJsonIsAClearErrorNotACrash) {
  for (std::string bad : {std::string("{\"broken\": \"json\", "), std::string("{\"x\":1}garbage"),
                          std::string("[1,2]"), std::string(100000, '[') + "1",
                          "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}"}) {
    Event ev;
    absl::Status st = DecodeLine(bad, "app.json", InputFormat::kJson, &ev);
    if (bad.back() == '}') {
      // Deep but valid: decoded (the parser does not recurse), no field for empty arrays.
      EXPECT_TRUE(st.ok()) << st;
      continue;
    }
    ASSERT_FALSE(st.ok()) << bad.substr(0, 40);
    EXPECT_NE(st.message().find("not a JSON object"), std::string::npos) << st;
    EXPECT_LE(st.message().size(), 120u);
    // In auto mode the same text is kept as a plain message.
    absl::Status auto_st = DecodeLine(bad, "app.json", InputFormat::kAuto, &ev);
    EXPECT_TRUE(auto_st.ok());
    EXPECT_EQ(ev.fields.at("message"), bad);
  }
}

}  // namespace
}  // namespace siper::rules

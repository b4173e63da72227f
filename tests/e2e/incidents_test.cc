// End to end for incidents (issue 6): the real attack log through a real siper-agent into a
// real siper-server opens one incident per attacker and host; siperctl drives the workflow,
// roles from client certificates are enforced, the audit trail verifies, and the USOM and
// KVKK reports come out of the server.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/pki.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// rules/ruleset/linux/ssh_brute_force.yml
constexpr char kBruteForceRule[] = "d5c5f79f-af7a-436d-bc49-a04d1840d3d2";
// rules/ruleset/linux/ssh_failed_password.yml
constexpr char kFailedLoginRule[] = "7e623b43-6405-435c-a416-65a247983365";
constexpr char kAttacker[] = "203.0.113.45";

class IncidentsEndToEnd : public ServerTest {
 protected:
  // Starts siper-server, with `config_yaml` as its --config when not empty.
  void StartServer(const std::string& config_yaml) { ServerTest::StartServer(config_yaml); }

  // siperctl with the given client certificate and key.
  CommandResult CtlAs(const fs::path& cert, const fs::path& key, std::vector<std::string> args) {
    std::vector<std::string> argv = {
        SIPERCTL_BIN, "--server",    address_, "--ca",      Pki("ca.pem").string(),
        "--cert",     cert.string(), "--key",  key.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // A user certificate through `siperctl users create` (key made locally, CSR signed by the
  // server for an admin caller).
  std::pair<fs::path, fs::path> CreateUser(const std::string& name, const std::string& role) {
    fs::path dir = root_ / "users";
    CommandResult r = Ctl({"users", "create", name, "--role", role, "--out", dir.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(fs::status(dir / (name + ".key")).permissions() & fs::perms::group_read,
              fs::perms::none);
    return {dir / (name + ".pem"), dir / (name + ".key")};
  }

  // A user certificate with `role`, signed directly with the server's CA (DATA_DIR/pki/ca.key).
  std::pair<fs::path, fs::path> IssueUser(const std::string& name, const std::string& role) {
    pki::KeyAndCert ca{ReadFile(Pki("ca.key")).value(), ReadFile(Pki("ca.pem")).value()};
    absl::StatusOr<pki::KeyAndCert> user = pki::IssueWithNewKey(ca, name, role, absl::Hours(1));
    EXPECT_TRUE(user.ok()) << user.status();
    fs::path cert = root_ / (name + ".pem"), key = root_ / (name + ".key");
    EXPECT_TRUE(WriteFileAtomic(cert, user->cert_pem).ok());
    EXPECT_TRUE(WriteFileAtomic(key, user->key_pem).ok());
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    return {cert, key};
  }

  // Enrolls an agent, runs it on a copy of deploy/samples/attack.log and waits until every
  // line is stored.
  void ShipAttackLog() {
    fs::path log = root_ / "auth.log";
    fs::copy_file(SIPER_ATTACK_LOG, log);
    ShipLog(log);
  }

  // Enrolls an agent, runs it on `log` from its beginning and waits until every line is
  // stored.
  void ShipLog(const fs::path& log) {
    size_t lines = 0;
    {
      std::ifstream in(log);
      std::string line;
      while (std::getline(in, line)) ++lines;
    }
    agent_state_ = root_ / "agent";
    CommandResult enroll = Enroll(agent_state_, CreateToken());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.out << enroll.err;
    fs::path config = root_ / "agent.yaml";
    std::ofstream(config) << "server: " << address_ << "\n"
                          << "state_dir: " << agent_state_.string() << "\n"
                          << "batch_max_delay_ms: 50\n"
                          << "logs:\n"
                          << "  - path: " << log.string() << "\n"
                          << "    start: beginning\n";
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", config.string()},
        root_ / "agent.out");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    size_t stored = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      stored = AgentEventLines(r.out).size();
      if (stored >= lines) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ASSERT_EQ(stored, lines) << "not every line of the attack log was stored";
  }

  std::vector<json> Incidents(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"incidents", "list", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseJsonLines(r.out);
  }

  json Show(const std::string& id) {
    CommandResult r = Ctl({"incidents", "show", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> lines = ParseJsonLines(r.out);
    EXPECT_EQ(lines.size(), 1u) << r.out;
    return lines.empty() ? json() : lines[0];
  }

  fs::path agent_state_;
};

constexpr char kInstitutionYaml[] = R"(institution:
  name: Test Büyükşehir Belediyesi
  some_name: Test BB SOME
  some_mailbox: some@test.bel.tr
  ip_ranges: [192.0.2.0/24]
)";

// The whole path: attack log -> agent -> server -> alerts -> one incident -> workflow,
// roles, audit, reports, and everything still there after a restart.
TEST_F(IncidentsEndToEnd, AttackLogOpensOneIncidentPerAttackerAndTheWorkflowHolds) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kInstitutionYaml));
  ASSERT_NO_FATAL_FAILURE(ShipAttackLog());

  // Grouping: the brute force from 203.0.113.45 on web1 is one incident holding the
  // brute-force alert and every failed login of that attacker (12 in the log), including
  // the ones stored before the brute-force alert opened it.
  std::vector<json> incidents;
  json brute;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    incidents = Incidents();
    int with_attacker = 0;
    for (const json& i : incidents) {
      for (const json& a : i["alerts"]) {
        if (a["source_ip"] == kAttacker) {
          ++with_attacker;
          brute = i;
          break;
        }
      }
    }
    ASSERT_LE(with_attacker, 1) << "the attacker's alerts are split over incidents";
    if (with_attacker == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_FALSE(brute.is_null()) << "no incident for " << kAttacker << "\n" << ServerOutput();
  const std::string id = brute["id"];
  EXPECT_TRUE(id.starts_with("INC-")) << id;
  int failed = 0, brute_alerts = 0;
  for (const json& a : brute["alerts"]) {
    EXPECT_EQ(a["host"], "web1") << a.dump();
    if (a["rule_id"] == kFailedLoginRule && a["source_ip"] == kAttacker) ++failed;
    if (a["rule_id"] == kBruteForceRule) ++brute_alerts;
  }
  EXPECT_GE(brute_alerts, 1) << brute.dump();
  EXPECT_EQ(failed, 12) << brute.dump();
  EXPECT_EQ(brute["state"], "new");
  EXPECT_EQ(brute["rsit_class"], "intrusion-attempts");
  EXPECT_EQ(brute["rsit_type"], "brute-force");
  bool ip_observable = false;
  for (const json& o : brute["observables"]) ip_observable |= o["value"] == kAttacker;
  EXPECT_TRUE(ip_observable) << brute.dump();

  // show: JSON and the human form.
  json shown = Show(id);
  EXPECT_EQ(shown["id"], id);
  EXPECT_EQ(shown["alerts"].size(), brute["alerts"].size());
  CommandResult table = Ctl({"incidents", "show", id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(kAttacker), std::string::npos) << table.out;
  CommandResult list_table = Ctl({"incidents", "list"});
  ASSERT_EQ(list_table.exit_code, 0) << list_table.err;
  EXPECT_NE(list_table.out.find(id), std::string::npos) << list_table.out;

  // Illegal transitions are refused naming the allowed states; closing needs a resolution.
  CommandResult illegal = Ctl({"incidents", "transition", id, "--to", "eradicated"});
  EXPECT_NE(illegal.exit_code, 0);
  EXPECT_NE(illegal.err.find("triage"), std::string::npos) << illegal.err;
  CommandResult no_resolution = Ctl({"incidents", "transition", id, "--to", "closed"});
  EXPECT_NE(no_resolution.exit_code, 0);
  EXPECT_NE(no_resolution.err.find("resolution"), std::string::npos) << no_resolution.err;
  EXPECT_EQ(Show(id)["state"], "new");

  CommandResult triage = Ctl({"incidents", "transition", id, "--to", "triage", "--json"});
  ASSERT_EQ(triage.exit_code, 0) << triage.err;
  EXPECT_EQ(ParseJsonLines(triage.out).at(0)["state"], "triage");

  // A viewer reads but cannot change; an agent certificate gets nothing.
  auto [viewer_cert, viewer_key] = CreateUser("veli", pki::kRoleViewer);
  CommandResult viewer_list = CtlAs(viewer_cert, viewer_key, {"incidents", "list", "--json"});
  EXPECT_EQ(viewer_list.exit_code, 0) << viewer_list.err;
  EXPECT_EQ(ParseJsonLines(viewer_list.out).size(), Incidents().size());
  CommandResult viewer_move =
      CtlAs(viewer_cert, viewer_key, {"incidents", "transition", id, "--to", "investigating"});
  EXPECT_EQ(viewer_move.exit_code, 4) << viewer_move.err;
  EXPECT_NE(viewer_move.err.find("viewer"), std::string::npos) << viewer_move.err;
  CommandResult agent_list = CtlAs(agent_state_ / "agent.pem", agent_state_ / "agent.key",
                                   {"incidents", "list", "--json"});
  EXPECT_EQ(agent_list.exit_code, 4) << agent_list.err;
  EXPECT_TRUE(agent_list.out.empty()) << agent_list.out;
  EXPECT_EQ(Show(id)["state"], "triage");
  // Only an admin issues user certificates.
  CommandResult viewer_issue = CtlAs(
      viewer_cert, viewer_key,
      {"users", "create", "mallory", "--role", "admin", "--out", (root_ / "mallory").string()});
  EXPECT_EQ(viewer_issue.exit_code, 4) << viewer_issue.err;
  // A certificate signed by the CA directly works the same (the path without siperctl).
  auto [direct_cert, direct_key] = IssueUser("vedat", pki::kRoleViewer);
  EXPECT_EQ(
      CtlAs(direct_cert, direct_key,
            {"incidents", "transition", id, "--to", "closed", "--resolution", "false-positive"})
          .exit_code,
      4);

  // An analyst can work the incident.
  auto [analyst_cert, analyst_key] = CreateUser("ayse", pki::kRoleAnalyst);
  CommandResult assign = CtlAs(analyst_cert, analyst_key, {"incidents", "assign", id, "ayse"});
  ASSERT_EQ(assign.exit_code, 0) << assign.err;
  ASSERT_EQ(Ctl({"incidents", "note", id, "blocked 203.0.113.45 at the firewall"}).exit_code, 0);
  ASSERT_EQ(Ctl({"incidents", "update", id, "--severity", "high", "--impact", "root login on web1",
                 "--action", "password reset"})
                .exit_code,
            0);
  ASSERT_EQ(Ctl({"incidents", "transition", id, "--to", "investigating"}).exit_code, 0);
  json now = Show(id);
  EXPECT_EQ(now["assignee"], "ayse");
  EXPECT_EQ(now["severity"], "high");
  // Investigating with high severity: the USOM deadline (default: immediately) has passed.
  bool usom_overdue = false;
  for (const json& d : now["deadlines"])
    usom_overdue |= d["kind"] == "usom" && d["status"] == "overdue";
  EXPECT_TRUE(usom_overdue) << now["deadlines"].dump();
  std::vector<json> overdue = Incidents({"--overdue"});
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[0]["id"], id);
  EXPECT_EQ(Incidents({"--state", "investigating"}).size(), 1u);
  EXPECT_EQ(Incidents({"--state", "closed"}).size(), 0u);

  // Restart: the incident comes back from RocksDB, and the passed USOM deadline is raised
  // (deadline thread, first round at start-up) once: a "deadline-passed" timeline entry,
  // audited as incident.deadline_passed.
  agent_.reset();
  StopServer();
  ASSERT_NO_FATAL_FAILURE(StartServer(kInstitutionYaml));
  json reloaded;
  auto passed = [](const json& incident) {
    int n = 0;
    for (const json& e : incident["timeline"]) n += e["kind"] == "deadline-passed";
    return n;
  };
  auto raise_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < raise_deadline) {
    reloaded = Show(id);
    if (passed(reloaded) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(passed(reloaded), 1) << reloaded["timeline"].dump();
  EXPECT_EQ(reloaded["state"], "investigating");
  // Plus the server's "deadline missed" alert (rules/ruleset/siper), which joins the incident
  // it names; it is stored before the timeline entry is written.
  EXPECT_EQ(reloaded["alerts"].size(), brute["alerts"].size() + 1);
  int deadline_alerts = 0;
  for (const json& a : reloaded["alerts"])
    deadline_alerts += a["rule_id"] == "bb0a7253-0435-4c25-a7f4-a14703f48286";
  EXPECT_EQ(deadline_alerts, 1) << reloaded["alerts"].dump();

  // Audit: who, when, what, before and after; the chain verifies.
  CommandResult audit = Ctl({"audit", "list", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  std::vector<json> records = ParseJsonLines(audit.out);
  ASSERT_FALSE(records.empty());
  bool saw_triage = false, saw_assign = false;
  uint64_t seq = 0;
  for (const json& r : records) {
    EXPECT_EQ(r["seq"].get<uint64_t>(), ++seq);
    EXPECT_TRUE(r.contains("time") && r.contains("actor") && r.contains("action") &&
                r.contains("before") && r.contains("after"))
        << r.dump();
    if (r["action"] == "incident.transition" && r["target"] == id &&
        r["before"]["state"] == "new" && r["after"]["state"] == "triage") {
      saw_triage = true;
      EXPECT_EQ(r["actor"], "admin");
    }
    if (r["target"] == id && r["actor"] == "ayse" && r["after"]["assignee"] == "ayse") {
      saw_assign = true;
    }
  }
  EXPECT_TRUE(saw_triage) << audit.out;
  EXPECT_TRUE(saw_assign) << audit.out;
  int deadline_records = 0;
  for (const json& r : records) {
    if (r["action"] == "incident.deadline_passed" && r["target"] == id) {
      ++deadline_records;
      EXPECT_EQ(r["actor"], "system");
    }
  }
  EXPECT_EQ(deadline_records, 1) << audit.out;
  CommandResult verify = Ctl({"audit", "verify", "--json"});
  ASSERT_EQ(verify.exit_code, 0) << verify.err;
  json verified = ParseJsonLines(verify.out).at(0);
  EXPECT_TRUE(verified["ok"].get<bool>()) << verify.out;
  EXPECT_EQ(verified["records"].get<uint64_t>(), records.size());

  // USOM report: Markdown in Turkish and English with the institution from the server config,
  // JSON, and a STIX 2.1 bundle.
  CommandResult md = Ctl({"report", "usom", id, "--format", "md"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_NE(md.out.find("Siber Olay Bildirim Raporu"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find(id), std::string::npos);
  EXPECT_NE(md.out.find("Test Büyükşehir Belediyesi"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find(kAttacker), std::string::npos);
  CommandResult md_en = Ctl({"report", "usom", id, "--format", "md", "--lang", "en"});
  ASSERT_EQ(md_en.exit_code, 0) << md_en.err;
  EXPECT_NE(md_en.out.find("Cyber Incident Report"), std::string::npos) << md_en.out;
  CommandResult usom_json = Ctl({"report", "usom", id, "--format", "json"});
  ASSERT_EQ(usom_json.exit_code, 0) << usom_json.err;
  json uj = json::parse(usom_json.out);
  EXPECT_NE(uj.dump().find(id), std::string::npos);
  EXPECT_NE(uj.dump().find("some@test.bel.tr"), std::string::npos);
  CommandResult stix = Ctl({"report", "usom", id, "--format", "stix"});
  ASSERT_EQ(stix.exit_code, 0) << stix.err;
  json bundle = json::parse(stix.out);
  EXPECT_EQ(bundle["type"], "bundle");
  EXPECT_TRUE(bundle["id"].get<std::string>().starts_with("bundle--"));
  std::map<std::string, int> types;
  bool attacker_indicator = false;
  for (const json& o : bundle["objects"]) {
    ++types[o["type"]];
    if (o["type"] != "marking-definition") {
      EXPECT_EQ(o["spec_version"], "2.1") << o.dump();
    }
    if (o["type"] == "indicator") {
      attacker_indicator |= o["pattern"].get<std::string>().find(kAttacker) != std::string::npos;
    }
  }
  EXPECT_EQ(types["identity"], 1);
  EXPECT_EQ(types["incident"], 1);
  EXPECT_GE(types["observed-data"], 1);
  EXPECT_GE(types["relationship"], 1);
  EXPECT_TRUE(attacker_indicator) << stix.out;
  CommandResult bad_format = Ctl({"report", "usom", id, "--format", "pdf"});
  EXPECT_NE(bad_format.exit_code, 0);

  // KVKK: refused until the incident is flagged as a personal-data breach.
  CommandResult kvkk_refused = Ctl({"report", "kvkk", id, "--format", "md"});
  EXPECT_NE(kvkk_refused.exit_code, 0);
  ASSERT_EQ(Ctl({"incidents", "update", id, "--personal-data-breach", "yes"}).exit_code, 0);
  CommandResult kvkk_md = Ctl({"report", "kvkk", id, "--format", "md"});
  ASSERT_EQ(kvkk_md.exit_code, 0) << kvkk_md.err;
  EXPECT_NE(kvkk_md.out.find("Test Büyükşehir Belediyesi"), std::string::npos) << kvkk_md.out;
  CommandResult kvkk_json = Ctl({"report", "kvkk", id, "--format", "json"});
  ASSERT_EQ(kvkk_json.exit_code, 0) << kvkk_json.err;
  EXPECT_TRUE(json::accept(kvkk_json.out)) << kvkk_json.out;

  // Closing with a resolution.
  CommandResult close =
      Ctl({"incidents", "transition", id, "--to", "closed", "--resolution", "true-positive"});
  ASSERT_EQ(close.exit_code, 0) << close.err;
  EXPECT_EQ(Show(id)["state"], "closed");

  // Restart: incidents and the audit trail come back from RocksDB and still verify.
  size_t audit_count = ParseJsonLines(Ctl({"audit", "list", "--json"}).out).size();
  agent_.reset();
  StopServer();
  ASSERT_NO_FATAL_FAILURE(StartServer(kInstitutionYaml));
  reloaded = Show(id);
  EXPECT_EQ(reloaded["state"], "closed");
  EXPECT_EQ(reloaded["resolution"], "true-positive");
  EXPECT_EQ(reloaded["alerts"].size(), brute["alerts"].size() + 1);
  EXPECT_EQ(passed(reloaded), 1) << "a deadline was raised twice";
  EXPECT_EQ(ParseJsonLines(Ctl({"audit", "list", "--json"}).out).size(), audit_count);
  CommandResult verify_again = Ctl({"audit", "verify"});
  EXPECT_EQ(verify_again.exit_code, 0) << verify_again.err << verify_again.out;
}

// A server without an institution profile (the quick start) still reports, with the
// registration data marked as unset; incidents can be made, merged and split by hand.
TEST_F(IncidentsEndToEnd, ManualIncidentsAndReportsWithoutAnInstitutionProfile) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  CommandResult a =
      Ctl({"incidents", "create", "--title", "phishing mail to finance", "--rsit-class", "fraud",
           "--rsit-type", "phishing", "--severity", "high", "--json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  std::string first = ParseJsonLines(a.out).at(0)["id"];
  CommandResult b =
      Ctl({"incidents", "create", "--title", "same phishing, second mailbox", "--json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string second = ParseJsonLines(b.out).at(0)["id"];
  EXPECT_NE(first, second);
  CommandResult bad_class =
      Ctl({"incidents", "create", "--title", "x", "--rsit-class", "nonsense"});
  EXPECT_NE(bad_class.exit_code, 0);

  CommandResult merged = Ctl({"incidents", "merge", first, second, "--json"});
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  json dup = Show(second);
  EXPECT_EQ(dup["state"], "closed");
  EXPECT_EQ(dup["resolution"], "duplicate");
  EXPECT_EQ(dup["merged_into"], first);

  CommandResult md = Ctl({"report", "usom", first, "--format", "md"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_NE(md.out.find("(unset: institution.name"), std::string::npos) << md.out;
  CommandResult summary = Ctl({"report", "summary", "--since", "1d", "--format", "md"});
  EXPECT_EQ(summary.exit_code, 0) << summary.err;
  CommandResult missing = Ctl({"report", "usom", "INC-1999-0001"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("INC-1999-0001"), std::string::npos) << missing.err;
}

// RFC 3164 lines have no year or zone: they are written in UTC like the server reads them.
std::string SyslogTime(absl::Time t) {
  return absl::FormatTime("%b %e %H:%M:%S", t, absl::UTCTimeZone());
}

// A brute force logged three hours before it is shipped: the incident's occurred time is the
// log's, detected is when the server saw it. Then the KVKK breach details and the first
// notice to the Board are recorded with siperctl and come out in the KVKK report, and the
// management summary renders in a real browser.
TEST_F(IncidentsEndToEnd, LogTimesKvkkNoticeAndSummaryHtmlFromARealServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kInstitutionYaml));
  const absl::Time logged = absl::Now() - absl::Hours(3);
  const fs::path log = root_ / "late.log";
  {
    std::ofstream out(log);
    for (int i = 0; i < 12; ++i) {
      out << SyslogTime(logged + absl::Seconds(i)) << " web2 sshd[" << 4000 + i
          << "]: Failed password for root from 198.51.100.77 port " << 40000 + i << " ssh2\n";
    }
  }
  ASSERT_NO_FATAL_FAILURE(ShipLog(log));
  std::string id;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       id.empty() && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(200))) {
    for (const json& i : Incidents()) {
      for (const json& a : i["alerts"]) {
        if (a["source_ip"] == "198.51.100.77") id = i["id"];
      }
    }
  }
  ASSERT_FALSE(id.empty()) << "the late brute force opened no incident";
  json in = Show(id);
  absl::Time occurred, detected;
  std::string err;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, in["times"]["occurred"].get<std::string>(),
                              &occurred, &err))
      << in.dump();
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, in["times"]["detected"].get<std::string>(),
                              &detected, &err))
      << in.dump();
  EXPECT_LT(absl::AbsDuration(occurred - logged), absl::Seconds(2)) << in["times"].dump();
  EXPECT_GT(detected - occurred, absl::Hours(2)) << in["times"].dump();

  // A notice before the incident is flagged as a personal-data breach is refused.
  CommandResult early = Ctl({"incidents", "kvkk", id, "--notice", "first"});
  EXPECT_NE(early.exit_code, 0);
  EXPECT_NE(early.err.find("personal-data breach"), std::string::npos) << early.err;
  ASSERT_EQ(Ctl({"incidents", "update", id, "--personal-data-breach", "yes"}).exit_code, 0);
  CommandResult details = Ctl({"incidents",
                               "kvkk",
                               id,
                               "--breach-started",
                               "4h",
                               "--source",
                               "SSH password guessing on web2",
                               "--data-category",
                               "identity",
                               "--data-category",
                               "contact",
                               "--subject-group",
                               "citizens",
                               "--people",
                               "120",
                               "--records",
                               "450",
                               "--consequences",
                               "exposure of contact data",
                               "--measure-taken",
                               "root login disabled",
                               "--measure-planned",
                               "MFA for administrators",
                               "--subjects-informed",
                               "no",
                               "--json"});
  ASSERT_EQ(details.exit_code, 0) << details.err;
  CommandResult notice =
      Ctl({"incidents", "kvkk", id, "--notice", "first", "--notice-reference", "KVKK-2026-77"});
  ASSERT_EQ(notice.exit_code, 0) << notice.err;
  // Bad input is named and changes nothing.
  CommandResult bad_count = Ctl({"incidents", "kvkk", id, "--people", "-5"});
  EXPECT_EQ(bad_count.exit_code, 2) << bad_count.err;
  CommandResult bad_kind = Ctl({"incidents", "kvkk", id, "--notice", "sideways"});
  EXPECT_NE(bad_kind.exit_code, 0);
  EXPECT_NE(bad_kind.err.find("first or follow-up"), std::string::npos) << bad_kind.err;
  CommandResult bad_flag = Ctl({"incidents", "kvkk", id, "--subjects-informed", "maybe"});
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_NE(bad_flag.err.find("--subjects-informed"), std::string::npos) << bad_flag.err;

  CommandResult report = Ctl({"report", "kvkk", id, "--format", "json"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  json k = json::parse(report.out);
  EXPECT_EQ(k["breach"]["source"], "SSH password guessing on web2");
  EXPECT_EQ(k["data"]["categories"], json({"identity", "contact"}));
  EXPECT_EQ(k["data"]["subject_groups"], json({"citizens"}));
  EXPECT_EQ(k["data"]["people_count"], 120);
  EXPECT_EQ(k["data"]["record_count"], 450);
  EXPECT_EQ(k["consequences"], "exposure of contact data");
  EXPECT_EQ(k["measures"]["taken"], json({"root login disabled"}));
  EXPECT_EQ(k["measures"]["planned"], json({"MFA for administrators"}));
  EXPECT_EQ(k["subjects_informed"], false);
  // The first notice is on record, so the next one is a follow-up.
  EXPECT_EQ(k["notice"]["kind"], "follow-up") << k.dump(2);
  EXPECT_NE(k["notice"]["previous"].dump().find("KVKK-2026-77"), std::string::npos) << k.dump(2);
  CommandResult md = Ctl({"report", "kvkk", id, "--format", "md"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_NE(md.out.find("SSH password guessing on web2"), std::string::npos) << md.out;
  // Every change is in the audit trail.
  EXPECT_NE(Ctl({"audit", "list", "--json"}).out.find("incident.kvkk"), std::string::npos);

  // The management summary is one self-contained HTML file with inline SVG charts; a real
  // headless Chromium renders it (with the network off) to a non-empty page.
  CommandResult html = Ctl({"report", "summary", "--since", "1d", "--format", "html"});
  ASSERT_EQ(html.exit_code, 0) << html.err;
  EXPECT_NE(html.out.find("<svg"), std::string::npos);
  // Nothing is fetched: no src/href to another place, no CSS import or url() (the SVG
  // namespace URI is a name, not a fetch).
  for (const char* fetch : {"src=", "href=", "@import", "url("}) {
    EXPECT_EQ(html.out.find(fetch), std::string::npos) << fetch << " in the summary HTML";
  }
  const fs::path page = root_ / "summary.html";
  std::ofstream(page) << html.out;
  const char* chromium = nullptr;
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (fs::exists(candidate)) chromium = candidate;
  }
  if (chromium == nullptr) {
    GTEST_SKIP() << "Debian's chromium is not installed (deploy/install-deps.sh installs it); "
                    "the HTML render check did not run";
  }
  const std::vector<std::string> headless = {chromium,
                                             "--headless",
                                             "--no-sandbox",
                                             "--disable-gpu",
                                             "--disable-dev-shm-usage",
                                             "--no-first-run",
                                             "--proxy-server=127.0.0.1:9",
                                             "--user-data-dir=" + (root_ / "chromium").string()};
  std::vector<std::string> dump = headless;
  dump.push_back("--dump-dom");
  dump.push_back("file://" + page.string());
  CommandResult dom = RunCommand(dump);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_NE(dom.out.find("<svg"), std::string::npos) << "the charts are not in the rendered DOM";
  EXPECT_NE(dom.out.find("<h1>Siber Olay Özeti</h1>"), std::string::npos)
      << "the page's heading did not render";
  std::vector<std::string> shot = headless;
  shot.push_back("--window-size=1280,1800");
  shot.push_back("--screenshot=" + (root_ / "summary.png").string());
  shot.push_back("file://" + page.string());
  CommandResult png = RunCommand(shot);
  ASSERT_EQ(png.exit_code, 0) << png.err;
  ASSERT_TRUE(fs::exists(root_ / "summary.png")) << png.err;
  EXPECT_GT(fs::file_size(root_ / "summary.png"), 10'000u) << "an empty page renders smaller";
}

}  // namespace
}  // namespace siper::testing

// End to end for IOC feeds and rule reload: feeds imported with `siperctl ioc import`
// into a real siper-server, a real siper-agent shipping lines that name listed
// domains, URLs and hashes, alerts naming feed, entry and category, incidents opened
// by IOC notices, the audit trail; and `siperctl rules reload` while an agent streams,
// with every event stored once and matched by exactly one rule set generation.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/process.h"
#include "tests/e2e/server_fixture.h"

namespace siper::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kUsomRule[] = "58844d2e-c11e-4997-b4a8-df0f7e086beb";
constexpr char kHashRule[] = "1160a2f4-32a8-44b9-acc1-4ebc47cbf11c";
constexpr char kGenericRule[] = "d67061aa-e60e-45ef-a6cf-d1b9ca548a67";
constexpr char kEicarSha256[] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

class IocEndToEnd : public ServerTest {
 protected:
  void StartServer(const fs::path& rules_dir) { ServerTest::StartServer("", 2, rules_dir); }

  json CtlJson(std::vector<std::string> args) {
    args.push_back("--json");
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> lines = ParseJsonLines(r.out);
    EXPECT_EQ(lines.size(), 1u) << r.out;
    return lines.empty() ? json() : lines[0];
  }

  // Enrolls and starts an agent that tails `log` from the beginning.
  void StartAgent(const fs::path& log, const fs::path& fim_dir = {}) {
    const fs::path state = root_ / "agent";
    CommandResult enroll = Enroll(state, CreateToken());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.out << enroll.err;
    const fs::path config = root_ / "agent.yaml";
    std::ofstream(config) << "server: " << address_ << "\n"
                          << "state_dir: " << state.string() << "\n"
                          << "batch_max_delay_ms: 20\n"
                          << "logs:\n"
                          << "  - path: " << log.string() << "\n"
                          << "    start: beginning\n";
    if (!fim_dir.empty()) {
      std::ofstream(config, std::ios::app) << "fim:\n  - path: " << fim_dir.string() << "\n";
    }
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SIPER_AGENT_BIN, "run", "--config", config.string()},
        root_ / "agent.out");
  }

  std::vector<json> Events() {
    CommandResult r = Ctl({"events", "search", "--limit", "0", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return AgentEventLines(r.out);
  }
  void WaitForEvents(size_t n, int seconds = 90) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    size_t stored = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      stored = Events().size();
      if (stored >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ASSERT_EQ(stored, n) << "not every line was stored\n" << ServerOutput();
  }
  std::vector<json> Alerts(const std::string& rule = "") {
    std::vector<std::string> args = {"alerts", "list", "--limit", "0", "--json"};
    if (!rule.empty()) {
      args.push_back("--rule");
      args.push_back(rule);
    }
    CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseJsonLines(r.out);
  }
};

// A plain domain from USOM's list (the real one when ../shared/data is there).
std::string ListedDomain(const fs::path& list) {
  std::ifstream in(list);
  std::string line;
  int seen = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() < 12 || line.find_first_of("/:") != std::string::npos) continue;
    if (line.find_first_not_of("0123456789.") == std::string::npos) continue;  // an address
    if (line.find('.') == std::string::npos || line.starts_with("xn--")) continue;
    if (++seen == 500 || in.peek() == EOF) return line;
  }
  return "";
}

TEST_F(IocEndToEnd, ImportedFeedsRaiseAlertsNamingTheEntryAndOpenIncidents) {
  ASSERT_NO_FATAL_FAILURE(StartServer(SIPER_RULES_DIR));

  // USOM's list: the real copy when present, else a small one in the same shape.
  fs::path usom = fs::path(SIPER_SHARED_DATA_DIR) / "ioc" / "usom-url-list-2020-04.txt";
  const bool real = fs::exists(usom);
  if (!real) {
    std::cerr << "[ note ] " << usom << " is absent: importing a small USOM-shaped list instead\n";
    usom = root_ / "url-list.txt";
    std::ofstream(usom)
        << "kisa-url-phish.example.com\r\nbank-giris.example.net/login.php\r\n"
        << "45.9.148.3\r\naidat-merkezi-cimer\r\nsecure-login-turkiye.example.org\r\n";
  }
  const std::string domain = real ? ListedDomain(usom) : "secure-login-turkiye.example.org";
  ASSERT_FALSE(domain.empty());

  // No --format: USOM's list is told apart from its JSON records by content.
  json imported = CtlJson({"ioc", "import", "--feed", "usom", "--file", usom.string()});
  EXPECT_EQ(imported["format"], "usom");
  const uint64_t entries = imported["entries"];
  EXPECT_EQ(imported["new"], entries);
  EXPECT_EQ(imported["removed"], 0);
  EXPECT_GE(imported["invalid"].get<uint64_t>(), 1u);  // bare labels such as aidat-merkezi-cimer
  if (real) {
    EXPECT_GT(entries, 60000u);
    EXPECT_EQ(imported["entries_by_kind"]["domain"], 53810);
  }
  // The same file again: nothing new, nothing removed.
  json again = CtlJson({"ioc", "import", "--feed", "usom", "--file", usom.string()});
  EXPECT_EQ(again["unchanged"], entries);
  EXPECT_EQ(again["new"], 0);
  EXPECT_EQ(again["updated"], 0);
  EXPECT_GT(again["ioc_generation"].get<uint64_t>(), imported["ioc_generation"].get<uint64_t>());

  // A hash list (EICAR) and a C2 list, our own small files.
  const fs::path hashes = root_ / "hashes.txt";
  std::ofstream(hashes) << "# test hashes\n" << kEicarSha256 << ";EICAR test file\nnot-a-hash;x\n";
  json h = CtlJson({"ioc", "import", "--feed", "malware-hashes", "--format", "hash", "--category",
                    "malware", "--confidence", "90", "--file", hashes.string()});
  EXPECT_EQ(h["new"], 1);
  EXPECT_EQ(h["invalid"], 1);
  ASSERT_EQ(h["invalid_samples"].size(), 1u);
  EXPECT_TRUE(h["invalid_samples"][0].get<std::string>().starts_with("line 3: ")) << h.dump();
  const fs::path c2 = root_ / "c2.txt";
  std::ofstream(c2) << "# Cobalt Strike\nc2-beacon.badcorp.example.org\n";
  CtlJson({"ioc", "import", "--feed", "c2-list", "--format", "value", "--category",
           "command and control", "--file", c2.string()});

  // Refusals name the file and keep the stored feed.
  const fs::path junk = root_ / "junk.txt";
  std::ofstream(junk) << "nothing here\nat all\n";
  CommandResult refused = Ctl(
      {"ioc", "import", "--feed", "malware-hashes", "--format", "hash", "--file", junk.string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find(junk.string()), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("line 1"), std::string::npos) << refused.err;
  CommandResult no_format = Ctl({"ioc", "import", "--feed", "c2", "--file", c2.string()});
  EXPECT_EQ(no_format.exit_code, 2) << no_format.err;
  CommandResult missing = Ctl({"ioc", "import", "--feed", "x", "--format", "plain", "--file",
                               (root_ / "nope.txt").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("nope.txt"), std::string::npos) << missing.err;

  CommandResult list = Ctl({"ioc", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::vector<json> feeds = ParseJsonLines(list.out);
  ASSERT_EQ(feeds.size(), 3u) << list.out;
  EXPECT_EQ(feeds[0]["name"], "c2-list");
  EXPECT_EQ(feeds[1]["name"], "malware-hashes");
  EXPECT_EQ(feeds[1]["entries"], 1);
  EXPECT_EQ(feeds[2]["name"], "usom");
  EXPECT_EQ(feeds[2]["imported_by"], "admin");

  CommandResult check = Ctl({"ioc", "check", "www." + domain, "--json"});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  std::vector<json> hits = ParseJsonLines(check.out);
  ASSERT_EQ(hits.size(), 1u) << check.out;
  EXPECT_EQ(hits[0]["feed"], "usom");
  EXPECT_EQ(hits[0]["entry"], domain);

  // Lines naming the listed domain, the hash and the C2 host; one clean line.
  const fs::path log = root_ / "mixed.log";
  {
    std::ofstream out(log);
    out << "Nov 28 10:00:01 pc12 dnsmasq[901]: query[A] " << domain << " from 10.1.2.3\n"
        << R"({"host":{"hostname":"pc13"},"event":{"action":"file-created"},"file":{"path":"C:\\Users\\x\\eicar.com","hash":{"sha256":")"
        << kEicarSha256 << "\"}}}\n"
        << "Nov 28 10:00:03 pc14 proxy[77]: CONNECT c2-beacon.badcorp.example.org:443\n"
        << "Nov 28 10:00:04 pc12 dnsmasq[901]: query[A] www.example.com from 10.1.2.3\n";
  }
  // And a file-integrity event: the EICAR test file in a watched folder.
  const fs::path watched = root_ / "watched";
  fs::create_directories(watched);
  std::ofstream(watched / "eicar.com")
      << R"(X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*)";
  ASSERT_NO_FATAL_FAILURE(StartAgent(log, watched));
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < until && Alerts().size() < 4) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(Events().size(), 5u);

  std::vector<json> usom_alerts = Alerts(kUsomRule);
  ASSERT_EQ(usom_alerts.size(), 1u) << ServerOutput();
  const json& ua = usom_alerts[0];
  EXPECT_EQ(ua["level"], "high");
  EXPECT_EQ(ua["fields"]["threat.feed.name"], "usom");
  EXPECT_EQ(ua["fields"]["threat.indicator.value"], domain);
  EXPECT_EQ(ua["fields"]["threat.indicator.type"], "domain");
  EXPECT_EQ(ua["fields"]["threat.indicator.category"], "harmful address");
  EXPECT_EQ(ua["fields"]["threat.indicator.matched_field"], "event.original");
  EXPECT_EQ(ua["fields"]["threat.indicator.confidence"], "50");
  // The hash: once from the JSON line, once from the FIM event.
  std::vector<json> hash_alerts = Alerts(kHashRule);
  ASSERT_EQ(hash_alerts.size(), 2u) << ServerOutput();
  int from_fim = 0;
  for (const json& a : hash_alerts) {
    EXPECT_EQ(a["level"], "critical");
    EXPECT_EQ(a["fields"]["threat.feed.name"], "malware-hashes");
    EXPECT_EQ(a["fields"]["threat.indicator.value"], kEicarSha256);
    EXPECT_EQ(a["fields"]["threat.indicator.category"], "malware");
    EXPECT_EQ(a["fields"]["threat.indicator.matched_field"], "file.hash.sha256");
    EXPECT_EQ(a["fields"]["threat.indicator.confidence"], "90");
    if (a["fields"].value("file.path", "") == (watched / "eicar.com").string()) ++from_fim;
  }
  EXPECT_EQ(from_fim, 1);
  std::vector<json> generic = Alerts(kGenericRule);
  ASSERT_EQ(generic.size(), 1u);
  EXPECT_EQ(generic[0]["level"], "medium");
  EXPECT_EQ(generic[0]["fields"]["threat.indicator.category"], "command and control");
  EXPECT_EQ(Alerts().size(), 4u) << "the clean line raised an alert";
  // Stored events carry the threat fields too (searchable).
  CommandResult by_field = Ctl({"events", "search", "--field", "threat.feed.name=usom", "--json"});
  EXPECT_EQ(ParseJsonLines(by_field.out).size(), 1u) << by_field.err;

  // The human table names feed, entry and category.
  CommandResult table = Ctl({"alerts", "list"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("USOM IOC hit - usom: " + domain + " (harmful address)"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("malware-hashes: " + std::string(kEicarSha256).substr(0, 20)),
            std::string::npos)
      << table.out;

  // IOC notices open incidents, also the medium generic hit (policy ioc_hit_opens).
  std::map<std::string, json> by_rule;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && by_rule.size() < 3) {
    CommandResult r = Ctl({"incidents", "list", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    by_rule.clear();
    for (const json& i : ParseJsonLines(r.out)) {
      for (const json& a : i["alerts"]) by_rule[a["rule_id"]] = i;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(by_rule.size(), 3u) << ServerOutput();
  EXPECT_EQ(by_rule[kUsomRule]["rsit_class"], "fraud");
  EXPECT_EQ(by_rule[kHashRule]["rsit_class"], "malicious-code");
  EXPECT_EQ(by_rule[kGenericRule]["rsit_type"], "c2-server");

  // Imports are in the audit trail with who and the counts.
  CommandResult audit = Ctl({"audit", "list", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  int imports = 0;
  for (const json& r : ParseJsonLines(audit.out)) {
    if (r["action"] != "ioc.import") continue;
    ++imports;
    EXPECT_EQ(r["actor"], "admin");
    if (r["target"] == "malware-hashes") {
      EXPECT_EQ(r["after"]["new"], 1);
      EXPECT_EQ(r["after"]["invalid"], 1);
    }
  }
  EXPECT_EQ(imports, 4);
  CommandResult verify = Ctl({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // Removal (admin) takes the feed out of matching.
  json removed = CtlJson({"ioc", "remove", "--feed", "c2-list"});
  EXPECT_EQ(removed["removed"], 1);
  CommandResult gone = Ctl({"ioc", "check", "c2-beacon.badcorp.example.org", "--json"});
  EXPECT_EQ(gone.exit_code, 0);
  EXPECT_TRUE(ParseJsonLines(gone.out).empty()) << gone.out;
}

TEST_F(IocEndToEnd, RulesReloadWhileAnAgentStreamsMatchesEachEventWithOneGeneration) {
  // A copy of the default rules that the test can change.
  const fs::path rules = root_ / "rules";
  fs::copy(SIPER_RULES_DIR, rules, fs::copy_options::recursive);
  // A rule with an error at start: the server starts with the others and logs it.
  std::ofstream(rules / "broken.yml") << "title: broken\nid: broken\nlogsource: {}\n"
                                      << "detection:\n  s: [unclosed\n  condition: s\n";
  ASSERT_NO_FATAL_FAILURE(StartServer(rules));
  EXPECT_NE(ServerOutput().find("rule error, rule not loaded: "), std::string::npos)
      << ServerOutput();
  EXPECT_NE(ServerOutput().find("broken.yml:"), std::string::npos) << ServerOutput();

  const fs::path log = root_ / "stream.log";
  std::ofstream(log).close();
  ASSERT_NO_FATAL_FAILURE(StartAgent(log));
  std::atomic<int> written{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::ofstream out(log, std::ios::app);
    while (!stop) {
      const int n = written + 1;
      out << "Nov 28 10:00:00 pc12 app[42]: reload-probe " << n << " done\n" << std::flush;
      written = n;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  while (written < 50) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // Stored, so matched by the first generation: the new rule cannot match them.
  const auto stored_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (Events().size() < 50 && std::chrono::steady_clock::now() < stored_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(Events().size(), 50u) << ServerOutput();

  // A reload with a rule with an error is refused with file:line, and the running set stays.
  CommandResult refused = Ctl({"rules", "reload"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("broken.yml:"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("running set is kept"), std::string::npos) << refused.err;
  fs::remove(rules / "broken.yml");

  std::ofstream(rules / "probe.yml") << R"(title: reload probe
id: 0b3c9c52-5d0e-4b55-8a43-2f4f6f7f9a01
logsource: {product: linux}
detection:
  s: {message|contains: reload-probe}
  condition: s
level: low
)";
  json reloaded = CtlJson({"rules", "reload"});
  const int after_reload = written;  // every line after this one was written after the swap
  EXPECT_EQ(reloaded["generation"], 2);
  EXPECT_GT(reloaded["rules"].get<uint64_t>(), 20u);
  EXPECT_GT(reloaded["cache_hits"].get<uint64_t>(), 0u)
      << "the unchanged databases came from the cache";
  while (written < after_reload + 100) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  writer.join();
  const int total = written;
  ASSERT_NO_FATAL_FAILURE(WaitForEvents(static_cast<size_t>(total), 120));

  // Every line stored exactly once.
  std::map<int, int> stored;
  for (const json& e : Events()) {
    std::istringstream line(e["line"].get<std::string>().substr(
        e["line"].get<std::string>().find("reload-probe ") + 13));
    int n = 0;
    line >> n;
    ++stored[n];
  }
  ASSERT_EQ(stored.size(), static_cast<size_t>(total));
  for (const auto& [n, count] : stored) EXPECT_EQ(count, 1) << "line " << n;

  // Alerts of the new rule: one per event, and exactly the events from some point on
  // (each event matched by one generation, in order), including all after the reload.
  std::map<int, int> alerted;
  for (const json& a : Alerts("0b3c9c52-5d0e-4b55-8a43-2f4f6f7f9a01")) {
    const std::string line = a["line"];
    ++alerted[std::stoi(line.substr(line.find("reload-probe ") + 13))];
  }
  ASSERT_FALSE(alerted.empty());
  const int first = alerted.begin()->first;
  std::cerr << "[ note ] " << total << " lines; the new rule matched from line " << first
            << "; reload returned after line " << after_reload << "\n";
  EXPECT_LE(first, after_reload + 1);
  EXPECT_GT(first, 50) << "lines before the reload were matched by the new rule";
  EXPECT_EQ(alerted.size(), static_cast<size_t>(total - first + 1));
  for (const auto& [n, count] : alerted) EXPECT_EQ(count, 1) << "line " << n;

  // SIGHUP reloads too.
  server_->Signal(SIGHUP);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         ServerOutput().find("generation 3 live") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(ServerOutput().find("generation 3 live"), std::string::npos) << ServerOutput();
}

}  // namespace
}  // namespace siper::testing

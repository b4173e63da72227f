#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

#include "server/incidents/incident_book.h"
#include "server/incidents/json.h"
#include "server/incidents/report.h"
#include "server/incidents/stix.h"
#include "server/incidents/workflow.h"
#include "tests/incidents/test_util.h"

namespace siper::incidents {
namespace {

using nlohmann::json;
using testing::At;
using testing::Rsit;
using testing::SshAlert;

InstitutionProfile Profile() {
  InstitutionProfile p;
  p.institution = "Mersin Büyükşehir Belediyesi";
  p.some_name = "Mersin BB SOME";
  p.some_mailbox = "some@mersin.bel.tr";
  p.contacts = {{"Ayşe Yılmaz", "SOME yöneticisi", "ayse@mersin.bel.tr", "+90 324 000 00 00"},
                {"Can Demir", "Analist", "can@mersin.bel.tr", ""}};
  p.ip_ranges = {"192.0.2.0/24", "2001:db8:100::/48"};
  p.isp = "Türk Telekom";
  p.verbis_number = "VERBIS-12345";
  return p;
}

// An incident built through the workflow: brute force from outside, then a malware hash and
// a C2 domain on the same host, contained and reported.
struct ReportFixture : public ::testing::Test {
  FakeClock clock{At("2026-11-28T07:00:00Z")};
  IncidentBook book{&Rsit(), &clock};
  std::string id;

  void SetUp() override {
    const absl::Time t = clock.Now();
    AlertInput a1 = SshAlert("a1", "203.0.113.7", "web01", t - absl::Minutes(5));
    a1.fields["destination.ip"] = "192.0.2.10";
    id = book.Ingest(a1).incident_id;
    AlertInput a2 = SshAlert("a2", "203.0.113.7", "web01", t, "critical");
    a2.rule_id = "siper-malware-dropped";
    a2.fields["file.hash.sha256"] = std::string(64, 'a');
    a2.fields["dns.question.name"] = "c2.evil.example";
    a2.fields["url.original"] = "http://evil.example/drop.sh";
    a2.fields["user.name"] = "www|data";  // a pipe must not break a Markdown table
    a2.ioc_hit = true;
    a2.ioc_confidence = 80;
    a2.ioc_value = "c2.evil.example";
    ASSERT_EQ(book.Ingest(a2).incident_id, id);
    clock.Advance(absl::Minutes(10));
    ASSERT_TRUE(book.Transition(id, State::kTriage, "ayse").ok());
    ASSERT_TRUE(book.Transition(id, State::kInvestigating, "ayse").ok());
    ASSERT_TRUE(
        book.Update(id, "ayse", "edit",
                    [](Incident& in, absl::Time now) {
                      SetImpact(in, "Web sunucusunda zararlı yazılım çalıştırıldı.", "ayse", now);
                      AddAction(in, "203.0.113.7 güvenlik duvarında engellendi", "ayse", now);
                      AddAction(in, "web01 ağdan ayrıldı", "ayse", now);
                      return RecordUsomReport(in, now, "USOM-2026-0042", "ayse", now);
                    })
            .ok());
    clock.Advance(absl::Minutes(30));
    ASSERT_TRUE(book.Transition(id, State::kContained, "can").ok());
  }
  const Incident& In() { return *book.Find(id); }
  ReportOptions Opts(const std::string& lang = "tr") { return {lang, clock.Now()}; }
};

TEST_F(ReportFixture, UsomMarkdownInTurkish) {
  auto md = UsomReport(In(), Profile(), Rsit(), ReportFormat::kMarkdown, Opts());
  ASSERT_TRUE(md.ok()) << md.status();
  for (const char* want : {"# Siber Olay Bildirim Raporu: INC-2026-0001",
                           "Kurum Bilgileri",
                           "Mersin Büyükşehir Belediyesi",
                           "some@mersin.bel.tr",
                           "Ayşe Yılmaz",
                           "192.0.2.0/24",
                           "Türk Telekom",
                           "Olay sınıfı (RSIT)",
                           "Saldırı Girişimi (intrusion-attempts)",
                           "Oturum açma denemeleri",
                           "Önem derecesi",
                           "Kritik",
                           "Risk puanı",
                           "TLP:AMBER",
                           "Tespit zamanı",
                           "2026-11-28 09:55:00 (TSİ)",
                           "USOM-2026-0042",
                           "Etkilenen Sistemler ve Adresler",
                           "web01",
                           "192.0.2.10",
                           "Saldırı Kaynağı Adresler",
                           "203.0.113.7",
                           "Gözlemlenebilirler (IOC)",
                           "c2.evil.example",
                           "Dosya özeti (hash) (sha256)",
                           "Durum değişti: new -> triage",
                           "Uyarı eklendi",
                           "Etki",
                           "Web sunucusunda zararlı yazılım çalıştırıldı.",
                           "Alınan Önlemler",
                           "- web01 ağdan ayrıldı",
                           "Zaman Çizelgesi",
                           "Mevcut Durum",
                           "Kontrol altına alındı"}) {
    EXPECT_NE(md->find(want), std::string::npos) << "missing: " << want << "\n" << *md;
  }
  EXPECT_NE(md->find("www\\|data"), std::string::npos);
  EXPECT_EQ(md->find("www|data"), std::string::npos);
  EXPECT_EQ(md->find("Institution"), std::string::npos);
}

TEST_F(ReportFixture, UsomMarkdownInEnglish) {
  auto md = UsomReport(In(), Profile(), Rsit(), ReportFormat::kMarkdown, Opts("en"));
  ASSERT_TRUE(md.ok());
  for (const char* want : {"# Cyber Incident Report: INC-2026-0001", "## 1. Institution",
                           "Intrusion Attempts (intrusion-attempts)", "Critical", "Contained",
                           "Affected Hosts and Addresses", "(UTC+3)"}) {
    EXPECT_NE(md->find(want), std::string::npos) << "missing: " << want;
  }
  EXPECT_EQ(md->find("Kurum Bilgileri"), std::string::npos);
  EXPECT_FALSE(UsomReport(In(), Profile(), Rsit(), ReportFormat::kMarkdown, Opts("de")).ok());
  EXPECT_FALSE(UsomReport(In(), Profile(), Rsit(), ReportFormat::kHtml, Opts()).ok());
}

TEST_F(ReportFixture, ControlCharactersCannotForgeReportLines) {
  ASSERT_TRUE(book.Update(id, "ayse", "edit",
                          [](Incident& in, absl::Time now) {
                            return AddNote(in, "line\n| forged | row |\x1b[31m", "ayse", now);
                          })
                  .ok());
  auto md = UsomReport(In(), Profile(), Rsit(), ReportFormat::kMarkdown, Opts());
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->find("\n| forged"), std::string::npos);
  EXPECT_EQ(md->find('\x1b'), std::string::npos);
  EXPECT_NE(md->find("\\x1B"), std::string::npos);
}

TEST_F(ReportFixture, UsomJson) {
  auto text = UsomReport(In(), Profile(), Rsit(), ReportFormat::kJson, Opts());
  ASSERT_TRUE(text.ok());
  json j = json::parse(*text);
  EXPECT_EQ(j["report"], "usom");
  EXPECT_EQ(j["institution"]["institution"], "Mersin Büyükşehir Belediyesi");
  EXPECT_EQ(j["institution"]["ip_ranges"].size(), 2u);
  EXPECT_EQ(j["incident"]["id"], "INC-2026-0001");
  EXPECT_EQ(j["incident"]["rsit"]["class"], "intrusion-attempts");
  EXPECT_EQ(j["incident"]["rsit"]["type_label"], "Oturum açma denemeleri (kaba kuvvet)");
  EXPECT_EQ(j["incident"]["severity"], "critical");
  EXPECT_EQ(j["times"]["detected"], "2026-11-28T06:55:00.000Z");
  EXPECT_EQ(j["times"]["usom_reference"], "USOM-2026-0042");
  EXPECT_EQ(j["affected"]["hosts"], json::array({"web01"}));
  EXPECT_EQ(j["affected"]["addresses"], json::array({"192.0.2.10"}));
  EXPECT_EQ(j["attackers"], json::array({"203.0.113.7"}));
  EXPECT_EQ(j["status"]["state"], "contained");
  EXPECT_EQ(j["actions"].size(), 2u);
  EXPECT_GE(j["timeline"].size(), 6u);
  EXPECT_GE(j["observables"].size(), 7u);
}

// ---------- STIX ----------

TEST(StixIdsTest, UuidV5MatchesRfc4122AndStixVectors) {
  // RFC 4122 DNS namespace, as Python's uuid.uuid5(NAMESPACE_DNS, "python.org").
  EXPECT_EQ(UuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  // STIX SCO namespace over the canonical JSON of the ID contributing property.
  EXPECT_EQ(UuidV5(kStixScoNamespace, R"({"value":"198.51.100.3"})"),
            "28bb3599-77cd-5a82-a950-b5bc3caf07c4");
  const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const std::string a = UuidV4();
  EXPECT_TRUE(std::regex_match(a, v4)) << a;
  EXPECT_NE(a, UuidV4());
  EXPECT_EQ(StixPatternString("it's a\\b"), R"('it\'s a\\b')");
}

class StixTest : public ReportFixture {
 protected:
  json bundle;
  std::map<std::string, json> by_id;
  void SetUp() override {
    ReportFixture::SetUp();
    auto text = UsomReport(In(), Profile(), Rsit(), ReportFormat::kStix, Opts());
    ASSERT_TRUE(text.ok());
    bundle = json::parse(*text);
    for (const json& o : bundle["objects"]) by_id[o["id"]] = o;
  }
  std::vector<json> OfType(const std::string& type) {
    std::vector<json> out;
    for (const json& o : bundle["objects"])
      if (o["type"] == type) out.push_back(o);
    return out;
  }
};

const std::regex kId(
    "^([a-z0-9-]+)--[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
const std::regex kTimestamp(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
const std::set<std::string> kScoTypes = {"ipv4-addr", "ipv6-addr", "domain-name",
                                         "url",       "file",      "user-account"};

TEST_F(StixTest, BundleEnvelope) {
  EXPECT_EQ(bundle["type"], "bundle");
  std::smatch m;
  const std::string bid = bundle["id"];
  ASSERT_TRUE(std::regex_match(bid, m, kId)) << bid;
  EXPECT_EQ(m[1], "bundle");
  EXPECT_FALSE(bundle.contains("spec_version"));  // 2.1 bundles carry none
  EXPECT_GT(bundle["objects"].size(), 5u);
  EXPECT_EQ(by_id.size(), bundle["objects"].size()) << "ids must be unique";
}

TEST_F(StixTest, EveryObjectHasCommonPropertiesRight) {
  for (const json& o : bundle["objects"]) {
    const std::string type = o["type"];
    const std::string id = o["id"];
    std::smatch m;
    ASSERT_TRUE(std::regex_match(id, m, kId)) << id;
    EXPECT_EQ(m[1], type) << id;
    EXPECT_EQ(o["spec_version"], "2.1") << id;
    if (kScoTypes.count(type) > 0) {
      EXPECT_FALSE(o.contains("created")) << id;  // SCOs have no created/modified
      EXPECT_EQ(id[type.size() + 2 + 14], '5') << "SCO ids are UUIDv5: " << id;
      continue;
    }
    ASSERT_TRUE(o.contains("created")) << id;
    const std::string created = o["created"];
    EXPECT_TRUE(std::regex_match(created, kTimestamp)) << created;
    if (type != "marking-definition") {
      const std::string modified = o["modified"];
      EXPECT_TRUE(std::regex_match(modified, kTimestamp)) << modified;
      EXPECT_GE(modified, created) << id;
    }
    if (o.contains("created_by_ref")) {
      EXPECT_EQ(by_id.count(o["created_by_ref"]), 1u) << id;
    }
    for (const json& ref : o.value("object_marking_refs", json::array())) {
      ASSERT_EQ(by_id.count(ref), 1u) << id;
      EXPECT_EQ(by_id[ref]["type"], "marking-definition");
    }
  }
}

TEST_F(StixTest, RequiredPropertiesPerObjectType) {
  const std::map<std::string, std::vector<std::string>> required = {
      {"identity", {"name", "identity_class"}},
      {"incident", {"name"}},
      {"indicator", {"pattern", "pattern_type", "valid_from"}},
      {"observed-data", {"first_observed", "last_observed", "number_observed", "object_refs"}},
      {"relationship", {"relationship_type", "source_ref", "target_ref"}},
      {"marking-definition", {"created", "name", "extensions"}},
      {"ipv4-addr", {"value"}},
      {"domain-name", {"value"}},
      {"url", {"value"}},
      {"file", {"hashes"}},
      {"user-account", {"account_login"}},
  };
  std::set<std::string> types_seen;
  for (const json& o : bundle["objects"]) {
    const std::string type = o["type"];
    types_seen.insert(type);
    auto it = required.find(type);
    ASSERT_NE(it, required.end()) << "unexpected type " << type;
    for (const std::string& prop : it->second)
      EXPECT_TRUE(o.contains(prop)) << type << " lacks " << prop;
  }
  for (const auto& [type, props] : required) EXPECT_EQ(types_seen.count(type), 1u) << "no " << type;

  const json identity = OfType("identity").at(0);
  EXPECT_EQ(identity["name"], "Mersin Büyükşehir Belediyesi");
  EXPECT_EQ(identity["identity_class"], "organization");
  EXPECT_NE(identity["contact_information"].get<std::string>().find("some@mersin.bel.tr"),
            std::string::npos);

  const json incident = OfType("incident").at(0);
  EXPECT_EQ(incident["name"], "INC-2026-0001: SSH brute force (203.0.113.7 → web01)");
  EXPECT_EQ(incident["created_by_ref"], identity["id"]);
  bool has_rsit = false, has_usom = false;
  for (const json& ref : incident["external_references"]) {
    EXPECT_TRUE(ref.contains("source_name"));
    if (ref["source_name"] == "rsit")
      has_rsit = ref["external_id"] == "intrusion-attempts/brute-force";
    if (ref["source_name"] == "usom") has_usom = ref["external_id"] == "USOM-2026-0042";
  }
  EXPECT_TRUE(has_rsit);
  EXPECT_TRUE(has_usom);

  const json marking = OfType("marking-definition").at(0);
  EXPECT_EQ(marking["id"], "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421");
  EXPECT_EQ(marking["name"], "TLP:AMBER");
  EXPECT_EQ(marking["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]
                   ["tlp_2_0"],
            "amber");

  const json od = OfType("observed-data").at(0);
  EXPECT_GE(od["number_observed"].get<int>(), 1);
  EXPECT_LE(od["first_observed"].get<std::string>(), od["last_observed"].get<std::string>());
  EXPECT_FALSE(od["object_refs"].empty());
  for (const json& ref : od["object_refs"]) {
    ASSERT_EQ(by_id.count(ref), 1u) << ref;
    EXPECT_EQ(kScoTypes.count(by_id[ref]["type"]), 1u);
  }
}

TEST_F(StixTest, IndicatorPatterns) {
  const std::regex pattern(
      R"(^\[(ipv4-addr:value|ipv6-addr:value|domain-name:value|url:value|file:hashes\.MD5|file:hashes\.'SHA-(1|256|512)') = '([^'\\]|\\['\\])*'\]$)");
  std::set<std::string> patterns;
  for (const json& i : OfType("indicator")) {
    const std::string p = i["pattern"];
    EXPECT_TRUE(std::regex_match(p, pattern)) << p;
    EXPECT_EQ(i["pattern_type"], "stix");
    const std::string valid_from = i["valid_from"];
    EXPECT_TRUE(std::regex_match(valid_from, kTimestamp));
    EXPECT_EQ(i["indicator_types"], json::array({"malicious-activity"}));
    patterns.insert(p);
  }
  EXPECT_EQ(patterns.count("[ipv4-addr:value = '203.0.113.7']"), 1u);
  EXPECT_EQ(patterns.count("[file:hashes.'SHA-256' = '" + std::string(64, 'a') + "']"), 1u);
  EXPECT_EQ(patterns.count("[domain-name:value = 'c2.evil.example']"), 1u);
  EXPECT_EQ(patterns.count("[url:value = 'http://evil.example/drop.sh']"), 1u);
  // Our own address is an affected asset, not an indicator.
  EXPECT_EQ(patterns.count("[ipv4-addr:value = '192.0.2.10']"), 0u);
  EXPECT_EQ(patterns.size(), 4u);
}

TEST_F(StixTest, ScoIdsAreDeterministicUuidV5) {
  bool found = false;
  for (const json& o : OfType("ipv4-addr")) {
    const std::string value = o["value"];
    EXPECT_EQ(o["id"], "ipv4-addr--" + UuidV5(kStixScoNamespace, json{{"value", value}}.dump()));
    found = true;
  }
  EXPECT_TRUE(found);
  const json file = OfType("file").at(0);
  EXPECT_EQ(file["hashes"]["SHA-256"], std::string(64, 'a'));
  EXPECT_EQ(file["id"],
            "file--75cb38d5-2055-5354-b75a-8299a2d670b5");  // computed with Python's uuid
}

TEST_F(StixTest, RelationshipsResolve) {
  const std::string incident_id = OfType("incident").at(0)["id"];
  const std::string od_id = OfType("observed-data").at(0)["id"];
  int related_to_incident = 0;
  int based_on = 0;
  for (const json& r : OfType("relationship")) {
    const std::string type = r["relationship_type"];
    EXPECT_TRUE(std::regex_match(type, std::regex("^[a-z0-9-]+$"))) << type;
    ASSERT_EQ(by_id.count(r["source_ref"]), 1u) << r.dump();
    ASSERT_EQ(by_id.count(r["target_ref"]), 1u) << r.dump();
    if (type == "related-to" && r["target_ref"] == incident_id) ++related_to_incident;
    if (type == "based-on") {
      EXPECT_EQ(by_id[r["source_ref"]]["type"], "indicator");
      EXPECT_EQ(r["target_ref"], od_id);
      ++based_on;
    }
  }
  EXPECT_EQ(based_on, 4);
  EXPECT_EQ(related_to_incident, 5);  // four indicators and the observed-data
}

TEST_F(StixTest, SameIncidentSameIdsAndTlpFollowsTheIncident) {
  auto again = UsomReport(In(), Profile(), Rsit(), ReportFormat::kStix, Opts());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(json::parse(*again), bundle);
  ASSERT_TRUE(book.Update(id, "ayse", "edit",
                          [](Incident& in, absl::Time now) {
                            SetTlp(in, Tlp::kRed, "ayse", now);
                            return absl::OkStatus();
                          })
                  .ok());
  json red = StixBundle(In(), Profile(), Rsit(), clock.Now());
  for (const json& o : red["objects"]) {
    if (o["type"] == "marking-definition") {
      EXPECT_EQ(o["id"], "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1");
      EXPECT_EQ(o["name"], "TLP:RED");
    }
  }
}

TEST(StixEmptyTest, IncidentWithoutObservablesHasNoObservedData) {
  Incident in;
  in.id = "INC-2026-0009";
  in.title = "manual";
  in.times.created = At("2026-11-28T10:00:00Z");
  json b = StixBundle(in, Profile(), Rsit(), At("2026-11-28T11:00:00Z"));
  for (const json& o : b["objects"]) {
    EXPECT_NE(o["type"], "observed-data");
    EXPECT_NE(o["type"], "indicator");
  }
  EXPECT_EQ(b["objects"].size(), 3u);  // marking, identity, incident
}

// ---------- KVKK ----------

struct KvkkFixture : public ::testing::Test {
  FakeClock clock{At("2026-11-28T07:00:00Z")};
  IncidentBook book{&Rsit(), &clock};
  std::string id;
  absl::Time detected = At("2026-11-28T06:00:00Z");
  void SetUp() override {
    id = *book.Create({.title = "Veritabanı sızıntısı",
                       .rsit_class = "information-content-security",
                       .rsit_type = "data-leak",
                       .severity = Severity::kHigh,
                       .detected = detected,
                       .personal_data_breach = true},
                      "ayse");
    ASSERT_TRUE(book.Update(id, "ayse", "edit",
                            [](Incident& in, absl::Time) {
                              KvkkBreach& k = in.kvkk;
                              k.breach_started = At("2026-11-27T22:00:00Z");
                              k.breach_ended = At("2026-11-28T05:30:00Z");
                              k.source = "Web uygulamasında SQL enjeksiyonu";
                              k.data_categories = {"Kimlik", "İletişim"};
                              k.subject_groups = {"Vatandaşlar"};
                              k.people_count = 1200;
                              k.record_count = 5400;
                              k.consequences = "Kimlik avı riski";
                              k.measures_taken = {"Zafiyet kapatıldı"};
                              k.measures_planned = {"Sızma testi"};
                              return absl::OkStatus();
                            })
                    .ok());
  }
};

TEST_F(KvkkFixture, MarkdownCarriesTheBoardFormFields) {
  auto md =
      KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kMarkdown, {"tr", clock.Now()});
  ASSERT_TRUE(md.ok()) << md.status();
  for (const char* want : {"# Kişisel Veri İhlal Bildirimi: INC-2026-0001",
                           "Kişisel Verileri Koruma Kurulu",
                           "Veri sorumlusu",
                           "Mersin Büyükşehir Belediyesi",
                           "VERBIS-12345",
                           "İrtibat kişisi",
                           "Ayşe Yılmaz",
                           "Bildirim türü",
                           "İlk bildirim",
                           "İhlalin başlangıç tarihi",
                           "2026-11-28 01:00:00 (TSİ)",
                           "İhlalin bitiş tarihi",
                           "İhlalin tespit edildiği tarih",
                           "İhlalin kaynağı",
                           "SQL enjeksiyonu",
                           "Etkilenen kişisel veri kategorileri",
                           "Kimlik, İletişim",
                           "Etkilenen kişi sayısı",
                           "1200",
                           "Etkilenen kayıt sayısı",
                           "5400",
                           "Olası Sonuçlar",
                           "Kimlik avı riski",
                           "Alınan tedbirler",
                           "- Zafiyet kapatıldı",
                           "Alınması planlanan tedbirler",
                           "- Sızma testi",
                           "72 saatlik bildirim süresinin sonu",
                           "2026-12-01 09:00:00 (TSİ)"}) {
    EXPECT_NE(md->find(want), std::string::npos) << "missing: " << want << "\n" << *md;
  }
  EXPECT_EQ(md->find("Gecikme Gerekçeleri"), std::string::npos);  // on time: no delay section
}

TEST_F(KvkkFixture, PastSeventyTwoHoursTheDelayReasonsAreShownOrAskedFor) {
  clock.Set(detected + absl::Hours(80));
  auto md =
      KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kMarkdown, {"tr", clock.Now()});
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("Gecikme Gerekçeleri"), std::string::npos);
  EXPECT_NE(md->find("gecikme gerekçesi girilmedi"), std::string::npos);
  auto j = KvkkReportJson(*book.Find(id), Profile(), {"tr", clock.Now()});
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)["notice"]["late"].get<bool>());
  EXPECT_TRUE((*j)["delay_reasons_missing"].get<bool>());

  const absl::Time due = detected + absl::Hours(72);
  ASSERT_TRUE(book.Update(id, "ayse", "kvkk",
                          [&](Incident& in, absl::Time now) {
                            return RecordKvkkNotice(
                                in, NoticeKind::kFirst, now, "KVKK-2026-77",
                                {"Etkilenen kayıtların kapsamı adli inceleme ile belirlendi"}, due,
                                "ayse", now);
                          })
                  .ok());
  clock.Advance(absl::Hours(24));
  md = KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kMarkdown, {"tr", clock.Now()});
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("Takip bildirimi"), std::string::npos);
  EXPECT_NE(md->find("KVKK-2026-77"), std::string::npos);
  EXPECT_NE(md->find("- Etkilenen kayıtların kapsamı adli inceleme ile belirlendi"),
            std::string::npos);
  EXPECT_EQ(md->find("gecikme gerekçesi girilmedi"), std::string::npos);

  auto en =
      KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kMarkdown, {"en", clock.Now()});
  ASSERT_TRUE(en.ok());
  EXPECT_NE(en->find("Reasons for Delay"), std::string::npos);
  EXPECT_NE(en->find("Follow-up notice"), std::string::npos);
}

TEST_F(KvkkFixture, JsonAndRefusals) {
  auto text =
      KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kJson, {"tr", clock.Now()});
  ASSERT_TRUE(text.ok());
  json j = json::parse(*text);
  EXPECT_EQ(j["report"], "kvkk");
  EXPECT_EQ(j["controller"]["name"], "Mersin Büyükşehir Belediyesi");
  EXPECT_EQ(j["notice"]["kind"], "first");
  EXPECT_EQ(j["notice"]["deadline"], "2026-12-01T06:00:00.000Z");
  EXPECT_FALSE(j["notice"]["late"].get<bool>());
  EXPECT_EQ(j["breach"]["detected"], "2026-11-28T06:00:00.000Z");
  EXPECT_EQ(j["data"]["people_count"], 1200);
  EXPECT_EQ(j["data"]["categories"], json::array({"Kimlik", "İletişim"}));
  EXPECT_EQ(j["measures"]["taken"], json::array({"Zafiyet kapatıldı"}));

  EXPECT_FALSE(
      KvkkReport(*book.Find(id), Profile(), Rsit(), ReportFormat::kStix, {"tr", clock.Now()}).ok());
  const std::string other = *book.Create({.title = "not a breach"}, "ayse");
  auto refused = KvkkReport(*book.Find(other), Profile(), Rsit(), ReportFormat::kMarkdown,
                            {"tr", clock.Now()});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---------- summary ----------

struct SummaryFixture : public ::testing::Test {
  FakeClock clock{At("2026-11-10T08:00:00Z")};
  IncidentBook book{&Rsit(), &clock};
  SummaryInput input;
  void SetUp() override {
    // 1: brute force, contained after 1h, closed after 3h.
    AlertInput a = SshAlert("a1", "203.0.113.7", "web01", clock.Now() - absl::Minutes(30));
    const std::string one = book.Ingest(a).incident_id;
    ASSERT_TRUE(book.Update(one, "ayse", "edit",
                            [](Incident& in, absl::Time) {
                              in.times.occurred = in.times.detected - absl::Hours(2);
                              return absl::OkStatus();
                            })
                    .ok());
    clock.Advance(absl::Minutes(30));
    ASSERT_TRUE(book.Transition(one, State::kTriage, "ayse").ok());
    ASSERT_TRUE(book.Transition(one, State::kInvestigating, "ayse").ok());
    ASSERT_TRUE(book.Transition(one, State::kContained, "ayse").ok());  // detected + 1h
    clock.Advance(absl::Hours(2));
    ASSERT_TRUE(book.Transition(one, State::kClosed, "ayse", Resolution::kTruePositive).ok());
    // 2: same attacker elsewhere, critical, still investigating (USOM overdue).
    const std::string two =
        book.Ingest(SshAlert("b1", "203.0.113.7", "db01", clock.Now(), "critical")).incident_id;
    ASSERT_TRUE(book.Transition(two, State::kTriage, "ayse").ok());
    ASSERT_TRUE(book.Transition(two, State::kInvestigating, "ayse").ok());
    // 3: phishing, medium, new.
    ASSERT_TRUE(book.Create({.title = "Oltalama e-postası",
                             .rsit_class = "fraud",
                             .rsit_type = "phishing",
                             .severity = Severity::kMedium},
                            "ayse")
                    .ok());
    // 4: an exercise.
    ASSERT_TRUE(book.Create({.title = "Tatbikat",
                             .rsit_class = "test",
                             .rsit_type = "test",
                             .severity = Severity::kCritical},
                            "ayse")
                    .ok());
    // 5: outside the period.
    clock.Set(At("2026-12-20T00:00:00Z"));
    ASSERT_TRUE(book.Create({.title = "later"}, "ayse").ok());
    clock.Set(At("2026-11-11T00:00:00Z"));

    input.incidents = book.View();
    input.since = At("2026-11-01T00:00:00Z");
    input.until = At("2026-12-01T00:00:00Z");
    input.ip_ranges = {"192.0.2.0/24"};
    input.agents = {{"agent-7", "pc-7", "silent", At("2026-11-09T00:00:00Z"), "no heartbeat"}};
  }
  static int CountOf(const std::vector<std::pair<std::string, int>>& v, const std::string& k) {
    for (const auto& [key, n] : v)
      if (key == k) return n;
    return -1;
  }
};

TEST_F(SummaryFixture, Counts) {
  Summary s = ComputeSummary(input, Rsit(), clock.Now());
  EXPECT_EQ(s.total, 3);
  EXPECT_EQ(s.exercises, 1);
  EXPECT_EQ(s.by_class.size(), 10u);  // every class but test, zeros included
  EXPECT_EQ(CountOf(s.by_class, "intrusion-attempts"), 2);
  EXPECT_EQ(CountOf(s.by_class, "fraud"), 1);
  EXPECT_EQ(CountOf(s.by_class, "malicious-code"), 0);
  EXPECT_EQ(CountOf(s.by_severity, "critical"), 1);
  EXPECT_EQ(CountOf(s.by_severity, "high"), 1);
  EXPECT_EQ(CountOf(s.by_severity, "medium"), 1);
  EXPECT_EQ(CountOf(s.by_state, "closed"), 1);
  EXPECT_EQ(CountOf(s.by_state, "investigating"), 1);
  EXPECT_EQ(CountOf(s.by_state, "new"), 1);
  EXPECT_EQ(CountOf(s.exercises_by_state, "new"), 1);
  EXPECT_EQ(s.mean_time_to_detect, absl::Hours(1));  // 2h for one, 0 for the other
  EXPECT_EQ(s.mean_time_to_contain, absl::Hours(1));
  EXPECT_EQ(s.mean_time_to_close, absl::Hours(3));
  ASSERT_FALSE(s.top_rules.empty());
  EXPECT_EQ(s.top_rules[0],
            (std::pair<std::string, int>{"SSH brute force (siper-ssh-bruteforce)", 2}));
  ASSERT_EQ(s.top_attackers.size(), 1u);
  EXPECT_EQ(s.top_attackers[0], (std::pair<std::string, int>{"203.0.113.7", 2}));
  // Incident 1 reached investigating with high severity and was never reported: closed as a
  // true positive, its deadline stays overdue; incident 2 likewise.
  EXPECT_EQ(s.deadlines_overdue, 2);
  EXPECT_EQ(s.deadlines_met, 0);
}

TEST_F(SummaryFixture, MarkdownAndHtml) {
  auto md = SummaryReport(input, Rsit(), ReportFormat::kMarkdown, {"tr", clock.Now()});
  ASSERT_TRUE(md.ok()) << md.status();
  for (const char* want :
       {"# Siber Olay Özeti", "Olay sayısı (tatbikatlar hariç): **3**",
        "Tatbikatlar (RSIT: Test): **1**", "RSIT sınıfına göre", "| Saldırı Girişimi | 2 |",
        "Önem derecesine göre", "| Kritik | 1 |", "Duruma göre", "| Kapatıldı | 1 |",
        "Ortalama tespit süresi: 1 sa 0 dk", "Ortalama kontrol altına alma süresi: 1 sa 0 dk",
        "Ortalama kapatma süresi: 3 sa 0 dk", "siper-ssh-bruteforce", "203.0.113.7",
        "Süresi geçti, yapılmadı: 2", "agent-7", "Sessiz: no heartbeat"}) {
    EXPECT_NE(md->find(want), std::string::npos) << "missing: " << want << "\n" << *md;
  }
  auto html = SummaryReport(input, Rsit(), ReportFormat::kHtml, {"en", clock.Now()});
  ASSERT_TRUE(html.ok());
  EXPECT_EQ(html->rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html->find("<svg"), std::string::npos);
  EXPECT_NE(html->find("Intrusion Attempts"), std::string::npos);
  EXPECT_NE(html->find("Mean time to contain"), std::string::npos);
  // Self-contained: nothing is fetched.
  for (const char* banned : {"<script", "src=\"http", "href=\"http", "@import", "url("}) {
    EXPECT_EQ(html->find(banned), std::string::npos) << banned;
  }
  EXPECT_FALSE(SummaryReport(input, Rsit(), ReportFormat::kStix, {"tr", clock.Now()}).ok());
  input.until = input.since;
  EXPECT_FALSE(SummaryReport(input, Rsit(), ReportFormat::kMarkdown, {"tr", clock.Now()}).ok());
}

TEST_F(SummaryFixture, HtmlEscapesIncidentData) {
  input.agents[0].detail = "<img src=x onerror=alert(1)>";
  auto html = SummaryReport(input, Rsit(), ReportFormat::kHtml, {"tr", clock.Now()});
  ASSERT_TRUE(html.ok());
  EXPECT_EQ(html->find("<img"), std::string::npos);
  EXPECT_NE(html->find("&lt;img"), std::string::npos);
}

}  // namespace
}  // namespace siper::incidents

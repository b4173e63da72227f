#include "server/incidents/stix.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/incidents/hash.h"
#include "server/incidents/report_util.h"

namespace siper::incidents {
namespace {

using nlohmann::json;

std::string S(std::string_view v) { return std::string(v); }

bool ParseUuid(const std::string& text, std::array<unsigned char, 16>& out) {
  std::string hex;
  for (char c : text) {
    if (c != '-') hex.push_back(c);
  }
  if (hex.size() != 32) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 16; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

std::string FormatUuid(const unsigned char* b) {
  return absl::StrFormat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                         b[12], b[13], b[14], b[15]);
}

// STIX timestamps: RFC 3339, UTC, millisecond precision.
std::string Ts(absl::Time t) { return FormatRfc3339(t); }

std::string SdoId(const std::string& type, const std::string& name) {
  return absl::StrCat(type, "--", UuidV5(kSiperStixNamespace, absl::StrCat(type, "|", name)));
}

// SCO ids per STIX 2.1 section 2.9: UUIDv5 over the canonical JSON of the ID contributing
// properties. nlohmann's dump() sorts keys and adds no spaces, which is JCS for these values.
std::string ScoId(const std::string& type, const json& contributing) {
  return absl::StrCat(type, "--", UuidV5(kStixScoNamespace, contributing.dump()));
}

std::string StixHashName(const std::string& algo) {
  if (algo == "md5") return "MD5";
  if (algo == "sha1") return "SHA-1";
  if (algo == "sha256") return "SHA-256";
  if (algo == "sha512") return "SHA-512";
  if (algo == "sha384") return "SHA-384";
  return "";
}

// Pattern object path for a hash: quoted where the key is not a plain identifier.
std::string HashPath(const std::string& stix_name) {
  return stix_name.find('-') == std::string::npos ? absl::StrCat("file:hashes.", stix_name)
                                                  : absl::StrCat("file:hashes.'", stix_name, "'");
}

struct TlpMarking {
  const char* id;
  const char* name;
  const char* value;
};

// TLP 2.0 marking definitions as published by OASIS (cti-stix-common-objects).
TlpMarking TlpOf(Tlp tlp) {
  switch (tlp) {
    case Tlp::kClear:
      return {"marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "TLP:CLEAR", "clear"};
    case Tlp::kGreen:
      return {"marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "TLP:GREEN", "green"};
    case Tlp::kAmber:
      return {"marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "TLP:AMBER", "amber"};
    case Tlp::kAmberStrict:
      return {"marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", "TLP:AMBER+STRICT",
              "amber+strict"};
    case Tlp::kRed:
      return {"marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED", "red"};
  }
  return TlpOf(Tlp::kAmber);
}

constexpr std::string_view kTlp2Extension =
    "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

}  // namespace

std::string UuidV5(const std::string& namespace_uuid, const std::string& name) {
  std::array<unsigned char, 16> ns{};
  if (!ParseUuid(namespace_uuid, ns)) {
    (void)std::fprintf(stderr, "siper_incidents: bad namespace UUID %s\n", namespace_uuid.c_str());
    std::abort();
  }
  std::string input(reinterpret_cast<const char*>(ns.data()), ns.size());
  input += name;
  std::array<unsigned char, 20> h = internal::Sha1(input);
  h[6] = static_cast<unsigned char>((h[6] & 0x0f) | 0x50);
  h[8] = static_cast<unsigned char>((h[8] & 0x3f) | 0x80);
  return FormatUuid(h.data());
}

std::string UuidV4() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    (void)std::fputs("siper_incidents: OpenSSL RAND_bytes failed\n", stderr);
    std::abort();
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return FormatUuid(b.data());
}

std::string StixPatternString(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

json StixBundle(const Incident& in, const InstitutionProfile& profile, const Taxonomy& taxonomy,
                absl::Time now) {
  const absl::Time created_time = IsSet(in.times.created) ? std::min(in.times.created, now) : now;
  const std::string created = Ts(created_time);
  const std::string modified = Ts(now);
  const TlpMarking tlp = TlpOf(in.tlp);
  const json markings = json::array({tlp.id});

  json objects = json::array();
  objects.push_back({{"type", "marking-definition"},
                     {"spec_version", "2.1"},
                     {"id", tlp.id},
                     {"created", "2022-10-01T00:00:00.000Z"},
                     {"name", tlp.name},
                     {"extensions",
                      {{std::string(kTlp2Extension),
                        {{"extension_type", "property-extension"}, {"tlp_2_0", tlp.value}}}}}});

  const std::string identity_name =
      profile.institution.empty() ? std::string("Siper SOME") : profile.institution;
  const std::string identity_id = SdoId("identity", identity_name);
  std::vector<std::string> contact_bits;
  if (!profile.some_mailbox.empty()) contact_bits.push_back(profile.some_mailbox);
  for (const Contact& c : profile.contacts) {
    std::vector<std::string> bits;
    for (const std::string& b : {c.name, c.role, c.email, c.phone}) {
      if (!b.empty()) bits.push_back(b);
    }
    contact_bits.push_back(absl::StrJoin(bits, ", "));
  }
  json identity = {{"type", "identity"},
                   {"spec_version", "2.1"},
                   {"id", identity_id},
                   {"created", created},
                   {"modified", modified},
                   {"name", identity_name},
                   {"identity_class", "organization"},
                   {"sectors", json::array({"government-local"})}};
  if (!contact_bits.empty()) identity["contact_information"] = absl::StrJoin(contact_bits, "; ");
  if (!profile.some_name.empty()) identity["description"] = profile.some_name;
  objects.push_back(identity);

  const std::string incident_id = SdoId("incident", in.id);
  json external = json::array();
  external.push_back({{"source_name", "siper"}, {"external_id", in.id}});
  external.push_back(
      {{"source_name", "rsit"},
       {"external_id", absl::StrCat(in.rsit_class, "/", in.rsit_type)},
       {"description", absl::StrCat(taxonomy.ClassLabel(in.rsit_class, "en"), " / ",
                                    taxonomy.TypeLabel(in.rsit_class, in.rsit_type, "en"))}});
  if (!in.usom_reference.empty()) {
    external.push_back({{"source_name", "usom"}, {"external_id", in.usom_reference}});
  }
  const internal::Affected aff = internal::AffectedOf(in, profile.ip_ranges);
  std::string description = in.description.empty() ? in.title : in.description;
  if (!aff.hosts.empty())
    absl::StrAppend(&description, "\nAffected hosts: ", absl::StrJoin(aff.hosts, ", "));
  if (!in.impact.empty()) absl::StrAppend(&description, "\nImpact: ", in.impact);
  if (!in.actions.empty())
    absl::StrAppend(&description, "\nActions: ", absl::StrJoin(in.actions, "; "));
  objects.push_back(
      {{"type", "incident"},
       {"spec_version", "2.1"},
       {"id", incident_id},
       {"created", created},
       {"modified", modified},
       {"created_by_ref", identity_id},
       {"name", absl::StrCat(in.id, ": ", in.title)},
       {"description", description},
       {"labels", json::array({absl::StrCat("rsit:", in.rsit_class, "=\"", in.rsit_type, "\""),
                               absl::StrCat("severity:", S(ToString(in.severity)))})},
       {"external_references", external},
       {"object_marking_refs", markings},
       {"x_siper_severity", S(ToString(in.severity))},
       {"x_siper_risk_score", in.risk_score},
       {"x_siper_state", S(ToString(in.state))},
       {"x_siper_exercise", in.exercise()}});

  // Cyber-observables and indicators.
  std::vector<std::string> sco_ids;
  json scos = json::array();
  json indicators = json::array();
  json relationships = json::array();
  absl::Time first = absl::InfiniteFuture();
  absl::Time last = absl::InfinitePast();
  auto add_sco = [&](const json& sco) {
    const std::string id = sco["id"];
    if (std::find(sco_ids.begin(), sco_ids.end(), id) != sco_ids.end()) return;
    sco_ids.push_back(id);
    scos.push_back(sco);
  };
  std::vector<std::string> patterns_seen;
  auto add_indicator = [&](const std::string& pattern, const std::string& name, const Observable& o,
                           const std::string& sco_id) {
    if (std::find(patterns_seen.begin(), patterns_seen.end(), pattern) != patterns_seen.end())
      return;
    patterns_seen.push_back(pattern);
    const std::string id = SdoId("indicator", absl::StrCat(in.id, "|", pattern));
    const absl::Time from = o.first_seen != absl::InfiniteFuture() && IsSet(o.first_seen)
                                ? o.first_seen
                                : (IsSet(in.times.detected) ? in.times.detected : created_time);
    indicators.push_back({{"type", "indicator"},
                          {"spec_version", "2.1"},
                          {"id", id},
                          {"created", created},
                          {"modified", modified},
                          {"created_by_ref", identity_id},
                          {"name", name},
                          {"indicator_types", json::array({"malicious-activity"})},
                          {"pattern", pattern},
                          {"pattern_type", "stix"},
                          {"pattern_version", "2.1"},
                          {"valid_from", Ts(from)},
                          {"object_marking_refs", markings}});
    relationships.push_back(
        {{"type", "relationship"},
         {"spec_version", "2.1"},
         {"id", SdoId("relationship", absl::StrCat("related-to|", id, "|", incident_id))},
         {"created", created},
         {"modified", modified},
         {"relationship_type", "related-to"},
         {"source_ref", id},
         {"target_ref", incident_id},
         {"object_marking_refs", markings}});
    relationships.push_back(
        {{"type", "relationship"},
         {"spec_version", "2.1"},
         {"id", SdoId("relationship", absl::StrCat("based-on|", id, "|", sco_id))},
         {"created", created},
         {"modified", modified},
         {"relationship_type", "based-on"},
         {"source_ref", id},
         {"target_ref", "__observed_data__"},
         {"object_marking_refs", markings}});
  };
  for (const Observable& o : in.observables) {
    if (o.first_seen != absl::InfiniteFuture() && IsSet(o.first_seen))
      first = std::min(first, o.first_seen);
    if (IsSet(o.last_seen)) last = std::max(last, o.last_seen);
    switch (o.kind) {
      case ObservableKind::kIp: {
        const std::string type = o.value.find(':') == std::string::npos ? "ipv4-addr" : "ipv6-addr";
        const std::string id = ScoId(type, {{"value", o.value}});
        add_sco({{"type", type}, {"spec_version", "2.1"}, {"id", id}, {"value", o.value}});
        if (!internal::InRanges(o.value, profile.ip_ranges) && o.field != "destination.ip") {
          add_indicator(absl::StrCat("[", type, ":value = ", StixPatternString(o.value), "]"),
                        absl::StrCat("Attacking address ", o.value), o, id);
        }
        break;
      }
      case ObservableKind::kDomain: {
        const std::string id = ScoId("domain-name", {{"value", o.value}});
        add_sco({{"type", "domain-name"}, {"spec_version", "2.1"}, {"id", id}, {"value", o.value}});
        add_indicator(absl::StrCat("[domain-name:value = ", StixPatternString(o.value), "]"),
                      absl::StrCat("Domain ", o.value), o, id);
        break;
      }
      case ObservableKind::kUrl: {
        if (o.value.find("://") == std::string::npos) break;  // a path alone is not a STIX url
        const std::string id = ScoId("url", {{"value", o.value}});
        add_sco({{"type", "url"}, {"spec_version", "2.1"}, {"id", id}, {"value", o.value}});
        add_indicator(absl::StrCat("[url:value = ", StixPatternString(o.value), "]"),
                      absl::StrCat("URL ", o.value), o, id);
        break;
      }
      case ObservableKind::kHash: {
        const std::string algo = StixHashName(o.hash_algo);
        if (algo.empty()) break;
        const json hashes = {{algo, o.value}};
        const std::string id = ScoId("file", {{"hashes", hashes}});
        add_sco({{"type", "file"}, {"spec_version", "2.1"}, {"id", id}, {"hashes", hashes}});
        add_indicator(absl::StrCat("[", HashPath(algo), " = ", StixPatternString(o.value), "]"),
                      absl::StrCat("File ", algo, " ", o.value), o, id);
        break;
      }
      case ObservableKind::kUser: {
        const std::string id = ScoId("user-account", {{"account_login", o.value}});
        add_sco({{"type", "user-account"},
                 {"spec_version", "2.1"},
                 {"id", id},
                 {"account_login", o.value}});
        break;
      }
      case ObservableKind::kHost:
        break;  // STIX 2.1 has no host object; hosts go into the incident's description
    }
  }
  for (const json& i : indicators) objects.push_back(i);
  if (!sco_ids.empty()) {
    const std::string od_id = SdoId("observed-data", in.id);
    if (first == absl::InfiniteFuture())
      first = IsSet(in.times.detected) ? in.times.detected : created_time;
    if (!IsSet(last) || last < first) last = first;
    objects.push_back({{"type", "observed-data"},
                       {"spec_version", "2.1"},
                       {"id", od_id},
                       {"created", created},
                       {"modified", modified},
                       {"created_by_ref", identity_id},
                       {"first_observed", Ts(first)},
                       {"last_observed", Ts(last)},
                       {"number_observed", std::max<size_t>(1, in.alerts.size())},
                       {"object_refs", sco_ids},
                       {"object_marking_refs", markings}});
    for (json& r : relationships) {
      if (r["target_ref"] == "__observed_data__") {
        r["target_ref"] = od_id;
        r["id"] =
            SdoId("relationship",
                  absl::StrCat("based-on|", S(r["source_ref"].get<std::string>()), "|", od_id));
      }
    }
    relationships.push_back(
        {{"type", "relationship"},
         {"spec_version", "2.1"},
         {"id", SdoId("relationship", absl::StrCat("related-to|", od_id, "|", incident_id))},
         {"created", created},
         {"modified", modified},
         {"relationship_type", "related-to"},
         {"source_ref", od_id},
         {"target_ref", incident_id},
         {"object_marking_refs", markings}});
    for (const json& s : scos) objects.push_back(s);
  }
  for (const json& r : relationships) objects.push_back(r);
  return {{"type", "bundle"},
          {"id", absl::StrCat("bundle--", UuidV5(kSiperStixNamespace,
                                                 absl::StrCat("bundle|", in.id, "|", modified)))},
          {"objects", objects}};
}

}  // namespace siper::incidents

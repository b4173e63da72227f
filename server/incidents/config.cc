#include "server/incidents/config.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace siper::incidents {
namespace {

// Collects the first error; each reader names its key path.
class Reader {
 public:
  explicit Reader(std::string name) : name_(std::move(name)) {}

  absl::Status status() const { return status_; }

  void Fail(const std::string& path, const YAML::Node& node, const std::string& what) {
    if (!status_.ok()) return;
    const std::string where = node.IsDefined() && node.Mark().line >= 0
                                  ? absl::StrCat(name_, ":", node.Mark().line + 1)
                                  : name_;
    status_ = absl::InvalidArgumentError(absl::StrCat(where, ": ", path, ": ", what));
  }

  void String(const YAML::Node& parent, const char* key, const std::string& path,
              std::string& out) {
    const YAML::Node n = parent[key];
    if (!n) return;
    if (!n.IsScalar()) return Fail(path, n, "must be a string");
    out = n.as<std::string>();
  }

  void Bool(const YAML::Node& parent, const char* key, const std::string& path, bool& out) {
    const YAML::Node n = parent[key];
    if (!n) return;
    try {
      out = n.as<bool>();
    } catch (const YAML::Exception&) {
      Fail(path, n, "must be true or false");
    }
  }

  void Int(const YAML::Node& parent, const char* key, const std::string& path, int& out, int lo,
           int hi) {
    const YAML::Node n = parent[key];
    if (!n) return;
    try {
      const int v = n.as<int>();
      if (v < lo || v > hi) return Fail(path, n, absl::StrCat("must be between ", lo, " and ", hi));
      out = v;
    } catch (const YAML::Exception&) {
      Fail(path, n, absl::StrCat("must be a whole number between ", lo, " and ", hi));
    }
  }

  void Duration(const YAML::Node& parent, const char* key, const std::string& path,
                absl::Duration& out) {
    const YAML::Node n = parent[key];
    if (!n) return;
    absl::Duration d;
    if (!n.IsScalar() || !absl::ParseDuration(n.as<std::string>(), &d) ||
        d < absl::ZeroDuration()) {
      return Fail(path, n, "must be a duration such as 0s, 30m, 1h or 72h");
    }
    out = d;
  }

  void Strings(const YAML::Node& parent, const char* key, const std::string& path,
               std::vector<std::string>& out) {
    const YAML::Node n = parent[key];
    if (!n) return;
    if (!n.IsSequence()) return Fail(path, n, "must be a list of strings");
    out.clear();
    for (const YAML::Node& item : n) {
      if (!item.IsScalar()) return Fail(path, item, "must be a list of strings");
      out.push_back(item.as<std::string>());
    }
  }

 private:
  std::string name_;
  absl::Status status_;
};

bool ValidCidr(const std::string& cidr) {
  const std::string addr = cidr.substr(0, cidr.find('/'));
  return IpInCidr(addr, cidr);
}

}  // namespace

absl::StatusOr<IncidentsConfig> ParseIncidentsConfig(const YAML::Node& root,
                                                     const std::string& name) {
  IncidentsConfig c;
  Reader r(name);
  if (root && !root.IsMap() && !root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the configuration must be a YAML map"));
  }
  if (const YAML::Node inst = root["institution"]) {
    InstitutionProfile& p = c.institution;
    r.String(inst, "name", "institution.name", p.institution);
    r.String(inst, "some_name", "institution.some_name", p.some_name);
    r.String(inst, "some_mailbox", "institution.some_mailbox", p.some_mailbox);
    r.String(inst, "address", "institution.address", p.address);
    r.String(inst, "phone", "institution.phone", p.phone);
    r.String(inst, "isp", "institution.isp", p.isp);
    r.String(inst, "kvkk_controller", "institution.kvkk_controller", p.kvkk_controller);
    r.String(inst, "verbis_number", "institution.verbis_number", p.verbis_number);
    r.Strings(inst, "ip_ranges", "institution.ip_ranges", p.ip_ranges);
    for (const std::string& range : p.ip_ranges) {
      if (!ValidCidr(range)) {
        r.Fail("institution.ip_ranges", inst["ip_ranges"],
               absl::StrCat("'", range, "' is not an address or CIDR range such as 192.0.2.0/24"));
      }
    }
    if (const YAML::Node contacts = inst["contacts"]) {
      if (!contacts.IsSequence()) {
        r.Fail("institution.contacts", contacts, "must be a list of {name, role, email, phone}");
      } else {
        for (const YAML::Node& n : contacts) {
          Contact ct;
          r.String(n, "name", "institution.contacts[].name", ct.name);
          r.String(n, "role", "institution.contacts[].role", ct.role);
          r.String(n, "email", "institution.contacts[].email", ct.email);
          r.String(n, "phone", "institution.contacts[].phone", ct.phone);
          if (ct.name.empty())
            r.Fail("institution.contacts[].name", n, "every contact needs a name");
          p.contacts.push_back(std::move(ct));
        }
      }
    }
  }
  if (const YAML::Node inc = root["incidents"]) {
    r.String(inc, "taxonomy", "incidents.taxonomy", c.taxonomy_path);
    if (const YAML::Node g = inc["grouping"]) {
      GroupingPolicy& gp = c.grouping;
      r.String(g, "min_level", "incidents.grouping.min_level", gp.min_level);
      static const std::set<std::string> kLevels = {"informational", "low", "medium", "high",
                                                    "critical"};
      if (kLevels.count(gp.min_level) == 0) {
        r.Fail("incidents.grouping.min_level", g["min_level"],
               "use one of informational, low, medium, high, critical");
      }
      std::vector<std::string> rules;
      r.Strings(g, "rule_ids", "incidents.grouping.rule_ids", rules);
      gp.rule_ids.insert(rules.begin(), rules.end());
      r.Bool(g, "ioc_hit_opens", "incidents.grouping.ioc_hit_opens", gp.ioc_hit_opens);
      r.Int(g, "min_ioc_confidence", "incidents.grouping.min_ioc_confidence", gp.min_ioc_confidence,
            0, 100);
      r.Duration(g, "window", "incidents.grouping.window", gp.window);
      r.Bool(g, "attach_below_threshold", "incidents.grouping.attach_below_threshold",
             gp.attach_below_threshold);
      std::string rsit;
      r.String(g, "default_rsit", "incidents.grouping.default_rsit", rsit);
      if (!rsit.empty()) {
        const size_t slash = rsit.find('/');
        if (slash == std::string::npos) {
          r.Fail("incidents.grouping.default_rsit", g["default_rsit"],
                 "write it as class/type, e.g. other/undetermined");
        } else {
          gp.default_rsit_class = rsit.substr(0, slash);
          gp.default_rsit_type = rsit.substr(slash + 1);
        }
      }
      std::string tlp;
      r.String(g, "default_tlp", "incidents.grouping.default_tlp", tlp);
      if (!tlp.empty()) {
        auto parsed = ParseTlp(tlp);
        if (!parsed.ok()) {
          r.Fail("incidents.grouping.default_tlp", g["default_tlp"],
                 std::string(parsed.status().message()));
        } else {
          gp.default_tlp = *parsed;
        }
      }
      r.Int(g, "default_asset_criticality", "incidents.grouping.default_asset_criticality",
            gp.default_asset_criticality, 1, 5);
      if (const YAML::Node ac = g["asset_criticality"]) {
        if (!ac.IsMap()) {
          r.Fail("incidents.grouping.asset_criticality", ac, "must map host names to 1..5");
        } else {
          for (const auto& kv : ac) {
            int v = 0;
            YAML::Node holder;
            holder["v"] = kv.second;
            r.Int(holder, "v",
                  absl::StrCat("incidents.grouping.asset_criticality.", kv.first.as<std::string>()),
                  v, 1, 5);
            gp.asset_criticality[kv.first.as<std::string>()] = v;
          }
        }
      }
    }
    if (const YAML::Node d = inc["deadlines"]) {
      DeadlinePolicy& dp = c.deadlines;
      r.Bool(d, "usom_enabled", "incidents.deadlines.usom_enabled", dp.usom_enabled);
      std::string state;
      r.String(d, "usom_trigger_state", "incidents.deadlines.usom_trigger_state", state);
      if (!state.empty()) {
        auto s = ParseState(state);
        if (!s.ok() || *s == State::kClosed) {
          r.Fail("incidents.deadlines.usom_trigger_state", d["usom_trigger_state"],
                 "use an open state: new, triage, investigating, contained, eradicated, recovered");
        } else {
          dp.usom_trigger_state = *s;
        }
      }
      std::string sev;
      r.String(d, "usom_min_severity", "incidents.deadlines.usom_min_severity", sev);
      if (!sev.empty()) {
        auto s = ParseSeverity(sev);
        if (!s.ok()) {
          r.Fail("incidents.deadlines.usom_min_severity", d["usom_min_severity"],
                 std::string(s.status().message()));
        } else {
          dp.usom_min_severity = *s;
        }
      }
      r.Duration(d, "usom_delay", "incidents.deadlines.usom_delay", dp.usom_delay);
      r.Duration(d, "kvkk_window", "incidents.deadlines.kvkk_window", dp.kvkk_window);
    }
  }
  if (!r.status().ok()) return r.status();
  return c;
}

absl::StatusOr<IncidentsConfig> ParseIncidentsConfigString(const std::string& yaml,
                                                           const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not valid YAML (", std::string(e.what()), ")"));
  }
  return ParseIncidentsConfig(root, name);
}

}  // namespace siper::incidents

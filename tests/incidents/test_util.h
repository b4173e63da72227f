// Shared helpers for incidents_test.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "server/incidents/model.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents::testing {

inline const Taxonomy& Rsit() {
  static const Taxonomy* t = [] {
    auto loaded = Taxonomy::LoadFromFile(std::string(SIPER_INCIDENTS_DATA_DIR) + "/rsit.yaml");
    if (!loaded.ok()) std::abort();
    return new Taxonomy(*std::move(loaded));
  }();
  return *t;
}

inline absl::Time At(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) std::abort();
  return t;
}

inline AlertInput SshAlert(const std::string& id, const std::string& ip, const std::string& host,
                           absl::Time time, const std::string& level = "high") {
  AlertInput a;
  a.id = id;
  a.rule_id = "siper-ssh-bruteforce";
  a.title = "SSH brute force";
  a.level = level;
  a.time = time;
  a.agent_id = "agent-1";
  a.seq = 100;
  a.host = host;
  a.fields = {{"source.ip", ip}, {"host.hostname", host}, {"user.name", "root"}};
  a.rsit_class = "intrusion-attempts";
  a.rsit_type = "brute-force";
  return a;
}

}  // namespace siper::incidents::testing

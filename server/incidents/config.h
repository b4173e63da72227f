// The incident settings of the server's YAML configuration: institution profile (R1, R4),
// grouping policy, deadlines and the taxonomy file. See data/incidents.example.yaml.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "server/incidents/deadlines.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/report.h"
#include "yaml-cpp/yaml.h"

namespace siper::incidents {

struct IncidentsConfig {
  InstitutionProfile institution;
  GroupingPolicy grouping;
  DeadlinePolicy deadlines;
  std::string taxonomy_path = DefaultTaxonomyPath();  // default: the shipped rsit.yaml
};

// Reads the `institution:` and `incidents:` keys of `root` (both optional; defaults as in the
// structs). `name` (the file) prefixes messages, which name the key and the accepted values.
absl::StatusOr<IncidentsConfig> ParseIncidentsConfig(const YAML::Node& root,
                                                     const std::string& name);
absl::StatusOr<IncidentsConfig> ParseIncidentsConfigString(const std::string& yaml,
                                                           const std::string& name);

}  // namespace siper::incidents

// STIX 2.1 bundle for an incident (identity, incident, indicators, observed-data and its
// cyber-observables, relationships, the TLP 2.0 marking).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/incidents/model.h"
#include "server/incidents/report.h"
#include "server/incidents/taxonomy.h"

namespace siper::incidents {

// RFC 4122 name-based UUID (version 5, SHA-1) of `name` in `namespace_uuid`.
std::string UuidV5(const std::string& namespace_uuid, const std::string& name);
// RFC 4122 random UUID (version 4) from the OpenSSL CSPRNG.
std::string UuidV4();

// Namespace STIX 2.1 (section 2.9) fixes for cyber-observable ids.
inline constexpr char kStixScoNamespace[] = "00abedb4-aa42-466c-9c01-fed23315a9b7";
// Siper's own namespace for its domain objects, so regenerating a report yields the same
// ids for the same incident (a receiver sees a new version, not a new object).
inline constexpr char kSiperStixNamespace[] = "7d3c1f0e-5b1a-4c59-9a8e-3f2b6c0d9e41";

// Quotes a value for a STIX pattern string literal: backslash and quote escaped.
std::string StixPatternString(const std::string& value);

// The bundle. Timestamps: created = the incident's creation, modified = `now`.
nlohmann::json StixBundle(const Incident& incident, const InstitutionProfile& profile,
                          const Taxonomy& taxonomy, absl::Time now);

}  // namespace siper::incidents

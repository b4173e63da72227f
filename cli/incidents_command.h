// siperctl incidents / report / audit: the IncidentService (proto/siper/v1/incident_service.proto).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/connection.h"

namespace siper::cli {

// Adds the `incidents`, `report` and `audit` nouns to `app`. The references are the global
// flags, read when a command runs (after parsing).
void AddIncidentCommands(CLI::App& app, const ConnectionFlags& connection, const bool& json,
                         const int& timeout_s);

}  // namespace siper::cli

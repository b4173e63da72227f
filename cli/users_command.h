// siperctl users create: a person's key made here, its certificate signed by the server (admin).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/connection.h"

namespace siper::cli {

void AddUserCommands(CLI::App& app, const ConnectionFlags& connection, const bool& json,
                     const int& timeout_s);

}  // namespace siper::cli

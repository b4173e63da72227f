// `siperctl ioc import|list|remove|check` and `siperctl rules reload`: IOC feeds and
// rule reload on the server, through the same hooks as the operations commands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/ops_command.h"
#include "siper/v1/analyst_service.pb.h"

namespace siper::cli {

// Adds the `ioc` noun with its verbs to `app`.
void AddIocCommands(CLI::App& app, const OpsHooks& hooks);
// Adds `reload` to the `rules` subcommand.
void AddRulesReload(CLI::App& rules, const OpsHooks& hooks);

// "usom: login.example.com (phishing)" from an alert's threat.* fields; empty when
// the alert is no IOC hit. For the alert tables.
std::string IocSummary(const google::protobuf::Map<std::string, std::string>& fields);

}  // namespace siper::cli

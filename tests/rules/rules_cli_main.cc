// A stand-alone `rules test` / `rules lint` for developing rules without the
// rest of siperctl (no gRPC): rules_cli rules test --rules DIR --input FILE.
#include "cli/rules_command.h"

int main(int argc, char** argv) {
  CLI::App app{"rules_cli: siperctl's rules commands on their own"};
  bool json = false;
  app.add_flag("--json", json, "JSON Lines on stdout");
  app.fallthrough();
  app.require_subcommand(1);
  CLI::App* rules = app.add_subcommand("rules", "test and lint detection rules offline");
  rules->require_subcommand(1);
  siper::cli::AddRulesCommands(*rules);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

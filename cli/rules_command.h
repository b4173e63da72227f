// `siperctl rules test` and `siperctl rules lint`: the detection engine offline.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>
#include <vector>

namespace siper::cli {

// Registers the subcommands `test` and `lint` on the `rules` subcommand.
void AddRulesCommands(CLI::App& rules);

struct RulesTestOptions {
  std::string rules_dir;
  std::string input;            // empty: run the rules' own test cases
  std::string format = "auto";  // auto | syslog | json | fim (FIM observations as JSON Lines)
  bool json = false;
  std::string cache_dir;  // compiled-database cache; empty = none
  // The log source each line is decoded as; empty = the input path. "siper:health" tests
  // the server's health rules (rules/ruleset/siper) on health events saved as JSON lines.
  std::string source;
  // IOC feeds to look events up in, each "NAME:FORMAT:FILE" (format as `ioc import`).
  std::vector<std::string> ioc_feeds;
};

// Runs every line of the input through the engine and prints one record per
// alert. Without an input, runs the rules' own test cases (`siper.tests`) and
// prints one record per case. Returns the process exit code (0 ok, 1 input or
// line errors or a failed test case, 2 bad rules).
int RunRulesTest(const RulesTestOptions& options, std::ostream& out, std::ostream& err);

// Lints every rule file; returns 0 unless a rule has status "error".
int RunRulesLint(const std::string& rules_dir, bool json, std::ostream& out, std::ostream& err);

}  // namespace siper::cli

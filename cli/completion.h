// Shell completion generated from the command tree itself, so it can never
// drift from the commands: `siperctl completion bash`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace siper::cli {

// A bash completion script for `root` (named `program`): completes nouns and
// verbs at every level, the options of the command typed so far (and those of
// its parents, which fall through), and leaves option values to bash's
// default file-name completion.
std::string BashCompletion(const CLI::App& root, const std::string& program);

// Registers `completion bash` on `app`; call after every other command so the
// help lists it last (the script is built from the tree when it runs).
void AddCompletionCommand(CLI::App& app);

}  // namespace siper::cli

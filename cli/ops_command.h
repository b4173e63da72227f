// Operations commands: `verify`, `backup`, `agents revoke`, `events count`. They reach
// the server through the hooks main.cc gives them (connection, deadline,
// status handling), so they share its flags and exit codes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "siper/v1/analyst_service.grpc.pb.h"

namespace siper::cli {

struct OpsHooks {
  std::function<std::unique_ptr<siper::v1::AnalystService::Stub>()> stub;
  std::function<void(grpc::ClientContext*)> set_deadline;
  // Fails the command (throws CLI::RuntimeError) unless the status is OK.
  std::function<void(const grpc::Status&)> check;
  const bool* json = nullptr;
};

// Adds `verify` and `backup` to `app`, `revoke` to its `agents` subcommand and
// `count` to its `events` subcommand.
void AddOpsCommands(CLI::App& app, const OpsHooks& hooks);

}  // namespace siper::cli

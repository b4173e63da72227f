// gRPC core logs through gpr_log, to stderr by default. The agent must not
// write to a terminal, so its messages go to spdlog instead.
#pragma once

namespace siper::agent {

// Sends gRPC's own log lines to the default spdlog logger.
void RouteGrpcLogsToSpdlog();

// Drops gRPC's own log lines (command-line tools report grpc::Status themselves).
void SilenceGrpcLogs();

}  // namespace siper::agent

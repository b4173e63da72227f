#include "agent/grpc_log.h"

#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

namespace siper::agent {
namespace {

void ToSpdlog(gpr_log_func_args* args) {
  spdlog::level::level_enum level = spdlog::level::debug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = spdlog::level::warn;
  spdlog::log(level, "grpc {}:{}: {}", args->file, args->line, args->message);
}

void Drop(gpr_log_func_args*) {}

}  // namespace

void RouteGrpcLogsToSpdlog() { gpr_set_log_function(ToSpdlog); }

void SilenceGrpcLogs() { gpr_set_log_function(Drop); }

}  // namespace siper::agent

// The in-process gRPC C++ test servers log through gpr_log to stderr; the
// agent tests silence them (the agent itself does not link gRPC).
#pragma once

#include <grpc/support/log.h>

namespace siper::agent::testing {

inline void SilenceGrpcLogs() {
  gpr_set_log_function([](gpr_log_func_args*) {});
}

}  // namespace siper::agent::testing

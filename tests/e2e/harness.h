// What every end-to-end test needs besides processes: JSON Lines parsing,
// waiting for a started siper-server to tell its port, and running siperctl.
#pragma once

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/e2e/process.h"

namespace siper::testing {

// One JSON value per non-empty line of siperctl --json output.
std::vector<nlohmann::json> ParseJsonLines(const std::string& text);

// The events of `siperctl events search --json` output that agents sent: the
// server's own health events (agent "siper-server", e.g. a filling spool or a
// silent agent, which a loaded test machine can trigger) left out.
std::vector<nlohmann::json> AgentEventLines(const std::string& text);

// Waits (up to a minute) for `server`, started with --data-dir `data_dir` and
// --listen 127.0.0.1:0, to write DATA_DIR/server.port. Returns "127.0.0.1:PORT",
// or an error when the server exited or never became ready.
absl::StatusOr<std::string> WaitForServerAddress(ChildProcess& server,
                                                 const std::filesystem::path& data_dir);

// Runs siperctl against the server at `address` with the certificate `cert`
// ("admin" is DATA_DIR/pki/admin.pem and .key) and the CA of `pki_dir`.
CommandResult RunSiperctl(const std::string& address, const std::filesystem::path& pki_dir,
                          const std::vector<std::string>& args, const std::string& cert = "admin");

// Sends raw bytes on AgentService.Stream (what a broken or hostile client
// could send) and returns how the server ended the stream.
grpc::Status RawStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& bytes);

}  // namespace siper::testing

#include "tests/e2e/harness.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "common/files.h"

namespace siper::testing {

std::vector<nlohmann::json> ParseJsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

std::vector<nlohmann::json> AgentEventLines(const std::string& text) {
  std::vector<nlohmann::json> events = ParseJsonLines(text);
  std::erase_if(events, [](const nlohmann::json& e) {
    return e.value("agent_id", std::string()) == "siper-server";
  });
  return events;
}

absl::StatusOr<std::string> WaitForServerAddress(ChildProcess& server,
                                                 const std::filesystem::path& data_dir) {
  const std::filesystem::path port_file = data_dir / "server.port";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(port_file)) {
    if (!server.Running()) return absl::UnavailableError("siper-server exited before it was ready");
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError("siper-server did not become ready within a minute");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  absl::StatusOr<std::string> port = ReadFile(port_file);
  if (!port.ok()) return port.status();
  return "127.0.0.1:" + port->substr(0, port->find('\n'));
}

CommandResult RunSiperctl(const std::string& address, const std::filesystem::path& pki_dir,
                          const std::vector<std::string>& args, const std::string& cert) {
  std::vector<std::string> argv = {SIPERCTL_BIN,
                                   "--server",
                                   address,
                                   "--ca",
                                   (pki_dir / "ca.pem").string(),
                                   "--cert",
                                   (pki_dir / (cert + ".pem")).string(),
                                   "--key",
                                   (pki_dir / (cert + ".key")).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

// Sends raw bytes on AgentService.Stream (what a broken or hostile client
// could send) and returns how the server ended the stream.
grpc::Status RawStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& bytes) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod("/siper.v1.AgentService/Stream",
                                    grpc::internal::RpcMethod::BIDI_STREAMING),
          &context));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer buffer(&slice, 1);
  stream->Write(buffer);
  stream->WritesDone();
  grpc::ByteBuffer reply;
  while (stream->Read(&reply)) {
  }
  return stream->Finish();
}

}  // namespace siper::testing

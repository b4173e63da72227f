#include "cli/users_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/output.h"
#include "common/files.h"
#include "common/pki.h"
#include "common/time_util.h"
#include "siper/v1/user_service.grpc.pb.h"

namespace siper::cli {
namespace {

[[noreturn]] void Fail(const std::string& message, int code = 1) {
  std::cerr << "siperctl: " << message << "\n";
  throw CLI::RuntimeError(code);
}

}  // namespace

void AddUserCommands(CLI::App& app, const ConnectionFlags& connection, const bool& json,
                     const int& timeout_s) {
  CLI::App* users = app.add_subcommand("users", "people's client certificates (admin)");
  users->require_subcommand(1);
  CLI::App* create = users->add_subcommand(
      "create",
      "make a key here and have the server sign it: writes DIR/NAME.key, NAME.pem, ca.pem");
  struct Options {
    std::string name, role = "analyst", out;
    int64_t days = 365;
  };
  auto o = std::make_shared<Options>();
  create->add_option("NAME", o->name, "user name (certificate CN, audit actor)")->required();
  create->add_option("--role", o->role, "viewer, analyst or admin")->capture_default_str();
  create->add_option("--out", o->out, "directory for the key and certificates")->required();
  create->add_option("--days", o->days, "validity in days")->capture_default_str();
  create->callback([o, &connection, &json, &timeout_s] {
    std::filesystem::path dir = o->out;
    std::filesystem::path key_file = dir / (o->name + ".key");
    std::filesystem::path cert_file = dir / (o->name + ".pem");
    std::error_code ec;
    if (std::filesystem::exists(key_file, ec)) {
      Fail(absl::StrCat(key_file.string(), " exists already; choose another --out"), 2);
    }
    absl::StatusOr<std::string> key = pki::GenerateKeyPem();
    if (!key.ok()) Fail(std::string(key.status().message()));
    absl::StatusOr<std::string> csr = pki::CreateCsrPem(*key, o->name);
    if (!csr.ok()) Fail(std::string(csr.status().message()));
    absl::StatusOr<ConnectionFlags> flags = ResolveConnection(connection);
    if (!flags.ok()) Fail(std::string(flags.status().message()), 2);
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(*flags);
    if (!channel.ok()) Fail(std::string(channel.status().message()), 2);
    auto stub = siper::v1::UserService::NewStub(*channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
    siper::v1::CreateUserRequest request;
    request.set_name(o->name);
    request.set_role(o->role);
    request.set_csr_pem(*csr);
    request.set_validity_days(o->days);
    siper::v1::CreateUserResponse response;
    grpc::Status status = stub->CreateUser(&context, request, &response);
    if (!status.ok()) Fail(status.error_message(), ExitCodeFor(status));
    for (absl::Status st : {EnsureDirectory(dir, 0700), WriteFileAtomic(key_file, *key, 0600),
                            WriteFileAtomic(cert_file, response.cert_pem(), 0644),
                            WriteFileAtomic(dir / "ca.pem", response.ca_pem(), 0644)}) {
      if (!st.ok()) Fail(std::string(st.message()));
    }
    if (json) {
      PrintJsonLine(std::cout, {{"name", o->name},
                                {"role", o->role},
                                {"key", key_file.string()},
                                {"cert", cert_file.string()},
                                {"ca", (dir / "ca.pem").string()},
                                {"not_after", FormatTimeNs(response.not_after_ns())}});
    } else {
      std::cout << "certificate for " << o->name << " (" << o->role << ") in " << cert_file.string()
                << ", key " << key_file.string() << ", valid until "
                << FormatTimeNs(response.not_after_ns()) << "\n";
    }
  });
}

}  // namespace siper::cli

#include "cli/ops_command.h"

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/args.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "common/text.h"
#include "common/time_util.h"

namespace siper::cli {
namespace {

// --since and --until in Unix nanoseconds (0: open), or a usage error (exit 2).
std::pair<int64_t, int64_t> TimeRangeArgs(const std::string& since, const std::string& until) {
  absl::StatusOr<std::pair<int64_t, int64_t>> range = ParseTimeRange(since, until, absl::Now());
  if (!range.ok()) {
    std::cerr << "siperctl: " << range.status().message() << "\n";
    throw CLI::RuntimeError(2);
  }
  return *range;
}

// DIR of backup and restore, made absolute here for the common case of one host (the
// path is the server's), or a usage error.
std::string ServerPath(const std::string& dir, const char* command) {
  if (dir.empty()) {
    std::cerr << "siperctl: " << command << ": DIR is empty; give a directory on the server host\n";
    throw CLI::RuntimeError(2);
  }
  return std::filesystem::absolute(dir).lexically_normal().string();
}

std::string TimeOrDash(int64_t ns) { return ns ? FormatTimeNs(ns) : std::string("-"); }

void AddVerify(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* verify = app.add_subcommand(
      "verify", "check the hash chain and its signed seals; exit 1 if records were tampered with");
  auto since = std::make_shared<std::string>();
  verify->add_option("--since", *since, "from the first batch at or after this time (2h, 7d, ISO)");
  verify->callback([hooks, since] {
    siper::v1::VerifyRequest request;
    request.set_since_ns(TimeRangeArgs(*since, "").first);
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::VerifyResponse r;
    hooks.check(stub->Verify(&context, request, &r));
    if (*hooks.json) {
      nlohmann::json j = {{"ok", r.ok()},
                          {"chain_records", r.chain_records()},
                          {"events", r.events()},
                          {"alerts", r.alerts()},
                          {"partially_expired", r.partially_expired()},
                          {"seals", r.seals()},
                          {"timestamps", r.timestamps()},
                          {"timestamps_unchecked", r.timestamps_unchecked()},
                          {"newest_timestamp", TimeOrDash(r.newest_timestamp_ns())},
                          {"newest_timestamp_length", r.newest_timestamp_length()},
                          {"head_length", r.head_length()},
                          {"head_hash", absl::BytesToHexString(r.head_hash())},
                          {"head_time", TimeOrDash(r.head_time_ns())}};
      if (!r.ok()) {
        j["problem"] = r.problem();
        j["chain_index"] = r.chain_index();
        j["from"] = TimeOrDash(r.from_ns());
        j["until"] = TimeOrDash(r.until_ns());
        j["agent_id"] = r.agent_id();
        j["first_seq"] = r.first_seq();
        j["last_seq"] = r.last_seq();
        j["message"] = r.message();
      }
      PrintJsonLine(std::cout, j);
    } else if (r.ok()) {
      std::cout << "OK: " << r.chain_records() << " chain records, " << r.events() << " events, "
                << r.alerts() << " alerts, " << r.seals() << " seals checked; head "
                << r.head_length() << " at " << TimeOrDash(r.head_time_ns()) << "\n";
      if (r.timestamps() > 0) {
        std::cout << r.timestamps() << " RFC 3161 time-stamps verified against the TSA; newest "
                  << TimeOrDash(r.newest_timestamp_ns()) << " for chain length "
                  << r.newest_timestamp_length() << "\n";
      }
      if (r.timestamps_unchecked() > 0) {
        std::cout << r.timestamps_unchecked()
                  << " time-stamps not checked: no tsa is configured on the server\n";
      }
      if (r.partially_expired() > 0) {
        std::cout << r.partially_expired()
                  << " chain records straddle a retention cutoff (links checked, digest not)\n";
      }
    } else {
      std::cout << "TAMPERED: " << r.problem() << "\n"
                << "  chain record: " << r.chain_index() << "\n"
                << "  time range:   " << TimeOrDash(r.from_ns()) << " .. "
                << TimeOrDash(r.until_ns()) << "\n";
      if (!r.agent_id().empty()) {
        std::cout << "  agent:        " << r.agent_id() << "\n"
                  << "  seq:          " << r.first_seq() << ".." << r.last_seq() << "\n";
      }
      std::cout << "  " << r.message() << "\n";
    }
    if (!r.ok()) throw CLI::RuntimeError(1);
  });
}

void AddBackup(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* backup = app.add_subcommand(
      "backup", "checkpoint the store into DIR on the server host while ingest runs (admin)");
  auto dir = std::make_shared<std::string>();
  backup->add_option("DIR", *dir, "directory on the server host; must not exist yet")->required();
  backup->callback([hooks, dir] {
    siper::v1::BackupRequest request;
    request.set_dir(ServerPath(*dir, "backup"));
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::BackupResponse r;
    Progress progress("writing the backup");
    const grpc::Status status = stub->Backup(&context, request, &r);
    progress.Finish();
    hooks.check(status);
    if (*hooks.json) {
      PrintJsonLine(std::cout, {{"dir", r.dir()}, {"head_length", r.head_length()}});
    } else {
      std::cout << "backup written to " << r.dir() << " (chain length " << r.head_length() << ")\n";
    }
  });
}

void AddRestore(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* restore = app.add_subcommand(
      "restore",
      "restore a backup (siperctl backup) on the server host while the server runs (admin): "
      "checked first (opens, chain verifies); agents' batches wait while the database is "
      "swapped; the replaced database is kept beside it");
  auto dir = std::make_shared<std::string>();
  restore->add_option("DIR", *dir, "backup directory on the server host")->required();
  restore->callback([hooks, dir] {
    siper::v1::RestoreRequest request;
    request.set_dir(ServerPath(*dir, "restore"));
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::RestoreResponse r;
    Progress progress("checking and restoring the backup");
    const grpc::Status status = stub->Restore(&context, request, &r);
    progress.Finish();
    hooks.check(status);
    if (*hooks.json) {
      PrintJsonLine(std::cout, {{"dir", r.dir()},
                                {"previous_dir", r.previous_dir()},
                                {"head_length", r.head_length()},
                                {"verified_records", r.verified_records()},
                                {"events", r.events()},
                                {"paused_ms", r.paused_ms()},
                                {"took_ms", r.took_ms()}});
    } else {
      std::cout << "restored " << EscapeForTerminal(r.dir()) << " (chain length " << r.head_length()
                << ", " << r.verified_records() << " chain records verified); ingest paused "
                << r.paused_ms() << " ms\n"
                << "the previous database is kept in " << EscapeForTerminal(r.previous_dir())
                << "\n";
    }
  });
}

void AddRevoke(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* agents = app.get_subcommand("agents");
  CLI::App* revoke =
      agents->add_subcommand("revoke", "revoke an agent: its streams are refused (admin)");
  auto id = std::make_shared<std::string>();
  revoke->add_option("ID", *id, "agent id (see agents list)")->required();
  revoke->callback([hooks, id] {
    siper::v1::RevokeAgentRequest request;
    request.set_agent_id(*id);
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::RevokeAgentResponse r;
    hooks.check(stub->RevokeAgent(&context, request, &r));
    if (*hooks.json) {
      PrintJsonLine(std::cout, {{"agent_id", *id}, {"already_revoked", r.already_revoked()}});
    } else {
      std::cout << "agent " << *id << (r.already_revoked() ? " was already revoked" : " revoked")
                << "\n";
    }
  });
}

void AddCount(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* count = app.get_subcommand("events")->add_subcommand(
      "count", "top values of a decoded field over a time range, counted on the server");
  struct Options {
    std::string by, since, until, agent;
    uint32_t top = 10;
  };
  auto o = std::make_shared<Options>();
  count->add_option("--by", o->by, "decoded field name, e.g. source.ip or user.name")->required();
  count->add_option("--since", o->since, "from this time (2h, 7d or ISO 8601)");
  count->add_option("--until", o->until, "before this time");
  count->add_option("--agent", o->agent, "only this agent id");
  count->add_option("--top", o->top, "how many values")->capture_default_str();
  count->callback([hooks, o] {
    siper::v1::CountEventsRequest request;
    request.set_field(o->by);
    const auto [since_ns, until_ns] = TimeRangeArgs(o->since, o->until);
    request.set_since_ns(since_ns);
    request.set_until_ns(until_ns);
    request.set_agent_id(o->agent);
    request.set_top(o->top);
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::CountEventsResponse r;
    hooks.check(stub->CountEvents(&context, request, &r));
    if (*hooks.json) {
      for (const auto& b : r.buckets()) {
        PrintJsonLine(std::cout, {{o->by, b.value()}, {"count", b.count()}});
      }
    } else {
      Table table({"COUNT", o->by});
      for (const auto& b : r.buckets()) table.AddRow({std::to_string(b.count()), b.value()});
      table.Print(std::cout);
      std::cerr << r.events() << " events, " << r.missing() << " without " << o->by << ", "
                << r.distinct() << " distinct values\n";
    }
  });
}

}  // namespace

void AddOpsCommands(CLI::App& app, const OpsHooks& hooks) {
  AddVerify(app, hooks);
  AddBackup(app, hooks);
  AddRestore(app, hooks);
  AddRevoke(app, hooks);
  AddCount(app, hooks);
}

}  // namespace siper::cli

// siperctl: the analyst and administrator command line. See cli/README.md.
#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/args.h"
#include "cli/completion.h"
#include "cli/connection.h"
#include "cli/incidents_command.h"
#include "cli/ioc_command.h"
#include "cli/ops_command.h"
#include "cli/output.h"
#include "cli/rules_command.h"
#include "cli/users_command.h"
#include "common/time_util.h"
#include "siper/v1/analyst_service.grpc.pb.h"

namespace siper::cli {
namespace {

struct Globals {
  ConnectionFlags connection;
  bool json = false;
  int timeout_s = 300;
};

// Fails the command: message to stderr, `code` as the exit status.
[[noreturn]] void Fail(const std::string& message, int code = 1) {
  std::cerr << "siperctl: " << message << "\n";
  throw CLI::RuntimeError(code);
}

std::unique_ptr<siper::v1::AnalystService::Stub> Stub(const Globals& g) {
  absl::StatusOr<ConnectionFlags> flags = ResolveConnection(g.connection);
  if (!flags.ok()) Fail(std::string(flags.status().message()), 2);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(*flags);
  if (!channel.ok()) Fail(std::string(channel.status().message()), 2);
  return siper::v1::AnalystService::NewStub(*channel);
}

void SetDeadline(grpc::ClientContext* context, const Globals& g) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g.timeout_s));
}

void CheckStatus(const grpc::Status& status, const Globals& g) {
  if (status.ok()) return;
  Fail(FailureMessage(status, g.connection), ExitCodeFor(status));
}

// --since and --until in Unix nanoseconds (0: open), or a usage error.
std::pair<int64_t, int64_t> TimeRangeArgs(const std::string& since, const std::string& until) {
  absl::StatusOr<std::pair<int64_t, int64_t>> range = ParseTimeRange(since, until, absl::Now());
  if (!range.ok()) Fail(std::string(range.status().message()), 2);
  return *range;
}

// Reads a server stream into `print`, then checks how it ended.
template <typename T, typename Print>
void Drain(grpc::ClientReader<T>* reader, const Globals& g, Print print) {
  T message;
  while (reader->Read(&message)) print(message);
  CheckStatus(reader->Finish(), g);
}

void AddAgents(CLI::App& app, Globals& g) {
  CLI::App* agents = app.add_subcommand("agents", "enrolled agents");
  agents->require_subcommand(1);
  CLI::App* list = agents->add_subcommand("list", "list agents and when they were last seen");
  list->callback([&g] {
    auto stub = Stub(g);
    grpc::ClientContext context;
    SetDeadline(&context, g);
    auto reader = stub->ListAgents(&context, siper::v1::ListAgentsRequest());
    Table table({"AGENT", "HOSTNAME", "VERSION", "LAST SEEN", "EVENTS", "STATE"});
    Drain(reader.get(), g, [&](const siper::v1::AgentInfo& a) {
      if (g.json) {
        PrintJsonLine(std::cout, AgentToJson(a));
      } else {
        table.AddRow({a.agent_id(), a.hostname(), a.version(),
                      a.last_seen_ns() ? FormatTimeNs(a.last_seen_ns()) : "never",
                      std::to_string(a.events()), a.revoked() ? "revoked" : "active"});
      }
    });
    if (!g.json) table.Print(std::cout);
  });
}

void AddEvents(CLI::App& app, Globals& g) {
  CLI::App* events = app.add_subcommand("events", "stored events");
  events->require_subcommand(1);
  CLI::App* search =
      events->add_subcommand("search", "search events by time, agent, rule and text");
  struct Options {
    std::string since, until, agent, rule, level, query, cursor;
    std::vector<std::string> fields;
    uint64_t limit = 100;
    bool newest_first = false;
  };
  auto o = std::make_shared<Options>();
  search->add_option("--field", o->fields,
                     "decoded field equals value, NAME=VALUE (repeatable); source.ip, user.name, "
                     "host.name and the other pivot fields are indexed");
  search->add_option("--cursor", o->cursor, "resume after the page that printed this cursor");
  search->add_option("--since", o->since, "from this time (2h, 7d or ISO 8601)");
  search->add_option("--until", o->until, "before this time (2h, 7d or ISO 8601)");
  search->add_option("--agent", o->agent, "only this agent id");
  search->add_option("--rule", o->rule, "only events that raised an alert of this rule id");
  search
      ->add_option("--level", o->level,
                   "only events that raised an alert of at least this level (with --rule: an "
                   "alert of that rule)")
      ->check(CLI::IsMember({"informational", "low", "medium", "high", "critical"}));
  search->add_option("--query", o->query, "substring of the raw line");
  search->add_option("--limit", o->limit, "at most N events; 0 means no limit")
      ->check(NonNegative())
      ->capture_default_str();
  search->add_flag("--newest-first", o->newest_first, "newest events first");
  search->callback([&g, o] {
    siper::v1::SearchEventsRequest request;
    const auto [since_ns, until_ns] = TimeRangeArgs(o->since, o->until);
    request.set_since_ns(since_ns);
    request.set_until_ns(until_ns);
    request.set_agent_id(o->agent);
    request.set_rule_id(o->rule);
    request.set_level(o->level);
    request.set_query(o->query);
    request.set_limit(o->limit);
    request.set_newest_first(o->newest_first);
    request.set_cursor(o->cursor);
    for (const std::string& f : o->fields) {
      if (absl::StatusOr<std::pair<std::string, std::string>> field = ParseFieldFilter(f);
          !field.ok()) {
        Fail(std::string(field.status().message()), 2);
      }
      request.add_field(f);
    }
    auto stub = Stub(g);
    grpc::ClientContext context;
    SetDeadline(&context, g);
    auto reader = stub->SearchEvents(&context, request);
    Table table({"TIME", "AGENT", "SEQ", "SOURCE", "LINE"});
    Drain(reader.get(), g, [&](const siper::v1::Event& e) {
      if (g.json) {
        PrintJsonLine(std::cout, EventToJson(e));
      } else {
        nlohmann::json j = EventToJson(e);
        table.AddRow({j["time"].get<std::string>(), e.agent_id(), std::to_string(e.seq()),
                      j.value("source", ""), j.value("line", "")});
      }
    });
    if (!g.json) table.Print(std::cout);
    // A full page: where the next one starts (stderr, so stdout stays records only).
    const auto& trailers = context.GetServerTrailingMetadata();
    if (auto it = trailers.find("siper-next-cursor"); it != trailers.end()) {
      std::cerr << "next cursor: " << std::string(it->second.data(), it->second.size()) << "\n";
    }
  });
}

void AddAlerts(CLI::App& app, Globals& g) {
  CLI::App* alerts = app.add_subcommand("alerts", "rule matches");
  alerts->require_subcommand(1);
  CLI::App* list = alerts->add_subcommand("list", "list alerts, oldest first");
  struct Options {
    std::string since, until, agent, rule, level;
    uint64_t limit = 100;
    bool newest_first = false;
  };
  auto o = std::make_shared<Options>();
  list->add_option("--since", o->since, "from this time (2h, 7d or ISO 8601)");
  list->add_option("--until", o->until, "before this time");
  list->add_option("--agent", o->agent, "only this agent id");
  list->add_option("--rule", o->rule, "only this rule id");
  list->add_option("--level", o->level, "at least this level")
      ->check(CLI::IsMember({"informational", "low", "medium", "high", "critical"}));
  list->add_option("--limit", o->limit, "at most N alerts; 0 means no limit")
      ->check(NonNegative())
      ->capture_default_str();
  list->add_flag("--newest-first", o->newest_first, "newest alerts first");
  list->callback([&g, o] {
    siper::v1::ListAlertsRequest request;
    const auto [since_ns, until_ns] = TimeRangeArgs(o->since, o->until);
    request.set_since_ns(since_ns);
    request.set_until_ns(until_ns);
    request.set_agent_id(o->agent);
    request.set_rule_id(o->rule);
    request.set_level(o->level);
    request.set_limit(o->limit);
    request.set_newest_first(o->newest_first);
    auto stub = Stub(g);
    grpc::ClientContext context;
    SetDeadline(&context, g);
    auto reader = stub->ListAlerts(&context, request);
    Table table({"TIME", "LEVEL", "RULE", "AGENT", "SOURCE.IP", "USER", "TITLE"});
    Drain(reader.get(), g, [&](const siper::v1::Alert& a) {
      if (g.json) {
        PrintJsonLine(std::cout, AlertToJson(a));
      } else {
        auto field = [&](const char* name) {
          auto it = a.fields().find(name);
          return it == a.fields().end() ? std::string() : it->second;
        };
        // An IOC hit names the feed, the entry and its category after the title.
        std::string title = a.title();
        if (std::string ioc = IocSummary(a.fields()); !ioc.empty()) title += " - " + ioc;
        table.AddRow({FormatTimeNs(a.time_ns()), a.level(), a.rule_id(), a.agent_id(),
                      field("source.ip"), field("user.name"), title});
      }
    });
    if (!g.json) table.Print(std::cout);
  });
}

void AddTokens(CLI::App& app, Globals& g) {
  CLI::App* tokens = app.add_subcommand("tokens", "one-time enrollment tokens (admin)");
  tokens->require_subcommand(1);
  CLI::App* create = tokens->add_subcommand("create", "make a one-time token; prints it alone");
  auto ttl = std::make_shared<std::string>();
  create->add_option("--ttl", *ttl, "lifetime, e.g. 30m, 1h, 7d (default: the server's, 1h)");
  create->callback([&g, ttl] {
    siper::v1::CreateTokenRequest request;
    if (!ttl->empty()) {
      absl::StatusOr<absl::Duration> d = ParseDurationArg(*ttl);
      if (!d.ok()) Fail(absl::StrCat("--ttl: ", d.status().message()), 2);
      request.set_ttl_s(absl::ToInt64Seconds(*d));
    }
    auto stub = Stub(g);
    grpc::ClientContext context;
    SetDeadline(&context, g);
    siper::v1::CreateTokenResponse response;
    CheckStatus(stub->CreateToken(&context, request, &response), g);
    if (g.json) {
      PrintJsonLine(std::cout, {{"token", response.token()},
                                {"expires", FormatTimeNs(response.expires_ns())}});
    } else {
      std::cout << response.token() << "\n";
    }
  });
}

int Run(int argc, char** argv) {
  CLI::App app{"siperctl: the Siper analyst and administrator command line"};
  app.fallthrough();  // global flags may also follow the noun and verb
  app.require_subcommand(1);
  app.set_version_flag("--version", SIPER_VERSION);
  Globals g;
  app.add_option("--server", g.connection.server, "HOST:PORT of siper-server (env SIPER_SERVER)");
  app.add_option("--ca", g.connection.ca, "CA certificate file (env SIPER_CA)");
  app.add_option("--cert", g.connection.cert, "client certificate file (env SIPER_CERT)");
  app.add_option("--key", g.connection.key, "client key file (env SIPER_KEY)");
  app.add_flag("--json", g.json, "JSON Lines on stdout, one object per record");
  app.add_option("--timeout", g.timeout_s, "seconds before a call is abandoned")
      ->capture_default_str();

  AddAgents(app, g);
  AddEvents(app, g);
  AddAlerts(app, g);
  AddTokens(app, g);
  const OpsHooks hooks{[&g] { return Stub(g); },
                       [&g](grpc::ClientContext* c) { SetDeadline(c, g); },
                       [&g](const grpc::Status& s) { CheckStatus(s, g); }, &g.json};
  AddOpsCommands(app, hooks);
  AddIocCommands(app, hooks);
  AddIncidentCommands(app, g.connection, g.json, g.timeout_s);
  AddUserCommands(app, g.connection, g.json, g.timeout_s);
  CLI::App* rules = app.add_subcommand(
      "rules", "test and lint detection rules offline; reload them on the server");
  rules->require_subcommand(1);
  AddRulesCommands(*rules);
  AddRulesReload(*rules, hooks);
  AddCompletionCommand(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    // Our own failures carry their exit code; CLI11's usage errors (unknown option, value
    // out of range ...) are bad usage: 2, as cli/README.md promises.
    if (dynamic_cast<const CLI::RuntimeError*>(&e) != nullptr || code == 0) return code;
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace siper::cli

int main(int argc, char** argv) {
  try {
    return siper::cli::Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "siperctl: " << e.what() << "\n";
    return 1;
  }
}

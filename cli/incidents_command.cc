#include "cli/incidents_command.h"

#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/output.h"
#include "common/time_util.h"
#include "siper/v1/incident_service.grpc.pb.h"

namespace siper::cli {
namespace {

using nlohmann::json;
using siper::v1::IncidentService;

struct Ctx {
  const ConnectionFlags* connection;
  const bool* json;
  const int* timeout_s;
};

[[noreturn]] void Fail(const std::string& message, int code = 1) {
  std::cerr << "siperctl: " << message << "\n";
  throw CLI::RuntimeError(code);
}

std::unique_ptr<IncidentService::Stub> Stub(const Ctx& c) {
  absl::StatusOr<ConnectionFlags> flags = ResolveConnection(*c.connection);
  if (!flags.ok()) Fail(std::string(flags.status().message()), 2);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(*flags);
  if (!channel.ok()) Fail(std::string(channel.status().message()), 2);
  return IncidentService::NewStub(*channel);
}

void SetDeadline(grpc::ClientContext* context, const Ctx& c) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(*c.timeout_s));
}

void Check(const grpc::Status& status, const Ctx& c) {
  if (status.ok()) return;
  Fail(FailureMessage(status, *c.connection), ExitCodeFor(status));
}

json Parse(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) Fail("the server sent an incident that is not valid JSON");
  return j;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Linked alerts of an incident: the total when the server sent a limited view.
size_t AlertCount(const json& i) {
  if (auto c = i.find("alert_count"); c != i.end() && c->is_number_unsigned()) {
    return c->get<size_t>();
  }
  return i.value("alerts", json::array()).size();
}

std::string Overdue(const json& incident) {
  std::vector<std::string> out;
  for (const json& d : incident.value("deadlines", json::array())) {
    if (Str(d, "status") == "overdue") out.push_back(Str(d, "kind"));
  }
  return absl::StrJoin(out, ",");
}

void PrintIncidentTable(const std::vector<json>& incidents) {
  Table table({"ID", "STATE", "SEVERITY", "RISK", "RSIT", "ALERTS", "ASSIGNEE", "OVERDUE",
               "DETECTED", "TITLE"});
  for (const json& i : incidents) {
    table.AddRow({Str(i, "id"), Str(i, "state"), Str(i, "severity"), Str(i, "risk_score"),
                  absl::StrCat(Str(i, "rsit_class"), "/", Str(i, "rsit_type")),
                  std::to_string(AlertCount(i)), Str(i, "assignee"), Overdue(i),
                  Str(i.value("times", json::object()), "detected"), Str(i, "title")});
  }
  table.Print(std::cout);
}

void PrintIncidentDetail(const json& i) {
  Table fields({"FIELD", "VALUE"});
  for (const char* key : {"id", "title", "state", "resolution", "severity", "risk_score",
                          "asset_criticality", "tlp", "assignee", "rsit_class", "rsit_type",
                          "usom_reference", "impact", "merged_into", "description"}) {
    std::string v = Str(i, key);
    if (!v.empty()) fields.AddRow({key, v});
  }
  const json times = i.value("times", json::object());
  for (const char* key : {"occurred", "detected", "reported_to_usom", "closed"}) {
    std::string v = Str(times, key);
    if (!v.empty()) fields.AddRow({absl::StrCat("times.", key), v});
  }
  for (const json& d : i.value("deadlines", json::array())) {
    fields.AddRow({absl::StrCat("deadline.", Str(d, "kind")),
                   absl::StrCat(Str(d, "status"), " (due ", Str(d, "due"), ")")});
  }
  fields.Print(std::cout);
  const json alerts = i.value("alerts", json::array());
  const size_t alert_count = AlertCount(i);
  if (!alerts.empty()) {
    std::cout << "\nAlerts (" << alert_count;
    if (alerts.size() < alert_count) {
      std::cout << ", the first " << alerts.size() << " shown; --all or --limit N for more";
    }
    std::cout << "):\n";
    Table t({"ALERT", "TIME", "LEVEL", "HOST", "SOURCE IP", "RULE"});
    for (const json& a : alerts) {
      t.AddRow({Str(a, "id"), Str(a, "time"), Str(a, "level"), Str(a, "host"), Str(a, "source_ip"),
                Str(a, "title")});
    }
    t.Print(std::cout);
  }
  const json observables = i.value("observables", json::array());
  if (!observables.empty()) {
    std::cout << "\nObservables:\n";
    Table t({"KIND", "VALUE", "FIELD"});
    for (const json& o : observables) t.AddRow({Str(o, "kind"), Str(o, "value"), Str(o, "field")});
    t.Print(std::cout);
  }
  const json notes = i.value("notes", json::array());
  if (!notes.empty()) {
    std::cout << "\nNotes:\n";
    Table t({"TIME", "AUTHOR", "TEXT"});
    for (const json& n : notes) t.AddRow({Str(n, "time"), Str(n, "author"), Str(n, "text")});
    t.Print(std::cout);
  }
  const json timeline = i.value("timeline", json::array());
  const size_t timeline_count = i.value("timeline_count", timeline.size());
  std::cout << "\nTimeline";
  if (timeline.size() < timeline_count) {
    std::cout << " (" << timeline_count << " entries, the last " << timeline.size()
              << " shown; --all or --limit N for more)";
  }
  std::cout << ":\n";
  Table t({"TIME", "ACTOR", "KIND", "TEXT"});
  for (const json& e : timeline) {
    t.AddRow({Str(e, "time"), Str(e, "actor"), Str(e, "kind"), Str(e, "text")});
  }
  t.Print(std::cout);
}

// The answer of a change: the incident as JSON, or one line for a human.
void PrintChanged(const siper::v1::IncidentJson& response, const Ctx& c) {
  json i = Parse(response.json());
  if (*c.json) {
    PrintJsonLine(std::cout, i);
  } else {
    std::cout << Str(i, "id") << ": " << Str(i, "state") << ", severity " << Str(i, "severity")
              << ", " << AlertCount(i) << " alerts"
              << (Str(i, "assignee").empty() ? "" : ", assigned to " + Str(i, "assignee")) << "\n";
  }
}

// Runs one unary call that answers with an incident.
template <typename Request, typename Call>
void Change(const Ctx& c, const Request& request, Call call) {
  auto stub = Stub(c);
  grpc::ClientContext context;
  SetDeadline(&context, c);
  siper::v1::IncidentJson response;
  Check(call(*stub, &context, request, &response), c);
  PrintChanged(response, c);
}

// `incidents kvkk`: the fields of the KVKK Board's breach-notification form.
void AddKvkk(CLI::App& inc, const Ctx& c) {
  CLI::App* kv = inc.add_subcommand(
      "kvkk", "record KVKK breach-notification details and notices (Law 6698 art. 12)");
  auto req = std::make_shared<siper::v1::KvkkRequest>();
  struct Raw {
    std::string started, ended, sent, special, informed;
  };
  auto raw = std::make_shared<Raw>();
  kv->add_option_function<std::string>(
        "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
      ->required();
  // A repeatable option whose values replace one list of the request.
  const auto list_option = [kv, req](const char* name,
                                     siper::v1::StringList* (siper::v1::KvkkRequest::*list)(),
                                     const char* help) {
    kv->add_option_function<std::vector<std::string>>(
          name,
          [req, list](const std::vector<std::string>& v) {
            ((*req).*list)()->mutable_values()->Assign(v.begin(), v.end());
          },
          help)
        // One value per occurrence, so a following INCIDENT is not taken as one more.
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  };
  kv->add_option("--breach-started", raw->started, "when the breach began (ISO 8601 or 2h)");
  kv->add_option("--breach-ended", raw->ended, "when it ended (ISO 8601 or 2h)");
  kv->add_option_function<std::string>(
      "--source", [req](const std::string& v) { req->set_source(v); },
      "how and from where it happened");
  kv->add_option_function<std::string>(
      "--description", [req](const std::string& v) { req->set_description(v); }, "what happened");
  list_option("--data-category", &siper::v1::KvkkRequest::mutable_data_categories,
              "personal data category affected (repeat): identity, contact, health ...");
  kv->add_option("--special-categories", raw->special,
                 "yes or no: special categories (art. 6) involved");
  list_option("--subject-group", &siper::v1::KvkkRequest::mutable_subject_groups,
              "group of people affected (repeat): citizens, employees ...");
  kv->add_option_function<int64_t>(
        "--people", [req](int64_t v) { req->set_people_count(v); },
        "number of people affected; -1: not yet known")
      ->check(CLI::Range(int64_t{-1}, std::numeric_limits<int64_t>::max()));
  kv->add_option_function<int64_t>(
        "--records", [req](int64_t v) { req->set_record_count(v); },
        "number of records affected; -1: not yet known")
      ->check(CLI::Range(int64_t{-1}, std::numeric_limits<int64_t>::max()));
  kv->add_option_function<std::string>(
      "--consequences", [req](const std::string& v) { req->set_consequences(v); },
      "likely consequences for the people affected");
  list_option("--measure-taken", &siper::v1::KvkkRequest::mutable_measures_taken,
              "a measure taken (repeat; replaces the list)");
  list_option("--measure-planned", &siper::v1::KvkkRequest::mutable_measures_planned,
              "a measure planned (repeat; replaces the list)");
  kv->add_option("--subjects-informed", raw->informed, "yes or no: the people were told");
  kv->add_option_function<std::string>(
      "--notice", [req](const std::string& v) { req->set_notice(v); },
      "record a notice sent to the Board: first or follow-up");
  kv->add_option("--notice-sent", raw->sent, "when the notice was sent (default: now)");
  kv->add_option_function<std::string>(
      "--notice-reference", [req](const std::string& v) { req->set_notice_reference(v); },
      "the Board's reference for the notice");
  kv->add_option_function<std::vector<std::string>>(
        "--delay-reason",
        [req](const std::vector<std::string>& v) {
          for (const std::string& r : v) req->add_delay_reasons(r);
        },
        "why the notice is later than 72 hours (repeat)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  kv->callback([c, req, raw] {
    const auto time_arg = [](const std::string& text, const char* flag) {
      absl::StatusOr<absl::Time> t = ParseTimeArg(text, absl::Now());
      if (!t.ok()) Fail(absl::StrCat(flag, ": ", t.status().message()), 2);
      return absl::ToUnixNanos(*t);
    };
    const auto yes_no = [](const std::string& text, const char* flag) {
      if (text != "yes" && text != "no") Fail(absl::StrCat(flag, ": takes yes or no"), 2);
      return text == "yes";
    };
    if (!raw->started.empty())
      req->set_breach_started_ns(time_arg(raw->started, "--breach-started"));
    if (!raw->ended.empty()) req->set_breach_ended_ns(time_arg(raw->ended, "--breach-ended"));
    if (!raw->sent.empty()) req->set_notice_sent_ns(time_arg(raw->sent, "--notice-sent"));
    if (!raw->special.empty())
      req->set_special_categories(yes_no(raw->special, "--special-categories"));
    if (!raw->informed.empty())
      req->set_subjects_informed(yes_no(raw->informed, "--subjects-informed"));
    Change(c, *req,
           [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
             return s.UpdateKvkk(ctx, r, out);
           });
  });
}

void AddIncidents(CLI::App& app, const Ctx& c) {
  CLI::App* inc = app.add_subcommand("incidents", "incidents: the SOME's case work");
  inc->require_subcommand(1);

  {
    CLI::App* list = inc->add_subcommand("list", "list incidents, oldest first");
    auto req = std::make_shared<siper::v1::ListIncidentsRequest>();
    list->add_flag_function(
        "--overdue", [req](int64_t) { req->set_overdue(true); },
        "only incidents with a USOM or KVKK deadline past due");
    list->add_option_function<std::string>(
        "--state", [req](const std::string& s) { req->set_state(s); },
        "only this state: new, triage, investigating, contained, eradicated, recovered, closed");
    list->add_flag_function(
        "--open", [req](int64_t) { req->set_open_only(true); }, "leave out closed incidents");
    req->set_limit(100);
    list->add_option_function<uint32_t>(
            "--limit", [req](uint32_t v) { req->set_limit(v); },
            "per incident, at most N alerts, timeline entries and alert ids per observable "
            "in --json (default 100; the totals are in alert_count, ...)")
        ->check(CLI::PositiveNumber);
    list->add_flag_function(
        "--all", [req](int64_t) { req->set_limit(0); }, "every alert of every incident in --json");
    list->callback([c, req] {
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      auto reader = stub->ListIncidents(&context, *req);
      std::vector<json> rows;
      siper::v1::IncidentJson m;
      while (reader->Read(&m)) {
        json j = Parse(m.json());
        if (*c.json) {
          PrintJsonLine(std::cout, j);
        } else {
          rows.push_back(std::move(j));
        }
      }
      Check(reader->Finish(), c);
      if (!*c.json) PrintIncidentTable(rows);
    });
  }
  {
    CLI::App* show =
        inc->add_subcommand("show", "one incident: fields, alerts, observables, timeline");
    auto id = std::make_shared<std::string>();
    auto limit = std::make_shared<uint32_t>(100);
    auto all = std::make_shared<bool>(false);
    show->add_option("INCIDENT", *id, "incident id, e.g. INC-2026-0001")->required();
    show->add_option("--limit", *limit,
                     "at most N alerts (the first), timeline entries (the last) and alert ids "
                     "per observable; the totals are shown (default 100)")
        ->check(CLI::PositiveNumber);
    show->add_flag("--all", *all, "everything, however large the incident");
    show->callback([c, id, limit, all] {
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      siper::v1::IncidentId request;
      request.set_id(*id);
      request.set_limit(*all ? 0 : *limit);
      siper::v1::IncidentJson response;
      Check(stub->GetIncident(&context, request, &response), c);
      json j = Parse(response.json());
      if (*c.json) {
        PrintJsonLine(std::cout, j);
      } else {
        PrintIncidentDetail(j);
      }
    });
  }
  {
    CLI::App* create = inc->add_subcommand("create", "open an incident by hand");
    auto req = std::make_shared<siper::v1::CreateIncidentRequest>();
    create
        ->add_option_function<std::string>(
            "--title", [req](const std::string& v) { req->set_title(v); }, "title")
        ->required();
    create->add_option_function<std::string>(
        "--description", [req](const std::string& v) { req->set_description(v); }, "description");
    create->add_option_function<std::string>(
        "--rsit-class", [req](const std::string& v) { req->set_rsit_class(v); },
        "RSIT class (default other)");
    create->add_option_function<std::string>(
        "--rsit-type", [req](const std::string& v) { req->set_rsit_type(v); },
        "RSIT type (default undetermined)");
    create->add_option_function<std::string>(
        "--severity", [req](const std::string& v) { req->set_severity(v); },
        "low, medium (default), high, critical");
    create->add_option_function<std::string>(
        "--tlp", [req](const std::string& v) { req->set_tlp(v); }, "TLP (default amber)");
    create->add_option_function<std::string>(
        "--assignee", [req](const std::string& v) { req->set_assignee(v); }, "who works on it");
    create->add_flag_function(
        "--personal-data-breach", [req](int64_t) { req->set_personal_data_breach(true); },
        "a personal-data breach (KVKK 72 h)");
    create->callback([c, req] {
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.CreateIncident(ctx, r, out);
             });
    });
  }
  {
    CLI::App* tr = inc->add_subcommand("transition", "move an incident to another state");
    auto req = std::make_shared<siper::v1::TransitionRequest>();
    tr->add_option_function<std::string>(
          "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    tr->add_option_function<std::string>(
          "--to", [req](const std::string& v) { req->set_to(v); },
          "new, triage, investigating, contained, eradicated, recovered, closed")
        ->required();
    tr->add_option_function<std::string>(
        "--resolution", [req](const std::string& v) { req->set_resolution(v); },
        "closing: true-positive, false-positive, duplicate");
    tr->add_option_function<std::string>(
        "--reason", [req](const std::string& v) { req->set_reason(v); },
        "why (kept in the timeline)");
    tr->callback([c, req] {
      if (req->to() == "closed" && req->resolution().empty()) {
        Fail("closing needs --resolution true-positive, false-positive or duplicate", 2);
      }
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.Transition(ctx, r, out);
             });
    });
  }
  {
    CLI::App* as = inc->add_subcommand("assign", "assign an incident");
    auto req = std::make_shared<siper::v1::AssignRequest>();
    as->add_option_function<std::string>(
          "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    as->add_option_function<std::string>(
          "ASSIGNEE", [req](const std::string& v) { req->set_assignee(v); }, "user name")
        ->required();
    as->callback([c, req] {
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.Assign(ctx, r, out);
             });
    });
  }
  {
    CLI::App* note = inc->add_subcommand("note", "add a note");
    auto req = std::make_shared<siper::v1::NoteRequest>();
    note->add_option_function<std::string>(
            "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    note->add_option_function<std::string>(
            "TEXT", [req](const std::string& v) { req->set_text(v); }, "the note")
        ->required();
    note->callback([c, req] {
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.AddNote(ctx, r, out);
             });
    });
  }
  for (const bool attach : {true, false}) {
    CLI::App* sub = inc->add_subcommand(
        attach ? "attach" : "detach",
        attach ? "link stored alerts to an incident" : "unlink alerts from an incident");
    auto req = std::make_shared<siper::v1::AlertsRequest>();
    sub->add_option_function<std::string>(
           "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    sub->add_option_function<std::vector<std::string>>(
           "ALERT",
           [req](const std::vector<std::string>& v) {
             for (const auto& a : v) req->add_alert_ids(a);
           },
           "alert ids (siperctl alerts list --json)")
        ->required();
    sub->callback([c, req, attach] {
      Change(
          c, *req,
          [attach](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
            return attach ? s.Attach(ctx, r, out) : s.Detach(ctx, r, out);
          });
    });
  }
  {
    CLI::App* merge = inc->add_subcommand(
        "merge", "merge incidents into TARGET (the others close as duplicates)");
    auto req = std::make_shared<siper::v1::MergeRequest>();
    merge
        ->add_option_function<std::string>(
            "TARGET", [req](const std::string& v) { req->set_target(v); }, "incident that stays")
        ->required();
    merge
        ->add_option_function<std::vector<std::string>>(
            "SOURCE",
            [req](const std::vector<std::string>& v) {
              for (const auto& a : v) req->add_sources(a);
            },
            "incidents merged into it")
        ->required();
    merge->callback([c, req] {
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.Merge(ctx, r, out);
             });
    });
  }
  {
    CLI::App* split = inc->add_subcommand("split", "move alerts out of an incident into a new one");
    auto req = std::make_shared<siper::v1::SplitRequest>();
    split
        ->add_option_function<std::string>(
            "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    split
        ->add_option_function<std::vector<std::string>>(
            "ALERT",
            [req](const std::vector<std::string>& v) {
              for (const auto& a : v) req->add_alert_ids(a);
            },
            "alert ids to move")
        ->required();
    split->add_option_function<std::string>(
        "--title", [req](const std::string& v) { req->set_title(v); }, "title of the new incident");
    split->callback([c, req] {
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      siper::v1::SplitResponse response;
      Check(stub->Split(&context, *req, &response), c);
      if (*c.json) {
        PrintJsonLine(std::cout, Parse(response.json()));
      } else {
        std::cout << response.new_id() << "\n";
      }
    });
  }
  {
    CLI::App* up =
        inc->add_subcommand("update", "change severity, classification, TLP, impact ...");
    auto req = std::make_shared<siper::v1::UpdateRequest>();
    up->add_option_function<std::string>(
          "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
        ->required();
    up->add_option_function<std::string>(
        "--severity", [req](const std::string& v) { req->set_severity(v); },
        "low, medium, high, critical");
    up->add_option_function<std::string>(
        "--rsit-class", [req](const std::string& v) { req->set_rsit_class(v); },
        "RSIT class (with --rsit-type)");
    up->add_option_function<std::string>(
        "--rsit-type", [req](const std::string& v) { req->set_rsit_type(v); }, "RSIT type");
    up->add_option_function<std::string>(
        "--tlp", [req](const std::string& v) { req->set_tlp(v); },
        "clear, green, amber, amber+strict, red");
    up->add_option_function<std::string>(
        "--impact", [req](const std::string& v) { req->set_impact(v); }, "impact, for reports");
    up->add_option_function<std::string>(
        "--action", [req](const std::string& v) { req->set_action(v); },
        "an action taken, appended");
    up->add_option_function<int>(
        "--asset-criticality", [req](int v) { req->set_asset_criticality(v); }, "1..5");
    up->add_option_function<std::string>(
        "--usom-reference", [req](const std::string& v) { req->set_usom_reference(v); },
        "records the report to USOM now, with USOM's reference");
    up->add_option_function<std::string>(
        "--personal-data-breach", [req](const std::string& v) { req->set_personal_data_breach(v); },
        "yes or no (KVKK 72 h from detection)");
    up->callback([c, req] {
      Change(c, *req,
             [](IncidentService::Stub& s, grpc::ClientContext* ctx, const auto& r, auto* out) {
               return s.Update(ctx, r, out);
             });
    });
  }
  AddKvkk(*inc, c);
}

void AddReports(CLI::App& app, const Ctx& c) {
  CLI::App* report =
      app.add_subcommand("report", "reports to USOM, KVKK and management (rendered by the server)");
  report->require_subcommand(1);
  struct Spec {
    const char* kind;
    const char* help;
    const char* formats;
  };
  for (const Spec& spec :
       {Spec{"usom", "USOM incident report", "md, json or stix"},
        Spec{"kvkk", "KVKK Board breach notification", "md or json"},
        Spec{"summary", "counts, mean times, top rules and attackers", "md or html"}}) {
    CLI::App* sub = report->add_subcommand(spec.kind, spec.help);
    auto req = std::make_shared<siper::v1::ReportRequest>();
    auto since = std::make_shared<std::string>();
    req->set_kind(spec.kind);
    req->set_format("md");
    if (std::string(spec.kind) != "summary") {
      sub->add_option_function<std::string>(
             "INCIDENT", [req](const std::string& v) { req->set_id(v); }, "incident id")
          ->required();
    } else {
      sub->add_option("--since", *since, "period start, e.g. 30d or ISO 8601 (default 30d)");
    }
    sub->add_option_function<std::string>(
        "--format", [req](const std::string& v) { req->set_format(v); }, spec.formats);
    sub->add_option_function<std::string>(
        "--lang", [req](const std::string& v) { req->set_lang(v); }, "tr (default) or en");
    sub->callback([c, req, since] {
      if (!since->empty()) {
        absl::StatusOr<absl::Time> t = ParseTimeArg(*since, absl::Now());
        if (!t.ok()) Fail(absl::StrCat("--since: ", t.status().message()), 2);
        req->set_since_ns(absl::ToUnixNanos(*t));
      }
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      siper::v1::ReportResponse response;
      Check(stub->Report(&context, *req, &response), c);
      std::cout << response.text();
      if (!response.text().empty() && response.text().back() != '\n') std::cout << "\n";
    });
  }
}

void AddAudit(CLI::App& app, const Ctx& c) {
  CLI::App* audit =
      app.add_subcommand("audit", "the append-only, hash-chained audit trail of incident changes");
  audit->require_subcommand(1);
  {
    CLI::App* list = audit->add_subcommand("list", "who changed what, when, with before and after");
    auto req = std::make_shared<siper::v1::ListAuditRequest>();
    list->add_option_function<std::string>(
        "--incident", [req](const std::string& v) { req->set_target(v); }, "only this incident");
    list->add_option_function<uint64_t>(
        "--from", [req](uint64_t v) { req->set_from_seq(v); }, "first record number");
    list->callback([c, req] {
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      auto reader = stub->ListAudit(&context, *req);
      Table table({"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "CHANGE"});
      siper::v1::AuditRecordJson m;
      while (reader->Read(&m)) {
        json r = Parse(m.json());
        if (*c.json) {
          PrintJsonLine(std::cout, r);
          continue;
        }
        std::string change;
        const json& before = r.contains("before") ? r["before"] : json();
        const json& after = r.contains("after") ? r["after"] : json();
        if (before.is_object() && after.is_object()) {
          std::vector<std::string> diffs;
          for (const char* key :
               {"state", "severity", "assignee", "rsit_class", "tlp", "resolution"}) {
            if (Str(before, key) != Str(after, key)) {
              diffs.push_back(absl::StrCat(key, ": ", Str(before, key), " -> ", Str(after, key)));
            }
          }
          change = absl::StrJoin(diffs, "; ");
        } else if (after.is_object()) {
          change = "created";
        }
        table.AddRow({Str(r, "seq"), Str(r, "time"), Str(r, "actor"), Str(r, "action"),
                      Str(r, "target"), change});
      }
      Check(reader->Finish(), c);
      if (!*c.json) table.Print(std::cout);
    });
  }
  {
    CLI::App* verify =
        audit->add_subcommand("verify", "check the stored audit chain; exit 5 if broken");
    verify->callback([c] {
      auto stub = Stub(c);
      grpc::ClientContext context;
      SetDeadline(&context, c);
      siper::v1::VerifyAuditResponse response;
      Check(stub->VerifyAudit(&context, siper::v1::VerifyAuditRequest(), &response), c);
      if (*c.json) {
        PrintJsonLine(std::cout, {{"ok", response.ok()},
                                  {"records", response.records()},
                                  {"head", response.head()},
                                  {"problem", response.problem()}});
      } else if (response.ok()) {
        std::cout << "audit chain ok: " << response.records() << " records, head "
                  << response.head() << "\n";
      }
      if (!response.ok()) Fail(absl::StrCat("audit chain broken: ", response.problem()), 5);
    });
  }
}

}  // namespace

void AddIncidentCommands(CLI::App& app, const ConnectionFlags& connection, const bool& json,
                         const int& timeout_s) {
  Ctx c{&connection, &json, &timeout_s};
  AddIncidents(app, c);
  AddReports(app, c);
  AddAudit(app, c);
}

}  // namespace siper::cli

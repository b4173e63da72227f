#include "cli/rules_command.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/progress.h"
#include "rules/engine.h"
#include "rules/ioc.h"
#include "rules/strutil.h"

namespace siper::cli {
namespace {

// Control characters as \n, \t, \xNN so a log line cannot drive the terminal.
std::string EscapeControl(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      rules::strutil::StrAppend(&out, "\\x", rules::strutil::Hex2(c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void PrintJson(std::ostream& out, const nlohmann::json& j) {
  out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void PrintTable(std::ostream& out, const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], std::min<size_t>(r[i].size(), 60));
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      std::string c = cells[i];
      if (i + 1 < cells.size()) {
        if (c.size() > width[i]) c = c.substr(0, width[i] - 1) + "~";
        c.resize(width[i], ' ');
        c += "  ";
      }
      s += c;
    }
    out << s << "\n";
  };
  line(headers);
  for (const auto& r : rows) line(r);
}

bool RootWantsJson(const CLI::App& sub) {
  const CLI::App* root = &sub;
  while (root->get_parent() != nullptr) root = root->get_parent();
  const CLI::Option* opt = root->get_option_no_throw("--json");
  return opt != nullptr && opt->count() > 0;
}

// The rules' own test cases: one row (or JSON object) per case, failures
// first in the summary on stderr.
int RunRuleTestCases(const std::shared_ptr<const rules::RuleSet>& rule_set, bool json,
                     std::ostream& out, std::ostream& err) {
  std::vector<rules::RuleTestResult> results = rules::RunRuleTests(rule_set);
  std::vector<std::vector<std::string>> rows;
  size_t failed = 0;
  for (const rules::RuleTestResult& r : results) {
    failed += r.passed ? 0 : 1;
    if (json) {
      PrintJson(out, {{"path", r.path},
                      {"line", r.yaml_line},
                      {"rule_id", r.rule_id},
                      {"expect", r.must_match ? "match" : "no_match"},
                      {"result", r.passed ? "pass" : "fail"},
                      {"input", r.input},
                      {"message", r.message}});
    } else {
      rows.push_back({EscapeControl(rules::strutil::StrCat(r.path, ":", r.yaml_line)),
                      r.must_match ? "match" : "no_match", r.passed ? "pass" : "FAIL",
                      EscapeControl(r.passed ? r.input : r.message + ": " + r.input)});
    }
  }
  if (!json) {
    PrintTable(out, {"CASE", "EXPECT", "RESULT", "INPUT"}, rows);
    out << results.size() << " test cases, " << results.size() - failed << " passed, " << failed
        << " failed, " << rule_set->rule_count() << " rules\n";
  }
  for (const rules::RuleTestResult& r : results) {
    if (!r.passed) {
      err << r.path << ":" << r.yaml_line << ": " << EscapeControl(r.message) << ": "
          << EscapeControl(r.input) << "\n";
    }
  }
  return failed > 0 ? 1 : 0;
}

// One FIM observation per JSON line: either an `events search --json` record of
// a file event (its "file" object, and "agent_time" as the event time) or a
// bare object with the same keys. "mode" is st_mode as a number or octal text.
absl::StatusOr<rules::FileObservation> ParseFimLine(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("not a JSON object (--format fim reads one per line)");
  }
  const nlohmann::json& f = j.contains("file") && j["file"].is_object() ? j["file"] : j;
  auto text = [&](const char* key) -> std::string {
    auto it = f.find(key);
    return it != f.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  rules::FileObservation o;
  o.path = text("path");
  if (o.path.empty()) return absl::InvalidArgumentError("no \"path\"");
  absl::StatusOr<rules::FileChange> change = rules::ParseFileChange(text("change"));
  if (!change.ok()) return change.status();
  o.change = *change;
  o.sha256 = text("sha256");
  o.owner = text("owner");
  o.group = text("group");
  for (const char* key : {"size", "uid", "gid", "mode"}) {
    auto it = f.find(key);
    if (it == f.end()) continue;
    uint64_t v = 0;
    if (it->is_number_unsigned()) {
      v = it->get<uint64_t>();
    } else if (std::string_view(key) == "mode" && it->is_string()) {
      const std::string m = it->get<std::string>();
      auto [end, ec] = std::from_chars(m.data(), m.data() + m.size(), v, 8);
      if (ec != std::errc() || end != m.data() + m.size()) {
        return absl::InvalidArgumentError(absl::StrCat("\"mode\" '", m, "' is not octal"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a number"));
    }
    if (std::string_view(key) == "size") o.size = v;
    if (std::string_view(key) == "uid") o.uid = static_cast<uint32_t>(v);
    if (std::string_view(key) == "gid") o.gid = static_cast<uint32_t>(v);
    if (std::string_view(key) == "mode") o.mode = static_cast<uint32_t>(v);
  }
  if (auto it = j.find("agent_time"); it != j.end() && it->is_string() && !it->empty()) {
    absl::Time t;
    std::string why;
    if (absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t, &why)) {
      o.time_ns = absl::ToUnixNanos(t);
    }
  }
  return o;
}

// Builds the IOC set of `--ioc NAME:FORMAT:FILE` options; null when there are none.
absl::StatusOr<std::shared_ptr<const rules::IocSet>> LoadIocFeeds(
    const std::vector<std::string>& specs, std::ostream& err) {
  if (specs.empty()) return std::shared_ptr<const rules::IocSet>();
  rules::IocSetBuilder builder;
  for (const std::string& spec : specs) {
    const size_t a = spec.find(':');
    const size_t b = a == std::string::npos ? a : spec.find(':', a + 1);
    if (b == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ioc ", spec, ": expected NAME:FORMAT:FILE, e.g. usom:usom:url-list.txt"));
    }
    const std::string name = spec.substr(0, a), format_name = spec.substr(a + 1, b - a - 1),
                      file = spec.substr(b + 1);
    rules::IocFeedFormat format;
    if (format_name == "usom") {
      format = rules::IocFeedFormat::kUsomList;
    } else if (format_name == "usom-json") {
      format = rules::IocFeedFormat::kUsomJson;
    } else if (format_name == "hash") {
      format = rules::IocFeedFormat::kHashList;
    } else if (format_name == "value") {
      format = rules::IocFeedFormat::kValueList;
    } else if (format_name == "plain") {
      format = rules::IocFeedFormat::kPlainList;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--ioc ", spec, ": unknown format '",
                                                     format_name,
                                                     "' (usom, usom-json, hash, value or plain)"));
    }
    rules::IocFeedOptions options;
    options.name = name;
    absl::StatusOr<rules::IocImportStats> stats = builder.ImportFile(format, file, options);
    if (!stats.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", stats.status().message()));
    }
    for (const std::string& s : stats->invalid_samples) {
      err << "siperctl rules test: " << EscapeControl(file) << ": skipped " << EscapeControl(s)
          << "\n";
    }
  }
  return builder.Build();
}

}  // namespace

int RunRulesTest(const RulesTestOptions& options, std::ostream& out, std::ostream& err) {
  const bool fim = options.format == "fim";
  absl::StatusOr<rules::InputFormat> format =
      fim ? rules::InputFormat::kJson : rules::ParseInputFormat(options.format);
  if (!format.ok()) {
    err << "siperctl rules test: " << format.status().message() << "\n";
    return 2;
  }
  rules::LoadOptions load_options;
  load_options.cache_dir = options.cache_dir;
  // Rules with errors are named below and left out, so that one bad file in a
  // large set (a SigmaHQ snapshot) does not stop the others from being tested.
  load_options.skip_errors = true;
  Progress progress("compiling rules");
  absl::StatusOr<std::shared_ptr<const rules::RuleSet>> rule_set =
      rules::RuleSet::Load(options.rules_dir, load_options);
  progress.Finish();
  if (!rule_set.ok()) {
    err << "siperctl rules test: cannot load rules: " << rule_set.status().message() << "\n";
    return 2;
  }
  size_t rule_errors = 0;
  for (const rules::RuleDiagnostic& d : (*rule_set)->skipped()) {
    if (d.status == rules::RuleDiagnostic::Status::kError) {
      ++rule_errors;
      err << "siperctl rules test: error, rule not loaded: " << EscapeControl(d.message) << "\n";
    } else {
      err << "siperctl rules test: skipped " << EscapeControl(d.message) << "\n";
    }
  }
  if (options.input.empty()) {
    // Testing a rule set's own cases: a rule that does not load fails the run.
    const int rc = RunRuleTestCases(*rule_set, options.json, out, err);
    if (rule_errors > 0) {
      err << "siperctl rules test: " << rule_errors << " rules with errors were not tested\n";
      return 2;
    }
    return rc;
  }
  absl::StatusOr<std::shared_ptr<const rules::IocSet>> ioc = LoadIocFeeds(options.ioc_feeds, err);
  if (!ioc.ok()) {
    err << "siperctl rules test: " << ioc.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<rules::Matcher>> matcher =
      rules::Matcher::Create(*rule_set, *std::move(ioc));
  if (!matcher.ok()) {
    err << "siperctl rules test: " << matcher.status().message() << "\n";
    return 2;
  }
  std::ifstream in(options.input, std::ios::binary);
  if (!in) {
    err << "siperctl rules test: cannot open input " << options.input << "\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  std::string line;
  uint64_t line_no = 0, alerts = 0, failures = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    absl::StatusOr<std::vector<rules::Detection>> found;
    if (fim) {
      absl::StatusOr<rules::FileObservation> file = ParseFimLine(line);
      found = file.ok() ? (*matcher)->ProcessFile(*file) : file.status();
    } else {
      found = (*matcher)->Process(line, options.source.empty() ? options.input : options.source,
                                  *format);
    }
    if (!found.ok()) {
      err << options.input << ":" << line_no << ": " << found.status().message() << "\n";
      ++failures;
      continue;
    }
    for (const rules::Detection& d : *found) {
      ++alerts;
      if (options.json) {
        nlohmann::json j = {{"line", line_no},
                            {"rule_id", d.rule_id},
                            {"title", d.title},
                            {"level", d.level},
                            {"fields", d.fields.ToMap()}};
        if (d.count > 1) j["count"] = d.count;
        PrintJson(out, j);
      } else {
        std::string summary;
        for (const char* k :
             {"source.ip", "user.name", "user.target.name", "url.original", "process.command_line",
              "CommandLine", "Image", "file.path", "threat.feed.name", "threat.indicator.value",
              "threat.indicator.category"}) {
          auto it = d.fields.find(k);
          if (it == d.fields.end()) continue;
          if (!summary.empty()) summary += " ";
          rules::strutil::StrAppend(&summary, k, "=", it->second);
        }
        rows.push_back({rules::strutil::StrCat(line_no), EscapeControl(d.level),
                        EscapeControl(d.rule_id), EscapeControl(d.title),
                        d.count > 1 ? rules::strutil::StrCat(d.count) : std::string("1"),
                        EscapeControl(summary)});
      }
    }
  }
  if (!options.json) {
    PrintTable(out, {"LINE", "LEVEL", "RULE", "TITLE", "COUNT", "FIELDS"}, rows);
    out << line_no << " lines, " << alerts << " alerts, " << (*rule_set)->rule_count()
        << " rules\n";
  }
  return failures > 0 ? 1 : 0;
}

int RunRulesLint(const std::string& rules_dir, bool json, std::ostream& out, std::ostream& err) {
  std::error_code ec;
  if (!std::filesystem::exists(rules_dir, ec)) {
    err << "siperctl rules lint: rules directory " << rules_dir << " does not exist\n";
    return 2;
  }
  Progress progress("linting rules");
  std::vector<rules::RuleDiagnostic> diags = rules::RuleSet::Lint(rules_dir);
  progress.Finish();
  size_t counts[3] = {0, 0, 0};
  std::vector<std::vector<std::string>> rows;
  for (const rules::RuleDiagnostic& d : diags) {
    ++counts[static_cast<int>(d.status)];
    std::string_view status = rules::RuleDiagnosticStatusName(d.status);
    if (json) {
      PrintJson(
          out,
          {{"path", d.path}, {"rule_id", d.rule_id}, {"status", status}, {"message", d.message}});
    } else {
      rows.push_back({EscapeControl(d.path), EscapeControl(d.rule_id), std::string(status),
                      EscapeControl(d.message)});
    }
  }
  if (!json) {
    PrintTable(out, {"PATH", "RULE", "STATUS", "MESSAGE"}, rows);
    out << counts[0] << " ok, " << counts[1] << " unsupported, " << counts[2] << " errors\n";
  }
  return counts[2] > 0 ? 1 : 0;
}

void AddRulesCommands(CLI::App& rules) {
  auto test_opts = std::make_shared<RulesTestOptions>();
  CLI::App* test = rules.add_subcommand(
      "test", "run rules over a log file offline, or (without --input) the rules' own test cases");
  test->add_option("--rules", test_opts->rules_dir, "folder of Sigma rules")->required();
  test->add_option("--input", test_opts->input,
                   "log file, one event per line; without it, run the rules' own test cases");
  test->add_option("--source", test_opts->source,
                   "decode lines as read from this source (default: the input path); "
                   "siper:health for the server's health events");
  test->add_option("--format", test_opts->format,
                   "auto, syslog, json, or fim (FIM observations as JSON Lines, e.g. from "
                   "events search --json)")
      ->check(CLI::IsMember({"auto", "syslog", "json", "fim"}))
      ->capture_default_str();
  test->add_flag("--json", test_opts->json,
                 "JSON Lines on stdout, one object per alert (per test case without --input)");
  test->add_option("--cache-dir", test_opts->cache_dir,
                   "reuse compiled Hyperscan databases from this folder");
  test->add_option("--ioc", test_opts->ioc_feeds,
                   "look events up in an IOC feed first, NAME:FORMAT:FILE with FORMAT usom, "
                   "usom-json, hash, value or plain (repeatable); hits add the threat.* fields "
                   "that rules/ruleset/ioc matches, as on the server");
  test->callback([test, test_opts]() {
    RulesTestOptions o = *test_opts;
    o.json = o.json || RootWantsJson(*test);
    int rc = RunRulesTest(o, std::cout, std::cerr);
    std::cout.flush();
    if (rc != 0) throw CLI::RuntimeError(rc);
  });

  auto lint_dir = std::make_shared<std::string>();
  auto lint_json = std::make_shared<bool>(false);
  CLI::App* lint = rules.add_subcommand("lint", "check that rules parse and compile");
  lint->add_option("--rules", *lint_dir, "folder of Sigma rules")->required();
  lint->add_flag("--json", *lint_json, "JSON Lines on stdout, one object per rule file");
  lint->callback([lint, lint_dir, lint_json]() {
    int rc = RunRulesLint(*lint_dir, *lint_json || RootWantsJson(*lint), std::cout, std::cerr);
    std::cout.flush();
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace siper::cli

#include "cli/ioc_command.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "common/text.h"
#include "common/time_util.h"

namespace siper::cli {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

[[noreturn]] void Fail(const std::string& message, int code) {
  std::cerr << "siperctl: " << EscapeForTerminal(message) << "\n";
  throw CLI::RuntimeError(code);
}

std::string ByKind(const google::protobuf::Map<std::string, uint64_t>& by_kind) {
  std::map<std::string, uint64_t> sorted(by_kind.begin(), by_kind.end());
  std::vector<std::string> parts;
  for (const auto& [kind, n] : sorted) parts.push_back(absl::StrCat(kind, " ", n));
  return absl::StrJoin(parts, ", ");
}

nlohmann::json ByKindJson(const google::protobuf::Map<std::string, uint64_t>& by_kind) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [kind, n] : by_kind) j[kind] = n;
  return j;
}

void AddImport(CLI::App& ioc, const OpsHooks& hooks) {
  CLI::App* import = ioc.add_subcommand(
      "import",
      "replace one feed's indicators with a file's (analyst, admin); prints what changed");
  struct Options {
    std::string feed, format, category, file;
    std::optional<int> confidence;
  };
  auto o = std::make_shared<Options>();
  import->add_option("--feed", o->feed, "feed name, e.g. usom, malware-hashes, c2-list")
      ->required();
  import
      ->add_option("--format", o->format,
                   "usom (USOM's url-list.txt), usom-json (USOM's API records), hash "
                   "(hash;comment), value (value;comment C2 lists), plain (one per line); "
                   "with --feed usom it may be left out: JSON or list is told from the content")
      ->check(CLI::IsMember({"usom", "usom-json", "hash", "value", "plain"}));
  import->add_option("--category", o->category,
                     "category of the entries, e.g. malware (USOM's records carry their own)");
  import->add_option("--confidence", o->confidence, "0..100, how sure the feed is (default 50)")
      ->check(CLI::Range(0, 100));
  import->add_option("--file", o->file, "the feed file")->required();
  import->footer(
      "The feed's stored entries are replaced by the file's: entries no longer in the\n"
      "file are removed. Invalid lines are counted and the first ones shown; a file\n"
      "without a single valid indicator is refused and the stored feed kept.");
  import->callback([hooks, o] {
    if (o->format.empty() && o->feed != "usom") {
      Fail("ioc import: --format is required unless --feed is usom", 2);
}
std::ifstream in(o->file, std::ios::binary);
if (!in) Fail(absl::StrCat("ioc import: cannot read ", o->file, ": ", std::strerror(errno)), 2);
in.seekg(0, std::ios::end);
const std::streamoff size = in.tellg();
in.seekg(0, std::ios::beg);
if (size <= 0) Fail(absl::StrCat("ioc import: ", o->file, " is empty"), 2);

auto stub = hooks.stub();
grpc::ClientContext context;
hooks.set_deadline(&context);
siper::v1::IocImportResponse r;
std::unique_ptr<grpc::ClientWriter<siper::v1::IocImportChunk>> writer =
    stub->ImportIocFeed(&context, &r);
siper::v1::IocImportChunk chunk;
siper::v1::IocImportHeader* header = chunk.mutable_header();
header->set_feed(o->feed);
header->set_format(o->format);
header->set_category(o->category);
if (o->confidence.has_value()) header->set_confidence(*o->confidence);
header->set_file_name(o->file);
auto progress = std::make_unique<Progress>(absl::StrCat("sending ", o->file));
std::string buffer(kChunkBytes, '\0');
uint64_t sent = 0;
bool ok = true;
while (ok && in) {
  in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  const std::streamsize n = in.gcount();
  if (n <= 0) break;
  chunk.set_data(buffer.data(), static_cast<size_t>(n));
  ok = writer->Write(chunk);
  chunk.clear_header();
  sent += static_cast<uint64_t>(n);
  progress->Update(sent, static_cast<uint64_t>(size));
}
if (in.bad()) {
  progress.reset();
  context.TryCancel();
  Fail(absl::StrCat("ioc import: error reading ", o->file, " after ", sent, " bytes"), 1);
}
writer->WritesDone();
progress = std::make_unique<Progress>("the server parses, stores and rebuilds its IOC set");
grpc::Status status = writer->Finish();
progress.reset();
hooks.check(status);
if (*hooks.json) {
  PrintJsonLine(std::cout,
                {{"feed", r.feed()},
                 {"format", r.format()},
                 {"file", o->file},
                 {"new", r.new_entries()},
                 {"updated", r.updated()},
                 {"removed", r.removed()},
                 {"unchanged", r.unchanged()},
                 {"invalid", r.invalid()},
                 {"duplicate", r.duplicate()},
                 {"invalid_samples",
                  std::vector<std::string>(r.invalid_samples().begin(), r.invalid_samples().end())},
                 {"entries", r.entries()},
                 {"entries_by_kind", ByKindJson(r.entries_by_kind())},
                 {"ioc_generation", r.ioc_generation()},
                 {"total_entries", r.total_entries()}});
  return;
}
std::cout << "feed " << EscapeForTerminal(r.feed()) << " (" << r.format() << ") from "
          << EscapeForTerminal(o->file) << ": " << r.entries() << " entries ("
          << ByKind(r.entries_by_kind()) << ")\n"
          << "  new " << r.new_entries() << ", updated " << r.updated() << ", removed "
          << r.removed() << ", unchanged " << r.unchanged() << ", invalid " << r.invalid()
          << ", duplicate " << r.duplicate() << "\n"
          << "  IOC set generation " << r.ioc_generation() << " is live with " << r.total_entries()
          << " entries over all feeds\n";
if (r.invalid() > 0) {
  std::cerr << "siperctl: " << r.invalid() << " invalid lines or records in "
            << EscapeForTerminal(o->file) << " were skipped; the first:\n";
  for (const std::string& s : r.invalid_samples()) {
    std::cerr << "  " << EscapeForTerminal(o->file) << ": " << EscapeForTerminal(s) << "\n";
  }
}
}  // namespace
);
}  // namespace siper::cli

void AddList(CLI::App& ioc, const OpsHooks& hooks) {
  CLI::App* list = ioc.add_subcommand("list", "list the imported feeds");
  list->callback([hooks] {
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    auto reader = stub->ListIocFeeds(&context, siper::v1::ListIocFeedsRequest());
    Table table({"FEED", "FORMAT", "ENTRIES", "IMPORTED", "BY", "BY KIND"});
    siper::v1::IocFeedInfo f;
    while (reader->Read(&f)) {
      if (*hooks.json) {
        PrintJsonLine(std::cout, {{"name", f.name()},
                                  {"format", f.format()},
                                  {"category", f.category()},
                                  {"confidence", f.confidence()},
                                  {"entries", f.entries()},
                                  {"entries_by_kind", ByKindJson(f.entries_by_kind())},
                                  {"imported", FormatTimeNs(f.imported_ns())},
                                  {"imported_by", f.imported_by()},
                                  {"file", f.file_name()},
                                  {"file_bytes", f.file_bytes()}});
      } else {
        table.AddRow({f.name(), f.format(), std::to_string(f.entries()),
                      FormatTimeNs(f.imported_ns()), f.imported_by(), ByKind(f.entries_by_kind())});
      }
    }
    hooks.check(reader->Finish());
    if (!*hooks.json) table.Print(std::cout);
  });
}

void AddRemove(CLI::App& ioc, const OpsHooks& hooks) {
  CLI::App* remove = ioc.add_subcommand("remove", "drop a feed and all its entries (admin)");
  auto feed = std::make_shared<std::string>();
  remove->add_option("--feed", *feed, "the feed to drop")->required();
  remove->callback([hooks, feed] {
    siper::v1::RemoveIocFeedRequest request;
    request.set_feed(*feed);
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::RemoveIocFeedResponse r;
    hooks.check(stub->RemoveIocFeed(&context, request, &r));
    if (*hooks.json) {
      PrintJsonLine(
          std::cout,
          {{"feed", *feed}, {"removed", r.removed()}, {"ioc_generation", r.ioc_generation()}});
    } else {
      std::cout << "removed feed " << EscapeForTerminal(*feed) << ": " << r.removed()
                << " entries; IOC set generation " << r.ioc_generation() << " is live\n";
    }
  });
}

void AddCheck(CLI::App& ioc, const OpsHooks& hooks) {
  CLI::App* check = ioc.add_subcommand(
      "check", "look a domain, URL, IP address or hash up in the server's live IOC set");
  auto value = std::make_shared<std::string>();
  check->add_option("VALUE", *value, "domain (parents count), URL, IP address or hash")->required();
  check->footer("Prints one row per feed entry that matches; nothing matched is not an error.");
  check->callback([hooks, value] {
    siper::v1::CheckIocRequest request;
    request.set_value(*value);
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::CheckIocResponse r;
    hooks.check(stub->CheckIoc(&context, request, &r));
    if (*hooks.json) {
      for (const siper::v1::IocHitInfo& h : r.hits()) {
        PrintJsonLine(std::cout, {{"value", r.value()},
                                  {"looked_up_as", r.looked_up_as()},
                                  {"feed", h.feed()},
                                  {"entry", h.entry()},
                                  {"kind", h.kind()},
                                  {"category", h.category()},
                                  {"confidence", h.confidence()},
                                  {"criticality", h.criticality()},
                                  {"matched", h.matched()},
                                  {"comment", h.comment()}});
      }
      return;
    }
    if (r.hits().empty()) {
      std::cout << EscapeForTerminal(r.value()) << ": not in any feed (looked up as "
                << r.looked_up_as() << ")\n";
      return;
    }
    Table table({"FEED", "ENTRY", "KIND", "CATEGORY", "CONFIDENCE", "COMMENT"});
    for (const siper::v1::IocHitInfo& h : r.hits()) {
      table.AddRow({h.feed(), h.entry(), h.kind(), h.category(), std::to_string(h.confidence()),
                    h.comment()});
    }
    table.Print(std::cout);
  });
}

}  // namespace

std::string IocSummary(const google::protobuf::Map<std::string, std::string>& fields) {
  auto get = [&](const char* name) {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  };
  const std::string feed = get("threat.feed.name");
  const std::string value = get("threat.indicator.value");
  if (feed.empty() && value.empty()) return "";
  std::string out = absl::StrCat(feed, ": ", value);
  if (const std::string category = get("threat.indicator.category"); !category.empty()) {
    absl::StrAppend(&out, " (", category, ")");
  }
  return out;
}

void AddIocCommands(CLI::App& app, const OpsHooks& hooks) {
  CLI::App* ioc = app.add_subcommand(
      "ioc", "indicator feeds: USOM's list, hash lists, C2 lists (import, list, remove, check)");
  ioc->require_subcommand(1);
  AddImport(*ioc, hooks);
  AddList(*ioc, hooks);
  AddRemove(*ioc, hooks);
  AddCheck(*ioc, hooks);
}

void AddRulesReload(CLI::App& rules, const OpsHooks& hooks) {
  CLI::App* reload = rules.add_subcommand(
      "reload",
      "make the server re-read its rules folder and swap the rule set in (admin); a set with "
      "errors is refused and every error printed");
  reload->callback([hooks] {
    auto stub = hooks.stub();
    grpc::ClientContext context;
    hooks.set_deadline(&context);
    siper::v1::ReloadRulesResponse r;
    hooks.check(stub->ReloadRules(&context, siper::v1::ReloadRulesRequest(), &r));
    if (*hooks.json) {
      PrintJsonLine(std::cout, {{"generation", r.generation()},
                                {"rules", r.rules()},
                                {"log_sources", r.log_sources()},
                                {"databases", r.databases()},
                                {"cache_hits", r.cache_hits()},
                                {"unsupported", r.unsupported()},
                                {"took_ms", r.took_ms()},
                                {"rules_dir", r.rules_dir()}});
    } else {
      std::cout << "rule set generation " << r.generation() << " is live: " << r.rules()
                << " rules from " << EscapeForTerminal(r.rules_dir()) << " (" << r.databases()
                << " databases, " << r.cache_hits() << " from the cache, " << r.unsupported()
                << " unsupported rules skipped) in " << r.took_ms() << " ms\n";
    }
  });
}

}  // namespace siper::cli

#include "rules/fim.h"

#include <cstdio>

#include "absl/time/time.h"
#include "rules/decoder.h"
#include "rules/strutil.h"

namespace siper::rules {
namespace {

struct ChangeName {
  FileChange change;
  std::string_view name;
  std::string_view wire;
  std::string_view ecs_type;  // event.type
};

constexpr ChangeName kChanges[] = {
    {FileChange::kUnknown, "unknown", "FILE_CHANGE_UNSPECIFIED", "info"},
    {FileChange::kBaseline, "baseline", "FILE_CHANGE_BASELINE", "info"},
    {FileChange::kAdded, "added", "FILE_CHANGE_ADDED", "creation"},
    {FileChange::kModified, "modified", "FILE_CHANGE_MODIFIED", "change"},
    {FileChange::kDeleted, "deleted", "FILE_CHANGE_DELETED", "deletion"},
    {FileChange::kAttributes, "attributes", "FILE_CHANGE_ATTRIBUTES", "change"},
};

const ChangeName& Lookup(FileChange change) {
  for (const ChangeName& c : kChanges) {
    if (c.change == change) return c;
  }
  return kChanges[0];
}

// Splits on the last '/' (or '\\' for Windows paths, which have no '/').
size_t LastSeparator(std::string_view path) {
  const char sep =
      path.find('/') == std::string_view::npos && path.find('\\') != std::string_view::npos ? '\\'
                                                                                            : '/';
  return path.rfind(sep);
}

}  // namespace

std::string_view FileChangeName(FileChange change) { return Lookup(change).name; }

absl::StatusOr<FileChange> ParseFileChange(std::string_view name) {
  for (const ChangeName& c : kChanges) {
    if (strutil::EqualsIgnoreCase(name, c.name) || name == c.wire) return c.change;
  }
  return absl::InvalidArgumentError(
      strutil::StrCat("unknown file change '", name,
                      "' (expected added, modified, deleted, attributes or baseline)"));
}

void FileObservationFields(const FileObservation& file, std::map<std::string, std::string>* out) {
  auto& f = *out;
  const ChangeName& change = Lookup(file.change);
  f["file.path"] = file.path;
  const size_t sep = LastSeparator(file.path);
  if (sep != std::string_view::npos) {
    // "/etc" for "/etc/passwd", "/" for "/vmlinuz".
    f["file.directory"] = file.path.substr(0, sep == 0 ? 1 : sep);
    f["file.name"] = file.path.substr(sep + 1);
  } else {
    f["file.name"] = file.path;
  }
  const std::string& name = f["file.name"];
  if (size_t dot = name.rfind('.'); dot != std::string::npos && dot > 0 && dot + 1 < name.size()) {
    f["file.extension"] = name.substr(dot + 1);
  }
  f["file.size"] = strutil::StrCat(file.size);
  const uint32_t perm = file.mode & 07777;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", perm);
  f["file.mode"] = mode;
  f["file.setuid"] = (perm & 04000) != 0 ? "true" : "false";
  f["file.setgid"] = (perm & 02000) != 0 ? "true" : "false";
  f["file.uid"] = strutil::StrCat(file.uid);
  f["file.gid"] = strutil::StrCat(file.gid);
  if (!file.owner.empty()) f["file.owner"] = file.owner;
  if (!file.group.empty()) f["file.group"] = file.group;
  if (!file.sha256.empty()) f["file.hash.sha256"] = strutil::AsciiStrToLower(file.sha256);
  if (file.mtime_ns != 0) {
    f["file.mtime"] = absl::FormatTime(absl::RFC3339_full, absl::FromUnixNanos(file.mtime_ns),
                                       absl::UTCTimeZone());
  }
  f["event.action"] = std::string(change.name);
  f["event.category"] = "file";
  f["event.type"] = std::string(change.ecs_type);
  f["event.module"] = "fim";
}

void DecodeFileObservation(const FileObservation& file, Event* event) {
  event->Clear();
  std::map<std::string, std::string> fields;
  FileObservationFields(file, &fields);
  for (const auto& [k, v] : fields) event->fields.insert_or_assign(k, v);
  event->raw = file.path;
  event->products.AddLiteral("siper");
  event->services.AddLiteral("fim");
  if (file.change != FileChange::kBaseline && file.change != FileChange::kUnknown) {
    event->categories.AddLiteral("file_change");
  }
  event->time_unix_ns = file.time_ns;
}

}  // namespace siper::rules

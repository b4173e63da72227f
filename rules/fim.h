// File-integrity (FIM) observations as detection events: one field mapping and
// one log source, shared by the server's ingest and by rule tests
// (`siperctl rules test`), so a FIM rule tested offline behaves the same live.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace siper::rules {

struct Event;

// What the agent saw happen to a file (the wire's siper.v1.FileChange).
enum class FileChange : uint8_t {
  kUnknown = 0,
  kBaseline = 1,  // first scan of a folder: an inventory entry, not a change
  kAdded = 2,
  kModified = 3,  // content (SHA-256) changed
  kDeleted = 4,
  kAttributes = 5,  // mode, owner or group changed, content the same
};

// "baseline", "added", "modified", "deleted", "attributes" ("unknown" for kUnknown):
// the event.action of a FIM event.
std::string_view FileChangeName(FileChange change);
// Reads those names (any case) and the wire names (FILE_CHANGE_MODIFIED ...).
[[nodiscard]] absl::StatusOr<FileChange> ParseFileChange(std::string_view name);

// One FIM observation, independent of the wire format.
struct FileObservation {
  std::string path;
  FileChange change = FileChange::kUnknown;
  uint64_t size = 0;
  uint32_t mode = 0644;  // st_mode; only the permission bits (07777) are used
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string owner;     // user name, when the agent could resolve it
  std::string group;     // group name, likewise
  std::string sha256;    // lower-case hex; empty for deleted files
  int64_t mtime_ns = 0;  // 0 when unknown
  int64_t time_ns = 0;   // when the agent observed it (event time); 0 when unknown
};

// The fields of a FIM event (ECS names, documented in docs/sigma-support.md):
// file.path, file.name, file.directory, file.extension, file.size, file.mode
// (octal text, "0644", as ECS defines it), file.setuid / file.setgid
// ("true"/"false"), file.uid, file.gid, file.owner, file.group,
// file.hash.sha256, file.mtime, event.action (FileChangeName), event.category
// "file", event.type (creation, change, deletion, info), event.module "fim".
void FileObservationFields(const FileObservation& file, std::map<std::string, std::string>* out);

// Fills a detection event: the fields above, and the log source
// product "siper", service "fim", plus category "file_change" for every
// change except a baseline observation (so rules on file_change never fire on
// the first scan's inventory). The event's raw text is the path.
void DecodeFileObservation(const FileObservation& file, Event* event);

}  // namespace siper::rules

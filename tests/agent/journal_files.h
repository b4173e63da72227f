// Real journal files for tests, without a running journald:
// systemd-journal-remote (Debian package systemd-journal-remote) turns the
// journal export format read from stdin into a .journal file; a second call
// on the same file appends to it.
#pragma once

#include <stdio.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace siper::agent::testing {

inline constexpr char kJournalRemote[] = "/lib/systemd/systemd-journal-remote";

inline bool HaveJournalRemote() { return access(kJournalRemote, X_OK) == 0; }

struct JournalEntry {
  int64_t realtime_us = 0;
  std::vector<std::pair<std::string, std::string>> fields;  // FIELD, value
};

// The export format of `entries` (text fields only, no newline in values).
inline std::string JournalExport(const std::vector<JournalEntry>& entries) {
  std::string out;
  for (const JournalEntry& entry : entries) {
    absl::StrAppend(&out, "__REALTIME_TIMESTAMP=", entry.realtime_us, "\n",
                    "__MONOTONIC_TIMESTAMP=", entry.realtime_us, "\n",
                    "_BOOT_ID=0123456789abcdef0123456789abcdef\n");
    for (const auto& [field, value] : entry.fields) absl::StrAppend(&out, field, "=", value, "\n");
    out += "\n";
  }
  return out;
}

// Appends `entries` to `file` (created when missing); true on success.
inline bool WriteJournal(const std::filesystem::path& file,
                         const std::vector<JournalEntry>& entries) {
  const std::string command =
      absl::StrCat(kJournalRemote, " -o '", file.string(), "' - 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "w");
  if (pipe == nullptr) return false;
  const std::string data = JournalExport(entries);
  const bool written = fwrite(data.data(), 1, data.size(), pipe) == data.size();
  return pclose(pipe) == 0 && written;
}

// An sshd-like entry of unit `unit` with message `message`.
inline JournalEntry SyslogEntry(int64_t realtime_us, const std::string& ident, int pid,
                                const std::string& unit, const std::string& message) {
  JournalEntry entry;
  entry.realtime_us = realtime_us;
  entry.fields = {{"_HOSTNAME", "pc1"},
                  {"SYSLOG_IDENTIFIER", ident},
                  {"_PID", std::to_string(pid)},
                  {"_SYSTEMD_UNIT", unit},
                  {"MESSAGE", message}};
  return entry;
}

}  // namespace siper::agent::testing

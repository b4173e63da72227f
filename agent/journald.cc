#include "agent/journald.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

constexpr int kStateVersion = 1;

const std::string* Field(const std::vector<std::pair<std::string, std::string>>& fields,
                         std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return &value;
  }
  return nullptr;
}

// A token of the syslog header: no spaces (they would shift the fields the
// decoder reads), never empty.
std::string HeaderToken(const std::string* value, std::string_view fallback) {
  std::string out = value != nullptr && !value->empty() ? *value : std::string(fallback);
  for (char& c : out) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') c = '_';
  }
  return out;
}

}  // namespace

std::string JournalEntryLine(int64_t realtime_us,
                             const std::vector<std::pair<std::string, std::string>>& fields,
                             const std::string& default_host) {
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00",
                                      absl::FromUnixMicros(realtime_us), absl::UTCTimeZone());
  line.push_back(' ');
  line +=
      HeaderToken(Field(fields, "_HOSTNAME"), default_host.empty() ? "localhost" : default_host);
  line.push_back(' ');
  const std::string* ident = Field(fields, "SYSLOG_IDENTIFIER");
  if (ident == nullptr || ident->empty()) ident = Field(fields, "_COMM");
  std::string tag = HeaderToken(ident, "journal");
  // The decoder's tag ends at ':' or a space.
  for (char& c : tag) {
    if (c == ':' || c == '[') c = '_';
  }
  line += tag;
  const std::string* pid = Field(fields, "SYSLOG_PID");
  if (pid == nullptr || pid->empty()) pid = Field(fields, "_PID");
  if (pid != nullptr && !pid->empty()) absl::StrAppend(&line, "[", HeaderToken(pid, ""), "]");
  line += ": ";
  // A line has no line end: a multi-line message keeps its lines, joined the
  // way rsyslog escapes control characters.
  const std::string* message = Field(fields, "MESSAGE");
  if (message != nullptr) {
    std::string_view text = *message;
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    for (char c : text) {
      if (c == '\n') {
        line += "#012";
      } else {
        line.push_back(c);
      }
    }
  }
  return line;
}

std::string JournalEntrySource(const std::vector<std::pair<std::string, std::string>>& fields) {
  for (std::string_view name : {"_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_COMM"}) {
    if (const std::string* value = Field(fields, name); value != nullptr && !value->empty()) {
      return absl::StrCat("journald:", *value);
    }
  }
  return "journald:unknown";
}

JournalReader::JournalReader(JournaldInput input, std::filesystem::path state_path,
                             std::string agent_id, PendingEvents* pending, JournalOptions options)
    : input_(std::move(input)),
      state_path_(std::move(state_path)),
      agent_id_(std::move(agent_id)),
      pending_(pending),
      options_(std::move(options)) {}

JournalReader::~JournalReader() {
  if (journal_ != nullptr) sd_journal_close(journal_);
}

absl::Status JournalReader::Open() {
  int r = 0;
  if (input_.directory.empty()) {
    r = sd_journal_open(&journal_, SD_JOURNAL_LOCAL_ONLY);
  } else {
    r = sd_journal_open_directory(&journal_, input_.directory.c_str(), 0);
  }
  if (r < 0) {
    journal_ = nullptr;
    return absl::UnavailableError(
        absl::StrCat("cannot open the journal",
                     input_.directory.empty() ? "" : " in " + input_.directory.string(), ": ",
                     std::strerror(-r)));
  }
  for (const std::string& match : input_.matches) {
    r = sd_journal_add_match(journal_, match.data(), match.size());
    if (r < 0) {
      sd_journal_close(journal_);
      journal_ = nullptr;
      return absl::InvalidArgumentError(
          absl::StrCat("journal match '", match, "': ", std::strerror(-r)));
    }
  }
  // Bounds what one field may cost in memory; a longer MESSAGE is cut anyway.
  (void)sd_journal_set_data_threshold(journal_, options_.max_line_bytes + 64);
  fd_ = sd_journal_get_fd(journal_);  // also turns on inotify inside sd-journal
  if (fd_ < 0) fd_ = -1;
  return absl::OkStatus();
}

bool JournalReader::Next() {
  if (current_unread_) {
    current_unread_ = false;
    return true;
  }
  const int r = sd_journal_next(journal_);
  if (r < 0) {
    spdlog::warn("journald: reading the next entry: {}", std::strerror(-r));
    return false;
  }
  return r > 0;
}

std::string JournalReader::CurrentCursor() {
  char* cursor = nullptr;
  if (sd_journal_get_cursor(journal_, &cursor) < 0 || cursor == nullptr) return {};
  std::string out(cursor);
  free(cursor);  // NOLINT(cppcoreguidelines-no-malloc): sd-journal allocates it
  return out;
}

void JournalReader::SeekAfter(const std::string& cursor) {
  current_unread_ = false;
  if (cursor.empty()) {
    sd_journal_seek_head(journal_);
    return;
  }
  if (sd_journal_seek_cursor(journal_, cursor.c_str()) < 0 || sd_journal_next(journal_) <= 0) {
    return;  // nothing at or after it yet: the next entry written is next
  }
  if (sd_journal_test_cursor(journal_, cursor.c_str()) <= 0) {
    // The entry itself is gone (vacuumed or rotated away while we were
    // stopped); we stand on the first one after it, which is not read yet.
    spdlog::warn("journald: the entry at the saved cursor is gone; continuing with the next one");
    current_unread_ = true;
  }
}

v1::Event JournalReader::CurrentEvent(int64_t now_ns) {
  std::vector<std::pair<std::string, std::string>> fields;
  const void* data = nullptr;
  size_t length = 0;
  sd_journal_restart_data(journal_);
  while (sd_journal_enumerate_data(journal_, &data, &length) > 0) {
    std::string_view item(static_cast<const char*>(data), length);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = item.substr(0, eq);
    if (name != "MESSAGE" && name != "_HOSTNAME" && name != "SYSLOG_IDENTIFIER" &&
        name != "_COMM" && name != "SYSLOG_PID" && name != "_PID" && name != "_SYSTEMD_UNIT") {
      continue;
    }
    fields.emplace_back(std::string(name), std::string(item.substr(eq + 1)));
  }
  uint64_t realtime_us = 0;
  if (sd_journal_get_realtime_usec(journal_, &realtime_us) < 0) {
    realtime_us = static_cast<uint64_t>(now_ns / 1000);
  }
  v1::Event event;
  event.set_agent_id(agent_id_);
  event.set_agent_time_ns(now_ns);
  v1::LogEvent* log = event.mutable_log();
  log->set_source(JournalEntrySource(fields));
  std::string line = JournalEntryLine(static_cast<int64_t>(realtime_us), fields, options_.hostname);
  if (line.size() > options_.max_line_bytes) {
    line.resize(options_.max_line_bytes);
    log->set_truncated(true);
  }
  log->set_line(std::move(line));
  return event;
}

bool JournalReader::ReleaseAcked() {
  const uint64_t released = std::max(pending_->AckedSeq(), pending_->DurableSeq());
  if (released <= released_seq_) return false;
  released_seq_ = released;
  bool changed = false;
  while (!runs_.empty() && runs_.front().first_seq + runs_.front().count - 1 <= released_seq_) {
    cursor_ = std::move(runs_.front().last_cursor);
    runs_.pop_front();
    changed = true;
  }
  dirty_ = dirty_ || changed;
  return changed;
}

absl::Status JournalReader::Persist() {
  nlohmann::json runs = nlohmann::json::array();
  for (const Run& run : runs_) {
    runs.push_back({{"seq", run.first_seq}, {"count", run.count}, {"cursor", run.last_cursor}});
  }
  const nlohmann::json doc = {{"version", kStateVersion},
                              {"directory", input_.directory.string()},
                              {"matches", input_.matches},
                              {"cursor", cursor_},
                              {"runs", std::move(runs)}};
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(state_path_, doc.dump(1), 0600));
  dirty_ = false;
  last_persist_ = absl::Now();
  return absl::OkStatus();
}

absl::Status JournalReader::Recover(std::vector<v1::Event>* out) {
  std::error_code ec;
  bool have_state = std::filesystem::exists(state_path_, ec);
  std::vector<std::string> saved_matches;
  std::string saved_directory;
  if (have_state) {
    SIPER_ASSIGN_OR_RETURN(std::string text, siper::ReadFile(state_path_));
    try {
      const nlohmann::json doc = nlohmann::json::parse(text);
      if (doc.at("version").get<int>() != kStateVersion) {
        return absl::FailedPreconditionError(
            absl::StrCat(state_path_.string(), ": unsupported version ", doc.at("version").dump()));
      }
      saved_directory = doc.at("directory").get<std::string>();
      saved_matches = doc.at("matches").get<std::vector<std::string>>();
      cursor_ = doc.at("cursor").get<std::string>();
      for (const nlohmann::json& r : doc.at("runs")) {
        runs_.push_back({r.at("seq").get<uint64_t>(), r.at("count").get<uint64_t>(),
                         r.at("cursor").get<std::string>()});
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::DataLossError(absl::StrCat(state_path_.string(), ": ", e.what(),
                                              "; move the file away to start afresh"));
    }
  }
  if (absl::Status status = Open(); !status.ok()) {
    // Said once; the agent runs on without the journal (a host without
    // journald, a container, a directory not there).
    spdlog::warn("journald: {}; journal collection is off", std::string(status.message()));
    return absl::OkStatus();
  }
  if (have_state &&
      (saved_directory != input_.directory.string() || saved_matches != input_.matches)) {
    if (!runs_.empty()) {
      spdlog::warn(
          "journald: directory or matches changed since the last run; {} unacknowledged runs "
          "cannot be re-read with the new selection",
          runs_.size());
      runs_.clear();
    }
  }
  ReleaseAcked();
  if (!have_state) {
    if (input_.start == StartAt::kEnd) {
      // Start after the newest entry; remember it, so a restart continues here.
      sd_journal_seek_tail(journal_);
      if (sd_journal_previous(journal_) > 0) cursor_ = CurrentCursor();
      read_cursor_ = cursor_;
    } else {
      sd_journal_seek_head(journal_);
    }
    dirty_ = true;
    spdlog::info("journald: reading from the {}{}",
                 input_.start == StartAt::kEnd ? "end" : "beginning",
                 input_.directory.empty() ? "" : " of " + input_.directory.string());
    return absl::OkStatus();
  }
  SeekAfter(cursor_);
  // Read the runs again: entries come back in the same order, so they get the
  // seqs they had. Those durably spooled or acknowledged are skipped.
  const int64_t now = absl::ToUnixNanos(absl::Now());
  size_t reread = 0;
  std::deque<Run> kept;
  for (const Run& run : runs_) {
    uint64_t i = 0;
    std::vector<v1::Event> events;
    for (; i < run.count && Next(); ++i) {
      const uint64_t seq = run.first_seq + i;
      if (seq <= released_seq_) continue;
      v1::Event event = CurrentEvent(now);
      event.set_seq(seq);
      events.push_back(std::move(event));
    }
    if (i != run.count || CurrentCursor() != run.last_cursor) {
      spdlog::error(
          "journald: the journal changed since seqs {}..{} were read (vacuumed or rotated?); "
          "the unacknowledged entries from there on cannot be re-read",
          run.first_seq, run.first_seq + run.count - 1);
      SeekAfter(runs_.back().last_cursor);
      break;
    }
    reread += events.size();
    for (v1::Event& event : events) out->push_back(std::move(event));
    kept.push_back(run);
  }
  runs_ = std::move(kept);
  read_cursor_ = runs_.empty() ? cursor_ : runs_.back().last_cursor;
  spdlog::info("journald: resuming{}; {} unacknowledged entries re-read",
               cursor_.empty() ? " from the beginning" : " after the saved cursor", reread);
  return absl::OkStatus();
}

absl::StatusOr<size_t> JournalReader::Poll(size_t max_events, size_t max_bytes,
                                           const SeqReserver& reserve) {
  if (journal_ == nullptr) return 0;
  ReleaseAcked();
  if (fd_ >= 0) (void)sd_journal_process(journal_);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  std::vector<v1::Event> events;
  size_t bytes = 0;
  std::string last_cursor;
  while (events.size() < max_events && bytes < max_bytes && Next()) {
    events.push_back(CurrentEvent(now));
    bytes += events.back().log().line().size();
    last_cursor = CurrentCursor();
  }
  auto rewind = [&] {
    // Read again next round from the last entry handed on.
    if (read_cursor_.empty()) {
      SeekAfter(std::string());
    } else {
      SeekAfter(read_cursor_);
    }
  };
  if (events.empty()) {
    if (dirty_ && absl::Now() - last_persist_ >= options_.persist_interval) {
      SIPER_RETURN_IF_ERROR(Persist());
    }
    return 0;
  }
  if (last_cursor.empty()) {
    rewind();
    return absl::InternalError("journald: cannot get the cursor of an entry");
  }
  absl::StatusOr<uint64_t> first = reserve(events.size());
  if (!first.ok()) {
    rewind();
    return first.status();
  }
  for (size_t i = 0; i < events.size(); ++i) events[i].set_seq(*first + i);
  const Run run{*first, events.size(), last_cursor};
  runs_.push_back(run);
  if (absl::Status status = Persist(); !status.ok()) {
    // Those seqs stay unused (a gap the server does not mind); the entries are
    // read again and numbered anew next round.
    runs_.pop_back();
    rewind();
    return status;
  }
  read_cursor_ = last_cursor;
  const size_t count = events.size();
  pending_->Append(std::move(events));
  return count;
}

absl::Status JournalReader::Checkpoint() {
  if (journal_ == nullptr) return absl::OkStatus();
  ReleaseAcked();
  return Persist();
}

}  // namespace siper::agent

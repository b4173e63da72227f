#include "agent/journald.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/identity.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

// libsystemd is opened when the journald collector is enabled, not linked:
// an agent without it does not map libsystemd and the libraries it pulls in
// (libgcrypt, liblzma, libzstd, liblz4, libcap, libgpg-error), about 1 MiB of
// resident pages for nothing. sd-journal.h gives the types and signatures.
struct SdJournalApi {
  bool loaded = false;
  std::string error;
  decltype(&::sd_journal_add_match) add_match = nullptr;
  decltype(&::sd_journal_close) close = nullptr;
  decltype(&::sd_journal_enumerate_data) enumerate_data = nullptr;
  decltype(&::sd_journal_get_cursor) get_cursor = nullptr;
  decltype(&::sd_journal_get_fd) get_fd = nullptr;
  decltype(&::sd_journal_get_realtime_usec) get_realtime_usec = nullptr;
  decltype(&::sd_journal_next) next = nullptr;
  decltype(&::sd_journal_open) open = nullptr;
  decltype(&::sd_journal_open_directory) open_directory = nullptr;
  decltype(&::sd_journal_previous) previous = nullptr;
  decltype(&::sd_journal_process) process = nullptr;
  decltype(&::sd_journal_restart_data) restart_data = nullptr;
  decltype(&::sd_journal_seek_cursor) seek_cursor = nullptr;
  decltype(&::sd_journal_seek_head) seek_head = nullptr;
  decltype(&::sd_journal_seek_tail) seek_tail = nullptr;
  decltype(&::sd_journal_set_data_threshold) set_data_threshold = nullptr;
  decltype(&::sd_journal_test_cursor) test_cursor = nullptr;
};

const SdJournalApi& Sd() {
  static const SdJournalApi api = [] {
    SdJournalApi api;
    void* lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      api.error = why != nullptr ? why : "libsystemd.so.0 not found";
      return api;
    }
    bool ok = true;
    auto Load = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (fn == nullptr) {
        ok = false;
        api.error = absl::StrCat("libsystemd.so.0 has no ", name);
      }
    };
    Load(api.add_match, "sd_journal_add_match");
    Load(api.close, "sd_journal_close");
    Load(api.enumerate_data, "sd_journal_enumerate_data");
    Load(api.get_cursor, "sd_journal_get_cursor");
    Load(api.get_fd, "sd_journal_get_fd");
    Load(api.get_realtime_usec, "sd_journal_get_realtime_usec");
    Load(api.next, "sd_journal_next");
    Load(api.open, "sd_journal_open");
    Load(api.open_directory, "sd_journal_open_directory");
    Load(api.previous, "sd_journal_previous");
    Load(api.process, "sd_journal_process");
    Load(api.restart_data, "sd_journal_restart_data");
    Load(api.seek_cursor, "sd_journal_seek_cursor");
    Load(api.seek_head, "sd_journal_seek_head");
    Load(api.seek_tail, "sd_journal_seek_tail");
    Load(api.set_data_threshold, "sd_journal_set_data_threshold");
    Load(api.test_cursor, "sd_journal_test_cursor");
    api.loaded = ok;
    return api;
  }();
  return api;
}

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
  if (journal_ != nullptr) Sd().close(journal_);
}

absl::Status JournalReader::Open() {
  if (!Sd().loaded) {
    return absl::UnavailableError(absl::StrCat("cannot load libsystemd: ", Sd().error));
  }
  int r = 0;
  if (input_.directory.empty()) {
    r = Sd().open(&journal_, SD_JOURNAL_LOCAL_ONLY);
  } else {
    r = Sd().open_directory(&journal_, input_.directory.c_str(), 0);
  }
  if (r < 0) {
    journal_ = nullptr;
    return absl::UnavailableError(
        absl::StrCat("cannot open the journal",
                     input_.directory.empty() ? "" : " in " + input_.directory.string(), ": ",
                     std::strerror(-r)));
  }
  for (const std::string& match : input_.matches) {
    r = Sd().add_match(journal_, match.data(), match.size());
    if (r < 0) {
      Sd().close(journal_);
      journal_ = nullptr;
      return absl::InvalidArgumentError(
          absl::StrCat("journal match '", match, "': ", std::strerror(-r)));
    }
  }
  // Bounds what one field may cost in memory; a longer MESSAGE is cut anyway.
  (void)Sd().set_data_threshold(journal_, options_.max_line_bytes + 64);
  fd_ = Sd().get_fd(journal_);  // also turns on inotify inside sd-journal
  if (fd_ < 0) fd_ = -1;
  return absl::OkStatus();
}

bool JournalReader::Next() {
  if (current_unread_) {
    current_unread_ = false;
    return true;
  }
  const int r = Sd().next(journal_);
  if (r < 0) {
    spdlog::warn("journald: reading the next entry: {}", std::strerror(-r));
    return false;
  }
  return r > 0;
}

std::string JournalReader::CurrentCursor() {
  char* cursor = nullptr;
  if (Sd().get_cursor(journal_, &cursor) < 0 || cursor == nullptr) return {};
  std::string out(cursor);
  free(cursor);  // NOLINT(cppcoreguidelines-no-malloc): sd-journal allocates it
  return out;
}

void JournalReader::SeekAfter(const std::string& cursor) {
  current_unread_ = false;
  if (cursor.empty()) {
    Sd().seek_head(journal_);
    return;
  }
  if (Sd().seek_cursor(journal_, cursor.c_str()) < 0 || Sd().next(journal_) <= 0) {
    return;  // nothing at or after it yet: the next entry written is next
  }
  if (Sd().test_cursor(journal_, cursor.c_str()) <= 0) {
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
  Sd().restart_data(journal_);
  while (Sd().enumerate_data(journal_, &data, &length) > 0) {
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
  if (Sd().get_realtime_usec(journal_, &realtime_us) < 0) {
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
      Sd().seek_tail(journal_);
      if (Sd().previous(journal_) > 0) cursor_ = CurrentCursor();
      read_cursor_ = cursor_;
    } else {
      Sd().seek_head(journal_);
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
  if (fd_ >= 0) (void)Sd().process(journal_);
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

#include "agent/log_tailer.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

constexpr size_t kChunkBytes = size_t{256} * 1024;  // must exceed max_line_bytes
constexpr int kOffsetsVersion = 1;
constexpr uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

// FNV-1a: stable across builds and platforms, which std::hash is not.
uint64_t Fnv1a(const char* data, size_t size) {
  uint64_t hash = kFnvOffset;
  for (size_t i = 0; i < size; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= kFnvPrime;
  }
  return hash;
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Reads exactly `size` bytes at `offset` unless the file is shorter; returns bytes read.
absl::StatusOr<size_t> PreadFull(int fd, char* buf, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, buf + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

std::vector<std::string> ExpandGlob(const std::string& pattern) {
  std::vector<std::string> paths;
  glob_t matches{};
  if (glob(pattern.c_str(), GLOB_NOSORT, nullptr, &matches) == 0) {
    for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  }
  globfree(&matches);
  std::sort(paths.begin(), paths.end());
  return paths;
}

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// Like WriteFileAtomic (temporary file, fsync, rename) but without the
// directory's fsync: the spool fsyncs the directory before its next
// fdatasync (SpoolOptions::sync_directory_first), which is soon enough.
absl::Status WriteFileAtomicNoDirSync(const std::filesystem::path& path, std::string_view data,
                                      mode_t mode) {
  std::filesystem::path tmp = path;
  tmp += absl::StrCat(".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("cannot create", tmp.string());
  if (fchmod(fd, mode) != 0) {
    const absl::Status status = ErrnoError("cannot chmod", tmp.string());
    close(fd);
    return status;
  }
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const absl::Status status = ErrnoError("cannot write", tmp.string());
      close(fd);
      unlink(tmp.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const absl::Status status = ErrnoError("cannot fsync", tmp.string());
    close(fd);
    unlink(tmp.c_str());
    return status;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const absl::Status status = ErrnoError("cannot rename into place", path.string());
    unlink(tmp.c_str());
    return status;
  }
  return absl::OkStatus();
}

}  // namespace

struct LogTailer::TrackedFile {
  std::string path;  // where the file was last seen; the events' source
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t fp_len = 0;  // fingerprint: FNV-1a of the first fp_len bytes
  uint64_t fp_hash = kFnvOffset;
  uint64_t acked_offset = 0;  // every line before this is acknowledged or skipped
  uint64_t read_offset = 0;   // the next line starts here
  std::deque<Run> runs;       // numbered, not yet acknowledged, ascending
  int fd = -1;                // open while followed
  bool seen = false;          // matched by a glob in this scan
  bool rotated = false;       // its path now names another file, or nothing
  int idle_polls = 0;
  uint64_t last_size = 0;
  // A line longer than the cap whose end is not written yet: where it starts
  // and how far it was searched for a newline, so it is not searched again.
  uint64_t long_line_start = UINT64_MAX;
  uint64_t long_line_scanned = 0;

  ~TrackedFile() {
    if (fd >= 0) close(fd);
  }
};

LogTailer::LogTailer(std::vector<LogInput> inputs, std::filesystem::path offsets_path,
                     std::string agent_id, PendingEvents* pending, TailerOptions options)
    : inputs_(std::move(inputs)),
      offsets_path_(std::move(offsets_path)),
      agent_id_(std::move(agent_id)),
      pending_(pending),
      options_(options),
      buffer_(std::max(kChunkBytes, options.max_line_bytes * 2)) {}

LogTailer::~LogTailer() = default;

bool LogTailer::IsConfigured(const std::string& path) const {
  return std::any_of(inputs_.begin(), inputs_.end(), [&](const LogInput& input) {
    return fnmatch(input.path.c_str(), path.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0;
  });
}

size_t LogTailer::open_files() const {
  return std::count_if(files_.begin(), files_.end(),
                       [](const auto& file) { return file->fd >= 0; });
}

absl::StatusOr<bool> LogTailer::FingerprintMatches(int fd, uint64_t fp_len, uint64_t fp_hash) {
  std::string head(fp_len, '\0');
  SIPER_ASSIGN_OR_RETURN(size_t n, PreadFull(fd, head.data(), head.size(), 0));
  return n == fp_len && Fnv1a(head.data(), n) == fp_hash;
}

void LogTailer::UpdateFingerprint(TrackedFile& file, uint64_t size) {
  const uint64_t want = std::min<uint64_t>(size, options_.fingerprint_bytes);
  if (want <= file.fp_len) return;
  std::string head(want, '\0');
  auto n = PreadFull(file.fd, head.data(), head.size(), 0);
  if (!n.ok() || *n != want) return;
  file.fp_len = want;
  file.fp_hash = Fnv1a(head.data(), want);
  dirty_ = true;
}

void LogTailer::ResetForNewContent(TrackedFile& file, const char* why) {
  spdlog::warn("{}: {}; reading it again from the beginning", file.path, why);
  // Numbered lines of the old content stay pending in memory, but they can no
  // longer be re-read after a restart, so they are not persisted as runs.
  if (!file.runs.empty()) {
    uint64_t lines = 0;
    for (const Run& run : file.runs) lines += run.count;
    spdlog::warn("{}: {} unacknowledged lines of the old content survive only in memory", file.path,
                 lines);
  }
  file.runs.clear();
  file.acked_offset = 0;
  file.read_offset = 0;
  file.fp_len = 0;
  file.fp_hash = kFnvOffset;
  file.long_line_start = UINT64_MAX;
  file.long_line_scanned = 0;
  file.last_size = 0;
  dirty_ = true;
}

absl::StatusOr<uint64_t> LogTailer::EndOffset(int fd, uint64_t size) {
  // Start after the last complete line, so a line being written now is sent whole.
  const uint64_t window = std::min<uint64_t>(size, options_.max_line_bytes);
  std::string tail(window, '\0');
  SIPER_ASSIGN_OR_RETURN(size_t n, PreadFull(fd, tail.data(), window, size - window));
  tail.resize(n);
  const size_t last_newline = tail.rfind('\n');
  if (last_newline != std::string::npos) return size - window + last_newline + 1;
  return window == size ? 0 : size;
}

v1::Event LogTailer::MakeEvent(const TrackedFile& file, uint64_t seq, Line line,
                               int64_t now_ns) const {
  v1::Event event;
  event.set_agent_id(agent_id_);
  event.set_seq(seq);
  event.set_agent_time_ns(now_ns);
  v1::LogEvent* log = event.mutable_log();
  log->set_source(file.path);
  log->set_line(std::move(line.bytes));
  log->set_truncated(line.truncated);
  return event;
}

absl::Status LogTailer::ReadLines(TrackedFile& file, uint64_t limit, size_t max_lines,
                                  uint64_t max_bytes, bool flush_partial, std::vector<Line>* out) {
  const size_t cap = options_.max_line_bytes;
  char* buf = buffer_.data();
  const size_t chunk = buffer_.size();
  auto emit = [&](const char* data, size_t len, bool cut) {
    Line line;
    if (len > cap) {
      line.bytes.assign(data, cap);
      line.truncated = true;
    } else {
      if (!cut && len > 0 && data[len - 1] == '\r') --len;
      line.bytes.assign(data, len);
      line.truncated = cut;
    }
    out->push_back(std::move(line));
  };

  uint64_t off = file.read_offset;
  const uint64_t budget_end = max_bytes > UINT64_MAX - off ? UINT64_MAX : off + max_bytes;
  const size_t first = out->size();
  while (out->size() - first < max_lines && off < limit && off < budget_end) {
    // Within the byte budget; the first read of a call takes at least what a
    // line may be long, so a line always fits or is found to be over the cap.
    const uint64_t unbudgeted = std::min<uint64_t>(chunk, limit - off);
    const uint64_t requested = std::min<uint64_t>(
        unbudgeted,
        off == file.read_offset ? std::max<uint64_t>(budget_end - off, cap + 1) : budget_end - off);
    const bool budget_cut = requested < unbudgeted;
    SIPER_ASSIGN_OR_RETURN(size_t n, PreadFull(file.fd, buf, requested, off));
    if (n == 0) break;  // shorter than it said: truncated meanwhile; the next poll sees it
    // Either the limit is reached or the file ended early (truncated meanwhile).
    const bool at_limit = n < requested || off + n >= limit;
    size_t pos = 0;
    while (pos < n && out->size() - first < max_lines) {
      const char* newline = static_cast<const char*>(std::memchr(buf + pos, '\n', n - pos));
      if (newline == nullptr) break;
      const size_t len = static_cast<size_t>(newline - (buf + pos));
      emit(buf + pos, len, false);
      pos += len + 1;
    }
    off += pos;
    if (out->size() - first >= max_lines || pos == n) continue;

    const size_t rest = n - pos;                        // a line without its newline in this chunk
    if (rest <= cap && !at_limit && budget_cut) break;  // the budget ends in this line
    if (rest <= cap && !at_limit) continue;             // the next chunk starts at this line
    if (rest <= cap) {                                  // a partial line at the end of the file
      if (flush_partial) {
        emit(buf + pos, rest, false);
        off += rest;
      }
      break;
    }
    // A line longer than the cap: keep its head, find its end without keeping the rest.
    uint64_t search = off + rest;
    if (file.long_line_start == off) search = std::max(search, file.long_line_scanned);
    std::string head(buf + pos, cap);
    uint64_t line_end = UINT64_MAX;
    while (search < limit) {
      SIPER_ASSIGN_OR_RETURN(
          size_t m, PreadFull(file.fd, buf, std::min<uint64_t>(chunk, limit - search), search));
      if (m == 0) break;
      if (const void* nl = std::memchr(buf, '\n', m); nl != nullptr) {
        line_end = search + static_cast<size_t>(static_cast<const char*>(nl) - buf);
        break;
      }
      search += m;
    }
    if (line_end != UINT64_MAX) {
      emit(head.data(), head.size(), true);
      off = line_end + 1;
      file.long_line_start = UINT64_MAX;
      continue;
    }
    if (flush_partial) {
      emit(head.data(), head.size(), true);
      off = limit;
    } else {
      file.long_line_start = off;
      file.long_line_scanned = search;
    }
    break;
  }
  file.read_offset = off;
  return absl::OkStatus();
}

bool LogTailer::ReleaseAcked() {
  const uint64_t acked = pending_->AckedSeq();
  // Lines kept durably by `pending_` (the disk spool) need not be re-read from
  // their files: their runs are released as if acknowledged.
  const uint64_t released = std::max(acked, pending_->DurableSeq());
  if (released >= next_seq_) {
    // The server or the spool has seqs we never gave out (offsets.json lost or
    // restored from an old copy): continue above them, or new lines would be
    // taken for duplicates.
    spdlog::warn("seq {} is acknowledged or spooled but the next seq here is {}; continuing at {}",
                 released, next_seq_, released + 1);
    next_seq_ = released + 1;
    dirty_ = true;
  }
  if (acked == acked_seq_ && released == released_seq_) return false;
  acked_seq_ = acked;
  released_seq_ = std::max(released_seq_, released);
  for (auto& file : files_) {
    while (!file->runs.empty() &&
           file->runs.front().first_seq + file->runs.front().count - 1 <= released_seq_) {
      file->acked_offset = file->runs.front().end;
      file->runs.pop_front();
    }
  }
  std::erase_if(files_, [](const auto& file) { return file->fd < 0 && file->runs.empty(); });
  dirty_ = true;
  return true;
}

absl::Status LogTailer::ScanGlobs() {
  for (auto& file : files_) file->seen = false;
  std::set<std::string> done;
  for (const LogInput& input : inputs_) {
    for (const std::string& path : ExpandGlob(input.path)) {
      if (!done.insert(path).second) continue;
      struct stat st {};
      if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      auto it = std::find_if(files_.begin(), files_.end(), [&](const auto& file) {
        return file->fd >= 0 && file->dev == st.st_dev && file->ino == st.st_ino;
      });
      if (it != files_.end()) {
        TrackedFile& file = **it;
        if (file.path != path) {
          spdlog::info("{}: now at {}", file.path, path);
          file.path = path;
          dirty_ = true;
        }
        if (file.rotated) spdlog::info("{}: followed again", file.path);
        file.seen = true;
        file.rotated = false;
        file.idle_polls = 0;
        continue;
      }
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        // Once per path, not every poll, until it can be opened.
        if (unreadable_.insert(path).second) {
          spdlog::warn("{}: cannot open: {}; will keep trying", path, std::strerror(errno));
        }
        continue;
      }
      if (unreadable_.erase(path) > 0) spdlog::info("{}: can be opened now", path);
      auto file = std::make_unique<TrackedFile>();
      file->fd = fd;
      file->path = path;
      struct stat fst {};
      if (fstat(fd, &fst) != 0) return ErrnoError("fstat", path);
      file->dev = fst.st_dev;
      file->ino = fst.st_ino;
      file->seen = true;
      uint64_t offset = 0;
      const bool at_end =
          first_scan_ && input.start == StartAt::kEnd && !known_paths_.contains(path);
      if (at_end) {
        SIPER_ASSIGN_OR_RETURN(offset, EndOffset(fd, static_cast<uint64_t>(fst.st_size)));
      }
      file->acked_offset = file->read_offset = offset;
      UpdateFingerprint(*file, static_cast<uint64_t>(fst.st_size));
      spdlog::info("{}: following from offset {}{}", path, offset,
                   first_scan_ ? "" : " (new file)");
      files_.push_back(std::move(file));
      dirty_ = true;
    }
  }
  for (auto& file : files_) {
    if (file->fd >= 0 && !file->seen && !file->rotated) {
      spdlog::info("{}: moved away or deleted; reading it to its end", file->path);
      file->rotated = true;
      file->idle_polls = 0;
    }
  }
  first_scan_ = false;
  return absl::OkStatus();
}

absl::Status LogTailer::ReadNewLines(TrackedFile& file, size_t* room, uint64_t* bytes_left,
                                     std::vector<v1::Event>* out) {
  struct stat st {};
  if (fstat(file.fd, &st) != 0) return ErrnoError("fstat", file.path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < file.read_offset) {
    ResetForNewContent(file, "truncated (copy-truncate rotation?)");
  } else if (size != file.last_size && file.fp_len > 0) {
    SIPER_ASSIGN_OR_RETURN(bool same, FingerprintMatches(file.fd, file.fp_len, file.fp_hash));
    if (!same) ResetForNewContent(file, "its first bytes changed (truncated and rewritten?)");
  }
  const bool grew = size != file.last_size;
  file.last_size = size;
  UpdateFingerprint(file, size);

  // A moved-away file is finished once it stays quiet: its last line has no
  // newline coming, so it is sent as it is.
  if (file.rotated) file.idle_polls = grew ? 0 : file.idle_polls + 1;
  const bool finishing = file.rotated && file.idle_polls >= options_.rotated_idle_polls;
  const uint64_t before = file.read_offset;
  std::vector<Line> lines;
  // More than this round may read: come back at once (only when this round
  // made progress, so a line still being written never makes a busy loop).
  const bool over_caps = *room > 0 && size > file.read_offset &&
                         size - file.read_offset >
                             std::min<uint64_t>(options_.max_bytes_per_file_per_poll, *bytes_left);
  if (*room > 0 && *bytes_left > 0 && size > file.read_offset) {
    SIPER_RETURN_IF_ERROR(ReadLines(
        file, size, *room, std::min<uint64_t>(options_.max_bytes_per_file_per_poll, *bytes_left),
        finishing, &lines));
    *bytes_left -= std::min(*bytes_left, file.read_offset - before);
  }
  if (over_caps && file.read_offset > before && size > file.read_offset) backlog_ = true;
  if (finishing && file.read_offset >= size) {
    spdlog::info("{}: read to its end; closed", file.path);
    close(file.fd);
    file.fd = -1;
    dirty_ = true;
  }
  if (lines.empty()) return absl::OkStatus();
  const Run run{next_seq_, lines.size(), before, file.read_offset};
  if (!file.runs.empty() && file.runs.back().first_seq + file.runs.back().count == run.first_seq &&
      file.runs.back().end == run.start) {
    file.runs.back().count += run.count;
    file.runs.back().end = run.end;
  } else {
    file.runs.push_back(run);
  }
  const int64_t now = NowNs();
  for (Line& line : lines) out->push_back(MakeEvent(file, next_seq_++, std::move(line), now));
  *room -= lines.size();
  dirty_ = true;
  return absl::OkStatus();
}

absl::Status LogTailer::Poll(size_t max_lines) {
  backlog_ = false;  // first: a round that fails early (disk full) must not spin
  ReleaseAcked();
  if (!unpersisted_.empty()) {
    // offsets.json could not be written last time: nothing new until it is.
    SIPER_RETURN_IF_ERROR(Persist());
    pending_->Append(std::move(unpersisted_));
    unpersisted_.clear();
  }
  SIPER_RETURN_IF_ERROR(ScanGlobs());

  const size_t spool_room = pending_->Room();
  // Said once per pause, with the spool's counters: lines wait in their files, none is dropped.
  if ((spool_room == 0) != paused_) {
    paused_ = spool_room == 0;
    if (paused_) {
      // Room() is 0 for either cause; say which one, so an administrator looks at the disk
      // (permissions, space) and not at the spool's size, or the other way round.
      if (const absl::Status write = pending_->WriteStatus(); !write.ok()) {
        spdlog::warn("spool not writable ({}): reading paused, lines wait",
                     std::string(write.message()));
      } else {
        spdlog::warn("spool full ({} events, {} bytes): reading paused, lines wait",
                     pending_->Size(), pending_->Bytes());
      }
    } else {
      spdlog::info("spool has room again ({} events, {} bytes): reading resumes", pending_->Size(),
                   pending_->Bytes());
    }
  }
  size_t room = std::min(spool_room, max_lines);
  uint64_t bytes_left = options_.max_bytes_per_poll;
  std::vector<v1::Event> events;
  // Moved-away files first: their lines are older than the new file's.
  std::stable_sort(files_.begin(), files_.end(),
                   [](const auto& a, const auto& b) { return a->rotated > b->rotated; });
  for (auto& file : files_) {
    if (file->fd < 0) continue;
    if (absl::Status status = ReadNewLines(*file, &room, &bytes_left, &events); !status.ok()) {
      spdlog::warn("{}: {}", file->path, std::string(status.message()));
    }
  }
  std::erase_if(files_, [](const auto& file) { return file->fd < 0 && file->runs.empty(); });

  if (!events.empty()) {
    unpersisted_ = std::move(events);
    SIPER_RETURN_IF_ERROR(Persist());
    pending_->Append(std::move(unpersisted_));
    unpersisted_.clear();
  } else if (dirty_ && absl::Now() - last_persist_ >= options_.ack_persist_interval) {
    SIPER_RETURN_IF_ERROR(Persist());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> LogTailer::AppendNumbered(std::vector<v1::Event> events) {
  if (events.empty()) return 0;
  if (!unpersisted_.empty()) SIPER_RETURN_IF_ERROR(Persist());  // lines first, in seq order
  pending_->Append(std::move(unpersisted_));
  unpersisted_.clear();
  const uint64_t first = next_seq_;
  for (v1::Event& event : events) {
    event.set_agent_id(agent_id_);
    event.set_seq(next_seq_++);
  }
  if (absl::Status status = Persist(); !status.ok()) {
    next_seq_ = first;
    return status;
  }
  const uint64_t last = next_seq_ - 1;
  pending_->Append(std::move(events));
  return last;
}

absl::StatusOr<uint64_t> LogTailer::ReserveSeqs(uint64_t count) {
  if (!unpersisted_.empty()) SIPER_RETURN_IF_ERROR(Persist());  // lines first, in seq order
  pending_->Append(std::move(unpersisted_));
  unpersisted_.clear();
  const uint64_t first = next_seq_;
  next_seq_ += count;
  if (absl::Status status = Persist(); !status.ok()) {
    next_seq_ = first;
    return status;
  }
  return first;
}

absl::Status LogTailer::Checkpoint() {
  ReleaseAcked();
  return Persist();
}

absl::Status LogTailer::Persist() {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& file : files_) {
    nlohmann::json runs = nlohmann::json::array();
    for (const Run& run : file->runs) {
      runs.push_back(
          {{"seq", run.first_seq}, {"count", run.count}, {"start", run.start}, {"end", run.end}});
    }
    files.push_back({{"path", file->path},
                     {"ino", file->ino},
                     {"fp_len", file->fp_len},
                     {"fp_hash", file->fp_hash},
                     {"acked_offset", file->acked_offset},
                     {"runs", std::move(runs)}});
  }
  const nlohmann::json doc = {{"version", kOffsetsVersion},
                              {"next_seq", next_seq_},
                              {"acked_seq", acked_seq_},
                              {"released_seq", released_seq_},
                              {"files", std::move(files)}};
  const std::string text = doc.dump(1);
  SIPER_RETURN_IF_ERROR(options_.sync_directory
                            ? WriteFileAtomic(offsets_path_, text, 0600)
                            : WriteFileAtomicNoDirSync(offsets_path_, text, 0600));
  dirty_ = false;
  last_persist_ = absl::Now();
  return absl::OkStatus();
}

absl::Status LogTailer::RecoverFile(TrackedFile& file, std::vector<v1::Event>* out) {
  const int64_t now = NowNs();
  std::deque<Run> kept;
  for (const Run& run : file.runs) {
    file.read_offset = run.start;
    std::vector<Line> lines;
    SIPER_RETURN_IF_ERROR(ReadLines(file, run.end, run.count, UINT64_MAX, true, &lines));
    if (lines.size() != run.count || file.read_offset != run.end) {
      spdlog::error(
          "{}: changed since seqs {}..{} were read; {} unacknowledged lines cannot be re-read",
          file.path, run.first_seq, run.first_seq + run.count - 1, run.count);
      break;  // later runs of this file are no better
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      const uint64_t seq = run.first_seq + i;
      if (seq > released_seq_) out->push_back(MakeEvent(file, seq, std::move(lines[i]), now));
    }
    kept.push_back(run);
  }
  file.runs = std::move(kept);
  file.read_offset = file.runs.empty() ? file.acked_offset : file.runs.back().end;
  return absl::OkStatus();
}

absl::Status LogTailer::Recover(std::vector<v1::Event> also) {
  std::error_code ec;
  if (!std::filesystem::exists(offsets_path_, ec)) {
    spdlog::info("{}: not there yet; starting with seq 1", offsets_path_.string());
    if (!also.empty()) {
      // Seqs came from an offsets.json that is gone: continue above them.
      next_seq_ = std::max(next_seq_, also.back().seq() + 1);
      pending_->Append(std::move(also));
    }
    return absl::OkStatus();
  }
  SIPER_ASSIGN_OR_RETURN(std::string text, siper::ReadFile(offsets_path_));
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
    if (doc.at("version").get<int>() != kOffsetsVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat(offsets_path_.string(), ": unsupported version ", doc.at("version").dump()));
    }
    next_seq_ = doc.at("next_seq").get<uint64_t>();
    acked_seq_ = doc.at("acked_seq").get<uint64_t>();
    released_seq_ = std::max(acked_seq_, doc.value("released_seq", uint64_t{0}));
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(offsets_path_.string(), ": ", e.what(),
                                            "; move the file away to start afresh"));
  }
  pending_->Ack(acked_seq_);
  // What the spool recovered need not be re-read (offsets.json may predate its sync).
  released_seq_ = std::max(released_seq_, std::min(pending_->DurableSeq(), next_seq_ - 1));

  std::vector<v1::Event> events = std::move(also);
  try {
    for (const nlohmann::json& entry : doc.at("files")) {
      auto file = std::make_unique<TrackedFile>();
      file->path = entry.at("path").get<std::string>();
      file->ino = entry.at("ino").get<uint64_t>();
      file->fp_len = entry.at("fp_len").get<uint64_t>();
      file->fp_hash = entry.at("fp_hash").get<uint64_t>();
      file->acked_offset = entry.at("acked_offset").get<uint64_t>();
      for (const nlohmann::json& r : entry.at("runs")) {
        Run run{r.at("seq").get<uint64_t>(), r.at("count").get<uint64_t>(),
                r.at("start").get<uint64_t>(), r.at("end").get<uint64_t>()};
        if (run.first_seq + run.count - 1 > released_seq_)
          file->runs.push_back(run);
        else
          file->acked_offset = run.end;
      }
      known_paths_.insert(file->path);
      const bool configured = IsConfigured(file->path);

      // Find the file: where it was, or renamed within the same directory.
      std::vector<std::string> candidates = {file->path};
      const std::filesystem::path dir = std::filesystem::path(file->path).parent_path();
      for (const auto& item : std::filesystem::directory_iterator(dir, ec)) {
        if (item.path() != file->path) candidates.push_back(item.path().string());
      }
      for (const std::string& candidate : candidates) {
        struct stat st {};
        if (stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != file->ino) {
          continue;
        }
        const int fd = open(candidate.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        auto same = FingerprintMatches(fd, file->fp_len, file->fp_hash);
        if (!same.ok() || !*same) {
          close(fd);
          continue;
        }
        file->fd = fd;
        file->dev = st.st_dev;
        if (candidate != file->path) {
          spdlog::info("{}: found again as {}", file->path, candidate);
          file->path = candidate;
        }
        break;
      }
      if (file->fd < 0) {
        uint64_t lost = 0;
        for (const Run& run : file->runs) {
          lost += run.first_seq + run.count - 1 - std::max(released_seq_, run.first_seq - 1);
        }
        if (lost > 0) {
          spdlog::error("{}: gone (inode {}); {} unacknowledged lines cannot be re-read",
                        file->path, file->ino, lost);
        }
        continue;
      }
      SIPER_RETURN_IF_ERROR(RecoverFile(*file, &events));
      if (!configured) {
        // Removed from the configuration: send what was numbered, read no further.
        spdlog::info("{}: no longer configured; {} unacknowledged runs re-read, then dropped",
                     file->path, file->runs.size());
        close(file->fd);
        file->fd = -1;
        if (!file->runs.empty()) files_.push_back(std::move(file));
        continue;
      }
      spdlog::info("{}: resuming at offset {} ({} unacknowledged runs re-read)", file->path,
                   file->read_offset, file->runs.size());
      files_.push_back(std::move(file));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(offsets_path_.string(), ": ", e.what(),
                                            "; move the file away to start afresh"));
  }
  std::sort(events.begin(), events.end(),
            [](const v1::Event& a, const v1::Event& b) { return a.seq() < b.seq(); });
  if (!events.empty() && events.back().seq() >= next_seq_) next_seq_ = events.back().seq() + 1;
  spdlog::info("recovered: next seq {}, acknowledged up to {}, released up to {}, {} lines re-read",
               next_seq_, acked_seq_, released_seq_, events.size());
  pending_->Append(std::move(events));
  dirty_ = true;
  return absl::OkStatus();
}

}  // namespace siper::agent

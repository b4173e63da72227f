#include "agent/fim.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

constexpr int kBaselineVersion = 1;
constexpr uint32_t kWatchMask = IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_DONT_FOLLOW;

int64_t Ns(const struct timespec& ts) { return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec; }

bool UnderOrEqual(const std::string& path, const std::string& root) {
  if (path == root) return true;
  if (root == "/") return path.starts_with('/');
  return path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/';
}

}  // namespace

absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path, size_t buffer_bytes,
                                       ScanBudget* budget) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME | O_NOFOLLOW);
  if (fd < 0 && errno == EPERM) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": ", std::strerror(errno)));
  }
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    close(fd);
    return absl::InternalError("EVP_DigestInit_ex(sha256) failed");
  }
  std::unique_ptr<char[]> buffer(new char[buffer_bytes]);
  while (true) {
    const ssize_t n = read(fd, buffer.get(), buffer_bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string message = absl::StrCat(path.string(), ": read: ", std::strerror(errno));
      close(fd);
      return absl::InternalError(message);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.get(), static_cast<size_t>(n));
    if (budget != nullptr) budget->Charge(static_cast<uint64_t>(n));
  }
  close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

FileIntegrityMonitor::FileIntegrityMonitor(std::vector<FimInput> inputs,
                                           std::filesystem::path state_file, FimOptions options)
    : inputs_(std::move(inputs)),
      state_file_(std::move(state_file)),
      options_(options),
      budget_(options.budget) {}

FileIntegrityMonitor::~FileIntegrityMonitor() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

absl::Status FileIntegrityMonitor::Start() {
  std::error_code ec;
  if (std::filesystem::exists(state_file_, ec)) {
    SIPER_ASSIGN_OR_RETURN(std::string text, siper::ReadFile(state_file_));
    try {
      const nlohmann::json doc = nlohmann::json::parse(text);
      if (doc.at("version").get<int>() != kBaselineVersion) {
        return absl::FailedPreconditionError(
            absl::StrCat(state_file_.string(), ": unsupported version ", doc.at("version").dump()));
      }
      for (const auto& [path, e] : doc.at("files").items()) {
        Entry entry;
        entry.size = e.at("size").get<uint64_t>();
        entry.mode = e.at("mode").get<uint32_t>();
        entry.uid = e.at("uid").get<uint32_t>();
        entry.gid = e.at("gid").get<uint32_t>();
        entry.mtime_ns = e.at("mtime_ns").get<int64_t>();
        entry.ctime_ns = e.at("ctime_ns").get<int64_t>();
        entry.ino = e.at("ino").get<uint64_t>();
        entry.sha256 = e.at("sha256").get<std::string>();
        baseline_.emplace(path, std::move(entry));
      }
    } catch (const nlohmann::json::exception& e) {
      // Unlike offsets.json nothing is lost by starting over: a new baseline.
      spdlog::error("{}: {}; taking a new baseline", state_file_.string(), e.what());
      baseline_.clear();
      first_run_ = true;
    }
  } else {
    first_run_ = true;
  }
  if (options_.use_inotify) {
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
      spdlog::warn("fim: inotify unavailable ({}); changes are found by rescans only",
                   std::strerror(errno));
    }
  }
  FullScan();
  first_run_ = false;
  spdlog::info("fim: {} files in the baseline, {} directories watched, {} large files to hash",
               baseline_.size(), watches_.size(), deferred_.size());
  return absl::OkStatus();
}

bool FileIntegrityMonitor::Ignored(const std::string& path, const FimInput& input) const {
  const std::string name = std::filesystem::path(path).filename().string();
  for (const std::string& glob : input.ignore) {
    if (fnmatch(glob.c_str(), path.c_str(), 0) == 0 || fnmatch(glob.c_str(), name.c_str(), 0) == 0)
      return true;
  }
  return false;
}

const FimInput* FileIntegrityMonitor::Covering(const std::string& path) const {
  for (const FimInput& input : inputs_) {
    if (path == input.path) return &input;
    if (!UnderOrEqual(path, input.path)) continue;
    if (!input.recursive && std::filesystem::path(path).parent_path().string() != input.path) {
      continue;
    }
    return &input;
  }
  return nullptr;
}

void FileIntegrityMonitor::Watch(const std::string& dir) {
  if (inotify_fd_ < 0 || watched_dirs_.contains(dir)) return;
  const int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kWatchMask);
  if (wd < 0) {
    spdlog::warn("fim: cannot watch {}: {}; rescans still cover it", dir, std::strerror(errno));
    return;
  }
  watches_[wd] = dir;
  watched_dirs_.insert(dir);
}

void FileIntegrityMonitor::ScanInput(const FimInput& input, std::set<std::string>* seen) {
  std::error_code ec;
  struct stat st {};
  if (lstat(input.path.c_str(), &st) != 0) {
    // Gone or not there yet: its parent is watched so it is seen when it comes.
    Watch(std::filesystem::path(input.path).parent_path().string());
    return;
  }
  if (S_ISREG(st.st_mode)) {
    Watch(std::filesystem::path(input.path).parent_path().string());
    seen->insert(input.path);
    CheckPath(input.path, true);
    return;
  }
  if (!S_ISDIR(st.st_mode)) return;
  Watch(input.path);
  const auto options = std::filesystem::directory_options::skip_permission_denied;
  if (input.recursive) {
    std::filesystem::recursive_directory_iterator it(input.path, options, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string path = it->path().string();
      if (Ignored(path, input)) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_symlink(ec)) continue;
      if (it->is_directory(ec)) {
        Watch(path);
      } else if (it->is_regular_file(ec)) {
        seen->insert(path);
        CheckPath(path, true);
      }
    }
  } else {
    for (const auto& item : std::filesystem::directory_iterator(input.path, options, ec)) {
      const std::string path = item.path().string();
      if (Ignored(path, input) || item.is_symlink(ec) || !item.is_regular_file(ec)) continue;
      seen->insert(path);
      CheckPath(path, true);
    }
  }
  if (ec) spdlog::warn("fim: scanning {}: {}", input.path, ec.message());
}

void FileIntegrityMonitor::FullScan() {
  std::set<std::string> seen;
  for (const FimInput& input : inputs_) ScanInput(input, &seen);
  std::vector<std::string> gone;
  for (const auto& [path, entry] : baseline_) {
    if (!seen.contains(path) && !deferred_.contains(path)) gone.push_back(path);
  }
  for (const std::string& path : gone) CheckPath(path, true);
  next_rescan_ = absl::Now() + options_.rescan_interval;
}

void FileIntegrityMonitor::Report(const std::string& path, const Entry& entry,
                                  v1::FileChange change) {
  v1::FileEvent event;
  event.set_path(path);
  event.set_size(entry.size);
  event.set_mode(entry.mode);
  event.set_uid(entry.uid);
  event.set_gid(entry.gid);
  event.set_mtime_ns(entry.mtime_ns);
  if (change != v1::FILE_CHANGE_DELETED) event.set_sha256(entry.sha256);
  event.set_change(change);
  events_.push_back(std::move(event));
  dirty_ = true;
}

void FileIntegrityMonitor::CheckPath(const std::string& path, bool allow_defer) {
  budget_.Charge(0);  // the lstat and bookkeeping of every file count too
  auto it = baseline_.find(path);
  struct stat st {};
  const FimInput* input = Covering(path);
  const bool present = lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && input != nullptr &&
                       !Ignored(path, *input);
  if (!present) {
    deferred_.erase(path);
    if (it != baseline_.end()) {
      Report(path, it->second, v1::FILE_CHANGE_DELETED);
      baseline_.erase(it);
    }
    return;
  }
  Entry now;
  now.size = static_cast<uint64_t>(st.st_size);
  now.mode = st.st_mode;
  now.uid = st.st_uid;
  now.gid = st.st_gid;
  now.mtime_ns = Ns(st.st_mtim);
  now.ctime_ns = Ns(st.st_ctim);
  now.ino = st.st_ino;
  const bool known = it != baseline_.end();
  if (known) {
    const Entry& old = it->second;
    if (old.size == now.size && old.mtime_ns == now.mtime_ns && old.ctime_ns == now.ctime_ns &&
        old.ino == now.ino && old.mode == now.mode && old.uid == now.uid && old.gid == now.gid) {
      return;  // unchanged
    }
    const bool content_may_differ = old.size != now.size || old.mtime_ns != now.mtime_ns ||
                                    old.ino != now.ino || old.ctime_ns != now.ctime_ns;
    if (!content_may_differ) {
      now.sha256 = old.sha256;
      Report(path, now, v1::FILE_CHANGE_ATTRIBUTES);
      it->second = now;
      return;
    }
  }
  if (allow_defer && now.size > options_.large_file_bytes) {
    deferred_.emplace(path, first_run_);  // hashed later, in the low-priority pass
    return;
  }
  auto hash = Sha256File(path, options_.read_buffer_bytes, &budget_);
  if (!hash.ok()) {
    spdlog::warn("fim: {}", std::string(hash.status().message()));
    return;
  }
  now.sha256 = *std::move(hash);
  if (!known) {
    Report(path, now, first_run_ ? v1::FILE_CHANGE_BASELINE : v1::FILE_CHANGE_ADDED);
    if (first_run_ && !options_.report_baseline) events_.pop_back();
    baseline_.emplace(path, std::move(now));
    dirty_ = true;
    return;
  }
  Entry& old = it->second;
  if (old.sha256 != now.sha256 || old.size != now.size) {
    Report(path, now, v1::FILE_CHANGE_MODIFIED);
  } else if (old.mode != now.mode || old.uid != now.uid || old.gid != now.gid) {
    Report(path, now, v1::FILE_CHANGE_ATTRIBUTES);
  } else {
    dirty_ = true;  // touched, same content: remember the new times silently
  }
  old = std::move(now);
}

void FileIntegrityMonitor::WatchTree(const std::string& dir, const FimInput& input) {
  std::set<std::string> seen;
  FimInput sub = input;
  sub.path = dir;
  ScanInput(sub, &seen);
}

void FileIntegrityMonitor::DrainInotify() {
  alignas(struct inotify_event) char buf[64 * 1024];
  while (true) {
    const ssize_t n = read(inotify_fd_, buf, sizeof(buf));
    if (n <= 0) return;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        spdlog::warn("fim: inotify queue overflowed; rescanning everything");
        next_rescan_ = absl::InfinitePast();
        continue;
      }
      auto watch = watches_.find(ev->wd);
      if (watch == watches_.end()) continue;
      if (ev->mask & IN_IGNORED) {
        watched_dirs_.erase(watch->second);
        watches_.erase(watch);
        continue;
      }
      if (ev->len == 0) continue;  // the directory itself (deleted or moved: seen by its parent)
      const std::string path = (std::filesystem::path(watch->second) / ev->name).string();
      if (ev->mask & IN_ISDIR) {
        if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
          if (const FimInput* input = Covering(path);
              input != nullptr && input->recursive && !Ignored(path, *input)) {
            WatchTree(path, *input);
          }
        }
        if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
          for (auto it = baseline_.lower_bound(path + "/");
               it != baseline_.end() && it->first.starts_with(path + "/"); ++it) {
            changed_.insert(it->first);
          }
        }
        continue;
      }
      changed_.insert(path);
    }
  }
}

absl::Status FileIntegrityMonitor::Poll(absl::Duration wait) {
  if (inotify_fd_ >= 0) {
    const bool idle = changed_.empty() && deferred_.empty();
    struct pollfd pfd = {inotify_fd_, POLLIN, 0};
    const int timeout_ms = idle ? static_cast<int>(absl::ToInt64Milliseconds(wait)) : 0;
    if (poll(&pfd, 1, timeout_ms) > 0) DrainInotify();
  } else if (changed_.empty() && deferred_.empty() && absl::Now() < next_rescan_) {
    const absl::Duration until = std::min(wait, next_rescan_ - absl::Now());
    if (until > absl::ZeroDuration()) absl::SleepFor(until);
  }
  std::set<std::string> changed;
  changed.swap(changed_);
  for (const std::string& path : changed) CheckPath(path, true);
  if (absl::Now() >= next_rescan_) FullScan();
  if (!deferred_.empty()) {
    const auto [path, first] = *deferred_.begin();
    deferred_.erase(deferred_.begin());
    first_run_ = first;
    CheckPath(path, false);
    first_run_ = false;
  }
  return absl::OkStatus();
}

std::vector<v1::FileEvent> FileIntegrityMonitor::TakeEvents() {
  std::vector<v1::FileEvent> out;
  out.swap(events_);
  return out;
}

absl::Status FileIntegrityMonitor::SaveBaseline() {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [path, e] : baseline_) {
    files[path] = {{"size", e.size}, {"mode", e.mode},         {"uid", e.uid},
                   {"gid", e.gid},   {"mtime_ns", e.mtime_ns}, {"ctime_ns", e.ctime_ns},
                   {"ino", e.ino},   {"sha256", e.sha256}};
  }
  const nlohmann::json doc = {{"version", kBaselineVersion}, {"files", std::move(files)}};
  SIPER_RETURN_IF_ERROR(WriteFileAtomic(
      state_file_, doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 0600));
  dirty_ = false;
  return absl::OkStatus();
}

}  // namespace siper::agent

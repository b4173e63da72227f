#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace siper {
namespace {

absl::Status ErrnoError(std::string_view what, const std::filesystem::path& path, int err) {
  return absl::ErrnoToStatus(
      err, absl::StrCat(std::string(what), " ", path.string(), ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("cannot open", path, errno);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return ErrnoError("cannot read", path, errno);
  return std::move(buffer).str();
}

absl::Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             mode_t mode) {
  std::filesystem::path tmp = path;
  tmp += absl::StrCat(".tmp.", getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("cannot create", tmp, errno);
  // The umask may have narrowed the mode; set it exactly (keys must be 0600, not wider).
  if (::fchmod(fd, mode) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("cannot chmod", tmp, err);
  }
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoError("cannot write", tmp, err);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoError("cannot fsync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("cannot rename into place", path, err);
  }
  // Make the rename itself durable.
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return absl::OkStatus();
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create directory ", dir.string(), ": ", ec.message()));
  if (::chmod(dir.c_str(), mode) != 0) return ErrnoError("cannot chmod", dir, errno);
  return absl::OkStatus();
}

}  // namespace siper

#include "agent/disk_spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status.h"

namespace siper::agent {
namespace {

// Record: u32 payload length, u32 CRC-32 (zlib) of seq and payload, u64 seq,
// payload (serialized v1::Event); integers little-endian (the host's order on
// every platform we ship).
constexpr size_t kHeaderBytes = 16;
constexpr uint32_t kMaxPayload = 64 << 20;
constexpr char kSegmentSuffix[] = ".seg";

std::string Errno(const std::string& what, const std::filesystem::path& path) {
  return absl::StrCat(what, " ", path.string(), ": ", std::strerror(errno));
}

uint32_t RecordCrc(uint64_t seq, const char* payload, size_t len) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(&seq), sizeof(seq));
  crc = crc32(crc, reinterpret_cast<const Bytef*>(payload), static_cast<uInt>(len));
  return static_cast<uint32_t>(crc);
}

// Serializes straight into `out` (no temporary string per record).
void EncodeRecord(const v1::Event& event, std::string* out) {
  const size_t at = out->size();
  const size_t size = event.ByteSizeLong();
  out->resize(at + kHeaderBytes + size);
  char* header = out->data() + at;
  char* payload = header + kHeaderBytes;
  event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(payload));
  const uint64_t seq = event.seq();
  const uint32_t len = static_cast<uint32_t>(size);
  const uint32_t crc = RecordCrc(seq, payload, size);
  std::memcpy(header, &len, 4);
  std::memcpy(header + 4, &crc, 4);
  std::memcpy(header + 8, &seq, 8);
}

bool PreadFull(int fd, char* buf, size_t len, uint64_t offset) {
  while (len > 0) {
    const ssize_t n = pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool WriteFull(int fd, const char* buf, size_t len) {
  while (len > 0) {
    const ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Reads records at increasing offsets of one segment, in blocks of at least
// kReadBlock bytes (one pread per block rather than two per record): false at
// the end or on a torn or corrupt record. The payload points into the block
// and is valid until the next Read.
constexpr size_t kReadBlock = 64 * 1024;

struct RecordReader {
  RecordReader(int fd_in, uint64_t size_in) : fd(fd_in), size(size_in) {}
  int fd;
  uint64_t size;
  uint64_t seq = 0;
  const char* payload = nullptr;
  uint32_t payload_size = 0;
  const char* problem = nullptr;

  bool Read(uint64_t offset, uint64_t* next) {
    problem = nullptr;
    if (offset == size) return false;
    if (size - offset < kHeaderBytes || !Fill(offset, kHeaderBytes)) {
      problem = "torn record header";
      return false;
    }
    const char* header = block.data() + (offset - block_offset);
    uint32_t len = 0;
    uint32_t crc = 0;
    std::memcpy(&len, header, 4);
    std::memcpy(&crc, header + 4, 4);
    std::memcpy(&seq, header + 8, 8);
    if (len > kMaxPayload) {
      problem = "impossible record length";
      return false;
    }
    if (size - offset - kHeaderBytes < len) {
      problem = "torn record";
      return false;
    }
    if (!Fill(offset, kHeaderBytes + len)) {
      problem = "unreadable record";
      return false;
    }
    payload = block.data() + (offset - block_offset) + kHeaderBytes;
    payload_size = len;
    if (RecordCrc(seq, payload, len) != crc) {
      problem = "CRC mismatch";
      return false;
    }
    *next = offset + kHeaderBytes + len;
    return true;
  }

 private:
  // Makes [offset, offset + need) readable in `block`.
  bool Fill(uint64_t offset, size_t need) {
    if (offset >= block_offset && offset + need <= block_offset + block.size()) return true;
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(std::max<uint64_t>(need, kReadBlock), size - offset));
    if (want < need) return false;
    block.resize(want);
    block_offset = offset;
    if (!PreadFull(fd, block.data(), want, offset)) {
      block.clear();
      return false;
    }
    return true;
  }

  std::string block;
  uint64_t block_offset = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DiskSpool>> DiskSpool::Open(std::filesystem::path dir,
                                                           SpoolOptions options) {
  SIPER_RETURN_IF_ERROR(EnsureDirectory(dir, 0700));
  std::unique_ptr<DiskSpool> spool(new DiskSpool(std::move(dir), options));
  if (!options.sync_directory_first.empty() && options.fsync != SpoolFsync::kNever) {
    spool->sync_dir_fd_ =
        open(options.sync_directory_first.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spool->sync_dir_fd_ < 0) {
      return absl::InternalError(Errno("cannot open", options.sync_directory_first));
    }
  }
  SIPER_RETURN_IF_ERROR(spool->Recover());
  spool->flusher_ = std::thread([raw = spool.get()] { raw->FlushLoop(); });
  return spool;
}

DiskSpool::DiskSpool(std::filesystem::path dir, SpoolOptions options)
    : dir_(std::move(dir)), options_(options) {}

DiskSpool::~DiskSpool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard lock(mu_);
  CloseReadLocked();
  if (active_fd_ >= 0) {
    if (options_.fsync != SpoolFsync::kNever) (void)SyncActiveLocked();
    close(active_fd_);
    active_fd_ = -1;
  }
  if (sync_dir_fd_ >= 0) close(sync_dir_fd_);
  PersistAckLocked(false);
}

absl::Status DiskSpool::Recover() {
  std::lock_guard lock(mu_);
  if (auto text = ReadFile(dir_ / "ack"); text.ok()) {
    if (!absl::SimpleAtoi(absl::string_view(text->data(), text->size()), &acked_seq_)) {
      spdlog::warn("{}: unreadable ack position; resending everything in the spool",
                   (dir_ / "ack").string());
      acked_seq_ = 0;
    }
  }
  persisted_ack_ = acked_seq_;
  std::vector<std::filesystem::path> paths;
  std::error_code ec;
  for (const auto& item : std::filesystem::directory_iterator(dir_, ec)) {
    if (item.path().extension() == kSegmentSuffix) paths.push_back(item.path());
  }
  if (ec) return absl::InternalError(absl::StrCat(dir_.string(), ": ", ec.message()));
  std::sort(paths.begin(), paths.end());
  uint64_t records = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    Segment segment;
    segment.path = paths[i];
    SIPER_RETURN_IF_ERROR(RecoverSegment(segment, i + 1 == paths.size()));
    if (segment.records == 0) {
      std::filesystem::remove(segment.path, ec);
      continue;
    }
    records += segment.records;
    bytes_ += segment.bytes;
    last_seq_ = std::max(last_seq_, segment.last_seq);
    segments_.push_back(std::move(segment));
  }
  last_seq_ = std::max(last_seq_, acked_seq_);
  durable_seq_ = last_seq_;
  DropAckedSegmentsLocked();
  spdlog::info("spool {}: {} segments, {} bytes, {} records, acknowledged up to {}, last seq {}",
               dir_.string(), segments_.size(), bytes_, records, acked_seq_, last_seq_);
  return absl::OkStatus();
}

absl::Status DiskSpool::RecoverSegment(Segment& segment, bool last) {
  const int fd = open(segment.path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Errno("cannot open spool segment", segment.path));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return absl::InternalError(Errno("cannot stat spool segment", segment.path));
  }
  RecordReader reader(fd, static_cast<uint64_t>(st.st_size));
  uint64_t offset = 0;
  uint64_t next = 0;
  while (reader.Read(offset, &next)) {
    if (reader.seq <= segment.last_seq || reader.seq <= last_seq_) {
      reader.problem = "seq out of order";
      break;
    }
    if (segment.records == 0) segment.first_seq = reader.seq;
    segment.last_seq = reader.seq;
    ++segment.records;
    offset = next;
  }
  if (reader.problem != nullptr) {
    // A torn tail is what a crash mid-write leaves; anything else is damage.
    auto log = last ? spdlog::level::warn : spdlog::level::err;
    spdlog::log(log, "spool {}: {} at offset {} after seq {}; truncating {} bytes",
                segment.path.string(), reader.problem, offset, segment.last_seq,
                reader.size - offset);
    if (ftruncate(fd, static_cast<off_t>(offset)) != 0 || fdatasync(fd) != 0) {
      const std::string message = Errno("cannot truncate spool segment", segment.path);
      close(fd);
      return absl::InternalError(message);
    }
  } else if (last && options_.fsync != SpoolFsync::kNever) {
    (void)fdatasync(fd);
  }
  segment.bytes = offset;
  close(fd);
  return absl::OkStatus();
}

absl::Status DiskSpool::OpenActive(uint64_t first_seq) {
  if (active_fd_ >= 0 && !segments_.empty() && segments_.back().bytes < options_.segment_bytes) {
    return absl::OkStatus();
  }
  if (active_fd_ >= 0) {  // full: roll
    if (options_.fsync != SpoolFsync::kNever && SyncActiveLocked() != 0) {
      return absl::InternalError(Errno("cannot sync spool segment", segments_.back().path));
    }
    close(active_fd_);
    active_fd_ = -1;
    unsynced_ = false;
    durable_seq_ = last_seq_;
  }
  if (!segments_.empty() && segments_.back().bytes < options_.segment_bytes) {
    active_fd_ = open(segments_.back().path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (active_fd_ < 0) return absl::InternalError(Errno("cannot open", segments_.back().path));
    return absl::OkStatus();
  }
  Segment segment;
  segment.path = dir_ / absl::StrFormat("%020d%s", first_seq, kSegmentSuffix);
  active_fd_ = open(segment.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (active_fd_ < 0) return absl::InternalError(Errno("cannot create", segment.path));
  if (options_.fsync != SpoolFsync::kNever) {
    // The new name must survive a power loss as well as its content.
    const int dir_fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      (void)fsync(dir_fd);
      close(dir_fd);
    }
  }
  segments_.push_back(std::move(segment));
  return absl::OkStatus();
}

size_t DiskSpool::Room() const {
  std::lock_guard lock(mu_);
  if (!unwritten_.empty() || bytes_ >= options_.max_bytes) return 0;
  // Events are typically a few hundred bytes; the cap may be passed by one poll.
  return static_cast<size_t>(std::max<uint64_t>(1, (options_.max_bytes - bytes_) / 256));
}

void DiskSpool::Append(std::vector<v1::Event> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (unwritten_.empty()) {
      unwritten_ = std::move(events);
    } else {
      for (v1::Event& event : events) unwritten_.push_back(std::move(event));
    }
    WriteUnwrittenLocked();
    // The shipper waits for a first record, then for a full batch (or its
    // linger): wake it only when this Append gets it there, not for each one.
    if (last_seq_ < wake_at_seq_) return;
  }
  changed_.notify_all();
}

void DiskSpool::WriteUnwrittenLocked() {
  absl::Status status;
  size_t done = 0;  // events of unwritten_ written or skipped
  while (done < unwritten_.size() && status.ok()) {
    // One chunk: the records that fit in the active segment (at least one).
    std::string buf;
    uint64_t first = 0;
    uint64_t last = last_seq_;
    uint64_t count = 0;
    size_t end = done;
    const uint64_t used = (active_fd_ >= 0 && !segments_.empty()) ? segments_.back().bytes : 0;
    for (; end < unwritten_.size(); ++end) {
      const v1::Event& event = unwritten_[end];
      if (event.seq() <= last) continue;  // held already (recovery re-reads) or acknowledged
      if (count > 0 && used + buf.size() >= options_.segment_bytes) break;
      if (first == 0) first = event.seq();
      last = event.seq();
      ++count;
      EncodeRecord(event, &buf);
    }
    if (count > 0) status = OpenActive(first);
    if (count > 0 && status.ok()) {
      Segment& segment = segments_.back();
      if (!WriteFull(active_fd_, buf.data(), buf.size())) {
        status = absl::InternalError(Errno("cannot write spool segment", segment.path));
        // Leave no partial record behind, so the next write starts clean.
        (void)ftruncate(active_fd_, static_cast<off_t>(segment.bytes));
        break;
      }
      if (segment.records == 0) segment.first_seq = first;
      segment.last_seq = last;
      segment.records += count;
      segment.bytes += buf.size();
      bytes_ += buf.size();
      last_seq_ = last;
      unsynced_ = true;
    }
    if (status.ok()) done = end;
  }
  unwritten_.erase(unwritten_.begin(), unwritten_.begin() + static_cast<ptrdiff_t>(done));
  if (options_.fsync == SpoolFsync::kAlways) {
    // Written but not known durable: DurableSeq stays behind (the tailer keeps
    // the lines' runs) and the flusher syncs again.
    if (absl::Status sync = SyncLocked(); !sync.ok()) {
      spdlog::error("spool: {}", std::string(sync.message()));
    }
  }
  if (options_.fsync == SpoolFsync::kNever) durable_seq_ = last_seq_;
  if (!status.ok()) {
    // Kept in memory and retried (every Append and every fsync interval);
    // collectors pause meanwhile (Room() is 0), so nothing is lost or reordered.
    if (write_status_.ok()) spdlog::error("spool: {}", std::string(status.message()));
    write_status_ = status;
    return;
  }
  if (!write_status_.ok()) spdlog::info("spool: writing again");
  write_status_ = absl::OkStatus();
}

int DiskSpool::SyncActiveLocked() {
  // The directory first: what was renamed into it before these records were
  // appended is durable before they are (see SpoolOptions::sync_directory_first).
  if (sync_dir_fd_ >= 0 && fsync(sync_dir_fd_) != 0) return -1;
  return fdatasync(active_fd_);
}

absl::Status DiskSpool::SyncLocked() {
  if (!unsynced_ || active_fd_ < 0) return absl::OkStatus();
  if (SyncActiveLocked() != 0) {
    return absl::InternalError(Errno("cannot sync spool segment", segments_.back().path));
  }
  unsynced_ = false;
  durable_seq_ = last_seq_;
  return absl::OkStatus();
}

void DiskSpool::FlushLoop() {
  pthread_setname_np(pthread_self(), "siper-spool");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.fsync_interval));
    if (stopping_) break;
    WriteUnwrittenLocked();
    if (options_.fsync != SpoolFsync::kNever) {
      if (absl::Status status = SyncLocked(); !status.ok()) {
        spdlog::error("spool: {}", std::string(status.message()));
      }
    }
    if (acked_seq_ != persisted_ack_) PersistAckLocked(false);
  }
}

void DiskSpool::PersistAckLocked(bool sync) {
  // Losing the ack position only means resending (the server deduplicates), so
  // it is written without fsync unless asked.
  const std::filesystem::path tmp = dir_ / "ack.tmp";
  const std::string text = absl::StrCat(acked_seq_, "\n");
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  const bool ok = WriteFull(fd, text.data(), text.size()) && (!sync || fdatasync(fd) == 0);
  close(fd);
  if (ok && rename(tmp.c_str(), (dir_ / "ack").c_str()) == 0) persisted_ack_ = acked_seq_;
}

void DiskSpool::DropAckedSegmentsLocked() {
  bool dropped = false;
  while (!segments_.empty() && segments_.front().last_seq <= acked_seq_) {
    const bool active = segments_.size() == 1 && active_fd_ >= 0;
    if (active) {
      close(active_fd_);
      active_fd_ = -1;
      unsynced_ = false;
    }
    if (unlink(segments_.front().path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("{}",
                   Errno("spool: cannot delete acknowledged segment", segments_.front().path));
    }
    if (cursor_.segment == segments_.front().path.string()) cursor_ = {};
    if (read_path_ == segments_.front().path.string()) CloseReadLocked();
    bytes_ -= segments_.front().bytes;
    segments_.pop_front();
    dropped = true;
  }
  // The ack position is written before a restart could need it.
  if (dropped) PersistAckLocked(false);
}

void DiskSpool::CloseReadLocked() {
  if (read_fd_ >= 0) close(read_fd_);
  read_fd_ = -1;
  read_path_.clear();
}

size_t DiskSpool::FirstAfter(uint64_t after_seq) const {
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i].last_seq > after_seq) return i;
  }
  return segments_.size();
}

std::vector<v1::Event> DiskSpool::Next(uint64_t after_seq, size_t max, size_t max_bytes,
                                       absl::Duration linger, absl::Time deadline) {
  std::unique_lock lock(mu_);
  after_seq = std::max(after_seq, acked_seq_);  // acknowledged records of a segment still there
  const uint64_t generation = wake_generation_;
  // Seqs are gapless, so this is the count of records above after_seq.
  auto available = [&] { return last_seq_ > after_seq ? last_seq_ - after_seq : 0; };
  auto wait_until = [&](absl::Time until, uint64_t wake_at_seq, auto done) {
    wake_at_seq_ = wake_at_seq;
    while (!done() && wake_generation_ == generation) {
      const absl::Time now = absl::Now();
      if (now >= until) break;
      changed_.wait_for(lock, absl::ToChronoNanoseconds(until - now));
    }
    wake_at_seq_ = 0;
  };
  wait_until(deadline, after_seq + 1, [&] { return available() > 0; });
  if (available() > 0 && available() < max) {
    wait_until(std::min(deadline, absl::Now() + linger), after_seq + max,
               [&] { return available() >= max; });
  }
  std::vector<v1::Event> out;
  size_t bytes = 0;
  for (size_t i = FirstAfter(after_seq); i < segments_.size() && out.size() < max; ++i) {
    const Segment& segment = segments_[i];
    // The segment being read stays open between calls (closed when it is dropped).
    if (read_path_ != segment.path.string()) {
      CloseReadLocked();
      read_fd_ = open(segment.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (read_fd_ < 0) {
        spdlog::error("{}", Errno("spool: cannot read", segment.path));
        break;
      }
      read_path_ = segment.path.string();
    }
    RecordReader reader(read_fd_, segment.bytes);
    uint64_t offset = 0;
    if (cursor_.segment == segment.path.string() && cursor_.seq <= after_seq) {
      offset = cursor_.offset;
    }
    uint64_t next = 0;
    bool full = false;
    while (out.size() < max && reader.Read(offset, &next)) {
      if (reader.seq > after_seq) {
        if (!out.empty() && bytes + reader.payload_size > max_bytes) {
          full = true;
          break;
        }
        v1::Event event;
        if (!event.ParseFromArray(reader.payload, static_cast<int>(reader.payload_size))) {
          spdlog::error("spool {}: seq {} does not parse; skipped", segment.path.string(),
                        reader.seq);
        } else {
          bytes += reader.payload_size;
          out.push_back(std::move(event));
        }
        cursor_ = {reader.seq, segment.path.string(), next};
      }
      offset = next;
    }
    if (reader.problem != nullptr) {
      spdlog::error("spool {}: {} at offset {}", segment.path.string(), reader.problem, offset);
    }
    if (full) break;
  }
  return out;
}

void DiskSpool::Ack(uint64_t acked_seq) {
  {
    std::lock_guard lock(mu_);
    if (acked_seq <= acked_seq_) return;
    acked_seq_ = acked_seq;
    last_seq_ = std::max(last_seq_, acked_seq);
    DropAckedSegmentsLocked();
  }
  changed_.notify_all();
}

uint64_t DiskSpool::AckedSeq() const {
  std::lock_guard lock(mu_);
  return acked_seq_;
}

uint64_t DiskSpool::DurableSeq() const {
  std::lock_guard lock(mu_);
  // Acknowledged records are safe too (their segment may be gone before a sync).
  return std::max(durable_seq_, std::min(acked_seq_, last_seq_));
}

size_t DiskSpool::Size() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const Segment& segment : segments_) {
    if (segment.last_seq <= acked_seq_) continue;
    n += segment.first_seq > acked_seq_ ? segment.records
                                        : std::min(segment.records, segment.last_seq - acked_seq_);
  }
  return static_cast<size_t>(n);
}

void DiskSpool::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wake_generation_;
  }
  changed_.notify_all();
}

uint64_t DiskSpool::Bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

uint64_t DiskSpool::LastSeq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

size_t DiskSpool::Segments() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

absl::Status DiskSpool::WriteStatus() const {
  std::lock_guard lock(mu_);
  return write_status_;
}

}  // namespace siper::agent

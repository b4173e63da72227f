#include "agent/pending_events.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/time/clock.h"

namespace siper::agent {

MemoryPendingEvents::MemoryPendingEvents(size_t capacity, size_t capacity_bytes, uint64_t acked_seq)
    : capacity_(capacity), capacity_bytes_(capacity_bytes), acked_seq_(acked_seq) {}

size_t MemoryPendingEvents::Room() const {
  std::lock_guard lock(mu_);
  if (events_.size() >= capacity_ || bytes_ >= capacity_bytes_) return 0;
  return capacity_ - events_.size();
}

void MemoryPendingEvents::Append(std::vector<v1::Event> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (v1::Event& event : events) {
      if (event.seq() <= acked_seq_) continue;  // already stored by the server
      const size_t bytes = event.ByteSizeLong();
      bytes_ += bytes;
      last_seq_ = std::max(last_seq_, event.seq());
      events_.push_back({std::move(event), bytes});
    }
  }
  changed_.notify_all();
}

size_t MemoryPendingEvents::FirstAfter(uint64_t after_seq) const {
  auto it =
      std::upper_bound(events_.begin(), events_.end(), after_seq,
                       [](uint64_t seq, const Entry& entry) { return seq < entry.event.seq(); });
  return static_cast<size_t>(it - events_.begin());
}

std::vector<v1::Event> MemoryPendingEvents::Next(uint64_t after_seq, size_t max, size_t max_bytes,
                                                 absl::Duration linger, absl::Time deadline) {
  std::unique_lock lock(mu_);
  const uint64_t generation = wake_generation_;
  auto available = [&] { return events_.size() - FirstAfter(after_seq); };
  auto wait_until = [&](absl::Time until, auto done) {
    while (!done() && wake_generation_ == generation) {
      const absl::Time now = absl::Now();
      if (now >= until) break;
      changed_.wait_for(lock, absl::ToChronoNanoseconds(until - now));
    }
  };
  wait_until(deadline, [&] { return available() > 0; });
  if (available() > 0 && available() < max) {
    wait_until(std::min(deadline, absl::Now() + linger), [&] { return available() >= max; });
  }
  std::vector<v1::Event> out;
  size_t bytes = 0;
  for (size_t i = FirstAfter(after_seq); i < events_.size() && out.size() < max; ++i) {
    if (!out.empty() && bytes + events_[i].bytes > max_bytes) break;
    bytes += events_[i].bytes;
    out.push_back(events_[i].event);
  }
  return out;
}

void MemoryPendingEvents::Ack(uint64_t acked_seq) {
  {
    std::lock_guard lock(mu_);
    if (acked_seq <= acked_seq_) return;
    acked_seq_ = acked_seq;
    while (!events_.empty() && events_.front().event.seq() <= acked_seq) {
      bytes_ -= events_.front().bytes;
      events_.pop_front();
    }
  }
  changed_.notify_all();
}

uint64_t MemoryPendingEvents::AckedSeq() const {
  std::lock_guard lock(mu_);
  return acked_seq_;
}

size_t MemoryPendingEvents::Size() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

uint64_t MemoryPendingEvents::LastSeq() const {
  std::lock_guard lock(mu_);
  return std::max(last_seq_, acked_seq_);
}

uint64_t MemoryPendingEvents::Bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

void MemoryPendingEvents::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wake_generation_;
  }
  changed_.notify_all();
}

}  // namespace siper::agent

// Events that have a sequence number but are not yet acknowledged by the
// server. Collectors append, the shipper reads and sends them, acknowledgements
// release them. This is the seam for the disk spool of issue 4: today only
// MemoryPendingEvents implements it, and the log tailer persists enough
// (offsets.json) to re-read and re-number what was pending after a restart.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "siper/v1/events.pb.h"

namespace siper::agent {

class PendingEvents {
 public:
  virtual ~PendingEvents() = default;

  // How many more events may be appended before collectors must pause.
  virtual size_t Room() const = 0;

  // Appends events whose seqs are ascending and above every seq held. May go
  // over capacity (recovery after a restart puts back what was pending).
  virtual void Append(std::vector<v1::Event> events) = 0;

  // Up to `max` events (and about `max_bytes`, but at least one) with seq >
  // `after_seq`, oldest first. Waits until `max` of them are there, or `linger`
  // after the first one arrived, or `deadline`, or Wake(); returns what is
  // there then (maybe nothing).
  virtual std::vector<v1::Event> Next(uint64_t after_seq, size_t max, size_t max_bytes,
                                      absl::Duration linger, absl::Time deadline) = 0;

  // The server stored every event with seq <= `acked_seq`: release them.
  virtual void Ack(uint64_t acked_seq) = 0;

  // The highest acknowledged seq (0: none yet).
  virtual uint64_t AckedSeq() const = 0;

  // Events held (appended, not acknowledged).
  virtual size_t Size() const = 0;

  // Ends every waiting Next() now.
  virtual void Wake() = 0;

  // Every event with seq <= this is kept durably here (on disk) until it is
  // acknowledged and is replayed after a restart, so collectors need not be
  // able to re-read it. 0: this store keeps nothing across a restart.
  virtual uint64_t DurableSeq() const { return 0; }

  // The highest seq appended or acknowledged (0: none), for rates.
  virtual uint64_t LastSeq() const = 0;
  // Bytes held (on disk for the spool, serialized for memory).
  virtual uint64_t Bytes() const = 0;
  // The most Bytes() may grow to before collectors pause (0: no byte cap), for heartbeats.
  virtual uint64_t CapBytes() const { return 0; }
  // Why Room() is 0 when it is not for size: the last write error of a store
  // that writes (the disk spool), retried meanwhile. OK otherwise.
  virtual absl::Status WriteStatus() const { return absl::OkStatus(); }
};

// Bounded in-memory implementation: everything unacknowledged stays in RAM.
class MemoryPendingEvents final : public PendingEvents {
 public:
  // Room() is 0 once `capacity` events or `capacity_bytes` (serialized) are
  // held. `acked_seq`: acknowledged so far.
  MemoryPendingEvents(size_t capacity, size_t capacity_bytes, uint64_t acked_seq);

  size_t Room() const override;
  void Append(std::vector<v1::Event> events) override;
  std::vector<v1::Event> Next(uint64_t after_seq, size_t max, size_t max_bytes,
                              absl::Duration linger, absl::Time deadline) override;
  void Ack(uint64_t acked_seq) override;
  uint64_t AckedSeq() const override;
  size_t Size() const override;
  void Wake() override;
  uint64_t LastSeq() const override;
  uint64_t Bytes() const override;
  uint64_t CapBytes() const override { return capacity_bytes_; }

 private:
  // Index of the first event with seq > after_seq. Needs mu_.
  size_t FirstAfter(uint64_t after_seq) const;

  struct Entry {
    v1::Event event;
    size_t bytes;
  };

  const size_t capacity_;
  const size_t capacity_bytes_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Entry> events_;  // ascending seq
  size_t bytes_ = 0;
  uint64_t acked_seq_;
  uint64_t last_seq_ = 0;
  uint64_t wake_generation_ = 0;
};

}  // namespace siper::agent

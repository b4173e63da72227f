#include "server/ingest.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/text.h"
#include "server/health_events.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

// The wire form of a FIM event; rules/fim.h maps it to fields and a log source.
rules::FileObservation ToObservation(const siper::v1::Event& event) {
  const siper::v1::FileEvent& file = event.file();
  rules::FileObservation f;
  f.path = file.path();
  absl::StatusOr<rules::FileChange> change =
      rules::ParseFileChange(siper::v1::FileChange_Name(file.change()));
  f.change = change.ok() ? *change : rules::FileChange::kUnknown;
  f.size = file.size();
  f.mode = file.mode();
  f.uid = file.uid();
  f.gid = file.gid();
  f.owner = file.owner();
  f.group = file.group();
  f.sha256 = file.sha256();
  f.mtime_ns = file.mtime_ns();
  f.time_ns = event.agent_time_ns();
  return f;
}

using FieldView = std::pair<std::string_view, std::string_view>;

// True when every name and value is ASCII (so valid UTF-8): one pass over the text, eight
// bytes at a time, the high bits of all words or-ed together. Decoded fields nearly always
// are; only when not is each one checked on its own.
bool AllAscii(const rules::DetectionFields& fields) {
  uint64_t high = 0;
  auto add = [&high](std::string_view s) {
    const char* p = s.data();
    size_t n = s.size();
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      high |= w;
    }
    for (; n > 0; ++p, --n) high |= static_cast<unsigned char>(*p);
  };
  for (const auto& [name, value] : fields) {
    add(name);
    add(value);
  }
  return (high & 0x8080808080808080ULL) == 0;
}

bool AllValidUtf8(const rules::DetectionFields& fields) {
  if (AllAscii(fields)) return true;
  for (const auto& [name, value] : fields) {
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) return false;
  }
  return true;
}

// A snapshot of `fields` with every name and value made valid UTF-8 (invalid bytes become
// U+FFFD), and `extra` (if its name is not empty) set over them. Of names that become
// equal one value is kept, as in the stored map before. The rare path: a field with invalid UTF-8,
// or a line received over the network (log.source.address).
rules::DetectionFields Rebuilt(const rules::DetectionFields& fields, FieldView extra) {
  rules::FieldMap map;
  for (const auto& [name, value] : fields) {
    map.insert_or_assign(ToValidUtf8(name), ToValidUtf8(value));
  }
  if (!extra.first.empty())
    map.insert_or_assign(std::string(extra.first), ToValidUtf8(extra.second));
  return rules::DetectionFields(map);
}

// The record's fields: views of the snapshot, which the record keeps alive.
storage::FieldViews Views(const rules::DetectionFields& fields) {
  storage::FieldViews views;
  if (fields.empty()) return views;
  views.entries = std::span<const FieldView>(fields.begin(), fields.size());
  views.owner = fields.storage();
  return views;
}

}  // namespace

IngestPipeline::IngestPipeline(storage::Store* store, const rules::LiveRuleSet* rules,
                               const rules::LiveIocSet* ioc, int workers, int writers)
    : store_(store),
      rules_(rules),
      ioc_(ioc),
      worker_count_(workers < 1 ? 1 : workers),
      writer_count_(writers < 1 ? 1 : writers) {}

IngestPipeline::~IngestPipeline() { Stop(); }

absl::Status IngestPipeline::Start() {
  for (int i = 0; i < worker_count_; ++i) {
    auto worker = std::make_unique<Worker>();
    if (rules_ != nullptr) worker->matcher = std::make_unique<rules::LiveMatcher>(rules_, ioc_);
    workers_.push_back(std::move(worker));
  }
  for (int i = 0; i < writer_count_; ++i) writers_.push_back(std::make_unique<Writer>());
  // Named, so that per-thread figures (/proc/PID/task/*/comm, perf --sort comm) tell
  // the stages apart.
  for (auto& writer : writers_) {
    writer->thread = std::thread([this, w = writer.get()] {
      pthread_setname_np(pthread_self(), "siper-write");
      WriterLoop(w);
    });
  }
  for (auto& worker : workers_) {
    worker->thread = std::thread([this, w = worker.get()] {
      pthread_setname_np(pthread_self(), "siper-match");
      WorkerLoop(w);
    });
  }
  return absl::OkStatus();
}

void IngestPipeline::Submit(std::string agent_id, siper::v1::EventBatch batch, Done done) {
  if (!stopping_ && !workers_.empty()) {
    Worker& worker = *workers_[std::hash<std::string>()(agent_id) % workers_.size()];
    bool queued = false, wake = false;
    {
      std::lock_guard<std::mutex> lock(worker.mu);
      // Checked again under the worker's lock: Stop() sets the flag, then takes
      // each lock, so a job queued here is seen by the draining worker.
      if (!stopping_) {
        Metrics().ingest_queue_depth.Add(1);
        // Only an empty queue can have the worker asleep; a busy worker takes the job
        // when it is done with the one before, without a wake-up.
        wake = worker.queue.empty();
        worker.queue.push_back(Job{std::move(agent_id), std::move(batch), std::move(done)});
        queued = true;
      }
    }
    // Woken outside the lock, so the worker does not wake only to block on it.
    if (wake) worker.cv.notify_one();
    if (queued) return;
  }
  done(absl::UnavailableError("server is shutting down"));
}

void IngestPipeline::Stop() {
  stopping_ = true;
  for (auto& worker : workers_) {
    { std::lock_guard<std::mutex> lock(worker->mu); }
    worker->cv.notify_all();
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  // Every matched batch is queued for a writer now; let them drain.
  workers_done_ = true;
  for (auto& writer : writers_) {
    { std::lock_guard<std::mutex> lock(writer->mu); }
    writer->cv.notify_all();
  }
  for (auto& writer : writers_) {
    if (writer->thread.joinable()) writer->thread.join();
  }
}

void IngestPipeline::WorkerLoop(Worker* worker) {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(worker->mu);
      worker->cv.wait(lock, [&] { return stopping_ || !worker->queue.empty(); });
      if (worker->queue.empty()) return;  // stopping, and all queued work is done
      job = std::move(worker->queue.front());
      worker->queue.pop_front();
      Metrics().ingest_queue_depth.Add(-1);
    }
    // The agent id is copied: Process still reads it (health events are trusted only from
    // the server's own agent id).
    WriteJob write{job.agent_id, {}, std::move(job.done), worker};
    try {
      write.records = Process(worker->matcher.get(), job.agent_id, job.batch);
    } catch (const std::exception& e) {
      write.done(absl::InternalError(absl::StrCat("ingest failed: ", e.what())));
      continue;
    }
    // Written here when nothing waits to be matched and every batch this worker handed
    // to a writer is complete (so all earlier batches of its agents are, and this one
    // completes after them): the worker would only sleep meanwhile, and a writer's
    // wake-up is one more thread hand-off per batch. Under load (a queue behind this
    // batch) it goes to a writer, so matching goes on and up to `writers` writes share
    // a group commit.
    bool write_here = false;
    if (worker->handed_off.load() == 0) {
      std::lock_guard<std::mutex> lock(worker->mu);
      write_here = worker->queue.empty();
    }
    if (write_here) {
      write.from = nullptr;
      Write(write);
      continue;
    }
    // The agent's writer, so its batches are written and completed in order.
    Writer& writer = *writers_[std::hash<std::string>()(write.agent_id) % writers_.size()];
    worker->handed_off.fetch_add(1);
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(writer.mu);
      wake = writer.queue.empty();  // as in Submit: only an idle writer waits
      writer.queue.push_back(std::move(write));
    }
    if (wake) writer.cv.notify_one();
  }
}

void IngestPipeline::WriterLoop(Writer* writer) {
  for (;;) {
    WriteJob job;
    {
      std::unique_lock<std::mutex> lock(writer->mu);
      writer->cv.wait(lock, [&] { return workers_done_ || !writer->queue.empty(); });
      if (writer->queue.empty()) return;  // the workers are done, and so is this queue
      job = std::move(writer->queue.front());
      writer->queue.pop_front();
    }
    Worker* from = job.from;
    Write(job);                                          // completes the batch (runs `done`) ...
    if (from != nullptr) from->handed_off.fetch_sub(1);  // ... before its worker may write
  }
}

void IngestPipeline::Write(WriteJob& job) {
  absl::StatusOr<storage::WriteResult> result;
  try {
    const absl::Time write_start = absl::Now();
    result = store_->Write(job.agent_id, job.records);
    Metrics().write_seconds.ObserveNanos(absl::ToInt64Nanoseconds(absl::Now() - write_start));
    if (result.ok()) {
      Metrics().events_stored.Add(result->stored);
      Metrics().events_duplicate.Add(result->duplicates);
      for (const storage::EventRecord& r : job.records) {
        if (!r.duplicate) Metrics().alerts_stored.Add(r.alerts.size());
      }
    }
    if (result.ok() && stored_hook_) stored_hook_(job.agent_id, job.records);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("ingest failed: ", e.what()));
  }
  job.done(std::move(result));
}

std::vector<storage::EventRecord> IngestPipeline::Process(rules::LiveMatcher* matcher,
                                                          const std::string& agent_id,
                                                          siper::v1::EventBatch& batch) {
  std::vector<storage::EventRecord> records;
  records.reserve(batch.events_size());
  for (siper::v1::Event& event : *batch.mutable_events()) {
    storage::EventRecord& record = records.emplace_back();
    // The decoded fields as the matcher's one-allocation snapshot (shared with the
    // event's detections), stored from views: no map of strings is built.
    rules::DetectionFields fields;
    absl::StatusOr<std::vector<rules::Detection>> detections = std::vector<rules::Detection>{};
    if (event.has_file()) {
      // FIM observations go through the same matcher (log source siper/fim).
      rules::FileObservation file = ToObservation(event);
      if (matcher != nullptr) {
        detections = matcher->ProcessFile(file, &fields);
      } else {
        rules::FieldMap map;
        rules::FileObservationFields(file, &map);
        fields = rules::DetectionFields(map);
      }
    } else if (event.has_log() && matcher != nullptr) {
      const siper::v1::LogEvent& log = event.log();
      const absl::Time match_start = absl::Now();
      detections = matcher->Process(log.line(), MatchSource(agent_id, log.source()),
                                    rules::InputFormat::kAuto, &fields);
      Metrics().match_seconds.ObserveNanos(absl::ToInt64Nanoseconds(absl::Now() - match_start));
    }
    if (!detections.ok()) {
      // An event the engine cannot take is still stored: losing it would hide it.
      spdlog::warn("agent {} seq {}: matching failed: {}", agent_id, event.seq(),
                   detections.status().ToString());
      detections = std::vector<rules::Detection>{};
    }
    // Stored fields are protobuf strings, which must be valid UTF-8; the raw bytes stay
    // untouched in the log payload. Valid text (nearly all of it) is checked once for the
    // whole event and neither copied nor changed.
    const bool valid = AllValidUtf8(fields);
    for (rules::Detection& d : *detections) {
      siper::v1::Alert& alert = record.alerts.emplace_back();
      alert.set_rule_id(std::move(d.rule_id));
      alert.set_title(std::move(d.title));
      alert.set_level(std::move(d.level));
      for (std::string& tag : d.tags) alert.add_tags(std::move(tag));
      // The alert's fields go to the store as views of the detection's snapshot, as the
      // event's do (no protobuf map is built): mostly the event's own snapshot (checked
      // above); a correlation's may be another. Invalid UTF-8 gets a rebuilt snapshot.
      const bool alert_valid = d.fields.begin() == fields.begin() ? valid : AllValidUtf8(d.fields);
      record.alert_fields.push_back(Views(alert_valid ? d.fields : Rebuilt(d.fields, FieldView())));
      alert.set_count(d.count);
    }
    // A line received over the network (the agent's syslog_udp): who sent it,
    // as the agent's kernel saw it (ECS log.source.address).
    const bool has_address = event.has_log() && !event.log().source_address().empty();
    if (!valid || has_address) {
      fields = Rebuilt(fields, has_address
                                   ? FieldView("log.source.address", event.log().source_address())
                                   : FieldView());
    }
    record.fields = Views(fields);
    record.event = std::move(event);
  }
  return records;
}

}  // namespace siper::server

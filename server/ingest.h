// The ingest pipeline: decode, match and store agent batches on a pool of
// workers, each with its own Matcher (and so its own Hyperscan scratch and
// correlation state). An agent's batches always go to the same worker, so its
// events are matched in order and its correlations see all of them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/engine.h"
#include "rules/live_rules.h"
#include "server/storage/store.h"
#include "siper/v1/events.pb.h"

namespace siper::server {

class IngestPipeline {
 public:
  using Done = std::function<void(absl::StatusOr<storage::WriteResult>)>;

  // `rules` may be null: events are then stored without matching. Each worker
  // matches with the rule set and IOC set (`ioc` may be null) live at the time,
  // moving to a newly published one between two events (rules/live_rules.h);
  // both must outlive the pipeline. `writers` threads call Store::Write (mostly
  // waiting for the WAL sync): the more writes wait together, the more share
  // one group commit, while the `workers` keep matching.
  IngestPipeline(storage::Store* store, const rules::LiveRuleSet* rules,
                 const rules::LiveIocSet* ioc, int workers, int writers = kDefaultWriters);
  static constexpr int kDefaultWriters = 16;
  ~IngestPipeline();
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Creates the workers' matchers and starts them.
  [[nodiscard]] absl::Status Start();

  // Queues a batch from `agent_id`; `done` runs on a writer thread (or on the
  // worker, when it writes the batch itself) once it is durably stored or has failed. One agent's
  // batches are matched, written and completed in the order they were submitted. Callers bound what
  // they submit (agent_service.cc: batches in flight per stream and in total).
  void Submit(std::string agent_id, siper::v1::EventBatch batch, Done done);

  // Finishes queued work, then joins the workers.
  void Stop();

  // Runs on the worker after every successful Store::Write with that batch's records (alerts
  // carry their stored ids; resent records are flagged duplicate), before the batch is
  // acknowledged. How ingest hands alerts on without knowing who takes them (incidents).
  // Set before Start.
  using StoredHook = std::function<void(const std::string& agent_id,
                                        const std::vector<storage::EventRecord>& records)>;
  void SetStoredHook(StoredHook hook) { stored_hook_ = std::move(hook); }

  // What a worker does with one batch of `agent_id`: decodes and matches every event with
  // `matcher` (null: decoded fields only for FIM events, nothing matched) into the records
  // to store. Public for bench/server/ingest_bench (the worker's instructions per event).
  static std::vector<storage::EventRecord> Process(rules::LiveMatcher* matcher,
                                                   const std::string& agent_id,
                                                   siper::v1::EventBatch& batch);

 private:
  struct Job {
    std::string agent_id;
    siper::v1::EventBatch batch;
    Done done;
  };
  struct Worker;
  struct WriteJob {
    std::string agent_id;
    std::vector<storage::EventRecord> records;
    Done done;
    Worker* from = nullptr;  // the worker that matched it
  };
  struct Worker {
    std::unique_ptr<rules::LiveMatcher> matcher;  // null when there are no rules
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;
    std::thread thread;
    // Batches this worker handed to writers and not yet completed. While there are
    // none and nothing waits to be matched, the worker writes its batch itself
    // (no hand-off, no wake-up), and its agents' batches still complete in order.
    std::atomic<int> handed_off{0};
  };
  struct Writer {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<WriteJob> queue;
    std::thread thread;
  };
  void WorkerLoop(Worker* worker);
  void WriterLoop(Writer* writer);
  void Write(WriteJob& job);

  storage::Store* store_;
  const rules::LiveRuleSet* rules_;
  const rules::LiveIocSet* ioc_;
  int worker_count_;
  int writer_count_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Writer>> writers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> workers_done_{false};  // writers drain, then stop
  StoredHook stored_hook_;
};

}  // namespace siper::server

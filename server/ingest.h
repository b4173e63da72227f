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
  // moving to a newly published one between two events (rules/live_rules.h).
  // Both must outlive the pipeline.
  IngestPipeline(storage::Store* store, const rules::LiveRuleSet* rules,
                 const rules::LiveIocSet* ioc, int workers);
  ~IngestPipeline();
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Creates the workers' matchers and starts them.
  [[nodiscard]] absl::Status Start();

  // Queues a batch from `agent_id`; `done` runs on a worker thread once it is
  // durably stored or has failed. Callers keep at most one batch in flight per
  // stream, so the queue is bounded by the number of streams.
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

 private:
  struct Job {
    std::string agent_id;
    siper::v1::EventBatch batch;
    Done done;
  };
  struct Worker {
    std::unique_ptr<rules::LiveMatcher> matcher;  // null when there are no rules
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;
    std::thread thread;
  };
  void WorkerLoop(Worker* worker);
  absl::StatusOr<storage::WriteResult> Process(rules::LiveMatcher* matcher, Job& job);

  storage::Store* store_;
  const rules::LiveRuleSet* rules_;
  const rules::LiveIocSet* ioc_;
  int worker_count_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  StoredHook stored_hook_;
};

}  // namespace siper::server

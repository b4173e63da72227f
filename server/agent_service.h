// AgentService: enrollment with one-time tokens, and the event stream.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "server/dev_pki.h"
#include "server/health_monitor.h"
#include "server/ingest.h"
#include "server/metrics.h"
#include "server/storage/store.h"
#include "siper/v1/agent_service.grpc.pb.h"

namespace siper::server {

// What a stream does to every event of a received batch before it is queued: an empty
// agent id becomes `agent_id`, another one is refused (kForeignAgentId,
// PERMISSION_DENIED), a seq of 0 is refused (kNoSeq, INVALID_ARGUMENT); decoded fields
// are cleared (they are the server's to decode) and so is the server time (never the
// agent's claim: the store stamps each write, storage::Store::Write). On a refusal
// *reason says why; the batch may then be partly changed and must be dropped. Public for
// bench/server/ingest_bench.
[[nodiscard]] absl::Status PrepareBatch(std::string_view agent_id, siper::v1::EventBatch* batch,
                                        RejectReason* reason);

struct AgentServiceOptions {
  absl::Duration agent_cert_validity = absl::Hours(24 * 365);
  size_t max_batch_events = 10000;    // a larger batch is refused
  size_t max_batch_bytes = 16 << 20;  // a larger message (decompressed) is refused unparsed
  // Back-pressure. A stream reads its next batch while at most this many of
  // its batches are queued or being stored (acks still go out in order, each
  // after its durable write) ...
  size_t max_batches_in_flight = 4;
  // ... and while all streams together hold fewer than these; above them a
  // stream waits for its own acks, and HTTP/2 flow control holds its agent.
  // A stream may always have one batch in flight, so none starves.
  size_t max_queued_events = 200000;
  size_t max_queued_bytes = 256 << 20;
  // While paused (disk nearly full), batches are refused with UNAVAILABLE. Null: never.
  const IngestGate* gate = nullptr;
  // The registry entry (last seen, last seq, event count) of an agent that sends batches is
  // written at most this often, for all agents in one write batch, off the ack path.
  absl::Duration registry_flush_interval = absl::Seconds(1);
};

// The agent streams' registry updates, coalesced: a stream marks its agent's entry after
// every stored batch and a thread writes every marked entry once per interval in one
// RocksDB write batch (Store::UpdateAgents: never re-creates a removed entry, never undoes
// a revocation). Before, every stored batch waited for its own synced registry write.
// The registry is bookkeeping: what an agent sent is known from the events themselves
// (Store::LastSeq), so up to one interval of last-seen lag is the only cost.
class RegistryFlusher {
 public:
  RegistryFlusher(storage::Store* store, absl::Duration interval);
  ~RegistryFlusher();
  RegistryFlusher(const RegistryFlusher&) = delete;
  RegistryFlusher& operator=(const RegistryFlusher&) = delete;

  // The newest state of an agent's entry, to be written with the next flush.
  void Mark(const siper::v1::AgentInfo& info);
  // Writes what is marked now (also done by the thread, and by Stop).
  absl::Status Flush();
  // Forgets what is marked without writing it (a restored store replaces the registry).
  void Discard();
  void Stop();

 private:
  void Run();
  storage::Store* store_;
  absl::Duration interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, siper::v1::AgentInfo> marked_;
  std::mutex flush_mu_;  // one flush at a time
  std::thread thread_;
};

// Why batches or streams were refused, counted since start (for logs and metrics).
struct AgentStreamStats {
  uint64_t rejected_oversized = 0;  // too many events or bytes
  uint64_t rejected_malformed = 0;  // not an AgentMessage, no seq, empty message
  uint64_t rejected_identity = 0;   // an event or hello claiming another agent id
  uint64_t store_failures = 0;      // a batch the store could not write
  uint64_t queued_events = 0;       // now, over all streams
  uint64_t queued_bytes = 0;
};

// Shared by the streams: the global bound on what is queued, and the counters.
struct AgentStreamShared {
  std::atomic<int64_t> queued_events{0};
  std::atomic<int64_t> queued_bytes{0};
  std::atomic<uint64_t> rejected_oversized{0};
  std::atomic<uint64_t> rejected_malformed{0};
  std::atomic<uint64_t> rejected_identity{0};
  std::atomic<uint64_t> store_failures{0};
  RegistryFlusher* registry = nullptr;
  std::atomic<bool> restoring{false};  // an online restore: batches are refused for now
  // Bumped on every revocation: each open stream then reads its own registry entry again
  // at its next message and ends if it was the one revoked (one atomic load otherwise).
  std::atomic<uint64_t> revocations{0};
};

// Stream takes raw bytes (WithRawCallbackMethod_Stream) so that the service
// parses each message itself: a message that is not an AgentMessage is
// refused with INVALID_ARGUMENT and counted, and an oversized one is refused
// before it is parsed. The wire format is AgentService.Stream's.
class AgentServiceImpl final : public siper::v1::AgentService::WithCallbackMethod_Enroll<
                                   siper::v1::AgentService::WithCallbackMethod_Renew<
                                       siper::v1::AgentService::WithRawCallbackMethod_Stream<
                                           siper::v1::AgentService::Service>>> {
 public:
  AgentServiceImpl(storage::Store* store, IngestPipeline* ingest, const ServerPki* pki,
                   AgentServiceOptions options = {});

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const siper::v1::EnrollRequest* request,
                                   siper::v1::EnrollResponse* response) override;

  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* context,
                                  const siper::v1::RenewRequest* request,
                                  siper::v1::RenewResponse* response) override;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override;

  AgentStreamStats stats() const;
  RegistryFlusher& registry() { return registry_; }
  // While set (an online restore swaps the store), batches are refused with UNAVAILABLE
  // and not taken: the agent keeps them spooled and resends them after its backoff.
  void SetRestoring(bool restoring) { shared_.restoring = restoring; }
  // An agent was revoked in the registry: its open stream, if any, ends at its next
  // message (PERMISSION_DENIED; that message is not taken) instead of delivering until
  // it reconnects.
  void AgentRevoked() { shared_.revocations.fetch_add(1); }

 private:
  absl::Status DoEnroll(const grpc::CallbackServerContext& context,
                        const siper::v1::EnrollRequest& request,
                        siper::v1::EnrollResponse* response);
  absl::Status DoRenew(const grpc::CallbackServerContext& context,
                       const siper::v1::RenewRequest& request, siper::v1::RenewResponse* response);

  storage::Store* store_;
  IngestPipeline* ingest_;
  const ServerPki* pki_;
  AgentServiceOptions options_;
  RegistryFlusher registry_;
  AgentStreamShared shared_;
};

}  // namespace siper::server

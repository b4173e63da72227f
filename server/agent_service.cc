#include "server/agent_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/status.h"
#include "common/text.h"
#include "server/auth.h"
#include "server/health_events.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

// One reactor per agent stream. Batches are parsed here and handed to the
// ingest pipeline; the next message is read only while this stream has fewer
// than max_batches_in_flight batches queued or being stored and all streams
// together stay under the global bound, so HTTP/2 flow control pushes back on
// the agent instead of memory growing. The pipeline completes an agent's
// batches in order, so acks go out in order, each after its batch is durable;
// an ack that finds the previous one still being sent is merged into the next
// (acks are cumulative). Finish waits until nothing is in flight.
//
// Every gRPC operation is decided under mu_ (Step) and started outside it; Finish
// also waits until every operation decided has been started. The reactor is
// deleted when gRPC is done with it (OnDone) and no ingest callback still runs
// on it (refs_): an ingest thread's Step after its batch is acked must not find
// the reactor freed by a Finish on another thread.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(grpc::CallbackServerContext* context, storage::Store* store, IngestPipeline* ingest,
                const AgentServiceOptions& options, AgentStreamShared* shared)
      : context_(context), store_(store), ingest_(ingest), options_(options), shared_(shared) {
    absl::StatusOr<pki::Identity> id = RequireRole(*context, {pki::kRoleAgent});
    if (!id.ok()) {
      Metrics().RejectStream(StreamRejectReason::kNotAgent);
      Fail(ToGrpc(id.status()));
      return;
    }
    agent_id_ = id->common_name;
    // Before the registry is read: a revocation after this load is seen at the next message.
    revocations_seen_ = shared_->revocations.load();
    if (agent_id_ == kInternalAgentId) {  // reserved for the server's own health events
      Metrics().RejectStream(StreamRejectReason::kReservedId);
      Fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("agent id ", agent_id_, " is reserved")));
      return;
    }
    absl::StatusOr<std::optional<siper::v1::AgentInfo>> info = store_->GetAgent(agent_id_);
    if (!info.ok()) {
      Metrics().RejectStream(StreamRejectReason::kRegistryError);
      Fail(ToGrpc(info.status()));
      return;
    }
    if (!info->has_value()) {
      Metrics().RejectStream(StreamRejectReason::kNotRegistered);
      Fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("agent ", agent_id_, " is not registered")));
      return;
    }
    if ((*info)->revoked()) {
      spdlog::warn("refused stream of revoked agent {}", agent_id_);
      Metrics().RejectStream(StreamRejectReason::kRevoked);
      Fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("agent ", agent_id_, " has been revoked")));
      return;
    }
    info_ = **info;
    info_.set_address(context->peer());
    registered_ = true;
    spdlog::info("agent {} connected from {}", agent_id_, context->peer());
    Step();
  }

  void OnReadDone(bool ok) override {
    // in_ stays ours until reading_ is cleared: an ingest worker's Step (an ack) must not
    // start the next read into in_ while HandleMessage still parses it (that overlap freed
    // the buffer twice under load).
    if (ok) HandleMessage();
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      // The agent closed its side or went away: finish once what is in flight is acked.
      if (!ok) read_closed_ = true;
    }
    Step();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    if (!ok) Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot send acknowledgement"));
    Step();
  }

  void OnDone() override { Unref(); }

 private:
  void HandleMessage() {
    if (!StillAllowed()) return;
    const size_t bytes = in_.Length();
    if (bytes > options_.max_batch_bytes) {
      ++shared_->rejected_oversized;
      Metrics().Reject(RejectReason::kTooLarge, 0);  // refused unparsed: events unknown
      Fail(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("message of ", bytes, " bytes is larger than the limit of ",
                                     options_.max_batch_bytes)));
      return;
    }
    siper::v1::AgentMessage message;
    if (grpc::Status parsed =
            grpc::SerializationTraits<siper::v1::AgentMessage>::Deserialize(&in_, &message);
        !parsed.ok()) {
      ++shared_->rejected_malformed;
      Metrics().Reject(RejectReason::kMalformed, 0);
      Fail(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("message of ", bytes,
                       " bytes is not a siper.v1.AgentMessage: ", parsed.error_message())));
      return;
    }
    switch (message.kind_case()) {
      case siper::v1::AgentMessage::kHello:
        if (!message.hello().agent_id().empty() && message.hello().agent_id() != agent_id_) {
          ++shared_->rejected_identity;
          Metrics().Reject(RejectReason::kForeignAgentId, 0);
          Fail(grpc::Status(
              grpc::StatusCode::PERMISSION_DENIED,
              absl::StrCat("hello claims agent id '", EscapeForTerminal(message.hello().agent_id()),
                           "' but the certificate is for ", agent_id_)));
          return;
        }
        {
          std::lock_guard<std::mutex> lock(info_mu_);
          info_.set_version(message.hello().version());
          if (!message.hello().hostname().empty()) info_.set_hostname(message.hello().hostname());
        }
        Touch(0, 0);
        return;
      case siper::v1::AgentMessage::kHeartbeat: {
        std::lock_guard<std::mutex> lock(info_mu_);
        info_.set_version(message.heartbeat().version());
        RecordHeartbeat(message.heartbeat(), absl::Now(), &info_);
      }
        Touch(0, 0);
        return;
      case siper::v1::AgentMessage::kBatch:
        HandleBatch(std::move(*message.mutable_batch()), bytes);
        return;
      default:
        ++shared_->rejected_malformed;
        Metrics().Reject(RejectReason::kMalformed, 0);
        Fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty agent message"));
        return;
    }
  }

  // False (and the stream failed) when this agent was revoked since the stream began. Only
  // after some revocation (rare) is the registry read; otherwise one atomic load. Runs on
  // the reading thread only (OnReadDone), so revocations_seen_ needs no lock.
  bool StillAllowed() {
    const uint64_t revocations = shared_->revocations.load();
    if (revocations == revocations_seen_) return true;
    revocations_seen_ = revocations;
    absl::StatusOr<std::optional<siper::v1::AgentInfo>> info = store_->GetAgent(agent_id_);
    if (!info.ok()) {
      spdlog::warn("agent {}: cannot re-read registry after a revocation: {}", agent_id_,
                   info.status().ToString());
      return true;
    }
    if (!info->has_value() || !(*info)->revoked()) return true;
    spdlog::warn("agent {} has been revoked: ending its open stream", agent_id_);
    Metrics().RejectStream(StreamRejectReason::kRevoked);
    Fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("agent ", agent_id_, " has been revoked")));
    return false;
  }

  void HandleBatch(siper::v1::EventBatch batch, size_t bytes) {
    const int count = batch.events_size();
    Metrics().batches_received.Add();
    Metrics().events_received.Add(count);
    if (options_.gate != nullptr && options_.gate->paused()) {
      // Not taken, so not acknowledged: the agent keeps it spooled and resends it.
      Metrics().Reject(RejectReason::kDiskLow, count);
      Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "server disk nearly full: batch not taken, keep it and retry later"));
      return;
    }
    if (shared_->restoring.load()) {
      Metrics().Reject(RejectReason::kRestoring, count);
      Fail(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "server is restoring a backup: batch not taken, keep it and retry later"));
      return;
    }
    if (static_cast<size_t>(count) > options_.max_batch_events) {
      ++shared_->rejected_oversized;
      Metrics().Reject(RejectReason::kTooLarge, count);
      Fail(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("batch of ", batch.events_size(), " events is larger than the limit of ",
                       options_.max_batch_events)));
      return;
    }
    RejectReason reason = RejectReason::kMalformed;
    if (absl::Status st = PrepareBatch(agent_id_, &batch, &reason); !st.ok()) {
      if (reason == RejectReason::kForeignAgentId) {
        spdlog::warn("agent {}: {}", agent_id_, std::string(st.message()));
        ++shared_->rejected_identity;
      } else {
        ++shared_->rejected_malformed;
      }
      Metrics().Reject(reason, count);
      Fail(ToGrpc(st));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    shared_->queued_events += count;
    shared_->queued_bytes += static_cast<int64_t>(bytes);
    refs_.fetch_add(1);  // released at the end of OnStored
    ingest_->Submit(agent_id_, std::move(batch),
                    [this, count, bytes](absl::StatusOr<storage::WriteResult> result) {
                      OnStored(count, bytes, std::move(result));
                      Unref();
                    });
  }

  // Runs on an ingest worker, in the order the batches were submitted.
  void OnStored(int count, size_t bytes, absl::StatusOr<storage::WriteResult> result) {
    shared_->queued_events -= count;
    shared_->queued_bytes -= static_cast<int64_t>(bytes);
    if (!result.ok()) {
      spdlog::error("agent {}: batch of {} events not stored: {}", agent_id_, count,
                    result.status().ToString());
      ++shared_->store_failures;
      Metrics().Reject(RejectReason::kStoreFailed, static_cast<uint64_t>(count));
      Fail(ToGrpc(result.status()));
    } else {
      Touch(result->max_seq, result->stored, /*batch=*/true);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
      if (result.ok() && !failed_) {
        siper::v1::Ack& ack = pending_ack_;
        ack.set_acked_seq(std::max(ack.acked_seq(), result->max_seq));
        ack.set_stored(ack.stored() + result->stored);
        ack.set_duplicates(ack.duplicates() + result->duplicates);
        has_pending_ack_ = true;
      }
    }
    Step();
  }

  // Ends the stream with `status` once nothing is in flight; the first failure wins.
  void Fail(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed_) return;
      failed_ = true;
      finish_status_ = status;
      has_pending_ack_ = false;
    }
    Step();
  }

  // Decides, under the lock, what to start next: an ack, a read, or Finish.
  void Step() {
    bool write = false, read = false, finish = false;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      if (!writing_ && has_pending_ack_ && !failed_) {
        siper::v1::ServerMessage out;
        *out.mutable_ack() = pending_ack_;
        pending_ack_.Clear();
        has_pending_ack_ = false;
        bool own = false;
        out_.Clear();
        write =
            grpc::SerializationTraits<siper::v1::ServerMessage>::Serialize(out, &out_, &own).ok();
        writing_ = write;
      }
      if (!reading_ && !read_closed_ && !failed_ && CanReadAhead()) {
        reading_ = read = true;
      }
      const bool drained = in_flight_ == 0 && !writing_ && !has_pending_ack_ && starting_ == 0;
      if (drained && (failed_ || read_closed_) && !write && !read) {
        finished_ = finish = true;
        status = failed_ ? finish_status_ : grpc::Status::OK;
      }
      if (write || read) ++starting_;
    }
    if (write || read) {
      if (write) StartWrite(&out_);
      if (read) StartRead(&in_);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --starting_;
      }
      Step();  // a Finish held back while these were being started
      return;
    }
    if (finish) {
      if (!status.ok()) spdlog::info("agent {} stream ends: {}", agent_id_, status.error_message());
      Finish(status);
    }
  }

  // Under mu_. One batch may always be in flight, so no stream starves.
  bool CanReadAhead() const {
    if (in_flight_ == 0) return true;
    return static_cast<size_t>(in_flight_) < options_.max_batches_in_flight &&
           shared_->queued_events.load() < static_cast<int64_t>(options_.max_queued_events) &&
           shared_->queued_bytes.load() < static_cast<int64_t>(options_.max_queued_bytes);
  }

  // Records that the agent was seen; registry errors are logged, not fatal. After a stored
  // batch the entry is only marked (RegistryFlusher writes it within an interval); a hello
  // or heartbeat (rare) is written at once.
  void Touch(uint64_t last_seq, uint32_t stored, bool batch = false) {
    std::lock_guard<std::mutex> lock(info_mu_);
    if (!registered_) return;  // refused before the registry entry was read
    int64_t now = absl::ToUnixNanos(absl::Now());
    if (info_.first_seen_ns() == 0) info_.set_first_seen_ns(now);
    info_.set_last_seen_ns(now);
    if (last_seq > info_.last_seq()) info_.set_last_seq(last_seq);
    info_.set_events(info_.events() + stored);
    if (batch && shared_->registry != nullptr) {
      shared_->registry->Mark(info_);
      return;
    }
    // An admin may have revoked the agent since this stream began: UpdateAgents never
    // writes that back (nor re-creates an entry a restore removed).
    if (absl::StatusOr<size_t> st = store_->UpdateAgents({info_}, /*sync=*/true); !st.ok()) {
      spdlog::warn("agent {}: cannot update registry: {}", agent_id_, st.status().ToString());
    }
  }

  grpc::CallbackServerContext* context_;
  storage::Store* store_;
  IngestPipeline* ingest_;
  const AgentServiceOptions& options_;
  AgentStreamShared* shared_;
  std::string agent_id_;

  std::mutex info_mu_;  // the registry entry: touched from gRPC and ingest threads
  siper::v1::AgentInfo info_;
  bool registered_ = false;

  grpc::ByteBuffer in_;
  grpc::ByteBuffer out_;
  std::mutex mu_;  // the stream's state below
  int in_flight_ = 0;
  bool reading_ = false;
  bool read_closed_ = false;
  bool writing_ = false;
  bool has_pending_ack_ = false;
  siper::v1::Ack pending_ack_;
  bool failed_ = false;
  uint64_t revocations_seen_ = 0;  // shared_->revocations when last checked
  grpc::Status finish_status_;
  bool finished_ = false;
  int starting_ = 0;  // operations decided by a Step and not yet started
  // gRPC's reference (until OnDone) plus one per batch in the ingest pipeline.
  std::atomic<int> refs_{1};

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
};

}  // namespace

absl::Status PrepareBatch(std::string_view agent_id, siper::v1::EventBatch* batch,
                          RejectReason* reason) {
  for (siper::v1::Event& event : *batch->mutable_events()) {
    if (event.agent_id().empty()) {
      event.set_agent_id(std::string(agent_id));
    } else if (event.agent_id() != agent_id) {
      *reason = RejectReason::kForeignAgentId;
      return absl::PermissionDeniedError(absl::StrCat(
          "event seq ", event.seq(), " claims agent id '", EscapeForTerminal(event.agent_id()),
          "' but the certificate is for ", std::string(agent_id)));
    }
    if (event.seq() == 0) {
      *reason = RejectReason::kNoSeq;
      return absl::InvalidArgumentError("event without a sequence number (seq starts at 1)");
    }
    event.clear_fields();  // fields are the server's to decode
    // Never the agent's claim. The store stamps the batch when it writes it: an agent's
    // batches are written one after another, in the order they came (IngestPipeline), so
    // its events keep that order; and the events and alerts families then receive keys in
    // time order, which their memtable insert hints need (storage README, "Server time").
    event.clear_server_time_ns();
  }
  return absl::OkStatus();
}

AgentServiceImpl::AgentServiceImpl(storage::Store* store, IngestPipeline* ingest,
                                   const ServerPki* pki, AgentServiceOptions options)
    : store_(store),
      ingest_(ingest),
      pki_(pki),
      options_(options),
      registry_(store, options.registry_flush_interval) {
  shared_.registry = &registry_;
}

RegistryFlusher::RegistryFlusher(storage::Store* store, absl::Duration interval)
    : store_(store), interval_(interval) {
  thread_ = std::thread([this] { Run(); });
}

RegistryFlusher::~RegistryFlusher() { Stop(); }

void RegistryFlusher::Mark(const siper::v1::AgentInfo& info) {
  std::lock_guard<std::mutex> lock(mu_);
  marked_[info.agent_id()] = info;
}

absl::Status RegistryFlusher::Flush() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  std::map<std::string, siper::v1::AgentInfo> marked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    marked.swap(marked_);
  }
  if (marked.empty()) return absl::OkStatus();
  std::vector<siper::v1::AgentInfo> agents;
  agents.reserve(marked.size());
  for (auto& [id, info] : marked) agents.push_back(std::move(info));
  // Not synced: the next synced event batch syncs the WAL anyway, and nothing is acked
  // on the strength of a registry entry.
  absl::StatusOr<size_t> written = store_->UpdateAgents(agents, /*sync=*/false);
  return written.status();
}

void RegistryFlusher::Discard() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  marked_.clear();
}

void RegistryFlusher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(interval_), [&] { return stopping_; });
    lock.unlock();
    if (absl::Status st = Flush(); !st.ok()) {
      spdlog::warn("agent registry: last-seen updates not written: {}", st.ToString());
    }
    lock.lock();
  }
}

void RegistryFlusher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (absl::Status st = Flush(); !st.ok()) {
    spdlog::warn("agent registry: last-seen updates not written: {}", st.ToString());
  }
}

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const siper::v1::EnrollRequest* request,
                                                   siper::v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status st = DoEnroll(*context, *request, response);
  if (!st.ok())
    spdlog::warn("enrollment from {} refused: {}", context->peer(), std::string(st.message()));
  reactor->Finish(ToGrpc(st));
  return reactor;
}

absl::Status AgentServiceImpl::DoEnroll(const grpc::CallbackServerContext& context,
                                        const siper::v1::EnrollRequest& request,
                                        siper::v1::EnrollResponse* response) {
  if (request.token().empty()) return absl::InvalidArgumentError("enrollment token is missing");
  if (request.token().size() > 256) return absl::InvalidArgumentError("enrollment token too long");
  absl::Status token =
      store_->ConsumeToken(Sha256Hex(request.token()), absl::ToUnixNanos(absl::Now()));
  if (!token.ok()) {
    return absl::Status(token.code(), absl::StrCat("enrollment refused: ", token.message()));
  }
  // Never kInternalAgentId ("siper-server"): enrolled ids always start with "agt-".
  std::string agent_id = absl::StrCat("agt-", RandomHex(8));
  SIPER_ASSIGN_OR_RETURN(std::string cert,
                         pki::SignCsr(pki_->ca, request.csr_pem(), agent_id, pki::kRoleAgent,
                                      options_.agent_cert_validity));
  siper::v1::AgentInfo info;
  info.set_agent_id(agent_id);
  info.set_hostname(request.hostname().substr(0, 255));
  info.set_version(request.version().substr(0, 64));
  info.set_address(context.peer());
  info.set_enrolled_ns(absl::ToUnixNanos(absl::Now()));
  SIPER_RETURN_IF_ERROR(store_->PutAgent(info));
  spdlog::info("enrolled agent {} ({}) from {}", agent_id, EscapeForTerminal(info.hostname()),
               context.peer());
  response->set_agent_id(agent_id);
  response->set_certificate_pem(cert);
  response->set_ca_pem(pki_->ca.cert_pem);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentServiceImpl::Renew(grpc::CallbackServerContext* context,
                                                  const siper::v1::RenewRequest* request,
                                                  siper::v1::RenewResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status st = DoRenew(*context, *request, response);
  if (!st.ok()) {
    spdlog::warn("certificate renewal from {} refused: {}", context->peer(),
                 std::string(st.message()));
  }
  reactor->Finish(ToGrpc(st));
  return reactor;
}

absl::Status AgentServiceImpl::DoRenew(const grpc::CallbackServerContext& context,
                                       const siper::v1::RenewRequest& request,
                                       siper::v1::RenewResponse* response) {
  // The current certificate (checked against our CA by TLS) says who asks.
  SIPER_ASSIGN_OR_RETURN(pki::Identity id, RequireRole(context, {pki::kRoleAgent}));
  SIPER_ASSIGN_OR_RETURN(std::optional<siper::v1::AgentInfo> info,
                         store_->GetAgent(id.common_name));
  if (!info.has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("agent ", id.common_name, " is not registered"));
  }
  if (info->revoked()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "agent ", id.common_name, " has been revoked; it must be enrolled again with a new token"));
  }
  SIPER_ASSIGN_OR_RETURN(std::string csr_cn, pki::CsrCommonName(request.csr_pem()));
  if (csr_cn != id.common_name) {
    return absl::PermissionDeniedError(absl::StrCat("the CSR is for '", EscapeForTerminal(csr_cn),
                                                    "' but the calling certificate is for ",
                                                    id.common_name));
  }
  SIPER_ASSIGN_OR_RETURN(std::string cert,
                         pki::SignCsr(pki_->ca, request.csr_pem(), id.common_name, pki::kRoleAgent,
                                      options_.agent_cert_validity));
  spdlog::info("renewed the certificate of agent {} (valid {} s)", id.common_name,
               absl::ToInt64Seconds(options_.agent_cert_validity));
  response->set_certificate_pem(std::move(cert));
  response->set_ca_pem(pki_->ca.cert_pem);
  return absl::OkStatus();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AgentServiceImpl::Stream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(context, store_, ingest_, options_, &shared_);
}

AgentStreamStats AgentServiceImpl::stats() const {
  AgentStreamStats s;
  s.rejected_oversized = shared_.rejected_oversized.load();
  s.rejected_malformed = shared_.rejected_malformed.load();
  s.rejected_identity = shared_.rejected_identity.load();
  s.store_failures = shared_.store_failures.load();
  s.queued_events = static_cast<uint64_t>(std::max<int64_t>(0, shared_.queued_events.load()));
  s.queued_bytes = static_cast<uint64_t>(std::max<int64_t>(0, shared_.queued_bytes.load()));
  return s;
}

}  // namespace siper::server

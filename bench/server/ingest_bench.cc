// Fixed-work driver for the server's per-event work outside the store, for instruction
// counts with callgrind (this VM has no hardware counters; instructions, unlike timings, do
// not move with the other developers' load). Real `AgentMessage` batches of the loghub
// lines, as `siper_loadgen`'s agents send them (500 events, no agent id, source
// /var/log/auth.log), go through what the server does to each:
//
//   parse    the stream's parse of the (inflated) message: a grpc::ByteBuffer through
//            grpc::SerializationTraits<AgentMessage>::Deserialize, as agent_service.cc
//   prepare  PrepareBatch (agent id, seq, clears the server time: agent_service.cc)
//   process  IngestPipeline::Process with the default rule set (the match worker)
//   encode   the stored values the writer makes of the records: events (event_codec)
//            and alerts (protobuf), no keys, no indexes, no RocksDB
//   free     the records destroyed (on a writer thread in the server)
//
// Instructions per event = (Ir at B2 batches - Ir at B1 batches) / ((B2 - B1) * batch):
//
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/ib.4 ingest_bench 4
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/ib.24 ingest_bench 24
//   callgrind_annotate --inclusive=yes /tmp/ib.24 | grep -E 'PROGRAM TOTALS|Phase'
//
// Each phase is its own function (Phase*), so callgrind_annotate's inclusive counts split
// the total. Without valgrind it also prints nanoseconds per event per phase (noisy here).
//
//   ingest_bench BATCHES [BATCH_SIZE]
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/server/bench_data.h"
#include "rules/engine.h"
#include "rules/live_rules.h"
#include "server/agent_service.h"
#include "server/ingest.h"
#include "server/storage/event_codec.h"
#include "siper/v1/agent_service.pb.h"

namespace fs = std::filesystem;

namespace {

const fs::path kSource = SIPER_SOURCE_DIR;
const fs::path kShared = SIPER_SHARED_DATA_DIR;
constexpr char kAgentId[] = "agt-0123456789abcdef";

// One batch as bench/loadgen's agents build it, serialized (the bytes after gzip inflate).
std::string BuildMessage(const std::vector<std::string>& lines, uint64_t* seq, int size) {
  siper::v1::AgentMessage message;
  siper::v1::EventBatch* batch = message.mutable_batch();
  for (int i = 0; i < size; ++i) {
    siper::v1::Event* e = batch->add_events();
    const uint64_t s = (*seq)++;
    e->set_seq(s);
    e->set_agent_time_ns(1'764'000'000'000'000'000 + static_cast<int64_t>(s) * 1000);
    e->mutable_log()->set_source("/var/log/auth.log");
    e->mutable_log()->set_line(lines[(s * 7919) % lines.size()]);
  }
  return message.SerializeAsString();
}

__attribute__((noinline)) siper::v1::EventBatch PhaseParse(const std::string& bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer buffer(&slice, 1);
  siper::v1::AgentMessage message;
  grpc::Status st =
      grpc::SerializationTraits<siper::v1::AgentMessage>::Deserialize(&buffer, &message);
  if (!st.ok() || !message.has_batch()) {
    std::cerr << "parse failed: " << st.error_message() << "\n";
    std::exit(1);
  }
  return std::move(*message.mutable_batch());
}

__attribute__((noinline)) void PhasePrepare(siper::v1::EventBatch* batch) {
  siper::server::RejectReason reason{};
  if (absl::Status st = siper::server::PrepareBatch(kAgentId, batch, &reason); !st.ok()) {
    std::cerr << st << "\n";
    std::exit(1);
  }
}

__attribute__((noinline)) std::vector<siper::storage::EventRecord> PhaseProcess(
    siper::rules::LiveMatcher* matcher, siper::v1::EventBatch* batch) {
  static const std::string agent_id = kAgentId;
  return siper::server::IngestPipeline::Process(matcher, agent_id, *batch);
}

// The values Store::Write puts for new records (events, then their alerts).
__attribute__((noinline)) size_t PhaseEncode(std::vector<siper::storage::EventRecord>& records,
                                             size_t* alerts) {
  std::string value;
  size_t bytes = 0;
  for (siper::storage::EventRecord& r : records) {
    if (r.fields.empty()) {
      siper::storage::internal::SerializeEvent(r.event, &value);
    } else {
      siper::storage::internal::SerializeEvent(r.event, r.fields.entries, &value);
    }
    bytes += value.size();
    for (size_t i = 0; i < r.alerts.size(); ++i) {
      value.clear();
      siper::storage::internal::AppendAlert(
          r.alerts[i],
          i < r.alert_fields.size()
              ? r.alert_fields[i].entries
              : std::span<const std::pair<std::string_view, std::string_view>>(),
          &value);
      bytes += value.size();
      ++*alerts;
    }
  }
  return bytes;
}

__attribute__((noinline)) void PhaseFree(std::vector<siper::storage::EventRecord>* records) {
  std::vector<siper::storage::EventRecord>().swap(*records);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: ingest_bench BATCHES [BATCH_SIZE]\n";
    return 2;
  }
  const int batches = std::stoi(argv[1]);
  const int size = argc > 2 ? std::stoi(argv[2]) : 500;
  const std::vector<std::string> lines = siper::bench::LoadLoghubLines(kShared);
  if (lines.empty()) {
    std::cerr << "../shared/data/logs/loghub absent: nothing to measure\n";
    return 1;
  }
  auto rules = siper::bench::LoadDefaultRules(kSource);
  if (!rules.ok()) {
    std::cerr << rules.status() << "\n";
    return 1;
  }
  siper::rules::LiveRuleSet live(*rules);
  siper::rules::LiveMatcher matcher(&live);
  uint64_t seq = 1;
  std::vector<std::string> messages;
  for (int b = 0; b < batches; ++b) messages.push_back(BuildMessage(lines, &seq, size));

  using Clock = std::chrono::steady_clock;
  Clock::duration t[5]{};
  size_t bytes = 0, alerts = 0, fields = 0;
  for (const std::string& m : messages) {
    auto t0 = Clock::now();
    siper::v1::EventBatch batch = PhaseParse(m);
    auto t1 = Clock::now();
    PhasePrepare(&batch);
    auto t2 = Clock::now();
    std::vector<siper::storage::EventRecord> records = PhaseProcess(&matcher, &batch);
    auto t3 = Clock::now();
    bytes += PhaseEncode(records, &alerts);
    auto t4 = Clock::now();
    for (const auto& r : records) {
      fields += r.fields.entries.size() + static_cast<size_t>(r.event.fields_size());
    }
    auto t5 = Clock::now();
    PhaseFree(&records);
    auto t6 = Clock::now();
    t[0] += t1 - t0;
    t[1] += t2 - t1;
    t[2] += t3 - t2;
    t[3] += t4 - t3;
    t[4] += t6 - t5;
  }
  const double events = static_cast<double>(batches) * size;
  std::cout << "ingest_bench: " << batches << " batches of " << size << " events, " << lines.size()
            << " loghub lines; " << alerts / events << " alerts, " << fields / events << " fields, "
            << bytes / events << " value bytes per event\n";
  const char* names[5] = {"parse", "prepare", "process", "encode", "free"};
  double total = 0;
  for (int i = 0; i < 5; ++i) {
    const double ns = std::chrono::duration<double, std::nano>(t[i]).count() / events;
    total += ns;
    std::cout << "  " << names[i] << ": " << ns << " ns/event\n";
  }
  std::cout << "  total: " << total << " ns/event\n";
  return 0;
}

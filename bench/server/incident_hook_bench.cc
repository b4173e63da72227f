// Fixed-work driver for the incident book's ingest hook (IncidentServiceImpl::OnStored), for
// instruction counts with callgrind. Real batches of the loghub lines, as bench/loadgen's
// agents send them (500 events, source /var/log/auth.log, AGENTS agents taking turns, the
// server clock 100 ms further at each batch), go through the server's path:
//
//   prepare  parse, PrepareBatch, IngestPipeline::Process with the default rule set: the
//            records as the match worker hands them to a writer (alert fields as views)
//   write    Store::Write on a real store (synced WAL): it gives the alerts their ids
//   hook     IncidentServiceImpl::OnStored(agent, records): what this driver measures
//   free     the records destroyed
//
// with the incident policy of the server's default configuration, or of a YAML file
// (bench/loadgen/no-incidents.yaml: nothing opens below critical, nothing joins).
// Instructions per alert = (hook Ir at B2 batches - hook Ir at B1) / (alerts at B2 - at B1):
//
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/ih.4 incident_hook_bench 4
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/ih.24 incident_hook_bench 24
//   callgrind_annotate --inclusive=yes /tmp/ih.24 | grep -E 'PhaseHook'
//
// Each phase is its own function (Phase*), so callgrind's inclusive counts split the total.
// Without valgrind it also prints nanoseconds per alert of the hook (noisy on this machine).
// The source uses only the service's public API, so it builds against older servers too.
//
//   incident_hook_bench BATCHES [POLICY_YAML|default] [AGENTS] [BATCH_SIZE]
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/server/bench_data.h"
#include "rules/engine.h"
#include "rules/live_rules.h"
#include "server/agent_service.h"
#include "server/incident_service.h"
#include "server/incidents/config.h"
#include "server/ingest.h"
#include "server/storage/store.h"
#include "siper/v1/agent_service.pb.h"

namespace fs = std::filesystem;

namespace {

const fs::path kSource = SIPER_SOURCE_DIR;
const fs::path kShared = SIPER_SHARED_DATA_DIR;

siper::v1::EventBatch BuildBatch(const std::vector<std::string>& lines, uint64_t first_seq,
                                 int size) {
  siper::v1::EventBatch batch;
  for (int i = 0; i < size; ++i) {
    siper::v1::Event* e = batch.add_events();
    const uint64_t s = first_seq + static_cast<uint64_t>(i);
    e->set_seq(s);
    e->set_agent_time_ns(1'764'000'000'000'000'000 + static_cast<int64_t>(s) * 1000);
    e->mutable_log()->set_source("/var/log/auth.log");
    e->mutable_log()->set_line(lines[(s * 7919) % lines.size()]);
  }
  return batch;
}

__attribute__((noinline)) std::vector<siper::storage::EventRecord> PhasePrepare(
    siper::rules::LiveMatcher* matcher, const std::string& agent_id, siper::v1::EventBatch* batch,
    int64_t now) {
  siper::server::RejectReason reason{};
  if (absl::Status st = siper::server::PrepareBatch(agent_id, batch, &reason); !st.ok()) {
    std::cerr << st << "\n";
    std::exit(1);
  }
  // A fixed time per batch instead of the store's clock, so every run groups the same
  // alerts into the same incidents (the store keeps a time the caller set).
  for (siper::v1::Event& e : *batch->mutable_events()) e.set_server_time_ns(now);
  return siper::server::IngestPipeline::Process(matcher, agent_id, *batch);
}

__attribute__((noinline)) void PhaseWrite(siper::storage::Store* store, const std::string& agent_id,
                                          std::vector<siper::storage::EventRecord>& records) {
  auto written = store->Write(agent_id, records);
  if (!written.ok()) {
    std::cerr << written.status() << "\n";
    std::exit(1);
  }
}

__attribute__((noinline)) void PhaseHook(siper::server::IncidentServiceImpl* service,
                                         const std::string& agent_id,
                                         const std::vector<siper::storage::EventRecord>& records) {
  service->OnStored(agent_id, records);
}

__attribute__((noinline)) void PhaseFree(std::vector<siper::storage::EventRecord>* records) {
  std::vector<siper::storage::EventRecord>().swap(*records);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 5) {
    std::cerr << "usage: incident_hook_bench BATCHES [POLICY_YAML|default] [AGENTS] "
                 "[BATCH_SIZE]\n";
    return 2;
  }
  const int batches = std::stoi(argv[1]);
  const std::string policy = argc > 2 ? argv[2] : "default";
  const int agents = argc > 3 ? std::stoi(argv[3]) : 10;
  const int size = argc > 4 ? std::stoi(argv[4]) : 500;
  const std::vector<std::string> lines = siper::bench::LoadLoghubLines(kShared);
  if (lines.empty()) {
    std::cerr << "../shared/data/logs/loghub absent: nothing to measure\n";
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);  // not one line per incident opened
  auto rules = siper::bench::LoadDefaultRules(kSource);
  if (!rules.ok()) {
    std::cerr << rules.status() << "\n";
    return 1;
  }
  siper::rules::LiveRuleSet live(*rules);
  siper::rules::LiveMatcher matcher(&live);

  std::string yaml;
  if (policy != "default") {
    std::ifstream in(policy);
    if (!in) {
      std::cerr << policy << ": cannot read\n";
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    yaml = text.str();
  }
  auto config = siper::incidents::ParseIncidentsConfigString(yaml, policy);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 1;
  }
  config->taxonomy_path = (kSource / "server/incidents/data/rsit.yaml").string();

  char tmpl[] = "/tmp/siper-incident-hook-bench-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  int rc = 0;
  {
    auto store = siper::storage::Store::Open(dir / "db");
    if (!store.ok()) {
      std::cerr << store.status() << "\n";
      return 1;
    }
    siper::server::IncidentServiceOptions options;
    options.config = *config;
    auto service = siper::server::IncidentServiceImpl::Create(store->get(), options);
    if (!service.ok()) {
      std::cerr << service.status() << "\n";
      fs::remove_all(dir);
      return 1;
    }
    std::vector<std::string> agent_ids;
    for (int a = 0; a < agents; ++a) agent_ids.push_back(absl::StrCat("agt-00000000000000", a));
    std::vector<uint64_t> next_seq(agents, 1);

    using Clock = std::chrono::steady_clock;
    Clock::duration hook{};
    size_t alerts = 0;
    for (int b = 0; b < batches; ++b) {
      const int a = b % agents;
      siper::v1::EventBatch batch = BuildBatch(lines, next_seq[a], size);
      next_seq[a] += static_cast<uint64_t>(size);
      std::vector<siper::storage::EventRecord> records =
          PhasePrepare(&matcher, agent_ids[a], &batch,
                       1'764'000'100'000'000'000 + static_cast<int64_t>(b) * 100'000'000);
      PhaseWrite(store->get(), agent_ids[a], records);
      for (const auto& r : records) alerts += r.alerts.size();
      auto t0 = Clock::now();
      PhaseHook(service->get(), agent_ids[a], records);
      hook += Clock::now() - t0;
      PhaseFree(&records);
    }
    std::vector<std::string> ids;
    (void)(*store)->ListIncidents([&](std::string_view id, std::string_view) {
      ids.emplace_back(id);
      return true;
    });
    const double events = static_cast<double>(batches) * size;
    std::cout << "incident_hook_bench: policy " << policy << ", " << batches << " batches of "
              << size << " events, " << agents << " agents, " << lines.size() << " loghub lines; "
              << alerts << " alerts (" << alerts / events << " per event), " << ids.size()
              << " incidents stored\n"
              << "  hook: "
              << std::chrono::duration<double, std::nano>(hook).count() /
                     static_cast<double>(alerts > 0 ? alerts : 1)
              << " ns/alert\n";
    if (alerts == 0) rc = 1;
  }
  fs::remove_all(dir);
  return rc;
}

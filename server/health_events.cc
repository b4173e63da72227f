#include "server/health_events.h"

#include <spdlog/spdlog.h>

#include <future>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/metrics.h"

namespace siper::server {
namespace {

using nlohmann::json;

void SetDotted(json& root, const std::string& key, json value) {
  // StrCat rather than "/" + std::string: GCC 12 at -O3 warns (-Wrestrict) on the latter.
  root[json::json_pointer(absl::StrCat(
      "/", absl::StrReplaceAll(key, {{"~", "~0"}, {"/", "~1"}, {".", "/"}})))] = std::move(value);
}

}  // namespace

std::string HealthEventJson(const HealthEvent& event, absl::Time now) {
  json j = json::object();
  j["@timestamp"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", now, absl::UTCTimeZone());
  SetDotted(j, "event.module", "siper");
  SetDotted(j, "event.dataset", "siper.health");
  SetDotted(j, "event.kind", "alert");
  SetDotted(j, "event.action", event.action);
  if (!event.agent_id.empty()) SetDotted(j, "agent.id", event.agent_id);
  if (!event.agent_name.empty()) {
    SetDotted(j, "agent.name", event.agent_name);
    SetDotted(j, "host.name", event.agent_name);
  }
  for (const auto& [key, value] : event.numbers) SetDotted(j, key, value);
  for (const auto& [key, value] : event.strings) SetDotted(j, key, value);
  if (!event.message.empty()) j["message"] = event.message;
  // Agent host names are the agents' to choose: keep the line valid JSON whatever they are.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string_view MatchSource(std::string_view agent_id, std::string_view source) {
  if (source == kHealthSource && agent_id != kInternalAgentId) return "untrusted:siper:health";
  return source;
}

absl::StatusOr<StoredHealth> LoadStoredHealth(const storage::Store& store, uint64_t max_events) {
  StoredHealth out;
  storage::EventQuery q;
  q.agent_id = kInternalAgentId;
  q.newest_first = true;
  q.limit = max_events;
  absl::Status st = store.SearchEvents(q, [&](const siper::v1::Event& e) {
    auto action = e.fields().find("event.action");
    if (action == e.fields().end()) return true;
    auto agent = e.fields().find("agent.id");
    std::string agent_id = agent == e.fields().end() ? "" : agent->second;
    auto& per_action = out.newest[agent_id];
    if (!per_action.contains(action->second)) {
      per_action[action->second] =
          std::map<std::string, std::string>(e.fields().begin(), e.fields().end());
    }
    return true;
  });
  if (!st.ok()) return st;
  return out;
}

HealthReporter::HealthReporter(storage::Store* store, IngestPipeline* ingest)
    : store_(store), ingest_(ingest) {}

absl::Status HealthReporter::Init() {
  absl::StatusOr<uint64_t> last = store_->LastSeq(kInternalAgentId);
  if (!last.ok()) return last.status();
  std::lock_guard<std::mutex> lock(mu_);
  last_seq_ = *last;
  return absl::OkStatus();
}

absl::Status HealthReporter::Emit(const HealthEvent& event, absl::Time now) {
  std::promise<absl::StatusOr<storage::WriteResult>> promise;
  std::future<absl::StatusOr<storage::WriteResult>> stored = promise.get_future();
  const std::string line = HealthEventJson(event, now);
  {
    // Submitted under the lock: one worker per agent keeps them in seq order.
    std::lock_guard<std::mutex> lock(mu_);
    siper::v1::EventBatch batch;
    siper::v1::Event* e = batch.add_events();
    e->set_agent_id(kInternalAgentId);
    e->set_seq(++last_seq_);
    e->set_agent_time_ns(absl::ToUnixNanos(now));
    e->mutable_log()->set_source(kHealthSource);
    e->mutable_log()->set_line(line);
    ingest_->Submit(
        kInternalAgentId, std::move(batch),
        [&promise](absl::StatusOr<storage::WriteResult> r) { promise.set_value(std::move(r)); });
  }
  absl::StatusOr<storage::WriteResult> result = stored.get();
  if (!result.ok()) {
    spdlog::error("health event {} ({}) not stored: {}", event.action, event.message,
                  result.status().ToString());
    return result.status();
  }
  Metrics().health_events.Add();
  spdlog::warn("health: {}{}{}", event.action, event.agent_id.empty() ? "" : " agent ",
               event.agent_id.empty() ? "" : event.agent_id);
  return absl::OkStatus();
}

}  // namespace siper::server

// Test helper: the incidents a store holds, assembled as IncidentServiceImpl does at
// start-up (head records and their items, server/incidents/stored.h).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/incidents/stored.h"
#include "server/storage/store.h"

namespace siper::server::test_support {

// Every stored incident, in the order of their ids; the ids of those stored whole by an
// older version go to `old_format` when it is given. A record that does not assemble is
// reported as a test failure and skipped.
inline std::vector<incidents::Incident> ReadStoredIncidents(
    const storage::Store& store, std::vector<std::string>* old_format = nullptr) {
  std::vector<std::pair<std::string, std::string>> heads;
  EXPECT_TRUE(store
                  .ListIncidents([&](std::string_view id, std::string_view text) {
                    heads.emplace_back(std::string(id), std::string(text));
                    return true;
                  })
                  .ok());
  std::vector<incidents::Incident> out;
  for (const auto& [id, text] : heads) {
    std::vector<incidents::ReadItem> items;
    EXPECT_TRUE(store
                    .ListIncidentItems(id,
                                       [&](char kind, uint64_t seq, std::string_view json) {
                                         items.push_back({kind, seq, std::string(json)});
                                         return true;
                                       })
                    .ok());
    bool old = false;
    auto in = incidents::AssembleIncident(text, items, &old);
    EXPECT_TRUE(in.ok()) << id << ": " << in.status();
    if (!in.ok()) continue;
    if (old && old_format != nullptr) old_format->push_back(id);
    out.push_back(*std::move(in));
  }
  return out;
}

}  // namespace siper::server::test_support

// The compiled form of a rule set, private to the engine (engine.cc,
// correlation.cc, cache.cc).
#pragma once

#include <hs/hs.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/condition.h"
#include "rules/data_decoder.h"
#include "rules/engine.h"
#include "rules/exact_table.h"
#include "rules/sigma.h"

namespace siper::rules {

struct CompiledRule {
  ParsedRule rule;
  // For each predicate of kind kPatterns: the atom ids any of which makes it true.
  std::vector<std::vector<uint32_t>> pred_atoms;
  std::vector<uint64_t> pred_field_hash;  // per predicate: EventFields::Hash(field)
  std::vector<CondOp> program;            // the condition, compiled (rules/condition.h)
  int group = -1;
  bool enabled = true;
  bool emit = true;                    // the rule's own matches are alerts
  std::vector<uint32_t> correlations;  // indexes into RuleSetImpl::correlations
};

struct CompiledCorrelation {
  ParsedRule rule;
  bool enabled = true;
  // In the order the rule lists them: a detection rule index i, or
  // rules.size() + j for correlation j. A reference to a rule collection's id
  // names each of its documents.
  std::vector<uint32_t> members;
  // Per member: which entry of `rule.correlation.rules` it stands for (temporal
  // correlations need each entry seen once, whichever document of it matched).
  std::vector<uint32_t> member_slots;
  std::vector<uint32_t> parents;  // correlations that use this one's alerts
};

struct FieldDatabase {
  std::string field;  // "" = the whole raw line
  // Patterns that only match one whole value (Sigma's plain `field: value`,
  // `^literal\z`) are answered by one hash lookup of the value instead of a
  // Hyperscan scan; `db` holds the other patterns (null when there are none).
  hs_database_t* db = nullptr;
  std::vector<uint32_t> db_atoms;   // Hyperscan id i is atom db_atoms[i]
  ExactTable exact_cased{false};    // value -> atoms
  ExactTable exact_caseless{true};  // value, ASCII-case-insensitively -> atoms
  size_t exact_max_size = 0;        // the longest literal: longer values cannot match
  size_t pattern_count = 0;
  // The patterns `db` holds (those Hyperscan accepted) with their atoms, for
  // merging this database with others of the same field (MergedDatabase).
  std::vector<Pattern> scan_patterns;
  std::vector<uint32_t> scan_atoms;
};

// One Hyperscan database holding the patterns of several FieldDatabases of one
// field (the groups an event's route reaches: e.g. the keyword databases of
// linux, linux/sshd and linux/syslog for an sshd line), so the field is
// scanned once instead of once per group. Built on first use by a matcher
// (RuleSetImpl::Merged) and shared by all matchers of the rule set.
struct MergedDatabase {
  hs_database_t* db = nullptr;  // null: not merged (compile failed); scan each part
  std::vector<uint32_t> atoms;  // Hyperscan id i is atom atoms[i]
};

struct RuleGroup {
  LogSourceKey logsource;
  std::vector<FieldDatabase> databases;  // sorted by field
  std::vector<uint32_t> rules;
  std::vector<uint32_t> always;  // rules evaluated even when no atom of theirs hit
};

struct RuleSetImpl {
  std::vector<CompiledRule> rules;
  std::vector<CompiledCorrelation> correlations;
  std::vector<RuleGroup> groups;
  std::vector<std::vector<uint32_t>> atom_rules;  // atom id -> rules
  hs_scratch_t* prototype_scratch = nullptr;
  size_t cache_hits = 0;                    // databases read from the disk cache
  std::vector<std::string> cache_messages;  // damaged cache files found (RuleSetStats)
  std::vector<RuleDiagnostic> skipped;
  std::vector<RuleDiagnostic> diagnostics;         // every document, ok or not (for lint)
  std::shared_ptr<const DataDecoderSet> decoders;  // the rule set's decoders/ folder; may be null
  std::filesystem::path cache_dir;                 // LoadOptions::cache_dir (merged databases)
  std::function<void(const std::string&)> on_cache_message;  // LoadOptions::on_cache_message
  bool reads_timestamp = false;  // a rule reads `@timestamp` (Event::defer_timestamp)

  // A merged database is compiled on an ingest thread the first time a route
  // needs it (then read from cache_dir on later starts); beyond this many
  // patterns its parts are scanned one by one instead, which bounds that pause
  // (a few hundred keyword patterns compile in tens of milliseconds).
  static constexpr size_t kMaxMergedPatterns = 2048;
  // The merged database of `parts` (FieldDatabases of one field, in route
  // order), compiled (or read from cache_dir) on first use; thread-safe. The
  // result lives as long as the rule set.
  const MergedDatabase& Merged(const std::vector<const FieldDatabase*>& parts) const;
  // Adds the merged databases built so far, their bytes, cache hits and
  // damaged cache files to `stats`; thread-safe.
  void AddMergedStats(RuleSetStats* stats) const;

  RuleSetImpl() = default;
  RuleSetImpl(const RuleSetImpl&) = delete;
  RuleSetImpl& operator=(const RuleSetImpl&) = delete;
  ~RuleSetImpl() {
    for (auto& g : groups) {
      for (auto& d : g.databases) hs_free_database(d.db);
    }
    for (auto& [parts, m] : merged_) hs_free_database(m->db);
    hs_free_scratch(prototype_scratch);
  }

 private:
  mutable std::mutex merged_mu_;
  mutable std::map<std::vector<const FieldDatabase*>, std::unique_ptr<MergedDatabase>> merged_;
  // Guarded by merged_mu_: what building the merged databases found.
  mutable size_t merged_cache_hits_ = 0;
  mutable std::vector<std::string> merged_cache_messages_;
};

}  // namespace siper::rules

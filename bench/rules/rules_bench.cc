// Detection throughput, single thread: decode + match per line.
//
//   (a) the default rule set on the loghub logs
//   (b) SigmaHQ linux and web rules on the loghub logs
//   (c) SigmaHQ windows rules on the SigmaHQ regression events
// Each has a *_Re2OneByOne twin: the same rules, the same decoded events, every
// rule evaluated on its own with one RE2 per pattern. Load time (compile and
// cached) is measured too. Data comes from ../shared/data; absent data skips.
#include <benchmark/benchmark.h>
#include <re2/re2.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "rules/compiled.h"
#include "rules/decoder.h"
#include "rules/engine.h"

namespace siper::rules {
namespace {

const std::filesystem::path kSource = SIPER_SOURCE_DIR;
const std::filesystem::path kShared = SIPER_SHARED_DATA_DIR;

std::vector<std::string> ReadLines(const std::filesystem::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<std::string> LoghubLines() {
  std::vector<std::string> lines = ReadLines(kShared / "logs/loghub/OpenSSH_2k.log");
  for (auto& l : ReadLines(kShared / "logs/loghub/Linux_2k.log")) lines.push_back(std::move(l));
  return lines;
}

std::vector<std::string> RegressionEvents() {
  std::vector<std::string> out;
  const auto base = kShared / "sigma/regression/regression_data";
  if (!std::filesystem::exists(base)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(base)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    while (true) {
      in >> std::ws;
      if (in.peek() == EOF) break;
      nlohmann::json j;
      in >> j;
      out.push_back(j.dump());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Copies the rule files of several folders into one temporary rule folder.
std::filesystem::path RuleDir(const std::string& name,
                              const std::vector<std::filesystem::path>& dirs) {
  auto out = std::filesystem::temp_directory_path() / ("siper_bench_" + name);
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  int n = 0;
  for (const auto& d : dirs) {
    if (!std::filesystem::exists(d)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(d)) {
      if (e.path().extension() != ".yml") continue;
      std::filesystem::copy_file(e.path(),
                                 out / (std::to_string(n++) + "_" + e.path().filename().string()));
    }
  }
  return out;
}

struct Corpus {
  std::shared_ptr<const RuleSet> rules;
  std::vector<std::string> lines;
  InputFormat format = InputFormat::kAuto;
  double compile_s = 0;
  double cached_load_s = 0;
  double first_pass_s = -1;  // the first untimed pass (RunEngine), merged databases built
};

Corpus* MakeCorpus(const std::string& name, const std::vector<std::filesystem::path>& dirs,
                   std::vector<std::string> lines, InputFormat format) {
  auto* c = new Corpus;
  c->lines = std::move(lines);
  c->format = format;
  if (c->lines.empty()) return c;
  std::filesystem::path dir = dirs.size() == 1 ? dirs[0] : RuleDir(name, dirs);
  auto cache = std::filesystem::temp_directory_path() / ("siper_bench_cache_" + name);
  // SIPER_BENCH_KEEP_CACHE=1 keeps compiled databases between runs (for profiling).
  if (std::getenv("SIPER_BENCH_KEEP_CACHE") == nullptr) std::filesystem::remove_all(cache);
  LoadOptions opts;
  opts.cache_dir = cache;
  opts.skip_errors = true;
  auto t0 = std::chrono::steady_clock::now();
  auto rs = RuleSet::Load(dir, opts);
  auto t1 = std::chrono::steady_clock::now();
  auto again = RuleSet::Load(dir, opts);
  auto t2 = std::chrono::steady_clock::now();
  if (!rs.ok() || !again.ok()) {
    std::cerr << name << ": " << rs.status() << "\n";
    return c;
  }
  c->rules = *again;
  c->compile_s = std::chrono::duration<double>(t1 - t0).count();
  c->cached_load_s = std::chrono::duration<double>(t2 - t1).count();
  RuleSetStats st = c->rules->stats();
  std::cerr << name << ": " << st.rules << " rules, " << st.log_sources << " log sources, "
            << st.databases << " databases, " << st.patterns << " patterns, "
            << st.database_bytes / 1024 << " KiB; compile " << c->compile_s << " s, cached load "
            << c->cached_load_s << " s (" << st.cache_hits
            << " databases from cache; merged databases per route field are built on first use "
               "and counted after each run)\n";
  return c;
}

Corpus& DefaultOnLoghub() {
  static Corpus* c =
      MakeCorpus("default", {kSource / "rules/ruleset"}, LoghubLines(), InputFormat::kAuto);
  return *c;
}
Corpus& SigmaLinuxWebOnLoghub() {
  static Corpus* c =
      MakeCorpus("sigma_linux_web", {kShared / "sigma/rules/linux", kShared / "sigma/rules/web"},
                 LoghubLines(), InputFormat::kAuto);
  return *c;
}
Corpus& SigmaWindowsOnRegression() {
  static Corpus* c = MakeCorpus("sigma_windows", {kShared / "sigma/rules/windows"},
                                RegressionEvents(), InputFormat::kJson);
  return *c;
}

void RunEngine(benchmark::State& state, Corpus& c) {
  if (c.rules == nullptr) {
    state.SkipWithError("data or rules absent (../shared/data)");
    return;
  }
  // One untimed pass first: merged databases (one per route field scanned by
  // several rule groups) are compiled, or read from the cache, when a route is
  // first taken, and a short run (c) would otherwise time mostly that. The
  // first such pass's time is reported as first_pass_s. The merged databases
  // belong to the rule set, so the timed matcher (fresh correlation state)
  // finds them built.
  if (c.first_pass_s < 0) {
    const auto warm0 = std::chrono::steady_clock::now();
    auto warm = Matcher::Create(c.rules);
    for (const std::string& line : c.lines) (void)(*warm)->Process(line, "bench", c.format);
    c.first_pass_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - warm0).count();
  }
  state.counters["first_pass_s"] = c.first_pass_s;
  auto m = Matcher::Create(c.rules);
  size_t i = 0, alerts = 0;
  for (auto _ : state) {
    auto found = (*m)->Process(c.lines[i], "bench", c.format);
    alerts += found.ok() ? found->size() : 0;
    if (++i == c.lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["lines/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["alerts"] = static_cast<double>(alerts);
  state.counters["compile_s"] = c.compile_s;
  state.counters["cached_load_s"] = c.cached_load_s;
  // Merged databases (one per route field scanned by several rule groups) are
  // built as routes are first taken, so they are counted after the run.
  const RuleSetStats st = c.rules->stats();
  state.counters["merged_dbs"] = static_cast<double>(st.merged_databases);
  state.counters["merged_KiB"] = static_cast<double>(st.merged_database_bytes / 1024);
}

// The baseline: every applicable rule's condition evaluated on its own, each
// string predicate by RE2 on the field (the same expressions Hyperscan gets).
class OneByOne {
 public:
  explicit OneByOne(const RuleSetImpl& rs) : rs_(rs) {
    for (const CompiledRule& r : rs.rules) {
      std::vector<std::vector<std::unique_ptr<RE2>>> preds(r.rule.predicates.size());
      for (size_t p = 0; p < r.rule.predicates.size(); ++p) {
        for (const Pattern& pat : r.rule.predicates[p].patterns) {
          RE2::Options o;
          o.set_log_errors(false);
          o.set_case_sensitive((pat.flags & HS_FLAG_CASELESS) == 0);
          o.set_dot_nl((pat.flags & HS_FLAG_DOTALL) != 0);
          o.set_encoding(RE2::Options::EncodingLatin1);
          std::string expr = (pat.flags & HS_FLAG_MULTILINE) ? "(?m)" + pat.expr : pat.expr;
          auto re = std::make_unique<RE2>(expr, o);
          if (!re->ok()) {
            ++unsupported_;
            continue;
          }
          preds[p].push_back(std::move(re));
        }
      }
      regexes_.push_back(std::move(preds));
    }
  }

  size_t Process(std::string_view line, InputFormat format) {
    if (!DecodeLine(line, "bench", format, &ev_).ok()) return 0;
    size_t hits = 0;
    for (const RuleGroup& g : rs_.groups) {
      if (!Applies(g.logsource)) continue;
      for (uint32_t ri : g.rules) {
        if (Eval(ri, rs_.rules[ri].rule.condition)) ++hits;
      }
    }
    return hits;
  }
  size_t unsupported() const { return unsupported_; }

 private:
  bool Applies(const LogSourceKey& ls) const {
    auto has = [](const LogSourceList& v, const std::string& s) {
      return s.empty() || v.contains(s);
    };
    return has(ev_.products, ls.product) && has(ev_.categories, ls.category) &&
           has(ev_.services, ls.service);
  }
  bool Eval(uint32_t ri, const CondNode& n) {
    switch (n.op) {
      case CondNode::Op::kAnd:
        for (const auto& k : n.kids) {
          if (!Eval(ri, k)) return false;
        }
        return true;
      case CondNode::Op::kOr:
        for (const auto& k : n.kids) {
          if (Eval(ri, k)) return true;
        }
        return false;
      case CondNode::Op::kNot:
        return !Eval(ri, n.kids[0]);
      case CondNode::Op::kTrue:
        return true;
      case CondNode::Op::kFalse:
        return false;
      case CondNode::Op::kPred: {
        const Predicate& p = rs_.rules[ri].rule.predicates[n.pred];
        std::string_view value;
        if (p.field.empty()) {
          value = ev_.raw;
        } else {
          auto it = ev_.fields.find(p.field);
          if (it == ev_.fields.end()) return p.kind == Predicate::Kind::kAbsent;
          value = it->second;
        }
        if (p.kind != Predicate::Kind::kPatterns) return p.kind == Predicate::Kind::kExists;
        for (const auto& re : regexes_[ri][n.pred]) {
          if (RE2::PartialMatch(value, *re)) return true;
        }
        return false;
      }
    }
    return false;
  }

  const RuleSetImpl& rs_;
  std::vector<std::vector<std::vector<std::unique_ptr<RE2>>>> regexes_;
  size_t unsupported_ = 0;
  Event ev_;
};

void RunOneByOne(benchmark::State& state, Corpus& c) {
  if (c.rules == nullptr) {
    state.SkipWithError("data or rules absent (../shared/data)");
    return;
  }
  OneByOne base(c.rules->impl());
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += base.Process(c.lines[i], c.format);
    if (++i == c.lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["lines/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["alerts"] = static_cast<double>(hits);
  state.counters["re2_unsupported"] = static_cast<double>(base.unsupported());
}

// Decoding alone, the floor under every figure above.
void BM_DecodeOnly_Loghub(benchmark::State& state) {
  std::vector<std::string> lines = LoghubLines();
  if (lines.empty()) {
    state.SkipWithError("../shared/data/logs/loghub absent");
    return;
  }
  Event ev;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeLine(lines[i], "bench", InputFormat::kAuto, &ev));
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeOnly_WindowsJson(benchmark::State& state) {
  static const std::vector<std::string>* events = new std::vector<std::string>(RegressionEvents());
  if (events->empty()) {
    state.SkipWithError("../shared/data/sigma/regression absent");
    return;
  }
  Event ev;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeLine((*events)[i], "bench", InputFormat::kJson, &ev));
    if (++i == events->size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeOnly_WindowsJson);

void BM_A_DefaultRules_Loghub(benchmark::State& s) { RunEngine(s, DefaultOnLoghub()); }
void BM_A_DefaultRules_Loghub_Re2OneByOne(benchmark::State& s) {
  RunOneByOne(s, DefaultOnLoghub());
}
void BM_B_SigmaLinuxWeb_Loghub(benchmark::State& s) { RunEngine(s, SigmaLinuxWebOnLoghub()); }
void BM_B_SigmaLinuxWeb_Loghub_Re2OneByOne(benchmark::State& s) {
  RunOneByOne(s, SigmaLinuxWebOnLoghub());
}
void BM_C_SigmaWindows_Regression(benchmark::State& s) { RunEngine(s, SigmaWindowsOnRegression()); }
void BM_C_SigmaWindows_Regression_Re2OneByOne(benchmark::State& s) {
  RunOneByOne(s, SigmaWindowsOnRegression());
}

// Start-up of the whole SigmaHQ set (rules + emerging threats) with a warm cache.
void BM_D_FullSigmaHq_CachedLoad(benchmark::State& state) {
  static Corpus* c =
      MakeCorpus("sigma_full", {kShared / "sigma/rules", kShared / "sigma/rules-emerging-threats"},
                 {"placeholder"}, InputFormat::kJson);
  if (c->rules == nullptr) {
    state.SkipWithError("../shared/data/sigma absent");
    return;
  }
  LoadOptions opts;
  opts.cache_dir = std::filesystem::temp_directory_path() / "siper_bench_cache_sigma_full";
  opts.skip_errors = true;
  for (auto _ : state) {
    auto rs =
        RuleSet::Load(std::filesystem::temp_directory_path() / "siper_bench_sigma_full", opts);
    benchmark::DoNotOptimize(rs);
  }
  state.counters["rules"] = static_cast<double>(c->rules->rule_count());
  state.counters["compile_s"] = c->compile_s;
}

BENCHMARK(BM_DecodeOnly_Loghub);
BENCHMARK(BM_D_FullSigmaHq_CachedLoad)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_A_DefaultRules_Loghub);
BENCHMARK(BM_A_DefaultRules_Loghub_Re2OneByOne);
BENCHMARK(BM_B_SigmaLinuxWeb_Loghub);
BENCHMARK(BM_B_SigmaLinuxWeb_Loghub_Re2OneByOne);
BENCHMARK(BM_C_SigmaWindows_Regression);
BENCHMARK(BM_C_SigmaWindows_Regression_Re2OneByOne);

}  // namespace
}  // namespace siper::rules

BENCHMARK_MAIN();

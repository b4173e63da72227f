// IOC lookup throughput, single thread (issue 3, benchmark (d)): USOM's list plus
// the signature-base hash list on the loghub logs.
//
//   BM_IocD_Lookup_Loghub            IocScanner::MatchEvent per line, what Matcher runs:
//                                    field lookups (domain walk, IP/CIDR, URL, hashes) +
//                                    the Hyperscan literal database over the raw line;
//                                    lines decoded beforehand
//   BM_IocD_Engine*_Loghub           decode + IOC lookup + the default rules, with and
//                                    without the IOC set, for the cost in context
//   BM_IocD_SubstringOneByOne_Sample the baseline: every indicator searched for in the
//                                    (lower-cased) line on its own with string_view::find,
//                                    on a sample of lines (it is ~10^4 times slower)
// Data comes from ../shared/data; absent data skips.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "rules/decoder.h"
#include "rules/engine.h"
#include "rules/ioc.h"

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

struct IocCorpus {
  std::shared_ptr<const IocSet> set;
  std::shared_ptr<const RuleSet> rules;
  std::vector<std::string> lines;
  std::vector<Event> events;  // decoded, one per line (the engine's flat field list)
};

IocCorpus* MakeIocCorpus() {
  auto* c = new IocCorpus;
  const auto usom = kShared / "ioc/usom-url-list-2020-04.txt";
  const auto hashes = kShared / "ioc/signature-base-hash-iocs.txt";
  if (!std::filesystem::exists(usom) || !std::filesystem::exists(hashes)) return c;
  for (const char* f : {"OpenSSH_2k.log", "Linux_2k.log"}) {
    for (auto& l : ReadLines(kShared / "logs/loghub" / f)) c->lines.push_back(std::move(l));
  }
  auto t0 = std::chrono::steady_clock::now();
  IocSetBuilder b;
  IocFeedOptions o;
  o.name = "usom";
  auto s1 = b.ImportFile(IocFeedFormat::kUsomList, usom, o);
  o.name = "signature-base";
  o.category = "malware";
  auto s2 = b.ImportFile(IocFeedFormat::kHashList, hashes, o);
  auto t1 = std::chrono::steady_clock::now();
  auto set = b.Build();
  auto t2 = std::chrono::steady_clock::now();
  if (!s1.ok() || !s2.ok() || !set.ok()) {
    std::cerr << "ioc: cannot build the IOC set\n";
    c->lines.clear();
    return c;
  }
  c->set = *set;
  IocSetStats st = c->set->stats();
  std::cerr << "ioc: " << st.entries << " entries (" << st.by_kind[IocKind::kDomain] << " domains, "
            << st.by_kind[IocKind::kUrl] << " URLs, " << st.by_kind[IocKind::kIpv4] << " IPv4, "
            << st.by_kind[IocKind::kMd5] + st.by_kind[IocKind::kSha1] + st.by_kind[IocKind::kSha256]
            << " hashes); import " << std::chrono::duration<double>(t1 - t0).count() << " s, build "
            << std::chrono::duration<double>(t2 - t1).count() << " s, " << st.literal_patterns
            << " literal patterns, " << st.literal_database_bytes / 1024
            << " KiB literal database\n";
  LoadOptions lo;
  auto rules = RuleSet::Load(kSource / "rules/ruleset", lo);
  if (!rules.ok()) {
    std::cerr << "ioc: default rules: " << rules.status() << "\n";
    c->lines.clear();
    return c;
  }
  c->rules = *rules;
  c->events.resize(c->lines.size());
  for (size_t i = 0; i < c->lines.size(); ++i) {
    (void)DecodeLine(c->lines[i], "", InputFormat::kAuto, &c->events[i]);
  }
  return c;
}

IocCorpus& Corpus() {
  static IocCorpus* c = MakeIocCorpus();
  return *c;
}

void BM_IocD_Lookup_Loghub(benchmark::State& state) {
  IocCorpus& c = Corpus();
  if (c.lines.empty()) return state.SkipWithError("../shared/data ioc or loghub files absent");
  auto scanner = IocScanner::Create(c.set);
  size_t hits = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < c.lines.size(); ++i) {
      auto h = (*scanner)->MatchEvent(c.events[i].fields, c.lines[i]);
      hits += h->size();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * c.lines.size()));
  state.counters["hits_per_pass"] =
      static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void RunEngine(benchmark::State& state, bool with_ioc) {
  IocCorpus& c = Corpus();
  if (c.lines.empty()) return state.SkipWithError("../shared/data ioc or loghub files absent");
  auto m = Matcher::Create(c.rules, with_ioc ? c.set : nullptr);
  size_t alerts = 0;
  for (auto _ : state) {
    for (const std::string& line : c.lines) {
      auto d = (*m)->Process(line, "", InputFormat::kAuto);
      alerts += d->size();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * c.lines.size()));
  state.counters["alerts_per_pass"] =
      static_cast<double>(alerts) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}
void BM_IocD_EngineWithIoc_Loghub(benchmark::State& s) { RunEngine(s, true); }
void BM_IocD_EngineNoIoc_Loghub(benchmark::State& s) { RunEngine(s, false); }

void BM_IocD_SubstringOneByOne_Sample(benchmark::State& state) {
  IocCorpus& c = Corpus();
  if (c.lines.empty()) return state.SkipWithError("../shared/data ioc or loghub files absent");
  // Every 20th line (200 of 4,000): the full corpus would take minutes per pass.
  std::vector<std::string> sample;
  for (size_t i = 0; i < c.lines.size(); i += 20) {
    std::string l = c.lines[i];
    std::transform(l.begin(), l.end(), l.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    sample.push_back(std::move(l));
  }
  std::vector<std::string_view> indicators;
  for (const IocEntry& e : c.set->entries()) indicators.push_back(e.value);
  size_t hits = 0;
  for (auto _ : state) {
    for (const std::string& line : sample) {
      for (std::string_view ind : indicators) {
        if (line.find(ind) != std::string::npos) ++hits;
      }
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * sample.size()));
  state.counters["hits_per_pass"] =
      static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

BENCHMARK(BM_IocD_Lookup_Loghub);
BENCHMARK(BM_IocD_EngineNoIoc_Loghub);
BENCHMARK(BM_IocD_EngineWithIoc_Loghub);
BENCHMARK(BM_IocD_SubstringOneByOne_Sample)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace siper::rules

BENCHMARK_MAIN();

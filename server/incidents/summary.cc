// The periodic summary (counts, mean times, top rules and attackers, deadlines, agents).
#include <algorithm>
#include <array>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/incidents/report.h"
#include "server/incidents/report_util.h"

namespace siper::incidents {
namespace {

using internal::Html;
using internal::HumanDuration;
using internal::HumanTime;
using internal::MdCell;

std::string S(std::string_view v) { return std::string(v); }

std::vector<std::pair<std::string, int>> Top(const std::map<std::string, int>& counts, size_t n) {
  std::vector<std::pair<std::string, int>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (v.size() > n) v.resize(n);
  return v;
}

absl::Duration Mean(const std::vector<absl::Duration>& v) {
  if (v.empty()) return absl::InfiniteDuration();
  absl::Duration sum;
  for (absl::Duration d : v) sum += d;
  return sum / static_cast<int64_t>(v.size());
}

const std::vector<State>& AllStates() {
  static const auto* v = new std::vector<State>{
      State::kNew,        State::kTriage,    State::kInvestigating, State::kContained,
      State::kEradicated, State::kRecovered, State::kClosed};
  return *v;
}

}  // namespace

Summary ComputeSummary(const SummaryInput& input, const Taxonomy& taxonomy, absl::Time now) {
  Summary s;
  std::map<std::string, int> by_class;
  for (const RsitClass& c : taxonomy.classes()) {
    if (c.id != "test") by_class[c.id] = 0;
  }
  std::map<Severity, int> by_severity;
  std::map<State, int> by_state;
  std::map<State, int> ex_by_state;
  std::map<std::string, int> rules;
  std::map<std::string, std::string> rule_titles;  // id -> title, for people to read
  std::map<std::string, int> attackers;
  std::vector<absl::Duration> ttd;
  std::vector<absl::Duration> ttc;
  std::vector<absl::Duration> ttclose;
  for (const Incident* incident : input.incidents) {
    const Incident& in = *incident;
    const absl::Time when = IsSet(in.times.detected) ? in.times.detected : in.times.created;
    if (when < input.since || when >= input.until) continue;
    if (in.exercise()) {
      ++s.exercises;
      ++ex_by_state[in.state];
      continue;
    }
    // Incidents merged away are counted once, in the incident they were merged into.
    if (!in.merged_into.empty()) continue;
    ++s.total;
    ++by_class[in.rsit_class];
    ++by_severity[in.severity];
    ++by_state[in.state];
    if (IsSet(in.times.occurred) && IsSet(in.times.detected) &&
        in.times.occurred <= in.times.detected) {
      ttd.push_back(in.times.detected - in.times.occurred);
    }
    auto contained = in.times.entered.find(State::kContained);
    if (contained != in.times.entered.end() && IsSet(in.times.detected)) {
      ttc.push_back(std::max(absl::ZeroDuration(), contained->second - in.times.detected));
    }
    if (in.state == State::kClosed && IsSet(in.times.closed) && IsSet(in.times.detected)) {
      ttclose.push_back(std::max(absl::ZeroDuration(), in.times.closed - in.times.detected));
    }
    for (const LinkedAlert& a : in.alerts) {
      ++rules[a.rule_id];
      if (!a.title.empty()) rule_titles.emplace(a.rule_id, a.title);
    }
    std::vector<std::string> seen;
    for (const Observable& o : in.observables) {
      if (o.kind != ObservableKind::kIp || o.field == "destination.ip") continue;
      if (internal::InRanges(o.value, input.ip_ranges)) continue;
      if (std::find(seen.begin(), seen.end(), o.value) != seen.end()) continue;
      seen.push_back(o.value);
      ++attackers[o.value];
    }
    for (const Deadline& d : ComputeDeadlines(in, input.deadlines, now)) {
      switch (d.status) {
        case DeadlineStatus::kMet:
          ++s.deadlines_met;
          break;
        case DeadlineStatus::kMissed:
          ++s.deadlines_missed;
          break;
        case DeadlineStatus::kOverdue:
          ++s.deadlines_overdue;
          break;
        case DeadlineStatus::kPending:
          ++s.deadlines_pending;
          break;
      }
    }
  }
  for (const RsitClass& c : taxonomy.classes()) {
    if (c.id != "test") s.by_class.emplace_back(c.id, by_class[c.id]);
  }
  for (const auto& [id, n] : by_class) {  // classes the taxonomy no longer has
    if (taxonomy.FindClass(id) == nullptr) s.by_class.emplace_back(id, n);
  }
  for (Severity sev : {Severity::kLow, Severity::kMedium, Severity::kHigh, Severity::kCritical}) {
    s.by_severity.emplace_back(S(ToString(sev)), by_severity[sev]);
  }
  for (State st : AllStates()) {
    s.by_state.emplace_back(S(ToString(st)), by_state[st]);
    s.exercises_by_state.emplace_back(S(ToString(st)), ex_by_state[st]);
  }
  s.mean_time_to_detect = Mean(ttd);
  s.mean_time_to_contain = Mean(ttc);
  s.mean_time_to_close = Mean(ttclose);
  s.top_rules = Top(rules, 10);
  for (auto& [rule, n] : s.top_rules) {
    auto title = rule_titles.find(rule);
    if (title != rule_titles.end()) rule = absl::StrCat(title->second, " (", rule, ")");
  }
  s.top_attackers = Top(attackers, 10);
  s.agents = input.agents;
  return s;
}

namespace {

struct LabeledCounts {
  std::string title;
  std::vector<std::pair<std::string, int>> rows;  // label, count
};

std::string L(const char* key, std::string_view lang) { return Label(key, lang); }

std::vector<LabeledCounts> Sections(const Summary& s, const Taxonomy& tax, std::string_view lang) {
  LabeledCounts cls{L("summary.by_class", lang), {}};
  for (const auto& [id, n] : s.by_class) cls.rows.emplace_back(tax.ClassLabel(id, lang), n);
  LabeledCounts sev{L("summary.by_severity", lang), {}};
  for (const auto& [id, n] : s.by_severity)
    sev.rows.emplace_back(Label(absl::StrCat("severity.", id), lang), n);
  LabeledCounts st{L("summary.by_state", lang), {}};
  for (const auto& [id, n] : s.by_state)
    st.rows.emplace_back(Label(absl::StrCat("state.", id), lang), n);
  return {cls, sev, st};
}

std::string ProblemLabel(const std::string& p, std::string_view lang) {
  return Label(absl::StrCat("summary.problem.", p), lang);
}

std::string Markdown(const Summary& s, const SummaryInput& in, const Taxonomy& tax,
                     const ReportOptions& o) {
  const std::string& lang = o.lang;
  std::string md;
  absl::StrAppend(&md, "# ", L("summary.title", lang), "\n\n", L("summary.period", lang), ": ",
                  HumanTime(in.since, lang), " — ", HumanTime(in.until, lang), "\n\n");
  absl::StrAppend(&md, "- ", L("summary.total", lang), ": **", s.total, "**\n");
  absl::StrAppend(&md, "- ", L("summary.exercises", lang), ": **", s.exercises, "**\n\n");
  for (const LabeledCounts& sec : Sections(s, tax, lang)) {
    absl::StrAppend(&md, "## ", sec.title, "\n\n| ", L("field", lang), " | ",
                    L("summary.count", lang), " |\n|---|---:|\n");
    for (const auto& [label, n] : sec.rows)
      absl::StrAppend(&md, "| ", MdCell(label), " | ", n, " |\n");
    md += "\n";
  }
  if (s.exercises > 0) {
    absl::StrAppend(&md, "## ", L("summary.exercises", lang), "\n\n| ", L("state", lang), " | ",
                    L("summary.count", lang), " |\n|---|---:|\n");
    for (const auto& [id, n] : s.exercises_by_state) {
      if (n > 0)
        absl::StrAppend(&md, "| ", Label(absl::StrCat("state.", id), lang), " | ", n, " |\n");
    }
    md += "\n";
  }
  absl::StrAppend(&md, "## ", L("summary.times", lang), "\n\n");
  absl::StrAppend(&md, "- ", L("summary.mttd", lang), ": ",
                  HumanDuration(s.mean_time_to_detect, lang), "\n");
  absl::StrAppend(&md, "- ", L("summary.mttc", lang), ": ",
                  HumanDuration(s.mean_time_to_contain, lang), "\n");
  absl::StrAppend(&md, "- ", L("summary.mttclose", lang), ": ",
                  HumanDuration(s.mean_time_to_close, lang), "\n\n");
  auto top = [&](const char* title, const char* col,
                 const std::vector<std::pair<std::string, int>>& rows) {
    absl::StrAppend(&md, "## ", L(title, lang), "\n\n");
    if (rows.empty()) {
      absl::StrAppend(&md, L("summary.no_data", lang), "\n\n");
      return;
    }
    absl::StrAppend(&md, "| ", L(col, lang), " | ", L("summary.count", lang), " |\n|---|---:|\n");
    for (const auto& [k, n] : rows) absl::StrAppend(&md, "| ", MdCell(k), " | ", n, " |\n");
    md += "\n";
  };
  top("summary.top_rules", "summary.rule", s.top_rules);
  top("summary.top_attackers", "kind.ip", s.top_attackers);
  absl::StrAppend(&md, "## ", L("summary.deadlines", lang), "\n\n");
  absl::StrAppend(&md, "- ", L("summary.met", lang), ": ", s.deadlines_met, "\n");
  absl::StrAppend(&md, "- ", L("summary.missed", lang), ": ", s.deadlines_missed, "\n");
  absl::StrAppend(&md, "- ", L("summary.overdue", lang), ": ", s.deadlines_overdue, "\n");
  absl::StrAppend(&md, "- ", L("summary.pending", lang), ": ", s.deadlines_pending, "\n\n");
  absl::StrAppend(&md, "## ", L("summary.agents", lang), "\n\n");
  if (s.agents.empty()) {
    absl::StrAppend(&md, L("summary.no_data", lang), "\n\n");
  } else {
    absl::StrAppend(&md, "| ", L("summary.agent", lang), " | ", L("kind.host", lang), " | ",
                    L("summary.problem", lang), " | ", L("summary.since", lang),
                    " |\n|---|---|---|---|\n");
    for (const AgentHealth& a : s.agents) {
      absl::StrAppend(&md, "| ", MdCell(a.agent_id), " | ", MdCell(a.host), " | ",
                      MdCell(absl::StrCat(ProblemLabel(a.problem, lang),
                                          a.detail.empty() ? "" : absl::StrCat(": ", a.detail))),
                      " | ", MdCell(HumanTime(a.since, lang)), " |\n");
    }
    md += "\n";
  }
  absl::StrAppend(&md, "---\n", L("generated", lang), " ", HumanTime(o.now, lang), " (",
                  FormatRfc3339(o.now), ")\n");
  return md;
}

// A horizontal bar chart as inline SVG: one bar per row, scaled to the largest count.
std::string BarChart(const LabeledCounts& sec, const char* color) {
  const int row_h = 22;
  const int label_w = 230;
  const int bar_w = 300;
  const int height = static_cast<int>(sec.rows.size()) * row_h + 8;
  int max = 1;
  for (const auto& r : sec.rows) max = std::max(max, r.second);
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\" "
      "aria-label=\"%s\">",
      label_w + bar_w + 50, height, Html(sec.title));
  int y = 4;
  for (const auto& [label, n] : sec.rows) {
    const int w = n == 0 ? 0 : std::max(2, n * bar_w / max);
    absl::StrAppend(
        &svg,
        absl::StrFormat(R"(<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>)",
                        label_w - 6, y + 15, Html(label)),
        absl::StrFormat(R"(<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>)", label_w, y + 3,
                        w, row_h - 6, color),
        absl::StrFormat(R"(<text x="%d" y="%d" font-size="12">%d</text>)", label_w + w + 6, y + 15,
                        n));
    y += row_h;
  }
  svg += "</svg>";
  return svg;
}

std::string HtmlReport(const Summary& s, const SummaryInput& in, const Taxonomy& tax,
                       const ReportOptions& o) {
  const std::string& lang = o.lang;
  std::string h;
  absl::StrAppend(
      &h, "<!DOCTYPE html>\n<html lang=\"", lang, "\">\n<head>\n<meta charset=\"utf-8\">\n",
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
      "'unsafe-inline'\">\n",
      "<title>", Html(L("summary.title", lang)), "</title>\n<style>\n",
      "body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}\n",
      "h1{border-bottom:2px solid #8b0000}h2{margin-top:1.6em;color:#8b0000}\n",
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em "
      ".6em;text-align:left}\n",
      ".num{text-align:right}.kpi{display:inline-block;margin:0 1.5em 1em 0;padding:.6em 1em;",
      "border:1px solid #ddd;border-radius:6px}.kpi b{font-size:1.6em;display:block}\n",
      "</style>\n</head>\n<body>\n");
  absl::StrAppend(&h, "<h1>", Html(L("summary.title", lang)), "</h1>\n<p>",
                  Html(L("summary.period", lang)), ": ", Html(HumanTime(in.since, lang)), " — ",
                  Html(HumanTime(in.until, lang)), "</p>\n");
  auto kpi = [&](const std::string& label, const std::string& value) {
    absl::StrAppend(&h, "<div class=\"kpi\"><b>", Html(value), "</b>", Html(label), "</div>\n");
  };
  kpi(L("summary.total", lang), absl::StrCat(s.total));
  kpi(L("summary.exercises", lang), absl::StrCat(s.exercises));
  kpi(L("summary.mttd", lang), HumanDuration(s.mean_time_to_detect, lang));
  kpi(L("summary.mttc", lang), HumanDuration(s.mean_time_to_contain, lang));
  kpi(L("summary.mttclose", lang), HumanDuration(s.mean_time_to_close, lang));
  static constexpr std::array<const char*, 3> kColors = {"#8b0000", "#d2691e", "#4682b4"};
  size_t i = 0;
  for (const LabeledCounts& sec : Sections(s, tax, lang)) {
    absl::StrAppend(&h, "<h2>", Html(sec.title), "</h2>\n",
                    BarChart(sec, kColors[i++ % kColors.size()]), "\n");
  }
  auto table = [&](const char* title, const char* col,
                   const std::vector<std::pair<std::string, int>>& rows) {
    absl::StrAppend(&h, "<h2>", Html(L(title, lang)), "</h2>\n");
    if (rows.empty()) {
      absl::StrAppend(&h, "<p>", Html(L("summary.no_data", lang)), "</p>\n");
      return;
    }
    absl::StrAppend(&h, "<table><tr><th>", Html(L(col, lang)), "</th><th>",
                    Html(L("summary.count", lang)), "</th></tr>\n");
    for (const auto& [k, n] : rows)
      absl::StrAppend(&h, "<tr><td>", Html(k), "</td><td class=\"num\">", n, "</td></tr>\n");
    h += "</table>\n";
  };
  if (s.exercises > 0) {
    std::vector<std::pair<std::string, int>> rows;
    for (const auto& [id, n] : s.exercises_by_state) {
      if (n > 0) rows.emplace_back(Label(absl::StrCat("state.", id), lang), n);
    }
    table("summary.exercises", "state", rows);
  }
  table("summary.top_rules", "summary.rule", s.top_rules);
  table("summary.top_attackers", "kind.ip", s.top_attackers);
  table("summary.deadlines", "state",
        {{L("summary.met", lang), s.deadlines_met},
         {L("summary.missed", lang), s.deadlines_missed},
         {L("summary.overdue", lang), s.deadlines_overdue},
         {L("summary.pending", lang), s.deadlines_pending}});
  absl::StrAppend(&h, "<h2>", Html(L("summary.agents", lang)), "</h2>\n");
  if (s.agents.empty()) {
    absl::StrAppend(&h, "<p>", Html(L("summary.no_data", lang)), "</p>\n");
  } else {
    absl::StrAppend(&h, "<table><tr><th>", Html(L("summary.agent", lang)), "</th><th>",
                    Html(L("kind.host", lang)), "</th><th>", Html(L("summary.problem", lang)),
                    "</th><th>", Html(L("summary.since", lang)), "</th></tr>\n");
    for (const AgentHealth& a : s.agents) {
      absl::StrAppend(&h, "<tr><td>", Html(a.agent_id), "</td><td>", Html(a.host), "</td><td>",
                      Html(absl::StrCat(ProblemLabel(a.problem, lang),
                                        a.detail.empty() ? "" : absl::StrCat(": ", a.detail))),
                      "</td><td>", Html(HumanTime(a.since, lang)), "</td></tr>\n");
    }
    h += "</table>\n";
  }
  absl::StrAppend(&h, "<hr><p>", Html(L("generated", lang)), " ", Html(HumanTime(o.now, lang)),
                  "</p>\n</body>\n</html>\n");
  return h;
}

}  // namespace

absl::StatusOr<std::string> SummaryReport(const SummaryInput& input, const Taxonomy& taxonomy,
                                          ReportFormat format, const ReportOptions& options) {
  if (options.lang != "tr" && options.lang != "en") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown report language '", options.lang, "'; use tr (default) or en"));
  }
  if (input.until <= input.since) {
    return absl::InvalidArgumentError("summary period is empty: --since must be before --until");
  }
  const Summary s = ComputeSummary(input, taxonomy, options.now);
  switch (format) {
    case ReportFormat::kMarkdown:
      return Markdown(s, input, taxonomy, options);
    case ReportFormat::kHtml:
      return HtmlReport(s, input, taxonomy, options);
    default:
      return absl::InvalidArgumentError("the summary report is md or html");
  }
}

}  // namespace siper::incidents

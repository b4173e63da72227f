#include "rules/data_decoder.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "common/status.h"
#include "rules/decoder.h"
#include "rules/strutil.h"

namespace siper::rules {

// Names private to this file; DataDecoderImpl is declared in the header, so these cannot
// be in an unnamed namespace, and the engine has types of the same names.
namespace data_decoder_internal {

// A field value: literal text and `${group}` / `${group|lower}` references.
struct ValuePart {
  std::string text;  // literal when group < 0
  int group = -1;    // RE2 capture index (1-based)
  bool lower = false;
};

struct FieldTemplate {
  std::string name;
  std::vector<ValuePart> parts;
};

struct Pattern {
  std::unique_ptr<RE2> re;
  std::vector<FieldTemplate> fields;
};

}  // namespace data_decoder_internal

struct DataDecoderImpl {
  std::string name;
  std::vector<std::string> programs;
  std::vector<std::string> products, services, categories;
  std::vector<data_decoder_internal::Pattern> patterns;
};

using data_decoder_internal::FieldTemplate;
using data_decoder_internal::Pattern;
using data_decoder_internal::ValuePart;

namespace {

absl::Status Err(std::string_view path, const YAML::Node& node, std::string_view what) {
  return absl::InvalidArgumentError(strutil::StrCat(path, ":", node.Mark().line + 1, ": ", what));
}

absl::StatusOr<std::vector<std::string>> StringList(std::string_view path, const YAML::Node& node,
                                                    std::string_view key) {
  std::vector<std::string> out;
  if (!node) return out;
  if (node.IsScalar()) {
    out.push_back(node.as<std::string>());
    return out;
  }
  if (!node.IsSequence()) return Err(path, node, strutil::StrCat(key, " must be a list of names"));
  for (const YAML::Node& n : node) {
    if (!n.IsScalar()) return Err(path, n, strutil::StrCat(key, " must be a list of names"));
    out.push_back(n.as<std::string>());
  }
  return out;
}

// Splits "src=${ip} (${host|lower})" into literal and capture parts.
absl::StatusOr<std::vector<ValuePart>> ParseTemplate(std::string_view path, const YAML::Node& node,
                                                     const RE2& re) {
  const std::string value = node.as<std::string>();
  const std::map<std::string, int>& groups = re.NamedCapturingGroups();
  std::vector<ValuePart> parts;
  size_t pos = 0;
  while (pos < value.size()) {
    const size_t open = value.find("${", pos);
    if (open == std::string::npos) {
      parts.push_back({value.substr(pos)});
      break;
    }
    if (open > pos) parts.push_back({value.substr(pos, open - pos)});
    const size_t close = value.find('}', open);
    if (close == std::string::npos) return Err(path, node, "unclosed ${ in a field value");
    std::string ref = value.substr(open + 2, close - open - 2);
    ValuePart part;
    if (const size_t bar = ref.find('|'); bar != std::string::npos) {
      if (ref.substr(bar + 1) != "lower") {
        return Err(path, node,
                   strutil::StrCat("unknown transform '", ref.substr(bar + 1), "' (only lower)"));
      }
      part.lower = true;
      ref.resize(bar);
    }
    auto g = groups.find(ref);
    if (g == groups.end()) {
      return Err(path, node, strutil::StrCat("${", ref, "} names no group of the regex"));
    }
    part.group = g->second;
    parts.push_back(std::move(part));
    pos = close + 1;
  }
  return parts;
}

absl::Status ParseDecoder(std::string_view path, const YAML::Node& doc,
                          std::vector<std::unique_ptr<DataDecoderImpl>>* out,
                          std::vector<DecoderTestCase>* tests) {
  static const std::set<std::string> kKeys = {"decoder",   "description", "programs",
                                              "logsource", "patterns",    "tests"};
  if (!doc.IsMap()) return Err(path, doc, "a decoder file is a map with 'decoder' and 'patterns'");
  for (const auto& kv : doc) {
    const std::string key = kv.first.as<std::string>();
    if (!kKeys.count(key)) {
      return Err(path, kv.first,
                 strutil::StrCat("unknown key '", key,
                                 "' (decoder, description, programs, logsource, patterns, tests)"));
    }
  }
  auto d = std::make_unique<DataDecoderImpl>();
  if (!doc["decoder"] || !doc["decoder"].IsScalar() || doc["decoder"].as<std::string>().empty()) {
    return Err(path, doc, "'decoder' must name the decoder");
  }
  d->name = doc["decoder"].as<std::string>();
  auto programs = StringList(path, doc["programs"], "programs");
  if (!programs.ok()) return programs.status();
  if (programs->empty()) return Err(path, doc, "'programs' must list at least one program");
  d->programs = *std::move(programs);
  if (const YAML::Node ls = doc["logsource"]) {
    if (!ls.IsMap()) return Err(path, ls, "logsource is a map of product, service, category");
    for (const auto& kv : ls) {
      const std::string key = kv.first.as<std::string>();
      auto values = StringList(path, kv.second, key);
      if (!values.ok()) return values.status();
      if (key == "product") {
        d->products = *values;
      } else if (key == "service") {
        d->services = *values;
      } else if (key == "category") {
        d->categories = *values;
      } else {
        return Err(
            path, kv.first,
            strutil::StrCat("unknown logsource key '", key, "' (product, service, category)"));
      }
    }
  }
  const YAML::Node patterns = doc["patterns"];
  if (!patterns || !patterns.IsSequence() || patterns.size() == 0) {
    return Err(path, doc, "'patterns' must be a list of {regex, fields}");
  }
  for (const YAML::Node& p : patterns) {
    if (!p.IsMap() || !p["regex"] || !p["regex"].IsScalar()) {
      return Err(path, p, "a pattern needs 'regex'");
    }
    Pattern pattern;
    RE2::Options options;
    options.set_log_errors(false);
    pattern.re = std::make_unique<RE2>(p["regex"].as<std::string>(), options);
    if (!pattern.re->ok()) {
      return Err(path, p["regex"], strutil::StrCat("bad regex: ", pattern.re->error()));
    }
    const YAML::Node fields = p["fields"];
    if (!fields || !fields.IsMap()) return Err(path, p, "a pattern needs 'fields' (a map)");
    for (const auto& kv : fields) {
      if (!kv.second.IsScalar()) return Err(path, kv.second, "a field value is text");
      auto parts = ParseTemplate(path, kv.second, *pattern.re);
      if (!parts.ok()) return parts.status();
      pattern.fields.push_back({kv.first.as<std::string>(), *std::move(parts)});
    }
    d->patterns.push_back(std::move(pattern));
  }
  if (const YAML::Node t = doc["tests"]) {
    if (!t.IsSequence()) return Err(path, t, "'tests' must be a list of {line, fields}");
    for (const YAML::Node& c : t) {
      if (!c.IsMap() || !c["line"] || !c["line"].IsScalar()) {
        return Err(path, c, "a test needs 'line'");
      }
      DecoderTestCase tc{
          d->name, std::string(path), c.Mark().line + 1, c["line"].as<std::string>(), {}};
      if (const YAML::Node f = c["fields"]) {
        if (!f.IsMap()) return Err(path, f, "a test's 'fields' is a map");
        for (const auto& kv : f) {
          tc.expect_fields[kv.first.as<std::string>()] = kv.second.as<std::string>();
        }
      }
      tests->push_back(std::move(tc));
    }
  }
  out->push_back(std::move(d));
  return absl::OkStatus();
}

}  // namespace

DataDecoderSet::DataDecoderSet() = default;
DataDecoderSet::~DataDecoderSet() = default;

absl::Status DataDecoderSet::Add(std::string_view name, const std::string& text) {
  try {
    SIPER_RETURN_IF_ERROR(ParseDecoder(name, YAML::Load(text), &decoders_, &tests_));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(strutil::StrCat(name, ":", e.mark.line + 1, ": ", e.msg));
  }
  const DataDecoderImpl* added = decoders_.back().get();
  for (const std::string& program : added->programs) {
    by_program_[program].push_back(added);
    program_bits_ |= ProgramBit(program);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const DataDecoderSet>> DataDecoderSet::LoadDir(
    const std::filesystem::path& dir) {
  std::shared_ptr<DataDecoderSet> set(new DataDecoderSet());
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return std::shared_ptr<const DataDecoderSet>(set);
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) paths.push_back(entry.path());
  }
  if (ec) return absl::InternalError(strutil::StrCat("listing ", dir.string(), ": ", ec.message()));
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) return absl::NotFoundError(strutil::StrCat("cannot read decoder file ", p.string()));
    SIPER_RETURN_IF_ERROR(set->Add(p.string(), text.str()));
  }
  return std::shared_ptr<const DataDecoderSet>(set);
}

absl::StatusOr<std::shared_ptr<const DataDecoderSet>> DataDecoderSet::LoadString(
    std::string_view yaml, std::string_view name) {
  std::shared_ptr<DataDecoderSet> set(new DataDecoderSet());
  SIPER_RETURN_IF_ERROR(set->Add(name, std::string(yaml)));
  return std::shared_ptr<const DataDecoderSet>(set);
}

size_t DataDecoderSet::NameHash::operator()(std::string_view s) const {
  return static_cast<size_t>(EventFields::Hash(s));
}

bool DataDecoderSet::Apply(Event* event) const {
  if (by_program_.empty()) return false;
  static constexpr uint64_t kProcessName = EventFields::Hash("process.name");
  static constexpr uint64_t kMessage = EventFields::Hash("message");
  auto program = event->fields.find("process.name", kProcessName);
  if (program == event->fields.end() || (program_bits_ & ProgramBit(program->second)) == 0)
    return false;
  auto decoders = by_program_.find(program->second);
  if (decoders == by_program_.end()) return false;
  auto message = event->fields.find("message", kMessage);
  if (message == event->fields.end()) return false;
  // A view into the fields' arena, which setting fields never moves.
  const std::string_view text = message->second;
  std::vector<re2::StringPiece> groups;
  for (const DataDecoderImpl* d : decoders->second) {
    for (const Pattern& p : d->patterns) {
      groups.assign(p.re->NumberOfCapturingGroups() + 1, re2::StringPiece());
      if (!p.re->Match(text, 0, text.size(), RE2::UNANCHORED, groups.data(),
                       static_cast<int>(groups.size()))) {
        continue;
      }
      for (const FieldTemplate& f : p.fields) {
        std::string value;
        bool empty_capture_only = true;
        for (const ValuePart& part : f.parts) {
          if (part.group < 0) {
            value += part.text;
            empty_capture_only = false;
            continue;
          }
          std::string captured(groups[part.group].data(), groups[part.group].size());
          if (!captured.empty()) empty_capture_only = false;
          value += part.lower ? strutil::AsciiStrToLower(captured) : captured;
        }
        // An optional group that did not take part sets nothing.
        if (empty_capture_only && value.empty()) continue;
        event->fields.insert_or_assign(f.name, value);
      }
      for (const std::string& s : d->products) event->products.Add(s);
      for (const std::string& s : d->services) event->services.Add(s);
      for (const std::string& s : d->categories) event->categories.Add(s);
      return true;
    }
  }
  return false;
}

size_t DataDecoderSet::size() const { return decoders_.size(); }
const std::vector<DecoderTestCase>& DataDecoderSet::tests() const { return tests_; }

}  // namespace siper::rules

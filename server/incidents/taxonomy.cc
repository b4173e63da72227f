#include "server/incidents/taxonomy.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace siper::incidents {
namespace {

std::string Scalar(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

}  // namespace

absl::StatusOr<Taxonomy> Taxonomy::LoadFromString(const std::string& yaml,
                                                  const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not valid YAML (", std::string(e.what()), "); fix the file"));
  }
  if (!root.IsMap() || !root["classes"] || !root["classes"].IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": needs a top-level 'classes' list of {id, en, tr, types}"));
  }
  Taxonomy t;
  t.version_ = Scalar(root, "version");
  std::set<std::string> seen_classes;
  for (const YAML::Node& c : root["classes"]) {
    RsitClass cls;
    cls.id = Scalar(c, "id");
    cls.en = Scalar(c, "en");
    cls.tr = Scalar(c, "tr");
    const int line = c.Mark().line + 1;
    if (cls.id.empty() || cls.en.empty() || cls.tr.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", line, ": class needs 'id', 'en' and 'tr'; add the missing keys"));
    }
    if (!seen_classes.insert(cls.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", line, ": class '", cls.id, "' appears twice; remove one"));
    }
    if (!c["types"] || !c["types"].IsSequence() || c["types"].size() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", line, ": class '", cls.id, "' needs a non-empty 'types' list"));
    }
    std::set<std::string> seen_types;
    for (const YAML::Node& ty : c["types"]) {
      RsitType type{Scalar(ty, "id"), Scalar(ty, "en"), Scalar(ty, "tr")};
      const int tline = ty.Mark().line + 1;
      if (type.id.empty() || type.en.empty() || type.tr.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ":", tline, ": type in class '",
                                                       cls.id, "' needs 'id', 'en' and 'tr'"));
      }
      if (!seen_types.insert(type.id).second) {
        return absl::InvalidArgumentError(absl::StrCat(name, ":", tline, ": type '", type.id,
                                                       "' appears twice in '", cls.id, "'"));
      }
      cls.types.push_back(std::move(type));
    }
    t.classes_.push_back(std::move(cls));
  }
  if (t.classes_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": 'classes' is empty"));
  }
  return t;
}

absl::StatusOr<Taxonomy> Taxonomy::LoadFromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open RSIT taxonomy file ", path,
                     "; check the path (the default ships as server/incidents/data/rsit.yaml)"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadFromString(ss.str(), path);
}

const RsitClass* Taxonomy::FindClass(std::string_view class_id) const {
  for (const RsitClass& c : classes_) {
    if (c.id == class_id) return &c;
  }
  return nullptr;
}

const RsitType* Taxonomy::FindType(std::string_view class_id, std::string_view type_id) const {
  const RsitClass* c = FindClass(class_id);
  if (c == nullptr) return nullptr;
  for (const RsitType& t : c->types) {
    if (t.id == type_id) return &t;
  }
  return nullptr;
}

absl::Status Taxonomy::Validate(std::string_view class_id, std::string_view type_id) const {
  const RsitClass* c = FindClass(class_id);
  if (c == nullptr) {
    std::vector<std::string> ids;
    for (const RsitClass& k : classes_) ids.push_back(k.id);
    return absl::InvalidArgumentError(absl::StrCat("unknown RSIT class '", std::string(class_id),
                                                   "'; use one of: ", absl::StrJoin(ids, ", ")));
  }
  if (FindType(class_id, type_id) == nullptr) {
    std::vector<std::string> ids;
    for (const RsitType& t : c->types) ids.push_back(t.id);
    return absl::InvalidArgumentError(absl::StrCat("unknown RSIT type '", std::string(type_id),
                                                   "' in class '", std::string(class_id),
                                                   "'; use one of: ", absl::StrJoin(ids, ", ")));
  }
  return absl::OkStatus();
}

std::string Taxonomy::ClassLabel(std::string_view class_id, std::string_view lang) const {
  const RsitClass* c = FindClass(class_id);
  if (c == nullptr) return std::string(class_id);
  return lang == "en" ? c->en : c->tr;
}

std::string Taxonomy::TypeLabel(std::string_view class_id, std::string_view type_id,
                                std::string_view lang) const {
  const RsitType* t = FindType(class_id, type_id);
  if (t == nullptr) return std::string(type_id);
  return lang == "en" ? t->en : t->tr;
}

std::string DefaultTaxonomyPath() {
#ifdef SIPER_INCIDENTS_DATA_DIR
  return std::string(SIPER_INCIDENTS_DATA_DIR) + "/rsit.yaml";
#else
  return "server/incidents/data/rsit.yaml";
#endif
}

}  // namespace siper::incidents

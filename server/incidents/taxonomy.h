// The RSIT taxonomy (ENISA / TF-CSIRT), loaded from a YAML data file at runtime.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace siper::incidents {

struct RsitType {
  std::string id;  // machine name, e.g. "brute-force"
  std::string en;
  std::string tr;
};

struct RsitClass {
  std::string id;  // machine name, e.g. "intrusion-attempts"
  std::string en;
  std::string tr;
  std::vector<RsitType> types;
};

// Immutable after loading; validation and labels come from the data, never from branches.
class Taxonomy {
 public:
  // Parses the YAML shape of server/incidents/data/rsit.yaml. `name` is used in messages.
  static absl::StatusOr<Taxonomy> LoadFromString(const std::string& yaml, const std::string& name);
  static absl::StatusOr<Taxonomy> LoadFromFile(const std::string& path);

  // OK if `class_id`/`type_id` is in the taxonomy; otherwise names the valid choices.
  [[nodiscard]] absl::Status Validate(std::string_view class_id, std::string_view type_id) const;

  const RsitClass* FindClass(std::string_view class_id) const;
  const RsitType* FindType(std::string_view class_id, std::string_view type_id) const;
  // Label in "tr" or "en"; the machine name if unknown.
  std::string ClassLabel(std::string_view class_id, std::string_view lang) const;
  std::string TypeLabel(std::string_view class_id, std::string_view type_id,
                        std::string_view lang) const;

  const std::vector<RsitClass>& classes() const { return classes_; }
  const std::string& version() const { return version_; }

 private:
  std::string version_;
  std::vector<RsitClass> classes_;
};

// The data file shipped in the source tree (server/incidents/data/rsit.yaml).
std::string DefaultTaxonomyPath();

}  // namespace siper::incidents

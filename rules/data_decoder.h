// Decoders as data: YAML files (in a rule set's `decoders/` folder) that add
// fields to syslog messages of named programs with RE2 patterns (linear time),
// for programs simple enough not to need C++ (rules/decoder.cc keeps sshd, sudo
// and the other involved ones). They run after the built-in decoders, so an
// administrator can cover a new program without a rebuild. Format in
// rules/README.md ("Decoders as data").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/engine.h"

namespace siper::rules {

struct Event;

// One `tests` entry of a decoder file: a raw line and fields its event must carry.
struct DecoderTestCase {
  std::string decoder;  // the decoder's name
  std::string path;
  int yaml_line = 0;
  std::string line;
  FieldMap expect_fields;
};

struct DataDecoderImpl;

// Immutable once loaded; shared across threads.
class DataDecoderSet {
 public:
  // Loads every *.yaml/*.yml in `dir` (not recursive). A missing folder is an
  // empty set. Any error fails the load and names file:line and what is wrong.
  static absl::StatusOr<std::shared_ptr<const DataDecoderSet>> LoadDir(
      const std::filesystem::path& dir);
  // One decoder file given as text (for tests); `name` stands in for the path.
  static absl::StatusOr<std::shared_ptr<const DataDecoderSet>> LoadString(std::string_view yaml,
                                                                          std::string_view name);
  ~DataDecoderSet();

  // Runs the decoders of the event's program (`process.name`) on its `message`:
  // the first pattern that matches sets its fields and adds its log source.
  // Returns whether one matched.
  bool Apply(Event* event) const;

  size_t size() const;
  const std::vector<DecoderTestCase>& tests() const;

 private:
  DataDecoderSet();
  // Parses one decoder file and indexes it by program.
  absl::Status Add(std::string_view name, const std::string& text);
  std::vector<std::unique_ptr<DataDecoderImpl>> decoders_;
  // Looked up with the line's program name as a string_view (no std::string
  // built per line), hashed with EventFields::Hash (data_decoder.cc).
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  std::unordered_map<std::string, std::vector<const DataDecoderImpl*>, NameHash, std::equal_to<>>
      by_program_;
  // Bit ProgramBit(name) of every program in by_program_: most lines' programs
  // (sshd, ftpd, su ...) have no decoder here, and this test turns them away
  // without hashing the name and probing the map (≈80 instructions a line).
  static uint64_t ProgramBit(std::string_view name) {
    return name.empty()
               ? 1
               : uint64_t{1} << ((static_cast<unsigned char>(name[0]) * 7 + name.size()) & 63);
  }
  uint64_t program_bits_ = 0;
  std::vector<DecoderTestCase> tests_;
};

}  // namespace siper::rules

// How siperctl prints: JSON Lines with --json, else tables sized to the terminal.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "siper/v1/analyst_service.pb.h"
#include "siper/v1/events.pb.h"

namespace siper::cli {

// A table printed once all rows are in. Cells are escaped for the terminal;
// when stdout is a terminal the last column is cut to fit its width.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;
  size_t size() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// One line of JSON (valid UTF-8 guaranteed) and a newline.
void PrintJsonLine(std::ostream& out, const nlohmann::json& value);

nlohmann::json EventToJson(const siper::v1::Event& event);
nlohmann::json AlertToJson(const siper::v1::Alert& alert);
nlohmann::json AgentToJson(const siper::v1::AgentInfo& agent);

}  // namespace siper::cli

// Decoders: raw log lines into ECS-named fields plus the Sigma log source
// attributes (product, service, category) used to route rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rules/engine.h"

namespace siper::rules {

struct Event {
  FieldMap fields;
  std::string_view raw;
  // Sigma logsource attributes this event belongs to (an event can have several
  // services, e.g. an sshd line is service sshd, auth and syslog).
  std::vector<std::string> products;
  std::vector<std::string> services;
  std::vector<std::string> categories;
  int64_t time_unix_ns = 0;  // event time; 0 when the line carries none

  void Clear() {
    fields.clear();
    raw = {};
    products.clear();
    services.clear();
    categories.clear();
    time_unix_ns = 0;
  }
};

// Decodes one line. Never fails on text input (unknown lines keep `message`);
// fails on malformed JSON when `format` is kJson.
[[nodiscard]] absl::Status DecodeLine(std::string_view line, std::string_view source,
                                      InputFormat format, Event* event);

// Program-level decoders, exposed for tests. Each adds fields to `event`
// and returns false when the message is not one it knows.
bool DecodeSshd(std::string_view msg, Event* event);
bool DecodeSudo(std::string_view msg, Event* event);
bool DecodeSu(std::string_view msg, Event* event);
bool DecodePam(std::string_view service, std::string_view msg, Event* event);
bool DecodeWebAccess(std::string_view line, Event* event);
bool DecodeSyslog(std::string_view line, Event* event);
bool DecodeJson(std::string_view line, Event* event);

}  // namespace siper::rules

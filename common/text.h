// Output hygiene: what reaches a terminal or a JSON document is escaped.
#pragma once

#include <string>
#include <string_view>

namespace siper {

// Control characters (C0, DEL, C1 as UTF-8, ESC) and invalid UTF-8 bytes as
// \n, \t, \xNN, so a log line cannot move the cursor or forge output.
[[nodiscard]] std::string EscapeForTerminal(std::string_view text);

// Valid UTF-8 for JSON: invalid bytes become U+FFFD.
[[nodiscard]] std::string ToValidUtf8(std::string_view bytes);

}  // namespace siper

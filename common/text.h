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

// True when `bytes` is valid UTF-8 (ASCII is checked eight bytes at a time).
[[nodiscard]] bool IsValidUtf8(std::string_view bytes);

// Makes `*text` valid UTF-8 in place (as ToValidUtf8); valid text, the common case, is
// neither copied nor reallocated.
void MakeValidUtf8(std::string* text);

}  // namespace siper

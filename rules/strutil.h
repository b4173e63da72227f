// String helpers on std::string_view. Debian's abseil is built with its own
// absl::string_view (not an alias of std::string_view), so absl's string
// functions do not take std::string_view; these small ones do.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"

namespace siper::rules::strutil {

// With a literal `p` these become a length check and one or two word compares
// (GCC keeps std::string_view::starts_with as a call, and decoders test a
// line's prefixes many times).
inline bool StartsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && (p.empty() || std::memcmp(s.data(), p.data(), p.size()) == 0);
}
inline bool Equals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}
inline bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() &&
         (p.empty() || std::memcmp(s.data() + s.size() - p.size(), p.data(), p.size()) == 0);
}
inline bool StrContains(std::string_view s, std::string_view p) {
  return s.find(p) != std::string_view::npos;
}

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline std::string AsciiStrToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline bool StrContainsIgnoreCase(std::string_view s, std::string_view p) {
  if (p.size() > s.size()) return false;
  for (size_t i = 0; i + p.size() <= s.size(); ++i) {
    if (EqualsIgnoreCase(s.substr(i, p.size()), p)) return true;
  }
  return false;
}

inline bool ConsumePrefix(std::string_view* s, std::string_view p) {
  if (!StartsWith(*s, p)) return false;
  s->remove_prefix(p.size());
  return true;
}

inline std::string_view StripLeadingAsciiWhitespace(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return s.substr(i);
}

template <typename Int>
bool SimpleAtoi(std::string_view s, Int* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline bool SimpleAtod(std::string_view s, double* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline std::vector<std::string_view> StrSplit(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

inline std::string Hex2(unsigned char c) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[c >> 4], kDigits[c & 15]};
}

namespace internal {
inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, absl::string_view s) { out->append(s.data(), s.size()); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
void Append(std::string* out, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    out->append(std::to_string(v));
  } else {
    out->append(std::to_string(v));
  }
}
}  // namespace internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (internal::Append(&out, args), ...);
  return out;
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  (internal::Append(out, args), ...);
}

}  // namespace siper::rules::strutil

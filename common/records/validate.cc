// Input checks. UTF-8 validation is written here rather than taken from a library: no
// Debian-packaged library offers just this, and the check is a small, well-known
// state machine (Unicode 15, table 3-7).
#include "validate.h"

#include <nlohmann/json.hpp>

namespace agentstore::internal {

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return false;
    }
    if (end - p <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (int i = 2; i <= n; ++i)
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    p += n + 1;
  }
  return true;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // every byte but continuations
  return n;
}

Status CheckText(std::string_view field, std::string_view value, size_t max_chars) {
  auto too_long = [&] {
    return Status::InvalidArgument(std::string(field) + " is longer than " +
                                   std::to_string(max_chars) + " characters");
  };
  // A code point takes at most 4 bytes: past that no decoding is needed to refuse.
  if (value.size() > 4 * max_chars) return too_long();
  if (!IsValidUtf8(value)) {
    return Status::InvalidArgument(std::string(field) + " is not valid UTF-8");
  }
  if (value.size() > max_chars && CodePoints(value) > max_chars) return too_long();
  return Status::OK();
}

Status CheckJsonDepth(std::string_view field, std::string_view text) {
  // Nesting cannot exceed the number of opening brackets: when there are few (every
  // record of an import, each checked here), one vectorized count decides, without the
  // byte-by-byte walk that tells brackets in strings apart.
  size_t opening = 0;
  for (char c : text) opening += (c == '[') | (c == '{');
  if (opening <= static_cast<size_t>(kMaxJsonDepth)) return Status::OK();
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return Status::InvalidArgument(std::string(field) + " nests deeper than " +
                                       std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Status::OK();
}

Status CheckJsonText(std::string_view field, std::string_view text, size_t max_bytes,
                     JsonShape shape) {
  if (text.size() > max_bytes) {
    return Status::InvalidArgument(std::string(field) + " is larger than " +
                                   std::to_string(max_bytes) + " bytes");
  }
  AS_RETURN_IF_ERROR(CheckJsonDepth(field, text));
  // accept() runs the SAX parser without building a DOM; it also rejects ill-formed
  // UTF-8 inside strings.
  if (!nlohmann::json::accept(text)) {
    return Status::InvalidArgument(std::string(field) + " is not valid JSON");
  }
  if (shape != JsonShape::kAny) {
    size_t i = text.find_first_not_of(" \t\r\n");
    char want = shape == JsonShape::kObject ? '{' : '[';
    if (i == std::string_view::npos || text[i] != want) {
      return Status::InvalidArgument(std::string(field) + " must be a JSON " +
                                     (shape == JsonShape::kObject ? "object" : "array"));
    }
  }
  return Status::OK();
}

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

Status CheckEmail(std::string_view email) {
  AS_RETURN_IF_ERROR(CheckText("email", email, 254));
  size_t at = email.find('@');
  if (email.empty() || at == 0 || at == std::string_view::npos || at + 1 >= email.size() ||
      email.find('@', at + 1) != std::string_view::npos ||
      email.find_first_of(" \t\r\n") != std::string_view::npos) {
    return Status::InvalidArgument("email must look like name@domain");
  }
  return Status::OK();
}

}  // namespace agentstore::internal

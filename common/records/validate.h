// Input checks shared by every record: UTF-8 text, length caps, JSON documents.
#pragma once

#include <string_view>

#include "agentstore/common/status.h"

namespace agentstore::internal {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// UTF-8 and at most `max_bytes` bytes.
Status CheckText(std::string_view field, std::string_view value, size_t max_bytes);

// JSON documents may nest at most this deep: deeper ones are refused before any
// recursive step (serialising, merging) could exhaust the stack.
inline constexpr int kMaxJsonDepth = 64;
// invalid_argument when `text` nests arrays/objects deeper than kMaxJsonDepth. A linear
// scan that skips strings; it does not otherwise validate.
Status CheckJsonDepth(std::string_view field, std::string_view text);

enum class JsonShape : uint8_t { kAny, kObject, kArray };
// Valid JSON of the given shape, at most `max_bytes` bytes.
Status CheckJsonText(std::string_view field, std::string_view text, size_t max_bytes,
                     JsonShape shape);

// ASCII-lowercased copy; emails are unique case-insensitively.
std::string LowerAscii(std::string_view s);
Status CheckEmail(std::string_view email);

}  // namespace agentstore::internal

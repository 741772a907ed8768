// Input checks shared by every record: UTF-8 text, length caps, JSON documents.
#pragma once

#include <cstdint>
#include <string_view>

#include "agentstore/common/status.h"

namespace agentstore::internal {

// Every stored time (int64 microseconds since the Unix epoch, UTC) lies in
// [0, kMaxTimeMicros]: 1970-01-01 to 9999-12-31T23:59:59.999999Z, PostgreSQL's timestamptz
// range cut at year 9999. A time argument outside it is refused (stored fields) or
// clamped (query ranges).
inline constexpr int64_t kMaxTimeMicros = 253402300799999999;

// The seeds' column ranges (000/001 schemas) for values a client supplies.
inline constexpr int64_t kMaxInt32 = 2147483647;        // INTEGER: token counts
inline constexpr int64_t kMaxMicroUsd = 9'999'999'999;  // DECIMAL(10,6): 9999.999999 USD

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// The number of code points in well-formed UTF-8 `s`.
size_t CodePoints(std::string_view s);

// UTF-8 and at most `max_chars` characters (code points, as PostgreSQL's varchar(n)
// counts them), and at most 4 * max_chars bytes by construction.
Status CheckText(std::string_view field, std::string_view value, size_t max_chars);

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

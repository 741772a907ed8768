// UUID text conversion and UUIDv7 construction.
#include "agentstore/common/uuid.h"

namespace agentstore {
namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string Uuid::ToString() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 15]);
  }
  return out;
}

std::optional<Uuid> Uuid::Parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Uuid u;
  int byte = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = HexValue(text[i]), lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    u.bytes[byte++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return u;
}

Uuid MakeUuidV7(int64_t unix_micros, uint64_t random_hi, uint64_t random_lo) {
  Uuid u;
  uint64_t ms = static_cast<uint64_t>(unix_micros / 1000);
  for (int i = 0; i < 6; ++i) u.bytes[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  u.bytes[6] = static_cast<uint8_t>(0x70 | (random_hi & 0x0F));
  u.bytes[7] = static_cast<uint8_t>(random_hi >> 8);
  u.bytes[8] = static_cast<uint8_t>(0x80 | ((random_lo >> 56) & 0x3F));
  for (int i = 9; i < 16; ++i) u.bytes[i] = static_cast<uint8_t>(random_lo >> (8 * (15 - i)));
  return u;
}

}  // namespace agentstore

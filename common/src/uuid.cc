// UUID text conversion and UUIDv7 construction.
#include "agentstore/common/uuid.h"

#include <array>

namespace agentstore {
namespace {
// Each byte's hex digit value, 0x10 for a non-digit: a table, since every id of every
// request and imported record is parsed here.
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  t.fill(0x10);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<uint8_t>(c - 'A' + 10);
  return t;
}();
// Where each byte's two digits start in the 8-4-4-4-12 form.
constexpr uint8_t kDigitAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
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
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return std::nullopt;
  Uuid u;
  uint8_t bad = 0;
  for (int i = 0; i < 16; ++i) {
    uint8_t hi = kHexValue[static_cast<uint8_t>(text[kDigitAt[i]])];
    uint8_t lo = kHexValue[static_cast<uint8_t>(text[kDigitAt[i] + 1])];
    bad |= hi | lo;
    u.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (bad & 0x10) return std::nullopt;
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

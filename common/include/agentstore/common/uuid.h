// 16-byte UUIDs as used for every record id: text form, parsing, hashing and the
// time-ordered UUIDv7 the store generates when a client gives no id.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace agentstore {

struct Uuid {
  std::array<uint8_t, 16> bytes{};

  bool IsNil() const {
    for (uint8_t b : bytes)
      if (b) return false;
    return true;
  }
  // Lowercase 8-4-4-4-12.
  std::string ToString() const;
  // Accepts the canonical 36-character form, either case. nullopt on anything else.
  static std::optional<Uuid> Parse(std::string_view text);
  static Uuid FromBytes(const uint8_t* p) {
    Uuid u;
    std::memcpy(u.bytes.data(), p, 16);
    return u;
  }

  friend bool operator==(const Uuid& a, const Uuid& b) { return a.bytes == b.bytes; }
  friend bool operator!=(const Uuid& a, const Uuid& b) { return !(a == b); }
  friend bool operator<(const Uuid& a, const Uuid& b) { return a.bytes < b.bytes; }
};

// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. `random_hi`/`random_lo`
// come from the caller so that tests can make ids deterministic.
Uuid MakeUuidV7(int64_t unix_micros, uint64_t random_hi, uint64_t random_lo);

struct UuidHash {
  size_t operator()(const Uuid& u) const {
    // Both halves of a v7 id carry entropy (time in front, random behind); mixing them
    // keeps client-chosen ids with a constant half well spread too.
    uint64_t a, b;
    std::memcpy(&a, u.bytes.data(), 8);
    std::memcpy(&b, u.bytes.data() + 8, 8);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    h ^= h >> 32;
    return static_cast<size_t>(h * 0xD6E8FEB86659FD93ull);
  }
};

}  // namespace agentstore

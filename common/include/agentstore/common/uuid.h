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
  // MurmurHash3's 64-bit finalizer over both halves: every input bit reaches every output
  // bit, so ids that differ only in their random tail (v7) or only in their leading bytes
  // (client-chosen) spread alike over hash buckets and shards.
  static uint64_t Mix(uint64_t z) {
    z ^= z >> 33;
    z *= 0xFF51AFD7ED558CCDull;
    z ^= z >> 33;
    z *= 0xC4CEB9FE1A85EC53ull;
    return z ^ (z >> 33);
  }
  size_t operator()(const Uuid& u) const {
    uint64_t a, b;
    std::memcpy(&a, u.bytes.data(), 8);
    std::memcpy(&b, u.bytes.data() + 8, 8);
    return static_cast<size_t>(Mix(a ^ Mix(b)));
  }
};

}  // namespace agentstore

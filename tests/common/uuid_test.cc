// Uuid text form, parsing and UUIDv7 layout.
#include "agentstore/common/uuid.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace agentstore {
namespace {

TEST(Uuid, RoundTripsCanonicalText) {
  auto u = Uuid::Parse("0190F3A2-7B1C-7DEF-8123-456789ABCDEF");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->ToString(), "0190f3a2-7b1c-7def-8123-456789abcdef");
  EXPECT_EQ(*Uuid::Parse(u->ToString()), *u);
}

TEST(Uuid, RejectsMalformedText) {
  for (const char* bad :
       {"", "nope", "0190f3a2-7b1c-7def-8123-456789abcde", "0190f3a2-7b1c-7def-8123-456789abcdeg",
        "0190f3a27b1c7def8123456789abcdef", "0190f3a2_7b1c-7def-8123-456789abcdef",
        "0190f3a2-7b1c-7def-8123-456789abcdef0"}) {
    EXPECT_FALSE(Uuid::Parse(bad)) << bad;
  }
}

// Every digit position refuses every non-hex byte, and every byte value round-trips.
TEST(Uuid, ParsesEveryDigitPositionStrictly) {
  std::string good = "00112233-4455-6677-8899-aabbccddeeff";
  for (size_t i = 0; i < good.size(); ++i) {
    if (good[i] == '-') continue;
    for (char c : {'g', 'G', '-', ' ', '\0', '/', ':', '@', '`', '\xff'}) {
      std::string bad = good;
      bad[i] = c;
      EXPECT_FALSE(Uuid::Parse(bad)) << i << " " << int(c);
    }
  }
  Uuid u;
  for (int v = 0; v < 256; ++v) {
    for (auto& b : u.bytes) b = static_cast<uint8_t>(v);
    u.bytes[v % 16] = static_cast<uint8_t>(255 - v);
    auto back = Uuid::Parse(u.ToString());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, u);
  }
}

TEST(Uuid, V7CarriesTimeVersionAndVariant) {
  int64_t micros = 1'700'000'000'123'456;
  Uuid a = MakeUuidV7(micros, 0xFFFF, ~0ull);
  EXPECT_EQ(a.bytes[6] >> 4, 7);  // version
  EXPECT_EQ(a.bytes[8] >> 6, 2);  // RFC 4122 variant
  uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = ms << 8 | a.bytes[i];
  EXPECT_EQ(ms, static_cast<uint64_t>(micros / 1000));
  // Later milliseconds sort later.
  EXPECT_LT(MakeUuidV7(micros, 0, 0), MakeUuidV7(micros + 1000, 0, 0));
}

TEST(Uuid, HashSpreadsIds) {
  std::unordered_set<size_t> buckets;
  for (uint64_t i = 0; i < 1000; ++i) buckets.insert(UuidHash()(MakeUuidV7(1, i, i * 7)) % 64);
  EXPECT_EQ(buckets.size(), 64u);
}

}  // namespace
}  // namespace agentstore

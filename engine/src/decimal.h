// Exact decimal for the seeds' NUMERIC columns (user_rating and quality_score are
// NUMERIC(3,2)): values are computed as integer hundredths from exact rationals and
// rounded half away from zero, as PostgreSQL rounds NUMERIC, never in binary floating point.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>

namespace agentstore::internal {

// n / d rounded half away from zero (d > 0).
inline int64_t RoundDiv(__int128 n, __int128 d) {
  __int128 q = (2 * (n < 0 ? -n : n) + d) / (2 * d);
  return static_cast<int64_t>(n < 0 ? -q : q);
}

// `x` (finite, |x| < 1e15) in hundredths, rounded half away from zero as the decimal a
// client wrote: x is read as its shortest round-trip decimal form (the double nearest
// 1.005 is 1.00499999999999989..., but a client who sent 1.005 meant 1.005 -> 1.01).
inline std::optional<int64_t> Hundredths(double x) {
  if (!std::isfinite(x) || std::fabs(x) >= 1e15) return std::nullopt;
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::fabs(x), std::chars_format::fixed);
  if (ec != std::errc()) return std::nullopt;
  __int128 whole = 0;
  const char* p = buf;
  for (; p < end && *p != '.'; ++p) whole = whole * 10 + (*p - '0');
  int64_t frac = 0;  // the first two fraction digits
  int digits = 0;
  bool up = false;
  if (p < end) ++p;  // '.'
  for (; p < end; ++p, ++digits) {
    if (digits < 2) frac = frac * 10 + (*p - '0');
    if (digits == 2) up = *p >= '5';  // half or more of a hundredth: away from zero
  }
  for (; digits < 2; ++digits) frac *= 10;
  int64_t h = static_cast<int64_t>(whole * 100 + frac + (up ? 1 : 0));
  return x < 0 ? -h : h;
}

// quality_score in hundredths from the counters and the rating (hundredths):
//   rated:   0.7 * success / usage + 0.3 * (rating - 1) / 4   (just the rating term
//            when the agent was never used)
//   unrated: success / usage
// computed exactly and rounded once, half away from zero, then clamped to [0, 100].
inline std::optional<int64_t> QualityHundredths(int64_t success, int64_t usage,
                                                std::optional<int64_t> rating) {
  if (usage <= 0 && !rating) return std::nullopt;
  __int128 n, d;
  if (rating && usage > 0) {
    // 100 * (7s / 10u + 3 (R - 100) / 4000) = (2800 s + 3 (R - 100) u) / 40u
    n = __int128{2800} * success + __int128{3} * (*rating - 100) * usage;
    d = __int128{40} * usage;
  } else if (rating) {
    n = *rating - 100;  // 100 * (R / 100 - 1) / 4
    d = 4;
  } else {
    n = __int128{100} * success;
    d = usage;
  }
  int64_t q = RoundDiv(n, d);
  return q < 0 ? 0 : q > 100 ? 100 : q;
}

}  // namespace agentstore::internal

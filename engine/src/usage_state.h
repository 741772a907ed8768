// In-memory state of usage accounting, quotas and rate limits: rollup maps, the tenant
// ledger (tenant rollups, the everyone rollup and quotas) and the rate limiter.
//
// Locks: partition locks (global, then shard) come before Ledger::mu and before
// RateLimiter::config_mu; nothing takes a partition lock while holding Ledger::mu; a LimitState::mu
// is taken only under config_mu (shared), in config-id order. Rate-limit windows and leases live
// only in memory: a restart forgets them (configs are durable; quotas, logs and rollups are always
// durable).
#pragma once

#include <atomic>
#include <compare>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agentstore/common/usage.h"
#include "agentstore/common/uuid.h"
#include "arena.h"

namespace agentstore::internal {

inline constexpr int64_t kDayMicros = 86'400'000'000;

// UTC day start of `t` (micros), also for times before the epoch.
inline int64_t DayOf(int64_t t) {
  int64_t d = t / kDayMicros;
  if (t % kDayMicros < 0) --d;
  return d * kDayMicros;
}

// One rollup's identity under its owner.
struct RollupKey {
  int64_t day = 0;
  int8_t agent_type = 0;
  std::string provider;
  std::string model;
  std::weak_ordering operator<=>(const RollupKey&) const = default;
};

// One owner's rollups: the rows per day (what is stored), and beside them, in memory only,
// each month's sum of its days, so that a month's summary (the usage panel of every chat
// screen) folds one row per (agent type, provider, model) instead of one per day and row.
// Month rows are keyed like day rows, with `day` = the month's first day.
class RollupMap {
 public:
  using Rows = std::map<RollupKey, UsageTotals>;
  using const_iterator = Rows::const_iterator;
  const_iterator begin() const { return days_.begin(); }
  const_iterator end() const { return days_.end(); }
  const_iterator find(const RollupKey& k) const { return days_.find(k); }
  const_iterator lower_bound(const RollupKey& k) const { return days_.lower_bound(k); }
  size_t size() const { return days_.size(); }
  const Rows& days() const { return days_; }
  const Rows& months() const { return months_; }
  // The day row `k` becomes `t` (its month follows).
  void Set(const RollupKey& k, const UsageTotals& t);
  // The day row `k` grows by `d` (its month too).
  void Add(const RollupKey& k, const UsageTotals& d);

 private:
  UsageTotals& MonthOf(const RollupKey& k);
  Rows days_, months_;
};

// A quota period as held in memory (packed to fb::Quota when written).
struct QuotaRec {
  Uuid tenant;
  int8_t type = 0;
  int8_t period = 0;  // fb::QuotaPeriod
  int64_t limit = 0, usage = 0, period_start = 0, period_end = 0, updated_at = 0;
  int32_t alert_pct = 80;
  bool exceeded = false;
};
// (tenant, quota_type, period_start): every period; the last of a (tenant, type) is current.
using QuotaKey = std::tuple<Uuid, int8_t, int64_t>;

// Tenant-level accounting, which every track_agent_usage advances, without a store-wide
// serial section:
// - Tenant and everyone rollups: each shard keeps what its users added since the store
//   opened (Partition::tenant_rollup_parts, under the shard lock the tracked call holds
//   anyway); `tenant_rollups` holds what was on disk at open (or imported). A read adds
//   them up. On disk a call adds its delta with a RocksDB merge (MergeUsageRecord), so
//   calls from different shards need no order among their log writes.
// - Quotas: the map of periods changes only under `mu` held exclusively (set_quota, a
//   new period, a purge). A tracked call holds `mu` shared across its log write, adds
//   to the current periods' usage atomically (QuotaUsage) and logs the addition as a
//   merge. Usage stays exact: each call's addition is counted once in memory and once
//   on disk, the value a call returns is the usage right after its own addition, and
//   a failed log write takes its addition back. (Holding `mu` shared across the write
//   orders set_quota's full record against the additions.)
struct Ledger {
  std::shared_mutex mu;
  std::unordered_map<Uuid, RollupMap, UuidHash> tenant_rollups;  // nil tenant: everyone
  std::map<QuotaKey, QuotaRec> quotas;
};

// A period's usage, advanced by tracked calls holding Ledger::mu shared.
inline std::atomic_ref<int64_t> QuotaUsage(QuotaRec& q) {
  return std::atomic_ref<int64_t>(q.usage);
}
// A copy safe to take under Ledger::mu shared (usage read atomically; `exceeded` from it).
inline QuotaRec QuotaSnapshot(const QuotaRec& q) {
  QuotaRec r = q;
  r.usage = std::atomic_ref<int64_t>(const_cast<int64_t&>(q.usage)).load();
  r.updated_at = std::atomic_ref<int64_t>(const_cast<int64_t&>(q.updated_at)).load();
  r.exceeded = r.usage > r.limit;
  return r;
}

// One rate-limit config in memory, with its window or leases.
struct LimitState {
  std::mutex mu;
  int64_t window_start = 0;  // fixed windows aligned to the epoch (UTC)
  int64_t count = 0;
  std::unordered_map<Uuid, int64_t, UuidHash> leases;  // lease -> expiry (concurrent)
};
struct LimitConfig {
  Uuid id;
  int8_t scope = 0, type = 0;  // fb::LimitScope, fb::LimitType
  Uuid scope_id;
  int64_t value = 0;
  bool active = true;
  int64_t created_at = 0, updated_at = 0;
  std::shared_ptr<LimitState> state = std::make_shared<LimitState>();
};

struct RateLimiter {
  mutable std::shared_mutex config_mu;
  std::map<Uuid, LimitConfig> configs;  // by id: the lock order of their states
  std::unordered_map<Uuid, std::vector<Uuid>, UuidHash> by_subject;  // scope_id -> ids
  struct Lease {
    Uuid user;
    std::vector<std::shared_ptr<LimitState>> states;
  };
  std::mutex lease_mu;  // never held while taking a LimitState::mu, except in the sweep
  std::unordered_map<Uuid, Lease, UuidHash> leases;
  size_t sweep_at = 4096;  // the lease table's size that triggers the next sweep
};

// Per-shard usage-log indexes (members of Partition).
struct UsageRef {
  int64_t ts;  // request_ts
  Uuid id;
  std::weak_ordering operator<=>(const UsageRef&) const = default;
};
using UsageIndex = std::map<UsageRef, Loc>;

}  // namespace agentstore::internal

namespace agentstore::internal {

// Quota periods (quotas.cc): the start of the period holding `now`, and its end (0 for
// fb::QuotaPeriod::none, which never rolls over).
int64_t PeriodStart(int8_t period, int64_t now);
int64_t MonthStart(int64_t t);      // UTC
int64_t NextMonthStart(int64_t t);  // UTC
int64_t PeriodEnd(int8_t period, int64_t start);
std::string PackQuota(const QuotaRec& q);
QuotaRec QuotaFromRecord(const fb::Quota* q);
// The current period of (tenant, type), or nullptr (caller holds Ledger::mu).
QuotaRec* CurrentQuota(Ledger& ledger, const Uuid& tenant, int8_t type);

}  // namespace agentstore::internal

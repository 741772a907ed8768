// The shapes of usage accounting, quotas and rate limits shared by the engine, the
// protocol and the client: usage listings and summaries, quota state, limit decisions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/common/row.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

// What track_agent_usage answers: the user_agent with its new counters, the appended
// log (totals and duration derived) and the tenant's quotas after the advance.
struct TrackResult {
  Row<fb::UserAgent> user_agent;
  Row<fb::UsageLog> log;
  std::vector<Row<fb::Quota>> quotas;  // the tenant's current tokens / api_calls quotas
};

// usage_list: logs newest first by request_ts. With `user`, that user's logs; without,
// every user's (service/admin). `agent_type` narrows either. Times are [from, to).
struct UsageQuery {
  std::optional<Uuid> user;
  std::optional<fb::AgentType> agent_type;
  int64_t from = 0;
  int64_t to = INT64_MAX;
  uint32_t limit = 50;  // 1..1000
  std::string cursor;   // from a previous page
};

enum class SummaryOwner : uint8_t { kUser = 0, kTenant = 1, kEveryone = 2 };
enum class SummaryBucket : uint8_t { kDay = 0, kMonth = 1, kTotal = 2 };  // UTC
enum class SummaryGroup : uint8_t { kNone = 0, kModel = 1, kProvider = 2, kAgentType = 3 };

struct UsageSummaryRequest {
  SummaryOwner owner = SummaryOwner::kUser;
  Uuid id;  // the user or tenant; ignored for kEveryone
  int64_t from = 0;
  int64_t to = INT64_MAX;  // [from, to), rounded out to whole UTC days
  SummaryBucket bucket = SummaryBucket::kMonth;
  SummaryGroup group = SummaryGroup::kNone;
};

// Sums over usage logs. Costs are micro-USD.
struct UsageTotals {
  int64_t requests = 0, success_count = 0, error_count = 0;
  int64_t input_tokens = 0, output_tokens = 0, total_tokens = 0;
  int64_t input_cost = 0, output_cost = 0, total_cost = 0;
  int64_t duration_ms = 0;
  bool operator==(const UsageTotals&) const = default;
  UsageTotals& operator+=(const UsageTotals& d) {
    requests += d.requests;
    success_count += d.success_count;
    error_count += d.error_count;
    input_tokens += d.input_tokens;
    output_tokens += d.output_tokens;
    total_tokens += d.total_tokens;
    input_cost += d.input_cost;
    output_cost += d.output_cost;
    total_cost += d.total_cost;
    duration_ms += d.duration_ms;
    return *this;
  }
};

struct UsageSummaryRow {
  int64_t period_start = 0;  // micros of the bucket's first UTC day (0 for kTotal)
  std::string group;         // the model, provider or agent_type name; empty for kNone
  UsageTotals totals;
};

// Rows ordered by period, then total_cost descending (the seeds' "most expensive
// models"), then group name.
struct UsageSummary {
  std::vector<UsageSummaryRow> rows;
};

// A quota read as the seeds' check_tenant_limit does.
struct QuotaState {
  int64_t used = 0, limit = 0;
  double percent = 0;     // used / limit * 100 (0 when limit is 0 and nothing used)
  bool alert = false;     // percent >= alert_threshold_pct
  bool exceeded = false;  // used > limit
};
inline QuotaState QuotaStateOf(const fb::Quota& q) {
  QuotaState s;
  s.used = q.current_usage();
  s.limit = q.quota_limit();
  if (s.limit > 0)
    s.percent = 100.0 * static_cast<double>(s.used) / static_cast<double>(s.limit);
  else if (s.used > 0)
    s.percent = 100.0;
  s.alert = s.percent >= q.alert_threshold_pct();
  s.exceeded = s.used > s.limit;
  return s;
}

// limit_check: every active limit that applies to the request (global ones, the
// tenant's, the user's, the agent's) is checked and one unit consumed only if all allow.
struct LimitCheckRequest {
  Uuid user;
  std::optional<Uuid> agent;
  // Taken from the user's record when absent.
  std::optional<Uuid> tenant;
};

struct LimitDecision {
  bool allowed = true;
  // The least remaining units across the applicable limits after this request; -1 when
  // no limit applies.
  int64_t remaining = -1;
  // When the tightest (or, if denied, the denying) window resets, micros; 0 if none.
  int64_t reset_at = 0;
  std::optional<Uuid> denied_by;  // the config that denied
  std::string denied_type;        // its limit_type name
  // Set when a concurrent limit applied and the request was allowed: release it with
  // limit_release (else it expires after EngineOptions::lease_ttl_micros).
  std::optional<Uuid> lease;
};

}  // namespace agentstore

// Tenant quotas (seed 000 quota_tracking, seed 003 check_tenant_limit): one record per
// (tenant, quota_type, period). track_agent_usage advances the current period of the
// `tokens` and `api_calls` quotas; when the injected clock passes period_end, the next
// advance starts a new period at zero and the old one stays readable (history).
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace internal {
namespace {

// Days since 1970-01-01 <-> civil date (H. Hinnant's algorithms), for UTC months.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
void CivilFromDays(int64_t z, int64_t* y, unsigned* m) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

}  // namespace

int64_t MonthStart(int64_t t) {
  int64_t y;
  unsigned m;
  CivilFromDays(DayOf(t) / kDayMicros, &y, &m);
  return DaysFromCivil(y, m, 1) * kDayMicros;
}

int64_t NextMonthStart(int64_t t) {
  int64_t y;
  unsigned m;
  CivilFromDays(DayOf(t) / kDayMicros, &y, &m);
  if (++m > 12) m = 1, ++y;
  return DaysFromCivil(y, m, 1) * kDayMicros;
}

int64_t PeriodStart(int8_t period, int64_t now) {
  switch (static_cast<fb::QuotaPeriod>(period)) {
    case fb::QuotaPeriod::month:
      return MonthStart(now);
    case fb::QuotaPeriod::day:
      return DayOf(now);
    default:
      return now;
  }
}

int64_t PeriodEnd(int8_t period, int64_t start) {
  switch (static_cast<fb::QuotaPeriod>(period)) {
    case fb::QuotaPeriod::month:
      return NextMonthStart(start);
    case fb::QuotaPeriod::day:
      return start + kDayMicros;
    default:
      return 0;
  }
}

std::string PackQuota(const QuotaRec& q) {
  fb::QuotaT t;
  t.tenant_id = FbId(q.tenant);
  t.quota_type = static_cast<fb::QuotaType>(q.type);
  t.quota_limit = q.limit;
  t.current_usage = q.usage;
  t.period_start = q.period_start;
  t.period_end = q.period_end;
  t.alert_threshold_pct = q.alert_pct;
  t.is_exceeded = q.exceeded;
  t.updated_at = q.updated_at;
  t.period = static_cast<fb::QuotaPeriod>(q.period);
  return Pack(t);
}

QuotaRec QuotaFromRecord(const fb::Quota* q) {
  QuotaRec r;
  r.tenant = ToUuid(q->tenant_id());
  r.type = static_cast<int8_t>(q->quota_type());
  r.period = static_cast<int8_t>(q->period());
  r.limit = q->quota_limit();
  r.usage = q->current_usage();
  r.period_start = q->period_start();
  r.period_end = q->period_end();
  r.updated_at = q->updated_at();
  r.alert_pct = q->alert_threshold_pct();
  r.exceeded = q->is_exceeded();
  return r;
}

bool IsGaugeQuota(int8_t type) {
  return type == static_cast<int8_t>(fb::QuotaType::users) ||
         type == static_cast<int8_t>(fb::QuotaType::storage_bytes);
}

void ApplyGauge(const TenantGauges& g, QuotaRec* q) {
  q->usage = q->type == static_cast<int8_t>(fb::QuotaType::users) ? g.users : g.storage_bytes;
  q->exceeded = q->usage > q->limit;
}

QuotaRec* CurrentQuota(Ledger& ledger, const Uuid& tenant, int8_t type) {
  auto it = ledger.quotas.upper_bound(QuotaKey{tenant, type, INT64_MAX});
  if (it == ledger.quotas.begin()) return nullptr;
  --it;
  if (std::get<0>(it->first) != tenant || std::get<1>(it->first) != type) return nullptr;
  return &it->second;
}

}  // namespace internal

Result<Row<fb::Quota>> Engine::SetQuota(const Scope& scope, const fb::QuotaT& in) {
  if (scope.is_user()) return Status::PermissionDenied("only service and admin keys set quotas");
  if (!in.tenant_id) return Status::InvalidArgument("tenant_id is required");
  fb::QuotaT check = in;
  AS_RETURN_IF_ERROR(CheckRecord(check, impl_->Ctx()));
  Uuid tenant = ToUuid(in.tenant_id.get());
  Partition& g = impl_->global;
  std::shared_lock glock(g.mu);
  auto t = g.tenants.find(tenant);
  if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at() ||
      !EngineState::SeesTenant(scope, tenant))
    return MissingRef("tenant_id", "tenant");
  // users / storage_bytes are gauges measured from the records (before Ledger::mu: the
  // shard locks come first).
  auto type = static_cast<int8_t>(in.quota_type);
  std::optional<TenantGauges> gauges;
  if (IsGaugeQuota(type)) gauges = MeasureTenant(*impl_, tenant);
  std::unique_lock lock(impl_->ledger.mu);
  int64_t now = impl_->Now();
  auto period = static_cast<int8_t>(in.period);
  QuotaRec q;
  QuotaRec* cur = CurrentQuota(impl_->ledger, tenant, type);
  if (cur && (cur->period_end == 0 || now < cur->period_end) && cur->period == period) {
    q = *cur;  // the running period keeps its usage
  } else {
    q.tenant = tenant;
    q.type = type;
    q.period = period;
    q.period_start = PeriodStart(period, now);
    q.period_end = PeriodEnd(period, q.period_start);
    // A period of another length replacing a running one carries its usage.
    if (cur && (cur->period_end == 0 || now < cur->period_end)) {
      q.usage = cur->usage;
      q.period_start = std::max(q.period_start, cur->period_start);
    }
  }
  q.limit = in.quota_limit;
  q.alert_pct = in.alert_threshold_pct;
  if (gauges) ApplyGauge(*gauges, &q);
  q.exceeded = q.usage > q.limit;
  q.updated_at = now;
  std::string bytes = PackQuota(q);
  storage::WriteBatch batch;
  batch.Put(QuotaKeyOf(tenant, type, q.period_start), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->ledger.quotas[QuotaKey{tenant, type, q.period_start}] = q;
  lock.unlock();
  glock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Quota>(bytes);
}

Result<std::vector<Row<fb::Quota>>> Engine::GetQuotas(const Scope& scope, const Uuid& tenant,
                                                      std::optional<fb::QuotaType> type,
                                                      bool history) {
  if (scope.is_user()) return Status::PermissionDenied("only service and admin keys read quotas");
  if (type && static_cast<uint8_t>(*type) > static_cast<uint8_t>(fb::QuotaType::MAX))
    return Status::InvalidArgument("unknown quota_type");
  std::vector<Row<fb::Quota>> out;
  // Another tenant's quotas read as a tenant without quotas.
  if (!EngineState::SeesTenant(scope, tenant)) return out;
  if (!scope.confined()) {
    // A key that sees every tenant learns that this one does not exist (a mistyped id
    // would otherwise read as a tenant without quotas).
    Partition& g = impl_->global;
    std::shared_lock glock(g.mu);
    if (!g.tenants.count(tenant)) return Status::NotFound("tenant not found");
  }
  auto& quotas = impl_->ledger.quotas;
  // Measure the users / storage_bytes gauges (outside Ledger::mu) only if asked for.
  bool want_gauges = false;
  {
    std::shared_lock lock(impl_->ledger.mu);
    for (auto it = quotas.lower_bound(QuotaKey{tenant, INT8_MIN, INT64_MIN});
         it != quotas.end() && std::get<0>(it->first) == tenant; ++it)
      if (IsGaugeQuota(it->second.type) && (!type || it->second.type == static_cast<int8_t>(*type)))
        want_gauges = true;
  }
  std::optional<TenantGauges> gauges;
  if (want_gauges) gauges = MeasureTenant(*impl_, tenant);
  std::shared_lock lock(impl_->ledger.mu);
  int64_t now = impl_->Now();
  for (auto it = quotas.lower_bound(QuotaKey{tenant, INT8_MIN, INT64_MIN});
       it != quotas.end() && std::get<0>(it->first) == tenant; ++it) {
    const QuotaRec q = QuotaSnapshot(it->second);
    if (type && q.type != static_cast<int8_t>(*type)) continue;
    auto next = std::next(it);
    bool last = next == quotas.end() || std::get<0>(next->first) != tenant ||
                std::get<1>(next->first) != q.type;
    if (!last || !gauges || !IsGaugeQuota(q.type)) {
      if (history) out.push_back(Row<fb::Quota>(PackQuota(q)));
    }
    if (!last) continue;
    if (gauges && IsGaugeQuota(q.type)) {
      // A gauge is what the records hold now; a new period does not reset it.
      QuotaRec g = q;
      ApplyGauge(*gauges, &g);
      out.push_back(Row<fb::Quota>(PackQuota(g)));
    } else if (q.period_end != 0 && now >= q.period_end) {
      // The period ended: the current one reads as a fresh period at zero.
      QuotaRec fresh = q;
      fresh.period_start = PeriodStart(q.period, now);
      fresh.period_end = PeriodEnd(q.period, fresh.period_start);
      fresh.usage = 0;
      fresh.exceeded = fresh.limit < 0;
      out.push_back(Row<fb::Quota>(PackQuota(fresh)));
    } else if (!history) {
      out.push_back(Row<fb::Quota>(PackQuota(q)));
    }
  }
  return out;
}

}  // namespace agentstore

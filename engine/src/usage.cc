// Usage accounting: track_agent_usage (seed 000's agent usage tracking flow), rate_agent,
// usage logs and their listings, daily rollups and the summaries answered from them,
// and retention of raw logs. A log, its user's rollup and the user_agent live in the
// user's shard; tenant and everyone rollups and quotas in the Ledger; all of one call
// goes into one RocksDB batch, logged while every lock over what it changes is held.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

#include "agentstore/common/record_json.h"
#include "decimal.h"
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace internal {

namespace {

constexpr std::string_view kAgentTypeNames[] = {"routing", "chat", "artifact", "git_mcp", "other"};

bool AddsOverflow(const UsageTotals& a, const UsageTotals& d) {
  int64_t r;
  return __builtin_add_overflow(a.requests, d.requests, &r) ||
         __builtin_add_overflow(a.input_tokens, d.input_tokens, &r) ||
         __builtin_add_overflow(a.output_tokens, d.output_tokens, &r) ||
         __builtin_add_overflow(a.total_tokens, d.total_tokens, &r) ||
         __builtin_add_overflow(a.input_cost, d.input_cost, &r) ||
         __builtin_add_overflow(a.output_cost, d.output_cost, &r) ||
         __builtin_add_overflow(a.total_cost, d.total_cost, &r) ||
         __builtin_add_overflow(a.duration_ms, d.duration_ms, &r);
}

std::string PackRollup(const Uuid& owner, const RollupKey& k, const UsageTotals& t) {
  fb::UsageRollupT r;
  if (!owner.IsNil()) r.owner_id = FbId(owner);
  r.day = k.day;
  r.agent_type = static_cast<fb::AgentType>(k.agent_type);
  r.provider = k.provider;
  r.model = k.model;
  r.requests = t.requests;
  r.success_count = t.success_count;
  r.error_count = t.error_count;
  r.input_tokens = t.input_tokens;
  r.output_tokens = t.output_tokens;
  r.total_tokens = t.total_tokens;
  r.input_cost = t.input_cost;
  r.output_cost = t.output_cost;
  r.total_cost = t.total_cost;
  r.duration_ms = t.duration_ms;
  return Pack(r);
}

// quality_score in [0, 1], two decimals (seed 000's NUMERIC(3,2)):
//   success_rate = success_count / usage_count
//   rated:   0.7 * success_rate + 0.3 * (user_rating - 1) / 4
//   unrated: success_rate
// Exact decimal (decimal.h): NUMERIC(3,2) as PostgreSQL computes it.
std::optional<double> QualityScore(const fb::UserAgentT& ua) {
  std::optional<int64_t> rating;
  if (ua.user_rating) rating = std::llround(*ua.user_rating * 100.0);  // already hundredths
  auto q = QualityHundredths(ua.success_count, ua.usage_count, rating);
  if (!q) return std::nullopt;
  return static_cast<double>(*q) / 100.0;
}

Status Overflow(const char* what) {
  return Status::InvalidArgument(std::string(what) + " would overflow");
}

}  // namespace

void EngineState::IndexUsageLog(Partition& shard, Loc loc) {
  const auto* l = View<fb::UsageLog>(shard, loc);
  Uuid id = ToUuid(l->id());
  UsageRef ref{l->request_ts(), id};
  shard.usage_logs[id] = loc;
  shard.usage_by_user[ToUuid(l->user_id())][ref] = loc;
  auto type = static_cast<size_t>(l->agent_type());
  if (type < std::size(shard.usage_by_type)) shard.usage_by_type[type][ref] = loc;
  if (l->chat_id()) shard.usage_by_chat[ToUuid(l->chat_id())].push_back(id);
}

void EngineState::UnindexUsageLog(Partition& shard, const Uuid& id) {
  auto it = shard.usage_logs.find(id);
  if (it == shard.usage_logs.end()) return;
  const auto* l = View<fb::UsageLog>(shard, it->second);
  UsageRef ref{l->request_ts(), id};
  Uuid user = ToUuid(l->user_id());
  if (auto u = shard.usage_by_user.find(user); u != shard.usage_by_user.end()) {
    u->second.erase(ref);
    if (u->second.empty()) shard.usage_by_user.erase(u);
  }
  auto type = static_cast<size_t>(l->agent_type());
  if (type < std::size(shard.usage_by_type)) shard.usage_by_type[type].erase(ref);
  if (l->chat_id()) {
    if (auto c = shard.usage_by_chat.find(ToUuid(l->chat_id())); c != shard.usage_by_chat.end()) {
      std::erase(c->second, id);
      if (c->second.empty()) shard.usage_by_chat.erase(c);
    }
  }
  shard.arena.Free(it->second);
  shard.usage_logs.erase(it);
}

void EngineState::AddUserUsageDeletes(const Partition& shard, const Uuid& user,
                                      storage::WriteBatch& batch) {
  if (auto u = shard.usage_by_user.find(user); u != shard.usage_by_user.end())
    for (const auto& [ref, loc] : u->second) batch.Delete(RecordKey(RecordType::kUsageLog, ref.id));
  if (auto r = shard.user_rollups.find(user); r != shard.user_rollups.end())
    for (const auto& [k, t] : r->second)
      batch.Delete(RollupKeyOf(RecordType::kUserUsageRollup, user, k.day, k.agent_type, k.provider,
                               k.model));
  // Limit configs scoped to the user (caller holds limiter.config_mu).
  if (auto s = limiter.by_subject.find(user); s != limiter.by_subject.end())
    for (const Uuid& id : s->second)
      if (limiter.configs.at(id).scope == static_cast<int8_t>(fb::LimitScope::user))
        batch.Delete(RecordKey(RecordType::kRateLimitConfig, id));
}

void EngineState::DropLimitConfigsOf(const Uuid& subject, fb::LimitScope scope) {
  auto s = limiter.by_subject.find(subject);
  if (s == limiter.by_subject.end()) return;
  std::vector<Uuid> keep;
  for (const Uuid& id : s->second) {
    if (limiter.configs.at(id).scope == static_cast<int8_t>(scope))
      limiter.configs.erase(id);
    else
      keep.push_back(id);
  }
  if (keep.empty())
    limiter.by_subject.erase(s);
  else
    s->second = std::move(keep);
}

void EngineState::DropUserUsage(Partition& shard, const Uuid& user) {
  std::vector<Uuid> ids;
  if (auto u = shard.usage_by_user.find(user); u != shard.usage_by_user.end())
    for (const auto& [ref, loc] : u->second) ids.push_back(ref.id);
  for (const Uuid& id : ids) UnindexUsageLog(shard, id);
  shard.user_rollups.erase(user);
  DropLimitConfigsOf(user, fb::LimitScope::user);
}

void EngineState::AddTenantUsageDeletes(const Uuid& tenant, storage::WriteBatch& batch) {
  for (auto it = ledger.quotas.lower_bound(QuotaKey{tenant, INT8_MIN, INT64_MIN});
       it != ledger.quotas.end() && std::get<0>(it->first) == tenant; ++it)
    batch.Delete(QuotaKeyOf(tenant, std::get<1>(it->first), std::get<2>(it->first)));
  if (auto r = ledger.tenant_rollups.find(tenant); r != ledger.tenant_rollups.end())
    for (const auto& [k, t] : r->second)
      batch.Delete(RollupKeyOf(RecordType::kTenantUsageRollup, tenant, k.day, k.agent_type,
                               k.provider, k.model));
  if (auto s = limiter.by_subject.find(tenant); s != limiter.by_subject.end())
    for (const Uuid& id : s->second)
      if (limiter.configs.at(id).scope == static_cast<int8_t>(fb::LimitScope::tenant))
        batch.Delete(RecordKey(RecordType::kRateLimitConfig, id));
}

void EngineState::AddTenantRollupPartDeletes(const Uuid& tenant, storage::WriteBatch& batch) {
  for (const auto& sp : shards) {
    std::shared_lock lock(sp->mu);
    if (auto r = sp->tenant_rollup_parts.find(tenant); r != sp->tenant_rollup_parts.end())
      for (const auto& [k, t] : r->second)
        batch.Delete(RollupKeyOf(RecordType::kTenantUsageRollup, tenant, k.day, k.agent_type,
                                 k.provider, k.model));
  }
}

void EngineState::DropTenantRollupParts(const Uuid& tenant) {
  for (const auto& sp : shards) {
    std::unique_lock lock(sp->mu);
    sp->tenant_rollup_parts.erase(tenant);
  }
}

void EngineState::DropTenantUsage(const Uuid& tenant) {
  ledger.quotas.erase(ledger.quotas.lower_bound(QuotaKey{tenant, INT8_MIN, INT64_MIN}),
                      ledger.quotas.upper_bound(QuotaKey{tenant, INT8_MAX, INT64_MAX}));
  ledger.tenant_rollups.erase(tenant);
  DropLimitConfigsOf(tenant, fb::LimitScope::tenant);
}

void EngineState::AddChatUsageClears(Partition& shard, const Uuid& chat, storage::WriteBatch& batch,
                                     std::vector<std::string>* rewritten) {
  auto c = shard.usage_by_chat.find(chat);
  if (c == shard.usage_by_chat.end()) return;
  for (const Uuid& id : c->second) {
    fb::UsageLogT l;
    View<fb::UsageLog>(shard, shard.usage_logs.at(id))->UnPackTo(&l);
    l.chat_id.reset();
    rewritten->push_back(Pack(l));
    batch.Put(RecordKey(RecordType::kUsageLog, id), rewritten->back());
  }
}

void EngineState::ApplyChatUsageClears(Partition& shard, const Uuid& chat,
                                       std::vector<std::string>& rewritten) {
  auto c = shard.usage_by_chat.find(chat);
  if (c == shard.usage_by_chat.end()) return;
  std::vector<Uuid> ids = std::move(c->second);
  shard.usage_by_chat.erase(c);
  for (size_t i = 0; i < ids.size(); ++i) {
    UnindexUsageLog(shard, ids[i]);
    IndexUsageLog(shard, shard.arena.Append(rewritten[i]));
  }
}

}  // namespace internal

Result<TrackResult> Engine::TrackAgentUsage(const Scope& scope, const fb::UsageLogT& in,
                                            int32_t messages) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not track usage");
  fb::UsageLogT log = in;
  if (!log.user_id) {
    if (!scope.is_user()) return Status::InvalidArgument("user_id is required");
    log.user_id = FbId(scope.user());
  }
  Uuid user = ToUuid(log.user_id.get());
  if (scope.is_user() && user != scope.user())
    return Status::PermissionDenied("a user tracks only its own usage");
  if (!impl_->Sees(scope, user)) return MissingRef("user_id", "user");
  if (!log.agent_id) return Status::InvalidArgument("agent_id is required");
  Uuid agent = ToUuid(log.agent_id.get());
  if (messages < 0) return Status::InvalidArgument("messages must be >= 0");
  if (log.input_tokens < 0 || log.output_tokens < 0)
    return Status::InvalidArgument("tokens must be >= 0");
  if (log.input_cost < 0 || log.output_cost < 0)
    return Status::InvalidArgument("costs must be >= 0");
  if (static_cast<uint8_t>(log.agent_type) > static_cast<uint8_t>(fb::AgentType::MAX))
    return Status::InvalidArgument(
        "agent_type must be one of: routing, chat, artifact, git_mcp, other");
  int64_t now = impl_->Now();
  if (log.response_ts == 0) log.response_ts = now;
  if (log.request_ts == 0) log.request_ts = log.response_ts;
  if (log.response_ts < log.request_ts)
    return Status::InvalidArgument("response_ts is before request_ts");
  int64_t span;
  if (__builtin_add_overflow(log.input_tokens, log.output_tokens, &log.total_tokens))
    return Overflow("total_tokens");
  if (__builtin_add_overflow(log.input_cost, log.output_cost, &log.total_cost))
    return Overflow("total_cost");
  if (__builtin_sub_overflow(log.response_ts, log.request_ts, &span)) return Overflow("duration");
  log.duration_ms = span / 1000;
  bool id_given = log.id != nullptr;
  Uuid id = id_given ? ToUuid(log.id.get()) : impl_->NewId();
  log.id = FbId(id);
  log.tenant_id.reset();  // set from the user, under the lock
  if (log.chat_id && ToUuid(log.chat_id.get()).IsNil()) log.chat_id.reset();
  AS_RETURN_IF_ERROR(CheckRecord(log, impl_->Ctx()));

  Partition& shard = impl_->ShardOf(user);
  auto claim = impl_->ClaimId(id, id_given);
  if (id_given && impl_->InOtherShard(&Partition::usage_logs, id, impl_->ShardIndex(user)))
    return Status::AlreadyExists("usage log id is in use");
  // Only the user's shard: nothing here reads the global partition.
  std::unique_lock lock(shard.mu);
  auto u = shard.users.find(user);
  if (u == shard.users.end() || View<fb::User>(shard, u->second)->deleted_at())
    return MissingRef("user_id", "user");
  Uuid tenant = ToUuid(View<fb::User>(shard, u->second)->tenant_id());
  auto pair = shard.user_agent_by_pair.find({user, agent});
  if (pair == shard.user_agent_by_pair.end()) return NotFound("user_agent for (user, agent)");
  Loc ua_loc = shard.user_agents.at(pair->second);
  const auto* ua_cur = View<fb::UserAgent>(shard, ua_loc);
  if (ua_cur->deleted_at()) return NotFound("user_agent for (user, agent)");

  auto answer = [&](Loc log_loc) {
    TrackResult r;
    r.user_agent = RowAt<fb::UserAgent>(shard, shard.user_agents.at(pair->second));
    r.log = RowAt<fb::UsageLog>(shard, log_loc);
    return r;
  };
  if (auto it = shard.usage_logs.find(id); it != shard.usage_logs.end()) {
    // A retried call with the same id: answer the stored state, change nothing.
    if (ToUuid(View<fb::UsageLog>(shard, it->second)->user_id()) != user)
      return Status::AlreadyExists("usage log id is in use");
    TrackResult r = answer(it->second);
    std::shared_lock ledger(impl_->ledger.mu);
    for (int8_t t : {int8_t{0}, int8_t{1}})
      if (QuotaRec* q = CurrentQuota(impl_->ledger, tenant, t))
        r.quotas.push_back(Row<fb::Quota>(PackQuota(QuotaSnapshot(*q))));
    return r;
  }

  Loc chat_loc = 0;
  fb::ChatT chat;
  Uuid chat_id;
  if (log.chat_id) {
    chat_id = ToUuid(log.chat_id.get());
    auto c = shard.chats.find(chat_id);
    if (c == shard.chats.end() || ToUuid(View<fb::Chat>(shard, c->second)->user_id()) != user ||
        View<fb::Chat>(shard, c->second)->deleted_at())
      return MissingRef("chat_id", "chat of this user");
    chat_loc = c->second;
    View<fb::Chat>(shard, chat_loc)->UnPackTo(&chat);
    if (__builtin_add_overflow(chat.total_input_tokens, log.input_tokens,
                               &chat.total_input_tokens) ||
        __builtin_add_overflow(chat.total_output_tokens, log.output_tokens,
                               &chat.total_output_tokens) ||
        __builtin_add_overflow(chat.total_cost, log.total_cost, &chat.total_cost))
      return Overflow("the chat's totals");
    chat.updated_at = std::max(now, chat.updated_at);
  }
  if (!tenant.IsNil()) log.tenant_id = FbId(tenant);

  // The user_agent's counters.
  fb::UserAgentT ua;
  ua_cur->UnPackTo(&ua);
  ua.usage_count += 1;
  (log.success ? ua.success_count : ua.error_count) += 1;
  if (__builtin_add_overflow(ua.message_count, static_cast<int64_t>(messages), &ua.message_count))
    return Overflow("message_count");
  if (__builtin_add_overflow(ua.total_tokens_used, log.total_tokens, &ua.total_tokens_used))
    return Overflow("total_tokens_used");
  if (__builtin_add_overflow(ua.total_cost, log.total_cost, &ua.total_cost))
    return Overflow("total_cost");
  if (ua.first_used_at == 0) ua.first_used_at = now;
  ua.last_used_at = now;
  // Running mean: avg += (x - avg) / n.
  double avg = ua.avg_response_time_ms.value_or(0.0);
  avg += (static_cast<double>(log.duration_ms) - avg) / static_cast<double>(ua.usage_count);
  ua.avg_response_time_ms = avg;
  ua.quality_score = QualityScore(ua);
  ua.updated_at = std::max(now, ua.updated_at);

  // Rollups: the user's, the tenant's, everyone's.
  UsageTotals delta;
  delta.requests = 1;
  (log.success ? delta.success_count : delta.error_count) = 1;
  delta.input_tokens = log.input_tokens;
  delta.output_tokens = log.output_tokens;
  delta.total_tokens = log.total_tokens;
  delta.input_cost = log.input_cost;
  delta.output_cost = log.output_cost;
  delta.total_cost = log.total_cost;
  delta.duration_ms = log.duration_ms;
  RollupKey rk{DayOf(log.request_ts), static_cast<int8_t>(log.agent_type), log.provider, log.model};

  // The shard's records, and the user's rollup, go in as full records: the shard lock
  // orders them. The tenant and everyone rollups and the quotas are shared by every
  // shard: they go in as merges of this call's delta (usage_state.h, Ledger).
  std::string log_bytes = Pack(log);
  std::string ua_bytes = Pack(ua);
  std::string chat_bytes = log.chat_id ? Pack(chat) : std::string();
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUsageLog, id), log_bytes);
  batch.Put(RecordKey(RecordType::kUserAgent, pair->second), ua_bytes);
  if (log.chat_id) batch.Put(RecordKey(RecordType::kChat, chat_id), chat_bytes);

  RollupMap& user_roll = shard.user_rollups[user];
  UsageTotals user_next;
  if (auto it = user_roll.find(rk); it != user_roll.end()) user_next = it->second;
  if (AddsOverflow(user_next, delta)) return Overflow("a usage rollup");
  user_next += delta;
  batch.Put(
      RollupKeyOf(RecordType::kUserUsageRollup, user, rk.day, rk.agent_type, rk.provider, rk.model),
      PackRollup(user, rk, user_next));
  std::vector<Uuid> owners;
  if (!tenant.IsNil()) owners.push_back(tenant);
  owners.push_back(Uuid());  // everyone
  for (const Uuid& owner : owners) {
    auto part = shard.tenant_rollup_parts.find(owner);
    if (part != shard.tenant_rollup_parts.end()) {
      auto it = part->second.find(rk);
      if (it != part->second.end() && AddsOverflow(it->second, delta))
        return Overflow("a usage rollup");
    }
    batch.Merge(RollupKeyOf(RecordType::kTenantUsageRollup, owner, rk.day, rk.agent_type,
                            rk.provider, rk.model),
                PackRollup(owner, rk, delta));
  }

  // Quotas: tokens += total_tokens, api_calls += 1; a period that ended starts anew.
  Ledger& ledger = impl_->ledger;
  const int8_t kQuotaTypes[] = {static_cast<int8_t>(fb::QuotaType::tokens),
                                static_cast<int8_t>(fb::QuotaType::api_calls)};
  std::shared_lock ledger_lock(ledger.mu, std::defer_lock);
  if (!tenant.IsNil()) {
    // Start new periods first (exclusively, rarely), then advance under the shared lock.
    while (true) {
      ledger_lock.lock();
      bool ended = false;
      for (int8_t t : kQuotaTypes) {
        QuotaRec* cur = CurrentQuota(ledger, tenant, t);
        ended |= cur && cur->period_end != 0 && now >= cur->period_end;
      }
      if (!ended) break;
      ledger_lock.unlock();
      std::unique_lock excl(ledger.mu);
      for (int8_t t : kQuotaTypes) {
        QuotaRec* cur = CurrentQuota(ledger, tenant, t);
        if (!cur || cur->period_end == 0 || now < cur->period_end) continue;
        QuotaRec q = *cur;
        q.period_start = PeriodStart(q.period, now);
        q.period_end = PeriodEnd(q.period, q.period_start);
        q.usage = 0;
        q.updated_at = now;
        // In memory now; on disk with the first merge into it (which carries the fields).
        ledger.quotas.emplace(QuotaKey{q.tenant, q.type, q.period_start}, q);
      }
    }
  }
  struct Advance {
    QuotaRec* quota;
    int64_t add;
  };
  std::vector<Advance> advanced;
  auto undo = [&] {
    for (const auto& a : advanced) QuotaUsage(*a.quota).fetch_sub(a.add);
  };
  std::vector<std::string> quota_bytes;
  if (!tenant.IsNil()) {
    for (int8_t t : kQuotaTypes) {
      QuotaRec* cur = CurrentQuota(ledger, tenant, t);
      if (!cur) continue;
      int64_t add = t == static_cast<int8_t>(fb::QuotaType::tokens) ? log.total_tokens : 1;
      auto usage = QuotaUsage(*cur);
      int64_t before = usage.load(), after;
      do {
        if (__builtin_add_overflow(before, add, &after)) {
          undo();
          return Overflow("a quota");
        }
      } while (!usage.compare_exchange_weak(before, after));
      advanced.push_back({cur, add});
      std::atomic_ref<int64_t> updated(cur->updated_at);
      for (int64_t u = updated.load(); u < now && !updated.compare_exchange_weak(u, now);) {
      }
      QuotaRec q = QuotaSnapshot(*cur);
      q.usage = after;  // the usage right after this call's addition
      q.exceeded = q.usage > q.limit;
      q.updated_at = now;
      quota_bytes.push_back(PackQuota(q));
      QuotaRec operand = q;  // the addition, with the period's fields for a new period
      operand.usage = add;
      operand.exceeded = operand.usage > operand.limit;
      batch.Merge(QuotaKeyOf(q.tenant, q.type, q.period_start), PackQuota(operand));
    }
  }
  auto ticket_or = impl_->Log(batch);
  if (!ticket_or.ok()) {
    undo();
    return ticket_or.status();
  }
  uint64_t ticket = *ticket_or;
  if (ledger_lock.owns_lock()) ledger_lock.unlock();

  // Apply.
  user_roll.Set(rk, user_next);
  for (const Uuid& owner : owners) shard.tenant_rollup_parts[owner].Add(rk, delta);
  impl_->IndexUsageLog(shard, shard.arena.Append(log_bytes));
  shard.arena.Free(ua_loc);
  shard.user_agents[pair->second] = shard.arena.Append(ua_bytes);
  if (log.chat_id) {
    shard.arena.Free(chat_loc);
    shard.chats[chat_id] = shard.arena.Append(chat_bytes);
  }
  impl_->MaybeCompact(shard);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  TrackResult r;
  r.user_agent = Row<fb::UserAgent>(ua_bytes);
  r.log = Row<fb::UsageLog>(log_bytes);
  for (auto& b : quota_bytes) r.quotas.push_back(Row<fb::Quota>(b));
  return r;
}

Result<Row<fb::UserAgent>> Engine::RateAgent(const Scope& scope, const Uuid& user,
                                             const Uuid& agent, double rating,
                                             std::string_view review) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not rate agents");
  if (!std::isfinite(rating) || rating < 1.0 || rating > 5.0)
    return Status::InvalidArgument("rating must be between 1 and 5");
  AS_RETURN_IF_ERROR(CheckText("review", review, 10000));
  if (!impl_->Sees(scope, user)) return NotFound("user_agent");
  Partition& shard = impl_->ShardOf(user);
  std::unique_lock lock(shard.mu);
  auto pair = shard.user_agent_by_pair.find({user, agent});
  if (pair == shard.user_agent_by_pair.end() || !impl_->UserLive(shard, user))
    return NotFound("user_agent");
  Loc loc = shard.user_agents.at(pair->second);
  const auto* cur = View<fb::UserAgent>(shard, loc);
  if (cur->deleted_at()) return NotFound("user_agent");
  fb::UserAgentT ua;
  cur->UnPackTo(&ua);
  int64_t now = impl_->Now();
  // NUMERIC(3,2): the rating as the decimal the client wrote, rounded half away from zero.
  ua.user_rating = static_cast<double>(*Hundredths(rating)) / 100.0;
  ua.last_rating_at = now;
  ua.quality_score = QualityScore(ua);
  ua.updated_at = std::max(now, ua.updated_at);
  if (!review.empty()) {
    Json meta = ua.metadata.empty() ? Json::object() : Json::parse(ua.metadata, nullptr, false);
    if (!meta.is_object()) meta = Json::object();
    meta["last_review"] = {{"rating", *ua.user_rating}, {"review", review}, {"at", now}};
    ua.metadata = meta.dump();
  }
  AS_RETURN_IF_ERROR(CheckRecord(ua, impl_->Ctx()));
  std::string bytes = Pack(ua);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUserAgent, pair->second), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  shard.arena.Free(loc);
  shard.user_agents[pair->second] = shard.arena.Append(bytes);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::UserAgent>(bytes);
}

namespace {

// Up to `limit` entries of `index` newest first, strictly before `before`, at or after
// `from`, into `out` (appended).
void TakeNewest(const Partition& shard, const UsageIndex& index, const UsageRef& before,
                int64_t from, size_t limit,
                std::vector<std::pair<UsageRef, Row<fb::UsageLog>>>& out) {
  auto it = index.lower_bound(before);
  size_t n = 0;
  while (it != index.begin() && n < limit) {
    --it;
    if (it->first.ts < from) break;
    out.emplace_back(it->first, RowAt<fb::UsageLog>(shard, it->second));
    ++n;
  }
}

}  // namespace

Result<Page<fb::UsageLog>> Engine::ListUsage(const Scope& scope, const UsageQuery& q) {
  AS_RETURN_IF_ERROR(CheckLimit(q.limit));
  if (q.agent_type &&
      static_cast<uint8_t>(*q.agent_type) > static_cast<uint8_t>(fb::AgentType::MAX))
    return Status::InvalidArgument("unknown agent_type");
  // Times outside the stored range [0, kMaxTimeMicros] are clamped into it (every stored
  // time lies there), so INT64_MIN / INT64_MAX mean "from the start" / "to the end".
  const int64_t from = std::clamp<int64_t>(q.from, 0, kMaxTimeMicros);
  if (q.from > q.to) return Status::InvalidArgument("from is after to");
  UsageRef before{q.to, Uuid()};
  if (!q.cursor.empty()) {
    TimeKey k;
    AS_RETURN_IF_ERROR(DecodeTimeCursor(q.cursor, &k));
    before = {k.first, k.second};
  }
  std::optional<Uuid> user = q.user;
  if (scope.is_user()) {
    if (user && *user != scope.user()) return Page<fb::UsageLog>{};
    user = scope.user();
  }
  // Another tenant's user's logs read as a user without logs.
  if (user && !impl_->Sees(scope, *user)) return Page<fb::UsageLog>{};
  std::vector<std::pair<UsageRef, Row<fb::UsageLog>>> hits;
  size_t want = q.limit + 1;
  if (user) {
    Partition& shard = impl_->ShardOf(*user);
    std::shared_lock lock(shard.mu);
    auto it = shard.usage_by_user.find(*user);
    if (it != shard.usage_by_user.end()) {
      if (!q.agent_type) {
        TakeNewest(shard, it->second, before, from, want, hits);
      } else {
        // Walk the user's logs, keeping one agent_type.
        auto pos = it->second.lower_bound(before);
        while (pos != it->second.begin() && hits.size() < want) {
          --pos;
          if (pos->first.ts < from) break;
          const auto* l = View<fb::UsageLog>(shard, pos->second);
          if (l->agent_type() == *q.agent_type)
            hits.emplace_back(pos->first, RowAt<fb::UsageLog>(shard, pos->second));
        }
      }
    }
  } else {
    for (const auto& sp : impl_->shards) {
      std::shared_lock lock(sp->mu);
      for (size_t t = 0; t < std::size(sp->usage_by_type); ++t) {
        if (q.agent_type && t != static_cast<size_t>(*q.agent_type)) continue;
        if (!scope.confined()) {
          TakeNewest(*sp, sp->usage_by_type[t], before, from, want, hits);
          continue;
        }
        // A tenant-scoped key lists its tenant's logs only (each log carries tenant_id).
        const UsageIndex& index = sp->usage_by_type[t];
        size_t n = 0;
        for (auto pos = index.lower_bound(before); pos != index.begin() && n < want;) {
          --pos;
          if (pos->first.ts < from) break;
          if (ToUuid(View<fb::UsageLog>(*sp, pos->second)->tenant_id()) != *scope.tenant())
            continue;
          hits.emplace_back(pos->first, RowAt<fb::UsageLog>(*sp, pos->second));
          ++n;
        }
      }
    }
  }
  std::sort(hits.begin(), hits.end(),
            [](const auto& a, const auto& b) { return b.first < a.first; });
  Page<fb::UsageLog> page;
  for (auto& [ref, row] : hits) {
    if (page.rows.size() == q.limit) {
      const auto& last = hits[q.limit - 1].first;
      page.next_cursor = EncodeTimeCursor({last.ts, last.id});
      break;
    }
    page.rows.push_back(std::move(row));
  }
  return page;
}

namespace internal {

UsageTotals& RollupMap::MonthOf(const RollupKey& k) {
  RollupKey month = k;
  month.day = MonthStart(k.day);
  return months_[std::move(month)];
}

namespace {
// month += sign × d, wrapping like two's complement rather than overflowing (imported
// rollups are unchecked sums; a month row must never be undefined behaviour).
void AddWrapping(UsageTotals& month, const UsageTotals& d, int64_t sign) {
  auto add = [sign](int64_t& a, int64_t b) {
    a = static_cast<int64_t>(static_cast<uint64_t>(a) +
                             static_cast<uint64_t>(sign) * static_cast<uint64_t>(b));
  };
  add(month.requests, d.requests);
  add(month.success_count, d.success_count);
  add(month.error_count, d.error_count);
  add(month.input_tokens, d.input_tokens);
  add(month.output_tokens, d.output_tokens);
  add(month.total_tokens, d.total_tokens);
  add(month.input_cost, d.input_cost);
  add(month.output_cost, d.output_cost);
  add(month.total_cost, d.total_cost);
  add(month.duration_ms, d.duration_ms);
}
}  // namespace

void RollupMap::Set(const RollupKey& k, const UsageTotals& t) {
  UsageTotals& day = days_[k];
  UsageTotals& month = MonthOf(k);
  AddWrapping(month, day, -1);
  AddWrapping(month, t, 1);
  day = t;
}

void RollupMap::Add(const RollupKey& k, const UsageTotals& d) {
  days_[k] += d;
  AddWrapping(MonthOf(k), d, 1);
}

}  // namespace internal

Result<UsageSummary> Engine::SummarizeUsage(const Scope& scope, const UsageSummaryRequest& req) {
  if (static_cast<uint8_t>(req.owner) > 2 || static_cast<uint8_t>(req.bucket) > 2 ||
      static_cast<uint8_t>(req.group) > 3)
    return Status::InvalidArgument("unknown owner, bucket or group");
  if (req.from >= req.to) return Status::InvalidArgument("from must be before to");
  if (req.owner != SummaryOwner::kUser && scope.is_user())
    return Status::PermissionDenied("a user summarizes only its own usage");
  if (req.owner == SummaryOwner::kEveryone && scope.confined())
    return Status::PermissionDenied("a tenant-scoped key summarizes its tenant, not everyone");
  if (req.owner == SummaryOwner::kTenant && !EngineState::SeesTenant(scope, req.id))
    return UsageSummary{};  // another tenant reads as a tenant without usage
  // Clamped to the stored range [0, kMaxTimeMicros] (DayOf(INT64_MIN) would overflow).
  const int64_t from = std::clamp<int64_t>(req.from, 0, kMaxTimeMicros);
  const int64_t to = std::clamp<int64_t>(req.to, 1, kMaxTimeMicros);
  if (from >= to) return UsageSummary{};
  int64_t first_day = DayOf(from), last_day = DayOf(to - 1);
  // Folded without an allocation per rollup entry (this runs on every chat screen's usage
  // panel): groups are looked up by string_view; a group's name is copied once, into
  // `names` (a deque, so the views stay valid), not per entry, because the tenant path
  // releases each lock before the next and cannot keep views into the rollups.
  std::deque<std::string> names;
  std::map<std::pair<int64_t, std::string_view>, UsageTotals> acc;
  // The rows of `rows` in days [d0, d1].
  auto fold_rows = [&](const RollupMap::Rows& rows, int64_t d0, int64_t d1) {
    for (auto it = rows.lower_bound(RollupKey{d0, INT8_MIN, "", ""});
         it != rows.end() && it->first.day <= d1; ++it) {
      int64_t period = req.bucket == SummaryBucket::kDay     ? it->first.day
                       : req.bucket == SummaryBucket::kMonth ? MonthStart(it->first.day)
                                                             : 0;
      std::string_view group;
      switch (req.group) {
        case SummaryGroup::kModel:
          group = it->first.model;
          break;
        case SummaryGroup::kProvider:
          group = it->first.provider;
          break;
        case SummaryGroup::kAgentType:
          group = kAgentTypeNames[static_cast<size_t>(it->first.agent_type) % 5];
          break;
        case SummaryGroup::kNone:
          break;
      }
      auto slot = acc.find({period, group});
      if (slot == acc.end())
        slot = acc.emplace(std::pair{period, std::string_view(names.emplace_back(group))},
                           UsageTotals{})
                   .first;
      slot->second += it->second;
    }
  };
  // Whole months inside [first_day, last_day] come from the month rows (unless the answer
  // is per day); the part months at either end from the day rows. The walk jumps from one
  // month with usage to the next, so an all-time range costs what its data holds.
  auto fold = [&](const RollupMap& m) {
    if (req.bucket == SummaryBucket::kDay) return fold_rows(m.days(), first_day, last_day);
    for (int64_t d = first_day; d <= last_day;) {
      auto next_row = m.lower_bound(RollupKey{d, INT8_MIN, "", ""});
      if (next_row == m.end() || next_row->first.day > last_day) break;
      d = next_row->first.day;
      int64_t month = MonthStart(d), next_month = NextMonthStart(d);
      if (month >= first_day && next_month - kDayMicros <= last_day)
        fold_rows(m.months(), month, month);
      else
        fold_rows(m.days(), d, std::min(last_day, next_month - 1));
      d = next_month;
    }
  };
  if (req.owner == SummaryOwner::kUser) {
    if (!impl_->Sees(scope, req.id)) return UsageSummary{};
    Partition& shard = impl_->ShardOf(req.id);
    std::shared_lock lock(shard.mu);
    if (auto it = shard.user_rollups.find(req.id); it != shard.user_rollups.end()) fold(it->second);
  } else {
    Uuid owner = req.owner == SummaryOwner::kTenant ? req.id : Uuid();
    // What was on disk at open, then each shard's part since (never both locks at once).
    {
      std::shared_lock lock(impl_->ledger.mu);
      if (auto it = impl_->ledger.tenant_rollups.find(owner);
          it != impl_->ledger.tenant_rollups.end())
        fold(it->second);
    }
    for (const auto& sp : impl_->shards) {
      std::shared_lock lock(sp->mu);
      if (auto it = sp->tenant_rollup_parts.find(owner); it != sp->tenant_rollup_parts.end())
        fold(it->second);
    }
  }
  UsageSummary out;
  for (auto& [k, t] : acc) out.rows.push_back({k.first, std::string(k.second), t});
  std::stable_sort(out.rows.begin(), out.rows.end(), [](const auto& a, const auto& b) {
    if (a.period_start != b.period_start) return a.period_start < b.period_start;
    if (a.totals.total_cost != b.totals.total_cost)
      return a.totals.total_cost > b.totals.total_cost;
    return a.group < b.group;
  });
  return out;
}

Result<uint64_t> Engine::ExpireUsageLogs(const Scope& scope) {
  if (scope.is_user()) return Status::PermissionDenied("only service and admin keys expire logs");
  if (scope.confined())
    return Status::PermissionDenied("usage_expire spans every tenant: not for tenant-scoped keys");
  if (impl_->options.usage_log_retention_micros <= 0) return uint64_t{0};
  int64_t cutoff = impl_->Now() - impl_->options.usage_log_retention_micros;
  uint64_t dropped = 0, ticket = 0;
  for (const auto& sp : impl_->shards) {
    Partition& shard = *sp;
    std::unique_lock lock(shard.mu);
    std::vector<Uuid> ids;
    for (const auto& index : shard.usage_by_type)
      for (auto it = index.begin(); it != index.end() && it->first.ts < cutoff; ++it)
        ids.push_back(it->first.id);
    if (ids.empty()) continue;
    if (impl_->options.usage_log_retention_purge_store) {
      storage::WriteBatch batch;
      for (const Uuid& id : ids) {
        if (auto l = shard.usage_logs.find(id); l != shard.usage_logs.end())  // feed's owner
          batch.Note(impl_->OwnerNoteFor(ToUuid(View<fb::UsageLog>(shard, l->second)->user_id())));
        batch.Delete(RecordKey(RecordType::kUsageLog, id));
      }
      AS_ASSIGN_OR_RETURN(ticket, impl_->Log(batch));
    }
    for (const Uuid& id : ids) impl_->UnindexUsageLog(shard, id);
    impl_->MaybeCompact(shard);
    dropped += ids.size();
  }
  if (ticket) AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return dropped;
}

namespace internal {

namespace {

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? INT64_MAX : INT64_MIN;
}

// A verified, aligned view of one record (RocksDB hands out values at any address).
template <typename T>
const T* VerifiedRoot(std::string_view v, std::vector<uint64_t>& buf) {
  buf.resize((v.size() + 7) / 8);
  std::memcpy(buf.data(), v.data(), v.size());
  flatbuffers::Verifier ver(reinterpret_cast<const uint8_t*>(buf.data()), v.size());
  if (!ver.VerifyBuffer<T>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<T>(buf.data());
}

}  // namespace

bool MergeUsageRecord(std::string_view key, const std::string_view* existing,
                      std::string_view operand, std::string* out) {
  if (key.empty()) return false;
  std::vector<uint64_t> a, b;
  switch (static_cast<RecordType>(key[0])) {
    case RecordType::kTenantUsageRollup: {
      const auto* add = VerifiedRoot<fb::UsageRollup>(operand, b);
      if (!add) return false;
      if (!existing) {
        out->assign(operand);
        return true;
      }
      const auto* have = VerifiedRoot<fb::UsageRollup>(*existing, a);
      if (!have) return false;
      fb::UsageRollupT r;
      have->UnPackTo(&r);
      // Sums saturate rather than wrap (the in-memory check refuses a call first).
      r.requests = SaturatingAdd(r.requests, add->requests());
      r.success_count = SaturatingAdd(r.success_count, add->success_count());
      r.error_count = SaturatingAdd(r.error_count, add->error_count());
      r.input_tokens = SaturatingAdd(r.input_tokens, add->input_tokens());
      r.output_tokens = SaturatingAdd(r.output_tokens, add->output_tokens());
      r.total_tokens = SaturatingAdd(r.total_tokens, add->total_tokens());
      r.input_cost = SaturatingAdd(r.input_cost, add->input_cost());
      r.output_cost = SaturatingAdd(r.output_cost, add->output_cost());
      r.total_cost = SaturatingAdd(r.total_cost, add->total_cost());
      r.duration_ms = SaturatingAdd(r.duration_ms, add->duration_ms());
      *out = Pack(r);
      return true;
    }
    case RecordType::kQuota: {
      const auto* add = VerifiedRoot<fb::Quota>(operand, b);
      if (!add) return false;
      if (!existing) {
        out->assign(operand);
        return true;
      }
      const auto* have = VerifiedRoot<fb::Quota>(*existing, a);
      if (!have) return false;
      QuotaRec q = QuotaFromRecord(have);
      q.usage = SaturatingAdd(q.usage, add->current_usage());
      q.updated_at = std::max(q.updated_at, add->updated_at());
      q.exceeded = q.usage > q.limit;
      *out = PackQuota(q);
      return true;
    }
    default:
      return false;
  }
}

Status EngineState::RecoverUsage() {
  auto scan = [&](RecordType t, auto&& fn) { return RecoveryScan(KeyPrefix(t), fn); };
  auto verify = [](auto* tag, std::string_view k, std::string_view v) -> Status {
    using T = std::remove_pointer_t<decltype(tag)>;
    flatbuffers::Verifier ver(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    if (!ver.VerifyBuffer<T>(nullptr))
      return Status::Corruption("record under key of type " + std::to_string(int(k[0])) +
                                " fails verification");
    return Status::OK();
  };
  int64_t cutoff = options.usage_log_retention_micros > 0
                       ? Now() - options.usage_log_retention_micros
                       : INT64_MIN;
  AS_RETURN_IF_ERROR(scan(RecordType::kUsageLog, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(verify(static_cast<fb::UsageLog*>(nullptr), k, v));
    const auto* l = flatbuffers::GetRoot<fb::UsageLog>(v.data());
    if (l->request_ts() < cutoff) return Status::OK();
    Partition& shard = ShardOf(ToUuid(l->user_id()));
    IndexUsageLog(shard, shard.arena.Append(v));
    return Status::OK();
  }));
  auto rollup = [&](std::string_view k, std::string_view v, RollupMap& into) -> Status {
    const auto* r = flatbuffers::GetRoot<fb::UsageRollup>(v.data());
    RollupKey key{r->day(), static_cast<int8_t>(r->agent_type()), std::string(Str(r->provider())),
                  std::string(Str(r->model()))};
    UsageTotals t{r->requests(),      r->success_count(), r->error_count(), r->input_tokens(),
                  r->output_tokens(), r->total_tokens(),  r->input_cost(),  r->output_cost(),
                  r->total_cost(),    r->duration_ms()};
    into.Set(key, t);
    return Status::OK();
  };
  AS_RETURN_IF_ERROR(
      scan(RecordType::kUserUsageRollup, [&](std::string_view k, std::string_view v) {
        AS_RETURN_IF_ERROR(verify(static_cast<fb::UsageRollup*>(nullptr), k, v));
        Uuid owner = ToUuid(flatbuffers::GetRoot<fb::UsageRollup>(v.data())->owner_id());
        return rollup(k, v, ShardOf(owner).user_rollups[owner]);
      }));
  AS_RETURN_IF_ERROR(
      scan(RecordType::kTenantUsageRollup, [&](std::string_view k, std::string_view v) {
        AS_RETURN_IF_ERROR(verify(static_cast<fb::UsageRollup*>(nullptr), k, v));
        Uuid owner = ToUuid(flatbuffers::GetRoot<fb::UsageRollup>(v.data())->owner_id());
        return rollup(k, v, ledger.tenant_rollups[owner]);
      }));
  AS_RETURN_IF_ERROR(scan(RecordType::kQuota, [&](std::string_view k, std::string_view v) {
    AS_RETURN_IF_ERROR(verify(static_cast<fb::Quota*>(nullptr), k, v));
    QuotaRec q = QuotaFromRecord(flatbuffers::GetRoot<fb::Quota>(v.data()));
    ledger.quotas[QuotaKey{q.tenant, q.type, q.period_start}] = q;
    return Status::OK();
  }));
  AS_RETURN_IF_ERROR(
      scan(RecordType::kRateLimitConfig, [&](std::string_view k, std::string_view v) {
        AS_RETURN_IF_ERROR(verify(static_cast<fb::RateLimitConfig*>(nullptr), k, v));
        const auto* c = flatbuffers::GetRoot<fb::RateLimitConfig>(v.data());
        LimitConfig cfg;
        cfg.id = ToUuid(c->id());
        cfg.scope = static_cast<int8_t>(c->scope());
        cfg.scope_id = ToUuid(c->scope_id());
        cfg.type = static_cast<int8_t>(c->limit_type());
        cfg.value = c->limit_value();
        cfg.active = c->is_active();
        cfg.created_at = c->created_at();
        cfg.updated_at = c->updated_at();
        limiter.by_subject[cfg.scope_id].push_back(cfg.id);
        limiter.configs.emplace(cfg.id, std::move(cfg));
        return Status::OK();
      }));
  return Status::OK();
}

Status EngineState::ImportUsageRecord(RecordType type, std::string_view json, uint64_t* ticket) {
  *ticket = 0;
  auto put = [&](const std::string& key, const std::string& bytes) -> Status {
    storage::WriteBatch batch;
    batch.Put(key, bytes);
    AS_ASSIGN_OR_RETURN(*ticket, Log(batch));
    return Status::OK();
  };
  // An identical record is a no-op; a different one under the same key is refused.
  auto same = [](std::string_view have, const std::string& bytes) -> Status {
    return have == bytes ? Status::OK()
                         : Status::AlreadyExists("a different record with this key exists");
  };
  switch (type) {
    case RecordType::kUserUsageRollup:
    case RecordType::kTenantUsageRollup: {
      fb::UsageRollupT r;
      AS_RETURN_IF_ERROR(::agentstore::RecordFromJson<fb::UsageRollup>(json, &r));
      Uuid owner = ToUuid(r.owner_id.get());
      bool user_rollup = type == RecordType::kUserUsageRollup;
      // Rows are per UTC day (and summed per month in memory): a day must be one's start.
      if (r.day < 0 || r.day > kMaxTimeMicros || r.day % kDayMicros != 0)
        return Status::InvalidArgument("day must be the start of a UTC day (micros)");
      if (user_rollup && owner.IsNil()) return Status::InvalidArgument("owner_id is required");
      std::string bytes = Pack(r);
      RollupKey key{r.day, static_cast<int8_t>(r.agent_type), r.provider, r.model};
      UsageTotals t{r.requests,     r.success_count, r.error_count, r.input_tokens, r.output_tokens,
                    r.total_tokens, r.input_cost,    r.output_cost, r.total_cost,   r.duration_ms};
      auto apply = [&](RollupMap& m) -> Status {
        if (auto it = m.find(key); it != m.end())
          return it->second == t ? Status::OK()
                                 : Status::AlreadyExists("a different rollup exists");
        AS_RETURN_IF_ERROR(
            put(RollupKeyOf(type, owner, r.day, key.agent_type, r.provider, r.model), bytes));
        m.Set(key, t);
        return Status::OK();
      };
      if (user_rollup) {
        Partition& shard = ShardOf(owner);
        std::unique_lock lock(shard.mu);
        if (!shard.users.count(owner)) return MissingRef("owner_id", "user");
        return apply(shard.user_rollups[owner]);
      }
      // A tenant rollup is what was on disk plus the shards' parts (Ledger).
      UsageTotals parts;
      bool in_parts = false;
      for (const auto& sp : shards) {
        std::shared_lock slock(sp->mu);
        auto o = sp->tenant_rollup_parts.find(owner);
        if (o == sp->tenant_rollup_parts.end()) continue;
        if (auto it = o->second.find(key); it != o->second.end()) {
          parts += it->second;
          in_parts = true;
        }
      }
      std::unique_lock lock(ledger.mu);
      RollupMap& base = ledger.tenant_rollups[owner];
      if (in_parts) {
        if (auto it = base.find(key); it != base.end()) parts += it->second;
        return parts == t ? Status::OK() : Status::AlreadyExists("a different rollup exists");
      }
      return apply(base);
    }
    case RecordType::kQuota: {
      fb::QuotaT q;
      AS_RETURN_IF_ERROR(::agentstore::RecordFromJson<fb::Quota>(json, &q));
      if (!q.tenant_id) return Status::InvalidArgument("tenant_id is required");
      std::string bytes = Pack(q);
      QuotaRec rec = QuotaFromRecord(flatbuffers::GetRoot<fb::Quota>(bytes.data()));
      std::shared_lock glock(global.mu);
      if (!global.tenants.count(rec.tenant)) return MissingRef("tenant_id", "tenant");
      std::unique_lock lock(ledger.mu);
      QuotaKey key{rec.tenant, rec.type, rec.period_start};
      if (auto it = ledger.quotas.find(key); it != ledger.quotas.end())
        return same(PackQuota(it->second), PackQuota(rec));
      AS_RETURN_IF_ERROR(put(QuotaKeyOf(rec.tenant, rec.type, rec.period_start), PackQuota(rec)));
      ledger.quotas[key] = rec;
      return Status::OK();
    }
    case RecordType::kRateLimitConfig: {
      fb::RateLimitConfigT c;
      AS_RETURN_IF_ERROR(::agentstore::RecordFromJson<fb::RateLimitConfig>(json, &c));
      if (!c.id) return Status::InvalidArgument("id is required");
      std::string bytes = Pack(c);
      const auto* v = flatbuffers::GetRoot<fb::RateLimitConfig>(bytes.data());
      std::unique_lock lock(limiter.config_mu);
      Uuid id = ToUuid(v->id());
      if (limiter.configs.count(id)) {
        const LimitConfig& cur = limiter.configs.at(id);
        bool equal = cur.scope == static_cast<int8_t>(v->scope()) &&
                     cur.scope_id == ToUuid(v->scope_id()) &&
                     cur.type == static_cast<int8_t>(v->limit_type()) &&
                     cur.value == v->limit_value() && cur.active == v->is_active();
        return equal ? Status::OK() : Status::AlreadyExists("a different config with this id");
      }
      AS_RETURN_IF_ERROR(put(RecordKey(type, id), bytes));
      LimitConfig cfg;
      cfg.id = id;
      cfg.scope = static_cast<int8_t>(v->scope());
      cfg.scope_id = ToUuid(v->scope_id());
      cfg.type = static_cast<int8_t>(v->limit_type());
      cfg.value = v->limit_value();
      cfg.active = v->is_active();
      cfg.created_at = v->created_at();
      cfg.updated_at = v->updated_at();
      limiter.by_subject[cfg.scope_id].push_back(id);
      limiter.configs.emplace(id, std::move(cfg));
      return Status::OK();
    }
    default:
      return Status::InvalidArgument("not a usage record type");
  }
}

}  // namespace internal

}  // namespace agentstore

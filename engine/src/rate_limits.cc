// Rate limits (seed 000 rate_limit_config, seed 003 check_rate_limit). Configs are
// durable records; the counting is in memory, off the partition locks: a check takes
// the config table's lock shared and then each applicable config's own mutex, in config
// id order, so checks of unrelated limits never contend.
//
// Windows are fixed and aligned to the UTC epoch (a minute window is [hh:mm:00,
// hh:mm+1:00)): exact, O(1) per limit, reset_at is the window's end. The known cost of
// fixed windows: a burst across a boundary may pass up to 2L in any span of one window
// length. Concurrent limits count live leases; a lease ends at limit_release or after
// EngineOptions::lease_ttl_micros. Windows and leases are not persisted: a restart
// starts every window at zero and forgets leases.
#include <algorithm>

#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace {

constexpr std::string_view kLimitTypeNames[] = {"requests_per_minute", "requests_per_hour",
                                                "requests_per_day", "concurrent"};

int64_t WindowOf(int8_t type) {
  switch (static_cast<fb::LimitType>(type)) {
    case fb::LimitType::requests_per_minute:
      return 60'000'000;
    case fb::LimitType::requests_per_hour:
      return 3'600'000'000;
    case fb::LimitType::requests_per_day:
      return kDayMicros;
    default:
      return 0;  // concurrent
  }
}

std::string PackConfig(const LimitConfig& c) {
  fb::RateLimitConfigT t;
  t.id = FbId(c.id);
  t.scope = static_cast<fb::LimitScope>(c.scope);
  if (!c.scope_id.IsNil()) t.scope_id = FbId(c.scope_id);
  t.limit_type = static_cast<fb::LimitType>(c.type);
  t.limit_value = c.value;
  t.is_active = c.active;
  t.created_at = c.created_at;
  t.updated_at = c.updated_at;
  return Pack(t);
}

int64_t FloorTo(int64_t t, int64_t w) {
  int64_t q = t / w;
  if (t % w < 0) --q;
  return q * w;
}

// Whether `scope` sees a config of `kind` on `subject`: a tenant-scoped key sees its
// tenant's, its users' and its agents' configs, never the global ones (caller holds the
// global partition, for the agent's tenant).
bool ConfigVisible(const EngineState& st, const Scope& scope, int8_t kind, const Uuid& subject) {
  if (!scope.confined()) return true;
  switch (static_cast<fb::LimitScope>(kind)) {
    case fb::LimitScope::tenant:
      return subject == *scope.tenant();
    case fb::LimitScope::user:
      return st.Sees(scope, subject);
    case fb::LimitScope::agent: {
      auto a = st.global.agents.find(subject);
      return a != st.global.agents.end() &&
             ToUuid(View<fb::Agent>(st.global, a->second)->tenant_id()) == *scope.tenant();
    }
    default:
      return false;
  }
}

}  // namespace

Result<Row<fb::RateLimitConfig>> Engine::PutLimitConfig(const Scope& scope,
                                                        const fb::RateLimitConfigT& in) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys manage rate limits");
  fb::RateLimitConfigT check = in;
  AS_RETURN_IF_ERROR(CheckRecord(check, impl_->Ctx()));
  bool global_scope = in.scope == fb::LimitScope::global;
  Uuid subject = in.scope_id ? ToUuid(in.scope_id.get()) : Uuid();
  if (global_scope && !subject.IsNil())
    return Status::InvalidArgument("a global limit takes no scope_id");
  if (!global_scope && subject.IsNil())
    return Status::InvalidArgument("scope_id is required for tenant, user and agent limits");
  if (global_scope && scope.confined())
    return Status::PermissionDenied("a tenant-scoped key may not set global limits");
  Partition& g = impl_->global;
  std::shared_lock glock(g.mu);
  if (!global_scope && !ConfigVisible(*impl_, scope, static_cast<int8_t>(in.scope), subject))
    return MissingRef("scope_id", fb::EnumNameLimitScope(in.scope));
  switch (in.scope) {
    case fb::LimitScope::tenant:
      if (!g.tenants.count(subject)) return MissingRef("scope_id", "tenant");
      break;
    case fb::LimitScope::agent:
      if (!g.agents.count(subject)) return MissingRef("scope_id", "agent");
      break;
    case fb::LimitScope::user: {
      Partition& shard = impl_->ShardOf(subject);
      std::shared_lock slock(shard.mu);
      if (!impl_->UserLive(shard, subject)) return MissingRef("scope_id", "user");
      break;
    }
    default:
      break;
  }
  RateLimiter& rl = impl_->limiter;
  std::unique_lock lock(rl.config_mu);
  int64_t now = impl_->Now();
  LimitConfig* cur = nullptr;
  if (in.id) {
    auto it = rl.configs.find(ToUuid(in.id.get()));
    if (it != rl.configs.end()) {
      cur = &it->second;
      if (cur->scope != static_cast<int8_t>(in.scope) || cur->scope_id != subject ||
          cur->type != static_cast<int8_t>(in.limit_type))
        return Status::InvalidArgument("a config's scope, scope_id and limit_type never change");
    }
  }
  if (!cur) {
    if (auto s = rl.by_subject.find(subject); s != rl.by_subject.end())
      for (const Uuid& id : s->second) {
        LimitConfig& c = rl.configs.at(id);
        if (c.scope == static_cast<int8_t>(in.scope) &&
            c.type == static_cast<int8_t>(in.limit_type))
          cur = &c;
      }
  }
  LimitConfig next;
  if (cur) {
    next.id = cur->id;
    next.created_at = cur->created_at;
  } else {
    next.id = in.id ? ToUuid(in.id.get()) : impl_->NewId();
    next.created_at = now;
  }
  next.scope = static_cast<int8_t>(in.scope);
  next.scope_id = subject;
  next.type = static_cast<int8_t>(in.limit_type);
  next.value = in.limit_value;
  next.active = in.is_active;
  next.updated_at = now;
  std::string bytes = PackConfig(next);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kRateLimitConfig, next.id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  if (cur) {
    // Keep the running window and leases; only the numbers change.
    cur->value = next.value;
    cur->active = next.active;
    cur->updated_at = now;
  } else {
    rl.by_subject[subject].push_back(next.id);
    rl.configs.emplace(next.id, std::move(next));
  }
  lock.unlock();
  glock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::RateLimitConfig>(bytes);
}

Result<std::vector<Row<fb::RateLimitConfig>>> Engine::ListLimitConfigs(const Scope& scope) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys read rate-limit configs");
  std::vector<Row<fb::RateLimitConfig>> out;
  std::shared_lock glock(impl_->global.mu);
  std::shared_lock lock(impl_->limiter.config_mu);
  for (const auto& [id, c] : impl_->limiter.configs)
    if (ConfigVisible(*impl_, scope, c.scope, c.scope_id))
      out.push_back(Row<fb::RateLimitConfig>(PackConfig(c)));
  return out;
}

Status Engine::DeleteLimitConfig(const Scope& scope, const Uuid& id) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys manage rate limits");
  RateLimiter& rl = impl_->limiter;
  std::shared_lock glock(impl_->global.mu);
  std::unique_lock lock(rl.config_mu);
  auto it = rl.configs.find(id);
  if (it == rl.configs.end() ||
      !ConfigVisible(*impl_, scope, it->second.scope, it->second.scope_id))
    return NotFound("rate-limit config");
  storage::WriteBatch batch;
  if (it->second.scope == static_cast<int8_t>(fb::LimitScope::user))  // the feed's owner
    batch.Note(impl_->OwnerNoteFor(it->second.scope_id));
  batch.Delete(RecordKey(RecordType::kRateLimitConfig, id));
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  auto& list = rl.by_subject[it->second.scope_id];
  std::erase(list, id);
  if (list.empty()) rl.by_subject.erase(it->second.scope_id);
  rl.configs.erase(it);
  lock.unlock();
  glock.unlock();
  return impl_->Durable(ticket);
}

Result<LimitDecision> Engine::CheckLimits(const Scope& scope, const LimitCheckRequest& req) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not consume rate limits");
  if (req.user.IsNil()) return Status::InvalidArgument("user is required");
  if (scope.is_user() && req.user != scope.user())
    return Status::PermissionDenied("a user checks only its own limits");
  if (!impl_->Sees(scope, req.user)) return NotFound("user");
  if (scope.confined() && req.tenant && *req.tenant != *scope.tenant())
    return MissingRef("tenant", "tenant");
  Uuid tenant;
  if (req.tenant && !scope.is_user()) {
    tenant = *req.tenant;
  } else {
    Partition& shard = impl_->ShardOf(req.user);
    std::shared_lock lock(shard.mu);
    auto u = shard.users.find(req.user);
    if (u == shard.users.end() || View<fb::User>(shard, u->second)->deleted_at())
      return NotFound("user");
    tenant = ToUuid(View<fb::User>(shard, u->second)->tenant_id());
  }
  RateLimiter& rl = impl_->limiter;
  std::shared_lock config_lock(rl.config_mu);
  // Every active config that applies, in id order (the lock order of their states).
  std::vector<const LimitConfig*> apply;
  auto gather = [&](const Uuid& subject, fb::LimitScope want) {
    auto s = rl.by_subject.find(subject);
    if (s == rl.by_subject.end()) return;
    for (const Uuid& id : s->second) {
      const LimitConfig& c = rl.configs.at(id);
      if (c.active && c.scope == static_cast<int8_t>(want)) apply.push_back(&c);
    }
  };
  gather(Uuid(), fb::LimitScope::global);
  if (!tenant.IsNil()) gather(tenant, fb::LimitScope::tenant);
  gather(req.user, fb::LimitScope::user);
  if (req.agent && !req.agent->IsNil()) gather(*req.agent, fb::LimitScope::agent);
  std::sort(apply.begin(), apply.end(),
            [](const LimitConfig* a, const LimitConfig* b) { return a->id < b->id; });
  LimitDecision d;
  if (apply.empty()) return d;

  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(apply.size());
  for (const LimitConfig* c : apply) locks.emplace_back(c->state->mu);
  int64_t now = impl_->Now();
  bool need_lease = false;
  struct Eval {
    int64_t remaining, reset_at;
  };
  std::vector<Eval> evals;
  for (const LimitConfig* c : apply) {
    LimitState& st = *c->state;
    int64_t w = WindowOf(c->type);
    Eval e;
    int64_t used;
    if (w == 0) {
      need_lease = true;
      std::erase_if(st.leases, [&](const auto& l) { return l.second <= now; });
      used = static_cast<int64_t>(st.leases.size());
      e.reset_at = 0;
      for (const auto& [lease, expiry] : st.leases)
        e.reset_at = e.reset_at == 0 ? expiry : std::min(e.reset_at, expiry);
    } else {
      int64_t start = FloorTo(now, w);
      if (st.window_start != start) {
        st.window_start = start;
        st.count = 0;
      }
      used = st.count;
      e.reset_at = start + w;
    }
    e.remaining = c->value - used - 1;
    if (used >= c->value && d.allowed) {
      d.allowed = false;
      d.denied_by = c->id;
      d.denied_type = std::string(kLimitTypeNames[static_cast<size_t>(c->type) % 4]);
      d.remaining = 0;
      d.reset_at = e.reset_at;
    }
    evals.push_back(e);
  }
  if (!d.allowed) return d;
  // Every limit allows: consume one unit of each.
  Uuid lease;
  int64_t expiry = now + impl_->options.lease_ttl_micros;
  if (need_lease) lease = impl_->NewId();
  std::vector<std::shared_ptr<LimitState>> leased;
  d.remaining = INT64_MAX;
  for (size_t i = 0; i < apply.size(); ++i) {
    const LimitConfig* c = apply[i];
    if (WindowOf(c->type) == 0) {
      c->state->leases[lease] = expiry;
      leased.push_back(c->state);
      if (evals[i].reset_at == 0 || expiry < evals[i].reset_at) evals[i].reset_at = expiry;
    } else {
      c->state->count += 1;
    }
    if (evals[i].remaining < d.remaining) {
      d.remaining = evals[i].remaining;
      d.reset_at = evals[i].reset_at;
    }
  }
  locks.clear();
  config_lock.unlock();
  if (need_lease) {
    d.lease = lease;
    std::lock_guard lock(rl.lease_mu);
    // Forget leases that expired unreleased now and then, so the table stays small.
    if (rl.leases.size() >= rl.sweep_at) {
      std::erase_if(rl.leases, [&](auto& l) {
        return std::all_of(l.second.states.begin(), l.second.states.end(), [&](const auto& st) {
          std::lock_guard sl(st->mu);
          auto it = st->leases.find(l.first);
          return it == st->leases.end() || it->second <= now;
        });
      });
      rl.sweep_at = std::max<size_t>(4096, 2 * rl.leases.size());
    }
    rl.leases.emplace(lease, RateLimiter::Lease{req.user, std::move(leased)});
  }
  return d;
}

Status Engine::ReleaseLimit(const Scope& scope, const Uuid& lease) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not hold leases");
  RateLimiter& rl = impl_->limiter;
  std::vector<std::shared_ptr<LimitState>> states;
  {
    std::lock_guard lock(rl.lease_mu);
    auto it = rl.leases.find(lease);
    if (it == rl.leases.end() || !impl_->Sees(scope, it->second.user)) return NotFound("lease");
    states = std::move(it->second.states);
    rl.leases.erase(it);
  }
  int64_t now = impl_->Now();
  bool live = false;
  for (const auto& st : states) {
    std::lock_guard lock(st->mu);
    auto l = st->leases.find(lease);
    if (l == st->leases.end()) continue;
    live = live || l->second > now;
    st->leases.erase(l);
  }
  if (!live) return NotFound("lease (expired)");
  return Status::OK();
}

}  // namespace agentstore

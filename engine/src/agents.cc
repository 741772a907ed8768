// Agents (global partition) and user_agents (a user's customized copy of an agent, in
// the user's shard).
#include <algorithm>

#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace {

bool AgentWritableBy(const Scope& scope, const fb::Agent* a) {
  // A tenant-scoped key writes its tenant's agents, not the platform's.
  if (scope.confined()) return ToUuid(a->tenant_id()) == *scope.tenant();
  if (!scope.is_user()) return true;  // service and admin write agents
  return a->creator_id() && ToUuid(a->creator_id()) == scope.user();
}

// What a public agent reveals of its creator: creator_id only to callers who may see that
// user (the creator itself; service and admin keys of the creator's tenant or of every
// tenant). Everyone else gets the agent with creator_id left out (docs/protocol.md).
Row<fb::Agent> AgentRowFor(const EngineState& st, const Scope& scope, const Partition& g, Loc loc) {
  const auto* a = View<fb::Agent>(g, loc);
  if (!a->creator_id() || st.Sees(scope, ToUuid(a->creator_id()))) return RowAt<fb::Agent>(g, loc);
  fb::AgentT copy;
  a->UnPackTo(&copy);
  copy.creator_id.reset();
  return Row<fb::Agent>(Pack(copy));
}

}  // namespace

// ---------------------------------------------------------------- agents

Result<Row<fb::Agent>> Engine::CreateAgent(const Scope& scope, const fb::AgentT& in) {
  fb::AgentT a = in;
  Uuid id = a.id ? ToUuid(a.id.get()) : impl_->NewId();
  a.id = FbId(id);
  if (scope.is_user()) {
    if (a.creator_id && ToUuid(a.creator_id.get()) != scope.user())
      return Status::PermissionDenied("a user creates agents only as their creator");
    if (a.tenant_id) return Status::PermissionDenied("a user may not set an agent's tenant_id");
    a.creator_id = FbId(scope.user());
  }
  if (scope.confined()) {
    if (!a.tenant_id) a.tenant_id = FbId(*scope.tenant());
    if (ToUuid(a.tenant_id.get()) != *scope.tenant()) return MissingRef("tenant_id", "tenant");
  }
  if (a.name.empty()) return Status::InvalidArgument("name is required");
  DefaultJson(a.capabilities, "{}");
  a.created_at = a.updated_at = impl_->Now();
  a.deleted_at = 0;
  AS_RETURN_IF_ERROR(CheckRecord(a, impl_->Ctx()));

  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  if (auto it = g.agents.find(id); it != g.agents.end()) {
    if (!AgentVisibleTo(scope, View<fb::Agent>(g, it->second)))
      return Status::AlreadyExists("agent id is in use");
    return AgentRowFor(*impl_, scope, g, it->second);
  }
  if (a.tenant_id) {
    auto t = g.tenants.find(ToUuid(a.tenant_id.get()));
    if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at())
      return MissingRef("tenant_id", "tenant");
  }
  if (a.creator_id && !scope.is_user()) {
    Uuid creator = ToUuid(a.creator_id.get());
    Partition& shard = impl_->ShardOf(creator);
    std::shared_lock slock(shard.mu);
    if (!impl_->UserLive(shard, creator) || !impl_->Sees(scope, creator))
      return MissingRef("creator_id", "user");
  }
  std::string bytes = Pack(a);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kAgent, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexAgent(g.arena.Append(bytes));
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Agent>(bytes);
}

Result<Row<fb::Agent>> Engine::GetAgent(const Scope& scope, const Uuid& id) {
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  auto it = g.agents.find(id);
  if (it == g.agents.end() || !AgentVisibleTo(scope, View<fb::Agent>(g, it->second)))
    return NotFound("agent");
  return AgentRowFor(*impl_, scope, g, it->second);
}

Result<Row<fb::Agent>> Engine::UpdateAgent(const Scope& scope, const Uuid& id,
                                           std::string_view patch_text, JsonMode mode) {
  Json patch;
  AS_RETURN_IF_ERROR(ParsePatch(patch_text, &patch));
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.agents.find(id);
  if (it == g.agents.end() || !AgentVisibleTo(scope, View<fb::Agent>(g, it->second)))
    return NotFound("agent");
  if (!AgentWritableBy(scope, View<fb::Agent>(g, it->second)))
    return Status::PermissionDenied("only the agent's creator may change it");
  fb::AgentT a;
  View<fb::Agent>(g, it->second)->UnPackTo(&a);
  AS_RETURN_IF_ERROR(ApplyPatch(a, patch, /*privileged=*/!scope.is_user(), impl_->Ctx(mode)));
  if (a.name.empty()) return Status::InvalidArgument("name is required");
  if (patch.contains("tenant_id") && scope.confined() && !a.tenant_id)
    return Status::PermissionDenied("a tenant-scoped key may not take an agent out of its tenant");
  if (a.tenant_id && patch.contains("tenant_id")) {
    Uuid tenant = ToUuid(a.tenant_id.get());
    auto t = g.tenants.find(tenant);
    if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at() ||
        !EngineState::SeesTenant(scope, tenant))
      return MissingRef("tenant_id", "tenant");
  }
  a.updated_at = impl_->Now();
  std::string bytes = Pack(a);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kAgent, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  g.arena.Free(it->second);
  it->second = g.arena.Append(bytes);
  impl_->MaybeCompact(g);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  if (a.creator_id && !impl_->Sees(scope, ToUuid(a.creator_id.get()))) {
    a.creator_id.reset();
    return Row<fb::Agent>(Pack(a));
  }
  return Row<fb::Agent>(bytes);
}

Status Engine::DeleteAgent(const Scope& scope, const Uuid& id, DeleteMode mode) {
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.agents.find(id);
  if (it == g.agents.end() || !AgentVisibleTo(scope, View<fb::Agent>(g, it->second)))
    return NotFound("agent");
  if (!AgentWritableBy(scope, View<fb::Agent>(g, it->second)))
    return Status::PermissionDenied("only the agent's creator may delete it");
  storage::WriteBatch batch;
  if (mode == DeleteMode::kSoft) {
    fb::AgentT a;
    View<fb::Agent>(g, it->second)->UnPackTo(&a);
    a.deleted_at = a.updated_at = impl_->Now();
    std::string bytes = Pack(a);
    batch.Put(RecordKey(RecordType::kAgent, id), bytes);
    AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
    g.arena.Free(it->second);
    it->second = g.arena.Append(bytes);
    lock.unlock();
    return impl_->Durable(ticket);
  }
  // Hard delete cascades to every user's copy of the agent (as ON DELETE CASCADE would),
  // so it locks every shard, in order, after the global partition. An operator action,
  // not a hot path.
  std::vector<std::unique_lock<std::shared_mutex>> shard_locks;
  std::vector<std::pair<Partition*, Uuid>> copies;
  for (auto& shard : impl_->shards) {
    shard_locks.emplace_back(shard->mu);
    for (const auto& [ua, loc] : shard->user_agents) {
      const auto* copy = View<fb::UserAgent>(*shard, loc);
      if (ToUuid(copy->agent_id()) != id) continue;
      // A user changes only its own records: it may not purge an agent that is in
      // another user's list (soft delete hides it instead).
      if (scope.is_user() && ToUuid(copy->user_id()) != scope.user())
        return Status::InvalidArgument(
            "the agent is in other users' lists; soft-delete it instead");
      copies.push_back({shard.get(), ua});
    }
  }
  batch.Note(impl_->OwnerNoteFor(ToUuid(View<fb::Agent>(g, it->second)->creator_id())));
  batch.Delete(RecordKey(RecordType::kAgent, id));
  for (const auto& [shard, ua] : copies) {
    batch.Note(impl_->OwnerNoteFor(
        ToUuid(View<fb::UserAgent>(*shard, shard->user_agents.at(ua))->user_id())));
    batch.Delete(RecordKey(RecordType::kUserAgent, ua));
  }
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  for (const auto& [shard, ua] : copies) impl_->UnindexUserAgent(*shard, ua);
  g.agent_order.erase({View<fb::Agent>(g, it->second)->created_at(), id});
  g.arena.Free(it->second);
  g.agents.erase(it);
  shard_locks.clear();
  lock.unlock();
  return impl_->Durable(ticket);
}

Result<Page<fb::Agent>> Engine::ListAgents(const Scope& scope, const PageRequest& req) {
  AS_RETURN_IF_ERROR(CheckLimit(req.limit));
  TimeKey after{INT64_MIN, Uuid()};
  if (!req.cursor.empty()) AS_RETURN_IF_ERROR(DecodeTimeCursor(req.cursor, &after));
  bool deleted_too = req.include_deleted && !scope.is_user();
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  Page<fb::Agent> page;
  auto it = req.cursor.empty() ? g.agent_order.begin() : g.agent_order.upper_bound(after);
  for (; it != g.agent_order.end(); ++it) {
    Loc loc = g.agents.at(it->second);
    const auto* a = View<fb::Agent>(g, loc);
    bool visible =
        AgentVisibleTo(scope, a) ||
        (deleted_too && a->deleted_at() && EngineState::SeesTenant(scope, ToUuid(a->tenant_id())));
    if (!visible) continue;
    if (page.rows.size() == req.limit) {
      const auto* last = page.rows.back().get();
      page.next_cursor = EncodeTimeCursor({last->created_at(), ToUuid(last->id())});
      break;
    }
    page.rows.push_back(AgentRowFor(*impl_, scope, g, loc));
  }
  return page;
}

// ---------------------------------------------------------------- user_agents

Result<Row<fb::UserAgent>> Engine::CreateUserAgent(const Scope& scope, const fb::UserAgentT& in) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write user_agents");
  fb::UserAgentT ua = in;
  if (!ua.user_id) {
    if (!scope.is_user()) return Status::InvalidArgument("user_id is required");
    ua.user_id = FbId(scope.user());
  }
  Uuid user = ToUuid(ua.user_id.get());
  if (scope.is_user() && user != scope.user())
    return Status::PermissionDenied("a user adds agents only to its own list");
  if (!impl_->Sees(scope, user)) return MissingRef("user_id", "user");
  if (!ua.agent_id) return Status::InvalidArgument("agent_id is required");
  Uuid agent = ToUuid(ua.agent_id.get());
  bool id_given = ua.id != nullptr;
  Uuid id = id_given ? ToUuid(ua.id.get()) : impl_->NewId();
  ua.id = FbId(id);
  int64_t now = impl_->Now();
  // Store-maintained fields start from zero whatever the caller sent.
  ua.usage_count = ua.message_count = ua.conversation_count = 0;
  ua.success_count = ua.error_count = 0;
  ua.user_rating = flatbuffers::nullopt;
  ua.quality_score = flatbuffers::nullopt;
  ua.avg_response_time_ms = flatbuffers::nullopt;
  ua.last_rating_at = ua.first_used_at = ua.last_used_at = 0;
  ua.total_tokens_used = ua.total_cost = 0;
  ua.added_at = ua.created_at = ua.updated_at = now;
  ua.deleted_at = 0;
  DefaultUserAgent(ua);
  AS_RETURN_IF_ERROR(CheckRecord(ua, impl_->Ctx()));

  Partition& g = impl_->global;
  Partition& shard = impl_->ShardOf(user);
  auto claim = impl_->ClaimId(id, id_given);
  if (id_given && impl_->InOtherShard(&Partition::user_agents, id, impl_->ShardIndex(user)))
    return Status::AlreadyExists("user_agent id is in use");
  ReadGlobalWriteShard lock(g, shard);
  if (auto it = shard.user_agents.find(id); it != shard.user_agents.end()) {
    if (ToUuid(View<fb::UserAgent>(shard, it->second)->user_id()) != user)
      return Status::AlreadyExists("user_agent id is in use");
    return RowAt<fb::UserAgent>(shard, it->second);
  }
  if (!impl_->UserLive(shard, user)) return MissingRef("user_id", "user");
  AS_RETURN_IF_ERROR(CheckAgentUsableBy(g, agent, user, "agent_id"));
  if (ua.original_agent_id)
    AS_RETURN_IF_ERROR(
        CheckAgentUsableBy(g, ToUuid(ua.original_agent_id.get()), user, "original_agent_id"));
  if (shard.user_agent_by_pair.count({user, agent}))
    return Status::AlreadyExists("this user already has this agent");
  ua.conversation_count = CountConversations(shard, user, agent);  // chats made before it
  std::string bytes = Pack(ua);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUserAgent, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexUserAgent(shard, shard.arena.Append(bytes));
  lock.Unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::UserAgent>(bytes);
}

Result<Row<fb::UserAgent>> Engine::GetUserAgent(const Scope& scope, const Uuid& id) {
  int s = ShardFor(*impl_, scope, &Partition::user_agents, id);
  if (s < 0) return NotFound("user_agent");
  Partition& shard = *impl_->shards[s];
  std::shared_lock lock(shard.mu);
  auto it = shard.user_agents.find(id);
  if (it == shard.user_agents.end()) return NotFound("user_agent");
  const auto* ua = View<fb::UserAgent>(shard, it->second);
  Uuid owner = ToUuid(ua->user_id());
  if (!impl_->Sees(scope, owner) || ua->deleted_at() || !impl_->UserLive(shard, owner))
    return NotFound("user_agent");
  return RowAt<fb::UserAgent>(shard, it->second);
}

Result<Row<fb::UserAgent>> Engine::GetUserAgentFor(const Scope& scope, const Uuid& user,
                                                   const Uuid& agent) {
  if (!impl_->Sees(scope, user)) return NotFound("user_agent");
  Partition& shard = impl_->ShardOf(user);
  std::shared_lock lock(shard.mu);
  auto it = shard.user_agent_by_pair.find({user, agent});
  if (it == shard.user_agent_by_pair.end() || !impl_->UserLive(shard, user))
    return NotFound("user_agent");
  Loc loc = shard.user_agents.at(it->second);
  if (View<fb::UserAgent>(shard, loc)->deleted_at()) return NotFound("user_agent");
  return RowAt<fb::UserAgent>(shard, loc);
}

Result<Row<fb::UserAgent>> Engine::UpdateUserAgent(const Scope& scope, const Uuid& id,
                                                   std::string_view patch_text, JsonMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write user_agents");
  Json patch;
  AS_RETURN_IF_ERROR(ParsePatch(patch_text, &patch));
  int s = ShardFor(*impl_, scope, &Partition::user_agents, id);
  if (s < 0) return NotFound("user_agent");
  Partition& shard = *impl_->shards[s];
  ReadGlobalWriteShard lock(impl_->global, shard);
  auto it = shard.user_agents.find(id);
  if (it == shard.user_agents.end()) return NotFound("user_agent");
  const auto* cur = View<fb::UserAgent>(shard, it->second);
  Uuid owner = ToUuid(cur->user_id());
  if (!impl_->Sees(scope, owner) || cur->deleted_at() || !impl_->UserLive(shard, owner))
    return NotFound("user_agent");
  fb::UserAgentT ua;
  cur->UnPackTo(&ua);
  AS_RETURN_IF_ERROR(ApplyPatch(ua, patch, /*privileged=*/scope.is_service(), impl_->Ctx(mode)));
  if (ua.original_agent_id && patch.contains("original_agent_id"))
    AS_RETURN_IF_ERROR(CheckAgentUsableBy(impl_->global, ToUuid(ua.original_agent_id.get()), owner,
                                          "original_agent_id"));
  ua.updated_at = impl_->Now();
  std::string bytes = Pack(ua);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUserAgent, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  shard.arena.Free(it->second);
  it->second = shard.arena.Append(bytes);
  impl_->MaybeCompact(shard);
  lock.Unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::UserAgent>(bytes);
}

Status Engine::DeleteUserAgent(const Scope& scope, const Uuid& id, DeleteMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not write user_agents");
  int s = ShardFor(*impl_, scope, &Partition::user_agents, id);
  if (s < 0) return NotFound("user_agent");
  Partition& shard = *impl_->shards[s];
  std::unique_lock lock(shard.mu);
  auto it = shard.user_agents.find(id);
  if (it == shard.user_agents.end()) return NotFound("user_agent");
  const auto* cur = View<fb::UserAgent>(shard, it->second);
  if (!impl_->Sees(scope, ToUuid(cur->user_id())) ||
      (mode == DeleteMode::kSoft && cur->deleted_at()))
    return NotFound("user_agent");
  storage::WriteBatch batch;
  if (mode == DeleteMode::kSoft) {
    fb::UserAgentT ua;
    cur->UnPackTo(&ua);
    ua.deleted_at = ua.updated_at = impl_->Now();
    std::string bytes = Pack(ua);
    batch.Put(RecordKey(RecordType::kUserAgent, id), bytes);
    AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
    shard.arena.Free(it->second);
    it->second = shard.arena.Append(bytes);
    lock.unlock();
    return impl_->Durable(ticket);
  }
  batch.Note(impl_->OwnerNoteFor(ToUuid(cur->user_id())));  // the change feed's owner
  batch.Delete(RecordKey(RecordType::kUserAgent, id));
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->UnindexUserAgent(shard, id);
  lock.unlock();
  return impl_->Durable(ticket);
}

Result<std::vector<Row<fb::UserAgent>>> Engine::ListUserAgents(const Scope& scope, const Uuid& user,
                                                               const UserAgentFilter& filter) {
  std::vector<Row<fb::UserAgent>> out;
  if (!impl_->Sees(scope, user)) return out;  // another user's list looks empty, as a missing one
  Partition& shard = impl_->ShardOf(user);
  std::shared_lock lock(shard.mu);
  if (!impl_->UserLive(shard, user)) return out;
  auto list = shard.user_agents_by_user.find(user);
  if (list == shard.user_agents_by_user.end()) return out;
  std::vector<std::pair<const fb::UserAgent*, Loc>> hits;
  for (const Uuid& id : list->second) {
    Loc loc = shard.user_agents.at(id);
    const auto* ua = View<fb::UserAgent>(shard, loc);
    if (ua->deleted_at()) continue;
    if ((ua->archived_at() != 0) != filter.archived) continue;
    if (filter.folder && Str(ua->folder()) != *filter.folder) continue;
    if (filter.favorite && ua->is_favorite() != *filter.favorite) continue;
    if (filter.tag) {
      bool has = false;
      if (ua->tags())
        for (const auto* t : *ua->tags()) has = has || Str(t) == *filter.tag;
      if (!has) continue;
    }
    hits.push_back({ua, loc});
  }
  // Pinned first, then favorites, then sort_order, then when added (id breaks ties).
  std::sort(hits.begin(), hits.end(), [](const auto& x, const auto& y) {
    const auto *a = x.first, *b = y.first;
    if (a->is_pinned() != b->is_pinned()) return a->is_pinned();
    if (a->is_favorite() != b->is_favorite()) return a->is_favorite();
    if (a->sort_order() != b->sort_order()) return a->sort_order() < b->sort_order();
    if (a->added_at() != b->added_at()) return a->added_at() < b->added_at();
    return ToUuid(a->id()) < ToUuid(b->id());
  });
  out.reserve(hits.size());
  for (const auto& [ua, loc] : hits) out.push_back(RowAt<fb::UserAgent>(shard, loc));
  return out;
}

}  // namespace agentstore

// Export and import: moving records out and back in their exact form (agentctl export /
// import). Export reads RocksDB in key order; import validates like a create but keeps
// the record's own timestamps and counters, and maintains every index.
#include "agentstore/common/record_json.h"
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

Result<Engine::ExportPage> Engine::ExportRecords(const Scope& scope, RecordType type,
                                                 std::string_view cursor, uint32_t limit) {
  if (scope.is_user()) return Status::PermissionDenied("export needs a service or admin key");
  // Export and import move whole stores (every tenant); a tenant-scoped key may do neither.
  if (scope.confined())
    return Status::PermissionDenied("export covers every tenant: not for tenant-scoped keys");
  AS_RETURN_IF_ERROR(CheckLimit(limit));
  std::string prefix = KeyPrefix(type);
  std::string after;
  if (!cursor.empty()) {
    // The cursor is the hex of the last key returned.
    if (cursor.size() % 2) return Status::InvalidArgument("malformed cursor");
    for (size_t i = 0; i < cursor.size(); i += 2) {
      int v = 0;
      for (int j = 0; j < 2; ++j) {
        char c = cursor[i + j];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return Status::InvalidArgument("malformed cursor");
        v = v * 16 + d;
      }
      after.push_back(static_cast<char>(v));
    }
    if (after.empty() || after[0] != prefix[0]) return Status::InvalidArgument("malformed cursor");
  }
  ExportPage page;
  std::string last;
  bool more = false;
  Status s = impl_->store->Scan(
      prefix,
      [&](std::string_view k, std::string_view v) {
        if (page.records.size() == limit) {
          more = true;
          return Status::Unavailable("page full");  // stops the scan
        }
        page.records.emplace_back(v);
        last.assign(k);
        return Status::OK();
      },
      after);
  if (!s.ok() && !more) return s;
  if (more) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : last) {
      page.next_cursor.push_back(kHex[c >> 4]);
      page.next_cursor.push_back(kHex[c & 15]);
    }
  }
  return page;
}

namespace {

// Writes `bytes` under `key` unless an identical record is there; reports whether the
// caller must index it.
Status PutIfNew(EngineState& st, const std::string& key, const std::string& bytes,
                std::optional<std::string_view> existing, bool* fresh, uint64_t* ticket) {
  *fresh = false;
  *ticket = 0;
  if (existing) {
    if (*existing == bytes) return Status::OK();
    return Status::AlreadyExists("a different record with this id exists");
  }
  storage::WriteBatch batch;
  batch.Put(key, bytes);
  AS_ASSIGN_OR_RETURN(*ticket, st.Log(batch));
  *fresh = true;
  return Status::OK();
}

template <typename T>
Status Parse(std::string_view json, typename T::NativeTableType* out, std::string* bytes) {
  AS_RETURN_IF_ERROR(RecordFromJson<T>(json, out));
  *bytes = Pack(*out);
  return Status::OK();
}

std::optional<std::string_view> At(const Partition& p, const IdMap& m, const Uuid& id) {
  auto it = m.find(id);
  if (it == m.end()) return std::nullopt;
  return p.arena.Get(it->second);
}

}  // namespace

Status Engine::ImportRecord(const Scope& scope, RecordType type, std::string_view json) {
  if (!scope.is_service()) return Status::PermissionDenied("import needs a service key");
  if (scope.confined())
    return Status::PermissionDenied("import restores whole stores: not for tenant-scoped keys");
  EngineState& st = *impl_;
  Partition& g = st.global;
  bool fresh = false;
  uint64_t ticket = 0;
  std::string bytes;
  auto need_id = [](const auto& ptr, const char* what) -> Status {
    if (!ptr) return Status::InvalidArgument(std::string(what) + " is required");
    return Status::OK();
  };
  switch (type) {
    case RecordType::kTenant: {
      fb::TenantT t;
      AS_RETURN_IF_ERROR(Parse<fb::Tenant>(json, &t, &bytes));
      AS_RETURN_IF_ERROR(need_id(t.id, "id"));
      Uuid id = ToUuid(t.id.get());
      std::unique_lock lock(g.mu);
      if (!g.tenants.count(id) && g.tenant_by_slug.count(t.slug))
        return Status::AlreadyExists("slug is taken");
      AS_RETURN_IF_ERROR(
          PutIfNew(st, RecordKey(type, id), bytes, At(g, g.tenants, id), &fresh, &ticket));
      if (fresh) st.IndexTenant(g.arena.Append(bytes));
      break;
    }
    case RecordType::kUser: {
      fb::UserT u;
      AS_RETURN_IF_ERROR(Parse<fb::User>(json, &u, &bytes));
      AS_RETURN_IF_ERROR(need_id(u.id, "id"));
      AS_RETURN_IF_ERROR(CheckEmail(u.email));
      Uuid id = ToUuid(u.id.get());
      Partition& shard = st.ShardOf(id);
      GlobalAndShardLock lock(g, shard);
      auto existing = At(shard, shard.users, id);
      if (!existing && g.user_by_email.count(LowerAscii(u.email)))
        return Status::AlreadyExists("email is taken");
      if (u.tenant_id && !g.tenants.count(ToUuid(u.tenant_id.get())))
        return MissingRef("tenant_id", "tenant");
      AS_RETURN_IF_ERROR(PutIfNew(st, RecordKey(type, id), bytes, existing, &fresh, &ticket));
      if (fresh) st.IndexUser(shard, shard.arena.Append(bytes));
      break;
    }
    case RecordType::kAgent: {
      fb::AgentT a;
      AS_RETURN_IF_ERROR(Parse<fb::Agent>(json, &a, &bytes));
      AS_RETURN_IF_ERROR(need_id(a.id, "id"));
      Uuid id = ToUuid(a.id.get());
      std::unique_lock lock(g.mu);
      AS_RETURN_IF_ERROR(
          PutIfNew(st, RecordKey(type, id), bytes, At(g, g.agents, id), &fresh, &ticket));
      if (fresh) st.IndexAgent(g.arena.Append(bytes));
      break;
    }
    case RecordType::kUserAgent: {
      fb::UserAgentT ua;
      AS_RETURN_IF_ERROR(Parse<fb::UserAgent>(json, &ua, &bytes));
      AS_RETURN_IF_ERROR(need_id(ua.id, "id"));
      AS_RETURN_IF_ERROR(need_id(ua.user_id, "user_id"));
      AS_RETURN_IF_ERROR(need_id(ua.agent_id, "agent_id"));
      Uuid id = ToUuid(ua.id.get()), user = ToUuid(ua.user_id.get()),
           agent = ToUuid(ua.agent_id.get());
      Partition& shard = st.ShardOf(user);
      auto claim = st.ClaimId(id, true);
      if (st.InOtherShard(&Partition::user_agents, id, st.ShardIndex(user)))
        return Status::AlreadyExists("user_agent id is in use");
      ReadGlobalWriteShard lock(g, shard);
      if (!shard.users.count(user)) return MissingRef("user_id", "user");
      if (!g.agents.count(agent)) return MissingRef("agent_id", "agent");
      auto existing = At(shard, shard.user_agents, id);
      if (!existing && shard.user_agent_by_pair.count({user, agent}))
        return Status::AlreadyExists("this user already has this agent");
      AS_RETURN_IF_ERROR(PutIfNew(st, RecordKey(type, id), bytes, existing, &fresh, &ticket));
      if (fresh) st.IndexUserAgent(shard, shard.arena.Append(bytes));
      break;
    }
    case RecordType::kChat: {
      fb::ChatT c;
      AS_RETURN_IF_ERROR(Parse<fb::Chat>(json, &c, &bytes));
      AS_RETURN_IF_ERROR(need_id(c.id, "id"));
      AS_RETURN_IF_ERROR(need_id(c.user_id, "user_id"));
      Uuid id = ToUuid(c.id.get()), user = ToUuid(c.user_id.get());
      Partition& shard = st.ShardOf(user);
      auto claim = st.ClaimId(id, true);
      if (st.InOtherShard(&Partition::chats, id, st.ShardIndex(user)))
        return Status::AlreadyExists("chat id is in use");
      std::unique_lock lock(shard.mu);
      if (!shard.users.count(user)) return MissingRef("user_id", "user");
      AS_RETURN_IF_ERROR(
          PutIfNew(st, RecordKey(type, id), bytes, At(shard, shard.chats, id), &fresh, &ticket));
      if (fresh) st.IndexChat(shard, shard.arena.Append(bytes));
      break;
    }
    case RecordType::kMessage: {
      fb::MessageT m;
      AS_RETURN_IF_ERROR(Parse<fb::Message>(json, &m, &bytes));
      AS_RETURN_IF_ERROR(need_id(m.id, "id"));
      AS_RETURN_IF_ERROR(need_id(m.chat_id, "chat_id"));
      AS_RETURN_IF_ERROR(need_id(m.user_id, "user_id"));
      Uuid id = ToUuid(m.id.get()), chat = ToUuid(m.chat_id.get());
      Partition& shard = st.ShardOf(ToUuid(m.user_id.get()));
      auto claim = st.ClaimId(id, true);
      if (st.InOtherShard(&Partition::messages, id, st.ShardIndex(ToUuid(m.user_id.get()))))
        return Status::AlreadyExists("message id is in use");
      std::unique_lock lock(shard.mu);
      auto c = shard.chats.find(chat);
      if (c == shard.chats.end() ||
          ToUuid(View<fb::Chat>(shard, c->second)->user_id()) != ToUuid(m.user_id.get()))
        return MissingRef("chat_id", "chat of this user");
      AS_RETURN_IF_ERROR(
          PutIfNew(st, RecordKey(type, id), bytes, At(shard, shard.messages, id), &fresh, &ticket));
      if (fresh) st.IndexMessage(shard, shard.arena.Append(bytes), /*keep_sorted=*/true);
      break;
    }
    case RecordType::kVote: {
      fb::VoteT v;
      AS_RETURN_IF_ERROR(Parse<fb::Vote>(json, &v, &bytes));
      AS_RETURN_IF_ERROR(need_id(v.chat_id, "chat_id"));
      AS_RETURN_IF_ERROR(need_id(v.message_id, "message_id"));
      AS_RETURN_IF_ERROR(need_id(v.user_id, "user_id"));
      Uuid chat = ToUuid(v.chat_id.get()), msg = ToUuid(v.message_id.get());
      Partition& shard = st.ShardOf(ToUuid(v.user_id.get()));
      std::unique_lock lock(shard.mu);
      auto m = shard.messages.find(msg);
      if (!shard.chats.count(chat) || m == shard.messages.end() ||
          ToUuid(View<fb::Message>(shard, m->second)->chat_id()) != chat)
        return MissingRef("vote", "message of this chat");
      auto& votes = shard.chat_index[chat].votes;
      std::optional<std::string_view> existing;
      if (auto it = votes.find(msg); it != votes.end()) existing = shard.arena.Get(it->second);
      AS_RETURN_IF_ERROR(PutIfNew(st, VoteKey(chat, msg), bytes, existing, &fresh, &ticket));
      if (fresh) st.IndexVote(shard, shard.arena.Append(bytes));
      break;
    }
    case RecordType::kAdminConfig: {
      fb::AdminConfigT c;
      AS_RETURN_IF_ERROR(Parse<fb::AdminConfig>(json, &c, &bytes));
      if (c.config_key.empty()) return Status::InvalidArgument("config_key is required");
      std::unique_lock lock(g.mu);
      std::optional<std::string_view> existing;
      if (auto it = g.admin_config.find(c.config_key); it != g.admin_config.end())
        existing = g.arena.Get(it->second);
      AS_RETURN_IF_ERROR(
          PutIfNew(st, AdminConfigKey(c.config_key), bytes, existing, &fresh, &ticket));
      if (fresh) g.admin_config[c.config_key] = g.arena.Append(bytes);
      break;
    }
    case RecordType::kApiKey: {
      fb::ApiKeyT k;
      AS_RETURN_IF_ERROR(Parse<fb::ApiKey>(json, &k, &bytes));
      AS_RETURN_IF_ERROR(need_id(k.id, "id"));
      if (k.secret_hash.size() != 32)
        return Status::InvalidArgument("secret_hash must be 32 bytes");
      Uuid id = ToUuid(k.id.get());
      std::unique_lock lock(g.mu);
      if (k.user_id) {
        Partition& shard = st.ShardOf(ToUuid(k.user_id.get()));
        std::shared_lock slock(shard.mu);
        if (!shard.users.count(ToUuid(k.user_id.get())))
          return MissingRef("user_id", "user");
      }
      AS_RETURN_IF_ERROR(
          PutIfNew(st, RecordKey(type, id), bytes, At(g, g.api_keys, id), &fresh, &ticket));
      if (fresh) st.IndexApiKey(g.arena.Append(bytes));
      break;
    }
    case RecordType::kUsageLog:
    case RecordType::kUserUsageRollup:
    case RecordType::kTenantUsageRollup:
    case RecordType::kQuota:
    case RecordType::kRateLimitConfig:
      AS_RETURN_IF_ERROR(st.ImportUsageRecord(type, json, &ticket));
      break;
    case RecordType::kUserMemory: {
      fb::UserMemoryT m;
      AS_RETURN_IF_ERROR(RecordFromJson<fb::UserMemory>(json, &m));
      AS_RETURN_IF_ERROR(st.ImportMemory(m, &ticket));
      break;
    }
    default:
      return Status::NotImplemented(std::string(RecordTypeName(type)) + " cannot be imported yet");
  }
  return ticket ? st.Durable(ticket) : Status::OK();
}

}  // namespace agentstore

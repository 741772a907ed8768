// Tenants, users, admin_config and API keys: the records of the global partition and
// the user profile (whose email index is global).
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

namespace {

Status CheckSlug(const std::string& slug) {
  if (slug.empty()) return Status::InvalidArgument("slug is required");
  for (char c : slug)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return Status::InvalidArgument("slug may hold only a-z, 0-9, '-' and '_'");
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------- tenants

Result<Row<fb::Tenant>> Engine::CreateTenant(const Scope& scope, const fb::TenantT& in) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys create tenants");
  if (scope.confined())
    return Status::PermissionDenied("a tenant-scoped key may not create tenants");
  fb::TenantT t = in;
  Uuid id = t.id ? ToUuid(t.id.get()) : impl_->NewId();
  t.id = FbId(id);
  if (t.name.empty()) return Status::InvalidArgument("name is required");
  AS_RETURN_IF_ERROR(CheckSlug(t.slug));
  int64_t now = impl_->Now();
  t.created_at = t.updated_at = now;
  t.deleted_at = 0;
  AS_RETURN_IF_ERROR(CheckRecord(t, impl_->Ctx()));

  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  if (auto it = g.tenants.find(id); it != g.tenants.end()) return RowAt<fb::Tenant>(g, it->second);
  if (g.tenant_by_slug.count(t.slug))
    return Status::AlreadyExists("slug '" + t.slug + "' is taken");
  std::string bytes = Pack(t);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kTenant, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexTenant(g.arena.Append(bytes));
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Tenant>(bytes);
}

Result<Row<fb::Tenant>> Engine::GetTenant(const Scope& scope, const Uuid& id) {
  if (!EngineState::SeesTenant(scope, id)) return NotFound("tenant");
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  auto it = g.tenants.find(id);
  if (it == g.tenants.end() || View<fb::Tenant>(g, it->second)->deleted_at())
    return NotFound("tenant");
  if (scope.is_user()) {
    // A user sees its own tenant only.
    Partition& shard = impl_->ShardOf(scope.user());
    std::shared_lock slock(shard.mu);
    auto u = shard.users.find(scope.user());
    if (u == shard.users.end() || ToUuid(View<fb::User>(shard, u->second)->tenant_id()) != id)
      return NotFound("tenant");
  }
  return RowAt<fb::Tenant>(g, it->second);
}

Result<Row<fb::Tenant>> Engine::GetTenantBySlug(const Scope& scope, std::string_view slug) {
  Uuid id;
  {
    std::shared_lock lock(impl_->global.mu);
    auto it = impl_->global.tenant_by_slug.find(std::string(slug));
    if (it == impl_->global.tenant_by_slug.end()) return NotFound("tenant");
    id = it->second;
  }
  return GetTenant(scope, id);
}

Result<Row<fb::Tenant>> Engine::UpdateTenant(const Scope& scope, const Uuid& id,
                                             std::string_view patch_text, JsonMode mode) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys change tenants");
  if (!EngineState::SeesTenant(scope, id)) return NotFound("tenant");
  Json patch;
  AS_RETURN_IF_ERROR(ParsePatch(patch_text, &patch));
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.tenants.find(id);
  if (it == g.tenants.end() || View<fb::Tenant>(g, it->second)->deleted_at())
    return NotFound("tenant");
  fb::TenantT t;
  View<fb::Tenant>(g, it->second)->UnPackTo(&t);
  std::string old_slug = t.slug;
  AS_RETURN_IF_ERROR(ApplyPatch(t, patch, true, impl_->Ctx(mode)));
  if (t.name.empty()) return Status::InvalidArgument("name is required");
  AS_RETURN_IF_ERROR(CheckSlug(t.slug));
  if (t.slug != old_slug && g.tenant_by_slug.count(t.slug))
    return Status::AlreadyExists("slug '" + t.slug + "' is taken");
  t.updated_at = impl_->Now();
  std::string bytes = Pack(t);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kTenant, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  g.tenant_by_slug.erase(old_slug);
  g.arena.Free(it->second);
  impl_->IndexTenant(g.arena.Append(bytes));
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::Tenant>(bytes);
}

Status Engine::DeleteTenant(const Scope& scope, const Uuid& id, DeleteMode mode) {
  if (scope.is_user())
    return Status::PermissionDenied("only service and admin keys delete tenants");
  if (!EngineState::SeesTenant(scope, id)) return NotFound("tenant");
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.tenants.find(id);
  if (it == g.tenants.end()) return NotFound("tenant");
  fb::TenantT t;
  View<fb::Tenant>(g, it->second)->UnPackTo(&t);
  storage::WriteBatch batch;
  std::string bytes;
  if (mode == DeleteMode::kSoft) {
    if (t.deleted_at) return NotFound("tenant");
    t.deleted_at = t.updated_at = impl_->Now();
    bytes = Pack(t);
    batch.Put(RecordKey(RecordType::kTenant, id), bytes);
  } else {
    // A tenant still named by users or agents is not purged: that would leave them
    // pointing at nothing.
    for (auto& shard : impl_->shards) {
      std::shared_lock slock(shard->mu);
      for (const auto& [uid, loc] : shard->users)
        if (ToUuid(View<fb::User>(*shard, loc)->tenant_id()) == id)
          return Status::InvalidArgument("tenant still has users; delete or move them first");
    }
    for (const auto& [aid, loc] : g.agents)
      if (ToUuid(View<fb::Agent>(g, loc)->tenant_id()) == id)
        return Status::InvalidArgument("tenant still has agents; delete or move them first");
    batch.Delete(RecordKey(RecordType::kTenant, id));
  }
  // A purge takes the tenant's quotas, usage rollups and tenant-scoped limit configs.
  std::unique_lock<std::shared_mutex> ledger;
  std::unique_lock<std::shared_mutex> limits;
  if (mode == DeleteMode::kHard) {
    // The tenant has no users (checked above, under the global lock), so no tracked
    // call can add to its rollup parts meanwhile.
    impl_->AddTenantRollupPartDeletes(id, batch);
    ledger = std::unique_lock(impl_->ledger.mu);
    limits = std::unique_lock(impl_->limiter.config_mu);
    impl_->AddTenantUsageDeletes(id, batch);
  }
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  if (mode == DeleteMode::kHard) {
    impl_->DropTenantUsage(id);
    limits.unlock();
    ledger.unlock();
    impl_->DropTenantRollupParts(id);
  }
  g.arena.Free(it->second);
  if (mode == DeleteMode::kSoft) {
    it->second = g.arena.Append(bytes);
  } else {
    g.tenant_by_slug.erase(t.slug);
    g.tenant_ids.erase(id);
    g.tenants.erase(it);
  }
  lock.unlock();
  impl_->BumpAuthEpoch();
  return impl_->Durable(ticket);
}

Result<Page<fb::Tenant>> Engine::ListTenants(const Scope& scope, const PageRequest& req) {
  if (scope.is_user()) return Status::PermissionDenied("only service and admin keys list tenants");
  AS_RETURN_IF_ERROR(CheckLimit(req.limit));
  std::optional<Uuid> after;
  if (!req.cursor.empty()) {
    after = Uuid::Parse(req.cursor);
    if (!after) return Status::InvalidArgument("malformed cursor");
  }
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  Page<fb::Tenant> page;
  auto it = after ? g.tenant_ids.upper_bound(*after) : g.tenant_ids.begin();
  for (; it != g.tenant_ids.end(); ++it) {
    if (!EngineState::SeesTenant(scope, *it)) continue;
    Loc loc = g.tenants.at(*it);
    if (View<fb::Tenant>(g, loc)->deleted_at() && !req.include_deleted) continue;
    if (page.rows.size() == req.limit) {
      page.next_cursor = ToUuid(page.rows.back()->id()).ToString();
      break;
    }
    page.rows.push_back(RowAt<fb::Tenant>(g, loc));
  }
  return page;
}

// ---------------------------------------------------------------- users

Result<Row<fb::User>> Engine::CreateUser(const Scope& scope, const fb::UserT& in) {
  if (!scope.is_service()) return Status::PermissionDenied("only a service key creates users");
  fb::UserT u = in;
  if (scope.confined()) {
    // A tenant-scoped service creates users in its tenant; another tenant is invisible.
    if (!u.tenant_id) u.tenant_id = FbId(*scope.tenant());
    if (ToUuid(u.tenant_id.get()) != *scope.tenant()) return MissingRef("tenant_id", "tenant");
  }
  Uuid id = u.id ? ToUuid(u.id.get()) : impl_->NewId();
  u.id = FbId(id);
  AS_RETURN_IF_ERROR(CheckEmail(u.email));
  // The seeds' handle_new_user: every default in one step.
  DefaultJson(u.preferences, "{}");
  DefaultJson(u.notification_settings, kDefaultUserNotifications);
  int64_t now = impl_->Now();
  u.created_at = u.updated_at = now;
  u.deleted_at = 0;
  AS_RETURN_IF_ERROR(CheckRecord(u, impl_->Ctx()));
  std::string email_key = LowerAscii(u.email);

  Partition& g = impl_->global;
  Partition& shard = impl_->ShardOf(id);
  GlobalAndShardLock lock(g, shard);
  if (auto it = shard.users.find(id); it != shard.users.end())
    return RowAt<fb::User>(shard, it->second);
  if (g.user_by_email.count(email_key))
    return Status::AlreadyExists("a user with email '" + u.email + "' exists");
  if (u.tenant_id) {
    auto t = g.tenants.find(ToUuid(u.tenant_id.get()));
    if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at())
      return MissingRef("tenant_id", "tenant");
  }
  std::string bytes = Pack(u);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUser, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexUser(shard, shard.arena.Append(bytes));
  lock.shard.unlock();
  lock.global.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::User>(bytes);
}

Result<Row<fb::User>> Engine::GetUser(const Scope& scope, const Uuid& id) {
  if (!impl_->Sees(scope, id)) return NotFound("user");
  Partition& shard = impl_->ShardOf(id);
  std::shared_lock lock(shard.mu);
  auto it = shard.users.find(id);
  if (it == shard.users.end() || View<fb::User>(shard, it->second)->deleted_at())
    return NotFound("user");
  return RowAt<fb::User>(shard, it->second);
}

Result<Row<fb::User>> Engine::GetUserByEmail(const Scope& scope, std::string_view email) {
  Uuid id;
  {
    std::shared_lock lock(impl_->global.mu);
    auto it = impl_->global.user_by_email.find(LowerAscii(email));
    if (it == impl_->global.user_by_email.end()) return NotFound("user");
    id = it->second;
  }
  return GetUser(scope, id);
}

Result<Row<fb::User>> Engine::UpdateUser(const Scope& scope, const Uuid& id,
                                         std::string_view patch_text, JsonMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not change users");
  if (!impl_->Sees(scope, id)) return NotFound("user");
  Json patch;
  AS_RETURN_IF_ERROR(ParsePatch(patch_text, &patch));
  Partition& g = impl_->global;
  Partition& shard = impl_->ShardOf(id);
  GlobalAndShardLock lock(g, shard);
  auto it = shard.users.find(id);
  if (it == shard.users.end() || View<fb::User>(shard, it->second)->deleted_at())
    return NotFound("user");
  fb::UserT u;
  View<fb::User>(shard, it->second)->UnPackTo(&u);
  std::string old_email = LowerAscii(u.email);
  AS_RETURN_IF_ERROR(ApplyPatch(u, patch, /*privileged=*/scope.is_service(), impl_->Ctx(mode)));
  AS_RETURN_IF_ERROR(CheckEmail(u.email));
  std::string new_email = LowerAscii(u.email);
  if (new_email != old_email && g.user_by_email.count(new_email))
    return Status::AlreadyExists("a user with email '" + u.email + "' exists");
  if (patch.contains("tenant_id") && scope.confined() && !u.tenant_id)
    return Status::PermissionDenied("a tenant-scoped key may not take a user out of its tenant");
  if (u.tenant_id && patch.contains("tenant_id")) {
    Uuid tenant = ToUuid(u.tenant_id.get());
    auto t = g.tenants.find(tenant);
    if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at() ||
        !EngineState::SeesTenant(scope, tenant))
      return MissingRef("tenant_id", "tenant");
  }
  // The user's keys may lose rights: open sessions recheck them.
  bool rights_change =
      patch.contains("role") || patch.contains("tenant_id") || patch.contains("is_active");
  u.updated_at = impl_->Now();
  std::string bytes = Pack(u);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kUser, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->UnindexUser(shard, id);
  impl_->IndexUser(shard, shard.arena.Append(bytes));
  impl_->MaybeCompact(shard);
  lock.shard.unlock();
  lock.global.unlock();
  if (rights_change) impl_->BumpAuthEpoch();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::User>(bytes);
}

Status Engine::DeleteUser(const Scope& scope, const Uuid& id, DeleteMode mode) {
  if (scope.is_admin()) return Status::PermissionDenied("admin keys do not delete users");
  if (!impl_->Sees(scope, id)) return NotFound("user");
  Partition& g = impl_->global;
  Partition& shard = impl_->ShardOf(id);
  GlobalAndShardLock lock(g, shard);
  auto it = shard.users.find(id);
  if (it == shard.users.end()) return NotFound("user");
  bool soft_deleted = View<fb::User>(shard, it->second)->deleted_at() != 0;
  storage::WriteBatch batch;
  if (mode == DeleteMode::kSoft) {
    if (soft_deleted) return NotFound("user");
    fb::UserT u;
    View<fb::User>(shard, it->second)->UnPackTo(&u);
    u.deleted_at = u.updated_at = impl_->Now();
    std::string bytes = Pack(u);
    batch.Put(RecordKey(RecordType::kUser, id), bytes);
    auto collection_changes = impl_->AddUserCollectionChanges(id, /*soft=*/true, batch);
    AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
    impl_->ApplyCollectionChanges(collection_changes);
    shard.arena.Free(it->second);
    it->second = shard.arena.Append(bytes);
    lock.shard.unlock();
    lock.global.unlock();
    impl_->BumpAuthEpoch();  // the user's keys stop working on open connections too
    return impl_->Durable(ticket);
  }
  // Hard delete: the seed's cascade. Everything the user owns lives in this shard,
  // except its API keys (global partition, which we hold too) and the limit configs
  // scoped to it (the rate limiter's, locked below). Tenant rollups keep its usage.
  std::unique_lock limits(impl_->limiter.config_mu);
  // The change feed's owner of every delete below, with the user's tenant: once the
  // user is gone the feed could no longer look the tenant up, and tenant-scoped
  // subscribers would miss these deletes.
  batch.Note(impl_->OwnerNoteFor(id));
  batch.Delete(RecordKey(RecordType::kUser, id));
  impl_->AddUserUsageDeletes(shard, id, batch);
  std::vector<Uuid> chat_ids;
  if (auto c = shard.chats_by_user.find(id); c != shard.chats_by_user.end())
    for (const auto& [t, chat] : c->second) chat_ids.push_back(chat);
  std::vector<Uuid> ua_ids;
  if (auto a = shard.user_agents_by_user.find(id); a != shard.user_agents_by_user.end())
    ua_ids = a->second;
  for (const Uuid& ua : ua_ids) batch.Delete(RecordKey(RecordType::kUserAgent, ua));
  std::vector<Uuid> key_ids;
  if (auto k = g.api_keys_by_user.find(id); k != g.api_keys_by_user.end()) key_ids = k->second;
  for (const Uuid& key : key_ids) batch.Delete(RecordKey(RecordType::kApiKey, key));
  for (const Uuid& chat : chat_ids) impl_->AddChatDeletes(shard, chat, batch);
  impl_->AddUserMemoryDeletes(shard, id, batch);
  auto collection_changes = impl_->AddUserCollectionChanges(id, /*soft=*/false, batch);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->ApplyCollectionChanges(collection_changes);
  impl_->DropUserMemories(shard, id);
  for (const Uuid& chat : chat_ids) impl_->DropChat(shard, chat);
  impl_->DropUserUsage(shard, id);
  limits.unlock();
  for (const Uuid& ua : ua_ids) impl_->UnindexUserAgent(shard, ua);
  for (const Uuid& key : key_ids) {
    auto k = g.api_keys.find(key);
    if (k != g.api_keys.end()) {
      g.arena.Free(k->second);
      g.api_keys.erase(k);
    }
  }
  g.api_keys_by_user.erase(id);
  impl_->UnindexUser(shard, id);
  impl_->MaybeCompact(shard);
  lock.shard.unlock();
  lock.global.unlock();
  impl_->BumpAuthEpoch();
  return impl_->Durable(ticket);
}

Result<Page<fb::User>> Engine::ListUsers(const Scope& scope, const PageRequest& req) {
  if (scope.is_user()) return Status::PermissionDenied("only service and admin keys list users");
  AS_RETURN_IF_ERROR(CheckLimit(req.limit));
  std::optional<Uuid> after;
  if (!req.cursor.empty()) {
    after = Uuid::Parse(req.cursor);
    if (!after) return Status::InvalidArgument("malformed cursor");
  }
  // Collect ids under the global lock, then read each user under its shard lock.
  std::vector<Uuid> ids;
  {
    std::shared_lock lock(impl_->global.mu);
    const auto& all = impl_->global.user_ids;
    for (auto it = after ? all.upper_bound(*after) : all.begin();
         it != all.end() && ids.size() < 4u * req.limit + 16; ++it)
      ids.push_back(*it);
  }
  Page<fb::User> page;
  for (const Uuid& id : ids) {
    if (!impl_->Sees(scope, id)) continue;
    Partition& shard = impl_->ShardOf(id);
    std::shared_lock lock(shard.mu);
    auto it = shard.users.find(id);
    if (it == shard.users.end()) continue;
    if (View<fb::User>(shard, it->second)->deleted_at() && !req.include_deleted) continue;
    if (page.rows.size() == req.limit) {
      page.next_cursor = ToUuid(page.rows.back()->id()).ToString();
      break;
    }
    page.rows.push_back(RowAt<fb::User>(shard, it->second));
  }
  // A full window that did not fill the page (hidden, deleted or another tenant's users)
  // continues after the last id looked at.
  if (page.next_cursor.empty() && ids.size() == 4u * req.limit + 16)
    page.next_cursor = ids.back().ToString();
  return page;
}

// ---------------------------------------------------------------- admin_config

Result<Row<fb::AdminConfig>> Engine::PutAdminConfig(const Scope& scope, std::string_view key,
                                                    std::string_view config_json) {
  if (scope.is_user() || scope.confined())
    return Status::PermissionDenied("admin_config is platform-wide: not for user or tenant keys");
  fb::AdminConfigT c;
  c.config_key = std::string(key);
  c.config_data = std::string(config_json);
  if (c.config_key.empty()) return Status::InvalidArgument("config_key is required");
  if (c.config_data.empty()) return Status::InvalidArgument("config_data is required");
  c.updated_at = impl_->Now();
  AS_RETURN_IF_ERROR(CheckRecord(c, impl_->Ctx()));
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  std::string bytes = Pack(c);
  storage::WriteBatch batch;
  batch.Put(AdminConfigKey(key), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  auto [it, fresh] = g.admin_config.try_emplace(c.config_key, 0);
  if (!fresh) g.arena.Free(it->second);
  it->second = g.arena.Append(bytes);
  lock.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return Row<fb::AdminConfig>(bytes);
}

Result<Row<fb::AdminConfig>> Engine::GetAdminConfig(const Scope& scope, std::string_view key) {
  if (scope.is_user() || scope.confined()) return NotFound("admin_config");
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  auto it = g.admin_config.find(std::string(key));
  if (it == g.admin_config.end()) return NotFound("admin_config");
  return RowAt<fb::AdminConfig>(g, it->second);
}

Result<std::vector<Row<fb::AdminConfig>>> Engine::ListAdminConfig(const Scope& scope) {
  if (scope.is_user() || scope.confined())
    return Status::PermissionDenied("admin_config is platform-wide: not for user or tenant keys");
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  std::vector<Row<fb::AdminConfig>> out;
  for (const auto& [key, loc] : g.admin_config) out.push_back(RowAt<fb::AdminConfig>(g, loc));
  return out;
}

Status Engine::DeleteAdminConfig(const Scope& scope, std::string_view key) {
  if (scope.is_user() || scope.confined())
    return Status::PermissionDenied("admin_config is platform-wide: not for user or tenant keys");
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.admin_config.find(std::string(key));
  if (it == g.admin_config.end()) return NotFound("admin_config");
  storage::WriteBatch batch;
  batch.Delete(AdminConfigKey(key));
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  g.arena.Free(it->second);
  g.admin_config.erase(it);
  lock.unlock();
  return impl_->Durable(ticket);
}

// ---------------------------------------------------------------- api keys
//
// A secret is "ask_" + 32 hex digits of the key id + "_" + 64 hex digits of randomness.
// Only SHA-256 of the whole secret is stored. The randomness is 256 bits from OpenSSL's
// CSPRNG, so a fast hash is enough (no password-style stretching is needed).

namespace {

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

std::vector<uint8_t> Sha256(std::string_view s) {
  std::vector<uint8_t> out(SHA256_DIGEST_LENGTH);
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

std::optional<Uuid> KeyIdOfSecret(std::string_view secret) {
  if (secret.size() != 4 + 32 + 1 + 64 || secret.substr(0, 4) != "ask_" || secret[36] != '_')
    return std::nullopt;
  std::string id_hex(secret.substr(4, 32));
  std::string text = id_hex.substr(0, 8) + "-" + id_hex.substr(8, 4) + "-" + id_hex.substr(12, 4) +
                     "-" + id_hex.substr(16, 4) + "-" + id_hex.substr(20, 12);
  return Uuid::Parse(text);
}

}  // namespace

Result<NewApiKey> Engine::CreateApiKey(const Scope& scope, const fb::ApiKeyT& in) {
  if (scope.is_user()) return Status::PermissionDenied("users may not create API keys");
  if (scope.is_admin() && in.role == fb::KeyRole::service)
    return Status::PermissionDenied("only a service key may create service keys");
  fb::ApiKeyT k = in;
  // A key mints keys only within its own scope: a tenant-scoped key's keys are scoped to
  // the same tenant (and its user keys to that tenant's users, checked below).
  if (scope.confined()) {
    if (!k.tenant_id) k.tenant_id = FbId(*scope.tenant());
    if (ToUuid(k.tenant_id.get()) != *scope.tenant())
      return Status::PermissionDenied("a tenant-scoped key mints keys only for its own tenant");
  }
  Uuid id = impl_->NewId();  // never client-given: the id is part of the secret
  k.id = FbId(id);
  if (k.role == fb::KeyRole::user && !k.user_id)
    return Status::InvalidArgument("a user key needs user_id");
  if (k.role != fb::KeyRole::user && k.user_id)
    return Status::InvalidArgument("only user keys carry a user_id");
  int64_t now = impl_->Now();
  if (k.expires_at && k.expires_at <= now)
    return Status::InvalidArgument("expires_at is in the past");
  uint8_t random[32];
  if (RAND_bytes(random, sizeof random) != 1) return Status::Unavailable("no randomness");
  std::string secret = "ask_" + Hex(id.bytes.data(), 16) + "_" + Hex(random, 32);
  k.secret_hash = Sha256(secret);
  k.created_at = now;
  k.revoked_at = k.last_used_at = 0;
  AS_RETURN_IF_ERROR(CheckRecord(k, impl_->Ctx()));

  Partition& g = impl_->global;
  std::unique_ptr<GlobalAndShardLock> both;
  std::unique_lock<std::shared_mutex> only_global;
  if (k.user_id) {
    Uuid user = ToUuid(k.user_id.get());
    Partition& shard = impl_->ShardOf(user);
    both = std::make_unique<GlobalAndShardLock>(g, shard);
    if (!impl_->UserLive(shard, user) || !impl_->Sees(scope, user))
      return MissingRef("user_id", "user");
  } else {
    only_global = std::unique_lock(g.mu);
  }
  if (k.tenant_id) {
    auto t = g.tenants.find(ToUuid(k.tenant_id.get()));
    if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at())
      return MissingRef("tenant_id", "tenant");
  }
  std::string bytes = Pack(k);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kApiKey, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  impl_->IndexApiKey(g.arena.Append(bytes));
  both.reset();
  if (only_global.owns_lock()) only_global.unlock();
  AS_RETURN_IF_ERROR(impl_->Durable(ticket));
  return NewApiKey{Row<fb::ApiKey>(bytes), secret};
}

namespace {
// Keys a scope may see: a user its own; a tenant-scoped key those of its tenant (scoped
// to it, or belonging to one of its users); an unscoped service or admin every key.
bool KeyVisibleTo(const EngineState& st, const Scope& scope, const fb::ApiKey* k) {
  if (scope.is_user()) return k->user_id() && ToUuid(k->user_id()) == scope.user();
  if (!scope.confined()) return true;
  if (ToUuid(k->tenant_id()) == *scope.tenant()) return true;
  return k->user_id() && st.Sees(scope, ToUuid(k->user_id()));
}
}  // namespace

Result<std::vector<Row<fb::ApiKey>>> Engine::ListApiKeys(const Scope& scope) {
  Partition& g = impl_->global;
  std::shared_lock lock(g.mu);
  std::vector<Row<fb::ApiKey>> out;
  if (scope.is_user()) {
    auto it = g.api_keys_by_user.find(scope.user());
    if (it != g.api_keys_by_user.end())
      for (const Uuid& id : it->second) out.push_back(RowAt<fb::ApiKey>(g, g.api_keys.at(id)));
    return out;
  }
  for (const auto& [id, loc] : g.api_keys)
    if (KeyVisibleTo(*impl_, scope, View<fb::ApiKey>(g, loc)))
      out.push_back(RowAt<fb::ApiKey>(g, loc));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return ToUuid(a->id()) < ToUuid(b->id()); });
  return out;
}

Status Engine::RevokeApiKey(const Scope& scope, const Uuid& id) {
  Partition& g = impl_->global;
  std::unique_lock lock(g.mu);
  auto it = g.api_keys.find(id);
  if (it == g.api_keys.end() || !KeyVisibleTo(*impl_, scope, View<fb::ApiKey>(g, it->second)))
    return NotFound("api key");
  fb::ApiKeyT k;
  View<fb::ApiKey>(g, it->second)->UnPackTo(&k);
  if (scope.is_admin() && k.role == fb::KeyRole::service)
    return Status::PermissionDenied("only a service key may revoke service keys");
  if (k.revoked_at) return Status::OK();  // revoking twice changes nothing
  k.revoked_at = impl_->Now();
  std::string bytes = Pack(k);
  storage::WriteBatch batch;
  batch.Put(RecordKey(RecordType::kApiKey, id), bytes);
  AS_ASSIGN_OR_RETURN(uint64_t ticket, impl_->Log(batch));
  g.arena.Free(it->second);
  it->second = g.arena.Append(bytes);
  lock.unlock();
  impl_->BumpAuthEpoch();  // open connections with this key fail at their next request
  return impl_->Durable(ticket);
}

Result<Scope> Engine::Authenticate(std::string_view secret) {
  AS_ASSIGN_OR_RETURN(AuthenticatedKey a, AuthenticateKey(secret));
  return a.scope;
}

Result<AuthenticatedKey> Engine::AuthenticateKey(std::string_view secret) {
  const Status denied = Status::PermissionDenied("invalid API key");
  auto id = KeyIdOfSecret(secret);
  if (!id) return denied;
  std::vector<uint8_t> hash = Sha256(secret);
  return CheckKey(*id, &hash);
}

Result<AuthenticatedKey> Engine::RecheckKey(const Uuid& key_id) {
  return CheckKey(key_id, nullptr);
}

Result<AuthenticatedKey> Engine::CheckKey(const Uuid& key_id, const std::vector<uint8_t>* hash) {
  const Status denied = Status::PermissionDenied("invalid API key");
  // Read before the checks: a change that lands during them moves the epoch past this
  // value, so the session checks again at its next request.
  uint64_t epoch = impl_->auth_epoch.load(std::memory_order_acquire);
  const Uuid* id = &key_id;
  Partition& g = impl_->global;
  fb::ApiKeyT k;
  {
    std::shared_lock lock(g.mu);
    auto it = g.api_keys.find(*id);
    if (it == g.api_keys.end()) return denied;
    View<fb::ApiKey>(g, it->second)->UnPackTo(&k);
    // A key scoped to a tenant that is gone grants nothing.
    if (k.tenant_id) {
      auto t = g.tenants.find(ToUuid(k.tenant_id.get()));
      if (t == g.tenants.end() || View<fb::Tenant>(g, t->second)->deleted_at()) return denied;
    }
  }
  if (hash && (k.secret_hash.size() != hash->size() ||
               CRYPTO_memcmp(k.secret_hash.data(), hash->data(), hash->size()) != 0))
    return denied;
  int64_t now = impl_->Now();
  if (k.revoked_at || (k.expires_at && k.expires_at <= now)) return denied;
  std::optional<Uuid> tenant;
  if (k.tenant_id) tenant = ToUuid(k.tenant_id.get());
  Scope scope = Scope::Service(tenant);
  if (k.role == fb::KeyRole::admin) scope = Scope::Admin(tenant);
  if (k.role == fb::KeyRole::user) {
    Uuid user = ToUuid(k.user_id.get());
    Partition& shard = impl_->ShardOf(user);
    std::shared_lock lock(shard.mu);
    if (!impl_->UserLive(shard, user)) return denied;
    scope = Scope::ForUser(user, tenant);
  }
  // last_used_at is advisory: recorded at most once a minute per key, so that
  // authentication does not become a write per connection.
  if (hash && now - k.last_used_at > 60'000'000) {
    std::unique_lock lock(g.mu);
    auto it = g.api_keys.find(*id);
    if (it != g.api_keys.end()) {
      fb::ApiKeyT cur;
      View<fb::ApiKey>(g, it->second)->UnPackTo(&cur);
      cur.last_used_at = now;
      std::string bytes = Pack(cur);
      storage::WriteBatch batch;
      batch.Put(RecordKey(RecordType::kApiKey, *id), bytes);
      if (impl_->Log(batch).ok()) {
        g.arena.Free(it->second);
        it->second = g.arena.Append(bytes);
      }
    }
  }
  return AuthenticatedKey{scope, key_id, k.expires_at, epoch};
}

const std::atomic<uint64_t>& Engine::auth_epoch() const { return impl_->auth_epoch; }

int64_t Engine::NowMicros() const { return impl_->Now(); }

Result<Scope> Engine::ActAs(const Scope& scope, const Uuid& user) {
  AS_ASSIGN_OR_RETURN(Scope as, scope.ActAs(user));
  // A tenant-scoped service acts only as its tenant's users; others look missing.
  if (scope.confined() && !impl_->Sees(scope, user)) return NotFound("act_as user");
  return as;
}

}  // namespace agentstore

// Engine::Subscribe: the change feed's scope rules (who may watch what), checked once
// when a subscription opens; per event the feed compares owners only (change_feed.cc).
#include "change_feed.h"
#include "collections.h"
#include "engine_impl.h"

namespace agentstore {

using namespace internal;  // NOLINT

void EngineState::StartFeed() {
  feed = std::make_unique<ChangeFeed>(
      store.get(), options.feed,
      [this](const Uuid& user) {
        Partition& shard = ShardOf(user);
        std::shared_lock lock(shard.mu);
        auto it = shard.users.find(user);
        if (it == shard.users.end()) return Uuid();
        return ToUuid(View<fb::User>(shard, it->second)->tenant_id());
      },
      [this](std::string_view name) -> std::shared_ptr<const coll::Schema> {
        auto c = collections->Find(name);
        if (!c) return nullptr;
        std::shared_lock lock(c->mu);
        return c->schema;
      },
      [this] { return Now(); });
  feed->Start();
}

Result<std::shared_ptr<Subscription>> Engine::Subscribe(const Scope& scope, FeedFilter filter,
                                                        std::optional<uint64_t> after,
                                                        std::optional<Uuid> key_id,
                                                        std::function<void()> wake) {
  for (uint32_t bit = 0; bit < 32; ++bit) {
    if (!(filter.types & (1u << bit)) || (1u << bit) == kCollectionsBit) continue;
    if (bit > static_cast<uint32_t>(kLastRecordType) || !FeedCarries(static_cast<RecordType>(bit)))
      return Status::InvalidArgument("the change feed does not carry record type " +
                                     std::to_string(bit) +
                                     " (api_keys and usage rollups are never sent)");
  }
  // Named collections must exist (a typo would otherwise wait silently forever).
  for (const std::string& name : filter.collections)
    if (!impl_->collections->Find(name))
      return Status::NotFound("collection " + name + " not found");
  FeedEnds ends;
  ends.key = key_id;
  if (key_id) {
    // The key's expiry and tenant end the subscription as they end the key's rights
    // (Engine::CheckKey): it has no revocation record of its own for the feed to read.
    Partition& g = impl_->global;
    std::shared_lock lock(g.mu);
    if (auto it = g.api_keys.find(*key_id); it != g.api_keys.end()) {
      const auto* k = View<fb::ApiKey>(g, it->second);
      ends.expires_at = k->expires_at();
      if (k->tenant_id()) ends.tenant = ToUuid(k->tenant_id());
    }
  }
  CollectionAccess access;
  if (scope.is_user()) {
    if (filter.user && !(*filter.user == scope.user()))
      return Status::PermissionDenied("a user may subscribe only to its own records");
    if (filter.tenant)
      return Status::PermissionDenied("a user subscription cannot filter by tenant");
    filter.user = scope.user();
    ends.user = scope.user();
    // As coll_get reads tenant-owned records for a user: its key's tenant, else its own.
    access.kind = CollectionAccess::kUser;
    access.user = scope.user();
    access.tenant = scope.tenant() ? *scope.tenant() : impl_->TenantOfUser(scope.user());
    access.follows_user_tenant = !scope.tenant();
  } else if (scope.tenant()) {
    // A tenant-scoped operator key: only its tenant.
    if (filter.tenant && !(*filter.tenant == *scope.tenant()))
      return Status::PermissionDenied("this key may subscribe only to its own tenant");
    filter.tenant = scope.tenant();
    // A user of another tenant answers as a missing one (docs/protocol.md, "Errors").
    if (filter.user && !impl_->Sees(scope, *filter.user)) return MissingRef("user", "user");
    access.kind = CollectionAccess::kTenant;
    access.tenant = *scope.tenant();
  }
  return impl_->feed->Open(filter, after, std::move(ends), std::move(wake), access);
}

Engine::FeedPositions Engine::FeedInfo() const {
  FeedPositions p;
  p.durable = impl_->store->DurableSequence();
  auto oldest = impl_->store->OldestLogSequence();
  p.oldest = oldest.ok() ? *oldest : 0;
  p.subscribers = impl_->feed->subscriber_count();
  return p;
}

}  // namespace agentstore

// Scope: who is calling. Built once when a connection authenticates (or by a test) and
// required by every engine call, so no code path can forget the per-principal filter.
// A service or admin scope may be confined to one tenant (a key created with tenant_id):
// it then sees and changes only that tenant, its users and what they own.
#pragma once

#include <optional>

#include "agentstore/common/status.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

class Scope {
 public:
  enum class Kind : uint8_t { kService, kAdmin, kUser };

  // An app server's key: everything (or everything of `tenant`).
  static Scope Service(std::optional<Uuid> tenant = std::nullopt) {
    return Scope(Kind::kService, {}, tenant);
  }
  // Operators: read everything; write agents, tenants, admin_config, quotas, limits
  // (all confined to `tenant` when given).
  static Scope Admin(std::optional<Uuid> tenant = std::nullopt) {
    return Scope(Kind::kAdmin, {}, tenant);
  }
  // A user: only records whose user_id is `user`.
  static Scope ForUser(const Uuid& user, std::optional<Uuid> tenant = std::nullopt) {
    return Scope(Kind::kUser, user, tenant);
  }
  // A service scope acting for `user`: that user's rules apply. Only a service scope may
  // act as someone; others get permission_denied. A tenant-confined service must also
  // stay in its tenant: use Engine::ActAs, which checks the user's tenant.
  Result<Scope> ActAs(const Uuid& user) const {
    if (kind_ != Kind::kService)
      return Status::PermissionDenied("only a service key may act as a user");
    Scope s(Kind::kUser, user, tenant_);
    s.acting_service_ = true;
    return s;
  }

  Kind kind() const { return kind_; }
  bool is_service() const { return kind_ == Kind::kService; }
  bool is_admin() const { return kind_ == Kind::kAdmin; }
  bool is_user() const { return kind_ == Kind::kUser; }
  // The user of a kUser scope; nil otherwise.
  const Uuid& user() const { return user_; }
  const std::optional<Uuid>& tenant() const { return tenant_; }
  // True for a service or admin scope confined to tenant(): such a scope sees only its
  // tenant's records; everything else answers as missing.
  bool confined() const { return kind_ != Kind::kUser && tenant_.has_value(); }
  // True for a service scope that took on a user's rules with ActAs.
  bool acting_service() const { return acting_service_; }
  // True when the scope may read a record owned by `owner`, as far as the scope alone can
  // tell. A confined scope needs the owner's tenant, which only the engine knows
  // (internal::EngineState::Sees); here it fails closed.
  bool MayRead(const Uuid& owner) const {
    if (kind_ == Kind::kUser) return owner == user_;
    return !confined();
  }

 private:
  Scope(Kind kind, const Uuid& user, std::optional<Uuid> tenant)
      : kind_(kind), user_(user), tenant_(tenant) {}
  Kind kind_;
  Uuid user_;
  std::optional<Uuid> tenant_;
  bool acting_service_ = false;
};

}  // namespace agentstore

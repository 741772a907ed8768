// The dispatcher in-process (no sockets), for what only it decides: a key's rights are
// rechecked on an open session after any change that may take them away (revoke, expiry,
// the user's deletion or role change), at the cost of one atomic load per request while
// nothing changes; and tenant-scoped keys get no store-wide operation (status,
// backup_create) and cannot act as another tenant's users.
#include <gtest/gtest.h>

#include "dispatch.h"
#include "request_frames.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class DispatchTest : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    dispatcher_ = std::make_unique<net::Dispatcher>(&e(), &counters_, 1u << 30);
    fb::TenantT t;
    t.name = "T";
    t.slug = "t";
    tenant_ = Id(Must(e().CreateTenant(Scope::Service(), t))->id());
    fb::TenantT o;
    o.name = "O";
    o.slug = "o";
    other_tenant_ = Id(Must(e().CreateTenant(Scope::Service(), o))->id());
    user_ = Id(MakeUser("u@x.example", tenant_)->id());
    other_user_ = Id(MakeUser("v@x.example", other_tenant_)->id());
  }

  // A key of `role` (for user_ when a user key), its secret.
  NewApiKey Key(fb::KeyRole role, std::optional<Uuid> tenant = std::nullopt, int64_t expires = 0) {
    fb::ApiKeyT k;
    k.role = role;
    if (role == fb::KeyRole::user) k.user_id = FbId(user_);
    if (tenant) k.tenant_id = FbId(*tenant);
    k.expires_at = expires;
    return Must(e().CreateApiKey(Scope::Service(), k));
  }

  // Sends `frame` on `session`; the response's code.
  proto::ErrorCode Send(net::Session& session, const std::vector<uint8_t>& frame,
                        std::string* message = nullptr) {
    flatbuffers::FlatBufferBuilder out;
    dispatcher_->Handle(session, frame.data(), frame.size(), out);
    flatbuffers::Verifier v(out.GetBufferPointer(), out.GetSize());
    EXPECT_TRUE(v.VerifyBuffer<proto::Response>(nullptr));
    const auto* r = flatbuffers::GetRoot<proto::Response>(out.GetBufferPointer());
    if (message) *message = r->message() ? r->message()->str() : "";
    return r->code();
  }
  net::Session Login(const std::string& secret) {
    net::Session s;
    FrameIds ids;
    ids.secret = secret;
    EXPECT_EQ(Send(s, FrameFor(Op::authenticate, ids)), proto::ErrorCode::ok);
    return s;
  }
  std::vector<uint8_t> GetSelf() {
    FrameIds ids;
    ids.user = user_;
    return FrameFor(Op::user_get, ids);
  }

  net::ServerCounters counters_;
  std::unique_ptr<net::Dispatcher> dispatcher_;
  Uuid tenant_, other_tenant_, user_, other_user_;
};

TEST_F(DispatchTest, RevokedKeyFailsAtTheNextRequestOfAnOpenSession) {
  NewApiKey key = Key(fb::KeyRole::user);
  net::Session s = Login(key.secret);
  ASSERT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  ASSERT_OK(e().RevokeApiKey(Scope::Service(), Id(key.key->id())));
  std::string msg;
  EXPECT_EQ(Send(s, GetSelf(), &msg), proto::ErrorCode::permission_denied);
  EXPECT_NE(msg.find("authenticate again"), std::string::npos) << msg;
  EXPECT_EQ(Send(s, GetSelf()), proto::ErrorCode::permission_denied) << "and stays refused";
  EXPECT_FALSE(s.scope.has_value());
}

TEST_F(DispatchTest, RevokedAdminSessionCannotMintAKey) {
  NewApiKey admin = Key(fb::KeyRole::admin);
  net::Session s = Login(admin.secret);
  FrameIds ids;
  ids.user = user_;
  ASSERT_EQ(Send(s, FrameFor(Op::key_list, ids)), proto::ErrorCode::ok);
  size_t keys = Must(e().ListApiKeys(Scope::Service())).size();
  ASSERT_OK(e().RevokeApiKey(Scope::Service(), Id(admin.key->id())));
  EXPECT_EQ(Send(s, FrameFor(Op::key_create, ids)), proto::ErrorCode::permission_denied);
  EXPECT_EQ(Must(e().ListApiKeys(Scope::Service())).size(), keys) << "no key was minted";
}

TEST_F(DispatchTest, ExpiredKeyFailsOnAnOpenSession) {
  NewApiKey key = Key(fb::KeyRole::user, std::nullopt, clock_.NowMicros() + 1'000'000);
  net::Session s = Login(key.secret);
  ASSERT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  clock_.Advance(2'000'000);
  EXPECT_EQ(Send(s, GetSelf()), proto::ErrorCode::permission_denied);
}

TEST_F(DispatchTest, SoftDeletingTheUserEndsItsSessions) {
  net::Session s = Login(Key(fb::KeyRole::user).secret);
  ASSERT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  ASSERT_OK(e().DeleteUser(Scope::Service(), user_, DeleteMode::kSoft));
  EXPECT_EQ(Send(s, GetSelf()), proto::ErrorCode::permission_denied);
}

TEST_F(DispatchTest, RoleChangeMakesSessionsRecheckTheirKey) {
  net::Session s = Login(Key(fb::KeyRole::user).secret);
  ASSERT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  uint64_t before = s.auth_epoch;
  ASSERT_OK(e().UpdateUser(Scope::Service(), user_, R"({"role":"admin"})"));
  EXPECT_NE(e().auth_epoch().load(), before);
  // user.role is the application's data, not a store right: the key still grants its
  // user scope, now checked against the new epoch.
  EXPECT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  EXPECT_EQ(s.auth_epoch, e().auth_epoch().load());
  ASSERT_TRUE(s.scope && s.scope->is_user());
}

TEST_F(DispatchTest, NothingChangedMeansNoRecheck) {
  net::Session s = Login(Key(fb::KeyRole::user).secret);
  uint64_t epoch = s.auth_epoch;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(Send(s, GetSelf()), proto::ErrorCode::ok);
  EXPECT_EQ(s.auth_epoch, epoch);
  EXPECT_EQ(e().auth_epoch().load(), epoch) << "reads do not move the epoch";
}

TEST_F(DispatchTest, TenantScopedKeysGetNoStoreWideOperations) {
  FrameIds ids;
  for (fb::KeyRole role : {fb::KeyRole::admin, fb::KeyRole::service}) {
    net::Session s = Login(Key(role, tenant_).secret);
    EXPECT_EQ(Send(s, FrameFor(Op::status, ids)), proto::ErrorCode::permission_denied);
    std::string dir = dir_.sub("backup");
    auto backup = RequestFrame(9, Op::backup_create, nullptr, [&](auto& fbb) {
      return ArgsPair{proto::Args::BackupArgs,
                      proto::CreateBackupArgsDirect(fbb, dir.c_str()).Union()};
    });
    EXPECT_EQ(Send(s, backup), proto::ErrorCode::permission_denied);
    EXPECT_FALSE(std::filesystem::exists(dir));
  }
  net::Session unscoped = Login(Key(fb::KeyRole::admin).secret);
  EXPECT_EQ(Send(unscoped, FrameFor(Op::status, ids)), proto::ErrorCode::ok);
}

TEST_F(DispatchTest, TenantScopedServiceActsOnlyAsItsTenantsUsers) {
  net::Session s = Login(Key(fb::KeyRole::service, tenant_).secret);
  FrameIds ids;
  ids.user = user_;
  EXPECT_EQ(Send(s, FrameFor(Op::user_get, ids, 3, &user_)), proto::ErrorCode::ok);
  ids.user = other_user_;
  EXPECT_EQ(Send(s, FrameFor(Op::user_get, ids, 4, &other_user_)), proto::ErrorCode::not_found);
  EXPECT_EQ(Send(s, FrameFor(Op::user_get, ids, 5)), proto::ErrorCode::not_found);
}

}  // namespace
}  // namespace agentstore::testing

// API keys: secrets shown once, stored hashed; authentication grants the key's scope;
// revoked, expired and unknown keys are refused alike.
#include "test_util.h"

namespace agentstore::testing {
namespace {

class Keys : public EngineFixture {};

TEST_F(Keys, SecretAuthenticatesToTheKeysScope) {
  auto u = MakeUser("a@x.com");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(Id(u->id()));
  k.name = "laptop";
  auto created = e().CreateApiKey(Scope::Service(), k);
  ASSERT_OK(created);
  EXPECT_EQ(created->secret.size(), 101u);
  // Only the hash is stored: the secret appears nowhere in the record.
  EXPECT_EQ(created->key.bytes().find(created->secret.substr(37)), std::string_view::npos);
  auto scope = e().Authenticate(created->secret);
  ASSERT_OK(scope);
  EXPECT_TRUE(scope->is_user());
  EXPECT_EQ(scope->user(), Id(u->id()));

  fb::ApiKeyT svc;
  svc.role = fb::KeyRole::service;
  auto s = e().CreateApiKey(Scope::Service(), svc);
  ASSERT_OK(s);
  EXPECT_TRUE(e().Authenticate(s->secret)->is_service());
}

TEST_F(Keys, RevokedExpiredAndForgedKeysAreRefusedAlike) {
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  k.expires_at = clock_.NowMicros() + 1000;
  auto created = e().CreateApiKey(Scope::Service(), k);
  ASSERT_OK(created);
  ASSERT_OK(e().Authenticate(created->secret));
  std::string forged = created->secret;
  forged.back() = forged.back() == 'a' ? 'b' : 'a';
  auto f = e().Authenticate(forged);
  EXPECT_CODE(f, kPermissionDenied);
  EXPECT_CODE(e().Authenticate("ask_garbage"), kPermissionDenied);
  clock_.Advance(2000);
  auto expired = e().Authenticate(created->secret);
  EXPECT_CODE(expired, kPermissionDenied);
  EXPECT_EQ(expired.status().message(), f.status().message()) << "no hint which check failed";

  fb::ApiKeyT k2;
  k2.role = fb::KeyRole::admin;
  auto c2 = e().CreateApiKey(Scope::Service(), k2);
  ASSERT_OK(c2);
  ASSERT_OK(e().RevokeApiKey(Scope::Admin(), Id(c2->key->id())));
  EXPECT_CODE(e().Authenticate(c2->secret), kPermissionDenied);
  Reopen();
  EXPECT_CODE(e().Authenticate(c2->secret), kPermissionDenied) << "revocation is durable";
}

TEST_F(Keys, KeyRules) {
  fb::ApiKeyT svc;
  svc.role = fb::KeyRole::service;
  EXPECT_CODE(e().CreateApiKey(Scope::Admin(), svc), kPermissionDenied);
  fb::ApiKeyT user_no_id;
  user_no_id.role = fb::KeyRole::user;
  EXPECT_CODE(e().CreateApiKey(Scope::Service(), user_no_id), kInvalidArgument);
  auto u = MakeUser("b@x.com");
  auto v = MakeUser("c@x.com");
  fb::ApiKeyT uk;
  uk.role = fb::KeyRole::user;
  uk.user_id = FbId(Id(u->id()));
  auto created = e().CreateApiKey(Scope::Admin(), uk);
  ASSERT_OK(created);
  EXPECT_CODE(e().CreateApiKey(Scope::ForUser(Id(u->id())), uk), kPermissionDenied);
  // A user lists and revokes only its own keys.
  auto mine = e().ListApiKeys(Scope::ForUser(Id(u->id())));
  ASSERT_OK(mine);
  EXPECT_EQ(mine->size(), 1u);
  auto theirs = e().ListApiKeys(Scope::ForUser(Id(v->id())));
  ASSERT_OK(theirs);
  EXPECT_TRUE(theirs->empty());
  EXPECT_CODE(e().RevokeApiKey(Scope::ForUser(Id(v->id())), Id(created->key->id())), kNotFound);
  EXPECT_OK(e().RevokeApiKey(Scope::ForUser(Id(u->id())), Id(created->key->id())));
  // A soft-deleted user's key stops working.
  auto c2 = e().CreateApiKey(Scope::Service(), [&] {
    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = FbId(Id(v->id()));
    return k;
  }());
  ASSERT_OK(c2);
  ASSERT_OK(e().Authenticate(c2->secret));
  ASSERT_OK(e().DeleteUser(Scope::Service(), Id(v->id()), DeleteMode::kSoft));
  EXPECT_CODE(e().Authenticate(c2->secret), kPermissionDenied);
}

}  // namespace
}  // namespace agentstore::testing

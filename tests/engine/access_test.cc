// Per-principal access rules (data model, "Who may see what") for every Engine method:
//  - a user scope never reads or changes another user's records: reads answer not_found,
//    exactly as for a missing record, and another user's lists come back empty;
//  - a write the caller may not make is permission_denied and changes nothing;
//  - Scope::Service().ActAs(user) gets exactly that user's rules;
//  - admin reads everything but writes only agents, tenants, admin_config and keys.
// After every refused write the whole world is re-read through the service scope and
// compared byte for byte, together with the engine's record and write counters.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agentstore/engine/engine.h"
#include "agentstore/engine/operations.h"
#include "test_util.h"

namespace agentstore {
namespace {

using ::agentstore::testing::CodeOf;
using ::agentstore::testing::Id;
using ::agentstore::testing::TextOf;

// EngineFixture opens its engine with 4 shards, and the engine places a user's records
// in shard UuidHash(user) % shards (engine_impl.h). The tests use this to pick one
// victim that shares the caller's shard and one that does not, because the engine looks
// records up differently in the two cases.
constexpr size_t kFixtureShards = 4;
size_t ShardOfUser(const Uuid& u) { return UuidHash()(u) % kFixtureShards; }

using ::agentstore::testing::BytesOf;
using ::agentstore::testing::Describe;
using ::agentstore::testing::FbId;

// A never-used id: answers for it are the reference "missing record" answers.
Uuid Missing() { return *Uuid::Parse("0badc0de-0000-7000-8000-000000000001"); }

// Everything one user owns, created through its own (user) scope where the engine
// allows it.
struct Person {
  Uuid id;
  std::string email;
  Row<fb::User> user;
  Row<fb::Chat> chat;
  Row<fb::Message> message;
  Row<fb::Agent> private_agent;   // created by the user, not public
  Row<fb::Agent> public_agent;    // created by the user, public
  Row<fb::UserAgent> user_agent;  // the platform agent in the user's list
  Uuid key_id;                    // the user's API key
  std::string secret;
  Uuid chat_id() const { return Id(chat->id()); }
  Uuid message_id() const { return Id(message->id()); }
  Uuid private_agent_id() const { return Id(private_agent->id()); }
  Uuid public_agent_id() const { return Id(public_agent->id()); }
  Uuid user_agent_id() const { return Id(user_agent->id()); }
};

// Expects `hidden` to be not_found and to read exactly like `missing` (code and text).
#define EXPECT_LOOKS_MISSING(hidden, missing)                                           \
  do {                                                                                  \
    auto _hidden = (hidden);                                                            \
    auto _missing = (missing);                                                          \
    EXPECT_CODE(_hidden, kNotFound);                                                    \
    EXPECT_EQ(TextOf(_hidden), TextOf(_missing))                                        \
        << #hidden << " answers differently from the missing-record case " << #missing; \
  } while (0)

// Expects `expr` to fail with `code` and the world to be byte-for-byte unchanged.
#define EXPECT_REFUSED(expr, code_name) \
  do {                                  \
    EXPECT_CODE(expr, code_name);       \
    ExpectUnchanged(#expr);             \
  } while (0)

class AccessTest : public agentstore::testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    fb::TenantT t;
    t.name = "Acme";
    t.slug = "acme";
    auto tenant = e().CreateTenant(Scope::Service(), t);
    ASSERT_OK(tenant.status());
    tenant_ = Id(tenant.value()->id());
    fb::TenantT t2;
    t2.name = "Other";
    t2.slug = "other";
    auto other = e().CreateTenant(Scope::Admin(), t2);
    ASSERT_OK(other.status());
    other_tenant_ = Id(other.value()->id());

    platform_ = Id(MakeAgent("platform", /*is_public=*/true)->id());
    platform_private_ = Id(MakeAgent("platform-private", /*is_public=*/false)->id());
    ASSERT_OK(e().PutAdminConfig(Scope::Admin(), "site", R"({"banner":"hi"})").status());

    alice_.email = "alice@example.com";
    alice_.user = MakeUser(alice_.email, tenant_);
    alice_.id = Id(alice_.user->id());
    // Two more users: one in alice's shard, one in another shard.
    for (int i = 0; i < 64 && (near_.email.empty() || far_.email.empty()); ++i) {
      std::string email = "user" + std::to_string(i) + "@example.com";
      Row<fb::User> u = MakeUser(email, other_tenant_);
      Uuid id = Id(u->id());
      bool same = ShardOfUser(id) == ShardOfUser(alice_.id);
      Person& p = same ? near_ : far_;
      if (!p.email.empty()) continue;
      p.email = email;
      p.user = u;
      p.id = id;
    }
    ASSERT_FALSE(near_.email.empty()) << "no user landed in alice's shard";
    ASSERT_FALSE(far_.email.empty()) << "no user landed outside alice's shard";
    for (Person* p : {&alice_, &near_, &far_}) Populate(*p);

    auto svc_key = [&](fb::KeyRole role) {
      fb::ApiKeyT k;
      k.role = role;
      k.name = "ops";
      auto r = e().CreateApiKey(Scope::Service(), k);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      return r.ok() ? Id(r.value().key->id()) : Uuid();
    };
    service_key_ = svc_key(fb::KeyRole::service);
    admin_key_ = svc_key(fb::KeyRole::admin);
    Baseline();
  }

  void Populate(Person& p) {
    Scope me = Scope::ForUser(p.id);
    fb::ChatT c;
    c.title = "chat of " + p.email;
    auto chat = e().CreateChat(me, c);
    ASSERT_OK(chat.status());
    p.chat = chat.value();
    auto msg = Append(me, p.chat_id(), "hello from " + p.email, 3, 4, 5);
    ASSERT_OK(msg.status());
    p.message = msg.value();
    ASSERT_OK(e().Vote(me, p.chat_id(), p.message_id(), true).status());
    p.chat = e().GetChat(me, p.chat_id()).value();  // with the message's totals

    fb::AgentT priv;
    priv.name = "private of " + p.email;
    priv.is_public = false;
    auto a1 = e().CreateAgent(me, priv);
    ASSERT_OK(a1.status());
    p.private_agent = a1.value();
    fb::AgentT pub;
    pub.name = "public of " + p.email;
    pub.is_public = true;
    auto a2 = e().CreateAgent(me, pub);
    ASSERT_OK(a2.status());
    p.public_agent = a2.value();

    fb::UserAgentT ua;
    ua.agent_id = FbId(platform_);
    ua.custom_name = "mine";
    auto r = e().CreateUserAgent(me, ua);
    ASSERT_OK(r.status());
    p.user_agent = r.value();

    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = FbId(p.id);
    auto key = e().CreateApiKey(Scope::Service(), k);
    ASSERT_OK(key.status());
    p.key_id = Id(key.value().key->id());
    p.secret = key.value().secret;
  }

  // Every record of the world, read through the service scope, plus the counters.
  std::map<std::string, std::string> Capture() {
    Scope svc = Scope::Service();
    std::map<std::string, std::string> w;
    for (const Person* p : {&alice_, &near_, &far_}) {
      const std::string n = p->email + ".";
      w[n + "user"] = BytesOf(e().GetUser(svc, p->id));
      w[n + "chat"] = BytesOf(e().GetChat(svc, p->chat_id()));
      w[n + "chats"] = BytesOf(e().ListChats(svc, p->id, PageRequest{1000, "", true}));
      w[n + "message"] = BytesOf(e().GetMessage(svc, p->message_id()));
      w[n + "messages"] = BytesOf(e().ListMessages(svc, p->chat_id(), {1000, "", true}));
      w[n + "votes"] = BytesOf(e().ListVotes(svc, p->chat_id()));
      w[n + "private_agent"] = BytesOf(e().GetAgent(svc, p->private_agent_id()));
      w[n + "public_agent"] = BytesOf(e().GetAgent(svc, p->public_agent_id()));
      w[n + "user_agent"] = BytesOf(e().GetUserAgent(svc, p->user_agent_id()));
      w[n + "user_agents"] = BytesOf(e().ListUserAgents(svc, p->id, {}));
    }
    w["tenant"] = BytesOf(e().GetTenant(svc, tenant_));
    w["other_tenant"] = BytesOf(e().GetTenant(svc, other_tenant_));
    w["tenants"] = BytesOf(e().ListTenants(svc, PageRequest{1000, "", true}));
    w["users"] = BytesOf(e().ListUsers(svc, PageRequest{1000, "", true}));
    w["agents"] = BytesOf(e().ListAgents(svc, PageRequest{1000, "", true}));
    w["admin_config"] = BytesOf(e().ListAdminConfig(svc));
    w["api_keys"] = BytesOf(e().ListApiKeys(svc));
    w["stats"] = Describe(e().Stats());
    return w;
  }
  void Baseline() { baseline_ = Capture(); }
  void ExpectUnchanged(const std::string& after) {
    auto now = Capture();
    for (const auto& [name, bytes] : baseline_) {
      if (name == "stats") {
        EXPECT_EQ(now[name], bytes) << "counters changed after " << after;
      } else {
        EXPECT_TRUE(now[name] == bytes) << name << " changed after " << after;
      }
    }
  }

  Uuid tenant_, other_tenant_, platform_, platform_private_, service_key_, admin_key_;
  Person alice_, near_, far_;
  std::map<std::string, std::string> baseline_;
};

// ------------------------------------------------------------------ a user's own records

TEST_F(AccessTest, UserReadsAndListsItsOwnRecords) {
  Scope me = Scope::ForUser(alice_.id);
  EXPECT_EQ(BytesOf(e().GetUser(me, alice_.id)), std::string(alice_.user.bytes()));
  EXPECT_EQ(BytesOf(e().GetUserByEmail(me, "ALICE@example.com")), std::string(alice_.user.bytes()));
  EXPECT_EQ(BytesOf(e().GetChat(me, alice_.chat_id())), std::string(alice_.chat.bytes()));
  EXPECT_EQ(BytesOf(e().GetMessage(me, alice_.message_id())), std::string(alice_.message.bytes()));
  EXPECT_EQ(BytesOf(e().GetAgent(me, alice_.private_agent_id())),
            std::string(alice_.private_agent.bytes()));
  EXPECT_EQ(BytesOf(e().GetUserAgent(me, alice_.user_agent_id())),
            std::string(alice_.user_agent.bytes()));
  EXPECT_EQ(BytesOf(e().GetUserAgentFor(me, alice_.id, platform_)),
            std::string(alice_.user_agent.bytes()));
  EXPECT_EQ(BytesOf(e().GetTenant(me, tenant_)), BytesOf(e().GetTenant(Scope::Service(), tenant_)));
  EXPECT_EQ(BytesOf(e().GetTenantBySlug(me, "acme")),
            BytesOf(e().GetTenant(Scope::Service(), tenant_)));

  auto chats = e().ListChats(me, alice_.id, {});
  ASSERT_OK(chats.status());
  ASSERT_EQ(chats->rows.size(), 1u);
  EXPECT_EQ(chats->rows[0].bytes(), alice_.chat.bytes());
  auto msgs = e().ListMessages(me, alice_.chat_id(), {});
  ASSERT_OK(msgs.status());
  ASSERT_EQ(msgs->rows.size(), 1u);
  EXPECT_EQ(msgs->rows[0].bytes(), alice_.message.bytes());
  auto votes = e().ListVotes(me, alice_.chat_id());
  ASSERT_OK(votes.status());
  ASSERT_EQ(votes->size(), 1u);
  EXPECT_EQ(Id((*votes)[0]->user_id()), alice_.id);
  auto uas = e().ListUserAgents(me, alice_.id, {});
  ASSERT_OK(uas.status());
  ASSERT_EQ(uas->size(), 1u);
  EXPECT_EQ((*uas)[0].bytes(), alice_.user_agent.bytes());
  auto keys = e().ListApiKeys(me);
  ASSERT_OK(keys.status());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(Id((*keys)[0]->id()), alice_.key_id);
}

// ------------------------------------------------------------------ other users' records

TEST_F(AccessTest, OtherUsersRecordsReadExactlyLikeMissingOnes) {
  Scope me = Scope::ForUser(alice_.id);
  for (const Person* v : {&near_, &far_}) {
    SCOPED_TRACE(v == &near_ ? "victim in the caller's shard" : "victim in another shard");
    EXPECT_LOOKS_MISSING(e().GetUser(me, v->id), e().GetUser(me, Missing()));
    EXPECT_LOOKS_MISSING(e().GetUserByEmail(me, v->email),
                         e().GetUserByEmail(me, "nobody@example.com"));
    EXPECT_LOOKS_MISSING(e().GetUserByEmail(me, "USER" + v->email.substr(4)),
                         e().GetUserByEmail(me, "nobody@example.com"));
    EXPECT_LOOKS_MISSING(e().GetChat(me, v->chat_id()), e().GetChat(me, Missing()));
    EXPECT_LOOKS_MISSING(e().GetMessage(me, v->message_id()), e().GetMessage(me, Missing()));
    EXPECT_LOOKS_MISSING(e().ListMessages(me, v->chat_id(), {}),
                         e().ListMessages(me, Missing(), {}));
    EXPECT_LOOKS_MISSING(e().ListMessages(me, v->chat_id(), {5, "", false}),
                         e().ListMessages(me, Missing(), {5, "", false}));
    EXPECT_LOOKS_MISSING(e().ListVotes(me, v->chat_id()), e().ListVotes(me, Missing()));
    EXPECT_LOOKS_MISSING(e().GetUserAgent(me, v->user_agent_id()), e().GetUserAgent(me, Missing()));
    EXPECT_LOOKS_MISSING(e().GetUserAgentFor(me, v->id, platform_),
                         e().GetUserAgentFor(me, Missing(), platform_));
    EXPECT_LOOKS_MISSING(e().GetAgent(me, v->private_agent_id()), e().GetAgent(me, Missing()));
    // Another tenant is as invisible as a missing one, by id and by slug.
    EXPECT_LOOKS_MISSING(e().GetTenant(me, other_tenant_), e().GetTenant(me, Missing()));
    EXPECT_LOOKS_MISSING(e().GetTenantBySlug(me, "other"), e().GetTenantBySlug(me, "nope"));
  }
  // Platform agents that are not public are invisible too; public ones are not.
  EXPECT_LOOKS_MISSING(e().GetAgent(me, platform_private_), e().GetAgent(me, Missing()));
  EXPECT_OK(e().GetAgent(me, platform_).status());
  EXPECT_OK(e().GetAgent(me, far_.public_agent_id()).status());
  // admin_config is never visible to users.
  EXPECT_LOOKS_MISSING(e().GetAdminConfig(me, "site"), e().GetAdminConfig(me, "no-such-key"));
}

TEST_F(AccessTest, OtherUsersListsComeBackEmpty) {
  Scope me = Scope::ForUser(alice_.id);
  for (const Person* v : {&near_, &far_}) {
    SCOPED_TRACE(v->email);
    // Service sees the rows, so emptiness below is the filter, not a missing list.
    ASSERT_EQ(e().ListChats(Scope::Service(), v->id, {})->rows.size(), 1u);
    ASSERT_EQ(e().ListUserAgents(Scope::Service(), v->id, {})->size(), 1u);

    for (bool deleted_too : {false, true}) {
      auto chats = e().ListChats(me, v->id, PageRequest{50, "", deleted_too});
      ASSERT_OK(chats.status());
      EXPECT_TRUE(chats->rows.empty());
      EXPECT_TRUE(chats->next_cursor.empty());
    }
    auto uas = e().ListUserAgents(me, v->id, {});
    ASSERT_OK(uas.status());
    EXPECT_TRUE(uas->empty());
    UserAgentFilter archived;
    archived.archived = true;
    auto uas2 = e().ListUserAgents(me, v->id, archived);
    ASSERT_OK(uas2.status());
    EXPECT_TRUE(uas2->empty());
  }
  // Agents: public ones and the caller's own private one, never another user's private.
  auto agents = e().ListAgents(me, PageRequest{1000, "", /*include_deleted=*/true});
  ASSERT_OK(agents.status());
  std::vector<Uuid> seen;
  for (const auto& row : agents->rows) seen.push_back(Id(row->id()));
  auto has = [&](const Uuid& id) { return std::find(seen.begin(), seen.end(), id) != seen.end(); };
  EXPECT_TRUE(has(platform_));
  EXPECT_TRUE(has(alice_.private_agent_id()));
  EXPECT_TRUE(has(near_.public_agent_id()));
  EXPECT_TRUE(has(far_.public_agent_id()));
  EXPECT_FALSE(has(near_.private_agent_id()));
  EXPECT_FALSE(has(far_.private_agent_id()));
  EXPECT_FALSE(has(platform_private_));
  EXPECT_EQ(seen.size(), 5u);
  // API keys: only its own.
  auto keys = e().ListApiKeys(me);
  ASSERT_OK(keys.status());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(Id((*keys)[0]->id()), alice_.key_id);
}

TEST_F(AccessTest, OtherUsersRecordsCannotBeChangedAndLookMissing) {
  Scope me = Scope::ForUser(alice_.id);
  const std::string patch = R"({"title":"mine now"})";
  for (const Person* v : {&near_, &far_}) {
    SCOPED_TRACE(v == &near_ ? "victim in the caller's shard" : "victim in another shard");
    EXPECT_LOOKS_MISSING(e().UpdateUser(me, v->id, R"({"full_name":"x"})"),
                         e().UpdateUser(me, Missing(), R"({"full_name":"x"})"));
    ExpectUnchanged("UpdateUser");
    for (DeleteMode m : {DeleteMode::kSoft, DeleteMode::kHard}) {
      EXPECT_LOOKS_MISSING(e().DeleteUser(me, v->id, m), e().DeleteUser(me, Missing(), m));
      ExpectUnchanged("DeleteUser");
      EXPECT_LOOKS_MISSING(e().DeleteChat(me, v->chat_id(), m), e().DeleteChat(me, Missing(), m));
      ExpectUnchanged("DeleteChat");
      EXPECT_LOOKS_MISSING(e().DeleteUserAgent(me, v->user_agent_id(), m),
                           e().DeleteUserAgent(me, Missing(), m));
      ExpectUnchanged("DeleteUserAgent");
      EXPECT_LOOKS_MISSING(e().DeleteAgent(me, v->private_agent_id(), m),
                           e().DeleteAgent(me, Missing(), m));
      ExpectUnchanged("DeleteAgent");
    }
    EXPECT_LOOKS_MISSING(e().UpdateChat(me, v->chat_id(), patch),
                         e().UpdateChat(me, Missing(), patch));
    ExpectUnchanged("UpdateChat");
    EXPECT_LOOKS_MISSING(Append(me, v->chat_id(), "injected"), Append(me, Missing(), "injected"));
    ExpectUnchanged("AppendMessage");
    EXPECT_LOOKS_MISSING(e().Vote(me, v->chat_id(), v->message_id(), false),
                         e().Vote(me, Missing(), v->message_id(), false));
    ExpectUnchanged("Vote on another user's chat");
    // Naming the other user's message from one's own chat does not reach it either.
    EXPECT_LOOKS_MISSING(e().Vote(me, alice_.chat_id(), v->message_id(), false),
                         e().Vote(me, alice_.chat_id(), Missing(), false));
    ExpectUnchanged("Vote on another user's message");
    EXPECT_LOOKS_MISSING(e().UpdateUserAgent(me, v->user_agent_id(), R"({"custom_name":"x"})"),
                         e().UpdateUserAgent(me, Missing(), R"({"custom_name":"x"})"));
    ExpectUnchanged("UpdateUserAgent");
    EXPECT_LOOKS_MISSING(e().UpdateAgent(me, v->private_agent_id(), R"({"name":"x"})"),
                         e().UpdateAgent(me, Missing(), R"({"name":"x"})"));
    ExpectUnchanged("UpdateAgent");
    EXPECT_LOOKS_MISSING(e().RevokeApiKey(me, v->key_id), e().RevokeApiKey(me, Missing()));
    ExpectUnchanged("RevokeApiKey");
  }
  // Keys without a user (service, admin) are not the user's to revoke either.
  EXPECT_LOOKS_MISSING(e().RevokeApiKey(me, service_key_), e().RevokeApiKey(me, Missing()));
  EXPECT_LOOKS_MISSING(e().RevokeApiKey(me, admin_key_), e().RevokeApiKey(me, Missing()));
  ExpectUnchanged("RevokeApiKey of service/admin keys");
  // The victims' keys still work.
  for (const Person* v : {&near_, &far_}) {
    auto s = e().Authenticate(v->secret);
    ASSERT_OK(s.status());
    EXPECT_TRUE(s->is_user());
    EXPECT_EQ(s->user(), v->id);
  }
}

TEST_F(AccessTest, UserCannotCreateRecordsOwnedByAnotherUser) {
  Scope me = Scope::ForUser(alice_.id);
  for (const Person* v : {&near_, &far_}) {
    SCOPED_TRACE(v->email);
    fb::ChatT c;
    c.user_id = FbId(v->id);
    c.title = "planted";
    EXPECT_REFUSED(e().CreateChat(me, c), kPermissionDenied);
    fb::UserAgentT ua;
    ua.user_id = FbId(v->id);
    ua.agent_id = FbId(far_.public_agent_id());
    EXPECT_REFUSED(e().CreateUserAgent(me, ua), kPermissionDenied);
    fb::AgentT a;
    a.name = "in someone else's name";
    a.creator_id = FbId(v->id);
    EXPECT_REFUSED(e().CreateAgent(me, a), kPermissionDenied);
  }
  // Nor may a user place an agent in a tenant.
  fb::AgentT a;
  a.name = "tenant agent";
  a.tenant_id = FbId(tenant_);
  EXPECT_REFUSED(e().CreateAgent(me, a), kPermissionDenied);
  // Another user's private agent is not an agent this user may add to its list: the
  // same answer as for an agent that does not exist.
  fb::UserAgentT hidden, missing;
  hidden.agent_id = FbId(far_.private_agent_id());
  missing.agent_id = FbId(Missing());
  auto h = e().CreateUserAgent(me, hidden);
  EXPECT_CODE(h, kNotFound);
  EXPECT_EQ(TextOf(h), TextOf(e().CreateUserAgent(me, missing)));
  ExpectUnchanged("CreateUserAgent with another user's private agent");
}

TEST_F(AccessTest, UserCannotWriteTenantsAdminConfigKeysOrUsers) {
  Scope me = Scope::ForUser(alice_.id);
  fb::TenantT t;
  t.name = "Mine";
  t.slug = "mine";
  EXPECT_REFUSED(e().CreateTenant(me, t), kPermissionDenied);
  EXPECT_REFUSED(e().UpdateTenant(me, tenant_, R"({"name":"Taken"})"), kPermissionDenied);
  EXPECT_REFUSED(e().DeleteTenant(me, tenant_, DeleteMode::kSoft), kPermissionDenied);
  EXPECT_REFUSED(e().DeleteTenant(me, other_tenant_, DeleteMode::kHard), kPermissionDenied);
  EXPECT_CODE(e().ListTenants(me, {}), kPermissionDenied);

  EXPECT_REFUSED(e().PutAdminConfig(me, "site", R"({"banner":"pwned"})"), kPermissionDenied);
  EXPECT_REFUSED(e().PutAdminConfig(me, "new-key", R"({})"), kPermissionDenied);
  EXPECT_REFUSED(e().DeleteAdminConfig(me, "site"), kPermissionDenied);
  EXPECT_CODE(e().ListAdminConfig(me), kPermissionDenied);

  for (fb::KeyRole role : {fb::KeyRole::user, fb::KeyRole::admin, fb::KeyRole::service}) {
    fb::ApiKeyT k;
    k.role = role;
    if (role == fb::KeyRole::user) k.user_id = FbId(alice_.id);  // even for itself
    EXPECT_REFUSED(e().CreateApiKey(me, k), kPermissionDenied);
  }

  fb::UserT u;
  u.email = "sock-puppet@example.com";
  EXPECT_REFUSED(e().CreateUser(me, u), kPermissionDenied);
  EXPECT_CODE(e().ListUsers(me, {}), kPermissionDenied);
}

TEST_F(AccessTest, UserCannotChangePrivilegedFieldsOfItsOwnRecord) {
  Scope me = Scope::ForUser(alice_.id);
  const std::string other_tenant = other_tenant_.ToString();
  for (const std::string& patch : {
           std::string(R"({"role":"admin"})"),
           std::string(R"({"role":"superadmin"})"),
           std::string(R"({"role":"user"})"),  // even its current value
           std::string(R"({"email":"new-alice@example.com"})"),
           std::string(R"({"email":"ALICE@example.com"})"),
           std::string(R"({"tenant_id":")") + other_tenant + "\"}",
           std::string(R"({"tenant_id":null})"),
           std::string(R"({"is_active":false})"),
           std::string(R"({"last_sign_in_at":123})"),
           // One allowed field does not carry a privileged one through.
           std::string(R"({"full_name":"Alice A.","role":"admin"})"),
       }) {
    SCOPED_TRACE(patch);
    EXPECT_REFUSED(e().UpdateUser(me, alice_.id, patch), kPermissionDenied);
    EXPECT_REFUSED(e().UpdateUser(me, alice_.id, patch, JsonMode::kReplace), kPermissionDenied);
  }
  // The owner's own fields are fine, and the service may change privileged ones.
  auto ok = e().UpdateUser(me, alice_.id, R"({"full_name":"Alice A.","job_title":"CTO"})");
  ASSERT_OK(ok.status());
  EXPECT_EQ(Str(ok.value()->full_name()), "Alice A.");
  EXPECT_EQ(ok.value()->role(), fb::UserRole::user);
  auto promoted = e().UpdateUser(Scope::Service(), alice_.id, R"({"role":"admin"})");
  ASSERT_OK(promoted.status());
  EXPECT_EQ(promoted.value()->role(), fb::UserRole::admin);
}

TEST_F(AccessTest, UserCannotChangeOrDeleteAgentsItDidNotCreate) {
  Scope me = Scope::ForUser(alice_.id);
  // Public agents: visible to alice, but not hers.
  for (const Uuid& agent : {platform_, near_.public_agent_id(), far_.public_agent_id()}) {
    EXPECT_OK(e().GetAgent(me, agent).status());
    EXPECT_REFUSED(e().UpdateAgent(me, agent, R"({"name":"hijacked"})"), kPermissionDenied);
    EXPECT_REFUSED(e().UpdateAgent(me, agent, R"({"is_public":false})"), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteAgent(me, agent, DeleteMode::kSoft), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteAgent(me, agent, DeleteMode::kHard), kPermissionDenied);
  }
  // Its own agent: ordinary fields yes, the tenant (privileged) and creator (store-kept) no.
  EXPECT_REFUSED(e().UpdateAgent(me, alice_.private_agent_id(),
                                 R"({"tenant_id":")" + tenant_.ToString() + "\"}"),
                 kPermissionDenied);
  EXPECT_REFUSED(e().UpdateAgent(me, alice_.private_agent_id(),
                                 R"({"creator_id":")" + far_.id.ToString() + "\"}"),
                 kInvalidArgument);
  auto ok = e().UpdateAgent(me, alice_.private_agent_id(), R"({"name":"renamed"})");
  ASSERT_OK(ok.status());
  EXPECT_EQ(Str(ok.value()->name()), "renamed");
  EXPECT_EQ(Id(ok.value()->creator_id()), alice_.id);
}

TEST_F(AccessTest, IncludeDeletedIsForServiceAndAdminOnly) {
  Scope me = Scope::ForUser(alice_.id);
  ASSERT_OK(e().DeleteChat(me, alice_.chat_id(), DeleteMode::kSoft));
  ASSERT_OK(e().DeleteAgent(Scope::Admin(), platform_, DeleteMode::kSoft));
  // The user sees neither, even when it asks for deleted rows.
  auto chats = e().ListChats(me, alice_.id, PageRequest{50, "", /*include_deleted=*/true});
  ASSERT_OK(chats.status());
  EXPECT_TRUE(chats->rows.empty());
  EXPECT_CODE(e().GetChat(me, alice_.chat_id()), kNotFound);
  EXPECT_CODE(e().ListMessages(me, alice_.chat_id(), {}), kNotFound);
  EXPECT_CODE(e().GetAgent(me, platform_), kNotFound);
  auto agents = e().ListAgents(me, PageRequest{1000, "", true});
  ASSERT_OK(agents.status());
  for (const auto& row : agents->rows) EXPECT_NE(Id(row->id()), platform_);
  EXPECT_EQ(agents->rows.size(), 4u);  // its two agents and the other users' public ones
  // Service and admin do, when they ask.
  for (const Scope& s : {Scope::Service(), Scope::Admin()}) {
    auto hidden = e().ListChats(s, alice_.id, PageRequest{50, "", false});
    ASSERT_OK(hidden.status());
    EXPECT_TRUE(hidden->rows.empty());
    auto shown = e().ListChats(s, alice_.id, PageRequest{50, "", true});
    ASSERT_OK(shown.status());
    ASSERT_EQ(shown->rows.size(), 1u);
    EXPECT_NE(shown->rows[0]->deleted_at(), 0);
    auto all = e().ListAgents(s, PageRequest{1000, "", true});
    ASSERT_OK(all.status());
    bool found = false;
    for (const auto& row : all->rows) found = found || Id(row->id()) == platform_;
    EXPECT_TRUE(found);
  }
}

// ------------------------------------------------------------------ ActAs

TEST_F(AccessTest, OnlyTheServiceMayActAsAUser) {
  EXPECT_CODE(Scope::Admin().ActAs(alice_.id), kPermissionDenied);
  EXPECT_CODE(Scope::ForUser(far_.id).ActAs(alice_.id), kPermissionDenied);
  auto as = Scope::Service().ActAs(alice_.id);
  ASSERT_OK(as.status());
  EXPECT_TRUE(as->is_user());
  EXPECT_FALSE(as->is_service());
  EXPECT_TRUE(as->acting_service());
  EXPECT_EQ(as->user(), alice_.id);
  // A scope acting as a user cannot act as another one.
  EXPECT_CODE(as->ActAs(far_.id), kPermissionDenied);
}

TEST_F(AccessTest, ActAsGetsExactlyThatUsersRules) {
  auto acting = Scope::Service().ActAs(alice_.id);
  ASSERT_OK(acting.status());
  // The same calls through ForUser(alice) and through ActAs(alice) answer the same, and
  // the refused writes among them change nothing.
  auto probe = [&](const Scope& s) {
    std::vector<std::string> out;
    auto add = [&](std::string what, std::string result) { out.push_back(what + " -> " + result); };
    add("GetUser self", BytesOf(e().GetUser(s, alice_.id)));
    add("GetChat self", BytesOf(e().GetChat(s, alice_.chat_id())));
    add("ListMessages self", BytesOf(e().ListMessages(s, alice_.chat_id(), {})));
    add("ListAgents", BytesOf(e().ListAgents(s, {})));
    add("ListApiKeys", BytesOf(e().ListApiKeys(s)));
    add("GetTenant own", BytesOf(e().GetTenant(s, tenant_)));
    add("GetTenant other", BytesOf(e().GetTenant(s, other_tenant_)));
    for (const Person* v : {&near_, &far_}) {
      add("GetUser", BytesOf(e().GetUser(s, v->id)));
      add("GetChat", BytesOf(e().GetChat(s, v->chat_id())));
      add("GetMessage", BytesOf(e().GetMessage(s, v->message_id())));
      add("ListVotes", BytesOf(e().ListVotes(s, v->chat_id())));
      add("GetUserAgent", BytesOf(e().GetUserAgent(s, v->user_agent_id())));
      add("GetAgent private", BytesOf(e().GetAgent(s, v->private_agent_id())));
      add("ListChats", BytesOf(e().ListChats(s, v->id, {})));
      add("ListUserAgents", BytesOf(e().ListUserAgents(s, v->id, {})));
      add("UpdateChat", TextOf(e().UpdateChat(s, v->chat_id(), R"({"title":"x"})")));
      add("DeleteUser", TextOf(e().DeleteUser(s, v->id, DeleteMode::kHard)));
      add("RevokeApiKey", TextOf(e().RevokeApiKey(s, v->key_id)));
      add("UpdateAgent public",
          TextOf(e().UpdateAgent(s, v->public_agent_id(), R"({"name":"x"})")));
    }
    add("UpdateUser role", TextOf(e().UpdateUser(s, alice_.id, R"({"role":"superadmin"})")));
    add("UpdateUser email", TextOf(e().UpdateUser(s, alice_.id, R"({"email":"a@b.c"})")));
    fb::UserT u;
    u.email = "new@example.com";
    add("CreateUser", TextOf(e().CreateUser(s, u)));
    fb::TenantT t;
    t.name = "T";
    t.slug = "t";
    add("CreateTenant", TextOf(e().CreateTenant(s, t)));
    add("PutAdminConfig", TextOf(e().PutAdminConfig(s, "site", "{}")));
    add("GetAdminConfig", TextOf(e().GetAdminConfig(s, "site")));
    add("ListUsers", TextOf(e().ListUsers(s, {})));
    add("ListTenants", TextOf(e().ListTenants(s, {})));
    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = FbId(alice_.id);
    add("CreateApiKey", TextOf(e().CreateApiKey(s, k)));
    return out;
  };
  auto as_user = probe(Scope::ForUser(alice_.id));
  ExpectUnchanged("probing as ForUser(alice)");
  auto as_acting = probe(*acting);
  ExpectUnchanged("probing as Service().ActAs(alice)");
  ASSERT_EQ(as_user.size(), as_acting.size());
  for (size_t i = 0; i < as_user.size(); ++i) EXPECT_EQ(as_acting[i], as_user[i]) << "probe " << i;
  // And the service itself, not acting, is not bound by them.
  EXPECT_OK(e().GetChat(Scope::Service(), far_.chat_id()).status());

  // Acting as alice writes alice's records, owned by alice.
  fb::ChatT c;
  c.title = "made by acting service";
  auto chat = e().CreateChat(*acting, c);
  ASSERT_OK(chat.status());
  EXPECT_EQ(Id(chat.value()->user_id()), alice_.id);
  fb::ChatT other;
  other.user_id = FbId(far_.id);
  other.title = "for far";
  EXPECT_CODE(e().CreateChat(*acting, other), kPermissionDenied);
}

// ------------------------------------------------------------------ admin

TEST_F(AccessTest, AdminReadsEverything) {
  Scope admin = Scope::Admin(), svc = Scope::Service();
  for (const Person* p : {&alice_, &near_, &far_}) {
    SCOPED_TRACE(p->email);
    EXPECT_EQ(BytesOf(e().GetUser(admin, p->id)), std::string(p->user.bytes()));
    EXPECT_EQ(BytesOf(e().GetUserByEmail(admin, p->email)), std::string(p->user.bytes()));
    EXPECT_EQ(BytesOf(e().GetChat(admin, p->chat_id())), std::string(p->chat.bytes()));
    EXPECT_EQ(BytesOf(e().GetMessage(admin, p->message_id())), std::string(p->message.bytes()));
    EXPECT_EQ(BytesOf(e().GetAgent(admin, p->private_agent_id())),
              std::string(p->private_agent.bytes()));
    EXPECT_EQ(BytesOf(e().GetUserAgent(admin, p->user_agent_id())),
              std::string(p->user_agent.bytes()));
    EXPECT_EQ(BytesOf(e().GetUserAgentFor(admin, p->id, platform_)),
              std::string(p->user_agent.bytes()));
    auto chats = e().ListChats(admin, p->id, {});
    ASSERT_OK(chats.status());
    EXPECT_EQ(chats->rows.size(), 1u);
    EXPECT_EQ(BytesOf(e().ListChats(admin, p->id, {})), BytesOf(e().ListChats(svc, p->id, {})));
    EXPECT_EQ(BytesOf(e().ListMessages(admin, p->chat_id(), {})),
              BytesOf(e().ListMessages(svc, p->chat_id(), {})));
    auto votes = e().ListVotes(admin, p->chat_id());
    ASSERT_OK(votes.status());
    EXPECT_EQ(votes->size(), 1u);
    auto uas = e().ListUserAgents(admin, p->id, {});
    ASSERT_OK(uas.status());
    EXPECT_EQ(uas->size(), 1u);
  }
  EXPECT_OK(e().GetAgent(admin, platform_private_).status());
  EXPECT_EQ(BytesOf(e().ListAgents(admin, {})), BytesOf(e().ListAgents(svc, {})));
  EXPECT_EQ(e().ListAgents(admin, {})->rows.size(), 8u);  // 2 platform + 2 per user
  EXPECT_EQ(BytesOf(e().ListUsers(admin, {1000, "", false})),
            BytesOf(e().ListUsers(svc, {1000, "", false})));
  EXPECT_EQ(BytesOf(e().ListTenants(admin, {})), BytesOf(e().ListTenants(svc, {})));
  EXPECT_EQ(e().ListTenants(admin, {})->rows.size(), 2u);
  EXPECT_OK(e().GetTenant(admin, tenant_).status());
  EXPECT_OK(e().GetTenantBySlug(admin, "other").status());
  EXPECT_OK(e().GetAdminConfig(admin, "site").status());
  EXPECT_EQ(e().ListAdminConfig(admin)->size(), 1u);
  auto keys = e().ListApiKeys(admin);
  ASSERT_OK(keys.status());
  EXPECT_EQ(keys->size(), 5u);  // three user keys, the service key and the admin key
  EXPECT_EQ(BytesOf(e().ListApiKeys(admin)), BytesOf(e().ListApiKeys(svc)));
}

TEST_F(AccessTest, AdminCannotWriteUsersChatsMessagesOrUserAgents) {
  Scope admin = Scope::Admin();
  fb::UserT u;
  u.email = "made-by-admin@example.com";
  EXPECT_REFUSED(e().CreateUser(admin, u), kPermissionDenied);
  for (const Person* p : {&alice_, &far_}) {
    SCOPED_TRACE(p->email);
    EXPECT_REFUSED(e().UpdateUser(admin, p->id, R"({"full_name":"x"})"), kPermissionDenied);
    EXPECT_REFUSED(e().UpdateUser(admin, p->id, R"({"role":"superadmin"})"), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteUser(admin, p->id, DeleteMode::kSoft), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteUser(admin, p->id, DeleteMode::kHard), kPermissionDenied);

    fb::ChatT c;
    c.user_id = FbId(p->id);
    c.title = "admin chat";
    EXPECT_REFUSED(e().CreateChat(admin, c), kPermissionDenied);
    EXPECT_REFUSED(e().UpdateChat(admin, p->chat_id(), R"({"title":"x"})"), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteChat(admin, p->chat_id(), DeleteMode::kSoft), kPermissionDenied);
    EXPECT_REFUSED(e().DeleteChat(admin, p->chat_id(), DeleteMode::kHard), kPermissionDenied);
    EXPECT_REFUSED(Append(admin, p->chat_id(), "from admin"), kPermissionDenied);
    EXPECT_REFUSED(e().Vote(admin, p->chat_id(), p->message_id(), false), kPermissionDenied);

    fb::UserAgentT ua;
    ua.user_id = FbId(p->id);
    ua.agent_id = FbId(platform_private_);
    EXPECT_REFUSED(e().CreateUserAgent(admin, ua), kPermissionDenied);
    EXPECT_REFUSED(e().UpdateUserAgent(admin, p->user_agent_id(), R"({"custom_name":"x"})"),
                   kPermissionDenied);
    EXPECT_REFUSED(e().DeleteUserAgent(admin, p->user_agent_id(), DeleteMode::kSoft),
                   kPermissionDenied);
    EXPECT_REFUSED(e().DeleteUserAgent(admin, p->user_agent_id(), DeleteMode::kHard),
                   kPermissionDenied);
  }
  // Keys: admin may not mint or revoke service keys.
  fb::ApiKeyT k;
  k.role = fb::KeyRole::service;
  EXPECT_REFUSED(e().CreateApiKey(admin, k), kPermissionDenied);
  EXPECT_REFUSED(e().RevokeApiKey(admin, service_key_), kPermissionDenied);
}

TEST_F(AccessTest, AdminWritesAgentsTenantsAdminConfigAndNonServiceKeys) {
  Scope admin = Scope::Admin();
  EXPECT_OK(e().UpdateTenant(admin, tenant_, R"({"plan":"pro"})").status());
  EXPECT_OK(e().UpdateAgent(admin, far_.private_agent_id(), R"({"name":"moderated"})").status());
  EXPECT_EQ(Str(e().GetAgent(Scope::ForUser(far_.id), far_.private_agent_id()).value()->name()),
            "moderated");
  EXPECT_OK(e().PutAdminConfig(admin, "site", R"({"banner":"new"})").status());
  EXPECT_OK(e().DeleteAdminConfig(admin, "site"));
  fb::ApiKeyT ak;
  ak.role = fb::KeyRole::admin;
  auto admin_key = e().CreateApiKey(admin, ak);
  ASSERT_OK(admin_key.status());
  auto s = e().Authenticate(admin_key->secret);
  ASSERT_OK(s.status());
  EXPECT_TRUE(s->is_admin());
  fb::ApiKeyT uk;
  uk.role = fb::KeyRole::user;
  uk.user_id = FbId(far_.id);
  auto user_key = e().CreateApiKey(admin, uk);
  ASSERT_OK(user_key.status());
  auto us = e().Authenticate(user_key->secret);
  ASSERT_OK(us.status());
  EXPECT_TRUE(us->is_user());
  EXPECT_EQ(us->user(), far_.id);
  EXPECT_OK(e().RevokeApiKey(admin, Id(user_key->key->id())));
  EXPECT_CODE(e().Authenticate(user_key->secret), kPermissionDenied);
}

// ------------------------------------------------------------------ keys

TEST_F(AccessTest, UserKeysAuthenticateToExactlyTheirUser) {
  for (const Person* p : {&alice_, &near_, &far_}) {
    auto s = e().Authenticate(p->secret);
    ASSERT_OK(s.status());
    EXPECT_TRUE(s->is_user());
    EXPECT_FALSE(s->acting_service());
    EXPECT_EQ(s->user(), p->id);
    // The scope a key grants is bound by the user rules.
    EXPECT_OK(e().GetChat(*s, p->chat_id()).status());
    const Person* other = p == &far_ ? &alice_ : &far_;
    EXPECT_CODE(e().GetChat(*s, other->chat_id()), kNotFound);
  }
  // A user may revoke its own key, after which it no longer authenticates.
  EXPECT_OK(e().RevokeApiKey(Scope::ForUser(alice_.id), alice_.key_id));
  EXPECT_CODE(e().Authenticate(alice_.secret), kPermissionDenied);
  EXPECT_OK(e().Authenticate(far_.secret).status());
}

// ------------------------------------------------------------------ ids in use elsewhere
//
// A client-given id makes a create idempotent (data model); an id already used by another
// user's record must not let the caller reach that record.

TEST_F(AccessTest, ChatIdOfAnotherUserInTheSameShardIsRefused) {
  fb::ChatT c;
  c.id = FbId(near_.chat_id());
  c.title = "hijack";
  EXPECT_REFUSED(e().CreateChat(Scope::ForUser(alice_.id), c), kAlreadyExists);
}

TEST_F(AccessTest, ChatIdOfAnotherUserInAnotherShardIsRefused) {
  fb::ChatT c;
  c.id = FbId(far_.chat_id());
  c.title = "hijack";
  EXPECT_REFUSED(e().CreateChat(Scope::ForUser(alice_.id), c), kAlreadyExists);
  // What is durable is the victim's chat, still with its message.
  Reopen();
  EXPECT_EQ(BytesOf(e().GetChat(Scope::Service(), far_.chat_id())), std::string(far_.chat.bytes()));
  EXPECT_EQ(BytesOf(e().GetChat(Scope::ForUser(far_.id), far_.chat_id())),
            std::string(far_.chat.bytes()));
  EXPECT_EQ(e().ListMessages(Scope::Service(), far_.chat_id(), {})->rows.size(), 1u);
}

// Once the other shard's chat is gone (hard delete), its id is free again: the store-wide
// id directory forgets it with the record, before and after a restart.
TEST_F(AccessTest, ChatIdFreedInAnotherShardCanBeReused) {
  ASSERT_OK(e().DeleteChat(Scope::Service(), far_.chat_id(), DeleteMode::kHard));
  fb::ChatT c;
  c.id = FbId(far_.chat_id());
  c.title = "mine now";
  ASSERT_OK(e().CreateChat(Scope::ForUser(alice_.id), c));
  Reopen();
  EXPECT_EQ(Id(e().GetChat(Scope::Service(), far_.chat_id())->get()->user_id()), alice_.id);
  // And still unique: far_ cannot take it back.
  EXPECT_CODE(e().CreateChat(Scope::ForUser(far_.id), c), kAlreadyExists);
}

TEST_F(AccessTest, UserAgentIdOfAnotherUserInTheSameShardIsRefused) {
  fb::UserAgentT ua;
  ua.id = FbId(near_.user_agent_id());
  ua.agent_id = FbId(far_.public_agent_id());
  EXPECT_REFUSED(e().CreateUserAgent(Scope::ForUser(alice_.id), ua), kAlreadyExists);
}

TEST_F(AccessTest, UserAgentIdOfAnotherUserInAnotherShardIsRefused) {
  fb::UserAgentT ua;
  ua.id = FbId(far_.user_agent_id());
  ua.agent_id = FbId(far_.public_agent_id());
  EXPECT_REFUSED(e().CreateUserAgent(Scope::ForUser(alice_.id), ua), kAlreadyExists);
  Reopen();
  EXPECT_EQ(BytesOf(e().GetUserAgent(Scope::ForUser(far_.id), far_.user_agent_id())),
            std::string(far_.user_agent.bytes()));
}

TEST_F(AccessTest, MessageIdOfAnotherUserInTheSameShardIsRefused) {
  fb::MessageT m;
  m.id = FbId(near_.message_id());
  m.chat_id = FbId(alice_.chat_id());
  m.parts = R"([{"type":"text","text":"hijack"}])";
  EXPECT_REFUSED(e().AppendMessage(Scope::ForUser(alice_.id), m), kAlreadyExists);
}

TEST_F(AccessTest, MessageIdOfAnotherUserInAnotherShardIsRefused) {
  fb::MessageT m;
  m.id = FbId(far_.message_id());
  m.chat_id = FbId(alice_.chat_id());
  m.parts = R"([{"type":"text","text":"hijack"}])";
  EXPECT_REFUSED(e().AppendMessage(Scope::ForUser(alice_.id), m), kAlreadyExists);
  Reopen();
  EXPECT_EQ(BytesOf(e().GetMessage(Scope::ForUser(far_.id), far_.message_id())),
            std::string(far_.message.bytes()));
}

// ------------------------------------------------------------------ references

// A chat may name an agent; another user's private agent is a record the caller may not
// see, so naming it must be answered exactly as naming a missing agent.
TEST_F(AccessTest, ChatCannotNameAnotherUsersPrivateAgent) {
  Scope me = Scope::ForUser(alice_.id);
  fb::ChatT hidden, missing;
  hidden.agent_id = FbId(far_.private_agent_id());
  hidden.title = "probe";
  missing.agent_id = FbId(Missing());
  missing.title = "probe";
  auto h = e().CreateChat(me, hidden);
  EXPECT_CODE(h, kNotFound);
  EXPECT_EQ(TextOf(h), TextOf(e().CreateChat(me, missing)));
  ExpectUnchanged("CreateChat naming another user's private agent");

  const std::string patch = R"({"agent_id":")" + far_.private_agent_id().ToString() + "\"}";
  const std::string missing_patch = R"({"agent_id":")" + Missing().ToString() + "\"}";
  auto u = e().UpdateChat(me, alice_.chat_id(), patch);
  EXPECT_CODE(u, kNotFound);
  EXPECT_EQ(TextOf(u), TextOf(e().UpdateChat(me, alice_.chat_id(), missing_patch)));
  ExpectUnchanged("UpdateChat naming another user's private agent");
  // Its own private agent and public agents are fine.
  EXPECT_OK(e().UpdateChat(me, alice_.chat_id(),
                           R"({"agent_id":")" + alice_.private_agent_id().ToString() + "\"}")
                .status());
}

// Hard-deleting an agent one created must not delete other users' records: seed 000
// declares user_agents.agent_id a plain REFERENCES agents(id) (no cascade), and a user
// changes only records whose user_id is its own.
TEST_F(AccessTest, UserHardDeletingItsAgentDoesNotTouchOtherUsersLists) {
  fb::UserAgentT ua;
  ua.agent_id = FbId(alice_.public_agent_id());
  auto far_copy = e().CreateUserAgent(Scope::ForUser(far_.id), ua);
  ASSERT_OK(far_copy.status());
  Baseline();
  auto st = e().DeleteAgent(Scope::ForUser(alice_.id), alice_.public_agent_id(), DeleteMode::kHard);
  EXPECT_FALSE(st.ok()) << "alice purged an agent that far's list still uses";
  EXPECT_EQ(BytesOf(e().GetUserAgent(Scope::ForUser(far_.id), Id(far_copy.value()->id()))),
            std::string(far_copy.value().bytes()));
  ExpectUnchanged("DeleteAgent(hard) of an agent in another user's list");
  // Soft-deleting it only hides the agent; far's row stays.
  ASSERT_OK(
      e().DeleteAgent(Scope::ForUser(alice_.id), alice_.public_agent_id(), DeleteMode::kSoft));
  EXPECT_EQ(BytesOf(e().GetUserAgent(Scope::ForUser(far_.id), Id(far_copy.value()->id()))),
            std::string(far_copy.value().bytes()));
}

}  // namespace
}  // namespace agentstore

// ------------------------------------------------------------------ tenant-scoped keys
//
// Issue 12: a service or admin key created with tenant_id T sees and changes only T. Every
// operation of the op table is tried by keys scoped to tenant "mine" against a user, agent
// and the records of tenant "theirs": reads answer exactly as for a missing record, lists
// leave the other tenant out, writes are refused and change nothing (the other tenant's
// whole world is re-read byte for byte after each). The cases are keyed by operation name
// and the test walks the op table, so a new operation without a case fails it.

namespace agentstore {
namespace {

using ::agentstore::testing::Must;

std::vector<float> Vec(float x) {
  std::vector<float> v(384, 0.01f);
  v[0] = x;
  return v;
}

class TenantScopeTest : public agentstore::testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    mine_ = MakeTenant("mine");
    theirs_ = MakeTenant("theirs");
    me_ = Id(MakeUser("me@mine.example", mine_)->id());
    victim_ = Id(MakeUser("victim@theirs.example", theirs_)->id());
    platform_ = Id(MakeAgent("platform", true)->id());
    Scope svc = Scope::Service();
    fb::AgentT a;
    a.name = "theirs-agent";
    a.tenant_id = FbId(theirs_);
    a.creator_id = FbId(victim_);
    a.is_public = false;
    their_agent_ = Id(Must(e().CreateAgent(svc, a))->id());
    fb::AgentT pub;
    pub.name = "victim's public agent";
    pub.is_public = true;
    their_public_ = Id(Must(e().CreateAgent(Scope::ForUser(victim_), pub))->id());
    for (Uuid u : {me_, victim_}) {
      fb::UserAgentT ua;
      ua.user_id = FbId(u);
      ua.agent_id = FbId(platform_);
      Uuid id = Id(Must(e().CreateUserAgent(svc, ua))->id());
      if (u == victim_) their_ua_ = id;
    }
    their_chat_ = Id(MakeChat(victim_, "their chat")->id());
    their_msg_ = Id(Must(Append(svc, their_chat_, "secret", 1, 2, 3))->id());
    ASSERT_OK(e().Vote(svc, their_chat_, their_msg_, true).status());
    fb::UserMemoryT m;
    m.user_id = FbId(victim_);
    m.memory_key = "diet";
    m.memory_value = R"({"content":"vegetarian"})";
    m.importance_score = 0.5;
    m.embedding = Vec(0.5f);
    their_memory_ = Id(Must(e().UpsertMemory(svc, m))->id());
    fb::UsageLogT call;
    call.user_id = FbId(victim_);
    call.agent_id = FbId(platform_);
    call.model = "gpt-4o";
    call.provider = "openai";
    call.input_tokens = 10;
    call.output_tokens = 20;
    call.success = true;
    ASSERT_OK(e().TrackAgentUsage(svc, call).status());
    fb::QuotaT q;
    q.tenant_id = FbId(theirs_);
    q.quota_type = fb::QuotaType::tokens;
    q.quota_limit = 1000;
    ASSERT_OK(e().SetQuota(svc, q).status());
    auto limit = [&](fb::LimitScope s, std::optional<Uuid> subject, fb::LimitType t) {
      fb::RateLimitConfigT c;
      c.scope = s;
      if (subject) c.scope_id = FbId(*subject);
      c.limit_type = t;
      c.limit_value = 5;
      c.is_active = true;
      return Id(Must(e().PutLimitConfig(svc, c))->id());
    };
    their_limit_ = limit(fb::LimitScope::tenant, theirs_, fb::LimitType::requests_per_minute);
    limit(fb::LimitScope::user, victim_, fb::LimitType::concurrent);
    limit(fb::LimitScope::agent, their_agent_, fb::LimitType::requests_per_hour);
    global_limit_ = limit(fb::LimitScope::global, std::nullopt, fb::LimitType::requests_per_day);
    LimitCheckRequest lr;
    lr.user = victim_;
    auto decision = Must(e().CheckLimits(svc, lr));
    ASSERT_TRUE(decision.lease.has_value());
    their_lease_ = *decision.lease;
    fb::ApiKeyT k;
    k.role = fb::KeyRole::user;
    k.user_id = FbId(victim_);
    their_key_ = Id(Must(e().CreateApiKey(svc, k)).key->id());
    ASSERT_OK(e().PutAdminConfig(svc, "site", R"({"banner":"hi"})").status());
    ASSERT_OK(e().DeclareCollection(svc, R"({"name":"goals","owner":"user","fields":[
        {"name":"title","type":"string","required":true,"max_length":200}],
        "indexes":[{"name":"by_title","fields":["title"]}]})"));
    auto goal = Must(e().PutRecord(
        svc, "goals", R"({"user_id":")" + victim_.ToString() + R"(","title":"secret goal"})"));
    their_goal_ = nlohmann::json::parse(goal)["id"];
    baseline_ = Capture();
  }

  Uuid MakeTenant(const std::string& slug) {
    fb::TenantT t;
    t.name = slug;
    t.slug = slug;
    return Id(Must(e().CreateTenant(Scope::Service(), t))->id());
  }

  // Everything tenant "theirs" holds (and the platform-wide records), through an
  // unscoped service key, plus the engine's record and write counters.
  std::map<std::string, std::string> Capture() {
    Scope svc = Scope::Service();
    std::map<std::string, std::string> w;
    w["tenant"] = BytesOf(e().GetTenant(svc, theirs_));
    w["tenants"] = BytesOf(e().ListTenants(svc, PageRequest{1000, "", true}));
    w["users"] = BytesOf(e().ListUsers(svc, PageRequest{1000, "", true}));
    w["agents"] = BytesOf(e().ListAgents(svc, PageRequest{1000, "", true}));
    w["user_agents"] = BytesOf(e().ListUserAgents(svc, victim_, {}));
    w["chats"] = BytesOf(e().ListChats(svc, victim_, PageRequest{1000, "", true}));
    w["messages"] = BytesOf(e().ListMessages(svc, their_chat_, {1000, "", true}));
    w["votes"] = BytesOf(e().ListVotes(svc, their_chat_));
    w["memory"] = BytesOf(e().GetMemory(svc, their_memory_));
    UsageQuery uq;
    uq.user = victim_;
    w["usage"] = BytesOf(e().ListUsage(svc, uq));
    w["quotas"] = BytesOf(e().GetQuotas(svc, theirs_, std::nullopt, true));
    w["limits"] = BytesOf(e().ListLimitConfigs(svc));
    w["keys"] = BytesOf(e().ListApiKeys(svc));
    w["admin_config"] = BytesOf(e().ListAdminConfig(svc));
    CollectionQuery cq;
    cq.collection = "goals";
    cq.include_deleted = true;
    auto goals = e().QueryRecords(svc, cq);
    for (const auto& r : goals.ok() ? goals->records : std::vector<std::string>{})
      w["goals"] += r + "\n";
    auto decls = e().ListCollections(svc);
    for (const auto& d : decls.ok() ? *decls : std::vector<std::string>{}) w["collections"] += d;
    w["stats"] = Describe(e().Stats());
    return w;
  }
  void ExpectUnchanged(const std::string& what) {
    auto now = Capture();
    for (const auto& [name, bytes] : baseline_)
      EXPECT_TRUE(now[name] == bytes) << name << " changed after " << what;
  }
  // A refused write: not_found (the target is invisible) or permission_denied (the kind
  // of write is not for this key), and nothing changed.
  template <typename R>
  void Refused(const R& r, const std::string& what) {
    StatusCode c = ::agentstore::testing::CodeOf(r);
    EXPECT_TRUE(c == StatusCode::kNotFound || c == StatusCode::kPermissionDenied)
        << what << " -> " << ::agentstore::testing::TextOf(r);
    ExpectUnchanged(what);
  }
  template <typename R, typename M>
  void LooksMissing(const R& hidden, const M& missing, const std::string& what) {
    EXPECT_CODE(hidden, kNotFound) << what;
    EXPECT_EQ(::agentstore::testing::TextOf(hidden), ::agentstore::testing::TextOf(missing))
        << what << " answers differently from a missing record";
  }
  // No id of the other tenant's records anywhere in `bytes`.
  void NoneOfTheirs(const std::string& bytes, const std::string& what) {
    for (const Uuid& id : {theirs_, victim_, their_agent_, their_ua_, their_chat_, their_msg_,
                           their_memory_, their_limit_, global_limit_, their_key_}) {
      std::string raw(reinterpret_cast<const char*>(id.bytes.data()), 16);
      EXPECT_EQ(bytes.find(raw), std::string::npos) << what << " reveals " << id.ToString();
    }
  }

  Uuid mine_, theirs_, me_, victim_, platform_, their_agent_, their_public_, their_ua_, their_chat_,
      their_msg_, their_memory_, their_limit_, global_limit_, their_lease_, their_key_;
  std::string their_goal_;  // a collection record (user-owned collection "goals")
  std::map<std::string, std::string> baseline_;
};

TEST_F(TenantScopeTest, EveryOperationIsConfinedToTheKeysTenant) {
  const Uuid missing = Missing();
  for (Scope s : {Scope::Admin(mine_), Scope::Service(mine_)}) {
    SCOPED_TRACE(s.is_admin() ? "tenant-scoped admin" : "tenant-scoped service");
    auto patch = [&](auto fn, const Uuid& id, const char* p, const std::string& what) {
      Refused((e().*fn)(s, id, p, JsonMode::kMerge), what);
    };
    std::map<std::string, std::function<void()>> cases;
    cases["authenticate"] = [&] {
      fb::ApiKeyT k;
      k.role = s.is_admin() ? fb::KeyRole::admin : fb::KeyRole::service;
      auto key = Must(e().CreateApiKey(Scope::Service(), [&] {
        k.tenant_id = FbId(mine_);
        return k;
      }()));
      auto got = Must(e().Authenticate(key.secret));
      EXPECT_TRUE(got.confined());
      EXPECT_EQ(*got.tenant(), mine_);
      EXPECT_EQ(got.kind(), s.kind());
      baseline_ = Capture();
    };
    // status and backup_create are refused by the dispatcher (they have no engine scope):
    // tests/net/wire_test.cc TenantScopedKeysGetNoStoreWideOperations.
    cases["status"] = [] {};
    cases["backup_create"] = [] {};
    cases["tenant_create"] = [&] {
      fb::TenantT t;
      t.name = "new";
      t.slug = "new";
      Refused(e().CreateTenant(s, t), "tenant_create");
    };
    cases["tenant_get"] = [&] {
      LooksMissing(e().GetTenant(s, theirs_), e().GetTenant(s, missing), "tenant_get");
      LooksMissing(e().GetTenantBySlug(s, "theirs"), e().GetTenantBySlug(s, "nope"),
                   "tenant_get by slug");
      EXPECT_OK(e().GetTenant(s, mine_));
    };
    cases["tenant_update"] = [&] {
      patch(&Engine::UpdateTenant, theirs_, R"({"name":"x"})", "tenant_update");
    };
    cases["tenant_delete"] = [&] {
      Refused(e().DeleteTenant(s, theirs_, DeleteMode::kSoft), "tenant_delete soft");
      Refused(e().DeleteTenant(s, theirs_, DeleteMode::kHard), "tenant_delete hard");
    };
    cases["tenant_list"] = [&] {
      auto page = Must(e().ListTenants(s, PageRequest{1000, "", true}));
      ASSERT_EQ(page.rows.size(), 1u);
      EXPECT_EQ(Id(page.rows[0]->id()), mine_);
    };
    cases["user_create"] = [&] {
      fb::UserT u;
      u.email = "new@theirs.example";
      u.tenant_id = FbId(theirs_);
      Refused(e().CreateUser(s, u), "user_create in their tenant");
    };
    cases["user_get"] = [&] {
      LooksMissing(e().GetUser(s, victim_), e().GetUser(s, missing), "user_get");
      LooksMissing(e().GetUserByEmail(s, "victim@theirs.example"),
                   e().GetUserByEmail(s, "nobody@x.example"), "user_get by email");
      EXPECT_OK(e().GetUser(s, me_));
    };
    cases["user_update"] = [&] {
      patch(&Engine::UpdateUser, victim_, R"({"full_name":"x"})", "user_update");
      std::string move = R"({"tenant_id":")" + theirs_.ToString() + R"("})";
      patch(&Engine::UpdateUser, me_, move.c_str(), "user_update moving into their tenant");
    };
    cases["user_delete"] = [&] {
      Refused(e().DeleteUser(s, victim_, DeleteMode::kSoft), "user_delete soft");
      Refused(e().DeleteUser(s, victim_, DeleteMode::kHard), "user_delete hard");
    };
    cases["user_list"] = [&] {
      auto page = Must(e().ListUsers(s, PageRequest{1000, "", true}));
      ASSERT_EQ(page.rows.size(), 1u);
      EXPECT_EQ(Id(page.rows[0]->id()), me_);
    };
    cases["agent_create"] = [&] {
      fb::AgentT a;
      a.name = "x";
      a.tenant_id = FbId(theirs_);
      Refused(e().CreateAgent(s, a), "agent_create in their tenant");
      fb::AgentT b;
      b.name = "y";
      b.creator_id = FbId(victim_);
      Refused(e().CreateAgent(s, b), "agent_create naming their user");
    };
    cases["agent_get"] = [&] {
      LooksMissing(e().GetAgent(s, their_agent_), e().GetAgent(s, missing), "agent_get");
      // A public agent stays readable, without its creator (another tenant's user).
      auto pub = Must(e().GetAgent(s, their_public_));
      EXPECT_EQ(pub->creator_id(), nullptr);
    };
    cases["agent_update"] = [&] {
      patch(&Engine::UpdateAgent, their_agent_, R"({"name":"x"})", "agent_update");
      patch(&Engine::UpdateAgent, their_public_, R"({"name":"x"})", "agent_update public");
      patch(&Engine::UpdateAgent, platform_, R"({"name":"x"})", "agent_update platform");
    };
    cases["agent_delete"] = [&] {
      for (Uuid a : {their_agent_, their_public_, platform_})
        for (DeleteMode m : {DeleteMode::kSoft, DeleteMode::kHard})
          Refused(e().DeleteAgent(s, a, m), "agent_delete");
    };
    cases["agent_list"] = [&] {
      NoneOfTheirs(BytesOf(e().ListAgents(s, PageRequest{1000, "", true})), "agent_list");
    };
    cases["user_agent_create"] = [&] {
      fb::UserAgentT ua;
      ua.user_id = FbId(victim_);
      ua.agent_id = FbId(their_public_);
      Refused(e().CreateUserAgent(s, ua), "user_agent_create");
    };
    cases["user_agent_get"] = [&] {
      LooksMissing(e().GetUserAgent(s, their_ua_), e().GetUserAgent(s, missing), "user_agent_get");
      LooksMissing(e().GetUserAgentFor(s, victim_, platform_),
                   e().GetUserAgentFor(s, missing, platform_), "user_agent_get by pair");
    };
    cases["user_agent_update"] = [&] {
      patch(&Engine::UpdateUserAgent, their_ua_, R"({"notes":"x"})", "user_agent_update");
    };
    cases["user_agent_delete"] = [&] {
      Refused(e().DeleteUserAgent(s, their_ua_, DeleteMode::kHard), "user_agent_delete");
    };
    cases["user_agent_list"] = [&] {
      EXPECT_EQ(BytesOf(e().ListUserAgents(s, victim_, {})), "[0]");
    };
    cases["chat_create"] = [&] {
      fb::ChatT c;
      c.user_id = FbId(victim_);
      Refused(e().CreateChat(s, c), "chat_create");
    };
    cases["chat_get"] = [&] {
      LooksMissing(e().GetChat(s, their_chat_), e().GetChat(s, missing), "chat_get");
    };
    cases["chat_update"] = [&] {
      patch(&Engine::UpdateChat, their_chat_, R"({"title":"x"})", "chat_update");
    };
    cases["chat_delete"] = [&] {
      Refused(e().DeleteChat(s, their_chat_, DeleteMode::kHard), "chat_delete");
    };
    cases["chat_list"] = [&] {
      EXPECT_EQ(BytesOf(e().ListChats(s, victim_, {})), BytesOf(e().ListChats(s, missing, {})));
    };
    cases["message_append"] = [&] { Refused(Append(s, their_chat_, "x"), "message_append"); };
    cases["message_get"] = [&] {
      LooksMissing(e().GetMessage(s, their_msg_), e().GetMessage(s, missing), "message_get");
    };
    cases["message_list"] = [&] {
      EXPECT_EQ(BytesOf(e().ListMessages(s, their_chat_, {})),
                BytesOf(e().ListMessages(s, missing, {})));
    };
    cases["vote_put"] = [&] { Refused(e().Vote(s, their_chat_, their_msg_, false), "vote_put"); };
    cases["vote_list"] = [&] {
      LooksMissing(e().ListVotes(s, their_chat_), e().ListVotes(s, missing), "vote_list");
    };
    cases["admin_config_put"] = [&] {
      Refused(e().PutAdminConfig(s, "site", "{}"), "admin_config_put");
    };
    cases["admin_config_get"] = [&] { EXPECT_CODE(e().GetAdminConfig(s, "site"), kNotFound); };
    cases["admin_config_list"] = [&] { EXPECT_CODE(e().ListAdminConfig(s), kPermissionDenied); };
    cases["admin_config_delete"] = [&] {
      Refused(e().DeleteAdminConfig(s, "site"), "admin_config_delete");
    };
    cases["key_create"] = [&] {
      fb::ApiKeyT k;
      k.role = fb::KeyRole::admin;
      k.tenant_id = FbId(theirs_);
      Refused(e().CreateApiKey(s, k), "key_create for their tenant");
      fb::ApiKeyT u;
      u.role = fb::KeyRole::user;
      u.user_id = FbId(victim_);
      Refused(e().CreateApiKey(s, u), "key_create for their user");
      if (s.is_admin()) {
        fb::ApiKeyT svc;
        svc.role = fb::KeyRole::service;
        Refused(e().CreateApiKey(s, svc), "key_create service by an admin");
      }
      // A key with no tenant named is scoped to the creator's tenant, never unscoped.
      fb::ApiKeyT plain;
      plain.role = fb::KeyRole::admin;
      auto made = Must(e().CreateApiKey(s, plain));
      EXPECT_EQ(Id(made.key->tenant_id()), mine_);
      EXPECT_EQ(*Must(e().Authenticate(made.secret)).tenant(), mine_);
      baseline_ = Capture();
    };
    cases["key_list"] = [&] { NoneOfTheirs(BytesOf(e().ListApiKeys(s)), "key_list"); };
    cases["key_revoke"] = [&] {
      LooksMissing(e().RevokeApiKey(s, their_key_), e().RevokeApiKey(s, missing), "key_revoke");
      ExpectUnchanged("key_revoke");
    };
    cases["record_export"] = [&] {
      EXPECT_CODE(e().ExportRecords(s, RecordType::kUser, "", 100), kPermissionDenied);
    };
    cases["record_import"] = [&] {
      Refused(e().ImportRecord(s, RecordType::kTenant, R"({"name":"x","slug":"x"})"),
              "record_import");
    };
    cases["memory_upsert"] = [&] {
      fb::UserMemoryT m;
      m.user_id = FbId(victim_);
      m.memory_key = "diet";
      m.embedding = Vec(0.1f);
      Refused(e().UpsertMemory(s, m), "memory_upsert");
    };
    cases["memory_get"] = [&] {
      LooksMissing(e().GetMemory(s, their_memory_), e().GetMemory(s, missing), "memory_get");
      LooksMissing(e().GetMemoryByKey(s, victim_, "diet"), e().GetMemoryByKey(s, missing, "diet"),
                   "memory_get by key");
    };
    cases["memory_delete"] = [&] { Refused(e().DeleteMemory(s, their_memory_), "memory_delete"); };
    auto query = [&](const Uuid& user) {
      MemoryQuery q;
      q.user = user;
      q.vector = Vec(0.5f);
      q.text = "vegetarian";
      return q;
    };
    cases["memory_search"] = [&] {
      LooksMissing(e().SearchMemories(s, query(victim_)), e().SearchMemories(s, query(missing)),
                   "memory_search");
    };
    cases["memory_hybrid_search"] = [&] {
      LooksMissing(e().HybridSearchMemories(s, query(victim_)),
                   e().HybridSearchMemories(s, query(missing)), "memory_hybrid_search");
    };
    cases["memory_global_search"] = [&] {
      EXPECT_CODE(e().GlobalSearchMemories(s, query(Uuid())), kPermissionDenied);
    };
    cases["memory_prune"] = [&] { Refused(e().PruneMemories(s, victim_, 0), "memory_prune"); };
    cases["track_agent_usage"] = [&] {
      fb::UsageLogT call;
      call.user_id = FbId(victim_);
      call.agent_id = FbId(platform_);
      call.input_tokens = 1;
      Refused(e().TrackAgentUsage(s, call), "track_agent_usage");
    };
    cases["rate_agent"] = [&] { Refused(e().RateAgent(s, victim_, platform_, 1.0), "rate_agent"); };
    cases["usage_list"] = [&] {
      UsageQuery q;
      q.user = victim_;
      EXPECT_EQ(BytesOf(e().ListUsage(s, q)), "[0]cursor=");
      NoneOfTheirs(BytesOf(e().ListUsage(s, UsageQuery{})), "usage_list of everyone");
    };
    cases["usage_summary"] = [&] {
      UsageSummaryRequest r;
      r.id = victim_;
      EXPECT_TRUE(Must(e().SummarizeUsage(s, r)).rows.empty());
      r.owner = SummaryOwner::kTenant;
      r.id = theirs_;
      EXPECT_TRUE(Must(e().SummarizeUsage(s, r)).rows.empty());
      r.owner = SummaryOwner::kEveryone;
      EXPECT_CODE(e().SummarizeUsage(s, r), kPermissionDenied);
    };
    cases["quota_set"] = [&] {
      fb::QuotaT q;
      q.tenant_id = FbId(theirs_);
      q.quota_limit = 1;
      Refused(e().SetQuota(s, q), "quota_set");
    };
    cases["quota_get"] = [&] { EXPECT_EQ(BytesOf(e().GetQuotas(s, theirs_)), "[0]"); };
    cases["limit_config_put"] = [&] {
      auto put = [&](fb::LimitScope scope, std::optional<Uuid> subject) {
        fb::RateLimitConfigT c;
        c.scope = scope;
        if (subject) c.scope_id = FbId(*subject);
        c.limit_type = fb::LimitType::requests_per_minute;
        c.limit_value = 1;
        c.is_active = true;
        Refused(e().PutLimitConfig(s, c), "limit_config_put");
      };
      put(fb::LimitScope::tenant, theirs_);
      put(fb::LimitScope::user, victim_);
      put(fb::LimitScope::agent, their_agent_);
      put(fb::LimitScope::global, std::nullopt);
    };
    cases["limit_config_list"] = [&] {
      NoneOfTheirs(BytesOf(e().ListLimitConfigs(s)), "limit_config_list");
    };
    cases["limit_config_delete"] = [&] {
      LooksMissing(e().DeleteLimitConfig(s, their_limit_), e().DeleteLimitConfig(s, missing),
                   "limit_config_delete");
      Refused(e().DeleteLimitConfig(s, global_limit_), "limit_config_delete global");
    };
    cases["limit_check"] = [&] {
      LimitCheckRequest r;
      r.user = victim_;
      Refused(e().CheckLimits(s, r), "limit_check");
    };
    cases["limit_release"] = [&] { Refused(e().ReleaseLimit(s, their_lease_), "limit_release"); };
    cases["usage_expire"] = [&] { Refused(e().ExpireUsageLogs(s), "usage_expire"); };
    // Collections (issue 16) follow the same rule: records of another tenant's users.
    cases["coll_declare"] = [&] {
      Refused(e().DeclareCollection(s, R"({"name":"x","owner":"user","fields":[]})"),
              "coll_declare");
    };
    cases["coll_alter"] = [&] {
      Refused(e().AlterCollection(s, "goals", R"({"add_fields":[{"name":"n","type":"integer"}]})"),
              "coll_alter");
    };
    cases["coll_sweep"] = [&] { Refused(e().SweepExpiredRecords(s), "coll_sweep"); };
    // Declarations are platform-wide schema, not tenant data.
    cases["coll_describe"] = [&] { EXPECT_OK(e().DescribeCollection(s, "goals")); };
    cases["coll_list"] = [&] { EXPECT_OK(e().ListCollections(s)); };
    cases["coll_put"] = [&] {
      Refused(
          e().PutRecord(s, "goals", R"({"user_id":")" + victim_.ToString() + R"(","title":"x"})"),
          "coll_put for their user");
      Refused(e().PutRecord(s, "goals",
                            R"({"id":")" + their_goal_ + R"(","user_id":")" + me_.ToString() +
                                R"(","title":"stolen"})"),
              "coll_put over their record");
    };
    cases["coll_get"] = [&] {
      LooksMissing(e().GetRecord(s, "goals", their_goal_),
                   e().GetRecord(s, "goals", missing.ToString()), "coll_get");
    };
    cases["coll_update"] = [&] {
      Refused(e().UpdateRecord(s, "goals", their_goal_, R"({"title":"x"})"), "coll_update");
    };
    cases["coll_delete"] = [&] {
      Refused(e().DeleteRecord(s, "goals", their_goal_, DeleteMode::kHard), "coll_delete");
    };
    cases["coll_query"] = [&] {
      CollectionQuery q;
      q.collection = "goals";
      q.include_deleted = true;
      EXPECT_TRUE(Must(e().QueryRecords(s, q)).records.empty());
      q.index = "by_title";
      EXPECT_TRUE(Must(e().QueryRecords(s, q)).records.empty());
    };
    cases["coll_count"] = [&] {
      CollectionQuery q;
      q.collection = "goals";
      EXPECT_EQ(Must(e().CountRecords(s, q)), 0u);
    };
    // The saved graphs hold every tenant's vectors: store-wide, like a backup.
    cases["memory_graphs_save"] = [&] { EXPECT_CODE(e().SaveMemoryGraphs(s), kPermissionDenied); };
    // So does the table image: every tenant's records.
    cases["image_save"] = [&] { EXPECT_CODE(e().SaveImage(s), kPermissionDenied); };
    // The change feed: another tenant, or a user of it, is refused at subscribe; with no
    // filter the key is narrowed to its own tenant, so the other tenant's change (a
    // record written right after) never arrives.
    cases["subscribe"] = [&] {
      FeedFilter theirs;
      theirs.tenant = theirs_;
      EXPECT_CODE(e().Subscribe(s, theirs, std::nullopt, std::nullopt, nullptr), kPermissionDenied);
      FeedFilter victim;
      victim.user = victim_;
      EXPECT_CODE(e().Subscribe(s, victim, std::nullopt, std::nullopt, nullptr), kNotFound);
      auto sub = Must(e().Subscribe(s, FeedFilter{}, std::nullopt, std::nullopt, nullptr));
      fb::ChatT c;
      c.user_id = FbId(victim_);
      c.title = "theirs-feed";
      Must(e().CreateChat(Scope::Service(), c));
      baseline_ = Capture();  // the service key's own change
      std::vector<Subscription::Event> got;
      sub->Wait(200);
      sub->Poll(&got, 100);
      EXPECT_TRUE(got.empty()) << got.size() << " changes of another tenant delivered";
      sub->Cancel();
    };
    // Ends a subscription of the caller's own connection (net/src/dispatch.cc): there is
    // nothing of another tenant it could name.
    cases["unsubscribe"] = [] {};

    for (const OperationInfo& op : Operations()) {
      auto it = cases.find(std::string(op.name));
      ASSERT_NE(it, cases.end()) << "no tenant-scope case for operation " << op.name;
      SCOPED_TRACE(std::string(op.name));
      it->second();
    }
    EXPECT_EQ(cases.size(), Operations().size()) << "a case names no operation";
  }
}

// A tenant-scoped key still works on its own tenant (the confinement is not a refusal of
// everything).
TEST_F(TenantScopeTest, TenantScopedKeysWorkOnTheirOwnTenant) {
  Scope admin = Scope::Admin(mine_);
  Scope svc = Scope::Service(mine_);
  EXPECT_OK(e().UpdateTenant(admin, mine_, R"({"plan":"pro"})"));
  fb::UserT u;
  u.email = "new@mine.example";
  auto made = Must(e().CreateUser(svc, u));
  EXPECT_EQ(Id(made->tenant_id()), mine_) << "users created by a tenant key join its tenant";
  fb::AgentT a;
  a.name = "ours";
  auto agent = Must(e().CreateAgent(admin, a));
  EXPECT_EQ(Id(agent->tenant_id()), mine_);
  EXPECT_OK(e().UpdateAgent(admin, Id(agent->id()), R"({"name":"ours2"})"));
  fb::ChatT c;
  c.user_id = FbId(me_);
  EXPECT_OK(e().CreateChat(svc, c));
  fb::QuotaT q;
  q.tenant_id = FbId(mine_);
  q.quota_limit = 10;
  EXPECT_OK(e().SetQuota(admin, q));
  EXPECT_EQ(Must(e().GetQuotas(admin, mine_)).size(), 1u);
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(me_);
  EXPECT_OK(e().CreateApiKey(admin, k));
  EXPECT_OK(e().ActAs(svc, me_));
  EXPECT_CODE(e().ActAs(svc, victim_), kNotFound);
}

}  // namespace
}  // namespace agentstore

// Users and tenants: defaults, uniqueness, merge-patch updates, soft and hard delete.
#include <nlohmann/json.hpp>

#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;
class Users : public EngineFixture {};

TEST_F(Users, CreateAppliesEveryDefaultAndStoreTimestamps) {
  fb::UserT u;
  u.email = "Ada@Example.com";
  u.created_at = 42;  // never trusted from a client
  auto r = e().CreateUser(Scope::Service(), u);
  ASSERT_OK(r);
  const fb::User* user = r->get();
  EXPECT_EQ(Str(user->email()), "Ada@Example.com");
  EXPECT_EQ(Json::parse(Str(user->preferences())), Json::object());
  EXPECT_EQ(Json::parse(Str(user->notification_settings())),
            Json::parse(R"({"email": true, "in_app": true, "weekly_digest": true})"));
  EXPECT_TRUE(user->is_active());
  EXPECT_FALSE(user->onboarding_completed());
  EXPECT_EQ(user->role(), fb::UserRole::user);
  EXPECT_EQ(user->created_at(), clock_.NowMicros());
  EXPECT_EQ(user->updated_at(), clock_.NowMicros());
  EXPECT_EQ(Id(user->id()).bytes[6] >> 4, 7) << "generated ids are UUIDv7";
}

TEST_F(Users, LookupByIdAndCaseInsensitiveEmail) {
  auto u = MakeUser("Bob@Example.COM");
  auto by_id = e().GetUser(Scope::Service(), Id(u->id()));
  ASSERT_OK(by_id);
  EXPECT_EQ(by_id->bytes(), u.bytes());
  auto by_email = e().GetUserByEmail(Scope::Service(), "bob@example.com");
  ASSERT_OK(by_email);
  EXPECT_EQ(Id(by_email->get()->id()), Id(u->id()));
  EXPECT_CODE(e().GetUserByEmail(Scope::Service(), "nobody@example.com"), kNotFound);
}

TEST_F(Users, EmailIsUniqueCaseInsensitively) {
  MakeUser("carol@example.com");
  fb::UserT dup;
  dup.email = "CAROL@example.com";
  EXPECT_CODE(e().CreateUser(Scope::Service(), dup), kAlreadyExists);
}

TEST_F(Users, ClientGivenIdMakesCreateIdempotent) {
  Uuid id = *Uuid::Parse("0190f3a2-7b1c-7def-8123-456789abcdef");
  fb::UserT u;
  u.id = std::make_unique<fb::Uuid>(ToFb(id));
  u.email = "dave@example.com";
  auto first = e().CreateUser(Scope::Service(), u);
  ASSERT_OK(first);
  clock_.Advance(1000);
  auto again = e().CreateUser(Scope::Service(), u);
  ASSERT_OK(again);
  EXPECT_EQ(again->bytes(), first->bytes()) << "a retried create answers the stored record";
  EXPECT_EQ(e().Stats().records[static_cast<int>(RecordType::kUser)], 1u);
}

TEST_F(Users, MergePatchUpdatesFieldsAndMergesJson) {
  auto u = MakeUser("erin@example.com");
  Uuid id = Id(u->id());
  ASSERT_OK(
      e().UpdateUser(Scope::Service(), id, R"({"preferences":{"theme":"dark","lang":"en"}})"));
  clock_.Advance(5);
  auto r = e().UpdateUser(Scope::ForUser(id), id,
                          R"({"full_name":"Erin E.","preferences":{"lang":null,"tz":"UTC"}})");
  ASSERT_OK(r);
  EXPECT_EQ(Str(r->get()->full_name()), "Erin E.");
  EXPECT_EQ(Json::parse(Str(r->get()->preferences())),
            Json::parse(R"({"theme":"dark","tz":"UTC"})"));
  EXPECT_EQ(r->get()->updated_at(), clock_.NowMicros());
  EXPECT_EQ(r->get()->created_at(), u->created_at());
  // Replace mode swaps the whole JSON field.
  auto rep = e().UpdateUser(Scope::Service(), id, R"({"preferences":{"a":1}})", JsonMode::kReplace);
  ASSERT_OK(rep);
  EXPECT_EQ(Json::parse(Str(rep->get()->preferences())), Json::parse(R"({"a":1})"));
}

TEST_F(Users, EmailChangeMovesTheUniqueIndex) {
  auto a = MakeUser("frank@example.com");
  MakeUser("grace@example.com");
  EXPECT_CODE(e().UpdateUser(Scope::Service(), Id(a->id()), R"({"email":"GRACE@example.com"})"),
              kAlreadyExists);
  ASSERT_OK(e().UpdateUser(Scope::Service(), Id(a->id()), R"({"email":"frank2@example.com"})"));
  EXPECT_CODE(e().GetUserByEmail(Scope::Service(), "frank@example.com"), kNotFound);
  EXPECT_OK(e().GetUserByEmail(Scope::Service(), "frank2@example.com"));
  MakeUser("frank@example.com");  // the old address is free again
}

TEST_F(Users, SoftDeleteHidesTheUserAndEverythingItOwns) {
  auto u = MakeUser("heidi@example.com");
  Uuid id = Id(u->id());
  auto chat = MakeChat(id);
  ASSERT_OK(Append(Scope::Service(), Id(chat->id()), "hi"));
  ASSERT_OK(e().DeleteUser(Scope::Service(), id, DeleteMode::kSoft));
  EXPECT_CODE(e().GetUser(Scope::Service(), id), kNotFound);
  EXPECT_CODE(e().GetChat(Scope::Service(), Id(chat->id())), kNotFound);
  EXPECT_CODE(Append(Scope::Service(), Id(chat->id()), "again"), kNotFound);
  // Still there for listings that ask for deleted rows, and the email stays taken.
  PageRequest all;
  all.include_deleted = true;
  auto page = e().ListUsers(Scope::Admin(), all);
  ASSERT_OK(page);
  ASSERT_EQ(page->rows.size(), 1u);
  EXPECT_NE(page->rows[0]->deleted_at(), 0);
  fb::UserT dup;
  dup.email = "heidi@example.com";
  EXPECT_CODE(e().CreateUser(Scope::Service(), dup), kAlreadyExists);
}

TEST_F(Users, HardDeleteCascadesToEverythingTheUserOwns) {
  auto keep = MakeUser("ivan@example.com");
  auto gone = MakeUser("judy@example.com");
  auto agent = MakeAgent("helper");
  Uuid uid = Id(gone->id());
  for (auto* u : {&keep, &gone}) {
    fb::UserAgentT ua;
    ua.user_id = std::make_unique<fb::Uuid>(ToFb(Id((*u)->id())));
    ua.agent_id = std::make_unique<fb::Uuid>(ToFb(Id(agent->id())));
    ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
    auto chat = MakeChat(Id((*u)->id()));
    auto m = Append(Scope::Service(), Id(chat->id()), "x");
    ASSERT_OK(m);
    ASSERT_OK(e().Vote(Scope::Service(), Id(chat->id()), Id(m->get()->id()), true));
  }
  fb::ApiKeyT key;
  key.role = fb::KeyRole::user;
  key.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
  auto k = e().CreateApiKey(Scope::Service(), key);
  ASSERT_OK(k);
  ASSERT_OK(e().PutAdminConfig(Scope::Service(), "models", R"({"default":"gpt"})"));

  ASSERT_OK(e().DeleteUser(Scope::Service(), uid, DeleteMode::kHard));
  auto s = e().Stats();
  EXPECT_EQ(s.records[int(RecordType::kUser)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kChat)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kMessage)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kVote)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kUserAgent)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kApiKey)], 0u);
  EXPECT_EQ(s.records[int(RecordType::kAdminConfig)], 1u);
  EXPECT_CODE(e().Authenticate(k->secret), kPermissionDenied);
  // And it stays that way after a restart (the deletes were in the same batch).
  Reopen();
  s = e().Stats();
  EXPECT_EQ(s.records[int(RecordType::kUser)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kMessage)], 1u);
  EXPECT_EQ(s.records[int(RecordType::kUserAgent)], 1u);
  EXPECT_CODE(e().GetUserByEmail(Scope::Service(), "judy@example.com"), kNotFound);
}

TEST_F(Users, ListUsersPagesById) {
  for (int i = 0; i < 7; ++i) MakeUser("u" + std::to_string(i) + "@example.com");
  PageRequest req;
  req.limit = 3;
  std::vector<Uuid> seen;
  for (int pages = 0; pages < 10; ++pages) {
    auto p = e().ListUsers(Scope::Service(), req);
    ASSERT_OK(p);
    for (const auto& r : p->rows) seen.push_back(Id(r->id()));
    if (p->next_cursor.empty()) break;
    req.cursor = p->next_cursor;
  }
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<Uuid>(seen.begin(), seen.end()).size(), 7u);
}

class Tenants : public EngineFixture {};

TEST_F(Tenants, SlugIsUniqueAndUsersReferenceRealTenants) {
  fb::TenantT t;
  t.name = "Acme";
  t.slug = "acme";
  auto acme = e().CreateTenant(Scope::Admin(), t);
  ASSERT_OK(acme);
  EXPECT_CODE(e().CreateTenant(Scope::Admin(), t), kAlreadyExists);
  t.slug = "Not A Slug";
  EXPECT_CODE(e().CreateTenant(Scope::Admin(), t), kInvalidArgument);
  auto by_slug = e().GetTenantBySlug(Scope::Admin(), "acme");
  ASSERT_OK(by_slug);
  EXPECT_EQ(by_slug->bytes(), acme->bytes());

  fb::UserT u;
  u.email = "x@acme.com";
  u.tenant_id = std::make_unique<fb::Uuid>(ToFb(MakeUuidV7(1, 2, 3)));
  EXPECT_CODE(e().CreateUser(Scope::Service(), u), kNotFound);  // tenant_id names no tenant
  auto member = MakeUser("y@acme.com", Id(acme->get()->id()));
  // A member sees its tenant; purging a tenant with members is refused.
  EXPECT_OK(e().GetTenant(Scope::ForUser(Id(member->id())), Id(acme->get()->id())));
  EXPECT_CODE(e().DeleteTenant(Scope::Admin(), Id(acme->get()->id()), DeleteMode::kHard),
              kInvalidArgument);
  ASSERT_OK(e().DeleteTenant(Scope::Admin(), Id(acme->get()->id()), DeleteMode::kSoft));
  EXPECT_CODE(e().GetTenant(Scope::Admin(), Id(acme->get()->id())), kNotFound);
}

TEST_F(Tenants, UpdateMovesSlug) {
  fb::TenantT t;
  t.name = "Beta";
  t.slug = "beta";
  auto b = e().CreateTenant(Scope::Service(), t);
  ASSERT_OK(b);
  ASSERT_OK(
      e().UpdateTenant(Scope::Admin(), Id(b->get()->id()), R"({"slug":"beta-2","plan":"pro"})"));
  EXPECT_CODE(e().GetTenantBySlug(Scope::Admin(), "beta"), kNotFound);
  auto moved = e().GetTenantBySlug(Scope::Admin(), "beta-2");
  ASSERT_OK(moved);
  EXPECT_EQ(Str(moved->get()->plan()), "pro");
}

TEST_F(Users, JsonFormRoundTrips) {
  auto u = MakeUser("kim@example.com");
  std::string json = RecordToJson(*u.get());
  fb::UserT back;
  ASSERT_OK(RecordFromJson<fb::User>(json, &back));
  EXPECT_EQ(back.email, "kim@example.com");
  EXPECT_EQ(RecordToJson(*PackRow(back).get()), json);
}

}  // namespace
}  // namespace agentstore::testing

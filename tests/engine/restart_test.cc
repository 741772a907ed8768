// Restart: everything written through the engine, and every index over it, is the same
// after close and reopen; damaged or foreign directories are refused.
#include <fstream>

#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class Restart : public EngineFixture {
 protected:
  // Every record and index answer, as text, through public reads only.
  std::string Snapshot() {
    std::string out;
    Scope svc = Scope::Service();
    auto users = e().ListUsers(svc, [] {
      PageRequest p;
      p.limit = 1000;
      p.include_deleted = true;
      return p;
    }());
    EXPECT_TRUE(users.ok());
    for (const auto& u : users->rows) {
      Uuid uid = Id(u->id());
      out += RecordToJson(*u.get()) + "\n";
      auto by_email = e().GetUserByEmail(svc, Str(u->email()));
      out +=
          by_email.ok() ? "email->" + Id(by_email->get()->id()).ToString() + "\n" : "email gone\n";
      auto uas = e().ListUserAgents(svc, uid, {});
      for (const auto& ua : *uas) out += RecordToJson(*ua.get()) + "\n";
      PageRequest chats;
      chats.limit = 1000;
      chats.include_deleted = true;
      for (const auto& c : Must(e().ListChats(svc, uid, chats)).rows) {
        out += RecordToJson(*c.get()) + "\n";
        MessagePageRequest m;
        m.limit = 1000;
        auto msgs = e().ListMessages(svc, Id(c->id()), m);
        if (msgs.ok())
          for (const auto& r : msgs->rows) out += RecordToJson(*r.get()) + "\n";
        auto votes = e().ListVotes(svc, Id(c->id()));
        if (votes.ok())
          for (const auto& v : *votes) out += RecordToJson(*v.get()) + "\n";
      }
    }
    PageRequest all;
    all.limit = 1000;
    all.include_deleted = true;
    for (const auto& a : Must(e().ListAgents(svc, all)).rows) out += RecordToJson(*a.get()) + "\n";
    for (const auto& t : Must(e().ListTenants(svc, all)).rows) out += RecordToJson(*t.get()) + "\n";
    for (const auto& c : Must(e().ListAdminConfig(svc))) out += RecordToJson(*c.get()) + "\n";
    for (const auto& k : Must(e().ListApiKeys(svc))) out += RecordToJson(*k.get()) + "\n";
    auto s = e().Stats();
    for (uint64_t n : s.records) out += std::to_string(n) + ",";
    return out;
  }
};

TEST_F(Restart, EverythingAndEveryIndexComesBack) {
  fb::TenantT t;
  t.name = "Acme";
  t.slug = "acme";
  Uuid tenant = Id(e().CreateTenant(Scope::Admin(), t)->get()->id());
  std::vector<Uuid> agents;
  for (int i = 0; i < 4; ++i)
    agents.push_back(Id(MakeAgent("agent" + std::to_string(i), i % 2)->id()));
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(1000);
    auto u = MakeUser("user" + std::to_string(i) + "@Example.com",
                      i % 3 ? std::optional(tenant) : std::nullopt);
    Uuid uid = Id(u->id());
    for (int a = 0; a < 3; ++a) {
      fb::UserAgentT ua;
      ua.user_id = FbId(uid);
      ua.agent_id = FbId(agents[(i + a) % 4]);
      ua.is_pinned = a == 1;
      ua.tags = {"t" + std::to_string(a)};
      auto r = e().CreateUserAgent(Scope::Service(), ua);
      if (r.ok() && a == 2) {
        ASSERT_OK(e().DeleteUserAgent(Scope::Service(), Id(r->get()->id()), DeleteMode::kSoft));
      }
    }
    for (int c = 0; c < 3; ++c) {
      clock_.Advance(10);
      auto chat = MakeChat(uid, "chat " + std::to_string(c));
      for (int m = 0; m < 5; ++m) {
        clock_.Advance(1);
        auto msg = Append(Scope::Service(), Id(chat->id()), "msg", m, m * 2, m * 3);
        ASSERT_OK(msg);
        if (m == 2) {
          ASSERT_OK(e().Vote(Scope::Service(), Id(chat->id()), Id(msg->get()->id()), c % 2));
        }
      }
      if (c == 1) {
        ASSERT_OK(e().DeleteChat(Scope::Service(), Id(chat->id()), DeleteMode::kSoft));
      }
    }
    if (i == 5) {
      ASSERT_OK(e().DeleteUser(Scope::Service(), uid, DeleteMode::kSoft));
    }
    if (i == 7) {
      ASSERT_OK(e().DeleteUser(Scope::Service(), uid, DeleteMode::kHard));
    }
    if (i == 8) {
      ASSERT_OK(e().UpdateUser(Scope::Service(), uid,
                               R"({"email":"renamed@example.com","preferences":{"a":1}})"));
    }
  }
  ASSERT_OK(e().PutAdminConfig(Scope::Admin(), "feature_flags", R"({"beta":true})"));
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  auto key = e().CreateApiKey(Scope::Service(), k);
  ASSERT_OK(key);

  std::string before = Snapshot();
  ASSERT_GT(before.size(), 10000u);
  Reopen();
  EXPECT_EQ(Snapshot(), before);
  EXPECT_OK(e().Authenticate(key->secret));
  // Writes continue correctly after the restart (message order, totals).
  auto u = e().GetUserByEmail(Scope::Service(), "user0@example.com");
  ASSERT_OK(u);
  auto chats = e().ListChats(Scope::Service(), Id(u->get()->id()), {});
  ASSERT_OK(chats);
  auto m = Append(Scope::Service(), Id(chats->rows[0]->id()), "after restart", 1, 1, 1);
  ASSERT_OK(m);
  auto last = e().ListMessages(Scope::Service(), Id(chats->rows[0]->id()), {});
  EXPECT_EQ(Id(last->rows.back()->id()), Id(m->get()->id()));
}

TEST_F(Restart, DurabilityAlwaysReopens) {
  engine_.reset();
  Open(storage::Durability::kAlways);
  auto u = MakeUser("durable@example.com");
  engine_.reset();
  Open(storage::Durability::kBatch);
  EXPECT_OK(e().GetUser(Scope::Service(), Id(u->id())));
}

TEST(EngineOpen, RefusesASecondOpenAndForeignOrDamagedDirectories) {
  TempDir dir;
  EngineOptions o;
  o.data_dir = dir.sub("data");
  auto first = Engine::Open(o);
  ASSERT_OK(first);
  auto second = Engine::Open(o);
  EXPECT_CODE(second, kUnavailable);
  first->reset();

  // A directory whose RocksDB files are damaged.
  for (const auto& f : std::filesystem::directory_iterator(o.data_dir)) {
    if (f.path().filename().string().rfind("MANIFEST", 0) == 0) {
      std::ofstream(f.path(), std::ios::trunc) << "garbage";
    }
  }
  auto damaged = Engine::Open(o);
  EXPECT_FALSE(damaged.ok());
  EXPECT_TRUE(damaged.status().code() == StatusCode::kCorruption ||
              damaged.status().code() == StatusCode::kIoError)
      << damaged.status().ToString();
}

}  // namespace
}  // namespace agentstore::testing

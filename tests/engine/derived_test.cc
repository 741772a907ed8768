// Issue 13's defects in the engine: hand-written imports get a create's defaults; derived
// values (chat totals, conversation_count, users / storage_bytes quotas) follow their
// records after writes and imports; an export keeps touches and imported vectors bit for
// bit, for cosine and l2 stores.
#include <cmath>
#include <nlohmann/json.hpp>

#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;

class Derived : public EngineFixture {
 protected:
  template <typename T>
  Json Get(RecordType type, const std::string& id_text) {
    std::string cursor;
    do {
      auto page = e().ExportRecords(Scope::Service(), type, cursor, 100);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) break;
      for (const auto& bytes : page->records) {
        Json j = Json::parse(RecordToJson(*flatbuffers::GetRoot<T>(bytes.data())));
        if (j["id"] == id_text) return j;
      }
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return Json();
  }
  Status Import(RecordType t, const Json& j) {
    return e().ImportRecord(Scope::Service(), t, j.dump());
  }
};

constexpr char kUser[] = "0190f3a2-7b1c-7def-8123-000000000001";
constexpr char kAgent[] = "0190f3a2-7b1c-7def-8123-000000000002";
constexpr char kUa[] = "0190f3a2-7b1c-7def-8123-000000000003";
constexpr char kChat[] = "0190f3a2-7b1c-7def-8123-000000000004";

TEST_F(Derived, HandWrittenImportsGetTheDefaultsOfACreate) {
  clock_.Set(1'700'000'000'000'000);
  ASSERT_OK(Import(RecordType::kUser, {{"id", kUser}, {"email", "hand@x.com"}}));
  ASSERT_OK(Import(RecordType::kAgent, {{"id", kAgent}, {"name", "A"}, {"is_public", true}}));
  ASSERT_OK(
      Import(RecordType::kUserAgent, {{"id", kUa}, {"user_id", kUser}, {"agent_id", kAgent}}));
  Json ua = Get<fb::UserAgent>(RecordType::kUserAgent, kUa);
  EXPECT_EQ(ua["status"], "active");
  EXPECT_EQ(ua["settings"], Json::object());
  EXPECT_EQ(ua["metadata"], Json::object());
  EXPECT_EQ(ua["created_at"], 1'700'000'000'000'000);
  EXPECT_EQ(ua["updated_at"], 1'700'000'000'000'000);
  Json user = Get<fb::User>(RecordType::kUser, kUser);
  EXPECT_EQ(user["created_at"], 1'700'000'000'000'000);
  EXPECT_EQ(user["preferences"], Json::object());
  EXPECT_TRUE(user["notification_settings"].is_object());
  // Importing the same hand-written lines again later is a no-op, not a conflict.
  clock_.Set(1'700'000'100'000'000);
  EXPECT_OK(Import(RecordType::kUser, {{"id", kUser}, {"email", "hand@x.com"}}));
  EXPECT_OK(
      Import(RecordType::kUserAgent, {{"id", kUa}, {"user_id", kUser}, {"agent_id", kAgent}}));
}

TEST_F(Derived, ImportedMessagesAddUpInTheirChatAndChatsCountAsConversations) {
  ASSERT_OK(Import(RecordType::kUser, {{"id", kUser}, {"email", "c@x.com"}}));
  ASSERT_OK(Import(RecordType::kAgent, {{"id", kAgent}, {"name", "A"}, {"is_public", true}}));
  ASSERT_OK(
      Import(RecordType::kUserAgent, {{"id", kUa}, {"user_id", kUser}, {"agent_id", kAgent}}));
  // The chat claims totals its messages do not have: the records decide.
  ASSERT_OK(Import(RecordType::kChat, {{"id", kChat},
                                       {"user_id", kUser},
                                       {"agent_id", kAgent},
                                       {"message_count", 7},
                                       {"total_cost", 99}}));
  EXPECT_EQ(Get<fb::Chat>(RecordType::kChat, kChat)["message_count"], 0);
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK(Import(RecordType::kMessage,
                     {{"id", "0190f3a2-7b1c-7def-8123-00000000001" + std::to_string(i)},
                      {"chat_id", kChat},
                      {"user_id", kUser},
                      {"role", "user"},
                      {"parts", Json::array()},
                      {"input_tokens", 10},
                      {"output_tokens", 20},
                      {"cost", 5}}));
  }
  Json chat = Get<fb::Chat>(RecordType::kChat, kChat);
  EXPECT_EQ(chat["message_count"], 2);
  EXPECT_EQ(chat["total_input_tokens"], 20);
  EXPECT_EQ(chat["total_output_tokens"], 40);
  EXPECT_EQ(chat["total_cost"], 10);
  EXPECT_EQ(Get<fb::UserAgent>(RecordType::kUserAgent, kUa)["conversation_count"], 1);
  // Re-importing the message is a no-op: the totals do not count it twice.
  ASSERT_OK(Import(RecordType::kMessage, {{"id", "0190f3a2-7b1c-7def-8123-000000000010"},
                                          {"chat_id", kChat},
                                          {"user_id", kUser},
                                          {"role", "user"},
                                          {"parts", Json::array()},
                                          {"input_tokens", 10},
                                          {"output_tokens", 20},
                                          {"cost", 5}}));
  EXPECT_EQ(Get<fb::Chat>(RecordType::kChat, kChat)["message_count"], 2);
}

TEST_F(Derived, ConversationCountFollowsChatsWithTheAgent) {
  auto u = MakeUser("conv@x.com");
  auto a = MakeAgent("a"), b = MakeAgent("b");
  Uuid user = Id(u->id());
  fb::UserAgentT ua;
  ua.user_id = FbId(user);
  ua.agent_id = FbId(Id(a->id()));
  auto row = e().CreateUserAgent(Scope::Service(), ua);
  ASSERT_OK(row);
  Uuid ua_id = Id(row->get()->id());
  auto count = [&] {
    return e().GetUserAgent(Scope::Service(), ua_id).value()->conversation_count();
  };
  EXPECT_EQ(count(), 0);
  fb::ChatT c;
  c.user_id = FbId(user);
  c.agent_id = FbId(Id(a->id()));
  auto c1 = e().CreateChat(Scope::Service(), c);
  auto c2 = e().CreateChat(Scope::Service(), c);
  ASSERT_OK(c1);
  ASSERT_OK(c2);
  MakeChat(user);  // no agent: not a conversation with a
  EXPECT_EQ(count(), 2);
  // Moving a chat to another agent moves its conversation.
  ASSERT_OK(e().UpdateChat(Scope::Service(), Id(c2->get()->id()),
                           R"({"agent_id":")" + Id(b->id()).ToString() + R"("})",
                           JsonMode::kMerge));
  EXPECT_EQ(count(), 1);
  ASSERT_OK(e().DeleteChat(Scope::Service(), Id(c1->get()->id()), DeleteMode::kHard));
  EXPECT_EQ(count(), 0);
  // A user_agent created after chats with its agent counts them.
  fb::UserAgentT ub;
  ub.user_id = FbId(user);
  ub.agent_id = FbId(Id(b->id()));
  auto rb = e().CreateUserAgent(Scope::Service(), ub);
  ASSERT_OK(rb);
  EXPECT_EQ(rb->get()->conversation_count(), 1);
  // Survives a restart (it is stored).
  Reopen();
  EXPECT_EQ(count(), 0);
  EXPECT_EQ(e().GetUserAgent(Scope::Service(), Id(rb->get()->id())).value()->conversation_count(),
            1);
}

TEST_F(Derived, UsersAndStorageQuotasAdvanceAndFallBack) {
  fb::TenantT t;
  t.name = "T";
  t.slug = "tq";
  auto tenant = e().CreateTenant(Scope::Admin(), t);
  ASSERT_OK(tenant);
  Uuid tid = Id(tenant->get()->id());
  for (auto type : {fb::QuotaType::users, fb::QuotaType::storage_bytes}) {
    fb::QuotaT q;
    q.tenant_id = FbId(tid);
    q.quota_type = type;
    q.quota_limit = type == fb::QuotaType::users ? 1 : 1'000'000;
    ASSERT_OK(e().SetQuota(Scope::Admin(), q));
  }
  auto used = [&](fb::QuotaType type) {
    auto qs = e().GetQuotas(Scope::Admin(), tid, type);
    EXPECT_TRUE(qs.ok() && qs->size() == 1);
    return qs.ok() && !qs->empty() ? (*qs)[0]->current_usage() : -1;
  };
  auto exceeded = [&](fb::QuotaType type) {
    return (*e().GetQuotas(Scope::Admin(), tid, type))[0]->is_exceeded();
  };
  EXPECT_EQ(used(fb::QuotaType::users), 0);
  auto u1 = MakeUser("q1@x.com", tid);
  auto u2 = MakeUser("q2@x.com", tid);
  MakeUser("other@x.com");  // another tenant's (none): not counted
  EXPECT_EQ(used(fb::QuotaType::users), 2);
  EXPECT_TRUE(exceeded(fb::QuotaType::users));
  EXPECT_EQ(used(fb::QuotaType::storage_bytes), 0);
  auto chat = MakeChat(Id(u1->id()));
  ASSERT_OK(Append(Scope::Service(), Id(chat->id()), "hello there"));
  int64_t after_message = used(fb::QuotaType::storage_bytes);
  EXPECT_GT(after_message, 0);
  fb::UserMemoryT m;
  m.user_id = FbId(Id(u1->id()));
  m.memory_key = "k";
  m.embedding.assign(384, 0.f);
  m.embedding[3] = 1.f;
  auto mem = e().UpsertMemory(Scope::Service(), m);
  ASSERT_OK(mem);
  EXPECT_GE(used(fb::QuotaType::storage_bytes), after_message + 384 * 4);
  ASSERT_OK(e().DeleteMemory(Scope::Service(), Id(mem->get()->id())));
  EXPECT_EQ(used(fb::QuotaType::storage_bytes), after_message);
  ASSERT_OK(e().DeleteChat(Scope::Service(), Id(chat->id()), DeleteMode::kHard));
  EXPECT_EQ(used(fb::QuotaType::storage_bytes), 0);
  ASSERT_OK(e().DeleteUser(Scope::Service(), Id(u2->id()), DeleteMode::kSoft));
  EXPECT_EQ(used(fb::QuotaType::users), 1);
  EXPECT_FALSE(exceeded(fb::QuotaType::users));
}

// Exports of a store with the given metric, as JSON lines per type.
class VectorTransfer : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<Engine> OpenStore(const std::string& dir) {
    EngineOptions o;
    o.data_dir = dir_.sub(dir);
    o.durability = storage::Durability::kNone;
    o.clock = &clock_;
    o.shards = 2;
    o.memory.metric = GetParam();
    auto r = Engine::Open(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  TempDir dir_;
  ManualClock clock_{1'700'000'000'000'000};
};

std::vector<std::pair<RecordType, std::string>> ExportAll(Engine& e) {
  std::vector<std::pair<RecordType, std::string>> out;
  for (RecordType t : {RecordType::kUser, RecordType::kUserMemory}) {
    std::string cursor;
    do {
      auto page = e.ExportRecords(Scope::Service(), t, cursor, 100);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) break;
      for (const auto& bytes : page->records) {
        std::string j = t == RecordType::kUser
                            ? RecordToJson(*flatbuffers::GetRoot<fb::User>(bytes.data()))
                            : RecordToJson(*flatbuffers::GetRoot<fb::UserMemory>(bytes.data()));
        out.push_back({t, j});
      }
      cursor = page->next_cursor;
    } while (!cursor.empty());
  }
  return out;
}

TEST_P(VectorTransfer, VectorsAndTouchesRoundTripBitForBit) {
  auto a = OpenStore("a");
  ASSERT_TRUE(a);
  fb::UserT u;
  u.email = "v@x.com";
  auto user = a->CreateUser(Scope::Service(), u);
  ASSERT_OK(user);
  std::vector<float> q(384);
  for (int i = 0; i < 5; ++i) {
    fb::UserMemoryT m;
    m.user_id = FbId(Id(user->get()->id()));
    m.memory_key = "k" + std::to_string(i);
    m.embedding.resize(384);
    // Components whose normalized float values do not have a unit norm in double.
    for (int d = 0; d < 384; ++d) m.embedding[d] = std::sin(0.37f * d + i) * (1 + d % 7);
    if (i == 0) q = m.embedding;
    ASSERT_OK(a->UpsertMemory(Scope::Service(), m));
  }
  MemoryQuery query;
  query.user = Id(user->get()->id());
  query.vector = q;
  query.k = 2;
  query.touch = true;
  ASSERT_OK(a->SearchMemories(Scope::Service(), query));
  auto first = ExportAll(*a);
  bool touched = false;
  for (const auto& [t, j] : first)
    if (t == RecordType::kUserMemory && Json::parse(j)["access_count"] == 1) touched = true;
  EXPECT_TRUE(touched) << "the export carries access_count from touch";

  auto b = OpenStore("b");
  ASSERT_TRUE(b);
  for (const auto& [t, j] : first) ASSERT_OK(b->ImportRecord(Scope::Service(), t, j));
  EXPECT_EQ(ExportAll(*b), first);
}

INSTANTIATE_TEST_SUITE_P(Metrics, VectorTransfer, ::testing::Values("cosine", "l2"));

}  // namespace
}  // namespace agentstore::testing

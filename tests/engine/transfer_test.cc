// Export and import: every record leaves in key-ordered pages and comes back identical in
// a fresh store; import is idempotent and checks references.
#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class Transfer : public EngineFixture {};

template <typename T>
std::vector<std::string> ExportAll(Engine& e, RecordType type, uint32_t page_size = 3) {
  std::vector<std::string> out;
  std::string cursor;
  do {
    auto page = e.ExportRecords(Scope::Service(), type, cursor, page_size);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    for (const auto& bytes : page->records)
      out.push_back(RecordToJson(*flatbuffers::GetRoot<T>(bytes.data())));
    cursor = page->next_cursor;
  } while (!cursor.empty());
  return out;
}

TEST_F(Transfer, ExportImportRoundTripsEveryRecordExactly) {
  fb::TenantT t;
  t.name = "T";
  t.slug = "t";
  auto tenant = e().CreateTenant(Scope::Admin(), t);
  auto agent = MakeAgent("a");
  std::vector<Uuid> users;
  for (int i = 0; i < 4; ++i) {
    auto u = MakeUser("x" + std::to_string(i) + "@x.com", Id(tenant->get()->id()));
    fb::UserAgentT ua;
    ua.user_id = FbId(Id(u->id()));
    ua.agent_id = FbId(Id(agent->id()));
    ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
    auto chat = MakeChat(Id(u->id()));
    for (int m = 0; m < 3; ++m) {
      auto msg = Append(Scope::Service(), Id(chat->id()), "m", 5, 6, 7);
      ASSERT_OK(msg);
      if (m == 1) {
        ASSERT_OK(e().Vote(Scope::Service(), Id(chat->id()), Id(msg->get()->id()), true));
      }
    }
    for (int j = 0; j < 2; ++j) {
      fb::UserMemoryT mem;
      mem.user_id = FbId(Id(u->id()));
      mem.memory_key = "k" + std::to_string(j);
      mem.memory_value = R"({"content":"likes tea","tags":["drink"]})";
      mem.embedding.assign(384, 0.f);
      mem.embedding[i * 2 + j] = 1.f;
      mem.embedding[100] = 0.5f;
      ASSERT_OK(e().UpsertMemory(Scope::Service(), mem));
    }
  }
  ASSERT_OK(e().PutAdminConfig(Scope::Service(), "k", "{\"v\":1}"));
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  auto key = e().CreateApiKey(Scope::Service(), k);
  ASSERT_OK(key);

  auto dump = [&](Engine& eng) {
    std::vector<std::pair<RecordType, std::vector<std::string>>> all;
    all.push_back({RecordType::kTenant, ExportAll<fb::Tenant>(eng, RecordType::kTenant)});
    all.push_back({RecordType::kUser, ExportAll<fb::User>(eng, RecordType::kUser)});
    all.push_back({RecordType::kAgent, ExportAll<fb::Agent>(eng, RecordType::kAgent)});
    all.push_back({RecordType::kUserAgent, ExportAll<fb::UserAgent>(eng, RecordType::kUserAgent)});
    all.push_back({RecordType::kChat, ExportAll<fb::Chat>(eng, RecordType::kChat)});
    all.push_back({RecordType::kMessage, ExportAll<fb::Message>(eng, RecordType::kMessage)});
    all.push_back({RecordType::kVote, ExportAll<fb::Vote>(eng, RecordType::kVote)});
    all.push_back(
        {RecordType::kUserMemory, ExportAll<fb::UserMemory>(eng, RecordType::kUserMemory)});
    all.push_back(
        {RecordType::kAdminConfig, ExportAll<fb::AdminConfig>(eng, RecordType::kAdminConfig)});
    all.push_back({RecordType::kApiKey, ExportAll<fb::ApiKey>(eng, RecordType::kApiKey)});
    return all;
  };
  auto exported = dump(e());
  ASSERT_EQ(exported[5].second.size(), 12u);

  TempDir other;
  EngineOptions o;
  o.data_dir = other.sub("data");
  o.durability = storage::Durability::kNone;
  auto fresh = Engine::Open(o);
  ASSERT_OK(fresh);
  for (const auto& [type, records] : exported)
    for (const auto& json : records)
      ASSERT_OK((*fresh)->ImportRecord(Scope::Service(), type, json)) << json;
  // Again: idempotent.
  for (const auto& [type, records] : exported)
    for (const auto& json : records)
      ASSERT_OK((*fresh)->ImportRecord(Scope::Service(), type, json));
  EXPECT_EQ(dump(**fresh), exported);
  // The imported key still authenticates (its hash came along), and indexes work.
  EXPECT_OK((*fresh)->Authenticate(key->secret));
  EXPECT_OK((*fresh)->GetUserByEmail(Scope::Service(), "X2@x.com"));
  auto chats = (*fresh)->ListChats(Scope::Service(), Id(MakeUser("y@x.com")->id()), {});
  ASSERT_OK(chats);
  // Imported memories are searchable, vectors included.
  MemoryQuery q;
  q.user = Id(Must((*fresh)->GetUserByEmail(Scope::Service(), "x3@x.com"))->id());
  q.vector.assign(384, 0.f);
  q.vector[7] = 1.f;
  auto hits = Must((*fresh)->SearchMemories(Scope::Service(), q));
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].memory->memory_key()->str(), "k1");
}

TEST_F(Transfer, ImportRefusesBrokenReferencesConflictsAndNonService) {
  auto u = MakeUser("a@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::string chat_json = RecordToJson(*chat.get());
  EXPECT_OK(e().ImportRecord(Scope::Service(), RecordType::kChat, chat_json));  // identical: ok
  std::string changed = chat_json;
  changed.replace(changed.find("a chat"), 6, "b chat");
  EXPECT_CODE(e().ImportRecord(Scope::Service(), RecordType::kChat, changed), kAlreadyExists);
  EXPECT_CODE(e().ImportRecord(Scope::Admin(), RecordType::kChat, chat_json), kPermissionDenied);
  EXPECT_CODE(
      e().ImportRecord(
          Scope::Service(), RecordType::kMessage,
          R"({"id":"0190f3a2-7b1c-7def-8123-456789abcdef","chat_id":"0190f3a2-7b1c-7def-8123-456789abcde0","user_id":"0190f3a2-7b1c-7def-8123-456789abcde1","parts":"[]"})"),
      kInvalidArgument);
  EXPECT_CODE(e().ImportRecord(Scope::Service(), RecordType::kUser, "{not json"), kInvalidArgument);
  EXPECT_CODE(e().ExportRecords(Scope::ForUser(Id(u->id())), RecordType::kUser, "", 10),
              kPermissionDenied);
  EXPECT_CODE(e().ExportRecords(Scope::Service(), RecordType::kUser, "zz", 10), kInvalidArgument);
}

TEST_F(Transfer, DeferredDurabilityReportsTicketsAndCompletes) {
  engine_.reset();
  Open(storage::Durability::kAlways);
  auto u = MakeUser("d@x.com");
  auto chat = MakeChat(Id(u->id()));
  uint64_t ticket = 0;
  {
    DeferDurability defer;
    ASSERT_OK(Append(Scope::Service(), Id(chat->id()), "x"));
    ticket = defer.ticket();
  }
  EXPECT_GT(ticket, 0u);
  std::promise<Status> done;
  e().WhenDurable(ticket, [&](Status s) { done.set_value(s); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_OK(f.get());
}

}  // namespace
}  // namespace agentstore::testing

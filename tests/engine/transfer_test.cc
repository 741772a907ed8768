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

// A page of large records stops at the byte budget (never below one record) and the
// cursor goes on from there: together the pages hold every record once, in key order.
TEST_F(Transfer, ExportPagesStayWithinTheByteBudget) {
  auto u = MakeUser("big@x.com");
  auto chat = MakeChat(Id(u->id()));
  const std::string text(20000, 'm');
  for (int i = 0; i < 10; ++i) ASSERT_OK(Append(Scope::Service(), Id(chat->id()), text));
  auto all = Must(e().ExportRecords(Scope::Service(), RecordType::kMessage, "", 100));
  ASSERT_EQ(all.records.size(), 10u);
  EXPECT_TRUE(all.next_cursor.empty());
  std::vector<std::string> paged;
  std::string cursor;
  int pages = 0;
  do {
    auto page = Must(e().ExportRecords(Scope::Service(), RecordType::kMessage, cursor, 100, 50000));
    ASSERT_FALSE(page.records.empty());
    size_t bytes = 0;
    for (auto& r : page.records) bytes += r.size() + 16;  // with each record's framing
    if (page.records.size() > 1) EXPECT_LE(bytes, 50000u);
    for (auto& r : page.records) paged.push_back(r);
    cursor = page.next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 100);
  EXPECT_GE(pages, 4);  // two 20 kB messages a page at most
  EXPECT_EQ(paged, all.records);
  // A budget smaller than one record still yields that record.
  auto one = Must(e().ExportRecords(Scope::Service(), RecordType::kMessage, "", 100, 100));
  EXPECT_EQ(one.records.size(), 1u);
  EXPECT_FALSE(one.next_cursor.empty());
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

// Batched import (issue 13): many records per call, one WriteBatch, all or nothing.
class BatchImport : public Transfer {
 protected:
  std::unique_ptr<Engine> Fresh(TempDir& dir) {
    EngineOptions o;
    o.data_dir = dir.sub("data");
    o.durability = storage::Durability::kNone;
    o.shards = 4;
    auto r = Engine::Open(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  static Status ImportBatch(Engine& eng, RecordType type, const std::vector<std::string>& jsons,
                            std::vector<uint64_t> lines = {}) {
    std::vector<std::string_view> views(jsons.begin(), jsons.end());
    return eng.ImportRecords(Scope::Service(), type, views, lines);
  }
};

TEST_F(BatchImport, BatchesRestoreExactlyWithDerivedValuesAcrossTheBatch) {
  auto agent = MakeAgent("a");
  std::vector<Uuid> users;
  for (int i = 0; i < 3; ++i) {
    auto u = MakeUser("b" + std::to_string(i) + "@x.com");
    fb::UserAgentT ua;
    ua.user_id = FbId(Id(u->id()));
    ua.agent_id = FbId(Id(agent->id()));
    ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
    // Two chats with the agent (conversation_count 2), several messages each: within
    // one batch they add up as they do one by one.
    for (int c = 0; c < 2; ++c) {
      fb::ChatT chat;
      chat.user_id = FbId(Id(u->id()));
      chat.agent_id = FbId(Id(agent->id()));
      chat.title = "c";
      auto made = Must(e().CreateChat(Scope::Service(), chat));
      for (int m = 0; m < 4; ++m) ASSERT_OK(Append(Scope::Service(), Id(made->id()), "m", 3, 4, 5));
    }
  }
  std::vector<std::pair<RecordType, std::vector<std::string>>> exported = {
      {RecordType::kUser, ExportAll<fb::User>(e(), RecordType::kUser)},
      {RecordType::kAgent, ExportAll<fb::Agent>(e(), RecordType::kAgent)},
      {RecordType::kUserAgent, ExportAll<fb::UserAgent>(e(), RecordType::kUserAgent)},
      {RecordType::kChat, ExportAll<fb::Chat>(e(), RecordType::kChat)},
      {RecordType::kMessage, ExportAll<fb::Message>(e(), RecordType::kMessage)}};
  ASSERT_EQ(exported[4].second.size(), 24u);
  TempDir other;
  auto fresh = Fresh(other);
  ASSERT_TRUE(fresh);
  for (const auto& [type, records] : exported) ASSERT_OK(ImportBatch(*fresh, type, records));
  for (const auto& [type, records] : exported)  // again: identical records are no-ops
    ASSERT_OK(ImportBatch(*fresh, type, records));
  EXPECT_EQ(ExportAll<fb::UserAgent>(*fresh, RecordType::kUserAgent), exported[2].second);
  EXPECT_EQ(ExportAll<fb::Chat>(*fresh, RecordType::kChat), exported[3].second);
  EXPECT_EQ(ExportAll<fb::Message>(*fresh, RecordType::kMessage), exported[4].second);
  auto ua = Must(fresh->ListUserAgents(
      Scope::Service(), Id(Must(fresh->GetUserByEmail(Scope::Service(), "b1@x.com"))->id()), {}));
  ASSERT_EQ(ua.size(), 1u);
  EXPECT_EQ(ua[0]->conversation_count(), 2);
}

TEST_F(BatchImport, AFailedBatchAppliesNothingAndNamesTheLine) {
  auto u = MakeUser("a@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::string uid = Id(u->id()).ToString(), cid = Id(chat->id()).ToString();
  auto msg = [&](int n, const std::string& chat_id) {
    char id[64];
    snprintf(id, sizeof id, "0190f3a2-7b1c-7def-8123-%012d", n);
    return std::string(R"({"id":")") + id + R"(","chat_id":")" + chat_id + R"(","user_id":")" +
           uid + R"(","role":"user","input_tokens":10,"created_at":)" + std::to_string(1000 + n) +
           "}";
  };
  // The third record names a chat that does not exist: nothing of the batch lands.
  std::vector<std::string> batch = {msg(1, cid), msg(2, cid), msg(3, uid), msg(4, cid)};
  Status s = ImportBatch(e(), RecordType::kMessage, batch, {10, 11, 12, 13});
  EXPECT_CODE(s, kNotFound);
  EXPECT_EQ(s.message().rfind("line 12: ", 0), 0u) << s.message();
  EXPECT_EQ(Must(e().GetChat(Scope::Service(), Id(chat->id())))->message_count(), 0);
  EXPECT_CODE(
      e().GetMessage(Scope::Service(), *Uuid::Parse("0190f3a2-7b1c-7def-8123-000000000001")),
      kNotFound);
  // Without line numbers the error counts records from 1.
  s = ImportBatch(e(), RecordType::kMessage, {msg(1, cid), "{not json"});
  EXPECT_CODE(s, kInvalidArgument);
  EXPECT_EQ(s.message().rfind("record 2: ", 0), 0u) << s.message();
  // One id twice with different content, or two users with one email, in one batch.
  std::string other = msg(1, cid);
  other.replace(other.find("\"input_tokens\":10"), 17, "\"input_tokens\":11");
  EXPECT_CODE(ImportBatch(e(), RecordType::kMessage, {msg(1, cid), other}), kAlreadyExists);
  EXPECT_CODE(ImportBatch(e(), RecordType::kUser,
                          {R"({"id":"0190f3a2-7b1c-7def-8123-00000000aa01","email":"dup@x.com"})",
                           R"({"id":"0190f3a2-7b1c-7def-8123-00000000aa02","email":"DUP@x.com"})"}),
              kAlreadyExists);
  EXPECT_CODE(e().GetUserByEmail(Scope::Service(), "dup@x.com"), kNotFound);
  EXPECT_EQ(Must(e().GetChat(Scope::Service(), Id(chat->id())))->message_count(), 0);
  // The good batch: the chat's totals add up every message of it.
  ASSERT_OK(ImportBatch(e(), RecordType::kMessage, {msg(1, cid), msg(2, cid), msg(4, cid)}));
  auto after = Must(e().GetChat(Scope::Service(), Id(chat->id())));
  EXPECT_EQ(after->message_count(), 3);
  EXPECT_EQ(after->total_input_tokens(), 30);
  // Who may, and what is not batched.
  std::vector<std::string_view> one = {batch[0]};
  EXPECT_CODE(e().ImportRecords(Scope::Admin(), RecordType::kMessage, one), kPermissionDenied);
  EXPECT_CODE(e().ImportRecords(Scope::Service(*Uuid::Parse(uid)), RecordType::kMessage, one),
              kPermissionDenied);
  EXPECT_CODE(ImportBatch(e(), RecordType::kQuota, {"{}", "{}"}), kNotImplemented);
  EXPECT_CODE(ImportBatch(e(), RecordType::kMessage, {}), kInvalidArgument);
  std::vector<uint64_t> short_lines = {1};
  EXPECT_CODE(ImportBatch(e(), RecordType::kMessage, {msg(5, cid), msg(6, cid)}, short_lines),
              kInvalidArgument);
}

// Usage logs and memories go through the batch too (issue 13): atomic per batch, with the
// checks of one by one, a log adding itself to its chat's totals.
TEST_F(BatchImport, UsageLogsAndMemoriesImportInAtomicBatches) {
  auto u = MakeUser("logs@x.com");
  auto chat = MakeChat(Id(u->id()));
  std::string uid = Id(u->id()).ToString(), cid = Id(chat->id()).ToString();
  auto id = [](int n) {
    char text[40];
    snprintf(text, sizeof text, "0190f3a2-7b1c-7def-8123-%012d", n);
    return std::string(text);
  };
  auto log = [&](int n, const std::string& user) {
    return R"({"id":")" + id(n) + R"(","user_id":")" + user + R"(","chat_id":")" + cid +
           R"(","agent_type":"chat","model":"m","input_tokens":10,"output_tokens":20,)" +
           R"("total_tokens":30,"input_cost":1,"output_cost":2,"total_cost":3,"request_ts":)" +
           std::to_string(1763596800000000 + n) + "}";
  };
  auto logs_in_store = [&] { return ExportAll<fb::UsageLog>(e(), RecordType::kUsageLog).size(); };
  // A log naming a user that does not exist refuses the whole batch.
  Status s = ImportBatch(e(), RecordType::kUsageLog, {log(1, uid), log(2, cid)}, {5, 6});
  EXPECT_CODE(s, kNotFound);
  EXPECT_EQ(s.message().rfind("line 6: ", 0), 0u) << s.message();
  EXPECT_EQ(logs_in_store(), 0u);
  EXPECT_EQ(Must(e().GetChat(Scope::Service(), Id(chat->id())))->total_cost(), 0);
  // Three logs in one batch: each adds itself to the chat's totals; again: no-ops.
  std::vector<std::string> logs = {log(1, uid), log(2, uid), log(3, uid)};
  ASSERT_OK(ImportBatch(e(), RecordType::kUsageLog, logs));
  ASSERT_OK(ImportBatch(e(), RecordType::kUsageLog, logs));
  EXPECT_EQ(logs_in_store(), 3u);
  auto after = Must(e().GetChat(Scope::Service(), Id(chat->id())));
  EXPECT_EQ(after->total_input_tokens(), 30);
  EXPECT_EQ(after->total_output_tokens(), 60);
  EXPECT_EQ(after->total_cost(), 9);
  EXPECT_EQ(after->message_count(), 0);
  std::string changed = log(3, uid);
  changed.replace(changed.find("\"total_cost\":3"), 14, "\"total_cost\":4");
  EXPECT_CODE(ImportBatch(e(), RecordType::kUsageLog, {log(4, uid), changed}), kAlreadyExists);
  EXPECT_EQ(logs_in_store(), 3u);

  auto mem = [&](int n, const std::string& key, int dim = 384) {
    std::string v = "[";
    for (int i = 0; i < dim; ++i) v += (i ? "," : "") + std::string(i == n % dim ? "1" : "0");
    return R"({"id":")" + id(100 + n) + R"(","user_id":")" + uid + R"(","memory_key":")" + key +
           R"(","memory_value":{"content":"note )" + std::to_string(n) + R"("},"embedding":)" + v +
           "],\"created_at\":" + std::to_string(1000 + n) + "}";
  };
  auto memories = [&] { return ExportAll<fb::UserMemory>(e(), RecordType::kUserMemory).size(); };
  // A vector of the wrong dimension, or one memory_key twice: nothing of the batch lands.
  s = ImportBatch(e(), RecordType::kUserMemory, {mem(1, "a"), mem(2, "b", 3)});
  EXPECT_CODE(s, kInvalidArgument);
  EXPECT_EQ(s.message().rfind("record 2: ", 0), 0u) << s.message();
  EXPECT_CODE(ImportBatch(e(), RecordType::kUserMemory, {mem(1, "a"), mem(2, "a")}),
              kAlreadyExists);
  EXPECT_EQ(memories(), 0u);
  std::vector<std::string> mems = {mem(1, "a"), mem(2, "b"), mem(3, "c")};
  ASSERT_OK(ImportBatch(e(), RecordType::kUserMemory, mems));
  ASSERT_OK(ImportBatch(e(), RecordType::kUserMemory, mems));  // identical: no-op
  EXPECT_EQ(memories(), 3u);
  // A new id under a key the user has already is refused, as one by one.
  EXPECT_CODE(ImportBatch(e(), RecordType::kUserMemory, {mem(4, "d"), mem(5, "b")}),
              kAlreadyExists);
  EXPECT_EQ(memories(), 3u);
  MemoryQuery q;
  q.user = Id(u->id());
  q.vector.assign(384, 0.f);
  q.vector[2] = 1.f;
  auto hits = Must(e().SearchMemories(Scope::Service(), q));
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].memory->memory_key()->str(), "b");
}

}  // namespace
}  // namespace agentstore::testing

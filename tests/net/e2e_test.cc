// End to end: a real agentstored process, the client library over loopback, every
// operation, and every access rule as the server enforces it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class EndToEnd : public ServerTest {
 protected:
  Row<fb::User> NewUser(const std::string& email) {
    fb::UserT u;
    u.email = email;
    return Must(svc().CreateUser(u).get());
  }
};

TEST_F(EndToEnd, EveryOperationThroughTheClient) {
  EXPECT_EQ(svc().role(), "service");
  EXPECT_EQ(admin().role(), "admin");
  fb::TenantT t;
  t.name = "Acme";
  t.slug = "acme";
  auto tenant = Must(admin().CreateTenant(t).get());
  EXPECT_EQ(Must(admin().GetTenantBySlug("acme").get()).bytes(), tenant.bytes());
  ASSERT_OK(admin().UpdateTenant(Id(tenant->id()), R"({"plan":"pro"})").get());
  EXPECT_EQ(Str(Must(admin().GetTenant(Id(tenant->id())).get())->plan()), "pro");
  EXPECT_EQ(Must(admin().ListTenants().get()).rows.size(), 1u);

  fb::UserT u;
  u.email = "Ada@Example.com";
  u.tenant_id = FbId(Id(tenant->id()));
  auto ada = Must(svc().CreateUser(u).get());
  Uuid ada_id = Id(ada->id());
  EXPECT_EQ(Must(svc().GetUserByEmail("ada@example.com").get()).bytes(), ada.bytes());
  auto updated =
      Must(svc().UpdateUser(ada_id, R"({"full_name":"Ada","preferences":{"theme":"dark"}})").get());
  EXPECT_EQ(Str(updated->full_name()), "Ada");
  EXPECT_EQ(Must(svc().ListUsers().get()).rows.size(), 1u);

  fb::AgentT a;
  a.name = "Writer";
  a.is_public = true;
  auto agent = Must(admin().CreateAgent(a).get());
  ASSERT_OK(admin().UpdateAgent(Id(agent->id()), R"({"model":"gpt-4o"})").get());
  EXPECT_EQ(Must(svc().ListAgents().get()).rows.size(), 1u);

  fb::UserAgentT ua;
  ua.user_id = FbId(ada_id);
  ua.agent_id = FbId(Id(agent->id()));
  auto copy = Must(svc().CreateUserAgent(ua).get());
  ASSERT_OK(svc().UpdateUserAgent(Id(copy->id()), R"({"is_pinned":true,"tags":["x"]})").get());
  EXPECT_TRUE(Must(svc().GetUserAgentFor(ada_id, Id(agent->id())).get())->is_pinned());
  EXPECT_EQ(Must(svc().GetUserAgent(Id(copy->id())).get())->tags()->size(), 1u);
  UserAgentFilter tagged;
  tagged.tag = "x";
  EXPECT_EQ(Must(svc().ListUserAgents(ada_id, tagged).get()).size(), 1u);

  fb::ChatT c;
  c.user_id = FbId(ada_id);
  c.title = "hello";
  auto chat = Must(svc().CreateChat(c).get());
  Uuid chat_id = Id(chat->id());
  std::vector<Uuid> msgs;
  for (int i = 0; i < 25; ++i) {
    fb::MessageT m;
    m.chat_id = FbId(chat_id);
    m.parts = R"([{"type":"text","text":"hi"}])";
    m.input_tokens = 10;
    m.cost = 3;
    auto r = Must(svc().AppendMessage(m).get());
    EXPECT_EQ(r.chat->message_count(), i + 1);
    msgs.push_back(Id(r.message->id()));
  }
  auto last = Must(svc().ListMessages(chat_id).get());
  ASSERT_EQ(last.rows.size(), 20u);
  EXPECT_EQ(Id(last.rows.back()->id()), msgs.back());
  MessagePageRequest before;
  before.cursor = last.next_cursor;
  EXPECT_EQ(Must(svc().ListMessages(chat_id, before).get()).rows.size(), 5u);
  EXPECT_EQ(Id(Must(svc().GetMessage(msgs[3]).get())->id()), msgs[3]);
  ASSERT_OK(svc().Vote(chat_id, msgs[0], true).get());
  EXPECT_EQ(Must(svc().ListVotes(chat_id).get()).size(), 1u);
  ASSERT_OK(svc().UpdateChat(chat_id, R"({"title":"renamed"})").get());
  EXPECT_EQ(Must(svc().ListChats(ada_id).get()).rows.size(), 1u);
  EXPECT_EQ(Must(svc().GetChat(chat_id).get())->total_input_tokens(), 250);

  ASSERT_OK(admin().PutAdminConfig("site", R"({"banner":"hi"})").get());
  EXPECT_EQ(Must(admin().ListAdminConfig().get()).size(), 1u);
  EXPECT_OK(admin().GetAdminConfig("site").get());
  ASSERT_OK(admin().DeleteAdminConfig("site").get());
  EXPECT_CODE(admin().GetAdminConfig("site").get(), kNotFound);

  auto status = Must(admin().GetStatus().get());
  EXPECT_EQ(status.durability, "always");
  EXPECT_GT(status.operations_served, 40u);
  EXPECT_GE(status.connections, 2u);
  bool saw_append = false;
  for (const auto& op : status.ops) saw_append |= op.name == "message_append" && op.calls == 25;
  EXPECT_TRUE(saw_append);

  ASSERT_OK(svc().DeleteChat(chat_id, DeleteMode::kHard).get());
  EXPECT_CODE(svc().GetMessage(msgs[3]).get(), kNotFound);
  ASSERT_OK(svc().DeleteUserAgent(Id(copy->id())).get());
  ASSERT_OK(admin().DeleteAgent(Id(agent->id())).get());
  ASSERT_OK(svc().DeleteUser(ada_id, DeleteMode::kHard).get());
  EXPECT_CODE(svc().GetUser(ada_id).get(), kNotFound);
  ASSERT_OK(admin().DeleteTenant(Id(tenant->id()), DeleteMode::kHard).get());
}

TEST_F(EndToEnd, UserKeysSeeOnlyTheirOwnRecords) {
  auto ada = NewUser("ada@x.com");
  auto bob = NewUser("bob@x.com");
  fb::ChatT c;
  c.user_id = FbId(Id(bob->id()));
  auto bobs_chat = Must(svc().CreateChat(c).get());
  Client as_ada = UserClient(Id(ada->id()));
  EXPECT_EQ(as_ada.role(), "user");
  EXPECT_OK(as_ada.GetUser(Id(ada->id())).get());
  // Another user's records look missing, exactly like missing ones.
  auto theirs = as_ada.GetChat(Id(bobs_chat->id())).get();
  auto missing = as_ada.GetChat(MakeUuidV7(1, 2, 3)).get();
  EXPECT_CODE(theirs, kNotFound);
  EXPECT_EQ(theirs.status().message(), missing.status().message());
  EXPECT_CODE(as_ada.GetUser(Id(bob->id())).get(), kNotFound);
  EXPECT_TRUE(Must(as_ada.ListChats(Id(bob->id())).get()).rows.empty());
  fb::MessageT m;
  m.chat_id = FbId(Id(bobs_chat->id()));
  m.parts = "[]";
  EXPECT_CODE(as_ada.AppendMessage(m).get(), kNotFound);
  EXPECT_CODE(as_ada.UpdateUser(Id(bob->id()), R"({"full_name":"x"})").get(), kNotFound);
  // Operations the role may not call at all.
  EXPECT_CODE(as_ada.ListUsers().get(), kPermissionDenied);
  EXPECT_CODE(as_ada.GetStatus().get(), kPermissionDenied);
  EXPECT_CODE(as_ada.PutAdminConfig("k", "{}").get(), kPermissionDenied);
  EXPECT_CODE(as_ada.ExportRecords(RecordType::kUser).get(), kPermissionDenied);
  EXPECT_CODE(as_ada.UpdateUser(Id(ada->id()), R"({"role":"admin"})").get(), kPermissionDenied);
  // Admin writes no user records; act_as is for service keys only.
  EXPECT_CODE(admin().UpdateUser(Id(ada->id()), R"({"full_name":"x"})").get(), kPermissionDenied);
  EXPECT_CODE(admin().ActingAs(Id(ada->id())).GetUser(Id(ada->id())).get(), kPermissionDenied);
  // A service key acting as ada gets ada's rules.
  Client svc_as_ada = svc().ActingAs(Id(ada->id()));
  EXPECT_OK(svc_as_ada.GetUser(Id(ada->id())).get());
  EXPECT_CODE(svc_as_ada.GetChat(Id(bobs_chat->id())).get(), kNotFound);
  // Nothing changed.
  EXPECT_EQ(Must(svc().GetChat(Id(bobs_chat->id())).get()).bytes(), bobs_chat.bytes());
}

TEST_F(EndToEnd, PipelinedCallsFromOneThread) {
  auto u = NewUser("p@x.com");
  std::vector<Pending<Row<fb::User>>> calls;
  for (int i = 0; i < 500; ++i) calls.push_back(svc().GetUser(Id(u->id())));
  for (auto& c : calls) ASSERT_OK(c.get());
  // then(): callbacks from the reader thread.
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i)
    svc().GetUser(Id(u->id())).then([&](Result<Row<fb::User>> r) { done += r.ok(); });
  for (int i = 0; i < 500 && done < 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(done.load(), 200);
}

TEST_F(EndToEnd, RestartKeepsEverythingAndClientsReconnect) {
  auto u = NewUser("r@x.com");
  fb::ChatT c;
  c.user_id = FbId(Id(u->id()));
  auto chat = Must(svc().CreateChat(c).get());
  EXPECT_EQ(server_.Stop(), 0) << "SIGTERM stops cleanly";
  ASSERT_TRUE(server_.Start(dir_.sub("data")));
  // The old client's connection is gone; a fresh one on the new port sees the data.
  Client again = server_.Connect(server_.Key("service"));
  EXPECT_EQ(Must(again.GetChat(Id(chat->id())).get()).bytes(), chat.bytes());
  EXPECT_EQ(Must(again.GetUser(Id(u->id())).get()).bytes(), u.bytes());
}

TEST_F(EndToEnd, BadKeyIsRefusedAtConnect) {
  auto bad = Client::Connect(server_.Options("ask_nope"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace agentstore::testing

namespace agentstore::testing {
namespace {

// docs/protocol.md's operation table is generated from the operation table; a changed
// operation without a regenerated document fails here.
// Issue 12: the server's data directory is 0700 and every file it writes 0600 (its umask
// is 077), so no other local user can read a record.
TEST_F(EndToEnd, DataDirectoryAndFilesAreOwnerOnly) {
  NewUser("p@x.example");
  ASSERT_OK(admin().CreateBackup(dir_.sub("backup")).get());
  struct stat st;
  ASSERT_EQ(::stat(server_.data_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  int files = 0;
  for (const auto& dir : {server_.data_dir(), dir_.sub("backup")})
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
      ASSERT_EQ(::stat(f.path().c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 077, 0u) << f.path() << " is open to group or others";
      ++files;
    }
  EXPECT_GT(files, 3);
}

TEST(ProtocolDoc, OperationTableMatchesTheCode) {
  std::ifstream f(std::string(AGENTSTORE_SOURCE_DIR) + "/docs/protocol.md");
  std::string doc((std::istreambuf_iterator<char>(f)), {});
  ASSERT_FALSE(doc.empty());
  FILE* p = popen((std::string(GEN_OPS_PATH) + " --markdown").c_str(), "r");
  std::string table;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) table.append(buf, n);
  pclose(p);
  ASSERT_GT(table.size(), 1000u);
  EXPECT_NE(doc.find(table), std::string::npos)
      << "regenerate the table in docs/protocol.md with: build/net/gen_ops_fbs --markdown";
}

}  // namespace
}  // namespace agentstore::testing

// agentctl against a real server: export -> import into another server round-trips
// every record; backup -> restore into a new directory serves the same records; errors
// exit non-zero with the message.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void Populate(Client& svc, Client& admin) {
  fb::TenantT t;
  t.name = "T";
  t.slug = "t";
  auto tenant = Must(admin.CreateTenant(t).get());
  fb::AgentT a;
  a.name = "A";
  a.is_public = true;
  auto agent = Must(admin.CreateAgent(a).get());
  for (int i = 0; i < 5; ++i) {
    fb::UserT u;
    u.email = "u" + std::to_string(i) + "@x.com";
    u.tenant_id = FbId(Id(tenant->id()));
    auto user = Must(svc.CreateUser(u).get());
    fb::UserAgentT ua;
    ua.user_id = FbId(Id(user->id()));
    ua.agent_id = FbId(Id(agent->id()));
    Must(svc.CreateUserAgent(ua).get());
    fb::ChatT c;
    c.user_id = FbId(Id(user->id()));
    auto chat = Must(svc.CreateChat(c).get());
    for (int m = 0; m < 4; ++m) {
      fb::MessageT msg;
      msg.chat_id = FbId(Id(chat->id()));
      msg.parts = R"([{"type":"text","text":"line \"quoted\" \u00e9"}])";
      msg.output_tokens = m;
      auto r = Must(svc.AppendMessage(msg).get());
      if (m == 2) Must(svc.Vote(Id(chat->id()), Id(r.message->id()), true).get());
    }
  }
  Must(admin.PutAdminConfig("flags", R"({"beta":true})").get());
}

TEST(Agentctl, ExportImportRoundTrip) {
  TempDir dir;
  ServerProcess a, b;
  ASSERT_TRUE(a.Start(dir.sub("a")));
  ASSERT_TRUE(b.Start(dir.sub("b")));
  Client svc = a.Connect(a.Key("service")), admin = a.Connect(a.Key("admin"));
  Populate(svc, admin);
  // A collection with an index and a TTL field: its declaration and records come along.
  Must(svc.DeclareCollection(R"({"name":"notes","owner":"none","ttl_field":"expires_at",
      "fields":[{"name":"text","type":"string","required":true},
                {"name":"price","type":"decimal","scale":2},
                {"name":"expires_at","type":"timestamp"}],
      "indexes":[{"name":"by_text","fields":["text"],"unique":true}]})")
           .get());
  Must(
      svc.PutRecord("notes", R"({"text":"a","price":"1.25","expires_at":4102444800000000})").get());
  Must(svc.PutRecord("notes", R"({"text":"b"})").get());
  CtlRun ex = Agentctl(a, a.Key("service"), "export --out " + dir.sub("dump.jsonl"));
  ASSERT_EQ(ex.code, 0) << ex.out;
  std::string dump = ReadFile(dir.sub("dump.jsonl"));
  // 1 tenant, 5 users, 1 agent, 5 user_agents, 5 chats, 20 messages, 5 votes, 1 config, 2 keys,
  // 1 collection declaration and its 2 records
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 48);
  EXPECT_NE(dump.find(R"({"type":"collection_records","collection":"notes","record":)"),
            std::string::npos);

  // b already has its own two initial keys; everything else comes from a.
  CtlRun im = Agentctl(b, b.Key("service"), "import " + dir.sub("dump.jsonl"));
  ASSERT_EQ(im.code, 0) << im.out;
  CtlRun again = Agentctl(b, b.Key("service"), "import " + dir.sub("dump.jsonl"));
  EXPECT_EQ(again.code, 0) << "import is idempotent: " << again.out;
  CtlRun ex2 = Agentctl(b, b.Key("service"), "export --out " + dir.sub("dump2.jsonl"));
  ASSERT_EQ(ex2.code, 0) << ex2.out;
  // Same records, except b's own two initial keys.
  std::string dump2 = ReadFile(dir.sub("dump2.jsonl"));
  EXPECT_EQ(std::count(dump2.begin(), dump2.end(), '\n'), 50);
  std::istringstream lines(dump);
  std::string line;
  while (std::getline(lines, line)) EXPECT_NE(dump2.find(line), std::string::npos) << line;
  // a's keys work on b after the import (their hashes came along).
  Client on_b = b.Connect(a.Key("service"));
  EXPECT_EQ(Must(on_b.ListUsers().get()).rows.size(), 5u);
}

TEST(Agentctl, ImportReportsBadLinesWithNumbers) {
  TempDir dir;
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir.sub("s")));
  std::ofstream(dir.sub("bad.jsonl"))
      << R"({"type":"users","record":{"id":"0190f3a2-7b1c-7def-8123-456789abcdef","email":"ok@x.com"}})"
         "\n"
      << "not json\n"
      << R"({"type":"nope","record":{}})"
         "\n"
      << R"({"type":"users","record":{"id":"0190f3a2-7b1c-7def-8123-456789abcde0","email":"bad"}})"
         "\n";
  // Batched (the default): lines 1 and 4 form one batch, which fails at line 4 and
  // lands nothing.
  CtlRun im = Agentctl(s, s.Key("service"), "import " + dir.sub("bad.jsonl"));
  EXPECT_EQ(im.code, 1);
  EXPECT_NE(im.out.find("line 2: skipped"), std::string::npos) << im.out;
  EXPECT_NE(im.out.find("line 3: skipped"), std::string::npos) << im.out;
  EXPECT_NE(im.out.find("invalid_argument: line 4: "), std::string::npos) << im.out;
  EXPECT_NE(im.out.find("(lines 1-4, 2 records, not imported)"), std::string::npos) << im.out;
  EXPECT_NE(im.out.find("imported 0 records, skipped 4"), std::string::npos) << im.out;
  Client svc = s.Connect(s.Key("service"));
  EXPECT_EQ(svc.GetUserByEmail("ok@x.com").get().status().code(), StatusCode::kNotFound);
  // One record per request: the good line lands, each bad one is named.
  im = Agentctl(s, s.Key("service"), "import --batch 1 " + dir.sub("bad.jsonl"));
  EXPECT_EQ(im.code, 1);
  EXPECT_NE(im.out.find("line 4: skipped: invalid_argument"), std::string::npos) << im.out;
  EXPECT_NE(im.out.find("imported 1 records, skipped 3"), std::string::npos) << im.out;
  EXPECT_TRUE(svc.GetUserByEmail("ok@x.com").get().ok());
}

TEST(Agentctl, BackupRestoreServesTheSameRecords) {
  TempDir dir;
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir.sub("live")));
  Client svc = s.Connect(s.Key("service")), admin = s.Connect(s.Key("admin"));
  Populate(svc, admin);
  CtlRun b = Agentctl(s, s.Key("admin"), "backup create --dir " + dir.sub("backup"));
  ASSERT_EQ(b.code, 0) << b.out;
  // Written after the backup: must not be in the restored copy.
  fb::UserT late;
  late.email = "late@x.com";
  Must(svc.CreateUser(late).get());
  CtlRun r =
      Agentctl(s, s.Key("admin"),
               "backup restore --from " + dir.sub("backup") + " --data-dir " + dir.sub("restored"));
  ASSERT_EQ(r.code, 0) << r.out;
  CtlRun refuse =
      Agentctl(s, s.Key("admin"),
               "backup restore --from " + dir.sub("backup") + " --data-dir " + dir.sub("restored"));
  EXPECT_NE(refuse.code, 0) << "restore only into an empty directory";

  ServerProcess restored;
  ASSERT_TRUE(restored.Start(dir.sub("restored")));
  Client rc = restored.Connect(s.Key("service"));
  PageRequest all;
  all.limit = 100;
  auto live_users = Must(svc.ListUsers(all).get()).rows;
  auto restored_users = Must(rc.ListUsers(all).get()).rows;
  ASSERT_EQ(restored_users.size(), live_users.size() - 1);
  for (const auto& u : restored_users) {
    EXPECT_EQ(Must(svc.GetUser(Id(u->id())).get()).bytes(), u.bytes());
    auto chats = Must(rc.ListChats(Id(u->id())).get()).rows;
    ASSERT_EQ(chats.size(), 1u);
    EXPECT_EQ(Must(rc.ListMessages(Id(chats[0]->id())).get()).rows.size(), 4u);
  }
  EXPECT_CODE(rc.GetUserByEmail("late@x.com").get(), kNotFound);
}

TEST(Agentctl, ErrorsExitNonZeroWithTheMessage) {
  TempDir dir;
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir.sub("s")));
  CtlRun r = Agentctl(s, s.Key("service"), "users get 0190f3a2-7b1c-7def-8123-456789abcdef");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not_found: user not found"), std::string::npos) << r.out;
  CtlRun bad = Agentctl(s, "ask_bogus", "status");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("permission_denied"), std::string::npos) << bad.out;
  CtlRun ok = Agentctl(s, s.Key("service"), "users create --email z@x.com --name Zed --json");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("\"email\": \"z@x.com\""), std::string::npos) << ok.out;
  CtlRun st = Agentctl(s, s.Key("admin"), "status");
  EXPECT_EQ(st.code, 0);
  EXPECT_NE(st.out.find("durability always"), std::string::npos) << st.out;
}

}  // namespace
}  // namespace agentstore::testing

// Collections over the wire: a real agentstored, the C++ client's collection calls, a
// user key confined to its own records, and a restart that keeps everything.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;

std::string Example(const std::string& name) {
  std::ifstream in(std::string(AGENTSTORE_SOURCE_DIR) + "/examples/collections/" + name + ".json");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CollectionsE2E : public ServerTest {};

TEST_F(CollectionsE2E, JournalThroughTheClient) {
  ASSERT_OK(svc().DeclareCollection(Example("journal_entries")).get());
  EXPECT_CODE(UserClient(NewUserId("x@x.com")).DeclareCollection(Example("goals")).get(),
              kPermissionDenied);
  Uuid ada = NewUserId("ada@x.com"), bob = NewUserId("bob@x.com");
  Client ada_c = UserClient(ada), bob_c = UserClient(bob);
  std::vector<Pending<std::string>> puts;
  for (int d = 1; d <= 5; ++d)
    puts.push_back(
        ada_c.PutRecord("journal_entries",
                        Json{{"content", "day " + std::to_string(d)}, {"entry_date", d}}.dump()));
  std::string first;
  for (auto& p : puts) {
    auto r = p.get();
    ASSERT_OK(r);
    if (first.empty()) first = Json::parse(*r)["id"];
  }
  CollectionQuery q;
  q.collection = "journal_entries";
  q.index = "by_user_date";
  q.desc = true;
  q.limit = 2;
  auto page = Must(ada_c.QueryRecords(q).get());
  ASSERT_EQ(page.records.size(), 2u);
  EXPECT_EQ(Json::parse(page.records[0])["content"], "day 5");
  EXPECT_FALSE(page.next_cursor.empty());
  q.cursor = page.next_cursor;
  EXPECT_EQ(Json::parse(Must(ada_c.QueryRecords(q).get()).records[0])["content"], "day 3");
  q.cursor.clear();
  EXPECT_EQ(Must(ada_c.CountRecords(q).get()), 5u);
  EXPECT_EQ(Must(bob_c.CountRecords(q).get()), 0u);
  EXPECT_CODE(bob_c.GetRecord("journal_entries", first).get(), kNotFound);
  auto patched = ada_c.UpdateRecord("journal_entries", first, R"({"mood":"great"})").get();
  ASSERT_OK(patched);
  EXPECT_EQ(Json::parse(*patched)["mood"], "great");
  EXPECT_CODE(ada_c.UpdateRecord("journal_entries", first, R"({"mood":"ecstatic"})").get(),
              kInvalidArgument);
  EXPECT_CODE(
      ada_c.PutRecord("journal_entries", R"({"content":"x","entry_date":1,"bogus":1})").get(),
      kInvalidArgument);
  ASSERT_OK(ada_c.DeleteRecord("journal_entries", first, DeleteMode::kSoft).get());
  EXPECT_CODE(ada_c.GetRecord("journal_entries", first).get(), kNotFound);
  EXPECT_EQ(Must(svc().ListCollections().get()).size(), 1u);
  EXPECT_EQ(Must(svc().SweepExpiredRecords().get()), 0u);
  // Restart: the declaration, the records and the index come back.
  server_.Kill();
  ASSERT_TRUE(server_.Start(dir_.sub("data")));
  Client again = server_.Connect(server_.Key("service"));
  auto d = Json::parse(Must(again.DescribeCollection("journal_entries").get()));
  EXPECT_EQ(d["indexes"].size(), 2u);
  q.include_deleted = true;
  EXPECT_EQ(Must(again.CountRecords(q).get()), 5u);
  q.include_deleted = false;
  EXPECT_EQ(Must(again.CountRecords(q).get()), 4u);
}

}  // namespace
}  // namespace agentstore::testing

// Collections over the wire: a real agentstored, the C++ client's collection calls, a
// user key confined to its own records, and a restart that keeps everything.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
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

// A query's (and a collection export's) answer is held to --max-response-bytes like every listing:
// 40 documents of 1 MB asked for with limit 1000 came back as one ~40 MB frame (built whole on the
// server, refused by the client as too large, with no cursor to page by). Now each page
// is cut short with a cursor, and paging yields every record once.
TEST_F(CollectionsE2E, QueryAnswersStayWithinTheResponseBudget) {
  server_.Kill();
  ASSERT_TRUE(server_.Start(dir_.sub("data"), {"--max-response-bytes", "3000000"}));
  Client c = server_.Connect(server_.Key("service"));
  ASSERT_OK(c.DeclareCollection(Example("documents")).get());
  ASSERT_OK(c.DeclareCollection(R"({"name": "notes", "owner": "none",
      "fields": [{"name": "text", "type": "string", "max_length": 1000000}]})")
                .get());
  fb::UserT u;
  u.email = "big@x.com";
  Uuid ada = ToUuid(Must(c.CreateUser(u).get())->id());
  std::set<std::string> ids;
  for (int i = 0; i < 12; ++i)
    ids.insert(
        Json::parse(Must(c.PutRecord("documents", Json{{"user_id", ada.ToString()},
                                                       {"title", "d" + std::to_string(i)},
                                                       {"content", std::string(1'000'000, 'x')}}
                                                      .dump())
                             .get()))["id"]);
  // Control characters are 1 byte stored and 6 in the answer's JSON text (\u0001).
  for (int i = 0; i < 3; ++i)
    ASSERT_OK(c.PutRecord("notes", Json{{"text", std::string(600'000, '\x01')}}.dump()).get());
  for (bool desc : {false, true}) {
    CollectionQuery q;
    q.collection = "documents";
    q.index = "by_user_created";
    q.desc = desc;
    q.limit = 1000;
    std::set<std::string> seen;
    int pages = 0;
    while (true) {
      auto page = c.QueryRecords(q).get();
      ASSERT_OK(page);
      ASSERT_LE(page->records.size(), 3u);  // at most 3 MB of records per answer
      ASSERT_GE(page->records.size(), 1u);
      for (const auto& r : page->records) EXPECT_TRUE(seen.insert(Json::parse(r)["id"]).second);
      ++pages;
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    EXPECT_EQ(seen, ids);
    EXPECT_GE(pages, 4);
  }
  // agentctl export pages collections with limit 1000: each page within the budget too.
  for (const char* coll : {"documents", "notes"}) {
    std::string cursor;
    size_t n = 0;
    do {
      auto chunk = c.ExportCollectionRecords(coll, cursor, 1000).get();
      ASSERT_OK(chunk);
      ASSERT_GE(chunk->records.size(), 1u) << coll;
      ASSERT_LE(chunk->records.size(), 3u) << coll;
      if (std::string(coll) == "notes") {
        ASSERT_EQ(chunk->records.size(), 1u);
      }
      n += chunk->records.size();
      cursor = chunk->next_cursor;
    } while (!cursor.empty());
    EXPECT_EQ(n, std::string(coll) == "notes" ? 3u : 12u) << coll;
  }
  CollectionQuery notes;
  notes.collection = "notes";
  notes.limit = 1000;
  size_t n = 0;
  while (true) {
    auto page = c.QueryRecords(notes).get();
    ASSERT_OK(page);
    ASSERT_EQ(page->records.size(), 1u);  // 3.6 MB of text each (0.6 MB stored): one per answer
    ++n;
    if (page->next_cursor.empty()) break;
    notes.cursor = page->next_cursor;
  }
  EXPECT_EQ(n, 3u);
}

}  // namespace
}  // namespace agentstore::testing

// Collections under adversarial use (issue 16, tested from outside the implementation):
// concurrent puts racing for one unique value, cursor paging while others insert, an
// index added while writers run, and values at the edges of the data model's ranges.
#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "test_util.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;

class CollectionsAdversarial : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
      "name": "tickets", "owner": "user",
      "fields": [{"name": "code", "type": "string", "max_length": 64},
                 {"name": "rank", "type": "integer"},
                 {"name": "at", "type": "timestamp"}],
      "indexes": [{"name": "by_code", "fields": ["code"], "unique": true},
                  {"name": "by_rank", "fields": ["rank"]}]})"));
    ada_ = Id(MakeUser("ada@example.com")->id());
  }
  Json Rec(const Json& fields) {
    Json r = fields;
    r["user_id"] = ada_.ToString();
    return r;
  }
  Uuid ada_;
};

// Eight threads put different records holding the same unique value at once: exactly
// one wins, every other is already_exists, and the index holds one record.
TEST_F(CollectionsAdversarial, ConcurrentPutsRaceForOneUniqueValue) {
  for (int round = 0; round < 20; ++round) {
    std::string code = "race-" + std::to_string(round);
    std::atomic<int> ok{0}, exists{0}, other{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
      ts.emplace_back([&] {
        auto r = e().PutRecord(Scope::Service(), "tickets", Rec({{"code", code}}).dump());
        if (r.ok())
          ++ok;
        else if (r.status().code() == StatusCode::kAlreadyExists)
          ++exists;
        else
          ++other;
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(ok.load(), 1) << code;
    EXPECT_EQ(exists.load(), 7) << code;
    EXPECT_EQ(other.load(), 0) << code;
    CollectionQuery q;
    q.collection = "tickets";
    q.index = "by_code";
    q.where = Json{{"code", code}}.dump();
    EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 1u) << code;
  }
}

// Paging by a secondary index while writers insert records on both sides of the cursor:
// every record present before paging began is seen exactly once, none repeats.
TEST_F(CollectionsAdversarial, CursorPagingNeitherSkipsNorRepeatsUnderConcurrentInserts) {
  std::set<std::string> before;
  for (int i = 0; i < 600; ++i)
    before.insert(Json::parse(Must(e().PutRecord(Scope::Service(), "tickets",
                                                 Rec({{"rank", (i * 7919) % 1000}}).dump())))["id"]
                      .get<std::string>());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w)
    writers.emplace_back([&, w] {
      // Bounded: under a sanitizer build unbounded writers outran the paging, which then
      // never reached the end of the index within its page cap.
      for (int i = 0; !stop.load() && i < 1500; ++i)
        (void)e().PutRecord(Scope::Service(), "tickets",
                            Rec({{"rank", (i * 31 + w * 17) % 1000}}).dump());
    });
  // max_bytes 500: pages cut short by their size (two or three records) as well as by limit.
  for (size_t max_bytes : {size_t{0}, size_t{500}})
    for (const char* index : {"", "by_rank"}) {
      for (bool desc : {false, true}) {
        CollectionQuery q;
        q.collection = "tickets";
        q.index = index;
        q.desc = desc;
        q.limit = 7;
        std::set<std::string> seen;
        for (int pages = 0; pages < 100000; ++pages) {
          auto page = Must(e().QueryRecords(Scope::Service(), q, max_bytes));
          if (max_bytes) {
            EXPECT_LT(page.records.size(), 7u);
          }
          for (const auto& r : page.records) {
            std::string id = Json::parse(r)["id"].get<std::string>();
            EXPECT_TRUE(seen.insert(id).second) << "repeated " << id << " index '" << index << "'";
          }
          if (page.next_cursor.empty()) break;
          q.cursor = page.next_cursor;
        }
        for (const auto& id : before)
          EXPECT_TRUE(seen.count(id)) << "skipped " << id << " index '" << index << "'";
      }
    }
  stop = true;
  for (auto& t : writers) t.join();
}

// An index added while writers run holds every record, old and new.
TEST_F(CollectionsAdversarial, IndexAddedUnderWritesHoldsEveryRecord) {
  for (int i = 0; i < 2000; ++i)
    ASSERT_OK(e().PutRecord(Scope::Service(), "tickets", Rec({{"at", i}}).dump()));
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i)
      if (e().PutRecord(Scope::Service(), "tickets", Rec({{"at", 5000 + i}}).dump()).ok())
        ++written;
  });
  while (written.load() < 10) std::this_thread::yield();
  ASSERT_OK(e().AlterCollection(Scope::Service(), "tickets",
                                R"({"add_indexes":[{"name":"by_at","fields":["at"]}]})"));
  while (written.load() < 200) std::this_thread::yield();
  stop = true;
  writer.join();
  CollectionQuery all;
  all.collection = "tickets";
  uint64_t total = Must(e().CountRecords(Scope::Service(), all));
  EXPECT_EQ(total, 2000u + written.load());
  CollectionQuery q = all;
  q.index = "by_at";
  q.where = R"({"at":{"gte":0}})";
  for (int i = 0; i < 1000; ++i) {  // the build finishes in the background
    auto c = e().CountRecords(Scope::Service(), q);
    if (c.ok()) {
      EXPECT_EQ(*c, total);
      return;
    }
    ASSERT_EQ(c.status().code(), StatusCode::kUnavailable) << c.status().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "index by_at never became queryable";
}

// A timestamp field holds what every stored time holds (docs/data-model.md, conventions:
// 1970..9999, later or negative refused); query ranges over it are clamped, not refused.
TEST_F(CollectionsAdversarial, TimestampsOutsideTheStoredRangeAreRefusedAndRangesClamped) {
  constexpr int64_t kMax = 253402300799999999;
  Json kept = Json::parse(Must(e().PutRecord(
      Scope::Service(), "tickets", Rec({{"code", "t"}, {"at", 5}, {"rank", -5}}).dump())));
  std::string id = kept["id"];
  EXPECT_CODE(e().PutRecord(Scope::Service(), "tickets", Rec({{"at", -1}}).dump()),
              kInvalidArgument);
  EXPECT_CODE(e().PutRecord(Scope::Service(), "tickets", Rec({{"at", kMax + 1}}).dump()),
              kInvalidArgument);
  EXPECT_CODE(e().UpdateRecord(Scope::Service(), "tickets", id, R"({"at":-1})"), kInvalidArgument);
  EXPECT_CODE(e().DeclareCollection(Scope::Service(), R"({"name": "bad_default", "owner": "none",
      "fields": [{"name": "t", "type": "timestamp", "default": -5}]})"),
              kInvalidArgument);
  Json got = Json::parse(Must(e().GetRecord(Scope::Service(), "tickets", id)));
  EXPECT_EQ(got["at"], 5);
  EXPECT_EQ(got["rank"], -5);  // integers may be negative; times may not
  ASSERT_OK(e().PutRecord(Scope::Service(), "tickets", Rec({{"at", kMax}}).dump()));
  ASSERT_OK(e().AlterCollection(Scope::Service(), "tickets",
                                R"({"add_indexes":[{"name":"by_at","fields":["at"]}]})"));
  CollectionQuery q;
  q.collection = "tickets";
  q.index = "by_at";
  q.where = R"({"at":{"gte":-1000,"lte":9223372036854775807}})";
  for (int i = 0; i < 1000; ++i) {
    auto c = e().CountRecords(Scope::Service(), q);
    if (c.ok()) {
      EXPECT_EQ(*c, 2u);
      return;
    }
    ASSERT_EQ(c.status().code(), StatusCode::kUnavailable) << c.status().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "index by_at never became queryable";
}

// Issue 16: "Collections appear in the change feed when it exists". A collection put
// reached no subscriber (the feed skipped every key past the built-in record types); it
// now arrives, in commit order before the marker, named and as JSON.
TEST_F(CollectionsAdversarial, CollectionPutsReachTheChangeFeed) {
  auto sub = Must(e().Subscribe(Scope::Service(), {}, e().FeedInfo().durable));
  ASSERT_OK(e().PutRecord(Scope::Service(), "tickets", Rec({{"code", "fed"}}).dump()));
  ASSERT_OK(e().UpdateUser(Scope::Service(), ada_, R"({"full_name":"marker"})"));
  std::vector<Subscription::Event> evs;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline && evs.empty()) {
    sub->Poll(&evs, 1000);
    if (evs.size() >= 2 || sub->Finished()) break;
    sub->Wait(50);
  }
  sub->Poll(&evs, 1000);
  ASSERT_FALSE(evs.empty());
  ASSERT_EQ(evs.size(), 2u) << "the collection put was not in the feed, only the marker";
  EXPECT_EQ(evs[0]->type, kCollectionRecordType);
  EXPECT_EQ(evs[0]->collection, "tickets");
  EXPECT_EQ(evs[0]->op, ChangeOp::kCreate);
  EXPECT_EQ(evs[0]->user, ada_);
  EXPECT_EQ(Json::parse(evs[0]->json)["code"], "fed");
  EXPECT_EQ(evs[1]->type, RecordType::kUser);
}

// A key naming a field twice was declared, but no record of it could then be got,
// updated or deleted (every key was "not exactly the key fields"); it is refused.
TEST_F(CollectionsAdversarial, KeyNamingAFieldTwiceIsRefused) {
  for (const char* key : {R"(["id","id"])", R"(["id","day","day"])"}) {
    auto r = e().DeclareCollection(
        Scope::Service(), std::string(R"({"name": "twice", "owner": "none", "key": )") + key +
                              R"(, "fields": [{"name": "day", "type": "integer"}]})");
    EXPECT_CODE(r, kInvalidArgument) << key;
    EXPECT_NE(TextOf(r).find("twice"), std::string::npos) << TextOf(r);
  }
  EXPECT_CODE(e().DescribeCollection(Scope::Service(), "twice"), kNotFound);
  // A key of distinct fields stays usable end to end.
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "once", "owner": "none",
      "key": ["id", "day"], "fields": [{"name": "day", "type": "integer"}]})"));
  Json rec = Json::parse(Must(e().PutRecord(Scope::Service(), "once", R"({"day": 3})")));
  std::string key = Json{{"id", rec["id"]}, {"day", 3}}.dump();
  ASSERT_OK(e().GetRecord(Scope::Service(), "once", key));
  ASSERT_OK(e().DeleteRecord(Scope::Service(), "once", key, DeleteMode::kHard));
}

// A declared max_length above 65536 holds: documents.json declares content up to
// 1,000,000 characters, yet anything over 262,144 bytes was refused as "longer than
// 1000000 characters" (the byte shortcut used the default cap, not the field's).
TEST_F(CollectionsAdversarial, DeclaredLongStringCapsAboveTheDefaultHold) {
  std::ifstream in(std::string(AGENTSTORE_SOURCE_DIR) + "/examples/collections/documents.json");
  std::string decl((std::istreambuf_iterator<char>(in)), {});
  ASSERT_OK(e().DeclareCollection(Scope::Service(), decl));
  Json doc = Rec({{"title", "long"}, {"content", std::string(1'000'000, 'x')}});
  Json put = Json::parse(Must(e().PutRecord(Scope::Service(), "documents", doc.dump())));
  EXPECT_EQ(put["content"].get<std::string>().size(), 1'000'000u);
  std::string multi;  // 1,000,000 code points of 2 bytes each
  for (int i = 0; i < 1'000'000; ++i) multi += "\xc3\xa9";
  doc["content"] = multi;
  ASSERT_OK(e().PutRecord(Scope::Service(), "documents", doc.dump()));
  doc["content"] = std::string(1'000'001, 'x');
  auto over = e().PutRecord(Scope::Service(), "documents", doc.dump());
  EXPECT_CODE(over, kInvalidArgument);
  EXPECT_NE(TextOf(over).find("longer than 1000000 characters"), std::string::npos) << TextOf(over);
}

// A unique index added while writers put values that collide: once the alter succeeds,
// no value is held twice (either the alter is refused, or the colliding put is).
TEST_F(CollectionsAdversarial, UniqueIndexAddedWhileWritersCollideNeverHoldsDuplicates) {
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "handles", "owner": "user",
    "fields": [{"name": "handle", "type": "string"}]})"));
  for (int round = 0; round < 10; ++round) {
    std::string prefix = "r" + std::to_string(round) + "-";
    for (int i = 0; i < 500; ++i)
      ASSERT_OK(e().PutRecord(Scope::Service(), "handles",
                              Rec({{"handle", prefix + std::to_string(i)}}).dump()));
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      // Each value once more: every one of these collides with a record above.
      for (int i = 0; i < 500 && !stop.load(); ++i)
        (void)e().PutRecord(Scope::Service(), "handles",
                            Rec({{"handle", prefix + std::to_string(i)}}).dump());
    });
    std::string name = "by_handle_" + std::to_string(round);
    auto r = e().AlterCollection(
        Scope::Service(), "handles",
        Json{{"add_indexes", {{{"name", name}, {"fields", {"handle"}}, {"unique", true}}}}}.dump());
    stop = true;
    writer.join();
    if (!r.ok()) continue;  // refused: the duplicates were already there
    CollectionQuery q;
    q.collection = "handles";
    q.index = name;
    q.limit = 1000;
    std::map<std::string, int> held;
    for (int tries = 0; tries < 1000; ++tries) {
      auto page = e().QueryRecords(Scope::Service(), q);
      if (!page.ok()) {
        ASSERT_EQ(page.status().code(), StatusCode::kUnavailable) << page.status().ToString();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      for (const auto& rec : page->records) ++held[Json::parse(rec)["handle"].get<std::string>()];
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    for (const auto& [h, n] : held) EXPECT_EQ(n, 1) << "unique index " << name << " holds " << h;
    // Every later record must still be refused.
    EXPECT_CODE(e().PutRecord(Scope::Service(), "handles", Rec({{"handle", prefix + "0"}}).dump()),
                kAlreadyExists);
  }
}

}  // namespace
}  // namespace agentstore::testing

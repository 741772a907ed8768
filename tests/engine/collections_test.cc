// Collections: the example declarations in examples/collections (seed 004's goals,
// journal entries and progress; seed 001's versioned documents and suggestions) driven
// through the engine: the seeds' flows, access, cascades, TTL, bad input, alters, restart.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agentstore/common/record_json.h"
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

class Collections : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    for (const char* n : {"goals", "journal_entries", "progress", "documents", "suggestions"})
      ASSERT_OK(e().DeclareCollection(Scope::Service(), Example(n))) << n;
    ada_ = Id(MakeUser("ada@example.com")->id());
    bob_ = Id(MakeUser("bob@example.com")->id());
  }
  Json Put(const Scope& s, const std::string& coll, const Json& rec) {
    auto r = e().PutRecord(s, coll, rec.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Json::parse(*r) : Json();
  }
  std::vector<Json> Query(const Scope& s, CollectionQuery q) {
    auto r = e().QueryRecords(s, q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<Json> out;
    if (r.ok())
      for (const auto& t : r->records) out.push_back(Json::parse(t));
    return out;
  }
  // How many records `coll` holds in the store, expired ones included (reads hide those).
  size_t StoredCount(const std::string& coll) {
    size_t n = 0;
    std::string cursor;
    do {
      auto page = e().ExportCollectionRecords(Scope::Service(), coll, cursor, 1000);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      n += page->records.size();
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return n;
  }
  // Every record of every collection, as text (service scope, deleted included).
  std::string Snapshot() {
    std::string out;
    for (const auto& d : Must(e().ListCollections(Scope::Service()))) {
      out += d + "\n";
      // Named: a range-for over Json::parse(d)["indexes"] would iterate a destroyed
      // temporary (ASan: heap-use-after-free).
      const Json decl = Json::parse(d);
      CollectionQuery q;
      q.collection = decl["name"];
      q.limit = 1000;
      q.include_deleted = true;
      for (const auto& r : Must(e().QueryRecords(Scope::Service(), q)).records) out += r + "\n";
      for (const auto& idx : decl["indexes"]) {
        q.index = idx["name"];
        out += idx["name"].get<std::string>() + ":";
        for (const auto& r : Must(e().QueryRecords(Scope::Service(), q)).records)
          out += Json::parse(r)["id"].get<std::string>() + ",";
        out += "\n";
      }
    }
    return out;
  }
  Uuid ada_, bob_;
};

TEST_F(Collections, GoalReachesHundredPercentAndIsCompleted) {
  Scope ada = Scope::ForUser(ada_);
  Json g = Put(ada, "user_goals", {{"title", "Run 5k"}, {"category", "health"}});
  EXPECT_EQ(g["status"], "active");
  EXPECT_EQ(g["progress_percentage"], 0);
  EXPECT_EQ(g["user_id"], ada_.ToString());
  std::string id = g["id"];
  for (int p : {25, 60, 100}) {
    clock_.Advance(1000);
    Json patch = {{"progress_percentage", p}};
    if (p == 100) {
      patch["status"] = "completed";
      patch["completed_at"] = clock_.NowMicros();
    }
    auto r = e().UpdateRecord(ada, "user_goals", id, patch.dump());
    ASSERT_OK(r);
  }
  EXPECT_CODE(e().UpdateRecord(ada, "user_goals", id, R"({"progress_percentage":101})"),
              kInvalidArgument);
  Json done = Json::parse(Must(e().GetRecord(ada, "user_goals", id)));
  EXPECT_EQ(done["progress_percentage"], 100);
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["completed_at"], clock_.NowMicros());
  EXPECT_GT(done["updated_at"].get<int64_t>(), done["created_at"].get<int64_t>());
  // Active goals (the seed's "Get Active Goals"): none left; one completed.
  Put(ada, "user_goals", {{"title", "Read more"}});
  CollectionQuery q;
  q.collection = "user_goals";
  q.index = "by_user_status";
  q.where = Json{{"status", "active"}}.dump();
  auto active = Query(ada, q);
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0]["title"], "Read more");
  q.where = Json{{"status", "completed"}}.dump();
  EXPECT_EQ(Must(e().CountRecords(ada, q)), 1u);
}

TEST_F(Collections, JournalListedByDateNewestFirstWithCursor) {
  Scope ada = Scope::ForUser(ada_);
  for (int d = 1; d <= 7; ++d)
    Put(ada, "journal_entries",
        {{"content", "day " + std::to_string(d)},
         {"entry_date", d * 86'400'000'000LL},
         {"mood", d % 2 ? "good" : "low"},
         {"tags", {"daily"}}});
  Put(Scope::ForUser(bob_), "journal_entries", {{"content", "bob's"}, {"entry_date", 5}});
  CollectionQuery q;
  q.collection = "journal_entries";
  q.index = "by_user_date";
  q.desc = true;
  q.limit = 3;
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto r = Must(e().QueryRecords(ada, q));
    for (const auto& t : r.records) seen.push_back(Json::parse(t)["content"]);
    if (r.next_cursor.empty()) break;
    q.cursor = r.next_cursor;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"day 7", "day 6", "day 5", "day 4", "day 3", "day 2",
                                            "day 1"}));
  // A range: days 2..4 inclusive, oldest first.
  CollectionQuery range;
  range.collection = "journal_entries";
  range.index = "by_user_date";
  range.where = Json{{"user_id", ada_.ToString()},
                     {"entry_date", {{"gte", 2 * 86'400'000'000LL}, {"lte", 4 * 86'400'000'000LL}}}}
                    .dump();
  auto days = Query(Scope::Service(), range);
  ASSERT_EQ(days.size(), 3u);
  EXPECT_EQ(days[0]["content"], "day 2");
  EXPECT_EQ(days[2]["content"], "day 4");
  EXPECT_EQ(days[0]["is_private"], true);  // the default
  EXPECT_EQ(Must(e().CountRecords(ada, range)), 3u);
  // A where that is not a prefix of the index is refused.
  range.where = R"({"entry_date": 5})";
  EXPECT_CODE(e().QueryRecords(Scope::Service(), range), kInvalidArgument);
}

TEST_F(Collections, ProgressPerUserUniqueByMetric) {
  Scope ada = Scope::ForUser(ada_), bob = Scope::ForUser(bob_);
  Json p = Put(ada, "user_progress", {{"metric_type", "sessions_completed"}, {"metric_value", 3}});
  EXPECT_EQ(p["metric_value"], "3.00");
  Put(ada, "user_progress", {{"metric_type", "mood_score"}, {"metric_value", "7.25"}});
  Put(bob, "user_progress", {{"metric_type", "sessions_completed"}, {"metric_value", 1}});
  // One row per (user, metric): a second is a unique violation and changes nothing.
  std::string before = Snapshot();
  EXPECT_CODE(e().PutRecord(ada, "user_progress", R"({"metric_type":"sessions_completed"})"),
              kAlreadyExists);
  EXPECT_EQ(Snapshot(), before);
  // Incrementing a metric (the seed's "increment sessions_completed").
  ASSERT_OK(e().UpdateRecord(ada, "user_progress", p["id"].get<std::string>(),
                             R"({"metric_value":"4"})"));
  CollectionQuery q;
  q.collection = "user_progress";
  q.index = "by_user_metric";
  auto mine = Query(ada, q);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0]["metric_type"], "mood_score");
  EXPECT_EQ(mine[0]["metric_value"], "7.25");
  EXPECT_EQ(mine[1]["metric_value"], "4.00");
  EXPECT_EQ(Query(bob, q).size(), 1u);
  // Service: everyone's per metric.
  q.index = "by_metric";
  q.where = R"({"metric_type":"sessions_completed"})";
  EXPECT_EQ(Query(Scope::Service(), q).size(), 2u);
  EXPECT_EQ(Query(ada, q).size(), 1u);  // a user's query is confined to its own
}

TEST_F(Collections, DocumentVersionsAndSuggestions) {
  Scope ada = Scope::ForUser(ada_);
  Json v1 = Put(ada, "documents", {{"title", "Plan"}, {"content", "v1"}, {"kind", "text"}});
  std::string doc = v1["id"];
  clock_.Advance(10);
  Json v2 = Put(ada, "documents", {{"id", doc}, {"title", "Plan"}, {"content", "v2"}});
  clock_.Advance(10);
  Json v3 = Put(ada, "documents", {{"id", doc}, {"title", "Plan!"}, {"content", "v3"}});
  EXPECT_LT(v1["created_at"], v2["created_at"]);
  // Versions of one document, newest first, through the primary key (id, created_at).
  CollectionQuery q;
  q.collection = "documents";
  q.where = Json{{"id", doc}}.dump();
  q.desc = true;
  auto versions = Query(ada, q);
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[0]["content"], "v3");
  EXPECT_EQ(versions[2]["content"], "v1");
  // One version by its full key.
  Json key = {{"id", doc}, {"created_at", v2["created_at"]}};
  EXPECT_EQ(Json::parse(Must(e().GetRecord(ada, "documents", key.dump())))["content"], "v2");
  EXPECT_CODE(e().GetRecord(ada, "documents", doc), kInvalidArgument);  // needs the whole key
  // Suggestions on version 2.
  for (int i = 0; i < 2; ++i)
    Put(ada, "suggestions",
        {{"document_id", doc},
         {"document_created_at", v2["created_at"]},
         {"original_text", "v2"},
         {"suggested_text", "v2+" + std::to_string(i)}});
  CollectionQuery sq;
  sq.collection = "suggestions";
  sq.index = "by_document";
  sq.where = Json{{"document_id", doc}, {"document_created_at", v2["created_at"]}}.dump();
  auto sugg = Query(ada, sq);
  ASSERT_EQ(sugg.size(), 2u);
  EXPECT_EQ(sugg[0]["is_resolved"], false);
  ASSERT_OK(e().UpdateRecord(ada, "suggestions", sugg[0]["id"].get<std::string>(),
                             R"({"is_resolved":true})"));
  // Another user sees nothing: not the document, its versions, or its suggestions.
  Scope bob = Scope::ForUser(bob_);
  EXPECT_CODE(e().GetRecord(bob, "documents", key.dump()), kNotFound);
  EXPECT_TRUE(Query(bob, q).empty());
  EXPECT_TRUE(Query(bob, sq).empty());
  EXPECT_EQ(Must(e().CountRecords(bob, sq)), 0u);
  EXPECT_CODE(e().UpdateRecord(bob, "documents", key.dump(), R"({"title":"x"})"), kNotFound);
  EXPECT_CODE(e().DeleteRecord(bob, "documents", key.dump(), DeleteMode::kHard), kNotFound);
  // Bob cannot write into Ada's records, nor name her as owner.
  EXPECT_CODE(
      e().PutRecord(bob, "documents",
                    Json{{"id", doc}, {"title", "mine"}, {"user_id", ada_.ToString()}}.dump()),
      kPermissionDenied);
  // Admin reads but does not write user-owned records.
  EXPECT_OK(e().GetRecord(Scope::Admin(), "documents", key.dump()));
  EXPECT_CODE(e().PutRecord(Scope::Admin(), "documents",
                            Json{{"title", "x"}, {"user_id", ada_.ToString()}}.dump()),
              kPermissionDenied);
  // Soft delete hides one version; hard delete removes it.
  ASSERT_OK(e().DeleteRecord(ada, "documents", key.dump(), DeleteMode::kSoft));
  EXPECT_CODE(e().GetRecord(ada, "documents", key.dump()), kNotFound);
  EXPECT_EQ(Query(ada, q).size(), 2u);
  q.include_deleted = true;
  EXPECT_EQ(Query(ada, q).size(), 3u);
  Json k3 = {{"id", doc}, {"created_at", v3["created_at"]}};
  ASSERT_OK(e().DeleteRecord(ada, "documents", k3.dump(), DeleteMode::kHard));
  EXPECT_EQ(Query(ada, q).size(), 2u);
}

TEST_F(Collections, UserDeleteCascadesIntoEveryCollection) {
  Scope ada = Scope::ForUser(ada_), bob = Scope::ForUser(bob_);
  Put(ada, "user_goals", {{"title", "g"}});
  Put(ada, "journal_entries", {{"content", "c"}, {"entry_date", 1}});
  Put(ada, "documents", {{"title", "d"}});
  Put(bob, "journal_entries", {{"content", "bob"}, {"entry_date", 1}});
  CollectionQuery all;
  all.collection = "journal_entries";
  all.include_deleted = true;
  // Soft: Ada's records are soft-deleted with her.
  ASSERT_OK(e().DeleteUser(Scope::Service(), ada_, DeleteMode::kSoft));
  all.include_deleted = false;
  EXPECT_EQ(Query(Scope::Service(), all).size(), 1u);
  all.include_deleted = true;
  EXPECT_EQ(Query(Scope::Service(), all).size(), 2u);
  // A soft-deleted user cannot get new records.
  EXPECT_CODE(e().PutRecord(Scope::Service(), "user_goals",
                            Json{{"title", "x"}, {"user_id", ada_.ToString()}}.dump()),
              kNotFound);  // the one error rule: a missing referenced record is not_found
  // Hard: gone from every collection, and after a restart too.
  ASSERT_OK(e().DeleteUser(Scope::Service(), ada_, DeleteMode::kHard));
  auto after = Query(Scope::Service(), all);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["content"], "bob");
  for (const char* c : {"user_goals", "documents"}) {
    CollectionQuery q;
    q.collection = c;
    q.include_deleted = true;
    EXPECT_TRUE(Query(Scope::Service(), q).empty()) << c;
  }
  std::string before = Snapshot();
  Reopen();
  EXPECT_EQ(Snapshot(), before);
}

// A sweep removes exactly the records whose TTL has passed, also past one batch
// (1,000), and follows TTL values that puts and updates moved: a record given a later
// expiry survives, one given an earlier expiry goes.
TEST_F(Collections, SweepFollowsChangedExpiriesAndCrossesBatches) {
  tweak_ = [](EngineOptions& o) { o.memory.background = false; };
  Reopen();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "leases", "owner": "none", "ttl_field": "until",
    "fields": [{"name": "n", "type": "integer", "required": true},
               {"name": "until", "type": "timestamp"}]})"));
  int64_t now = clock_.NowMicros();
  std::vector<std::string> ids;
  for (int i = 0; i < 2500; ++i) {
    Json rec = {{"n", i}};
    if (i % 5 != 4) rec["until"] = now + (i % 2 ? 1'000'000 : 9'000'000);  // every 5th: none
    ids.push_back(Put(Scope::Service(), "leases", rec)["id"].get<std::string>());
  }
  // Record 1 (odd: early) gets a late expiry; record 0 (even: late) an early one.
  Put(Scope::Service(), "leases", {{"id", ids[1]}, {"n", 1}, {"until", now + 9'000'000}});
  ASSERT_OK(
      e().UpdateRecord(Scope::Service(), "leases", ids[0], Json{{"until", now + 500'000}}.dump()));
  clock_.Advance(1'000'000);
  EXPECT_EQ(StoredCount("leases"), 2500u);  // expired, hidden, still held
  uint64_t early = 0;  // odd i with a TTL (i % 5 != 4), but not record 1; plus record 0
  for (int i = 0; i < 2500; ++i)
    if (i % 2 && i % 5 != 4 && i != 1) ++early;
  ++early;
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), early);
  CollectionQuery q;
  q.collection = "leases";
  q.include_deleted = true;
  EXPECT_EQ(StoredCount("leases"), 2500u - early);
  EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 2500u - early);
  ASSERT_OK(e().GetRecord(Scope::Service(), "leases", ids[1]));
  EXPECT_CODE(e().GetRecord(Scope::Service(), "leases", ids[0]), kNotFound);
  // Gone from the store too, not only from memory.
  Reopen();
  EXPECT_EQ(StoredCount("leases"), 2500u - early);
  clock_.Advance(10'000'000);
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 2500u - early - 500);
  EXPECT_EQ(StoredCount("leases"), 500u);  // the ones without a TTL
}

// An expired record holds its unique value no longer, swept or not: a new record may take
// it at once, and the sweep then removes only the expired one.
TEST_F(Collections, ExpiredRecordsFreeTheirUniqueValuesBeforeTheSweep) {
  tweak_ = [](EngineOptions& o) { o.memory.background = false; };
  Reopen();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "handles", "owner": "user", "ttl_field": "until",
    "fields": [{"name": "handle", "type": "string", "required": true},
               {"name": "until", "type": "timestamp"}],
    "indexes": [{"name": "by_handle", "fields": ["handle"], "unique": true}]})"));
  int64_t now = clock_.NowMicros();
  Put(Scope::ForUser(ada_), "handles", {{"handle", "neo"}, {"until", now + 1'000'000}});
  EXPECT_CODE(e().PutRecord(Scope::ForUser(bob_), "handles", Json{{"handle", "neo"}}.dump()),
              kAlreadyExists);
  clock_.Advance(1'000'000);
  Json mine = Put(Scope::ForUser(bob_), "handles", {{"handle", "neo"}});
  EXPECT_EQ(mine["handle"], "neo");
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 1u);
  CollectionQuery q;
  q.collection = "handles";
  q.index = "by_handle";
  q.where = R"({"handle": "neo"})";
  auto rows = Query(Scope::Service(), q);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["id"], mine["id"]);
  EXPECT_EQ(StoredCount("handles"), 1u);
}

// A key whose record expired (not swept yet) is free: a put of it is a new record with
// its own creation time, also by another user, and the expired one's values are gone.
TEST_F(Collections, PutOverAnExpiredRecordIsANewRecord) {
  tweak_ = [](EngineOptions& o) { o.memory.background = false; };
  Reopen();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "seats", "owner": "user", "ttl_field": "until",
    "fields": [{"name": "label", "type": "string"}, {"name": "until", "type": "timestamp"}]})"));
  int64_t now = clock_.NowMicros();
  std::string id = MakeUuidV7(now, 7, 11).ToString();
  Json first = Put(Scope::ForUser(ada_), "seats",
                   {{"id", id}, {"label", "ada's"}, {"until", now + 1'000'000}});
  EXPECT_CODE(e().PutRecord(Scope::ForUser(bob_), "seats", Json{{"id", id}}.dump()),
              kPermissionDenied);
  clock_.Advance(2'000'000);
  Json again = Put(Scope::ForUser(bob_), "seats", {{"id", id}, {"label", "bob's"}});
  EXPECT_EQ(again["user_id"], bob_.ToString());
  EXPECT_GT(again["created_at"].get<int64_t>(), first["created_at"].get<int64_t>())
      << "a new record, not a replace of the expired one";
  std::string key = Json{{"id", id}}.dump();
  EXPECT_EQ(Json::parse(Must(e().GetRecord(Scope::ForUser(bob_), "seats", key)))["label"], "bob's");
  EXPECT_CODE(e().GetRecord(Scope::ForUser(ada_), "seats", key), kNotFound);
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 0u) << "nothing left to sweep";
  Reopen();
  EXPECT_EQ(Json::parse(Must(e().GetRecord(Scope::ForUser(bob_), "seats", key)))["label"], "bob's");
}

// Nobody calls coll_sweep: the background sweeper removes expired records by itself.
TEST_F(Collections, BackgroundSweeperRemovesExpiredRecords) {
  tweak_ = [](EngineOptions& o) { o.memory.sweep_interval_ms = 20; };
  Reopen();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "otp", "owner": "user", "ttl_field": "until",
    "fields": [{"name": "code", "type": "string"},
               {"name": "until", "type": "timestamp", "required": true}]})"));
  int64_t now = clock_.NowMicros();
  Put(Scope::ForUser(ada_), "otp", {{"code", "1"}, {"until", now + 1'000'000}});
  Put(Scope::ForUser(ada_), "otp", {{"code", "2"}, {"until", now + 60'000'000}});
  CollectionQuery q;
  q.collection = "otp";
  q.include_deleted = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(StoredCount("otp"), 2u);  // nothing expired yet
  clock_.Advance(2'000'000);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (StoredCount("otp") != 1u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(StoredCount("otp"), 1u);
  EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 1u);
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 0u);  // already swept
}

TEST_F(Collections, TtlExpiryWithInjectedClock) {
  // The sweeps below are this test's own: no background sweeper racing them.
  tweak_ = [](EngineOptions& o) { o.memory.background = false; };
  Reopen();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
    "name": "user_sessions", "owner": "user", "ttl_field": "expires_at",
    "fields": [{"name": "token", "type": "string", "required": true},
               {"name": "expires_at", "type": "timestamp", "required": true}],
    "indexes": [{"name": "by_token", "fields": ["token"], "unique": true}]})"));
  Scope ada = Scope::ForUser(ada_);
  int64_t now = clock_.NowMicros();
  Json s1 = Put(ada, "user_sessions", {{"token", "a"}, {"expires_at", now + 1'000'000}});
  Put(ada, "user_sessions", {{"token", "b"}, {"expires_at", now + 5'000'000}});
  CollectionQuery q;
  q.collection = "user_sessions";
  EXPECT_EQ(Must(e().CountRecords(ada, q)), 2u);
  clock_.Advance(1'000'000);  // s1 expires exactly now
  EXPECT_CODE(e().GetRecord(ada, "user_sessions", s1["id"].get<std::string>()), kNotFound);
  EXPECT_EQ(Must(e().CountRecords(ada, q)), 1u);
  EXPECT_CODE(e().SweepExpiredRecords(ada), kPermissionDenied);
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 1u);
  EXPECT_EQ(Must(e().SweepExpiredRecords(Scope::Service())), 0u);
  q.include_deleted = true;
  EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 1u);
  // The swept token is free again.
  Put(ada, "user_sessions", {{"token", "a"}, {"expires_at", now + 9'000'000}});
  Reopen();
  EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 2u);
  clock_.Advance(10'000'000);
  EXPECT_EQ(Must(e().CountRecords(Scope::Service(), q)), 0u);
}

TEST_F(Collections, BadInputIsRefusedAndChangesNothing) {
  Scope ada = Scope::ForUser(ada_);
  Json g = Put(ada, "user_goals", {{"title", "keep"}});
  Put(ada, "user_progress", {{"metric_type", "mood_score"}});
  std::string before = Snapshot();
  struct Case {
    const char* coll;
    Json rec;
    const char* why;
  } cases[] = {
      {"user_goals", {{"title", 5}}, "wrong type"},
      {"user_goals", {{"title", "x"}, {"colour", "red"}}, "unknown field"},
      {"user_goals", {{"title", std::string(201, 'x')}}, "over-long"},
      {"user_goals", {{"title", "x"}, {"status", "dreaming"}}, "enum violation"},
      {"user_goals", {{"description", "no title"}}, "required missing"},
      {"user_goals", {{"title", "x"}, {"progress_percentage", -1}}, "below min"},
      {"user_goals", {{"title", "x"}, {"created_at", 5}}, "store-maintained"},
      {"user_goals", {{"title", "x"}, {"target_date", 1.5}}, "timestamp not integer"},
      {"user_progress",
       {{"metric_type", "sessions_completed"}, {"metric_value", "1.234"}},
       "decimal over scale"},
      {"journal_entries",
       {{"content", "c"}, {"entry_date", 1}, {"tags", {1, 2}}},
       "list of non-strings"},
      {"journal_entries",
       {{"content", "c"}, {"entry_date", 1}, {"tags", std::vector<std::string>(21, "t")}},
       "too many items"},
      {"suggestions",
       {{"document_id", "not-a-uuid"},
        {"document_created_at", 1},
        {"original_text", "a"},
        {"suggested_text", "b"}},
       "bad uuid"},
  };
  for (const auto& c : cases)
    EXPECT_CODE(e().PutRecord(ada, c.coll, c.rec.dump()), kInvalidArgument) << c.why;
  EXPECT_CODE(e().PutRecord(ada, "user_progress", R"({"metric_type":"mood_score"})"),
              kAlreadyExists);
  EXPECT_CODE(e().PutRecord(ada, "user_goals", "{not json"), kInvalidArgument);
  EXPECT_CODE(e().PutRecord(ada, "user_goals", "[1]"), kInvalidArgument);
  EXPECT_CODE(e().PutRecord(ada, "nope", "{}"), kNotFound);
  std::string id = g["id"];
  EXPECT_CODE(e().UpdateRecord(ada, "user_goals", id, R"({"title":null})"), kInvalidArgument);
  EXPECT_CODE(e().UpdateRecord(ada, "user_goals", id, R"({"user_id":null})"), kInvalidArgument);
  EXPECT_CODE(e().UpdateRecord(ada, "user_goals", id, R"({"nope":1})"), kInvalidArgument);
  EXPECT_CODE(e().UpdateRecord(ada, "user_goals", id, R"({"status":"x"})"), kInvalidArgument);
  EXPECT_EQ(Snapshot(), before);
  // Bad declarations.
  for (const char* d :
       {R"({"name":"Bad Name"})", R"({"name":"x","fields":[{"name":"a","type":"money"}]})",
        R"({"name":"x","fields":[{"name":"a","type":"enum"}]})",
        R"({"name":"x","indexes":[{"name":"i","fields":["nope"]}]})",
        R"({"name":"x","ttl_field":"created_at"})", R"({"name":"x","extra":1})",
        R"({"name":"x","fields":[{"name":"d","type":"decimal"}]})"})
    EXPECT_CODE(e().DeclareCollection(Scope::Service(), d), kInvalidArgument) << d;
  EXPECT_CODE(e().DeclareCollection(Scope::ForUser(ada_), Example("goals")), kPermissionDenied);
  EXPECT_OK(e().DeclareCollection(Scope::Service(), Example("goals")));  // same: idempotent
  EXPECT_CODE(e().DeclareCollection(Scope::Service(), R"({"name":"user_goals"})"), kAlreadyExists);
  EXPECT_EQ(Snapshot(), before);
}

// A record's text is written straight from its stored bytes (AppendApiText): strings
// escaped as JSON, fields in declaration order, absent ones as their default (or
// deleted_at as null), and the same text from get and from a query.
TEST_F(Collections, RecordTextEscapesAndKeepsDeclarationOrder) {
  Scope ada = Scope::ForUser(ada_);
  const std::string content = "say \"hi\" \\ back\nslash\t\x01\x1f end \xc3\xa9 \xf0\x9f\x98\x80";
  Json put = Put(ada, "journal_entries",
                 {{"title", "\"quoted\""},
                  {"content", content},
                  {"tags", {"a\"b", "c\\d", ""}},
                  {"entry_date", 5}});
  auto got = e().GetRecord(ada, "journal_entries", put["id"].get<std::string>());
  ASSERT_OK(got);
  Json rec = Json::parse(*got);
  EXPECT_EQ(rec, put);
  EXPECT_EQ(rec["content"], content);
  EXPECT_EQ(rec["tags"], Json({"a\"b", "c\\d", ""}));
  EXPECT_EQ(rec["entry_date"], 5);     // a negative time is refused (negative integers: rank in
                                       // collections_adversarial_test)
  EXPECT_EQ(rec["is_private"], true);  // the declared default
  EXPECT_TRUE(rec["deleted_at"].is_null());
  EXPECT_FALSE(rec.contains("mood"));  // absent, no default
  EXPECT_NE(got->find(R"("content":"say \"hi\" \\ back\u000aslash\u0009\u0001\u001f end )"),
            std::string::npos)
      << *got;
  size_t at = 0;
  for (const char* f : {"id", "created_at", "updated_at", "deleted_at", "user_id", "title",
                        "content", "tags", "is_private", "entry_date"}) {
    size_t next = got->find("\"" + std::string(f) + "\":");
    ASSERT_NE(next, std::string::npos) << f;
    EXPECT_GE(next, at) << f << " out of declaration order in " << *got;
    at = next;
  }
  CollectionQuery q;
  q.collection = "journal_entries";
  q.index = "by_user_date";
  auto page = e().QueryRecords(ada, q);
  ASSERT_OK(page);
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_EQ(page->records[0], *got);
}

TEST_F(Collections, AlterAddsFieldsAndIndexesOrRefusesWithReason) {
  Scope ada = Scope::ForUser(ada_), bob = Scope::ForUser(bob_);
  Put(ada, "journal_entries", {{"content", "a"}, {"entry_date", 1}, {"mood", "good"}});
  Put(bob, "journal_entries", {{"content", "b"}, {"entry_date", 2}, {"mood", "good"}});
  // A required field without a default: existing records would violate it.
  auto r = e().AlterCollection(
      Scope::Service(), "journal_entries",
      R"({"add_fields":[{"name":"word_count","type":"integer","required":true}]})");
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(TextOf(r).find("2 existing records"), std::string::npos) << TextOf(r);
  // A unique index over duplicate values.
  r = e().AlterCollection(
      Scope::Service(), "journal_entries",
      R"({"add_indexes":[{"name":"by_mood","fields":["mood"],"unique":true}]})");
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(TextOf(r).find("good"), std::string::npos) << TextOf(r);
  CollectionQuery q;
  q.collection = "journal_entries";
  q.index = "by_mood";
  EXPECT_CODE(e().QueryRecords(Scope::Service(), q), kInvalidArgument);  // no such index
  // With a default, and a non-unique index: existing records read the default.
  ASSERT_OK(e().AlterCollection(Scope::Service(), "journal_entries", R"({
      "add_fields":[{"name":"word_count","type":"integer","default":0}],
      "add_indexes":[{"name":"by_words","fields":["word_count","entry_date"]}]})"));
  Put(ada, "journal_entries", {{"content", "c"}, {"entry_date", 3}, {"word_count", 7}});
  q.index = "by_words";
  q.where = R"({"word_count":0})";
  auto zero = Query(Scope::Service(), q);
  ASSERT_EQ(zero.size(), 2u);
  EXPECT_EQ(zero[0]["word_count"], 0);
  q.where = R"({"word_count":{"gt":0}})";
  EXPECT_EQ(Query(Scope::Service(), q).size(), 1u);
  EXPECT_EQ(Query(bob, q).size(), 0u);
  std::string before = Snapshot();
  Reopen();
  EXPECT_EQ(Snapshot(), before);
  EXPECT_CODE(e().AlterCollection(ada, "journal_entries", R"({"add_fields":[]})"),
              kPermissionDenied);
}

TEST_F(Collections, RestartKeepsDeclarationsRecordsAndIndexes) {
  Scope ada = Scope::ForUser(ada_);
  for (int i = 0; i < 50; ++i)
    Put(ada, "journal_entries",
        {{"content", "entry " + std::to_string(i)},
         {"entry_date", (i * 7919) % 101},
         {"tags", {"t" + std::to_string(i % 3)}}});
  Json g = Put(ada, "user_goals", {{"title", "g"}, {"metadata", {{"a", {{"b", 1}}}}}});
  ASSERT_OK(e().UpdateRecord(ada, "user_goals", g["id"].get<std::string>(),
                             R"({"metadata":{"a":{"c":2}}})"));
  Json merged = Json::parse(Must(e().GetRecord(ada, "user_goals", g["id"].get<std::string>())));
  EXPECT_EQ(merged["metadata"], (Json{{"a", {{"b", 1}, {"c", 2}}}}));
  // Text comes back exactly (quotes, backslashes, control characters, non-ASCII).
  std::string odd = "say \"hi\"\\ \n\t\x01 \u00fc\u4e16";
  Json j = Put(ada, "journal_entries", {{"content", odd}, {"entry_date", 1}, {"tags", {odd}}});
  EXPECT_EQ(j["content"], odd);
  Json back = Json::parse(Must(e().GetRecord(ada, "journal_entries", j["id"].get<std::string>())));
  EXPECT_EQ(back["content"], odd);
  EXPECT_EQ(back["tags"][0], odd);
  std::string before = Snapshot();
  Reopen();
  EXPECT_EQ(Snapshot(), before);
}

// Export and import (issue 16): declarations and records leave as export writes them
// and come back byte for byte in a fresh store (a user-owned collection with a TTL and a
// unique index, a tenant-owned one with a decimal, soft deletes, a field added by an
// alter); a tenant-scoped key exports only its tenant's records; a bad batch lands
// nothing; a backup carries them.
class CollectionTransfer : public Collections {
 protected:
  void SetUp() override {
    Collections::SetUp();
    fb::TenantT t;
    t.name = "A";
    t.slug = "a";
    ta_ = Id(Must(e().CreateTenant(Scope::Admin(), t))->id());
    t.name = "B";
    t.slug = "b";
    tb_ = Id(Must(e().CreateTenant(Scope::Admin(), t))->id());
    ua_ = Id(MakeUser("ua@x.com", ta_)->id());
    ub_ = Id(MakeUser("ub@x.com", tb_)->id());
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
      "name": "user_sessions", "owner": "user", "ttl_field": "expires_at",
      "fields": [{"name": "token", "type": "string", "required": true},
                 {"name": "expires_at", "type": "timestamp", "required": true}],
      "indexes": [{"name": "by_token", "fields": ["token"], "unique": true}]})"));
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({
      "name": "tenant_plans", "owner": "tenant",
      "fields": [{"name": "plan", "type": "string", "required": true},
                 {"name": "price", "type": "decimal", "scale": 2}],
      "indexes": [{"name": "by_plan", "fields": ["plan"]}]})"));
    int64_t now = clock_.NowMicros();
    for (const Uuid& u : {ada_, ua_, ub_}) {
      Scope us = Scope::ForUser(u);
      for (int i = 0; i < 3; ++i)
        Put(us, "journal_entries",
            {{"content", "entry " + std::to_string(i)}, {"entry_date", i}, {"mood", "good"}});
      Put(us, "user_sessions", {{"token", "tok-" + u.ToString()}, {"expires_at", now + 1'000'000}});
    }
    Json gone = Put(Scope::ForUser(ua_), "journal_entries", {{"content", "x"}, {"entry_date", 9}});
    ASSERT_OK(e().DeleteRecord(Scope::ForUser(ua_), "journal_entries",
                               gone["id"].get<std::string>(), DeleteMode::kSoft));
    ASSERT_OK(e().AlterCollection(
        Scope::Service(), "journal_entries",
        R"({"add_fields":[{"name":"word_count","type":"integer","default":0}]})"));
    Put(Scope::ForUser(ub_), "journal_entries",
        {{"content", "later"}, {"entry_date", 10}, {"word_count", 5}});
    Put(Scope::Service(), "tenant_plans",
        {{"tenant_id", ta_.ToString()}, {"plan", "pro"}, {"price", "12.50"}});
    Put(Scope::Service(), "tenant_plans",
        {{"tenant_id", tb_.ToString()}, {"plan", "free"}, {"price", "0.00"}});
  }
  // Declarations, then every collection's records in export pages of 2.
  static std::vector<std::string> Dump(Engine& eng, const Scope& scope) {
    std::vector<std::string> out;
    for (const auto& d : Must(eng.ListCollections(scope))) {
      out.push_back(d);
      std::string name = Json::parse(d)["name"], cursor;
      do {
        auto page = eng.ExportCollectionRecords(scope, name, cursor, 2);
        EXPECT_TRUE(page.ok()) << page.status().ToString();
        if (!page.ok()) break;
        for (const auto& r : page->records) out.push_back(name + "\t" + r);
        cursor = page->next_cursor;
      } while (!cursor.empty());
    }
    return out;
  }
  // The built-in records the collections' owners need, as export/import moves them.
  static void CopyOwners(Engine& from, Engine& to) {
    for (auto [type, page] :
         {std::pair{RecordType::kTenant,
                    Must(from.ExportRecords(Scope::Service(), RecordType::kTenant, "", 100))},
          std::pair{RecordType::kUser,
                    Must(from.ExportRecords(Scope::Service(), RecordType::kUser, "", 100))}})
      for (const auto& bytes : page.records)
        ASSERT_OK(
            to.ImportRecord(Scope::Service(), type,
                            type == RecordType::kTenant
                                ? RecordToJson(*flatbuffers::GetRoot<fb::Tenant>(bytes.data()))
                                : RecordToJson(*flatbuffers::GetRoot<fb::User>(bytes.data()))));
  }
  // Imports a Dump's lines: declarations one by one, records in batches of 3.
  static Status Load(Engine& to, const std::vector<std::string>& dump) {
    std::map<std::string, std::vector<std::string>> records;
    std::vector<std::string> order;
    for (const auto& line : dump) {
      size_t tab = line.find('\t');
      if (tab == std::string::npos) {
        AS_RETURN_IF_ERROR(to.DeclareCollection(Scope::Service(), line).status());
        continue;
      }
      std::string name = line.substr(0, tab);
      if (!records.count(name)) order.push_back(name);
      records[name].push_back(line.substr(tab + 1));
    }
    for (const auto& name : order) {
      const auto& list = records[name];
      for (size_t i = 0; i < list.size(); i += 3) {
        std::vector<std::string_view> batch(list.begin() + i,
                                            list.begin() + std::min(list.size(), i + 3));
        AS_RETURN_IF_ERROR(to.ImportCollectionRecords(Scope::Service(), name, batch));
      }
    }
    return Status::OK();
  }
  Uuid ta_, tb_, ua_, ub_;
};

TEST_F(CollectionTransfer, ExportImportRoundTripsDeclarationsAndRecordsExactly) {
  auto exported = Dump(e(), Scope::Service());
  ASSERT_GT(exported.size(), 20u);
  TempDir other;
  EngineOptions o;
  o.data_dir = other.sub("data");
  o.durability = storage::Durability::kNone;
  o.clock = &clock_;
  o.memory.background = false;  // the expired sessions stay stored until swept
  auto fresh = Must(Engine::Open(o));
  CopyOwners(e(), *fresh);
  ASSERT_OK(Load(*fresh, exported));
  ASSERT_OK(Load(*fresh, exported));  // again: identical records are no-ops
  EXPECT_EQ(Dump(*fresh, Scope::Service()), exported);
  // Indexes, owners and access came along: a user sees its own, the unique index holds.
  CollectionQuery q;
  q.collection = "journal_entries";
  q.index = "by_user_date";
  EXPECT_EQ(Must(fresh->QueryRecords(Scope::ForUser(ua_), q)).records.size(), 3u);
  EXPECT_EQ(Must(fresh->QueryRecords(Scope::ForUser(ub_), q)).records.size(), 4u);
  EXPECT_CODE(fresh->PutRecord(Scope::ForUser(ada_), "user_sessions",
                               Json{{"token", "tok-" + ua_.ToString()}, {"expires_at", 1}}.dump()),
              kAlreadyExists);
  // The TTL still applies to imported records.
  clock_.Advance(2'000'000);
  q.collection = "user_sessions";
  q.index.clear();
  EXPECT_EQ(Must(fresh->CountRecords(Scope::Service(), q)), 0u);
  // And after a restart of the fresh store (the imported bytes are what RocksDB holds).
  fresh.reset();
  fresh = Must(Engine::Open(o));
  EXPECT_EQ(Dump(*fresh, Scope::Service()), exported);
}

TEST_F(CollectionTransfer, TenantScopedExportSeesOnlyItsTenant) {
  auto mine = Dump(e(), Scope::Service(ta_));
  std::string all;
  for (const auto& l : mine) all += l + "\n";
  EXPECT_NE(all.find(ua_.ToString()), std::string::npos);
  EXPECT_EQ(all.find(ub_.ToString()), std::string::npos) << all;
  EXPECT_EQ(all.find(ada_.ToString()), std::string::npos) << all;
  EXPECT_EQ(all.find(tb_.ToString()), std::string::npos) << all;
  EXPECT_NE(all.find("\"pro\""), std::string::npos);
  EXPECT_EQ(all.find("\"free\""), std::string::npos);
  // Admins of the tenant too; users never; and import stays with unscoped service keys.
  EXPECT_EQ(Dump(e(), Scope::Admin(ta_)), mine);
  EXPECT_CODE(e().ExportCollectionRecords(Scope::ForUser(ua_), "journal_entries", "", 10),
              kPermissionDenied);
  std::vector<std::string_view> none = {"{}"};
  EXPECT_CODE(e().ImportCollectionRecords(Scope::Service(ta_), "journal_entries", none),
              kPermissionDenied);
  EXPECT_CODE(e().ImportCollectionRecords(Scope::Admin(), "journal_entries", none),
              kPermissionDenied);
}

TEST_F(CollectionTransfer, BadBatchesLandNothingAndNameTheLine) {
  auto exported = Dump(e(), Scope::Service());
  TempDir other;
  EngineOptions o;
  o.data_dir = other.sub("data");
  o.durability = storage::Durability::kNone;
  o.clock = &clock_;
  auto fresh = Must(Engine::Open(o));
  CopyOwners(e(), *fresh);
  for (const auto& l : exported)
    if (l.find('\t') == std::string::npos) ASSERT_OK(fresh->DeclareCollection(Scope::Service(), l));
  std::vector<std::string> plans;
  for (const auto& l : exported)
    if (l.rfind("tenant_plans\t", 0) == 0) plans.push_back(l.substr(13));
  ASSERT_EQ(plans.size(), 2u);
  auto refused = [&](std::vector<std::string> batch, StatusCode code, const std::string& line) {
    std::vector<std::string_view> v(batch.begin(), batch.end());
    std::vector<uint64_t> lines;
    for (size_t i = 0; i < v.size(); ++i) lines.push_back(100 + i);
    Status s = fresh->ImportCollectionRecords(Scope::Service(), "tenant_plans", v, lines);
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_EQ(s.message().rfind("line " + line + ": ", 0), 0u) << s.ToString();
    CollectionQuery q;
    q.collection = "tenant_plans";
    q.include_deleted = true;
    EXPECT_EQ(Must(fresh->CountRecords(Scope::Service(), q)), 0u) << "nothing of the batch";
  };
  Json p = Json::parse(plans[0]);
  Json unknown = p;
  unknown["colour"] = "red";
  refused({plans[0], unknown.dump(), plans[1]}, StatusCode::kInvalidArgument, "101");
  Json api_form = p;  // the decimal as the API writes it, not as it is stored
  api_form["price"] = "12.50";
  refused({plans[1], api_form.dump()}, StatusCode::kInvalidArgument, "101");
  Json no_times = p;
  no_times.erase("updated_at");
  refused({no_times.dump()}, StatusCode::kInvalidArgument, "100");
  Json orphan = p;
  orphan["tenant_id"] = ada_.ToString();  // a user, not a tenant
  refused({plans[1], orphan.dump()}, StatusCode::kNotFound, "101");
  Json changed = p;
  changed["plan"] = "other";
  refused({plans[0], changed.dump()}, StatusCode::kAlreadyExists, "101");
  refused({plans[0], "[1,2"}, StatusCode::kInvalidArgument, "101");
  // A unique index violated inside one batch.
  std::vector<std::string> sessions;
  for (const auto& l : exported)
    if (l.rfind("user_sessions\t", 0) == 0) sessions.push_back(l.substr(14));
  Json twin = Json::parse(sessions[1]);
  twin["token"] = Json::parse(sessions[0])["token"];
  std::vector<std::string_view> v = {sessions[0], twin.dump()};
  std::string twin_text = twin.dump();
  v[1] = twin_text;
  EXPECT_CODE(fresh->ImportCollectionRecords(Scope::Service(), "user_sessions", v), kAlreadyExists);
  CollectionQuery q;
  q.collection = "user_sessions";
  EXPECT_EQ(Must(fresh->CountRecords(Scope::Service(), q)), 0u);
  EXPECT_CODE(fresh->ImportCollectionRecords(Scope::Service(), "nope", v), kNotFound);
}

TEST_F(CollectionTransfer, BackupCarriesDeclarationsAndRecords) {
  auto before = Dump(e(), Scope::Service());
  std::string backup = dir_.sub("backup");
  ASSERT_OK(e().Checkpoint(backup));
  EngineOptions o;
  o.data_dir = backup;
  o.durability = storage::Durability::kNone;
  o.clock = &clock_;
  auto restored = Must(Engine::Open(o));
  EXPECT_EQ(Dump(*restored, Scope::Service()), before);
}

// kill -9 while four threads put and patch journal entries under durability `always`:
// every acknowledged put is there after reopening, with its last acknowledged patch or a
// later one, and the index agrees with the records (nothing half-applied).
TEST(CollectionsCrash, KillNineLosesNoAcknowledgedRecord) {
  TempDir dir;
  EngineOptions o;
  o.data_dir = dir.sub("data");
  o.durability = storage::Durability::kAlways;
  Uuid user;
  {
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    ASSERT_OK((*e)->DeclareCollection(Scope::Service(), Example("journal_entries")));
    fb::UserT u;
    u.email = "crash@example.com";
    user = ToUuid(Must((*e)->CreateUser(Scope::Service(), u))->id());
  }
  std::map<std::string, int> acked;  // id -> highest acknowledged word_count-like version
  for (int cycle = 0; cycle < 3; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto e = Engine::Open(o);
      if (!e.ok()) _exit(3);
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
          for (int i = 0;; ++i) {
            Json rec = {{"user_id", user.ToString()},
                        {"content", "v0"},
                        {"entry_date", cycle * 1'000'000 + t * 10'000 + i}};
            auto r = (*e)->PutRecord(Scope::Service(), "journal_entries", rec.dump());
            if (!r.ok()) _exit(4);
            std::string id = Json::parse(*r)["id"];
            std::string line = id + " 0\n";
            if (write(fds[1], line.data(), line.size()) != ssize_t(line.size())) _exit(5);
            for (int v = 1; v <= 2; ++v) {
              Json patch = {{"content", "v" + std::to_string(v)}};
              if (!(*e)->UpdateRecord(Scope::Service(), "journal_entries", id, patch.dump()).ok())
                _exit(6);
              line = id + " " + std::to_string(v) + "\n";
              if (write(fds[1], line.data(), line.size()) != ssize_t(line.size())) _exit(7);
            }
          }
        });
      for (auto& th : threads) th.join();
      _exit(0);
    }
    close(fds[1]);
    std::string buf;
    auto drain = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      char tmp[4096];
      while (poll(&p, 1, timeout_ms) > 0) {
        ssize_t n = read(fds[0], tmp, sizeof tmp);
        if (n <= 0) return;
        buf.append(tmp, n);
      }
    };
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400 + 150 * cycle);
    while (std::chrono::steady_clock::now() < until) drain(5);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    drain(0);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    std::istringstream lines(buf);
    std::string id;
    int v;
    while (lines >> id >> v) acked[id] = std::max(acked[id], v);
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    for (const auto& [rid, ver] : acked) {
      auto r = (*e)->GetRecord(Scope::Service(), "journal_entries", rid);
      ASSERT_OK(r) << rid;
      int stored = std::stoi(Json::parse(*r)["content"].get<std::string>().substr(1));
      EXPECT_GE(stored, ver) << rid;
    }
    CollectionQuery all;
    all.collection = "journal_entries";
    uint64_t by_key = Must((*e)->CountRecords(Scope::Service(), all));
    all.index = "by_user_date";
    EXPECT_EQ(Must((*e)->CountRecords(Scope::Service(), all)), by_key);
    EXPECT_GE(by_key, acked.size());
  }
  EXPECT_GT(acked.size(), 10u);
}

}  // namespace
}  // namespace agentstore::testing

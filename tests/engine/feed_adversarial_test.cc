// The change feed under attack, in process: resume points that must not claim more than
// was delivered (a key revoked while its subscription catches up), subscriptions that
// must not get sequences at or before their start while writers run, a catch-up that
// must not make the live feed attribute a moved user's changes to its old tenant, and
// keys that stop granting anything without a revocation record (expiry, a deleted
// tenant) ending their subscriptions, a user moved while its subscription catches up,
// and resumes inside one multi-record write.
#include <atomic>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "feed_test_util.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Event = Subscription::Event;
using Json = nlohmann::json;

constexpr uint32_t Bit(RecordType t) { return 1u << static_cast<int>(t); }

class FeedAdversarial : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = storage::Durability::kAlways;
    o.shards = 4;
    o.feed = feed_;
    if (manual_clock_) o.clock = &clock_;
    auto r = Engine::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    engine_ = std::move(r).value();
  }
  void Reopen() {
    engine_.reset();
    Open();
  }
  Engine& e() { return *engine_; }

  Uuid MakeTenant(const std::string& slug) {
    fb::TenantT t;
    t.name = slug;
    t.slug = slug;
    return ToUuid(Must(e().CreateTenant(Scope::Service(), t))->id());
  }
  Uuid MakeUser(const std::string& email, std::optional<Uuid> tenant = std::nullopt) {
    fb::UserT u;
    u.email = email;
    if (tenant) u.tenant_id = FbId(*tenant);
    return ToUuid(Must(e().CreateUser(Scope::Service(), u))->id());
  }
  Uuid MakeChat(const Uuid& user) {
    fb::ChatT c;
    c.user_id = FbId(user);
    c.title = "t";
    return ToUuid(Must(e().CreateChat(Scope::Service(), c))->id());
  }
  Result<Row<fb::Message>> Append(const Uuid& chat) {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = R"([{"type":"text","text":"hi"}])";
    return e().AppendMessage(Scope::Service(), m);
  }
  Uuid MakeKey(fb::KeyRole role, std::optional<Uuid> user, std::optional<Uuid> tenant,
               int64_t expires_at = 0) {
    fb::ApiKeyT k;
    k.role = role;
    if (user) k.user_id = FbId(*user);
    if (tenant) k.tenant_id = FbId(*tenant);
    k.expires_at = expires_at;
    return ToUuid(Must(e().CreateApiKey(Scope::Service(), k)).key->id());
  }

  void UserMovedWhileCatchingUp(bool with_live_subscriber);

  TempDir dir_;
  FeedOptions feed_;
  bool manual_clock_ = false;
  ManualClock clock_{1'700'000'000'000'000};
  std::unique_ptr<Engine> engine_;
};

// A subscription catching up (paused: its client does not read) whose key is revoked
// ends at once, but its resume point may only name what it delivered: a client that
// resumes from it with a new key must get every change it did not see.
TEST_F(FeedAdversarial, KeyRevokedWhileCatchingUpEndsWithTheResumePointItReached) {
  engine_.reset();
  feed_.max_queued_events = 4;  // the catching-up subscription pauses after 4 events
  Open();
  Uuid u = MakeUser("cu@x.com");
  Uuid chat = MakeChat(u);
  Uuid key = MakeKey(fb::KeyRole::user, u, std::nullopt);
  uint64_t start = e().FeedInfo().durable;
  for (int i = 0; i < 40; ++i) ASSERT_OK(Append(chat));
  // A live subscription, so the feed follows the live end (and sees the revocation
  // there, not only while reading this subscription's backlog).
  FeedFilter msgs;
  msgs.types = Bit(RecordType::kMessage);
  auto live = Must(e().Subscribe(Scope::Service(), msgs, std::nullopt));
  auto sub = Must(e().Subscribe(Scope::ForUser(u), msgs, start, key));
  sub->Wait(5000);  // its first events are queued: it has paused with a full buffer
  ASSERT_OK(e().RevokeApiKey(Scope::Service(), key));
  ASSERT_OK(Append(chat));  // the live subscription gets it once the revocation was read
  ASSERT_EQ(Drain(*live, [](auto& v) { return !v.empty(); }).size(), 1u);
  auto got = Drain(
      *sub, [](auto&) { return false; }, 3000);
  ASSERT_TRUE(sub->Finished());
  EXPECT_CODE(sub->end_status(), kPermissionDenied);
  uint64_t resume = sub->resume_point();
  // Every message at or before the resume point must have been delivered.
  auto all = Must(e().Subscribe(Scope::Service(), msgs, start));
  auto every = Drain(*all, [](auto& v) { return v.size() >= 41; });
  ASSERT_EQ(every.size(), 41u);
  size_t covered = 0;
  for (const auto& ev : every) covered += ev->sequence <= resume;
  EXPECT_EQ(got.size(), covered) << "the resume point " << resume << " claims " << covered
                                 << " messages delivered, but only " << got.size() << " were";
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i]->sequence, every[i]->sequence);
}

// Subscribing after the latest durable sequence while writers run: the feed thread may
// not have fanned it out yet. Nothing at or before the start may be delivered (a client
// holding those changes would get them twice), and the answer's start is the one asked.
TEST_F(FeedAdversarial, NothingAtOrBeforeTheStartUnderConcurrentWriters) {
  engine_.reset();
  feed_.read_chunk = 1;  // the feed's live read trails the durable end under load
  Open();
  constexpr int kWriters = 4;
  std::vector<Uuid> chats;
  for (int t = 0; t < kWriters; ++t) chats.push_back(MakeChat(MakeUser(std::to_string(t) + "@w")));
  FeedFilter msgs;
  msgs.types = Bit(RecordType::kMessage);
  // A broad live subscriber keeps the feed thread busy fanning out.
  auto busy = Must(e().Subscribe(Scope::Service(), {}, std::nullopt));
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t)
    writers.emplace_back([&, t] {
      while (!stop)
        if (!Append(chats[t]).ok()) return;
    });
  std::thread drainer([&] {
    std::vector<Event> sink;
    while (!stop) {
      sink.clear();
      if (busy->Poll(&sink, 100000) == 0) busy->Wait(5);
    }
  });
  size_t violations = 0, refused = 0, checked = 0;
  std::string first;
  for (int i = 0; i < 300; ++i) {
    uint64_t after = e().FeedInfo().durable;
    auto sub = e().Subscribe(Scope::Service(), msgs, after);
    if (!sub.ok()) {  // the store's durable sequence must be a valid start at once
      ++refused;
      if (first.empty()) first = sub.status().ToString();
      continue;
    }
    auto got = Drain(
        **sub, [](auto& v) { return v.size() >= 4; }, 5000);
    for (const auto& ev : got) {
      ++checked;
      if (ev->sequence <= after) {
        if (first.empty())
          first = "sequence " + std::to_string(ev->sequence) + " after " + std::to_string(after);
        ++violations;
      }
    }
    (*sub)->Cancel();
  }
  stop = true;
  for (auto& w : writers) w.join();
  drainer.join();
  EXPECT_GT(checked, 0u);
  EXPECT_EQ(violations, 0u) << "events at or before the start were delivered: " << first;
  EXPECT_EQ(refused, 0u) << first;
}

// The feed caches users' tenants. A subscription catching up reads a moved user's older
// records (its old tenant); that must not make the live feed, meanwhile, attribute the
// user's new changes to the old tenant (whose admin may no longer read them).
TEST_F(FeedAdversarial, CatchingUpDoesNotMakeLiveChangesOfAMovedUserReachItsOldTenant) {
  engine_.reset();
  feed_.read_chunk = 4;         // the backlog is read 4 changes a step
  feed_.max_queued_events = 2;  // and the catch-up pauses once 2 events wait
  Open();
  Uuid t1 = MakeTenant("one"), t2 = MakeTenant("two");
  uint64_t start = e().FeedInfo().durable;
  Uuid u = MakeUser("mover@x.com", t1);  // the first change after `start`
  Uuid other = MakeUser("other@x.com", t2);
  for (int i = 0; i < 10; ++i) MakeChat(other);
  ASSERT_OK(e().UpdateUser(Scope::Service(), u, Json{{"tenant_id", t2.ToString()}}.dump()));
  FeedFilter chats;
  chats.types = Bit(RecordType::kChat);
  auto old_admin = Must(e().Subscribe(Scope::Admin(t1), chats, std::nullopt));
  auto new_admin = Must(e().Subscribe(Scope::Admin(t2), chats, std::nullopt));
  auto everyone = Must(e().Subscribe(Scope::Service(), chats, std::nullopt));
  // Reads the first chunk (the user's creation, in t1) and pauses, never polled.
  auto behind = Must(e().Subscribe(Scope::Service(), {}, start));
  behind->Wait(5000);
  MakeChat(u);  // the user is in t2 now
  auto seen = Drain(*everyone, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0]->tenant, t2);
  // The step that fed `everyone` is over: both admins have what they will get.
  std::vector<Event> to_new, to_old;
  new_admin->Poll(&to_new, 100);
  old_admin->Poll(&to_old, 100);
  EXPECT_EQ(to_new.size(), 1u) << "t2's admin missed its user's chat";
  EXPECT_TRUE(to_old.empty()) << "t1's admin got a chat of a user now in t2";
}

// A key that expires grants nothing from then on (docs/data-model.md: "revoking or
// expiring a key ... takes effect on open connections and subscriptions at once"); its
// subscription must not deliver changes committed after the expiry.
TEST_F(FeedAdversarial, ExpiredKeyEndsItsSubscription) {
  engine_.reset();
  manual_clock_ = true;
  Open();
  Uuid u = MakeUser("exp@x.com");
  Uuid chat = MakeChat(u);
  int64_t expires = clock_.NowMicros() + 60'000'000;
  Uuid key = MakeKey(fb::KeyRole::user, u, std::nullopt, expires);
  FeedFilter msgs;
  msgs.types = Bit(RecordType::kMessage);
  auto sub = Must(e().Subscribe(Scope::ForUser(u), msgs, std::nullopt, key));
  ASSERT_OK(Append(chat));
  auto before = Drain(*sub, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(before.size(), 1u);
  clock_.Advance(61'000'000);
  ASSERT_FALSE(e().RecheckKey(key).ok()) << "the key has expired";
  ASSERT_OK(Append(chat));
  ASSERT_OK(Append(chat));
  auto after = Drain(
      *sub, [](auto&) { return false; }, 2000);
  EXPECT_TRUE(after.empty()) << after.size() << " changes committed after the key expired";
  EXPECT_TRUE(sub->Finished());
  EXPECT_CODE(sub->end_status(), kPermissionDenied);
  // Resuming from its resume point (with a valid key) gets both later messages.
  uint64_t resume = sub->resume_point();
  EXPECT_GE(resume, before[0]->sequence);
  FeedFilter mine = msgs;
  mine.user = u;
  auto again = Must(e().Subscribe(Scope::Service(), mine, resume));
  EXPECT_EQ(Drain(*again, [](auto& v) { return v.size() >= 2; }).size(), 2u);
}

// An expiring key's subscription ends at the expiry even when no change comes after it
// (nothing to judge by commit time): an idle watcher learns its key is no longer good.
TEST_F(FeedAdversarial, ExpiredKeyEndsAnIdleSubscription) {
  engine_.reset();
  manual_clock_ = true;
  Open();
  Uuid u = MakeUser("idle@x.com");
  Uuid chat = MakeChat(u);
  Uuid key = MakeKey(fb::KeyRole::user, u, std::nullopt, clock_.NowMicros() + 60'000'000);
  auto sub = Must(e().Subscribe(Scope::ForUser(u), {}, std::nullopt, key));
  ASSERT_OK(Append(chat));
  auto before = Drain(*sub, [](auto& v) { return v.size() >= 2; });  // message and chat
  ASSERT_EQ(before.size(), 2u);
  EXPECT_TRUE(Drain(
                  *sub, [](auto&) { return false; }, 300)
                  .empty());
  EXPECT_FALSE(sub->Finished()) << "ended before its key expired";
  clock_.Advance(61'000'000);
  auto after = Drain(
      *sub, [](auto&) { return false; }, 5000);
  EXPECT_TRUE(after.empty());
  EXPECT_TRUE(sub->Finished()) << "an idle subscription outlived its key";
  EXPECT_CODE(sub->end_status(), kPermissionDenied);
  EXPECT_EQ(sub->resume_point(), before.back()->sequence) << "everything before was delivered";
}

// A key scoped to a tenant grants nothing once the tenant is deleted (Engine::CheckKey);
// its subscription ends too, instead of going on with the tenant's users' changes.
TEST_F(FeedAdversarial, DeletingTheTenantEndsItsScopedKeysSubscriptions) {
  Uuid t = MakeTenant("gone");
  Uuid u = MakeUser("in@gone", t);
  Uuid chat = MakeChat(u);
  Uuid key = MakeKey(fb::KeyRole::admin, std::nullopt, t);
  FeedFilter msgs;
  msgs.types = Bit(RecordType::kMessage);
  auto sub = Must(e().Subscribe(Scope::Admin(t), msgs, std::nullopt, key));
  ASSERT_OK(Append(chat));
  ASSERT_EQ(Drain(*sub, [](auto& v) { return !v.empty(); }).size(), 1u);
  ASSERT_OK(e().DeleteTenant(Scope::Service(), t, DeleteMode::kSoft));
  ASSERT_FALSE(e().RecheckKey(key).ok()) << "the key no longer grants anything";
  ASSERT_OK(Append(chat));  // its users still write
  auto after = Drain(
      *sub, [](auto&) { return false; }, 2000);
  EXPECT_TRUE(after.empty()) << "a change reached a key of a deleted tenant";
  EXPECT_TRUE(sub->Finished());
  EXPECT_CODE(sub->end_status(), kPermissionDenied);
}

// A user key's subscription reads its tenant's tenant-owned collection records as the
// tenant it had at subscribe. Moved to another tenant while the subscription still
// catches up (a backlog, a client reading slowly), it must not go on to read its old
// tenant's records once live.
void FeedAdversarial::UserMovedWhileCatchingUp(bool with_live_subscriber) {
  engine_.reset();
  feed_.max_queued_events = 4;
  Open();
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "plans", "owner": "tenant",
      "fields": [{"name": "tier", "type": "string"}]})"));
  Uuid t1 = MakeTenant("one"), t2 = MakeTenant("two");
  Uuid u = MakeUser("mover@x.com", t1);
  auto put = [&](const Uuid& t, const std::string& tier) {
    ASSERT_OK(e().PutRecord(Scope::Service(), "plans",
                            Json{{"tenant_id", t.ToString()}, {"tier", tier}}.dump()));
  };
  uint64_t start = e().FeedInfo().durable;
  for (int i = 0; i < 20; ++i) put(t1, "backlog");
  FeedFilter plans;
  plans.collections = {"plans"};
  std::shared_ptr<Subscription> live;
  if (with_live_subscriber) live = Must(e().Subscribe(Scope::Service(), plans, std::nullopt));
  auto sub = Must(e().Subscribe(Scope::ForUser(u), plans, start));
  sub->Wait(5000);  // paused behind, its buffer full
  ASSERT_OK(e().UpdateUser(Scope::Service(), u, Json{{"tenant_id", t2.ToString()}}.dump()));
  put(t1, "after the move");
  if (live) {
    ASSERT_EQ(Drain(*live, [](auto& v) { return !v.empty(); }).size(), 1u);
  }
  // The client now reads everything it is sent.
  auto got = Drain(
      *sub, [](auto&) { return false; }, 3000);
  for (const auto& ev : got)
    EXPECT_EQ(Json::parse(ev->json)["tier"], "backlog") << "read t1's plan after leaving t1";
  EXPECT_TRUE(sub->Finished()) << "still following as t1's user";
  EXPECT_CODE(sub->end_status(), kResourceExhausted);
  EXPECT_LE(got.size(), 20u);
  if (!got.empty()) {
    EXPECT_GE(sub->resume_point(), got.back()->sequence);
  }
}

// With a live subscriber the feed reads the move as it happens; without one only the
// subscription's own catch-up reads it.
TEST_F(FeedAdversarial, UserMovedWhileCatchingUpStopsReadingItsOldTenantsRecords) {
  UserMovedWhileCatchingUp(/*with_live_subscriber=*/true);
}
TEST_F(FeedAdversarial, UserMovedWhileCatchingUpAloneStopsReadingItsOldTenantsRecords) {
  UserMovedWhileCatchingUp(/*with_live_subscriber=*/false);
}

// Resuming inside one multi-record write (a user's hard delete and its cascade): each
// resume point gets exactly the rest of the batch, with the owner and commit time the
// batch's notes give (the notes sit before the resume point), from the in-memory tail of
// the log and from the log files after a restart.
TEST_F(FeedAdversarial, ResumeInsideAMultiRecordBatchKeepsItsNotes) {
  Uuid t = MakeTenant("casc");
  Uuid u = MakeUser("casc@x.com", t);
  Uuid chat = MakeChat(u);
  for (int i = 0; i < 3; ++i) ASSERT_OK(Append(chat));
  FeedFilter f;
  f.types = Bit(RecordType::kUser) | Bit(RecordType::kChat) | Bit(RecordType::kMessage);
  uint64_t start = e().FeedInfo().durable;
  ASSERT_OK(e().DeleteUser(Scope::Service(), u, DeleteMode::kHard));
  auto all = Must(e().Subscribe(Scope::Service(), f, start));
  auto batch = Drain(*all, [](auto& v) { return v.size() >= 5; });
  ASSERT_EQ(batch.size(), 5u) << "the user, its chat and 3 messages";
  for (const auto& ev : batch) {
    EXPECT_EQ(ev->op, ChangeOp::kDelete);
    EXPECT_EQ(ev->tenant, t);
    EXPECT_EQ(ev->commit_time, batch[0]->commit_time);
  }
  auto check_from = [&](size_t i, const char* where) {
    auto sub = Must(e().Subscribe(Scope::Admin(t), f, batch[i]->sequence - 1));
    auto rest = Drain(*sub, [&](auto& v) { return v.size() >= batch.size() - i; });
    ASSERT_EQ(rest.size(), batch.size() - i) << where << ", from " << i;
    for (size_t k = 0; k < rest.size(); ++k) {
      EXPECT_EQ(rest[k]->sequence, batch[i + k]->sequence) << where;
      EXPECT_EQ(rest[k]->tenant, t) << where;
      EXPECT_EQ(rest[k]->user, u) << where;
      EXPECT_EQ(rest[k]->commit_time, batch[0]->commit_time) << where;
    }
  };
  for (size_t i = 1; i < batch.size(); ++i) check_from(i, "tail");
  Reopen();
  for (size_t i = 1; i < batch.size(); ++i) check_from(i, "log files");
}

}  // namespace
}  // namespace agentstore::testing

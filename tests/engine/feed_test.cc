// The change feed in process: commit order and exactly-once delivery under concurrent
// writers, resume from a sequence (after a cancel and after a restart), out_of_range for
// a sequence no longer kept, the scope rules (a user sees only its own records, for
// every record type), revocation and user deletion ending a subscription, and a slow
// subscriber cut off with its resume point while writers and other subscribers go on;
// collection records in the feed (ops, access as coll_get reads them, filters by name,
// resume across a restart, the user-delete cascade).
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "feed_test_util.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Event = Subscription::Event;

size_t CountType(const std::vector<Event>& evs, RecordType t) {
  size_t n = 0;
  for (const auto& e : evs) n += e->type == t;
  return n;
}

class Feed : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(storage::Durability d = storage::Durability::kAlways) {
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = d;
    o.shards = 4;
    o.feed = feed_;
    o.feed_retention_seconds = retention_s_;
    o.feed_retention_mb = retention_mb_;
    auto r = Engine::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    engine_ = std::move(r).value();
  }
  void Reopen() {
    engine_.reset();
    Open();
  }
  Engine& e() { return *engine_; }

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
  Result<Row<fb::Message>> Append(const Uuid& chat, const std::string& text = "hi") {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = R"([{"type":"text","text":")" + text + R"("}])";
    return e().AppendMessage(Scope::Service(), m);
  }

  TempDir dir_;
  FeedOptions feed_;
  uint64_t retention_s_ = 3600, retention_mb_ = 1024;
  std::unique_ptr<Engine> engine_;
};

TEST_F(Feed, CommitOrderExactlyOnceUnderEightWriters) {
  constexpr int kThreads = 8, kPerThread = 250;
  std::vector<Uuid> chats;
  for (int t = 0; t < kThreads; ++t)
    chats.push_back(MakeChat(MakeUser("w" + std::to_string(t) + "@x.com")));
  FeedFilter f;
  f.types = 1u << static_cast<int>(RecordType::kMessage);
  auto sub = Must(e().Subscribe(Scope::Service(), f, std::nullopt));
  std::set<Uuid> acked;
  std::mutex mu;
  std::atomic<bool> not_durable{false};
  std::vector<Event> got;
  std::atomic<bool> writing{true};
  std::thread reader([&] {
    // Per run (not static): a repeat (--gtest_repeat) gets its own minute.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (writing || got.size() < static_cast<size_t>(kThreads * kPerThread)) {
      std::vector<Event> batch;
      sub->Poll(&batch, 1000);
      uint64_t durable = e().FeedInfo().durable;
      for (auto& ev : batch)
        if (ev->sequence > durable) not_durable = true;
      got.insert(got.end(), batch.begin(), batch.end());
      if (batch.empty()) sub->Wait(20);
      if (!writing && got.size() < static_cast<size_t>(kThreads * kPerThread) && sub->Finished())
        break;
      if (std::chrono::steady_clock::now() > deadline) break;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto m = Append(chats[t]);
        ASSERT_TRUE(m.ok());
        std::lock_guard l(mu);
        acked.insert(ToUuid(m->get()->id()));
      }
    });
  for (auto& w : writers) w.join();
  writing = false;
  reader.join();
  EXPECT_FALSE(not_durable.load()) << "an event arrived before its change was durable";
  ASSERT_EQ(got.size(), acked.size());
  std::set<Uuid> seen;
  uint64_t prev = 0;
  for (const auto& ev : got) {
    EXPECT_GT(ev->sequence, prev) << "commit order";
    prev = ev->sequence;
    EXPECT_EQ(ev->op, ChangeOp::kCreate);
    EXPECT_TRUE(seen.insert(ev->id).second) << "delivered twice";
    auto m = flatbuffers::GetRoot<fb::Message>(ev->bytes.data());
    EXPECT_EQ(ToUuid(m->id()), ev->id);
    EXPECT_GT(ev->commit_time, 0);
  }
  EXPECT_EQ(seen, acked);
  EXPECT_OK(sub->end_status());
}

TEST_F(Feed, ResumeAfterCancelAndAfterRestartDeliversTheRestOnce) {
  Uuid chat = MakeChat(MakeUser("r@x.com"));
  FeedFilter f;
  f.types = 1u << static_cast<int>(RecordType::kMessage);
  auto start = e().FeedInfo().durable;
  for (int i = 0; i < 50; ++i) ASSERT_OK(Append(chat, "a" + std::to_string(i)));
  // First connection: reads 20 and drops.
  auto sub = Must(e().Subscribe(Scope::Service(), f, start));
  auto first = Drain(*sub, [](auto& v) { return v.size() >= 20; });
  ASSERT_GE(first.size(), 20u);
  first.resize(20);
  sub->Cancel();
  uint64_t resume = first.back()->sequence;
  for (int i = 50; i < 80; ++i) ASSERT_OK(Append(chat, "a" + std::to_string(i)));
  auto again = Must(e().Subscribe(Scope::Service(), f, resume));
  auto rest = Drain(*again, [](auto& v) { return v.size() >= 60; });
  ASSERT_EQ(rest.size(), 60u);
  EXPECT_GT(rest.front()->sequence, resume);
  again->Cancel();

  // A clean restart: the log survives in the WAL archive; resume where we were.
  Reopen();
  for (int i = 80; i < 90; ++i) ASSERT_OK(Append(chat, "a" + std::to_string(i)));
  auto after = Must(e().Subscribe(Scope::Service(), f, resume));
  auto all = Drain(*after, [](auto& v) { return v.size() >= 70; });
  ASSERT_EQ(all.size(), 70u);
  for (size_t i = 0; i < 60; ++i) EXPECT_EQ(all[i]->sequence, rest[i]->sequence);
  std::set<Uuid> ids;
  for (auto& ev : all) ids.insert(ev->id);
  EXPECT_EQ(ids.size(), 70u);
  // Everything from the very start too.
  auto from_start = Must(e().Subscribe(Scope::Service(), f, start));
  EXPECT_EQ(Drain(*from_start, [](auto& v) { return v.size() >= 90; }).size(), 90u);
}

TEST_F(Feed, TooOldSequenceIsOutOfRangeNamingTheOldest) {
  engine_.reset();
  retention_s_ = 0;
  retention_mb_ = 0;  // WAL files go as soon as a flush makes them obsolete
  Open();
  Uuid chat = MakeChat(MakeUser("o@x.com"));
  for (int i = 0; i < 20; ++i) ASSERT_OK(Append(chat));
  Reopen();  // a clean stop flushes; the old WAL is deleted
  for (int i = 0; i < 5; ++i) ASSERT_OK(Append(chat));
  auto info = e().FeedInfo();
  ASSERT_GT(info.oldest, 2u);
  auto r = e().Subscribe(Scope::Service(), {}, 1);
  EXPECT_CODE(r, kOutOfRange);
  EXPECT_NE(r.status().message().find("oldest kept is " + std::to_string(info.oldest)),
            std::string::npos)
      << r.status().ToString();
  // The oldest kept still works, and a sequence from the future is refused.
  auto ok = e().Subscribe(Scope::Service(), {}, info.oldest - 1);
  ASSERT_OK(ok);
  EXPECT_EQ(Drain(**ok, [](auto& v) { return v.size() >= 5; }).size() >= 5, true);
  EXPECT_CODE(e().Subscribe(Scope::Service(), {}, info.durable + 1000), kInvalidArgument);
}

// The store bounds how many subscriptions it holds (each buffer is bounded on its own):
// past it a subscribe is refused and opens nothing. One cancelled, or dropped by its
// holder without a cancel, makes room at once.
TEST_F(Feed, SubscriptionsPastTheStoresLimitAreRefused) {
  engine_.reset();
  feed_.max_subscriptions = 3;
  Open();
  std::vector<std::shared_ptr<Subscription>> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(Must(e().Subscribe(Scope::Service(), {}, {})));
  auto refused = e().Subscribe(Scope::Service(), {}, {});
  EXPECT_CODE(refused, kResourceExhausted);
  EXPECT_NE(refused.status().message().find("--feed-max-subscriptions"), std::string::npos);
  subs[0]->Cancel();
  subs[0] = Must(e().Subscribe(Scope::Service(), {}, {}));
  EXPECT_CODE(e().Subscribe(Scope::Service(), {}, {}), kResourceExhausted);
  subs[1].reset();  // let go without Cancel
  subs[1] = Must(e().Subscribe(Scope::Service(), {}, {}));
  EXPECT_CODE(e().Subscribe(Scope::Service(), {}, {}), kResourceExhausted);
  // They deliver like any other.
  Uuid chat = MakeChat(MakeUser("cap@x.com"));
  ASSERT_OK(Append(chat));
  for (auto& s : subs) EXPECT_FALSE(Drain(*s, [](auto& v) { return !v.empty(); }).empty());
}

// Every record type a user owns, written for two users in two tenants: the user's
// subscription gets its own changes of each type and never the other's.
TEST_F(Feed, UserSubscriptionSeesOnlyItsOwnRecordsOfEveryType) {
  fb::TenantT t;
  t.name = "T1";
  t.slug = "t1";
  Uuid t1 = ToUuid(Must(e().CreateTenant(Scope::Service(), t))->id());
  t.name = "T2";
  t.slug = "t2";
  Uuid t2 = ToUuid(Must(e().CreateTenant(Scope::Service(), t))->id());
  Uuid a = MakeUser("a@x.com", t1), b = MakeUser("b@x.com", t2);
  auto start = e().FeedInfo().durable;
  auto sub_a = Must(e().Subscribe(Scope::ForUser(a), {}, start));
  FeedFilter tenant2;
  tenant2.tenant = t2;
  auto sub_t2 = Must(e().Subscribe(Scope::Admin(), tenant2, start));
  auto sub_all = Must(e().Subscribe(Scope::Service(), {}, start));

  fb::AgentT ag;
  ag.name = "bot";
  ag.is_public = true;
  ag.model = "gpt-4o";
  Uuid agent = ToUuid(Must(e().CreateAgent(Scope::Admin(), ag))->id());
  for (const Uuid& u : {a, b}) {
    Scope s = Scope::ForUser(u);
    ASSERT_OK(e().UpdateUser(s, u, R"({"full_name":"N"})"));
    fb::AgentT own;
    own.name = "mine";
    own.model = "m";
    ASSERT_OK(e().CreateAgent(s, own));
    fb::UserAgentT ua;
    ua.user_id = FbId(u);
    ua.agent_id = FbId(agent);
    Uuid ua_id = ToUuid(Must(e().CreateUserAgent(s, ua))->id());
    Uuid chat = MakeChat(u);
    Uuid msg = ToUuid(Must(Append(chat))->id());
    ASSERT_OK(e().Vote(s, chat, msg, true));
    fb::UserMemoryT m;
    m.user_id = FbId(u);
    m.memory_key = "k";
    m.memory_value = R"({"content":"x"})";
    m.embedding.assign(384, 0.5f);
    ASSERT_OK(e().UpsertMemory(s, m));
    fb::UsageLogT call;
    call.user_id = FbId(u);
    call.agent_id = FbId(agent);
    call.model = "gpt-4o";
    call.provider = "openai";
    call.input_tokens = 3;
    ASSERT_OK(e().TrackAgentUsage(s, call));
    ASSERT_OK(e().DeleteChat(s, chat, DeleteMode::kHard));
    ASSERT_OK(e().DeleteUserAgent(s, ua_id, DeleteMode::kHard));
  }
  auto all = Drain(
      *sub_all, [](auto&) { return false; }, 1500);
  auto mine = Drain(
      *sub_a, [&](auto& v) { return v.size() * 2 >= all.size() - 4; }, 3000);
  auto ten2 = Drain(
      *sub_t2, [&](auto& v) { return v.size() * 2 >= all.size() - 4; }, 3000);
  std::set<RecordType> types;
  for (const auto& ev : mine) {
    EXPECT_EQ(ev->user, a) << RecordTypeName(ev->type) << " of another user";
    EXPECT_EQ(ev->tenant, t1);
    types.insert(ev->type);
  }
  for (RecordType rt :
       {RecordType::kUser, RecordType::kAgent, RecordType::kUserAgent, RecordType::kChat,
        RecordType::kMessage, RecordType::kVote, RecordType::kUserMemory, RecordType::kUsageLog})
    EXPECT_TRUE(types.count(rt)) << "user a saw no change of " << RecordTypeName(rt);
  size_t deletes = 0;
  for (const auto& ev : mine) deletes += ev->op == ChangeOp::kDelete;
  EXPECT_GE(deletes, 4u) << "chat, message, vote, user_agent deletes carry their owner";
  for (const auto& ev : ten2) EXPECT_EQ(ev->tenant, t2) << RecordTypeName(ev->type);
  size_t b_in_all = 0;
  for (const auto& ev : all) b_in_all += ev->user == b;
  EXPECT_GE(ten2.size(), b_in_all);
  EXPECT_EQ(CountType(all, RecordType::kApiKey), 0u);
  EXPECT_EQ(CountType(all, RecordType::kUserUsageRollup), 0u);

  // A user may not widen its filter.
  FeedFilter other;
  other.user = b;
  EXPECT_CODE(e().Subscribe(Scope::ForUser(a), other, std::nullopt), kPermissionDenied);
  EXPECT_CODE(e().Subscribe(Scope::ForUser(a), tenant2, std::nullopt), kPermissionDenied);
  FeedFilter keys;
  keys.types = 1u << static_cast<int>(RecordType::kApiKey);
  EXPECT_CODE(e().Subscribe(Scope::Service(), keys, std::nullopt), kInvalidArgument);
}

TEST_F(Feed, RevokingTheKeyOrDeletingTheUserEndsTheSubscription) {
  Uuid u = MakeUser("k@x.com");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(u);
  auto key = Must(e().CreateApiKey(Scope::Service(), k));
  Uuid key_id = ToUuid(key.key->id());
  auto sub = Must(e().Subscribe(Scope::ForUser(u), {}, std::nullopt, key_id));
  Uuid chat = MakeChat(u);
  ASSERT_OK(Append(chat));
  ASSERT_OK(e().RevokeApiKey(Scope::Service(), key_id));
  ASSERT_OK(Append(chat));
  auto got = Drain(
      *sub, [](auto&) { return false; }, 3000);
  EXPECT_TRUE(sub->Finished());
  EXPECT_CODE(sub->end_status(), kPermissionDenied);
  ASSERT_EQ(got.size(), 3u) << "the chat, the first message and its chat's totals; nothing "
                               "after the revocation";
  EXPECT_EQ(got[1]->type, RecordType::kMessage);
  EXPECT_EQ(got[2]->type, RecordType::kChat);
  EXPECT_EQ(got[2]->op, ChangeOp::kUpdate);

  auto sub2 = Must(e().Subscribe(Scope::ForUser(u), {}, std::nullopt));
  ASSERT_OK(e().DeleteUser(Scope::Service(), u, DeleteMode::kSoft));
  Drain(
      *sub2, [](auto&) { return false; }, 3000);
  EXPECT_TRUE(sub2->Finished());
  EXPECT_CODE(sub2->end_status(), kPermissionDenied);
}

TEST_F(Feed, SlowSubscriberIsCutOffWithItsResumePointWhileOthersKeepUp) {
  engine_.reset();
  feed_.max_queued_events = 200;
  Open();
  Uuid chat = MakeChat(MakeUser("s@x.com"));
  FeedFilter f;
  f.types = 1u << static_cast<int>(RecordType::kMessage);
  auto start = e().FeedInfo().durable;
  auto slow = Must(e().Subscribe(Scope::Service(), f, std::nullopt));  // never polled
  auto fast = Must(e().Subscribe(Scope::Service(), f, std::nullopt));
  std::vector<Event> fast_got;
  std::atomic<bool> writing{true};
  std::thread reader([&] {
    while (writing || fast_got.size() < 1000) {
      if (fast->Poll(&fast_got, 1000) == 0) fast->Wait(10);
      if (!writing && fast->Finished()) break;
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_OK(Append(chat));
  auto with_slow = std::chrono::steady_clock::now() - t0;
  writing = false;
  reader.join();
  EXPECT_EQ(fast_got.size(), 1000u) << "the fast subscriber got everything";
  EXPECT_OK(fast->end_status());
  ASSERT_TRUE(slow->Finished() || slow->end_status().code() == StatusCode::kResourceExhausted);
  EXPECT_CODE(slow->end_status(), kResourceExhausted);
  std::vector<Event> queued;
  slow->Poll(&queued, 100000);
  EXPECT_EQ(queued.size(), 200u);
  uint64_t resume = slow->resume_point();
  EXPECT_GE(resume, queued.back()->sequence);
  // Resuming from the resume point gets exactly the other 800.
  auto again = Must(e().Subscribe(Scope::Service(), f, resume));
  auto rest = Drain(*again, [](auto& v) { return v.size() >= 800; });
  EXPECT_EQ(rest.size(), 800u);
  EXPECT_GT(rest.front()->sequence, queued.back()->sequence);

  // Writers keep their speed: the same writes with no subscriber at all.
  slow.reset();
  fast->Cancel();
  again->Cancel();
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_OK(Append(chat));
  auto alone = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(with_slow, alone * 3 + std::chrono::milliseconds(200))
      << "a stuck subscriber slowed writers";
  (void)start;
}

// The live read builds no event for a user nobody follows (only user-filtered
// subscriptions live): the followed user's changes still come with their tenant, and a
// subscription resuming from before the skipped change still gets it from the log.
TEST_F(Feed, UnfollowedUsersChangesAreSkippedLiveAndStillReadableLater) {
  fb::TenantT t;
  t.name = "T1";
  t.slug = "t1";
  Uuid t1 = ToUuid(Must(e().CreateTenant(Scope::Service(), t))->id());
  Uuid a = MakeUser("fa@x.com", t1), b = MakeUser("fb@x.com", t1);
  Uuid chat_a = MakeChat(a), chat_b = MakeChat(b);
  FeedFilter only_a;
  only_a.user = a;
  only_a.types = 1u << static_cast<int>(RecordType::kMessage);
  auto sub_a = Must(e().Subscribe(Scope::Service(), only_a, std::nullopt));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // live by now
  uint64_t before_b = e().FeedInfo().durable;
  ASSERT_OK(Append(chat_b, "to b"));
  ASSERT_OK(Append(chat_a, "to a"));
  auto got = Drain(*sub_a, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->user, a);
  EXPECT_EQ(got[0]->tenant, t1) << "the tenant comes from the user when the record lacks it";
  FeedFilter only_b = only_a;
  only_b.user = b;
  auto sub_b = Must(e().Subscribe(Scope::Service(), only_b, before_b));
  auto got_b = Drain(*sub_b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(got_b[0]->user, b);
  EXPECT_EQ(got_b[0]->tenant, t1);
}

// Drain (a pusher's Poll) stops at its event or byte limit, always moves at least one
// event, and says whether more wait and whether the subscription has finished.
TEST_F(Feed, DrainStopsAtItsLimitsAndSaysWhatIsLeft) {
  Uuid chat = MakeChat(MakeUser("drain@x.com"));
  FeedFilter f;
  f.types = 1u << static_cast<int>(RecordType::kMessage);
  auto sub = Must(e().Subscribe(Scope::Service(), f, std::nullopt));
  auto twin = Must(e().Subscribe(Scope::Service(), f, std::nullopt));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Append(chat).ok());
  // Once the twin has all ten, so has `sub`: the fan-out queues a step's events in every
  // subscription under the feed's lock, which FeedInfo (counting subscribers) waits for.
  ASSERT_EQ(Drain(*twin, [](auto& v) { return v.size() >= 10; }).size(), 10u);
  e().FeedInfo();
  std::vector<Event> out;
  auto d = sub->Drain(&out, 3, SIZE_MAX);
  EXPECT_EQ(d.events, 3u);
  EXPECT_TRUE(d.more);
  EXPECT_FALSE(d.finished);
  d = sub->Drain(&out, 100, 1);  // a byte limit below one event: still one
  EXPECT_EQ(d.events, 1u);
  EXPECT_TRUE(d.more);
  // Stops once what it moved holds the budget (about two of the six left): all but the
  // last event it moved hold less, all of them at least the budget.
  size_t budget = out[0]->size() * 2, before = out.size(), held = 0;
  d = sub->Drain(&out, 100, budget);
  ASSERT_GE(d.events, 1u);
  EXPECT_TRUE(d.more);
  for (size_t i = before; i + 1 < out.size(); ++i) held += out[i]->size();
  EXPECT_LT(held, budget);
  EXPECT_GE(held + out.back()->size(), budget);
  d = sub->Drain(&out, 100, SIZE_MAX);
  EXPECT_FALSE(d.more);
  EXPECT_FALSE(d.finished);
  ASSERT_EQ(out.size(), 10u);
  for (size_t i = 1; i < out.size(); ++i) EXPECT_GT(out[i]->sequence, out[i - 1]->sequence);
  sub->Cancel();
  d = sub->Drain(&out, 100, SIZE_MAX);
  EXPECT_EQ(d.events, 0u);
  EXPECT_TRUE(d.finished);
}

// A connection carrying several subscriptions drains them when the first one's wake
// posts to it: every event of the same log step must be queued by then, in every
// subscription, or the connection writes once per event instead of once per step (and a
// drain racing the fan-out could see one subscription's event before another's).
TEST_F(Feed, WakesComeAfterTheWholeStepIsQueuedInEverySubscription) {
  Uuid user = MakeUser("w@x.com");
  Uuid chat = MakeChat(user);
  FeedFilter messages, chats;
  messages.types = 1u << static_cast<int>(RecordType::kMessage);
  chats.types = 1u << static_cast<int>(RecordType::kChat);
  std::shared_ptr<Subscription> a, b;
  std::mutex mu;
  bool armed = false;
  // Per wake: what the other subscription held at that moment.
  std::vector<std::vector<RecordType>> wakes;
  auto take = [&](std::shared_ptr<Subscription>* other) {
    return [&, other] {
      std::lock_guard l(mu);
      if (!armed) return;
      std::vector<Event> got;
      (*other)->Poll(&got, 100);
      wakes.emplace_back();
      for (auto& ev : got) wakes.back().push_back(ev->type);
    };
  };
  a = Must(e().Subscribe(Scope::Service(), messages, std::nullopt, std::nullopt, take(&b)));
  b = Must(e().Subscribe(Scope::Service(), chats, std::nullopt, std::nullopt, take(&a)));
  // Both must follow the live end before the write (one catching up is pushed alone).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    std::lock_guard l(mu);
    armed = true;
  }
  // An append writes the message and its chat's totals in one batch: one durable step.
  ASSERT_OK(Append(chat));
  for (int i = 0; i < 400; ++i) {
    {
      std::lock_guard l(mu);
      if (!wakes.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::lock_guard l(mu);
  ASSERT_FALSE(wakes.empty()) << "no subscription was woken";
  // The first wake already found the other subscription's event of the same step.
  ASSERT_EQ(wakes.front().size(), 1u) << "woken before the step was fanned out";
}

// ---- collection records ----

using Json = nlohmann::json;

std::vector<Event> Collections(const std::vector<Event>& evs) {
  std::vector<Event> out;
  for (const auto& ev : evs)
    if (ev->type == kCollectionRecordType) out.push_back(ev);
  return out;
}

// "collection key" of every collection event (what a subscription was sent).
std::multiset<std::string> CollKeys(const std::vector<Event>& evs) {
  std::multiset<std::string> out;
  for (const auto& ev : Collections(evs)) out.insert(ev->collection + " " + ev->record_key);
  return out;
}

class FeedCollections : public Feed {
 protected:
  void SetUp() override {
    Feed::SetUp();
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "notes", "owner": "user",
        "fields": [{"name": "text", "type": "string"},
                   {"name": "meta", "type": "json"}]})"));
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "plans", "owner": "tenant",
        "fields": [{"name": "tier", "type": "string"}]})"));
    ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "news", "owner": "none",
        "key": ["id", "created_at"], "fields": [{"name": "title", "type": "string"}]})"));
  }
  Uuid MakeTenant(const std::string& slug) {
    fb::TenantT t;
    t.name = slug;
    t.slug = slug;
    return ToUuid(Must(e().CreateTenant(Scope::Service(), t))->id());
  }
  Json Put(const Scope& scope, const std::string& coll, const Json& rec) {
    return Json::parse(Must(e().PutRecord(scope, coll, rec.dump())));
  }
  // The key coll_get takes for a record as the store answered it.
  static std::string KeyOf(const std::string& coll, const Json& rec) {
    Json k{{"id", rec["id"]}};
    if (coll == "news") k["created_at"] = rec["created_at"];
    return k.dump();
  }
};

// Create, replace, merge-patch, soft delete and hard delete, in commit order with their
// ops; each event's JSON is what coll_get answered right after the change, and its key
// is one coll_get / coll_delete take.
TEST_F(FeedCollections, PutUpdateSoftAndHardDeleteArriveInCommitOrderWithTheirOps) {
  Uuid u = MakeUser("c@x.com");
  auto start = e().FeedInfo().durable;
  auto sub = Must(e().Subscribe(Scope::Service(), {}, start));
  Scope svc = Scope::Service();
  std::vector<std::string> answers;  // coll_get after each change ("" for the hard delete)
  Json rec = Put(svc, "notes", {{"user_id", u.ToString()}, {"text", "one"}});
  std::string key = KeyOf("notes", rec);
  answers.push_back(Must(e().GetRecord(svc, "notes", key)));
  Put(svc, "notes", {{"id", rec["id"]}, {"user_id", u.ToString()}, {"text", "replaced"}});
  answers.push_back(Must(e().GetRecord(svc, "notes", key)));
  ASSERT_OK(e().UpdateRecord(svc, "notes", key, R"({"meta": {"a": 1}})", JsonMode::kMerge));
  ASSERT_OK(e().UpdateRecord(svc, "notes", key, R"({"meta": {"b": 2}})", JsonMode::kMerge));
  answers.push_back(Must(e().GetRecord(svc, "notes", key)));
  ASSERT_OK(e().DeleteRecord(svc, "notes", key, DeleteMode::kSoft));
  // A news item put with an old created_at (a version): new all the same.
  Json news = Put(svc, "news", {{"title", "t"}, {"created_at", 1'000'000}});
  std::string news_key = KeyOf("news", news);
  answers.push_back(Must(e().GetRecord(svc, "news", news_key)));
  ASSERT_OK(e().DeleteRecord(svc, "news", news_key, DeleteMode::kHard));
  auto evs = Collections(Drain(*sub, [](auto& v) { return Collections(v).size() >= 7; }));
  ASSERT_EQ(evs.size(), 7u);
  std::vector<ChangeOp> ops;
  uint64_t prev = start;
  for (const auto& ev : evs) {
    EXPECT_GT(ev->sequence, prev) << "commit order";
    prev = ev->sequence;
    ops.push_back(ev->op);
    EXPECT_TRUE(ev->bytes.empty());
    EXPECT_GT(ev->commit_time, 0);
  }
  EXPECT_EQ(ops, (std::vector<ChangeOp>{ChangeOp::kCreate, ChangeOp::kUpdate, ChangeOp::kUpdate,
                                        ChangeOp::kUpdate, ChangeOp::kUpdate, ChangeOp::kCreate,
                                        ChangeOp::kDelete}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(evs[i]->collection, "notes");
    EXPECT_EQ(Json::parse(evs[i]->record_key), Json::parse(key));
    EXPECT_EQ(evs[i]->user, u);
    EXPECT_EQ(evs[i]->id, *Uuid::Parse(rec["id"].get<std::string>()));
  }
  EXPECT_EQ(evs[0]->json, answers[0]);
  EXPECT_EQ(evs[1]->json, answers[1]);
  EXPECT_EQ(Json::parse(evs[2]->json)["meta"], Json({{"a", 1}}));
  EXPECT_EQ(evs[3]->json, answers[2]) << "the merge patch, as coll_get answers it";
  Json soft = Json::parse(evs[4]->json);
  EXPECT_TRUE(soft["deleted_at"].is_number_integer()) << evs[4]->json;
  EXPECT_EQ(evs[5]->collection, "news");
  EXPECT_EQ(evs[5]->json, answers[3]);
  EXPECT_TRUE(evs[5]->user.IsNil());
  EXPECT_TRUE(evs[6]->json.empty()) << "a hard delete carries the key only";
  EXPECT_EQ(Json::parse(evs[6]->record_key), Json::parse(news_key));
  // The key works as coll_delete's: the record is gone.
  EXPECT_CODE(e().GetRecord(svc, "news", evs[6]->record_key), kNotFound);
}

// A key of several typed parts (a string with a NUL byte, a decimal, a negative real)
// comes back in the event as coll_get and coll_delete take it.
TEST_F(FeedCollections, MultiPartKeysComeBackUsable) {
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "ledger", "owner": "none",
      "key": ["id", "day", "amount", "rate"],
      "fields": [{"name": "day", "type": "string", "required": true},
                 {"name": "amount", "type": "decimal", "scale": 2, "required": true},
                 {"name": "rate", "type": "real", "required": true},
                 {"name": "open", "type": "bool", "required": true}]})"));
  auto start = e().FeedInfo().durable;
  auto sub = Must(e().Subscribe(Scope::Service(), {}, start));
  Json rec =
      Put(Scope::Service(), "ledger",
          {{"day", std::string("a\0b", 3)}, {"amount", "12.34"}, {"rate", -1.5}, {"open", true}});
  auto evs = Collections(Drain(*sub, [](auto& v) { return Collections(v).size() >= 1; }));
  ASSERT_EQ(evs.size(), 1u);
  Json key = Json::parse(evs[0]->record_key);
  EXPECT_EQ(key["day"], std::string("a\0b", 3));
  EXPECT_EQ(key["amount"], "12.34");
  EXPECT_EQ(key["rate"], -1.5);
  EXPECT_FALSE(key.contains("open"));
  EXPECT_EQ(Json::parse(Must(e().GetRecord(Scope::Service(), "ledger", evs[0]->record_key))), rec);
  ASSERT_OK(e().DeleteRecord(Scope::Service(), "ledger", evs[0]->record_key, DeleteMode::kHard));
  auto more = Collections(Drain(*sub, [](auto& v) { return Collections(v).size() >= 1; }));
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0]->op, ChangeOp::kDelete);
  EXPECT_EQ(Json::parse(more[0]->record_key), key);
}

// A user moved to another tenant stops reading the old tenant's tenant-owned records: its
// live subscription ends just before the move, and a new one from there reads
// as the new tenant's user.
TEST_F(FeedCollections, MovingTheUserToAnotherTenantEndsItsSubscription) {
  Uuid a = MakeTenant("ta"), b = MakeTenant("tb");
  Uuid u = MakeUser("mover@x.com", a);
  auto sub = Must(e().Subscribe(Scope::ForUser(u), {}, e().FeedInfo().durable));
  Put(Scope::Service(), "plans", {{"tenant_id", a.ToString()}, {"tier", "a1"}});
  auto first = Collections(Drain(*sub, [](auto& v) { return Collections(v).size() >= 1; }));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_OK(e().UpdateUser(Scope::Service(), u, Json{{"tenant_id", b.ToString()}}.dump()));
  Put(Scope::Service(), "plans", {{"tenant_id", a.ToString()}, {"tier", "a2"}});
  auto rest = Drain(
      *sub, [](auto&) { return false; }, 2000);
  EXPECT_TRUE(sub->Finished());
  // resource_exhausted, as for a slow subscriber: both clients subscribe again by themselves.
  EXPECT_EQ(sub->end_status().code(), StatusCode::kResourceExhausted)
      << sub->end_status().ToString();
  EXPECT_TRUE(Collections(rest).empty()) << "read tenant a's plan after leaving it";
  auto again = Must(e().Subscribe(Scope::ForUser(u), {}, sub->resume_point()));
  Put(Scope::Service(), "plans", {{"tenant_id", b.ToString()}, {"tier", "b1"}});
  auto evs = Drain(*again, [](auto& v) { return Collections(v).size() >= 1; });
  EXPECT_EQ(CountType(evs, RecordType::kUser), 1u) << "the move itself, delivered once";
  auto plans = Collections(evs);
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(Json::parse(plans[0]->json)["tier"], "b1");
  EXPECT_FALSE(again->Finished());
}

// A service key moving a record to another owner (a put of the same key naming another
// user): the old owner's subscription gets a delete (the record is gone for it), the new
// owner's a create; live and when resuming from the log after a restart.
TEST_F(FeedCollections, MovingARecordToAnotherOwnerDeletesItForTheOldOne) {
  Uuid u1 = MakeUser("from@x.com"), u2 = MakeUser("to@x.com");
  uint64_t start = e().FeedInfo().durable;
  auto s1 = Must(e().Subscribe(Scope::ForUser(u1), {}, start));
  auto s2 = Must(e().Subscribe(Scope::ForUser(u2), {}, start));
  Json rec = Put(Scope::Service(), "notes", {{"user_id", u1.ToString()}, {"text", "mine"}});
  std::string key = KeyOf("notes", rec);
  Put(Scope::Service(), "notes", {{"id", rec["id"]}, {"user_id", u2.ToString()}, {"text", "now"}});
  auto check = [&](Subscription& a, Subscription& b) {
    auto from = Collections(Drain(a, [](auto& v) { return Collections(v).size() >= 2; }));
    ASSERT_EQ(from.size(), 2u);
    EXPECT_EQ(from[0]->op, ChangeOp::kCreate);
    EXPECT_EQ(from[1]->op, ChangeOp::kDelete);
    EXPECT_EQ(Json::parse(from[1]->record_key), Json::parse(key));
    EXPECT_TRUE(from[1]->json.empty()) << "the old owner reads nothing of the moved record";
    auto to = Collections(Drain(b, [](auto& v) { return Collections(v).size() >= 1; }));
    ASSERT_EQ(to.size(), 1u);
    EXPECT_EQ(to[0]->op, ChangeOp::kCreate);
    EXPECT_EQ(Json::parse(to[0]->json)["text"], "now");
  };
  check(*s1, *s2);
  s1.reset();
  s2.reset();
  Reopen();
  EXPECT_EQ(Json::parse(Must(e().GetRecord(Scope::ForUser(u2), "notes", key)))["text"], "now");
  EXPECT_CODE(e().GetRecord(Scope::ForUser(u1), "notes", key), kNotFound);
  auto r1 = Must(e().Subscribe(Scope::ForUser(u1), {}, start));
  auto r2 = Must(e().Subscribe(Scope::ForUser(u2), {}, start));
  check(*r1, *r2);
}

// A catch-up that reads a user's old put (from before the user moved to another tenant)
// must not make the live feed believe the user is back in the old tenant: the old
// tenant's service key would then receive the moved user's new chats, and the new
// tenant's would miss them. The catch-up here waits (its queue full) between the old
// put and the move, so what it read last is the old tenant.
TEST_F(FeedCollections, CatchUpOfAnOldTenantDoesNotRouteLiveChangesThere) {
  feed_.read_chunk = 2;
  feed_.max_queued_events = 2;
  Reopen();
  Uuid a = MakeTenant("ta"), b = MakeTenant("tb");
  uint64_t before = e().FeedInfo().durable;
  Uuid u = MakeUser("mover2@x.com", a);
  Uuid v = MakeUser("stays@x.com", a);
  Uuid vchat = MakeChat(v);
  for (int i = 0; i < 4; ++i) ASSERT_OK(Append(vchat).status());
  ASSERT_OK(e().UpdateUser(Scope::Service(), u, Json{{"tenant_id", b.ToString()}}.dump()));
  FeedFilter chats;
  chats.types = 1u << static_cast<int>(RecordType::kChat);
  auto in_a = Must(e().Subscribe(Scope::Service(a), chats, e().FeedInfo().durable));
  auto in_b = Must(e().Subscribe(Scope::Service(b), chats, e().FeedInfo().durable));
  // Never polled: it stops with its queue full, long before the move.
  auto old = Must(e().Subscribe(Scope::Service(), {}, before));
  old->Wait(10000);  // returns once events are queued, i.e. once their chunk was read
  MakeChat(u);
  EXPECT_EQ(CountType(Drain(*in_b, [](auto& v) { return v.size() >= 1; }), RecordType::kChat), 1u)
      << "tenant b missed its user's new chat";
  EXPECT_TRUE(Drain(
                  *in_a, [](auto&) { return false; }, 300)
                  .empty())
      << "tenant a received a chat of a user who left it";
}

// A record the TTL sweep removes reaches its owner's subscription as a delete with its
// key (the sweep's batch carries each owner, as a hard delete does); nobody else's.
TEST_F(FeedCollections, SweptRecordsReachTheirOwnersAsDeletes) {
  ASSERT_OK(e().DeclareCollection(Scope::Service(), R"({"name": "codes", "owner": "user",
      "ttl_field": "until", "fields": [{"name": "until", "type": "timestamp"}]})"));
  Uuid u = MakeUser("ttl@x.com"), other = MakeUser("other@x.com");
  auto start = e().FeedInfo().durable;
  auto mine = Must(e().Subscribe(Scope::ForUser(u), {}, start));
  auto theirs = Must(e().Subscribe(Scope::ForUser(other), {}, start));
  int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  Json rec = Put(Scope::ForUser(u), "codes", {{"until", now + 100'000}});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_OK(e().SweepExpiredRecords(Scope::Service()));  // or the background sweep did
  auto evs = Collections(Drain(*mine, [](auto& v) { return Collections(v).size() >= 2; }));
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[1]->op, ChangeOp::kDelete);
  EXPECT_EQ(evs[1]->collection, "codes");
  EXPECT_EQ(Json::parse(evs[1]->record_key), Json({{"id", rec["id"]}}));
  EXPECT_EQ(evs[1]->user, u);
  std::vector<Event> none;
  theirs->Poll(&none, 100);
  EXPECT_TRUE(Collections(none).empty());
}

// Who gets which collection record is exactly who may read it with coll_get: users their
// own user-owned records, their tenant's tenant-owned ones and unowned ones; a tenant
// admin its tenant's (owned by the tenant or its users) and unowned ones. Checked live
// and catching up from the log, with hard deletes (which carry their owner) included.
TEST_F(FeedCollections, SubscriptionsGetTheCollectionRecordsTheirScopeMayRead) {
  Uuid t1 = MakeTenant("t1"), t2 = MakeTenant("t2");
  Uuid a = MakeUser("a@x.com", t1), a2 = MakeUser("a2@x.com", t1), b = MakeUser("b@x.com", t2),
       loner = MakeUser("l@x.com");
  std::vector<std::pair<std::string, Scope>> scopes = {
      {"a", Scope::ForUser(a)},           {"b", Scope::ForUser(b)},
      {"loner", Scope::ForUser(loner)},   {"admin t1", Scope::Admin(t1)},
      {"service t2", Scope::Service(t2)}, {"service", Scope::Service()}};
  auto start = e().FeedInfo().durable;
  std::vector<std::shared_ptr<Subscription>> live;
  for (auto& [name, scope] : scopes) live.push_back(Must(e().Subscribe(scope, {}, start)));
  FeedFilter of_a, of_t1;
  of_a.user = a;
  of_t1.tenant = t1;
  auto svc_a = Must(e().Subscribe(Scope::Service(), of_a, start));
  auto svc_t1 = Must(e().Subscribe(Scope::Service(), of_t1, start));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // live by now

  Scope svc = Scope::Service();
  std::vector<std::pair<std::string, Json>> written;  // (collection, record)
  for (const Uuid& u : {a, a2, b, loner})
    written.emplace_back("notes", Put(svc, "notes", {{"user_id", u.ToString()}, {"text", "n"}}));
  for (const Uuid& t : {t1, t2})
    written.emplace_back("plans", Put(svc, "plans", {{"tenant_id", t.ToString()}, {"tier", "x"}}));
  written.emplace_back("news", Put(svc, "news", {{"title", "hello"}}));
  // Who may read what, asked of coll_get before the deletes below.
  std::vector<std::multiset<std::string>> expect(scopes.size());
  std::multiset<std::string> hard_deleted;
  for (size_t i = 0; i < scopes.size(); ++i)
    for (auto& [coll, rec] : written)
      if (e().GetRecord(scopes[i].second, coll, KeyOf(coll, rec)).ok())
        expect[i].insert(coll + " " + Json::parse(KeyOf(coll, rec)).dump());
  // Every record is then hard-deleted: a reader gets the delete of each record it got.
  for (auto& [coll, rec] : written)
    ASSERT_OK(e().DeleteRecord(svc, coll, KeyOf(coll, rec), DeleteMode::kHard));
  for (size_t i = 0; i < scopes.size(); ++i) {
    auto twice = expect[i];
    for (const auto& k : expect[i]) twice.insert(k);
    expect[i] = twice;
  }
  // The sanity of the expectation itself (coll_get's rules).
  EXPECT_EQ(expect[0].size(), 6u) << "a: its note, t1's plan, the news";
  EXPECT_EQ(expect[2].size(), 4u) << "loner: its note, the news (no tenant: no plan)";
  EXPECT_EQ(expect[3].size(), 8u) << "admin t1: a's and a2's notes, t1's plan, the news";
  EXPECT_EQ(expect[5].size(), 14u);
  std::vector<std::shared_ptr<Subscription>> behind;  // the same scopes, from the log
  for (auto& [name, scope] : scopes) behind.push_back(Must(e().Subscribe(scope, {}, start)));
  for (size_t i = 0; i < scopes.size(); ++i) {
    for (auto* sub : {&live[i], &behind[i]}) {
      auto got = Drain(**sub, [&](auto& v) { return Collections(v).size() >= expect[i].size(); });
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // anything extra, too
      (*sub)->Poll(&got, 100000);
      EXPECT_EQ(CollKeys(got), expect[i])
          << scopes[i].first << (sub == &live[i] ? " live" : " catching up");
      for (const auto& ev : Collections(got)) {
        if (scopes[i].first == "a" && ev->collection == "notes") {
          EXPECT_EQ(ev->user, a);
        }
        if (ev->collection == "notes") {
          EXPECT_FALSE(ev->user.IsNil()) << "deletes carry it";
        }
        if (ev->collection == "plans") {
          EXPECT_FALSE(ev->tenant.IsNil()) << "deletes carry it";
        }
      }
    }
  }
  // Filters narrow a service's view: a user's records, a tenant's (no unowned ones).
  auto got_a = Collections(Drain(*svc_a, [](auto& v) { return Collections(v).size() >= 2; }));
  ASSERT_EQ(got_a.size(), 2u);
  for (const auto& ev : got_a) EXPECT_EQ(ev->user, a);
  auto got_t1 = Collections(Drain(*svc_t1, [](auto& v) { return Collections(v).size() >= 6; }));
  EXPECT_EQ(got_t1.size(), 6u) << "a's and a2's notes and t1's plan, put and deleted";
  for (const auto& ev : got_t1) {
    EXPECT_EQ(ev->tenant, t1);
    EXPECT_NE(ev->collection, "news");
  }
}

// Collections are asked for by name (only those), all at once (kCollectionsBit), or with
// built-in types; a filter of built-in types alone gets none. An unknown name is refused
// and opens nothing.
TEST_F(FeedCollections, FilterByCollectionName) {
  Uuid u = MakeUser("f@x.com");
  auto start = e().FeedInfo().durable;
  FeedFilter notes, every, users_and_news, users;
  notes.collections = {"notes"};
  every.types = kCollectionsBit;
  users_and_news.types = 1u << static_cast<int>(RecordType::kUser);
  users_and_news.collections = {"news"};
  users.types = 1u << static_cast<int>(RecordType::kUser);
  Scope svc = Scope::Service();
  Put(svc, "notes", {{"user_id", u.ToString()}, {"text", "n"}});
  Put(svc, "news", {{"title", "t"}});
  ASSERT_OK(e().UpdateUser(svc, u, R"({"full_name":"marker"})"));
  auto drain = [&](const FeedFilter& f) {
    auto sub = Must(e().Subscribe(svc, f, start));
    return Drain(
        *sub, [](auto&) { return false; }, 800);
  };
  auto got = drain(notes);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->collection, "notes");
  got = drain(every);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(Collections(got).size(), 2u);
  got = drain(users_and_news);
  ASSERT_EQ(got.size(), 2u) << "the user's update and the news";
  EXPECT_EQ(Collections(got).size(), 1u);
  EXPECT_EQ(Collections(got)[0]->collection, "news");
  EXPECT_EQ(Collections(drain(users)).size(), 0u);
  size_t subs = e().FeedInfo().subscribers;
  FeedFilter typo;
  typo.collections = {"notes", "nope"};
  auto r = e().Subscribe(svc, typo, start);
  EXPECT_CODE(r, kNotFound);
  EXPECT_NE(r.status().message().find("collection nope not found"), std::string::npos);
  EXPECT_EQ(e().FeedInfo().subscribers, subs);
}

// Collection changes resume by sequence like every change: after a cancel and across a
// restart, the rest arrive once, in order.
TEST_F(FeedCollections, ResumeAcrossARestartDeliversCollectionChangesOnce) {
  Uuid u = MakeUser("r@x.com");
  FeedFilter f;
  f.collections = {"notes"};
  auto start = e().FeedInfo().durable;
  for (int i = 0; i < 10; ++i)
    Put(Scope::Service(), "notes", {{"user_id", u.ToString()}, {"text", std::to_string(i)}});
  auto sub = Must(e().Subscribe(Scope::ForUser(u), f, start));
  auto first = Drain(*sub, [](auto& v) { return v.size() >= 4; });
  ASSERT_GE(first.size(), 4u);
  first.resize(4);
  sub->Cancel();
  uint64_t resume = first.back()->sequence;
  Reopen();
  for (int i = 10; i < 15; ++i)
    Put(Scope::Service(), "notes", {{"user_id", u.ToString()}, {"text", std::to_string(i)}});
  auto again = Must(e().Subscribe(Scope::ForUser(u), f, resume));
  auto rest = Drain(*again, [](auto& v) { return v.size() >= 11; });
  ASSERT_EQ(rest.size(), 11u);
  std::vector<std::string> texts;
  for (auto& ev : first) texts.push_back(Json::parse(ev->json)["text"].get<std::string>());
  uint64_t prev = resume;
  for (auto& ev : rest) {
    EXPECT_GT(ev->sequence, prev);
    prev = ev->sequence;
    texts.push_back(Json::parse(ev->json)["text"].get<std::string>());
  }
  std::vector<std::string> want;
  for (int i = 0; i < 15; ++i) want.push_back(std::to_string(i));
  EXPECT_EQ(texts, want);
}

// Deleting a user soft-deletes (or hard-deletes) its records in every user-owned
// collection in the same write: the feed carries each, with the owner, to those who may
// read them.
TEST_F(FeedCollections, UserDeleteCascadesIntoTheFeed) {
  Uuid t1 = MakeTenant("t1");
  Uuid soft = MakeUser("s@x.com", t1), hard = MakeUser("h@x.com", t1), other = MakeUser("o@x.com");
  for (const Uuid& u : {soft, hard})
    for (int i = 0; i < 3; ++i)
      Put(Scope::Service(), "notes", {{"user_id", u.ToString()}, {"text", std::to_string(i)}});
  Put(Scope::Service(), "notes", {{"user_id", other.ToString()}, {"text", "stays"}});
  Uuid chat = MakeChat(hard);
  // A restart: the feed has never seen these users, so only the delete's own note can
  // say which tenant the hard-deleted user's records belonged to.
  Reopen();
  auto start = e().FeedInfo().durable;
  auto admin = Must(e().Subscribe(Scope::Admin(t1), {}, start));
  auto other_sub = Must(e().Subscribe(Scope::ForUser(other), {}, start));
  ASSERT_OK(e().DeleteUser(Scope::Service(), soft, DeleteMode::kSoft));
  ASSERT_OK(e().DeleteUser(Scope::Service(), hard, DeleteMode::kHard));
  auto got = Drain(*admin, [](auto& v) { return Collections(v).size() >= 6; });
  auto colls = Collections(got);
  ASSERT_EQ(colls.size(), 6u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(colls[i]->op, ChangeOp::kUpdate);
    EXPECT_EQ(colls[i]->user, soft);
    EXPECT_TRUE(Json::parse(colls[i]->json)["deleted_at"].is_number_integer());
  }
  for (int i = 3; i < 6; ++i) {
    EXPECT_EQ(colls[i]->op, ChangeOp::kDelete);
    EXPECT_EQ(colls[i]->user, hard);
    EXPECT_EQ(colls[i]->tenant, t1);
    EXPECT_TRUE(colls[i]->json.empty());
    EXPECT_TRUE(Json::parse(colls[i]->record_key).contains("id"));
  }
  // Each cascade follows its user's change in the same write; the hard delete's built-in
  // records reach the tenant's admin too (their tenant comes with the delete).
  EXPECT_EQ(CountType(got, RecordType::kUser), 2u);
  EXPECT_EQ(got[0]->type, RecordType::kUser);
  ASSERT_EQ(CountType(got, RecordType::kChat), 1u);
  uint64_t user_deleted_at = 0;  // the hard-deleted user's own change
  for (const auto& ev : got) {
    if (ev->type == RecordType::kChat) {
      EXPECT_EQ(ev->op, ChangeOp::kDelete);
      EXPECT_EQ(ev->id, chat);
      EXPECT_EQ(ev->tenant, t1);
    }
    if (ev->type == RecordType::kUser && ev->id == hard) user_deleted_at = ev->sequence;
  }
  ASSERT_GT(user_deleted_at, 0u);
  // Resumed from just after the user's own delete (inside its write), after another
  // restart: the chat's delete still names the tenant, by its own note.
  Reopen();
  auto resumed = Must(e().Subscribe(Scope::Admin(t1), {}, user_deleted_at));
  auto again = Drain(*resumed, [](auto& v) { return CountType(v, RecordType::kChat) >= 1; });
  ASSERT_EQ(CountType(again, RecordType::kChat), 1u);
  EXPECT_EQ(CountType(again, RecordType::kUser), 0u);
  EXPECT_TRUE(Collections(Drain(
                              *other_sub, [](auto&) { return false; }, 500))
                  .empty());
}

// The feed reuses its events once nobody holds them (engine/src/event_ring.h): an event a
// subscriber still holds is never refilled, and a reused event carries nothing of the
// change it held before (a message after a collection record and the other way round).
TEST_F(FeedCollections, ReusedEventsNeverChangeUnderAHolderAndCarryNothingOld) {
  Uuid u = MakeUser("reuse@x.com");
  Uuid chat = MakeChat(u);
  auto sub = Must(e().Subscribe(Scope::Service(), {}, std::nullopt));
  auto is_message = [](const Event& ev) { return ev->type == RecordType::kMessage; };
  std::map<Uuid, std::string> texts;  // each message's text, unique
  auto append = [&](int i) {
    std::string text = "m" + std::to_string(i) + "-";
    auto m = Append(chat, text);
    ASSERT_TRUE(m.ok());
    texts[ToUuid(m->get()->id())] = text;
  };
  // Checks an event against the change it must describe.
  auto check = [&](const Event& ev, const std::string& what) {
    if (is_message(ev)) {
      ASSERT_FALSE(ev->bytes.empty()) << what;
      auto m = flatbuffers::GetRoot<fb::Message>(ev->bytes.data());
      EXPECT_EQ(ToUuid(m->id()), ev->id) << what;
      ASSERT_TRUE(texts.contains(ev->id)) << what;
      EXPECT_NE(m->parts()->str().find(texts[ev->id]), std::string::npos)
          << what << ": " << m->parts()->str();
      EXPECT_TRUE(ev->collection.empty() && ev->record_key.empty() && ev->json.empty()) << what;
    } else if (ev->type == kCollectionRecordType) {
      EXPECT_TRUE(ev->bytes.empty()) << what;
      EXPECT_EQ(ev->collection, "notes") << what;
      EXPECT_EQ(Json::parse(ev->json)["id"], Json::parse(ev->record_key)["id"]) << what;
    }
  };
  // More changes than the ring keeps; every other event is held (and copied), the rest
  // let go of, so the ring refills the free ones around the held.
  const int kFirst = 1500;
  for (int i = 0; i < kFirst; ++i) append(i);
  auto first =
      Drain(*sub, [&](auto& v) { return std::count_if(v.begin(), v.end(), is_message) >= kFirst; });
  ASSERT_EQ(std::count_if(first.begin(), first.end(), is_message), kFirst);
  std::vector<Event> held;
  std::vector<ChangeEvent> copies;
  for (size_t i = 0; i < first.size(); i += 2) {
    held.push_back(first[i]);
    copies.push_back(*first[i]);
  }
  first.clear();
  // Then collection records and messages by turns, each batch let go of at once.
  for (int i = 0; i < 600; ++i) {
    Put(Scope::Service(), "notes", {{"user_id", u.ToString()}, {"text", std::string(i % 50, 'x')}});
    append(kFirst + i);
    std::vector<Event> batch;
    sub->Poll(&batch, 100000);
    for (const auto& ev : batch) check(ev, "a live event");
  }
  for (size_t i = 0; i < held.size(); ++i) {
    const ChangeEvent& ev = *held[i];
    EXPECT_TRUE(ev.sequence == copies[i].sequence && ev.id == copies[i].id &&
                ev.bytes == copies[i].bytes && ev.key == copies[i].key)
        << "held event " << i << " changed under its holder";
    check(held[i], "a held event after 1,200 more changes");
  }
}

}  // namespace
}  // namespace agentstore::testing

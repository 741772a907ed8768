// The change feed in process: commit order and exactly-once delivery under concurrent
// writers, resume from a sequence (after a cancel and after a restart), out_of_range for
// a sequence no longer kept, the scope rules (a user sees only its own records, for
// every record type), revocation and user deletion ending a subscription, and a slow
// subscriber cut off with its resume point while writers and other subscribers go on.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "test_util.h"

namespace agentstore::testing {
namespace {

using Event = Subscription::Event;

// Polls until `done(events)` holds or the subscription finishes or `ms` pass.
std::vector<Event> Drain(Subscription& sub,
                         const std::function<bool(const std::vector<Event>&)>& done,
                         int ms = 10000) {
  std::vector<Event> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    sub.Poll(&out, 100000);
    if (done(out) || sub.Finished()) break;
    sub.Wait(50);
  }
  sub.Poll(&out, 100000);
  return out;
}

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

}  // namespace
}  // namespace agentstore::testing

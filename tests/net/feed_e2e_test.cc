// The change feed through a real agentstored and the client library: a subscription
// that resumes by itself across a clean restart and a kill -9 (every acknowledged write
// delivered, in commit order, once), a user key that sees only its own records and is
// cut off when revoked, out_of_range over the wire, agentctl watch, and collection
// records (named, as JSON, under the read rules, resumed across a kill -9).
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "server_process.h"

namespace agentstore::testing {
namespace {

using Json = nlohmann::json;

struct Collected {
  std::mutex mu;
  std::vector<FeedChange> changes;
  Status end;
  bool ended = false;
  size_t size() {
    std::lock_guard l(mu);
    return changes.size();
  }
  FeedSubscription::Callback cb() {
    return [this](const FeedChange& c) {
      std::lock_guard l(mu);
      changes.push_back(c);
    };
  }
  FeedSubscription::EndCallback on_end() {
    return [this](const Status& s) {
      std::lock_guard l(mu);
      end = s;
      ended = true;
    };
  }
  bool WaitFor(const std::function<bool()>& pred, int ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard l(mu);
        if (pred()) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard l(mu);
    return pred();
  }
};

class FeedE2E : public ServerTest {
 protected:
  Uuid MakeChat(Client& c, const Uuid& user) {
    fb::ChatT ch;
    ch.user_id = FbId(user);
    return ToUuid(Must(c.CreateChat(ch).get())->id());
  }
  // Stops the server cleanly and starts it again on the same port and data directory
  // (subscriptions re-dial it); svc() is connected again.
  void RestartOnSamePort(const std::vector<std::string>& flags = {}) {
    uint16_t port = server_.port();
    svc_.reset();
    admin_.reset();
    ASSERT_EQ(server_.Stop(), 0);
    ASSERT_TRUE(server_.Start(dir_.sub("data"), flags, port));
    svc_.emplace(server_.Connect(server_.Key("service")));
  }
  Result<Row<fb::Message>> Append(Client& c, const Uuid& chat) {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = R"([{"type":"text","text":"hi"}])";
    auto r = c.AppendMessage(m).get();
    if (!r.ok()) return r.status();
    return r->message;
  }
};

TEST_F(FeedE2E, ResumesAcrossCleanRestartAndKill9WithEveryAckedWriteOnce) {
  Uuid user = NewUserId("f@x.com");
  Uuid chat = MakeChat(svc(), user);
  Collected got;
  SubscribeFilter f;
  f.types = {RecordType::kMessage};
  auto sub = Must(svc().Subscribe(f, std::nullopt, got.cb(), got.on_end()));
  std::set<Uuid> acked;
  for (int i = 0; i < 100; ++i) acked.insert(ToUuid(Must(Append(svc(), chat))->id()));
  ASSERT_TRUE(got.WaitFor([&] { return got.changes.size() >= 100; }));

  // Clean restart on the same port: the subscription re-dials and resumes.
  uint16_t port = server_.port();
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort());
  for (int i = 0; i < 100; ++i) acked.insert(ToUuid(Must(Append(svc(), chat))->id()));
  ASSERT_TRUE(got.WaitFor([&] { return got.changes.size() >= 200; }));

  // kill -9 under a write load: acknowledged writes must all arrive after the restart.
  std::atomic<bool> stop{false};
  std::mutex acked_mu;
  std::thread writer([&] {
    Client c = server_.Connect(server_.Key("service"));
    while (!stop) {
      auto m = Append(c, chat);
      if (!m.ok()) break;
      std::lock_guard l(acked_mu);
      acked.insert(ToUuid(m.value()->id()));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_.Kill();
  stop = true;
  writer.join();
  svc_.reset();
  ASSERT_TRUE(server_.Start(dir_.sub("data"), {}, port));
  svc_.emplace(server_.Connect(server_.Key("service")));
  for (int i = 0; i < 10; ++i) acked.insert(ToUuid(Must(Append(svc(), chat))->id()));
  std::set<Uuid> seen;
  ASSERT_TRUE(got.WaitFor([&] {
    seen.clear();
    for (const auto& c : got.changes) seen.insert(c.id);
    for (const Uuid& id : acked)
      if (!seen.count(id)) return false;
    return true;
  })) << "acknowledged messages missing from the feed: got "
      << got.size() << " of " << acked.size();
  std::lock_guard l(got.mu);
  EXPECT_FALSE(got.ended) << got.end.ToString();
  EXPECT_EQ(seen.size(), got.changes.size()) << "a change was delivered twice";
  for (size_t i = 1; i < got.changes.size(); ++i)
    ASSERT_GT(got.changes[i].sequence, got.changes[i - 1].sequence) << "commit order";
  EXPECT_GE(sub->resumes(), 2u);
  // Every delivered message is in the store (nothing delivered that was not durable).
  for (const auto& c : got.changes) ASSERT_OK(svc().GetMessage(c.id).get());
}

TEST_F(FeedE2E, UserKeySeesOnlyItsOwnRecordsAndRevocationEndsIt) {
  Uuid a = NewUserId("a@x.com"), b = NewUserId("b@x.com");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(a);
  auto key = Must(svc().CreateApiKey(k).get());
  Client ca = server_.Connect(key.secret);
  Collected got;
  auto sub = Must(ca.Subscribe({}, std::nullopt, got.cb(), got.on_end()));
  // Asking for another user's records is refused at once.
  SubscribeFilter other;
  other.user = b;
  EXPECT_CODE(ca.Subscribe(other, std::nullopt, [](const FeedChange&) {}), kPermissionDenied);
  Uuid chat_a = MakeChat(svc(), a), chat_b = MakeChat(svc(), b);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(Append(svc(), chat_a));
    ASSERT_OK(Append(svc(), chat_b));
  }
  ASSERT_TRUE(got.WaitFor([&] { return got.changes.size() >= 11; }));
  ASSERT_OK(svc().RevokeApiKey(ToUuid(key.key->id())).get());
  ASSERT_TRUE(got.WaitFor([&] { return got.ended; }));
  std::lock_guard l(got.mu);
  EXPECT_CODE(got.end, kPermissionDenied);
  for (const auto& c : got.changes) EXPECT_EQ(c.user, a) << RecordTypeName(c.type);
  EXPECT_EQ(got.changes.size(), 11u) << "its chat, five messages, five chat total updates";
}

// Many subscriptions multiplexed on one FeedChannel: each sees exactly its own user's
// changes, in order, once; one stopped or refused leaves the others running; all resume
// on a new connection after a server restart; the 65th is refused.
TEST_F(FeedE2E, ChannelCarriesManySubscriptionsEachWithItsOwnChanges) {
  auto channel = Must(FeedChannel::Open(server_.Options(server_.Key("service"))));
  constexpr int kUsers = 6;
  std::vector<Uuid> users, chats;
  std::vector<std::unique_ptr<Collected>> got;
  std::vector<std::unique_ptr<FeedSubscription>> subs;
  for (int u = 0; u < kUsers; ++u) {
    users.push_back(NewUserId("ch" + std::to_string(u) + "@x.com"));
    chats.push_back(MakeChat(svc(), users.back()));
    got.push_back(std::make_unique<Collected>());
    SubscribeFilter f;
    f.types = {RecordType::kMessage};
    f.user = users.back();
    subs.push_back(
        Must(channel->Subscribe(f, std::nullopt, got.back()->cb(), got.back()->on_end())));
  }
  EXPECT_EQ(channel->size(), static_cast<size_t>(kUsers));
  // A refusal ends only the subscription asked for.
  EXPECT_CODE(channel->Subscribe({}, uint64_t{1} << 62, [](const FeedChange&) {}).status(),
              kInvalidArgument)
      << "a sequence beyond the latest durable one";
  EXPECT_EQ(channel->size(), static_cast<size_t>(kUsers));
  std::vector<std::set<Uuid>> acked(kUsers);
  auto write_round = [&](int per_user) {
    for (int i = 0; i < per_user; ++i)
      for (int u = 0; u < kUsers; ++u) acked[u].insert(ToUuid(Must(Append(svc(), chats[u]))->id()));
  };
  write_round(5);
  for (int u = 0; u < kUsers; ++u)
    ASSERT_TRUE(got[u]->WaitFor([&] { return got[u]->changes.size() >= 5; })) << u;

  // Stop one: no callback of it runs after, the others go on.
  subs[0]->Stop();
  size_t stopped_at = got[0]->size();
  EXPECT_FALSE(subs[0]->running());
  EXPECT_OK(subs[0]->status());
  EXPECT_EQ(channel->size(), static_cast<size_t>(kUsers - 1));

  // A clean restart on the same port: the channel re-dials and resubscribes each.
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort());
  write_round(5);
  for (int u = 1; u < kUsers; ++u) {
    ASSERT_TRUE(got[u]->WaitFor([&] {
      std::set<Uuid> seen;
      for (const auto& c : got[u]->changes) seen.insert(c.id);
      return seen == acked[u];
    })) << "user "
        << u << " got " << got[u]->size() << " of " << acked[u].size();
    std::lock_guard l(got[u]->mu);
    EXPECT_EQ(got[u]->changes.size(), acked[u].size()) << "none twice";
    for (size_t i = 0; i < got[u]->changes.size(); ++i) {
      EXPECT_EQ(got[u]->changes[i].user, users[u]);
      if (i > 0) {
        EXPECT_GT(got[u]->changes[i].sequence, got[u]->changes[i - 1].sequence);
      }
    }
    EXPECT_FALSE(got[u]->ended);
    EXPECT_GE(subs[u]->resumes(), 1u);
  }
  EXPECT_EQ(got[0]->size(), stopped_at) << "a stopped subscription got a callback";

  // The server's limit per connection is the channel's.
  std::vector<std::unique_ptr<FeedSubscription>> more;
  while (channel->size() < FeedChannel::kMaxSubscriptions)
    more.push_back(Must(channel->Subscribe({}, std::nullopt, [](const FeedChange&) {})));
  EXPECT_CODE(channel->Subscribe({}, std::nullopt, [](const FeedChange&) {}).status(),
              kResourceExhausted);
  // Closing the channel stops what it still carries.
  channel.reset();
  EXPECT_FALSE(subs[1]->running());
  EXPECT_CODE(subs[1]->status(), kUnavailable);
}

// A server holding its most subscriptions (--feed-max-subscriptions) refuses one more
// with resource_exhausted: the channel's Subscribe returns it, and the connection and the
// subscriptions it already carries go on (no re-dial, no lost change).
TEST_F(FeedE2E, ServerAtItsSubscriptionLimitRefusesOneMoreAndTheRestGoOn) {
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort({"--feed-max-subscriptions", "2"}));
  Uuid user = NewUserId("cap@x.com");
  Uuid chat = MakeChat(svc(), user);
  auto channel = Must(FeedChannel::Open(server_.Options(server_.Key("service"))));
  SubscribeFilter f;
  f.types = {RecordType::kMessage};
  Collected a, b;
  auto sa = Must(channel->Subscribe(f, std::nullopt, a.cb(), a.on_end()));
  auto sb = Must(channel->Subscribe(f, std::nullopt, b.cb(), b.on_end()));
  Collected c;
  auto refused = channel->Subscribe(f, std::nullopt, c.cb(), c.on_end());
  EXPECT_CODE(refused.status(), kResourceExhausted);
  ASSERT_OK(Append(svc(), chat));
  EXPECT_TRUE(a.WaitFor([&] { return a.changes.size() == 1; }));
  EXPECT_TRUE(b.WaitFor([&] { return b.changes.size() == 1; }));
  EXPECT_EQ(sa->resumes(), 0u);
  EXPECT_EQ(sb->resumes(), 0u);
  // One ended makes room.
  sa.reset();
  Result<std::unique_ptr<FeedSubscription>> again = Status::Unavailable("not tried");
  for (int i = 0; i < 100 && !again.ok(); ++i) {
    again = channel->Subscribe(f, std::nullopt, c.cb(), c.on_end());
    if (!again.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_OK(again);
}

// The paths a sanitizer build watches: pushes racing connections that close (subscribers
// stopping while eight writers keep the feed busy) and a server stopping with every
// subscription still pushing. The server must stop cleanly (exit 0) and in time.
TEST_F(FeedE2E, PushesRacingClosesAndAStopWithLiveSubscribersEndCleanly) {
  std::vector<Uuid> chats;
  for (int u = 0; u < 4; ++u)
    chats.push_back(MakeChat(svc(), NewUserId("race" + std::to_string(u) + "@x.com")));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> acked{0};
  std::vector<std::thread> writers;
  struct Joiner {  // a failed ASSERT must not leave the writers running
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } joiner{stop, writers};
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      Client c = server_.Connect(server_.Key("service"));
      while (!stop.load()) {
        if (!Append(c, chats[w % chats.size()]).ok()) break;  // the server went away
        acked.fetch_add(1);
      }
    });
  }
  std::vector<std::unique_ptr<FeedSubscription>> subs;
  std::vector<std::unique_ptr<Collected>> got;
  while (acked.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  uint64_t before = acked.load();
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 8; ++i) {
      got.push_back(std::make_unique<Collected>());
      auto sub = svc().Subscribe({}, std::nullopt, got.back()->cb(), got.back()->on_end());
      ASSERT_OK(sub.status());
      subs.push_back(std::move(*sub));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Half of them go while pushes are in flight to them.
    for (size_t i = 0; i < subs.size(); i += 2)
      if (subs[i]) subs[i].reset();
  }
  EXPECT_GT(acked.load(), before) << "writers kept going while subscribers came and went";
  ASSERT_TRUE(got.back()->WaitFor([&] { return got.back()->changes.size() > 0; }));
  EXPECT_EQ(server_.Stop(), 0) << "agentstored must stop cleanly with subscribers pushing";
  stop = true;
  for (auto& t : writers) t.join();
  subs.clear();  // their re-dials fail until now; Stop joins them
}

TEST_F(FeedE2E, TooOldSequenceIsOutOfRangeOverTheWire) {
  std::vector<std::string> no_retention = {"--feed-retention-seconds", "0", "--feed-retention-mb",
                                           "0"};
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort(no_retention));
  Uuid chat = MakeChat(svc(), NewUserId("o@x.com"));
  for (int i = 0; i < 10; ++i) ASSERT_OK(Append(svc(), chat));
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort(no_retention));  // a stop flushes: the old log goes
  auto r = svc().Subscribe({}, 1, [](const FeedChange&) {});
  EXPECT_CODE(r, kOutOfRange);
  EXPECT_NE(r.status().message().find("oldest kept is"), std::string::npos) << TextOf(r);
}

TEST_F(FeedE2E, AgentctlWatchPrintsJsonFromASequence) {
  Uuid user = NewUserId("w@x.com");
  Collected first;
  SubscribeFilter f;
  f.types = {RecordType::kChat};
  auto sub = Must(svc().Subscribe(f, std::nullopt, first.cb()));
  Uuid chat = MakeChat(svc(), user);
  ASSERT_TRUE(first.WaitFor([&] { return first.changes.size() >= 1; }));
  uint64_t chat_seq = first.changes[0].sequence;
  for (int i = 0; i < 3; ++i) ASSERT_OK(Append(svc(), chat));
  auto run = Agentctl(
      server_, server_.Key("service"),
      "watch --json --type messages --from " + std::to_string(chat_seq - 1) + " --count 3");
  ASSERT_EQ(run.code, 0) << run.out;
  std::istringstream lines(run.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = Json::parse(line);
    EXPECT_EQ(j["type"], "messages");
    EXPECT_EQ(j["op"], "create");
    EXPECT_EQ(j["record"]["chat_id"], chat.ToString());
    EXPECT_GT(j["sequence"].get<uint64_t>(), chat_seq);
    ++n;
  }
  EXPECT_EQ(n, 3);
  auto bad = Agentctl(server_, server_.Key("service"), "watch --type api_keys --count 1");
  EXPECT_NE(bad.code, 0) << bad.out;
}

// Collection records through the server: a user key gets its own user-owned records and
// unowned ones (as coll_get answers them, with the key coll_get takes), a service
// subscription the collections it names; an unknown name is refused; after a kill -9 the
// subscription resumes with every acknowledged put once; agentctl watch prints them.
TEST_F(FeedE2E, CollectionRecordsReachSubscribersAndAgentctlWatch) {
  ASSERT_OK(svc()
                .DeclareCollection(R"({"name": "journal", "owner": "user",
      "fields": [{"name": "text", "type": "string"}]})")
                .get());
  ASSERT_OK(svc()
                .DeclareCollection(R"({"name": "bulletins", "owner": "none",
      "fields": [{"name": "title", "type": "string"}]})")
                .get());
  Uuid a = NewUserId("ca@x.com"), b = NewUserId("cb@x.com");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(a);
  Client ca = server_.Connect(Must(svc().CreateApiKey(k).get()).secret);
  Collected mine, journal;
  auto sub_a = Must(ca.Subscribe({}, std::nullopt, mine.cb(), mine.on_end()));
  SubscribeFilter only_journal;
  only_journal.collections = {"journal"};
  auto sub_j = Must(svc().Subscribe(only_journal, std::nullopt, journal.cb(), journal.on_end()));
  SubscribeFilter typo;
  typo.collections = {"jornal"};
  auto refused = svc().Subscribe(typo, std::nullopt, [](const FeedChange&) {});
  EXPECT_CODE(refused, kNotFound);

  auto put = [&](const Uuid& owner, const std::string& text) {
    return Json::parse(
        Must(svc()
                 .PutRecord("journal", Json{{"user_id", owner.ToString()}, {"text", text}}.dump())
                 .get()));
  };
  Json ja = put(a, "mine");
  put(b, "theirs");
  std::string ka = Json{{"id", ja["id"]}}.dump();
  std::string patched = Must(svc().UpdateRecord("journal", ka, R"({"text":"edited"})").get());
  Json bulletin =
      Json::parse(Must(svc().PutRecord("bulletins", R"({"title":"to everyone"})").get()));
  ASSERT_OK(svc().DeleteRecord("journal", ka, DeleteMode::kHard).get());
  ASSERT_TRUE(mine.WaitFor([&] { return mine.changes.size() >= 4; }));
  ASSERT_TRUE(journal.WaitFor([&] { return journal.changes.size() >= 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more arrives
  {
    std::lock_guard l(mine.mu);
    ASSERT_EQ(mine.changes.size(), 4u) << "a's journal put, update, delete and the bulletin";
    const auto& c = mine.changes;
    for (const auto& ch : c) {
      EXPECT_EQ(ch.type, kCollectionRecordType);
      EXPECT_TRUE(ch.record.empty());
    }
    EXPECT_EQ(c[0].collection, "journal");
    EXPECT_EQ(c[0].op, FeedOp::kCreate);
    EXPECT_EQ(c[0].user, a);
    EXPECT_EQ(Json::parse(c[0].json), ja);
    EXPECT_EQ(Json::parse(c[0].record_key), Json::parse(ka));
    EXPECT_EQ(c[1].op, FeedOp::kUpdate);
    EXPECT_EQ(c[1].json, patched) << "as coll_update (and coll_get) answer it";
    EXPECT_EQ(c[2].collection, "bulletins");
    EXPECT_EQ(Json::parse(c[2].json), bulletin);
    EXPECT_TRUE(c[2].user.IsNil());
    EXPECT_EQ(c[3].op, FeedOp::kDelete);
    EXPECT_TRUE(c[3].json.empty());
    EXPECT_EQ(c[3].user, a) << "a hard delete carries its owner";
    EXPECT_EQ(Json::parse(c[3].record_key), Json::parse(ka));
  }
  {
    std::lock_guard l(journal.mu);
    ASSERT_EQ(journal.changes.size(), 4u) << "both users' journal changes, no bulletin";
    for (const auto& ch : journal.changes) EXPECT_EQ(ch.collection, "journal");
  }

  // kill -9 under collection puts: every acknowledged one arrives after the restart, once.
  uint16_t port = server_.port();
  std::set<std::string> acked;
  std::mutex acked_mu;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    Client c = server_.Connect(server_.Key("service"));
    for (int i = 0; !stop; ++i) {
      auto r = c.PutRecord("journal",
                           Json{{"user_id", b.ToString()}, {"text", std::to_string(i)}}.dump())
                   .get();
      if (!r.ok()) break;
      std::lock_guard l(acked_mu);
      acked.insert(Json::parse(*r)["id"].get<std::string>());
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_.Kill();
  stop = true;
  writer.join();
  svc_.reset();
  ASSERT_TRUE(server_.Start(dir_.sub("data"), {}, port));
  svc_.emplace(server_.Connect(server_.Key("service")));
  acked.insert(put(b, "after")["id"].get<std::string>());
  ASSERT_GT(acked.size(), 1u);
  std::multiset<std::string> seen;
  ASSERT_TRUE(journal.WaitFor([&] {
    seen.clear();
    for (size_t i = 4; i < journal.changes.size(); ++i)
      seen.insert(Json::parse(journal.changes[i].json)["id"].get<std::string>());
    for (const auto& id : acked)
      if (!seen.count(id)) return false;
    return true;
  })) << "acknowledged puts missing: got "
      << seen.size() << " of " << acked.size();
  {
    std::lock_guard l(journal.mu);
    EXPECT_FALSE(journal.ended) << journal.end.ToString();
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size())
        << "a change was delivered twice";
    for (size_t i = 1; i < journal.changes.size(); ++i)
      ASSERT_GT(journal.changes[i].sequence, journal.changes[i - 1].sequence);
  }
  EXPECT_GE(sub_j->resumes(), 1u);
  uint64_t first_seq = journal.changes[0].sequence;
  sub_a.reset();
  sub_j.reset();

  // agentctl watch: a collection's records, as JSON lines and as a table.
  auto run = Agentctl(
      server_, server_.Key("service"),
      "watch --json --collection journal --from " + std::to_string(first_seq - 1) + " --count 2");
  ASSERT_EQ(run.code, 0) << run.out;
  std::istringstream lines(run.out);
  std::string line;
  std::vector<Json> printed;
  while (std::getline(lines, line)) printed.push_back(Json::parse(line));
  ASSERT_EQ(printed.size(), 2u) << run.out;
  EXPECT_EQ(printed[0]["type"], "collection");
  EXPECT_EQ(printed[0]["collection"], "journal");
  EXPECT_EQ(printed[0]["op"], "create");
  EXPECT_EQ(printed[0]["record"], ja);
  EXPECT_EQ(printed[0]["key"], Json::parse(ka));
  EXPECT_EQ(printed[0]["user_id"], a.ToString());
  EXPECT_EQ(printed[1]["record"]["text"], "theirs");
  auto table =
      Agentctl(server_, server_.Key("service"),
               "watch --type collections --from " + std::to_string(first_seq - 1) + " --count 1");
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("create  journal  {\"id\":"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\"text\":\"mine\""), std::string::npos) << table.out;
  auto bad = Agentctl(server_, server_.Key("service"), "watch --collection nope --count 1");
  EXPECT_NE(bad.code, 0) << bad.out;
  EXPECT_NE(bad.out.find("collection nope not found"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace agentstore::testing

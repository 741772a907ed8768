// The change feed attacked through a real agentstored, on raw sockets where the client
// library would hide a fault: subscribe requests that must be refused cleanly, a
// from_now subscription's answer and first events under concurrent writers, connections
// that fill every subscription slot with a backlog and vanish mid-push, a key that
// expires while its subscription runs, and a subscriber that stops reading, cut off and
// resumed with every change once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "agentstore/net/frame.h"
#include "protocol_generated.h"
#include "raw_conn.h"
#include "server_process.h"

namespace agentstore::testing {
namespace {

using flatbuffers::FlatBufferBuilder;
using proto::ErrorCode;

void Auth(FlatBufferBuilder& fbb, const std::string& key) {
  fbb.Clear();
  auto k = fbb.CreateString(key);
  fbb.Finish(proto::CreateRequest(fbb, 1, proto::Op::authenticate, nullptr, proto::Args::AuthArgs,
                                  proto::CreateAuthArgs(fbb, k).Union()));
}

// What a subscribe request asks, built by chained setters.
struct SubArgs {
  std::vector<uint8_t> types;
  std::vector<std::string> collections;
  std::optional<Uuid> user, tenant;
  uint64_t after = 0;
  bool from_now = false;
  SubArgs& Types(std::vector<uint8_t> v) { return types = std::move(v), *this; }
  SubArgs& Collections(std::vector<std::string> v) { return collections = std::move(v), *this; }
  SubArgs& User(const Uuid& u) { return user = u, *this; }
  SubArgs& Tenant(const Uuid& t) { return tenant = t, *this; }
  SubArgs& After(uint64_t a) { return after = a, *this; }
  SubArgs& FromNow() { return from_now = true, *this; }
};
SubArgs Args() { return {}; }
uint8_t TypeByte(RecordType t) { return static_cast<uint8_t>(t); }

void Subscribe(FlatBufferBuilder& fbb, uint64_t id, const SubArgs& a) {
  fbb.Clear();
  auto types = a.types.empty() ? 0 : fbb.CreateVector(a.types);
  auto colls = a.collections.empty() ? 0 : fbb.CreateVectorOfStrings(a.collections);
  fb::Uuid user = ToFb(a.user.value_or(Uuid())), tenant = ToFb(a.tenant.value_or(Uuid()));
  auto args = proto::CreateSubscribeArgs(fbb, types, a.user ? &user : nullptr,
                                         a.tenant ? &tenant : nullptr, a.after, a.from_now, colls);
  fbb.Finish(proto::CreateRequest(fbb, id, proto::Op::subscribe, nullptr,
                                  proto::Args::SubscribeArgs, args.Union()));
}

void Unsubscribe(FlatBufferBuilder& fbb, uint64_t id, uint64_t sub) {
  fbb.Clear();
  fbb.Finish(proto::CreateRequest(fbb, id, proto::Op::unsubscribe, nullptr,
                                  proto::Args::UnsubscribeArgs,
                                  proto::CreateUnsubscribeArgs(fbb, sub).Union()));
}

class FeedAdversarialE2E : public ServerTest {
 protected:
  std::unique_ptr<RawConn> Dial(const std::string& key) {
    auto c = std::make_unique<RawConn>(server_.port(), 10000);
    EXPECT_TRUE(c->ok());
    FlatBufferBuilder fbb;
    Auth(fbb, key);
    EXPECT_TRUE(c->SendFrame(fbb));
    auto a = c->Answer(1);
    EXPECT_TRUE(a && a->r()->code() == ErrorCode::ok);
    return c;
  }
  ErrorCode SubscribeCode(RawConn& c, uint64_t id, const SubArgs& a, std::string* msg = nullptr) {
    FlatBufferBuilder fbb;
    Subscribe(fbb, id, a);
    EXPECT_TRUE(c.SendFrame(fbb));
    auto r = c.Answer(id);
    if (!r) return ErrorCode::io_error;  // no answer
    if (msg) *msg = r->r()->message() ? r->r()->message()->str() : "";
    return r->r()->code();
  }
  Uuid MakeChat(Client& c, const Uuid& user) {
    fb::ChatT ch;
    ch.user_id = FbId(user);
    return ToUuid(Must(c.CreateChat(ch).get())->id());
  }
  Status Append(Client& c, const Uuid& chat) {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = R"([{"type":"text","text":"hi"}])";
    return c.AppendMessage(m).get().status();
  }
};

// Bad subscribe requests are refused with the documented codes, and the connection goes
// on working.
TEST_F(FeedAdversarialE2E, AbusiveSubscribeRequestsAreRefusedCleanly) {
  Uuid a = NewUserId("a@x.com"), b = NewUserId("b@x.com");
  auto c = Dial(server_.Key("service"));
  const uint8_t kApiKeys = static_cast<uint8_t>(RecordType::kApiKey);
  const uint8_t kRollup = static_cast<uint8_t>(RecordType::kUserUsageRollup);
  struct Case {
    const char* what;
    SubArgs args;
    ErrorCode want;
  } cases[] = {
      {"future", Args().After(std::numeric_limits<uint64_t>::max()), ErrorCode::invalid_argument},
      {"type 0", Args().Types({0}), ErrorCode::invalid_argument},
      {"type 31", Args().Types({31}), ErrorCode::invalid_argument},
      {"type 112", Args().Types({112}), ErrorCode::invalid_argument},
      {"type 255", Args().Types({255}), ErrorCode::invalid_argument},
      {"api keys", Args().Types({kApiKeys}), ErrorCode::invalid_argument},
      {"rollups", Args().Types({kRollup}), ErrorCode::invalid_argument},
      {"unknown collection", Args().Collections({"nope"}), ErrorCode::not_found},
      {"empty collection name", Args().Collections({""}), ErrorCode::not_found},
  };
  uint64_t id = 100;
  for (const auto& k : cases) {
    std::string msg;
    EXPECT_EQ(SubscribeCode(*c, ++id, k.args, &msg), k.want) << k.what << ": " << msg;
  }
  // Request id 0 and a duplicate id.
  EXPECT_EQ(SubscribeCode(*c, 0, Args().FromNow()), ErrorCode::invalid_argument);
  EXPECT_EQ(SubscribeCode(*c, 7, Args().FromNow()), ErrorCode::ok);
  EXPECT_EQ(SubscribeCode(*c, 7, Args().FromNow()), ErrorCode::invalid_argument);
  // A user key naming another user or a tenant.
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(a);
  auto uc = Dial(Must(svc().CreateApiKey(k).get()).secret);
  EXPECT_EQ(SubscribeCode(*uc, 2, Args().User(b).FromNow()), ErrorCode::permission_denied);
  EXPECT_EQ(
      SubscribeCode(*uc, 3,
                    Args().Tenant(*Uuid::Parse("0c0ffee0-0000-4000-8000-00000000000a")).FromNow()),
      ErrorCode::permission_denied);
  EXPECT_EQ(SubscribeCode(*uc, 4, Args().User(a).FromNow()), ErrorCode::ok);
  // Past the limit per connection (the client's FeedChannel holds as many): resource_
  // exhausted, the rest keep working.
  for (uint64_t i = 0; i + 1 < FeedChannel::kMaxSubscriptions; ++i)
    ASSERT_EQ(SubscribeCode(*c, 1000 + i, Args().FromNow()), ErrorCode::ok) << i;
  EXPECT_EQ(SubscribeCode(*c, 5000, Args().FromNow()), ErrorCode::resource_exhausted);
  ASSERT_OK(svc().GetUser(a).get());
}

// A from_now subscription starts at the sequence its answer names: under concurrent
// writers no event at or before it may arrive (a client that drops those as already
// seen, as both clients do, would otherwise lose the events after the real start).
TEST_F(FeedAdversarialE2E, FromNowAnswerIsTheStartAndNothingAtOrBeforeItArrives) {
  constexpr int kWriters = 4;
  std::vector<Uuid> chats;
  for (int t = 0; t < kWriters; ++t)
    chats.push_back(MakeChat(svc(), NewUserId(std::to_string(t) + "@w")));
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t)
    writers.emplace_back([&, t] {
      Client c = server_.Connect(server_.Key("service"));
      while (!stop)
        if (!Append(c, chats[t]).ok()) return;
    });
  auto c = Dial(server_.Key("service"));
  FlatBufferBuilder fbb;
  size_t violations = 0, events = 0;
  std::string first;
  for (uint64_t id = 10; id < 50; ++id) {
    Subscribe(fbb, id, Args().Types({TypeByte(RecordType::kMessage)}).FromNow());
    ASSERT_TRUE(c->SendFrame(fbb));
    std::vector<Reply> early;
    auto answer = c->Answer(id, &early);
    ASSERT_TRUE(answer && answer->r()->code() == ErrorCode::ok);
    uint64_t start = answer->r()->result_as_FeedPosition()->sequence();
    std::vector<Reply> got = std::move(early);
    size_t n = 0;
    auto count = [&](const Reply& r) {
      if (r.r()->id() != id || r.r()->kind() != proto::FrameKind::event) return;
      for (const auto* ch : *r.r()->result_as_Changes()->items()) {
        ++n;
        ++events;
        if (ch->sequence() <= start) {
          if (first.empty())
            first = std::to_string(ch->sequence()) + " <= " + std::to_string(start);
          ++violations;
        }
      }
    };
    for (const auto& r : got) count(r);
    while (n < 3) {
      auto r = c->Read();
      ASSERT_TRUE(r) << "no events while writers run";
      count(*r);
    }
    Unsubscribe(fbb, 1, id);
    ASSERT_TRUE(c->SendFrame(fbb));
    // Up to its end frame (after its answer): nothing of it is left on the wire.
    while (true) {
      auto r = c->Read();
      ASSERT_TRUE(r);
      count(*r);
      if (r->r()->id() == id && r->r()->kind() == proto::FrameKind::end) break;
    }
  }
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_GT(events, 0u);
  EXPECT_EQ(violations, 0u) << "events at or before the answered start: " << first;
}

// Connections fill every subscription slot with a large backlog, never read and vanish
// (reset) while the server pushes; others unsubscribe mid-push. The server stays up and
// serves a fresh subscription from the same point completely.
TEST_F(FeedAdversarialE2E, BacklogSubscriptionsOnVanishingConnections) {
  Uuid user = NewUserId("bulk@x.com");
  Uuid chat = MakeChat(svc(), user);
  uint64_t start = 0;
  {
    auto c = Dial(server_.Key("service"));
    FlatBufferBuilder fbb;
    Subscribe(fbb, 2, Args().FromNow());
    ASSERT_TRUE(c->SendFrame(fbb));
    auto a = c->Answer(2);
    ASSERT_TRUE(a);
    start = a->r()->result_as_FeedPosition()->sequence();
  }
  constexpr int kMessages = 1500;
  for (int i = 0; i < kMessages; ++i) ASSERT_OK(Append(svc(), chat));
  for (int round = 0; round < 6; ++round) {
    auto c = Dial(server_.Key("service"));
    FlatBufferBuilder fbb;
    for (uint64_t id = 1; id <= 64; ++id) {
      Subscribe(fbb, 100 + id, Args().After(start));
      ASSERT_TRUE(c->SendFrame(fbb));
    }
    if (round % 2) {  // unsubscribe half of them without reading anything
      for (uint64_t id = 1; id <= 64; id += 2) {
        Unsubscribe(fbb, 500 + id, 100 + id);
        ASSERT_TRUE(c->SendFrame(fbb));
      }
    }
    if (round % 3 == 0) c->Read();  // read one frame: pushes are under way
    c->Abort();
  }
  // The server is alive and a new subscription from the start gets everything once.
  auto c = Dial(server_.Key("service"));
  FlatBufferBuilder fbb;
  Subscribe(fbb, 9, Args().Types({TypeByte(RecordType::kMessage)}).After(start));
  ASSERT_TRUE(c->SendFrame(fbb));
  std::vector<Reply> frames;
  ASSERT_TRUE(c->Answer(9, &frames));
  std::set<uint64_t> seqs;
  size_t n = 0;
  auto count = [&](const Reply& r) {
    if (r.r()->id() != 9 || r.r()->kind() != proto::FrameKind::event) return;
    for (const auto* ch : *r.r()->result_as_Changes()->items()) {
      seqs.insert(ch->sequence());
      ++n;
    }
  };
  for (const auto& r : frames) count(r);
  while (n < kMessages) {
    auto r = c->Read();
    ASSERT_TRUE(r) << "got " << n << " of " << kMessages;
    count(*r);
  }
  EXPECT_EQ(n, static_cast<size_t>(kMessages));
  EXPECT_EQ(seqs.size(), n);
  ASSERT_OK(svc().GetUser(user).get());
}

// A key that expires while its subscription runs: the changes committed after the
// expiry do not reach it, and it ends (permission_denied).
TEST_F(FeedAdversarialE2E, ExpiringKeyEndsItsSubscription) {
  Uuid user = NewUserId("exp@x.com");
  Uuid chat = MakeChat(svc(), user);
  auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  int64_t expires = now_us() + 2'500'000;
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(user);
  k.expires_at = expires;
  auto c = Dial(Must(svc().CreateApiKey(k).get()).secret);
  FlatBufferBuilder fbb;
  Subscribe(fbb, 5, Args().Types({TypeByte(RecordType::kMessage)}).FromNow());
  ASSERT_TRUE(c->SendFrame(fbb));
  ASSERT_TRUE(c->Answer(5));
  ASSERT_OK(Append(svc(), chat));
  auto first = c->Read();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->r()->kind(), proto::FrameKind::event);
  while (now_us() < expires + 100'000) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_OK(Append(svc(), chat));
  auto next = c->Read();
  ASSERT_TRUE(next) << "neither an event nor an end after the key expired";
  EXPECT_EQ(next->r()->kind(), proto::FrameKind::end)
      << "a change committed after the key expired was pushed";
  EXPECT_EQ(next->r()->code(), ErrorCode::permission_denied);
}

// A subscriber that stops reading while writers go on is cut off with its resume point
// (its buffer: 50 events); reading what was pushed and then resuming from that point on a
// new connection delivers every change once.
TEST_F(FeedAdversarialE2E, SlowRawSubscriberResumesExactlyOnceFromItsCutOff) {
  uint16_t port = server_.port();
  svc_.reset();
  admin_.reset();
  ASSERT_EQ(server_.Stop(), 0);
  ASSERT_TRUE(server_.Start(dir_.sub("data"), {"--feed-buffer-events", "50"}, port));
  svc_.emplace(server_.Connect(server_.Key("service")));
  Uuid chat = MakeChat(svc(), NewUserId("slow@x.com"));
  const std::string big(8000, 'x');
  auto slow = Dial(server_.Key("service"));
  FlatBufferBuilder fbb;
  Subscribe(fbb, 3, Args().Types({TypeByte(RecordType::kMessage)}).FromNow());
  ASSERT_TRUE(slow->SendFrame(fbb));
  auto answer = slow->Answer(3);
  ASSERT_TRUE(answer);
  uint64_t start = answer->r()->result_as_FeedPosition()->sequence();
  constexpr size_t kMessages = 2000;  // 16 MB: more than the socket and the server buffer
  for (size_t i = 0; i < kMessages; ++i) {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = R"([{"type":"text","text":")" + big + R"("}])";
    ASSERT_OK(svc().AppendMessage(m).get());
  }
  std::vector<uint64_t> seqs;
  uint64_t resume = 0;
  while (true) {
    auto r = slow->Read();
    ASSERT_TRUE(r) << "no end frame after " << seqs.size() << " events";
    if (r->r()->kind() == proto::FrameKind::end) {
      EXPECT_EQ(r->r()->code(), ErrorCode::resource_exhausted);
      resume = r->r()->result_as_FeedPosition()->sequence();
      break;
    }
    for (const auto* ch : *r->r()->result_as_Changes()->items()) seqs.push_back(ch->sequence());
  }
  ASSERT_LT(seqs.size(), kMessages) << "never cut off";
  for (uint64_t q : seqs) ASSERT_LE(q, resume) << "pushed past its resume point";
  auto again = Dial(server_.Key("service"));
  Subscribe(fbb, 4, Args().Types({TypeByte(RecordType::kMessage)}).After(resume));
  ASSERT_TRUE(again->SendFrame(fbb));
  std::vector<Reply> early;
  ASSERT_TRUE(again->Answer(4, &early));
  auto take = [&](const Reply& r) {
    if (r.r()->id() != 4 || r.r()->kind() != proto::FrameKind::event) return;
    for (const auto* ch : *r.r()->result_as_Changes()->items()) seqs.push_back(ch->sequence());
  };
  for (const auto& r : early) take(r);
  while (seqs.size() < kMessages) {
    auto r = again->Read();
    ASSERT_TRUE(r) << seqs.size() << " of " << kMessages;
    ASSERT_NE(r->r()->kind(), proto::FrameKind::end);
    take(*r);
  }
  EXPECT_EQ(seqs.size(), kMessages);
  EXPECT_EQ(std::set<uint64_t>(seqs.begin(), seqs.end()).size(), seqs.size()) << "duplicates";
  for (size_t i = 1; i < seqs.size(); ++i) ASSERT_LT(seqs[i - 1], seqs[i]) << "commit order";
  EXPECT_GT(seqs.front(), start);
}

}  // namespace
}  // namespace agentstore::testing

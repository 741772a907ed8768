// The wire protocol against a real agentstored, byte by byte: malformed, oversized and
// truncated frames, bytes that are not a Request, unknown operations, authentication
// order, act_as, deep pipelining, and acknowledged writes surviving SIGTERM and SIGKILL
// under load. Raw POSIX sockets, so nothing in the client library hides a fault.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agentstore/engine/operations.h"
#include "agentstore/net/frame.h"
#include "protocol_generated.h"
#include "raw_conn.h"
#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using flatbuffers::FlatBufferBuilder;
using proto::ErrorCode;

// ---- raw connection ----

// ---- request builders ----

void BuildRequest(FlatBufferBuilder& fbb, uint64_t id, proto::Op op,
                  std::optional<Uuid> act_as = std::nullopt, proto::Args type = proto::Args::NONE,
                  flatbuffers::Offset<void> args = 0) {
  fb::Uuid as;
  if (act_as) as = ToFb(*act_as);
  fbb.Finish(proto::CreateRequest(fbb, id, op, act_as ? &as : nullptr, type, args));
}

FlatBufferBuilder AuthRequest(uint64_t id, const std::string& key) {
  FlatBufferBuilder fbb;
  auto args = proto::CreateAuthArgs(fbb, fbb.CreateString(key));
  BuildRequest(fbb, id, proto::Op::authenticate, std::nullopt, proto::Args::AuthArgs, args.Union());
  return fbb;
}

// An op that takes IdArgs (user_get, chat_get, message_get, ...).
FlatBufferBuilder IdRequest(uint64_t id, proto::Op op, const Uuid& target,
                            std::optional<Uuid> act_as = std::nullopt) {
  FlatBufferBuilder fbb;
  fb::Uuid t = ToFb(target);
  auto args = proto::CreateIdArgs(fbb, &t);
  BuildRequest(fbb, id, op, act_as, proto::Args::IdArgs, args.Union());
  return fbb;
}

FlatBufferBuilder StatusRequest(uint64_t id) {
  FlatBufferBuilder fbb;
  BuildRequest(fbb, id, proto::Op::status);
  return fbb;
}

FlatBufferBuilder UserCreateRequest(uint64_t id, const std::string& email,
                                    std::optional<Uuid> act_as = std::nullopt) {
  FlatBufferBuilder fbb;
  fb::UserT u;
  u.email = email;
  auto args = fb::User::Pack(fbb, &u);
  BuildRequest(fbb, id, proto::Op::user_create, act_as, proto::Args::agentstore_fb_User,
               args.Union());
  return fbb;
}

std::vector<uint8_t> Bytes(const FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

bool VerifiesAsRequest(const std::vector<uint8_t>& b) {
  flatbuffers::Verifier v(b.data(), b.size(), 32, 100000);
  return v.VerifyBuffer<proto::Request>(nullptr);
}

// The one record in a Records result, as a verified row.
template <typename R>
const R* RecordOf(const Reply& reply) {
  const auto* recs = reply.r()->result_as_Records();
  if (!recs || !recs->items() || recs->items()->size() != 1) return nullptr;
  const auto* data = recs->items()->Get(0)->data();
  if (!data) return nullptr;
  flatbuffers::Verifier v(data->data(), data->size());
  if (!v.VerifyBuffer<R>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<R>(data->data());
}

// ---- fixture ----

class WireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.sub("data"))) << "agentstored did not start";
    svc_.emplace(server_.Connect(server_.Key("service")));
    fb::UserT u;
    u.email = "ada@example.com";
    auto r = svc_->CreateUser(u).get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ada_ = Id((*r)->id());
  }

  // A raw connection, authenticated with `key` (the service key by default).
  std::unique_ptr<RawConn> Authed(std::string key = "") {
    if (key.empty()) key = server_.Key("service");
    auto c = std::make_unique<RawConn>(server_.port());
    EXPECT_TRUE(c->ok()) << "connect failed";
    if (!c->ok()) return c;
    EXPECT_TRUE(c->SendFrame(AuthRequest(1, key)));
    auto r = c->Read();
    EXPECT_TRUE(r.has_value()) << "no answer to authenticate";
    if (r) {
      EXPECT_EQ(r->code(), ErrorCode::ok) << r->message();
      EXPECT_EQ(r->id(), 1u);
    }
    return c;
  }

  // Checks a server that is still well: a fresh connection authenticates and reads Ada.
  void ExpectServing(const std::string& context) {
    SCOPED_TRACE(context);
    auto c = Authed();
    ASSERT_TRUE(c->SendFrame(IdRequest(42, proto::Op::user_get, ada_)));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value()) << "no answer to user_get";
    EXPECT_EQ(r->id(), 42u);
    ASSERT_EQ(r->code(), ErrorCode::ok) << r->message();
    const auto* user = RecordOf<fb::User>(*r);
    ASSERT_NE(user, nullptr);
    EXPECT_EQ(Id(user->id()), ada_);
    EXPECT_EQ(Str(user->email()), "ada@example.com");
  }

  // Record counts per type, as the status operation reports them.
  std::map<std::string, uint64_t> RecordCounts() {
    auto s = svc_->GetStatus().get();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    std::map<std::string, uint64_t> out;
    if (s.ok())
      for (const auto& [name, n] : s->records) out[name] = n;
    return out;
  }

  TempDir dir_;
  ServerProcess server_;
  std::optional<Client> svc_;
  Uuid ada_;
};

// 64 random bytes under a correct length: invalid_argument with id 0, and the stream
// is still framed, so the same connection and others keep working.
TEST_F(WireTest, GarbageFrameGetsInvalidArgumentAndServerKeepsServing) {
  std::mt19937 rng(20240611);
  std::vector<uint8_t> garbage(64);
  for (auto& b : garbage) b = static_cast<uint8_t>(rng());
  ASSERT_FALSE(VerifiesAsRequest(garbage)) << "the seed made a valid Request; change it";

  RawConn c(server_.port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.SendFrame(garbage.data(), garbage.size()));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value()) << "no error response to garbage";
  EXPECT_EQ(r->code(), ErrorCode::invalid_argument) << CodeName(r->code()) << " " << r->message();
  EXPECT_EQ(r->id(), 0u);
  EXPECT_FALSE(r->message().empty());

  // Same connection: the framing is intact, so it can still authenticate and read.
  ASSERT_TRUE(c.SendFrame(AuthRequest(2, server_.Key("service"))));
  auto auth = c.Read();
  ASSERT_TRUE(auth.has_value());
  EXPECT_EQ(auth->code(), ErrorCode::ok) << auth->message();
  ASSERT_TRUE(c.SendFrame(IdRequest(3, proto::Op::user_get, ada_)));
  auto got = c.Read();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->code(), ErrorCode::ok) << got->message();

  ExpectServing("after garbage");
}

// A 4 GiB length: resource_exhausted with id 0, then the server closes the connection.
TEST_F(WireTest, HugeLengthGetsResourceExhaustedThenClose) {
  auto bystander = Authed();
  RawConn c(server_.port());
  ASSERT_TRUE(c.ok());
  const uint8_t huge[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  ASSERT_TRUE(c.SendAll(huge, 4));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value()) << "no error response to a 4 GiB length";
  EXPECT_EQ(r->code(), ErrorCode::resource_exhausted) << CodeName(r->code()) << " " << r->message();
  EXPECT_EQ(r->id(), 0u);
  EXPECT_TRUE(c.ReadsEof()) << "the connection stayed open after an oversized frame";

  // Just over the default 16 MiB limit is refused the same way, even when authenticated.
  auto c2 = Authed();
  uint8_t over[4];
  net::EncodeFrameLength(net::kDefaultMaxFrameBytes + 1, over);
  ASSERT_TRUE(c2->SendAll(over, 4));
  auto r2 = c2->Read();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->code(), ErrorCode::resource_exhausted) << r2->message();
  EXPECT_TRUE(c2->ReadsEof());

  // The connection opened before is unaffected.
  ASSERT_TRUE(bystander->SendFrame(IdRequest(7, proto::Op::user_get, ada_)));
  auto b = bystander->Read();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->id(), 7u);
  EXPECT_EQ(b->code(), ErrorCode::ok) << b->message();
  ExpectServing("after oversized frames");
}

// A frame cut short by the client closing: nothing to answer, nothing broken, and the
// connection is released (the status op's connection count comes back down).
TEST_F(WireTest, TruncatedFrameThenCloseLeavesServerUnaffected) {
  auto watcher = Authed();
  uint64_t id = 1000;
  auto connections = [&]() -> int64_t {
    if (!watcher->SendFrame(StatusRequest(++id))) return -1;
    auto r = watcher->Read();
    if (!r || r->code() != ErrorCode::ok || !r->r()->result_as_StatusInfo()) return -1;
    return r->r()->result_as_StatusInfo()->connections();
  };
  int64_t before = connections();
  ASSERT_GE(before, 1);
  for (int round = 0; round < 3; ++round) {
    RawConn c(server_.port());
    ASSERT_TRUE(c.ok());
    uint8_t h[4];
    net::EncodeFrameLength(100, h);
    ASSERT_TRUE(c.SendAll(h, 4));
    std::vector<uint8_t> ten(10, 0x5A);
    ASSERT_TRUE(c.SendAll(ten.data(), ten.size()));
    c.Close();
  }
  {
    // A header cut short, too.
    RawConn c(server_.port());
    ASSERT_TRUE(c.ok());
    const uint8_t half[2] = {0x10, 0x00};
    ASSERT_TRUE(c.SendAll(half, 2));
  }
  ExpectServing("after truncated frames");
  int64_t after = -1;
  for (int i = 0; i < 200; ++i) {
    after = connections();
    if (after == before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(after, before) << "connections closed mid-frame were not released";
}

// A write pipelined just before an oversized header was accepted and applied, so its
// answer must still go out before the server closes the connection.
TEST_F(WireTest, OversizedFrameAfterPipelinedWriteStillAnswersTheWrite) {
  auto c = Authed();
  auto create = Bytes(UserCreateRequest(9, "pipelined@example.com"));
  std::vector<uint8_t> both(4);
  net::EncodeFrameLength(static_cast<uint32_t>(create.size()), both.data());
  both.insert(both.end(), create.begin(), create.end());
  both.insert(both.end(), {0xFF, 0xFF, 0xFF, 0xFF});
  ASSERT_TRUE(c->SendBytes(both));
  std::map<uint64_t, ErrorCode> got;
  while (auto r = c->Read()) got[r->id()] = r->code();
  EXPECT_EQ(c->last(), RawConn::Got::kEof) << "the connection was not closed";
  ASSERT_TRUE(got.count(0)) << "no resource_exhausted error for the oversized frame";
  EXPECT_EQ(got[0], ErrorCode::resource_exhausted);
  auto created = svc_->GetUserByEmail("pipelined@example.com").get();
  ASSERT_TRUE(created.ok()) << "the write before the oversized frame was not applied";
  ASSERT_TRUE(got.count(9)) << "the user was created but its response was dropped at close";
  EXPECT_EQ(got[9], ErrorCode::ok);
}

// Frames of the right length whose bytes are not a Request: invalid_argument, id 0.
TEST_F(WireTest, NonRequestBytesGetInvalidArgumentWithIdZero) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> cases;
  std::vector<uint8_t> good = Bytes(IdRequest(99, proto::Op::user_get, ada_));
  ASSERT_TRUE(VerifiesAsRequest(good));
  {
    auto b = good;  // root offset far past the end
    b[0] = 0x00, b[1] = 0xFF, b[2] = 0xFF, b[3] = 0x7F;
    cases.emplace_back("root offset out of bounds", b);
  }
  {
    auto b = good;  // the root table's vtable offset corrupted
    uint32_t root = flatbuffers::ReadScalar<uint32_t>(b.data());
    flatbuffers::WriteScalar<int32_t>(b.data() + root, 0x7FFFFFF0);
    cases.emplace_back("vtable offset corrupted", b);
  }
  {
    auto b = good;  // only the first half
    b.resize(b.size() / 2);
    cases.emplace_back("truncated buffer", b);
  }
  cases.emplace_back("too short for a root offset", std::vector<uint8_t>{1, 2});
  cases.emplace_back("empty frame", std::vector<uint8_t>{});
  {
    // A Response, which is not a Request: its `message` string sits where a Request
    // holds the act_as struct, and its slots disagree in size.
    FlatBufferBuilder fbb;
    auto msg = fbb.CreateString("x");
    fbb.Finish(proto::CreateResponse(fbb, 5, ErrorCode::not_found, msg));
    cases.emplace_back("a Response buffer", Bytes(fbb));
  }
  auto c = Authed();
  uint64_t next = 100;
  for (const auto& [what, bytes] : cases) {
    SCOPED_TRACE(what);
    ASSERT_FALSE(VerifiesAsRequest(bytes));
    ASSERT_TRUE(c->SendFrame(bytes.data(), bytes.size()));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value()) << "no response";
    EXPECT_EQ(r->code(), ErrorCode::invalid_argument) << CodeName(r->code()) << " " << r->message();
    EXPECT_EQ(r->id(), 0u);
    // The connection keeps working after each.
    ASSERT_TRUE(c->SendFrame(IdRequest(++next, proto::Op::user_get, ada_)));
    auto ok = c->Read();
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(ok->id(), next);
    EXPECT_EQ(ok->code(), ErrorCode::ok) << ok->message();
  }
}

// Op numbers past the operation table: invalid_argument, with the request's id echoed.
TEST_F(WireTest, UnknownOpGetsInvalidArgumentWithIdEchoed) {
  auto c = Authed();
  const uint16_t first_unknown = static_cast<uint16_t>(kOperationCount);
  for (uint16_t op : {uint16_t{60000}, first_unknown, uint16_t{0xFFFF}}) {
    SCOPED_TRACE(op);
    FlatBufferBuilder fbb;
    BuildRequest(fbb, 777000 + op, static_cast<proto::Op>(op));
    ASSERT_TRUE(c->SendFrame(fbb));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::invalid_argument) << CodeName(r->code()) << " " << r->message();
    EXPECT_EQ(r->id(), 777000u + op);
    EXPECT_NE(r->message().find(std::to_string(op)), std::string::npos) << r->message();
  }
  // The last real op still dispatches (answers something other than "unknown").
  FlatBufferBuilder last;
  BuildRequest(last, 5, static_cast<proto::Op>(kOperationCount - 1));
  ASSERT_TRUE(c->SendFrame(last));
  auto r = c->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->id(), 5u);
  EXPECT_EQ(r->message().find("unknown operation"), std::string::npos) << r->message();
  ExpectServing("after unknown ops");
}

// Every declared operation is built: none answers not_implemented (a declared op without
// a handler would fall through to the not_implemented default), each refuses a request
// without arguments with a clear error instead, and none of them changes anything.
TEST_F(WireTest, EveryOperationIsBuilt) {
  auto c = Authed();
  auto before = RecordCounts();
  for (const auto& info : Operations()) {
    EXPECT_TRUE(info.implemented) << info.name;
    if (info.op == Op::authenticate || info.op == Op::status) continue;
    SCOPED_TRACE(std::string(info.name));
    FlatBufferBuilder fbb;
    BuildRequest(fbb, 900 + static_cast<uint64_t>(info.op), static_cast<proto::Op>(info.op));
    ASSERT_TRUE(c->SendFrame(fbb));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->id(), 900 + static_cast<uint64_t>(info.op));
    EXPECT_NE(r->code(), ErrorCode::not_implemented) << r->message();
  }
  EXPECT_EQ(RecordCounts(), before);
  ExpectServing("after every op without arguments");
}

// The usage, quota and limit operations refuse missing and mismatched arguments,
// unknown enum values and non-finite numbers with invalid_argument, changing nothing.
TEST_F(WireTest, UsageOperationsRejectBadArguments) {
  auto c = Authed();
  auto before = RecordCounts();
  uint64_t id = 7000;
  auto expect_invalid = [&](FlatBufferBuilder& fbb, const char* what) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(c->SendFrame(fbb));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::invalid_argument) << CodeName(r->code()) << " " << r->message();
    EXPECT_FALSE(r->message().empty());
  };
  for (proto::Op op : {proto::Op::track_agent_usage, proto::Op::rate_agent, proto::Op::usage_list,
                       proto::Op::usage_summary, proto::Op::quota_set, proto::Op::quota_get,
                       proto::Op::limit_config_put, proto::Op::limit_check,
                       proto::Op::limit_release, proto::Op::limit_config_delete}) {
    FlatBufferBuilder none;
    BuildRequest(none, ++id, op);
    expect_invalid(none, proto::EnumNameOp(op));
    FlatBufferBuilder wrong;
    auto args = proto::CreateBackupArgs(wrong, wrong.CreateString("/tmp/x"));
    BuildRequest(wrong, ++id, op, std::nullopt, proto::Args::BackupArgs, args.Union());
    expect_invalid(wrong, proto::EnumNameOp(op));
  }
  fb::Uuid u = ToFb(ada_);
  {
    FlatBufferBuilder fbb;
    auto a = proto::CreateRateAgentArgs(fbb, &u, &u, std::nan(""));
    BuildRequest(fbb, ++id, proto::Op::rate_agent, std::nullopt, proto::Args::RateAgentArgs,
                 a.Union());
    expect_invalid(fbb, "NaN rating");
  }
  {
    FlatBufferBuilder fbb;
    auto a = proto::CreateUsageListArgs(fbb, &u, 9);
    BuildRequest(fbb, ++id, proto::Op::usage_list, std::nullopt, proto::Args::UsageListArgs,
                 a.Union());
    expect_invalid(fbb, "unknown agent_type");
  }
  {
    FlatBufferBuilder fbb;
    auto a = proto::CreateUsageSummaryArgs(fbb, proto::SummaryOwner::user, &u, 0, INT64_MAX,
                                           static_cast<proto::SummaryBucket>(9));
    BuildRequest(fbb, ++id, proto::Op::usage_summary, std::nullopt, proto::Args::UsageSummaryArgs,
                 a.Union());
    expect_invalid(fbb, "unknown bucket");
  }
  {
    FlatBufferBuilder fbb;
    auto a = proto::CreateQuotaGetArgs(fbb, &u, 9);
    BuildRequest(fbb, ++id, proto::Op::quota_get, std::nullopt, proto::Args::QuotaGetArgs,
                 a.Union());
    expect_invalid(fbb, "unknown quota_type");
  }
  {
    FlatBufferBuilder fbb;
    fb::UsageLogT call;
    call.user_id = FbId(ada_);
    call.agent_id = FbId(ada_);
    call.input_tokens = -5;
    auto l = fb::UsageLog::Pack(fbb, &call);
    auto a = proto::CreateTrackUsageArgs(fbb, l);
    BuildRequest(fbb, ++id, proto::Op::track_agent_usage, std::nullopt, proto::Args::TrackUsageArgs,
                 a.Union());
    expect_invalid(fbb, "negative tokens");
  }
  {
    FlatBufferBuilder fbb;
    fb::RateLimitConfigT cfg;
    cfg.limit_type = static_cast<fb::LimitType>(9);
    auto a = fb::RateLimitConfig::Pack(fbb, &cfg);
    BuildRequest(fbb, ++id, proto::Op::limit_config_put, std::nullopt,
                 proto::Args::agentstore_fb_RateLimitConfig, a.Union());
    expect_invalid(fbb, "unknown limit_type");
  }
  EXPECT_EQ(RecordCounts(), before);
  ExpectServing("after bad usage arguments");
}

// Before authenticate every other op is permission_denied "authenticate first"; a bad
// key is permission_denied and leaves the connection unauthenticated; a good key then
// works on the same connection.
TEST_F(WireTest, AuthenticateFirstThenBadKeyThenGoodKey) {
  RawConn c(server_.port());
  ASSERT_TRUE(c.ok());
  auto expect_denied = [&](const FlatBufferBuilder& req, uint64_t id, const char* what) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(c.SendFrame(req));
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->id(), id);
    EXPECT_EQ(r->code(), ErrorCode::permission_denied)
        << CodeName(r->code()) << " " << r->message();
    EXPECT_EQ(r->message(), "authenticate first");
    EXPECT_EQ(r->r()->result_type(), proto::Result::NONE);
  };
  expect_denied(IdRequest(11, proto::Op::user_get, ada_), 11, "user_get");
  expect_denied(StatusRequest(12), 12, "status");
  expect_denied(UserCreateRequest(13, "mallory@example.com"), 13, "user_create");
  expect_denied(IdRequest(14, proto::Op::user_get, ada_, ada_), 14, "user_get with act_as");

  // A wrong key, an empty key, a service key with one character changed.
  std::string good = server_.Key("service");
  ASSERT_FALSE(good.empty());
  std::string tampered = good;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  uint64_t id = 20;
  for (const std::string& bad : {std::string("ask_not_a_real_key"), std::string(), tampered}) {
    SCOPED_TRACE("bad key '" + bad + "'");
    ASSERT_TRUE(c.SendFrame(AuthRequest(++id, bad)));
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->id(), id);
    EXPECT_EQ(r->code(), ErrorCode::permission_denied)
        << CodeName(r->code()) << " " << r->message();
    EXPECT_EQ(r->r()->result_type(), proto::Result::NONE);
  }
  expect_denied(IdRequest(30, proto::Op::user_get, ada_), 30, "user_get after bad keys");

  ASSERT_TRUE(c.SendFrame(AuthRequest(31, good)));
  auto auth = c.Read();
  ASSERT_TRUE(auth.has_value());
  EXPECT_EQ(auth->id(), 31u);
  ASSERT_EQ(auth->code(), ErrorCode::ok) << auth->message();
  const auto* who = auth->r()->result_as_Authenticated();
  ASSERT_NE(who, nullptr);
  EXPECT_EQ(Str(who->role()), "service");

  ASSERT_TRUE(c.SendFrame(IdRequest(32, proto::Op::user_get, ada_)));
  auto r = c.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->id(), 32u);
  EXPECT_EQ(r->code(), ErrorCode::ok) << r->message();
  ASSERT_NE(RecordOf<fb::User>(*r), nullptr);
  ASSERT_TRUE(c.SendFrame(StatusRequest(33)));
  auto s = c.Read();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->code(), ErrorCode::ok) << s->message();
  EXPECT_NE(s->r()->result_as_StatusInfo(), nullptr);
}

// 1,000 requests written in one go before reading anything: 1,000 answers, each id
// exactly once, all ok, and nothing more.
TEST_F(WireTest, ThousandPipelinedRequests) {
  auto c = Authed();
  constexpr int kN = 1000;
  std::vector<uint8_t> all;
  for (int i = 0; i < kN; ++i) {
    auto fbb = IdRequest(10'000 + i, proto::Op::user_get, ada_);
    uint8_t h[4];
    net::EncodeFrameLength(fbb.GetSize(), h);
    all.insert(all.end(), h, h + 4);
    all.insert(all.end(), fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  }
  // One writer thread, so a server that answers while we still write cannot deadlock us.
  std::atomic<bool> sent{false};
  std::thread writer([&] { sent = c->SendBytes(all); });
  std::set<uint64_t> seen;
  int not_ok = 0, dupes = 0, foreign = 0;
  for (int i = 0; i < kN; ++i) {
    auto r = c->Read();
    if (!r) {
      ADD_FAILURE() << "stream ended after " << i << " responses";
      break;
    }
    if (r->code() != ErrorCode::ok) ++not_ok;
    if (r->id() < 10'000 || r->id() >= 10'000 + kN) ++foreign;
    if (!seen.insert(r->id()).second) ++dupes;
    if (r->code() == ErrorCode::ok) {
      const auto* u = RecordOf<fb::User>(*r);
      if (!u || Id(u->id()) != ada_) ++not_ok;
    }
  }
  writer.join();
  EXPECT_TRUE(sent.load());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kN));
  EXPECT_EQ(not_ok, 0);
  EXPECT_EQ(dupes, 0);
  EXPECT_EQ(foreign, 0);
  // Nothing extra queued: the next frame is the answer to the next request.
  ASSERT_TRUE(c->SendFrame(StatusRequest(5)));
  auto r = c->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->id(), 5u);
  EXPECT_EQ(r->code(), ErrorCode::ok) << r->message();
}

// Every kind of bad input above, including would-be writes, changes no record.
TEST_F(WireTest, BadInputChangesNothing) {
  auto before = RecordCounts();
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(before["users"], 1u);
  auto users_before = svc_->ListUsers().get();
  ASSERT_TRUE(users_before.ok());

  // Garbage, and a user_create with its bytes corrupted.
  {
    auto c = Authed();
    std::mt19937 rng(7);
    for (int i = 0; i < 20; ++i) {
      std::vector<uint8_t> g(8 + rng() % 120);
      for (auto& b : g) b = static_cast<uint8_t>(rng());
      if (VerifiesAsRequest(g)) continue;
      ASSERT_TRUE(c->SendFrame(g.data(), g.size()));
      auto r = c->Read();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->code(), ErrorCode::invalid_argument);
    }
    auto create = Bytes(UserCreateRequest(3, "corrupt@example.com"));
    create.resize(create.size() - 6);
    ASSERT_TRUE(c->SendFrame(create.data(), create.size()));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::invalid_argument);
  }
  // A user_create cut short by close, and one behind an oversized header.
  {
    RawConn c(server_.port());
    ASSERT_TRUE(c.SendFrame(AuthRequest(1, server_.Key("service"))));
    ASSERT_TRUE(c.Read().has_value());
    auto create = Bytes(UserCreateRequest(2, "cut@example.com"));
    uint8_t h[4];
    net::EncodeFrameLength(static_cast<uint32_t>(create.size()), h);
    ASSERT_TRUE(c.SendAll(h, 4));
    ASSERT_TRUE(c.SendAll(create.data(), create.size() - 1));
  }
  {
    auto c = Authed();
    const uint8_t huge[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    // A user_create whose header claims 4 GiB (only its header is sent: the server
    // answers and closes without reading further).
    ASSERT_TRUE(c->SendAll(huge, 4));
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::resource_exhausted);
    EXPECT_TRUE(c->ReadsEof());
  }
  // Unauthenticated, bad-key and admin act_as writes; an unknown op.
  {
    RawConn c(server_.port());
    ASSERT_TRUE(c.SendFrame(UserCreateRequest(1, "anon@example.com")));
    auto r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::permission_denied);
    ASSERT_TRUE(c.SendFrame(AuthRequest(2, "ask_bogus")));
    ASSERT_TRUE(c.Read().has_value());
    ASSERT_TRUE(c.SendFrame(UserCreateRequest(3, "badkey@example.com")));
    r = c.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::permission_denied);
  }
  {
    auto admin = Authed(server_.Key("admin"));
    ASSERT_TRUE(admin->SendFrame(UserCreateRequest(4, "admin-as@example.com", ada_)));
    auto r = admin->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::permission_denied) << r->message();
    FlatBufferBuilder fbb;
    fb::UserT u;
    u.email = "unknown-op@example.com";
    auto args = fb::User::Pack(fbb, &u);
    BuildRequest(fbb, 5, static_cast<proto::Op>(60000), std::nullopt,
                 proto::Args::agentstore_fb_User, args.Union());
    ASSERT_TRUE(admin->SendFrame(fbb));
    r = admin->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code(), ErrorCode::invalid_argument);
  }

  ExpectServing("after all bad input");
  auto after = RecordCounts();
  EXPECT_EQ(after, before);
  auto users_after = svc_->ListUsers().get();
  ASSERT_TRUE(users_after.ok());
  ASSERT_EQ(users_after->rows.size(), users_before->rows.size());
  for (size_t i = 0; i < users_after->rows.size(); ++i)
    EXPECT_EQ(users_after->rows[i].bytes(), users_before->rows[i].bytes());
  for (const char* email : {"corrupt@example.com", "cut@example.com", "anon@example.com",
                            "badkey@example.com", "admin-as@example.com", "unknown-op@example.com"})
    EXPECT_CODE(svc_->GetUserByEmail(email).get(), kNotFound) << email;
}

// act_as: a service connection acting for U sees only U's records, per request; an
// admin or user key sending act_as is refused.
TEST_F(WireTest, ActAsAppliesTheUsersRulesForServiceKeysOnly) {
  fb::UserT bu;
  bu.email = "bob@example.com";
  auto bob = svc_->CreateUser(bu).get();
  ASSERT_TRUE(bob.ok());
  Uuid bob_id = Id((*bob)->id());
  auto chat_of = [&](const Uuid& user) {
    fb::ChatT c;
    c.user_id = FbId(user);
    c.title = "chat";
    auto r = svc_->CreateChat(c).get();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Id((*r)->id()) : Uuid();
  };
  Uuid ada_chat = chat_of(ada_), bob_chat = chat_of(bob_id);

  auto ask = [](RawConn& c, const FlatBufferBuilder& req) {
    EXPECT_TRUE(c.SendFrame(req));
    auto r = c.Read();
    EXPECT_TRUE(r.has_value());
    return r ? r->code() : ErrorCode::io_error;
  };

  auto svc = Authed();
  EXPECT_EQ(ask(*svc, IdRequest(1, proto::Op::chat_get, ada_chat, ada_)), ErrorCode::ok);
  EXPECT_EQ(ask(*svc, IdRequest(2, proto::Op::chat_get, bob_chat, ada_)), ErrorCode::not_found);
  EXPECT_EQ(ask(*svc, IdRequest(3, proto::Op::user_get, bob_id, ada_)), ErrorCode::not_found);
  EXPECT_EQ(ask(*svc, IdRequest(4, proto::Op::user_get, ada_, ada_)), ErrorCode::ok);
  // The user's role rules apply too: status is not a user operation.
  {
    FlatBufferBuilder fbb;
    BuildRequest(fbb, 5, proto::Op::status, ada_);
    EXPECT_EQ(ask(*svc, fbb), ErrorCode::permission_denied);
  }
  // Acting for Bob flips it; act_as is per request, not sticky.
  EXPECT_EQ(ask(*svc, IdRequest(6, proto::Op::chat_get, bob_chat, bob_id)), ErrorCode::ok);
  EXPECT_EQ(ask(*svc, IdRequest(7, proto::Op::chat_get, ada_chat, bob_id)), ErrorCode::not_found);
  EXPECT_EQ(ask(*svc, IdRequest(8, proto::Op::chat_get, bob_chat)), ErrorCode::ok);
  // Writing Bob's chat while acting for Ada is refused and changes nothing.
  {
    FlatBufferBuilder fbb;
    fb::MessageT m;
    m.chat_id = FbId(bob_chat);
    m.parts = R"([{"type":"text","text":"not mine"}])";
    auto args = fb::Message::Pack(fbb, &m);
    BuildRequest(fbb, 9, proto::Op::message_append, ada_, proto::Args::agentstore_fb_Message,
                 args.Union());
    EXPECT_NE(ask(*svc, fbb), ErrorCode::ok);
    auto chat = svc_->GetChat(bob_chat).get();
    ASSERT_TRUE(chat.ok());
    EXPECT_EQ((*chat)->message_count(), 0);
  }
  // The typed client's ActingAs goes through the same field.
  Client as_ada = svc_->ActingAs(ada_);
  EXPECT_OK(as_ada.GetChat(ada_chat).get());
  EXPECT_CODE(as_ada.GetChat(bob_chat).get(), kNotFound);

  // An admin key may read everything, but may not act as anyone.
  auto admin = Authed(server_.Key("admin"));
  EXPECT_EQ(ask(*admin, IdRequest(10, proto::Op::chat_get, bob_chat)), ErrorCode::ok);
  EXPECT_EQ(ask(*admin, IdRequest(11, proto::Op::chat_get, ada_chat, ada_)),
            ErrorCode::permission_denied);
  EXPECT_EQ(ask(*admin, IdRequest(12, proto::Op::chat_get, bob_chat, ada_)),
            ErrorCode::permission_denied);

  // Nor may a user key (even acting as itself).
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(ada_);
  auto key = svc_->CreateApiKey(k).get();
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto user = Authed(key->secret);
  EXPECT_EQ(ask(*user, IdRequest(13, proto::Op::chat_get, ada_chat)), ErrorCode::ok);
  EXPECT_EQ(ask(*user, IdRequest(14, proto::Op::chat_get, ada_chat, ada_)),
            ErrorCode::permission_denied);
  EXPECT_EQ(ask(*user, IdRequest(15, proto::Op::chat_get, bob_chat, bob_id)),
            ErrorCode::permission_denied);
}

// ---- crash and shutdown under write load ----

struct Load {
  std::vector<Uuid> chats;
  std::vector<std::vector<Uuid>> acked;  // per writer: ids of acknowledged appends
  std::vector<Status> first_error;
};

// Four writers append to their own chat (each over its own connection) until a call
// fails; `stop` runs once they have been writing ~300 ms.
template <typename StopFn>
Load WriteUntilStopped(ServerProcess& server, Client& svc, const Uuid& user, StopFn stop) {
  constexpr int kWriters = 4;
  Load load;
  load.acked.resize(kWriters);
  load.first_error.resize(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    fb::ChatT c;
    c.user_id = FbId(user);
    c.title = "load " + std::to_string(i);
    auto r = svc.CreateChat(c).get();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return load;
    load.chats.push_back(Id((*r)->id()));
  }
  std::vector<Client> clients;
  for (int i = 0; i < kWriters; ++i) {
    // A short dial timeout: a call made after the server went away fails fast.
    ClientOptions o = server.Options(server.Key("service"));
    o.connect_timeout = std::chrono::milliseconds(200);
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return load;
    clients.push_back(std::move(c).value());
  }
  std::atomic<int> started{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      fb::MessageT m;
      m.chat_id = FbId(load.chats[w]);
      m.input_tokens = 1;
      started.fetch_add(1);
      for (int n = 0;; ++n) {
        m.parts =
            R"([{"type":"text","text":"w)" + std::to_string(w) + "-" + std::to_string(n) + R"("}])";
        auto r = clients[w].AppendMessage(m).get();
        if (!r.ok()) {
          load.first_error[w] = r.status();
          return;
        }
        load.acked[w].push_back(Id(r->message->id()));
      }
    });
  }
  while (started.load() < kWriters) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop();
  for (auto& t : writers) t.join();
  return load;
}

// After a restart: every acknowledged append is readable, in its own chat, and every
// chat's message_count equals the number of messages listed for it.
void VerifyAfterRestart(Client& svc, const Load& load) {
  size_t total = 0;
  for (size_t w = 0; w < load.chats.size(); ++w) {
    SCOPED_TRACE("writer " + std::to_string(w));
    std::set<Uuid> listed;
    MessagePageRequest page;
    page.from_end = false;
    page.limit = 500;
    for (int pages = 0; pages < 1000; ++pages) {
      auto r = svc.ListMessages(load.chats[w], page).get();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      for (const auto& row : r->rows) {
        EXPECT_EQ(Id(row->chat_id()), load.chats[w]);
        listed.insert(Id(row->id()));
      }
      if (r->next_cursor.empty() || r->rows.empty()) break;
      page.cursor = r->next_cursor;
    }
    auto chat = svc.GetChat(load.chats[w]).get();
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    EXPECT_EQ(static_cast<size_t>((*chat)->message_count()), listed.size())
        << "chat totals disagree with its messages";
    EXPECT_EQ(static_cast<size_t>((*chat)->total_input_tokens()), listed.size());
    EXPECT_GE(listed.size(), load.acked[w].size());
    size_t missing = 0, unreadable = 0;
    for (const Uuid& id : load.acked[w]) {
      if (!listed.count(id)) ++missing;
      auto m = svc.GetMessage(id).get();
      if (!m.ok()) {
        ++unreadable;
        continue;
      }
      EXPECT_EQ(Id((*m)->chat_id()), load.chats[w]);
    }
    EXPECT_EQ(missing, 0u) << "acknowledged messages missing from the listing";
    EXPECT_EQ(unreadable, 0u) << "acknowledged messages not readable";
    total += load.acked[w].size();
  }
  EXPECT_GT(total, 0u) << "no append was acknowledged: the load never ran";
}

TEST_F(WireTest, SigtermDuringWriteLoadKeepsEveryAcknowledgedWrite) {
  int exit_status = -1;
  Load load = WriteUntilStopped(server_, *svc_, ada_, [&] { exit_status = server_.Stop(); });
  svc_.reset();
  EXPECT_EQ(exit_status, 0) << "agentstored did not exit cleanly on SIGTERM";
  ASSERT_EQ(load.chats.size(), 4u);
  // Writers stop on losing the connection, never on an error answer (such as io_error
  // "write not durable") from a server shutting down cleanly.
  for (const auto& s : load.first_error)
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();

  ServerProcess restarted;
  ASSERT_TRUE(restarted.Start(dir_.sub("data"))) << "agentstored did not restart";
  Client svc = restarted.Connect(restarted.Key("service"));
  VerifyAfterRestart(svc, load);
  EXPECT_EQ(restarted.Stop(), 0);
}

TEST_F(WireTest, Kill9DuringWriteLoadKeepsEveryAcknowledgedWrite) {
  int exit_status = -1;
  Load load = WriteUntilStopped(server_, *svc_, ada_, [&] { exit_status = server_.Kill(); });
  svc_.reset();
  EXPECT_EQ(exit_status, 128 + SIGKILL);
  ASSERT_EQ(load.chats.size(), 4u);

  ServerProcess restarted;
  ASSERT_TRUE(restarted.Start(dir_.sub("data"))) << "agentstored did not restart after SIGKILL";
  Client svc = restarted.Connect(restarted.Key("service"));
  VerifyAfterRestart(svc, load);
  // Ada herself, written before the load, is there too.
  EXPECT_OK(svc.GetUser(ada_).get());
}

}  // namespace
}  // namespace agentstore::testing

// Issue 12's exactness and hygiene rules, each a regression test:
//  - seed NUMERIC(3,2) columns in exact decimal, rounded half away from zero (PostgreSQL);
//  - the seeds' column ranges (INTEGER tokens, DECIMAL(10,6) costs) enforced, naming the
//    field and the range;
//  - length caps count characters (code points), not bytes;
//  - one error rule: a referenced record that is missing is not_found naming the field;
//  - time arguments outside the stored range are clamped (queries) or refused (records);
//  - a public agent does not reveal its creator to other users;
//  - the data directory is 0700 with 0600 files, and one others may write is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "agentstore/engine/engine.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class Exactness : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    user_ = Id(MakeUser("a@x.example")->id());
    agent_ = Id(MakeAgent("helper")->id());
    fb::UserAgentT ua;
    ua.user_id = FbId(user_);
    ua.agent_id = FbId(agent_);
    ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
  }
  fb::UsageLogT Call(bool success = true) {
    fb::UsageLogT l;
    l.user_id = FbId(user_);
    l.agent_id = FbId(agent_);
    l.model = "m";
    l.provider = "p";
    l.success = success;
    l.request_ts = clock_.NowMicros() - 1000;
    l.response_ts = clock_.NowMicros();
    return l;
  }
  void Track(int successes, int failures) {
    for (int i = 0; i < successes + failures; ++i)
      ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(i < successes)));
  }
  double Quality() {
    return *Must(e().GetUserAgentFor(Scope::Service(), user_, agent_))->quality_score();
  }
  Uuid user_, agent_;
};

TEST_F(Exactness, RatingIsNumeric32RoundedHalfAwayFromZero) {
  // The double nearest 1.005 is 1.00499999999999989...; PostgreSQL's NUMERIC(3,2) stores
  // the 1.005 the client wrote as 1.01.
  auto r = Must(e().RateAgent(Scope::Service(), user_, agent_, 1.005));
  EXPECT_EQ(*r->user_rating(), 1.01);
  EXPECT_EQ(*Must(e().RateAgent(Scope::Service(), user_, agent_, 4.445))->user_rating(), 4.45);
  EXPECT_EQ(*Must(e().RateAgent(Scope::Service(), user_, agent_, 2.994))->user_rating(), 2.99);
}

TEST_F(Exactness, QualityScoreRoundsLikePostgres) {
  // Never used, rated 3.02: (3.02 - 1) / 4 = 0.505 -> 0.51.
  ASSERT_OK(e().RateAgent(Scope::Service(), user_, agent_, 3.02));
  EXPECT_EQ(Quality(), 0.51);
  // One success of one, rated 2: 0.7 + 0.3 * 1 / 4 = 0.775 -> 0.78.
  Track(1, 0);
  ASSERT_OK(e().RateAgent(Scope::Service(), user_, agent_, 2));
  EXPECT_EQ(Quality(), 0.78);
  // One success of two, rated 4: 0.35 + 0.225 = 0.575 -> 0.58.
  Track(0, 1);
  ASSERT_OK(e().RateAgent(Scope::Service(), user_, agent_, 4));
  EXPECT_EQ(Quality(), 0.58);
}

TEST_F(Exactness, UnratedQualityIsTheSuccessRateRoundedHalfUp) {
  // 29 of 200 = 0.145 exactly -> 0.15; in binary 29.0 / 200 * 100 = 14.4999... -> 0.14.
  Track(29, 171);
  EXPECT_EQ(Quality(), 0.15);
}

TEST_F(Exactness, SeedRangesAreEnforcedNamingFieldAndRange) {
  std::string before = Describe(e().Stats());
  auto call = Call();
  call.input_cost = 10'000'000'000;  // 10,000 USD: over DECIMAL(10,6)
  auto r = e().TrackAgentUsage(Scope::Service(), call);
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(TextOf(r).find("input_cost"), std::string::npos) << TextOf(r);
  EXPECT_NE(TextOf(r).find("9999999999"), std::string::npos) << TextOf(r);
  call = Call();
  call.output_tokens = 3'000'000'000;  // over INTEGER
  r = e().TrackAgentUsage(Scope::Service(), call);
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(TextOf(r).find("output_tokens"), std::string::npos) << TextOf(r);
  EXPECT_NE(TextOf(r).find("2147483647"), std::string::npos) << TextOf(r);
  call = Call();
  call.input_tokens = 2'000'000'000;
  call.output_tokens = 2'000'000'000;  // each fits, their total does not
  EXPECT_CODE(e().TrackAgentUsage(Scope::Service(), call), kInvalidArgument);
  call = Call();
  call.input_cost = 9'999'999'999;  // 9999.999999 USD: the largest DECIMAL(10,6)
  EXPECT_OK(e().TrackAgentUsage(Scope::Service(), call));
  before = Describe(e().Stats());
  Uuid chat = Id(MakeChat(user_)->id());
  before = Describe(e().Stats());
  EXPECT_CODE(Append(Scope::Service(), chat, "x", 0, 0, 10'000'000'000), kInvalidArgument);
  EXPECT_CODE(Append(Scope::Service(), chat, "x", 3'000'000'000), kInvalidArgument);
  EXPECT_EQ(Describe(e().Stats()), before);
  fb::RateLimitConfigT c;
  c.scope = fb::LimitScope::global;
  c.limit_type = fb::LimitType::concurrent;
  c.limit_value = 3'000'000'000;  // limit_value INTEGER
  EXPECT_CODE(e().PutLimitConfig(Scope::Service(), c), kInvalidArgument);
}

TEST_F(Exactness, LengthCapsCountCharactersNotBytes) {
  std::string e200, e201;
  for (int i = 0; i < 200; ++i) e200 += "\xC3\xA9";  // é, 2 bytes
  e201 = e200 + "\xC3\xA9";
  std::string patch = R"({"full_name":")" + e200 + R"("})";
  auto u = e().UpdateUser(Scope::Service(), user_, patch);
  ASSERT_OK(u.status()) << "200 characters (400 bytes) fit a 200-character name";
  EXPECT_EQ(Str(u.value()->full_name()), e200);
  auto too_long = e().UpdateUser(Scope::Service(), user_, R"({"full_name":")" + e201 + R"("})");
  EXPECT_CODE(too_long, kInvalidArgument);
  EXPECT_NE(TextOf(too_long).find("200 characters"), std::string::npos) << TextOf(too_long);
  std::string emoji;  // 4-byte code points
  for (int i = 0; i < 200; ++i) emoji += "\xF0\x9F\x98\x80";
  EXPECT_OK(e().UpdateUser(Scope::Service(), user_, R"({"job_title":")" + emoji + R"("})"));
}

TEST_F(Exactness, MissingReferencesAreNotFoundNamingTheField) {
  const Uuid missing = *Uuid::Parse("0badc0de-0000-7000-8000-000000000009");
  auto names = [](const auto& r, const char* field) {
    EXPECT_CODE(r, kNotFound) << field;
    EXPECT_NE(TextOf(r).find(field), std::string::npos) << TextOf(r);
  };
  fb::ChatT c;
  c.user_id = FbId(missing);
  names(e().CreateChat(Scope::Service(), c), "user_id");
  fb::UserAgentT ua;
  ua.user_id = FbId(user_);
  ua.agent_id = FbId(missing);
  names(e().CreateUserAgent(Scope::Service(), ua), "agent_id");
  ua.user_id = FbId(missing);
  ua.agent_id = FbId(agent_);
  names(e().CreateUserAgent(Scope::Service(), ua), "user_id");
  fb::UserMemoryT m;
  m.user_id = FbId(missing);
  m.memory_key = "k";
  m.embedding = std::vector<float>(384, 0.1f);
  names(e().UpsertMemory(Scope::Service(), m), "user_id");
  auto call = Call();
  call.user_id = FbId(missing);
  names(e().TrackAgentUsage(Scope::Service(), call), "user_id");
  call = Call();
  call.chat_id = FbId(missing);
  names(e().TrackAgentUsage(Scope::Service(), call), "chat_id");
  fb::ApiKeyT k;
  k.role = fb::KeyRole::user;
  k.user_id = FbId(missing);
  names(e().CreateApiKey(Scope::Service(), k), "user_id");
  fb::UserT u;
  u.email = "t@x.example";
  u.tenant_id = FbId(missing);
  names(e().CreateUser(Scope::Service(), u), "tenant_id");
  fb::QuotaT q;
  q.tenant_id = FbId(missing);
  names(e().SetQuota(Scope::Service(), q), "tenant_id");
  fb::RateLimitConfigT rl;
  rl.scope = fb::LimitScope::user;
  rl.scope_id = FbId(missing);
  rl.limit_type = fb::LimitType::concurrent;
  names(e().PutLimitConfig(Scope::Service(), rl), "scope_id");
  names(Append(Scope::Service(), missing, "x"), "chat_id");
}

TEST_F(Exactness, OutOfRangeTimesAreClampedInQueriesAndRefusedInRecords) {
  Track(1, 0);
  UsageSummaryRequest r;
  r.id = user_;
  r.from = INT64_MIN;  // DayOf(INT64_MIN) overflowed and answered no rows
  r.to = INT64_MAX;
  r.bucket = SummaryBucket::kTotal;
  auto s = Must(e().SummarizeUsage(Scope::Service(), r));
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0].totals.requests, 1);
  UsageQuery q;
  q.user = user_;
  q.from = INT64_MIN;
  EXPECT_EQ(Must(e().ListUsage(Scope::Service(), q)).rows.size(), 1u);
  fb::ApiKeyT k;
  k.role = fb::KeyRole::admin;
  k.expires_at = INT64_MAX;  // past year 9999
  auto key = e().CreateApiKey(Scope::Service(), k);
  EXPECT_CODE(key, kInvalidArgument);
  EXPECT_NE(TextOf(key).find("expires_at"), std::string::npos) << TextOf(key);
  auto call = Call();
  call.request_ts = -5;
  EXPECT_CODE(e().TrackAgentUsage(Scope::Service(), call), kInvalidArgument);
}

TEST_F(Exactness, PublicAgentsHideTheirCreatorFromOtherUsers) {
  Uuid bob = Id(MakeUser("b@x.example")->id());
  fb::AgentT a;
  a.name = "bob's";
  a.is_public = true;
  Uuid id = Id(Must(e().CreateAgent(Scope::ForUser(bob), a))->id());
  EXPECT_EQ(Id(Must(e().GetAgent(Scope::ForUser(bob), id))->creator_id()), bob);
  EXPECT_EQ(Id(Must(e().GetAgent(Scope::Service(), id))->creator_id()), bob);
  auto seen = Must(e().GetAgent(Scope::ForUser(user_), id));
  EXPECT_EQ(seen->creator_id(), nullptr);
  EXPECT_EQ(Str(seen->name()), "bob's");
  std::string raw(reinterpret_cast<const char*>(bob.bytes.data()), 16);
  for (const auto& row : Must(e().ListAgents(Scope::ForUser(user_), {})).rows)
    EXPECT_EQ(std::string(row.bytes()).find(raw), std::string::npos)
        << "agent_list reveals the creator of " << Str(row->name());
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(Exactness, DataDirectoryIsOwnerOnly) {
  // The directory is what keeps others out: 0700 from the start. Files RocksDB creates
  // while the store runs follow the process umask (agentstored sets 077); every file is
  // made 0600 when the store opens.
  std::string data = dir_.sub("data");
  EXPECT_EQ(ModeOf(data), 0700u);
  MakeUser("b@x.example");
  Reopen();
  for (const auto& f : std::filesystem::directory_iterator(data))
    if (f.is_regular_file())
      EXPECT_EQ(ModeOf(f.path()) & 077, 0u) << f.path() << " is readable by others";
  engine_.reset();
  // A store others may write is refused, and its mode left alone.
  ASSERT_EQ(::chmod(data.c_str(), 0777), 0);
  EngineOptions o;
  o.data_dir = data;
  o.clock = &clock_;
  auto r = Engine::Open(o);
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(TextOf(r).find("writable by group or others"), std::string::npos) << TextOf(r);
  // A 0755 one (older versions) is tightened to 0700.
  ASSERT_EQ(::chmod(data.c_str(), 0755), 0);
  Open();
  EXPECT_EQ(ModeOf(data), 0700u);
  // Backups too.
  std::string backup = dir_.sub("backup");
  ASSERT_OK(e().Checkpoint(backup));
  EXPECT_EQ(ModeOf(backup), 0700u);
  for (const auto& f : std::filesystem::directory_iterator(backup))
    if (f.is_regular_file()) EXPECT_EQ(ModeOf(f.path()) & 077, 0u) << f.path();
}

}  // namespace
}  // namespace agentstore::testing

// Usage accounting, quotas and rate limits end to end: a real agentstored, the client
// library over loopback for every new operation and its access rules, and the agentctl
// usage / quotas / limits commands.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class UsageEndToEnd : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) return;
    fb::TenantT t;
    t.name = "Acme";
    t.slug = "acme";
    tenant_ = Id(Must(admin().CreateTenant(t).get())->id());
    fb::UserT u;
    u.email = "ada@x.com";
    u.tenant_id = FbId(tenant_);
    ada_ = Id(Must(svc().CreateUser(u).get())->id());
    u.email = "bob@x.com";
    bob_ = Id(Must(svc().CreateUser(u).get())->id());
    fb::AgentT a;
    a.name = "Writer";
    a.is_public = true;
    agent_ = Id(Must(admin().CreateAgent(a).get())->id());
    for (Uuid user : {ada_, bob_}) {
      fb::UserAgentT ua;
      ua.user_id = FbId(user);
      ua.agent_id = FbId(agent_);
      Must(svc().CreateUserAgent(ua).get());
    }
  }
  fb::UsageLogT Call(const Uuid& user, int64_t in, int64_t out, int64_t cost,
                     const std::string& model = "gpt-4o") {
    fb::UsageLogT l;
    l.user_id = FbId(user);
    l.agent_id = FbId(agent_);
    l.input_tokens = in;
    l.output_tokens = out;
    l.input_cost = cost;
    l.model = model;
    l.provider = "openai";
    return l;
  }
  CtlRun Ctl(const std::string& role, const std::string& args) {
    return Agentctl(server_, server_.Key(role), args);
  }

  Uuid tenant_, ada_, bob_, agent_;
};

TEST_F(UsageEndToEnd, EveryOperationThroughTheClient) {
  fb::QuotaT q;
  q.tenant_id = FbId(tenant_);
  q.quota_type = fb::QuotaType::tokens;
  q.quota_limit = 100;
  auto quota = Must(admin().SetQuota(q).get());
  EXPECT_EQ(quota->quota_limit(), 100);
  auto r = Must(svc().TrackAgentUsage(Call(ada_, 50, 40, 700), 3).get());
  EXPECT_EQ(r.user_agent->usage_count(), 1);
  EXPECT_EQ(r.user_agent->message_count(), 3);
  EXPECT_EQ(r.log->total_tokens(), 90);
  ASSERT_EQ(r.quotas.size(), 1u);
  EXPECT_TRUE(QuotaStateOf(*r.quotas[0]).alert);
  r = Must(svc().TrackAgentUsage(Call(ada_, 20, 0, 300, "claude")).get());
  EXPECT_TRUE(r.quotas[0]->is_exceeded());
  ASSERT_OK(svc().TrackAgentUsage(Call(bob_, 1, 1, 1)).get());
  auto quotas = Must(admin().GetQuotas(tenant_).get());
  ASSERT_EQ(quotas.size(), 1u);
  EXPECT_EQ(quotas[0]->current_usage(), 112);
  EXPECT_EQ(Must(admin().GetQuotas(tenant_, fb::QuotaType::tokens, true).get()).size(), 1u);

  auto rated = Must(svc().RateAgent(ada_, agent_, 4, "good").get());
  EXPECT_DOUBLE_EQ(*rated->user_rating(), 4.0);

  UsageQuery all;
  EXPECT_EQ(Must(admin().ListUsage(all).get()).rows.size(), 3u);
  all.user = ada_;
  all.limit = 1;
  auto page = Must(svc().ListUsage(all).get());
  ASSERT_EQ(page.rows.size(), 1u);
  EXPECT_FALSE(page.next_cursor.empty());
  all.cursor = page.next_cursor;
  EXPECT_EQ(Must(svc().ListUsage(all).get()).rows.size(), 1u);

  UsageSummaryRequest s;
  s.owner = SummaryOwner::kTenant;
  s.id = tenant_;
  s.bucket = SummaryBucket::kTotal;
  s.group = SummaryGroup::kModel;
  auto sum = Must(admin().SummarizeUsage(s).get());
  ASSERT_EQ(sum.rows.size(), 2u);
  EXPECT_EQ(sum.rows[0].group, "gpt-4o");
  EXPECT_EQ(sum.rows[0].totals.total_cost, 701);
  EXPECT_EQ(sum.rows[0].totals.requests, 2);
  s.owner = SummaryOwner::kEveryone;
  s.group = SummaryGroup::kNone;
  EXPECT_EQ(Must(admin().SummarizeUsage(s).get()).rows[0].totals.requests, 3);

  fb::RateLimitConfigT c;
  c.scope = fb::LimitScope::user;
  c.scope_id = FbId(ada_);
  c.limit_type = fb::LimitType::concurrent;
  c.limit_value = 1;
  auto cfg = Must(admin().PutLimitConfig(c).get());
  EXPECT_EQ(Must(admin().ListLimitConfigs().get()).size(), 1u);
  LimitCheckRequest check;
  check.user = ada_;
  auto d = Must(svc().CheckLimits(check).get());
  ASSERT_TRUE(d.allowed);
  ASSERT_TRUE(d.lease.has_value());
  auto denied = Must(svc().CheckLimits(check).get());
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.denied_by, Id(cfg->id()));
  EXPECT_EQ(denied.denied_type, "concurrent");
  ASSERT_OK(svc().ReleaseLimit(*d.lease).get());
  EXPECT_TRUE(Must(svc().CheckLimits(check).get()).allowed);
  ASSERT_OK(admin().DeleteLimitConfig(Id(cfg->id())).get());
  EXPECT_TRUE(Must(admin().ListLimitConfigs().get()).empty());
  EXPECT_EQ(Must(admin().ExpireUsageLogs().get()), 0u) << "no retention configured";

  // Bad input over the wire changes nothing.
  auto stats = Must(svc().GetStatus().get());
  EXPECT_CODE(svc().TrackAgentUsage(Call(ada_, -1, 0, 0)).get(), kInvalidArgument);
  EXPECT_CODE(svc().RateAgent(ada_, agent_, std::nan("")).get(), kInvalidArgument);
  UsageQuery bad;
  bad.agent_type = static_cast<fb::AgentType>(9);
  EXPECT_CODE(svc().ListUsage(bad).get(), kInvalidArgument);
  s.group = static_cast<SummaryGroup>(9);
  EXPECT_CODE(admin().SummarizeUsage(s).get(), kInvalidArgument);
  EXPECT_CODE(admin().GetQuotas(tenant_, static_cast<fb::QuotaType>(9)).get(), kInvalidArgument);
  EXPECT_CODE(admin().GetQuotas(MakeUuidV7(1, 2, 3)).get(), kNotFound) << "no such tenant";
  q.quota_limit = -1;
  EXPECT_CODE(admin().SetQuota(q).get(), kInvalidArgument);
  EXPECT_EQ(Must(svc().GetStatus().get()).records, stats.records);
}

TEST_F(UsageEndToEnd, AccessRulesOverTheWire) {
  ASSERT_OK(svc().TrackAgentUsage(Call(ada_, 1, 1, 1)).get());
  ASSERT_OK(svc().TrackAgentUsage(Call(bob_, 2, 2, 2)).get());
  Client ada = UserClient(ada_);
  auto mine = Must(ada.ListUsage().get());
  ASSERT_EQ(mine.rows.size(), 1u);
  EXPECT_EQ(Id(mine.rows[0]->user_id()), ada_);
  UsageQuery other;
  other.user = bob_;
  EXPECT_TRUE(Must(ada.ListUsage(other).get()).rows.empty());
  EXPECT_CODE(ada.TrackAgentUsage(Call(bob_, 1, 1, 1)).get(), kPermissionDenied);
  ASSERT_OK(ada.TrackAgentUsage(Call(ada_, 1, 1, 1)).get());
  UsageSummaryRequest s;
  s.id = ada_;
  EXPECT_EQ(Must(ada.SummarizeUsage(s).get()).rows[0].totals.requests, 2);
  s.owner = SummaryOwner::kTenant;
  s.id = tenant_;
  EXPECT_CODE(ada.SummarizeUsage(s).get(), kPermissionDenied);
  fb::QuotaT q;
  q.tenant_id = FbId(tenant_);
  EXPECT_CODE(ada.SetQuota(q).get(), kPermissionDenied);
  EXPECT_CODE(ada.GetQuotas(tenant_).get(), kPermissionDenied);
  fb::RateLimitConfigT c;
  EXPECT_CODE(ada.PutLimitConfig(c).get(), kPermissionDenied);
  EXPECT_CODE(ada.ListLimitConfigs().get(), kPermissionDenied);
  EXPECT_CODE(admin().TrackAgentUsage(Call(ada_, 1, 1, 1)).get(), kPermissionDenied);
  LimitCheckRequest check;
  check.user = bob_;
  EXPECT_CODE(ada.CheckLimits(check).get(), kPermissionDenied);
  check.user = ada_;
  EXPECT_TRUE(Must(ada.CheckLimits(check).get()).allowed);
  EXPECT_CODE(svc().ActingAs(ada_).TrackAgentUsage(Call(bob_, 1, 1, 1)).get(), kPermissionDenied);
}

TEST_F(UsageEndToEnd, AgentctlUsageQuotasAndLimits) {
  using Json = nlohmann::json;
  std::string tenant = tenant_.ToString(), ada = ada_.ToString(), agent = agent_.ToString();
  auto set = Ctl("admin", "quotas set --tenant " + tenant + " --type tokens --limit 1000 --json");
  ASSERT_EQ(set.code, 0) << set.out;
  auto tracked = Ctl("service", "usage track --user " + ada + " --agent " + agent +
                                    " --model gpt-4o --provider openai --input-tokens 300"
                                    " --output-tokens 600 --input-cost 10 --output-cost 20"
                                    " --duration-ms 1200 --json");
  ASSERT_EQ(tracked.code, 0) << tracked.out;
  auto tj = Json::parse(tracked.out);
  EXPECT_EQ(tj["user_agent"]["usage_count"], 1);
  EXPECT_EQ(tj["log"]["duration_ms"], 1200);
  EXPECT_EQ(tj["quotas"][0]["current_usage"], 900);
  auto quotas = Ctl("admin", "quotas get --tenant " + tenant + " --json");
  ASSERT_EQ(quotas.code, 0) << quotas.out;
  auto qj = Json::parse(quotas.out);
  EXPECT_EQ(qj[0]["used"], 900);
  EXPECT_EQ(qj[0]["alert"], true);
  EXPECT_EQ(qj[0]["exceeded"], false);
  auto human = Ctl("admin", "quotas get --tenant " + tenant);
  EXPECT_NE(human.out.find("ALERT"), std::string::npos) << human.out;
  auto list = Ctl("admin", "usage list --user " + ada + " --json");
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_EQ(Json::parse(list.out).size(), 1u);
  auto sum = Ctl("admin", "usage summary --tenant " + tenant + " --by total --group model --json");
  ASSERT_EQ(sum.code, 0) << sum.out;
  auto sj = Json::parse(sum.out);
  EXPECT_EQ(sj[0]["group"], "gpt-4o");
  EXPECT_EQ(sj[0]["total_cost"], 30);
  auto put = Ctl("admin", "limits put --scope user --scope-id " + ada +
                              " --type requests_per_minute --value 1 --json");
  ASSERT_EQ(put.code, 0) << put.out;
  std::string cfg = Json::parse(put.out)["id"];
  auto limits = Ctl("admin", "limits list --json");
  EXPECT_EQ(Json::parse(limits.out).size(), 1u);
  auto first = Ctl("service", "limits check --user " + ada + " --json");
  ASSERT_EQ(first.code, 0) << first.out;
  EXPECT_EQ(Json::parse(first.out)["allowed"], true);
  auto second = Ctl("service", "limits check --user " + ada + " --json");
  auto dj = Json::parse(second.out);
  EXPECT_EQ(dj["allowed"], false);
  EXPECT_EQ(dj["denied_by"], cfg);
  auto conc = Ctl("admin", "limits put --scope global --type concurrent --value 5 --json");
  ASSERT_EQ(conc.code, 0) << conc.out;
  EXPECT_EQ(Ctl("admin", "limits delete " + cfg).code, 0);
  auto leased = Json::parse(Ctl("service", "limits check --user " + ada + " --json").out);
  ASSERT_TRUE(leased["lease"].is_string()) << leased.dump();
  EXPECT_EQ(Ctl("service", "limits release " + leased["lease"].get<std::string>()).code, 0);
  // Errors exit non-zero with the message.
  auto denied = Ctl("admin", "usage track --user " + ada + " --agent " + agent);
  EXPECT_NE(denied.code, 0);
  EXPECT_NE(denied.out.find("permission_denied"), std::string::npos) << denied.out;
  auto bad = Ctl("admin", "quotas set --tenant " + tenant + " --type bananas --limit 1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("tokens"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace agentstore::testing

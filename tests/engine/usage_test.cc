// Usage accounting, quotas and rate limits in the engine: track_agent_usage's one atomic
// step, exactness against a recomputation from the raw logs (also after a restart), bad
// input, access, clock-driven windows, periods and leases, concurrency, cascades and
// retention.
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "agentstore/common/record_json.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

constexpr int64_t kDay = 86'400'000'000;

class Usage : public EngineFixture {
 protected:
  // What one log adds to every rollup it falls in.
  static UsageTotals TotalsOf(const fb::UsageLog& l) {
    return UsageTotals{1,
                       l.success() ? 1 : 0,
                       l.success() ? 0 : 1,
                       l.input_tokens(),
                       l.output_tokens(),
                       l.total_tokens(),
                       l.input_cost(),
                       l.output_cost(),
                       l.total_cost(),
                       l.duration_ms()};
  }
  void OpenWith(int64_t retention, bool purge, int64_t lease_ttl = 300'000'000) {
    engine_.reset();
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = storage::Durability::kNone;
    o.clock = &clock_;
    o.shards = 4;
    o.usage_log_retention_micros = retention;
    o.usage_log_retention_purge_store = purge;
    o.lease_ttl_micros = lease_ttl;
    engine_ = Must(Engine::Open(o));
  }
  Uuid Tenant(const std::string& slug) {
    fb::TenantT t;
    t.name = slug;
    t.slug = slug;
    return Id(Must(e().CreateTenant(Scope::Admin(), t))->id());
  }
  Uuid UserAgent(const Uuid& user, const Uuid& agent) {
    fb::UserAgentT ua;
    ua.user_id = FbId(user);
    ua.agent_id = FbId(agent);
    return Id(Must(e().CreateUserAgent(Scope::Service(), ua))->id());
  }
  fb::UsageLogT Call(const Uuid& user, const Uuid& agent, int64_t in, int64_t out, int64_t in_cost,
                     int64_t out_cost, bool success = true, std::string model = "gpt-4o",
                     std::string provider = "openai", fb::AgentType type = fb::AgentType::chat) {
    fb::UsageLogT l;
    l.user_id = FbId(user);
    l.agent_id = FbId(agent);
    l.input_tokens = in;
    l.output_tokens = out;
    l.input_cost = in_cost;
    l.output_cost = out_cost;
    l.success = success;
    l.model = model;
    l.provider = provider;
    l.agent_type = type;
    l.request_ts = clock_.NowMicros() - 250'000;
    l.response_ts = clock_.NowMicros();
    return l;
  }
  Status SetQuota(const Uuid& tenant, fb::QuotaType type, int64_t limit,
                  fb::QuotaPeriod period = fb::QuotaPeriod::month) {
    fb::QuotaT q;
    q.tenant_id = FbId(tenant);
    q.quota_type = type;
    q.quota_limit = limit;
    q.period = period;
    return StatusOf(e().SetQuota(Scope::Admin(), q));
  }
  Result<Row<fb::RateLimitConfig>> Limit(fb::LimitScope scope, std::optional<Uuid> subject,
                                         fb::LimitType type, int64_t value) {
    fb::RateLimitConfigT c;
    c.scope = scope;
    if (subject) c.scope_id = FbId(*subject);
    c.limit_type = type;
    c.limit_value = value;
    return e().PutLimitConfig(Scope::Admin(), c);
  }
  // Every log, by listing page after page.
  std::vector<Row<fb::UsageLog>> AllLogs(std::optional<Uuid> user = std::nullopt) {
    std::vector<Row<fb::UsageLog>> out;
    UsageQuery q;
    q.user = user;
    q.limit = 7;  // small pages: exercises the cursor
    while (true) {
      auto page = Must(e().ListUsage(Scope::Service(), q));
      for (auto& r : page.rows) out.push_back(r);
      if (page.next_cursor.empty()) break;
      q.cursor = page.next_cursor;
    }
    return out;
  }
};

TEST_F(Usage, TrackUpdatesEveryCounterInOneStep) {
  Uuid tenant = Tenant("acme");
  auto u = MakeUser("a@x.com", tenant);
  Uuid user = Id(u->id());
  Uuid agent = Id(MakeAgent("helper")->id());
  UserAgent(user, agent);
  auto chat = MakeChat(user);
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::tokens, 1000));
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::api_calls, 10));
  auto call = Call(user, agent, 100, 50, 2000, 3000);
  call.chat_id = FbId(Id(chat->id()));
  auto r = e().TrackAgentUsage(Scope::ForUser(user), call, 2);
  ASSERT_OK(r);
  const auto* ua = r->user_agent.get();
  EXPECT_EQ(ua->usage_count(), 1);
  EXPECT_EQ(ua->message_count(), 2);
  EXPECT_EQ(ua->success_count(), 1);
  EXPECT_EQ(ua->error_count(), 0);
  EXPECT_EQ(ua->total_tokens_used(), 150);
  EXPECT_EQ(ua->total_cost(), 5000);
  EXPECT_EQ(ua->first_used_at(), clock_.NowMicros());
  EXPECT_EQ(ua->last_used_at(), clock_.NowMicros());
  EXPECT_DOUBLE_EQ(*ua->avg_response_time_ms(), 250.0);
  EXPECT_DOUBLE_EQ(*ua->quality_score(), 1.0);
  const auto* log = r->log.get();
  EXPECT_EQ(log->total_tokens(), 150);
  EXPECT_EQ(log->total_cost(), 5000);
  EXPECT_EQ(log->duration_ms(), 250);
  EXPECT_EQ(Id(log->tenant_id()), tenant);
  EXPECT_EQ(Id(log->chat_id()), Id(chat->id()));
  ASSERT_EQ(r->quotas.size(), 2u);
  EXPECT_EQ(r->quotas[0]->current_usage(), 150);
  EXPECT_EQ(r->quotas[1]->current_usage(), 1);
  auto c = Must(e().GetChat(Scope::Service(), Id(chat->id())));
  EXPECT_EQ(c->total_input_tokens(), 100);
  EXPECT_EQ(c->total_output_tokens(), 50);
  EXPECT_EQ(c->total_cost(), 5000);
  // A failed call: error_count, quality drops.
  clock_.Advance(1000);
  auto r2 = Must(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 1, 0, 0, false)));
  EXPECT_EQ(r2.user_agent->error_count(), 1);
  EXPECT_DOUBLE_EQ(*r2.user_agent->quality_score(), 0.5);
  EXPECT_EQ(r2.user_agent->first_used_at(), ua->first_used_at());
  // Usage fields stay out of plain updates.
  EXPECT_CODE(e().UpdateUserAgent(Scope::Service(), Id(ua->id()), R"({"usage_count":5})"),
              kInvalidArgument);
}

TEST_F(Usage, BadInputChangesNothing) {
  Uuid tenant = Tenant("t");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  Uuid other = Id(MakeUser("b@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("helper")->id());
  Uuid lonely = Id(MakeAgent("unused")->id());
  UserAgent(user, agent);
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::tokens, 1000));
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 1, 1, 1)));
  std::string before = Describe(e().Stats());
  std::string ua_before = BytesOf(e().GetUserAgentFor(Scope::Service(), user, agent));
  auto bad = [&](fb::UsageLogT l) { return e().TrackAgentUsage(Scope::Service(), l); };
  EXPECT_CODE(bad(Call(user, agent, -1, 0, 0, 0)), kInvalidArgument);
  EXPECT_CODE(bad(Call(user, agent, 0, -1, 0, 0)), kInvalidArgument);
  EXPECT_CODE(bad(Call(user, agent, 0, 0, -5, 0)), kInvalidArgument);
  EXPECT_CODE(bad(Call(user, agent, 0, 0, 0, -5)), kInvalidArgument);
  auto backwards = Call(user, agent, 1, 1, 1, 1);
  backwards.response_ts = backwards.request_ts - 1;
  EXPECT_CODE(bad(backwards), kInvalidArgument);
  auto unknown_type = Call(user, agent, 1, 1, 1, 1);
  unknown_type.agent_type = static_cast<fb::AgentType>(9);
  EXPECT_CODE(bad(unknown_type), kInvalidArgument);
  EXPECT_CODE(bad(Call(user, lonely, 1, 1, 1, 1)), kNotFound) << "no user_agent";
  EXPECT_CODE(bad(Call(other, agent, 1, 1, 1, 1)), kNotFound) << "no user_agent";
  EXPECT_CODE(bad(Call(user, agent, INT64_MAX, 1, 0, 0)), kInvalidArgument) << "overflow";
  EXPECT_CODE(bad(Call(user, agent, INT64_MAX - 1, 0, 0, 0)), kInvalidArgument) << "total overflow";
  auto no_chat = Call(user, agent, 1, 1, 1, 1);
  no_chat.chat_id = FbId(Uuid::Parse("0190f3a2-7b1c-7def-8123-456789abcdef").value());
  EXPECT_CODE(bad(no_chat), kNotFound) << "chat_id names no chat";
  auto bad_meta = Call(user, agent, 1, 1, 1, 1);
  bad_meta.metadata = "{not json";
  EXPECT_CODE(bad(bad_meta), kInvalidArgument);
  EXPECT_CODE(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 1, 1, 1), -1),
              kInvalidArgument);
  EXPECT_EQ(Describe(e().Stats()), before);
  EXPECT_EQ(BytesOf(e().GetUserAgentFor(Scope::Service(), user, agent)), ua_before);
  EXPECT_EQ(Must(e().GetQuotas(Scope::Admin(), tenant))[0]->current_usage(), 2);
  // Rating, quota and limit input.
  EXPECT_CODE(e().RateAgent(Scope::Service(), user, agent, 0), kInvalidArgument);
  EXPECT_CODE(e().RateAgent(Scope::Service(), user, agent, 5.5), kInvalidArgument);
  EXPECT_CODE(e().RateAgent(Scope::Service(), user, agent, std::nan("")), kInvalidArgument);
  fb::QuotaT q;
  q.tenant_id = FbId(tenant);
  q.quota_limit = -1;
  EXPECT_CODE(e().SetQuota(Scope::Admin(), q), kInvalidArgument);
  q.quota_limit = 1;
  q.alert_threshold_pct = 101;
  EXPECT_CODE(e().SetQuota(Scope::Admin(), q), kInvalidArgument);
  q.alert_threshold_pct = 80;
  q.quota_type = static_cast<fb::QuotaType>(7);
  EXPECT_CODE(e().SetQuota(Scope::Admin(), q), kInvalidArgument);
  q.quota_type = fb::QuotaType::tokens;
  q.tenant_id = FbId(user);
  EXPECT_CODE(e().SetQuota(Scope::Admin(), q), kNotFound) << "no such tenant";
  EXPECT_CODE(Limit(fb::LimitScope::global, std::nullopt, fb::LimitType::concurrent, -1),
              kInvalidArgument);
  EXPECT_CODE(Limit(fb::LimitScope::user, std::nullopt, fb::LimitType::concurrent, 1),
              kInvalidArgument);
  EXPECT_CODE(Limit(fb::LimitScope::global, user, fb::LimitType::concurrent, 1), kInvalidArgument);
  EXPECT_CODE(Limit(fb::LimitScope::user, agent, fb::LimitType::concurrent, 1), kNotFound);
  EXPECT_CODE(Limit(fb::LimitScope::user, user, static_cast<fb::LimitType>(8), 1),
              kInvalidArgument);
  EXPECT_CODE(Limit(static_cast<fb::LimitScope>(8), user, fb::LimitType::concurrent, 1),
              kInvalidArgument);
  EXPECT_EQ(Describe(e().Stats()), before);
}

// A randomized sequence across users, tenants, agents, models and days: every counter,
// rollup and quota equals a recomputation from the raw logs, before and after a restart.
TEST_F(Usage, EverythingEqualsARecomputationFromTheLogs) {
  std::mt19937_64 rng(42);
  Uuid t1 = Tenant("t1"), t2 = Tenant("t2");
  std::vector<Uuid> users = {Id(MakeUser("a@x.com", t1)->id()), Id(MakeUser("b@x.com", t1)->id()),
                             Id(MakeUser("c@x.com", t2)->id()), Id(MakeUser("d@x.com")->id())};
  std::vector<Uuid> agents = {Id(MakeAgent("one")->id()), Id(MakeAgent("two")->id())};
  for (const Uuid& u : users)
    for (const Uuid& a : agents) UserAgent(u, a);
  for (Uuid t : {t1, t2}) {
    ASSERT_OK(SetQuota(t, fb::QuotaType::tokens, 200'000, fb::QuotaPeriod::day));
    ASSERT_OK(SetQuota(t, fb::QuotaType::api_calls, 100, fb::QuotaPeriod::none));
  }
  const char* models[] = {"gpt-4o", "claude", "llama"};
  const char* providers[] = {"openai", "anthropic", "meta"};
  std::map<std::pair<Uuid, Uuid>, int64_t> messages;
  for (int i = 0; i < 400; ++i) {
    clock_.Advance(static_cast<int64_t>(rng() % (kDay / 8)));
    Uuid u = users[rng() % users.size()], a = agents[rng() % agents.size()];
    int m = static_cast<int>(rng() % 3);
    auto call = Call(u, a, rng() % 5000, rng() % 2000, rng() % 90000, rng() % 90000, rng() % 5 != 0,
                     models[m], providers[m], static_cast<fb::AgentType>(rng() % 5));
    call.request_ts = clock_.NowMicros() - static_cast<int64_t>(rng() % 10'000'000);
    int n = static_cast<int>(rng() % 4);
    messages[{u, a}] += n;
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(), call, n));
  }
  auto verify = [&] {
    auto logs = AllLogs();
    ASSERT_EQ(logs.size(), 400u);
    for (size_t i = 1; i < logs.size(); ++i)
      ASSERT_GE(logs[i - 1]->request_ts(), logs[i]->request_ts()) << "newest first";
    // Per user_agent counters.
    std::map<std::pair<Uuid, Uuid>, UsageTotals> per_ua;
    std::map<std::tuple<int, Uuid, int64_t, std::string>, UsageTotals>
        per_day;                                            // 0 user 1 tenant 2 all
    std::map<Uuid, std::pair<int64_t, int64_t>> quota_now;  // tenant -> (tokens today, calls)
    int64_t today = clock_.NowMicros() / kDay * kDay;
    for (const auto& l : logs) {
      UsageTotals d = TotalsOf(*l);
      ASSERT_EQ(l->total_tokens(), l->input_tokens() + l->output_tokens());
      ASSERT_EQ(l->total_cost(), l->input_cost() + l->output_cost());
      ASSERT_EQ(l->duration_ms(), (l->response_ts() - l->request_ts()) / 1000);
      Uuid u = Id(l->user_id());
      per_ua[{u, Id(l->agent_id())}] += d;
      int64_t day = l->request_ts() / kDay * kDay;
      std::string model(Str(l->model()));
      per_day[{0, u, day, model}] += d;
      if (l->tenant_id()) per_day[{1, Id(l->tenant_id()), day, model}] += d;
      per_day[{2, Uuid(), day, model}] += d;
      if (l->tenant_id()) {
        auto& q = quota_now[Id(l->tenant_id())];
        q.second += 1;
        // The tokens quota is daily: only calls tracked today (response_ts is the
        // tracking time here) count in the current period.
        if (l->response_ts() >= today) q.first += l->total_tokens();
      }
    }
    for (const auto& [key, t] : per_ua) {
      auto ua = Must(e().GetUserAgentFor(Scope::Service(), key.first, key.second));
      EXPECT_EQ(ua->usage_count(), t.requests);
      EXPECT_EQ(ua->success_count(), t.success_count);
      EXPECT_EQ(ua->error_count(), t.error_count);
      EXPECT_EQ(ua->total_tokens_used(), t.total_tokens);
      EXPECT_EQ(ua->total_cost(), t.total_cost);
      EXPECT_EQ(ua->message_count(), messages[key]);
      EXPECT_NEAR(*ua->avg_response_time_ms(),
                  static_cast<double>(t.duration_ms) / static_cast<double>(t.requests), 1e-6);
      double rate = static_cast<double>(t.success_count) / static_cast<double>(t.requests);
      EXPECT_NEAR(*ua->quality_score(), std::round(rate * 100) / 100, 1e-9);
    }
    // Rollups, by day and model, for every user, tenant and everyone.
    std::map<std::tuple<int, Uuid, int64_t, std::string>, UsageTotals> got;
    auto collect = [&](int kind, SummaryOwner owner, const Uuid& id) {
      UsageSummaryRequest req;
      req.owner = owner;
      req.id = id;
      req.bucket = SummaryBucket::kDay;
      req.group = SummaryGroup::kModel;
      for (const auto& row : Must(e().SummarizeUsage(Scope::Service(), req)).rows)
        got[{kind, id, row.period_start, row.group}] = row.totals;
    };
    for (const Uuid& u : users) collect(0, SummaryOwner::kUser, u);
    for (Uuid t : {t1, t2}) collect(1, SummaryOwner::kTenant, t);
    collect(2, SummaryOwner::kEveryone, Uuid());
    EXPECT_EQ(got.size(), per_day.size());
    for (const auto& [k, t] : per_day) EXPECT_TRUE(got[k] == t) << std::get<0>(k);
    // Month totals equal the sum of the days.
    UsageSummaryRequest all;
    all.owner = SummaryOwner::kEveryone;
    all.bucket = SummaryBucket::kTotal;
    auto total = Must(e().SummarizeUsage(Scope::Admin(), all));
    ASSERT_EQ(total.rows.size(), 1u);
    EXPECT_EQ(total.rows[0].totals.requests, 400);
    // Quotas.
    for (Uuid t : {t1, t2}) {
      auto qs = Must(e().GetQuotas(Scope::Admin(), t));
      ASSERT_EQ(qs.size(), 2u);
      EXPECT_EQ(qs[0]->current_usage(), quota_now[t].first) << "tokens today";
      EXPECT_EQ(qs[1]->current_usage(), quota_now[t].second) << "api_calls, one long period";
      EXPECT_EQ(qs[1]->is_exceeded(), quota_now[t].second > 100);
    }
  };
  verify();
  std::string stats = Describe(e().Stats());
  Reopen();
  verify();
  EXPECT_EQ(Describe(e().Stats()).substr(0, stats.find("writes")),
            stats.substr(0, stats.find("writes")));
}

// Totals and months are folded from month rows kept beside the day rows (RollupMap): over
// any range — whole months, parts of months at either end, all time — and for every owner,
// they must equal the sum of the logs whose day falls in the range; also after a restart,
// which rebuilds the month rows from the stored day rows.
TEST_F(Usage, SummariesOverAnyRangeEqualTheirLogs) {
  std::mt19937_64 rng(7);
  Uuid t1 = Tenant("t1");
  std::vector<Uuid> users = {Id(MakeUser("a@x.com", t1)->id()), Id(MakeUser("b@x.com", t1)->id()),
                             Id(MakeUser("c@x.com")->id())};
  Uuid agent = Id(MakeAgent("one")->id());
  for (const Uuid& u : users) UserAgent(u, agent);
  const char* models[] = {"gpt-4o", "claude-3-5-sonnet-20241022"};
  for (int i = 0; i < 300; ++i) {  // about 100 days: four months and parts
    clock_.Advance(static_cast<int64_t>(rng() % (kDay * 2 / 3)));
    int m = static_cast<int>(rng() % 2);
    auto call = Call(users[rng() % users.size()], agent, rng() % 5000, rng() % 2000, rng() % 90000,
                     rng() % 90000, rng() % 5 != 0, models[m], "p", fb::AgentType::chat);
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(), call, 1));
  }
  auto month_of = [](int64_t t) {
    using namespace std::chrono;
    year_month_day ymd{floor<days>(sys_time<microseconds>(microseconds(t)))};
    return duration_cast<microseconds>(sys_days(ymd.year() / ymd.month() / 1).time_since_epoch())
        .count();
  };
  auto logs = AllLogs();
  ASSERT_EQ(logs.size(), 300u);
  int64_t first = logs.back()->request_ts(), last = logs.front()->request_ts();
  auto verify = [&] {
    for (int r = 0; r < 60; ++r) {
      int64_t from = first - kDay * 3 + static_cast<int64_t>(rng() % (last - first + kDay * 6));
      int64_t to = from + 1 + static_cast<int64_t>(rng() % (kDay * 70));
      if (r % 4 == 0) from = month_of(from);  // months that start the range exactly
      if (r % 5 == 0) to = month_of(to);
      if (r == 0) from = 0, to = INT64_MAX;  // all time
      if (from >= to) continue;
      int64_t d0 = from / kDay * kDay, d1 = (to - 1) / kDay * kDay;
      for (auto bucket : {SummaryBucket::kTotal, SummaryBucket::kMonth})
        for (int owner = 0; owner < 3; ++owner) {
          std::map<std::pair<int64_t, std::string>, UsageTotals> want;
          for (const auto& l : logs) {
            int64_t day = l->request_ts() / kDay * kDay;
            if (day < d0 || day > d1) continue;
            if (owner == 0 && Id(l->user_id()) != users[0]) continue;
            if (owner == 1 && (!l->tenant_id() || Id(l->tenant_id()) != t1)) continue;
            UsageTotals d = TotalsOf(*l);
            int64_t period = bucket == SummaryBucket::kMonth ? month_of(day) : 0;
            want[{period, std::string(Str(l->model()))}] += d;
          }
          UsageSummaryRequest req;
          req.owner = owner == 0   ? SummaryOwner::kUser
                      : owner == 1 ? SummaryOwner::kTenant
                                   : SummaryOwner::kEveryone;
          req.id = owner == 0 ? users[0] : owner == 1 ? t1 : Uuid();
          req.from = from;
          req.to = to;
          req.bucket = bucket;
          req.group = SummaryGroup::kModel;
          std::map<std::pair<int64_t, std::string>, UsageTotals> got;
          for (const auto& row : Must(e().SummarizeUsage(Scope::Admin(), req)).rows)
            got[{row.period_start, row.group}] = row.totals;
          ASSERT_EQ(got.size(), want.size()) << "range " << from << ".." << to;
          for (const auto& [k, t] : want)
            ASSERT_TRUE(got[k] == t)
                << "range " << from << ".." << to << " period " << k.first << " owner " << owner;
        }
    }
  };
  verify();
  Reopen();
  verify();
}

TEST_F(Usage, SummaryAnswersMonthlyUsageAndMostExpensiveModels) {
  Uuid user = Id(MakeUser("a@x.com")->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  clock_.Set(1'704'067'200'000'000 + 3'600'000'000);  // 2024-01-01 01:00
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 10, 0, 100, 0, true, "cheap")));
  clock_.Advance(20 * kDay);
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 10, 0, 900, 0, true, "dear")));
  clock_.Advance(20 * kDay);  // February
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 10, 0, 300, 0, true, "cheap")));
  UsageSummaryRequest req;
  req.id = user;
  req.bucket = SummaryBucket::kMonth;
  auto months = Must(e().SummarizeUsage(Scope::ForUser(user), req));
  ASSERT_EQ(months.rows.size(), 2u);
  EXPECT_EQ(months.rows[0].period_start, 1'704'067'200'000'000);
  EXPECT_EQ(months.rows[0].totals.total_cost, 1000);
  EXPECT_EQ(months.rows[1].period_start, 1'706'745'600'000'000);  // 2024-02-01
  EXPECT_EQ(months.rows[1].totals.requests, 1);
  req.bucket = SummaryBucket::kTotal;
  req.group = SummaryGroup::kModel;
  auto models = Must(e().SummarizeUsage(Scope::ForUser(user), req));
  ASSERT_EQ(models.rows.size(), 2u);
  EXPECT_EQ(models.rows[0].group, "dear") << "most expensive first";
  EXPECT_EQ(models.rows[1].totals.total_cost, 400);
  EXPECT_EQ(models.rows[1].totals.requests, 2);
  // A range: only February.
  req.from = 1'706'745'600'000'000;
  EXPECT_EQ(Must(e().SummarizeUsage(Scope::ForUser(user), req)).rows.size(), 1u);
  req.to = req.from;
  EXPECT_CODE(e().SummarizeUsage(Scope::ForUser(user), req), kInvalidArgument);
}

TEST_F(Usage, UsersSeeOnlyTheirOwnUsageAndOnlyAdminsManageQuotasAndLimits) {
  Uuid tenant = Tenant("t");
  Uuid a = Id(MakeUser("a@x.com", tenant)->id());
  Uuid b = Id(MakeUser("b@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(a, agent);
  UserAgent(b, agent);
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(a, agent, 1, 1, 1, 1)));
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(b, agent, 2, 2, 2, 2)));
  Scope as_a = Scope::ForUser(a);
  EXPECT_CODE(e().TrackAgentUsage(as_a, Call(b, agent, 1, 1, 1, 1)), kPermissionDenied);
  EXPECT_CODE(e().TrackAgentUsage(Scope::Admin(), Call(a, agent, 1, 1, 1, 1)), kPermissionDenied);
  UsageQuery q;
  auto mine = Must(e().ListUsage(as_a, q));
  ASSERT_EQ(mine.rows.size(), 1u);
  EXPECT_EQ(Id(mine.rows[0]->user_id()), a);
  q.user = b;
  EXPECT_TRUE(Must(e().ListUsage(as_a, q)).rows.empty());
  EXPECT_EQ(Must(e().ListUsage(Scope::Admin(), q)).rows.size(), 1u);
  UsageSummaryRequest s;
  s.id = b;
  EXPECT_TRUE(Must(e().SummarizeUsage(as_a, s)).rows.empty());
  s.owner = SummaryOwner::kTenant;
  s.id = tenant;
  EXPECT_CODE(e().SummarizeUsage(as_a, s), kPermissionDenied);
  s.owner = SummaryOwner::kEveryone;
  EXPECT_CODE(e().SummarizeUsage(as_a, s), kPermissionDenied);
  fb::QuotaT quota;
  quota.tenant_id = FbId(tenant);
  quota.quota_limit = 5;
  EXPECT_CODE(e().SetQuota(as_a, quota), kPermissionDenied);
  EXPECT_CODE(e().GetQuotas(as_a, tenant), kPermissionDenied);
  EXPECT_OK(e().SetQuota(Scope::Service(), quota));
  fb::RateLimitConfigT c;
  c.limit_value = 1;
  EXPECT_CODE(e().PutLimitConfig(as_a, c), kPermissionDenied);
  EXPECT_CODE(e().ListLimitConfigs(as_a), kPermissionDenied);
  auto cfg = Must(e().PutLimitConfig(Scope::Admin(), c));
  EXPECT_CODE(e().DeleteLimitConfig(as_a, Id(cfg->id())), kPermissionDenied);
  LimitCheckRequest check;
  check.user = b;
  EXPECT_CODE(e().CheckLimits(as_a, check), kPermissionDenied);
  check.user = a;
  EXPECT_TRUE(Must(e().CheckLimits(as_a, check)).allowed);
  EXPECT_FALSE(Must(e().CheckLimits(as_a, check)).allowed) << "global limit of 1";
  EXPECT_CODE(e().RateAgent(as_a, b, agent, 4), kNotFound);
  EXPECT_CODE(e().ExpireUsageLogs(as_a), kPermissionDenied);
}

TEST_F(Usage, RateAgentUpdatesRatingAndQuality) {
  Uuid user = Id(MakeUser("a@x.com")->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  auto r = Must(e().RateAgent(Scope::ForUser(user), user, agent, 5, "great"));
  EXPECT_DOUBLE_EQ(*r->user_rating(), 5.0);
  EXPECT_DOUBLE_EQ(*r->quality_score(), 1.0);
  EXPECT_EQ(r->last_rating_at(), clock_.NowMicros());
  EXPECT_NE(Str(r->metadata()).find("great"), std::string_view::npos);
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 1, 1, 1, false)));
  r = Must(e().RateAgent(Scope::Service(), user, agent, 3));
  EXPECT_DOUBLE_EQ(*r->quality_score(), 0.15) << "0.7 * 0 + 0.3 * (3 - 1) / 4";
  EXPECT_CODE(e().RateAgent(Scope::Service(), user, Id(MakeAgent("x")->id()), 3), kNotFound);
}

TEST_F(Usage, QuotaPeriodsRollOverWithTheClock) {
  Uuid tenant = Tenant("t");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  clock_.Set(1'706'745'600'000'000 + 5 * kDay);  // 2024-02-06
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::tokens, 100));
  auto q = Must(e().GetQuotas(Scope::Admin(), tenant, fb::QuotaType::tokens))[0];
  EXPECT_EQ(q->period_start(), 1'706'745'600'000'000);
  EXPECT_EQ(q->period_end(), 1'709'251'200'000'000);  // 2024-03-01 (leap February)
  auto r = Must(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 60, 25, 0, 0)));
  auto st = QuotaStateOf(*r.quotas[0]);
  EXPECT_EQ(st.used, 85);
  EXPECT_TRUE(st.alert);
  EXPECT_FALSE(st.exceeded);
  r = Must(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 20, 0, 0, 0)));
  EXPECT_TRUE(r.quotas[0]->is_exceeded());
  clock_.Set(1'709'251'200'000'000 + 1);  // March
  q = Must(e().GetQuotas(Scope::Admin(), tenant, fb::QuotaType::tokens))[0];
  EXPECT_EQ(q->current_usage(), 0) << "a new period starts at zero";
  EXPECT_EQ(q->period_start(), 1'709'251'200'000'000);
  r = Must(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 7, 0, 0, 0)));
  EXPECT_EQ(r.quotas[0]->current_usage(), 7);
  EXPECT_FALSE(r.quotas[0]->is_exceeded());
  auto history = Must(e().GetQuotas(Scope::Admin(), tenant, fb::QuotaType::tokens, true));
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0]->current_usage(), 105) << "the old period stays readable";
  EXPECT_EQ(history[1]->current_usage(), 7);
  Reopen();
  EXPECT_EQ(Must(e().GetQuotas(Scope::Admin(), tenant, fb::QuotaType::tokens, true)).size(), 2u);
}

TEST_F(Usage, WindowsResetWithTheClock) {
  Uuid user = Id(MakeUser("a@x.com")->id());
  clock_.Set(1'706'745'600'000'000 + 10'000'000);  // 10 s into a minute
  auto cfg = Must(Limit(fb::LimitScope::user, user, fb::LimitType::requests_per_minute, 3));
  LimitCheckRequest req;
  req.user = user;
  for (int i = 0; i < 3; ++i) {
    auto d = Must(e().CheckLimits(Scope::ForUser(user), req));
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 2 - i);
    EXPECT_EQ(d.reset_at, 1'706'745'600'000'000 + 60'000'000);
  }
  auto denied = Must(e().CheckLimits(Scope::ForUser(user), req));
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.denied_by, Id(cfg->id()));
  EXPECT_EQ(denied.denied_type, "requests_per_minute");
  clock_.Advance(50'000'000);  // the next minute
  EXPECT_TRUE(Must(e().CheckLimits(Scope::ForUser(user), req)).allowed);
  // A denying limit consumes nothing from the others.
  Uuid agent = Id(MakeAgent("one")->id());
  ASSERT_OK(Limit(fb::LimitScope::agent, agent, fb::LimitType::requests_per_hour, 1));
  req.agent = agent;
  EXPECT_TRUE(Must(e().CheckLimits(Scope::ForUser(user), req)).allowed);  // user 2/3, agent 1/1
  EXPECT_FALSE(Must(e().CheckLimits(Scope::ForUser(user), req)).allowed);
  req.agent.reset();
  EXPECT_TRUE(Must(e().CheckLimits(Scope::ForUser(user), req)).allowed) << "user still had 1";
  // Deactivated, then changed.
  fb::RateLimitConfigT off;
  cfg->UnPackTo(&off);
  off.is_active = false;
  ASSERT_OK(e().PutLimitConfig(Scope::Admin(), off));
  EXPECT_EQ(Must(e().CheckLimits(Scope::ForUser(user), req)).remaining, -1);
  EXPECT_EQ(Must(e().ListLimitConfigs(Scope::Admin())).size(), 2u);
  ASSERT_OK(e().DeleteLimitConfig(Scope::Admin(), Id(cfg->id())));
  EXPECT_EQ(Must(e().ListLimitConfigs(Scope::Admin())).size(), 1u);
  Reopen();
  EXPECT_EQ(Must(e().ListLimitConfigs(Scope::Admin())).size(), 1u) << "configs are durable";
}

TEST_F(Usage, LeasesAreReleasedOrExpire) {
  OpenWith(0, false, /*lease_ttl=*/10'000'000);
  Uuid tenant = Tenant("t");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  ASSERT_OK(Limit(fb::LimitScope::tenant, tenant, fb::LimitType::concurrent, 2));
  LimitCheckRequest req;
  req.user = user;
  auto a = Must(e().CheckLimits(Scope::Service(), req));
  auto b = Must(e().CheckLimits(Scope::Service(), req));
  ASSERT_TRUE(a.allowed && b.allowed && a.lease && b.lease);
  EXPECT_EQ(b.remaining, 0);
  auto c = Must(e().CheckLimits(Scope::Service(), req));
  EXPECT_FALSE(c.allowed);
  EXPECT_EQ(c.denied_type, "concurrent");
  EXPECT_CODE(e().ReleaseLimit(Scope::ForUser(Id(MakeUser("z@x.com")->id())), *a.lease), kNotFound)
      << "another user's lease";
  ASSERT_OK(e().ReleaseLimit(Scope::ForUser(user), *a.lease));
  EXPECT_CODE(e().ReleaseLimit(Scope::Service(), *a.lease), kNotFound) << "released once";
  auto d = Must(e().CheckLimits(Scope::Service(), req));
  EXPECT_TRUE(d.allowed);
  clock_.Advance(10'000'001);  // b and d expire unreleased
  EXPECT_EQ(Must(e().CheckLimits(Scope::Service(), req)).remaining, 1);
  EXPECT_CODE(e().ReleaseLimit(Scope::Service(), *b.lease), kNotFound);
}

TEST_F(Usage, ConcurrentChecksNeverExceedTheLimit) {
  Uuid user = Id(MakeUser("a@x.com")->id());
  Uuid agent = Id(MakeAgent("one")->id());
  constexpr int kLimit = 500, kThreads = 8, kTries = 200;
  ASSERT_OK(Limit(fb::LimitScope::global, std::nullopt, fb::LimitType::requests_per_day, kLimit));
  ASSERT_OK(Limit(fb::LimitScope::agent, agent, fb::LimitType::concurrent, 3));
  std::atomic<int> allowed{0}, in_flight{0}, max_in_flight{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      LimitCheckRequest req;
      req.user = user;
      for (int i = 0; i < kTries; ++i) {
        req.agent = i % 2 ? std::optional<Uuid>(agent) : std::nullopt;
        auto d = e().CheckLimits(Scope::Service(), req);
        if (!d.ok() || !d->allowed) continue;
        allowed.fetch_add(1);
        if (d->lease) {
          int now = in_flight.fetch_add(1) + 1;
          int seen = max_in_flight.load();
          while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::yield();
          in_flight.fetch_sub(1);
          EXPECT_OK(e().ReleaseLimit(Scope::Service(), *d->lease));
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), kLimit);
  EXPECT_LE(max_in_flight.load(), 3);
}

TEST_F(Usage, ConcurrentTracksAreExact) {
  Uuid tenant = Tenant("t");
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::api_calls, 1'000'000));
  Uuid agent = Id(MakeAgent("one")->id());
  std::vector<Uuid> users;
  for (int i = 0; i < 4; ++i) {
    users.push_back(Id(MakeUser("u" + std::to_string(i) + "@x.com", tenant)->id()));
    UserAgent(users.back(), agent);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i)
        EXPECT_OK(
            e().TrackAgentUsage(Scope::Service(), Call(users[(t + i) % 4], agent, 3, 4, 5, 6)));
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(Must(e().GetQuotas(Scope::Admin(), tenant))[0]->current_usage(), 800);
  UsageSummaryRequest s;
  s.owner = SummaryOwner::kTenant;
  s.id = tenant;
  s.bucket = SummaryBucket::kTotal;
  auto sum = Must(e().SummarizeUsage(Scope::Admin(), s));
  EXPECT_EQ(sum.rows[0].totals.requests, 800);
  EXPECT_EQ(sum.rows[0].totals.total_tokens, 5600);
  int64_t uses = 0;
  for (const Uuid& u : users)
    uses += Must(e().GetUserAgentFor(Scope::Service(), u, agent))->usage_count();
  EXPECT_EQ(uses, 800);
}

TEST_F(Usage, HardDeletesCascade) {
  Uuid tenant = Tenant("t");
  Uuid a = Id(MakeUser("a@x.com", tenant)->id());
  Uuid b = Id(MakeUser("b@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(a, agent);
  UserAgent(b, agent);
  auto chat = MakeChat(b);
  auto call = Call(b, agent, 1, 1, 1, 1);
  call.chat_id = FbId(Id(chat->id()));
  auto tracked = Must(e().TrackAgentUsage(Scope::Service(), call));
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(a, agent, 1, 1, 1, 1)));
  ASSERT_OK(Limit(fb::LimitScope::user, a, fb::LimitType::requests_per_minute, 5));
  // A chat's hard delete keeps its logs with chat_id cleared.
  ASSERT_OK(e().DeleteChat(Scope::Service(), Id(chat->id()), DeleteMode::kHard));
  auto logs = AllLogs(b);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0]->chat_id(), nullptr);
  EXPECT_EQ(logs[0]->total_tokens(), 2);
  // A user's hard delete takes its logs, rollups and user limits.
  ASSERT_OK(e().DeleteUser(Scope::Service(), a, DeleteMode::kHard));
  EXPECT_TRUE(AllLogs(a).empty());
  UsageSummaryRequest s;
  s.id = a;
  EXPECT_TRUE(Must(e().SummarizeUsage(Scope::Service(), s)).rows.empty());
  EXPECT_TRUE(Must(e().ListLimitConfigs(Scope::Admin())).empty());
  auto check = [&] {
    auto st = e().Stats();
    EXPECT_EQ(st.records[static_cast<int>(RecordType::kUsageLog)], 1u);
    EXPECT_EQ(st.records[static_cast<int>(RecordType::kUserUsageRollup)], 1u);
    EXPECT_EQ(st.records[static_cast<int>(RecordType::kRateLimitConfig)], 0u);
    ASSERT_EQ(AllLogs(b).size(), 1u);
    EXPECT_EQ(AllLogs(b)[0]->chat_id(), nullptr);
  };
  check();
  Reopen();
  check();
}

TEST_F(Usage, ListingsByAgentTypeAndTimeWithCursors) {
  Uuid a = Id(MakeUser("a@x.com")->id());
  Uuid b = Id(MakeUser("b@x.com")->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(a, agent);
  UserAgent(b, agent);
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(1'000'000);
    auto type = i % 3 == 0 ? fb::AgentType::routing : fb::AgentType::chat;
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(),
                                  Call(i % 2 ? a : b, agent, 1, 1, 1, 1, true, "m", "p", type)));
  }
  UsageQuery q;
  q.agent_type = fb::AgentType::routing;
  q.limit = 4;
  std::vector<int64_t> seen;
  while (true) {
    auto page = Must(e().ListUsage(Scope::Admin(), q));
    for (const auto& r : page.rows) {
      EXPECT_EQ(r->agent_type(), fb::AgentType::routing);
      seen.push_back(r->request_ts());
    }
    if (page.next_cursor.empty()) break;
    q.cursor = page.next_cursor;
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend()));
  UsageQuery range;
  range.from = clock_.NowMicros() - 10'000'000;
  EXPECT_EQ(Must(e().ListUsage(Scope::Admin(), range)).rows.size(), 10u);
  range.user = a;
  range.agent_type = fb::AgentType::chat;
  for (const auto& r : Must(e().ListUsage(Scope::Admin(), range)).rows) {
    EXPECT_EQ(Id(r->user_id()), a);
    EXPECT_EQ(r->agent_type(), fb::AgentType::chat);
  }
  UsageQuery bad;
  bad.cursor = "nope";
  EXPECT_CODE(e().ListUsage(Scope::Admin(), bad), kInvalidArgument);
  bad.cursor.clear();
  bad.limit = 0;
  EXPECT_CODE(e().ListUsage(Scope::Admin(), bad), kInvalidArgument);
}

TEST_F(Usage, RetentionDropsOldLogsButKeepsRollups) {
  OpenWith(/*retention=*/10 * kDay, /*purge=*/true);
  Uuid user = Id(MakeUser("a@x.com")->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 0, 10, 0)));
    clock_.Advance(kDay);
  }
  clock_.Advance(-1'000'000);  // the cutoff falls just before the 11th call
  EXPECT_EQ(Must(e().ExpireUsageLogs(Scope::Admin())), 10u);
  EXPECT_EQ(AllLogs(user).size(), 10u);
  UsageSummaryRequest s;
  s.id = user;
  s.bucket = SummaryBucket::kTotal;
  EXPECT_EQ(Must(e().SummarizeUsage(Scope::Service(), s)).rows[0].totals.requests, 20)
      << "summaries over expired days still answer from rollups";
  Reopen();
  EXPECT_EQ(AllLogs(user).size(), 10u);
  clock_.Advance(5 * kDay);
  OpenWith(10 * kDay, false);
  EXPECT_EQ(AllLogs(user).size(), 5u) << "older logs are skipped at open";
  EXPECT_EQ(Must(e().SummarizeUsage(Scope::Service(), s)).rows[0].totals.requests, 20);
}

// Export then import into a fresh store: usage logs, rollups, quotas and limit configs
// come back exactly, so summaries and listings agree; a second import changes nothing.
TEST_F(Usage, ExportImportCarriesUsageRecords) {
  Uuid tenant = Tenant("t");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::tokens, 1000));
  ASSERT_OK(Limit(fb::LimitScope::user, user, fb::LimitType::requests_per_hour, 9));
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 10 + i, 5, 100, 7)));
    clock_.Advance(kDay / 2);
  }
  auto dump = [&](Engine& from) {
    std::vector<std::pair<RecordType, std::string>> out;
    for (RecordType t :
         {RecordType::kTenant, RecordType::kUser, RecordType::kAgent, RecordType::kUserAgent,
          RecordType::kUsageLog, RecordType::kUserUsageRollup, RecordType::kTenantUsageRollup,
          RecordType::kQuota, RecordType::kRateLimitConfig}) {
      std::string cursor;
      do {
        auto page = Must(from.ExportRecords(Scope::Service(), t, cursor, 4));
        for (const auto& b : page.records) {
          const void* p = b.data();
          std::string json;
          switch (t) {
            case RecordType::kTenant:
              json = RecordToJson(*flatbuffers::GetRoot<fb::Tenant>(p));
              break;
            case RecordType::kUser:
              json = RecordToJson(*flatbuffers::GetRoot<fb::User>(p));
              break;
            case RecordType::kAgent:
              json = RecordToJson(*flatbuffers::GetRoot<fb::Agent>(p));
              break;
            case RecordType::kUserAgent:
              json = RecordToJson(*flatbuffers::GetRoot<fb::UserAgent>(p));
              break;
            case RecordType::kUsageLog:
              json = RecordToJson(*flatbuffers::GetRoot<fb::UsageLog>(p));
              break;
            case RecordType::kQuota:
              json = RecordToJson(*flatbuffers::GetRoot<fb::Quota>(p));
              break;
            case RecordType::kRateLimitConfig:
              json = RecordToJson(*flatbuffers::GetRoot<fb::RateLimitConfig>(p));
              break;
            default:
              json = RecordToJson(*flatbuffers::GetRoot<fb::UsageRollup>(p));
          }
          out.push_back({t, json});
        }
        cursor = page.next_cursor;
      } while (!cursor.empty());
    }
    return out;
  };
  auto records = dump(e());
  TempDir other;
  EngineOptions o;
  o.data_dir = other.sub("data");
  o.durability = storage::Durability::kNone;
  o.clock = &clock_;
  auto copy = Must(Engine::Open(o));
  for (int round = 0; round < 2; ++round)
    for (const auto& [t, json] : records)
      ASSERT_OK(copy->ImportRecord(Scope::Service(), t, json)) << RecordTypeName(t) << json;
  EXPECT_EQ(dump(*copy), records);
  // A rollup row is per UTC day: a day that is not a day's start is refused, nothing added.
  for (const auto& [t, json] : records) {
    if (t != RecordType::kUserUsageRollup) continue;
    auto at = json.find("\"day\":");
    ASSERT_NE(at, std::string::npos) << json;
    std::string bad = json.substr(0, at) + "\"day\":1" + json.substr(json.find_first_of(",}", at));
    EXPECT_CODE(copy->ImportRecord(Scope::Service(), t, bad), kInvalidArgument) << bad;
    break;
  }
  EXPECT_EQ(dump(*copy), records);
  UsageSummaryRequest s;
  s.id = user;
  s.bucket = SummaryBucket::kDay;
  s.group = SummaryGroup::kModel;
  auto a = Must(e().SummarizeUsage(Scope::Service(), s));
  auto b = Must(copy->SummarizeUsage(Scope::Service(), s));
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) EXPECT_TRUE(a.rows[i].totals == b.rows[i].totals);
  EXPECT_EQ(Must(copy->GetQuotas(Scope::Admin(), tenant))[0]->current_usage(), 85);
  EXPECT_EQ(Must(copy->ListLimitConfigs(Scope::Admin())).size(), 1u);
  auto counts = [](const EngineStats& st) {
    std::string d = Describe(st);
    return d.substr(0, d.find("writes"));
  };
  EXPECT_EQ(counts(copy->Stats()), counts(e().Stats()));
}

TEST_F(Usage, PurgingATenantTakesItsQuotasRollupsAndLimits) {
  Uuid tenant = Tenant("gone");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::tokens, 100));
  ASSERT_OK(Limit(fb::LimitScope::tenant, tenant, fb::LimitType::requests_per_day, 5));
  ASSERT_OK(Limit(fb::LimitScope::global, std::nullopt, fb::LimitType::requests_per_day, 5));
  ASSERT_OK(e().TrackAgentUsage(Scope::Service(), Call(user, agent, 1, 1, 1, 1)));
  EXPECT_CODE(e().DeleteTenant(Scope::Admin(), tenant, DeleteMode::kHard), kInvalidArgument);
  ASSERT_OK(e().DeleteUser(Scope::Service(), user, DeleteMode::kHard));
  ASSERT_OK(e().DeleteTenant(Scope::Admin(), tenant, DeleteMode::kHard));
  auto check = [&] {
    EXPECT_CODE(e().GetQuotas(Scope::Admin(), tenant), kNotFound) << "the tenant is gone";
    EXPECT_TRUE(
        Must(e().ExportRecords(Scope::Admin(), RecordType::kQuota, "", 100)).records.empty())
        << "and its quotas with it";
    UsageSummaryRequest s;
    s.owner = SummaryOwner::kTenant;
    s.id = tenant;
    EXPECT_TRUE(Must(e().SummarizeUsage(Scope::Admin(), s)).rows.empty());
    s.owner = SummaryOwner::kEveryone;
    EXPECT_EQ(Must(e().SummarizeUsage(Scope::Admin(), s)).rows.size(), 1u) << "everyone keeps it";
    EXPECT_EQ(Must(e().ListLimitConfigs(Scope::Admin())).size(), 1u) << "the global one stays";
  };
  check();
  Reopen();
  check();
}

TEST_F(Usage, RetriedTrackWithTheSameIdChangesNothing) {
  Uuid tenant = Tenant("t");
  Uuid user = Id(MakeUser("a@x.com", tenant)->id());
  Uuid agent = Id(MakeAgent("one")->id());
  UserAgent(user, agent);
  ASSERT_OK(SetQuota(tenant, fb::QuotaType::api_calls, 10));
  auto call = Call(user, agent, 5, 5, 5, 5);
  call.id = FbId(*Uuid::Parse("0190f3a2-7b1c-7def-8123-456789abcdef"));
  auto first = Must(e().TrackAgentUsage(Scope::Service(), call));
  std::string stats = Describe(e().Stats());
  auto again = Must(e().TrackAgentUsage(Scope::Service(), call));
  EXPECT_EQ(again.log.bytes(), first.log.bytes());
  EXPECT_EQ(again.user_agent->usage_count(), 1);
  ASSERT_EQ(again.quotas.size(), 1u);
  EXPECT_EQ(again.quotas[0]->current_usage(), 1);
  EXPECT_EQ(Describe(e().Stats()).substr(0, stats.find("writes")),
            stats.substr(0, stats.find("writes")));
  Uuid other = Id(MakeUser("b@x.com", tenant)->id());
  UserAgent(other, agent);
  call.user_id = FbId(other);
  EXPECT_CODE(e().TrackAgentUsage(Scope::Service(), call), kAlreadyExists);
}

}  // namespace
}  // namespace agentstore::testing

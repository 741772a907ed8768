// The engine on a store whose disk fills: writes get a clear resource_exhausted and
// change nothing, reads keep serving, writes come back by themselves once space is
// freed, and everything acknowledged is there after a restart. And concurrent
// track_agent_usage across shards: rollups and quotas exact in memory and after restart.
#include <atomic>
#include <thread>

#include "test_util.h"

namespace agentstore::testing {
namespace {

class DurabilityTest : public EngineFixture {
 protected:
  void OpenWith(storage::Durability d, std::shared_ptr<storage::StorageFaults> faults) {
    engine_.reset();
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = d;
    o.clock = &clock_;
    o.shards = 4;
    o.faults = std::move(faults);
    auto r = Engine::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    engine_ = std::move(r).value();
  }
  bool WaitWritable() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!e().WriteHealth().ok() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return e().WriteHealth().ok();
  }
};

TEST_F(DurabilityTest, DiskFullRefusesWritesKeepsReadsAndRecovers) {
  for (auto d : {storage::Durability::kAlways, storage::Durability::kNone}) {
    SCOPED_TRACE(std::string(storage::DurabilityName(d)));
    auto faults = std::make_shared<storage::StorageFaults>();
    OpenWith(d, faults);
    Uuid user = Id(MakeUser("full-" + std::string(storage::DurabilityName(d)) + "@x.com")->id());
    Uuid chat = Id(MakeChat(user)->id());
    int acked = 0;
    for (int i = 0; i < 10; ++i, ++acked) ASSERT_OK(Append(Scope::Service(), chat, "before", 1));

    faults->SetDiskFull(true);
    // The write that meets the full disk fails (under `always` its group's sync fails;
    // it is not acknowledged). Later ones fail before they change anything.
    EXPECT_CODE(Append(Scope::Service(), chat, "meets the full disk", 1), kResourceExhausted);
    MessagePageRequest all;
    all.limit = 1000;
    std::string chat_before = BytesOf(e().GetChat(Scope::Service(), chat));
    std::string msgs_before = BytesOf(e().ListMessages(Scope::Service(), chat, all));
    for (int i = 0; i < 5; ++i) {
      auto r = Append(Scope::Service(), chat, "refused", 1);
      EXPECT_CODE(r, kResourceExhausted);
      EXPECT_NE(TextOf(r).find("disk full"), std::string::npos) << TextOf(r);
    }
    fb::ChatT c;
    c.user_id = FbId(user);
    EXPECT_CODE(e().CreateChat(Scope::Service(), c), kResourceExhausted);
    // Reads keep serving, and the refused writes changed nothing.
    EXPECT_EQ(BytesOf(e().GetChat(Scope::Service(), chat)), chat_before);
    EXPECT_EQ(BytesOf(e().ListMessages(Scope::Service(), chat, all)), msgs_before);
    EXPECT_OK(e().GetUser(Scope::Service(), user));

    faults->SetDiskFull(false);
    ASSERT_TRUE(WaitWritable()) << e().WriteHealth().ToString();
    for (int i = 0; i < 10; ++i, ++acked) ASSERT_OK(Append(Scope::Service(), chat, "after", 1));

    // Restart: every acknowledged message is there and the chat's totals add up.
    engine_.reset();
    OpenWith(d, nullptr);
    auto msgs = Must(e().ListMessages(Scope::Service(), chat, all));
    EXPECT_GE(static_cast<int>(msgs.rows.size()), acked);
    EXPECT_LE(static_cast<int>(msgs.rows.size()), acked + 1);  // + the unacknowledged one
    auto got = Must(e().GetChat(Scope::Service(), chat));
    EXPECT_EQ(got->message_count(), static_cast<int64_t>(msgs.rows.size()));
    EXPECT_EQ(got->total_input_tokens(), static_cast<int64_t>(msgs.rows.size()));
    engine_.reset();
    std::filesystem::remove_all(dir_.sub("data"));
  }
}

TEST_F(DurabilityTest, ConcurrentTrackAcrossShardsKeepsLedgerExact) {
  OpenWith(storage::Durability::kAlways, nullptr);
  fb::TenantT t;
  t.name = "acme";
  t.slug = "acme";
  Uuid tenant = Id(Must(e().CreateTenant(Scope::Service(), t))->id());
  Uuid agent = Id(MakeAgent("helper")->id());
  for (auto type : {fb::QuotaType::tokens, fb::QuotaType::api_calls}) {
    fb::QuotaT q;
    q.tenant_id = FbId(tenant);
    q.quota_type = type;
    q.quota_limit = 1'000'000;
    q.period = fb::QuotaPeriod::none;
    ASSERT_OK(e().SetQuota(Scope::Service(), q));
  }
  constexpr int kThreads = 8, kCalls = 200;
  std::vector<Uuid> users;
  for (int i = 0; i < kThreads; ++i) {
    users.push_back(Id(MakeUser("t" + std::to_string(i) + "@x.com", tenant)->id()));
    fb::UserAgentT ua;
    ua.user_id = FbId(users.back());
    ua.agent_id = FbId(agent);
    ASSERT_OK(e().CreateUserAgent(Scope::Service(), ua));
  }
  std::atomic<int64_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th)
    threads.emplace_back([&, th] {
      for (int i = 0; i < kCalls; ++i) {
        fb::UsageLogT l;
        l.user_id = FbId(users[th]);
        l.agent_id = FbId(agent);
        l.model = i % 2 ? "a" : "b";
        l.input_tokens = 3;
        l.output_tokens = 4;
        auto r = e().TrackAgentUsage(Scope::Service(), l);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        // The api_calls quota a call returns is its own place in the count: distinct.
        for (const auto& q : r->quotas)
          if (q->quota_type() == fb::QuotaType::api_calls) {
            int64_t v = q->current_usage(), m = max_seen.load();
            while (v > m && !max_seen.compare_exchange_weak(m, v)) {
            }
          }
      }
    });
  for (auto& th : threads) th.join();
  constexpr int64_t kTotal = int64_t{kThreads} * kCalls;
  EXPECT_EQ(max_seen.load(), kTotal);
  auto check = [&] {
    auto quotas = Must(e().GetQuotas(Scope::Service(), tenant));
    ASSERT_EQ(quotas.size(), 2u);
    for (const auto& q : quotas)
      EXPECT_EQ(q->current_usage(), q->quota_type() == fb::QuotaType::tokens ? 7 * kTotal : kTotal);
    UsageSummaryRequest s;
    s.bucket = SummaryBucket::kTotal;
    for (SummaryOwner owner : {SummaryOwner::kTenant, SummaryOwner::kEveryone}) {
      s.owner = owner;
      s.id = tenant;
      auto sum = Must(e().SummarizeUsage(Scope::Service(), s));
      ASSERT_EQ(sum.rows.size(), 1u);
      EXPECT_EQ(sum.rows[0].totals.requests, kTotal);
      EXPECT_EQ(sum.rows[0].totals.total_tokens, 7 * kTotal);
    }
    EXPECT_EQ(e().Stats().records[static_cast<int>(RecordType::kTenantUsageRollup)], 4u);
  };
  check();
  engine_.reset();
  OpenWith(storage::Durability::kAlways, nullptr);
  check();
  // After the restart the totals on disk are the base, new calls add shard parts.
  fb::UsageLogT l;
  l.user_id = FbId(users[0]);
  l.agent_id = FbId(agent);
  l.model = "a";
  l.input_tokens = 3;
  l.output_tokens = 4;
  auto r = Must(e().TrackAgentUsage(Scope::Service(), l));
  for (const auto& q : r.quotas)
    EXPECT_EQ(q->current_usage(),
              q->quota_type() == fb::QuotaType::tokens ? 7 * (kTotal + 1) : kTotal + 1);
}

}  // namespace
}  // namespace agentstore::testing
